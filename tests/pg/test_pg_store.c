/*
 * The PostgreSQL backend through store_ops, against the throwaway server of pg_server.sh
 * (COFFER_PG_STATE names its state file; the admin URL is in STATE.url). Each test makes its own
 * database. What the conformance suite cannot see from the public API is checked here: schema
 * creation races, version reservation across processes, generation tokens and NOTIFY,
 * reconnects at every point of a put, paging, and a crash of the server during a stream of puts
 * (run alone, as `test_pg_store crash`, because it stops the shared server).
 *
 * Deterministic: fixed seeds (printed), no sleeps that decide an outcome; waits are bounded polls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../canary.h"
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coffer.h"
#include "store/store.h"

#define PGT_MASTER_KEY "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=" /* tests/testutil.h */

extern const store_ops postgres_store_ops;
static const store_ops *ops = &postgres_store_ops;

static char admin_url[1024];
static char url[1024]; /* the current test's database */
static char dbname[64];

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void read_admin_url(void)
{
	const char *state = getenv("COFFER_PG_STATE");
	char path[1024];
	if (state == NULL) {
		fprintf(stderr, "COFFER_PG_STATE is not set: run through ctest\n");
		exit(1);
	}
	snprintf(path, sizeof path, "%s.url", state);
	FILE *f = fopen(path, "r");
	if (f == NULL || fgets(admin_url, sizeof admin_url, f) == NULL) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	admin_url[strcspn(admin_url, "\n")] = '\0';
}

/* Run one SQL command on `u`; returns the first value of the first row (static) or "". */
static const char *sql1(const char *u, const char *q, const char *param)
{
	static char out[256];
	PGconn *c = PQconnectdb(u);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PGresult *r = PQexecParams(c, q, param != NULL, NULL, &param, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
		fail_msg("%s: %s", q, PQresultErrorMessage(r));
	snprintf(out, sizeof out, "%s",
	         st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(c);
	return out;
}

/* A fresh database for this test; url receives its URL. */
static void fresh_db(const char *name)
{
	char q[200];
	snprintf(dbname, sizeof dbname, "pgt_%s", name);
	PGconn *c = PQconnectdb(admin_url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	/* An autovacuum worker of an earlier run may hold the database for a moment. */
	PGresult *r = NULL;
	for (int i = 0; i < 50; i++) {
		PQclear(r);
		r = PQexec(c, q);
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			break;
		sleep_ms(200);
	}
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", q, PQresultErrorMessage(r));
	PQclear(r);
	snprintf(q, sizeof q, "CREATE DATABASE %s", dbname);
	r = PQexec(c, q);
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(c);
	const char *slash = strrchr(admin_url, '/');
	assert_non_null(slash);
	snprintf(url, sizeof url, "%.*s/%s", (int)(slash - admin_url), admin_url, dbname);
}

/* Terminate every coffer session on the test database, and wait until they are gone. */
static int kill_sessions(void)
{
	const char *n = sql1(admin_url,
	                     "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
	                     "WHERE datname = $1 AND application_name = 'coffer'",
	                     dbname);
	return (int)strtol(n, NULL, 10);
}

static store *open_ok(void)
{
	store *s = NULL;
	char err[512] = "";
	int rc = ops->open(url, STORE_OPEN_CREATE, &s, err, sizeof err);
	if (rc != COFFER_OK)
		fail_msg("open: %s (%d)", err, rc);
	return s;
}

static store_boot make_boot(uint8_t tag)
{
	store_boot b;
	memset(&b, 0, sizeof b);
	memset(b.store_id, tag, sizeof b.store_id);
	memset(b.kdf_salt, tag ^ 0x5a, sizeof b.kdf_salt);
	b.kdf_opslimit = 3;
	b.kdf_memlimit = (uint64_t)1 << 26;
	b.first_key_id = 1;
	b.sealed_key_len = 72;
	memset(b.sealed_key, tag ^ 0xa5, b.sealed_key_len);
	return b;
}

/* The seal callback of the tests: the blob is the value itself, key id 7. These stores mostly
 * have no keyring: the newest key the backend read in the put's transaction is then id 0. */
typedef struct sealer {
	const char *const *values;
	size_t calls;
	size_t order[4096]; /* index of each call */
	uint64_t versions[4096];
	size_t fail_at; /* fail this call index (SIZE_MAX: never) */
	int kill_at;    /* kill our session during this call (-1: never) */
} sealer;

static int seal_cb(void *ctx, size_t i, store_seal_io *io)
{
	sealer *z = ctx;
	assert_non_null(io->newest);
	assert_int_equal(io->before.last_version, io->version - 1); /* what the secret was */
	size_t call = z->calls++;
	if (call < 4096) {
		z->order[call] = i;
		z->versions[call] = io->version;
	}
	if (z->kill_at >= 0 && (size_t)z->kill_at == call)
		assert_true(kill_sessions() >= 1);
	if (call == z->fail_at)
		return COFFER_EINTEGRITY;
	size_t n = strlen(z->values[i]);
	io->sealed = malloc(n);
	memcpy(io->sealed, z->values[i], n);
	io->sealed_len = n;
	io->key_id = 7;
	return COFFER_OK; /* no MACs: the backend stores none (the core makes them) */
}

static sealer new_sealer(const char *const *values)
{
	sealer z;
	memset(&z, 0, sizeof z);
	z.values = values;
	z.fail_at = SIZE_MAX;
	z.kill_at = -1;
	return z;
}

/* Put one value; returns its version (fails the test on error). */
static uint64_t put1(store *s, const char *name, const char *value)
{
	const char *vals[1] = {value};
	sealer z = new_sealer(vals);
	store_put it = {name, strlen(name), NULL, 0, 0};
	int rc = ops->put(s, &it, 1, seal_cb, &z);
	if (rc != COFFER_OK)
		fail_msg("put %s: %s", name, ops->errmsg(s));
	assert_int_equal(z.calls, 1);
	return it.version;
}

/* Expect `name`@version (0: latest) to hold `value` at `want_version`. */
static void get_is(store *s, const char *name, uint64_t version, const char *value,
                   uint64_t want_version)
{
	store_row row;
	store_meta meta;
	int rc = ops->get(s, name, strlen(name), version, &row, &meta);
	if (rc != COFFER_OK)
		fail_msg("get %s@%llu: %s", name, (unsigned long long)version, ops->errmsg(s));
	if (version == 0)
		assert_int_equal(meta.latest, want_version); /* put made it latest */
	assert_true(meta.last_version >= want_version);
	assert_int_equal(meta.rows_max, meta.last_version);
	assert_int_equal(row.version, want_version);
	assert_int_equal(row.key_id, 7);
	assert_int_equal(row.state, COFFER_STATE_ENABLED);
	assert_true(row.created_ms > 1600000000000LL);
	assert_int_equal(row.sealed_len, strlen(value));
	assert_memory_equal(row.sealed, value, row.sealed_len);
	free(row.sealed);
}

/* No such secret, or (the secret exists) no such row: the backend reads, the core judges. */
static void get_missing(store *s, const char *name, uint64_t version)
{
	store_row row;
	store_meta meta;
	int rc = ops->get(s, name, strlen(name), version, &row, &meta);
	if (rc == COFFER_OK) {
		assert_int_equal(row.version, 0);
		assert_null(row.sealed);
	} else {
		assert_int_equal(rc, COFFER_ENOTFOUND);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Open, schema, bootstrap                                                                    */

static void test_open_and_errors(void **state)
{
	store *s = NULL;
	char err[512];
	fresh_db("open");
	assert_int_equal(ops->open(url, 0, &s, err, sizeof err), COFFER_ENOTFOUND);
	assert_null(s);
	assert_non_null(strstr(err, "no coffer store"));
	s = open_ok();
	store_boot b;
	int created = 5;
	assert_int_equal(ops->bootstrap(s, NULL, &b, &created), COFFER_ENOTFOUND);
	assert_int_equal(created, 5);
	char path[64];
	assert_int_equal(ops->default_key_file(url, path, sizeof path), COFFER_ENOTFOUND);
	ops->close(s);
	s = NULL;
	assert_int_equal(ops->open(url, 0, &s, err, sizeof err), COFFER_OK); /* exists now */
	ops->close(s);
	ops->close(NULL);

	/* No message ever shows a password: malformed URL, wrong password, missing database. */
	s = NULL;
	assert_int_equal(ops->open("postgresql://u:Sekr%zzEt@localhost/x", 0, &s, err, sizeof err),
	                 COFFER_EINVAL);
	assert_null(strstr(err, "Sekr"));
	char bad[1100];
	const char *at = strchr(admin_url + strlen("postgresql://"), '@');
	snprintf(bad, sizeof bad, "postgresql://coffer:WrongPw1234%s", at);
	assert_int_equal(ops->open(bad, 0, &s, err, sizeof err), COFFER_EUNAVAIL);
	assert_null(strstr(err, "WrongPw1234"));
	assert_non_null(strstr(err, "cannot connect"));
	char nodb[1100];
	snprintf(nodb, sizeof nodb, "%.*s/pgt_no_such_db", (int)(strrchr(url, '/') - url), url);
	assert_int_equal(ops->open(nodb, 0, &s, err, sizeof err), COFFER_EUNAVAIL);
	assert_null(strstr(err, "coffer-test-Pw7q"));
	assert_int_equal(
	    ops->open("postgresql://coffer:Pw9876@127.0.0.1:1/x", 0, &s, err, sizeof err),
	    COFFER_EUNAVAIL);
	assert_null(strstr(err, "Pw9876"));
	assert_null(s);

	/* A store of a newer schema than this coffer knows is refused, not damaged. */
	sql1(url, "UPDATE coffer_meta SET schema_version = schema_version + 1", NULL);
	assert_int_equal(ops->open(url, STORE_OPEN_CREATE, &s, err, sizeof err), COFFER_ECORRUPT);
	assert_non_null(strstr(err, "upgrade coffer"));
	sql1(url, "UPDATE coffer_meta SET schema_version = schema_version - 1", NULL);
}

/* A read-only server (a standby, a demoted primary): puts fail as unavailable, reads work. */
static void test_read_only_server(void **state)
{
	fresh_db("readonly");
	store *s = open_ok();
	assert_int_equal(put1(s, "ro", "ro1"), 1);
	char q[256];
	snprintf(q, sizeof q, "ALTER DATABASE %s SET default_transaction_read_only = on", dbname);
	sql1(admin_url, q, NULL);
	assert_true(kill_sessions() >= 1); /* new sessions get the setting */
	const char *vals[1] = {"ro2"};
	sealer z = new_sealer(vals);
	store_put it = {"ro", 2, NULL, 0, 0};
	assert_int_equal(ops->put(s, &it, 1, seal_cb, &z), COFFER_EUNAVAIL);
	assert_non_null(strstr(ops->errmsg(s), "read-only"));
	assert_non_null(strstr(ops->errmsg(s), "nothing was written"));
	assert_int_equal(z.calls, 0);
	get_is(s, "ro", 0, "ro1", 1);
	snprintf(q, sizeof q, "ALTER DATABASE %s SET default_transaction_read_only = off", dbname);
	sql1(admin_url, q, NULL);
	assert_true(kill_sessions() >= 1);
	assert_int_equal(put1(s, "ro", "ro2"), 2); /* back to normal without reopening */
	ops->close(s);
}

#define OPENERS 6

/* Six processes open a fresh database and bootstrap at once: one schema, one header. */
static void test_concurrent_create(void **state)
{
	int fds[2];
	pid_t pids[OPENERS];
	fresh_db("race");
	assert_int_equal(pipe(fds), 0);
	for (int i = 0; i < OPENERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			store *s = NULL;
			char err[512], line[16];
			store_boot p = make_boot((uint8_t)(0x10 + i)), got;
			int created = 0;
			int rc = ops->open(url, STORE_OPEN_CREATE, &s, err, sizeof err);
			if (rc == COFFER_OK)
				rc = ops->bootstrap(s, &p, &got, &created);
			if (rc != COFFER_OK)
				fprintf(stderr, "opener %d: %s\n", i,
				        s != NULL ? ops->errmsg(s) : err);
			int n = snprintf(line, sizeof line, "%d %d %02x\n", rc, created,
			                 rc == COFFER_OK ? got.store_id[0] : 0);
			ssize_t w = write(fds[1], line, (size_t)n);
			ops->close(s);
			_exit(w == n ? 0 : 1);
		}
	}
	close(fds[1]);
	char buf[512];
	size_t len = 0;
	ssize_t r;
	while ((r = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	close(fds[0]);
	for (int i = 0; i < OPENERS; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	int creators = 0;
	unsigned first = 0;
	char *line = buf;
	for (int i = 0; i < OPENERS; i++) {
		int rc, created;
		unsigned id;
		assert_int_equal(sscanf(line, "%d %d %x", &rc, &created, &id), 3);
		assert_int_equal(rc, COFFER_OK);
		creators += created;
		if (i == 0)
			first = id;
		assert_int_equal(id, first); /* everyone sees the same header */
		line = strchr(line, '\n') + 1;
	}
	assert_int_equal(creators, 1);
}

static int key_seen(void *ctx, uint32_t id, const uint8_t *sealed, size_t len)
{
	store_boot *want = ctx;
	assert_int_equal(id, want->first_key_id);
	assert_int_equal(len, want->sealed_key_len);
	assert_memory_equal(sealed, want->sealed_key, len);
	want->first_key_id = 0; /* seen once */
	return COFFER_OK;
}

static void test_bootstrap_and_keys(void **state)
{
	fresh_db("boot");
	store *s = open_ok();
	store_boot a = make_boot(0xa1), b = make_boot(0xb2), got;
	int created = -1;
	assert_int_equal(ops->bootstrap(s, &a, &got, &created), COFFER_OK);
	assert_int_equal(created, 1);
	assert_memory_equal(&got, &a, sizeof a);
	assert_int_equal(ops->bootstrap(s, &b, &got, &created), COFFER_OK);
	assert_int_equal(created, 0);
	assert_memory_equal(got.store_id, a.store_id, STORE_ID_LEN);
	assert_memory_equal(got.kdf_salt, a.kdf_salt, STORE_SALT_LEN);
	assert_int_equal(got.kdf_memlimit, a.kdf_memlimit);
	assert_int_equal(ops->bootstrap(s, NULL, &got, &created), COFFER_OK);
	assert_memory_equal(got.sealed_key, a.sealed_key, a.sealed_key_len);
	store_boot want = a;
	assert_int_equal(ops->keys_load(s, key_seen, &want), COFFER_OK);
	assert_int_equal(want.first_key_id, 0);
	ops->close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Versions                                                                                   */

static void test_put_get(void **state)
{
	fresh_db("putget");
	store *s = open_ok();
	assert_int_equal(put1(s, "db.password", "bleak_dearest_hanged_reigns"), 1);
	assert_int_equal(put1(s, "db.password", "crummy_goofed_caddy_radiant"), 2);
	get_is(s, "db.password", 0, "crummy_goofed_caddy_radiant", 2);
	get_is(s, "db.password", 1, "bleak_dearest_hanged_reigns", 1);
	get_missing(s, "db.password", 3);
	get_missing(s, "nosuch", 0);
	get_missing(s, "nosuch", 1);

	/* Names are matched exactly: no pattern, no case folding, no trimming. */
	put1(s, "a_b", "underscore");
	put1(s, "a.b", "dot");
	get_is(s, "a_b", 0, "underscore", 1);
	get_is(s, "a.b", 0, "dot", 1);
	get_missing(s, "aXb", 0);
	get_missing(s, "a%", 0);
	get_missing(s, "A_B", 0);
	get_missing(s, "a_b ", 0);
	/* The core refuses such names, but the backend alone must still treat them as data. */
	const char *odd[] = {"it's", "x;--", "back\\slash", "50%", "a_%", "\"q\""};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		assert_int_equal(put1(s, odd[i], odd[i]), 1);
		get_is(s, odd[i], 0, odd[i], 1);
	}
	get_missing(s, "a_b%", 0);
	ops->close(s);
}

/* Items of one batch naming the same secret get consecutive versions in array order, and
 * seal() is called once per item, in array order. */
static void test_batch_order(void **state)
{
	fresh_db("batch");
	store *s = open_ok();
	put1(s, "y", "y1");
	const char *vals[4] = {"x1", "y2", "x2", "x3"};
	store_put it[4] = {
	    {"x", 1, NULL, 0, 0}, {"y", 1, NULL, 0, 0}, {"x", 1, NULL, 0, 0}, {"x", 1, NULL, 0, 0}};
	sealer z = new_sealer(vals);
	assert_int_equal(ops->put(s, it, 4, seal_cb, &z), COFFER_OK);
	assert_int_equal(z.calls, 4);
	const uint64_t want[4] = {1, 2, 2, 3};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(z.order[i], i);
		assert_int_equal(z.versions[i], want[i]);
		assert_int_equal(it[i].version, want[i]);
	}
	get_is(s, "x", 0, "x3", 3);
	get_is(s, "x", 2, "x2", 2);
	get_is(s, "y", 0, "y2", 2);
	assert_int_equal(ops->put(s, it, 0, seal_cb, &z), COFFER_OK);
	ops->close(s);
}

/* A failing seal() rolls the whole batch back, and the next put leaves no gap. */
static void test_seal_failure(void **state)
{
	fresh_db("sealfail");
	store *s = open_ok();
	put1(s, "x", "x1");
	const char *vals[2] = {"x2", "new1"};
	store_put it[2] = {{"x", 1, NULL, 0, 0}, {"new", 3, NULL, 0, 0}};
	sealer z = new_sealer(vals);
	z.fail_at = 1;
	assert_int_equal(ops->put(s, it, 2, seal_cb, &z), COFFER_EINTEGRITY);
	assert_int_equal(it[0].version, 0); /* out-parameters untouched on failure */
	get_is(s, "x", 0, "x1", 1);
	get_missing(s, "new", 0);
	assert_int_equal(put1(s, "x", "x2"), 2);
	assert_int_equal(put1(s, "new", "new1"), 1);
	ops->close(s);
}

/*
 * The server's disk fills: PostgreSQL answers SQLSTATE 53100 (disk_full). A trigger makes the
 * real server raise exactly that error for an insert (a real full disk under PostgreSQL is more
 * than a test can arrange); the backend must say COFFER_EFULL with a message saying so, keep
 * every earlier value, and put again on the same handle once the disk has room.
 */
static void test_disk_full_then_room_again(void **state)
{
	fresh_db("diskfull");
	store *s = open_ok();
	put1(s, "x", "x1");
	sql1(url,
	     "CREATE FUNCTION pgt_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
	     "RAISE EXCEPTION 'could not extend file: No space left on device' "
	     "USING ERRCODE = '53100'; END $$",
	     NULL);
	sql1(url,
	     "CREATE TRIGGER pgt_full BEFORE INSERT ON coffer_versions FOR EACH ROW EXECUTE "
	     "PROCEDURE pgt_full()",
	     NULL);
	const char *vals[1] = {"x2"};
	sealer z = new_sealer(vals);
	store_put it = {"x", 1, NULL, 0, 0};
	assert_int_equal(ops->put(s, &it, 1, seal_cb, &z), COFFER_EFULL);
	assert_non_null(strstr(ops->errmsg(s), "disk is full"));
	assert_non_null(strstr(ops->errmsg(s), "53100"));
	get_is(s, "x", 0, "x1", 1);
	sql1(url, "DROP TRIGGER pgt_full ON coffer_versions", NULL);
	assert_int_equal(put1(s, "x", "x2"), 2); /* the same handle, no gap */
	get_is(s, "x", 1, "x1", 1);
	ops->close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Generation tokens                                                                          */

static uint64_t gen_of(store *s)
{
	uint64_t g = 0;
	assert_int_equal(ops->generation(s, &g), COFFER_OK);
	return g;
}

/* The token of one secret (what the core compares a cached row's tag with). */
static uint64_t tok_of(store *s, const char *name)
{
	uint64_t g = 0;
	assert_int_equal(ops->generation_of(s, name, strlen(name), &g), COFFER_OK);
	return g;
}

uint32_t pg_bucket(const char *name, size_t len); /* src/store/postgres/gen.c */

static uint64_t tag_of(store *s, const char *name)
{
	store_row row;
	store_meta meta;
	assert_int_equal(ops->get(s, name, strlen(name), 0, &row, &meta), COFFER_OK);
	free(row.sealed);
	return row.gen;
}

/* Poll (bounded) until the token of `name` differs from `tag`; returns the number of polls. */
static int wait_token_change(store *s, const char *name, uint64_t tag)
{
	for (int i = 0; i < 3000; i++) {
		if (tok_of(s, name) != tag)
			return i;
		sleep_ms(10);
	}
	fail_msg("generation token unchanged after 30 s");
	return -1;
}

static void test_generation(void **state)
{
	fresh_db("gen");
	store *a = open_ok(), *b = open_ok();
	put1(a, "g", "g1");
	/* Quiet store: the token equals the tag of a fresh read, and stays equal (cache hits). */
	uint64_t tag = tag_of(a, "g");
	assert_int_equal(tok_of(a, "g"), tag);
	assert_int_equal(tok_of(a, "g"), tag);
	/* A write through another handle of this process is seen at once. */
	put1(b, "g", "g2");
	assert_int_not_equal(tok_of(a, "g"), tag);
	tag = tag_of(a, "g");
	assert_int_equal(tok_of(a, "g"), tag);
	/* A write by another process is seen through NOTIFY (the poll is bounded; its count is
	 * printed, not judged). */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		store *c = NULL;
		char err[256];
		int rc = ops->open(url, 0, &c, err, sizeof err);
		const char *vals[1] = {"g3"};
		sealer z = new_sealer(vals);
		store_put it = {"g", 1, NULL, 0, 0};
		if (rc == COFFER_OK)
			rc = ops->put(c, &it, 1, seal_cb, &z);
		ops->close(c);
		_exit(rc == COFFER_OK && it.version == 3 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	int polls = wait_token_change(a, "g", tag);
	printf("# NOTIFY from another process seen after %d extra polls\n", polls);
	get_is(a, "g", 0, "g3", 3);
	/* A write whose notification never came (simulated: the generation bumped by hand, no
	 * NOTIFY) is still noticed: generation() reads the table once its knowledge is a second
	 * old. The poll is bounded; its count is printed, not judged. */
	tag = tag_of(a, "g");
	sql1(url, "UPDATE coffer_meta SET wgen = wgen + 1", NULL);
	polls = wait_token_change(a, "g", tag);
	printf("# a write without NOTIFY seen after %d polls of 10 ms\n", polls);
	/* The same for a write of one bucket: the bucket of "g", bumped by hand, no NOTIFY. */
	tag = tag_of(a, "g");
	char q[128];
	snprintf(q, sizeof q, "UPDATE coffer_gen SET gen = gen + 1 WHERE bucket = %u",
	         pg_bucket("g", 1));
	sql1(url, q, NULL);
	polls = wait_token_change(a, "g", tag);
	printf("# a bucket's write without NOTIFY seen after %d polls of 10 ms\n", polls);
	/* The whole store's token moves with any write too. */
	uint64_t whole = gen_of(a);
	put1(b, "g", "g4");
	assert_int_not_equal(gen_of(a), whole);
	/* A reconnect changes the token even though nothing was written. */
	tag = tag_of(a, "g");
	assert_int_equal(tok_of(a, "g"), tag);
	assert_true(kill_sessions() >= 2);
	assert_int_not_equal(tok_of(a, "g"), tag);
	get_is(b, "g", 0, "g4", 4);
	ops->close(a);
	ops->close(b);
}

/* A put by another process, through the store ops (the child exits 0 if it put `version`). */
static void put_elsewhere(const char *name, const char *value, uint64_t version)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		store *c = NULL;
		char err[256];
		int rc = ops->open(url, 0, &c, err, sizeof err);
		const char *vals[1] = {value};
		sealer z = new_sealer(vals);
		store_put it = {name, strlen(name), NULL, 0, 0};
		if (rc == COFFER_OK)
			rc = ops->put(c, &it, 1, seal_cb, &z);
		ops->close(c);
		_exit(rc == COFFER_OK && it.version == version ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * Issue 11: invalidation per bucket of names. A put of secret A, by another process (NOTIFY) or
 * by another handle of this process (shared generations), changes A's token and leaves the token
 * of B (another bucket) as it was, so B's cached row stays usable; a write that may touch every
 * secret (here a purge) changes both. Before schema 5 every write changed every token.
 */
static void test_bucket_invalidation(void **state)
{
	fresh_db("bucket");
	const char *A = "inv.a", *B = "inv.b";
	assert_int_not_equal(pg_bucket(A, strlen(A)), pg_bucket(B, strlen(B)));
	store *s = open_ok(), *t = open_ok();
	put1(s, A, "a1");
	put1(s, B, "b1");
	uint64_t ta = tag_of(s, A), tb = tag_of(s, B);
	assert_int_equal(tok_of(s, A), ta);
	assert_int_equal(tok_of(s, B), tb);
	/* Another process puts A: A's token changes (within the bound: polled), B's does not. */
	put_elsewhere(A, "a2", 2);
	int polls = wait_token_change(s, A, ta);
	printf("# another process's put of %s seen after %d extra polls\n", A, polls);
	get_is(s, A, 0, "a2", 2);
	assert_int_equal(tok_of(s, B), tb);
	/* Another handle of this process puts B: seen at once; A's token stays. */
	ta = tag_of(s, A);
	put1(t, B, "b2");
	assert_int_not_equal(tok_of(s, B), tb);
	assert_int_equal(tok_of(s, A), ta);
	get_is(s, B, 0, "b2", 2);
	/* A secret in A's bucket shares its token: a put of it changes A's (never a stale A). */
	char mate[32];
	int k = 0;
	do
		snprintf(mate, sizeof mate, "inv.m%d", k++);
	while (pg_bucket(mate, strlen(mate)) != pg_bucket(A, strlen(A)));
	put1(t, mate, "m1");
	assert_int_not_equal(tok_of(s, A), ta);
	/* A write of the whole store (a purge of a deleted secret) changes every token. */
	ta = tag_of(s, A);
	tb = tag_of(s, B);
	sql1(url, "UPDATE coffer_secrets SET purge_ms = 1 WHERE name = $1", mate);
	size_t purged = 0;
	assert_int_equal(ops->purge(t, 2, &purged), COFFER_OK);
	assert_true(purged >= 1);
	assert_int_not_equal(tok_of(s, A), ta);
	assert_int_not_equal(tok_of(s, B), tb);
	ops->close(s);
	ops->close(t);
}

/* The same through the core's cache (what coffer serve's /metrics counts): after another
 * process's put of A, reading B is a cache hit, and reading A returns the new value. */
static void test_cache_survives_other_puts(void **state)
{
	fresh_db("cachehit");
	coffer_options o = {.master_key_b64 = PGT_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[512], ver[COFFER_VERSION_MAX];
	if (coffer_open(&st, url, &o, err, sizeof err) != COFFER_OK)
		fail_msg("coffer_open: %s", err);
	coffer_secret *a = NULL, *b = NULL;
	assert_int_equal(coffer_secret_ref(st, "inv.a", COFFER_PUT | COFFER_ACCESS, &a), COFFER_OK);
	assert_int_equal(coffer_secret_ref(st, "inv.b", COFFER_PUT | COFFER_ACCESS, &b), COFFER_OK);
	assert_int_equal(coffer_put(a, "a1", 2, ver), COFFER_OK);
	assert_int_equal(coffer_put(b, "b1", 2, ver), COFFER_OK);
	coffer_value *v = NULL;
	assert_int_equal(coffer_access(b, "latest", &v), COFFER_OK); /* cached */
	coffer_value_free(v);
	for (int round = 0; round < 5; round++) {
		char val[16];
		snprintf(val, sizeof val, "a%d", round + 2);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			coffer_store *c = NULL;
			coffer_secret *ca = NULL;
			char e[256], cv[COFFER_VERSION_MAX];
			int rc = coffer_open(&c, url, &o, e, sizeof e);
			if (rc == COFFER_OK)
				rc = coffer_secret_ref(c, "inv.a", COFFER_PUT, &ca);
			if (rc == COFFER_OK)
				rc = coffer_put(ca, val, strlen(val), cv);
			coffer_secret_free(ca);
			coffer_close(c);
			_exit(rc == COFFER_OK ? 0 : 1);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		/* A is fresh within the bound (polled, bounded). */
		int fresh = 0;
		for (int i = 0; i < 3000 && !fresh; i++) {
			assert_int_equal(coffer_access(a, "latest", &v), COFFER_OK);
			fresh = strcmp((const char *)coffer_value_data(v, NULL), val) == 0;
			coffer_value_free(v);
			if (!fresh)
				sleep_ms(10);
		}
		assert_true(fresh);
		/* B: answered from the cache. */
		uint64_t h0, m0, h1, m1;
		coffer_cache_stats(&h0, &m0);
		assert_int_equal(coffer_access(b, "latest", &v), COFFER_OK);
		assert_string_equal((const char *)coffer_value_data(v, NULL), "b1");
		coffer_value_free(v);
		coffer_cache_stats(&h1, &m1);
		assert_int_equal(h1 - h0, 1);
		assert_int_equal(m1 - m0, 0);
	}
	coffer_secret_free(a);
	coffer_secret_free(b);
	coffer_close(st);
}

/* ------------------------------------------------------------------------------------------ */
/* Reconnects                                                                                 */

static int count_names(void *ctx, const char *name, size_t n)
{
	(*(size_t *)ctx)++;
	return 0;
}

static void test_reconnect(void **state)
{
	fresh_db("reconn");
	store *s = open_ok();
	put1(s, "r", "r1");
	/* Idempotent reads are retried once after a reconnect. */
	assert_int_equal(kill_sessions(), 1);
	get_is(s, "r", 0, "r1", 1);
	assert_int_equal(kill_sessions(), 1);
	size_t names = 0;
	assert_int_equal(ops->list_secrets(s, count_names, &names), COFFER_OK);
	assert_int_equal(names, 1);
	assert_int_equal(kill_sessions(), 1);
	store_boot got;
	int created;
	assert_int_equal(ops->bootstrap(s, NULL, &got, &created), COFFER_ENOTFOUND);

	/* A put that finds the connection dead before sealing anything is retried: the dead
	 * session's transaction cannot have committed. seal() still runs once per item. */
	assert_int_equal(kill_sessions(), 1);
	assert_int_equal(put1(s, "r", "r2"), 2);

	/* Connection lost after sealing: not retried, COFFER_EUNAVAIL, and nothing written. */
	const char *vals[1] = {"r3"};
	sealer z = new_sealer(vals);
	z.kill_at = 0;
	store_put it = {"r", 1, NULL, 0, 0};
	assert_int_equal(ops->put(s, &it, 1, seal_cb, &z), COFFER_EUNAVAIL);
	assert_int_equal(z.calls, 1);
	assert_non_null(strstr(ops->errmsg(s), "nothing was written"));
	assert_null(strstr(ops->errmsg(s), "coffer-test-Pw7q"));
	get_is(s, "r", 0, "r2", 2);
	assert_int_equal(put1(s, "r", "r3"), 3); /* no gap */
	ops->close(s);
}

/* A put stuck behind another session's lock fails as busy (lock_timeout), it does not hang;
 * the URL's own lock_timeout (300 ms here) is kept. */
static void test_lock_timeout(void **state)
{
	fresh_db("locked");
	store *s = open_ok();
	put1(s, "held", "h1");
	ops->close(s);
	char u[1200];
	snprintf(u, sizeof u, "%s?options=-c%%20lock_timeout%%3D300", url);
	char err[512];
	assert_int_equal(ops->open(u, 0, &s, err, sizeof err), COFFER_OK);
	PGconn *c = PQconnectdb(url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	PQclear(PQexec(c, "BEGIN"));
	PGresult *r = PQexec(c, "SELECT 1 FROM coffer_secrets WHERE name = 'held' FOR UPDATE");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	const char *vals[1] = {"h2"};
	sealer z = new_sealer(vals);
	store_put it = {"held", 4, NULL, 0, 0};
	assert_int_equal(ops->put(s, &it, 1, seal_cb, &z), COFFER_EBUSY);
	assert_non_null(strstr(ops->errmsg(s), "55P03"));
	assert_int_equal(z.calls, 0);
	PQclear(PQexec(c, "ROLLBACK"));
	PQfinish(c);
	assert_int_equal(put1(s, "held", "h2"), 2); /* no gap, nothing left behind */
	ops->close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Listings                                                                                   */

#define MANY 1100

typedef struct names_seen {
	char last[300];
	size_t n;
	size_t stop_after;
} names_seen;

static int name_cb(void *ctx, const char *name, size_t nversions)
{
	names_seen *w = ctx;
	if (w->n > 0)
		assert_true(strcmp(w->last, name) < 0); /* byte order, strictly */
	snprintf(w->last, sizeof w->last, "%s", name);
	w->n++;
	assert_int_equal(nversions, strcmp(name, "multi") == 0 ? 600 : 1);
	return w->n == w->stop_after ? 42 : 0;
}

typedef struct rows_seen {
	uint64_t next;
} rows_seen;

static int row_cb(void *ctx, const store_meta *meta, const store_row *row)
{
	rows_seen *w = ctx;
	assert_int_equal(row->version, w->next);
	assert_null(row->sealed);
	char want[16];
	assert_int_equal(row->sealed_len, (size_t)snprintf(want, sizeof want, "m%llu",
	                                                   (unsigned long long)row->version));
	w->next++;
	return 0;
}

static void test_listing(void **state)
{
	static char names[MANY][16];
	static char vals[600][16];
	static const char *v[MANY];
	static store_put it[MANY];
	fresh_db("list");
	store *s = open_ok();
	for (int i = 0; i < MANY; i++) {
		snprintf(names[i], sizeof names[i], "%c%04d", i % 2 ? 'n' : 'N', MANY - i);
		v[i] = names[i];
		it[i] = (store_put){names[i], strlen(names[i]), NULL, 0, 0};
	}
	sealer z = new_sealer(v);
	if (ops->put(s, it, MANY, seal_cb, &z) != COFFER_OK)
		fail_msg("put of %d secrets: %s", MANY, ops->errmsg(s));
	for (int i = 0; i < 600; i++) {
		snprintf(vals[i], sizeof vals[i], "m%d", i + 1);
		v[i] = vals[i];
		it[i] = (store_put){"multi", 5, NULL, 0, 0};
	}
	z = new_sealer(v);
	assert_int_equal(ops->put(s, it, 600, seal_cb, &z), COFFER_OK);
	assert_int_equal(it[599].version, 600);
	names_seen w = {.stop_after = SIZE_MAX};
	assert_int_equal(ops->list_secrets(s, name_cb, &w), COFFER_OK);
	assert_int_equal(w.n, MANY + 1);
	assert_string_equal(w.last, "n1099");
	names_seen stop = {.stop_after = 700};
	assert_int_equal(ops->list_secrets(s, name_cb, &stop), 42);
	assert_int_equal(stop.n, 700);
	rows_seen r = {1};
	assert_int_equal(ops->list_versions(s, "multi", 5, row_cb, &r), COFFER_OK);
	assert_int_equal(r.next, 601);
	assert_int_equal(ops->list_versions(s, "mult", 4, row_cb, &r), COFFER_ENOTFOUND);
	assert_non_null(strstr(ops->errmsg(s), "not found"));
	ops->close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Many processes, one database                                                               */

#define WRITERS  6
#define BATCHES  40
#define NSECRETS 3

/* xorshift32: a fixed, printed seed per process. */
static uint32_t next_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static const char *const secret_names[NSECRETS] = {"shared.a", "shared.b", "shared.c"};

/* One writer process: batches of 1-4 puts over the shared secrets, in random order; logs each
 * acknowledged put as "secret version value"; checks its reads of latest never go back. */
static int writer(int w, int fd)
{
	uint32_t seed = 0x9e3779b9u ^ (uint32_t)(w + 1) * 2654435761u;
	store *s = NULL;
	char err[256];
	uint64_t seen[NSECRETS] = {0};
	if (ops->open(url, 0, &s, err, sizeof err) != COFFER_OK)
		return 1;
	for (int b = 0; b < BATCHES; b++) {
		char vbuf[4][32];
		const char *vals[4];
		store_put it[4];
		size_t n = 1 + next_rand(&seed) % 4;
		int which[4];
		for (size_t i = 0; i < n; i++) {
			which[i] = (int)(next_rand(&seed) % NSECRETS);
			snprintf(vbuf[i], sizeof vbuf[i], "w%d-b%d-i%zu", w, b, i);
			vals[i] = vbuf[i];
			it[i] = (store_put){secret_names[which[i]], strlen(secret_names[which[i]]),
			                    NULL, 0, 0};
		}
		sealer z = new_sealer(vals);
		if (ops->put(s, it, n, seal_cb, &z) != COFFER_OK)
			return 2;
		for (size_t i = 0; i < n; i++) {
			char line[96];
			int len = snprintf(line, sizeof line, "%d %llu %s\n", which[i],
			                   (unsigned long long)it[i].version, vals[i]);
			if (write(fd, line, (size_t)len) != len)
				return 3;
		}
		int k = (int)(next_rand(&seed) % NSECRETS);
		store_row row;
		store_meta meta;
		if (ops->get(s, secret_names[k], strlen(secret_names[k]), 0, &row, &meta) ==
		    COFFER_OK) {
			free(row.sealed);
			if (row.version < seen[k])
				return 4; /* latest went backwards */
			seen[k] = row.version;
		}
	}
	ops->close(s);
	return 0;
}

static void test_many_writers(void **state)
{
	fresh_db("many");
	/* The backend must not depend on the database's default isolation level. */
	char q[256];
	snprintf(q, sizeof q,
	         "ALTER DATABASE %s SET default_transaction_isolation = 'repeatable read'", dbname);
	sql1(admin_url, q, NULL);
	store *s = open_ok();
	char logpath[] = "/tmp/coffer-pgtest-XXXXXX";
	int fd = mkstemp(logpath);
	assert_true(fd >= 0);
	printf("# %d writer processes, seeds 0x9e3779b9 ^ (w+1)*2654435761\n", WRITERS);
	pid_t pids[WRITERS];
	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0)
			_exit(writer(w, fd));
	}
	for (int w = 0; w < WRITERS; w++) {
		int status;
		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("writer %d failed (status %d)", w, status);
	}
	FILE *f = fopen(logpath, "r");
	assert_non_null(f);
	static char seen[NSECRETS][WRITERS * BATCHES * 4 + 1];
	uint64_t max[NSECRETS] = {0};
	int which;
	unsigned long long ver;
	char val[32];
	size_t acked = 0;
	while (fscanf(f, "%d %llu %31s", &which, &ver, val) == 3) {
		assert_true(which >= 0 && which < NSECRETS);
		assert_true(ver >= 1 && ver <= WRITERS * BATCHES * 4);
		assert_int_equal(seen[which][ver], 0); /* unique */
		seen[which][ver] = 1;
		if (ver > max[which])
			max[which] = ver;
		get_is(s, secret_names[which], ver, val, ver); /* exact value */
		acked++;
	}
	fclose(f);
	unlink(logpath);
	close(fd);
	for (int k = 0; k < NSECRETS; k++) {
		for (uint64_t v = 1; v <= max[k]; v++)
			assert_int_equal(seen[k][v], 1); /* gapless */
		store_row row;
		store_meta meta;
		assert_int_equal(ops->get(s, secret_names[k], 8, 0, &row, &meta), COFFER_OK);
		assert_int_equal(row.version, max[k]);
		free(row.sealed);
	}
	printf("# %zu puts acknowledged and verified\n", acked);
	ops->close(s);
}

/* ------------------------------------------------------------------------------------------ */
/* Nothing readable in a dump (acceptance 4)                                                  */

/* The PG_BIN='...' line of the server's state file. */
static void pg_bin(char *buf, size_t len)
{
	FILE *f = fopen(getenv("COFFER_PG_STATE"), "r");
	char line[1100];
	buf[0] = '\0';
	assert_non_null(f);
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "PG_BIN='", 8) == 0)
			snprintf(buf, len, "%.*s", (int)strcspn(line + 8, "'"), line + 8);
	fclose(f);
	assert_true(buf[0] != '\0');
}

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long size = ftell(f);
	assert_true(size > 0);
	rewind(f);
	unsigned char *p = malloc((size_t)size);
	assert_non_null(p);
	*n = fread(p, 1, (size_t)size, f);
	fclose(f);
	return p;
}

/* 1,000 canaries put through the public API; pg_dump of the database holds none of them raw,
 * as hex (either case), as base64, or a 12-byte fragment. */
static void test_dump_has_no_plaintext(void **state)
{
	static canary_set canary;
	canary_make(canary, 20261126);
	fresh_db("canary");
	coffer_options o = {.master_key_b64 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
	                    .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[512];
	if (coffer_open(&st, url, &o, err, sizeof err) != COFFER_OK)
		fail_msg("coffer_open: %s", err);
	assert_int_equal(canary_put_all(st, canary), COFFER_OK);
	coffer_close(st);

	char bin[1024], dump[] = "/tmp/coffer-pgdump-XXXXXX", cmd[4096];
	pg_bin(bin, sizeof bin);
	int fd = mkstemp(dump);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof cmd, "'%s/pg_dump' --no-owner -f '%s' -d '%s'", bin, dump, url);
	assert_int_equal(system(cmd), 0);
	size_t n = 0;
	unsigned char *d = slurp(dump, &n);
	assert_non_null(memmem(d, n, "canary-9", 8)); /* the dump is a real one: names are in it */
	/* The scanner finds what is there: a canary planted in a copy of the dump. */
	unsigned char *planted = malloc(n + CANARY_LEN);
	assert_non_null(planted);
	memcpy(planted, d, n);
	memcpy(planted + n, canary[7], CANARY_LEN);
	assert_true(canary_scan(planted, n + CANARY_LEN, canary) >= 2);
	free(planted);
	int hits = canary_scan(d, n, canary);
	printf("# pg_dump: %zu bytes scanned, %d canary hits\n", n, hits);
	assert_int_equal(hits, 0);
	free(d);
	unlink(dump);
}

/* ------------------------------------------------------------------------------------------ */
/* A crash of the server during a stream of puts (acceptance 3)                               */

static volatile sig_atomic_t stop_stream;

static void on_term(int sig)
{
	stop_stream = 1;
}

/* The streaming process: one handle, never reopened; logs "ok secret version seq",
 * "unknown seq" (COFFER_EUNAVAIL) or "err rc seq". */
static int streamer(int fd)
{
	store *s = NULL;
	char err[256];
	signal(SIGTERM, on_term);
	if (ops->open(url, 0, &s, err, sizeof err) != COFFER_OK)
		return 1;
	for (unsigned seq = 0; !stop_stream; seq++) {
		char val[32], line[96];
		const char *vals[1] = {val};
		int k = (int)(seq % NSECRETS);
		snprintf(val, sizeof val, "seq-%u", seq);
		sealer z = new_sealer(vals);
		store_put it = {secret_names[k], strlen(secret_names[k]), NULL, 0, 0};
		int rc = ops->put(s, &it, 1, seal_cb, &z);
		int len;
		if (rc == COFFER_OK)
			len = snprintf(line, sizeof line, "ok %d %llu %u\n", k,
			               (unsigned long long)it.version, seq);
		else if (rc == COFFER_EUNAVAIL)
			len = snprintf(line, sizeof line, "unknown %u\n", seq);
		else
			len = snprintf(line, sizeof line, "err %d %u\n", rc, seq);
		if (write(fd, line, (size_t)len) != len)
			return 3;
		if (rc != COFFER_OK)
			sleep_ms(20); /* the server is down: do not spin */
	}
	ops->close(s);
	return 0;
}

/* Count log lines starting with `kind`. */
static int count_lines(const char *path, const char *kind)
{
	FILE *f = fopen(path, "r");
	char line[128];
	int n = 0;
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL)
		n += strncmp(line, kind, strlen(kind)) == 0 && strchr(line, '\n') != NULL;
	fclose(f);
	return n;
}

static void wait_lines(const char *path, const char *kind, int want)
{
	for (int i = 0; i < 12000; i++) { /* at most 120 s */
		if (count_lines(path, kind) >= want)
			return;
		sleep_ms(10);
	}
	fail_msg("stream: fewer than %d '%s' lines after 120 s", want, kind);
}

static void server_cmd(const char *what)
{
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "'%s' %s '%s'", getenv("COFFER_PG_SCRIPT"), what,
	         getenv("COFFER_PG_STATE"));
	assert_int_equal(system(cmd), 0);
}

static void verify_stream(store *s, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[128];
	int ok = 0, unknown = 0;
	assert_non_null(f);
	while (fgets(line, sizeof line, f) != NULL) {
		int k;
		unsigned long long ver;
		unsigned seq;
		char val[32];
		if (sscanf(line, "ok %d %llu %u", &k, &ver, &seq) == 3) {
			snprintf(val, sizeof val, "seq-%u", seq);
			get_is(s, secret_names[k], ver, val, ver); /* every acknowledged put */
			ok++;
		} else if (strncmp(line, "unknown", 7) == 0) {
			unknown++;
		} else if (strncmp(line, "err", 3) == 0) {
			fail_msg("stream: unexpected error: %s", line);
		}
	}
	fclose(f);
	printf("# crash stream: %d acknowledged puts verified, %d unavailable\n", ok, unknown);
}

/* Versions of each secret are 1..last with no gap, whatever was acknowledged or not. */
static int gapless_cb(void *ctx, const store_meta *meta, const store_row *row)
{
	uint64_t *next = ctx;
	assert_int_equal(row->version, *next);
	(*next)++;
	return 0;
}

static void test_crash_during_puts(void **state)
{
	fresh_db("crash");
	store *s = open_ok();
	for (int k = 0; k < NSECRETS; k++)
		put1(s, secret_names[k], "first");
	ops->close(s);
	char path[] = "/tmp/coffer-pgcrash-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(streamer(fd));
	wait_lines(path, "ok", 100);
	server_cmd("crash"); /* pg_ctl stop -m immediate */
	wait_lines(path, "unknown", 3);
	server_cmd("restart");
	int before = count_lines(path, "ok");
	wait_lines(path, "ok", before + 100); /* the same handle recovered by itself */
	kill(pid, SIGTERM);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	s = open_ok();
	verify_stream(s, path);
	for (int k = 0; k < NSECRETS; k++) {
		uint64_t next = 1;
		assert_int_equal(ops->list_versions(s, secret_names[k], strlen(secret_names[k]),
		                                    gapless_cb, &next),
		                 COFFER_OK);
	}
	ops->close(s);
	unlink(path);
}

int main(int argc, char **argv)
{
	read_admin_url();
	setvbuf(stdout, NULL, _IONBF, 0);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_and_errors),
	    cmocka_unit_test(test_read_only_server),
	    cmocka_unit_test(test_concurrent_create),
	    cmocka_unit_test(test_bootstrap_and_keys),
	    cmocka_unit_test(test_put_get),
	    cmocka_unit_test(test_batch_order),
	    cmocka_unit_test(test_seal_failure),
	    cmocka_unit_test(test_disk_full_then_room_again),
	    cmocka_unit_test(test_generation),
	    cmocka_unit_test(test_bucket_invalidation),
	    cmocka_unit_test(test_cache_survives_other_puts),
	    cmocka_unit_test(test_reconnect),
	    cmocka_unit_test(test_lock_timeout),
	    cmocka_unit_test(test_listing),
	    cmocka_unit_test(test_many_writers),
	    cmocka_unit_test(test_dump_has_no_plaintext),
	};
	const struct CMUnitTest crash[] = {
	    cmocka_unit_test(test_crash_during_puts),
	};
	if (argc > 1 && strcmp(argv[1], "crash") == 0)
		return cmocka_run_group_tests_name("pg_crash", crash, NULL, NULL);
	return cmocka_run_group_tests_name("pg_store", tests, NULL, NULL);
}
