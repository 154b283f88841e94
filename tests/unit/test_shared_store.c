/*
 * One SQLite store shared by several handles in one process and by several processes at once,
 * as DESIGN.md promises (a server's workers, an embedder with two handles, the CLI beside a
 * server). The defect this guards against: opening a second handle made coffer close() a
 * descriptor of coffer.db, which drops every POSIX lock the process holds on it (SQLite's
 * shared lock included); the next process to close then believed it was the last connection,
 * checkpointed and unlinked the WAL under the first handle, whose later commits went to a
 * deleted file and were lost.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "testutil.h"

static coffer_options opts = {.master_key_b64 = TEST_MASTER_KEY};

static coffer_store *open_ok(const char *dir)
{
	coffer_store *st = NULL;
	char err[256];
	int rc = coffer_open(&st, dir, &opts, err, sizeof err);
	if (rc != COFFER_OK)
		fail_msg("coffer_open(%s): %s", dir, err);
	return st;
}

static void put_ok(coffer_store *st, const char *name, const char *val, char *ver)
{
	coffer_secret *s = NULL;
	assert_int_equal(coffer_secret_ref(st, name, COFFER_PUT | COFFER_ACCESS, &s), COFFER_OK);
	int rc = coffer_put(s, val, strlen(val), ver);
	if (rc != COFFER_OK)
		fail_msg("put %s: %s", name, coffer_errmsg(st));
	coffer_secret_free(s);
}

/* The child mode of this program: exit 0 if NAME@VER in DIR holds WANT, 1 if not, 3 if the store
 * does not open. A fresh exec, not a fork: a forked child would inherit SQLite's in-process lock
 * bookkeeping and never behave like the separate process this test needs. */
static int child_main(const char *dir, const char *name, const char *ver, const char *want)
{
	coffer_store *st = NULL;
	char err[256];
	if (coffer_open(&st, dir, &opts, err, sizeof err) != COFFER_OK)
		return 3;
	coffer_secret *s = NULL;
	coffer_value *v = NULL;
	int ok = coffer_secret_ref(st, name, COFFER_ACCESS, &s) == COFFER_OK &&
	         coffer_access(s, ver, &v) == COFFER_OK;
	size_t n = 0;
	const void *d = ok ? coffer_value_data(v, &n) : NULL;
	ok = ok && n == strlen(want) && memcmp(d, want, n) == 0;
	coffer_value_free(v);
	coffer_secret_free(s);
	coffer_close(st);
	return ok ? 0 : 1;
}

static const char *self_exe;

/* Whether another process, opening the store afresh, reads WANT as NAME@VER (exit code 0);
 * the comparison happens in the child, so no value crosses a pipe. */
static int child_sees(const char *dir, const char *name, const char *ver, const char *want)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(self_exe, self_exe, "--child", dir, name, ver, want, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int wal_exists(const char *dir)
{
	char path[4200];
	struct stat sb;
	snprintf(path, sizeof path, "%s/coffer.db-wal", dir);
	return stat(path, &sb) == 0;
}

/* A second handle opened and closed beside a first one must leave the first one's WAL in
 * place: another process that opens and closes is not the last connection. */
static void test_second_handle_keeps_first_handles_locks(void **state)
{
	(void)state;
	char dir[256];
	test_tmpdir(dir, sizeof dir);
	char ver[COFFER_VERSION_MAX];
	coffer_store *a = open_ok(dir);
	put_ok(a, "x", "first-value", ver);
	assert_string_equal(ver, "1");
	coffer_close(open_ok(dir)); /* a second handle in this process, opened and closed */
	assert_int_equal(child_sees(dir, "x", "1", "first-value"), 0);
	assert_true(wal_exists(dir)); /* handle a still holds the store open */
	put_ok(a, "x", "second-value", ver);
	assert_string_equal(ver, "2");
	/* Another process must see the put handle a acknowledged. */
	assert_int_equal(child_sees(dir, "x", "latest", "second-value"), 0);
	coffer_close(a);
	test_rmrf(dir);
}

/* Two live handles in one process and puts from a child between them: ids stay gapless and
 * every process sees every acknowledged put, also after the parent dies without closing. */
static void test_two_handles_and_a_child_lose_nothing(void **state)
{
	(void)state;
	char dir[256];
	test_tmpdir(dir, sizeof dir);
	char ver[COFFER_VERSION_MAX];
	pid_t holder = fork();
	assert_true(holder >= 0);
	if (holder == 0) {
		coffer_store *a = open_ok(dir), *b = open_ok(dir);
		put_ok(a, "y", "from-a", ver);
		put_ok(b, "y", "from-b", ver);
		coffer_close(open_ok(dir)); /* a third, short-lived handle */
		if (child_sees(dir, "y", "1", "from-a") != 0)
			_exit(4);
		put_ok(a, "y", "from-a-again", ver);
		raise(SIGKILL); /* dies holding both handles: nothing may depend on a clean close */
	}
	int status = 0;
	assert_int_equal(waitpid(holder, &status, 0), holder);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(child_sees(dir, "y", "1", "from-a"), 0);
	assert_int_equal(child_sees(dir, "y", "2", "from-b"), 0);
	assert_int_equal(child_sees(dir, "y", "3", "from-a-again"), 0);
	assert_int_equal(child_sees(dir, "y", "latest", "from-a-again"), 0);
	test_rmrf(dir);
}

/* A store reached through a symlinked parent folder (the /var/lib style) opens and is the same
 * store as through the real path; a symbolic link AS the database or WAL is refused, saying so,
 * and nothing is left behind. */
static void test_symlinked_parent_works_linked_files_refused(void **state)
{
	(void)state;
	char top[256], real[300], link[300], store[320], err[512];
	test_tmpdir(top, sizeof top);
	snprintf(real, sizeof real, "%s/real", top);
	snprintf(link, sizeof link, "%s/link", top);
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, link), 0);
	snprintf(store, sizeof store, "%s/store", link);
	char ver[COFFER_VERSION_MAX];
	coffer_store *a = open_ok(store);
	put_ok(a, "z", "through-the-link", ver);
	coffer_close(a);
	snprintf(store, sizeof store, "%s/store", real);
	assert_int_equal(child_sees(store, "z", "1", "through-the-link"), 0);

	/* coffer.db as a symbolic link to a file elsewhere */
	char other[320], db[340];
	snprintf(other, sizeof other, "%s/other", top);
	assert_int_equal(mkdir(other, 0700), 0);
	snprintf(db, sizeof db, "%s/coffer.db", other);
	assert_int_equal(symlink("/tmp/somewhere-else.db", db), 0);
	coffer_store *b = NULL;
	assert_int_equal(coffer_open(&b, other, &opts, err, sizeof err), COFFER_EINVAL);
	assert_null(b);
	assert_non_null(strstr(err, "symbolic link"));
	struct stat sb;
	assert_int_equal(stat("/tmp/somewhere-else.db", &sb), -1); /* nothing created there */

	/* a WAL that is a symbolic link */
	snprintf(store, sizeof store, "%s/store/coffer.db-wal", real);
	assert_int_equal(symlink("/tmp/somewhere-else.db", store), 0);
	snprintf(store, sizeof store, "%s/store", link);
	assert_int_equal(coffer_open(&b, store, &opts, err, sizeof err), COFFER_EINVAL);
	assert_non_null(strstr(err, "symbolic link"));
	test_rmrf(top);
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "--child") == 0)
		return child_main(argv[2], argv[3], argv[4], argv[5]);
	self_exe = "/proc/self/exe";
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_second_handle_keeps_first_handles_locks),
	    cmocka_unit_test(test_two_handles_and_a_child_lose_nothing),
	    cmocka_unit_test(test_symlinked_parent_works_linked_files_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
