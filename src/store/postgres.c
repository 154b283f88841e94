/*
 * postgres.c -- the PostgreSQL storage backend: many coffer servers, one shared store.
 *
 * Behind store.h like the SQLite backend. It stores only opaque sealed blobs, key ids and
 * version numbers. Design points (docs/postgres.md says the same for users):
 *
 *  - Schema: tables coffer_meta (schema version + store generation), coffer_header,
 *    coffer_keys, coffer_secrets, coffer_versions, in the first schema of search_path. Created or
 *    migrated at open inside one transaction holding pg_advisory_xact_lock, so servers opening a
 *    fresh database at the same moment take turns.
 *  - Every statement that carries data is prepared once per session and run with binary
 *    parameters; names are compared with `=` on a COLLATE "C" column (byte order, no pattern).
 *  - put(): one transaction per batch. Each distinct secret of the batch gets its row locked by an
 *    upsert that adds the number of versions it needs (`last_version += c`); the upserts run in
 *    byte order of the names so two batches never deadlock. That row lock makes version ids
 *    unique and gapless across servers. Then the versions are sealed and inserted, the store
 *    generation is bumped and NOTIFY'd, and the transaction commits.
 *  - generation(): the connection LISTENs on "coffer_gen"; each call drains notifications
 *    without blocking. A NOTIFY is sent by PostgreSQL when the writer commits and read by us at
 *    our next call after it arrived; besides, if the generation has not been read from the table
 *    for PG_MAX_STALE_MS, the call reads it (one round trip). So a cached row is trusted at most
 *    PG_MAX_STALE_MS (+ one round trip) after another server's write committed, and usually only
 *    for the delivery time of one notification (well under a millisecond on a LAN).
 *    Handles of one process on one store also share the newest generation any of them saw, so
 *    a put through one handle is seen at once through the others.
 *  - The token handed out is (session epoch << 48 | generation). The epoch changes at every
 *    reconnect, so nothing cached before an outage (maybe a failover to a replica that lost
 *    commits) is trusted after it.
 *  - Reconnect: a call that finds the connection broken resets it (re-LISTEN, re-prepare, reload
 *    the generation). Reads are retried once after a reconnect. A put is retried once only when
 *    the connection was found broken before any value was sealed (the transaction cannot have
 *    committed, and seal() is called once per item as store.h promises); a connection lost later
 *    is COFFER_EUNAVAIL, and never a silent second write.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "store/store.h"

#define PG_SCHEMA_VERSION 4 /* 2: metadata MACs; 3: lifecycle; 4: declarations */
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

/* Type OIDs of the parameters we send (stable since PostgreSQL 7; not in libpq's headers). */
#define OID_BOOL  16
#define OID_BYTEA 17
#define OID_INT8  20
#define OID_TEXT  25

typedef struct pg_store {
	PGconn *conn;
	uint64_t gen;       /* newest store generation known to this handle */
	uint16_t epoch;     /* changes with every (re)connected session */
	int64_t checked_ms; /* monotonic time when gen was last read from the table */
	int64_t failed_ms;  /* monotonic time of the last failed reconnect, 0 if none */
	int lost;           /* the last failure was a lost connection */
	int doomed;         /* the server announced it is closing this session */
	uint64_t *shared;   /* the generation shared by this process's handles on the store */
	int sealing;        /* a put or re-encrypt transaction is open: never reconnect inside */
	char err[PG_ERR_MAX];
	/* Audit entries the next write transaction appends before it commits, to this chain. */
	size_t audit_n;
	store_audit_fn audit_fn;
	void *audit_ctx;
	char audit_chain[STORE_AUDIT_CHAIN_MAX + 1];
} pg_store;

/* ---------------------------------------------------------------------------------------- */
/* Prepared statements                                                                        */

enum {
	ST_GEN,
	ST_GET_LATEST,
	ST_GET_VERSION,
	ST_UPSERT,
	ST_INSERT_VERSION,
	ST_BUMP,
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

#define ROW_COLUMNS "v.version, v.key_id, v.state, v.created_ms"
#define ROW_FROM                                                                                   \
	" FROM coffer_secrets s JOIN coffer_versions v ON v.secret_id = s.id WHERE s.name = $1"
#define GEN_SUBSELECT "(SELECT gen FROM coffer_meta WHERE id = 1)"
/* A get: the secret's metadata, the largest version id of any of its rows (a row beyond
 * last_version is an edit outside coffer), one row (columns 5-10; NULL when absent), and the
 * generation, all from one statement, hence one snapshot. */
#define GET_SELECT                                                                                 \
	"SELECT s.last_version, s.latest, s.epoch, s.mac, (SELECT max(version) FROM "              \
	"coffer_versions WHERE secret_id = s.id), " ROW_COLUMNS                                    \
	", v.sealed, v.mac, " GEN_SUBSELECT ", s.previous, s.ldigest, s.purge_ms, s.max_versions"  \
	" FROM coffer_secrets s LEFT JOIN coffer_versions v ON v.secret_id = s.id "
#define PG_MAC_LEN "33" /* STORE_MAC_LEN, in SQL */
#define PG_NOW_MS  "floor(extract(epoch FROM transaction_timestamp()) * 1000)::bigint"
_Static_assert(STORE_MAC_LEN == 33, "PG_MAC_LEN");

static const pg_stmt stmts[ST_COUNT] = {
    [ST_GEN] = {"coffer_gen", "SELECT gen, instance FROM coffer_meta WHERE id = 1", 0, {0}},
    /* latest is the row the (MAC'd) metadata names: a point lookup, whatever was edited. */
    [ST_GET_LATEST] = {"coffer_get_latest",
                       GET_SELECT "AND v.version = s.latest WHERE s.name = $1",
                       1,
                       {OID_TEXT}},
    [ST_GET_VERSION] = {"coffer_get_version",
                        GET_SELECT "AND v.version = $2 WHERE s.name = $1",
                        2,
                        {OID_TEXT, OID_INT8}},
    /* Reserves $2 versions and locks the secret's row until commit; returns what the secret
     * was (an upsert changes only last_version). */
    [ST_UPSERT] = {"coffer_upsert",
                   "INSERT INTO coffer_secrets AS s (name, last_version, created_ms) VALUES "
                   "($1, $2, " PG_NOW_MS ") "
                   "ON CONFLICT (name) DO UPDATE SET last_version = s.last_version + "
                   "EXCLUDED.last_version RETURNING id, last_version, latest, epoch, mac, "
                   "(SELECT max(version) FROM coffer_versions WHERE secret_id = s.id), "
                   "max_versions, previous, ldigest, purge_ms",
                   2,
                   {OID_TEXT, OID_INT8}},
    /* The version and the secret's new latest and MAC, in one round trip. */
    [ST_INSERT_VERSION] = {"coffer_insert_version",
                           "WITH v AS (INSERT INTO coffer_versions "
                           "(secret_id, version, key_id, state, created_ms, sealed, mac) VALUES "
                           "($1, $2, $3, 0, "
                           "floor(extract(epoch FROM transaction_timestamp()) * 1000)::bigint, "
                           "$4, $5)) UPDATE coffer_secrets SET latest = $2, mac = $6, "
                           "previous = $7, updated_ms = " PG_NOW_MS " WHERE id = $1",
                           7,
                           {OID_INT8, OID_INT8, OID_INT8, OID_BYTEA, OID_BYTEA, OID_BYTEA,
                            OID_INT8}},
    /* Last statement before COMMIT: every writer queues on this one row, keep it short. */
    [ST_BUMP] = {"coffer_bump",
                 "WITH g AS (UPDATE coffer_meta SET gen = gen + 1 WHERE id = 1 RETURNING gen) "
                 "SELECT gen, pg_notify('" PG_CHANNEL "', gen::text) FROM g",
                 0,
                 {0}},
    [ST_KEYS] = {"coffer_keys", "SELECT key_id, sealed FROM coffer_keys ORDER BY key_id", 0, {0}},
    [ST_BOOT_HEADER] = {"coffer_boot_header",
                        "INSERT INTO coffer_header (id, store_id, kdf_salt, kdf_opslimit, "
                        "kdf_memlimit, first_key_id, meta_key) VALUES (1, $1, $2, $3, $4, $5, "
                        "$6) ON CONFLICT (id) DO NOTHING RETURNING id",
                        6,
                        {OID_BYTEA, OID_BYTEA, OID_INT8, OID_INT8, OID_INT8, OID_BYTEA}},
    [ST_SET_KDF] = {"coffer_set_kdf",
                    "UPDATE coffer_header SET kdf_salt = $1, kdf_opslimit = $2, "
                    "kdf_memlimit = $3 WHERE id = 1",
                    3,
                    {OID_BYTEA, OID_INT8, OID_INT8}},
    [ST_BOOT_KEY] = {"coffer_boot_key",
                     "INSERT INTO coffer_keys (key_id, sealed) VALUES ($1, $2)",
                     2,
                     {OID_INT8, OID_BYTEA}},
    [ST_READ_HEADER] = {"coffer_read_header",
                        "SELECT h.store_id, h.kdf_salt, h.kdf_opslimit, h.kdf_memlimit, "
                        "h.first_key_id, k.sealed, h.meta_key FROM coffer_header h "
                        "LEFT JOIN coffer_keys k ON k.key_id = h.first_key_id WHERE h.id = 1",
                        0,
                        {0}},
    /* Keyset pages: bounded memory, whatever the number of secrets. Counts what can be read
     * (enabled versions), so it agrees with latest. */
    [ST_LIST_SECRETS] = {"coffer_list_secrets",
                         "SELECT s.name, (SELECT count(*) FROM coffer_versions v "
                         "WHERE v.secret_id = s.id AND v.state = 0) FROM coffer_secrets s "
                         "WHERE s.name > $1 AND s.purge_ms = 0 "
                         "ORDER BY s.name LIMIT " PG_STR(PG_PAGE_ROWS),
                         1,
                         {OID_TEXT}},
    /* Each page with the secret's metadata of the same snapshot. */
    [ST_LIST_VERSIONS] = {"coffer_list_versions",
                          "SELECT " ROW_COLUMNS ", octet_length(v.sealed), v.mac, "
                          "s.last_version, s.latest, s.epoch, s.mac, s.previous, s.ldigest, "
                          "s.purge_ms, s.max_versions" ROW_FROM
                          " AND v.version > $2 ORDER BY v.version LIMIT " PG_STR(PG_PAGE_ROWS),
                          2,
                          {OID_TEXT, OID_INT8}},
    [ST_KEYS_LOCK] = {"coffer_keys_lock",
                      "SELECT key_id, sealed FROM coffer_keys ORDER BY key_id FOR UPDATE",
                      0,
                      {0}},
    [ST_KEY_UPDATE] = {"coffer_key_update",
                       "UPDATE coffer_keys SET sealed = $2 WHERE key_id = $1",
                       2,
                       {OID_INT8, OID_BYTEA}},
    [ST_RESEAL_SELECT] = {"coffer_reseal_select",
                          "SELECT s.name, v.secret_id, v.version, v.key_id, v.sealed "
                          "FROM coffer_versions v JOIN coffer_secrets s ON s.id = v.secret_id "
                          "WHERE v.key_id < $1 AND v.state <> 1 "
                          "ORDER BY v.secret_id, v.version "
                          "LIMIT " PG_STR(PG_RESEAL_ROWS) " FOR UPDATE OF v",
                          1,
                          {OID_INT8}},
    [ST_RESEAL_UPDATE] = {"coffer_reseal_update",
                          "UPDATE coffer_versions SET key_id = $3, sealed = $4 "
                          "WHERE secret_id = $1 AND version = $2",
                          4,
                          {OID_INT8, OID_INT8, OID_INT8, OID_BYTEA}},
    /* One statement, one snapshot: the metadata key (id 0) and the data keys. */
    [ST_KEYS_LOAD] = {"coffer_keys_load",
                      "SELECT 0::bigint, meta_key FROM coffer_header WHERE id = 1 AND meta_key "
                      "IS NOT NULL UNION ALL SELECT key_id, sealed FROM coffer_keys ORDER BY 1",
                      0,
                      {0}},
    /* destroy: the secret's row, locked as a put locks it. */
    [ST_SECRET] = {"coffer_secret",
                   "SELECT id, last_version, latest, epoch, mac, max_versions, previous, "
                   "ldigest, purge_ms FROM coffer_secrets WHERE name = $1 FOR UPDATE",
                   1,
                   {OID_TEXT}},
    [ST_ROWS] = {"coffer_rows",
                 "SELECT version, state, mac FROM coffer_versions WHERE secret_id = $1 "
                 "ORDER BY version",
                 1,
                 {OID_INT8}},
    /* Many rows' states and MACs in one statement: $2 and $3 are text arrays of versions and
     * states, $4 their MACs end to end. A row destroyed loses its ciphertext (a disabled one
     * keeps it). */
    [ST_WRITE_ROWS] = {"coffer_write_rows",
                       "UPDATE coffer_versions v SET state = u.state, mac = substring($4 FROM "
                       "(u.ord::int - 1) * " PG_MAC_LEN " + 1 FOR " PG_MAC_LEN "), sealed = "
                       "CASE WHEN u.state = 1 THEN ''::bytea ELSE v.sealed END "
                       "FROM unnest($2::bigint[], $3::smallint[]) WITH ORDINALITY AS "
                       "u(version, state, ord) WHERE v.secret_id = $1 AND v.version = u.version",
                       4,
                       {OID_INT8, 0, 0, OID_BYTEA}},
    [ST_WRITE_META] = {"coffer_write_meta",
                       "UPDATE coffer_secrets SET latest = $2, epoch = $3, mac = $4, "
                       "ldigest = $5, purge_ms = $6, updated_ms = " PG_NOW_MS ", "
                       "max_versions = $7 WHERE id = $1",
                       7,
                       {OID_INT8, OID_INT8, OID_INT8, OID_BYTEA, OID_BYTEA, OID_INT8, OID_INT8}},
    [ST_META_KEY] = {"coffer_meta_key",
                     "SELECT meta_key FROM coffer_header WHERE id = 1 FOR UPDATE",
                     0,
                     {0}},
    [ST_SET_META_KEY] = {"coffer_set_meta_key",
                         "UPDATE coffer_header SET meta_key = $1 WHERE id = 1",
                         1,
                         {OID_BYTEA}},
    /* meta_init: secrets by id, a page at a time. */
    /* Request ids (idempotent puts), read once the secret's row is locked. */
    [ST_REQ_GET] = {"coffer_req_get",
                    "SELECT version, vhash FROM coffer_requests WHERE secret_id = $1 AND "
                    "rid = $2",
                    2,
                    {OID_INT8, OID_BYTEA}},
    /* Stored with the version; the ones past their time go in the same statement. */
    [ST_REQ_PUT] = {"coffer_req_put",
                    "WITH d AS (DELETE FROM coffer_requests WHERE created_ms < " PG_NOW_MS
                    " - " PG_STR(STORE_RID_KEEP_MS) ") INSERT INTO coffer_requests "
                                                    "(secret_id, rid, vhash, version, created_ms) "
                                                    "VALUES ($1, $2, $3, $4, " PG_NOW_MS ")",
                    4,
                    {OID_INT8, OID_BYTEA, OID_BYTEA, OID_INT8}},
    [ST_LABELS] = {"coffer_labels",
                   "SELECT name, version FROM coffer_labels WHERE secret_id = $1 ORDER BY name",
                   1,
                   {OID_INT8}},
    [ST_LABELS_DEL] = {"coffer_labels_del",
                       "DELETE FROM coffer_labels WHERE secret_id = $1",
                       1,
                       {OID_INT8}},
    /* $2 and $3: text arrays of names (validated: [A-Za-z0-9._-]) and versions. */
    [ST_LABEL_INS] = {"coffer_label_ins",
                      "INSERT INTO coffer_labels (secret_id, name, version) SELECT $1, u.name, "
                      "u.version FROM unnest($2::text[], $3::bigint[]) AS u(name, version)",
                      3,
                      {OID_INT8, 0, 0}},
    /* One statement, one snapshot: the metadata (0-6) and each label (7-8; NULL: none). */
    [ST_LABELS_GET] = {"coffer_labels_get",
                       "SELECT s.last_version, s.latest, s.epoch, s.mac, s.previous, s.ldigest, "
                       "s.purge_ms, l.name, l.version, s.description, s.tags, s.created_ms, "
                       "s.updated_ms, s.max_versions FROM coffer_secrets s LEFT JOIN "
                       "coffer_labels l ON l.secret_id = s.id WHERE s.name = $1 "
                       "ORDER BY l.name COLLATE \"C\"",
                       1,
                       {OID_TEXT}},
    /* Names hold only A-Z a-z 0-9 . _ -, all below '~': prefix..prefix~ is the prefix's range. */
    [ST_LIST_PAGE] = {"coffer_list_page",
                      "SELECT s.name, (SELECT count(*) FROM coffer_versions v WHERE v.secret_id "
                      "= s.id AND v.state = 0) FROM coffer_secrets s WHERE s.purge_ms = 0 AND "
                      "s.name > $1 AND s.name >= $2 AND s.name < $2 || '~' ORDER BY s.name "
                      "LIMIT $3",
                      3,
                      {OID_TEXT, OID_TEXT, OID_INT8}},
    [ST_SECRET_PAGE] = {"coffer_secret_page",
                        "SELECT id, name, last_version, latest, epoch, mac FROM coffer_secrets "
                        "WHERE id > $1 ORDER BY id LIMIT " PG_STR(PG_PAGE_ROWS),
                        1,
                        {OID_INT8}},
};

/* Schema version 1. No user data in DDL, so it runs as plain text. */
static const char schema_v1[] =
    "CREATE TABLE coffer_meta ("
    " id integer PRIMARY KEY CHECK (id = 1),"
    " schema_version integer NOT NULL,"
    " gen bigint NOT NULL,"
    /* Names this store (tables may be dropped and made again: a new instance). */
    " instance text NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text));"
    "CREATE TABLE coffer_header ("
    " id integer PRIMARY KEY CHECK (id = 1),"
    " store_id bytea NOT NULL,"
    " kdf_salt bytea NOT NULL,"
    " kdf_opslimit bigint NOT NULL,"
    " kdf_memlimit bigint NOT NULL,"
    " first_key_id bigint NOT NULL);"
    "CREATE TABLE coffer_keys ("
    " key_id bigint PRIMARY KEY,"
    " sealed bytea NOT NULL);"
    "CREATE TABLE coffer_secrets ("
    " id bigserial PRIMARY KEY,"
    " name text COLLATE \"C\" NOT NULL UNIQUE,"
    " last_version bigint NOT NULL CHECK (last_version > 0));"
    "CREATE TABLE coffer_versions ("
    " secret_id bigint NOT NULL REFERENCES coffer_secrets (id),"
    " version bigint NOT NULL CHECK (version > 0),"
    " key_id bigint NOT NULL,"
    " state smallint NOT NULL DEFAULT 0,"
    " created_ms bigint NOT NULL,"
    " sealed bytea NOT NULL,"
    " PRIMARY KEY (secret_id, version));"
    /* Ciphertext does not compress: do not let TOAST try. */
    "ALTER TABLE coffer_versions ALTER COLUMN sealed SET STORAGE EXTERNAL;"
    "INSERT INTO coffer_meta (id, schema_version, gen) VALUES (1, 1, 0);";

/*
 * Schema 1 -> 2: metadata MACs. The metadata key, and per secret the newest enabled version, the
 * number of versions destroyed and the MAC; per version its MAC. They start empty: the core
 * fills them (meta_init) when a handle with the master key first opens the store. A coffer from
 * before this that still has the store open would insert versions without a MAC, and their
 * secrets would then fail their check; coffer_versions.mac NOT NULL without a default refuses
 * such puts instead (existing rows get '' first: "no MAC").
 */
static const char schema_v2[] =
    "ALTER TABLE coffer_header ADD COLUMN meta_key bytea;"
    "ALTER TABLE coffer_secrets ADD COLUMN latest bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN epoch bigint NOT NULL DEFAULT 0, ADD COLUMN mac bytea;"
    "ALTER TABLE coffer_versions ADD COLUMN mac bytea NOT NULL DEFAULT ''::bytea;"
    "ALTER TABLE coffer_versions ALTER COLUMN mac DROP DEFAULT;";

/*
 * Schema 2 -> 3: the lifecycle (docs/lifecycle.md). Per secret its retention (max_versions, 0:
 * none), the version latest before the newest put and the digest of its custom labels (both
 * MAC'd; NULL digest: no labels); the custom labels; the request ids of idempotent puts, each
 * only as a keyed hash, with the keyed hash of the value it put and the version it made,
 * kept at least 24 hours. Version state 2 (disabled) needs no change. Self-contained: it
 * assumes only schema 2 before it.
 */
static const char schema_v3[] =
    "ALTER TABLE coffer_secrets ADD COLUMN max_versions bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN previous bigint NOT NULL DEFAULT 0, ADD COLUMN ldigest bytea,"
    " ADD COLUMN purge_ms bigint NOT NULL DEFAULT 0, ADD COLUMN description text,"
    " ADD COLUMN tags text, ADD COLUMN created_ms bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN updated_ms bigint NOT NULL DEFAULT 0;"
    "UPDATE coffer_secrets s SET created_ms = coalesce((SELECT min(created_ms) FROM "
    " coffer_versions v WHERE v.secret_id = s.id), 0), updated_ms = coalesce((SELECT "
    " max(created_ms) FROM coffer_versions v WHERE v.secret_id = s.id), 0);"
    "CREATE INDEX coffer_secrets_purge ON coffer_secrets (purge_ms) WHERE purge_ms > 0;"
    "CREATE TABLE coffer_labels ("
    " secret_id bigint NOT NULL REFERENCES coffer_secrets (id),"
    " name text COLLATE \"C\" NOT NULL,"
    " version bigint NOT NULL,"
    " PRIMARY KEY (secret_id, name));"
    "CREATE TABLE coffer_requests ("
    " secret_id bigint NOT NULL REFERENCES coffer_secrets (id),"
    " rid bytea NOT NULL,"
    " vhash bytea NOT NULL,"
    " version bigint NOT NULL,"
    " created_ms bigint NOT NULL,"
    " PRIMARY KEY (secret_id, rid));"
    "CREATE INDEX coffer_requests_by_age ON coffer_requests (created_ms);"
    /* One chain per handle (a server's worker, a CLI run): writers never queue on a shared
     * chain head. */
    "CREATE TABLE coffer_audit ("
    " id bigserial PRIMARY KEY,"
    " chain text NOT NULL,"
    " seq bigint NOT NULL,"
    " ts_ms bigint NOT NULL,"
    " principal text NOT NULL,"
    " action text NOT NULL,"
    " secret text NOT NULL,"
    " version text NOT NULL,"
    " outcome integer NOT NULL,"
    " error text NOT NULL,"
    " rid text NOT NULL,"
    " mac bytea NOT NULL,"
    " UNIQUE (chain, seq));";

/*
 * Schema 3 -> 4: declarations (issue 13 item 8). Which service declared which secret, with which
 * actions (a bit set, 0: the secret alone). Self-contained: it only adds a table.
 */
static const char schema_decl[] = "CREATE TABLE coffer_declarations ("
                                  " service text COLLATE \"C\" NOT NULL,"
                                  " secret text COLLATE \"C\" NOT NULL,"
                                  " actions integer NOT NULL,"
                                  " declared_ms bigint NOT NULL,"
                                  " PRIMARY KEY (service, secret));";

/* Migrations from version i to i + 1 go at index i. */
static const char *const migrations[PG_SCHEMA_VERSION] = {
    [0] = schema_v1, [1] = schema_v2, [2] = schema_v3, [3] = schema_decl};

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                              */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const char *p, int len)
{
	uint64_t v = 0;
	for (int i = 0; i < len; i++)
		v = v << 8 | (uint8_t)p[i];
	return v;
}

/* A binary integer column of the expected width; 0 if NULL or of another width. */
static int col_uint(const PGresult *r, int row, int col, int width, uint64_t *v)
{
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != width)
		return 0;
	*v = get_be(PQgetvalue(r, row, col), width);
	return 1;
}

/* A MAC column: copied when it has the one valid length; otherwise len says 0 (NULL or empty:
 * none) or 1 (something else, which never verifies). */
static void col_mac(const PGresult *r, int row, int col, uint8_t mac[STORE_MAC_LEN], size_t *len)
{
	size_t n = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);
	memset(mac, 0, STORE_MAC_LEN);
	*len = n == 0 ? 0 : n == STORE_MAC_LEN ? n : 1;
	if (n == STORE_MAC_LEN)
		memcpy(mac, PQgetvalue(r, row, col), n);
}

/* Columns first..first+3: last_version, latest, epoch, mac. 0 if malformed. */
static int col_meta(const PGresult *r, int row, int first, store_meta *m)
{
	memset(m, 0, sizeof *m);
	if (!col_uint(r, row, first, 8, &m->last_version) ||
	    !col_uint(r, row, first + 1, 8, &m->latest) ||
	    !col_uint(r, row, first + 2, 8, &m->epoch))
		return 0;
	col_mac(r, row, first + 3, m->mac, &m->mac_len);
	return 1;
}

/* Columns col .. col + 2: previous, the label digest (a digest of another length is kept as
 * one byte that never verifies) and purge_ms. 0 if malformed. */
static int col_ext(const PGresult *r, int row, int col, store_meta *m)
{
	if (!col_uint(r, row, col, 8, &m->previous) || !col_uint(r, row, col + 2, 8, &m->purge_ms))
		return 0;
	size_t n = PQgetisnull(r, row, col + 1) ? 0 : (size_t)PQgetlength(r, row, col + 1);
	memset(m->ldigest, 0, sizeof m->ldigest);
	m->ldigest_len = n == 0 ? 0 : n == STORE_DIGEST_LEN ? n : 1;
	if (n == STORE_DIGEST_LEN)
		memcpy(m->ldigest, PQgetvalue(r, row, col + 1), n);
	return 1;
}

/* Decimal payload of a notification; 0 if malformed. */
static int parse_u64(const char *s, uint64_t *v)
{
	uint64_t n = 0;
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10)
			return 0;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return 1;
}

/* Mask every occurrence of `secret` in `buf` (same length, so it never grows). */
static void scrub(char *buf, const char *secret)
{
	size_t n = secret != NULL ? strlen(secret) : 0;
	char *p;
	if (n == 0)
		return;
	while ((p = strstr(buf, secret)) != NULL)
		memset(p, '*', n);
}

/* Copy a libpq message: first line only (the rest is hints and context), newline-free. */
static void copy_line(char *dst, size_t len, const char *src)
{
	size_t n = 0;
	if (src == NULL)
		src = "";
	while (src[n] != '\0' && src[n] != '\n' && n + 1 < len)
		n++;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void set_err(pg_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(pg_store *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	scrub(s->err, s->conn != NULL ? PQpass(s->conn) : NULL);
}

/* Map a server error to a coffer code; the SQLSTATE class decides. */
static int sqlstate_rc(const char *state)
{
	if (state == NULL)
		return COFFER_EIO;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		return COFFER_EUNAVAIL; /* connection failure, server shutting down */
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0)
		return COFFER_EBUSY; /* serialization failure, deadlock, lock not available */
	if (strcmp(state, "53200") == 0)
		return COFFER_ENOMEM;
	if (strcmp(state, "53100") == 0)
		return COFFER_EFULL; /* disk_full */
	if (strcmp(state, "25006") == 0)
		return COFFER_EUNAVAIL; /* a read-only server: a standby, or the old primary */
	if (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0)
		return COFFER_ECORRUPT; /* our tables or columns are gone */
	return COFFER_EIO;
}

/*
 * Check a result. On failure set the message (the server's primary message and SQLSTATE only:
 * never the DETAIL, which may quote row contents), remember whether the connection was lost,
 * and return the code. Never clears r.
 */
static int res_rc(pg_store *s, const PGresult *r, ExecStatusType want, const char *what)
{
	const char *state;
	char line[256];
	int rc;

	if (r != NULL && PQresultStatus(r) == want)
		return COFFER_OK;
	state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	copy_line(line, sizeof line,
	          r != NULL && PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) != NULL
	              ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
	              : PQerrorMessage(s->conn));
	rc = sqlstate_rc(state);
	s->lost = PQstatus(s->conn) != CONNECTION_OK || rc == COFFER_EUNAVAIL;
	if (s->lost && state != NULL && strcmp(state, "25006") == 0) {
		/* Treated as lost, so the next attempt reconnects (a multi-host URL with
		 * target_session_attrs=read-write then finds the new primary). */
		set_err(s, "PostgreSQL refused a write during %s: the server is read-only", what);
		return COFFER_EUNAVAIL;
	}
	if (s->lost) {
		set_err(s, "lost the connection to PostgreSQL during %s: %s", what, line);
		return COFFER_EUNAVAIL;
	}
	if (r != NULL && PQresultStatus(r) != PGRES_FATAL_ERROR && state == NULL)
		set_err(s, "unexpected PostgreSQL reply during %s", what);
	else if (rc == COFFER_EFULL)
		set_err(s,
		        "PostgreSQL error during %s: the database server's disk is full (free some "
		        "space there and try again): %s (SQLSTATE %s)",
		        what, line, state);
	else
		set_err(s, "PostgreSQL error during %s: %s (SQLSTATE %s)", what, line,
		        state != NULL ? state : "none");
	return rc;
}

/* Run a prepared statement with binary parameters and binary results. */
static PGresult *run(pg_store *s, int st, const char *const *vals, const int *lens)
{
	static const int formats[7] = {1, 1, 1, 1, 1, 1, 1};
	return PQexecPrepared(s->conn, stmts[st].name, stmts[st].nparams, vals, lens, formats, 1);
}

/* Run a fixed command (BEGIN, COMMIT, ...) and check it. */
static int exec_cmd(pg_store *s, const char *sql, const char *what)
{
	PGresult *r = PQexec(s->conn, sql);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, what);
	PQclear(r);
	return rc;
}

static void rollback(pg_store *s)
{
	s->sealing = 0;
	if (PQstatus(s->conn) == CONNECTION_OK)
		PQclear(PQexec(s->conn, "ROLLBACK"));
}

/*
 * Handles of one process on the same store share the newest generation any of them has seen, so
 * a put through one handle is seen at once through the others (read-your-writes inside a
 * process, as with SQLite); other processes learn it by NOTIFY. A shared value only ever rises,
 * and a higher token can only cause cache misses, never a stale hit.
 */
#define PG_SHARED_MAX 64 /* distinct stores per process that share; beyond, a handle is alone */

static struct {
	char instance[33];
	uint64_t gen;
} shared_gens[PG_SHARED_MAX];
static size_t nshared;
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t *shared_slot(const char *instance, size_t len)
{
	uint64_t *slot = NULL;
	if (len == 0 || len >= sizeof shared_gens[0].instance)
		return NULL;
	pthread_mutex_lock(&shared_mu);
	for (size_t i = 0; i < nshared && slot == NULL; i++)
		if (strlen(shared_gens[i].instance) == len &&
		    memcmp(shared_gens[i].instance, instance, len) == 0)
			slot = &shared_gens[i].gen;
	if (slot == NULL && nshared < PG_SHARED_MAX) {
		memcpy(shared_gens[nshared].instance, instance, len);
		slot = &shared_gens[nshared++].gen;
	}
	pthread_mutex_unlock(&shared_mu);
	return slot;
}

static void shared_raise(uint64_t *slot, uint64_t gen)
{
	uint64_t cur = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	while (cur < gen &&
	       !__atomic_compare_exchange_n(slot, &cur, gen, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

/* The token for the core: the session epoch in the high bits, so a reconnect changes it. */
static uint64_t token(const pg_store *s, uint64_t gen)
{
	return (uint64_t)s->epoch << PG_GEN_BITS | (gen & ((UINT64_C(1) << PG_GEN_BITS) - 1));
}

static void learn_gen(pg_store *s, uint64_t gen, int from_table)
{
	if (gen > s->gen)
		s->gen = gen;
	if (s->shared != NULL)
		shared_raise(s->shared, gen);
	if (from_table)
		s->checked_ms = now_ms();
}

/* The newest generation this handle knows of, its own or another handle's. */
static uint64_t newest_gen(const pg_store *s)
{
	uint64_t g = s->shared != NULL ? __atomic_load_n(s->shared, __ATOMIC_ACQUIRE) : 0;
	return g > s->gen ? g : s->gen;
}

/*
 * libpq would print notices on stderr; a library never prints. A FATAL one arriving while the
 * session is idle (pg_terminate_backend, a shutdown) means the session is gone, though the
 * socket may not show it yet: remember it so generation() reconnects instead of trusting
 * notifications that will never come.
 */
static void on_notice(void *arg, const PGresult *r)
{
	pg_store *s = arg;
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
		s->doomed = 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Sessions: connect, schema, LISTEN, prepare                                                 */

static int load_gen(pg_store *s)
{
	PGresult *r = run(s, ST_GEN, NULL, NULL);
	uint64_t gen;
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading the store generation");
	if (rc == COFFER_OK && (PQntuples(r) != 1 || !col_uint(r, 0, 0, 8, &gen))) {
		set_err(s, "the coffer_meta table of this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	if (rc == COFFER_OK && s->shared == NULL)
		s->shared = shared_slot(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
	if (rc == COFFER_OK)
		learn_gen(s, gen, 1);
	PQclear(r);
	return rc;
}

/* What every new session needs: LISTEN, the prepared statements, the current generation. */
static int session_setup(pg_store *s)
{
	s->doomed = 0;
	int rc = exec_cmd(s, "LISTEN " PG_CHANNEL, "LISTEN");
	/* A write stuck behind someone else's lock (a maintenance ALTER, a forgotten session)
	 * fails as busy after 10 s instead of hanging every put; a lock_timeout given in the
	 * URL (options=-c lock_timeout=...) is kept. */
	if (rc == COFFER_OK) {
		PGresult *r = PQexec(s->conn, "SELECT set_config('lock_timeout', '10s', false) "
		                              "WHERE current_setting('lock_timeout') = '0'");
		rc = res_rc(s, r, PGRES_TUPLES_OK, "setting lock_timeout");
		PQclear(r);
	}
	for (int i = 0; rc == COFFER_OK && i < ST_COUNT; i++) {
		PGresult *r = PQprepare(s->conn, stmts[i].name, stmts[i].sql, stmts[i].nparams,
		                        stmts[i].types);
		rc = res_rc(s, r, PGRES_COMMAND_OK, "preparing statements");
		PQclear(r);
	}
	if (rc != COFFER_OK)
		return rc;
	/* A new session may follow an outage or a failover: start a new epoch of tokens. */
	s->epoch = (uint16_t)(s->epoch + 1);
	if (s->epoch == 0)
		s->epoch = 1;
	s->gen = 0;
	return load_gen(s);
}

/* Reset a broken connection and set the session up again. */
static int reconnect(pg_store *s)
{
	int64_t t = now_ms();
	char line[256];

	if (s->failed_ms != 0 && t - s->failed_ms < PG_RETRY_PAUSE_MS)
		return COFFER_EUNAVAIL; /* keep the message of the failed attempt */
	PQreset(s->conn);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		s->failed_ms = t;
		copy_line(line, sizeof line, PQerrorMessage(s->conn));
		set_err(s, "cannot connect to PostgreSQL: %s", line);
		return COFFER_EUNAVAIL;
	}
	s->failed_ms = 0;
	return session_setup(s);
}

static int ensure_conn(pg_store *s)
{
	s->lost = 0;
	if (PQstatus(s->conn) == CONNECTION_OK && !s->doomed)
		return COFFER_OK;
	return reconnect(s);
}

/* Read the schema version, or 0 if this database has no coffer store. */
static int schema_version(pg_store *s, int *version)
{
	/* A scan of pg_class, not to_regclass(): under the schema lock the lookup must see a table
	 * that another opener committed while we waited, and the syscache (which to_regclass
	 * uses) may still hold a negative entry from before; locking pg_class makes the session
	 * accept pending invalidations. */
	PGresult *r = PQexec(s->conn, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
	                              "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	                              "WHERE c.relname = 'coffer_meta' "
	                              "AND n.nspname = ANY (current_schemas(false)))");
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "looking for the coffer schema");
	int exists = rc == COFFER_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	*version = 0;
	if (rc != COFFER_OK || !exists)
		return rc;
	r = PQexec(s->conn, "SELECT schema_version FROM coffer_meta WHERE id = 1");
	rc = res_rc(s, r, PGRES_TUPLES_OK, "reading the schema version");
	if (rc == COFFER_OK && PQntuples(r) == 1) {
		const char *v = PQgetvalue(r, 0, 0);
		uint64_t n;
		if (parse_u64(v, &n) && n > 0 && n < 1000000)
			*version = (int)n;
	}
	if (rc == COFFER_OK && *version == 0) {
		set_err(s, "the coffer_meta table of this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	PQclear(r);
	return rc;
}

/* Apply migrations from `from` up to PG_SCHEMA_VERSION; inside the caller's transaction. */
static int migrate(pg_store *s, int from)
{
	for (int v = from; v < PG_SCHEMA_VERSION; v++) {
		int rc = exec_cmd(s, migrations[v], "creating or migrating the schema");
		if (rc != COFFER_OK)
			return rc;
	}
	/* schema_v1 records version 1; whatever ran, record where it ended. */
	PGresult *r = PQexec(s->conn, "UPDATE coffer_meta SET schema_version = " PG_STR(
	                                  PG_SCHEMA_VERSION) " WHERE id = 1");
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "recording the schema version");
	PQclear(r);
	return rc;
}

static int check_version(pg_store *s, int v)
{
	if (v > PG_SCHEMA_VERSION) {
		set_err(s,
		        "this database holds a coffer store of schema version %d; this coffer "
		        "knows up to %d: upgrade coffer",
		        v, PG_SCHEMA_VERSION);
		return COFFER_ECORRUPT;
	}
	return COFFER_OK;
}

/*
 * Make sure the schema exists and is current. The common case (it is) costs two reads and no
 * lock; otherwise the work is done under a transaction-scoped advisory lock, re-checking first,
 * so concurrent openers of a fresh database create it exactly once.
 */
static int schema_ensure(pg_store *s, int create)
{
	int v, rc = schema_version(s, &v);
	if (rc != COFFER_OK || v == PG_SCHEMA_VERSION)
		return rc != COFFER_OK ? rc : COFFER_OK;
	if ((rc = check_version(s, v)) != COFFER_OK)
		return rc;
	if (v == 0 && !create) {
		set_err(s, "this database holds no coffer store");
		return COFFER_ENOTFOUND;
	}
	if ((rc = exec_cmd(s, PG_BEGIN, "BEGIN")) != COFFER_OK)
		return rc;
	/* The key is an arbitrary constant ("coffer" in ASCII) shared by every coffer. */
	rc = exec_cmd(s, "DO $$ BEGIN PERFORM pg_advisory_xact_lock(109227237434738); END $$",
	              "locking the schema");
	if (rc == COFFER_OK)
		rc = schema_version(s, &v);
	if (rc == COFFER_OK)
		rc = check_version(s, v);
	if (rc == COFFER_OK && v == 0 && !create) {
		set_err(s, "this database holds no coffer store");
		rc = COFFER_ENOTFOUND;
	}
	if (rc == COFFER_OK && v < PG_SCHEMA_VERSION)
		rc = migrate(s, v);
	if (rc == COFFER_OK)
		return exec_cmd(s, "COMMIT", "creating the schema");
	rollback(s);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* open / close / errmsg / default_key_file                                                   */

static void open_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* Parse only to validate: libpq's parse errors may quote the password, so none is shown. */
static int url_valid(const char *location)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(location, &perr);
	if (perr != NULL)
		PQfreemem(perr);
	if (opts == NULL)
		return 0;
	PQconninfoFree(opts);
	return 1;
}

static PGconn *connect_url(const char *location)
{
	/* Our defaults come first, so the URL's own settings override them. */
	static const char *const keys[] = {"connect_timeout",
	                                   "application_name",
	                                   "keepalives_idle",
	                                   "keepalives_interval",
	                                   "keepalives_count",
	                                   "dbname",
	                                   NULL};
	const char *vals[] = {"10", "coffer", "30", "10", "3", location, NULL};
	return PQconnectdbParams(keys, vals, 1);
}

static int pg_open(const char *location, unsigned flags, store **out, char *err, size_t errlen)
{
	pg_store *s;
	int rc;

	if (location == NULL || !url_valid(location)) {
		open_err(err, errlen,
		         "invalid PostgreSQL URL (not shown, as it may contain a password)");
		return COFFER_EINVAL;
	}
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return COFFER_ENOMEM;
	s->conn = connect_url(location);
	if (s->conn == NULL) {
		free(s);
		return COFFER_ENOMEM;
	}
	PQsetNoticeReceiver(s->conn, on_notice, s);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		char line[256];
		copy_line(line, sizeof line, PQerrorMessage(s->conn));
		set_err(s, "cannot connect to PostgreSQL: %s", line);
		rc = COFFER_EUNAVAIL;
	} else if (PQserverVersion(s->conn) < 90500) {
		set_err(s, "PostgreSQL 9.5 or newer is needed (INSERT ... ON CONFLICT)");
		rc = COFFER_EINVAL;
	} else {
		rc = schema_ensure(s, (flags & STORE_OPEN_CREATE) != 0);
		if (rc == COFFER_OK)
			rc = session_setup(s);
	}
	if (rc != COFFER_OK) {
		open_err(err, errlen, s->err);
		PQfinish(s->conn);
		free(s);
		return rc;
	}
	*out = (store *)s;
	return COFFER_OK;
}

static void pg_close(store *st)
{
	pg_store *s = (pg_store *)st;
	if (s == NULL)
		return;
	PQfinish(s->conn);
	free(s);
}

static const char *pg_errmsg(store *st)
{
	pg_store *s = (pg_store *)st;
	return s != NULL ? s->err : "no store";
}

/* A database has no "beside": the user gives COFFER_MASTER_KEY, a key file or a passphrase. */
static int pg_default_key_file(const char *location, char *buf, size_t len)
{
	return COFFER_ENOTFOUND;
}

/* ---------------------------------------------------------------------------------------- */
/* bootstrap / keys_load                                                                      */

static int read_header(pg_store *s, store_boot *b)
{
	PGresult *r = run(s, ST_READ_HEADER, NULL, NULL);
	uint64_t ops, mem, kid;
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading the store header");
	if (rc != COFFER_OK)
		goto out;
	if (PQntuples(r) == 0) {
		set_err(s, "this store has no header yet");
		rc = COFFER_ENOTFOUND;
		goto out;
	}
	if (PQntuples(r) != 1 || PQgetlength(r, 0, 0) != STORE_ID_LEN ||
	    PQgetlength(r, 0, 1) != STORE_SALT_LEN || !col_uint(r, 0, 2, 8, &ops) ||
	    !col_uint(r, 0, 3, 8, &mem) || !col_uint(r, 0, 4, 8, &kid) || kid > UINT32_MAX ||
	    PQgetlength(r, 0, 5) > STORE_SEALED_KEY_MAX ||
	    PQgetlength(r, 0, 6) > STORE_SEALED_KEY_MAX) {
		set_err(s, "the store header in this database is damaged");
		rc = COFFER_ECORRUPT;
		goto out;
	}
	memset(b, 0, sizeof *b);
	memcpy(b->store_id, PQgetvalue(r, 0, 0), STORE_ID_LEN);
	memcpy(b->kdf_salt, PQgetvalue(r, 0, 1), STORE_SALT_LEN);
	b->kdf_opslimit = ops;
	b->kdf_memlimit = mem;
	b->first_key_id = (uint32_t)kid;
	b->sealed_key_len = (size_t)PQgetlength(r, 0, 5);
	memcpy(b->sealed_key, PQgetvalue(r, 0, 5), b->sealed_key_len);
	b->sealed_meta_key_len = (size_t)PQgetlength(r, 0, 6);
	memcpy(b->sealed_meta_key, PQgetvalue(r, 0, 6), b->sealed_meta_key_len);
out:
	PQclear(r);
	return rc;
}

/* Insert the proposal if there is no header; returns whether it was ours. No COMMIT. */
static int insert_header(pg_store *s, const store_boot *p, int *created)
{
	uint8_t ops[8], mem[8], kid[8];
	put_be64(ops, p->kdf_opslimit);
	put_be64(mem, p->kdf_memlimit);
	put_be64(kid, p->first_key_id);
	const char *hv[6] = {(const char *)p->store_id,
	                     (const char *)p->kdf_salt,
	                     (const char *)ops,
	                     (const char *)mem,
	                     (const char *)kid,
	                     p->sealed_meta_key_len > 0 ? (const char *)p->sealed_meta_key : NULL};
	const int hl[6] = {STORE_ID_LEN, STORE_SALT_LEN, 8, 8, 8, (int)p->sealed_meta_key_len};
	PGresult *r = run(s, ST_BOOT_HEADER, hv, hl);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "writing the store header");
	*created = rc == COFFER_OK && PQntuples(r) == 1;
	PQclear(r);
	if (rc != COFFER_OK || !*created)
		return rc;
	/* The header and its key commit together: whoever sees one sees both. */
	const char *kv[2] = {(const char *)kid, (const char *)p->sealed_key};
	const int kl[2] = {8, (int)p->sealed_key_len};
	r = run(s, ST_BOOT_KEY, kv, kl);
	rc = res_rc(s, r, PGRES_COMMAND_OK, "writing the first data key");
	PQclear(r);
	return rc;
}

/* Propose a header (insert-if-absent) and read back the one in force, in one transaction. */
static int bootstrap_once(pg_store *s, const store_boot *p, store_boot *actual, int *created)
{
	store_boot got;
	int made = 0;
	int rc = exec_cmd(s, PG_BEGIN, "BEGIN");
	if (rc == COFFER_OK)
		rc = insert_header(s, p, &made);
	if (rc == COFFER_OK)
		rc = read_header(s, &got);
	if (rc != COFFER_OK) {
		rollback(s);
		return rc;
	}
	if ((rc = exec_cmd(s, "COMMIT", "COMMIT of the store header")) != COFFER_OK)
		return rc;
	*actual = got;
	*created = made;
	return COFFER_OK;
}

/* proposal == NULL: only read the header (one statement, no transaction needed). */
static int read_once(pg_store *s, const store_boot *p, store_boot *actual, int *created)
{
	store_boot got;
	int rc = read_header(s, &got);
	if (rc == COFFER_OK) {
		*actual = got;
		*created = 0;
	}
	return rc;
}

static int pg_bootstrap(store *st, const store_boot *proposal, store_boot *actual, int *created)
{
	pg_store *s = (pg_store *)st;
	int (*once)(pg_store *, const store_boot *, store_boot *, int *) =
	    proposal != NULL ? bootstrap_once : read_once;
	if (proposal != NULL &&
	    (proposal->sealed_key_len == 0 || proposal->sealed_key_len > STORE_SEALED_KEY_MAX)) {
		set_err(s, "bad sealed key length");
		return COFFER_EMISUSE;
	}
	int rc = ensure_conn(s);
	if (rc == COFFER_OK)
		rc = once(s, proposal, actual, created);
	/* Lost before COMMIT was answered: retrying is safe (insert-if-absent, then read back).
	 * Lost during COMMIT: *created may then read 0 for a header we wrote; the header in
	 * force, which is what matters, is right either way. */
	if (rc == COFFER_EUNAVAIL && s->lost && reconnect(s) == COFFER_OK)
		rc = once(s, proposal, actual, created);
	return rc;
}

typedef struct keys_ctx {
	store_key_cb cb;
	void *ctx;
	size_t emitted;
} keys_ctx;

static int keys_once(pg_store *s, keys_ctx *k)
{
	PGresult *r = run(s, ST_KEYS_LOAD, NULL, NULL);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading the keyring");
	for (int i = 0; rc == COFFER_OK && i < PQntuples(r); i++) {
		uint64_t id;
		/* id 0 is the metadata key, and comes first; a data key never has id 0. */
		if (!col_uint(r, i, 0, 8, &id) || id > UINT32_MAX ||
		    (id == STORE_META_KEY_ID && i > 0)) {
			set_err(s, "the keyring in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		k->emitted++;
		rc = k->cb(k->ctx, (uint32_t)id, (const uint8_t *)PQgetvalue(r, i, 1),
		           (size_t)PQgetlength(r, i, 1));
	}
	PQclear(r);
	return rc;
}

static int pg_keys_load(store *st, store_key_cb cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	keys_ctx k = {cb, ctx, 0};
	if (s->sealing) /* called back from inside a put or re-encrypt transaction */
		return keys_once(s, &k);
	int rc = ensure_conn(s);
	if (rc == COFFER_OK)
		rc = keys_once(s, &k);
	if (rc == COFFER_EUNAVAIL && s->lost && k.emitted == 0 && reconnect(s) == COFFER_OK)
		rc = keys_once(s, &k);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* put                                                                                        */

typedef struct put_slot {
	const char *name;
	size_t len;
	size_t idx;         /* position in the caller's array */
	uint64_t secret_id; /* filled by reserve() */
	uint64_t version;
	struct put_slot *head; /* the first slot of this secret: it holds meta */
	store_meta meta; /* head only: the secret as it stands after the items sealed so far */
} put_slot;

/* Byte order of names, then array order: the lock order of a batch. */
static int slot_cmp(const void *a, const void *b)
{
	const put_slot *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);
	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int same_name(const put_slot *a, const put_slot *b)
{
	return a->len == b->len && memcmp(a->name, b->name, a->len) == 0;
}

/* Lock each distinct secret and reserve its versions, in sorted order (no deadlocks). */
static int reserve(pg_store *s, put_slot *slots, size_t n)
{
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && same_name(&slots[i], &slots[j]); j++)
			;
		uint8_t count[8];
		uint64_t id;
		store_meta *m = &slots[i].meta;
		put_be64(count, j - i);
		const char *v[2] = {slots[i].name, (const char *)count};
		const int l[2] = {(int)slots[i].len, 8};
		PGresult *r = run(s, ST_UPSERT, v, l);
		int rc = res_rc(s, r, PGRES_TUPLES_OK, "reserving version ids");
		if (rc == COFFER_OK &&
		    (PQntuples(r) != 1 || !col_uint(r, 0, 0, 8, &id) || !col_meta(r, 0, 1, m) ||
		     m->last_version < j - i ||
		     (!PQgetisnull(r, 0, 5) && !col_uint(r, 0, 5, 8, &m->rows_max)) ||
		     !col_uint(r, 0, 6, 8, &m->max_versions) || !col_ext(r, 0, 7, m))) {
			set_err(s, "unexpected reply while reserving version ids");
			rc = COFFER_EIO;
		}
		PQclear(r);
		if (rc != COFFER_OK)
			return rc;
		m->last_version -= j - i; /* what the secret was before this batch */
		for (size_t k = i; k < j; k++) {
			slots[k].secret_id = id;
			slots[k].version = m->last_version + (k - i) + 1;
			slots[k].head = &slots[i];
		}
	}
	return COFFER_OK;
}

/* The version row, and the secret's new latest and MAC (NULL MACs become '': none). */
static int insert_version(pg_store *s, const put_slot *slot, const store_seal_io *io)
{
	static const uint8_t none[1];
	uint8_t sid[8], ver[8], kid[8], prev[8];
	put_be64(sid, slot->secret_id);
	put_be64(ver, slot->version);
	put_be64(kid, io->key_id);
	put_be64(prev, io->previous);
	const char *v[7] = {(const char *)sid,
	                    (const char *)ver,
	                    (const char *)kid,
	                    (const char *)io->sealed,
	                    (const char *)(io->mac_len ? io->row_mac : none),
	                    (const char *)(io->mac_len ? io->secret_mac : none),
	                    (const char *)prev};
	const int l[7] = {8, 8, 8, (int)io->sealed_len, (int)io->mac_len, (int)io->mac_len, 8};
	PGresult *r = run(s, ST_INSERT_VERSION, v, l);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "inserting a version");
	PQclear(r);
	return rc;
}

/*
 * Every transaction that seals values (put, a re-encrypt batch) begins by taking ROW SHARE on
 * coffer_keys and then reading the newest data key, in one round trip. ROW SHARE conflicts only
 * with the EXCLUSIVE lock of keys_prune: a prune waits for the sealing transactions in flight
 * (so it sees the versions they insert) and the ones that start later read the newest key after
 * it committed; the newest key itself is never pruned. Rotation and rekey take SHARE ROW
 * EXCLUSIVE, which does not conflict with ROW SHARE: puts never wait for them.
 */
#define PG_BEGIN_SEALING                                                                           \
	PG_BEGIN "; LOCK TABLE coffer_keys IN ROW SHARE MODE; "                                    \
	         "SELECT key_id, sealed FROM coffer_keys ORDER BY key_id DESC LIMIT 1"

typedef struct pg_newest {
	store_key key;
	uint8_t buf[STORE_SEALED_KEY_MAX];
} pg_newest;

/* The reply of PG_BEGIN_SEALING (text format: a simple query). */
static int parse_newest(pg_store *s, const PGresult *r, pg_newest *nk)
{
	uint64_t id = 0;
	size_t len = 0;
	nk->key = (store_key){0, nk->buf, 0};
	if (PQntuples(r) == 0)
		return COFFER_OK; /* no header yet: the core refuses to seal */
	if (PQntuples(r) != 1 || !parse_u64(PQgetvalue(r, 0, 0), &id) || id == 0 ||
	    id > UINT32_MAX) {
		set_err(s, "the keyring in this database is damaged");
		return COFFER_ECORRUPT;
	}
	unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &len);
	if (b == NULL)
		return COFFER_ENOMEM;
	int rc = len > 0 && len <= STORE_SEALED_KEY_MAX ? COFFER_OK : COFFER_ECORRUPT;
	if (rc == COFFER_OK)
		memcpy(nk->buf, b, len);
	else
		set_err(s, "the keyring in this database is damaged");
	PQfreemem(b);
	nk->key = (store_key){(uint32_t)id, nk->buf, len};
	return rc;
}

static int begin_sealing(pg_store *s, pg_newest *nk)
{
	PGresult *r = PQexec(s->conn, PG_BEGIN_SEALING);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "BEGIN");
	if (rc == COFFER_OK)
		rc = parse_newest(s, r, nk);
	PQclear(r);
	if (rc == COFFER_OK)
		s->sealing = 1;
	else
		rollback(s);
	return rc;
}

static int read_secret_locked(pg_store *s, const char *name, size_t name_len, uint64_t *sid,
                              store_meta *m);
static int retag(pg_store *s, uint64_t sid, const char *name, size_t name_len, store_meta *m,
                 store_retag_fn cb, void *ctx);

/* Inside the open transaction, the secret locked: what the store holds for this request id. */
static int request_get(pg_store *s, const put_slot *slot, const uint8_t *rid, store_seal_io *io)
{
	uint8_t sid[8];
	put_be64(sid, slot->secret_id);
	const char *v[2] = {(const char *)sid, (const char *)rid};
	const int l[2] = {8, STORE_RID_LEN};
	PGresult *r = run(s, ST_REQ_GET, v, l);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading a request id");
	if (rc == COFFER_OK && PQntuples(r) == 1) {
		if (!col_uint(r, 0, 0, 8, &io->rid_version) ||
		    PQgetlength(r, 0, 1) != STORE_RID_LEN) {
			set_err(s, "a request id row in this database is damaged");
			rc = COFFER_ECORRUPT;
		} else {
			memcpy(io->rid_vhash, PQgetvalue(r, 0, 1), STORE_RID_LEN);
		}
	}
	PQclear(r);
	return rc;
}

static int request_put(pg_store *s, const put_slot *slot, const uint8_t *rid,
                       const store_seal_io *io)
{
	uint8_t sid[8], ver[8];
	put_be64(sid, slot->secret_id);
	put_be64(ver, slot->version);
	const char *v[4] = {(const char *)sid, (const char *)rid, (const char *)io->vhash,
	                    (const char *)ver};
	const int l[4] = {8, STORE_RID_LEN, STORE_RID_LEN, 8};
	PGresult *r = run(s, ST_REQ_PUT, v, l);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "storing a request id");
	PQclear(r);
	return rc;
}

/* Retention after item i: the secret with all its rows through the core, as a destroy. The
 * secret's next item in the batch sees what it left. */
static int retain(pg_store *s, const put_slot *slot, const store_seal_io *io, store_meta *m)
{
	uint64_t sid = 0;
	store_meta now;
	int rc = read_secret_locked(s, slot->name, slot->len, &sid, &now);
	if (rc == COFFER_OK)
		rc = retag(s, sid, slot->name, slot->len, &now, io->retain, io->retain_ctx);
	if (rc == COFFER_OK) {
		now.rows_max = m->rows_max;
		*m = now;
	}
	return rc;
}

/* Seal and insert every item in array order; `byidx` maps an array index to its slot. *replay
 * is set when a request id was done before (a batch of one: nothing is written). */
static int seal_all(pg_store *s, put_slot *const *byidx, store_put *items, size_t n,
                    const store_key *newest, store_seal_fn seal, void *ctx, int *replay)
{
	for (size_t i = 0; i < n; i++) {
		store_meta *m = &byidx[i]->head->meta;
		store_seal_io io;
		memset(&io, 0, sizeof io);
		io.version = byidx[i]->version;
		io.newest = newest;
		io.before = *m;
		int rc =
		    items[i].rid != NULL ? request_get(s, byidx[i], items[i].rid, &io) : COFFER_OK;
		if (rc == COFFER_OK)
			rc = seal(ctx, i, &io);
		if (rc == COFFER_OK && io.replay) {
			byidx[i]->version = io.rid_version;
			*replay = 1;
			return COFFER_OK;
		}
		if (rc == COFFER_OK &&
		    (io.sealed == NULL || io.sealed_len == 0 || io.sealed_len > INT32_MAX)) {
			set_err(s, "the sealed value is empty or too large");
			rc = COFFER_EMISUSE;
		}
		if (rc == COFFER_OK)
			rc = insert_version(s, byidx[i], &io);
		if (rc == COFFER_OK && items[i].rid != NULL)
			rc = request_put(s, byidx[i], items[i].rid, &io);
		items[i].version = byidx[i]->version; /* known now: the audit entry names it */
		free(io.sealed);
		if (rc != COFFER_OK)
			return rc;
		/* The next item of this secret sees what this one left. */
		m->previous = io.previous;
		m->last_version = m->latest = io.version;
		memcpy(m->mac, io.secret_mac, STORE_MAC_LEN);
		m->mac_len = io.mac_len;
		if (io.retain != NULL && (rc = retain(s, byidx[i], &io, m)) != COFFER_OK)
			return rc;
	}
	return COFFER_OK;
}

static int bump_gen(pg_store *s, uint64_t *gen)
{
	PGresult *r = run(s, ST_BUMP, NULL, NULL);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "bumping the store generation");
	if (rc == COFFER_OK && (PQntuples(r) != 1 || !col_uint(r, 0, 0, 8, gen))) {
		set_err(s, "the coffer_meta table of this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	PQclear(r);
	return rc;
}

/* COMMIT; a connection lost here leaves the outcome unknown. */
static int commit(pg_store *s)
{
	PGresult *r = PQexec(s->conn, "COMMIT");
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "COMMIT");
	if (rc == COFFER_EUNAVAIL && s->lost)
		set_err(s,
		        "lost the connection to PostgreSQL during COMMIT: the put may or may not "
		        "have been committed");
	else if (rc == COFFER_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		set_err(s, "PostgreSQL rolled the put back");
		rc = COFFER_EIO;
	}
	PQclear(r);
	return rc;
}

static int audit_write(pg_store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx);

/* Finish a write transaction: bump and announce the generation, COMMIT, or roll back. */
static int finish_write(pg_store *s, int rc)
{
	uint64_t gen = 0;
	size_t an = s->audit_n;
	s->audit_n = 0;
	if (rc == COFFER_OK && an > 0)
		rc = audit_write(s, s->audit_chain, an, s->audit_fn, s->audit_ctx);
	s->sealing = 0;
	if (rc == COFFER_OK)
		rc = bump_gen(s, &gen);
	if (rc != COFFER_OK) {
		rollback(s);
		if (rc == COFFER_EUNAVAIL && s->lost) {
			char why[PG_ERR_MAX];
			memcpy(why, s->err, sizeof why);
			set_err(s, "%.400s (before COMMIT: nothing was written)", why);
		}
		return rc;
	}
	rc = commit(s);
	if (rc == COFFER_OK)
		learn_gen(s, gen, 0);
	return rc;
}

/*
 * One attempt. *sealing is set once seal() has been called: from then on the attempt may not be
 * repeated (store.h: seal is called once per item).
 */
static int put_once(pg_store *s, put_slot *slots, put_slot *const *byidx, store_put *items,
                    size_t n, store_seal_fn seal, void *ctx, int *sealing, int *replay)
{
	pg_newest nk;
	int rc = begin_sealing(s, &nk);
	if (rc != COFFER_OK)
		return rc;
	rc = reserve(s, slots, n);
	if (rc == COFFER_OK) {
		*sealing = 1;
		rc = seal_all(s, byidx, items, n, &nk.key, seal, ctx, replay);
	}
	if (rc == COFFER_OK && *replay) { /* nothing to write: the reservation goes back */
		s->sealing = 0;
		rollback(s);
		return COFFER_OK;
	}
	return finish_write(s, rc);
}

static int pg_put(store *st, store_put *items, size_t n, store_seal_fn seal, void *ctx)
{
	pg_store *s = (pg_store *)st;
	put_slot *slots;
	put_slot **byidx;
	int sealing = 0, replay = 0, rc;

	if (n == 0)
		return COFFER_OK;
	slots = calloc(n, sizeof *slots);
	byidx = calloc(n, sizeof *byidx);
	if (slots == NULL || byidx == NULL) {
		free(slots);
		free(byidx);
		return COFFER_ENOMEM;
	}
	uint64_t *given = malloc(n * sizeof *given);
	if (given == NULL) {
		free(slots);
		free(byidx);
		return COFFER_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		slots[i] = (put_slot){.name = items[i].name, .len = items[i].name_len, .idx = i};
		given[i] = items[i].version;
	}
	qsort(slots, n, sizeof *slots, slot_cmp);
	for (size_t i = 0; i < n; i++)
		byidx[slots[i].idx] = &slots[i];

	rc = ensure_conn(s);
	if (rc == COFFER_OK)
		rc = put_once(s, slots, byidx, items, n, seal, ctx, &sealing, &replay);
	/* Safe to repeat only if nothing was sealed: the first attempt surely rolled back. */
	if (!sealing && ((rc == COFFER_EUNAVAIL && s->lost) || rc == COFFER_EBUSY) &&
	    (rc == COFFER_EBUSY || reconnect(s) == COFFER_OK))
		rc = put_once(s, slots, byidx, items, n, seal, ctx, &sealing, &replay);
	for (size_t i = 0; i < n; i++) {
		/* seal_all wrote each version for the audit entries; on failure the out-parameters
		 * go back to what they were. */
		items[i].version = rc == COFFER_OK ? byidx[i]->version : given[i];
		if (rc == COFFER_OK)
			items[i].replayed = replay;
	}
	free(given);
	free(slots);
	free(byidx);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* get / generation                                                                           */

typedef struct get_args {
	const char *name;
	size_t name_len;
	uint64_t version;
	store_row *out;
	store_meta *meta;
} get_args;

/* Columns first..first+3 of a version row: version, key_id, state, created_ms. */
static int parse_row_head(const PGresult *r, int i, int first, store_row *row)
{
	uint64_t ver, kid, state, created;
	if (!col_uint(r, i, first, 8, &ver) || !col_uint(r, i, first + 1, 8, &kid) ||
	    kid > UINT32_MAX || !col_uint(r, i, first + 2, 2, &state) ||
	    !col_uint(r, i, first + 3, 8, &created))
		return 0;
	memset(row, 0, sizeof *row);
	row->version = ver;
	row->key_id = (uint32_t)kid;
	row->state = (int)(int16_t)state;
	row->created_ms = (int64_t)created;
	return 1;
}

/* A get's reply: the metadata (0-4), the row (5-10, NULL if none), the generation (11). */
static int get_fill(pg_store *s, const PGresult *r, const get_args *a)
{
	store_row row;
	store_meta meta;
	uint64_t gen;
	int has_row = !PQgetisnull(r, 0, 5);
	if (!col_meta(r, 0, 0, &meta) || !col_uint(r, 0, 11, 8, &gen) ||
	    !col_ext(r, 0, 12, &meta) || !col_uint(r, 0, 15, 8, &meta.max_versions) ||
	    (!PQgetisnull(r, 0, 4) && !col_uint(r, 0, 4, 8, &meta.rows_max)) ||
	    (has_row && !parse_row_head(r, 0, 5, &row))) {
		set_err(s, "a version row of secret '%.*s' is damaged", (int)a->name_len, a->name);
		return COFFER_ECORRUPT;
	}
	if (!has_row)
		memset(&row, 0, sizeof row);
	size_t len = has_row ? (size_t)PQgetlength(r, 0, 9) : 0;
	if (len > 0) {
		row.sealed = malloc(len);
		if (row.sealed == NULL)
			return COFFER_ENOMEM;
		memcpy(row.sealed, PQgetvalue(r, 0, 9), len);
	}
	row.sealed_len = len;
	if (has_row)
		col_mac(r, 0, 10, row.mac, &row.mac_len);
	learn_gen(s, gen, 1); /* the snapshot proves the store was at `gen` just now */
	row.gen = token(s, gen);
	*a->out = row;
	*a->meta = meta;
	return COFFER_OK;
}

static int get_once(pg_store *s, const get_args *a)
{
	uint8_t ver[8];
	put_be64(ver, a->version);
	const char *v[2] = {a->name, (const char *)ver};
	const int l[2] = {(int)a->name_len, 8};
	PGresult *r = run(s, a->version == 0 ? ST_GET_LATEST : ST_GET_VERSION, v, l);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading a version");
	if (rc == COFFER_OK && PQntuples(r) == 0) {
		set_err(s, "secret '%.*s' not found", (int)a->name_len, a->name);
		rc = COFFER_ENOTFOUND;
	} else if (rc == COFFER_OK) {
		rc = get_fill(s, r, a);
	}
	PQclear(r);
	return rc;
}

static int pg_get(store *st, const char *name, size_t name_len, uint64_t version, store_row *out,
                  store_meta *meta)
{
	pg_store *s = (pg_store *)st;
	get_args a = {name, name_len, version, out, meta};
	if (name_len == 0 || name_len > COFFER_NAME_MAX) {
		set_err(s, "bad secret name length");
		return COFFER_EINVAL;
	}
	int rc = ensure_conn(s);
	if (rc == COFFER_OK)
		rc = get_once(s, &a);
	if (rc == COFFER_EUNAVAIL && s->lost && reconnect(s) == COFFER_OK)
		rc = get_once(s, &a);
	return rc;
}

/* Take every notification that has arrived, without blocking. */
static int drain(pg_store *s)
{
	PGnotify *nf;
	if (!PQconsumeInput(s->conn))
		return 0; /* the socket is closed or broken */
	while ((nf = PQnotifies(s->conn)) != NULL) {
		uint64_t g;
		/* A store in another schema of this database shares the channel: its numbers
		 * only raise ours, which costs cache misses, never a stale hit. */
		if (strcmp(nf->relname, PG_CHANNEL) == 0 && parse_u64(nf->extra, &g))
			learn_gen(s, g, 0);
		PQfreemem(nf);
	}
	return 1;
}

static int pg_generation(store *st, uint64_t *gen)
{
	pg_store *s = (pg_store *)st;
	int rc = ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	if ((!drain(s) || s->doomed) && (rc = reconnect(s)) != COFFER_OK)
		return rc;
	if (now_ms() - s->checked_ms >= PG_MAX_STALE_MS) {
		rc = load_gen(s);
		if (rc == COFFER_EUNAVAIL && s->lost && reconnect(s) == COFFER_OK)
			rc = COFFER_OK; /* reconnect() loaded it */
		if (rc != COFFER_OK)
			return rc;
	}
	*gen = token(s, newest_gen(s));
	return COFFER_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Listings                                                                                   */

typedef struct list_ctx {
	store_name_cb name_cb;
	store_row_cb row_cb;
	void *ctx;
	const char *name; /* list_versions: the secret */
	size_t name_len;
	char after[COFFER_NAME_MAX + 1]; /* list_secrets: the last name emitted */
	size_t after_len;
	uint64_t after_version; /* list_versions: the last version emitted */
	size_t emitted;
	int done;
} list_ctx;

static int secrets_page(pg_store *s, list_ctx *c)
{
	const char *v[1] = {c->after};
	const int l[1] = {(int)c->after_len};
	PGresult *r = run(s, ST_LIST_SECRETS, v, l);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "listing secrets");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		size_t len = (size_t)PQgetlength(r, i, 0);
		uint64_t count;
		if (len == 0 || len > COFFER_NAME_MAX || !col_uint(r, i, 1, 8, &count)) {
			set_err(s, "a secret row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		memcpy(c->after, PQgetvalue(r, i, 0), len);
		c->after[len] = '\0';
		c->after_len = len;
		c->emitted++;
		rc = c->name_cb(c->ctx, c->after, (size_t)count);
	}
	c->done = rc != COFFER_OK || n < PG_PAGE_ROWS;
	PQclear(r);
	return rc;
}

static int versions_page(pg_store *s, list_ctx *c)
{
	uint8_t after[8];
	put_be64(after, c->after_version);
	const char *v[2] = {c->name, (const char *)after};
	const int l[2] = {(int)c->name_len, 8};
	PGresult *r = run(s, ST_LIST_VERSIONS, v, l);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "listing versions");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		store_row row;
		store_meta meta;
		uint64_t len;
		if (!parse_row_head(r, i, 0, &row) || !col_uint(r, i, 4, 4, &len) ||
		    !col_meta(r, i, 6, &meta) || !col_ext(r, i, 10, &meta) ||
		    !col_uint(r, i, 13, 8, &meta.max_versions)) {
			set_err(s, "a version row of secret '%.*s' is damaged", (int)c->name_len,
			        c->name);
			rc = COFFER_ECORRUPT;
			break;
		}
		row.sealed_len = (size_t)len;
		col_mac(r, i, 5, row.mac, &row.mac_len);
		c->after_version = row.version;
		c->emitted++;
		rc = c->row_cb(c->ctx, &meta, &row);
	}
	c->done = rc != COFFER_OK || n < PG_PAGE_ROWS;
	PQclear(r);
	return rc;
}

/*
 * Page through a listing. The cursor (last name or version emitted) is exact, so a page that
 * failed on a lost connection is fetched again after a reconnect without repeating a callback.
 */
static int list_pages(pg_store *s, list_ctx *c, int (*page)(pg_store *, list_ctx *))
{
	int rc = ensure_conn(s);
	while (rc == COFFER_OK && !c->done) {
		size_t before = c->emitted;
		rc = page(s, c);
		if (rc == COFFER_EUNAVAIL && s->lost && c->emitted == before &&
		    reconnect(s) == COFFER_OK)
			rc = page(s, c);
	}
	return rc;
}

static int pg_list_secrets(store *st, store_name_cb cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	list_ctx *c = calloc(1, sizeof *c);
	if (c == NULL)
		return COFFER_ENOMEM;
	c->name_cb = cb;
	c->ctx = ctx;
	int rc = list_pages(s, c, secrets_page);
	free(c);
	return rc;
}

static int pg_list_versions(store *st, const char *name, size_t name_len, store_row_cb cb,
                            void *ctx)
{
	pg_store *s = (pg_store *)st;
	list_ctx c = {.row_cb = cb, .ctx = ctx, .name = name, .name_len = name_len};
	if (name_len == 0 || name_len > COFFER_NAME_MAX) {
		set_err(s, "bad secret name length");
		return COFFER_EINVAL;
	}
	int rc = list_pages(s, &c, versions_page);
	if (rc == COFFER_OK && c.emitted == 0) {
		/* put() creates a secret and its first version in one transaction. */
		set_err(s, "secret '%.*s' not found", (int)name_len, name);
		rc = COFFER_ENOTFOUND;
	}
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Key rotation                                                                               */

typedef store_rekey_fn rekey_fn;

static int update_key(pg_store *s, uint64_t key_id, const uint8_t *sealed, size_t len)
{
	uint8_t id[8];
	put_be64(id, key_id);
	const char *v[2] = {(const char *)id, (const char *)sealed};
	const int l[2] = {8, (int)len};
	PGresult *r = run(s, ST_KEY_UPDATE, v, l);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "re-sealing a data key");
	PQclear(r);
	return rc;
}

/* Inside the open transaction: lock the keyring, re-seal every key through cb. */
static int reseal_keys(pg_store *s, rekey_fn cb, void *ctx)
{
	PGresult *r = run(s, ST_KEYS_LOCK, NULL, NULL);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "locking the keyring");
	for (int i = 0; rc == COFFER_OK && i < PQntuples(r); i++) {
		uint64_t id;
		uint8_t out[STORE_SEALED_KEY_MAX];
		size_t out_len = 0;
		if (!col_uint(r, i, 0, 8, &id) || id > UINT32_MAX) {
			set_err(s, "the keyring in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		rc = cb(ctx, (uint32_t)id, (const uint8_t *)PQgetvalue(r, i, 1),
		        (size_t)PQgetlength(r, i, 1), out, &out_len);
		if (rc == COFFER_OK && (out_len == 0 || out_len > STORE_SEALED_KEY_MAX)) {
			set_err(s, "bad sealed key length");
			rc = COFFER_EMISUSE;
		}
		if (rc == COFFER_OK)
			rc = update_key(s, id, out, out_len);
	}
	PQclear(r);
	return rc;
}

/* BEGIN a write transaction, reconnecting once if the connection was found dead (nothing was
 * sent yet, so that is always safe). */
static int begin_write(pg_store *s)
{
	int rc = ensure_conn(s);
	if (rc == COFFER_OK)
		rc = exec_cmd(s, PG_BEGIN, "BEGIN");
	if (rc == COFFER_EUNAVAIL && s->lost && reconnect(s) == COFFER_OK)
		rc = exec_cmd(s, PG_BEGIN, "BEGIN");
	return rc;
}

/* Changes to the keyring (add, reseal, prune) take turns on this lock, in every process; it lets
 * puts (ROW SHARE) through. FOR UPDATE on the existing rows would not stop an insert. */
#define PG_LOCK_KEYRING "LOCK TABLE coffer_keys IN SHARE ROW EXCLUSIVE MODE"

static int begin_locked(pg_store *s, const char *lock)
{
	int rc = begin_write(s);
	if (rc == COFFER_OK && (rc = exec_cmd(s, lock, "locking the keyring")) != COFFER_OK)
		rollback(s);
	return rc;
}

/* A passphrase rekey: the new salt and limits, inside the open transaction. */
static int set_kdf(pg_store *s, const store_kdf *kdf)
{
	uint8_t ops[8], mem[8];
	put_be64(ops, kdf->opslimit);
	put_be64(mem, kdf->memlimit);
	const char *v[3] = {(const char *)kdf->salt, (const char *)ops, (const char *)mem};
	const int l[3] = {STORE_SALT_LEN, 8, 8};
	PGresult *r = run(s, ST_SET_KDF, v, l);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "writing the passphrase salt");
	if (rc == COFFER_OK && strcmp(PQcmdTuples(r), "1") != 0) {
		set_err(s, "the store has no header");
		rc = COFFER_ECORRUPT;
	}
	PQclear(r);
	return rc;
}

static int reseal_meta_key(pg_store *s, rekey_fn cb, void *ctx);

/* One transaction for the whole keyring and the metadata key: a master-key rotation is all or
 * nothing. */
static int pg_keys_reseal(store *st, rekey_fn cb, void *ctx, const store_kdf *kdf)
{
	pg_store *s = (pg_store *)st;
	int rc = begin_locked(s, PG_LOCK_KEYRING);
	if (rc != COFFER_OK)
		return rc;
	rc = reseal_keys(s, cb, ctx);
	if (rc == COFFER_OK)
		rc = reseal_meta_key(s, cb, ctx);
	if (rc == COFFER_OK && kdf != NULL)
		rc = set_kdf(s, kdf);
	return finish_write(s, rc);
}

/* Inside the locked transaction: check() every key; count them and find the largest id. */
static int check_keys(pg_store *s, store_key_cb check, void *ctx, size_t *n, uint32_t *max)
{
	PGresult *r = run(s, ST_KEYS, NULL, NULL);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading the keyring");
	for (int i = 0; rc == COFFER_OK && i < PQntuples(r); i++) {
		uint64_t id;
		if (!col_uint(r, i, 0, 8, &id) || id == 0 || id >= UINT32_MAX) {
			set_err(s, "the keyring in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		rc = check(ctx, (uint32_t)id, (const uint8_t *)PQgetvalue(r, i, 1),
		           (size_t)PQgetlength(r, i, 1));
		*max = (uint32_t)id; /* ascending */
		(*n)++;
	}
	PQclear(r);
	return rc;
}

static int insert_key(pg_store *s, uint32_t key_id, const uint8_t *sealed, size_t len)
{
	uint8_t id[8];
	put_be64(id, key_id);
	const char *v[2] = {(const char *)id, (const char *)sealed};
	const int l[2] = {8, (int)len};
	PGresult *r = run(s, ST_BOOT_KEY, v, l);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "adding a data key");
	PQclear(r);
	return rc;
}

/* Never retried: a connection lost during COMMIT leaves the outcome unknown (EUNAVAIL). */
static int pg_keys_add(store *st, store_key_cb check, store_key_make_fn make, void *ctx)
{
	pg_store *s = (pg_store *)st;
	size_t n = 0, len = 0;
	uint32_t max = 0;
	uint8_t sealed[STORE_SEALED_KEY_MAX];
	int rc = begin_locked(s, PG_LOCK_KEYRING);
	if (rc != COFFER_OK)
		return rc;
	rc = check_keys(s, check, ctx, &n, &max);
	if (rc == COFFER_OK)
		rc = make(ctx, max + 1, n, sealed, &len);
	if (rc == COFFER_OK && (len == 0 || len > STORE_SEALED_KEY_MAX)) {
		set_err(s, "bad sealed key length");
		rc = COFFER_EMISUSE;
	}
	if (rc == COFFER_OK)
		rc = insert_key(s, max + 1, sealed, len);
	return finish_write(s, rc);
}

/* EXCLUSIVE waits for every put and re-encrypt batch in flight (ROW SHARE) and holds off new
 * ones, so the versions checked here are all the versions that may use a key. */
static int pg_keys_prune(store *st, size_t *pruned)
{
	pg_store *s = (pg_store *)st;
	uint64_t n = 0;
	*pruned = 0;
	int rc = begin_locked(s, "LOCK TABLE coffer_keys IN EXCLUSIVE MODE");
	if (rc != COFFER_OK)
		return rc;
	PGresult *r = PQexec(s->conn, "DELETE FROM coffer_keys WHERE key_id < "
	                              "(SELECT max(key_id) FROM coffer_keys) AND key_id NOT IN "
	                              "(SELECT key_id FROM coffer_versions WHERE state <> 1)");
	rc = res_rc(s, r, PGRES_COMMAND_OK, "pruning data keys");
	if (rc == COFFER_OK && !parse_u64(PQcmdTuples(r), &n)) {
		set_err(s, "unexpected reply while pruning data keys");
		rc = COFFER_EIO;
	}
	PQclear(r);
	if (rc == COFFER_OK && n == 0) {
		rollback(s); /* nothing pruned: no generation bump */
		return COFFER_OK;
	}
	rc = finish_write(s, rc);
	if (rc == COFFER_OK)
		*pruned = (size_t)n;
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Metadata MACs: destroy, meta_init                                                          */

#define PG_ROWS_PER_WRITE 1024 /* version rows per statement of write_rows() */

static int set_meta_key(pg_store *s, const uint8_t *sealed, size_t len)
{
	const char *v[1] = {(const char *)sealed};
	const int l[1] = {(int)len};
	PGresult *r = run(s, ST_SET_META_KEY, v, l);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "writing the metadata key");
	PQclear(r);
	return rc;
}

/* Inside the open transaction: the sealed metadata key into buf (*len 0: none), locked. */
static int get_meta_key(pg_store *s, uint8_t buf[STORE_SEALED_KEY_MAX], size_t *len)
{
	PGresult *r = run(s, ST_META_KEY, NULL, NULL);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading the metadata key");
	*len = 0;
	if (rc == COFFER_OK && (PQntuples(r) != 1 || PQgetlength(r, 0, 0) > STORE_SEALED_KEY_MAX)) {
		set_err(s, "the store header in this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	if (rc == COFFER_OK && !PQgetisnull(r, 0, 0)) {
		*len = (size_t)PQgetlength(r, 0, 0);
		memcpy(buf, PQgetvalue(r, 0, 0), *len);
	}
	PQclear(r);
	return rc;
}

/* Inside the open transaction: re-seal the metadata key through cb, if the store has one. */
static int reseal_meta_key(pg_store *s, rekey_fn cb, void *ctx)
{
	uint8_t old[STORE_SEALED_KEY_MAX], out[STORE_SEALED_KEY_MAX];
	size_t len = 0, out_len = 0;
	int rc = get_meta_key(s, old, &len);
	if (rc != COFFER_OK || len == 0)
		return rc;
	rc = cb(ctx, STORE_META_KEY_ID, old, len, out, &out_len);
	if (rc == COFFER_OK && (out_len == 0 || out_len > STORE_SEALED_KEY_MAX)) {
		set_err(s, "bad sealed key length");
		rc = COFFER_EMISUSE;
	}
	return rc == COFFER_OK ? set_meta_key(s, out, out_len) : rc;
}

/* Inside the open transaction: every row of secret sid (version, state, mac), ascending. */
static int read_rows(pg_store *s, uint64_t sid, store_row **rows, size_t *n)
{
	uint8_t id[8];
	put_be64(id, sid);
	const char *v[1] = {(const char *)id};
	const int l[1] = {8};
	PGresult *r = run(s, ST_ROWS, v, l);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading versions");
	int m = rc == COFFER_OK ? PQntuples(r) : 0;
	*rows = m > 0 ? calloc((size_t)m, sizeof **rows) : NULL;
	*n = 0;
	if (m > 0 && *rows == NULL)
		rc = COFFER_ENOMEM;
	for (int i = 0; rc == COFFER_OK && i < m; i++) {
		uint64_t ver, state;
		store_row *row = &(*rows)[i];
		if (!col_uint(r, i, 0, 8, &ver) || !col_uint(r, i, 1, 2, &state)) {
			set_err(s, "a version row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		row->version = ver;
		row->state = (int)(int16_t)state;
		col_mac(r, i, 2, row->mac, &row->mac_len);
		(*n)++;
	}
	PQclear(r);
	return rc;
}

/* Append a decimal number and a separator to an array literal. */
static size_t append_num(char *buf, size_t at, int64_t v, char sep)
{
	return at + (size_t)snprintf(buf + at, 24, "%lld%c", (long long)v, sep);
}

/* Inside the open transaction: rows[0..n)'s states and MACs, PG_ROWS_PER_WRITE per statement. */
static int write_rows_chunk(pg_store *s, uint64_t sid, const store_row *rows, size_t n)
{
	static const int formats[4] = {1, 0, 0, 1};
	char *vers = malloc(n * 24 + 3), *states = malloc(n * 24 + 3);
	uint8_t *macs = malloc(n * STORE_MAC_LEN), id[8];
	int rc = vers != NULL && states != NULL && macs != NULL ? COFFER_OK : COFFER_ENOMEM;
	size_t a = 1, b = 1;
	for (size_t i = 0; rc == COFFER_OK && i < n; i++) {
		a = append_num(vers, a, (int64_t)rows[i].version, i + 1 < n ? ',' : '}');
		b = append_num(states, b, rows[i].state, i + 1 < n ? ',' : '}');
		memcpy(macs + i * STORE_MAC_LEN, rows[i].mac, STORE_MAC_LEN);
	}
	if (rc == COFFER_OK) {
		vers[0] = states[0] = '{';
		put_be64(id, sid);
		const char *v[4] = {(const char *)id, vers, states, (const char *)macs};
		const int l[4] = {8, 0, 0, (int)(n * STORE_MAC_LEN)};
		PGresult *r =
		    PQexecPrepared(s->conn, stmts[ST_WRITE_ROWS].name, 4, v, l, formats, 1);
		rc = res_rc(s, r, PGRES_COMMAND_OK, "writing versions");
		PQclear(r);
	}
	free(vers);
	free(states);
	free(macs);
	return rc;
}

static int write_meta(pg_store *s, uint64_t sid, const store_meta *m)
{
	uint8_t b[3][8];
	put_be64(b[0], sid);
	put_be64(b[1], m->latest);
	put_be64(b[2], m->epoch);
	uint8_t purge[8], mx[8];
	put_be64(purge, m->purge_ms);
	put_be64(mx, m->max_versions);
	const char *v[7] = {(const char *)b[0],
	                    (const char *)b[1],
	                    (const char *)b[2],
	                    (const char *)m->mac,
	                    m->ldigest_len == STORE_DIGEST_LEN ? (const char *)m->ldigest : NULL,
	                    (const char *)purge,
	                    (const char *)mx};
	const int l[7] = {8, 8, 8, (int)m->mac_len, (int)m->ldigest_len, 8, 8};
	PGresult *r = run(s, ST_WRITE_META, v, l);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "writing a secret");
	PQclear(r);
	return rc;
}

/* Inside the open transaction: the secret's custom labels into m->labels (allocated here). */
static int read_labels(pg_store *s, uint64_t sid, store_meta *m)
{
	uint8_t id[8];
	put_be64(id, sid);
	const char *v[1] = {(const char *)id};
	const int l[1] = {8};
	m->nlabels = 0;
	m->labels_changed = 0;
	m->labels = calloc(STORE_LABELS_MAX + 1, sizeof *m->labels);
	if (m->labels == NULL)
		return COFFER_ENOMEM;
	PGresult *r = run(s, ST_LABELS, v, l);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading labels");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		size_t len = (size_t)PQgetlength(r, i, 0);
		store_label *lb = &m->labels[m->nlabels];
		if (m->nlabels == STORE_LABELS_MAX || len == 0 || len > STORE_LABEL_MAX ||
		    !col_uint(r, i, 1, 8, &lb->version)) {
			set_err(s, "a label row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		memcpy(lb->name, PQgetvalue(r, i, 0), len);
		lb->name[len] = '\0';
		m->nlabels++;
	}
	PQclear(r);
	return rc;
}

/* Inside the open transaction: the secret's custom labels become m->labels. */
static int write_labels(pg_store *s, uint64_t sid, const store_meta *m)
{
	uint8_t id[8];
	put_be64(id, sid);
	const char *v1[1] = {(const char *)id};
	const int l1[1] = {8};
	PGresult *r = run(s, ST_LABELS_DEL, v1, l1);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "writing labels");
	PQclear(r);
	if (rc != COFFER_OK || m->nlabels == 0)
		return rc;
	static const int formats[3] = {1, 0, 0};
	char *names = malloc(m->nlabels * (STORE_LABEL_MAX + 1) + 3);
	char *vers = malloc(m->nlabels * 24 + 3);
	if (names == NULL || vers == NULL)
		rc = COFFER_ENOMEM;
	size_t a = 1, b = 1;
	for (size_t i = 0; rc == COFFER_OK && i < m->nlabels; i++) {
		size_t len = strlen(m->labels[i].name);
		memcpy(names + a, m->labels[i].name, len);
		a += len;
		names[a++] = i + 1 < m->nlabels ? ',' : '}';
		b = append_num(vers, b, (int64_t)m->labels[i].version,
		               i + 1 < m->nlabels ? ',' : '}');
	}
	if (rc == COFFER_OK) {
		names[0] = vers[0] = '{';
		names[a] = '\0';
		const char *v[3] = {(const char *)id, names, vers};
		const int l[3] = {8, 0, 0};
		r = PQexecPrepared(s->conn, stmts[ST_LABEL_INS].name, 3, v, l, formats, 1);
		rc = res_rc(s, r, PGRES_COMMAND_OK, "writing labels");
		PQclear(r);
	}
	free(names);
	free(vers);
	return rc;
}

static void info_fill(const PGresult *r, store_info *info)
{
	uint64_t c = 0, u = 0;
	memset(info, 0, sizeof *info);
	snprintf(info->description, sizeof info->description, "%s",
	         PQgetisnull(r, 0, 9) ? "" : PQgetvalue(r, 0, 9));
	snprintf(info->tags, sizeof info->tags, "%s",
	         PQgetisnull(r, 0, 10) ? "" : PQgetvalue(r, 0, 10));
	(void)col_uint(r, 0, 11, 8, &c);
	(void)col_uint(r, 0, 12, 8, &u);
	(void)col_uint(r, 0, 13, 8, &info->max_versions);
	info->created_ms = (int64_t)c;
	info->updated_ms = (int64_t)u;
}

static int pg_labels_get(store *st, const char *name, size_t name_len, store_meta *meta,
                         store_info *info)
{
	pg_store *s = (pg_store *)st;
	const char *v[1] = {name};
	const int l[1] = {(int)name_len};
	meta->labels = NULL;
	int rc = ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	PGresult *r = run(s, ST_LABELS_GET, v, l);
	rc = res_rc(s, r, PGRES_TUPLES_OK, "reading labels");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	if (rc == COFFER_OK && n == 0) {
		set_err(s, "not found");
		rc = COFFER_ENOTFOUND;
	} else if (rc == COFFER_OK && (!col_meta(r, 0, 0, meta) || !col_ext(r, 0, 4, meta) ||
	                               !col_uint(r, 0, 13, 8, &meta->max_versions))) {
		set_err(s, "a secret row in this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	if (rc == COFFER_OK &&
	    (meta->labels = calloc(STORE_LABELS_MAX + 1, sizeof *meta->labels)) == NULL)
		rc = COFFER_ENOMEM;
	for (int i = 0; rc == COFFER_OK && i < n && !PQgetisnull(r, i, 7); i++) {
		size_t len = (size_t)PQgetlength(r, i, 7);
		store_label *lb = &meta->labels[meta->nlabels];
		if (meta->nlabels == STORE_LABELS_MAX || len == 0 || len > STORE_LABEL_MAX ||
		    !col_uint(r, i, 8, 8, &lb->version)) {
			set_err(s, "a label row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		memcpy(lb->name, PQgetvalue(r, i, 7), len);
		lb->name[len] = '\0';
		meta->nlabels++;
	}
	if (rc == COFFER_OK && info != NULL)
		info_fill(r, info);
	PQclear(r);
	if (rc != COFFER_OK) {
		free(meta->labels);
		meta->labels = NULL;
	}
	return rc;
}

static int pg_purge(store *st, uint64_t now, size_t *count)
{
	pg_store *s = (pg_store *)st;
	uint8_t t[8];
	uint64_t n = 0;
	*count = 0;
	put_be64(t, now);
	static const Oid types[1] = {OID_INT8};
	static const int formats[1] = {1};
	const char *v[1] = {(const char *)t};
	const int l[1] = {8};
	/* A read first: the common case (nothing due) writes nothing. */
	int rc = ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	PGresult *r =
	    PQexecParams(s->conn,
	                 "SELECT 1 FROM coffer_secrets WHERE purge_ms > 0 AND purge_ms <= "
	                 "$1 LIMIT 1",
	                 1, types, v, l, formats, 1);
	rc = res_rc(s, r, PGRES_TUPLES_OK, "looking for deleted secrets");
	int due = rc == COFFER_OK && PQntuples(r) > 0;
	PQclear(r);
	if (!due)
		return rc;
	rc = begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	static const char *const sql[] = {
	    "DELETE FROM coffer_versions WHERE secret_id IN (SELECT id FROM coffer_secrets WHERE "
	    "purge_ms > 0 AND purge_ms <= $1)",
	    "DELETE FROM coffer_labels WHERE secret_id IN (SELECT id FROM coffer_secrets WHERE "
	    "purge_ms > 0 AND purge_ms <= $1)",
	    "DELETE FROM coffer_requests WHERE secret_id IN (SELECT id FROM coffer_secrets WHERE "
	    "purge_ms > 0 AND purge_ms <= $1)",
	    "DELETE FROM coffer_secrets WHERE purge_ms > 0 AND purge_ms <= $1"};
	for (size_t i = 0; i < sizeof sql / sizeof sql[0] && rc == COFFER_OK; i++) {
		r = PQexecParams(s->conn, sql[i], 1, types, v, l, formats, 1);
		rc = res_rc(s, r, PGRES_COMMAND_OK, "purging deleted secrets");
		if (rc == COFFER_OK && i + 1 == sizeof sql / sizeof sql[0] &&
		    !parse_u64(PQcmdTuples(r), &n)) {
			set_err(s, "unexpected reply while purging deleted secrets");
			rc = COFFER_EIO;
		}
		PQclear(r);
	}
	if (rc == COFFER_OK && n == 0) { /* nothing went: no generation to bump */
		rollback(s);
		return COFFER_OK;
	}
	rc = finish_write(s, rc);
	if (rc == COFFER_OK)
		*count = (size_t)n;
	return rc;
}

static int pg_list_page(store *st, const char *prefix, size_t prefix_len, const char *after,
                        size_t after_len, size_t limit, store_name_cb cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	int rc = ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	uint8_t lim[8];
	put_be64(lim, limit);
	const char *v[3] = {after, prefix, (const char *)lim};
	const int l[3] = {(int)after_len, (int)prefix_len, 8};
	PGresult *r = run(s, ST_LIST_PAGE, v, l);
	rc = res_rc(s, r, PGRES_TUPLES_OK, "listing secrets");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		uint64_t count = 0;
		if (!col_uint(r, i, 1, 8, &count)) {
			set_err(s, "unexpected reply while listing secrets");
			rc = COFFER_EIO;
			break;
		}
		char name[COFFER_NAME_MAX + 1];
		size_t len = (size_t)PQgetlength(r, i, 0);
		if (len == 0 || len > COFFER_NAME_MAX) {
			set_err(s, "a secret row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		memcpy(name, PQgetvalue(r, i, 0), len);
		name[len] = '\0';
		rc = cb(ctx, name, (size_t)count);
	}
	PQclear(r);
	return rc;
}

static int pg_info_set(store *st, const char *name, size_t name_len, const char *description,
                       const char *tags)
{
	pg_store *s = (pg_store *)st;
	int rc = begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	static const Oid types[5] = {OID_TEXT, OID_BOOL, OID_TEXT, OID_BOOL, OID_TEXT};
	static const int formats[5] = {1, 1, 1, 1, 1};
	const char dset = description != NULL, tset = tags != NULL;
	const char *v[5] = {name, &dset, description, &tset, tags};
	const int l[5] = {(int)name_len, 1, description != NULL ? (int)strlen(description) : 0, 1,
	                  tags != NULL ? (int)strlen(tags) : 0};
	PGresult *r =
	    PQexecParams(s->conn,
	                 "UPDATE coffer_secrets SET description = CASE WHEN $2 THEN $3 "
	                 "ELSE description END, tags = CASE WHEN $4 THEN $5 ELSE tags END, "
	                 "updated_ms = " PG_NOW_MS " WHERE name = $1",
	                 5, types, v, l, formats, 1);
	rc = res_rc(s, r, PGRES_COMMAND_OK, "setting a secret's description");
	if (rc == COFFER_OK && strcmp(PQcmdTuples(r), "0") == 0) {
		set_err(s, "not found");
		rc = COFFER_ENOTFOUND;
	}
	PQclear(r);
	return finish_write(s, rc);
}

/* Inside the open transaction: hand one secret and all its rows to cb, write back the result. */
static int retag(pg_store *s, uint64_t sid, const char *name, size_t name_len, store_meta *m,
                 store_retag_fn cb, void *ctx)
{
	store_row *rows = NULL;
	size_t n = 0;
	int rc = read_rows(s, sid, &rows, &n);
	if (rc == COFFER_OK)
		rc = read_labels(s, sid, m);
	if (rc == COFFER_OK)
		rc = cb(ctx, name, name_len, m, rows, n);
	for (size_t i = 0; rc == COFFER_OK && i < n; i += PG_ROWS_PER_WRITE)
		rc = write_rows_chunk(s, sid, rows + i,
		                      n - i < PG_ROWS_PER_WRITE ? n - i : PG_ROWS_PER_WRITE);
	if (rc == COFFER_OK)
		rc = write_meta(s, sid, m);
	if (rc == COFFER_OK && m->labels_changed)
		rc = write_labels(s, sid, m);
	free(rows);
	free(m->labels);
	m->labels = NULL;
	return rc;
}

/* The secret's row is locked first (as a put locks it), so destroys and puts of one secret take
 * turns. Dead tuples keep the old ciphertext until VACUUM reclaims them (docs/postgres.md). */
/* Inside the open transaction: the secret's id and metadata, its row locked. */
static int read_secret_locked(pg_store *s, const char *name, size_t name_len, uint64_t *sid,
                              store_meta *m)
{
	const char *v[1] = {name};
	const int l[1] = {(int)name_len};
	PGresult *r = run(s, ST_SECRET, v, l);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading a secret");
	if (rc == COFFER_OK && PQntuples(r) == 0) {
		set_err(s, "not found");
		rc = COFFER_ENOTFOUND;
	} else if (rc == COFFER_OK &&
	           (!col_uint(r, 0, 0, 8, sid) || !col_meta(r, 0, 1, m) ||
	            !col_uint(r, 0, 5, 8, &m->max_versions) || !col_ext(r, 0, 6, m))) {
		set_err(s, "a secret row in this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	PQclear(r);
	return rc;
}

static int pg_destroy(store *st, const char *name, size_t name_len, store_retag_fn cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	int rc = begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	uint64_t sid = 0;
	store_meta m;
	rc = read_secret_locked(s, name, name_len, &sid, &m);
	if (rc == COFFER_OK)
		rc = retag(s, sid, name, name_len, &m, cb, ctx);
	return finish_write(s, rc);
}

/* Inside the open write transaction: n entries after the chain's last one. */
static int audit_write(pg_store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	store_audit e;
	memset(&e, 0, sizeof e);
	snprintf(e.chain, sizeof e.chain, "%s", chain);
	static const Oid t1[1] = {OID_TEXT};
	static const int f1[1] = {1};
	const char *v1[1] = {e.chain};
	const int l1[1] = {(int)strlen(e.chain)};
	PGresult *r =
	    PQexecParams(s->conn,
	                 "SELECT seq, mac FROM coffer_audit WHERE chain = $1 ORDER BY seq "
	                 "DESC LIMIT 1",
	                 1, t1, v1, l1, f1, 1);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading the audit log");
	if (rc == COFFER_OK && PQntuples(r) == 1) {
		if (!col_uint(r, 0, 0, 8, &e.seq))
			rc = COFFER_ECORRUPT;
		col_mac(r, 0, 1, e.prev, &e.prev_len);
	}
	PQclear(r);
	static const Oid t[11] = {OID_TEXT, OID_INT8, OID_INT8, OID_TEXT, OID_TEXT, OID_TEXT,
	                          OID_TEXT, OID_INT8, OID_TEXT, OID_TEXT, OID_BYTEA};
	static const int f[11] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		e.seq++;
		rc = fn(ctx, i, &e);
		if (rc != COFFER_OK)
			break;
		uint8_t seq[8], ts[8], oc[8];
		put_be64(seq, e.seq);
		put_be64(ts, (uint64_t)e.ts_ms);
		put_be64(oc, (uint64_t)(int64_t)e.outcome);
		const char *v[11] = {e.chain,     (const char *)seq,  (const char *)ts,
		                     e.principal, e.action,           e.secret,
		                     e.version,   (const char *)oc,   e.error,
		                     e.rid,       (const char *)e.mac};
		const int l[11] = {(int)strlen(e.chain),
		                   8,
		                   8,
		                   (int)strlen(e.principal),
		                   (int)strlen(e.action),
		                   (int)strlen(e.secret),
		                   (int)strlen(e.version),
		                   8,
		                   (int)strlen(e.error),
		                   (int)strlen(e.rid),
		                   (int)e.mac_len};
		r = PQexecParams(
		    s->conn,
		    "INSERT INTO coffer_audit (chain, seq, ts_ms, principal, action, secret, "
		    "version, outcome, error, rid, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, "
		    "$8, $9, $10, $11)",
		    11, t, v, l, f, 1);
		rc = res_rc(s, r, PGRES_COMMAND_OK, "writing the audit log");
		PQclear(r);
		memcpy(e.prev, e.mac, sizeof e.prev);
		e.prev_len = e.mac_len;
	}
	return rc;
}

static void pg_audit_pending(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	pg_store *s = (pg_store *)st;
	s->audit_n = n;
	s->audit_fn = fn;
	s->audit_ctx = ctx;
	snprintf(s->audit_chain, sizeof s->audit_chain, "%s", chain != NULL ? chain : "");
}

static int pg_audit_append(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	pg_store *s = (pg_store *)st;
	s->audit_n = 0;
	int rc = begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	rc = audit_write(s, chain, n, fn, ctx);
	if (rc != COFFER_OK) {
		rollback(s);
		return rc;
	}
	rc = commit(s); /* no generation bump: nothing a cache holds changed */
	return rc;
}

/* coffer copy: n entries of another store's log in one transaction. */
static int pg_audit_import(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	pg_store *s = (pg_store *)st;
	s->audit_n = 0;
	int rc = begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	rc = audit_write(s, chain, n, fn, ctx);
	if (rc != COFFER_OK) {
		rollback(s);
		return rc;
	}
	return commit(s);
}

static void res_text(const PGresult *r, int i, int col, char *out, size_t cap)
{
	snprintf(out, cap, "%s", PQgetisnull(r, i, col) ? "" : PQgetvalue(r, i, col));
}

static int pg_audit_list(store *st, uint64_t after, int (*cb)(void *ctx, const store_audit *e),
                         void *ctx)
{
	pg_store *s = (pg_store *)st;
	int rc = ensure_conn(s);
	for (;;) {
		if (rc != COFFER_OK)
			return rc;
		uint8_t a[8];
		put_be64(a, after);
		static const Oid t[1] = {OID_INT8};
		static const int f[1] = {1};
		const char *v[1] = {(const char *)a};
		const int l[1] = {8};
		PGresult *r =
		    PQexecParams(s->conn,
		                 "SELECT id, chain, seq, ts_ms, principal, action, secret, "
		                 "version, outcome::bigint, error, rid, mac FROM coffer_audit "
		                 "WHERE id > $1 ORDER BY id LIMIT 1000",
		                 1, t, v, l, f, 1);
		rc = res_rc(s, r, PGRES_TUPLES_OK, "reading the audit log");
		int n = rc == COFFER_OK ? PQntuples(r) : 0;
		for (int i = 0; rc == COFFER_OK && i < n; i++) {
			store_audit e;
			uint64_t seq = 0, ts = 0, oc = 0;
			memset(&e, 0, sizeof e);
			if (!col_uint(r, i, 0, 8, &e.id) || !col_uint(r, i, 2, 8, &seq) ||
			    !col_uint(r, i, 3, 8, &ts) || !col_uint(r, i, 8, 8, &oc)) {
				set_err(s, "an audit row in this database is damaged");
				rc = COFFER_ECORRUPT;
				break;
			}
			e.seq = seq;
			e.ts_ms = (int64_t)ts;
			e.outcome = (int)(int64_t)oc;
			res_text(r, i, 1, e.chain, sizeof e.chain);
			res_text(r, i, 4, e.principal, sizeof e.principal);
			res_text(r, i, 5, e.action, sizeof e.action);
			res_text(r, i, 6, e.secret, sizeof e.secret);
			res_text(r, i, 7, e.version, sizeof e.version);
			res_text(r, i, 9, e.error, sizeof e.error);
			res_text(r, i, 10, e.rid, sizeof e.rid);
			col_mac(r, i, 11, e.mac, &e.mac_len);
			after = e.id;
			rc = cb(ctx, &e);
		}
		PQclear(r);
		if (rc != COFFER_OK || n < 1000)
			return rc;
	}
}

/* Inside the open transaction: retag one page of secrets after id *after. */
static int retag_page(pg_store *s, uint64_t *after, store_retag_fn cb, void *ctx, int *done)
{
	uint8_t a[8];
	put_be64(a, *after);
	const char *v[1] = {(const char *)a};
	const int l[1] = {8};
	PGresult *r = run(s, ST_SECRET_PAGE, v, l);
	int rc = res_rc(s, r, PGRES_TUPLES_OK, "reading secrets");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		store_meta m;
		size_t len = (size_t)PQgetlength(r, i, 1);
		if (!col_uint(r, i, 0, 8, after) || !col_meta(r, i, 2, &m) || len == 0 ||
		    len > COFFER_NAME_MAX) {
			set_err(s, "a secret row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		rc = retag(s, *after, PQgetvalue(r, i, 1), len, &m, cb, ctx);
	}
	*done = n < PG_PAGE_ROWS;
	PQclear(r);
	return rc;
}

/* EXCLUSIVE on coffer_keys waits for every put, re-encrypt batch and keyring change in flight
 * and holds off new ones; whoever comes second finds the metadata key made. */
static int pg_meta_init(store *st, const uint8_t *sealed, size_t len, rekey_fn rekey,
                        store_retag_fn cb, void *ctx, uint8_t *found, size_t *found_len)
{
	pg_store *s = (pg_store *)st;
	uint64_t after = 0;
	int done = 0;
	int rc = begin_locked(s, "LOCK TABLE coffer_keys IN EXCLUSIVE MODE");
	if (rc != COFFER_OK)
		return rc;
	rc = get_meta_key(s, found, found_len);
	if (rc != COFFER_OK || *found_len > 0) {
		rollback(s);
		return rc;
	}
	rc = reseal_keys(s, rekey, ctx);
	while (rc == COFFER_OK && !done)
		rc = retag_page(s, &after, cb, ctx, &done);
	if (rc == COFFER_OK)
		rc = set_meta_key(s, sealed, len);
	return finish_write(s, rc);
}

static int write_resealed(pg_store *s, uint64_t sid, uint64_t ver, uint32_t kid,
                          const uint8_t *sealed, size_t len)
{
	uint8_t b[3][8];
	put_be64(b[0], sid);
	put_be64(b[1], ver);
	put_be64(b[2], kid);
	const char *v[4] = {(const char *)b[0], (const char *)b[1], (const char *)b[2],
	                    (const char *)sealed};
	const int l[4] = {8, 8, 8, (int)len};
	PGresult *r = run(s, ST_RESEAL_UPDATE, v, l);
	int rc = res_rc(s, r, PGRES_COMMAND_OK, "re-encrypting a version");
	PQclear(r);
	return rc;
}

/* Re-seal row i of a locked batch through cb and write it back. */
static int reseal_one_row(pg_store *s, const PGresult *r, int i, const store_key *newest,
                          store_reseal_fn cb, void *ctx)
{
	uint64_t sid, ver, kid;
	if (!col_uint(r, i, 1, 8, &sid) || !col_uint(r, i, 2, 8, &ver) ||
	    !col_uint(r, i, 3, 8, &kid) || kid > UINT32_MAX) {
		set_err(s, "a version row in this database is damaged");
		return COFFER_ECORRUPT;
	}
	store_row row = {.version = ver,
	                 .key_id = (uint32_t)kid,
	                 .sealed = (uint8_t *)PQgetvalue(r, i, 4),
	                 .sealed_len = (size_t)PQgetlength(r, i, 4)};
	uint32_t new_kid = 0;
	uint8_t *out = NULL;
	size_t out_len = 0;
	int rc = cb(ctx, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), &row, newest, &new_kid,
	            &out, &out_len);
	if (rc == COFFER_OK && (out == NULL || out_len == 0 || out_len > INT32_MAX)) {
		set_err(s, "the sealed value is empty or too large");
		rc = COFFER_EMISUSE;
	}
	if (rc == COFFER_OK)
		rc = write_resealed(s, sid, ver, new_kid, out, out_len);
	free(out);
	return rc;
}

/* One transaction of the re-encrypt pass: lock up to PG_RESEAL_ROWS rows sealed with a key
 * below `below`, re-seal them with the newest key, commit. Never retried: the caller runs the
 * next batch, which finds what is left. */
static int pg_reseal_batch(store *st, uint32_t below, store_reseal_fn cb, void *ctx, size_t *done)
{
	pg_store *s = (pg_store *)st;
	uint8_t k[8];
	put_be64(k, below);
	const char *v[1] = {(const char *)k};
	const int l[1] = {8};
	pg_newest nk;
	*done = 0;
	int rc = ensure_conn(s);
	if (rc == COFFER_OK)
		rc = begin_sealing(s, &nk);
	if (rc != COFFER_OK)
		return rc;
	PGresult *r = run(s, ST_RESEAL_SELECT, v, l);
	rc = res_rc(s, r, PGRES_TUPLES_OK, "selecting versions to re-encrypt");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++)
		rc = reseal_one_row(s, r, i, &nk.key, cb, ctx);
	PQclear(r);
	if (rc == COFFER_OK && n == 0) {
		rollback(s); /* nothing to move: no generation bump */
		return COFFER_OK;
	}
	rc = finish_write(s, rc);
	if (rc == COFFER_OK)
		*done = (size_t)n;
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* declarations (schema 4)                                                                    */

/* Never retried: a connection lost during COMMIT leaves the outcome unknown (EUNAVAIL). */
static int pg_decl_add(store *st, const store_decl *items, size_t n)
{
	pg_store *s = (pg_store *)st;
	char actions[16], when[24];
	int rc = begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	snprintf(when, sizeof when, "%lld", (long long)now_ms());
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		snprintf(actions, sizeof actions, "%u", items[i].actions);
		const char *v[4] = {items[i].service, items[i].secret, actions, when};
		PGresult *r = PQexecParams(
		    s->conn,
		    "INSERT INTO coffer_declarations (service, secret, actions, declared_ms) "
		    "VALUES ($1, $2, $3::integer, $4::bigint) ON CONFLICT (service, secret) DO "
		    "UPDATE "
		    "SET actions = coffer_declarations.actions | excluded.actions",
		    4, NULL, v, NULL, NULL, 0);
		rc = res_rc(s, r, PGRES_COMMAND_OK, "recording a declaration");
		PQclear(r);
	}
	if (rc != COFFER_OK) {
		rollback(s);
		return rc;
	}
	return commit(s);
}

static int pg_decl_list(store *st, store_decl_cb cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	int rc = ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	PGresult *r = PQexec(s->conn, "SELECT service, secret, actions, declared_ms FROM "
	                              "coffer_declarations ORDER BY service, secret");
	rc = res_rc(s, r, PGRES_TUPLES_OK, "listing declarations");
	for (int i = 0; rc == COFFER_OK && i < PQntuples(r); i++) {
		store_decl d = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
		                (unsigned)strtoul(PQgetvalue(r, i, 2), NULL, 10),
		                strtoll(PQgetvalue(r, i, 3), NULL, 10)};
		rc = cb(ctx, &d);
	}
	PQclear(r);
	return rc;
}

/* coffer copy: a whole secret written as given, in one transaction (store.h, import_secret). */
static int pg_import_secret(store *st, const char *name, size_t name_len, const store_meta *m,
                            const store_info *info, const store_row *rows, size_t n, int *existed)
{
	pg_store *s = (pg_store *)st;
	*existed = 0;
	int rc = begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	static const Oid types[13] = {OID_TEXT, OID_INT8, OID_INT8,  OID_INT8, OID_BYTEA,
	                              OID_INT8, OID_INT8, OID_BYTEA, OID_INT8, OID_TEXT,
	                              OID_TEXT, OID_INT8, OID_INT8};
	static const int formats[13] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	uint8_t b[8][8];
	put_be64(b[0], m->last_version);
	put_be64(b[1], m->latest);
	put_be64(b[2], m->epoch);
	put_be64(b[3], m->max_versions);
	put_be64(b[4], m->previous);
	put_be64(b[5], m->purge_ms);
	put_be64(b[6], (uint64_t)info->created_ms);
	put_be64(b[7], (uint64_t)info->updated_ms);
	const char *d = info->description[0] != '\0' ? info->description : NULL;
	const char *t = info->tags[0] != '\0' ? info->tags : NULL;
	const char *v[13] = {name,
	                     (const char *)b[0],
	                     (const char *)b[1],
	                     (const char *)b[2],
	                     (const char *)m->mac,
	                     (const char *)b[3],
	                     (const char *)b[4],
	                     m->ldigest_len == STORE_DIGEST_LEN ? (const char *)m->ldigest : NULL,
	                     (const char *)b[5],
	                     d,
	                     t,
	                     (const char *)b[6],
	                     (const char *)b[7]};
	const int l[13] = {(int)name_len,
	                   8,
	                   8,
	                   8,
	                   (int)m->mac_len,
	                   8,
	                   8,
	                   (int)m->ldigest_len,
	                   8,
	                   d != NULL ? (int)strlen(d) : 0,
	                   t != NULL ? (int)strlen(t) : 0,
	                   8,
	                   8};
	PGresult *r = PQexecParams(
	    s->conn,
	    "INSERT INTO coffer_secrets (name, last_version, latest, epoch, mac, max_versions, "
	    "previous, ldigest, purge_ms, description, tags, created_ms, updated_ms) VALUES ($1, "
	    "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (name) DO NOTHING "
	    "RETURNING id",
	    13, types, v, l, formats, 1);
	rc = res_rc(s, r, PGRES_TUPLES_OK, "importing a secret");
	uint64_t sid = 0;
	if (rc == COFFER_OK && PQntuples(r) == 0)
		*existed = 1;
	else if (rc == COFFER_OK && !col_uint(r, 0, 0, 8, &sid)) {
		set_err(s, "importing a secret: no id returned");
		rc = COFFER_EIO;
	}
	PQclear(r);
	if (rc != COFFER_OK || *existed) {
		rollback(s);
		return rc;
	}
	static const Oid vtypes[7] = {OID_INT8, OID_INT8,  OID_INT8, OID_INT8,
	                              OID_INT8, OID_BYTEA, OID_BYTEA};
	static const int vformats[7] = {1, 1, 1, 1, 1, 1, 1};
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		uint8_t c[5][8];
		put_be64(c[0], sid);
		put_be64(c[1], rows[i].version);
		put_be64(c[2], rows[i].key_id);
		put_be64(c[3], (uint64_t)(int64_t)rows[i].state);
		put_be64(c[4], (uint64_t)rows[i].created_ms);
		const char *vv[7] = {(const char *)c[0],
		                     (const char *)c[1],
		                     (const char *)c[2],
		                     (const char *)c[3],
		                     (const char *)c[4],
		                     rows[i].sealed != NULL ? (const char *)rows[i].sealed : "",
		                     (const char *)rows[i].mac};
		const int vl[7] = {8,
		                   8,
		                   8,
		                   8,
		                   8,
		                   rows[i].sealed != NULL ? (int)rows[i].sealed_len : 0,
		                   (int)rows[i].mac_len};
		r = PQexecParams(
		    s->conn,
		    "INSERT INTO coffer_versions (secret_id, version, key_id, state, "
		    "created_ms, sealed, mac) VALUES ($1, $2, $3, $4::bigint::smallint, $5, "
		    "$6, $7)",
		    7, vtypes, vv, vl, vformats, 1);
		rc = res_rc(s, r, PGRES_COMMAND_OK, "importing a version");
		PQclear(r);
	}
	if (rc == COFFER_OK)
		rc = write_labels(s, sid, m);
	return finish_write(s, rc);
}

const store_ops postgres_store_ops = {
    .scheme = "postgres",
    .open = pg_open,
    .close = pg_close,
    .errmsg = pg_errmsg,
    .default_key_file = pg_default_key_file,
    .bootstrap = pg_bootstrap,
    .keys_load = pg_keys_load,
    .put = pg_put,
    .get = pg_get,
    .generation = pg_generation,
    .list_secrets = pg_list_secrets,
    .list_versions = pg_list_versions,
    .keys_add = pg_keys_add,
    .keys_reseal = pg_keys_reseal,
    .reseal_batch = pg_reseal_batch,
    .keys_prune = pg_keys_prune,
    .destroy = pg_destroy,
    .labels_get = pg_labels_get,
    .purge = pg_purge,
    .list_page = pg_list_page,
    .info_set = pg_info_set,
    .audit_pending = pg_audit_pending,
    .audit_append = pg_audit_append,
    .audit_list = pg_audit_list,
    .meta_init = pg_meta_init,
    .decl_add = pg_decl_add,
    .decl_list = pg_decl_list,
    .import_secret = pg_import_secret,
    .audit_import = pg_audit_import,
};
