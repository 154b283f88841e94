/*
 * test_admin.c -- the admin service without sockets (src/server/admin.c): who may call it, what
 * each method answers on a real store, and requests that are refused (malformed bytes, a NUL in
 * a name, bad names and versions).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "admin.h"
#include "coffer/admin/v1/admin.pb-c.h"
#include "testutil.h"

static char dir[256];
static coffer_store *st;
static pol_table *pol;

static int setup(void **state)
{
	char err[256], policy[320];
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	test_tmpdir(dir, sizeof(dir));
	char path[300];
	snprintf(path, sizeof(path), "%s/store", dir);
	assert_int_equal(coffer_open(&st, path, &o, err, sizeof(err)), COFFER_OK);
	const char *names[] = {"k1", "k2", "k3"};
	for (int i = 0; i < 3; i++) {
		coffer_secret *s;
		assert_int_equal(coffer_secret_ref(st, names[i], COFFER_PUT, &s), COFFER_OK);
		assert_int_equal(coffer_put(s, "v", 1, NULL), COFFER_OK);
		if (i == 0)
			assert_int_equal(coffer_put(s, "w", 1, NULL), COFFER_OK);
		coffer_secret_free(s);
	}
	snprintf(policy, sizeof(policy), "%s/policy", dir);
	FILE *f = fopen(policy, "w");
	assert_non_null(f);
	fputs("allow ops admin\nallow app put,access *\n", f);
	fclose(f);
	pol = pol_new(0);
	assert_int_equal(pol_load_file(pol, policy, err, sizeof(err)), 0);
	return 0;
}

static int teardown(void **state)
{
	pol_free(pol);
	coffer_close(st);
	test_rmrf(dir);
	return 0;
}

static void call(const char *who, gs_method m, const void *body, size_t len, admin_answer *a)
{
	admin_call(st, pol, who, m, body, len, a);
}

static void test_who_may_call(void **state)
{
	admin_answer a;
	call("app", GS_M_ADMIN_LIST, "", 0, &a);
	assert_int_equal(a.status, GS_PERMISSION_DENIED);
	assert_non_null(strstr(a.message, "allow PRINCIPAL admin"));
	admin_answer_free(&a);
	call("default", GS_M_ADMIN_DESTROY, "", 0, &a);
	assert_int_equal(a.status, GS_PERMISSION_DENIED);
	admin_answer_free(&a);
	call("ops", GS_M_ADMIN_LIST, "", 0, &a);
	assert_int_equal(a.status, GS_OK);
	admin_answer_free(&a);

	/* Development: the service 'default' only. */
	pol_table *dev = pol_new(1);
	admin_call(st, dev, "default", GS_M_ADMIN_LIST, (const uint8_t *)"", 0, &a);
	assert_int_equal(a.status, GS_OK);
	admin_answer_free(&a);
	admin_call(st, dev, "billing", GS_M_ADMIN_LIST, (const uint8_t *)"", 0, &a);
	assert_int_equal(a.status, GS_PERMISSION_DENIED);
	assert_non_null(strstr(a.message, "development"));
	admin_answer_free(&a);
	pol_free(dev);
}

static void test_list_pages(void **state)
{
	admin_answer a;
	const uint8_t page1[] = {0x10, 2};                    /* limit 2 */
	const uint8_t page2[] = {0x0a, 2, 'k', '2', 0x10, 2}; /* after k2, limit 2 */
	call("ops", GS_M_ADMIN_LIST, page1, sizeof(page1), &a);
	assert_int_equal(a.status, GS_OK);
	Coffer__Admin__V1__ListResponse *r =
	    coffer__admin__v1__list_response__unpack(NULL, a.len, a.body);
	assert_non_null(r);
	assert_int_equal(r->n_secrets, 2);
	assert_string_equal(r->secrets[0]->name, "k1");
	assert_int_equal(r->secrets[0]->enabled_versions, 2);
	assert_string_equal(r->secrets[1]->name, "k2");
	assert_true(r->more);
	coffer__admin__v1__list_response__free_unpacked(r, NULL);
	admin_answer_free(&a);

	call("ops", GS_M_ADMIN_LIST, page2, sizeof(page2), &a);
	assert_int_equal(a.status, GS_OK);
	r = coffer__admin__v1__list_response__unpack(NULL, a.len, a.body);
	assert_non_null(r);
	assert_int_equal(r->n_secrets, 1);
	assert_string_equal(r->secrets[0]->name, "k3");
	assert_false(r->more);
	coffer__admin__v1__list_response__free_unpacked(r, NULL);
	admin_answer_free(&a);
}

static void test_versions_and_destroy(void **state)
{
	admin_answer a;
	const uint8_t versions[] = {0x0a, 2, 'k', '1'};
	const uint8_t destroy[] = {0x0a, 2, 'k', '1', 0x12, 6, 'L', 'a', 't', 'e', 's', 't'};
	call("ops", GS_M_ADMIN_DESTROY, destroy, sizeof(destroy), &a);
	assert_int_equal(a.status, GS_OK);
	assert_string_equal(a.version, "2"); /* for the log: the real id */
	Coffer__Admin__V1__DestroyResponse *d =
	    coffer__admin__v1__destroy_response__unpack(NULL, a.len, a.body);
	assert_non_null(d);
	assert_string_equal(d->secret, "k1");
	assert_string_equal(d->version, "2");
	coffer__admin__v1__destroy_response__free_unpacked(d, NULL);
	admin_answer_free(&a);

	call("ops", GS_M_ADMIN_VERSIONS, versions, sizeof(versions), &a);
	assert_int_equal(a.status, GS_OK);
	Coffer__Admin__V1__VersionsResponse *v =
	    coffer__admin__v1__versions_response__unpack(NULL, a.len, a.body);
	assert_non_null(v);
	assert_int_equal(v->n_versions, 2);
	assert_string_equal(v->versions[0]->version, "1");
	assert_int_equal(v->versions[0]->state,
	                 COFFER__ADMIN__V1__VERSION_STATE__VERSION_STATE_ENABLED);
	assert_int_equal(v->versions[0]->size, 1);
	assert_string_equal(v->versions[1]->version, "2");
	assert_int_equal(v->versions[1]->state,
	                 COFFER__ADMIN__V1__VERSION_STATE__VERSION_STATE_DESTROYED);
	coffer__admin__v1__versions_response__free_unpacked(v, NULL);
	admin_answer_free(&a);

	/* Errors of the core come back as its codes (service.c maps them like Nitric's). */
	const uint8_t nosuch[] = {0x0a, 2, 'z', 'z'};
	call("ops", GS_M_ADMIN_VERSIONS, nosuch, sizeof(nosuch), &a);
	assert_int_equal(a.rc, COFFER_ENOTFOUND);
	admin_answer_free(&a);
	const uint8_t again[] = {0x0a, 2, 'k', '1', 0x12, 1, '2'};
	call("ops", GS_M_ADMIN_DESTROY, again, sizeof(again), &a);
	assert_int_equal(a.rc, COFFER_ENOTFOUND);
	admin_answer_free(&a);
}

static void test_refused_requests(void **state)
{
	admin_answer a;
	struct {
		gs_method m;
		const char *body;
		size_t len;
	} bad[] = {
	    {GS_M_ADMIN_VERSIONS,
	     "\x0a\x03k\0"
	     "1",
	     5}, /* "k\01": a NUL would cut it to "k" */
	    {GS_M_ADMIN_DESTROY,
	     "\x0a\x02k1\x12\x02"
	     "1\0",
	     8},                                      /* NUL in the version */
	    {GS_M_ADMIN_VERSIONS, "\xff\xff\xff", 3}, /* not protobuf */
	    {GS_M_ADMIN_VERSIONS, "\x0a\x09", 2},     /* length past the end */
	    {GS_M_ADMIN_VERSIONS, "", 0},             /* no name */
	    {GS_M_ADMIN_VERSIONS, "\x0a\x03../", 5},  /* bad name */
	    {GS_M_ADMIN_DESTROY, "\x0a\x02k1", 4},    /* no version */
	    {GS_M_ADMIN_DESTROY,
	     "\x0a\x02k1\x12\x02"
	     "1x",
	     8}, /* bad version */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		call("ops", bad[i].m, bad[i].body, bad[i].len, &a);
		if (a.status != GS_INVALID_ARGUMENT &&
		    !(a.rc == COFFER_EINVAL && a.status == GS_INVALID_ARGUMENT))
			fail_msg("request %zu: status %d rc %d (%s)", i, a.status, a.rc, a.message);
		assert_null(a.body);
		admin_answer_free(&a);
	}
	/* Nothing was destroyed by any of them. */
	coffer_secret *s;
	coffer_value *v;
	assert_int_equal(coffer_secret_ref(st, "k2", COFFER_ACCESS, &s), COFFER_OK);
	assert_int_equal(coffer_access(s, "1", &v), COFFER_OK);
	coffer_value_free(v);
	coffer_secret_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_who_may_call),
	    cmocka_unit_test(test_list_pages),
	    cmocka_unit_test(test_versions_and_destroy),
	    cmocka_unit_test(test_refused_requests),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
