/*
 * schema.c -- PostgreSQL backend: the prepared statements, and the schema: created or migrated at
 * open under an advisory lock.
 */
#include <stdio.h>
#include <string.h>

#include "store/postgres/pg.h"

#define ROW_COLUMNS "v.version, v.key_id, v.state, v.created_ms"
#define ROW_FROM                                                                                   \
	" FROM coffer_secrets s JOIN coffer_versions v ON v.secret_id = s.id WHERE s.name = $1"
#define GEN_SUBSELECT "(SELECT wgen FROM coffer_meta WHERE id = 1)"
/* A get: the secret's metadata, the largest version id of any of its rows (a row beyond
 * last_version is an edit outside coffer), one row (columns 5-10; NULL when absent), the store
 * generation (11) and the generation of the name's bucket (16, parameter b), all from one
 * statement, hence one snapshot. */
#define GET_SELECT(b)                                                                              \
	"SELECT s.last_version, s.latest, s.epoch, s.mac, (SELECT max(version) FROM "              \
	"coffer_versions WHERE secret_id = s.id), " ROW_COLUMNS                                    \
	", v.sealed, v.mac, " GEN_SUBSELECT ", s.previous, s.ldigest, s.purge_ms, s.max_versions"  \
	", (SELECT gen FROM coffer_gen WHERE bucket = " b ")"                                      \
	" FROM coffer_secrets s LEFT JOIN coffer_versions v ON v.secret_id = s.id "

const pg_stmt pg_stmts[ST_COUNT] = {
    /* Every generation: the store's (bucket -1, with the instance name) and each bucket's. */
    [ST_GEN] = {"coffer_gen",
                "SELECT -1, wgen, instance FROM coffer_meta WHERE id = 1 UNION ALL "
                "SELECT bucket, gen, NULL FROM coffer_gen",
                0,
                {0}},
    /* latest is the row the (MAC'd) metadata names: a point lookup, whatever was edited. */
    [ST_GET_LATEST] = {"coffer_get_latest",
                       GET_SELECT("$2") "AND v.version = s.latest WHERE s.name = $1",
                       2,
                       {OID_TEXT, OID_INT8}},
    [ST_GET_VERSION] = {"coffer_get_version",
                        GET_SELECT("$3") "AND v.version = $2 WHERE s.name = $1",
                        3,
                        {OID_TEXT, OID_INT8, OID_INT8}},
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
    /* A write that may touch any secret (key rotation, re-encryption, purge): the store's
     * generation, which every token includes. Announced after COMMIT (pg_finish_write). */
    [ST_BUMP] = {"coffer_bump",
                 "UPDATE coffer_meta SET wgen = wgen + 1 WHERE id = 1 RETURNING wgen",
                 0,
                 {0}},
    /* A write of some secrets: the generations of their buckets ($1, a text array), locked
     * in ascending order (two writers never deadlock on them), each row held until COMMIT. */
    [ST_BUMP_BUCKETS] = {"coffer_bump_buckets",
                         "WITH l AS (SELECT bucket FROM coffer_gen WHERE bucket = "
                         "ANY ($1::integer[]) ORDER BY bucket FOR UPDATE) UPDATE coffer_gen g "
                         "SET gen = g.gen + 1 FROM l WHERE g.bucket = l.bucket "
                         "RETURNING g.bucket, g.gen",
                         1,
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
/*
 * Schema 4 -> 5: invalidation per bucket of secret names (issue 11). coffer_gen holds one
 * generation per bucket (a hash of the name picks the bucket, pg_bucket()); a write of some
 * secrets bumps only their buckets, so writes of different secrets no longer queue on one row,
 * and a server's cache drops only the entries of those buckets. Writes that may touch any secret
 * bump coffer_meta's generation, renamed wgen: a coffer of schema 4 still running on the store
 * then fails loudly (its statements name gen) instead of trusting cached rows that the newer
 * coffer's puts no longer announce in the way it understands. Self-contained.
 */
static const char schema_gen[] =
    "CREATE TABLE coffer_gen ("
    " bucket integer PRIMARY KEY CHECK (bucket >= 0 AND bucket < " PG_STR(
        PG_GEN_BUCKETS) "),"
                        " gen bigint NOT NULL) WITH (fillfactor = 50);"
                        "INSERT INTO coffer_gen (bucket, gen) SELECT b, 0 FROM "
                        "generate_series(0, " PG_STR(
                            PG_GEN_BUCKETS) " - 1) b;"
                                            "ALTER TABLE coffer_meta RENAME COLUMN gen TO wgen;";

static const char *const migrations[PG_SCHEMA_VERSION] = {
    [0] = schema_v1, [1] = schema_v2, [2] = schema_v3, [3] = schema_decl, [4] = schema_gen};

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
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "looking for the coffer schema");
	int exists = rc == COFFER_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	*version = 0;
	if (rc != COFFER_OK || !exists)
		return rc;
	r = PQexec(s->conn, "SELECT schema_version FROM coffer_meta WHERE id = 1");
	rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the schema version");
	if (rc == COFFER_OK && PQntuples(r) == 1) {
		const char *v = PQgetvalue(r, 0, 0);
		uint64_t n;
		if (pg_parse_u64(v, &n) && n > 0 && n < 1000000)
			*version = (int)n;
	}
	if (rc == COFFER_OK && *version == 0) {
		pg_set_err(s, "the coffer_meta table of this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	PQclear(r);
	return rc;
}

/* Apply migrations from `from` up to PG_SCHEMA_VERSION; inside the caller's transaction. */
static int migrate(pg_store *s, int from)
{
	for (int v = from; v < PG_SCHEMA_VERSION; v++) {
		int rc = pg_exec_cmd(s, migrations[v], "creating or migrating the schema");
		if (rc != COFFER_OK)
			return rc;
	}
	/* schema_v1 records version 1; whatever ran, record where it ended. */
	PGresult *r = PQexec(s->conn, "UPDATE coffer_meta SET schema_version = " PG_STR(
	                                  PG_SCHEMA_VERSION) " WHERE id = 1");
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "recording the schema version");
	PQclear(r);
	return rc;
}

static int check_version(pg_store *s, int v)
{
	if (v > PG_SCHEMA_VERSION) {
		pg_set_err(s,
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
int pg_schema_ensure(pg_store *s, int create)
{
	int v, rc = schema_version(s, &v);
	if (rc != COFFER_OK || v == PG_SCHEMA_VERSION)
		return rc != COFFER_OK ? rc : COFFER_OK;
	if ((rc = check_version(s, v)) != COFFER_OK)
		return rc;
	if (v == 0 && !create) {
		pg_set_err(s, "this database holds no coffer store");
		return COFFER_ENOTFOUND;
	}
	if ((rc = pg_exec_cmd(s, PG_BEGIN, "BEGIN")) != COFFER_OK)
		return rc;
	/* The key is an arbitrary constant ("coffer" in ASCII) shared by every coffer. */
	rc = pg_exec_cmd(s, "DO $$ BEGIN PERFORM pg_advisory_xact_lock(109227237434738); END $$",
	                 "locking the schema");
	if (rc == COFFER_OK)
		rc = schema_version(s, &v);
	if (rc == COFFER_OK)
		rc = check_version(s, v);
	if (rc == COFFER_OK && v == 0 && !create) {
		pg_set_err(s, "this database holds no coffer store");
		rc = COFFER_ENOTFOUND;
	}
	if (rc == COFFER_OK && v < PG_SCHEMA_VERSION)
		rc = migrate(s, v);
	if (rc == COFFER_OK)
		return pg_exec_cmd(s, "COMMIT", "creating the schema");
	pg_rollback(s);
	return rc;
}
