/*
 * Passphrase-derived master keys: Argon2id at MODERATE limits or more for a new store, a
 * passphrase under 12 characters refused when a store is created with it, one derivation per
 * process while handles made from it are open (a server opens several), none kept after.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/internal.h"
#include "testutil.h"

#define GOOD_PASS "correct horse battery"

static coffer_store *open_pass(const char *dir, const char *pass, int want_rc)
{
	coffer_options o = {.passphrase = pass, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[512];
	int rc = coffer_open(&st, dir, &o, err, sizeof err);
	if (rc != want_rc)
		fail_msg("open with passphrase: rc %d (%s), wanted %d", rc, err, want_rc);
	return st;
}

static void test_short_passphrase_refused_for_a_new_store(void **state)
{
	(void)state;
	char dir[256], err[512];
	test_tmpdir(dir, sizeof dir);
	coffer_options o = {.passphrase = "a", .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	assert_int_equal(coffer_open(&st, dir, &o, err, sizeof err), COFFER_EINVAL);
	assert_null(st);
	assert_non_null(strstr(err, "at least 12 characters"));
	/* 11 characters of 2-byte UTF-8 (22 bytes) are still 11 characters */
	o.passphrase = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	               "\xc3\xa9\xc3\xa9";
	assert_int_equal(coffer_open(&st, dir, &o, err, sizeof err), COFFER_EINVAL);
	/* 12 characters are enough */
	st = open_pass(dir, "twelve chars", COFFER_OK);
	coffer_close(st);
	test_rmrf(dir);
}

static void test_new_store_uses_moderate_limits(void **state)
{
	(void)state;
	char dir[256];
	test_tmpdir(dir, sizeof dir);
	coffer_store *st = open_pass(dir, GOOD_PASS, COFFER_OK);
	store_boot hdr;
	int created = 0;
	assert_int_equal(st->ops->bootstrap(st->be, NULL, &hdr, &created), COFFER_OK);
	assert_true(hdr.kdf_opslimit >= crypto_pwhash_OPSLIMIT_MODERATE);
	assert_true(hdr.kdf_memlimit >= crypto_pwhash_MEMLIMIT_MODERATE);
	coffer_close(st);
	test_rmrf(dir);
}

static void test_derived_once_per_process_while_open(void **state)
{
	(void)state;
	char dir[256];
	test_tmpdir(dir, sizeof dir);
	unsigned long before = core_kdf_derivations;
	coffer_store *a = open_pass(dir, GOOD_PASS, COFFER_OK);
	coffer_store *b = open_pass(dir, GOOD_PASS, COFFER_OK);
	coffer_store *c = open_pass(dir, GOOD_PASS, COFFER_OK);
	assert_int_equal(core_kdf_derivations - before, 1);
	/* a wrong passphrase is derived (and refused), never served from the cache */
	assert_null(open_pass(dir, "a wrong passphrase", COFFER_EKEY));
	assert_int_equal(core_kdf_derivations - before, 2);
	coffer_close(a);
	coffer_close(b);
	coffer_close(c);
	/* all closed: nothing kept, the next open derives again */
	coffer_close(open_pass(dir, GOOD_PASS, COFFER_OK));
	assert_int_equal(core_kdf_derivations - before, 3);
	test_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_short_passphrase_refused_for_a_new_store),
	    cmocka_unit_test(test_new_store_uses_moderate_limits),
	    cmocka_unit_test(test_derived_once_per_process_while_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
