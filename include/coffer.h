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
 * 4 permission denied, 5 key or integrity failure, 6 store busy or unavailable, 7 disk full,
 * 8 the version's state refuses it (disabled), 9 check-and-set mismatch (docs/lifecycle.md).
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
	X(EFULL, -13, "disk full", 8, 7)                                                           \
	X(EDISABLED, -14, "version is disabled", 9, 8)                                             \
	X(ECONFLICT, -15, "check-and-set mismatch: the secret is not at the expected version", 9,  \
	  9)                                                                                       \
	X(EREUSED, -16, "request id already used with another value", 6, 2)                        \
	X(EDELETED, -17, "secret is scheduled for deletion", 9, 8)

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
#define COFFER_OPEN_NO_CREATE   0x1u
#define COFFER_OPEN_AUDIT_READS 0x4u /* audit log: also record every access (docs/lifecycle.md) */
/* coffer_audit_append/_batch on this handle commit without waiting for the disk (SQLite
 * synchronous=NORMAL, PostgreSQL synchronous_commit=off, for those transactions only): an entry
 * is written before the call returns and survives the process's crash, but the newest entries can
 * be lost to a power loss or an OS crash (the chain stays valid: it ends earlier). Puts and
 * lifecycle changes, and their own entries, stay fully durable. coffer serve --audit-sync os. */
#define COFFER_OPEN_AUDIT_NOSYNC 0x8u
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
	const char *principal;      /* who this handle acts for in the audit log ("cli:USER", a
	                               service); NULL: "lib" */
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

/* Options of coffer_put_ex(). Zero-initialize, then set what you need. */
#define COFFER_PUT_IF_VERSION 0x1u /* check-and-set: see if_version */
typedef struct coffer_put_opts {
	unsigned flags; /* COFFER_PUT_* */
	/* With COFFER_PUT_IF_VERSION: the id of the secret's newest version (the largest id it
	 * ever had, whatever its state; 0: the secret must never have had a version) must be
	 * this, or nothing is stored and the put fails with COFFER_ECONFLICT. */
	uint64_t if_version;
	/* Idempotency: NULL, or 1..255 bytes naming this put. A put with the same id on the same
	 * secret within at least 24 hours returns the version the first one made (and stores
	 * nothing) if the value is the same, else COFFER_EREUSED. Kept only as a keyed hash. */
	const void *request_id;
	size_t request_id_len;
} coffer_put_opts;

#define COFFER_REQUEST_ID_MAX 255

/*
 * coffer_put() with options (NULL: none, the same as coffer_put()). Both checks happen inside
 * the put's own write transaction, so of two puts with the same if_version exactly one wins,
 * and the same request id from two processes at once makes one version. A request id is looked
 * at first: a retry of a put that succeeded answers its version even though if_version no longer
 * matches. *replayed (when not NULL) is set to 1 when the answer is a former put's version.
 * Returns as coffer_put(), plus COFFER_ECONFLICT (check-and-set mismatch; coffer_errmsg() says
 * the secret's newest version id) and COFFER_EREUSED, and COFFER_EINVAL for a request id of
 * 0 or more than COFFER_REQUEST_ID_MAX bytes.
 */
COFFER_API int coffer_put_ex(coffer_secret *sec, const void *value, size_t len,
                             const coffer_put_opts *opts, char version_out[COFFER_VERSION_MAX],
                             int *replayed) COFFER_MUST_CHECK;

/*
 * Retention: keep at most `max` versions holding a value (enabled or disabled) of the secret;
 * from its next put on, each put destroys the oldest ones beyond that in its own transaction.
 * 0 removes the limit. Needs COFFER_PUT. Returns COFFER_OK, COFFER_EPERM, COFFER_ENOTFOUND (the
 * secret has no versions yet), COFFER_EMISUSE, COFFER_EBUSY, COFFER_EIO.
 */
COFFER_API int coffer_set_max_versions(coffer_secret *sec, uint64_t max) COFFER_MUST_CHECK;

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
 * Read a version: `version` is "latest" (any case), a decimal id ("1", "2", ...) or a label
 * ("previous", or a custom label: see coffer_label_set).
 * On success *out owns a value freed (and wiped) with coffer_value_free().
 * Returns COFFER_OK, COFFER_EPERM (handle lacks COFFER_ACCESS), COFFER_EINVAL (malformed version
 * id), COFFER_ENOTFOUND (no such secret or version, or a destroyed one), COFFER_EDISABLED (the
 * version asked for by id is disabled), COFFER_EINTEGRITY (the stored ciphertext
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
 * version of the secret. A disabled version can be destroyed too.
 * Returns COFFER_OK, COFFER_EPERM, COFFER_EINVAL (malformed version id), COFFER_ENOTFOUND (no
 * such version, or it is destroyed already), COFFER_EINTEGRITY (the secret was edited outside
 * coffer: nothing is destroyed), COFFER_EMISUSE (backend without destroy), COFFER_EBUSY,
 * COFFER_EFULL, COFFER_EIO, COFFER_ENOMEM.
 */
COFFER_API int coffer_destroy(coffer_secret *sec, const char *version,
                              char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;

/*
 * Disable a version: its value is kept but every access of it fails with COFFER_EDISABLED
 * ("version V is disabled") until coffer_enable(); "latest" then names the newest version still
 * enabled. `version` is an id or "latest" (the newest enabled version). Enable takes an id only
 * and undoes a disable (a destroyed version stays destroyed). Disabling a disabled version, or
 * enabling an enabled one, changes nothing and succeeds. The real id is written to version_out
 * when not NULL. Needs COFFER_PUT. As coffer_destroy(), every version of the secret is checked
 * against its MAC and MAC'd again in the same transaction.
 * Returns COFFER_OK, COFFER_EPERM, COFFER_EINVAL (malformed id, or "latest" for enable),
 * COFFER_ENOTFOUND (no such version, or it is destroyed), COFFER_EINTEGRITY, COFFER_EMISUSE,
 * COFFER_EBUSY, COFFER_EFULL, COFFER_EIO, COFFER_ENOMEM.
 */
COFFER_API int coffer_disable(coffer_secret *sec, const char *version,
                              char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;
COFFER_API int coffer_enable(coffer_secret *sec, const char *version,
                             char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;

/*
 * Labels (aliases). "latest" is computed (the newest enabled version) and "previous" automatic
 * (the version that was latest before the newest put). Custom labels name one version of the
 * secret each and move atomically: 1-63 characters of A-Z a-z 0-9 . _ -, a letter first (so a
 * label never reads as a version id), not "latest" or "previous" (any case). Everywhere a
 * version is asked for (access, destroy, disable, enable), a label may be given instead, and
 * is resolved in that call's transaction (an access reads the version the label named when it
 * looked). Labels are covered by the secret's MAC: a label edited outside coffer is an
 * integrity error. A secret holds at most 64 custom labels.
 *
 * coffer_label_set: point `label` at `version` (an id, "latest", "previous" or another label),
 * creating or moving it; the version must exist and not be destroyed. The id is written to
 * version_out when not NULL. coffer_label_delete removes one. Both need COFFER_PUT.
 * Return COFFER_OK, COFFER_EPERM, COFFER_EINVAL (bad label or version), COFFER_ENOTFOUND (no such
 * secret, version or label; a destroyed version), COFFER_EBUSY (64 labels already, or busy),
 * COFFER_EINTEGRITY, COFFER_EMISUSE, COFFER_EIO, COFFER_ENOMEM.
 *
 * coffer_list_labels: call cb with ("latest", id) when there is one, ("previous", id) when
 * there is one, then each custom label in byte order with the id it names. Needs COFFER_ACCESS.
 * A non-zero return from cb stops the listing and is returned.
 */
COFFER_API int coffer_label_set(coffer_secret *sec, const char *label, const char *version,
                                char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;
COFFER_API int coffer_label_delete(coffer_secret *sec, const char *label) COFFER_MUST_CHECK;
COFFER_API int coffer_list_labels(coffer_secret *sec,
                                  int (*cb)(void *ctx, const char *label, const char *version),
                                  void *ctx);

/*
 * Delete a secret with a recovery window: from now on it is hidden from listings and refuses
 * access, put, labels and state changes with COFFER_EDELETED ("scheduled for deletion"), until
 * coffer_restore() brings it back as it was, or, once `recovery_days` (1-30; the CLI's default
 * is COFFER_RECOVERY_DAYS) have passed, it is destroyed for good: its versions, labels and
 * request ids deleted, its name free again. recovery_days 0 destroys it for good now. The time
 * it goes for good (Unix ms) is written to *purge_at_ms when not NULL. Deleting a deleted
 * secret again sets its new time. Needs COFFER_PUT. The deletion is covered by the secret's
 * MAC (clearing it in the database is an integrity error).
 * Returns COFFER_OK, COFFER_EPERM, COFFER_EINVAL (recovery_days over 30), COFFER_ENOTFOUND,
 * COFFER_EINTEGRITY, COFFER_EMISUSE, COFFER_EBUSY, COFFER_EFULL, COFFER_EIO, COFFER_ENOMEM.
 */
#define COFFER_RECOVERY_DAYS     7
#define COFFER_RECOVERY_DAYS_MAX 30
COFFER_API int coffer_delete(coffer_secret *sec, unsigned recovery_days,
                             int64_t *purge_at_ms) COFFER_MUST_CHECK;

/* Bring back a secret scheduled for deletion, as it was. COFFER_EINVAL if it is not scheduled,
 * COFFER_ENOTFOUND if it does not exist or its window has passed. Needs COFFER_PUT. */
COFFER_API int coffer_restore(coffer_secret *sec) COFFER_MUST_CHECK;

/* Destroy for good every secret whose recovery window has passed (coffer_open() does it too,
 * and `coffer serve` every minute). *count (when not NULL) receives how many went. */
COFFER_API int coffer_purge(coffer_store *st, size_t *count) COFFER_MUST_CHECK;

/* What coffer_describe() gives. */
#define COFFER_DESCRIPTION_MAX 1024 /* bytes of a description */
#define COFFER_TAGS_MAX        32   /* tags per secret */
typedef struct coffer_secret_info {
	char description[COFFER_DESCRIPTION_MAX + 1];
	char tags[4097];         /* "KEY=VALUE" lines, each ending in '\n', keys in order */
	int64_t created_unix_ms; /* the secret's first put */
	int64_t updated_unix_ms; /* its last change: put, state, label, description, tags */
	char current_version[COFFER_VERSION_MAX];  /* latest: the newest enabled ("" if none) */
	char last_version[COFFER_VERSION_MAX];     /* the largest id it ever had */
	char previous_version[COFFER_VERSION_MAX]; /* "" if none */
	uint64_t max_versions;                     /* 0: no limit */
	int64_t purge_at_unix_ms; /* scheduled for deletion: when it goes for good; else 0 */
	size_t nlabels;           /* custom labels (coffer_list_labels lists them) */
} coffer_secret_info;

/*
 * The secret's metadata, all read in one snapshot and checked against its MAC (description and
 * tags are not MAC'd). Works on a secret scheduled for deletion (so it can be seen). Needs
 * COFFER_ACCESS. Returns COFFER_OK, COFFER_EPERM, COFFER_ENOTFOUND, COFFER_EINTEGRITY,
 * COFFER_EBUSY, COFFER_EIO, COFFER_ENOMEM.
 */
COFFER_API int coffer_describe(coffer_secret *sec, coffer_secret_info *out) COFFER_MUST_CHECK;

/*
 * Set the description (NULL: leave it; at most COFFER_DESCRIPTION_MAX bytes of printable
 * UTF-8 without control characters) and the tags (NULL: leave them; else all of them: "KEY=VALUE"
 * separated by '\n', at most COFFER_TAGS_MAX; a key 1-63 of A-Z a-z 0-9 . _ -, a value 0-255
 * printable bytes without '\n'; "" removes every tag). Needs COFFER_PUT. Returns COFFER_OK,
 * COFFER_EPERM, COFFER_EINVAL, COFFER_ENOTFOUND, COFFER_EDELETED, COFFER_EBUSY, COFFER_EIO.
 */
COFFER_API int coffer_set_info(coffer_secret *sec, const char *description,
                               const char *tags) COFFER_MUST_CHECK;

/*
 * One page of secret names in byte order, with each one's number of enabled versions: those
 * that begin with `prefix` (NULL or "": all), not scheduled for deletion, from where
 * `page_token` (NULL or "": the first page; else the next_token of the previous page) says, at
 * most page_size (1..1000) of them. next_token receives the token of the next page, "" when this
 * was the last. Memory stays bounded by the page whatever the number of secrets; pages see the
 * store as it is when each is read (a secret made meanwhile shows up if its name comes after).
 * The token is opaque (today the last name of the page, encoded).
 * Returns COFFER_OK, cb's non-zero value, COFFER_EINVAL (bad prefix, size or token),
 * COFFER_EBUSY, COFFER_EIO, COFFER_ENOMEM.
 */
#define COFFER_PAGE_TOKEN_MAX 520
#define COFFER_PAGE_SIZE_MAX  1000
COFFER_API int coffer_list_page(coffer_store *st, const char *prefix, size_t page_size,
                                const char *page_token,
                                int (*cb)(void *ctx, const char *name, size_t nversions), void *ctx,
                                char next_token[COFFER_PAGE_TOKEN_MAX]);

/*
 * The audit log (docs/lifecycle.md). Puts and every lifecycle change are recorded by the library
 * in their own transaction (reads too with COFFER_OPEN_AUDIT_READS); failures and refusals in
 * one of their own. Entries are chained by MACs under a key sealed by the master key.
 *
 * coffer_audit_append: record one entry for an embedder (the server records each request so,
 * before it answers): principal (NULL: the handle's), action (1-32 printable bytes), secret
 * and version (NULL or printable), outcome (a coffer_rc), request_id (only its keyed hash is
 * kept). Never pass a value.
 * coffer_audit_list: each entry at or after since_unix_ms (0: all), of one secret (NULL: all),
 * in the order written. The strings live during the call only.
 * coffer_audit_verify: check every chain: numbering and MACs. COFFER_OK with *entries set, or
 * COFFER_EINTEGRITY with *first_bad the id of the first broken entry and errbuf saying how.
 * (Deleting the newest entries of a chain cannot be told from a chain that ended there.)
 */
typedef struct coffer_audit_entry {
	uint64_t id;
	const char *chain;
	uint64_t seq;
	int64_t time_unix_ms;
	const char *principal;
	const char *action;
	const char *secret;
	const char *version;
	int outcome;
	const char *error;
	const char *request_hash; /* hex, "" if none */
} coffer_audit_entry;

COFFER_API int coffer_audit_append(coffer_store *st, const char *principal, const char *action,
                                   const char *secret, const char *version, int outcome,
                                   const void *request_id, size_t request_id_len) COFFER_MUST_CHECK;
/*
 * coffer_audit_append_batch: n entries (fields as for coffer_audit_append) in one durable
 * transaction, in order: all of them or none (coffer serve group-commits its requests' entries
 * so, before it sends their answers). COFFER_EINVAL/COFFER_EMISUSE for a bad record: nothing
 * written. n 0: COFFER_OK.
 */
typedef struct coffer_audit_record {
	const char *principal; /* NULL: the handle's */
	const char *action;
	const char *secret;  /* NULL: none */
	const char *version; /* NULL: none */
	int outcome;
	const void *request_id;
	size_t request_id_len;
} coffer_audit_record;

COFFER_API int coffer_audit_append_batch(coffer_store *st, const coffer_audit_record *recs,
                                         size_t n) COFFER_MUST_CHECK;
COFFER_API int coffer_audit_list(coffer_store *st, int64_t since_unix_ms, const char *secret,
                                 int (*cb)(void *ctx, const coffer_audit_entry *e), void *ctx);
COFFER_API int coffer_audit_verify(coffer_store *st, uint64_t *entries, uint64_t *first_bad,
                                   char *errbuf, size_t errlen) COFFER_MUST_CHECK;

/* Version states. */
#define COFFER_STATE_ENABLED   0
#define COFFER_STATE_DESTROYED 1
#define COFFER_STATE_DISABLED  2

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
 * Copy every secret of src into dst (docs/operations.md, "Move to PostgreSQL"): each version
 * with its id (destroyed ones keep theirs), state and time, the labels, description, tags,
 * retention and scheduled deletion, then the declarations and the audit log (each entry as it
 * was, chained and MAC'd anew in dst). Values are re-sealed under dst's newest data key and
 * identity, in locked memory only, one secret at a time. Each secret goes into dst in one
 * transaction: an interrupted copy is resumed by running it again, which verifies each secret
 * dst already holds (every field and value) and skips it. Request ids are not copied. Stop
 * writers to src first: a secret that changes while it is read is COFFER_EBUSY.
 * cb (may be NULL) is called after each secret: done of total, skipped = 1 if it was verified
 * rather than written; a non-zero return stops the copy with that code.
 * Returns COFFER_OK, COFFER_ECONFLICT (dst holds a secret or audit entries that differ),
 * COFFER_EBUSY, COFFER_EINTEGRITY (src fails its MACs: nothing of that secret is written),
 * COFFER_EINVAL (src and dst are the same store), COFFER_EMISUSE, COFFER_EIO, COFFER_ENOMEM;
 * coffer_errmsg(dst) says why.
 */
typedef int (*coffer_copy_progress)(void *ctx, const char *secret, size_t done, size_t total,
                                    int skipped);
typedef struct coffer_copy_stats {
	uint64_t secrets_copied;
	uint64_t secrets_verified; /* held by dst already (an earlier run), verified the same */
	uint64_t audit_copied;
} coffer_copy_stats;
COFFER_API int coffer_copy(coffer_store *src, coffer_store *dst, coffer_copy_progress cb, void *ctx,
                           coffer_copy_stats *stats) COFFER_MUST_CHECK;

/*
 * Backups (docs/operations.md). coffer_backup writes a consistent image of the whole store as
 * stored (values and keys sealed, never a plaintext value) into FILE, taken in one read snapshot
 * while other handles and processes go on writing: written to FILE.tmp, fsync'd, renamed, mode
 * 0600, with a BLAKE2b checksum in its header. The master key is not in it: keep it apart.
 * SQLite stores only (PostgreSQL: COFFER_EMISUSE; use pg_dump, or coffer_copy into a folder).
 * Returns COFFER_OK, COFFER_EMISUSE, COFFER_EINVAL, COFFER_EBUSY, COFFER_EFULL, COFFER_EIO.
 */
COFFER_API int coffer_backup(coffer_store *st, const char *file) COFFER_MUST_CHECK;

/*
 * Make the store at `location` (a folder) from a backup: checks the checksum first (a damaged
 * file is COFFER_ECORRUPT and nothing is written), refuses a location that holds a store
 * (COFFER_EPERM), checks the image is a store, puts it in place atomically. The restored store
 * opens with the master key of the store backed up. Needs no key. Returns COFFER_OK,
 * COFFER_ECORRUPT, COFFER_EPERM, COFFER_ENOTFOUND (no such file), COFFER_EMISUSE (a PostgreSQL
 * location: restore into a folder, then coffer_copy), COFFER_EINVAL, COFFER_EBUSY (a restore
 * into the same folder runs or was interrupted), COFFER_EFULL, COFFER_EIO.
 */
COFFER_API int coffer_restore_backup(const char *file, const char *location, char *errbuf,
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
