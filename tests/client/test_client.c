/*
 * test_client.c -- libcoffer_client (include/coffer_client.h) end to end.
 *
 * A real `coffer serve` on loopback (port 0), with its own store folder, a policy file and
 * tokens: put twice, access latest and by id, versions, list (over more than one page), destroy,
 * all through coffer_client; then the server is stopped and the store is read with libcoffer to
 * check that the client saw exactly what is stored. A token without `admin` gets COFFER_EPERM for
 * the admin calls. Then fake servers on loopback: a closed port, HTTP/1.x, garbage bytes, a
 * server that closes mid-response, an oversized response, a truncated one, a non-gRPC answer.
 *
 * usage: test_client PATH-TO-coffer
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "coffer.h"
#include "coffer_client.h"
#include "testutil.h"

#define TOKEN_OPS "ops-token-0123456789abcdef"
#define TOKEN_APP "app-token-0123456789abcdef"
#define N_BULK    1001 /* more than one List page (1000) */

static const char *coffer_bin;
static char tmp[256], store[300], addr[64], sock[320];
static pid_t server = -1, tls_server = -1;

static const char v1[] = "bleak_dearest_hanged_reigns";
static const uint8_t v2[] = {'c', 'r', 'u', 'm', 0, 'm', 'y', 0xff, '\n'}; /* any bytes */

/* --- the server ---------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* Secrets put with the library before the server starts: enough names for two List pages. */
static void seed_store(void)
{
	coffer_store *st;
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	char err[256];
	assert_int_equal(coffer_open(&st, store, &o, err, sizeof(err)), COFFER_OK);
	static coffer_put_item items[N_BULK];
	for (int i = 0; i < N_BULK; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bulk.%04d", i);
		assert_int_equal(coffer_secret_ref(st, name, COFFER_PUT, &items[i].secret),
		                 COFFER_OK);
		items[i].value = "x";
		items[i].len = 1;
	}
	assert_int_equal(coffer_put_batch(st, items, N_BULK), COFFER_OK);
	for (int i = 0; i < N_BULK; i++)
		coffer_secret_free(items[i].secret);
	coffer_close(st);
}

/*
 * Start `coffer serve --store STORE ARGS...` (master key in its environment) and wait until it
 * serves; *port is the first TCP listener's port.
 */
static pid_t launch(const char *st, const char *const *args, int *port)
{
	const char *argv[32];
	size_t n = 0;
	int out[2];
	argv[n++] = coffer_bin;
	argv[n++] = "serve";
	argv[n++] = "--store";
	argv[n++] = st;
	while (*args != NULL && n < 31)
		argv[n++] = *args++;
	argv[n] = NULL;
	assert_int_equal(pipe(out), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		setenv("COFFER_MASTER_KEY", TEST_MASTER_KEY, 1);
		execv(coffer_bin, (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	/* Read the start-up lines until "coffer: store ...", which comes once it serves. */
	FILE *f = fdopen(out[0], "r");
	char line[512];
	int ready = 0;
	*port = 0;
	while (!ready && fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "listening on 127.0.0.1:");
		if (p != NULL && *port == 0)
			*port = atoi(p + strlen("listening on 127.0.0.1:"));
		ready = strncmp(line, "coffer: store ", 14) == 0;
	}
	fclose(f); /* the server writes nothing more to stdout (--quiet) */
	assert_true(ready && *port > 0);
	return pid;
}

static char policy[320], tokens[320];

static void launch_main(void)
{
	int port;
	const char *args[] = {"--listen", "127.0.0.1:0", "--listen",  sock, "--policy", policy,
	                      "--tokens", tokens,        "--threads", "2",  "--quiet",  NULL};
	server = launch(store, args, &port);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
}

static int start_server(void **state)
{
	test_tmpdir(tmp, sizeof(tmp));
	snprintf(store, sizeof(store), "%s/store", tmp);
	snprintf(policy, sizeof(policy), "%s/policy", tmp);
	snprintf(tokens, sizeof(tokens), "%s/tokens", tmp);
	snprintf(sock, sizeof(sock), "unix:%s/coffer.sock", tmp);
	seed_store();
	write_file(policy, "allow ops put,access,admin *\nallow app put,access *\n", 0600);
	write_file(tokens, "ops " TOKEN_OPS "\napp " TOKEN_APP "\n", 0600);
	launch_main();
	return 0;
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

static int teardown(void **state)
{
	if (tls_server > 0) {
		kill(tls_server, SIGTERM);
		waitpid(tls_server, NULL, 0);
	}
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	test_rmrf(tmp);
	return 0;
}

static coffer_client *connect_as(const char *token)
{
	coffer_client *c = NULL;
	coffer_client_options o = {.token = token, .timeout_ms = 20000};
	char err[256] = "";
	int rc = coffer_client_connect(&c, addr, &o, err, sizeof(err));
	if (rc != COFFER_OK)
		fail_msg("connect %s: %s", addr, err);
	return c;
}

/* --- what the client saw, kept to compare with the store ----------------------------------- */

typedef struct seen_versions {
	size_t n;
	char id[8][COFFER_VERSION_MAX];
	coffer_version_info info[8];
} seen_versions;

static int versions_cb(void *ctx, const coffer_version_info *info)
{
	seen_versions *s = ctx;
	if (s->n >= 8)
		return -100;
	snprintf(s->id[s->n], COFFER_VERSION_MAX, "%s", info->version);
	s->info[s->n] = *info;
	s->info[s->n].version = s->id[s->n];
	s->n++;
	return 0;
}

typedef struct seen_list {
	size_t n;
	char (*names)[COFFER_NAME_MAX + 1];
	size_t *counts;
} seen_list;

static int list_cb(void *ctx, const char *name, size_t nversions)
{
	seen_list *l = ctx;
	if (l->n >= N_BULK + 8)
		return -100;
	snprintf(l->names[l->n], COFFER_NAME_MAX + 1, "%s", name);
	l->counts[l->n++] = nversions;
	return 0;
}

static void seen_list_init(seen_list *l)
{
	l->n = 0;
	l->names = calloc(N_BULK + 8, sizeof(*l->names));
	l->counts = calloc(N_BULK + 8, sizeof(*l->counts));
	assert_true(l->names != NULL && l->counts != NULL);
}

static void seen_list_free(seen_list *l)
{
	free(l->names);
	free(l->counts);
}

static seen_versions client_versions;
static seen_list client_list;

/* --- the scenario -------------------------------------------------------------------------- */

static void check_access(coffer_client *c, const char *name, const char *version, const void *val,
                         size_t len, const char *resolved)
{
	coffer_client_value *v = NULL;
	size_t got = 0;
	int rc = coffer_client_access(c, name, version, &v);
	if (rc != COFFER_OK)
		fail_msg("access %s@%s: %d %s", name, version, rc, coffer_client_errmsg(c));
	const void *data = coffer_client_value_data(v, &got);
	assert_int_equal(got, len);
	assert_memory_equal(data, val, len);
	assert_int_equal(((const char *)data)[len], '\0');
	assert_string_equal(coffer_client_value_version(v), resolved);
	coffer_client_value_free(v);
}

static void test_scenario(void **state)
{
	coffer_client *c = connect_as(TOKEN_OPS);
	char ver[COFFER_VERSION_MAX] = "";

	assert_int_equal(coffer_client_put(c, "db.password", v1, strlen(v1), ver), COFFER_OK);
	assert_string_equal(ver, "1");
	assert_int_equal(coffer_client_put(c, "db.password", v2, sizeof(v2), ver), COFFER_OK);
	assert_string_equal(ver, "2");
	assert_int_equal(coffer_client_put(c, "api-key", "k1", 2, NULL), COFFER_OK);

	check_access(c, "db.password", "latest", v2, sizeof(v2), "2");
	check_access(c, "db.password", "LATEST", v2, sizeof(v2), "2");
	check_access(c, "db.password", "1", v1, strlen(v1), "1");

	/* A value as large as the server takes (64 KiB): both directions cross HTTP/2's
	 * flow-control window (64 KiB less one byte) and several frames; one byte more is refused
	 * by the server. */
	static uint8_t big[COFFER_VALUE_DEFAULT_MAX + 1];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 131 + 7);
	assert_int_equal(coffer_client_put(c, "big", big, COFFER_VALUE_DEFAULT_MAX, ver),
	                 COFFER_OK);
	check_access(c, "big", "latest", big, COFFER_VALUE_DEFAULT_MAX, "1");
	assert_int_equal(coffer_client_put(c, "big", big, sizeof(big), ver), COFFER_EINVAL);
	assert_non_null(strstr(coffer_client_errmsg(c), "limit"));

	/* Errors of the server, mapped to the error list, with its message. */
	coffer_client_value *v = NULL;
	assert_int_equal(coffer_client_access(c, "db.password", "7", &v), COFFER_ENOTFOUND);
	assert_null(v);
	assert_non_null(strstr(coffer_client_errmsg(c), "7"));
	assert_int_equal(coffer_client_access(c, "nosuch", "latest", &v), COFFER_ENOTFOUND);
	assert_int_equal(coffer_client_access(c, "db.password", "1x", &v), COFFER_EINVAL);
	/* Refused here, before any round trip. */
	assert_int_equal(coffer_client_put(c, "../etc", "x", 1, NULL), COFFER_EINVAL);
	assert_int_equal(coffer_client_put(c, "ok", "", 0, NULL), COFFER_EINVAL);

	/* Versions before the destroy. */
	seen_versions before = {0};
	assert_int_equal(coffer_client_versions(c, "db.password", versions_cb, &before), COFFER_OK);
	assert_int_equal(before.n, 2);
	assert_string_equal(before.id[0], "1");
	assert_int_equal(before.info[0].size, strlen(v1));
	assert_int_equal(before.info[1].size, sizeof(v2));
	assert_int_equal(before.info[0].state, COFFER_STATE_ENABLED);
	assert_true(before.info[0].created_unix_ms > 1600000000000LL);
	assert_int_equal(coffer_client_versions(c, "nosuch", versions_cb, &before),
	                 COFFER_ENOTFOUND);

	/* Destroy by id; the id comes back, the version is gone, latest is untouched. */
	assert_int_equal(coffer_client_destroy(c, "db.password", "1", ver), COFFER_OK);
	assert_string_equal(ver, "1");
	assert_int_equal(coffer_client_access(c, "db.password", "1", &v), COFFER_ENOTFOUND);
	check_access(c, "db.password", "latest", v2, sizeof(v2), "2");
	assert_int_equal(coffer_client_destroy(c, "db.password", "1", ver), COFFER_ENOTFOUND);
	/* latest resolves to a real id. */
	assert_int_equal(coffer_client_put(c, "api-key", "k2", 2, NULL), COFFER_OK);
	assert_int_equal(coffer_client_destroy(c, "api-key", "latest", ver), COFFER_OK);
	assert_string_equal(ver, "2");
	check_access(c, "api-key", "latest", "k1", 2, "1");

	assert_int_equal(coffer_client_versions(c, "db.password", versions_cb, &client_versions),
	                 COFFER_OK);
	assert_int_equal(client_versions.n, 2);
	assert_int_equal(client_versions.info[0].state, COFFER_STATE_DESTROYED);
	assert_int_equal(client_versions.info[1].state, COFFER_STATE_ENABLED);

	/* List crosses the 1000-name page. */
	seen_list_init(&client_list);
	assert_int_equal(coffer_client_list(c, list_cb, &client_list), COFFER_OK);
	assert_int_equal(client_list.n, N_BULK + 3);
	assert_string_equal(client_list.names[0], "api-key");
	assert_string_equal(client_list.names[1], "big");
	assert_string_equal(client_list.names[2], "bulk.0000");
	assert_string_equal(client_list.names[N_BULK + 1], "bulk.1000");
	assert_string_equal(client_list.names[N_BULK + 2], "db.password");
	assert_int_equal(client_list.counts[N_BULK + 2], 1); /* version 1 destroyed */
	/* A callback's non-zero value stops the listing and comes back as is. */
	seen_list small;
	seen_list_init(&small);
	small.n = N_BULK + 8; /* full: the first call returns -100 */
	assert_int_equal(coffer_client_list(c, list_cb, &small), -100);
	seen_list_free(&small);
	coffer_client_close(c);
}

/* A token without admin: data calls as granted, admin calls refused; bad tokens refused. */
static void test_permissions(void **state)
{
	coffer_client *c = connect_as(TOKEN_APP);
	char ver[COFFER_VERSION_MAX];
	seen_versions sv = {0};
	seen_list sl;
	seen_list_init(&sl);
	assert_int_equal(coffer_client_put(c, "app.key", "a", 1, ver), COFFER_OK);
	assert_int_equal(coffer_client_versions(c, "app.key", versions_cb, &sv), COFFER_EPERM);
	assert_non_null(strstr(coffer_client_errmsg(c), "admin"));
	assert_int_equal(coffer_client_list(c, list_cb, &sl), COFFER_EPERM);
	assert_int_equal(coffer_client_destroy(c, "app.key", "1", ver), COFFER_EPERM);
	assert_int_equal(sv.n, 0);
	assert_int_equal(sl.n, 0);
	coffer_client_close(c);

	/* No token: the loopback caller is the listener's service 'default', not granted admin
	 * (nor data: the policy file rules). */
	c = connect_as(NULL);
	assert_int_equal(coffer_client_list(c, list_cb, &sl), COFFER_EPERM);
	assert_int_equal(coffer_client_put(c, "app.key", "a", 1, ver), COFFER_EPERM);
	coffer_client_close(c);

	c = connect_as("not-a-known-token-at-all");
	assert_int_equal(coffer_client_list(c, list_cb, &sl), COFFER_EPERM);
	assert_non_null(strstr(coffer_client_errmsg(c), "token"));
	coffer_client_close(c);
	seen_list_free(&sl);

	/* The value of app.key is still there: nothing was destroyed. */
	c = connect_as(TOKEN_OPS);
	check_access(c, "app.key", "1", "a", 1, "1");
	coffer_client_close(c);
}

/* The same server over its Unix socket: the token names the caller there too. */
static void test_unix_socket(void **state)
{
	coffer_client *c = NULL;
	coffer_client_options o = {.token = TOKEN_OPS};
	char err[256] = "";
	seen_versions sv = {0};
	if (coffer_client_connect(&c, sock, &o, err, sizeof(err)) != COFFER_OK)
		fail_msg("connect %s: %s", sock, err);
	assert_int_equal(coffer_client_versions(c, "db.password", versions_cb, &sv), COFFER_OK);
	assert_int_equal(sv.n, 2);
	/* The server restarts between two calls (same socket path): the handle notices that its
	 * connection ended and opens a new one for the next call. */
	stop_server();
	launch_main();
	sv.n = 0;
	if (coffer_client_versions(c, "db.password", versions_cb, &sv) != COFFER_OK)
		fail_msg("after a restart: %s", coffer_client_errmsg(c));
	assert_int_equal(sv.n, 2);
	coffer_client_close(c);
	o.tls = 1;
	assert_int_equal(coffer_client_connect(&c, sock, &o, err, sizeof(err)), COFFER_EINVAL);
}

static int sh(const char *cmd)
{
	int rc = system(cmd);
	return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

/*
 * A TLS server (a development one, on its own store: the local caller is 'default', which may
 * use the admin service there). Verified against the right CA it works; another CA, another
 * name, or plaintext against it are clear errors.
 */
static void test_tls(void **state)
{
	char cmd[2048], good[320], key[320], other[320], okey[320], tstore[320], a[64], err[512];
	int port;
	if (sh("openssl version >/dev/null 2>&1") != 0)
		skip();
	snprintf(good, sizeof(good), "%s/good.pem", tmp);
	snprintf(key, sizeof(key), "%s/good.key", tmp);
	snprintf(other, sizeof(other), "%s/other.pem", tmp);
	snprintf(okey, sizeof(okey), "%s/other.key", tmp);
	snprintf(tstore, sizeof(tstore), "%s/tls-store", tmp);
	for (int i = 0; i < 2; i++) {
		snprintf(
		    cmd, sizeof(cmd),
		    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		    "-keyout '%s' -out '%s' -days 1 -subj /CN=localhost -addext "
		    "subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 && chmod 600 '%s'",
		    i == 0 ? key : okey, i == 0 ? good : other, i == 0 ? key : okey);
		assert_int_equal(sh(cmd), 0);
	}
	const char *args[] = {"--listen",  "127.0.0.1:0", "--tls-cert", good,
	                      "--tls-key", key,           "--quiet",    NULL};
	pid_t pid = tls_server = launch(tstore, args, &port);
	snprintf(a, sizeof(a), "127.0.0.1:%d", port);

	coffer_client *c = NULL;
	coffer_client_options o = {.tls = 1, .ca_file = good, .timeout_ms = 20000, .declare = 1};
	int rc = coffer_client_connect(&c, a, &o, err, sizeof(err));
	if (rc != COFFER_OK)
		fail_msg("TLS connect: %s", err);
	char ver[COFFER_VERSION_MAX];
	assert_int_equal(coffer_client_put(c, "tls.secret", "over tls", 8, ver), COFFER_OK);
	check_access(c, "tls.secret", "latest", "over tls", 8, "1");
	seen_list l;
	seen_list_init(&l);
	assert_int_equal(coffer_client_list(c, list_cb, &l), COFFER_OK);
	assert_int_equal(l.n, 1);
	seen_list_free(&l);
	coffer_client_close(c);
	/* By name: the certificate names localhost too. */
	snprintf(a, sizeof(a), "localhost:%d", port);
	rc = coffer_client_connect(&c, a, &o, err, sizeof(err));
	if (rc != COFFER_OK)
		fail_msg("TLS connect by name: %s", err);
	coffer_client_close(c);
	snprintf(a, sizeof(a), "127.0.0.1:%d", port);

	o.ca_file = other;
	assert_int_equal(coffer_client_connect(&c, a, &o, err, sizeof(err)), COFFER_EUNAVAIL);
	assert_non_null(strstr(err, "certificate verify failed"));
	o.ca_file = good;
	o.server_name = "db.example.com";
	assert_int_equal(coffer_client_connect(&c, a, &o, err, sizeof(err)), COFFER_EUNAVAIL);
	assert_non_null(strstr(err, "certificate verify failed"));
	o.server_name = NULL;
	o.tls = 0;
	c = NULL;
	assert_int_equal(coffer_client_connect(&c, a, &o, err, sizeof(err)), COFFER_EUNAVAIL);
	if (strstr(err, "TLS") == NULL)
		fail_msg("plaintext to TLS: %s", err);
	assert_null(c);

	int status;
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	tls_server = -1;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* TLS to a server that speaks h2c: a clear error, not a hang. */
static void test_tls_to_plaintext(void **state)
{
	coffer_client *c = NULL;
	coffer_client_options o = {.tls = 1, .timeout_ms = 10000};
	char err[256] = "";
	assert_int_equal(coffer_client_connect(&c, addr, &o, err, sizeof(err)), COFFER_EUNAVAIL);
	assert_null(c);
	assert_non_null(strstr(err, "TLS"));
	o.ca_file = "/nonexistent/ca.pem";
	assert_int_equal(coffer_client_connect(&c, addr, &o, err, sizeof(err)), COFFER_EINVAL);
	assert_non_null(strstr(err, "CA file"));
}

/* After the server stops: the store, read with libcoffer, holds what the client saw. */
static int compare_list_cb(void *ctx, const char *name, size_t nversions)
{
	seen_list *l = ctx;
	size_t i = l->n++;
	if (i >= client_list.n || strcmp(client_list.names[i], name) != 0)
		return -200;
	/* app.key was put after the client listed; it is the only difference allowed. */
	return client_list.counts[i] == nversions ? 0 : -201;
}

static int compare_versions_cb(void *ctx, const coffer_version_info *info)
{
	size_t *i = ctx;
	const coffer_version_info *c = &client_versions.info[(*i)++];
	if (*i > client_versions.n)
		return -300;
	return strcmp(c->version, info->version) == 0 &&
	               c->created_unix_ms == info->created_unix_ms && c->state == info->state &&
	               c->size == info->size && c->key_id == info->key_id
	           ? 0
	           : -301;
}

static void test_store_agrees(void **state)
{
	stop_server();
	coffer_store *st;
	coffer_secret *sec;
	coffer_value *v;
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	char err[256];
	size_t len;
	assert_int_equal(coffer_open(&st, store, &o, err, sizeof(err)), COFFER_OK);
	assert_int_equal(coffer_secret_ref(st, "db.password", COFFER_ACCESS, &sec), COFFER_OK);
	assert_int_equal(coffer_access(sec, "latest", &v), COFFER_OK);
	const void *d = coffer_value_data(v, &len);
	assert_int_equal(len, sizeof(v2));
	assert_memory_equal(d, v2, sizeof(v2));
	assert_string_equal(coffer_value_version(v), "2");
	coffer_value_free(v);
	assert_int_equal(coffer_access(sec, "1", &v), COFFER_ENOTFOUND);
	size_t i = 0;
	assert_int_equal(coffer_list_versions(sec, compare_versions_cb, &i), COFFER_OK);
	assert_int_equal(i, client_versions.n);
	coffer_secret_free(sec);

	/* The names the client listed, in the same order with the same counts; app.key came later.
	 */
	seen_list l = {0};
	client_list.names[client_list.n][0] = '\0';
	assert_int_equal(coffer_secret_ref(st, "app.key", COFFER_ACCESS, &sec), COFFER_OK);
	assert_int_equal(coffer_access(sec, "1", &v), COFFER_OK);
	coffer_value_free(v);
	coffer_secret_free(sec);
	/* Insert app.key where the store will list it, then compare the whole listing. */
	size_t at = 0;
	while (at < client_list.n && strcmp(client_list.names[at], "app.key") < 0)
		at++;
	memmove(client_list.names[at + 1], client_list.names[at],
	        (client_list.n - at) * sizeof(client_list.names[0]));
	memmove(&client_list.counts[at + 1], &client_list.counts[at],
	        (client_list.n - at) * sizeof(client_list.counts[0]));
	snprintf(client_list.names[at], COFFER_NAME_MAX + 1, "app.key");
	client_list.counts[at] = 1;
	client_list.n++;
	assert_int_equal(coffer_list_secrets(st, compare_list_cb, &l), COFFER_OK);
	assert_int_equal(l.n, client_list.n);
	coffer_close(st);
	seen_list_free(&client_list);
}

/* --- fake servers -------------------------------------------------------------------------- */

typedef enum fake_mode {
	FAKE_HTTP1,         /* answers HTTP/1.1 */
	FAKE_GARBAGE,       /* bytes that are not HTTP/2 */
	FAKE_CLOSE_MID,     /* a response message cut off by a closed connection */
	FAKE_OVERSIZED,     /* a message prefix declaring 100 MiB */
	FAKE_TRUNCATED,     /* a short message, then trailers with grpc-status 0 */
	FAKE_NOT_GRPC,      /* HTTP/2 404 without grpc-status */
	FAKE_GARBAGE_LATER, /* valid SETTINGS, then garbage once the call is made */
	FAKE_SILENT,        /* accepts and says nothing */
} fake_mode;

typedef struct fake {
	int lfd;
	int port;
	fake_mode mode;
	pthread_t th;
} fake;

static void send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		b += k;
		n -= (size_t)k;
	}
}

static int recv_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = recv(fd, p, n, 0);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void frame(int fd, uint8_t type, uint8_t flags, uint32_t stream, const void *payload,
                  size_t len)
{
	uint8_t h[9] = {(uint8_t)(len >> 16),
	                (uint8_t)(len >> 8),
	                (uint8_t)len,
	                type,
	                flags,
	                (uint8_t)(stream >> 24),
	                (uint8_t)(stream >> 16),
	                (uint8_t)(stream >> 8),
	                (uint8_t)stream};
	send_all(fd, h, 9);
	if (len > 0)
		send_all(fd, payload, len);
}

/* Read the client's preface and frames until its request on stream 1 is complete. 0 or -1. */
static int read_request(int fd)
{
	uint8_t magic[24], h[9], payload[65536];
	if (recv_all(fd, magic, 24) != 0)
		return -1;
	for (;;) {
		if (recv_all(fd, h, 9) != 0)
			return -1;
		size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
		uint32_t stream =
		    ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
		    0x7fffffffu;
		if (len > sizeof(payload) || recv_all(fd, payload, len) != 0)
			return -1;
		if (h[3] == 4 && !(h[4] & 1))
			frame(fd, 4, 1, 0, NULL, 0); /* SETTINGS ACK */
		if ((h[3] == 0 || h[3] == 1) && stream == 1 && (h[4] & 1))
			return 0; /* END_STREAM on the request */
	}
}

/* HPACK: ":status: 200" (static 8) and "content-type: application/grpc" (literal, name 31). */
static const uint8_t hdr_ok[] = {0x88, 0x0f, 0x10, 16,  'a', 'p', 'p', 'l', 'i', 'c',
                                 'a',  't',  'i',  'o', 'n', '/', 'g', 'r', 'p', 'c'};
static const uint8_t hdr_404[] = {0x8d}; /* ":status: 404" (static 13) */
static const uint8_t trailer_ok[] = {0x00, 11,  'g', 'r', 'p', 'c', '-', 's',
                                     't',  'a', 't', 'u', 's', 1,   '0'};

static void *fake_main(void *arg)
{
	fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	uint8_t junk[64];
	switch (f->mode) {
	case FAKE_HTTP1: {
		if (recv_all(fd, junk, 24) != 0) /* the client's preface, first */
			break;
		static const char r[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
		send_all(fd, r, sizeof(r) - 1);
		break;
	}
	case FAKE_GARBAGE:
		if (recv_all(fd, junk, 24) != 0)
			break;
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)(i * 37 + 11);
		send_all(fd, junk, sizeof(junk));
		break;
	case FAKE_SILENT:
		break;
	default: {
		frame(fd, 4, 0, 0, NULL, 0); /* our SETTINGS */
		if (read_request(fd) != 0)
			break;
		if (f->mode == FAKE_NOT_GRPC) {
			frame(fd, 1, 0x4 | 0x1, 1, hdr_404, sizeof(hdr_404));
			break;
		}
		if (f->mode == FAKE_GARBAGE_LATER) {
			/* zeros: a DATA frame on stream 0, which HTTP/2 forbids */
			memset(junk, 0, sizeof(junk));
			send_all(fd, junk, sizeof(junk));
			break;
		}
		frame(fd, 1, 0x4, 1, hdr_ok, sizeof(hdr_ok)); /* HEADERS, END_HEADERS */
		uint8_t data[15] = {0, 0, 0, 0, 100, 0x0a, 0x03, 'a', 'b', 'c'};
		if (f->mode == FAKE_OVERSIZED) {
			data[1] = 0x06; /* 0x06400000: 100 MiB */
			data[2] = 0x40;
			data[4] = 0;
		}
		frame(fd, 0, 0, 1, data, sizeof(data));
		if (f->mode == FAKE_TRUNCATED)
			frame(fd, 1, 0x4 | 0x1, 1, trailer_ok, sizeof(trailer_ok));
		break;
	}
	}
	/* Half-close and read until the client hangs up: the client sees our end of the stream,
	 * never a reset caused by bytes of its own left unread. */
	if (f->mode != FAKE_SILENT)
		shutdown(fd, SHUT_WR);
	while (recv(fd, junk, sizeof(junk), 0) > 0)
		;
	close(fd);
	return NULL;
}

static void fake_start(fake *f, fake_mode mode)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &sl), 0);
	f->port = ntohs(sin.sin_port);
	f->mode = mode;
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
}

/* Connect to a fake server; for the modes that fail later, make one call. rc and message. */
static int fake_try(fake_mode mode, char *err, size_t errlen, unsigned timeout_ms)
{
	fake f;
	char a[64];
	coffer_client *c = NULL;
	coffer_client_options o = {.timeout_ms = timeout_ms};
	fake_start(&f, mode);
	snprintf(a, sizeof(a), "127.0.0.1:%d", f.port);
	err[0] = '\0';
	int rc = coffer_client_connect(&c, a, &o, err, errlen);
	if (rc == COFFER_OK) {
		coffer_client_value *v = NULL;
		rc = coffer_client_access(c, "db.password", "latest", &v);
		assert_null(v);
		snprintf(err, errlen, "%s", coffer_client_errmsg(c));
		coffer_client_close(c);
	}
	fake_stop(&f);
	return rc;
}

static void test_refused(void **state)
{
	fake f;
	char a[64], err[256];
	coffer_client *c = NULL;
	/* A port that was just free: bound and closed without listening. */
	fake_start(&f, FAKE_SILENT);
	int port = f.port;
	/* Let the thread's accept() return: connect once, then close the listener. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons((uint16_t)port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(connect(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	close(s);
	fake_stop(&f);
	snprintf(a, sizeof(a), "127.0.0.1:%d", port);
	assert_int_equal(coffer_client_connect(&c, a, NULL, err, sizeof(err)), COFFER_EUNAVAIL);
	assert_null(c);
	assert_non_null(strstr(err, "refused"));

	assert_int_equal(coffer_client_connect(&c, "nohostport", NULL, err, sizeof(err)),
	                 COFFER_EINVAL);
	assert_int_equal(coffer_client_connect(&c, "127.0.0.1:99999", NULL, err, sizeof(err)),
	                 COFFER_EINVAL);
	assert_int_equal(coffer_client_connect(&c, "::1:80", NULL, err, sizeof(err)),
	                 COFFER_EINVAL);
	assert_int_equal(
	    coffer_client_connect(&c, "unix:/nonexistent/coffer.sock", NULL, err, sizeof(err)),
	    COFFER_EUNAVAIL);
	assert_non_null(strstr(err, "unix:/nonexistent/coffer.sock"));
}

static void test_hostile_servers(void **state)
{
	char err[512];
	int rc;
	assert_int_equal(fake_try(FAKE_HTTP1, err, sizeof(err), 10000), COFFER_EUNAVAIL);
	assert_non_null(strstr(err, "HTTP/1"));
	assert_int_equal(fake_try(FAKE_GARBAGE, err, sizeof(err), 10000), COFFER_EUNAVAIL);
	assert_non_null(strstr(err, "not an HTTP/2 server"));
	assert_int_equal(fake_try(FAKE_CLOSE_MID, err, sizeof(err), 10000), COFFER_EUNAVAIL);
	assert_non_null(strstr(err, "middle of the call"));
	assert_int_equal(fake_try(FAKE_OVERSIZED, err, sizeof(err), 10000), COFFER_ETOOBIG);
	assert_non_null(strstr(err, "104857600 bytes"));
	assert_int_equal(fake_try(FAKE_TRUNCATED, err, sizeof(err), 10000), COFFER_EIO);
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(fake_try(FAKE_NOT_GRPC, err, sizeof(err), 10000), COFFER_EUNAVAIL);
	assert_non_null(strstr(err, "404"));
	rc = fake_try(FAKE_GARBAGE_LATER, err, sizeof(err), 10000);
	if (rc != COFFER_EIO)
		fail_msg("garbage later: %d %s", rc, err);
	assert_non_null(strstr(err, "HTTP/2"));
	/* Silence: the deadline says so (not a timed assertion: only that it ends, with EUNAVAIL).
	 */
	assert_int_equal(fake_try(FAKE_SILENT, err, sizeof(err), 300), COFFER_EUNAVAIL);
	assert_non_null(strstr(err, "no answer"));
}

static void test_status_mapping(void **state)
{
	assert_int_equal(coffer_client_rc_from_status(0, NULL), COFFER_OK);
	assert_int_equal(coffer_client_rc_from_status(3, "whatever"), COFFER_EINVAL);
	assert_int_equal(coffer_client_rc_from_status(5, NULL), COFFER_ENOTFOUND);
	assert_int_equal(coffer_client_rc_from_status(7, NULL), COFFER_EPERM);
	assert_int_equal(coffer_client_rc_from_status(16, "invalid bearer token"), COFFER_EPERM);
	assert_int_equal(coffer_client_rc_from_status(14, NULL), COFFER_EUNAVAIL);
	assert_int_equal(coffer_client_rc_from_status(14, "store busy"), COFFER_EBUSY);
	assert_int_equal(coffer_client_rc_from_status(13, NULL), COFFER_EIO);
	assert_int_equal(coffer_client_rc_from_status(13, "integrity check failed"),
	                 COFFER_EINTEGRITY);
	/* Every code of the list comes back from its own status and text. */
#define X(name, value, msg, grpc, exitcode)                                                        \
	assert_int_equal(coffer_client_rc_from_status(grpc, msg), value);
	COFFER_ERROR_LIST(X)
#undef X
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_client PATH-TO-coffer\n");
		return 2;
	}
	coffer_bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scenario),         cmocka_unit_test(test_permissions),
	    cmocka_unit_test(test_unix_socket),      cmocka_unit_test(test_tls),
	    cmocka_unit_test(test_tls_to_plaintext), cmocka_unit_test(test_store_agrees),
	    cmocka_unit_test(test_refused),          cmocka_unit_test(test_hostile_servers),
	    cmocka_unit_test(test_status_mapping),
	};
	return cmocka_run_group_tests(tests, start_server, teardown);
}
