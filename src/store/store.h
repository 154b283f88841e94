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

typedef struct store store; /* each backend defines its own struct and casts */

#define STORE_ID_LEN         16
#define STORE_SALT_LEN       16
#define STORE_SEALED_KEY_MAX 128
#define STORE_SCHEMA_VERSION 1

/* The header of a store, written once, atomically, by whichever process creates the store. */
typedef struct store_boot {
	uint8_t store_id[STORE_ID_LEN];
	uint8_t kdf_salt[STORE_SALT_LEN]; /* Argon2id salt for passphrase-derived master keys */
	uint64_t kdf_opslimit;
	uint64_t kdf_memlimit;
	uint32_t first_key_id;                    /* id of the first data key */
	uint8_t sealed_key[STORE_SEALED_KEY_MAX]; /* that data key, sealed under the master key */
	size_t sealed_key_len; /* read back: 0 once that key was pruned (keys_prune) */
} store_boot;

/* How a passphrase becomes a master key: Argon2id salt and limits, kept in the header. */
typedef struct store_kdf {
	uint8_t salt[STORE_SALT_LEN];
	uint64_t opslimit;
	uint64_t memlimit;
} store_kdf;

/* One version row. */
typedef struct store_row {
	uint64_t version;
	uint32_t key_id;
	int state;          /* COFFER_STATE_* */
	int64_t created_ms; /* Unix milliseconds */
	uint8_t *sealed;    /* get(): malloc'd, the caller frees; list_versions(): NULL */
	size_t sealed_len;
	uint64_t gen; /* get(): the store generation seen in the same snapshot as the row */
} store_row;

/* One item of a put batch: the backend assigns `version`. */
typedef struct store_put {
	const char *name;
	size_t name_len;
	uint64_t version; /* out */
} store_put;

/* A data key as stored: its id and its sealed form (under the master key). As the newest key of
 * a put or re-encrypt transaction, id 0 means the store has no key at all (no header yet). */
typedef struct store_key {
	uint32_t id;
	const uint8_t *sealed;
	size_t len;
} store_key;

/*
 * Called by put() inside the write transaction, once per item in order, after the item's
 * version is assigned: the core seals the value (the version is part of the authenticated data)
 * with `newest`, the store's newest data key as read in this same transaction, and returns a
 * malloc'd blob in *sealed, which the backend frees after use.
 */
typedef int (*store_seal_fn)(void *ctx, size_t i, uint64_t version, const store_key *newest,
                             uint32_t *key_id, uint8_t **sealed, size_t *sealed_len);

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

typedef int (*store_key_cb)(void *ctx, uint32_t key_id, const uint8_t *sealed, size_t len);
typedef int (*store_name_cb)(void *ctx, const char *name, size_t nversions);
typedef int (*store_row_cb)(void *ctx, const store_row *row);

#define STORE_OPEN_CREATE 0x1u

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
	 * Atomically: if the store has no header yet, write `proposal` (header + first data key)
	 * and set *created = 1; otherwise set *created = 0. Either way *actual receives the header
	 * now in force (which may be another process's proposal if it won the race).
	 * With proposal == NULL, only read: COFFER_ENOTFOUND if the store has no header yet
	 * (the core needs the stored Argon2 salt before it can derive a passphrase key).
	 */
	int (*bootstrap)(store *s, const store_boot *proposal, store_boot *actual, int *created);

	/* Call cb for every data key (id ascending). */
	int (*keys_load)(store *s, store_key_cb cb, void *ctx);

	/*
	 * Insert n versions in ONE transaction, durably committed before returning. First read the
	 * newest data key (one indexed read) in a way that keeps keys_prune from removing it until
	 * this transaction ends. Then for each item, in order: create the secret if needed, assign
	 * the next version id (strictly increasing per secret, never reused, no gaps between
	 * committed puts), call seal() with that newest key, insert the row.
	 * Bumps the store generation. If the outcome of the commit cannot be known (connection lost
	 * during COMMIT), return COFFER_EUNAVAIL and never retry the write silently.
	 */
	int (*put)(store *s, store_put *items, size_t n, store_seal_fn seal, void *ctx);

	/*
	 * Read one row: version 0 means the newest enabled version. COFFER_ENOTFOUND if the secret
	 * or the version does not exist (or is destroyed). out->sealed is malloc'd.
	 */
	int (*get)(store *s, const char *name, size_t name_len, uint64_t version, store_row *out);

	/*
	 * A cheap token that changes whenever any writer (any process, any server) may have changed
	 * the store since. The core caches rows tagged with store_row.gen and trusts a cached row
	 * only while generation() returns that same value. Must never return a value equal to an
	 * old tag while a newer committed write exists (beyond a bound the backend documents).
	 */
	int (*generation)(store *s, uint64_t *gen);

	/* List secret names in byte order, each with its number of enabled (not destroyed)
	 * versions. */
	int (*list_secrets)(store *s, store_name_cb cb, void *ctx);

	/* List the versions of one secret, oldest first (sealed = NULL, sealed_len set).
	 * COFFER_ENOTFOUND if the secret does not exist. */
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
	 * rotation). Calls cb for each key in the store; cb writes the new sealed key (at most
	 * STORE_SEALED_KEY_MAX bytes) into out. With kdf not NULL (the new master key comes from a
	 * passphrase), the header's Argon2id salt and limits become kdf's in the same transaction.
	 * Bumps the generation.
	 */
	int (*keys_reseal)(store *s,
	                   int (*cb)(void *ctx, uint32_t key_id, const uint8_t *sealed, size_t len,
	                             uint8_t *out, size_t *out_len),
	                   void *ctx, const store_kdf *kdf);

	/*
	 * reseal_batch: one transaction of the re-encrypt pass. Read the newest data key as put()
	 * does, select up to STORE_RESEAL_BATCH enabled versions sealed with a key id below
	 * `below`, replace each with what cb makes, bump the generation if any moved, commit. *done
	 * counts the rows; fewer than STORE_RESEAL_BATCH means none was left below `below`.
	 */
	int (*reseal_batch)(store *s, uint32_t below, store_reseal_fn cb, void *ctx, size_t *done);

	/*
	 * keys_prune: in one transaction that no put() or reseal_batch() overlaps (they may be
	 * about to seal with the key being pruned), delete every data key but the newest that no
	 * enabled version uses. *pruned counts them.
	 */
	int (*keys_prune)(store *s, size_t *pruned);

	/*
	 * destroy: mark one enabled version destroyed and drop its ciphertext, in one transaction
	 * that bumps the generation. Its id stays taken. COFFER_ENOTFOUND if the secret has no
	 * such enabled version. May be NULL (the core then answers COFFER_EMISUSE).
	 */
	int (*destroy)(store *s, const char *name, size_t name_len, uint64_t version);
} store_ops;

/*
 * Pick the backend for a location: "postgres://..." / "postgresql://..." -> postgres (when built
 * in), "sqlite:DIR" -> sqlite with DIR, anything else -> sqlite with the location as a directory.
 * *rest receives the location to hand to ops->open(). NULL if the scheme is unknown.
 */
const store_ops *store_lookup(const char *location, const char **rest);

#endif
