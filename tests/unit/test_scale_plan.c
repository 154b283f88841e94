/*
 * What one page of coffer_list_page reads must not depend on how many names come before it
 * (issue 11, target 5: "flat or logarithmic where an index serves it"). Counted, never timed:
 * the SQLite virtual machine steps of every statement of the store's connection during the call
 * (SQLITE_STMTSTATUS_VM_STEP), which grow with the rows a statement visits. The connection is
 * found with sqlite3_auto_extension, which SQLite calls for each connection the process opens.
 *
 * The defect this guards against: the page's query bounded the name twice from below (> the
 * token's name, >= the prefix), and SQLite started the index range at the first bound only, so
 * the first page of a prefix (no token) read every name before the prefix: linear in the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "testutil.h"

#define BEFORE 3000 /* names before the prefix "z-" */
#define INSIDE 60   /* names "z-00" .. "z-59" */
#define PAGE   25

static coffer_options opts = {.master_key_b64 = TEST_MASTER_KEY};
static sqlite3 *conns[8];
static int nconns;

static int record_conn(sqlite3 *db, const char **err, const void *api)
{
	(void)err;
	(void)api;
	if (nconns < (int)(sizeof conns / sizeof conns[0]))
		conns[nconns++] = db;
	return SQLITE_OK;
}

static void reset_steps(void)
{
	for (int i = 0; i < nconns; i++)
		for (sqlite3_stmt *q = sqlite3_next_stmt(conns[i], NULL); q != NULL;
		     q = sqlite3_next_stmt(conns[i], q))
			(void)sqlite3_stmt_status(q, SQLITE_STMTSTATUS_VM_STEP, 1);
}

static long steps(void)
{
	long n = 0;
	for (int i = 0; i < nconns; i++)
		for (sqlite3_stmt *q = sqlite3_next_stmt(conns[i], NULL); q != NULL;
		     q = sqlite3_next_stmt(conns[i], q))
			n += sqlite3_stmt_status(q, SQLITE_STMTSTATUS_VM_STEP, 0);
	return n;
}

typedef struct page {
	char names[PAGE][16];
	size_t n;
} page;

static int page_cb(void *ctx, const char *name, size_t nversions)
{
	page *p = ctx;
	assert_int_equal(nversions, 1);
	if (p->n < PAGE)
		snprintf(p->names[p->n], sizeof p->names[0], "%s", name);
	p->n++;
	return 0;
}

/* One page; its steps. */
static long list(coffer_store *st, const char *prefix, size_t size, const char *token, page *p,
                 char next[COFFER_PAGE_TOKEN_MAX])
{
	memset(p, 0, sizeof *p);
	reset_steps();
	int rc = coffer_list_page(st, prefix, size, token, page_cb, p, next);
	long n = steps();
	if (rc != COFFER_OK)
		fail_msg("list_page: %s", coffer_errmsg(st));
	return n;
}

static void fill(coffer_store *st)
{
	static coffer_put_item items[BEFORE + INSIDE];
	static coffer_secret *secs[BEFORE + INSIDE];
	for (int i = 0; i < BEFORE + INSIDE; i++) {
		char name[16];
		if (i < BEFORE)
			snprintf(name, sizeof name, "a-%05d", i);
		else
			snprintf(name, sizeof name, "z-%02d", i - BEFORE);
		assert_int_equal(coffer_secret_ref(st, name, COFFER_PUT, &secs[i]), COFFER_OK);
		items[i] = (coffer_put_item){.secret = secs[i], .value = "v", .len = 1};
	}
	assert_int_equal(coffer_put_batch(st, items, BEFORE + INSIDE), COFFER_OK);
	for (int i = 0; i < BEFORE + INSIDE; i++) {
		assert_int_equal(items[i].rc, COFFER_OK);
		coffer_secret_free(secs[i]);
	}
}

static void test_page_reads_do_not_grow_with_names_before(void **state)
{
	(void)state;
	char dir[256], next[COFFER_PAGE_TOKEN_MAX], mid[COFFER_PAGE_TOKEN_MAX];
	test_tmpdir(dir, sizeof dir);
	assert_int_equal(sqlite3_auto_extension((void (*)(void))record_conn), SQLITE_OK);
	coffer_store *st = NULL;
	char err[256];
	assert_int_equal(coffer_open(&st, dir, &opts, err, sizeof err), COFFER_OK);
	assert_true(nconns > 0);
	fill(st);
	page p;

	/* The baseline: the first page of the whole store, PAGE names from its start. */
	long base = list(st, NULL, PAGE, NULL, &p, next);
	assert_int_equal(p.n, PAGE);
	assert_string_equal(p.names[0], "a-00000");
	assert_true(base > 0);

	/* The first page of a prefix after BEFORE other names. */
	long pre = list(st, "z-", PAGE, NULL, &p, next);
	assert_int_equal(p.n, PAGE);
	assert_string_equal(p.names[0], "z-00");
	assert_string_equal(p.names[PAGE - 1], "z-24");
	print_message("steps: first page %ld, first page of a prefix after %d names %ld\n", base,
	              BEFORE, pre);
	assert_true(pre <= 2 * base);

	/* Its next page, by the token: starts after the token's name. */
	long pre2 = list(st, "z-", PAGE, next, &p, next);
	assert_int_equal(p.n, PAGE);
	assert_string_equal(p.names[0], "z-25");
	assert_true(pre2 <= 2 * base);
	/* And the last, shorter one, with no token after it. */
	list(st, "z-", PAGE, next, &p, next);
	assert_int_equal(p.n, INSIDE - 2 * PAGE);
	assert_string_equal(p.names[0], "z-50");
	assert_string_equal(next, "");

	/* A page from the middle of the store, by a token (no OFFSET: the token's name is the
	 * bound). The token of a one-name page whose prefix is a name in the middle. */
	list(st, "a-01500", 1, NULL, &p, mid);
	assert_int_equal(p.n, 1);
	long middle = list(st, NULL, PAGE, mid, &p, next);
	assert_int_equal(p.n, PAGE);
	assert_string_equal(p.names[0], "a-01501");
	assert_true(middle <= 2 * base);

	/* A token before the prefix (a page of the whole store, then a prefix): the prefix bounds
	 * the start, not the token. */
	long both = list(st, "z-", PAGE, mid, &p, next);
	assert_int_equal(p.n, PAGE);
	assert_string_equal(p.names[0], "z-00");
	print_message("steps: middle page by token %ld, prefix with an earlier token %ld\n", middle,
	              both);
	assert_true(both <= 2 * base);

	coffer_close(st);
	sqlite3_reset_auto_extension();
	nconns = 0;
	test_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_page_reads_do_not_grow_with_names_before),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
