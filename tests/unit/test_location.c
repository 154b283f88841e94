/* coffer_location_display(): store locations are printable without their passwords. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "coffer.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_masks_passwords),
	                                   cmocka_unit_test(test_bounded)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
