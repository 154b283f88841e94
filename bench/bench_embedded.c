/*
 * Embedded benchmarks, each printed beside a raw SQLite baseline measured in the same process
 * (same machine, same run, same pragmas), as a ratio. Rounds alternate between coffer and the
 * baseline and the median of each is reported, because this machine is shared and noisy.
 *
 *   access(latest) vs a prepared point lookup of a comparable row (name -> value blob)
 *   access(1)      the same, but an older version: never in the cache of sealed rows, so every
 *                  access reads the store and checks the metadata MACs (docs/internals.md)
 *   durable put    vs a durable single-row insert (BEGIN IMMEDIATE; INSERT; COMMIT)
 *   access(latest) vs the bare XChaCha20-Poly1305 open of a value of the same size (32 B and
 *                  4 KiB) with the same length of authenticated data, into a fresh buffer that is
 *                  wiped and freed: the floor for a cache that keeps values sealed (issue 11)
 *
 * usage: bench_embedded [--quick]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <sqlite3.h>

#include "coffer.h"

#define VALUE_LEN 32
#define BIG_LEN   4096
#define AD_LEN    (1 + 16 + 4 + 8 + 2 + 12) /* format, store id, key id, version, name */
#define ROUNDS    5

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench: %s: %s\n", what, why);
	exit(1);
}

typedef struct raw {
	sqlite3 *db;
	sqlite3_stmt *get, *ins;
} raw;

static void raw_open(raw *r, const char *path)
{
	if (sqlite3_open(path, &r->db) != SQLITE_OK)
		die("sqlite open", sqlite3_errmsg(r->db));
	sqlite3_exec(r->db,
	             "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;"
	             "CREATE TABLE IF NOT EXISTS kv(name TEXT PRIMARY KEY, value BLOB NOT NULL);"
	             "CREATE TABLE IF NOT EXISTS log(name TEXT, n INTEGER, value BLOB, "
	             "PRIMARY KEY(name, n)) WITHOUT ROWID;",
	             NULL, NULL, NULL);
	sqlite3_busy_timeout(r->db, 10000);
	unsigned char v[VALUE_LEN + 41];
	memset(v, 'v', sizeof v);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(r->db, "INSERT OR REPLACE INTO kv VALUES('bench.latest', ?1)", -1, &st,
	                   NULL);
	sqlite3_bind_blob(st, 1, v, sizeof v, SQLITE_TRANSIENT); /* same size as a sealed row */
	sqlite3_step(st);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(r->db, "SELECT value FROM kv WHERE name = ?1", -1, &r->get, NULL) ||
	    sqlite3_prepare_v2(r->db, "INSERT INTO log VALUES(?1, ?2, ?3)", -1, &r->ins, NULL))
		die("sqlite prepare", sqlite3_errmsg(r->db));
}

static double raw_lookups(raw *r, long n)
{
	unsigned char sink = 0;
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		sqlite3_bind_text(r->get, 1, "bench.latest", 12, SQLITE_STATIC);
		if (sqlite3_step(r->get) != SQLITE_ROW)
			die("raw lookup", sqlite3_errmsg(r->db));
		sink ^= ((const unsigned char *)sqlite3_column_blob(r->get, 0))[0];
		sqlite3_reset(r->get);
	}
	double dt = now_s() - t0;
	return sink == 255 ? 0 : (double)n / dt;
}

static double raw_inserts(raw *r, long n, long *seq)
{
	unsigned char v[VALUE_LEN + 41];
	memset(v, 'w', sizeof v);
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		sqlite3_bind_text(r->ins, 1, "bench.put", 9, SQLITE_STATIC);
		sqlite3_bind_int64(r->ins, 2, ++*seq);
		sqlite3_bind_blob(r->ins, 3, v, sizeof v, SQLITE_STATIC);
		if (sqlite3_step(r->ins) != SQLITE_DONE)
			die("raw insert", sqlite3_errmsg(r->db));
		sqlite3_reset(r->ins);
		if (sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			die("raw commit", sqlite3_errmsg(r->db));
	}
	return (double)n / (now_s() - t0);
}

__attribute__((noinline)) static double coffer_accesses(coffer_secret *s, const char *version,
                                                        long n)
{
	unsigned char sink = 0;
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		coffer_value *v = NULL;
		if (coffer_access(s, version, &v) != COFFER_OK)
			die("coffer access", "failed");
		sink ^= ((const unsigned char *)coffer_value_data(v, NULL))[0];
		coffer_value_free(v);
	}
	double dt = now_s() - t0;
	return sink == 255 ? 0 : (double)n / dt;
}

static double coffer_puts(coffer_secret *s, long n)
{
	unsigned char v[VALUE_LEN];
	memset(v, 'p', sizeof v);
	double t0 = now_s();
	for (long i = 0; i < n; i++)
		if (coffer_put(s, v, sizeof v, NULL) != COFFER_OK)
			die("coffer put", "failed");
	return (double)n / (now_s() - t0);
}

/* The bare open: what access(latest) cannot avoid doing when the cache holds sealed rows. */
__attribute__((noinline)) static double bare_opens(const unsigned char *sealed, size_t value_len,
                                                   const unsigned char *key, long n)
{
	unsigned char ad[AD_LEN], sink = 0;
	memset(ad, 'a', sizeof ad);
	size_t clen = value_len + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		unsigned char *pt = malloc(value_len);
		unsigned long long m = 0;
		if (pt == NULL ||
		    crypto_aead_xchacha20poly1305_ietf_decrypt(
		        pt, &m, NULL, sealed + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, clen,
		        ad, sizeof ad, sealed, key) != 0)
			die("bare open", "failed");
		sink ^= pt[0];
		sodium_memzero(pt, value_len);
		free(pt);
	}
	double dt = now_s() - t0;
	return sink == 255 ? 0 : (double)n / dt;
}

/* A sealed value laid out as nonce | ciphertext | tag, under `key`. */
static unsigned char *bare_seal(size_t value_len, const unsigned char *key)
{
	unsigned char ad[AD_LEN];
	memset(ad, 'a', sizeof ad);
	unsigned char *pt = malloc(value_len);
	unsigned char *out = malloc(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + value_len +
	                            crypto_aead_xchacha20poly1305_ietf_ABYTES);
	if (pt == NULL || out == NULL)
		die("malloc", "failed");
	memset(pt, 'v', value_len);
	randombytes_buf(out, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
	    out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, NULL, pt, value_len, ad, sizeof ad,
	    NULL, out, key);
	free(pt);
	return out;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

static void report(const char *what, const char *base, double *c, double *b, int n)
{
	double mc = median(c, n), mb = median(b, n);
	printf("%-16s coffer %12.0f ops/s   %-22s %12.0f ops/s   ratio %.2fx\n", what, mc, base, mb,
	       mc / mb);
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	long nget = quick ? 2000 : 200000, nput = quick ? 20 : 200;
	char dir[] = "/tmp/coffer-bench-XXXXXX", path[256], err[512];
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", "failed");
	snprintf(path, sizeof path, "%s/raw.db", dir);
	raw r = {0};
	raw_open(&r, path);
	snprintf(path, sizeof path, "%s/store", dir);
	coffer_options o = {.master_key_b64 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
	                    .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	coffer_secret *s = NULL, *p = NULL;
	if (coffer_open(&st, path, &o, err, sizeof err) != COFFER_OK)
		die("coffer open", err);
	if (coffer_secret_ref(st, "bench.latest", COFFER_PUT | COFFER_ACCESS, &s) != COFFER_OK ||
	    coffer_secret_ref(st, "bench.put", COFFER_PUT, &p) != COFFER_OK)
		die("coffer ref", coffer_errmsg(st));
	unsigned char v[VALUE_LEN];
	memset(v, 'v', sizeof v);
	if (coffer_put(s, v, sizeof v, NULL) != COFFER_OK ||
	    coffer_put(s, v, sizeof v, NULL) != COFFER_OK) /* version 1 is not latest */
		die("coffer put", coffer_errmsg(st));
	printf("# embedded benchmark: %d-byte values, %d alternating rounds, medians; %s\n",
	       VALUE_LEN, ROUNDS, quick ? "quick (smoke) run" : "full run");
	double ca[ROUNDS], ra[ROUNDS], cp[ROUNDS], rp[ROUNDS];
	long seq = 0;
	for (int i = 0; i < ROUNDS; i++) {
		ra[i] = raw_lookups(&r, nget);
		ca[i] = coffer_accesses(s, "latest", nget);
	}
	report("access(latest)", "raw sqlite lookup", ca, ra, ROUNDS);
	for (int i = 0; i < ROUNDS; i++) {
		ra[i] = raw_lookups(&r, nget / 4);
		ca[i] = coffer_accesses(s, "1", nget / 4);
	}
	report("access(1), miss", "raw sqlite lookup", ca, ra, ROUNDS);
	/* The second baseline: the bare open of the same value size, 32 B and 4 KiB. */
	coffer_secret *big = NULL;
	unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
	randombytes_buf(key, sizeof key);
	unsigned char *bv = malloc(BIG_LEN);
	if (bv == NULL)
		die("malloc", "failed");
	memset(bv, 'b', BIG_LEN);
	if (coffer_secret_ref(st, "bench.big", COFFER_PUT | COFFER_ACCESS, &big) != COFFER_OK ||
	    coffer_put(big, bv, BIG_LEN, NULL) != COFFER_OK)
		die("coffer put 4 KiB", coffer_errmsg(st));
	free(bv);
	const struct {
		const char *label;
		coffer_secret *sec;
		size_t len;
	} sizes[] = {{"access(latest)", s, VALUE_LEN}, {"access 4 KiB", big, BIG_LEN}};
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		unsigned char *sealed = bare_seal(sizes[k].len, key);
		for (int i = 0; i < ROUNDS; i++) {
			ra[i] = bare_opens(sealed, sizes[k].len, key, nget);
			ca[i] = coffer_accesses(sizes[k].sec, "latest", nget);
		}
		report(sizes[k].label,
		       sizes[k].len == VALUE_LEN ? "bare open 32 B" : "bare open 4 KiB", ca, ra,
		       ROUNDS);
		free(sealed);
	}
	coffer_secret_free(big);
	/* Puts are fsync-bound and the disk is shared: alternate one raw insert and one coffer
	 * put, so both see the same disk weather; each round is nput of each. */
	for (int i = 0; i < ROUNDS; i++) {
		double traw = 0, tcof = 0;
		for (long j = 0; j < nput; j++) {
			double t0 = now_s();
			raw_inserts(&r, 1, &seq);
			double t1 = now_s();
			coffer_puts(p, 1);
			tcof += now_s() - t1;
			traw += t1 - t0;
		}
		rp[i] = (double)nput / traw;
		cp[i] = (double)nput / tcof;
	}
	report("durable put", "raw sqlite insert", cp, rp, ROUNDS);
	/* Issue 9: a put to a secret with labels and retention (max_versions 10, 3 custom labels,
	 * so each put also destroys the oldest unlabelled version in its transaction) against a
	 * plain put, alternating as above. */
	coffer_secret *q = NULL;
	if (coffer_secret_ref(st, "bench.keep", COFFER_PUT, &q) != COFFER_OK)
		die("coffer ref", coffer_errmsg(st));
	for (int j = 0; j < 12; j++)
		coffer_puts(q, 1);
	if (coffer_label_set(q, "stable", "1", NULL) != COFFER_OK ||
	    coffer_label_set(q, "blue", "2", NULL) != COFFER_OK ||
	    coffer_label_set(q, "green", "3", NULL) != COFFER_OK ||
	    coffer_set_max_versions(q, 10) != COFFER_OK)
		die("coffer label", coffer_errmsg(st));
	for (int i = 0; i < ROUNDS; i++) {
		double tplain = 0, tkeep = 0;
		for (long j = 0; j < nput; j++) {
			double t0 = now_s();
			coffer_puts(p, 1);
			double t1 = now_s();
			coffer_puts(q, 1);
			tkeep += now_s() - t1;
			tplain += t1 - t0;
		}
		rp[i] = (double)nput / tplain;
		cp[i] = (double)nput / tkeep;
	}
	report("put, labels+keep", "plain coffer put", cp, rp, ROUNDS);
	coffer_secret_free(q);
	coffer_secret_free(s);
	coffer_secret_free(p);
	coffer_close(st);
	sqlite3_finalize(r.get);
	sqlite3_finalize(r.ins);
	sqlite3_close(r.db);
	snprintf(path, sizeof path, "rm -rf '%s'", dir);
	return system(path) == 0 ? 0 : 1;
}
