/*
 * test_audit_mixed.c -- issue 9, acceptance 3, in one audit log: a `coffer serve --audit` and
 * the CLI on the store itself side by side on one SQLite store.
 *
 * At once: two libcoffer_client connections to the server over loopback (principal `app`:
 * puts, accesses, reads of a missing version, reads and an admin call it is not granted;
 * principal `ops`: puts with request ids, accesses, disable, reads of the disabled version,
 * enable, labels, describe, delete and restore), and two threads of CLI processes, each
 * alternating `coffer --store` (puts, accesses, disable, a read refused as disabled, enable,
 * puts with a request id) and `coffer --server` against the same server (puts, accesses, puts
 * with a request id, a label set and deleted, and versions with the token of `app`, refused). N
 * requests in all: 1,000; COFFER_SOAK=1: 10,000.
 *
 * Then `coffer audit verify` passes; the log holds one entry per server request, and the CLI's
 * own; no value, token or request id (all canaries of tests/canary.h) is in the store's files or
 * in `coffer audit --json` in clear, in any of the forms canary_hits() looks for. Then, with
 * sqlite3 (tests/sqltool.h), one entry is deleted, one edited, and two swapped: each time
 * `coffer audit verify` exits 5 and names the broken entry; put back, it passes again.
 *
 * usage: test_audit_mixed PATH-TO-coffer
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "canary.h"
#include "coffer.h"
#include "coffer_client.h"
#include "sqltool.h"
#include "testutil.h"

static const char *coffer_bin;
static char tmp[256], store[300], addr[64], policy[320], tokens[320];
static pid_t server = -1;
static canary_set canaries;
static size_t n_total; /* requests in all */

/*
 * The canaries and what each is used as: [0] ops's token, [1] app's, [2..99] request ids,
 * [100..999] values. A request id is always sent with the same value (a retry is replayed).
 */
#define TOK_OPS     0
#define TOK_APP     1
#define RID_FIRST   2
#define RID_N       98
#define VAL_FIRST   100
#define VAL_N       (CANARIES - VAL_FIRST)
#define CLI_THREADS 2

static char canary_str[CANARIES][CANARY_LEN + 1];

static const char *value_of(size_t i)
{
	return canary_str[VAL_FIRST + i % VAL_N];
}
static const char *rid_of(size_t i)
{
	return canary_str[RID_FIRST + i % RID_N];
}
/* The value sent with request id i: always the same one. */
static const char *rid_value(size_t i)
{
	return value_of(i % RID_N);
}

/* --- failures seen by the threads (cmocka asserts only on the main thread) ----------------- */

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static int failures;

static void failf(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&fail_mu);
	if (failures++ < 20) {
		va_start(ap, fmt);
		fprintf(stderr, "FAIL: ");
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
	pthread_mutex_unlock(&fail_mu);
}

/* --- the server ------------------------------------------------------------------------------ */

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* Every secret the traffic uses has version 1 before it starts. */
static void seed_store(void)
{
	coffer_store *st;
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	char err[256];
	assert_int_equal(coffer_open(&st, store, &o, err, sizeof(err)), COFFER_OK);
	const char *names[] = {"k", "r", "d", "l0", "l1", "rc0", "rc1"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		coffer_secret *s = NULL;
		assert_int_equal(coffer_secret_ref(st, names[i], COFFER_PUT, &s), COFFER_OK);
		assert_int_equal(coffer_put(s, value_of(i), CANARY_LEN, NULL), COFFER_OK);
		coffer_secret_free(s);
	}
	coffer_close(st);
}

static void start_server(void)
{
	int out[2];
	assert_int_equal(pipe(out), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		setenv("COFFER_MASTER_KEY", TEST_MASTER_KEY, 1);
		execl(coffer_bin, coffer_bin, "serve", "--store", store, "--listen", "127.0.0.1:0",
		      "--policy", policy, "--tokens", tokens, "--threads", "2", "--audit",
		      "--quiet", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	FILE *f = fdopen(out[0], "r");
	char line[512];
	int ready = 0, port = 0;
	while (!ready && fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "listening on 127.0.0.1:");
		if (p != NULL && port == 0)
			port = atoi(p + strlen("listening on 127.0.0.1:"));
		ready = strncmp(line, "coffer: store ", 14) == 0;
	}
	fclose(f);
	assert_true(ready && port > 0);
	server = pid;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
}

static void stop_server(void)
{
	int status;
	if (server <= 0)
		return;
	kill(server, SIGTERM);
	waitpid(server, &status, 0);
	server = -1;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * Run the CLI: `coffer ARGS...` with stdout and stderr to the files given (NULL: /dev/null).
 * token: NULL for a local command (the master key in its environment), else the bearer token
 * for --server. Returns its exit code (-1: did not run).
 */
static int cli(const char *token, const char *out, const char *err, const char *const *args)
{
	const char *argv[24];
	size_t n = 0;
	argv[n++] = coffer_bin;
	while (*args != NULL && n < 23)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int o = open(out != NULL ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err != NULL ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (o < 0 || e < 0)
			_exit(127);
		dup2(o, 1);
		dup2(e, 2);
		unsetenv("COFFER_STORE");
		unsetenv("COFFER_SERVER");
		unsetenv("COFFER_TOKEN_FILE");
		unsetenv("COFFER_FORMAT");
		if (token != NULL) {
			unsetenv("COFFER_MASTER_KEY");
			setenv("COFFER_TOKEN", token, 1);
		} else {
			setenv("COFFER_MASTER_KEY", TEST_MASTER_KEY, 1);
			unsetenv("COFFER_TOKEN");
		}
		execv(coffer_bin, (char *const *)argv);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* --- the traffic ------------------------------------------------------------------------------ */

typedef struct share {
	int id;
	size_t n;            /* requests to make */
	size_t server_reqs;  /* of them, how many went to the server (one audit entry each) */
	size_t app_reqs;     /* of those, made as app */
	size_t local_writes; /* CLI on the store: puts, disable, enable (each leaves an entry) */
} share;

static void expect(int got, int want, const char *who, size_t i, const char *what)
{
	if (got != want)
		failf("%s request %zu (%s): got %d (%s), expected %d", who, i, what, got,
		      coffer_strerror(got), want);
}

static coffer_client *connect_as(int tok)
{
	coffer_client *c = NULL;
	coffer_client_options o = {.token = canary_str[tok]};
	char err[256];
	if (coffer_client_connect(&c, addr, &o, err, sizeof(err)) != COFFER_OK) {
		failf("connect: %s", err);
		return NULL;
	}
	return c;
}

static int versions_cb(void *ctx, const coffer_version_info *info)
{
	(void)ctx;
	(void)info;
	return 0;
}

/* Principal app, granted put and access on k only. */
static void *app_main(void *arg)
{
	share *sh = arg;
	coffer_client *c = connect_as(TOK_APP);
	for (size_t i = 0; c != NULL && i < sh->n; i++) {
		coffer_client_value *v = NULL;
		char ver[COFFER_VERSION_MAX];
		switch (i % 8) {
		case 0:
		case 7:
			expect(coffer_client_put(c, "k", value_of(i), CANARY_LEN, ver), COFFER_OK,
			       "app", i, "put k");
			break;
		case 3: /* a version that does not exist */
			expect(coffer_client_access(c, "k", "999999", &v), COFFER_ENOTFOUND, "app",
			       i, "access k@999999");
			break;
		case 4: /* a secret it is not granted */
			expect(coffer_client_access(c, "r", "latest", &v), COFFER_EPERM, "app", i,
			       "access r");
			break;
		case 5: /* an admin call, not granted */
			expect(coffer_client_versions(c, "k", versions_cb, NULL), COFFER_EPERM,
			       "app", i, "versions k");
			break;
		default:
			expect(coffer_client_access(c, "k", "latest", &v), COFFER_OK, "app", i,
			       "access k");
			break;
		}
		coffer_client_value_free(v);
		sh->server_reqs++;
		sh->app_reqs++;
	}
	coffer_client_close(c);
	return NULL;
}

/* Principal ops, granted put, access and admin on everything: the lifecycle through the server. */
static void *ops_main(void *arg)
{
	share *sh = arg;
	coffer_client *c = connect_as(TOK_OPS);
	int deleted = 0;
	for (size_t i = 0; c != NULL && i < sh->n; i++) {
		coffer_client_value *v = NULL;
		char ver[COFFER_VERSION_MAX];
		coffer_secret_info info;
		switch (i % 8) {
		case 0: {
			coffer_put_opts o = {.request_id = rid_of(i / 8),
			                     .request_id_len = CANARY_LEN};
			expect(coffer_client_put_ex(c, "r", rid_value(i / 8), CANARY_LEN, &o, ver,
			                            NULL),
			       COFFER_OK, "ops", i, "put r with a request id");
			break;
		}
		case 1:
			expect(coffer_client_access(c, "r", "latest", &v), COFFER_OK, "ops", i,
			       "access r");
			break;
		case 2:
			expect(coffer_client_disable(c, "r", "1", ver), COFFER_OK, "ops", i,
			       "disable r@1");
			break;
		case 3: /* refused by its state */
			expect(coffer_client_access(c, "r", "1", &v), COFFER_EDISABLED, "ops", i,
			       "access r@1 (disabled)");
			break;
		case 4:
			expect(coffer_client_enable(c, "r", "1", ver), COFFER_OK, "ops", i,
			       "enable r@1");
			break;
		case 5:
			expect(coffer_client_label_set(c, "r", "stable", "1", ver), COFFER_OK,
			       "ops", i, "label r stable 1");
			break;
		case 6:
			expect(coffer_client_describe(c, "r", &info, NULL, NULL), COFFER_OK, "ops",
			       i, "describe r");
			break;
		default:
			if (!deleted)
				expect(coffer_client_delete(c, "d", 7, 0, NULL), COFFER_OK, "ops",
				       i, "delete d");
			else
				expect(coffer_client_restore(c, "d"), COFFER_OK, "ops", i,
				       "restore d");
			deleted = !deleted;
			break;
		}
		coffer_client_value_free(v);
		sh->server_reqs++;
	}
	coffer_client_close(c);
	return NULL;
}

/*
 * CLI processes: even steps on the store itself (secret lT), odd ones through the server as ops
 * (secret rcT), or app where refused. Each process is one request (the commands that send
 * two, such as versions and describe, are left to the ops thread's client or refused first).
 */
static void *cli_main(void *arg)
{
	share *sh = arg;
	char l[8], rc[8];
	snprintf(l, sizeof(l), "l%d", sh->id);
	snprintf(rc, sizeof(rc), "rc%d", sh->id);
	char l1[16], rc1[16];
	snprintf(l1, sizeof(l1), "%s@1", l);
	snprintf(rc1, sizeof(rc1), "%s@1", rc);
	for (size_t i = 0; i < sh->n; i++) {
		size_t k = i / 2;
		const char *val = value_of(i), *rid = rid_of(k + 50), *rval = rid_value(k + 50);
		if (i % 2 == 0) {
			const char *s = "--store";
			sh->local_writes += k % 6 != 1 && k % 6 != 3;
			switch (k % 6) {
			case 0:
				expect(cli(NULL, NULL, NULL,
				           (const char *[]){s, store, "put", l, val, NULL}),
				       0, "cli", i, "put");
				break;
			case 1:
				expect(cli(NULL, NULL, NULL,
				           (const char *[]){s, store, "access", l, NULL}),
				       0, "cli", i, "access");
				break;
			case 2:
				expect(cli(NULL, NULL, NULL,
				           (const char *[]){s, store, "disable", l1, NULL}),
				       0, "cli", i, "disable");
				break;
			case 3: /* refused: disabled (exit 8) */
				expect(cli(NULL, NULL, NULL,
				           (const char *[]){s, store, "access", l1, NULL}),
				       8, "cli", i, "access of a disabled version");
				break;
			case 4:
				expect(cli(NULL, NULL, NULL,
				           (const char *[]){s, store, "enable", l1, NULL}),
				       0, "cli", i, "enable");
				break;
			default:
				expect(cli(NULL, NULL, NULL,
				           (const char *[]){s, store, "put", l, rval,
				                            "--request-id", rid, NULL}),
				       0, "cli", i, "put --request-id");
				break;
			}
		} else {
			const char *s = "--server", *ops = canary_str[TOK_OPS];
			switch (k % 6) {
			case 0:
				expect(cli(ops, NULL, NULL,
				           (const char *[]){s, addr, "put", rc, val, NULL}),
				       0, "cli remote", i, "put");
				break;
			case 1:
				expect(cli(ops, NULL, NULL,
				           (const char *[]){s, addr, "access", rc, NULL}),
				       0, "cli remote", i, "access");
				break;
			case 2:
				expect(cli(ops, NULL, NULL,
				           (const char *[]){s, addr, "put", rc, rval,
				                            "--request-id", rid, NULL}),
				       0, "cli remote", i, "put --request-id");
				break;
			case 3:
				expect(cli(ops, NULL, NULL,
				           (const char *[]){s, addr, "label", rc, "stable", "1",
				                            NULL}),
				       0, "cli remote", i, "label");
				break;
			case 4:
				expect(cli(ops, NULL, NULL,
				           (const char *[]){s, addr, "label", rc, "stable",
				                            "--delete", NULL}),
				       0, "cli remote", i, "label --delete");
				break;
			default: /* refused: app may not use the admin service (exit 4) */
				sh->app_reqs++;
				expect(cli(canary_str[TOK_APP], NULL, NULL,
				           (const char *[]){s, addr, "versions", rc, NULL}),
				       4, "cli remote", i, "versions as app");
				break;
			}
			sh->server_reqs++;
		}
	}
	return NULL;
}

/* --- the log, read back with libcoffer ---------------------------------------------------------
 */

typedef struct tally {
	uint64_t entries, server, cli_local, app, ops;
	/* Picked for the tampering: a CLI entry and the one after it, an app entry, a CLI entry
	 * and the server entry right after it. */
	uint64_t ids[5];
	uint64_t last_id;
	int prev_cli;
} tally;

static int is_server_action(const char *a)
{
	return a[0] >= 'A' && a[0] <= 'Z'; /* a method name; the library's own are lowercase */
}

static int tally_cb(void *ctx, const coffer_audit_entry *e)
{
	tally *t = ctx;
	t->entries++;
	int server_entry = is_server_action(e->action);
	int cli_entry = strncmp(e->principal, "cli:", 4) == 0;
	t->server += server_entry;
	t->cli_local += cli_entry;
	t->app += server_entry && strcmp(e->principal, "app") == 0;
	t->ops += server_entry && strcmp(e->principal, "ops") == 0;
	/* Past the first third: a CLI entry (deleted), an `app` server entry (edited), and a
	 * server entry right after a CLI entry (swapped with it): the three kinds of writers. */
	if (t->entries > n_total / 3) {
		if (t->ids[0] == 0 && cli_entry)
			t->ids[0] = e->id;
		else if (t->ids[0] != 0 && t->ids[4] == 0)
			t->ids[4] = e->id;
		else if (t->ids[4] != 0 && t->ids[1] == 0 && server_entry &&
		         strcmp(e->principal, "app") == 0)
			t->ids[1] = e->id;
		else if (t->ids[1] != 0 && t->ids[2] == 0 && server_entry && t->prev_cli) {
			t->ids[2] = t->last_id;
			t->ids[3] = e->id;
		}
	}
	t->prev_cli = cli_entry;
	t->last_id = e->id;
	return 0;
}

static void read_log(tally *t)
{
	coffer_store *st;
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	char err[256];
	memset(t, 0, sizeof(*t));
	assert_int_equal(coffer_open(&st, store, &o, err, sizeof(err)), COFFER_OK);
	assert_int_equal(coffer_audit_list(st, 0, NULL, tally_cb, t), COFFER_OK);
	coffer_close(st);
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	size_t got;
	while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	fclose(f);
	*n = len;
	return buf;
}

/* `coffer --store STORE audit verify`: its exit code; its stderr into why. */
static int verify(char *why, size_t len)
{
	char err[400];
	snprintf(err, sizeof(err), "%s/verify.err", tmp);
	int rc = cli(NULL, NULL, err, (const char *[]){"--store", store, "audit", "verify", NULL});
	size_t n;
	char *text = slurp(err, &n);
	snprintf(why, len, "%.*s", (int)n, text);
	free(text);
	return rc;
}

static void expect_named(const char *what, uint64_t id)
{
	char why[1024], want[64];
	int rc = verify(why, sizeof(why));
	snprintf(want, sizeof(want), "entry %llu ", (unsigned long long)id);
	printf("# %s: exit %d, %s", what, rc, why);
	assert_int_equal(rc, 5);
	if (strstr(why, want) == NULL)
		fail_msg("%s: verify does not name entry %llu: %s", what, (unsigned long long)id,
		         why);
}

/* --- the test ------------------------------------------------------------------------------------
 */

static void test_mixed(void **state)
{
	(void)state;
	const char *soak = getenv("COFFER_SOAK");
	n_total = soak != NULL && strcmp(soak, "1") == 0 ? 10000 : 1000;
	start_server();

	/* A tenth of the requests are CLI processes (each costs a process start). */
	share cli_sh[CLI_THREADS], app_sh = {0}, ops_sh = {0};
	size_t cli_n = n_total / 10, rest = n_total - cli_n;
	for (int i = 0; i < CLI_THREADS; i++)
		cli_sh[i] =
		    (share){.id = i, .n = cli_n / CLI_THREADS + (i == 0 ? cli_n % CLI_THREADS : 0)};
	app_sh.n = rest / 2;
	ops_sh.n = rest - app_sh.n;
	pthread_t th[CLI_THREADS + 2];
	assert_int_equal(pthread_create(&th[0], NULL, app_main, &app_sh), 0);
	assert_int_equal(pthread_create(&th[1], NULL, ops_main, &ops_sh), 0);
	for (int i = 0; i < CLI_THREADS; i++)
		assert_int_equal(pthread_create(&th[2 + i], NULL, cli_main, &cli_sh[i]), 0);
	for (int i = 0; i < CLI_THREADS + 2; i++)
		pthread_join(th[i], NULL);
	stop_server();
	assert_int_equal(failures, 0);

	size_t made = app_sh.n + ops_sh.n, server_reqs = app_sh.server_reqs + ops_sh.server_reqs;
	size_t app_reqs = app_sh.app_reqs, local_writes = 0;
	for (int i = 0; i < CLI_THREADS; i++) {
		made += cli_sh[i].n;
		server_reqs += cli_sh[i].server_reqs;
		app_reqs += cli_sh[i].app_reqs;
		local_writes += cli_sh[i].local_writes;
	}
	assert_int_equal(made, n_total);
	printf("# %zu requests: %zu to the server (%zu by CLI processes), %zu CLI on the store\n",
	       made, server_reqs, cli_sh[0].server_reqs + cli_sh[1].server_reqs,
	       made - server_reqs);

	/* The log verifies, and holds what was done. */
	char why[1024];
	int rc = verify(why, sizeof(why));
	if (rc != 0)
		fail_msg("audit verify after the traffic: exit %d: %s", rc, why);
	tally t;
	read_log(&t);
	printf("# %llu entries: %llu of server requests (%llu app, %llu ops), %llu by the CLI on "
	       "the store\n",
	       (unsigned long long)t.entries, (unsigned long long)t.server,
	       (unsigned long long)t.app, (unsigned long long)t.ops,
	       (unsigned long long)t.cli_local);
	/* Every server request, answered or refused, has its entry before its answer. */
	assert_int_equal(t.server, server_reqs);
	assert_int_equal(t.app, app_reqs);
	/* Each CLI put, disable and enable on the store wrote its entry. */
	assert_true(t.cli_local >= local_writes);

	/* Canary scan: every file of the store, and the log as `coffer audit --json` shows it. */
	DIR *d = opendir(store);
	assert_non_null(d);
	struct dirent *de;
	int files = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[600];
		snprintf(path, sizeof(path), "%s/%s", store, de->d_name);
		size_t n;
		char *buf = slurp(path, &n);
		int hits = canary_scan(buf, n, canaries);
		if (hits != 0)
			fail_msg("%d canary forms (values, tokens or request ids) in %s", hits,
			         path);
		free(buf);
		files++;
	}
	closedir(d);
	assert_true(files >= 2); /* coffer.db and its WAL at least */
	char out[400];
	snprintf(out, sizeof(out), "%s/audit.json", tmp);
	assert_int_equal(
	    cli(NULL, out, NULL, (const char *[]){"--store", store, "audit", "--json", NULL}), 0);
	size_t n;
	char *json = slurp(out, &n);
	assert_true(n > 1000);
	assert_int_equal(canary_scan(json, n, canaries), 0);
	assert_non_null(strstr(json, "cli:")); /* the CLI's entries and the server's, one log */
	assert_non_null(strstr(json, "\"app\""));
	free(json);

	/* Tampering with sqlite3, each undone after: the entry named is the broken one. */
	assert_true(t.ids[0] != 0 && t.ids[1] != 0 && t.ids[2] != 0 && t.ids[3] != 0 &&
	            t.ids[4] != 0);
	printf("# tampering: delete %llu (CLI), edit %llu (app), swap %llu and %llu\n",
	       (unsigned long long)t.ids[0], (unsigned long long)t.ids[1],
	       (unsigned long long)t.ids[2], (unsigned long long)t.ids[3]);
	assert_int_equal(sqltool_run(store, "CREATE TABLE keep AS SELECT * FROM audit", NULL), 0);
	const char *restore = "DELETE FROM audit; INSERT INTO audit SELECT * FROM keep";
	char sql[1024];

	snprintf(sql, sizeof(sql), "DELETE FROM audit WHERE id = %llu",
	         (unsigned long long)t.ids[0]);
	assert_int_equal(sqltool_run(store, sql, NULL), 0);
	expect_named("an entry deleted (the next one is named: the gap)", t.ids[4]);
	assert_int_equal(sqltool_run(store, restore, NULL), 0);
	assert_int_equal(verify(why, sizeof(why)), 0);

	snprintf(sql, sizeof(sql), "UPDATE audit SET secret = 'edited' WHERE id = %llu",
	         (unsigned long long)t.ids[1]);
	assert_int_equal(sqltool_run(store, sql, NULL), 0);
	expect_named("an entry edited", t.ids[1]);
	assert_int_equal(sqltool_run(store, restore, NULL), 0);
	assert_int_equal(verify(why, sizeof(why)), 0);

	const char *cols = "chain, seq, ts_ms, principal, action, secret, version, outcome, error, "
	                   "rid, mac";
	unsigned long long a = t.ids[2], b = t.ids[3];
	snprintf(sql, sizeof(sql),
	         "DELETE FROM audit WHERE id IN (%llu, %llu); "
	         "INSERT INTO audit (id, %s) SELECT %llu, %s FROM keep WHERE id = %llu; "
	         "INSERT INTO audit (id, %s) SELECT %llu, %s FROM keep WHERE id = %llu",
	         a, b, cols, a, cols, b, cols, b, cols, a);
	assert_int_equal(sqltool_run(store, sql, NULL), 0);
	expect_named("two entries swapped (a CLI entry and a server one)", a);
	assert_int_equal(sqltool_run(store, restore, NULL), 0);
	assert_int_equal(verify(why, sizeof(why)), 0);
}

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	canary_make(canaries, (uint32_t)time(NULL));
	for (int i = 0; i < CANARIES; i++) {
		memcpy(canary_str[i], canaries[i], CANARY_LEN);
		canary_str[i][CANARY_LEN] = '\0';
	}
	test_tmpdir(tmp, sizeof(tmp));
	snprintf(store, sizeof(store), "%s/store", tmp);
	snprintf(policy, sizeof(policy), "%s/policy", tmp);
	snprintf(tokens, sizeof(tokens), "%s/tokens", tmp);
	seed_store();
	write_file(policy, "allow ops put,access,admin *\nallow app put,access k\n", 0600);
	char tok[128];
	snprintf(tok, sizeof(tok), "ops %s\napp %s\n", canary_str[TOK_OPS], canary_str[TOK_APP]);
	write_file(tokens, tok, 0600);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	if (getenv("COFFER_KEEP_TMP") == NULL)
		test_rmrf(tmp);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_audit_mixed PATH-TO-coffer\n");
		return 2;
	}
	coffer_bin = argv[1];
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mixed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
