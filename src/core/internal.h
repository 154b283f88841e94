/* internal.h -- the core's private structures. Not API. */
#ifndef COFFER_CORE_INTERNAL_H
#define COFFER_CORE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "coffer.h"
#include "crypto/crypto.h"
#include "store/store.h"

#define CORE_ERRMSG_MAX  512
#define CORE_KEYRING_MAX 64 /* data keys in a store's keyring, and in a handle's */

/* What a handle says once its master key no longer opens the keyring. */
#define CORE_STALE_MASTER                                                                          \
	"the master key of this store changed (another process ran 'coffer rekey'); reopen the "   \
	"store with the new master key"

/* The metadata key (src/core/meta.c) is missing or does not open: edits outside coffer. */
#define CORE_META_KEY_GONE                                                                         \
	"this store's metadata key is missing, but its keyring says the store had one (deleted "   \
	"outside coffer?)"
#define CORE_META_KEY_BAD                                                                          \
	"this store's metadata key does not open with the master key that opens its keyring "      \
	"(edited outside coffer?)"
#define CORE_MAC_FORMAT 1 /* the first byte of every metadata MAC */

/* What the last keyring load saw (coffer_store.keyring_flags). */
#define CORE_KR_V2   0x1u /* a data key sealed in the form that says "there is a metadata key" */
#define CORE_KR_META 0x2u /* a metadata key */

typedef struct core_data_key {
	uint32_t id;
	crypto_key key;
} core_data_key;

/* One cached sealed row: the newest version of a secret, trusted while the backend's
 * generation() still equals `gen`. Holding sealed (not plain) values keeps the cache as safe
 * as the store itself. */
typedef struct core_cache_entry {
	char *name; /* NULL: empty slot */
	size_t name_len;
	uint64_t gen;
	uint64_t version;
	uint32_t key_id;
	uint8_t *sealed;
	size_t sealed_len;
} core_cache_entry;

#define CORE_CACHE_SLOTS       1024        /* power of two */
#define CORE_CACHE_MAX_ENTRIES 768         /* beyond this, the cache is emptied */
#define CORE_CACHE_MAX_BYTES   (32u << 20) /* ceiling of sealed bytes held */

typedef struct core_cache {
	core_cache_entry slots[CORE_CACHE_SLOTS];
	size_t entries;
	size_t bytes;
} core_cache;

/* audit.c: what a pending audit entry is made of (see core_audit_pending). */
typedef struct audit_fill {
	coffer_store *st;
	const char *principal;
	const char *action;
	const char *secret;
	const char *version;
	const uint64_t *done;
	const store_put *puts;
	int outcome;
	const char *error;
	const uint8_t *rid;
} audit_fill;

struct coffer_store {
	pthread_mutex_t mu;
	audit_fill audit_fill; /* the entries the next write appends */
	char principal[129];   /* who this handle acts for, in the audit log */
	char audit_chain[STORE_AUDIT_CHAIN_MAX + 1]; /* this handle's chain (PostgreSQL) */
	int audit_reads;                             /* COFFER_OPEN_AUDIT_READS */
	const store_ops *ops;
	store *be;
	uint8_t store_id[STORE_ID_LEN];
	core_data_key keys[CORE_KEYRING_MAX]; /* a cache of the store's keyring, by id */
	size_t nkeys;
	size_t newest;     /* index in keys of the largest id (values are sealed with the newest
	                      key the store holds, read in the put's own transaction) */
	crypto_key master; /* sodium_mprotect_noaccess except while rotating or loading keys */
	crypto_key meta;   /* the key of the metadata MACs; set once the store is open */
	unsigned keyring_flags; /* CORE_KR_* */
	size_t max_value;
	unsigned created;
	core_cache *cache;
	void *kdf_ref;  /* the shared passphrase-derived key this handle holds, or NULL */
	char *key_file; /* the key file the master key was read from, or NULL (not from a file) */
	char errmsg[CORE_ERRMSG_MAX];
};

struct coffer_secret {
	coffer_store *st;
	unsigned perms;
	size_t name_len;
	char name[]; /* NUL-terminated */
};

struct coffer_value {
	size_t len;
	char version[COFFER_VERSION_MAX];
	unsigned char data[]; /* len bytes + a NUL */
};

/* audit.c */
void core_audit_init(coffer_store *st, const char *principal, unsigned flags);
/* The next write transaction of the handle appends n entries (one per put when puts is not
 * NULL; the version is *done, or puts[i].version, or `version`). Clear after the call. */
void core_audit_pending(coffer_store *st, const char *action, const char *secret,
                        const char *version, const uint64_t *done, const store_put *puts, size_t n,
                        const uint8_t *rid);
void core_audit_clear(coffer_store *st);
/* One entry in a transaction of its own (a refusal, a failure, a read). */
int core_audit_one(coffer_store *st, const char *principal, const char *action, const char *secret,
                   const char *version, int outcome, const uint8_t *rid);

/* validate.c */
int core_version_parse(const char *s, uint64_t *out); /* "latest" -> 0 */
/* A label name: 1-63 of A-Z a-z 0-9 . _ -, a letter first (never a version id), not "latest"
 * in any case. 1 if it is one. */
int core_label_syntax(const char *s);
/* A version reference: an id (*want), "latest" (*want 0) or a label (*label = s, *want 0). */
int core_ref_parse(const char *s, uint64_t *want, const char **label);
void core_version_format(uint64_t v, char out[COFFER_VERSION_MAX]);

/* store.c */
void core_set_err(coffer_store *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void core_set_backend_err(coffer_store *st, int rc);
const crypto_key *core_key_by_id(const coffer_store *st, uint32_t id);
/* Load the keyring as the store holds it now: keys the handle holds are kept, new ones are opened
 * with master, keys pruned from the store are dropped. On failure nothing changes; COFFER_EKEY
 * when master does not open a key. */
int core_keyring_load(coffer_store *st, const crypto_key *master, char *err, size_t errlen);
/* Take ownership of data key `id` (just made, or opened from the store's newest): kept in the
 * handle's keyring, evicting the smallest id other than `keep` if it is full. */
const core_data_key *core_key_adopt(coffer_store *st, uint32_t id, crypto_key *key, uint32_t keep);

/* meta.c: metadata MACs. */
/* Check what get() read for an access of `want` (0: latest): COFFER_OK (the row may be opened),
 * COFFER_ENOTFOUND (truly absent or destroyed; no message set) or COFFER_EINTEGRITY (message
 * set). */
int core_meta_read(coffer_store *st, const char *name, size_t len, uint64_t want,
                   const store_meta *m, const store_row *row);
/* put: check io->before, fill io's MACs. COFFER_EINTEGRITY (message set) if before fails. */
int core_meta_put(coffer_store *st, const char *name, size_t len, store_seal_io *io);
/* destroy, disable, enable: the store_retag_fn, with this ctx. */
typedef struct core_destroy_ctx {
	coffer_store *st;
	uint64_t want;     /* 0: latest, resolved in the transaction */
	uint64_t done;     /* the version changed */
	int to;            /* COFFER_STATE_*: what the version becomes */
	int was;           /* out: its state before (a refusal: what it is; -2: no such label) */
	const char *label; /* not NULL: the version this label names, in the transaction */
} core_destroy_ctx;
/* Label moves: the store_retag_fn, with this ctx. */
typedef struct core_label_ctx {
	coffer_store *st;
	const char *label;
	int remove;       /* delete the label */
	uint64_t want;    /* the version to point at (0: latest) ... */
	const char *from; /* ... or the version another label (or previous) names */
	uint64_t done;    /* out: the version it points at now */
	int missing;      /* out: 1 no such label / version, 2 destroyed */
	int full;         /* out: STORE_LABELS_MAX labels already */
} core_label_ctx;
int core_meta_label(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                    size_t n);
/* The version a label (custom, or "previous") names in m, 0 if none; the label on a version. */
uint64_t core_label_find(const store_meta *m, const char *label);
const char *core_label_of(const store_meta *m, uint64_t version);
/* delete / restore: the store_retag_fn, with this ctx. */
typedef struct core_delete_ctx {
	coffer_store *st;
	uint64_t purge_ms; /* delete: when it goes for good; 0: restore */
	uint64_t now_ms;
	int not_deleted; /* out: restore of a secret not scheduled */
	int too_late;    /* out: restore after its window */
} core_delete_ctx;
int core_meta_delete(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                     size_t n);
/* set_max_versions: the store_retag_fn, with this ctx (max_versions is MAC'd). */
typedef struct core_setmax_ctx {
	coffer_store *st;
	uint64_t max;
} core_setmax_ctx;
int core_meta_setmax(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                     size_t n);
/* Unix milliseconds; tests may set the hook. */
int64_t core_now_ms(void);
extern int64_t (*core_clock_hook)(void);
/* An access by label: the metadata's MAC and the labels read with it. */
int core_meta_labels_read(coffer_store *st, const char *name, size_t len, const store_meta *m);
int core_meta_destroy(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                      size_t n);
/* Retention after a put (store_seal_io.retain), with a coffer_store as ctx: destroys the oldest
 * versions still holding a value beyond m->max_versions, in the put's transaction. */
int core_meta_retain(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                     size_t n);
/* Request ids (idempotent puts): the id's keyed hash, and the keyed hash of a value put with
 * it, both under the metadata key (never stored in clear). */
void core_request_hash(const coffer_store *st, const char *name, size_t len, const void *rid,
                       size_t rid_len, uint8_t out[STORE_RID_LEN]);
void core_value_hash(const coffer_store *st, const uint8_t rid_hash[STORE_RID_LEN],
                     const void *value, size_t vlen, uint8_t out[STORE_RID_LEN]);
/* list_versions: row `expect` (1, 2, ...) of a listing and the metadata of its snapshot; the
 * secret's MAC is checked whenever the metadata differs from *checked, which then holds it
 * (start with mac_len 0). list_end: after the last row, with `next` the version that would have
 * come next. COFFER_EINTEGRITY (message set) on a mismatch. */
int core_meta_list(coffer_store *st, const char *name, size_t len, const store_meta *m,
                   store_meta *checked, const store_row *row, uint64_t expect);
int core_meta_list_end(coffer_store *st, const char *name, size_t len, const store_meta *checked,
                       uint64_t next);
/* At open, after the keyring is loaded: the metadata key is held, or is made now for a store
 * from before MACs, or the store was edited (COFFER_EINTEGRITY). */
int core_meta_ready(coffer_store *st, const crypto_key *master, char *err, size_t errlen);

/* copy.c helpers */
int core_meta_check_all(coffer_store *st, const char *name, size_t len, const store_meta *m,
                        const store_row *rows, size_t n);
void core_meta_sign_all(coffer_store *st, const char *name, size_t len, store_meta *m,
                        store_row *rows, size_t n);
typedef struct core_audit_copy {
	coffer_store *st;       /* the target */
	const store_audit *src; /* the entries copied: entry i of a batch is src[i] */
} core_audit_copy;
int core_audit_copy_fill(void *ctx, size_t i, store_audit *e);

/* rotate.c */
/* A data key by id; if unknown, reload the keyring (another process may have rotated).
 * COFFER_EINTEGRITY if the store does not hold it; COFFER_EKEY (message set) if the master key
 * went stale. */
int core_key_find(coffer_store *st, uint32_t id, const crypto_key **out);
/* The store's newest key as read in a write transaction (put, re-encrypt batch): the handle's
 * copy, or opened now with the master key. Never evicts `keep`. */
int core_newest_key(coffer_store *st, const store_key *newest, uint32_t keep,
                    const core_data_key **out);

/* kdf.c: passphrase-derived master keys, derived once per process while in use. */
#define CORE_PASSPHRASE_MIN 12 /* characters, for a new passphrase */
#define CORE_PASSPHRASE_SHORT                                                                      \
	"the passphrase is too short: use at least %d characters (a copy of the store lets "       \
	"anyone try short ones offline)"
size_t core_utf8_chars(const char *s, size_t n);
int core_kdf_derive(const char *pass, size_t len, const uint8_t salt[STORE_SALT_LEN], uint64_t ops,
                    uint64_t mem, crypto_key *out, void **ref);
void core_kdf_release(void *ref);
extern unsigned long core_kdf_derivations;

/* cache.c */
core_cache *core_cache_new(void);
void core_cache_free(core_cache *c);
const core_cache_entry *core_cache_get(core_cache *c, const char *name, size_t len, uint64_t gen);
/* Count an access answered from a cache (hit) or from the store (miss): coffer_cache_stats(). */
void core_cache_count(int hit);
/* Takes ownership of row->sealed (sets it to NULL). */
void core_cache_put(core_cache *c, const char *name, size_t len, store_row *row);

/* Test hook: called with every value buffer just before it is freed (after wiping). */
extern void (*core_value_free_hook)(const void *data, size_t len);

/* Test hook of coffer_reencrypt(): phase 0 once the pass knows its keys (no transaction open:
 * a test may change the store through another handle there), phase 1 before each row is
 * re-sealed. A non-zero return stops the pass with COFFER_EIO. */
extern int (*core_reencrypt_hook)(int phase);

#endif
