/*
 * Scale benchmark (issue 11, target 5): what a store of N secrets (3 versions each) costs, so
 * bench/scale.sh can print each figure at 10 k, 100 k (and 1 M) secrets with how it grows.
 * Everything goes through the public APIs (coffer.h, coffer_client.h). Each subcommand prints
 * "key value" lines that scale.sh collects into its table.
 *
 *   bench_scale fill DIR N        make the store at DIR: N secrets "scale-0000000".. with 3
 *                                 versions each, by coffer_put_batch (3000 puts per commit)
 *   bench_scale open DIR          one coffer_open + coffer_close, in this (new) process
 *   bench_scale embedded DIR N    access(latest) and access(1) over random names (p50/p99), the
 *                                 durable put rate of new versions of random secrets (one at a
 *                                 time, and 1000 per commit), and one page of coffer_list_page:
 *                                 the first, one from the middle (via its token), and the first
 *                                 of a prefix at the end of the names
 *   bench_scale client ADDR N K   access(latest) of K distinct secrets through a running
 *                                 `coffer serve` (libcoffer_client, one connection): p50/p99
 *
 * Options by environment: SCALE_ACCESSES (20000), SCALE_PUTS (300), SCALE_BATCH_PUTS (3000),
 * SCALE_LIST_ROUNDS (200).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <sqlite3.h>

#include "coffer.h"
#include "coffer_client.h"

#define VALUE_LEN 32
#define BATCH     1000 /* secrets per commit of the fill (3 puts each) */
#define PAGE      100

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_scale: %s: %s\n", what, why);
	exit(1);
}

static long env_long(const char *name, long dflt)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : dflt;
}

static void name_of(char buf[32], unsigned long i)
{
	snprintf(buf, 32, "scale-%07lu", i);
}

/* xorshift64*: reproducible random names, the same in every run. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Prints "<key>_p50_us" and "<key>_p99_us" of n samples (seconds), sorting them. */
static void print_pct(const char *key, double *t, long n)
{
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	long i50 = n / 2, i99 = n * 99 / 100;
	if (i99 >= n)
		i99 = n - 1;
	printf("%s_p50_us %.1f\n%s_p99_us %.1f\n", key, t[i50] * 1e6, key, t[i99] * 1e6);
}

static coffer_store *open_store(const char *dir)
{
	coffer_store *st = NULL;
	char err[512];
	coffer_options o = {0};
	if (coffer_open(&st, dir, &o, err, sizeof err) != COFFER_OK)
		die("open", err);
	return st;
}

/*
 * Counts that do not drift with the machine's load: the store's SQLite connection (found with
 * sqlite3_auto_extension, which SQLite calls for each connection this process opens) gives the
 * virtual machine steps of its statements (they grow with the rows visited) and its page cache
 * misses (pages read from the file); getrusage gives the blocks read from the disk itself (not
 * from the kernel's page cache).
 */
static sqlite3 *conn;

static int record_conn(sqlite3 *db, const char **err, const void *api)
{
	(void)err;
	(void)api;
	conn = db;
	return SQLITE_OK;
}

typedef struct counts {
	long steps, misses, inblock;
} counts;

static counts counts_take(void)
{
	counts c = {0, 0, 0};
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		c.inblock = ru.ru_inblock;
	if (conn == NULL)
		return c;
	for (sqlite3_stmt *q = sqlite3_next_stmt(conn, NULL); q != NULL;
	     q = sqlite3_next_stmt(conn, q))
		c.steps += sqlite3_stmt_status(q, SQLITE_STMTSTATUS_VM_STEP, 1);
	int cur = 0, hi = 0;
	if (sqlite3_db_status(conn, SQLITE_DBSTATUS_CACHE_MISS, &cur, &hi, 1) == SQLITE_OK)
		c.misses = cur;
	return c;
}

static int fill(const char *dir, unsigned long n)
{
	coffer_store *st = open_store(dir);
	coffer_put_item *items = calloc(3 * BATCH, sizeof *items);
	coffer_secret **secs = calloc(BATCH, sizeof *secs);
	unsigned char val[3][VALUE_LEN];
	if (items == NULL || secs == NULL)
		die("fill", "out of memory");
	for (int v = 0; v < 3; v++)
		memset(val[v], 'a' + v, VALUE_LEN);
	double t0 = now_s();
	for (unsigned long base = 0; base < n; base += BATCH) {
		size_t m = n - base < BATCH ? (size_t)(n - base) : BATCH, k = 0;
		for (size_t i = 0; i < m; i++) {
			char name[32];
			name_of(name, base + i);
			if (coffer_secret_ref(st, name, COFFER_PUT, &secs[i]) != COFFER_OK)
				die("secret_ref", coffer_errmsg(st));
			for (int v = 0; v < 3; v++) {
				items[k].secret = secs[i];
				items[k].value = val[v];
				items[k].len = VALUE_LEN;
				k++;
			}
		}
		if (coffer_put_batch(st, items, k) != COFFER_OK)
			die("put_batch", coffer_errmsg(st));
		for (size_t i = 0; i < k; i++)
			if (items[i].rc != COFFER_OK)
				die("put_batch item", coffer_strerror(items[i].rc));
		for (size_t i = 0; i < m; i++)
			coffer_secret_free(secs[i]);
	}
	printf("fill_s %.2f\n", now_s() - t0);
	free(items);
	free(secs);
	coffer_close(st);
	return 0;
}

/* One open: its time, and the pages it read into SQLite's cache (a scan of the secrets would
 * read a number growing with N). */
static int open_once(const char *dir)
{
	if (sqlite3_auto_extension((void (*)(void))record_conn) != SQLITE_OK)
		die("open", "sqlite3_auto_extension failed");
	double t0 = now_s();
	coffer_store *st = open_store(dir);
	double dt = now_s() - t0;
	int pages = 0, hi = 0;
	if (conn == NULL ||
	    sqlite3_db_status(conn, SQLITE_DBSTATUS_CACHE_MISS, &pages, &hi, 0) != SQLITE_OK)
		die("open", "no SQLite connection seen");
	coffer_close(st);
	printf("open_ms %.3f\nopen_pages %d\n", dt * 1e3, pages);
	return 0;
}

/* access(version) of `count` random secrets, each timed. */
static void accesses(coffer_store *st, unsigned long n, const char *version, long count,
                     const char *key)
{
	double *t = malloc((size_t)count * sizeof *t);
	if (t == NULL)
		die("access", "out of memory");
	(void)counts_take();
	for (long i = 0; i < count; i++) {
		char name[32];
		name_of(name, rnd() % n);
		coffer_secret *sec = NULL;
		coffer_value *v = NULL;
		double t0 = now_s();
		if (coffer_secret_ref(st, name, COFFER_ACCESS, &sec) != COFFER_OK ||
		    coffer_access(sec, version, &v) != COFFER_OK)
			die("access", coffer_errmsg(st));
		t[i] = now_s() - t0;
		coffer_value_free(v);
		coffer_secret_free(sec);
	}
	counts c = counts_take();
	print_pct(key, t, count);
	printf("%s_steps %.1f\n%s_pages %.2f\n%s_disk_kib %.2f\n", key, (double)c.steps / count,
	       key, (double)c.misses / count, key, (double)c.inblock * 512 / 1024 / count);
	free(t);
}

static int count_cb(void *ctx, const char *name, size_t nversions)
{
	(void)name;
	(void)nversions;
	++*(size_t *)ctx;
	return 0;
}

/* One page, `rounds` times: the median time, printed as KEY_us, and the steps per page. */
static void list_page(coffer_store *st, const char *prefix, const char *token, long rounds,
                      size_t want, const char *key)
{
	double *t = malloc((size_t)rounds * sizeof *t);
	if (t == NULL)
		die("list", "out of memory");
	(void)counts_take();
	for (long r = 0; r < rounds; r++) {
		char next[COFFER_PAGE_TOKEN_MAX];
		size_t got = 0;
		double t0 = now_s();
		if (coffer_list_page(st, prefix, PAGE, token, count_cb, &got, next) != COFFER_OK)
			die("list_page", coffer_errmsg(st));
		t[r] = now_s() - t0;
		if (got != want)
			die("list_page", "the page has not the expected number of names");
	}
	counts c = counts_take();
	qsort(t, (size_t)rounds, sizeof *t, cmp_double);
	printf("%s_us %.1f\n%s_steps %.1f\n", key, t[rounds / 2] * 1e6, key,
	       (double)c.steps / rounds);
	free(t);
}

/* New versions of `count` random secrets, BATCH per commit: what a put costs besides the sync
 * (the durable rate above is mostly the sync). */
static void put_batches(coffer_store *st, unsigned long n, long count)
{
	coffer_put_item *items = calloc(BATCH, sizeof *items);
	coffer_secret **secs = calloc(BATCH, sizeof *secs);
	unsigned char val[VALUE_LEN];
	if (items == NULL || secs == NULL)
		die("put batch", "out of memory");
	memset(val, 'q', sizeof val);
	double t0 = now_s();
	for (long done = 0; done < count; done += BATCH) {
		size_t m = count - done < BATCH ? (size_t)(count - done) : BATCH;
		for (size_t i = 0; i < m; i++) {
			char name[32];
			name_of(name, rnd() % n);
			if (coffer_secret_ref(st, name, COFFER_PUT, &secs[i]) != COFFER_OK)
				die("secret_ref", coffer_errmsg(st));
			items[i] =
			    (coffer_put_item){.secret = secs[i], .value = val, .len = VALUE_LEN};
		}
		if (coffer_put_batch(st, items, m) != COFFER_OK)
			die("put_batch", coffer_errmsg(st));
		for (size_t i = 0; i < m; i++) {
			if (items[i].rc != COFFER_OK)
				die("put_batch item", coffer_strerror(items[i].rc));
			coffer_secret_free(secs[i]);
		}
	}
	printf("put_batch_per_s %.1f\n", (double)count / (now_s() - t0));
	free(items);
	free(secs);
}

static int embedded(const char *dir, unsigned long n)
{
	long nacc = env_long("SCALE_ACCESSES", 20000), nput = env_long("SCALE_PUTS", 300),
	     rounds = env_long("SCALE_LIST_ROUNDS", 200);
	if (n < 2 * PAGE || nacc < 1 || nput < 1 || rounds < 1 ||
	    env_long("SCALE_BATCH_PUTS", 1) < 1)
		die("embedded", "N must be at least 200, the counts at least 1");
	if (sqlite3_auto_extension((void (*)(void))record_conn) != SQLITE_OK)
		die("embedded", "sqlite3_auto_extension failed");
	coffer_store *st = open_store(dir);
	accesses(st, n, "latest", nacc, "access_latest");
	accesses(st, n, "1", nacc, "access_v1");

	unsigned char val[VALUE_LEN];
	memset(val, 'p', sizeof val);
	double t0 = now_s();
	for (long i = 0; i < nput; i++) {
		char name[32];
		name_of(name, rnd() % n);
		coffer_secret *sec = NULL;
		if (coffer_secret_ref(st, name, COFFER_PUT, &sec) != COFFER_OK ||
		    coffer_put(sec, val, sizeof val, NULL) != COFFER_OK)
			die("put", coffer_errmsg(st));
		coffer_secret_free(sec);
	}
	printf("put_per_s %.1f\n", (double)nput / (now_s() - t0));
	put_batches(st, n, env_long("SCALE_BATCH_PUTS", 3000));

	/* The middle page's token: the next_token of a one-name page whose prefix is the name in
	 * the middle (tokens do not depend on the prefix). */
	char mid[32], token[COFFER_PAGE_TOKEN_MAX], prefix[32];
	size_t got = 0;
	name_of(mid, n / 2 - 1);
	if (coffer_list_page(st, mid, 1, NULL, count_cb, &got, token) != COFFER_OK ||
	    token[0] == '\0')
		die("list_page", "no token for the middle page");
	/* The last PAGE names: scale-NNNNN00 .. scale-NNNNN99 (N a multiple of 100). */
	snprintf(prefix, sizeof prefix, "scale-%05lu", (n - 1) / 100);
	list_page(st, NULL, NULL, rounds, PAGE, "list_first");
	list_page(st, NULL, token, rounds, PAGE, "list_middle");
	list_page(st, prefix, NULL, rounds, PAGE, "list_prefix_end");
	coffer_close(st);
	return 0;
}

/* K distinct secrets out of N: i -> (a*i + b) mod N with a prime to N visits each once. */
static int client(const char *addr, unsigned long n, unsigned long k)
{
	coffer_client *c = NULL;
	char err[512];
	if (coffer_client_connect(&c, addr, NULL, err, sizeof err) != COFFER_OK)
		die("connect", err);
	if (k > n)
		k = n;
	unsigned long a = 7919; /* a prime: prime to N unless N is a multiple of it */
	unsigned long b = (unsigned long)(rnd() % n);
	double *t = malloc(k * sizeof *t);
	if (t == NULL)
		die("client", "out of memory");
	for (unsigned long i = 0; i < k; i++) {
		char name[32];
		name_of(name, (a * i + b) % n);
		coffer_client_value *v = NULL;
		double t0 = now_s();
		if (coffer_client_access(c, name, "latest", &v) != COFFER_OK)
			die("client access", coffer_client_errmsg(c));
		t[i] = now_s() - t0;
		coffer_client_value_free(v);
	}
	print_pct("served_access", t, (long)k);
	free(t);
	coffer_client_close(c);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "fill") == 0)
		return fill(argv[2], strtoul(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "open") == 0)
		return open_once(argv[2]);
	if (argc == 4 && strcmp(argv[1], "embedded") == 0)
		return embedded(argv[2], strtoul(argv[3], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "client") == 0)
		return client(argv[2], strtoul(argv[3], NULL, 10), strtoul(argv[4], NULL, 10));
	fprintf(stderr, "usage: bench_scale fill DIR N | open DIR | embedded DIR N | "
	                "client ADDR N K\n");
	return 2;
}
