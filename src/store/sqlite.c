/*
 * The embedded SQLite backend: one folder holding coffer.db (+ -wal, -shm), coffer.gen and,
 * by default, master.key. WAL, synchronous=FULL, secure_delete, writes in BEGIN IMMEDIATE.
 *
 * coffer.gen is a tiny shared-memory file holding the store generation: every write
 * transaction bumps the generation row in the database AND stores the new value into
 * coffer.gen BEFORE it commits. A reader caches a row tagged with the generation read in the
 * row's own snapshot and trusts it only while coffer.gen still holds that value: any commit
 * after the snapshot has already changed coffer.gen, and a writer that dies before committing
 * only leaves coffer.gen ahead (readers then miss the cache until the next write): never stale.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"

enum {
	Q_UPSERT_SECRET,
	Q_INSERT_VERSION,
	Q_SET_LATEST,
	Q_BUMP_GEN,
	Q_GET_LATEST,
	Q_GET_VERSION,
	Q_KEYS,
	Q_KEYS_LOAD,
	Q_NEWEST_KEY,
	Q_HEADER,
	Q_LIST_SECRETS,
	Q_SECRET,
	Q_LIST_VERSIONS,
	Q_ROWS,
	Q_WRITE_ROW,
	Q_WRITE_META,
	Q_REQ_GET,
	Q_REQ_PUT,
	Q_REQ_PRUNE,
	Q_LABELS,
	Q_LABELS_DEL,
	Q_LABEL_INS,
	Q_INFO,
	Q_LIST_PAGE,
	Q_AUDIT_LAST,
	Q_AUDIT_INSERT,
	Q_AUDIT_INSERT_MANY,
	/* Past here: prepared on first use (stmt()), kept until close. The ones above are the
	 * hot paths', prepared at open. */
	Q_EAGER,
	Q_HEADER_INS = Q_EAGER,
	Q_KEY_INS,
	Q_SET_KDF,
	Q_KEY_RESEAL,
	Q_SET_META_KEY,
	Q_RESEAL_SELECT,
	Q_RESEAL_GET,
	Q_RESEAL_UPD,
	Q_PURGE_DUE,
	Q_PURGE_VERSIONS,
	Q_PURGE_LABELS,
	Q_PURGE_REQUESTS,
	Q_PURGE_SECRETS,
	Q_INFO_SET,
	Q_SECRET_IDS,
	Q_SECRET_BY_ID,
	Q_DECL_ADD,
	Q_DECL_LIST,
	Q_SECRET_ID,
	Q_IMPORT_SECRET,
	Q_IMPORT_VERSION,
	Q_COUNT
};

/* The secret's metadata, the largest version id of any of its rows (a row beyond last_version
 * is an edit outside coffer), then one row: columns 0-4 and 5-10 of a get, 11 the generation,
 * 12-13 the rest of the metadata (previous, label digest). */
#define GET_COLUMNS                                                                                \
	"SELECT s.last_version, s.latest, s.epoch, s.mac, (SELECT version FROM versions WHERE "    \
	"secret_id = s.id ORDER BY version DESC LIMIT 1), v.version, v.key_id, v.state, "          \
	"v.created_ms, v.sealed, v.mac, (SELECT gen FROM gen WHERE id = 1), s.previous, "          \
	"s.ldigest, s.purge_ms, s.max_versions FROM secrets s "

/* Entries per multi-row INSERT of the audit log (11 parameters each). */
#define AUDIT_ROWS      16
#define AUDIT_VALUES_1  "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define AUDIT_VALUES_4  AUDIT_VALUES_1 ", " AUDIT_VALUES_1 ", " AUDIT_VALUES_1 ", " AUDIT_VALUES_1
#define AUDIT_VALUES_16 AUDIT_VALUES_4 ", " AUDIT_VALUES_4 ", " AUDIT_VALUES_4 ", " AUDIT_VALUES_4

static const char *const queries[Q_COUNT] = {
    [Q_UPSERT_SECRET] = "INSERT INTO secrets(name, last_version, created_ms) VALUES(?1, 1, ?2) "
                        "ON CONFLICT(name) DO UPDATE SET last_version = last_version + 1 "
                        "RETURNING id, last_version, latest, epoch, mac, (SELECT version "
                        "FROM versions WHERE secret_id = secrets.id ORDER BY version DESC "
                        "LIMIT 1), max_versions, previous, ldigest, purge_ms",
    [Q_INSERT_VERSION] = "INSERT INTO versions(secret_id, version, key_id, state, created_ms, "
                         "sealed, mac) VALUES(?1, ?2, ?3, 0, ?4, ?5, ?6)",
    /* A put's new metadata; last_version too, so a batch writes a secret's last put alone. */
    [Q_SET_LATEST] = "UPDATE secrets SET latest = ?2, mac = ?3, previous = ?4, updated_ms = ?5, "
                     "last_version = ?2 WHERE id = ?1",
    [Q_BUMP_GEN] = "UPDATE gen SET gen = gen + 1 WHERE id = 1 RETURNING gen",
    /* latest is the row the (MAC'd) metadata names: a point lookup, whatever was edited. */
    [Q_GET_LATEST] = GET_COLUMNS "LEFT JOIN versions v ON v.secret_id = s.id AND v.version = "
                                 "s.latest WHERE s.name = ?1",
    [Q_GET_VERSION] = GET_COLUMNS "LEFT JOIN versions v ON v.secret_id = s.id AND v.version = ?2 "
                                  "WHERE s.name = ?1",
    [Q_KEYS] = "SELECT id, sealed FROM keyring ORDER BY id",
    /* One statement, one snapshot: the metadata key (id 0) and the data keys. */
    [Q_KEYS_LOAD] = "SELECT 0, meta_key FROM header WHERE id = 1 AND meta_key IS NOT NULL "
                    "UNION ALL SELECT id, sealed FROM keyring ORDER BY 1",
    [Q_NEWEST_KEY] = "SELECT id, sealed FROM keyring ORDER BY id DESC LIMIT 1",
    [Q_HEADER] = "SELECT store_id, kdf_salt, kdf_ops, kdf_mem, meta_key FROM header WHERE id = 1",
    /* Counts what can be read (enabled versions), so it agrees with latest. */
    [Q_LIST_SECRETS] = "SELECT s.name, (SELECT count(*) FROM versions v WHERE v.secret_id = "
                       "s.id AND v.state = 0) FROM secrets s WHERE s.purge_ms = 0 "
                       "ORDER BY s.name",
    [Q_SECRET] = "SELECT id, last_version, latest, epoch, mac, max_versions, previous, ldigest, "
                 "purge_ms FROM secrets WHERE name = ?1",
    [Q_LIST_VERSIONS] = "SELECT version, key_id, state, created_ms, length(sealed), mac FROM "
                        "versions WHERE secret_id = ?1 ORDER BY version",
    [Q_ROWS] = "SELECT version, state, mac FROM versions WHERE secret_id = ?1 ORDER BY version",
    /* A row destroyed loses its ciphertext; a disabled one keeps it. */
    [Q_WRITE_ROW] = "UPDATE versions SET state = ?3, mac = ?4, sealed = CASE WHEN ?3 = 1 THEN "
                    "NULL ELSE sealed END WHERE secret_id = ?1 AND version = ?2",
    [Q_WRITE_META] = "UPDATE secrets SET latest = ?2, epoch = ?3, mac = ?4, ldigest = ?5, "
                     "purge_ms = ?6, updated_ms = ?7, max_versions = ?8 WHERE id = ?1",
    [Q_REQ_GET] = "SELECT version, vhash FROM requests WHERE secret_id = ?1 AND rid = ?2",
    [Q_REQ_PUT] = "INSERT INTO requests(secret_id, rid, vhash, version, created_ms) "
                  "VALUES(?1, ?2, ?3, ?4, ?5)",
    [Q_REQ_PRUNE] = "DELETE FROM requests WHERE created_ms < ?1",
    [Q_LABELS] = "SELECT name, version FROM labels WHERE secret_id = ?1 ORDER BY name",
    [Q_LABELS_DEL] = "DELETE FROM labels WHERE secret_id = ?1",
    [Q_LABEL_INS] = "INSERT INTO labels(secret_id, name, version) VALUES(?1, ?2, ?3)",
    [Q_INFO] = "SELECT description, tags, created_ms, updated_ms, max_versions FROM secrets "
               "WHERE id = ?1",
    /* Names hold only A-Z a-z 0-9 . _ -, all below '~': prefix..prefix~ is the prefix's range.
     * One lower bound, max(after, prefix) (name <> after makes it "> after"): given "> ?1 AND
     * >= ?2" SQLite starts the index range at ?1 alone, so the first page of a prefix (after
     * "") read every name before the prefix (tests/unit/test_scale_plan.c). */
    [Q_LIST_PAGE] = "SELECT s.name, (SELECT count(*) FROM versions v WHERE v.secret_id = s.id "
                    "AND v.state = 0) FROM secrets s WHERE s.purge_ms = 0 AND s.name >= "
                    "max(?1, ?2) AND s.name <> ?1 AND s.name < ?2 || '~' ORDER BY s.name "
                    "LIMIT ?3",
    /* The audit log's writes: prepared once, not per transaction (an audited server writes
     * one transaction per burst of answers, docs/performance.md "Server Access with
     * `--audit`"). */
    [Q_AUDIT_LAST] = "SELECT seq, mac FROM audit WHERE chain = ?1 ORDER BY seq DESC LIMIT 1",
    [Q_AUDIT_INSERT] = "INSERT INTO audit(chain, seq, ts_ms, principal, action, secret, version, "
                       "outcome, error, rid, mac) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                       "?11)",
    /* AUDIT_ROWS entries in one statement: one statement's set-up and halt for them all. */
    [Q_AUDIT_INSERT_MANY] = "INSERT INTO audit(chain, seq, ts_ms, principal, action, secret, "
                            "version, outcome, error, rid, mac) VALUES " AUDIT_VALUES_16,
    [Q_HEADER_INS] = "INSERT INTO header(id, store_id, kdf_salt, kdf_ops, kdf_mem, created_ms, "
                     "meta_key) VALUES(1, ?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_KEY_INS] = "INSERT INTO keyring(id, sealed, created_ms) VALUES(?1, ?2, ?3)",
    [Q_SET_KDF] = "UPDATE header SET kdf_salt = ?1, kdf_ops = ?2, kdf_mem = ?3 WHERE id = 1",
    [Q_KEY_RESEAL] = "UPDATE keyring SET sealed = ?2 WHERE id = ?1",
    [Q_SET_META_KEY] = "UPDATE header SET meta_key = ?1 WHERE id = 1",
    [Q_RESEAL_SELECT] = "SELECT secret_id, version FROM versions WHERE key_id < ?1 AND sealed IS "
                        "NOT NULL LIMIT ?2",
    [Q_RESEAL_GET] = "SELECT s.name, v.key_id, v.sealed FROM versions v JOIN secrets s ON s.id = "
                     "v.secret_id WHERE v.secret_id = ?1 AND v.version = ?2",
    [Q_RESEAL_UPD] = "UPDATE versions SET key_id = ?3, sealed = ?4 WHERE secret_id = ?1 AND "
                     "version = ?2",
    [Q_PURGE_DUE] = "SELECT 1 FROM secrets WHERE purge_ms > 0 AND purge_ms <= ?1 LIMIT 1",
    [Q_PURGE_VERSIONS] = "DELETE FROM versions WHERE secret_id IN (SELECT id FROM secrets WHERE "
                         "purge_ms > 0 AND purge_ms <= ?1)",
    [Q_PURGE_LABELS] = "DELETE FROM labels WHERE secret_id IN (SELECT id FROM secrets WHERE "
                       "purge_ms > 0 AND purge_ms <= ?1)",
    [Q_PURGE_REQUESTS] = "DELETE FROM requests WHERE secret_id IN (SELECT id FROM secrets WHERE "
                         "purge_ms > 0 AND purge_ms <= ?1)",
    [Q_PURGE_SECRETS] = "DELETE FROM secrets WHERE purge_ms > 0 AND purge_ms <= ?1",
    [Q_INFO_SET] = "UPDATE secrets SET description = CASE WHEN ?2 THEN ?3 ELSE description END, "
                   "tags = CASE WHEN ?4 THEN ?5 ELSE tags END, updated_ms = ?6 WHERE name = ?1",
    [Q_SECRET_IDS] = "SELECT id FROM secrets ORDER BY id",
    [Q_SECRET_BY_ID] = "SELECT name, last_version, latest, epoch, mac FROM secrets WHERE id = ?1",
    [Q_DECL_ADD] = "INSERT INTO declarations(service, secret, actions, declared_ms) "
                   "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(service, secret) DO UPDATE SET "
                   "actions = actions | excluded.actions",
    [Q_DECL_LIST] = "SELECT service, secret, actions, declared_ms FROM declarations ORDER BY "
                    "service, secret",
    [Q_SECRET_ID] = "SELECT id FROM secrets WHERE name = ?1",
    [Q_IMPORT_SECRET] = "INSERT INTO secrets(name, last_version, created_ms, latest, epoch, mac, "
                        "max_versions, previous, ldigest, purge_ms, description, tags, "
                        "updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                        "?13)",
    [Q_IMPORT_VERSION] = "INSERT INTO versions(secret_id, version, key_id, state, created_ms, "
                         "sealed, mac) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
};

static const char schema_v1[] =
    "CREATE TABLE header(id INTEGER PRIMARY KEY CHECK (id = 1), store_id BLOB NOT NULL, "
    "  kdf_salt BLOB NOT NULL, kdf_ops INTEGER NOT NULL, kdf_mem INTEGER NOT NULL, "
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE keyring(id INTEGER PRIMARY KEY, sealed BLOB NOT NULL, "
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE secrets(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "  last_version INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE TABLE versions(secret_id INTEGER NOT NULL REFERENCES secrets(id), "
    "  version INTEGER NOT NULL, key_id INTEGER NOT NULL, state INTEGER NOT NULL, "
    "  created_ms INTEGER NOT NULL, sealed BLOB, PRIMARY KEY (secret_id, version)) "
    "  WITHOUT ROWID;"
    "CREATE TABLE gen(id INTEGER PRIMARY KEY CHECK (id = 1), gen INTEGER NOT NULL);"
    "INSERT INTO gen(id, gen) VALUES(1, 1);"
    "PRAGMA user_version = 1;";

/*
 * Schema 1 -> 2: metadata MACs. The metadata key, and per secret the newest enabled version,
 * the number of versions destroyed and the MAC; per version row its MAC. The columns start
 * empty: the core fills them (meta_init) when a handle with the master key first opens the
 * store. A coffer from before this that still has the store open would insert versions without
 * a MAC, and their secrets would then fail their check: the trigger refuses such puts instead.
 */
static const char schema_v2[] =
    "ALTER TABLE header ADD COLUMN meta_key BLOB;"
    "ALTER TABLE secrets ADD COLUMN latest INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE secrets ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE secrets ADD COLUMN mac BLOB;"
    "ALTER TABLE versions ADD COLUMN mac BLOB;"
    "CREATE TRIGGER versions_need_mac BEFORE INSERT ON versions WHEN NEW.mac IS NULL BEGIN "
    "  SELECT RAISE(ABORT, 'this store has metadata MACs (schema 2): upgrade this coffer'); "
    "END;"
    "PRAGMA user_version = 2;";

/*
 * Schema 2 -> 3: the lifecycle (docs/lifecycle.md). Per secret its retention (max_versions, 0:
 * none), the version latest before the newest put and the digest of its custom labels (both
 * MAC'd; NULL digest: no labels); the custom labels; the request ids of idempotent puts, each
 * only as a keyed hash, with the keyed hash of the value it put and the version it made,
 * kept at least 24 hours. Version state 2 (disabled) needs no change. Self-contained: it
 * assumes only schema 2 before it.
 */
static const char schema_v3[] =
    "ALTER TABLE secrets ADD COLUMN max_versions INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE secrets ADD COLUMN previous INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE secrets ADD COLUMN ldigest BLOB;"
    "ALTER TABLE secrets ADD COLUMN purge_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE secrets ADD COLUMN description TEXT;"
    "ALTER TABLE secrets ADD COLUMN tags TEXT;"
    "ALTER TABLE secrets ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0;"
    "UPDATE secrets SET updated_ms = coalesce((SELECT max(created_ms) FROM versions v WHERE "
    "  v.secret_id = secrets.id), created_ms);"
    "CREATE INDEX secrets_purge ON secrets(purge_ms) WHERE purge_ms > 0;"
    "CREATE TABLE labels(secret_id INTEGER NOT NULL REFERENCES secrets(id), "
    "  name TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (secret_id, name)) "
    "  WITHOUT ROWID;"
    "CREATE TABLE requests(secret_id INTEGER NOT NULL REFERENCES secrets(id), "
    "  rid BLOB NOT NULL, vhash BLOB NOT NULL, version INTEGER NOT NULL, "
    "  created_ms INTEGER NOT NULL, PRIMARY KEY (secret_id, rid)) WITHOUT ROWID;"
    "CREATE INDEX requests_by_age ON requests(created_ms);"
    "CREATE TABLE audit(id INTEGER PRIMARY KEY, chain TEXT NOT NULL, seq INTEGER NOT NULL, "
    "  ts_ms INTEGER NOT NULL, principal TEXT NOT NULL, action TEXT NOT NULL, "
    "  secret TEXT NOT NULL, version TEXT NOT NULL, outcome INTEGER NOT NULL, "
    "  error TEXT NOT NULL, rid TEXT NOT NULL, mac BLOB NOT NULL, UNIQUE (chain, seq));"
    "PRAGMA user_version = 3;";

/*
 * Schema 3 -> 4: declarations (issue 13 item 8). Which service declared which secret, with which
 * actions (a bit set, 0: the secret alone); what development mode learned and --record-policy
 * writes out. Self-contained: it only adds a table.
 */
static const char schema_decl[] =
    "CREATE TABLE declarations(service TEXT NOT NULL, secret TEXT NOT NULL, "
    "  actions INTEGER NOT NULL, declared_ms INTEGER NOT NULL, PRIMARY KEY (service, secret)) "
    "  WITHOUT ROWID;"
    "PRAGMA user_version = 4;";

typedef struct sqlite_store {
	sqlite3 *db;
	int audit_nosync; /* STORE_OPEN_AUDIT_NOSYNC */
	sqlite3_stmt *q[Q_COUNT];
	sqlite3_stmt *rollback_q; /* prepared at open: a ROLLBACK must not need memory */
	uint64_t *gen;       /* mmap of coffer.gen, or NULL when unavailable (cache then unused) */
	char gen_path[4096]; /* coffer.gen, to map it later when it could not be at open */
	char err[512];
	/* Audit entries the next write transaction appends before it commits. */
	size_t audit_n;
	store_audit_fn audit_fn;
	void *audit_ctx;
} sqlite_store;

#define S(s) ((sqlite_store *)(s))

static int64_t now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int map_rc(int src)
{
	switch (src & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return COFFER_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return COFFER_EBUSY;
	case SQLITE_NOMEM:
		return COFFER_ENOMEM;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return COFFER_ECORRUPT;
	case SQLITE_FULL:
		return COFFER_EFULL;
	default:
		return COFFER_EIO;
	}
}

/* SQLite says SQLITE_FULL when a write finds no room, but growing its shared-memory file on a
 * full disk is an I/O error (SQLITE_IOERR_SHMSIZE ...): the errno tells. */
static int full_disk(sqlite_store *s, int src)
{
	if ((src & 0xff) == SQLITE_FULL)
		return 1;
	if ((src & 0xff) != SQLITE_IOERR || s->db == NULL)
		return 0;
	int e = sqlite3_system_errno(s->db);
	return e == ENOSPC || e == EDQUOT;
}

static int fail(sqlite_store *s, int src, const char *what)
{
	if (full_disk(s, src)) {
		snprintf(s->err, sizeof s->err,
		         "sqlite: %s: the disk is full (no space left for the store: free some "
		         "space and try again)",
		         what);
		return COFFER_EFULL;
	}
	snprintf(s->err, sizeof s->err, "sqlite: %s: %s", what,
	         s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
	return map_rc(src);
}

static void rollback(sqlite_store *s);

static int exec(sqlite_store *s, const char *sql, const char *what)
{
	/* A transaction still open here is one whose ROLLBACK failed (out of memory): end it, or
	 * this handle would read its own half-done write and refuse every later one. */
	if (strncmp(sql, "BEGIN", 5) == 0 && !sqlite3_get_autocommit(s->db))
		rollback(s);
	int src = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return src == SQLITE_OK ? COFFER_OK : fail(s, src, what);
}

static void rollback(sqlite_store *s)
{
	/* Fails harmlessly when no transaction is open (e.g. COMMIT already rolled back). The
	 * statement is prepared at open: compiling it here could fail for want of memory and
	 * leave the transaction open. */
	if (s->rollback_q != NULL) {
		(void)sqlite3_step(s->rollback_q);
		(void)sqlite3_reset(s->rollback_q);
	}
	if (!sqlite3_get_autocommit(s->db))
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int bump_gen(sqlite_store *s);

/* End the open write transaction: bump (and publish) the generation if asked, then COMMIT;
 * on any failure, ROLLBACK. Returns the first error. */
static int audit_write(sqlite_store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx);

static int finish_write(sqlite_store *s, int rc, int bump)
{
	size_t an = s->audit_n;
	s->audit_n = 0;
	if (rc == COFFER_OK && an > 0)
		rc = audit_write(s, "", an, s->audit_fn, s->audit_ctx);
	if (rc == COFFER_OK && bump)
		rc = bump_gen(s);
	if (rc == COFFER_OK)
		rc = exec(s, "COMMIT", "commit");
	if (rc != COFFER_OK)
		rollback(s);
	return rc;
}

/* Statement `id` of queries[], prepared now if it was not yet (past Q_EAGER). Returns the
 * SQLite code of the prepare. Give it back with stmt_done(). */
static int stmt(sqlite_store *s, int id, sqlite3_stmt **q)
{
	if (s->q[id] == NULL) {
		int src = sqlite3_prepare_v3(s->db, queries[id], -1, SQLITE_PREPARE_PERSISTENT,
		                             &s->q[id], NULL);
		if (src != SQLITE_OK) {
			*q = NULL;
			return src;
		}
	}
	*q = s->q[id];
	return SQLITE_OK;
}

/* Done with a statement of queries[]: reset (which ends the read it may hold) and unbound. */
static void stmt_done(sqlite3_stmt *q)
{
	if (q != NULL) {
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
	}
}

static int path_join(char *buf, size_t len, const char *dir, const char *file)
{
	return snprintf(buf, len, "%s/%s", dir, file) < (int)len ? COFFER_OK : COFFER_EINVAL;
}

static int sq_default_key_file(const char *location, char *buf, size_t len)
{
	return path_join(buf, len, location, "master.key");
}

/*
 * A store folder must be private (like the key file): with group or others given any access
 * they could list it, and with write access delete, swap or plant files in it (a -wal beside
 * the database, say). Refused, with the chmod to run, rather than warned: the store is where
 * the secrets are. A folder that holds no database, opened without STORE_OPEN_CREATE, is left
 * to say "no store" instead (no chmod advice for a folder that is not a store).
 */
static int check_private(const char *dir, mode_t mode, unsigned flags, char *err, size_t errlen)
{
	char db[4096];
	struct stat st;
	if ((mode & 077) == 0)
		return COFFER_OK;
	if (!(flags & STORE_OPEN_CREATE) &&
	    path_join(db, sizeof db, dir, "coffer.db") == COFFER_OK && lstat(db, &st) != 0 &&
	    errno == ENOENT)
		return COFFER_OK;
	snprintf(err, errlen,
	         "store folder '%s' is accessible by group or others (mode %04o); a store folder "
	         "must be private: run: chmod 700 '%s' (or use a folder of its own)",
	         dir, (unsigned)(mode & 07777), dir);
	return COFFER_EPERM;
}

/* The folder: created 0700; an existing one must be a private directory. */
static int prepare_dir(const char *dir, unsigned flags, char *err, size_t errlen)
{
	struct stat st;
	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return check_private(dir, st.st_mode, flags, err, errlen);
		snprintf(err, errlen, "store '%s' exists but is not a directory", dir);
		return COFFER_EINVAL;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "cannot use store '%s': %s", dir, strerror(errno));
		return COFFER_EIO;
	}
	if (!(flags & STORE_OPEN_CREATE)) {
		snprintf(err, errlen, "store '%s' does not exist", dir);
		return COFFER_ENOTFOUND;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		int e = errno;
		snprintf(err, errlen, "cannot create store '%s': %s", dir,
		         e == ENOSPC || e == EDQUOT ? "the disk is full" : strerror(e));
		return e == ENOSPC || e == EDQUOT ? COFFER_EFULL : COFFER_EIO;
	}
	return COFFER_OK;
}

/*
 * Make sure coffer.db exists (0600, so SQLite gives -wal and -shm that mode too) WITHOUT ever
 * opening an existing one. SQLite's locks are POSIX advisory locks, which belong to the process:
 * a close() of ANY descriptor on the database file drops all of them, including the shared lock
 * another handle of this process holds. The next process to close would then think it is the
 * last connection, checkpoint and unlink the WAL under that handle, whose later commits land in
 * a deleted file. So an existing file is only lstat()ed; only a file we create ourselves
 * (O_EXCL: nobody, this process included, can hold a lock on it yet) is opened and closed.
 */
static int precreate(const char *path, unsigned flags, char *err, size_t errlen)
{
	struct stat sb;
	if (lstat(path, &sb) == 0)
		return COFFER_OK; /* check_store_files() judges what it is */
	if (errno != ENOENT) {
		snprintf(err, errlen, "cannot use '%s': %s", path, strerror(errno));
		return COFFER_EIO;
	}
	if (!(flags & STORE_OPEN_CREATE)) {
		snprintf(err, errlen, "'%s' does not exist", path);
		return COFFER_ENOTFOUND;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd); /* our own new file: no lock of this process lives on it */
		return COFFER_OK;
	}
	if (errno == EEXIST)
		return COFFER_OK; /* another opener created it first; never open it ourselves */
	int e = errno;
	snprintf(err, errlen, "cannot create '%s': %s", path,
	         e == ENOSPC || e == EDQUOT ? "the disk is full" : strerror(e));
	return e == ENOSPC || e == EDQUOT ? COFFER_EFULL : COFFER_EIO;
}

/* The database, its WAL and shm must each be a regular file (or absent): a symbolic link could
 * point the store's writes anywhere, so it is refused with a message that says so. */
static int check_store_files(const char *dir, char *err, size_t errlen)
{
	static const char *const names[] = {"coffer.db", "coffer.db-wal", "coffer.db-shm",
	                                    "coffer.gen"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char path[4096];
		struct stat sb;
		if (path_join(path, sizeof path, dir, names[i]) != COFFER_OK)
			return COFFER_EINVAL;
		if (lstat(path, &sb) != 0)
			continue;
		if (S_ISLNK(sb.st_mode)) {
			snprintf(
			    err, errlen,
			    "'%s' is a symbolic link; coffer refuses a linked database, WAL, shm "
			    "or generation file (a symlinked store folder or parent is fine)",
			    path);
			return COFFER_EINVAL;
		}
		if (!S_ISREG(sb.st_mode)) {
			snprintf(err, errlen, "'%s' is not a regular file", path);
			return COFFER_EINVAL;
		}
	}
	return COFFER_OK;
}

/*
 * Map coffer.gen. Its block is allocated before it is mapped: touching a page of a file that
 * has no block behind it (a sparse file, as ftruncate makes) raises SIGBUS when the file
 * system is full. posix_fallocate also allocates the block of an existing sparse file, and
 * costs nothing for one already allocated. If the file cannot be made or allocated (full disk,
 * read-only folder) the handle works without the cache; see try_map_gen() for why that is
 * never stale.
 */
static void try_map_gen(sqlite_store *s)
{
	int fd = open(s->gen_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (posix_fallocate(fd, 0, 8) == 0) {
		void *p = mmap(NULL, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p != MAP_FAILED)
			s->gen = p;
	}
	close(fd);
}

static void map_gen(sqlite_store *s, const char *dir)
{
	if (path_join(s->gen_path, sizeof s->gen_path, dir, "coffer.gen") != COFFER_OK)
		s->gen_path[0] = '\0';
	else
		try_map_gen(s);
}

static void gen_store(sqlite_store *s, uint64_t g)
{
	if (s->gen != NULL)
		__atomic_store_n(s->gen, g, __ATOMIC_SEQ_CST);
}

/* The schema version, read without writing (an empty file stays empty); -1 on error. */
static int schema_version(sqlite_store *s, int *src)
{
	sqlite3_stmt *st = NULL;
	*src = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
	int ver = -1;
	if (*src == SQLITE_OK && (*src = sqlite3_step(st)) == SQLITE_ROW)
		ver = sqlite3_column_int(st, 0);
	else if (*src == SQLITE_OK || *src == SQLITE_DONE)
		*src = SQLITE_ERROR; /* no row: never mistaken for success by fail() */
	sqlite3_finalize(st);
	return ver;
}

/* Create or check the schema, and publish the current generation (under the write lock, so no
 * writer is between its publish and its commit). */
static int setup_schema(sqlite_store *s, unsigned flags)
{
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	sqlite3_stmt *st = NULL;
	int src = SQLITE_OK, ver = schema_version(s, &src);
	if (ver < 0)
		rc = fail(s, src, "read schema version");
	else if (ver == 0 && !(flags & STORE_OPEN_CREATE)) {
		/* an empty coffer.db (a creation that stopped early): a read must not build it */
		snprintf(s->err, sizeof s->err, "the store has no schema yet");
		rc = COFFER_ENOTFOUND;
	} else if (ver == 0) {
		rc = exec(s, schema_v1, "create schema");
		if (rc == COFFER_OK)
			rc = exec(s, schema_v2, "create schema");
		if (rc == COFFER_OK)
			rc = exec(s, schema_v3, "create schema");
		if (rc == COFFER_OK)
			rc = exec(s, schema_decl, "create schema");
	} else if (ver >= 1 && ver <= 3) {
		if (ver == 1)
			rc = exec(s, schema_v2, "migrate the schema to version 2");
		if (rc == COFFER_OK && ver <= 2)
			rc = exec(s, schema_v3, "migrate the schema to version 3");
		if (rc == COFFER_OK)
			rc = exec(s, schema_decl, "migrate the schema to version 4");
	} else if (ver > STORE_SCHEMA_VERSION) {
		snprintf(s->err, sizeof s->err,
		         "store schema version %d is newer than this coffer understands (%d)", ver,
		         STORE_SCHEMA_VERSION);
		rc = COFFER_ECORRUPT;
	}
	if (rc == COFFER_OK) {
		src = sqlite3_prepare_v2(s->db, "SELECT gen FROM gen WHERE id = 1", -1, &st, NULL);
		if (src == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			gen_store(s, (uint64_t)sqlite3_column_int64(st, 0));
		else
			rc = fail(s, src, "read generation");
		sqlite3_finalize(st);
	}
	return finish_write(s, rc, 0);
}

static int configure(sqlite_store *s, unsigned flags)
{
	sqlite3_busy_timeout(s->db, 10000);
	sqlite3_extended_result_codes(s->db, 1);
	int src = SQLITE_OK;
	if (!(flags & STORE_OPEN_CREATE) && schema_version(s, &src) == 0) {
		/* before the WAL pragma, which would write a header into an empty file */
		snprintf(s->err, sizeof s->err, "the store has no schema yet");
		return COFFER_ENOTFOUND;
	}
	src = sqlite3_prepare_v3(s->db, "ROLLBACK", -1, SQLITE_PREPARE_PERSISTENT, &s->rollback_q,
	                         NULL);
	if (src != SQLITE_OK)
		return fail(s, src, "prepare");
	int rc = exec(s,
	              "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
	              "PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON; "
	              "PRAGMA trusted_schema = OFF;",
	              "configure");
	if (rc == COFFER_OK)
		rc = setup_schema(s, flags);
	for (int i = 0; i < Q_EAGER && rc == COFFER_OK; i++) {
		src = sqlite3_prepare_v3(s->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i],
		                         NULL);
		if (src != SQLITE_OK)
			rc = fail(s, src, "prepare");
	}
	return rc;
}

static void sq_close(store *h)
{
	sqlite_store *s = S(h);
	if (s == NULL)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->q[i]);
	sqlite3_finalize(s->rollback_q);
	sqlite3_close(s->db);
	if (s->gen != NULL)
		munmap(s->gen, 8);
	free(s);
}

/* The store folder with every symbolic link resolved: SQLite's NOFOLLOW refuses a link anywhere
 * in the path, and /var/lib style symlinked parents are common. Links are refused only for the
 * files themselves (check_store_files). */
static int resolve_dir(const char *dir, unsigned flags, char *out, char *err, size_t errlen)
{
	int rc = prepare_dir(dir, flags, err, errlen);
	if (rc != COFFER_OK)
		return rc;
	if (realpath(dir, out) == NULL) { /* out has PATH_MAX bytes */
		snprintf(err, errlen, "cannot resolve store folder '%s': %s", dir, strerror(errno));
		return COFFER_EIO;
	}
	return COFFER_OK;
}

static int sq_open(const char *dir, unsigned flags, store **out, char *err, size_t errlen)
{
	char real[PATH_MAX], path[PATH_MAX + 16];
	if (dir[0] == '\0') {
		snprintf(err, errlen, "invalid store path");
		return COFFER_EINVAL;
	}
	int rc = resolve_dir(dir, flags, real, err, errlen);
	if (rc == COFFER_OK && path_join(path, sizeof path, real, "coffer.db") != COFFER_OK) {
		snprintf(err, errlen, "store path is too long");
		rc = COFFER_EINVAL;
	}
	if (rc == COFFER_OK)
		rc = check_store_files(real, err, errlen);
	if (rc == COFFER_OK)
		rc = precreate(path, flags, err, errlen);
	if (rc != COFFER_OK)
		return rc;
	sqlite_store *s = calloc(1, sizeof *s);
	if (s == NULL)
		return COFFER_ENOMEM;
	/* Mapped first, so that configure() republishes the database's generation into it. */
	map_gen(s, real);
	int src = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	rc = src == SQLITE_OK ? configure(s, flags) : fail(s, src, "open");
	if (rc != COFFER_OK) {
		snprintf(err, errlen, "%s", s->err);
		sq_close((store *)s);
		return rc;
	}
	s->audit_nosync = (flags & STORE_OPEN_AUDIT_NOSYNC) != 0;
	*out = (store *)s;
	return COFFER_OK;
}

static const char *sq_errmsg(store *h)
{
	return S(h)->err;
}

static int read_header(sqlite_store *s, store_boot *hdr)
{
	sqlite3_stmt *q = s->q[Q_HEADER];
	int src = sqlite3_step(q);
	int rc = COFFER_OK;
	if (src == SQLITE_DONE) {
		rc = COFFER_ENOTFOUND;
		snprintf(s->err, sizeof s->err, "store has no header yet");
	} else if (src != SQLITE_ROW) {
		rc = fail(s, src, "read header");
	} else if (sqlite3_column_bytes(q, 0) != STORE_ID_LEN ||
	           sqlite3_column_bytes(q, 1) != STORE_SALT_LEN ||
	           sqlite3_column_bytes(q, 4) > STORE_SEALED_KEY_MAX) {
		snprintf(s->err, sizeof s->err, "store header is malformed");
		rc = COFFER_ECORRUPT;
	} else {
		memset(hdr, 0, sizeof *hdr);
		memcpy(hdr->store_id, sqlite3_column_blob(q, 0), STORE_ID_LEN);
		memcpy(hdr->kdf_salt, sqlite3_column_blob(q, 1), STORE_SALT_LEN);
		hdr->kdf_opslimit = (uint64_t)sqlite3_column_int64(q, 2);
		hdr->kdf_memlimit = (uint64_t)sqlite3_column_int64(q, 3);
		hdr->sealed_meta_key_len = (size_t)sqlite3_column_bytes(q, 4);
		if (hdr->sealed_meta_key_len > 0)
			memcpy(hdr->sealed_meta_key, sqlite3_column_blob(q, 4),
			       hdr->sealed_meta_key_len);
	}
	sqlite3_reset(q);
	return rc;
}

static int write_header(sqlite_store *s, const store_boot *p)
{
	sqlite3_stmt *st = NULL;
	int64_t now = now_ms();
	int src = stmt(s, Q_HEADER_INS, &st);
	if (src == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, p->store_id, STORE_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, p->kdf_salt, STORE_SALT_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (int64_t)p->kdf_opslimit);
		sqlite3_bind_int64(st, 4, (int64_t)p->kdf_memlimit);
		sqlite3_bind_int64(st, 5, now);
		if (p->sealed_meta_key_len > 0)
			sqlite3_bind_blob(st, 6, p->sealed_meta_key, (int)p->sealed_meta_key_len,
			                  SQLITE_STATIC);
		src = sqlite3_step(st);
	}
	stmt_done(st);
	st = NULL;
	if (src == SQLITE_DONE)
		src = stmt(s, Q_KEY_INS, &st);
	if (src == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, p->first_key_id);
		sqlite3_bind_blob(st, 2, p->sealed_key, (int)p->sealed_key_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, now);
		src = sqlite3_step(st);
	}
	stmt_done(st);
	return src == SQLITE_DONE ? COFFER_OK : fail(s, src, "write header");
}

static int sq_bootstrap(store *h, const store_boot *proposal, store_boot *actual, int *created)
{
	sqlite_store *s = S(h);
	*created = 0;
	if (proposal == NULL)
		return read_header(s, actual);
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	rc = read_header(s, actual);
	int fresh = rc == COFFER_ENOTFOUND;
	if (fresh)
		rc = write_header(s, proposal);
	rc = finish_write(s, rc, 0);
	if (rc == COFFER_OK && fresh) {
		*actual = *proposal;
		*created = 1;
	}
	return rc;
}

static int sq_keys_load(store *h, store_key_cb cb, void *ctx)
{
	sqlite_store *s = S(h);
	sqlite3_stmt *q = s->q[Q_KEYS_LOAD];
	int src, rc = COFFER_OK, first = 1;
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		/* id 0 is the metadata key, and comes first; a data key never has id 0. */
		if (id < 0 || id > UINT32_MAX || (id == STORE_META_KEY_ID && !first)) {
			snprintf(s->err, sizeof s->err, "keyring holds an invalid key id");
			rc = COFFER_ECORRUPT;
			break;
		}
		first = 0;
		rc = cb(ctx, (uint32_t)id, sqlite3_column_blob(q, 1),
		        (size_t)sqlite3_column_bytes(q, 1));
	}
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "read keyring");
	sqlite3_reset(q);
	return rc;
}

/* The newest data key, read inside the open write transaction (which excludes keys_prune, as
 * every SQLite writer excludes the others). The sealed form is copied into buf. */
static int newest_key(sqlite_store *s, store_key *k, uint8_t buf[STORE_SEALED_KEY_MAX])
{
	sqlite3_stmt *q = s->q[Q_NEWEST_KEY];
	int src = sqlite3_step(q);
	int rc = src == SQLITE_ROW || src == SQLITE_DONE ? COFFER_OK
	                                                 : fail(s, src, "read the newest data key");
	*k = (store_key){0, buf, 0}; /* no key yet (no header): the core refuses to seal */
	if (src == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		size_t len = (size_t)sqlite3_column_bytes(q, 1);
		if (id <= 0 || id > UINT32_MAX || len == 0 || len > STORE_SEALED_KEY_MAX) {
			snprintf(s->err, sizeof s->err, "keyring holds an invalid key");
			rc = COFFER_ECORRUPT;
		} else {
			memcpy(buf, sqlite3_column_blob(q, 1), len);
			*k = (store_key){(uint32_t)id, buf, len};
		}
	}
	sqlite3_reset(q);
	return rc;
}

/* A state column, whole: a value beyond an int is no state at all (-1), never a truncated one. */
static int col_state(sqlite3_stmt *q, int col)
{
	int64_t v = sqlite3_column_int64(q, col);
	return v >= INT_MIN && v <= INT_MAX ? (int)v : -1;
}

/* A MAC column: copied when it has the one valid length; otherwise mac_len says 0 (none) or 1
 * (something else, which never verifies). */
static void col_mac(sqlite3_stmt *q, int col, uint8_t mac[STORE_MAC_LEN], size_t *len)
{
	size_t n = (size_t)sqlite3_column_bytes(q, col);
	memset(mac, 0, STORE_MAC_LEN);
	*len = n == 0 ? 0 : n == STORE_MAC_LEN ? n : 1;
	if (n == STORE_MAC_LEN)
		memcpy(mac, sqlite3_column_blob(q, col), n);
}

static void bind_mac(sqlite3_stmt *q, int idx, const uint8_t *mac, size_t len)
{
	if (len > 0)
		sqlite3_bind_blob(q, idx, mac, (int)len, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, idx);
}

/* Columns first..first+4 of a statement: last_version, latest, epoch, mac. */
static void col_meta(sqlite3_stmt *q, int first, store_meta *m)
{
	memset(m, 0, sizeof *m);
	m->last_version = (uint64_t)sqlite3_column_int64(q, first);
	m->latest = (uint64_t)sqlite3_column_int64(q, first + 1);
	m->epoch = (uint64_t)sqlite3_column_int64(q, first + 2);
	col_mac(q, first + 3, m->mac, &m->mac_len);
}

/* Columns col .. col + 2: previous, the label digest (a digest of another length is kept as one
 * byte that never verifies) and purge_ms. */
static void col_ext(sqlite3_stmt *q, int col, store_meta *m)
{
	m->previous = (uint64_t)sqlite3_column_int64(q, col);
	m->purge_ms = (uint64_t)sqlite3_column_int64(q, col + 2);
	size_t n = (size_t)sqlite3_column_bytes(q, col + 1);
	memset(m->ldigest, 0, sizeof m->ldigest);
	m->ldigest_len = n == 0 ? 0 : n == STORE_DIGEST_LEN ? n : 1;
	if (n == STORE_DIGEST_LEN)
		memcpy(m->ldigest, sqlite3_column_blob(q, col + 1), n);
}

/* Create the secret if needed and take its next version id: *sid, and the metadata it had. */
static int allocate(sqlite_store *s, const store_put *it, int64_t now, int64_t *sid,
                    store_seal_io *io)
{
	sqlite3_stmt *q = s->q[Q_UPSERT_SECRET];
	sqlite3_bind_text(q, 1, it->name, (int)it->name_len, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, now);
	int src = sqlite3_step(q);
	int rc = src == SQLITE_ROW ? COFFER_OK : fail(s, src, "allocate version");
	if (rc == COFFER_OK) {
		*sid = sqlite3_column_int64(q, 0);
		col_meta(q, 1, &io->before);
		io->before.rows_max = (uint64_t)sqlite3_column_int64(q, 5);
		io->before.max_versions = (uint64_t)sqlite3_column_int64(q, 6);
		col_ext(q, 7, &io->before);
		io->version = io->before.last_version;
		io->before.last_version--; /* RETURNING gives the row after the upsert */
	}
	sqlite3_reset(q);
	return rc;
}

/* The version row, with its MAC. */
static int insert_row(sqlite_store *s, int64_t sid, const store_seal_io *io, int64_t now)
{
	sqlite3_stmt *q = s->q[Q_INSERT_VERSION];
	sqlite3_bind_int64(q, 1, sid);
	sqlite3_bind_int64(q, 2, (int64_t)io->version);
	sqlite3_bind_int64(q, 3, io->key_id);
	sqlite3_bind_int64(q, 4, now);
	sqlite3_bind_blob(q, 5, io->sealed, (int)io->sealed_len, SQLITE_STATIC);
	bind_mac(q, 6, io->row_mac, io->mac_len);
	int src = sqlite3_step(q);
	int rc = src == SQLITE_DONE ? COFFER_OK : fail(s, src, "insert version");
	sqlite3_clear_bindings(q);
	sqlite3_reset(q);
	return rc;
}

/* The secret's metadata after a put (latest = last_version = the put's version), with its MAC. */
static int write_latest(sqlite_store *s, int64_t sid, const store_meta *m, int64_t now)
{
	sqlite3_stmt *q = s->q[Q_SET_LATEST];
	sqlite3_bind_int64(q, 1, sid);
	sqlite3_bind_int64(q, 2, (int64_t)m->latest);
	bind_mac(q, 3, m->mac, m->mac_len);
	sqlite3_bind_int64(q, 4, (int64_t)m->previous);
	sqlite3_bind_int64(q, 5, now);
	int src = sqlite3_step(q);
	int rc = src == SQLITE_DONE ? COFFER_OK : fail(s, src, "update the secret");
	sqlite3_clear_bindings(q);
	sqlite3_reset(q);
	return rc;
}

/*
 * A secret as the earlier puts of this batch left it, in the open transaction: the next put of
 * the same secret in the batch takes its version and metadata from here instead of from the
 * database (no upsert), and only the secret's last put of the batch writes the secrets row
 * (one UPDATE per secret per batch, not one per put). The metadata is the one those puts MAC'd,
 * so the core checks it as it checks a row read back. Not for puts with retention (which reads
 * the secret back after each put) or a request id (a batch of one).
 */
typedef struct put_secret {
	const char *name;
	size_t name_len;
	int64_t sid;
	int have;  /* after holds the secret's state: the next put of it starts from there */
	int dirty; /* after is not written yet */
	store_meta after;
} put_secret;

typedef struct put_table {
	put_secret *e;
	size_t *slot; /* open addressing over e: index + 1, 0 empty */
	size_t n, mask;
} put_table;

static put_secret *put_table_get(put_table *t, const store_put *it)
{
	size_t i = (size_t)store_name_hash(it->name, it->name_len) & t->mask;
	while (t->slot[i] != 0) {
		put_secret *p = &t->e[t->slot[i] - 1];
		if (p->name_len == it->name_len && memcmp(p->name, it->name, it->name_len) == 0)
			return p;
		i = (i + 1) & t->mask;
	}
	put_secret *p = &t->e[t->n++];
	memset(p, 0, sizeof *p);
	p->name = it->name;
	p->name_len = it->name_len;
	t->slot[i] = t->n;
	return p;
}

static int read_secret(sqlite_store *s, const char *name, size_t name_len, int64_t *sid,
                       store_meta *meta);
static int retag(sqlite_store *s, int64_t sid, const char *name, size_t name_len, store_meta *m,
                 store_retag_fn cb, void *ctx);

/* Inside the open transaction, the secret locked: what the store holds for this request id. */
static int request_get(sqlite_store *s, int64_t sid, const uint8_t *rid, store_seal_io *io)
{
	sqlite3_stmt *q = s->q[Q_REQ_GET];
	sqlite3_bind_int64(q, 1, sid);
	sqlite3_bind_blob(q, 2, rid, STORE_RID_LEN, SQLITE_STATIC);
	int src = sqlite3_step(q), rc = COFFER_OK;
	if (src == SQLITE_ROW) {
		io->rid_version = (uint64_t)sqlite3_column_int64(q, 0);
		if (sqlite3_column_bytes(q, 1) == STORE_RID_LEN)
			memcpy(io->rid_vhash, sqlite3_column_blob(q, 1), STORE_RID_LEN);
	} else if (src != SQLITE_DONE) {
		rc = fail(s, src, "read request id");
	}
	sqlite3_clear_bindings(q);
	sqlite3_reset(q);
	return rc;
}

/* The request id of a new version, and away with the ones past their time. */
static int request_put(sqlite_store *s, int64_t sid, const uint8_t *rid, const store_seal_io *io,
                       int64_t now)
{
	sqlite3_stmt *q = s->q[Q_REQ_PUT];
	sqlite3_bind_int64(q, 1, sid);
	sqlite3_bind_blob(q, 2, rid, STORE_RID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(q, 3, io->vhash, STORE_RID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, (int64_t)io->version);
	sqlite3_bind_int64(q, 5, now);
	int src = sqlite3_step(q);
	sqlite3_clear_bindings(q);
	sqlite3_reset(q);
	if (src != SQLITE_DONE)
		return fail(s, src, "store request id");
	q = s->q[Q_REQ_PRUNE];
	sqlite3_bind_int64(q, 1, now - STORE_RID_KEEP_MS);
	src = sqlite3_step(q);
	sqlite3_reset(q);
	return src == SQLITE_DONE ? COFFER_OK : fail(s, src, "prune request ids");
}

/* One item of a put, inside the open transaction; p: its secret in the batch's table (NULL for
 * a batch of one). */
static int put_one(sqlite_store *s, store_put *it, size_t i, const store_key *newest,
                   store_seal_fn seal, void *ctx, int64_t now, put_secret *p)
{
	store_seal_io io;
	memset(&io, 0, sizeof io);
	io.newest = newest;
	int64_t sid = 0;
	int rc = COFFER_OK;
	if (p != NULL && p->have && it->rid == NULL) {
		sid = p->sid;
		io.before = p->after;
		io.before.rows_max = p->after.last_version; /* the row its last put inserted */
		io.version = p->after.last_version + 1;
	} else {
		if (p != NULL && p->dirty && (rc = write_latest(s, p->sid, &p->after, now)) != 0)
			return rc;
		if (p != NULL)
			p->have = p->dirty = 0;
		rc = allocate(s, it, now, &sid, &io);
	}
	if (rc == COFFER_OK && it->rid != NULL)
		rc = request_get(s, sid, it->rid, &io);
	if (rc == COFFER_OK && (rc = seal(ctx, i, &io)) != COFFER_OK)
		snprintf(s->err, sizeof s->err, "sealing the value failed");
	if (rc == COFFER_OK && io.replay) {
		it->version = io.rid_version;
		it->replayed = 1;
		return COFFER_OK; /* the caller rolls back */
	}
	if (rc == COFFER_OK)
		rc = insert_row(s, sid, &io, now);
	store_meta after = io.before;
	after.last_version = after.latest = io.version;
	after.previous = io.previous;
	after.purge_ms = 0;
	memcpy(after.mac, io.secret_mac, sizeof after.mac);
	after.mac_len = io.mac_len;
	int defer = p != NULL && it->rid == NULL && io.retain == NULL;
	if (rc == COFFER_OK && defer) {
		p->sid = sid;
		p->after = after;
		p->have = p->dirty = 1;
	} else if (rc == COFFER_OK) {
		rc = write_latest(s, sid, &after, now);
	}
	if (rc == COFFER_OK && it->rid != NULL)
		rc = request_put(s, sid, it->rid, &io, now);
	free(io.sealed);
	if (rc == COFFER_OK && io.retain != NULL) {
		store_meta m;
		rc = read_secret(s, it->name, it->name_len, &sid, &m);
		if (rc == COFFER_OK)
			rc = retag(s, sid, it->name, it->name_len, &m, io.retain, io.retain_ctx);
	}
	it->version = io.version;
	return rc;
}

static int sq_put(store *h, store_put *items, size_t n, store_seal_fn seal, void *ctx)
{
	sqlite_store *s = S(h);
	put_table t = {NULL, NULL, 0, 0};
	if (n > 1) {
		size_t cap = 4;
		while (cap < 2 * n)
			cap *= 2;
		t.e = malloc(n * sizeof *t.e);
		t.slot = calloc(cap, sizeof *t.slot);
		t.mask = cap - 1;
		if (t.e == NULL || t.slot == NULL) {
			free(t.e);
			free(t.slot);
			snprintf(s->err, sizeof s->err, "out of memory");
			return COFFER_ENOMEM;
		}
	}
	int rc = exec(s, "BEGIN IMMEDIATE", "begin write");
	int64_t now = now_ms();
	uint8_t buf[STORE_SEALED_KEY_MAX];
	store_key newest;
	if (rc == COFFER_OK)
		rc = newest_key(s, &newest, buf);
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		items[i].replayed = 0;
		put_secret *p = t.e != NULL ? put_table_get(&t, &items[i]) : NULL;
		rc = put_one(s, &items[i], i, &newest, seal, ctx, now, p);
		if (rc == COFFER_OK && items[i].replayed) { /* a batch of one: nothing to write */
			rollback(s);
			free(t.e);
			free(t.slot);
			return COFFER_OK;
		}
	}
	/* Each secret's last put of the batch, written once. */
	for (size_t i = 0; i < t.n && rc == COFFER_OK; i++)
		if (t.e[i].dirty)
			rc = write_latest(s, t.e[i].sid, &t.e[i].after, now);
	free(t.e);
	free(t.slot);
	if (rc == COFFER_OK || !sqlite3_get_autocommit(s->db))
		return finish_write(s, rc, 1);
	return rc;
}

/* Columns 5.. of a get: the row (absent: version 0), and the generation. */
static int get_row(sqlite3_stmt *q, store_row *out)
{
	memset(out, 0, sizeof *out);
	out->gen = (uint64_t)sqlite3_column_int64(q, 11);
	if (sqlite3_column_type(q, 5) == SQLITE_NULL)
		return COFFER_OK;
	size_t n = (size_t)sqlite3_column_bytes(q, 9);
	if (n > 0) {
		out->sealed = malloc(n);
		if (out->sealed == NULL)
			return COFFER_ENOMEM;
		memcpy(out->sealed, sqlite3_column_blob(q, 9), n);
	}
	out->version = (uint64_t)sqlite3_column_int64(q, 5);
	out->key_id = (uint32_t)sqlite3_column_int64(q, 6);
	out->state = col_state(q, 7);
	out->created_ms = sqlite3_column_int64(q, 8);
	out->sealed_len = n;
	col_mac(q, 10, out->mac, &out->mac_len);
	return COFFER_OK;
}

static int sq_get(store *h, const char *name, size_t name_len, uint64_t version, store_row *out,
                  store_meta *meta)
{
	sqlite_store *s = S(h);
	sqlite3_stmt *q = s->q[version == 0 ? Q_GET_LATEST : Q_GET_VERSION];
	sqlite3_bind_text(q, 1, name, (int)name_len, SQLITE_STATIC);
	if (version != 0)
		sqlite3_bind_int64(q, 2, (int64_t)version);
	int src = sqlite3_step(q);
	int rc = COFFER_OK;
	if (src == SQLITE_DONE) {
		snprintf(s->err, sizeof s->err, "not found");
		rc = COFFER_ENOTFOUND;
	} else if (src != SQLITE_ROW) {
		rc = fail(s, src, "read version");
	} else {
		col_meta(q, 0, meta);
		meta->rows_max = (uint64_t)sqlite3_column_int64(q, 4);
		col_ext(q, 12, meta);
		meta->max_versions = (uint64_t)sqlite3_column_int64(q, 15);
		rc = get_row(q, out);
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

static int sq_generation(store *h, uint64_t *gen)
{
	sqlite_store *s = S(h);
	if (s->gen == NULL)
		return COFFER_EIO;
	*gen = __atomic_load_n(s->gen, __ATOMIC_SEQ_CST);
	return COFFER_OK;
}

static int sq_list_secrets(store *h, store_name_cb cb, void *ctx)
{
	sqlite_store *s = S(h);
	sqlite3_stmt *q = s->q[Q_LIST_SECRETS];
	int src, rc = COFFER_OK;
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW)
		rc = cb(ctx, (const char *)sqlite3_column_text(q, 0),
		        (size_t)sqlite3_column_int64(q, 1));
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "list secrets");
	sqlite3_reset(q);
	return rc;
}

/* Inside an open transaction: the secret's id and metadata. */
static int read_secret(sqlite_store *s, const char *name, size_t name_len, int64_t *sid,
                       store_meta *meta)
{
	sqlite3_stmt *q = s->q[Q_SECRET];
	sqlite3_bind_text(q, 1, name, (int)name_len, SQLITE_STATIC);
	int src = sqlite3_step(q), rc = COFFER_OK;
	if (src == SQLITE_ROW) {
		*sid = sqlite3_column_int64(q, 0);
		col_meta(q, 1, meta);
		meta->max_versions = (uint64_t)sqlite3_column_int64(q, 5);
		col_ext(q, 6, meta);
	} else if (src == SQLITE_DONE) {
		snprintf(s->err, sizeof s->err, "not found");
		rc = COFFER_ENOTFOUND;
	} else {
		rc = fail(s, src, "find secret");
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

static int sq_list_versions(store *h, const char *name, size_t name_len, store_row_cb cb, void *ctx)
{
	sqlite_store *s = S(h);
	/* One read transaction, so the metadata and the rows agree. */
	int rc = exec(s, "BEGIN", "begin read");
	if (rc != COFFER_OK)
		return rc;
	int64_t sid = 0;
	store_meta meta;
	rc = read_secret(s, name, name_len, &sid, &meta);
	sqlite3_stmt *q = s->q[Q_LIST_VERSIONS];
	sqlite3_bind_int64(q, 1, sid);
	int src = SQLITE_DONE;
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		store_row row = {.version = (uint64_t)sqlite3_column_int64(q, 0),
		                 .key_id = (uint32_t)sqlite3_column_int64(q, 1),
		                 .state = col_state(q, 2),
		                 .created_ms = sqlite3_column_int64(q, 3),
		                 .sealed_len = (size_t)sqlite3_column_int64(q, 4)};
		col_mac(q, 5, row.mac, &row.mac_len);
		rc = cb(ctx, &meta, &row);
	}
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "list versions");
	sqlite3_reset(q);
	rollback(s); /* ends the read transaction */
	return rc;
}

/* Inside the open transaction: check() every stored key; count them and find the largest id. */
static int check_keys(sqlite_store *s, store_key_cb check, void *ctx, size_t *n, uint32_t *max)
{
	sqlite3_stmt *q = s->q[Q_KEYS];
	int src, rc = COFFER_OK;
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		if (id <= 0 || id >= UINT32_MAX) {
			snprintf(s->err, sizeof s->err, "keyring holds an invalid key id");
			rc = COFFER_ECORRUPT;
			break;
		}
		rc = check(ctx, (uint32_t)id, sqlite3_column_blob(q, 1),
		           (size_t)sqlite3_column_bytes(q, 1));
		*max = (uint32_t)id; /* ascending */
		(*n)++;
	}
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "read keyring");
	sqlite3_reset(q);
	return rc;
}

/* BEGIN IMMEDIATE excludes every other writer, so the keyring checked is the keyring extended. */
static int sq_keys_add(store *h, store_key_cb check, store_key_make_fn make, void *ctx)
{
	sqlite_store *s = S(h);
	size_t n = 0, len = 0;
	uint32_t max = 0;
	uint8_t sealed[STORE_SEALED_KEY_MAX];
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	rc = check_keys(s, check, ctx, &n, &max);
	if (rc == COFFER_OK)
		rc = make(ctx, max + 1, n, sealed, &len);
	sqlite3_stmt *q = NULL;
	int src = SQLITE_OK;
	if (rc == COFFER_OK)
		src = stmt(s, Q_KEY_INS, &q);
	if (rc == COFFER_OK && src == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, max + 1);
		sqlite3_bind_blob(q, 2, sealed, (int)len, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, now_ms());
		src = sqlite3_step(q);
		rc = src == SQLITE_DONE ? COFFER_OK : fail(s, src, "add data key");
	} else if (rc == COFFER_OK) {
		rc = fail(s, src, "add data key");
	}
	stmt_done(q);
	return finish_write(s, rc, 1);
}

/* Versions destroyed keep their key id but no ciphertext: they need no key. */
static int sq_keys_prune(store *h, size_t *pruned)
{
	sqlite_store *s = S(h);
	*pruned = 0;
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	rc = exec(s,
	          "DELETE FROM keyring WHERE id < (SELECT max(id) FROM keyring) AND id NOT IN "
	          "(SELECT key_id FROM versions WHERE sealed IS NOT NULL)",
	          "prune data keys");
	if (rc == COFFER_OK)
		*pruned = (size_t)sqlite3_changes(s->db);
	rc = finish_write(s, rc, *pruned > 0);
	if (rc != COFFER_OK)
		*pruned = 0;
	return rc;
}

/*
 * Bump the generation inside the open write transaction and publish it.
 *
 * A handle that could not map coffer.gen at open (full disk) tries again here, under the write
 * lock: it must publish if anyone may be trusting the file. And if it still cannot, no one is:
 * allocating fails only while the file's block was never allocated, and then every process
 * reads 0 there, a generation no row is ever tagged with (they start at 1), so caches miss.
 */
static int bump_gen(sqlite_store *s)
{
	if (s->gen == NULL && s->gen_path[0] != '\0')
		try_map_gen(s);
	sqlite3_stmt *q = s->q[Q_BUMP_GEN];
	int src = sqlite3_step(q);
	int rc = src == SQLITE_ROW ? COFFER_OK : fail(s, src, "bump generation");
	if (rc == COFFER_OK)
		gen_store(s, (uint64_t)sqlite3_column_int64(q, 0)); /* before COMMIT */
	sqlite3_reset(q);
	return rc;
}

typedef struct sealed_key {
	int64_t id;
	uint8_t sealed[STORE_SEALED_KEY_MAX];
	size_t len;
} sealed_key;

/* A passphrase rekey: the new salt and limits, inside the open write transaction. */
static int set_kdf(sqlite_store *s, const store_kdf *kdf)
{
	sqlite3_stmt *q = NULL;
	int src = stmt(s, Q_SET_KDF, &q);
	if (src == SQLITE_OK) {
		sqlite3_bind_blob(q, 1, kdf->salt, STORE_SALT_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, (int64_t)kdf->opslimit);
		sqlite3_bind_int64(q, 3, (int64_t)kdf->memlimit);
		src = sqlite3_step(q);
	}
	stmt_done(q);
	if (src == SQLITE_DONE && sqlite3_changes(s->db) != 1) {
		snprintf(s->err, sizeof s->err, "store has no header");
		return COFFER_ECORRUPT;
	}
	return src == SQLITE_DONE ? COFFER_OK : fail(s, src, "write passphrase salt");
}

/* Inside the open transaction: re-seal every data key through cb. */
static int reseal_keyring(sqlite_store *s, store_rekey_fn cb, void *ctx)
{
	sealed_key keys[64];
	size_t n = 0;
	int src = SQLITE_OK, rc = COFFER_OK;
	sqlite3_stmt *q = s->q[Q_KEYS];
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(q, 1);
		if (n == 64 || len > STORE_SEALED_KEY_MAX) {
			snprintf(s->err, sizeof s->err, "keyring is larger than supported");
			rc = COFFER_ECORRUPT;
			break;
		}
		keys[n].id = sqlite3_column_int64(q, 0);
		uint8_t old[STORE_SEALED_KEY_MAX];
		memcpy(old, sqlite3_column_blob(q, 1), len);
		rc = cb(ctx, (uint32_t)keys[n].id, old, len, keys[n].sealed, &keys[n].len);
		n++;
	}
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "read keyring");
	sqlite3_reset(q);
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		q = NULL;
		src = stmt(s, Q_KEY_RESEAL, &q);
		if (src == SQLITE_OK) {
			sqlite3_bind_int64(q, 1, keys[i].id);
			sqlite3_bind_blob(q, 2, keys[i].sealed, (int)keys[i].len, SQLITE_STATIC);
			src = sqlite3_step(q);
		}
		stmt_done(q);
		if (src != SQLITE_DONE)
			rc = fail(s, src, "reseal data key");
	}
	return rc;
}

/* Inside the open transaction: write the sealed metadata key into the header. */
static int write_meta_key(sqlite_store *s, const uint8_t *sealed, size_t len)
{
	sqlite3_stmt *q = NULL;
	int src = stmt(s, Q_SET_META_KEY, &q);
	if (src == SQLITE_OK) {
		sqlite3_bind_blob(q, 1, sealed, (int)len, SQLITE_STATIC);
		src = sqlite3_step(q);
	}
	stmt_done(q);
	return src == SQLITE_DONE ? COFFER_OK : fail(s, src, "write the metadata key");
}

/* Inside the open transaction: re-seal the metadata key through cb, if the store has one. */
static int reseal_meta_key(sqlite_store *s, store_rekey_fn cb, void *ctx)
{
	store_boot hdr;
	uint8_t out[STORE_SEALED_KEY_MAX];
	size_t len = 0;
	int rc = read_header(s, &hdr);
	if (rc != COFFER_OK || hdr.sealed_meta_key_len == 0)
		return rc;
	rc = cb(ctx, STORE_META_KEY_ID, hdr.sealed_meta_key, hdr.sealed_meta_key_len, out, &len);
	return rc == COFFER_OK ? write_meta_key(s, out, len) : rc;
}

static int sq_keys_reseal(store *h, store_rekey_fn cb, void *ctx, const store_kdf *kdf)
{
	sqlite_store *s = S(h);
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc == COFFER_OK)
		rc = reseal_keyring(s, cb, ctx);
	if (rc == COFFER_OK)
		rc = reseal_meta_key(s, cb, ctx);
	if (rc == COFFER_OK && kdf != NULL)
		rc = set_kdf(s, kdf);
	return finish_write(s, rc, 1);
}

/* Re-seal one row, identified by (secret_id, version), inside the open transaction. */
static int reseal_row(sqlite_store *s, sqlite3_stmt *get, sqlite3_stmt *upd, int64_t sid,
                      int64_t ver, const store_key *newest, store_reseal_fn cb, void *ctx)
{
	sqlite3_bind_int64(get, 1, sid);
	sqlite3_bind_int64(get, 2, ver);
	int src = sqlite3_step(get);
	int rc = src == SQLITE_ROW ? COFFER_OK : fail(s, src, "read version to re-encrypt");
	uint8_t *out = NULL;
	size_t out_len = 0;
	uint32_t kid = 0;
	if (rc == COFFER_OK) {
		store_row row = {.version = (uint64_t)ver,
		                 .key_id = (uint32_t)sqlite3_column_int64(get, 1),
		                 .sealed = (uint8_t *)sqlite3_column_blob(get, 2),
		                 .sealed_len = (size_t)sqlite3_column_bytes(get, 2)};
		rc = cb(ctx, (const char *)sqlite3_column_text(get, 0),
		        (size_t)sqlite3_column_bytes(get, 0), &row, newest, &kid, &out, &out_len);
	}
	sqlite3_reset(get);
	if (rc == COFFER_OK) {
		sqlite3_bind_int64(upd, 1, sid);
		sqlite3_bind_int64(upd, 2, ver);
		sqlite3_bind_int64(upd, 3, kid);
		sqlite3_bind_blob(upd, 4, out, (int)out_len, SQLITE_STATIC);
		src = sqlite3_step(upd);
		sqlite3_reset(upd);
		if (src != SQLITE_DONE)
			rc = fail(s, src, "re-encrypt version");
	}
	free(out);
	return rc;
}

/* Collect the ids of up to STORE_RESEAL_BATCH rows sealed with a key below `below`, first, so no
 * row is updated under an open SELECT of the same table. */
static int reseal_select(sqlite_store *s, uint32_t below, int64_t ids[][2], size_t *n)
{
	sqlite3_stmt *sel = NULL;
	int src = stmt(s, Q_RESEAL_SELECT, &sel);
	if (src == SQLITE_OK) {
		sqlite3_bind_int64(sel, 1, below);
		sqlite3_bind_int(sel, 2, STORE_RESEAL_BATCH);
		while (*n < STORE_RESEAL_BATCH && (src = sqlite3_step(sel)) == SQLITE_ROW) {
			ids[*n][0] = sqlite3_column_int64(sel, 0);
			ids[*n][1] = sqlite3_column_int64(sel, 1);
			(*n)++;
		}
		src = src == SQLITE_ROW ? SQLITE_DONE : src;
	}
	stmt_done(sel);
	return src == SQLITE_DONE ? COFFER_OK : fail(s, src, "select versions to re-encrypt");
}

/* One batch of the re-encrypt pass, inside the open transaction. */
static int reseal_rows(sqlite_store *s, uint32_t below, store_reseal_fn cb, void *ctx, size_t *done)
{
	int64_t ids[STORE_RESEAL_BATCH][2];
	size_t n = 0;
	uint8_t buf[STORE_SEALED_KEY_MAX];
	store_key newest;
	sqlite3_stmt *get = NULL, *upd = NULL;
	int rc = newest_key(s, &newest, buf);
	if (rc == COFFER_OK)
		rc = reseal_select(s, below, ids, &n);
	int src = SQLITE_OK;
	if (rc == COFFER_OK && n > 0)
		src = stmt(s, Q_RESEAL_GET, &get);
	if (rc == COFFER_OK && n > 0 && src == SQLITE_OK)
		src = stmt(s, Q_RESEAL_UPD, &upd);
	if (rc == COFFER_OK && src != SQLITE_OK)
		rc = fail(s, src, "re-encrypt");
	for (size_t i = 0; i < n && rc == COFFER_OK; i++)
		rc = reseal_row(s, get, upd, ids[i][0], ids[i][1], &newest, cb, ctx);
	stmt_done(get);
	stmt_done(upd);
	if (rc == COFFER_OK)
		*done = n;
	return rc;
}

static int sq_reseal_batch(store *h, uint32_t below, store_reseal_fn cb, void *ctx, size_t *done)
{
	sqlite_store *s = S(h);
	size_t n = 0;
	*done = 0;
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	rc = reseal_rows(s, below, cb, ctx, &n);
	rc = finish_write(s, rc, n > 0);
	if (rc == COFFER_OK)
		*done = n;
	return rc;
}

/* Inside the open transaction: every row of secret sid (version, state, mac), ascending, into
 * a malloc'd array (*rows, *n). */
static int read_rows(sqlite_store *s, int64_t sid, store_row **rows, size_t *n)
{
	sqlite3_stmt *q = s->q[Q_ROWS];
	size_t cap = 0;
	int src, rc = COFFER_OK;
	*rows = NULL;
	*n = 0;
	sqlite3_bind_int64(q, 1, sid);
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		if (*n == cap) {
			store_row *more =
			    cap < SIZE_MAX / 2 / sizeof *more
			        ? realloc(*rows, (cap = cap ? 2 * cap : 16) * sizeof *more)
			        : NULL;
			if (more == NULL) {
				rc = COFFER_ENOMEM;
				break;
			}
			*rows = more;
		}
		store_row *r = &(*rows)[(*n)++];
		memset(r, 0, sizeof *r);
		r->version = (uint64_t)sqlite3_column_int64(q, 0);
		r->state = col_state(q, 1);
		col_mac(q, 2, r->mac, &r->mac_len);
	}
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "read versions");
	sqlite3_reset(q);
	return rc;
}

/* Inside the open transaction: the secret's custom labels into m->labels (allocated here). */
static int read_labels(sqlite_store *s, int64_t sid, store_meta *m)
{
	m->nlabels = 0;
	m->labels_changed = 0;
	m->labels = calloc(STORE_LABELS_MAX + 1, sizeof *m->labels);
	if (m->labels == NULL)
		return COFFER_ENOMEM;
	sqlite3_stmt *q = s->q[Q_LABELS];
	sqlite3_bind_int64(q, 1, sid);
	int src, rc = COFFER_OK;
	while ((src = sqlite3_step(q)) == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(q, 0);
		if (m->nlabels == STORE_LABELS_MAX || n == 0 || n > STORE_LABEL_MAX) {
			snprintf(s->err, sizeof s->err, "a label row in this store is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		store_label *l = &m->labels[m->nlabels++];
		memcpy(l->name, sqlite3_column_text(q, 0), n);
		l->name[n] = '\0';
		l->version = (uint64_t)sqlite3_column_int64(q, 1);
	}
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "read labels");
	sqlite3_reset(q);
	return rc;
}

/* Inside the open transaction: the secret's custom labels become m->labels. */
static int write_labels(sqlite_store *s, int64_t sid, const store_meta *m)
{
	sqlite3_stmt *q = s->q[Q_LABELS_DEL];
	sqlite3_bind_int64(q, 1, sid);
	int src = sqlite3_step(q);
	sqlite3_reset(q);
	q = s->q[Q_LABEL_INS];
	for (size_t i = 0; i < m->nlabels && src == SQLITE_DONE; i++) {
		sqlite3_bind_int64(q, 1, sid);
		sqlite3_bind_text(q, 2, m->labels[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, (int64_t)m->labels[i].version);
		src = sqlite3_step(q);
		sqlite3_reset(q);
	}
	sqlite3_clear_bindings(q);
	return src == SQLITE_DONE ? COFFER_OK : fail(s, src, "write labels");
}

/* Inside the open transaction: what describe shows beside the metadata. */
static int read_info(sqlite_store *s, int64_t sid, store_info *info)
{
	sqlite3_stmt *q = s->q[Q_INFO];
	sqlite3_bind_int64(q, 1, sid);
	int src = sqlite3_step(q), rc = COFFER_OK;
	memset(info, 0, sizeof *info);
	if (src == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(q, 0);
		const char *t = (const char *)sqlite3_column_text(q, 1);
		snprintf(info->description, sizeof info->description, "%s", d != NULL ? d : "");
		snprintf(info->tags, sizeof info->tags, "%s", t != NULL ? t : "");
		info->created_ms = sqlite3_column_int64(q, 2);
		info->updated_ms = sqlite3_column_int64(q, 3);
		info->max_versions = (uint64_t)sqlite3_column_int64(q, 4);
	} else {
		rc = fail(s, src, "read a secret");
	}
	sqlite3_reset(q);
	return rc;
}

static int sq_labels_get(store *h, const char *name, size_t name_len, store_meta *meta,
                         store_info *info)
{
	sqlite_store *s = S(h);
	/* One read transaction, so the metadata and the labels agree. */
	int rc = exec(s, "BEGIN", "begin read");
	if (rc != COFFER_OK)
		return rc;
	int64_t sid = 0;
	meta->labels = NULL;
	rc = read_secret(s, name, name_len, &sid, meta);
	if (rc == COFFER_OK)
		rc = read_labels(s, sid, meta);
	if (rc == COFFER_OK && info != NULL)
		rc = read_info(s, sid, info);
	rollback(s); /* ends the read transaction */
	if (rc != COFFER_OK) {
		free(meta->labels);
		meta->labels = NULL;
	}
	return rc;
}

/* Inside the open transaction: each row's state and MAC, then the secret's metadata. */
static int write_retagged(sqlite_store *s, int64_t sid, const store_meta *m, const store_row *rows,
                          size_t n)
{
	int src = SQLITE_DONE;
	sqlite3_stmt *q = s->q[Q_WRITE_ROW];
	for (size_t i = 0; i < n && src == SQLITE_DONE; i++) {
		sqlite3_bind_int64(q, 1, sid);
		sqlite3_bind_int64(q, 2, (int64_t)rows[i].version);
		sqlite3_bind_int(q, 3, rows[i].state);
		bind_mac(q, 4, rows[i].mac, rows[i].mac_len);
		src = sqlite3_step(q);
		sqlite3_reset(q);
	}
	sqlite3_clear_bindings(q);
	if (src != SQLITE_DONE)
		return fail(s, src, "write versions");
	q = s->q[Q_WRITE_META];
	sqlite3_bind_int64(q, 1, sid);
	sqlite3_bind_int64(q, 2, (int64_t)m->latest);
	sqlite3_bind_int64(q, 3, (int64_t)m->epoch);
	bind_mac(q, 4, m->mac, m->mac_len);
	if (m->ldigest_len == STORE_DIGEST_LEN)
		sqlite3_bind_blob(q, 5, m->ldigest, STORE_DIGEST_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(q, 6, (int64_t)m->purge_ms);
	sqlite3_bind_int64(q, 7, now_ms());
	sqlite3_bind_int64(q, 8, (int64_t)m->max_versions);
	src = sqlite3_step(q);
	sqlite3_clear_bindings(q);
	sqlite3_reset(q);
	if (src != SQLITE_DONE)
		return fail(s, src, "write the secret");
	return m->labels_changed ? write_labels(s, sid, m) : COFFER_OK;
}

/* Inside the open transaction: hand one secret and all its rows to cb, write back the result. */
static int retag(sqlite_store *s, int64_t sid, const char *name, size_t name_len, store_meta *m,
                 store_retag_fn cb, void *ctx)
{
	store_row *rows = NULL;
	size_t n = 0;
	int rc = read_rows(s, sid, &rows, &n);
	if (rc == COFFER_OK)
		rc = read_labels(s, sid, m);
	if (rc == COFFER_OK)
		rc = cb(ctx, name, name_len, m, rows, n);
	if (rc == COFFER_OK)
		rc = write_retagged(s, sid, m, rows, n);
	free(rows);
	free(m->labels);
	m->labels = NULL;
	return rc;
}

/* secure_delete zeroes the freed ciphertext in the database pages; the checkpoint then moves
 * the pages home and truncates the WAL, so older page images do not linger there either (best
 * effort: a reader elsewhere may hold the WAL for now, and a later checkpoint finishes it). */
static int sq_destroy(store *h, const char *name, size_t name_len, store_retag_fn cb, void *ctx)
{
	sqlite_store *s = S(h);
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	int64_t sid = 0;
	store_meta meta;
	rc = read_secret(s, name, name_len, &sid, &meta);
	if (rc == COFFER_OK)
		rc = retag(s, sid, name, name_len, &meta, cb, ctx);
	rc = finish_write(s, rc, 1);
	if (rc == COFFER_OK)
		(void)sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
		                                NULL);
	return rc;
}

static int sq_purge(store *h, uint64_t now, size_t *count)
{
	sqlite_store *s = S(h);
	*count = 0;
	/* A read first: the common case (nothing due) takes no write lock. */
	sqlite3_stmt *q = NULL;
	int due = 0, src = stmt(s, Q_PURGE_DUE, &q);
	if (src == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, (int64_t)now);
		src = sqlite3_step(q);
		due = src == SQLITE_ROW;
	}
	stmt_done(q);
	q = NULL;
	if (src != SQLITE_ROW && src != SQLITE_DONE)
		return fail(s, src, "look for deleted secrets");
	if (!due)
		return COFFER_OK;
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	/* The secrets' rows last: the others find them by it. */
	for (int i = Q_PURGE_VERSIONS; i <= Q_PURGE_SECRETS && rc == COFFER_OK; i++) {
		src = stmt(s, i, &q);
		if (src == SQLITE_OK) {
			sqlite3_bind_int64(q, 1, (int64_t)now);
			src = sqlite3_step(q);
		}
		rc = src == SQLITE_DONE ? COFFER_OK : fail(s, src, "purge deleted secrets");
		stmt_done(q);
		q = NULL;
	}
	if (rc == COFFER_OK)
		*count = (size_t)sqlite3_changes(s->db);
	rc = finish_write(s, rc, *count > 0);
	if (rc == COFFER_OK && *count > 0)
		(void)sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
		                                NULL);
	if (rc != COFFER_OK)
		*count = 0;
	return rc;
}

static int sq_list_page(store *h, const char *prefix, size_t prefix_len, const char *after,
                        size_t after_len, size_t limit, store_name_cb cb, void *ctx)
{
	sqlite_store *s = S(h);
	sqlite3_stmt *q = s->q[Q_LIST_PAGE];
	sqlite3_bind_text(q, 1, after, (int)after_len, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, prefix, (int)prefix_len, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, (int64_t)limit);
	int src, rc = COFFER_OK;
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW)
		rc = cb(ctx, (const char *)sqlite3_column_text(q, 0),
		        (size_t)sqlite3_column_int64(q, 1));
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "list secrets");
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

static int sq_info_set(store *h, const char *name, size_t name_len, const char *description,
                       const char *tags)
{
	sqlite_store *s = S(h);
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	sqlite3_stmt *q = NULL;
	int src = stmt(s, Q_INFO_SET, &q);
	if (src == SQLITE_OK) {
		sqlite3_bind_text(q, 1, name, (int)name_len, SQLITE_STATIC);
		sqlite3_bind_int(q, 2, description != NULL);
		sqlite3_bind_text(q, 3, description, -1, SQLITE_STATIC);
		sqlite3_bind_int(q, 4, tags != NULL);
		sqlite3_bind_text(q, 5, tags, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 6, now_ms());
		src = sqlite3_step(q);
	}
	rc = src == SQLITE_DONE ? COFFER_OK : fail(s, src, "set a secret's description");
	if (rc == COFFER_OK && sqlite3_changes(s->db) == 0) {
		snprintf(s->err, sizeof s->err, "not found");
		rc = COFFER_ENOTFOUND;
	}
	stmt_done(q);
	return finish_write(s, rc, 1);
}

static void bind_audit(sqlite3_stmt *q, int at, const store_audit *e)
{
	sqlite3_bind_text(q, at + 1, e->chain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, at + 2, (int64_t)e->seq);
	sqlite3_bind_int64(q, at + 3, e->ts_ms);
	sqlite3_bind_text(q, at + 4, e->principal, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, at + 5, e->action, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, at + 6, e->secret, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, at + 7, e->version, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, at + 8, e->outcome);
	sqlite3_bind_text(q, at + 9, e->error, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, at + 10, e->rid, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, at + 11, e->mac, (int)e->mac_len, SQLITE_STATIC);
}

/*
 * Inside the open write transaction: n entries after the chain's last one, AUDIT_ROWS to a
 * statement (the rest one by one). Each entry's MAC covers the one before it, so they are filled
 * in order, each from its predecessor.
 */
static int audit_write(sqlite_store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	store_audit e[AUDIT_ROWS];
	memset(&e[0], 0, sizeof e[0]);
	snprintf(e[0].chain, sizeof e[0].chain, "%s", chain);
	sqlite3_stmt *q = s->q[Q_AUDIT_LAST];
	sqlite3_bind_text(q, 1, chain, -1, SQLITE_STATIC);
	int src = sqlite3_step(q);
	if (src == SQLITE_ROW) {
		e[0].seq = (uint64_t)sqlite3_column_int64(q, 0);
		col_mac(q, 1, e[0].prev, &e[0].prev_len);
		src = SQLITE_DONE;
	}
	sqlite3_reset(q);
	if (src != SQLITE_DONE)
		return fail(s, src, "read the audit log");
	/* the chain's head so far: the next entry's number and its predecessor's MAC */
	uint64_t seq = e[0].seq;
	uint8_t prev[STORE_MAC_LEN];
	size_t prev_len = e[0].prev_len;
	memcpy(prev, e[0].prev, sizeof prev);
	int rc = COFFER_OK;
	for (size_t i = 0; i < n && rc == COFFER_OK;) {
		size_t k = n - i >= AUDIT_ROWS ? AUDIT_ROWS : 1;
		for (size_t j = 0; j < k && rc == COFFER_OK; j++) {
			store_audit *x = &e[j];
			if (j > 0) /* e[0] holds the chain's name from the start */
				memcpy(x->chain, e[0].chain, sizeof x->chain);
			x->seq = ++seq;
			memcpy(x->prev, prev, sizeof x->prev);
			x->prev_len = prev_len;
			rc = fn(ctx, i + j, x);
			memcpy(prev, x->mac, sizeof prev);
			prev_len = x->mac_len;
		}
		if (rc != COFFER_OK)
			break;
		q = s->q[k == AUDIT_ROWS ? Q_AUDIT_INSERT_MANY : Q_AUDIT_INSERT];
		for (size_t j = 0; j < k; j++)
			bind_audit(q, (int)(j * 11), &e[j]);
		src = sqlite3_step(q);
		sqlite3_reset(q);
		sqlite3_clear_bindings(q); /* the bound texts live in e, gone on return */
		if (src != SQLITE_DONE)
			rc = fail(s, src, "write the audit log");
		i += k;
	}
	return rc;
}

static void sq_audit_pending(store *h, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	sqlite_store *s = S(h);
	(void)chain; /* one chain: writers take turns on the database's write lock */
	s->audit_n = n;
	s->audit_fn = fn;
	s->audit_ctx = ctx;
}

/* n entries in a transaction of their own. nosync (STORE_OPEN_AUDIT_NOSYNC): its commit goes
 * to the WAL without a sync (the next synced commit or checkpoint carries it to the disk); every
 * other transaction stays FULL. */
static int audit_txn(sqlite_store *s, size_t n, store_audit_fn fn, void *ctx, int nosync)
{
	s->audit_n = 0;
	int rc = nosync ? exec(s, "PRAGMA synchronous=NORMAL", "PRAGMA synchronous") : COFFER_OK;
	if (rc == COFFER_OK)
		rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc == COFFER_OK)
		rc = finish_write(s, audit_write(s, "", n, fn, ctx), 0);
	if (nosync) {
		int frc = exec(s, "PRAGMA synchronous=FULL", "PRAGMA synchronous");
		if (rc == COFFER_OK)
			rc = frc;
	}
	return rc;
}

static int sq_audit_append(store *h, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	sqlite_store *s = S(h);
	(void)chain;
	return audit_txn(s, n, fn, ctx, s->audit_nosync);
}

/* coffer copy: n entries of another store's log in one transaction. */
static int sq_audit_import(store *h, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	(void)chain;
	return audit_txn(S(h), n, fn, ctx, 0);
}

static void col_text(sqlite3_stmt *q, int col, char *out, size_t cap)
{
	const char *t = (const char *)sqlite3_column_text(q, col);
	snprintf(out, cap, "%s", t != NULL ? t : "");
}

static int sq_audit_list(store *h, uint64_t after, int (*cb)(void *ctx, const store_audit *e),
                         void *ctx)
{
	sqlite_store *s = S(h);
	sqlite3_stmt *q = NULL;
	int src = sqlite3_prepare_v2(s->db,
	                             "SELECT id, chain, seq, ts_ms, principal, action, secret, "
	                             "version, outcome, error, rid, mac FROM audit WHERE id > ?1 "
	                             "ORDER BY id",
	                             -1, &q, NULL);
	int rc = src == SQLITE_OK ? COFFER_OK : fail(s, src, "read the audit log");
	if (rc == COFFER_OK)
		sqlite3_bind_int64(q, 1, (int64_t)after);
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		store_audit e;
		memset(&e, 0, sizeof e);
		e.id = (uint64_t)sqlite3_column_int64(q, 0);
		col_text(q, 1, e.chain, sizeof e.chain);
		e.seq = (uint64_t)sqlite3_column_int64(q, 2);
		e.ts_ms = sqlite3_column_int64(q, 3);
		col_text(q, 4, e.principal, sizeof e.principal);
		col_text(q, 5, e.action, sizeof e.action);
		col_text(q, 6, e.secret, sizeof e.secret);
		col_text(q, 7, e.version, sizeof e.version);
		e.outcome = (int)sqlite3_column_int64(q, 8);
		col_text(q, 9, e.error, sizeof e.error);
		col_text(q, 10, e.rid, sizeof e.rid);
		col_mac(q, 11, e.mac, &e.mac_len);
		rc = cb(ctx, &e);
	}
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "read the audit log");
	sqlite3_finalize(q);
	return rc;
}

/* Inside the open transaction: the ids of every secret, into a malloc'd array, first, so that
 * no row is updated under an open SELECT of the same table. */
static int secret_ids(sqlite_store *s, int64_t **ids, size_t *n)
{
	sqlite3_stmt *q = NULL;
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	int src = stmt(s, Q_SECRET_IDS, &q);
	int rc = src == SQLITE_OK ? COFFER_OK : fail(s, src, "list secrets");
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		if (*n == cap) {
			int64_t *more =
			    cap < SIZE_MAX / 2 / sizeof *more
			        ? realloc(*ids, (cap = cap ? 2 * cap : 64) * sizeof *more)
			        : NULL;
			if (more == NULL) {
				rc = COFFER_ENOMEM;
				break;
			}
			*ids = more;
		}
		(*ids)[(*n)++] = sqlite3_column_int64(q, 0);
	}
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "list secrets");
	stmt_done(q);
	return rc;
}

/* Inside the open transaction: retag every secret (meta_init). */
static int retag_all(sqlite_store *s, store_retag_fn cb, void *ctx)
{
	int64_t *ids = NULL;
	size_t n = 0;
	sqlite3_stmt *q = NULL;
	int rc = secret_ids(s, &ids, &n);
	int src = stmt(s, Q_SECRET_BY_ID, &q);
	if (rc == COFFER_OK && src != SQLITE_OK)
		rc = fail(s, src, "read a secret");
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		sqlite3_bind_int64(q, 1, ids[i]);
		src = sqlite3_step(q);
		store_meta m = {0};
		char name[COFFER_NAME_MAX + 1] = "";
		size_t len = (size_t)sqlite3_column_bytes(q, 0);
		if (src != SQLITE_ROW) {
			rc = fail(s, src, "read a secret");
		} else if (len == 0 || len > COFFER_NAME_MAX) {
			snprintf(s->err, sizeof s->err, "a secret row has a malformed name");
			rc = COFFER_ECORRUPT;
		} else {
			memcpy(name, sqlite3_column_text(q, 0), len);
			name[len] = '\0';
			col_meta(q, 1, &m);
		}
		sqlite3_reset(q);
		if (rc == COFFER_OK)
			rc = retag(s, ids[i], name, len, &m, cb, ctx);
	}
	stmt_done(q);
	free(ids);
	return rc;
}

/* BEGIN IMMEDIATE excludes every other writer: whoever comes second finds the key made. */
static int sq_meta_init(store *h, const uint8_t *sealed, size_t len, store_rekey_fn rekey,
                        store_retag_fn cb, void *ctx, uint8_t *found, size_t *found_len)
{
	sqlite_store *s = S(h);
	store_boot hdr;
	*found_len = 0;
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	rc = read_header(s, &hdr);
	if (rc == COFFER_OK && hdr.sealed_meta_key_len > 0) {
		memcpy(found, hdr.sealed_meta_key, hdr.sealed_meta_key_len);
		*found_len = hdr.sealed_meta_key_len;
		rollback(s);
		return COFFER_OK;
	}
	if (rc == COFFER_OK)
		rc = reseal_keyring(s, rekey, ctx);
	if (rc == COFFER_OK)
		rc = retag_all(s, cb, ctx);
	if (rc == COFFER_OK)
		rc = write_meta_key(s, sealed, len);
	return finish_write(s, rc, 1);
}

/* --- declarations (schema 4) --------------------------------------------------------------- */

static int sq_decl_add(store *h, const store_decl *items, size_t n)
{
	sqlite_store *s = S(h);
	sqlite3_stmt *q = NULL;
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	int src = stmt(s, Q_DECL_ADD, &q);
	if (src != SQLITE_OK)
		rc = fail(s, src, "record declarations");
	int64_t now = now_ms();
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		sqlite3_bind_text(q, 1, items[i].service, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, items[i].secret, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, (sqlite3_int64)items[i].actions);
		sqlite3_bind_int64(q, 4, now);
		src = sqlite3_step(q);
		if (src != SQLITE_DONE)
			rc = fail(s, src, "record a declaration");
		sqlite3_reset(q);
	}
	stmt_done(q);
	return finish_write(s, rc, 0);
}

static int sq_decl_list(store *h, store_decl_cb cb, void *ctx)
{
	sqlite_store *s = S(h);
	sqlite3_stmt *q = NULL;
	int src = stmt(s, Q_DECL_LIST, &q);
	if (src != SQLITE_OK)
		return fail(s, src, "list declarations");
	int rc = COFFER_OK;
	while (rc == COFFER_OK && (src = sqlite3_step(q)) == SQLITE_ROW) {
		store_decl d = {(const char *)sqlite3_column_text(q, 0),
		                (const char *)sqlite3_column_text(q, 1),
		                (unsigned)sqlite3_column_int64(q, 2), sqlite3_column_int64(q, 3)};
		if (d.service == NULL || d.secret == NULL)
			continue;
		rc = cb(ctx, &d);
	}
	if (rc == COFFER_OK && src != SQLITE_DONE)
		rc = fail(s, src, "list declarations");
	stmt_done(q);
	return rc;
}

/* ---- coffer copy: a whole secret written as given ------------------------------------------ */

static int import_step(sqlite_store *s, sqlite3_stmt *q, const char *what)
{
	int src = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return src == SQLITE_DONE ? COFFER_OK : fail(s, src, what);
}

static int sq_import_secret(store *h, const char *name, size_t name_len, const store_meta *m,
                            const store_info *info, const store_row *rows, size_t n, int *existed)
{
	sqlite_store *s = S(h);
	*existed = 0;
	int rc = exec(s, "BEGIN IMMEDIATE", "begin");
	if (rc != COFFER_OK)
		return rc;
	sqlite3_stmt *q = NULL;
	int src = stmt(s, Q_SECRET_ID, &q);
	if (src == SQLITE_OK) {
		sqlite3_bind_text(q, 1, name, (int)name_len, SQLITE_STATIC);
		src = sqlite3_step(q);
		if (src == SQLITE_ROW)
			*existed = 1;
		else if (src != SQLITE_DONE)
			rc = fail(s, src, "read a secret");
	} else {
		rc = fail(s, src, "prepare");
	}
	stmt_done(q);
	q = NULL;
	if (rc != COFFER_OK || *existed) {
		rollback(s);
		return rc;
	}
	int64_t sid = 0;
	src = stmt(s, Q_IMPORT_SECRET, &q);
	if (src == SQLITE_OK) {
		sqlite3_bind_text(q, 1, name, (int)name_len, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, (int64_t)m->last_version);
		sqlite3_bind_int64(q, 3, info->created_ms);
		sqlite3_bind_int64(q, 4, (int64_t)m->latest);
		sqlite3_bind_int64(q, 5, (int64_t)m->epoch);
		bind_mac(q, 6, m->mac, m->mac_len);
		sqlite3_bind_int64(q, 7, (int64_t)m->max_versions);
		sqlite3_bind_int64(q, 8, (int64_t)m->previous);
		if (m->ldigest_len > 0)
			sqlite3_bind_blob(q, 9, m->ldigest, (int)m->ldigest_len, SQLITE_STATIC);
		sqlite3_bind_int64(q, 10, (int64_t)m->purge_ms);
		if (info->description[0] != '\0')
			sqlite3_bind_text(q, 11, info->description, -1, SQLITE_STATIC);
		if (info->tags[0] != '\0')
			sqlite3_bind_text(q, 12, info->tags, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 13, info->updated_ms);
		src = sqlite3_step(q);
		sid = sqlite3_last_insert_rowid(s->db);
	}
	rc = src == SQLITE_DONE ? COFFER_OK : fail(s, src, "import a secret");
	stmt_done(q);
	q = NULL;
	if (rc == COFFER_OK) {
		src = stmt(s, Q_IMPORT_VERSION, &q);
		if (src != SQLITE_OK)
			rc = fail(s, src, "prepare");
	}
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		sqlite3_bind_int64(q, 1, sid);
		sqlite3_bind_int64(q, 2, (int64_t)rows[i].version);
		sqlite3_bind_int64(q, 3, rows[i].key_id);
		sqlite3_bind_int(q, 4, rows[i].state);
		sqlite3_bind_int64(q, 5, rows[i].created_ms);
		if (rows[i].sealed != NULL)
			sqlite3_bind_blob(q, 6, rows[i].sealed, (int)rows[i].sealed_len,
			                  SQLITE_STATIC);
		bind_mac(q, 7, rows[i].mac, rows[i].mac_len);
		rc = import_step(s, q, "import a version");
	}
	stmt_done(q);
	if (rc == COFFER_OK)
		rc = write_labels(s, sid, m);
	return finish_write(s, rc, 1);
}

/* ---- backup and restore (docs/operations.md) ---------------------------------------------- */

/*
 * The whole database through SQLite's online backup API, in one step (-1): the source's pages
 * are all read in ONE read transaction, so the image is the store as of one commit, while
 * other processes go on writing to the WAL. The image is left in rollback-journal mode so it
 * is one self-contained file; restore_image() puts WAL back when the store is opened.
 */
static int sq_backup(store *h, const char *path)
{
	sqlite_store *s = S(h);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		snprintf(s->err, sizeof s->err, "cannot create '%s': %s", path, strerror(e));
		return e == ENOSPC || e == EDQUOT ? COFFER_EFULL : COFFER_EIO;
	}
	close(fd); /* our own new file: no SQLite lock lives on it */
	sqlite3 *dst = NULL;
	int src = sqlite3_open_v2(
	    path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	int rc = COFFER_OK;
	if (src == SQLITE_OK) {
		sqlite3_busy_timeout(dst, 10000);
		sqlite3_backup *b = sqlite3_backup_init(dst, "main", s->db, "main");
		if (b == NULL) {
			src = sqlite3_errcode(dst);
		} else {
			for (int tries = 0;; tries++) {
				src = sqlite3_backup_step(b, -1);
				if ((src != SQLITE_BUSY && src != SQLITE_LOCKED) || tries >= 1000)
					break;
				sqlite3_sleep(10);
			}
			int fin = sqlite3_backup_finish(b);
			if (src == SQLITE_DONE)
				src = fin;
		}
		if (src == SQLITE_OK)
			src = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
	}
	if (src != SQLITE_OK) {
		snprintf(s->err, sizeof s->err, "backup of the database failed: %s",
		         dst != NULL ? sqlite3_errmsg(dst) : sqlite3_errstr(src));
		rc = (src & 0xff) == SQLITE_FULL   ? COFFER_EFULL
		     : (src & 0xff) == SQLITE_BUSY ? COFFER_EBUSY
		                                   : COFFER_EIO;
	}
	sqlite3_close(dst);
	return rc;
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* Copy len bytes at off of `in` into a new file `path` (0600), fsync'd. */
static int copy_image(int in, uint64_t off, uint64_t len, const char *path, char *err,
                      size_t errlen)
{
	int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		int e = errno;
		snprintf(err, errlen,
		         e == EEXIST ? "'%s' exists: another restore is running, or one was "
		                       "interrupted (remove the file once none runs)"
		                     : "cannot create '%s': %s",
		         path, strerror(e));
		return e == EEXIST                  ? COFFER_EBUSY
		       : e == ENOSPC || e == EDQUOT ? COFFER_EFULL
		                                    : COFFER_EIO;
	}
	unsigned char buf[16384];
	int rc = COFFER_OK;
	while (len > 0 && rc == COFFER_OK) {
		size_t want = len < sizeof buf ? (size_t)len : sizeof buf;
		ssize_t r = pread(in, buf, want, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "cannot read the backup: %s",
			         r < 0 ? strerror(errno) : "it ends early");
			rc = COFFER_EIO;
			break;
		}
		for (ssize_t w = 0; w < r && rc == COFFER_OK;) {
			ssize_t n = write(out, buf + w, (size_t)(r - w));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				int e = errno;
				snprintf(err, errlen, "cannot write '%s': %s", path, strerror(e));
				rc = e == ENOSPC || e == EDQUOT ? COFFER_EFULL : COFFER_EIO;
			} else {
				w += n;
			}
		}
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	if (rc == COFFER_OK && fsync(out) != 0) {
		snprintf(err, errlen, "cannot sync '%s': %s", path, strerror(errno));
		rc = COFFER_EIO;
	}
	close(out);
	if (rc != COFFER_OK)
		unlink(path);
	return rc;
}

/* The restored image must be a coffer store this build understands, whole. */
static int check_image(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int ver = -1, ok = 0, hdr = 0;
	int src = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL);
	if (src == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		ver = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	q = NULL;
	if (src == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0) != NULL)
		ok = strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
	sqlite3_finalize(q);
	q = NULL;
	if (src == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM header", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		hdr = sqlite3_column_int(q, 0) == 1;
	sqlite3_finalize(q);
	sqlite3_close(db);
	if (ver < 1 || ver > STORE_SCHEMA_VERSION || !ok || !hdr) {
		snprintf(
		    err, errlen,
		    "the backup does not hold a coffer store this version can open (schema %d, "
		    "check %s, header %s)",
		    ver, ok ? "ok" : "failed", hdr ? "present" : "missing");
		return COFFER_ECORRUPT;
	}
	return COFFER_OK;
}

static int file_size(const char *dir, const char *name, off_t *size)
{
	char path[PATH_MAX + 32];
	struct stat sb;
	*size = 0;
	if (path_join(path, sizeof path, dir, name) != COFFER_OK)
		return COFFER_EINVAL;
	if (lstat(path, &sb) != 0)
		return errno == ENOENT ? COFFER_ENOTFOUND : COFFER_EIO;
	*size = sb.st_size;
	return COFFER_OK;
}

static int sq_restore_image(const char *location, int fd, uint64_t off, uint64_t len, char *err,
                            size_t errlen)
{
	char real[PATH_MAX], db[PATH_MAX + 32], tmp[PATH_MAX + 32];
	if (location[0] == '\0') {
		snprintf(err, errlen, "invalid store path");
		return COFFER_EINVAL;
	}
	int rc = resolve_dir(location, STORE_OPEN_CREATE, real, err, errlen);
	if (rc == COFFER_OK &&
	    (path_join(db, sizeof db, real, "coffer.db") != COFFER_OK ||
	     path_join(tmp, sizeof tmp, real, "coffer.db.restore") != COFFER_OK)) {
		snprintf(err, errlen, "store path is too long");
		rc = COFFER_EINVAL;
	}
	if (rc == COFFER_OK)
		rc = check_store_files(real, err, errlen);
	if (rc != COFFER_OK)
		return rc;
	off_t dbsize = 0, walsize = 0;
	int have_db = file_size(real, "coffer.db", &dbsize) == COFFER_OK;
	(void)file_size(real, "coffer.db-wal", &walsize);
	if (dbsize > 0 || walsize > 0) {
		snprintf(err, errlen,
		         "store '%s' is not empty (it holds coffer.db): restore-backup never "
		         "overwrites a store; give a new or empty folder",
		         location);
		return COFFER_EPERM;
	}
	rc = copy_image(fd, off, len, tmp, err, errlen);
	if (rc == COFFER_OK)
		rc = check_image(tmp, err, errlen);
	if (rc == COFFER_OK) {
		/* link() never replaces: a store created meanwhile is not overwritten. An empty
		 * coffer.db (a creation that stopped before its schema) holds nothing: replaced. */
		int r = have_db ? rename(tmp, db) : link(tmp, db);
		if (r != 0) {
			int e = errno;
			snprintf(err, errlen,
			         e == EEXIST
			             ? "store '%s' was created while restoring: not overwritten"
			             : "cannot put the restored store in place in '%s': %s",
			         location, strerror(e));
			rc = e == EEXIST ? COFFER_EPERM : COFFER_EIO;
		}
	}
	unlink(tmp); /* after link(): the second name; after rename(): already gone */
	if (rc == COFFER_OK)
		fsync_dir(real);
	return rc;
}

const store_ops sqlite_store_ops = {
    .scheme = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .errmsg = sq_errmsg,
    .default_key_file = sq_default_key_file,
    .bootstrap = sq_bootstrap,
    .keys_load = sq_keys_load,
    .put = sq_put,
    .get = sq_get,
    .generation = sq_generation,
    .list_secrets = sq_list_secrets,
    .list_versions = sq_list_versions,
    .keys_add = sq_keys_add,
    .keys_reseal = sq_keys_reseal,
    .reseal_batch = sq_reseal_batch,
    .keys_prune = sq_keys_prune,
    .destroy = sq_destroy,
    .labels_get = sq_labels_get,
    .purge = sq_purge,
    .list_page = sq_list_page,
    .info_set = sq_info_set,
    .audit_pending = sq_audit_pending,
    .audit_append = sq_audit_append,
    .audit_list = sq_audit_list,
    .meta_init = sq_meta_init,
    .decl_add = sq_decl_add,
    .decl_list = sq_decl_list,
    .import_secret = sq_import_secret,
    .audit_import = sq_audit_import,
    .backup = sq_backup,
    .restore_image = sq_restore_image,
};
