/*
 * Security properties of the embedded store, checked from outside: nothing readable at rest,
 * tampering and moving ciphertexts detected, unsafe key files refused, values wiped on free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "../canary.h"
#include "../testutil.h"
#include "core/internal.h"

static char dir[4096], loc[4200];

static coffer_store *open_with(const char *b64, const char *key_file)
{
	coffer_options o = {
	    .master_key_b64 = b64, .key_file = key_file, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[512];
	int rc = coffer_open(&st, loc, &o, err, sizeof err);
	if (rc != COFFER_OK)
		fail_msg("open: %s", err);
	return st;
}

static int setup(void **state)
{
	test_tmpdir(dir, sizeof dir);
	snprintf(loc, sizeof loc, "%s/store", dir);
	return 0;
}

static int teardown(void **state)
{
	test_rmrf(dir);
	return 0;
}

typedef struct blob {
	unsigned char *p;
	size_t n;
} blob;

static void load_files(const char *d, blob *files, int *nfiles)
{
	DIR *dp = opendir(d);
	struct dirent *e;
	assert_non_null(dp);
	*nfiles = 0;
	while ((e = readdir(dp)) != NULL && *nfiles < 16) {
		char path[4400 + 256];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", d, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		assert_int_equal(st.st_mode & 077, 0); /* every file is private */
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		blob *b = &files[(*nfiles)++];
		b->p = malloc((size_t)st.st_size + 1);
		b->n = fread(b->p, 1, (size_t)st.st_size, f);
		fclose(f);
	}
	closedir(dp);
}

static int scan(const char *d, canary_set canary)
{
	blob files[16];
	int nfiles = 0, hits = 0;
	load_files(d, files, &nfiles);
	assert_true(nfiles >= 2); /* coffer.db and coffer.gen at least */
	for (int i = 0; i < nfiles; i++) {
		hits += canary_scan(files[i].p, files[i].n, canary);
		free(files[i].p);
	}
	return hits;
}

/* 1,000 random canaries; no file of the store folder (db, -wal, -shm, ...) holds any of them
 * raw, as hex or as base64, neither while the store is open (WAL populated) nor after. */
static void test_canary_scan(void **state)
{
	static canary_set canary;
	canary_make(canary, 20261126);
	coffer_store *st = open_with(TEST_MASTER_KEY, NULL);
	assert_int_equal(canary_put_all(st, canary), COFFER_OK);
	char wal[4400];
	struct stat sb;
	snprintf(wal, sizeof wal, "%s/coffer.db-wal", loc);
	assert_int_equal(stat(wal, &sb), 0); /* the WAL is there and scanned while open */
	assert_true(sb.st_size > 0);
	assert_int_equal(scan(loc, canary), 0);
	/* The scanner itself works: a file holding one canary in base64 is found. */
	char probe[4400], b64[64];
	snprintf(probe, sizeof probe, "%s/probe", loc);
	sodium_bin2base64(b64, sizeof b64, canary[500], CANARY_LEN, sodium_base64_VARIANT_ORIGINAL);
	FILE *f = fopen(probe, "w");
	fprintf(f, "xx%syy", b64);
	fclose(f);
	chmod(probe, 0600);
	assert_true(scan(loc, canary) >= 1);
	unlink(probe);
	coffer_close(st);
	assert_int_equal(scan(loc, canary), 0);
}

static void put_value(coffer_store *st, const char *name, const char *val)
{
	coffer_secret *s = NULL;
	assert_int_equal(coffer_secret_ref(st, name, COFFER_PUT, &s), COFFER_OK);
	assert_int_equal(coffer_put(s, val, strlen(val), NULL), COFFER_OK);
	coffer_secret_free(s);
}

/* Access through a fresh handle (no cache): the rc of reading name@version. */
static int access_rc(const char *name, const char *version, const char *want)
{
	coffer_store *st = open_with(TEST_MASTER_KEY, NULL);
	coffer_secret *s = NULL;
	coffer_value *v = NULL;
	assert_int_equal(coffer_secret_ref(st, name, COFFER_ACCESS, &s), COFFER_OK);
	int rc = coffer_access(s, version, &v);
	if (rc == COFFER_OK && want != NULL)
		assert_memory_equal(coffer_value_data(v, NULL), want, strlen(want));
	if (rc == COFFER_EINTEGRITY)
		assert_non_null(strstr(coffer_errmsg(st), "integrity"));
	coffer_value_free(v);
	coffer_secret_free(s);
	coffer_close(st);
	return rc;
}

static sqlite3 *raw_db(void)
{
	char path[4400];
	sqlite3 *db = NULL;
	snprintf(path, sizeof path, "%s/coffer.db", loc);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

#define ROW_SQL                                                                                    \
	" FROM versions WHERE secret_id = (SELECT id FROM secrets WHERE name = ?1) AND version = " \
	"?2"

static blob get_sealed(sqlite3 *db, const char *name, int version)
{
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT sealed" ROW_SQL, -1, &q, NULL), SQLITE_OK);
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, version);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	blob b = {malloc((size_t)sqlite3_column_bytes(q, 0)), (size_t)sqlite3_column_bytes(q, 0)};
	memcpy(b.p, sqlite3_column_blob(q, 0), b.n);
	sqlite3_finalize(q);
	return b;
}

static void set_sealed(sqlite3 *db, const char *name, int version, const blob *b)
{
	sqlite3_stmt *q;
	assert_int_equal(
	    sqlite3_prepare_v2(db,
	                       "UPDATE versions SET sealed = ?3 WHERE secret_id = (SELECT "
	                       "id FROM secrets WHERE name = ?1) AND version = ?2",
	                       -1, &q, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, version);
	sqlite3_bind_blob(q, 3, b->p, (int)b->n, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(q), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(q);
}

/* Flipping any single byte of a stored ciphertext row, or swapping ciphertexts between
 * secrets or versions, makes access fail with an integrity error, never a wrong value. */
static void test_tamper_and_swap(void **state)
{
	coffer_store *st = open_with(TEST_MASTER_KEY, NULL);
	put_value(st, "alpha", "alpha-one");
	put_value(st, "alpha", "alpha-two");
	put_value(st, "beta", "beta-one!");
	coffer_close(st);
	sqlite3 *db = raw_db();
	const struct {
		const char *name;
		int version;
		const char *value;
	} rows[] = {{"alpha", 1, "alpha-one"}, {"alpha", 2, "alpha-two"}};
	for (size_t r = 0; r < 2; r++) {
		char ver[8];
		snprintf(ver, sizeof ver, "%d", rows[r].version);
		blob b = get_sealed(db, rows[r].name, rows[r].version);
		for (size_t i = 0; i < b.n; i++) {
			b.p[i] ^= 0x01;
			set_sealed(db, rows[r].name, rows[r].version, &b);
			assert_int_equal(access_rc(rows[r].name, ver, NULL), COFFER_EINTEGRITY);
			b.p[i] ^= 0x01;
		}
		set_sealed(db, rows[r].name, rows[r].version, &b);
		assert_int_equal(access_rc(rows[r].name, ver, rows[r].value), COFFER_OK);
		free(b.p);
	}
	/* Swap between versions of one secret, then between secrets. */
	blob a1 = get_sealed(db, "alpha", 1), a2 = get_sealed(db, "alpha", 2),
	     b1 = get_sealed(db, "beta", 1);
	set_sealed(db, "alpha", 1, &a2);
	set_sealed(db, "alpha", 2, &a1);
	assert_int_equal(access_rc("alpha", "1", NULL), COFFER_EINTEGRITY);
	assert_int_equal(access_rc("alpha", "latest", NULL), COFFER_EINTEGRITY);
	set_sealed(db, "alpha", 1, &b1);
	set_sealed(db, "beta", 1, &a1);
	assert_int_equal(access_rc("alpha", "1", NULL), COFFER_EINTEGRITY);
	assert_int_equal(access_rc("beta", "1", NULL), COFFER_EINTEGRITY);
	/* Put everything back: all readable again. */
	set_sealed(db, "alpha", 1, &a1);
	set_sealed(db, "alpha", 2, &a2);
	set_sealed(db, "beta", 1, &b1);
	assert_int_equal(access_rc("alpha", "1", "alpha-one"), COFFER_OK);
	assert_int_equal(access_rc("alpha", "2", "alpha-two"), COFFER_OK);
	assert_int_equal(access_rc("beta", "latest", "beta-one!"), COFFER_OK);
	/* Re-labelling a row's version number is detected too. */
	assert_int_equal(sqlite3_exec(db,
	                              "UPDATE versions SET version = 9 WHERE version = 2 AND "
	                              "secret_id = (SELECT id FROM secrets WHERE name='alpha')",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(access_rc("alpha", "9", NULL), COFFER_EINTEGRITY);
	free(a1.p);
	free(a2.p);
	free(b1.p);
	sqlite3_close(db);
}

/* After destroy, no trace of the version's ciphertext stays in any file of the store folder:
 * secure_delete zeroes it in the database and the checkpoint drops the WAL's old images. */
static void test_destroy_leaves_no_ciphertext(void **state)
{
	coffer_store *st = open_with(TEST_MASTER_KEY, NULL);
	/* 20 KiB: the ciphertext spills into overflow pages, which only secure_delete wipes. */
	static char big[20000];
	memset(big, 'g', sizeof big - 1);
	put_value(st, "gone", big);
	put_value(st, "gone", "the next one");
	put_value(st, "kept", "unrelated");
	sqlite3 *db = raw_db();
	blob b = get_sealed(db, "gone", 1);
	sqlite3_close(db);
	coffer_secret *s = NULL;
	assert_int_equal(coffer_secret_ref(st, "gone", COFFER_PUT, &s), COFFER_OK);
	/* Before: the ciphertext is there to be found (so the scan below can fail). */
	blob files[16];
	int nfiles = 0, before = 0, after = 0;
	load_files(loc, files, &nfiles);
	for (int i = 0; i < nfiles; i++) {
		before += memmem(files[i].p, files[i].n, b.p + 1, 24) != NULL; /* the nonce */
		before += memmem(files[i].p, files[i].n, b.p + b.n / 2, 32) != NULL;
		free(files[i].p);
	}
	assert_true(before >= 2);
	assert_int_equal(coffer_destroy(s, "1", NULL), COFFER_OK);
	coffer_secret_free(s);
	load_files(loc, files, &nfiles);
	for (int i = 0; i < nfiles; i++) {
		after += memmem(files[i].p, files[i].n, b.p + 1, 24) != NULL;
		after += memmem(files[i].p, files[i].n, b.p + b.n - 16, 16) != NULL; /* the tag */
		after += memmem(files[i].p, files[i].n, b.p + b.n / 2, 32) != NULL; /* the middle */
		free(files[i].p);
	}
	assert_int_equal(after, 0);
	assert_int_equal(access_rc("gone", "1", NULL), COFFER_ENOTFOUND);
	assert_int_equal(access_rc("gone", "latest", "the next one"), COFFER_OK);
	assert_int_equal(access_rc("kept", "latest", "unrelated"), COFFER_OK);
	free(b.p);
	coffer_close(st);
}

static void test_default_key_file(void **state)
{
	coffer_store *st = open_with(NULL, NULL);
	assert_int_equal(coffer_created(st), COFFER_CREATED_STORE | COFFER_CREATED_KEY_FILE);
	put_value(st, "k", "v");
	coffer_close(st);
	char key[4400], err[512];
	snprintf(key, sizeof key, "%s/master.key", loc);
	struct stat sb;
	assert_int_equal(stat(loc, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_int_equal(stat(key, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	st = open_with(NULL, NULL);
	assert_int_equal(coffer_created(st), 0);
	coffer_close(st);
	/* A readable key file is refused, with a message that says why. */
	assert_int_equal(chmod(key, 0644), 0);
	coffer_options o = {.flags = COFFER_OPEN_NO_ENV};
	st = NULL;
	assert_int_equal(coffer_open(&st, loc, &o, err, sizeof err), COFFER_EKEY);
	assert_null(st);
	assert_non_null(strstr(err, "mode 0644"));
	assert_int_equal(chmod(key, 0600), 0);
	/* A missing key file for an existing store is an error, never a new key. */
	char moved[4400];
	snprintf(moved, sizeof moved, "%s/moved.key", dir);
	assert_int_equal(rename(key, moved), 0);
	assert_int_equal(coffer_open(&st, loc, &o, err, sizeof err), COFFER_EKEY);
	assert_non_null(strstr(err, "missing"));
	assert_int_equal(stat(key, &sb), -1);
	/* The key given explicitly works; the env-style explicit key of another store does not. */
	st = open_with(NULL, moved);
	coffer_close(st);
	o.master_key_b64 = TEST_MASTER_KEY;
	assert_int_equal(coffer_open(&st, loc, &o, err, sizeof err), COFFER_EKEY);
	assert_non_null(strstr(err, "wrong master key"));
}

static void test_passphrase_store(void **state)
{
	coffer_options o = {.passphrase = "correct horse battery staple",
	                    .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[512];
	assert_int_equal(coffer_open(&st, loc, &o, err, sizeof err), COFFER_OK);
	assert_int_equal(coffer_created(st), COFFER_CREATED_STORE); /* no key file */
	put_value(st, "p", "by-passphrase");
	coffer_close(st);
	assert_int_equal(coffer_open(&st, loc, &o, err, sizeof err), COFFER_OK);
	coffer_close(st);
	o.passphrase = "correct horse battery stapler";
	assert_int_equal(coffer_open(&st, loc, &o, err, sizeof err), COFFER_EKEY);
	assert_non_null(strstr(err, "wrong master key"));
}

static int hook_calls, hook_dirty;

static void check_wiped(const void *data, size_t len)
{
	const unsigned char *p = data;
	hook_calls++;
	for (size_t i = 0; i <= len; i++) /* the trailing NUL too */
		hook_dirty |= p[i];
}

/* Plaintext buffers are wiped when freed. */
static void test_value_wiped_on_free(void **state)
{
	coffer_store *st = open_with(TEST_MASTER_KEY, NULL);
	put_value(st, "wipe", "a secret that must not linger");
	coffer_secret *s = NULL;
	coffer_value *v = NULL;
	assert_int_equal(coffer_secret_ref(st, "wipe", COFFER_ACCESS, &s), COFFER_OK);
	assert_int_equal(coffer_access(s, "latest", &v), COFFER_OK);
	assert_string_equal(coffer_value_data(v, NULL), "a secret that must not linger");
	core_value_free_hook = check_wiped;
	coffer_value_free(v);
	core_value_free_hook = NULL;
	assert_int_equal(hook_calls, 1);
	assert_int_equal(hook_dirty, 0);
	coffer_secret_free(s);
	coffer_close(st);
}

static void test_integrity_check(void **state)
{
	coffer_store *st = open_with(TEST_MASTER_KEY, NULL);
	put_value(st, "ic", "x");
	coffer_close(st);
	sqlite3 *db = raw_db();
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
	sqlite3_finalize(q);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA secure_delete", -1, &q, NULL), SQLITE_OK);
	sqlite3_finalize(q);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_canary_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_and_swap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_destroy_leaves_no_ciphertext, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_default_key_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_passphrase_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_value_wiped_on_free, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_integrity_check, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
