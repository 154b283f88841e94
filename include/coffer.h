/*
 * coffer.h -- the public API of libcoffer, an encrypted, versioned secret store.
 *
 * This is the only header a user includes. Anything not declared here is not API.
 *
 * Model (the Nitric "Secrets" building block):
 *
 *   +- Secret 'db.password'
 *      +- Version '1' -> Value 'bleak_dearest_hanged_reigns'
 *      +- Version '2' -> Value 'crummy_goofed_caddy_radiant'   <- latest
 *
 * Every put creates a new immutable version whose id is a decimal integer ("1", "2", ...),
 * strictly increasing per secret and never reused. "latest" (any letter case) names the newest
 * enabled version. Values are 1 byte to 64 KiB by default (configurable up to 1 MiB), any bytes.
 * Everything is sealed with XChaCha20-Poly1305 under data keys that are themselves sealed under a
 * master key that never touches the store.
 *
 * Conventions that hold for every function below:
 *   - Functions returning int return COFFER_OK (0) on success or a negative coffer_rc.
 *   - An out-parameter is written only on success; on failure it is left untouched.
 *   - _open/_close pair for stores, _new/_free (or _ref/_free) for heap objects; passing NULL to
 *     a _free or _close function is a no-op.
 *   - A store handle serializes its own use with an internal mutex: it may be shared between
 *     threads. Secret handles and values belong to the store they came from and must be freed
 *     before it is closed.
 *   - The library never exits, aborts or prints. Out of memory is COFFER_ENOMEM.
 *   - No secret value, key or token ever appears in an error message.
 *   - Keys live in locked, guarded memory and values are wiped when freed, but a library cannot
 *     switch off core dumps for its host: a program that handles secrets should (setrlimit
 *     RLIMIT_CORE 0, prctl PR_SET_DUMPABLE 0), as the coffer CLI and server do.
 */
#ifndef COFFER_H
#define COFFER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define COFFER_API        __attribute__((visibility("default")))
#define COFFER_MUST_CHECK __attribute__((warn_unused_result))
#else
#define COFFER_API
#define COFFER_MUST_CHECK
#endif

#define COFFER_VERSION_STRING "0.1.0"

/*
 * The version of the library actually loaded at run time ("0.1.0"), which may differ from the
 * COFFER_VERSION_STRING a program was compiled against (a newer libcoffer.so.0). Static text.
 */
COFFER_API const char *coffer_libversion(void);

/*
 * How many coffer_access() calls were answered from their handle's cache of sealed rows (each
 * secret's newest version, still current in the store: hits) and how many read the store
 * (misses), summed over every handle of this process since it started. Either pointer may be
 * NULL. Thread-safe.
 */
COFFER_API void coffer_cache_stats(uint64_t *hits, uint64_t *misses);

/*
 * The one list of error codes. Each row: NAME, value, message, gRPC status code, CLI exit code.
 * It generates the enum below, coffer_strerror(), the server's gRPC status mapping and the
 * CLI's exit codes, so the four can never disagree.
 *
 * CLI exit codes: 0 ok, 1 other failure, 2 usage or invalid input, 3 not found,
 * 4 permission denied, 5 key or integrity failure, 6 store busy or unavailable, 7 disk full.
 */
#define COFFER_ERROR_LIST(X)                                                                       \
	X(OK, 0, "ok", 0, 0)                                                                       \
	X(EINVAL, -1, "invalid argument", 3, 2)                                                    \
	X(ETOOBIG, -2, "value too large", 3, 2)                                                    \
	X(ENOTFOUND, -3, "not found", 5, 3)                                                        \
	X(EPERM, -4, "permission denied", 7, 4)                                                    \
	X(EINTEGRITY, -5, "integrity check failed", 13, 5)                                         \
	X(EKEY, -6, "master key unusable or wrong", 13, 5)                                         \
	X(EBUSY, -7, "store busy", 14, 6)                                                          \
	X(EUNAVAIL, -8, "store unavailable", 14, 6)                                                \
	X(ENOMEM, -9, "out of memory", 8, 1)                                                       \
	X(EIO, -10, "storage error", 13, 1)                                                        \
	X(ECORRUPT, -11, "store is corrupt or of an unknown format", 13, 5)                        \
	X(EMISUSE, -12, "library misuse", 13, 1)                                                   \
	X(EFULL, -13, "disk full", 8, 7)

typedef enum coffer_rc {
#define COFFER_X_ENUM(name, value, msg, grpc, exitcode) COFFER_##name = (value),
	COFFER_ERROR_LIST(COFFER_X_ENUM)
#undef COFFER_X_ENUM
} coffer_rc;

/* Static English text for a code; never NULL ("unknown error" for a value not in the list). */
COFFER_API const char *coffer_strerror(int rc);

/* The gRPC status code (google.rpc.Code) for a coffer_rc; 2 (UNKNOWN) for a value not in the list.
 */
COFFER_API int coffer_grpc_status(int rc);

/* The CLI exit code for a coffer_rc; 1 for a value not in the list. */
COFFER_API int coffer_exit_code(int rc);

/* Limits. */
#define COFFER_NAME_MAX          255 /* bytes in a secret name, excluding the NUL */
#define COFFER_PORTABLE_NAME_MAX 127 /* what every cloud accepts */
#define COFFER_VERSION_MAX       21  /* buffer size for a version id: 20 digits + NUL */
#define COFFER_VALUE_DEFAULT_MAX (64 * 1024)
#define COFFER_VALUE_HARD_MAX    (1024 * 1024)

/* Permissions of a secret handle. */
#define COFFER_PUT    0x1u
#define COFFER_ACCESS 0x2u

typedef struct coffer_store coffer_store;
typedef struct coffer_secret coffer_secret;
typedef struct coffer_value coffer_value;

/* Flags for coffer_options.flags. */
/* Open only an existing store: where there is none (no folder, no database, or one whose
 * creation never finished), fail with COFFER_ENOTFOUND and create nothing at all (no folder,
 * file, schema, header or key file). */
#define COFFER_OPEN_NO_CREATE 0x1u
#define COFFER_OPEN_NO_ENV                                                                         \
	0x2u /* ignore COFFER_MASTER_KEY / COFFER_KEY_FILE / COFFER_PASSPHRASE                     \
	      */

/*
 * Options for coffer_open(). Zero-initialize, then set what you need; NULL options means all
 * defaults. The master key comes from, in this order: master_key_b64, env COFFER_MASTER_KEY,
 * passphrase, env COFFER_PASSPHRASE, key_file, env COFFER_KEY_FILE, and finally the default key
 * file beside the store (<store dir>/master.key), which is created (mode 0600, O_EXCL|O_NOFOLLOW)
 * when the store is created. The strings are only read during coffer_open().
 */
typedef struct coffer_options {
	const char *master_key_b64; /* base64 of 32 bytes */
	const char *passphrase;     /* stretched with Argon2id; salt and limits live in the store */
	const char *key_file;       /* path of a key file holding base64 of 32 bytes */
	size_t max_value;           /* 0: COFFER_VALUE_DEFAULT_MAX; at most COFFER_VALUE_HARD_MAX */
	unsigned flags;             /* COFFER_OPEN_* */
} coffer_options;

/* What coffer_open() had to create, reported by coffer_created(). */
#define COFFER_CREATED_STORE    0x1u
#define COFFER_CREATED_KEY_FILE 0x2u

/*
 * Open (creating if needed) the store at `location`: a directory path for the embedded SQLite
 * store (created 0700, files 0600; an existing folder that gives group or others any access is
 * refused with COFFER_EPERM), or a URL whose scheme names a backend ("sqlite:DIR",
 * "postgres://..." where built in). NULL means "./.coffer".
 *
 * The master key is checked before this returns: a wrong key is COFFER_EKEY with a message that
 * says so. On failure *out is untouched; if `errbuf` is not NULL, a message is written there
 * (at most errlen bytes, NUL-terminated).
 *
 * Each secret's metadata (its newest version, version states) is authenticated with a MAC under
 * a key sealed by the master key (docs/internals.md). A store made by a coffer from before that
 * gets its MACs here, in one transaction, the first time a handle opens it.
 *
 * Returns COFFER_OK, COFFER_EINVAL (bad location or options), COFFER_ENOTFOUND (missing and
 * NO_CREATE), COFFER_EPERM (store folder open to group or others), COFFER_EKEY (no key, wrong
 * key, unsafe key file), COFFER_EFULL (no room on the disk to create or open the store or its
 * key file), COFFER_EINTEGRITY (the store's metadata key was deleted or replaced outside
 * coffer), COFFER_ECORRUPT, COFFER_EIO, COFFER_EBUSY, COFFER_EUNAVAIL, COFFER_ENOMEM.
 */
COFFER_API int coffer_open(coffer_store **out, const char *location, const coffer_options *opts,
                           char *errbuf, size_t errlen) COFFER_MUST_CHECK;

/* Close a store, wiping its keys. All secret handles and values must have been freed. */
COFFER_API void coffer_close(coffer_store *st);

/*
 * Forget the key material coffer_open() may read from the environment: overwrite the values of
 * COFFER_MASTER_KEY, COFFER_PASSPHRASE and COFFER_KEY_FILE in place (the strings environ points
 * at, which /proc/PID/environ also shows) and unset them, so neither this process's memory nor
 * a child it starts keeps them. Call it once every handle the program needs is open (handles
 * keep their key; later opens then need the key given in coffer_options). Not thread-safe with
 * respect to other users of the environment, like setenv().
 */
COFFER_API void coffer_env_scrub(void);

/*
 * A store location fit for a message or a log: in a URL, the password (user:PASSWORD@ and any
 * password= or sslpassword= parameter, percent-escaped or not) becomes "***". Writes into buf
 * (always NUL-terminated, truncated to len) and returns buf; with buf NULL or len 0, returns
 * "(location)".
 */
COFFER_API const char *coffer_location_display(const char *location, char *buf, size_t len);

/* COFFER_CREATED_* bits: what coffer_open() created for this handle (0 if nothing). */
COFFER_API unsigned coffer_created(const coffer_store *st);

/*
 * The detail message of the last failed call on this store (or on any secret handle of it),
 * e.g. "secret 'db.password' has no version '7'". Valid until the next call on the store from
 * any thread; never NULL. Never contains a value or a key.
 */
COFFER_API const char *coffer_errmsg(const coffer_store *st);

/*
 * Validate a secret name: 1-255 bytes of A-Z a-z 0-9 . _ -, beginning with a letter or digit.
 * Returns COFFER_OK or COFFER_EINVAL.
 */
COFFER_API int coffer_name_check(const char *name, size_t len);

/* 1 if the name is also portable (lower-case letters, digits and '-', at most 127), else 0. */
COFFER_API int coffer_name_portable(const char *name, size_t len);

/*
 * Make a handle to the secret `name` carrying the permissions `perms` (COFFER_PUT and/or
 * COFFER_ACCESS). The secret need not exist yet. On success *out owns a handle freed with
 * coffer_secret_free().
 * Returns COFFER_OK, COFFER_EINVAL (bad name, or perms empty or unknown), COFFER_ENOMEM.
 */
COFFER_API int coffer_secret_ref(coffer_store *st, const char *name, unsigned perms,
                                 coffer_secret **out) COFFER_MUST_CHECK;

COFFER_API void coffer_secret_free(coffer_secret *sec);

/* The secret's name (owned by the handle). */
COFFER_API const char *coffer_secret_name(const coffer_secret *sec);

/*
 * Store `value` (len bytes, 1..max_value, any bytes) as a new version, which becomes latest.
 * Returns only after the version is durably committed. It is sealed with the store's newest data
 * key as of the put's own transaction (a rotation by any process counts from the next put). On
 * success, if version_out is not NULL, the new version id is written there as a NUL-terminated
 * decimal string.
 * Returns COFFER_OK, COFFER_EPERM (handle lacks COFFER_PUT), COFFER_EINVAL (empty value or NULL),
 * COFFER_ETOOBIG, COFFER_EKEY (the newest data key does not open with this handle's master key:
 * another process ran a rekey), COFFER_EINTEGRITY (the secret's metadata does not match its
 * MAC: it was edited outside coffer; nothing is stored), COFFER_EBUSY, COFFER_EUNAVAIL (outcome
 * unknown: the store went away during commit), COFFER_EFULL (the disk holding the store is full:
 * nothing was stored, and the same handle can put again once there is room), COFFER_EIO,
 * COFFER_ENOMEM.
 */
COFFER_API int coffer_put(coffer_secret *sec, const void *value, size_t len,
                          char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;

/*
 * Check a put without making it: the handle's permission and the value's size, the checks
 * coffer_put() and coffer_put_batch() make first, with the same error and coffer_errmsg() message
 * (for a server that answers a bad put at once and batches the good ones). Nothing is locked in
 * the store and nothing is written.
 * Returns COFFER_OK, COFFER_EPERM, COFFER_EINVAL (empty value or NULL), COFFER_ETOOBIG,
 * COFFER_EMISUSE (sec is NULL).
 */
COFFER_API int coffer_put_check(coffer_secret *sec, const void *value,
                                size_t len) COFFER_MUST_CHECK;

/*
 * One put of a batch. Fill secret/value/len; coffer_put_batch() fills rc and version.
 */
typedef struct coffer_put_item {
	coffer_secret *secret;
	const void *value;
	size_t len;
	int rc;                           /* out: this item's result */
	char version[COFFER_VERSION_MAX]; /* out: the new version id when rc == COFFER_OK */
} coffer_put_item;

/*
 * Put many values in one durable commit (group commit). Items that fail validation get their own
 * rc and are skipped, and so do the items of a secret whose metadata fails its MAC check
 * (COFFER_EINTEGRITY; coffer_errmsg() names the secret); the valid ones are committed together
 * or not at all. Items may name the
 * same secret: they get consecutive versions in array order. All secrets must belong to `st`.
 * Returns COFFER_OK if the commit (of zero or more valid items) succeeded, otherwise the commit's
 * error, which is also set in the rc of every valid item.
 */
COFFER_API int coffer_put_batch(coffer_store *st, coffer_put_item *items,
                                size_t n) COFFER_MUST_CHECK;

/*
 * Read a version: `version` is "latest" (any case) or a decimal id ("1", "2", ...).
 * On success *out owns a value freed (and wiped) with coffer_value_free().
 * Returns COFFER_OK, COFFER_EPERM (handle lacks COFFER_ACCESS), COFFER_EINVAL (malformed version
 * id), COFFER_ENOTFOUND (no such secret or version), COFFER_EINTEGRITY (the stored ciphertext
 * fails to open: tampered, moved or corrupt; or what the store says about the secret's versions,
 * which one is latest, or the state of the one asked for, does not match its MAC: edited outside
 * coffer, e.g. the newest version deleted or marked destroyed to move latest back; never an
 * older value instead), COFFER_EKEY (sealed with a data key this handle's
 * master key cannot open: another process ran a rekey), COFFER_EBUSY, COFFER_EIO, COFFER_ENOMEM.
 */
COFFER_API int coffer_access(coffer_secret *sec, const char *version,
                             coffer_value **out) COFFER_MUST_CHECK;

/* The value's bytes; *len (if not NULL) receives the length. Owned by the value. A NUL byte
 * always follows the data (not counted in len), so text values can be used as C strings. */
COFFER_API const void *coffer_value_data(const coffer_value *v, size_t *len);

/* The real version id the value came from (never "latest"). Owned by the value. */
COFFER_API const char *coffer_value_version(const coffer_value *v);

/* Wipe and free a value. */
COFFER_API void coffer_value_free(coffer_value *v);

/*
 * Destroy one version for good: its ciphertext is deleted from the store and it can never be
 * read again; its id is never reused, and it stays listed as destroyed. `version` is an id or
 * "latest" (the newest enabled version, which then becomes the one before it). The real id
 * destroyed is written to version_out when not NULL. Needs COFFER_PUT.
 * Every version of the secret is checked against its MAC first, and all are MAC'd again (so a
 * copy of a row from before cannot be put back), which makes a destroy cost one row write per
 * version of the secret.
 * Returns COFFER_OK, COFFER_EPERM, COFFER_EINVAL (malformed version id), COFFER_ENOTFOUND (no
 * such enabled version), COFFER_EINTEGRITY (the secret was edited outside coffer: nothing is
 * destroyed), COFFER_EMISUSE (backend without destroy), COFFER_EBUSY, COFFER_EFULL, COFFER_EIO,
 * COFFER_ENOMEM.
 */
COFFER_API int coffer_destroy(coffer_secret *sec, const char *version,
                              char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;

/* Version states. */
#define COFFER_STATE_ENABLED   0
#define COFFER_STATE_DESTROYED 1

typedef struct coffer_version_info {
	const char *version;     /* decimal id */
	int64_t created_unix_ms; /* creation time, milliseconds since the Unix epoch */
	int state;               /* COFFER_STATE_* */
	size_t size;             /* plaintext length in bytes */
	uint32_t key_id;         /* the data key that sealed it (key ids are not secret) */
} coffer_version_info;

/*
 * Call `cb` for each secret name in byte order, with its number of enabled versions (destroyed
 * ones are not counted, so 0 means latest has nothing to give). The name is valid only during
 * the call.
 * A non-zero return from cb stops the listing and is returned as is.
 * Returns COFFER_OK, cb's non-zero value, COFFER_EBUSY, COFFER_EIO, COFFER_ENOMEM.
 */
COFFER_API int coffer_list_secrets(coffer_store *st,
                                   int (*cb)(void *ctx, const char *name, size_t nversions),
                                   void *ctx);

/*
 * Call `cb` for each version of the secret, oldest first. Needs COFFER_ACCESS. Info is valid only
 * during the call. Each version and its state are checked against the MACs as they are listed.
 * Returns as coffer_list_secrets(), plus COFFER_EPERM, COFFER_ENOTFOUND (no such secret) and
 * COFFER_EINTEGRITY (a version missing, or a state or the secret's metadata edited outside
 * coffer; the listing stops there).
 */
COFFER_API int coffer_list_versions(coffer_secret *sec,
                                    int (*cb)(void *ctx, const coffer_version_info *info),
                                    void *ctx);

/*
 * Key rotation.
 *
 * coffer_rotate_data_key: add a fresh data key to the store's keyring (sealed under the master
 * key); every process sealing new values uses it from its first put that starts after this
 * returns, and old values keep the key that sealed them until coffer_reencrypt(). Writes the new
 * key id to *key_id when not NULL. The key is added only after every stored key was opened with
 * this handle's master key in the same transaction.
 * Returns COFFER_OK, COFFER_EKEY (the store's master key changed since this handle was opened:
 * another process ran a rekey; nothing was added), COFFER_EBUSY (the store is busy, or the
 * keyring is full: 64 data keys each still used by some version; coffer_reencrypt() frees them),
 * COFFER_EMISUSE (backend without rotation), COFFER_EFULL, COFFER_EIO, COFFER_ENOMEM.
 */
COFFER_API int coffer_rotate_data_key(coffer_store *st, uint32_t *key_id) COFFER_MUST_CHECK;

/*
 * Re-seal every version sealed with a data key older than the newest one when the pass starts,
 * with the newest key of each transaction of bounded size (an interrupted pass can simply be run
 * again; a rotation landing meanwhile cannot make it run forever), then prune the data keys no
 * version uses. *count (when not NULL) receives the number of versions moved. Returns as
 * coffer_rotate_data_key(), plus COFFER_EINTEGRITY if a stored value fails to open (the pass
 * stops there; coffer_errmsg() names the version).
 */
COFFER_API int coffer_reencrypt(coffer_store *st, size_t *count) COFFER_MUST_CHECK;

/*
 * Re-seal the keyring under a new master key, taken from new_key->master_key_b64, else
 * ->passphrase (at least 12 characters; a fresh Argon2id salt and the current limits are
 * written in the same transaction as the keyring), else ->key_file (created 0600 with a fresh
 * key if it does not exist). The environment is not consulted. Values are not touched. From then
 * on the store opens only with the new key; this handle keeps working. On failure the store is
 * unchanged and errbuf (if not NULL) says why. The key of the metadata MACs is re-sealed in the
 * same transaction; no MAC changes.
 * Handles opened elsewhere with the old key keep the data keys they hold; anything that needs a
 * key they cannot open (one added later, a rotation) fails with COFFER_EKEY and says the master
 * key changed. A key file created here for a rekey that failed is removed again.
 * Returns COFFER_OK, COFFER_EINVAL (no new key given, or a passphrase under 12 characters),
 * COFFER_EKEY (unusable new key, or this handle's master key is no longer the store's),
 * COFFER_EMISUSE, COFFER_EBUSY, COFFER_EIO, COFFER_ENOMEM.
 */
COFFER_API int coffer_rotate_master_key(coffer_store *st, const coffer_options *new_key,
                                        char *errbuf, size_t errlen) COFFER_MUST_CHECK;

/*
 * Rekey in place: the key file this handle's master key was read from (coffer_key_file()) gets a
 * new key. The new key is made in FILE.new (0600), the keyring re-sealed under it as by
 * coffer_rotate_master_key(), then FILE.new is renamed over FILE (and the folder fsync'd). If
 * the rename fails, the store opens with FILE.new (errbuf says so); a later coffer_open() of
 * FILE sees FILE.new beside it only as a file, so move it by hand.
 * Returns as coffer_rotate_master_key(), plus COFFER_EINVAL (the master key did not come from a
 * key file: give the new key explicitly), COFFER_EBUSY (FILE.new exists: another rekey is
 * running or was interrupted; nothing done), COFFER_EIO (the rename failed).
 */
COFFER_API int coffer_rekey_in_place(coffer_store *st, char *errbuf,
                                     size_t errlen) COFFER_MUST_CHECK;

/*
 * The key file coffer_open() reads for `location` when no key is given (for a folder store,
 * DIR/master.key), written to buf (len bytes). Nothing is opened or checked on disk.
 * Returns COFFER_OK, COFFER_ENOTFOUND (this kind of store has no default key file, e.g.
 * PostgreSQL: a key must be given), COFFER_EINVAL (unknown scheme, or buf too small),
 * COFFER_EMISUSE (buf NULL).
 */
COFFER_API int coffer_default_key_file(const char *location, char *buf, size_t len);

/* The path of the key file this handle's master key was read from, or NULL when it came from
 * COFFER_MASTER_KEY, a passphrase or the options. Owned by the handle. */
COFFER_API const char *coffer_key_file(const coffer_store *st);

/*
 * Declarations: which service declared which secret, with which actions (what Nitric programs
 * tell `coffer serve`; issue 13 item 8). Kept in the store, beside the secrets; they grant
 * nothing by themselves (the server decides what they mean: learned grants in development, a
 * check against the operator's policy file otherwise).
 */
#define COFFER_DECL_PUT    0x1u
#define COFFER_DECL_ACCESS 0x2u

typedef struct coffer_declaration {
	const char *service;      /* 1..63 bytes of A-Z a-z 0-9 . _ - */
	const char *secret;       /* a secret name */
	unsigned actions;         /* COFFER_DECL_* (0: the secret alone, no actions yet) */
	int64_t declared_unix_ms; /* listing: when first declared (ignored by coffer_declare) */
} coffer_declaration;

/*
 * Record n declarations in one transaction: each one's actions are added to what its (service,
 * secret) already holds. Returns COFFER_OK, COFFER_EINVAL (a bad service or secret name, or
 * unknown action bits: nothing recorded), COFFER_EMISUSE (a backend without declarations),
 * COFFER_EBUSY, COFFER_EFULL, COFFER_EIO, COFFER_EUNAVAIL, COFFER_ENOMEM.
 */
COFFER_API int coffer_declare(coffer_store *st, const coffer_declaration *d,
                              size_t n) COFFER_MUST_CHECK;

/*
 * Call `cb` for every declaration, by service then secret (valid only during the call). A
 * non-zero return from cb stops the listing and is returned as is. Returns as
 * coffer_list_secrets(), plus COFFER_EMISUSE (a backend without declarations).
 */
COFFER_API int coffer_list_declarations(coffer_store *st,
                                        int (*cb)(void *ctx, const coffer_declaration *d),
                                        void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* COFFER_H */
