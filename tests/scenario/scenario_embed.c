/*
 * scenario_embed -- the embedder of the scenario tests (tests/scenario): one program holding two
 * coffer_open() handles on the same store, as an application that embeds libcoffer may (a web
 * app with a handle per subsystem, a plugin opening its own). It links the shared libcoffer and
 * uses nothing but coffer.h.
 *
 *   scenario_embed now
 *       print CLOCK_MONOTONIC in nanoseconds. The driver brackets this between two readings of
 *       its own clock to prove that Node's process.hrtime and this program read the same clock.
 *
 *   scenario_embed actor STORE SEED LOG NAME...
 *       open handles 0 and 1 on STORE, then until killed: put a fresh canary to, or read latest
 *       of, a random NAME through a random handle, and now and then close and reopen one handle
 *       while the other stays open. Each put attempt, each acknowledged put and each read is
 *       appended to LOG as one JSON line the moment it happens (one write(2) each, so a kill
 *       loses at most the line being written); times are CLOCK_MONOTONIC ns, t0 read before the
 *       call and t1 after it returned.
 *
 *   scenario_embed script STORE
 *       run commands from standard input, one per line, one answer line each on standard output:
 *         open K | close K                (K: handle 0..3)   -> ok | err RC MESSAGE
 *         put K NAME VALUE                                   -> ok VERSION | err RC MESSAGE
 *         access K NAME VERSION                              -> ok VERSION VALUE | err ...
 *       VALUE is one token without blanks (the tests use canaries).
 *
 * The values are test canaries, so printing them is fine; coffer's own messages never hold one.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "coffer.h"

#define HANDLES       4
#define LINE_MAX_LEN  4096
#define VALUE_MAX_LEN 320

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: small, seedable, the same sequence everywhere. */
static uint64_t next_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* ---- bounded line building ---------------------------------------------------------------- */

typedef struct {
	char buf[LINE_MAX_LEN];
	size_t len;
	int overflow;
} line;

static void put_raw(line *l, const char *s, size_t n)
{
	if (l->len + n >= sizeof l->buf) {
		l->overflow = 1;
		return;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void put_str(line *l, const char *s)
{
	put_raw(l, s, strlen(s));
}

static void put_u64(line *l, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
	put_raw(l, tmp, (size_t)n);
}

/* A JSON string: bytes outside printable ASCII, quotes and backslashes become \u00XX. */
static void put_json(line *l, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	put_raw(l, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\') {
			put_raw(l, (const char *)&s[i], 1);
		} else {
			char esc[6] = {'\\', 'u', '0', '0', hex[s[i] >> 4], hex[s[i] & 15]};
			put_raw(l, esc, sizeof esc);
		}
	}
	put_raw(l, "\"", 1);
}

/* One write(2) per line, so that lines of a killed writer are whole or absent (save the last,
 * which the reader drops if it has no newline). */
static void write_line(int fd, line *l)
{
	if (l->overflow)
		return;
	put_raw(l, "\n", 1);
	const char *p = l->buf;
	size_t n = l->len;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* ---- handles ------------------------------------------------------------------------------ */

static int open_handle(coffer_store **h, const char *store, char *err, size_t errlen)
{
	if (*h != NULL)
		return COFFER_OK;
	return coffer_open(h, store, NULL, err, errlen);
}

static void close_handle(coffer_store **h)
{
	coffer_close(*h);
	*h = NULL;
}

/* ---- actor mode --------------------------------------------------------------------------- */

typedef struct {
	const char *store;
	int log;
	uint64_t rand;
	uint64_t seed;
	coffer_store *h[2];
	char **names;
	int nnames;
	uint64_t n; /* puts attempted, for unique canaries */
} actor;

static void log_err(actor *a, const char *op, int k, const char *name, int rc, const char *msg,
                    uint64_t t1)
{
	line l = {0};
	put_str(&l, "{\"k\":\"err\",\"who\":\"embed\",\"op\":\"");
	put_str(&l, op);
	put_str(&l, "\",\"h\":");
	put_u64(&l, (uint64_t)k);
	put_str(&l, ",\"s\":");
	put_json(&l, (const unsigned char *)name, strlen(name));
	put_str(&l, ",\"rc\":\"");
	put_str(&l, coffer_strerror(rc));
	put_str(&l, "\",\"msg\":");
	put_json(&l, (const unsigned char *)msg, strlen(msg));
	put_str(&l, ",\"t1\":\"");
	put_u64(&l, t1);
	put_str(&l, "\"}");
	write_line(a->log, &l);
}

/* A canary unique to this seed and attempt: c.SEED.e.N. followed by 0..199 random letters. */
static size_t make_value(actor *a, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "c.%llx.e.%llu.", (unsigned long long)a->seed,
	                 (unsigned long long)a->n++);
	size_t len = (size_t)n;
	size_t pad = (size_t)(next_rand(&a->rand) % 200);
	for (size_t i = 0; i < pad && len + 1 < cap; i++)
		buf[len++] = (char)('a' + next_rand(&a->rand) % 26);
	buf[len] = '\0';
	return len;
}

static void log_event(actor *a, const char *kind, int k, const char *name, const char *ver,
                      const void *val, size_t len, uint64_t t0, uint64_t t1)
{
	line l = {0};
	put_str(&l, "{\"k\":\"");
	put_str(&l, kind);
	put_str(&l, "\",\"who\":\"embed\",\"h\":");
	put_u64(&l, (uint64_t)k);
	put_str(&l, ",\"s\":");
	put_json(&l, (const unsigned char *)name, strlen(name));
	put_str(&l, ",\"v\":\"");
	put_str(&l, ver);
	put_str(&l, "\",\"val\":");
	put_json(&l, val, len);
	put_str(&l, ",\"t0\":\"");
	put_u64(&l, t0);
	put_str(&l, "\",\"t1\":\"");
	put_u64(&l, t1);
	put_str(&l, "\"}");
	write_line(a->log, &l);
}

static void actor_put(actor *a, int k, const char *name)
{
	char val[VALUE_MAX_LEN], ver[COFFER_VERSION_MAX];
	size_t len = make_value(a, val, sizeof val);
	coffer_secret *sec = NULL;
	/* The attempt first: a value found in the store must have been attempted by someone. */
	log_event(a, "try", k, name, "", val, len, now_ns(), 0);
	uint64_t t0 = now_ns();
	int rc = coffer_secret_ref(a->h[k], name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_put(sec, val, len, ver);
	uint64_t t1 = now_ns();
	if (rc == COFFER_OK)
		log_event(a, "put", k, name, ver, val, len, t0, t1);
	else
		log_err(a, "put", k, name, rc, coffer_errmsg(a->h[k]), t1);
	coffer_secret_free(sec);
}

static void actor_read(actor *a, int k, const char *name)
{
	coffer_secret *sec = NULL;
	coffer_value *v = NULL;
	uint64_t t0 = now_ns();
	int rc = coffer_secret_ref(a->h[k], name, COFFER_ACCESS, &sec);
	if (rc == COFFER_OK)
		rc = coffer_access(sec, "latest", &v);
	uint64_t t1 = now_ns();
	if (rc == COFFER_OK) {
		size_t len = 0;
		const void *data = coffer_value_data(v, &len);
		log_event(a, "read", k, name, coffer_value_version(v), data, len, t0, t1);
	} else if (rc == COFFER_ENOTFOUND) {
		/* Nothing yet: version 0, which is stale if a put was acknowledged before t0. */
		log_event(a, "read", k, name, "0", "", 0, t0, t1);
	} else {
		log_err(a, "access", k, name, rc, coffer_errmsg(a->h[k]), t1);
	}
	coffer_value_free(v);
	coffer_secret_free(sec);
}

/* Close handle k and open it again while the other one stays open: a second coffer_open() in a
 * process that already holds SQLite connections on the store. */
static int actor_reopen(actor *a, int k)
{
	char err[512];
	line l = {0};
	close_handle(&a->h[k]);
	int rc = open_handle(&a->h[k], a->store, err, sizeof err);
	if (rc != COFFER_OK) {
		log_err(a, "open", k, "", rc, err, now_ns());
		return rc;
	}
	put_str(&l, "{\"k\":\"reopen\",\"who\":\"embed\",\"h\":");
	put_u64(&l, (uint64_t)k);
	put_str(&l, ",\"t1\":\"");
	put_u64(&l, now_ns());
	put_str(&l, "\"}");
	write_line(a->log, &l);
	return COFFER_OK;
}

static void actor_step(actor *a)
{
	uint64_t r = next_rand(&a->rand);
	int k = (int)(r & 1);
	const char *name = a->names[(r >> 8) % (uint64_t)a->nnames];
	if ((r >> 16) % 100 < 3 || a->h[k] == NULL) {
		if (actor_reopen(a, k) != COFFER_OK) {
			usleep(10000);
			return;
		}
	}
	if ((r >> 24) % 2 == 0)
		actor_put(a, k, name);
	else
		actor_read(a, k, name);
	/* Pause now and then, as an application does between requests: a writer that never pauses
	 * keeps SQLite's write lock nearly always and starves the other processes' writers, whose
	 * busy handler only sleeps and retries. */
	if ((r >> 32) % 4 != 0)
		usleep((useconds_t)((r >> 40) % 4000));
}

static int run_actor(int argc, char **argv)
{
	actor a = {0};
	if (argc < 6 || parse_u64(argv[3], &a.seed) != 0) {
		fprintf(stderr, "usage: scenario_embed actor STORE SEED LOG NAME...\n");
		return 2;
	}
	/* Never outlive the driver, even if it dies without killing us. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	a.store = argv[2];
	a.rand = a.seed;
	a.names = argv + 5;
	a.nnames = argc - 5;
	a.log = open(argv[4], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a.log < 0) {
		fprintf(stderr, "scenario_embed: cannot open %s: %s\n", argv[4], strerror(errno));
		return 1;
	}
	for (int k = 0; k < 2; k++)
		if (actor_reopen(&a, k) != COFFER_OK)
			return 1;
	/* Until killed; the bound only keeps a forgotten actor from running for ever. */
	for (int i = 0; i < 1000000; i++)
		actor_step(&a);
	for (int k = 0; k < 2; k++)
		close_handle(&a.h[k]);
	close(a.log);
	return 0;
}

/* ---- script mode -------------------------------------------------------------------------- */

/* Split s in place at blanks into at most max tokens; returns how many. */
static int split(char *s, char **tok, int max)
{
	int n = 0;
	while (*s != '\0' && n < max) {
		s += strspn(s, " \t\r\n");
		if (*s == '\0')
			break;
		tok[n++] = s;
		s += strcspn(s, " \t\r\n");
		if (*s != '\0')
			*s++ = '\0';
	}
	return n;
}

static void answer_err(int rc, const char *msg)
{
	printf("err %s %s\n", coffer_strerror(rc), msg);
}

static void script_put(coffer_store *h, const char *name, const char *val)
{
	coffer_secret *sec = NULL;
	char ver[COFFER_VERSION_MAX];
	int rc = coffer_secret_ref(h, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_put(sec, val, strlen(val), ver);
	if (rc == COFFER_OK)
		printf("ok %s\n", ver);
	else
		answer_err(rc, coffer_errmsg(h));
	coffer_secret_free(sec);
}

static void script_access(coffer_store *h, const char *name, const char *version)
{
	coffer_secret *sec = NULL;
	coffer_value *v = NULL;
	int rc = coffer_secret_ref(h, name, COFFER_ACCESS, &sec);
	if (rc == COFFER_OK)
		rc = coffer_access(sec, version, &v);
	if (rc == COFFER_OK) {
		size_t len = 0;
		const char *data = coffer_value_data(v, &len);
		printf("ok %s %.*s\n", coffer_value_version(v), (int)len, data);
	} else {
		answer_err(rc, coffer_errmsg(h));
	}
	coffer_value_free(v);
	coffer_secret_free(sec);
}

static void script_command(coffer_store **h, const char *store, char **tok, int n)
{
	uint64_t k = HANDLES;
	char err[512];
	if (n < 2 || parse_u64(tok[1], &k) != 0 || k >= HANDLES) {
		printf("err usage bad command\n");
	} else if (strcmp(tok[0], "open") == 0 && n == 2) {
		int rc = open_handle(&h[k], store, err, sizeof err);
		if (rc == COFFER_OK)
			printf("ok\n");
		else
			answer_err(rc, err);
	} else if (strcmp(tok[0], "close") == 0 && n == 2) {
		close_handle(&h[k]);
		printf("ok\n");
	} else if (h[k] == NULL) {
		printf("err usage handle %d is not open\n", (int)k);
	} else if (strcmp(tok[0], "put") == 0 && n == 4) {
		script_put(h[k], tok[2], tok[3]);
	} else if (strcmp(tok[0], "access") == 0 && n == 4) {
		script_access(h[k], tok[2], tok[3]);
	} else {
		printf("err usage bad command\n");
	}
}

static int run_script(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: scenario_embed script STORE\n");
		return 2;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	coffer_store *h[HANDLES] = {0};
	char *buf = NULL;
	size_t cap = 0;
	while (getline(&buf, &cap, stdin) > 0) {
		char *tok[5] = {0};
		int n = split(buf, tok, 5);
		if (n == 0)
			continue;
		script_command(h, argv[2], tok, n);
		fflush(stdout);
	}
	free(buf);
	for (int k = 0; k < HANDLES; k++)
		close_handle(&h[k]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "now") == 0) {
		printf("%llu\n", (unsigned long long)now_ns());
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "actor") == 0)
		return run_actor(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "script") == 0)
		return run_script(argc, argv);
	fprintf(stderr,
	        "usage: scenario_embed now | actor STORE SEED LOG NAME... | script STORE\n");
	return 2;
}
