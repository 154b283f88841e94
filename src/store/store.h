/*
 * store.h -- the storage interface: one struct of function pointers per backend.
 *
 * A backend stores opaque sealed blobs; it never sees a plaintext value or a key. The core
 * serializes all calls on one handle (a backend need not be thread-safe), validates names before
 * they reach a backend (names are 1..255 bytes of [A-Za-z0-9._-]), and owns the crypto.
 *
 * Adding a backend: one file defining a `const store_ops`, plus one row in store_registry.c.
 * Return values are coffer_rc codes; on failure the backend puts a detail message (never a
 * value) into what ops->errmsg() returns.
 */
#ifndef COFFER_STORE_H
#define COFFER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "coffer.h"

/* FNV-1a of a secret name: the one hash of names for in-memory tables (the core's cache, a put
 * batch's table of secrets). Not for anything stored or shared between processes. */
static inline uint64_t store_name_hash(const char *name, size_t len)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
	return h;
}

typedef struct store store; /* each backend defines its own struct and casts */

#define STORE_ID_LEN         16
#define STORE_SALT_LEN       16
#define STORE_SEALED_KEY_MAX 128
#define STORE_SCHEMA_VERSION                                                                       \
	4 /* 2: metadata MACs (docs/internals.md); 3: lifecycle; 4: declarations */
#define STORE_RID_LEN     32                 /* a request id as stored: its keyed hash */
#define STORE_RID_KEEP_MS (24 * 3600 * 1000) /* request ids are kept at least this long */
#define STORE_LABEL_MAX   63                 /* bytes in a label name */
#define STORE_LABELS_MAX  64                 /* custom labels per secret */
#define STORE_DIGEST_LEN  32                 /* a secret's label digest */
#define STORE_MAC_LEN     33 /* a metadata MAC as stored: format byte | 32-byte tag */

/* One audit entry (docs/lifecycle.md, "Audit log"). Strings are NUL-terminated, cut to size. */
#define STORE_AUDIT_CHAIN_MAX 32
typedef struct store_audit {
	uint64_t id; /* audit_list: the row id (insertion order) */
	char chain[STORE_AUDIT_CHAIN_MAX +
	           1]; /* "" on SQLite (one chain); PostgreSQL: the handle's */
	uint64_t seq;  /* 1, 2, ... within its chain */
	int64_t ts_ms;
	char principal[129];
	char action[33];
	char secret[COFFER_NAME_MAX + 1];
	char version[65]; /* a version id or label, "" if none */
	int outcome;      /* a coffer_rc */
	char error[257];
	char rid[2 * STORE_RID_LEN + 1]; /* hex of the request id's keyed hash, "" if none */
	uint8_t prev[STORE_MAC_LEN];     /* the MAC of the entry before in the chain */
	size_t prev_len;                 /* 0: the first of its chain */
	uint8_t mac[STORE_MAC_LEN];
	size_t mac_len;
} store_audit;

/* Fill entry i's content and MAC; the backend has set chain, seq and prev (read in the same
 * write transaction, after the chain's last entry, so concurrent writers of one chain take
 * turns). */
typedef int (*store_audit_fn)(void *ctx, size_t i, store_audit *e);

/* What describe shows beside the metadata (not MAC'd). */
#define STORE_DESCRIPTION_MAX 1024
#define STORE_TAGS_MAX        4096
typedef struct store_info {
	char description[STORE_DESCRIPTION_MAX + 1];
	char tags[STORE_TAGS_MAX + 1];
	int64_t created_ms;
	int64_t updated_ms;
	uint64_t max_versions;
} store_info;

/* One custom label of a secret. */
typedef struct store_label {
	char name[STORE_LABEL_MAX + 1];
	uint64_t version;
} store_label;
#define STORE_META_KEY_ID 0 /* keys_load / keys_reseal: the metadata key, not a data key */

/* The header of a store, written once, atomically, by whichever process creates the store. */
typedef struct store_boot {
	uint8_t store_id[STORE_ID_LEN];
	uint8_t kdf_salt[STORE_SALT_LEN]; /* Argon2id salt for passphrase-derived master keys */
	uint64_t kdf_opslimit;
	uint64_t kdf_memlimit;
	uint32_t first_key_id;                    /* id of the first data key */
	uint8_t sealed_key[STORE_SEALED_KEY_MAX]; /* that data key, sealed under the master key */
	size_t sealed_key_len; /* read back: 0 once that key was pruned (keys_prune) */
	uint8_t sealed_meta_key[STORE_SEALED_KEY_MAX]; /* the metadata key, sealed under the master
	                                                  key (written with the header) */
	size_t sealed_meta_key_len;                    /* read back: 0 if the store has none */
} store_boot;

/* How a passphrase becomes a master key: Argon2id salt and limits, kept in the header. */
typedef struct store_kdf {
	uint8_t salt[STORE_SALT_LEN];
	uint64_t opslimit;
	uint64_t memlimit;
} store_kdf;

/*
 * A secret's metadata as stored, and its MAC (made and checked by the core only; a backend
 * stores the bytes). mac_len 0: the row holds no MAC (a secret that is being created, or a store
 * from before MACs).
 */
typedef struct store_meta {
	uint64_t last_version; /* the largest version id ever assigned (0: a new secret) */
	uint64_t latest;       /* the newest enabled version, 0 if none */
	uint64_t epoch;        /* state changes so far: bound into every version's MAC */
	uint8_t mac[STORE_MAC_LEN];
	size_t mac_len;
	uint64_t rows_max;     /* get(), put(): the largest version id of any row now (not MAC'd) */
	uint64_t max_versions; /* put(), destroy(): retention, 0 for none (not MAC'd) */
	/* MAC'd (schema 3): the version that was latest before the newest put (0: none), and the
	 * digest of the secret's custom labels (ldigest_len 0: it has none). Read and written
	 * wherever last_version, latest and epoch are; put() writes previous, destroy() ldigest
	 * and purge_ms. */
	uint64_t previous;
	uint8_t ldigest[STORE_DIGEST_LEN];
	size_t ldigest_len;
	uint64_t purge_ms; /* MAC'd: scheduled for deletion, for good from this time (0: not) */
	/* destroy() and labels_get() only: the custom labels, sorted by name, in an array of
	 * STORE_LABELS_MAX + 1 the backend allocates (and frees). destroy()'s cb may change them
	 * and sets labels_changed; the backend then writes them all back. */
	store_label *labels;
	size_t nlabels;
	int labels_changed;
} store_meta;

/* One version row. */
typedef struct store_row {
	uint64_t version;
	uint32_t key_id;
	int state;          /* COFFER_STATE_* */
	int64_t created_ms; /* Unix milliseconds */
	uint8_t *sealed;    /* get(): malloc'd, the caller frees; list_versions(): NULL */
	size_t sealed_len;
	uint64_t gen; /* get(): the store generation seen in the same snapshot as the row */
	uint8_t mac[STORE_MAC_LEN]; /* the row's MAC over (secret, version, state, epoch) */
	size_t mac_len;             /* 0: none stored */
} store_row;

/* One item of a put batch: the backend assigns `version`. */
typedef struct store_put {
	const char *name;
	size_t name_len;
	const uint8_t *rid; /* NULL, or the request id's keyed hash (STORE_RID_LEN bytes) */
	uint64_t version;   /* out */
	int replayed;       /* out: the request id was done before; version is its version */
} store_put;

/* A data key as stored: its id and its sealed form (under the master key). As the newest key of
 * a put or re-encrypt transaction, id 0 means the store has no key at all (no header yet). */
typedef struct store_key {
	uint32_t id;
	const uint8_t *sealed;
	size_t len;
} store_key;

/*
 * What put() hands seal() for one item, inside the write transaction, once per item in order,
 * after the item's version is assigned, and what seal() hands back. The core checks `before`
 * (the secret's metadata as this transaction read it before this item; a new secret has
 * last_version 0) against its MAC, seals the value with `newest`, the store's newest data key as
 * read in this same transaction (the version is part of the authenticated data), and makes the
 * MACs of what the item leaves: the secret with last_version = latest = version, and the version
 * row. The backend stores all of it with the row, and frees `sealed`.
 */
typedef struct store_seal_io {
	uint64_t version;        /* in */
	const store_key *newest; /* in */
	store_meta before;       /* in */
	uint32_t key_id;         /* out */
	uint8_t *sealed;         /* out: malloc'd */
	size_t sealed_len;
	uint8_t secret_mac[STORE_MAC_LEN]; /* out: the secret's new MAC */
	uint8_t row_mac[STORE_MAC_LEN];    /* out: the new version row's MAC */
	size_t mac_len;                    /* out: STORE_MAC_LEN (0: none, for backend tests) */
	uint64_t previous;                 /* out: the secret's new previous (before.latest) */
	/* Request ids (items with rid): what the store holds for it, read after the secret was
	 * locked (rid_version 0: nothing), and what to store with it. */
	uint64_t rid_version;             /* in */
	uint8_t rid_vhash[STORE_RID_LEN]; /* in: the value's keyed hash stored with it */
	uint8_t vhash[STORE_RID_LEN];     /* out: this value's keyed hash */
	int replay;                       /* out: 1 = answer rid_version, write nothing */
	/* Retention: when seal sets retain, once the row and the secret's metadata are written the
	 * backend reads the secret and all its rows again, hands them to retain (as destroy()
	 * does) and writes back what it sets, in the same transaction. */
	int (*retain)(void *ctx, const char *name, size_t name_len, struct store_meta *meta,
	              struct store_row *rows, size_t n); /* out */
	void *retain_ctx;                                /* out */
} store_seal_io;

typedef int (*store_seal_fn)(void *ctx, size_t i, store_seal_io *io);

/*
 * destroy() and meta_init(): one secret's metadata and every one of its version rows (version,
 * state, mac; ascending; no ciphertext), read in the write transaction. The core checks them
 * (destroy) and sets what the secret becomes: each rows[i].state and .mac, and meta->latest,
 * ->epoch and ->mac. The backend then writes those back.
 */
typedef int (*store_retag_fn)(void *ctx, const char *name, size_t name_len, store_meta *meta,
                              store_row *rows, size_t n);

/* keys_add: write the new data key `id` sealed (at most STORE_SEALED_KEY_MAX bytes) into out;
 * nkeys is the number of keys the keyring holds now. */
typedef int (*store_key_make_fn)(void *ctx, uint32_t id, size_t nkeys, uint8_t *out,
                                 size_t *out_len);

/* reseal_batch: re-seal one row with `newest` (read in the batch's transaction); returns a
 * malloc'd blob and its key id. */
typedef int (*store_reseal_fn)(void *ctx, const char *name, size_t name_len, const store_row *row,
                               const store_key *newest, uint32_t *new_key_id, uint8_t **sealed,
                               size_t *sealed_len);

/* Rows per transaction of the re-encrypt pass. */
#define STORE_RESEAL_BATCH 256

/* One declaration: a service declared a secret, with the actions it asked for (COFFER_DECL_*;
 * 0: the secret alone, no policy yet). */
typedef struct store_decl {
	const char *service;
	const char *secret;
	unsigned actions;
	int64_t declared_ms; /* decl_list: when it was first declared */
} store_decl;

typedef int (*store_decl_cb)(void *ctx, const store_decl *d);

typedef int (*store_key_cb)(void *ctx, uint32_t key_id, const uint8_t *sealed, size_t len);
typedef int (*store_name_cb)(void *ctx, const char *name, size_t nversions);
/* list_versions: each row with its secret's metadata read in the same snapshot. */
typedef int (*store_row_cb)(void *ctx, const store_meta *meta, const store_row *row);
/* keys_reseal, meta_init: write `sealed` re-sealed (at most STORE_SEALED_KEY_MAX bytes) into
 * out. */
typedef int (*store_rekey_fn)(void *ctx, uint32_t key_id, const uint8_t *sealed, size_t len,
                              uint8_t *out, size_t *out_len);

#define STORE_OPEN_CREATE 0x1u
#define STORE_OPEN_AUDIT_NOSYNC                                                                    \
	0x2u /* audit_append: commit without a sync (COFFER_OPEN_AUDIT_NOSYNC) */

typedef struct store_ops {
	const char *scheme; /* "sqlite", "postgres" */

	/*
	 * Open the store at `location` (sqlite: a directory; postgres: the whole URL). With
	 * STORE_OPEN_CREATE, create it (and its schema) if missing; without it a missing store is
	 * COFFER_ENOTFOUND. `err` receives a message on failure. Schema is created or migrated
	 * here.
	 */
	int (*open)(const char *location, unsigned flags, store **out, char *err, size_t errlen);
	void (*close)(store *s);
	const char *(*errmsg)(store *s);

	/*
	 * Where the default key file lives for this location: writes a path into buf and returns
	 * COFFER_OK, or returns COFFER_ENOTFOUND if this backend has no default (the user must give
	 * a key).
	 */
	int (*default_key_file)(const char *location, char *buf, size_t len);

	/*
	 * Atomically: if the store has no header yet, write `proposal` (header + first data key +
	 * metadata key)
	 * and set *created = 1; otherwise set *created = 0. Either way *actual receives the header
	 * now in force (which may be another process's proposal if it won the race).
	 * With proposal == NULL, only read: COFFER_ENOTFOUND if the store has no header yet
	 * (the core needs the stored Argon2 salt before it can derive a passphrase key).
	 */
	int (*bootstrap)(store *s, const store_boot *proposal, store_boot *actual, int *created);

	/* In one snapshot: call cb for the metadata key with id STORE_META_KEY_ID if the store has
	 * one, then for every data key (id ascending). */
	int (*keys_load)(store *s, store_key_cb cb, void *ctx);

	/*
	 * Insert n versions in ONE transaction, durably committed before returning. First read the
	 * newest data key (one indexed read) in a way that keeps keys_prune from removing it until
	 * this transaction ends. Then for each item, in order: create the secret if needed, assign
	 * the next version id (strictly increasing per secret, never reused, no gaps between
	 * committed puts), call seal() with that newest key and the secret's metadata as it is
	 * before this item, insert the row with its MAC and make it the secret's latest, with the
	 * secret's new MAC. Bumps the store generation. A non-OK return of seal() rolls everything
	 * back. If the outcome of the commit cannot be known (connection lost during COMMIT),
	 * return COFFER_EUNAVAIL and never retry the write silently.
	 * An item with a rid (only ever a batch of one): once the secret is locked, read the
	 * version and value hash stored for (secret, rid) into the seal io; if seal() sets
	 * replay, roll everything back and answer that version with replayed = 1; otherwise store
	 * (secret, rid, vhash, version, now) with the row and delete the request ids older than
	 * STORE_RID_KEEP_MS. The seal io's max_versions comes from the secret's row; see retain.
	 */
	int (*put)(store *s, store_put *items, size_t n, store_seal_fn seal, void *ctx);

	/*
	 * Read, in one snapshot, a secret's metadata (with rows_max) into *meta and one of its rows
	 * into *out: the row of `version`, or with version 0 the row the metadata names as latest.
	 * COFFER_ENOTFOUND only if the secret does not exist; a missing row is out->version == 0.
	 * A destroyed row is returned as such (no ciphertext). out->sealed is malloc'd (or NULL).
	 * The core checks all of it against the MACs.
	 */
	int (*get)(store *s, const char *name, size_t name_len, uint64_t version, store_row *out,
	           store_meta *meta);

	/*
	 * A cheap token that changes whenever any writer (any process, any server) may have changed
	 * the store since. The core caches rows tagged with store_row.gen and trusts a cached row
	 * only while generation() returns that same value. Must never return a value equal to an
	 * old tag while a newer committed write exists (beyond a bound the backend documents).
	 */
	int (*generation)(store *s, uint64_t *gen);

	/*
	 * Optional (NULL: the core uses generation()). A token as generation()'s, for one secret:
	 * it must change whenever a writer may have changed that secret (it may change for others
	 * too), with the same bound. A backend that has it tags get()'s row.gen with this token of
	 * the secret read, so the core's cached row of one secret survives writes of others.
	 */
	int (*generation_of)(store *s, const char *name, size_t name_len, uint64_t *gen);

	/* List secret names in byte order, each with its number of enabled (not destroyed)
	 * versions. */
	int (*list_secrets)(store *s, store_name_cb cb, void *ctx);

	/* List the versions of one secret, oldest first (sealed = NULL, sealed_len set), each with
	 * the secret's metadata read in the same snapshot as the row. COFFER_ENOTFOUND if the
	 * secret does not exist. */
	int (*list_versions)(store *s, const char *name, size_t name_len, store_row_cb cb,
	                     void *ctx);

	/*
	 * Key rotation. These four may be NULL in a backend that does not support rotation (the
	 * core then answers COFFER_EMISUSE with a message). Every change to the keyring (keys_add,
	 * keys_reseal, keys_prune) runs in one write transaction that excludes the others, from
	 * any process; key ids only grow (a new key is the largest id + 1, and the newest key is
	 * never pruned), so an id names one key for the life of the store.
	 *
	 * keys_add: call check() for every stored data key (id ascending), so the core proves the
	 * keyring opens with its master key (a rekey by another process is found here, and nothing
	 * is added); then make() with the new id and the number of keys, insert the key it made,
	 * bump the generation, commit. A non-OK return of check() or make() rolls back.
	 */
	int (*keys_add)(store *s, store_key_cb check, store_key_make_fn make, void *ctx);

	/*
	 * keys_reseal: in ONE transaction, replace the sealed form of every data key (master-key
	 * rotation) and of the metadata key. Calls cb for each data key in the store, then for the
	 * metadata key (id STORE_META_KEY_ID) if there is one; cb writes the new sealed key (at
	 * most STORE_SEALED_KEY_MAX bytes) into out. With kdf not NULL (the new master key comes
	 * from a passphrase), the header's Argon2id salt and limits become kdf's in the same
	 * transaction. Bumps the generation.
	 */
	int (*keys_reseal)(store *s, store_rekey_fn cb, void *ctx, const store_kdf *kdf);

	/*
	 * reseal_batch: one transaction of the re-encrypt pass. Read the newest data key as put()
	 * does, select up to STORE_RESEAL_BATCH versions holding a value (enabled or disabled)
	 * sealed with a key id below `below`, replace each with what cb makes, bump the generation
	 * if any moved, commit. *done counts the rows; fewer than STORE_RESEAL_BATCH means none was
	 * left below `below`.
	 */
	int (*reseal_batch)(store *s, uint32_t below, store_reseal_fn cb, void *ctx, size_t *done);

	/*
	 * keys_prune: in one transaction that no put() or reseal_batch() overlaps (they may be
	 * about to seal with the key being pruned), delete every data key but the newest that no
	 * version holding a value (enabled or disabled) uses. *pruned counts them.
	 */
	int (*keys_prune)(store *s, size_t *pruned);

	/*
	 * destroy (destroy, disable, enable: any change of a version's state): in one write
	 * transaction that bumps the generation, read the secret's metadata and all its version
	 * rows, hand them to cb (the core checks them, sets the state of the version it changes,
	 * and re-MACs every row and the secret), then write back every row's state and MAC and the
	 * secret's metadata, and drop the ciphertext of each row destroyed (COFFER_STATE_DESTROYED;
	 * a disabled row keeps it). The custom labels are read with the rows (meta->labels) and,
	 * when cb sets meta->labels_changed, written back, all in the same transaction (label
	 * moves use this transaction too). Its
	 * id stays taken. COFFER_ENOTFOUND if the secret does not exist; cb's error otherwise (the
	 * core says COFFER_ENOTFOUND for a version it cannot destroy). May be NULL (the core then
	 * answers COFFER_EMISUSE).
	 */
	int (*destroy)(store *s, const char *name, size_t name_len, store_retag_fn cb, void *ctx);

	/*
	 * meta_init: give a store from before metadata MACs its metadata key, in ONE write
	 * transaction that excludes every other writer and every put. If the header holds a
	 * metadata key already (another process did this first), change nothing and copy it into
	 * found (*found_len, at most STORE_SEALED_KEY_MAX). Otherwise *found_len = 0 and: re-seal
	 * every data key through rekey (as keys_reseal does), call retag for every secret with all
	 * its rows and write back what it sets, store `sealed` as the metadata key, bump the
	 * generation, commit.
	 */
	int (*meta_init)(store *s, const uint8_t *sealed, size_t len, store_rekey_fn rekey,
	                 store_retag_fn retag, void *ctx, uint8_t *found, size_t *found_len);

	/*
	 * Declarations (schema 4): decl_add ORs each item's actions into its (service, secret)
	 * row, creating it, all n in ONE transaction (the generation is not bumped: no secret
	 * changes). decl_list calls cb for every row, by service then secret. May be NULL.
	 */
	int (*decl_add)(store *s, const store_decl *items, size_t n);
	int (*decl_list)(store *s, store_decl_cb cb, void *ctx);

	/*
	 * labels_get: in one snapshot, the secret's metadata into *meta and its custom labels
	 * into meta->labels (allocated here, STORE_LABELS_MAX + 1 entries; the caller frees).
	 * COFFER_ENOTFOUND if the secret does not exist. The core checks them against the MAC.
	 */
	int (*labels_get)(store *s, const char *name, size_t name_len, store_meta *meta,
	                  store_info *info);

	/*
	 * purge: in one write transaction, delete for good every secret whose purge_ms is set and
	 * at most now_ms: its versions (ciphertext), labels, request ids and itself. Bumps the
	 * generation if any went. *count counts them.
	 */
	int (*purge)(store *s, uint64_t now_ms, size_t *count);

	/*
	 * list_page: up to `limit` secrets not scheduled for deletion, in byte order, whose names
	 * begin with prefix (prefix_len may be 0) and come after `after` (after_len 0: from the
	 * start), each with its number of enabled versions.
	 */
	int (*list_page)(store *s, const char *prefix, size_t prefix_len, const char *after,
	                 size_t after_len, size_t limit, store_name_cb cb, void *ctx);

	/* info_set: a secret's description and tags (NULL: leave as is). COFFER_ENOTFOUND if the
	 * secret does not exist. Bumps the generation. */
	int (*info_set)(store *s, const char *name, size_t name_len, const char *description,
	                const char *tags);

	/*
	 * Audit. audit_pending: the next write transaction of this handle (put, destroy, label,
	 * delete, retention, info_set), if it commits, appends n entries to `chain` through
	 * fn, in the same transaction, just before COMMIT; n 0 cancels. The backend forgets the
	 * pending entries once that transaction ends either way. audit_append: n entries (n >= 1),
	 * in order, in one transaction of their own: all of them or none. audit_list: every entry
	 * with an id above after_id, in id order.
	 */
	void (*audit_pending)(store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx);
	int (*audit_append)(store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx);
	int (*audit_list)(store *s, uint64_t after_id, int (*cb)(void *ctx, const store_audit *e),
	                  void *ctx);

	/*
	 * Backups (docs/operations.md). backup: write a consistent image of the whole store, as
	 * stored (sealed), into `path`, a file this call creates (0600, O_EXCL), taken in one
	 * read snapshot while writers go on; fsync'd. May be NULL (the core answers
	 * COFFER_EMISUSE with what to do instead).
	 * restore_image: a static operation like open(): make the store at `location` from the
	 * image of `len` bytes at offset `off` of fd (the core verified its checksum), refusing
	 * (COFFER_EPERM) a location that already holds a store; the image is checked to be a store
	 * before it is put in place, and put in place atomically. May be NULL.
	 */
	/*
	 * import_secret (coffer copy): in ONE write transaction, if the secret does not exist,
	 * create it with exactly this metadata (m: last_version, latest, epoch, previous, ldigest,
	 * purge_ms, max_versions, mac, and its labels), info (description, tags, created_ms,
	 * updated_ms) and rows (version ids as given, state, key_id, created_ms, sealed or NULL,
	 * mac), bump the generation, commit, *existed = 0. If it exists, write nothing and set
	 * *existed = 1 (the core verifies it). May be NULL.
	 */
	int (*import_secret)(store *s, const char *name, size_t name_len, const store_meta *m,
	                     const store_info *info, const store_row *rows, size_t n, int *existed);
	/* audit_import (coffer copy): n entries appended to chain in ONE transaction, through fn
	 * (as audit_append does for one). May be NULL. */
	int (*audit_import)(store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx);
	int (*backup)(store *s, const char *path);
	int (*restore_image)(const char *location, int fd, uint64_t off, uint64_t len, char *err,
	                     size_t errlen);
} store_ops;

/*
 * Pick the backend for a location: "postgres://..." / "postgresql://..." -> postgres (when built
 * in), "sqlite:DIR" -> sqlite with DIR, anything else -> sqlite with the location as a directory.
 * *rest receives the location to hand to ops->open(). NULL if the scheme is unknown.
 */
const store_ops *store_lookup(const char *location, const char **rest);

#endif
