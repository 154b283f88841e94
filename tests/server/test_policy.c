/*
 * test_policy.c -- grants (development and policy-file modes) and bearer tokens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "loop.h"
#include "policy.h"
#include "wire.h"

static char *write_tmp(const char *text)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/coffer-policy-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_dev_declares_grant(void **state)
{
	pol_table *t = pol_new(1);
	assert_int_equal(pol_check(t, "svc", "k", WIRE_PERM_PUT), POL_UNKNOWN);
	assert_int_equal(pol_declare(t, "svc", "k", WIRE_PERM_ACCESS), 1);
	assert_int_equal(pol_check(t, "svc", "k", WIRE_PERM_ACCESS), POL_ALLOW);
	assert_int_equal(pol_check(t, "svc", "k", WIRE_PERM_PUT), POL_DENY);
	assert_int_equal(pol_check(t, "other", "k", WIRE_PERM_ACCESS), POL_UNKNOWN);
	assert_int_equal(pol_declare(t, "svc", "k", WIRE_PERM_PUT), 1);
	assert_int_equal(pol_check(t, "svc", "k", WIRE_PERM_PUT), POL_ALLOW);
	pol_free(t);
}

static void test_policy_file_rules(void **state)
{
	char err[256];
	pol_table *t = pol_new(0);
	char *p = write_tmp("# ops\nallow svc access k other\n\nallow admin put,access *\n");
	assert_int_equal(pol_load_file(t, p, err, sizeof(err)), 0);
	unlink(p);
	assert_int_equal(pol_check(t, "svc", "k", WIRE_PERM_ACCESS), POL_ALLOW);
	assert_int_equal(pol_check(t, "svc", "other", WIRE_PERM_ACCESS), POL_ALLOW);
	assert_int_equal(pol_check(t, "svc", "k", WIRE_PERM_PUT), POL_DENY);
	assert_int_equal(pol_check(t, "svc", "nope", WIRE_PERM_ACCESS), POL_DENY);
	assert_int_equal(pol_check(t, "admin", "anything", WIRE_PERM_PUT), POL_ALLOW);
	/* A Declare grants nothing here. */
	assert_int_equal(pol_declare(t, "svc", "k", WIRE_PERM_PUT), 0);
	assert_int_equal(pol_check(t, "svc", "k", WIRE_PERM_PUT), POL_DENY);
	pol_free(t);

	t = pol_new(0);
	p = write_tmp("allow svc delete k\n");
	assert_int_equal(pol_load_file(t, p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":1:"));
	unlink(p);
	p = write_tmp("allow svc put ../etc\n");
	assert_int_equal(pol_load_file(t, p, err, sizeof(err)), -1);
	unlink(p);
	pol_free(t);
}

/* The admin action: store-wide, granted by the policy file; in development only 'default'. */
static void test_admin_grant(void **state)
{
	char err[256];
	pol_table *t = pol_new(0);
	char *p = write_tmp("allow ops admin\nallow svc put,access,admin *\nallow app access k\n");
	assert_int_equal(pol_load_file(t, p, err, sizeof(err)), 0);
	unlink(p);
	assert_true(pol_admin_ok(t, "ops"));
	assert_true(pol_admin_ok(t, "svc"));
	assert_false(pol_admin_ok(t, "app"));
	assert_false(pol_admin_ok(t, "default"));
	/* admin alone grants no data access, and put,access,admin grants both. */
	assert_int_equal(pol_check(t, "ops", "k", WIRE_PERM_ACCESS), POL_DENY);
	assert_int_equal(pol_check(t, "svc", "k", WIRE_PERM_PUT), POL_ALLOW);
	pol_free(t);

	const char *bad[] = {"allow ops admin k\n", "allow ops admin * k\n",
	                     "allow ops put\n",     "allow ops admin,\n",
	                     "allow ops ,admin\n",  "allow ops admin,delete\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = pol_new(0);
		p = write_tmp(bad[i]);
		assert_int_equal(pol_load_file(t, p, err, sizeof(err)), -1);
		assert_non_null(strstr(err, ":1:"));
		unlink(p);
		assert_false(pol_admin_ok(t, "ops"));
		pol_free(t);
	}

	t = pol_new(1);
	assert_true(pol_admin_ok(t, "default"));
	assert_false(pol_admin_ok(t, "svc"));
	pol_free(t);
}

static void test_tokens(void **state)
{
	char err[256], who[POL_PRINCIPAL_MAX];
	pol_table *t = pol_new(1);
	char *p = write_tmp("ci 0123456789abcdef0123\nops ffffffffffffffffffff\n");
	assert_int_equal(pol_load_tokens(t, p, err, sizeof(err)), 2);
	unlink(p);
	assert_int_equal(pol_token_principal(t, "0123456789abcdef0123", 20, who, sizeof(who)), 0);
	assert_string_equal(who, "ci");
	assert_int_equal(pol_token_principal(t, "ffffffffffffffffffff", 20, who, sizeof(who)), 0);
	assert_string_equal(who, "ops");
	assert_int_equal(pol_token_principal(t, "0123456789abcdef012", 19, who, sizeof(who)), -1);
	assert_int_equal(pol_token_principal(t, "", 0, who, sizeof(who)), -1);
	p = write_tmp("ci short\n");
	assert_int_equal(pol_load_tokens(t, p, err, sizeof(err)), -1);
	unlink(p);
	p = write_tmp("ci 0123456789abcdef0123\n");
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(pol_load_tokens(t, p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));
	unlink(p);
	pol_free(t);
}

/*
 * The token file is opened once, without following a symlink, and the open file itself is
 * checked: a regular file, owned by us (or root), with no access for group or others.
 */
static void test_token_file_checks(void **state)
{
	char err[256], link[80], dir[64];
	pol_table *t = pol_new(1);
	char *p = write_tmp("ci 0123456789abcdef0123\n");
	char target[64];
	snprintf(target, sizeof(target), "%s", p);

	/* 0600, ours: accepted. */
	assert_int_equal(pol_load_tokens(t, target, err, sizeof(err)), 1);

	/* A symlink, even to that same good file: refused, and the message says why. */
	snprintf(link, sizeof(link), "%s-link", target);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(pol_load_tokens(t, link, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));
	unlink(link);

	/* Readable by others: refused. */
	assert_int_equal(chmod(target, 0644), 0);
	assert_int_equal(pol_load_tokens(t, target, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));
	assert_int_equal(chmod(target, 0600), 0);

	/* Owned by another user (only root can give a file away): refused. */
	if (geteuid() == 0) {
		assert_int_equal(chown(target, 65534, 65534), 0);
		assert_int_equal(pol_load_tokens(t, target, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "owned by"));
	}
	unlink(target);

	/* Not a regular file: a directory, and a FIFO (which must not block the start). */
	snprintf(dir, sizeof(dir), "/tmp/coffer-policy-dir-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(pol_load_tokens(t, dir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	snprintf(link, sizeof(link), "%s/fifo", dir);
	assert_int_equal(mkfifo(link, 0600), 0);
	assert_int_equal(pol_load_tokens(t, link, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(link);
	rmdir(dir);

	assert_int_equal(pol_token_count(t), 1); /* only the first load counted */
	pol_free(t);
}

static void test_principal_names(void **state)
{
	assert_true(pol_principal_ok("billing-api", 11));
	assert_false(pol_principal_ok("", 0));
	assert_false(pol_principal_ok("a b", 3));
	assert_false(pol_principal_ok("a/b", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dev_declares_grant), cmocka_unit_test(test_policy_file_rules),
	    cmocka_unit_test(test_admin_grant),        cmocka_unit_test(test_tokens),
	    cmocka_unit_test(test_token_file_checks),  cmocka_unit_test(test_principal_names),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
