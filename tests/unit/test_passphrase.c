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

static void header_of(coffer_store *st, store_boot *hdr)
{
	int created = 0;
	assert_int_equal(st->ops->bootstrap(st->be, NULL, hdr, &created), COFFER_OK);
}

/* A passphrase change (rekey to a passphrase) gets a fresh salt and today's limits, written in
 * the same transaction as the re-sealed keyring; a short one is refused and changes nothing. */
static void test_passphrase_change_gets_new_salt(void **state)
{
	(void)state;
	char dir[256], err[512];
	test_tmpdir(dir, sizeof dir);
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	assert_int_equal(coffer_open(&st, dir, &o, err, sizeof err), COFFER_OK);
	store_boot before, after;
	header_of(st, &before);
	coffer_options shortp = {.passphrase = "too short"};
	assert_int_equal(coffer_rotate_master_key(st, &shortp, err, sizeof err), COFFER_EINVAL);
	assert_non_null(strstr(err, "at least 12 characters"));
	header_of(st, &after);
	assert_memory_equal(before.kdf_salt, after.kdf_salt, STORE_SALT_LEN);

	coffer_options np = {.passphrase = GOOD_PASS};
	assert_int_equal(coffer_rotate_master_key(st, &np, err, sizeof err), COFFER_OK);
	header_of(st, &after);
	assert_memory_not_equal(before.kdf_salt, after.kdf_salt, STORE_SALT_LEN);
	assert_true(after.kdf_opslimit >= crypto_pwhash_OPSLIMIT_MODERATE);
	assert_true(after.kdf_memlimit >= crypto_pwhash_MEMLIMIT_MODERATE);
	coffer_close(st);
	/* the new passphrase opens it (with the new salt); the old key no longer does */
	coffer_close(open_pass(dir, GOOD_PASS, COFFER_OK));
	assert_int_equal(coffer_open(&st, dir, &o, err, sizeof err), COFFER_EKEY);

	/* and a second change moves the salt again */
	st = open_pass(dir, GOOD_PASS, COFFER_OK);
	header_of(st, &before);
	coffer_options np2 = {.passphrase = "another good passphrase"};
	assert_int_equal(coffer_rotate_master_key(st, &np2, err, sizeof err), COFFER_OK);
	header_of(st, &after);
	assert_memory_not_equal(before.kdf_salt, after.kdf_salt, STORE_SALT_LEN);
	coffer_close(st);
	coffer_close(open_pass(dir, "another good passphrase", COFFER_OK));
	test_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_short_passphrase_refused_for_a_new_store),
	    cmocka_unit_test(test_new_store_uses_moderate_limits),
	    cmocka_unit_test(test_derived_once_per_process_while_open),
	    cmocka_unit_test(test_passphrase_change_gets_new_salt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
