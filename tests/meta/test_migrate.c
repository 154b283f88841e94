/*
 * Also run on a store of schema 2 (tests/meta/v2-sqlite.sql, v2-postgres.sql, made by the release
 * before the lifecycle of docs/lifecycle.md): it is migrated to schema 4 (3: lifecycle, 4:
 * declarations; on PostgreSQL 5: generations per bucket of names) once, keeps every value
 * and state, and the lifecycle works on it. And on a PostgreSQL store of schema 4
 * (tests/meta/v4-postgres.sql, made by the release before issue 11), migrated to 5 the same way.
 *
 * A store written before metadata MACs (schema 1: tests/meta/v1-sqlite.sql, v1-postgres.sql,
 * made by the previous release) gets its MACs when a handle with the master key first opens it:
 * values and states are kept, edits outside coffer are caught from then on, and stripping the
 * MACs afterwards, to make the store look as if it had none yet, is caught as well.
 *
 *   test_migrate FIXTURE.sql   on SQLite (a temporary folder), or on the PostgreSQL database
 *                              COFFER_TEST_STORE names (tests/pg/run_with_db.sh makes it fresh)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sys/stat.h>

#include "../sqltool.h"
#include "../testutil.h"

static char tmpdir[4096], location[4200];
static const char *fixture;

static coffer_store *open_store(void)
{
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[512];
	int rc = coffer_open(&st, location, &o, err, sizeof err);
	if (rc != COFFER_OK)
		fail_msg("coffer_open: %s", err);
	return st;
}

static const char *tab(const char *base)
{
	static char buf[8][64];
	static int i;
	i = (i + 1) % 8;
	snprintf(buf[i], sizeof buf[i], "%s%s", sqltool_is_pg(location) ? "coffer_" : "", base);
	return buf[i];
}

static void sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sql(const char *fmt, ...)
{
	char q[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q, sizeof q, fmt, ap);
	va_end(ap);
	int rc = sqltool_run(location, q, NULL);
	if (rc != 0)
		fail_msg("SQL failed (%d): %s", rc, q);
}

/* The rc of reading name@version through h (a fresh handle when h is NULL); the value must be
 * `want` when it is read. */
static int read_rc(coffer_store *h, const char *name, const char *version, const char *want)
{
	coffer_store *st = h != NULL ? h : open_store();
	coffer_secret *s = NULL;
	coffer_value *v = NULL;
	assert_int_equal(coffer_secret_ref(st, name, COFFER_ACCESS, &s), COFFER_OK);
	int rc = coffer_access(s, version, &v);
	if (rc == COFFER_OK && want != NULL)
		assert_string_equal((const char *)coffer_value_data(v, NULL), want);
	if (rc == COFFER_EINTEGRITY)
		assert_non_null(strstr(coffer_errmsg(st), "MAC"));
	coffer_value_free(v);
	coffer_secret_free(s);
	if (h == NULL)
		coffer_close(st);
	return rc;
}

typedef struct states {
	char list[128];
	size_t n;
} states;

static int collect(void *ctx, const coffer_version_info *vi)
{
	states *st = ctx;
	st->n += (size_t)snprintf(st->list + st->n, sizeof st->list - st->n, "%s%s ", vi->version,
	                          vi->state == COFFER_STATE_ENABLED ? "+" : "-");
	return 0;
}

static void *opener(void *arg)
{
	coffer_store **out = arg;
	*out = open_store();
	return NULL;
}

/* Several handles open the old store at once (as a server's workers do): one adds the MACs, the
 * others take its metadata key; every one of them reads the same. */
static void test_migrate_and_check(void **state)
{
	pthread_t th[4];
	coffer_store *st[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, opener, &st[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(read_rc(st[i], "a", "latest", "alpha-4"), COFFER_OK);
		assert_int_equal(read_rc(st[i], "b", "latest", "beta-1"), COFFER_OK);
	}
	assert_int_equal(read_rc(NULL, "a", "1", "alpha-1"), COFFER_OK);
	assert_int_equal(read_rc(NULL, "a", "3", "alpha-3"), COFFER_OK);
	/* Destroyed before the upgrade: still not found, not an integrity error. */
	assert_int_equal(read_rc(NULL, "a", "2", NULL), COFFER_ENOTFOUND);
	assert_int_equal(read_rc(NULL, "a", "5", NULL), COFFER_ENOTFOUND);
	assert_int_equal(read_rc(NULL, "a", "6", NULL), COFFER_ENOTFOUND);
	assert_int_equal(read_rc(NULL, "c", "latest", NULL), COFFER_ENOTFOUND);
	coffer_secret *a = NULL;
	assert_int_equal(coffer_secret_ref(st[0], "a", COFFER_PUT | COFFER_ACCESS, &a), COFFER_OK);
	states sv = {{0}, 0};
	assert_int_equal(coffer_list_versions(a, collect, &sv), COFFER_OK);
	assert_string_equal(sv.list, "1+ 2- 3+ 4+ 5- ");
	/* Written through coffer after the upgrade: a put and a destroy. */
	char ver[COFFER_VERSION_MAX];
	assert_int_equal(coffer_put(a, "alpha-6", 7, ver), COFFER_OK);
	assert_string_equal(ver, "6");
	assert_int_equal(read_rc(st[1], "a", "latest", "alpha-6"), COFFER_OK);
	assert_int_equal(coffer_destroy(a, "latest", ver), COFFER_OK);
	assert_string_equal(ver, "6");
	assert_int_equal(read_rc(st[2], "a", "latest", "alpha-4"), COFFER_OK);
	coffer_secret_free(a);
	for (int i = 0; i < 4; i++)
		coffer_close(st[i]);

	/* Edits outside coffer are caught now. */
	sql("UPDATE %s SET state = 1 WHERE version = 4 AND secret_id = (SELECT id FROM %s WHERE "
	    "name = 'a')",
	    tab("versions"), tab("secrets"));
	assert_int_equal(read_rc(NULL, "a", "latest", NULL), COFFER_EINTEGRITY);
	assert_int_equal(read_rc(NULL, "a", "4", NULL), COFFER_EINTEGRITY);
	sql("UPDATE %s SET state = 0 WHERE version = 4 AND secret_id = (SELECT id FROM %s WHERE "
	    "name = 'a')",
	    tab("versions"), tab("secrets"));
	assert_int_equal(read_rc(NULL, "a", "latest", "alpha-4"), COFFER_OK);
	/* A coffer from before MACs that still had the store open could not add a version
	 * without one (its insert names no mac column). */
	const char *blob = sqltool_is_pg(location) ? "'\\x01'::bytea" : "x'01'";
	char q[512];
	snprintf(
	    q, sizeof q,
	    "INSERT INTO %s (secret_id, version, key_id, state, created_ms, sealed) SELECT id, "
	    "7, 1, 0, 0, %s FROM %s WHERE name = 'a'",
	    tab("versions"), blob, tab("secrets"));
	assert_int_not_equal(sqltool_run(location, q, NULL), 0);
	/* (The same insert with a MAC column goes in: it was refused for the MAC alone.) */
	sql("INSERT INTO %s (secret_id, version, key_id, state, created_ms, sealed, mac) SELECT "
	    "id, "
	    "7, 1, 0, 0, %s, %s FROM %s WHERE name = 'a'; DELETE FROM %s WHERE version = 7",
	    tab("versions"), blob, blob, tab("secrets"), tab("versions"));
}

/* The schema is at the newest version (SQLite 4, PostgreSQL 5: coffer_gen) once opened,
 * whatever it was: the store's own SQL tool fails the statement otherwise. */
static void test_schema_is_current(void **state)
{
	if (sqltool_is_pg(location))
		sql("DO $$ BEGIN IF (SELECT schema_version FROM coffer_meta) <> 5 OR (SELECT "
		    "count(*) FROM coffer_gen) <> 1024 THEN RAISE EXCEPTION 'schema not 5'; END "
		    "IF; "
		    "END $$");
	else
		sql("SELECT CASE WHEN (SELECT user_version FROM pragma_user_version) = 4 THEN 1 "
		    "ELSE abs(-9223372036854775807 - 1) END");
	/* Opening again migrates nothing (the version says so) and reads the same. */
	assert_int_equal(read_rc(NULL, "a", "latest", "alpha-4"), COFFER_OK);
	assert_int_equal(read_rc(NULL, "b", "1", "beta-1"), COFFER_OK);
}

/* What schema 3 adds works on an upgraded store: a disabled version, check-and-set, a request
 * id, retention. */
static void test_lifecycle_after_upgrade(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *b = NULL;
	char ver[COFFER_VERSION_MAX];
	int replayed = -1;
	assert_int_equal(coffer_secret_ref(st, "b", COFFER_PUT | COFFER_ACCESS, &b), COFFER_OK);
	coffer_put_opts o = {.flags = COFFER_PUT_IF_VERSION, .if_version = 1};
	o.request_id = "req-1";
	o.request_id_len = 5;
	assert_int_equal(coffer_put_ex(b, "beta-2", 6, &o, ver, &replayed), COFFER_OK);
	assert_string_equal(ver, "2");
	assert_int_equal(replayed, 0);
	assert_int_equal(coffer_put_ex(b, "beta-2", 6, &o, ver, &replayed), COFFER_OK);
	assert_string_equal(ver, "2");
	assert_int_equal(replayed, 1);
	assert_int_equal(coffer_disable(b, "2", NULL), COFFER_OK);
	assert_int_equal(read_rc(st, "b", "latest", "beta-1"), COFFER_OK);
	assert_int_equal(read_rc(st, "b", "2", NULL), COFFER_EDISABLED);
	assert_int_equal(coffer_set_max_versions(b, 1), COFFER_OK);
	assert_int_equal(coffer_put(b, "beta-3", 6, ver), COFFER_OK);
	/* 1 is "previous" (latest before this put: 2 was disabled), so kept; 2 goes. */
	assert_int_equal(read_rc(st, "b", "2", NULL), COFFER_ENOTFOUND);
	assert_int_equal(read_rc(st, "b", "previous", "beta-1"), COFFER_OK);
	assert_int_equal(read_rc(st, "b", "latest", "beta-3"), COFFER_OK);
	coffer_secret_free(b);
	coffer_close(st);
}

/* Stripping every MAC and the metadata key, so that the store looks as if it had not been
 * upgraded yet and the next opener would MAC whatever it finds (here: latest moved back), is
 * refused: the data keys were re-sealed in a form that says the store has a metadata key. */
static void test_strip_macs(void **state)
{
	const char *none = sqltool_is_pg(location) ? "''" : "NULL";
	sql("UPDATE %s SET meta_key = NULL; UPDATE %s SET mac = NULL, latest = 0; UPDATE %s SET "
	    "mac = %s; UPDATE %s SET state = 1 WHERE version = 4 AND secret_id = (SELECT id FROM "
	    "%s "
	    "WHERE name = 'a')",
	    tab("header"), tab("secrets"), tab("versions"), none, tab("versions"), tab("secrets"));
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = (coffer_store *)1;
	char err[512];
	assert_int_equal(coffer_open(&st, location, &o, err, sizeof err), COFFER_EINTEGRITY);
	assert_ptr_equal(st, (coffer_store *)1);
	assert_non_null(strstr(err, "metadata key is missing"));
}

/* Schema 3 (issue 13 item 8): the migrated store keeps declarations; actions add up. */
typedef struct decls {
	char list[512];
	size_t n;
} decls;

static int collect_decl(void *ctx, const coffer_declaration *d)
{
	decls *c = ctx;
	c->n += (size_t)snprintf(c->list + c->n, sizeof c->list - c->n, "%s/%s/%u ", d->service,
	                         d->secret, d->actions);
	return 0;
}

static void test_declarations(void **state)
{
	coffer_store *st = open_store();
	coffer_declaration d[3] = {{"default", "a", 0, 0},
	                           {"default", "a", COFFER_DECL_ACCESS, 0},
	                           {"billing", "zz-new", COFFER_DECL_PUT, 0}};
	assert_int_equal(coffer_declare(st, d, 3), COFFER_OK);
	coffer_declaration more = {"default", "a", COFFER_DECL_PUT, 0};
	assert_int_equal(coffer_declare(st, &more, 1), COFFER_OK);
	coffer_declaration bad[2] = {{"default", "b", COFFER_DECL_PUT, 0},
	                             {"no spaces", "b", COFFER_DECL_PUT, 0}};
	assert_int_equal(coffer_declare(st, bad, 2), COFFER_EINVAL);
	coffer_declaration bad_name = {"default", "../x", COFFER_DECL_PUT, 0};
	assert_int_equal(coffer_declare(st, &bad_name, 1), COFFER_EINVAL);
	coffer_close(st);
	st = open_store(); /* another handle reads what was kept */
	decls c = {{0}, 0};
	assert_int_equal(coffer_list_declarations(st, collect_decl, &c), COFFER_OK);
	assert_string_equal(c.list, "billing/zz-new/1 default/a/3 ");
	coffer_close(st);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_migrate FIXTURE.sql\n");
		return 2;
	}
	fixture = argv[1];
	const char *loc = getenv("COFFER_TEST_STORE");
	if (loc != NULL && loc[0] != '\0') {
		snprintf(location, sizeof location, "%s", loc);
	} else {
		test_tmpdir(tmpdir, sizeof tmpdir);
		snprintf(location, sizeof location, "%s/store", tmpdir);
		if (mkdir(location, 0700) != 0)
			return 1;
	}
	if (sqltool_run(location, NULL, fixture) != 0) {
		fprintf(stderr, "cannot load %s\n", fixture);
		return 1;
	}
	printf("# migrate: %s loaded into %s\n", fixture,
	       sqltool_is_pg(location) ? "postgres" : location);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_migrate_and_check),
	    cmocka_unit_test(test_schema_is_current),
	    cmocka_unit_test(test_lifecycle_after_upgrade),
	    cmocka_unit_test(
	        test_declarations), /* before test_strip_macs, which breaks the store */
	    cmocka_unit_test(test_strip_macs),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	if (tmpdir[0] != '\0')
		test_rmrf(tmpdir);
	return failed;
}
