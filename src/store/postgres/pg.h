/*
 * pg.h -- the PostgreSQL storage backend's private header: many coffer servers, one shared store.
 *
 * Behind store.h like the SQLite backend. It stores only opaque sealed blobs, key ids and
 * version numbers. Design points (docs/postgres.md says the same for users):
 *
 *  - Schema: tables coffer_meta (schema version + store generation), coffer_gen (a generation
 *    per bucket of names), coffer_header, coffer_keys, coffer_secrets, coffer_versions, ..., in
 *    the first schema of search_path. Created or
 *    migrated at open inside one transaction holding pg_advisory_xact_lock, so servers opening a
 *    fresh database at the same moment take turns.
 *  - Every statement that carries data is prepared once per session and run with binary
 *    parameters; names are compared with `=` on a COLLATE "C" column (byte order, no pattern).
 *  - put(): one transaction per batch. Each distinct secret of the batch gets its row locked by an
 *    upsert that adds the number of versions it needs (`last_version += c`); the upserts run in
 *    byte order of the names so two batches never deadlock. That row lock makes version ids
 *    unique and gapless across servers. Then the versions are sealed and inserted, the
 *    generations of the buckets of the secrets written are bumped (rows locked in ascending
 *    order until COMMIT), the transaction commits, and the new values are NOTIFY'd in the same
 *    round trip, in a transaction of their own (a NOTIFY inside would serialize every commit).
 *    Writes that may touch any secret bump the store generation instead.
 *  - generation_of(name): the connection LISTENs on "coffer_gen"; each call drains
 *    notifications without blocking. A writer's NOTIFY is queued before its put is acknowledged
 *    and read by us at our next call after it arrived; besides, if the generations have not been
 *    read from the tables for PG_MAX_STALE_MS, the call reads them all (one round trip). So a
 *    cached row is trusted at most PG_MAX_STALE_MS (+ one round trip) after another server's
 *    write committed, and usually only for the delivery time of one notification (well under a
 *    millisecond on a LAN). Handles of one process on one store also share the newest
 *    generations any of them saw, so a put through one handle is seen at once through the others.
 *  - The token of a name is (session epoch << 48 | store generation + its bucket's generation);
 *    generation() sums every bucket. The epoch changes at every reconnect, so nothing cached
 *    before an outage (maybe a failover to a replica that lost commits) is trusted after it.
 *  - Reconnect: a call that finds the connection broken resets it (re-LISTEN, re-prepare, reload
 *    the generation). Reads are retried once after a reconnect. A put is retried once only when
 *    the connection was found broken before any value was sealed (the transaction cannot have
 *    committed, and seal() is called once per item as store.h promises); a connection lost later
 *    is COFFER_EUNAVAIL, and never a silent second write.
 *
 * The backend is this folder (src/store/postgres/), one file per concern:
 *   postgres.c   open / close, and the store_ops table
 *   schema.c     the prepared statements, the schema and its migrations
 *   conn.c       results and errors, sessions (LISTEN, prepare), reconnect and the retry rule
 *   gen.c        generations (store, buckets): sharing between handles, the bump, NOTIFY
 *   put.c        put: locks, version ids, sealing, idempotent request ids, retention
 *   read.c       bootstrap, keys_load, get, the listings
 *   keys.c       key rotation, rekey, the re-encrypt pass, the metadata key
 *   lifecycle.c  destroy, labels, info, purge, declarations, import (coffer copy)
 *   audit.c      the audit log
 */

#ifndef COFFER_STORE_POSTGRES_PG_H
#define COFFER_STORE_POSTGRES_PG_H

#include <stdint.h>

#include <libpq-fe.h>

#include "store/store.h"
#define PG_SCHEMA_VERSION 5    /* 2: metadata MACs; 3: lifecycle; 4: declarations; 5: coffer_gen */
#define PG_GEN_BUCKETS    1024 /* generations per store: a hash of the name picks one */
#define PG_CHANNEL        "coffer_gen"
#define PG_MAX_STALE_MS   1000 /* longest time a generation is trusted without a table read */
#define PG_RETRY_PAUSE_MS 200  /* after a failed reconnect, fail fast for this long */
#define PG_PAGE_ROWS      512  /* rows per page of a listing */
#define PG_RESEAL_ROWS    256  /* rows per transaction of the re-encrypt pass */
_Static_assert(PG_RESEAL_ROWS == STORE_RESEAL_BATCH, "one batch size for every backend");
#define PG_STR_(x) #x
#define PG_STR(x)  PG_STR_(x)
#define PG_ERR_MAX 512
/* Upserts rely on READ COMMITTED (ON CONFLICT DO UPDATE re-reads the newest row there; under
 * REPEATABLE READ concurrent puts would fail), whatever the database's default. */
#define PG_BEGIN    "BEGIN ISOLATION LEVEL READ COMMITTED"
#define PG_GEN_BITS 48
#define PG_MAC_LEN  "33" /* STORE_MAC_LEN, in SQL */
#define PG_NOW_MS   "floor(extract(epoch FROM transaction_timestamp()) * 1000)::bigint"
_Static_assert(STORE_MAC_LEN == 33, "PG_MAC_LEN");

/* Type OIDs of the parameters we send (stable since PostgreSQL 7; not in libpq's headers). */
#define OID_BOOL  16
#define OID_BYTEA 17
#define OID_INT8  20
#define OID_TEXT  25

typedef struct pg_store {
	PGconn *conn;
	int audit_nosync; /* STORE_OPEN_AUDIT_NOSYNC */
	uint64_t gen;     /* newest store generation (coffer_meta.wgen) known to this handle */
	uint64_t bgen[PG_GEN_BUCKETS]; /* newest generation of each bucket known to it */
	uint16_t epoch;                /* changes with every (re)connected session */
	int64_t checked_ms;            /* monotonic time when gen was last read from the table */
	int64_t failed_ms;             /* monotonic time of the last failed reconnect, 0 if none */
	int lost;                      /* the last failure was a lost connection */
	int doomed;                    /* the server announced it is closing this session */
	struct pg_shared
	    *shared; /* the generations shared by this process's handles on the store */
	/* The buckets the open write transaction wrote (a bit each); none: the store generation. */
	uint64_t touched[PG_GEN_BUCKETS / 64];
	size_t ntouched;
	int sealing; /* a put or re-encrypt transaction is open: never reconnect inside */
	char err[PG_ERR_MAX];
	/* Audit entries the next write transaction appends before it commits, to this chain. */
	size_t audit_n;
	store_audit_fn audit_fn;
	void *audit_ctx;
	char audit_chain[STORE_AUDIT_CHAIN_MAX + 1];
} pg_store;

enum {
	ST_GEN,
	ST_GET_LATEST,
	ST_GET_VERSION,
	ST_UPSERT,
	ST_INSERT_VERSION,
	ST_BUMP,
	ST_BUMP_BUCKETS,
	ST_KEYS,
	ST_BOOT_HEADER,
	ST_BOOT_KEY,
	ST_READ_HEADER,
	ST_LIST_SECRETS,
	ST_LIST_VERSIONS,
	ST_KEYS_LOCK,
	ST_KEY_UPDATE,
	ST_RESEAL_SELECT,
	ST_RESEAL_UPDATE,
	ST_KEYS_LOAD,
	ST_SECRET,
	ST_ROWS,
	ST_WRITE_ROWS,
	ST_WRITE_META,
	ST_META_KEY,
	ST_SET_META_KEY,
	ST_SECRET_PAGE,
	ST_SET_KDF,
	ST_REQ_GET,
	ST_REQ_PUT,
	ST_LABELS,
	ST_LABELS_DEL,
	ST_LABEL_INS,
	ST_LABELS_GET,
	ST_LIST_PAGE,
	ST_COUNT
};

typedef struct pg_stmt {
	const char *name;
	const char *sql;
	int nparams;
	Oid types[7];
} pg_stmt;

typedef struct pg_newest {
	store_key key;
	uint8_t buf[STORE_SEALED_KEY_MAX];
} pg_newest;

typedef store_rekey_fn rekey_fn;

void pg_set_err(pg_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

extern const pg_stmt pg_stmts[ST_COUNT];

/* schema.c */
int pg_schema_ensure(pg_store *s, int create);

/* conn.c */
int64_t pg_now_ms(void);
void pg_put_be64(uint8_t out[8], uint64_t v);
int pg_col_uint(const PGresult *r, int row, int col, int width, uint64_t *v);
void pg_col_mac(const PGresult *r, int row, int col, uint8_t mac[STORE_MAC_LEN], size_t *len);
int pg_col_meta(const PGresult *r, int row, int first, store_meta *m);
int pg_col_ext(const PGresult *r, int row, int col, store_meta *m);
int pg_parse_u64(const char *s, uint64_t *v);
void pg_copy_line(char *dst, size_t len, const char *src);
int pg_res_rc(pg_store *s, const PGresult *r, ExecStatusType want, const char *what);
PGresult *pg_run(pg_store *s, int st, const char *const *vals, const int *lens);
int pg_exec_cmd(pg_store *s, const char *sql, const char *what);
void pg_rollback(pg_store *s);
void pg_on_notice(void *arg, const PGresult *r);
int pg_session_setup(pg_store *s);
int pg_reconnect(pg_store *s);
int pg_ensure_conn(pg_store *s);
int pg_begin_write(pg_store *s);

/* One attempt of an operation; sets *unsafe once repeating it would not be safe. */
typedef int (*pg_once_fn)(pg_store *s, void *arg, int *unsafe);
#define PG_RETRY_BUSY 1u /* pg_retry(): also repeat after COFFER_EBUSY */
int pg_retry(pg_store *s, pg_once_fn once, void *arg, unsigned flags);

/* gen.c */
uint64_t pg_token(const pg_store *s, uint64_t gen);
void pg_learn_gen(pg_store *s, uint64_t gen, int from_table);
uint32_t pg_bucket(const char *name, size_t len);
void pg_learn_bucket(pg_store *s, uint32_t b, uint64_t gen);
uint64_t pg_bucket_token(const pg_store *s, uint64_t g, uint64_t bg);
void pg_touch(pg_store *s, const char *name, size_t len);
void pg_untouch(pg_store *s);
int pg_load_gen(pg_store *s);
int pg_commit(pg_store *s);
int pg_finish_write(pg_store *s, int rc);
int pg_generation(store *st, uint64_t *gen);
int pg_generation_of(store *st, const char *name, size_t name_len, uint64_t *gen);

/* read.c */
int pg_bootstrap(store *st, const store_boot *proposal, store_boot *actual, int *created);
int pg_keys_load(store *st, store_key_cb cb, void *ctx);
int pg_get(store *st, const char *name, size_t name_len, uint64_t version, store_row *out,
           store_meta *meta);
int pg_list_secrets(store *st, store_name_cb cb, void *ctx);
int pg_list_versions(store *st, const char *name, size_t name_len, store_row_cb cb, void *ctx);
int pg_list_page(store *st, const char *prefix, size_t prefix_len, const char *after,
                 size_t after_len, size_t limit, store_name_cb cb, void *ctx);

/* put.c */
int pg_begin_sealing(pg_store *s, pg_newest *nk);
int pg_put(store *st, store_put *items, size_t n, store_seal_fn seal, void *ctx);

/* keys.c */
int pg_keys_reseal(store *st, rekey_fn cb, void *ctx, const store_kdf *kdf);
int pg_keys_add(store *st, store_key_cb check, store_key_make_fn make, void *ctx);
int pg_keys_prune(store *st, size_t *pruned);
int pg_meta_init(store *st, const uint8_t *sealed, size_t len, rekey_fn rekey, store_retag_fn cb,
                 void *ctx, uint8_t *found, size_t *found_len);
int pg_reseal_batch(store *st, uint32_t below, store_reseal_fn cb, void *ctx, size_t *done);

/* lifecycle.c */
int pg_labels_get(store *st, const char *name, size_t name_len, store_meta *meta, store_info *info);
int pg_purge(store *st, uint64_t now, size_t *count);
int pg_info_set(store *st, const char *name, size_t name_len, const char *description,
                const char *tags);
int pg_retag(pg_store *s, uint64_t sid, const char *name, size_t name_len, store_meta *m,
             store_retag_fn cb, void *ctx);
int pg_read_secret_locked(pg_store *s, const char *name, size_t name_len, uint64_t *sid,
                          store_meta *m);
int pg_destroy(store *st, const char *name, size_t name_len, store_retag_fn cb, void *ctx);
int pg_decl_add(store *st, const store_decl *items, size_t n);
int pg_decl_list(store *st, store_decl_cb cb, void *ctx);
int pg_import_secret(store *st, const char *name, size_t name_len, const store_meta *m,
                     const store_info *info, const store_row *rows, size_t n, int *existed);

/* audit.c */
int pg_audit_write(pg_store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx);
void pg_audit_pending(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx);
int pg_audit_append(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx);
int pg_audit_import(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx);
int pg_audit_list(store *st, uint64_t after, int (*cb)(void *ctx, const store_audit *e), void *ctx);

#endif
