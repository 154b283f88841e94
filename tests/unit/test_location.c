/* coffer_location_display(): store locations are printable without their passwords.
 * coffer_default_key_file(), coffer_key_file(), coffer_rekey_in_place(): what the store knows
 * about its key file, so that the CLI need not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>

#include "coffer.h"
#include "testutil.h"

static void shows(const char *loc, const char *want)
{
	char buf[128];
	assert_string_equal(coffer_location_display(loc, buf, sizeof buf), want);
}

static void test_masks_passwords(void **state)
{
	shows("postgresql://coffer:s3cret@db.example:5432/app",
	      "postgresql://coffer:***@db.example:5432/app");
	shows("postgres://u@h/db?password=xyz&sslmode=require",
	      "postgres://u@h/db?password=***&sslmode=require");
	shows("postgres://h/db?sslmode=disable&password=abc",
	      "postgres://h/db?sslmode=disable&password=***");
	shows("postgres://a:b@c/d?password=e", "postgres://a:***@c/d?password=***");
	shows("postgres://user@host/db", "postgres://user@host/db");
	shows("postgresql://db/c?user=u&password=s3cret&sslmode=require",
	      "postgresql://db/c?user=u&password=***&sslmode=require");
	shows("./.coffer", "./.coffer");
	shows("/srv/my:dir@x", "/srv/my:dir@x"); /* a folder, not a URL: nothing to hide */
	shows(NULL, "./.coffer");
	/* libpq's other secret parameter, and keys spelled with percent-escapes (libpq decodes
	 * them), are masked too; an '@' in the query is not the userinfo's. */
	shows("postgres://h/db?sslpassword=keypass&sslmode=verify-full",
	      "postgres://h/db?sslpassword=***&sslmode=verify-full");
	shows("postgres://h/db?pass%77ord=xyz", "postgres://h/db?pass%77ord=***");
	shows("postgres://h/db?ssl%70assword=xyz&a=b", "postgres://h/db?ssl%70assword=***&a=b");
	shows("postgres://u:p%40ss@h/db?application_name=a@b",
	      "postgres://u:***@h/db?application_name=a@b");
	shows("postgres://h/db?password", "postgres://h/db?password");
	shows("postgres://h/db?user=password", "postgres://h/db?user=password");
}

static void test_bounded(void **state)
{
	char small[12];
	const char *out =
	    coffer_location_display("postgresql://coffer:s3cret@host/db", small, sizeof small);
	assert_int_equal(strlen(out), sizeof small - 1);
	assert_null(strstr(out, "s3c"));
	char tiny[1];
	assert_string_equal(coffer_location_display("x", tiny, 1), "");
	assert_string_equal(coffer_location_display("x", NULL, 0), "(location)");
	/* Truncation never cuts the mask so that part of the password shows. */
	char b[24];
	coffer_location_display("postgres://u:topsecretpassword@h/d", b, sizeof b);
	assert_null(strstr(b, "top"));
}

static void test_default_key_file(void **state)
{
	char buf[64];
	assert_int_equal(coffer_default_key_file("/srv/store", buf, sizeof buf), COFFER_OK);
	assert_string_equal(buf, "/srv/store/master.key");
	assert_int_equal(coffer_default_key_file("sqlite:rel/dir", buf, sizeof buf), COFFER_OK);
	assert_string_equal(buf, "rel/dir/master.key");
	assert_int_equal(coffer_default_key_file("sqlite:///abs", buf, sizeof buf), COFFER_OK);
	assert_string_equal(buf, "/abs/master.key");
	assert_int_equal(coffer_default_key_file(NULL, buf, sizeof buf), COFFER_OK);
	assert_string_equal(buf, "./.coffer/master.key");
	assert_int_equal(coffer_default_key_file("ftp://x/y", buf, sizeof buf), COFFER_EINVAL);
	char small[8];
	assert_int_equal(coffer_default_key_file("/srv/store", small, sizeof small), COFFER_EINVAL);
	assert_int_equal(coffer_default_key_file("/srv/store", NULL, 0), COFFER_EMISUSE);
#ifdef COFFER_WITH_POSTGRES
	assert_int_equal(coffer_default_key_file("postgres://u@h/db", buf, sizeof buf),
	                 COFFER_ENOTFOUND);
#endif
}

static char *slurp(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_rekey_in_place(void **state)
{
	char dir[256], store[300], kf[320], next[330], err[512], old[256];
	test_tmpdir(dir, sizeof dir);
	snprintf(store, sizeof store, "%s/s", dir);
	snprintf(kf, sizeof kf, "%s/master.key", store);
	snprintf(next, sizeof next, "%s.new", kf);
	coffer_store *st = NULL, *st2 = NULL;
	coffer_secret *sec = NULL;
	assert_int_equal(coffer_open(&st, store, NULL, err, sizeof err), COFFER_OK);
	assert_string_equal(coffer_key_file(st), kf);
	assert_int_equal(coffer_secret_ref(st, "a", COFFER_PUT, &sec), COFFER_OK);
	assert_int_equal(coffer_put(sec, "v", 1, NULL), COFFER_OK);
	coffer_secret_free(sec);
	snprintf(old, sizeof old, "%s", slurp(kf));

	/* FILE.new already there (another rekey's): refused, nothing changed. */
	FILE *f = fopen(next, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(coffer_rekey_in_place(st, err, sizeof err), COFFER_EBUSY);
	assert_non_null(strstr(err, "master.key.new"));
	assert_string_equal(slurp(kf), old);
	unlink(next);

	assert_int_equal(coffer_rekey_in_place(st, err, sizeof err), COFFER_OK);
	assert_string_not_equal(slurp(kf), old);
	assert_int_equal(access(next, F_OK), -1);
	/* The default key file opens it now (a new handle), and the old key does not. */
	assert_int_equal(coffer_open(&st2, store, NULL, err, sizeof err), COFFER_OK);
	coffer_close(st2);
	char oldkf[340];
	snprintf(oldkf, sizeof oldkf, "%s/old.key", dir);
	f = fopen(oldkf, "w");
	assert_non_null(f);
	fputs(old, f);
	fclose(f);
	chmod(oldkf, 0600);
	coffer_options o = {.key_file = oldkf};
	assert_int_equal(coffer_open(&st2, store, &o, err, sizeof err), COFFER_EKEY);
	coffer_close(st);

	/* A key that did not come from a file cannot be replaced in place. */
	coffer_options k = {.master_key_b64 = slurp(kf)};
	assert_int_equal(coffer_open(&st, store, &k, err, sizeof err), COFFER_OK);
	assert_null(coffer_key_file(st));
	assert_int_equal(coffer_rekey_in_place(st, err, sizeof err), COFFER_EINVAL);
	assert_non_null(strstr(err, "--new-key-file"));
	coffer_close(st);
	assert_int_equal(coffer_rekey_in_place(NULL, err, sizeof err), COFFER_EMISUSE);
	test_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_masks_passwords), cmocka_unit_test(test_bounded),
	    cmocka_unit_test(test_default_key_file), cmocka_unit_test(test_rekey_in_place)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
