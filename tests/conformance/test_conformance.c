/*
 * The conformance suite: the seed's semantics and every bad input, through the public API only,
 * against whatever store COFFER_TEST_STORE names (default: a fresh SQLite folder). The same
 * binary runs against every backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../sqltool.h"
#include "../testutil.h"
#include "core/internal.h"

static char tmpdir[4096];
static char location[4200];
static char prefix[32]; /* makes names unique per run, so a shared database can be reused */

static coffer_store *open_key_at(const char *loc)
{
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[512];
	int rc = coffer_open(&st, loc, &o, err, sizeof err);
	if (rc != COFFER_OK)
		fail_msg("coffer_open(%s): %s", loc, err);
	return st;
}

static coffer_store *open_store(void)
{
	return open_key_at(location);
}

static void name(char *buf, size_t len, const char *base)
{
	snprintf(buf, len, "%s%s", prefix, base);
}

static coffer_secret *ref(coffer_store *st, const char *base, unsigned perms)
{
	char n[300];
	name(n, sizeof n, base);
	coffer_secret *s = NULL;
	assert_int_equal(coffer_secret_ref(st, n, perms, &s), COFFER_OK);
	return s;
}

static void put_ok(coffer_secret *s, const void *v, size_t len, const char *want_version)
{
	char ver[COFFER_VERSION_MAX] = "";
	assert_int_equal(coffer_put(s, v, len, ver), COFFER_OK);
	if (want_version != NULL)
		assert_string_equal(ver, want_version);
}

static void access_is(coffer_secret *s, const char *version, const void *want, size_t want_len,
                      const char *want_version)
{
	coffer_value *v = NULL;
	int rc = coffer_access(s, version, &v);
	if (rc != COFFER_OK)
		fail_msg("access %s: %s", version, coffer_strerror(rc));
	size_t len = 0;
	const void *d = coffer_value_data(v, &len);
	assert_int_equal(len, want_len);
	assert_memory_equal(d, want, want_len);
	assert_string_equal(coffer_value_version(v), want_version);
	coffer_value_free(v);
}

/* put twice: latest is 2, version 1 still holds the first value (the seed). */
static void test_seed_workflow(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "db.password", COFFER_PUT | COFFER_ACCESS);
	put_ok(s, "bleak_dearest_hanged_reigns", 27, "1");
	put_ok(s, "crummy_goofed_caddy_radiant", 27, "2");
	access_is(s, "latest", "crummy_goofed_caddy_radiant", 27, "2");
	access_is(s, "LaTeSt", "crummy_goofed_caddy_radiant", 27, "2");
	access_is(s, "1", "bleak_dearest_hanged_reigns", 27, "1");
	access_is(s, "2", "crummy_goofed_caddy_radiant", 27, "2");
	coffer_secret_free(s);
	coffer_close(st);
	/* Reopened: still there. */
	st = open_store();
	s = ref(st, "db.password", COFFER_ACCESS);
	access_is(s, "latest", "crummy_goofed_caddy_radiant", 27, "2");
	access_is(s, "1", "bleak_dearest_hanged_reigns", 27, "1");
	coffer_secret_free(s);
	coffer_close(st);
}

static void test_binary_values(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "binary", COFFER_PUT | COFFER_ACCESS);
	const unsigned char nul[] = {0x00, 'a', 0x00, 0x00, 'b', 0x00};
	const unsigned char bad_utf8[] = {0xff, 0xfe, 0xc3, 0x28, 0xa0,
	                                  0xa1, 0xed, 0xa0, 0x80, 0x00};
	const unsigned char one[] = {0x00};
	put_ok(s, nul, sizeof nul, "1");
	put_ok(s, bad_utf8, sizeof bad_utf8, "2");
	put_ok(s, one, 1, "3");
	access_is(s, "1", nul, sizeof nul, "1");
	access_is(s, "2", bad_utf8, sizeof bad_utf8, "2");
	access_is(s, "latest", one, 1, "3");
	coffer_secret_free(s);
	coffer_close(st);
}

/* A fingerprint of everything visible: names, version counts and each version's size. */
typedef struct fp {
	char buf[1 << 16];
	size_t n;
} fp;

static int fp_name(void *ctx, const char *nm, size_t nv)
{
	fp *f = ctx;
	f->n += (size_t)snprintf(f->buf + f->n, sizeof f->buf - f->n, "%s:%zu;", nm, nv);
	return f->n < sizeof f->buf - 1 ? 0 : 1;
}

static void fingerprint(coffer_store *st, fp *f)
{
	f->n = 0;
	f->buf[0] = '\0';
	assert_int_equal(coffer_list_secrets(st, fp_name, f), COFFER_OK);
}

static void test_bad_names(void **state)
{
	static const char *const bad[] = {
	    "",     "a/b",  "a b", " a",   "..",   ".env",   "-a",          "_a",
	    "a'b",  "a\"b", "a%b", "a\\b", "a;--", "x;DROP", "caf\xc3\xa9", "\xf0\x9f\x94\x91key",
	    "a\tb", "a\nb", "a@b", "a:b",  "*",    "a?",
	};
	coffer_store *st = open_store();
	fp before, after;
	fingerprint(st, &before);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		coffer_secret *s = (coffer_secret *)1;
		assert_int_equal(coffer_secret_ref(st, bad[i], COFFER_PUT | COFFER_ACCESS, &s),
		                 COFFER_EINVAL);
		assert_ptr_equal(s, (coffer_secret *)1); /* out-parameter untouched */
		assert_non_null(strstr(coffer_errmsg(st), "invalid secret name"));
		assert_int_equal(coffer_name_check(bad[i], strlen(bad[i])), COFFER_EINVAL);
	}
	/* An embedded NUL: the length says 3, the bytes say "a\0b". */
	assert_int_equal(coffer_name_check("a\0b", 3), COFFER_EINVAL);
	/* 255 bytes accepted, 256 refused. */
	char longname[258];
	memset(longname, 'k', sizeof longname);
	longname[255] = '\0';
	assert_int_equal(coffer_name_check(longname, 255), COFFER_OK);
	longname[255] = 'k';
	longname[256] = '\0';
	coffer_secret *s = NULL;
	assert_int_equal(coffer_secret_ref(st, longname, COFFER_PUT, &s), COFFER_EINVAL);
	assert_int_equal(coffer_secret_ref(st, NULL, COFFER_PUT, &s), COFFER_EINVAL);
	fingerprint(st, &after);
	assert_string_equal(before.buf, after.buf);
	coffer_close(st);
}

static void test_bad_values(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "limits", COFFER_PUT | COFFER_ACCESS);
	fp before, after;
	fingerprint(st, &before);
	char ver[COFFER_VERSION_MAX] = "untouched";
	assert_int_equal(coffer_put(s, "", 0, ver), COFFER_EINVAL);
	assert_non_null(strstr(coffer_errmsg(st), "empty value"));
	assert_int_equal(coffer_put(s, NULL, 5, ver), COFFER_EINVAL);
	unsigned char *big = malloc(COFFER_VALUE_DEFAULT_MAX + 1);
	assert_non_null(big);
	for (size_t i = 0; i <= COFFER_VALUE_DEFAULT_MAX; i++)
		big[i] = (unsigned char)(i * 31 + 7);
	assert_int_equal(coffer_put(s, big, COFFER_VALUE_DEFAULT_MAX + 1, ver), COFFER_ETOOBIG);
	assert_non_null(strstr(coffer_errmsg(st), "65536"));
	assert_string_equal(ver, "untouched");
	/* coffer_put_check: the same checks and messages, nothing written */
	assert_int_equal(coffer_put_check(s, "", 0), COFFER_EINVAL);
	assert_non_null(strstr(coffer_errmsg(st), "empty value"));
	assert_int_equal(coffer_put_check(s, big, COFFER_VALUE_DEFAULT_MAX + 1), COFFER_ETOOBIG);
	assert_non_null(strstr(coffer_errmsg(st), "65536"));
	assert_int_equal(coffer_put_check(s, big, COFFER_VALUE_DEFAULT_MAX), COFFER_OK);
	assert_int_equal(coffer_put_check(NULL, big, 1), COFFER_EMISUSE);
	coffer_secret *ro = ref(st, "limits", COFFER_ACCESS);
	assert_int_equal(coffer_put_check(ro, big, 1), COFFER_EPERM);
	coffer_secret_free(ro);
	fingerprint(st, &after);
	assert_string_equal(before.buf, after.buf);
	/* Exactly at the limit: accepted and read back whole. */
	put_ok(s, big, COFFER_VALUE_DEFAULT_MAX, "1");
	access_is(s, "latest", big, COFFER_VALUE_DEFAULT_MAX, "1");
	free(big);
	coffer_secret_free(s);
	coffer_close(st);
}

static void test_bad_versions(void **state)
{
	static const char *const bad[] = {
	    "0",  "-1",  "_abc", "99999999999999999999", "",        " 1", "1 ", "01", "+1",
	    "1x", "0x1", "a b",  "9223372036854775808",  "latest/1"};
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "versions", COFFER_PUT | COFFER_ACCESS);
	put_ok(s, "v1", 2, "1");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		coffer_value *v = (coffer_value *)1;
		assert_int_equal(coffer_access(s, bad[i], &v), COFFER_EINVAL);
		assert_ptr_equal(v, (coffer_value *)1);
		assert_non_null(strstr(coffer_errmsg(st), "invalid version id"));
	}
	coffer_value *v = NULL;
	/* A name that could be a label is one: not found, never a version. */
	assert_int_equal(coffer_access(s, "abc", &v), COFFER_ENOTFOUND);
	assert_non_null(strstr(coffer_errmsg(st), "has no label 'abc'"));
	assert_int_equal(coffer_access(s, NULL, &v), COFFER_EINVAL);
	assert_int_equal(coffer_access(s, "2", &v), COFFER_ENOTFOUND);
	assert_non_null(strstr(coffer_errmsg(st), "version '2' not found"));
	assert_int_equal(coffer_access(s, "9223372036854775807", &v), COFFER_ENOTFOUND);
	coffer_secret *missing = ref(st, "never-put", COFFER_ACCESS);
	assert_int_equal(coffer_access(missing, "latest", &v), COFFER_ENOTFOUND);
	assert_non_null(strstr(coffer_errmsg(st), "never-put"));
	assert_int_equal(coffer_access(missing, "1", &v), COFFER_ENOTFOUND);
	assert_null(v);
	coffer_secret_free(missing);
	coffer_secret_free(s);
	coffer_close(st);
}

static void test_permissions(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *rw = ref(st, "perm", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *ro = ref(st, "perm", COFFER_ACCESS);
	coffer_secret *wo = ref(st, "perm", COFFER_PUT);
	put_ok(rw, "one", 3, "1");
	char ver[COFFER_VERSION_MAX];
	assert_int_equal(coffer_put(ro, "two", 3, ver), COFFER_EPERM);
	assert_non_null(strstr(coffer_errmsg(st), "may not put"));
	coffer_value *v = NULL;
	assert_int_equal(coffer_access(wo, "latest", &v), COFFER_EPERM);
	assert_non_null(strstr(coffer_errmsg(st), "may not access"));
	assert_null(v);
	assert_int_equal(coffer_list_versions(wo, NULL, NULL), COFFER_EMISUSE);
	put_ok(wo, "two", 3, "2");
	access_is(ro, "latest", "two", 3, "2");
	coffer_secret *s = NULL;
	assert_int_equal(coffer_secret_ref(st, "x", 0, &s), COFFER_EINVAL);
	assert_int_equal(coffer_secret_ref(st, "x", 0x80, &s), COFFER_EINVAL);
	coffer_secret_free(rw);
	coffer_secret_free(ro);
	coffer_secret_free(wo);
	coffer_close(st);
}

static int count_versions(void *ctx, const coffer_version_info *vi)
{
	size_t *n = ctx;
	(*n)++;
	assert_int_equal(atoi(vi->version), (int)*n); /* oldest first, 1..n */
	assert_int_equal(vi->state, COFFER_STATE_ENABLED);
	assert_true(vi->created_unix_ms > 1600000000000LL);
	assert_int_equal(vi->size, 5);
	return 0;
}

typedef struct seen {
	char names[8][300];
	size_t nv[8];
	int n;
} seen;

static int collect(void *ctx, const char *nm, size_t nv)
{
	seen *s = ctx;
	if (strncmp(nm, prefix, strlen(prefix)) == 0 && strstr(nm, "list") != NULL && s->n < 8) {
		snprintf(s->names[s->n], sizeof s->names[0], "%s", nm);
		s->nv[s->n++] = nv;
	}
	return 0;
}

/* Listing, and names that differ only where '_' or '.' stands are matched exactly. */
static void test_listing_and_exact_names(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *a = ref(st, "list.a_b", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *b = ref(st, "list.aXb", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *c = ref(st, "listXa_b", COFFER_ACCESS);
	coffer_secret *d = ref(st, "list.a.b", COFFER_ACCESS);
	for (int i = 0; i < 3; i++)
		put_ok(a, "aaaaa", 5, NULL);
	put_ok(b, "bbbbb", 5, "1");
	access_is(a, "latest", "aaaaa", 5, "3");
	access_is(b, "latest", "bbbbb", 5, "1");
	coffer_value *v = NULL;
	assert_int_equal(coffer_access(c, "latest", &v), COFFER_ENOTFOUND);
	assert_int_equal(coffer_access(d, "latest", &v), COFFER_ENOTFOUND);
	size_t n = 0;
	assert_int_equal(coffer_list_versions(a, count_versions, &n), COFFER_OK);
	assert_int_equal(n, 3);
	assert_int_equal(coffer_list_versions(c, count_versions, &n), COFFER_ENOTFOUND);
	seen s = {0};
	assert_int_equal(coffer_list_secrets(st, collect, &s), COFFER_OK);
	assert_int_equal(s.n, 2);
	char want[300];
	name(want, sizeof want, "list.aXb"); /* byte order: 'X' (0x58) < '_' (0x5f) */
	assert_string_equal(s.names[0], want);
	assert_int_equal(s.nv[0], 1);
	name(want, sizeof want, "list.a_b");
	assert_string_equal(s.names[1], want);
	assert_int_equal(s.nv[1], 3);
	coffer_secret_free(a);
	coffer_secret_free(b);
	coffer_secret_free(c);
	coffer_secret_free(d);
	coffer_close(st);
}

/* Two handles on one store (as two processes would be): a put through one is seen as latest
 * through the other at once, through its cache. */
static void test_cache_coherence(void **state)
{
	coffer_store *s1 = open_store(), *s2 = open_store();
	coffer_secret *w = ref(s1, "coherent", COFFER_PUT);
	coffer_secret *r = ref(s2, "coherent", COFFER_ACCESS);
	char val[32];
	for (int i = 1; i <= 50; i++) {
		char ver[8];
		int len = snprintf(val, sizeof val, "value-%d", i);
		snprintf(ver, sizeof ver, "%d", i);
		put_ok(w, val, (size_t)len, ver);
		access_is(r, "latest", val, (size_t)len, ver);
		access_is(r, "latest", val, (size_t)len, ver); /* a cache hit now */
	}
	coffer_secret_free(w);
	coffer_secret_free(r);
	coffer_close(s1);
	coffer_close(s2);
}

static void test_batch(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *a = ref(st, "batch.a", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *b = ref(st, "batch.b", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *ro = ref(st, "batch.a", COFFER_ACCESS);
	coffer_put_item it[5] = {
	    {.secret = a, .value = "a1", .len = 2}, {.secret = b, .value = "b1", .len = 2},
	    {.secret = a, .value = "a2", .len = 2}, {.secret = ro, .value = "no", .len = 2},
	    {.secret = a, .value = "", .len = 0},
	};
	assert_int_equal(coffer_put_batch(st, it, 5), COFFER_OK);
	assert_int_equal(it[0].rc, COFFER_OK);
	assert_string_equal(it[0].version, "1");
	assert_string_equal(it[1].version, "1");
	assert_string_equal(it[2].version, "2");
	assert_int_equal(it[3].rc, COFFER_EPERM);
	assert_int_equal(it[4].rc, COFFER_EINVAL);
	access_is(a, "latest", "a2", 2, "2");
	access_is(a, "1", "a1", 2, "1");
	access_is(b, "latest", "b1", 2, "1");
	assert_int_equal(coffer_put_batch(st, NULL, 0), COFFER_OK);
	coffer_secret_free(a);
	coffer_secret_free(b);
	coffer_secret_free(ro);
	coffer_close(st);
}

static void access_rc_is(coffer_secret *s, const char *version, int want);
static long listed_count(coffer_store *st, const char *base);

static int is_pg(void);

/* Several puts of one secret in one batch (the server's group commit does this): each gets the
 * next id and keeps its value, "previous" and latest follow the last one, and the next put (from
 * another handle, reading the secret from the store) continues after it. */
static void test_batch_same_secret(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *a = ref(st, "bsame.a", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *b = ref(st, "bsame.b", COFFER_PUT | COFFER_ACCESS);
	coffer_put_item it[6] = {
	    {.secret = a, .value = "a1", .len = 2}, {.secret = b, .value = "b1", .len = 2},
	    {.secret = a, .value = "a2", .len = 2}, {.secret = a, .value = "a3", .len = 2},
	    {.secret = b, .value = "b2", .len = 2}, {.secret = a, .value = "a4", .len = 2},
	};
	assert_int_equal(coffer_put_batch(st, it, 6), COFFER_OK);
	const char *want[6] = {"1", "1", "2", "3", "2", "4"};
	for (int i = 0; i < 6; i++) {
		assert_int_equal(it[i].rc, COFFER_OK);
		assert_string_equal(it[i].version, want[i]);
	}
	coffer_store *st2 = open_store(); /* no cache: everything read back from the store */
	coffer_secret *a2 = ref(st2, "bsame.a", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *b2 = ref(st2, "bsame.b", COFFER_ACCESS);
	access_is(a2, "latest", "a4", 2, "4");
	access_is(a2, "previous", "a3", 2, "3");
	access_is(a2, "1", "a1", 2, "1");
	access_is(a2, "2", "a2", 2, "2");
	access_is(b2, "latest", "b2", 2, "2");
	access_is(b2, "1", "b1", 2, "1");
	assert_int_equal(listed_count(st2, "bsame.a"), 4);
	put_ok(a2, "a5", 2, "5");
	access_is(a, "latest", "a5", 2, "5");
	access_is(a, "previous", "a4", 2, "4");
	coffer_secret_free(a2);
	coffer_secret_free(b2);
	coffer_close(st2);
	coffer_secret_free(a);
	coffer_secret_free(b);
	coffer_close(st);
}

/* Puts of a secret with retention, several in one batch: each applies the retention, the batch
 * commits, and only the newest versions (and "previous") remain. */
static void test_batch_retention(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *c = ref(st, "bret.c", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *d = ref(st, "bret.d", COFFER_PUT | COFFER_ACCESS);
	put_ok(c, "c1", 2, "1");
	assert_int_equal(coffer_set_max_versions(c, 2), COFFER_OK);
	coffer_put_item it[4] = {
	    {.secret = c, .value = "c2", .len = 2},
	    {.secret = d, .value = "d1", .len = 2},
	    {.secret = c, .value = "c3", .len = 2},
	    {.secret = c, .value = "c4", .len = 2},
	};
	assert_int_equal(coffer_put_batch(st, it, 4), COFFER_OK);
	const char *want[4] = {"2", "1", "3", "4"};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(it[i].rc, COFFER_OK);
		assert_string_equal(it[i].version, want[i]);
	}
	coffer_store *st2 = open_store();
	coffer_secret *c2 = ref(st2, "bret.c", COFFER_PUT | COFFER_ACCESS);
	access_is(c2, "latest", "c4", 2, "4");
	access_is(c2, "previous", "c3", 2, "3");
	access_rc_is(c2, "2", COFFER_ENOTFOUND);
	assert_int_equal(listed_count(st2, "bret.c"), 2);
	put_ok(c2, "c5", 2, "5");
	assert_int_equal(listed_count(st2, "bret.c"), 2);
	coffer_secret_free(c2);
	coffer_close(st2);
	coffer_secret_free(c);
	coffer_secret_free(d);
	coffer_close(st);
}

#define THREADS         8
#define PUTS_PER_THREAD 25

static void *putter(void *arg)
{
	coffer_store *st = open_store(); /* one handle per thread, like one per process */
	coffer_secret *s = ref(st, "concurrent", COFFER_PUT);
	long *versions = arg;
	for (int i = 0; i < PUTS_PER_THREAD; i++) {
		char ver[COFFER_VERSION_MAX], val[32];
		int n = snprintf(val, sizeof val, "t%ld-%d", versions[0], i);
		int rc = coffer_put(s, val, (size_t)n, ver);
		versions[1 + i] = rc == COFFER_OK ? strtol(ver, NULL, 10) : -1;
	}
	coffer_secret_free(s);
	coffer_close(st);
	return NULL;
}

/* Concurrent puts to one secret: every put acknowledged, ids unique and gapless, and each
 * version holds the value its putter wrote. */
static void test_concurrent_puts(void **state)
{
	pthread_t th[THREADS];
	static long v[THREADS][1 + PUTS_PER_THREAD];
	for (long t = 0; t < THREADS; t++) {
		v[t][0] = t;
		assert_int_equal(pthread_create(&th[t], NULL, putter, v[t]), 0);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	static int seen_ver[THREADS * PUTS_PER_THREAD + 1];
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "concurrent", COFFER_ACCESS);
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < PUTS_PER_THREAD; i++) {
			long ver = v[t][1 + i];
			assert_true(ver >= 1 && ver <= THREADS * PUTS_PER_THREAD);
			assert_int_equal(seen_ver[ver], 0);
			seen_ver[ver] = 1;
			char want[32], vs[24];
			int n = snprintf(want, sizeof want, "t%d-%d", t, i);
			snprintf(vs, sizeof vs, "%ld", ver);
			access_is(s, vs, want, (size_t)n, vs);
		}
	char last[24];
	snprintf(last, sizeof last, "%d", THREADS * PUTS_PER_THREAD);
	coffer_value *val = NULL;
	assert_int_equal(coffer_access(s, "latest", &val), COFFER_OK);
	assert_string_equal(coffer_value_version(val), last);
	coffer_value_free(val);
	coffer_secret_free(s);
	coffer_close(st);
}

typedef struct states {
	char list[256];
	size_t n;
} states;

static int collect_states(void *ctx, const coffer_version_info *vi)
{
	states *st = ctx;
	st->n +=
	    (size_t)snprintf(st->list + st->n, sizeof st->list - st->n, "%s%s:%zu ", vi->version,
	                     vi->state == COFFER_STATE_ENABLED    ? "+"
	                     : vi->state == COFFER_STATE_DISABLED ? "~"
	                                                          : "-",
	                     vi->size);
	return st->n < sizeof st->list - 1 ? 0 : 1;
}

static int count_enabled(void *ctx, const coffer_version_info *vi)
{
	*(size_t *)ctx += vi->state == COFFER_STATE_ENABLED;
	return 0;
}

typedef struct count_of {
	const char *name;
	long n; /* -1: not listed */
} count_of;

static int find_count(void *ctx, const char *nm, size_t nv)
{
	count_of *c = ctx;
	if (strcmp(nm, c->name) == 0)
		c->n = (long)nv;
	return 0;
}

/* The number of versions coffer_list_secrets() gives for one secret, -1 if not listed. */
static long listed_count(coffer_store *st, const char *base)
{
	char n[300];
	name(n, sizeof n, base);
	count_of c = {n, -1};
	assert_int_equal(coffer_list_secrets(st, find_count, &c), COFFER_OK);
	return c.n;
}

/* Destroyed versions are gone for good, keep their ids, and latest moves back past them; the
 * listing counts only the versions that can still be read, so it agrees with latest. */
static void test_destroy(void **state)
{
	coffer_store *st = open_store(), *other = open_store();
	coffer_secret *s = ref(st, "destroy", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *o = ref(other, "destroy", COFFER_ACCESS);
	coffer_secret *ro = ref(st, "destroy", COFFER_ACCESS);
	put_ok(s, "one", 3, "1");
	put_ok(s, "two", 3, "2");
	put_ok(s, "three", 5, "3");
	access_is(o, "latest", "three", 5, "3"); /* cached in the other handle */
	char ver[COFFER_VERSION_MAX] = "";
	assert_int_equal(coffer_destroy(s, "2", ver), COFFER_OK);
	assert_string_equal(ver, "2");
	coffer_value *v = NULL;
	assert_int_equal(coffer_access(s, "2", &v), COFFER_ENOTFOUND);
	assert_int_equal(coffer_destroy(s, "latest", ver), COFFER_OK);
	assert_string_equal(ver, "3");
	access_is(o, "latest", "one", 3, "1"); /* the other handle's cache saw it go */
	access_is(s, "latest", "one", 3, "1");
	assert_int_equal(coffer_access(o, "3", &v), COFFER_ENOTFOUND);
	assert_null(v);
	put_ok(s, "four", 4, "4"); /* ids are never reused */
	access_is(o, "latest", "four", 4, "4");
	states sv = {{0}, 0};
	assert_int_equal(coffer_list_versions(s, collect_states, &sv), COFFER_OK);
	assert_string_equal(sv.list, "1+:3 2-:0 3-:0 4+:4 ");
	assert_int_equal(listed_count(st, "destroy"), 2);
	/* Errors: again, unknown, malformed, without permission, never-put secret. */
	assert_int_equal(coffer_destroy(s, "2", ver), COFFER_ENOTFOUND);
	assert_non_null(strstr(coffer_errmsg(st), "version '2' is destroyed"));
	assert_int_equal(coffer_destroy(s, "99", ver), COFFER_ENOTFOUND);
	assert_int_equal(coffer_destroy(s, "0", ver), COFFER_EINVAL);
	assert_int_equal(coffer_destroy(s, "1abc", ver), COFFER_EINVAL);
	assert_int_equal(coffer_destroy(s, "abc", ver), COFFER_ENOTFOUND); /* no such label */
	assert_int_equal(coffer_destroy(ro, "1", ver), COFFER_EPERM);
	coffer_secret *none = ref(st, "destroy-never", COFFER_PUT);
	assert_int_equal(coffer_destroy(none, "latest", ver), COFFER_ENOTFOUND);
	assert_int_equal(coffer_destroy(none, "1", ver), COFFER_ENOTFOUND);
	access_is(s, "1", "one", 3, "1"); /* nothing else was touched */
	/* Destroying every version leaves the secret with no latest. */
	assert_int_equal(coffer_destroy(s, "1", NULL), COFFER_OK);
	assert_int_equal(coffer_destroy(s, "latest", NULL), COFFER_OK);
	assert_int_equal(coffer_access(o, "latest", &v), COFFER_ENOTFOUND);
	assert_int_equal(coffer_destroy(s, "latest", NULL), COFFER_ENOTFOUND);
	assert_int_equal(listed_count(other, "destroy"), 0); /* still listed: its ids are taken */
	size_t moved = 0; /* the re-encrypt pass passes destroyed rows by */
	assert_int_equal(coffer_reencrypt(st, &moved), COFFER_OK);
	coffer_secret_free(none);
	coffer_secret_free(ro);
	coffer_secret_free(o);
	coffer_secret_free(s);
	coffer_close(other);
	coffer_close(st);
}

static void access_rc_is(coffer_secret *s, const char *version, int want);
static int is_pg(void);
static void tamper(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void expect_integrity(const char *base, const char *version);
static const char *tab_s(void);
static const char *saved(const char *what);

/* Version states (docs/lifecycle.md): a disabled version keeps its value but refuses access
 * with its own error; latest is the newest enabled version, also in another handle's cache;
 * enable undoes it; destroy works on a disabled version; a destroyed one moves no more. */
static void test_disable_enable(void **state)
{
	coffer_store *st = open_store(), *other = open_store();
	coffer_secret *s = ref(st, "states", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *o = ref(other, "states", COFFER_ACCESS);
	coffer_secret *ro = ref(st, "states", COFFER_ACCESS);
	char ver[COFFER_VERSION_MAX] = "";
	put_ok(s, "one", 3, "1");
	put_ok(s, "two", 3, "2");
	put_ok(s, "three", 5, "3");
	access_is(o, "latest", "three", 5, "3"); /* cached in the other handle */
	assert_int_equal(coffer_disable(s, "latest", ver), COFFER_OK);
	assert_string_equal(ver, "3");
	access_is(o, "latest", "two", 3, "2"); /* its cache saw the change */
	access_is(s, "latest", "two", 3, "2");
	access_rc_is(o, "3", COFFER_EDISABLED);
	assert_non_null(strstr(coffer_errmsg(other), "version '3' is disabled"));
	assert_null(strstr(coffer_errmsg(other), "three"));
	assert_int_equal(coffer_grpc_status(COFFER_EDISABLED), 9);
	/* Disabled again: nothing changes. An older one too: latest stays. */
	assert_int_equal(coffer_disable(s, "3", NULL), COFFER_OK);
	assert_int_equal(coffer_disable(s, "1", NULL), COFFER_OK);
	access_is(o, "latest", "two", 3, "2");
	states sv = {{0}, 0};
	assert_int_equal(coffer_list_versions(s, collect_states, &sv), COFFER_OK);
	assert_string_equal(sv.list, "1~:3 2+:3 3~:5 "); /* values kept, sizes shown */
	assert_int_equal(listed_count(st, "states"), 1);
	/* Every version disabled: no latest. */
	assert_int_equal(coffer_disable(s, "latest", ver), COFFER_OK);
	assert_string_equal(ver, "2");
	access_rc_is(o, "latest", COFFER_ENOTFOUND);
	/* A put makes a new enabled latest. */
	put_ok(s, "four", 4, "4");
	access_is(o, "latest", "four", 4, "4");
	/* Enable: by id only; the value is back as it was. */
	assert_int_equal(coffer_enable(s, "latest", NULL), COFFER_EINVAL);
	assert_int_equal(coffer_enable(s, "3", ver), COFFER_OK);
	assert_string_equal(ver, "3");
	access_is(o, "3", "three", 5, "3");
	access_is(o, "latest", "four", 4, "4");
	assert_int_equal(coffer_enable(s, "3", NULL), COFFER_OK); /* enabled already */
	assert_int_equal(coffer_disable(s, "4", NULL), COFFER_OK);
	access_is(o, "latest", "three", 5, "3");
	/* Destroy a disabled version: gone for good, enable cannot bring it back. */
	assert_int_equal(coffer_destroy(s, "1", NULL), COFFER_OK);
	access_rc_is(o, "1", COFFER_ENOTFOUND);
	assert_int_equal(coffer_enable(s, "1", NULL), COFFER_ENOTFOUND);
	assert_non_null(strstr(coffer_errmsg(st), "version '1' is destroyed"));
	assert_int_equal(coffer_disable(s, "1", NULL), COFFER_ENOTFOUND);
	/* Errors: unknown, malformed, permission, never-put secret. */
	assert_int_equal(coffer_disable(s, "99", NULL), COFFER_ENOTFOUND);
	assert_int_equal(coffer_enable(s, "99", NULL), COFFER_ENOTFOUND);
	assert_int_equal(coffer_disable(s, "x y", NULL), COFFER_EINVAL);
	assert_int_equal(coffer_disable(s, "x", NULL), COFFER_ENOTFOUND); /* no such label */
	assert_int_equal(coffer_disable(ro, "2", NULL), COFFER_EPERM);
	assert_int_equal(coffer_enable(ro, "2", NULL), COFFER_EPERM);
	coffer_secret *none = ref(st, "states-never", COFFER_PUT);
	assert_int_equal(coffer_disable(none, "latest", NULL), COFFER_ENOTFOUND);
	sv.n = 0;
	assert_int_equal(coffer_list_versions(s, collect_states, &sv), COFFER_OK);
	assert_string_equal(sv.list, "1-:0 2~:3 3+:5 4~:4 ");
	/* A disabled version keeps its data key: re-encrypt moves it, and it still reads once
	 * enabled. */
	assert_int_equal(coffer_rotate_data_key(st, NULL), COFFER_OK);
	size_t moved = 0;
	assert_int_equal(coffer_reencrypt(st, &moved), COFFER_OK);
	assert_true(moved >= 3);
	assert_int_equal(coffer_enable(s, "2", NULL), COFFER_OK);
	coffer_close(other);
	other = open_store();
	coffer_secret_free(o);
	o = ref(other, "states", COFFER_ACCESS);
	access_is(o, "2", "two", 3, "2");
	coffer_secret_free(none);
	coffer_secret_free(ro);
	coffer_secret_free(o);
	coffer_secret_free(s);
	coffer_close(other);
	coffer_close(st);
}

/* ------------------------------------------------------------------------------------------ */
/* Check-and-set, request ids, retention (docs/lifecycle.md).                                 */

static int put_opts(coffer_secret *s, const char *v, const coffer_put_opts *o, char *ver,
                    int *replayed)
{
	return coffer_put_ex(s, v, strlen(v), o, ver, replayed);
}

static void test_check_and_set(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "cas", COFFER_PUT | COFFER_ACCESS);
	char ver[COFFER_VERSION_MAX] = "";
	coffer_put_opts o = {.flags = COFFER_PUT_IF_VERSION, .if_version = 1};
	/* A secret with no versions: only 0 matches. */
	assert_int_equal(put_opts(s, "value-x", &o, ver, NULL), COFFER_ECONFLICT);
	assert_non_null(strstr(coffer_errmsg(st), "has no versions"));
	access_rc_is(s, "latest", COFFER_ENOTFOUND); /* nothing stored */
	o.if_version = 0;
	assert_int_equal(put_opts(s, "value-1", &o, ver, NULL), COFFER_OK);
	assert_string_equal(ver, "1");
	assert_int_equal(put_opts(s, "value-y", &o, ver, NULL), COFFER_ECONFLICT);
	assert_non_null(strstr(coffer_errmsg(st), "is at version 1, not 0"));
	assert_null(strstr(coffer_errmsg(st), "value-"));
	o.if_version = 1;
	assert_int_equal(put_opts(s, "value-2", &o, ver, NULL), COFFER_OK);
	assert_string_equal(ver, "2");
	/* The newest id counts whatever its state: disabled, destroyed. */
	assert_int_equal(coffer_disable(s, "2", NULL), COFFER_OK);
	assert_int_equal(put_opts(s, "value-z", &o, ver, NULL), COFFER_ECONFLICT);
	o.if_version = 2;
	assert_int_equal(put_opts(s, "value-3", &o, ver, NULL), COFFER_OK);
	assert_string_equal(ver, "3");
	access_is(s, "latest", "value-3", 7, "3");
	assert_int_equal(coffer_grpc_status(COFFER_ECONFLICT), 9);
	assert_int_equal(coffer_exit_code(COFFER_ECONFLICT), 9);
	assert_int_not_equal(coffer_exit_code(COFFER_ECONFLICT), coffer_exit_code(COFFER_EIO));
	/* Unknown flags are misuse; NULL options are a plain put. */
	coffer_put_opts bad = {.flags = 0x80};
	assert_int_equal(put_opts(s, "value-w", &bad, ver, NULL), COFFER_EMISUSE);
	assert_int_equal(put_opts(s, "value-4", NULL, ver, NULL), COFFER_OK);
	assert_string_equal(ver, "4");
	coffer_secret_free(s);
	coffer_close(st);
}

static void test_request_id(void **state)
{
	coffer_store *st = open_store(), *other = open_store();
	coffer_secret *s = ref(st, "rid", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *o2 = ref(other, "rid", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *t = ref(st, "rid.other", COFFER_PUT | COFFER_ACCESS);
	char ver[COFFER_VERSION_MAX] = "";
	int replayed = -1;
	coffer_put_opts o = {.request_id = "token-123", .request_id_len = 9};
	assert_int_equal(put_opts(s, "value-1", &o, ver, &replayed), COFFER_OK);
	assert_string_equal(ver, "1");
	assert_int_equal(replayed, 0);
	put_ok(s, "value-2", 7, "2");
	/* The same id and value, from another handle: the first version, nothing stored. */
	assert_int_equal(put_opts(o2, "value-1", &o, ver, &replayed), COFFER_OK);
	assert_string_equal(ver, "1");
	assert_int_equal(replayed, 1);
	access_is(s, "latest", "value-2", 7, "2");
	/* The same id, another value: refused, nothing stored, no value in the message. */
	assert_int_equal(put_opts(s, "value-9", &o, ver, &replayed), COFFER_EREUSED);
	assert_non_null(strstr(coffer_errmsg(st), "another value"));
	assert_null(strstr(coffer_errmsg(st), "value-"));
	assert_null(strstr(coffer_errmsg(st), "token-123"));
	put_ok(s, "value-3", 7, "3"); /* ids stay gapless */
	/* Ids are per secret. */
	assert_int_equal(put_opts(t, "value-t", &o, ver, &replayed), COFFER_OK);
	assert_string_equal(ver, "1");
	assert_int_equal(replayed, 0);
	/* A retry of a put that won answers its version even though if_version no longer holds. */
	coffer_put_opts c = {.flags = COFFER_PUT_IF_VERSION,
	                     .if_version = 3,
	                     .request_id = "retry",
	                     .request_id_len = 5};
	assert_int_equal(put_opts(s, "value-4", &c, ver, &replayed), COFFER_OK);
	assert_string_equal(ver, "4");
	assert_int_equal(put_opts(s, "value-4", &c, ver, &replayed), COFFER_OK);
	assert_string_equal(ver, "4");
	assert_int_equal(replayed, 1);
	/* Bad ids. */
	coffer_put_opts e = {.request_id = "x", .request_id_len = 0};
	assert_int_equal(put_opts(s, "value-5", &e, ver, NULL), COFFER_EINVAL);
	char longid[COFFER_REQUEST_ID_MAX + 1];
	memset(longid, 'r', sizeof longid);
	e.request_id = longid;
	e.request_id_len = sizeof longid;
	assert_int_equal(put_opts(s, "value-5", &e, ver, NULL), COFFER_EINVAL);
	/* Stored only as a keyed hash: the id is nowhere in the database in clear. */
	if (!is_pg()) {
		char cmd[4400];
		snprintf(cmd, sizeof cmd, "grep -rqa token-123 '%s'", location);
		assert_int_not_equal(system(cmd), 0);
	} else {
		tamper("DO $$ BEGIN IF EXISTS (SELECT 1 FROM coffer_requests WHERE position("
		       "'token-123'::bytea IN rid) > 0 OR length(rid) <> 32) THEN RAISE EXCEPTION "
		       "'clear id'; END IF; END $$");
	}
	coffer_secret_free(t);
	coffer_secret_free(o2);
	coffer_secret_free(s);
	coffer_close(other);
	coffer_close(st);
}

static void test_retention(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "retain", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *ro = ref(st, "retain", COFFER_ACCESS);
	coffer_secret *none = ref(st, "retain-never", COFFER_PUT);
	assert_int_equal(coffer_set_max_versions(none, 2), COFFER_ENOTFOUND);
	assert_int_equal(coffer_set_max_versions(ro, 2), COFFER_EPERM);
	put_ok(s, "value-1", 7, "1");
	put_ok(s, "value-2", 7, "2");
	put_ok(s, "value-3", 7, "3");
	put_ok(s, "value-4", 7, "4");
	assert_int_equal(coffer_set_max_versions(s, 2), COFFER_OK);
	states sv = {{0}, 0};
	assert_int_equal(coffer_list_versions(s, collect_states, &sv), COFFER_OK);
	assert_string_equal(sv.list, "1+:7 2+:7 3+:7 4+:7 "); /* applied from the next put */
	assert_int_equal(coffer_disable(s, "3", NULL), COFFER_OK);
	put_ok(s, "value-5", 7, "5");
	sv.n = 0;
	assert_int_equal(coffer_list_versions(s, collect_states, &sv), COFFER_OK);
	/* Disabled versions count (they hold a value); the oldest go first. */
	assert_string_equal(sv.list, "1-:0 2-:0 3-:0 4+:7 5+:7 ");
	access_rc_is(s, "1", COFFER_ENOTFOUND);
	access_is(s, "4", "value-4", 7, "4");
	put_ok(s, "value-6", 7, "6");
	access_rc_is(s, "4", COFFER_ENOTFOUND);
	access_is(s, "latest", "value-6", 7, "6");
	assert_int_equal(listed_count(st, "retain"), 2);
	/* 0: no limit again. */
	assert_int_equal(coffer_set_max_versions(s, 0), COFFER_OK);
	put_ok(s, "value-7", 7, "7");
	assert_int_equal(listed_count(st, "retain"), 3);
	coffer_secret_free(none);
	coffer_secret_free(ro);
	coffer_secret_free(s);
	coffer_close(st);
}

/* Races between processes: each child opens its own handle, waits for the go byte, does one
 * put and reports (rc, version, replayed) on its pipe. */
typedef struct race_out {
	int rc;
	int replayed;
	char version[COFFER_VERSION_MAX];
} race_out;

static void race_puts(int nproc, const char *base, const char *const *values,
                      const coffer_put_opts *o, race_out *out)
{
	int go[2];
	pid_t pid[8];
	int res[8][2];
	assert_true(nproc <= 8);
	assert_int_equal(pipe(go), 0);
	fflush(NULL);
	for (int i = 0; i < nproc; i++) {
		assert_int_equal(pipe(res[i]), 0);
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			close(go[1]);
			coffer_options op = {.master_key_b64 = TEST_MASTER_KEY,
			                     .flags = COFFER_OPEN_NO_ENV};
			coffer_store *cs = NULL;
			coffer_secret *cs_s = NULL;
			race_out r = {COFFER_EIO, 0, ""};
			char n[300], b;
			name(n, sizeof n, base);
			if (coffer_open(&cs, location, &op, NULL, 0) == COFFER_OK &&
			    coffer_secret_ref(cs, n, COFFER_PUT, &cs_s) == COFFER_OK &&
			    read(go[0], &b, 1) == 1)
				r.rc = coffer_put_ex(cs_s, values[i], strlen(values[i]), o,
				                     r.version, &r.replayed);
			if (write(res[i][1], &r, sizeof r) != (ssize_t)sizeof r)
				_exit(1);
			coffer_secret_free(cs_s);
			coffer_close(cs);
			_exit(0);
		}
		close(res[i][1]);
	}
	close(go[0]);
	char bytes[8] = {0};
	assert_int_equal(write(go[1], bytes, (size_t)nproc), nproc); /* all at once */
	close(go[1]);
	for (int i = 0; i < nproc; i++) {
		assert_int_equal(read(res[i][0], &out[i], sizeof out[i]), (ssize_t)sizeof out[i]);
		close(res[i][0]);
		int status = 0;
		assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

#define RACE_ROUNDS 6

/* Issue 9 acceptance 1: writers with the same expected version, in processes of their own,
 * started together: exactly one wins each round; the others store nothing. */
static void test_race_check_and_set(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "race.cas", COFFER_PUT | COFFER_ACCESS);
	const char *const values[4] = {"value-a", "value-b", "value-c", "value-d"};
	for (int round = 0; round < RACE_ROUNDS; round++) {
		coffer_put_opts o = {.flags = COFFER_PUT_IF_VERSION, .if_version = (uint64_t)round};
		race_out out[4];
		race_puts(4, "race.cas", values, &o, out);
		int wins = 0, winner = -1;
		for (int i = 0; i < 4; i++) {
			if (out[i].rc == COFFER_OK) {
				wins++;
				winner = i;
				char want[24];
				snprintf(want, sizeof want, "%d", round + 1);
				assert_string_equal(out[i].version, want);
			} else if (out[i].rc != COFFER_ECONFLICT) {
				fail_msg("round %d: writer %d: rc %d", round, i, out[i].rc);
			}
		}
		assert_int_equal(wins, 1);
		char want[24];
		snprintf(want, sizeof want, "%d", round + 1);
		access_is(s, "latest", values[winner], 7, want);
	}
	coffer_secret_free(s);
	coffer_close(st);
}

/* The same request id (and value) from several processes at once: one version, every one of
 * them told its id. */
static void test_race_request_id(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "race.rid", COFFER_PUT | COFFER_ACCESS);
	const char *const values[4] = {"value-r", "value-r", "value-r", "value-r"};
	for (int round = 0; round < RACE_ROUNDS; round++) {
		char id[32];
		snprintf(id, sizeof id, "request-%d", round);
		coffer_put_opts o = {.request_id = id, .request_id_len = strlen(id)};
		race_out out[4];
		race_puts(4, "race.rid", values, &o, out);
		int fresh = 0;
		char want[24];
		snprintf(want, sizeof want, "%d", round + 1);
		for (int i = 0; i < 4; i++) {
			assert_int_equal(out[i].rc, COFFER_OK);
			assert_string_equal(out[i].version, want);
			fresh += !out[i].replayed;
		}
		assert_int_equal(fresh, 1);
	}
	assert_int_equal(listed_count(st, "race.rid"), RACE_ROUNDS);
	coffer_secret_free(s);
	coffer_close(st);
}

/* Retention under concurrent puts (threads with handles of their own, and processes): at the
 * end exactly max_versions versions hold a value, the newest ones. */
static void test_race_retention(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "race.keep", COFFER_PUT | COFFER_ACCESS);
	put_ok(s, "value-0", 7, "1");
	assert_int_equal(coffer_set_max_versions(s, 3), COFFER_OK);
	const char *const values[4] = {"value-a", "value-b", "value-c", "value-d"};
	for (int round = 0; round < RACE_ROUNDS / 2; round++) {
		race_out out[4];
		race_puts(4, "race.keep", values, NULL, out);
		for (int i = 0; i < 4; i++)
			assert_int_equal(out[i].rc, COFFER_OK);
	}
	uint64_t last = 1 + 4 * (RACE_ROUNDS / 2);
	states sv = {{0}, 0};
	size_t enabled = 0;
	assert_int_equal(coffer_list_versions(s, count_enabled, &enabled), COFFER_OK);
	assert_int_equal(enabled, 3);
	for (uint64_t v = 1; v <= last; v++) {
		char vs[24];
		snprintf(vs, sizeof vs, "%llu", (unsigned long long)v);
		coffer_value *val = NULL;
		int rc = coffer_access(s, vs, &val);
		coffer_value_free(val);
		assert_int_equal(rc, v + 3 > last ? COFFER_OK : COFFER_ENOTFOUND);
	}
	(void)sv;
	coffer_secret_free(s);
	coffer_close(st);
}

/* ------------------------------------------------------------------------------------------ */
/* Labels (docs/lifecycle.md).                                                                */

typedef struct labels_seen {
	char list[512];
	size_t n;
} labels_seen;

static int collect_labels(void *ctx, const char *label, const char *version)
{
	labels_seen *l = ctx;
	l->n += (size_t)snprintf(l->list + l->n, sizeof l->list - l->n, "%s=%s ", label, version);
	return l->n < sizeof l->list - 1 ? 0 : 1;
}

static const char *labels_of(coffer_secret *s)
{
	static labels_seen l;
	l.n = 0;
	l.list[0] = '\0';
	assert_int_equal(coffer_list_labels(s, collect_labels, &l), COFFER_OK);
	return l.list;
}

static void test_labels(void **state)
{
	coffer_store *st = open_store(), *other = open_store();
	coffer_secret *s = ref(st, "labels", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *o = ref(other, "labels", COFFER_ACCESS);
	coffer_secret *ro = ref(st, "labels", COFFER_ACCESS);
	char ver[COFFER_VERSION_MAX] = "";
	put_ok(s, "value-1", 7, "1");
	assert_string_equal(labels_of(s), "latest=1 ");
	put_ok(s, "value-2", 7, "2");
	/* previous: what was latest before the newest put. */
	access_is(o, "previous", "value-1", 7, "1");
	access_is(o, "PREVIOUS", "value-1", 7, "1");
	put_ok(s, "value-3", 7, "3");
	access_is(o, "previous", "value-2", 7, "2");
	/* Custom labels: set, read, move. */
	assert_int_equal(coffer_label_set(s, "stable", "1", ver), COFFER_OK);
	assert_string_equal(ver, "1");
	assert_int_equal(coffer_label_set(s, "blue", "latest", ver), COFFER_OK);
	assert_string_equal(ver, "3");
	access_is(o, "stable", "value-1", 7, "1");
	access_is(o, "blue", "value-3", 7, "3");
	assert_string_equal(labels_of(o), "latest=3 previous=2 blue=3 stable=1 ");
	assert_int_equal(coffer_label_set(s, "stable", "blue", ver), COFFER_OK); /* moved */
	assert_string_equal(ver, "3");
	access_is(o, "stable", "value-3", 7, "3");
	assert_int_equal(coffer_label_set(s, "green", "previous", ver), COFFER_OK);
	assert_string_equal(ver, "2");
	/* Labels are case-sensitive; latest is case-insensitive and reserved. */
	access_rc_is(o, "Stable", COFFER_ENOTFOUND);
	assert_non_null(strstr(coffer_errmsg(other), "no label 'Stable'"));
	/* A label works wherever a version does: disable, enable, destroy. */
	assert_int_equal(coffer_disable(s, "green", ver), COFFER_OK);
	assert_string_equal(ver, "2");
	access_rc_is(o, "green", COFFER_EDISABLED);
	assert_int_equal(coffer_enable(s, "green", ver), COFFER_OK);
	access_is(o, "green", "value-2", 7, "2");
	assert_int_equal(coffer_destroy(s, "green", ver), COFFER_OK);
	assert_string_equal(ver, "2");
	access_rc_is(o, "green", COFFER_ENOTFOUND);
	access_rc_is(o, "previous", COFFER_ENOTFOUND);
	/* A destroyed version cannot be labelled; nor can one that does not exist. */
	assert_int_equal(coffer_label_set(s, "red", "2", NULL), COFFER_ENOTFOUND);
	assert_non_null(strstr(coffer_errmsg(st), "is destroyed"));
	assert_int_equal(coffer_label_set(s, "red", "9", NULL), COFFER_ENOTFOUND);
	assert_int_equal(coffer_label_set(s, "red", "nolabel", NULL), COFFER_ENOTFOUND);
	/* Bad labels: reserved, would read as ids, bad characters, too long. */
	static const char *const bad[] = {
	    "latest",
	    "LATEST",
	    "previous",
	    "Previous",
	    "1",
	    "1a",
	    "_a",
	    "a b",
	    "a/b",
	    "",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(coffer_label_set(s, bad[i], "1", NULL), COFFER_EINVAL);
		assert_non_null(strstr(coffer_errmsg(st), "invalid label"));
	}
	assert_int_equal(coffer_label_set(s, "a.b_c-D9", "1", NULL), COFFER_OK);
	assert_int_equal(coffer_label_set(ro, "x", "1", NULL), COFFER_EPERM);
	assert_int_equal(coffer_label_delete(ro, "blue"), COFFER_EPERM);
	/* Delete. */
	assert_int_equal(coffer_label_delete(s, "blue"), COFFER_OK);
	assert_int_equal(coffer_label_delete(s, "blue"), COFFER_ENOTFOUND);
	access_rc_is(o, "blue", COFFER_ENOTFOUND);
	/* green still names 2, destroyed: reading it says not found. */
	assert_string_equal(labels_of(o), "latest=3 previous=2 a.b_c-D9=1 green=2 stable=3 ");
	/* Never-put secret. */
	coffer_secret *none = ref(st, "labels-never", COFFER_PUT | COFFER_ACCESS);
	assert_int_equal(coffer_label_set(none, "x", "1", NULL), COFFER_ENOTFOUND);
	access_rc_is(none, "x", COFFER_ENOTFOUND);
	/* At most 64 labels (3 now). */
	char lb[16];
	for (int i = 0; i < 61; i++) {
		snprintf(lb, sizeof lb, "l%d", i);
		assert_int_equal(coffer_label_set(s, lb, "1", NULL), COFFER_OK);
	}
	assert_int_equal(coffer_label_set(s, "one-too-many", "1", NULL), COFFER_EBUSY);
	assert_int_equal(coffer_label_set(s, "l0", "3", NULL), COFFER_OK); /* a move still works */
	access_is(o, "l0", "value-3", 7, "3");
	coffer_secret_free(none);
	coffer_secret_free(ro);
	coffer_secret_free(o);
	coffer_secret_free(s);
	coffer_close(other);
	coffer_close(st);
}

/* Retention keeps every labelled version (previous included), destroying the oldest others. */
static void test_retention_labels(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "retain.lab", COFFER_PUT | COFFER_ACCESS);
	put_ok(s, "value-1", 7, "1");
	put_ok(s, "value-2", 7, "2");
	put_ok(s, "value-3", 7, "3");
	assert_int_equal(coffer_label_set(s, "stable", "1", NULL), COFFER_OK);
	assert_int_equal(coffer_set_max_versions(s, 2), COFFER_OK);
	put_ok(s, "value-4", 7, "4");
	/* 1 stable, 3 previous, 4 latest: only 2 may go. */
	states sv = {{0}, 0};
	assert_int_equal(coffer_list_versions(s, collect_states, &sv), COFFER_OK);
	assert_string_equal(sv.list, "1+:7 2-:0 3+:7 4+:7 ");
	put_ok(s, "value-5", 7, "5");
	sv.n = 0;
	assert_int_equal(coffer_list_versions(s, collect_states, &sv), COFFER_OK);
	assert_string_equal(sv.list, "1+:7 2-:0 3-:0 4+:7 5+:7 ");
	access_is(s, "stable", "value-1", 7, "1");
	coffer_secret_free(s);
	coffer_close(st);
}

/* Labels are covered by the secret's MAC: moved, added or deleted in the database, a read by
 * label is an integrity error, and so is a label move there. */
static void test_labels_tamper(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "tamper.lab", COFFER_PUT | COFFER_ACCESS);
	put_ok(s, "value-1", 7, "1");
	put_ok(s, "value-2", 7, "2");
	assert_int_equal(coffer_label_set(s, "stable", "2", NULL), COFFER_OK);
	char n[300];
	name(n, sizeof n, "tamper.lab");
	const char *tl = is_pg() ? "coffer_labels" : "labels";
	char who[400];
	snprintf(who, sizeof who, "(SELECT id FROM %s WHERE name = '%s')", tab_s(), n);
	tamper("UPDATE %s SET version = 1 WHERE secret_id = %s", tl, who);
	expect_integrity("tamper.lab", "stable");
	assert_int_equal(coffer_label_set(s, "other", "1", NULL), COFFER_EINTEGRITY);
	tamper("UPDATE %s SET version = 2 WHERE secret_id = %s", tl, who);
	access_is(s, "stable", "value-2", 7, "2");
	tamper("INSERT INTO %s (secret_id, name, version) SELECT %s, 'extra', 1", tl, who);
	expect_integrity("tamper.lab", "stable");
	tamper("DELETE FROM %s WHERE secret_id = %s", tl, who);
	expect_integrity("tamper.lab", "stable");
	/* previous edited. */
	tamper("UPDATE %s SET previous = 2 WHERE name = '%s'", tab_s(), n);
	expect_integrity("tamper.lab", "previous");
	expect_integrity("tamper.lab", "latest");
	coffer_secret_free(s);
	coffer_close(st);
}

typedef struct label_race {
	int id;
	int rc;
} label_race;

static void *label_mover(void *arg)
{
	label_race *lr = arg;
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "race.label", COFFER_PUT | COFFER_ACCESS);
	lr->rc = COFFER_OK;
	for (int i = 0; i < 20 && lr->rc == COFFER_OK; i++) {
		char ver[COFFER_VERSION_MAX];
		if (lr->id == 0) {
			lr->rc = coffer_label_set(s, "stable", "latest", ver);
		} else if (lr->id == 1) {
			lr->rc = coffer_label_set(s, "stable", "previous", ver);
			if (lr->rc == COFFER_ENOTFOUND) /* previous destroyed meanwhile: fine */
				lr->rc = COFFER_OK;
		} else {
			char v[16];
			snprintf(v, sizeof v, "value-%d-%d", lr->id, i);
			lr->rc = coffer_put(s, v, strlen(v), ver);
		}
	}
	coffer_secret_free(s);
	coffer_close(st);
	return NULL;
}

/* Label moves racing puts (handles of their own, in threads): every call succeeds, and at the
 * end the labels and versions check against their MACs and stable names a version. */
static void test_race_labels(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "race.label", COFFER_PUT | COFFER_ACCESS);
	put_ok(s, "value-0", 7, "1");
	put_ok(s, "value-1", 7, "2");
	pthread_t th[4];
	label_race lr[4];
	for (int i = 0; i < 4; i++) {
		lr[i] = (label_race){i, -1};
		assert_int_equal(pthread_create(&th[i], NULL, label_mover, &lr[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		assert_int_equal(lr[i].rc, COFFER_OK);
	coffer_value *v = NULL;
	assert_int_equal(coffer_access(s, "stable", &v), COFFER_OK);
	coffer_value_free(v);
	size_t enabled = 0;
	assert_int_equal(coffer_list_versions(s, count_enabled, &enabled), COFFER_OK);
	assert_int_equal(enabled, 2 + 2 * 20);
	labels_of(s);
	coffer_secret_free(s);
	coffer_close(st);
}

/* ------------------------------------------------------------------------------------------ */
/* Delete and restore, describe, pages (docs/lifecycle.md).                                   */

static int64_t fake_now;
static int64_t fake_clock(void)
{
	return fake_now;
}

static void test_delete_restore(void **state)
{
	coffer_store *st = open_store(), *other = open_store();
	coffer_secret *s = ref(st, "del", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *o = ref(other, "del", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *ro = ref(st, "del", COFFER_ACCESS);
	put_ok(s, "value-1", 7, "1");
	put_ok(s, "value-2", 7, "2");
	assert_int_equal(coffer_label_set(s, "stable", "1", NULL), COFFER_OK);
	access_is(o, "latest", "value-2", 7, "2"); /* cached in the other handle */
	assert_int_equal(coffer_delete(ro, 7, NULL), COFFER_EPERM);
	assert_int_equal(coffer_delete(s, 31, NULL), COFFER_EINVAL);
	int64_t at = 0, before = core_now_ms();
	assert_int_equal(coffer_delete(s, 7, &at), COFFER_OK);
	assert_true(at >= before + 7 * 86400000LL && at <= core_now_ms() + 7 * 86400000LL);
	/* Hidden and refused everywhere, also from the other handle's cache. */
	access_rc_is(o, "latest", COFFER_EDELETED);
	assert_non_null(strstr(coffer_errmsg(other), "scheduled for deletion"));
	access_rc_is(o, "1", COFFER_EDELETED);
	access_rc_is(o, "stable", COFFER_EDELETED);
	assert_int_equal(coffer_put(o, "value-x", 7, NULL), COFFER_EDELETED);
	assert_int_equal(coffer_disable(o, "1", NULL), COFFER_EDELETED);
	assert_int_equal(coffer_label_set(o, "x", "1", NULL), COFFER_EDELETED);
	assert_int_equal(listed_count(other, "del"), -1);
	coffer_secret_info info;
	assert_int_equal(coffer_describe(o, &info), COFFER_OK); /* still described */
	assert_int_equal(info.purge_at_unix_ms, at);
	assert_int_equal(coffer_grpc_status(COFFER_EDELETED), 9);
	/* A purge before the window leaves it. */
	size_t n = 99;
	assert_int_equal(coffer_purge(st, &n), COFFER_OK);
	assert_int_equal(n, 0);
	/* Restore: as it was. */
	assert_int_equal(coffer_restore(o), COFFER_OK);
	assert_int_equal(coffer_restore(o), COFFER_EINVAL);
	assert_non_null(strstr(coffer_errmsg(other), "not scheduled"));
	access_is(o, "latest", "value-2", 7, "2");
	access_is(s, "stable", "value-1", 7, "1");
	put_ok(s, "value-3", 7, "3");
	assert_int_equal(listed_count(other, "del"), 3);
	/* Past the window: purged at the next open, for good; the name is free again. */
	assert_int_equal(coffer_delete(s, 1, &at), COFFER_OK);
	fake_now = at + 1;
	core_clock_hook = fake_clock;
	assert_int_equal(coffer_restore(s), COFFER_ENOTFOUND); /* too late, even before purging */
	coffer_store *later = open_store();                    /* purges */
	core_clock_hook = NULL;
	coffer_secret *l = ref(later, "del", COFFER_PUT | COFFER_ACCESS);
	access_rc_is(l, "latest", COFFER_ENOTFOUND);
	access_rc_is(o, "1", COFFER_ENOTFOUND);
	assert_int_equal(coffer_describe(l, &info), COFFER_ENOTFOUND);
	put_ok(l, "value-new", 9, "1");
	access_rc_is(l, "stable", COFFER_ENOTFOUND);
	/* --force: at once. */
	assert_int_equal(coffer_delete(l, 0, NULL), COFFER_OK);
	access_rc_is(o, "latest", COFFER_ENOTFOUND);
	assert_int_equal(listed_count(other, "del"), -1);
	coffer_secret_free(l);
	coffer_close(later);
	coffer_secret_free(ro);
	coffer_secret_free(o);
	coffer_secret_free(s);
	coffer_close(other);
	coffer_close(st);
}

/* max_versions is MAC'd: lowered in the database, the next put is an integrity error instead of
 * destroying old versions (and neither is the secret readable). */
static void test_retention_tamper(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "tamper.keep", COFFER_PUT | COFFER_ACCESS);
	put_ok(s, "value-1", 7, "1");
	put_ok(s, "value-2", 7, "2");
	put_ok(s, "value-3", 7, "3");
	assert_int_equal(coffer_set_max_versions(s, 5), COFFER_OK);
	char n[300];
	name(n, sizeof n, "tamper.keep");
	tamper("UPDATE %s SET max_versions = 1 WHERE name = '%s'", tab_s(), n);
	assert_int_equal(coffer_put(s, "value-4", 7, NULL), COFFER_EINTEGRITY);
	expect_integrity("tamper.keep", "latest");
	tamper("UPDATE %s SET max_versions = 5 WHERE name = '%s'", tab_s(), n);
	access_is(s, "1", "value-1", 7, "1"); /* nothing was destroyed */
	put_ok(s, "value-4", 7, "4");
	coffer_secret_free(s);
	coffer_close(st);
}

/* Deletion is MAC'd: cleared in the database, the secret is an integrity error, not readable. */
static void test_delete_tamper(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "tamper.del", COFFER_PUT | COFFER_ACCESS);
	put_ok(s, "value-1", 7, "1");
	assert_int_equal(coffer_delete(s, 7, NULL), COFFER_OK);
	char n[300];
	name(n, sizeof n, "tamper.del");
	tamper("UPDATE %s SET purge_ms = 0 WHERE name = '%s'", tab_s(), n);
	expect_integrity("tamper.del", "latest");
	coffer_secret_free(s);
	coffer_close(st);
}

static void test_describe(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "desc", COFFER_PUT | COFFER_ACCESS);
	coffer_secret_info info;
	assert_int_equal(coffer_describe(s, &info), COFFER_ENOTFOUND);
	assert_int_equal(coffer_set_info(s, "x", NULL), COFFER_ENOTFOUND);
	int64_t t0 = core_now_ms();
	put_ok(s, "value-1", 7, "1");
	put_ok(s, "value-2", 7, "2");
	assert_int_equal(coffer_label_set(s, "stable", "1", NULL), COFFER_OK);
	assert_int_equal(coffer_set_max_versions(s, 5), COFFER_OK);
	assert_int_equal(coffer_set_info(s, "the database password", "team=payments\nenv=prod"),
	                 COFFER_OK);
	assert_int_equal(coffer_describe(s, &info), COFFER_OK);
	assert_string_equal(info.description, "the database password");
	assert_string_equal(info.tags, "team=payments\nenv=prod\n");
	assert_string_equal(info.current_version, "2");
	assert_string_equal(info.last_version, "2");
	assert_string_equal(info.previous_version, "1");
	assert_int_equal(info.max_versions, 5);
	assert_int_equal(info.nlabels, 1);
	assert_int_equal(info.purge_at_unix_ms, 0);
	assert_true(info.created_unix_ms >= t0 - 1000 && info.created_unix_ms <= core_now_ms());
	assert_true(info.updated_unix_ms >= info.created_unix_ms);
	/* NULL leaves; "" clears tags. */
	assert_int_equal(coffer_set_info(s, NULL, ""), COFFER_OK);
	assert_int_equal(coffer_describe(s, &info), COFFER_OK);
	assert_string_equal(info.description, "the database password");
	assert_string_equal(info.tags, "");
	/* Bad input: refused, nothing changed. */
	assert_int_equal(coffer_set_info(s, "a\nb", NULL), COFFER_EINVAL);
	assert_int_equal(coffer_set_info(s, NULL, "novalue"), COFFER_EINVAL);
	assert_int_equal(coffer_set_info(s, NULL, "=x"), COFFER_EINVAL);
	assert_int_equal(coffer_set_info(s, NULL, "a b=x"), COFFER_EINVAL);
	char big[COFFER_DESCRIPTION_MAX + 2];
	memset(big, 'd', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(coffer_set_info(s, big, NULL), COFFER_EINVAL);
	assert_int_equal(coffer_describe(s, &info), COFFER_OK);
	assert_string_equal(info.description, "the database password");
	coffer_secret *ro = ref(st, "desc", COFFER_ACCESS);
	assert_int_equal(coffer_set_info(ro, "x", NULL), COFFER_EPERM);
	coffer_secret_free(ro);
	coffer_secret_free(s);
	coffer_close(st);
}

typedef struct page_seen {
	char names[64][300];
	size_t n;
} page_seen;

static int page_cb(void *ctx, const char *nm, size_t nv)
{
	page_seen *p = ctx;
	if (p->n < 64)
		snprintf(p->names[p->n++], sizeof p->names[0], "%s:%zu", nm, nv);
	return 0;
}

static void test_list_pages(void **state)
{
	coffer_store *st = open_store();
	/* 23 secrets under the prefix, one deleted, one outside it that sorts right after. */
	for (int i = 0; i < 23; i++) {
		char b[64];
		snprintf(b, sizeof b, "page.s%02d", i);
		coffer_secret *s = ref(st, b, COFFER_PUT);
		put_ok(s, "value", 5, "1");
		if (i == 5)
			assert_int_equal(coffer_delete(s, 7, NULL), COFFER_OK);
		coffer_secret_free(s);
	}
	coffer_secret *after = ref(st, "page.t", COFFER_PUT);
	put_ok(after, "value", 5, "1");
	char pre[64], tok[COFFER_PAGE_TOKEN_MAX] = "", first[300];
	name(pre, sizeof pre, "page.s");
	page_seen all = {.n = 0};
	int pages = 0;
	do {
		char next[COFFER_PAGE_TOKEN_MAX];
		page_seen pg = {.n = 0};
		assert_int_equal(coffer_list_page(st, pre, 5, tok, page_cb, &pg, next), COFFER_OK);
		assert_true(pg.n <= 5);
		for (size_t i = 0; i < pg.n; i++)
			memcpy(all.names[all.n++], pg.names[i], sizeof pg.names[0]);
		snprintf(tok, sizeof tok, "%s", next);
		pages++;
	} while (tok[0] != '\0' && pages < 10);
	assert_int_equal(all.n, 22);
	assert_int_equal(pages, 5);
	for (size_t i = 0, k = 0; i < 23; i++) {
		if (i == 5)
			continue;
		char want[300];
		snprintf(want, sizeof want, "%spage.s%02zu:1", prefix, i);
		assert_string_equal(all.names[k++], want);
	}
	/* The first page from "" and NULL is the same. */
	page_seen a = {.n = 0}, b = {.n = 0};
	char n1[COFFER_PAGE_TOKEN_MAX], n2[COFFER_PAGE_TOKEN_MAX];
	assert_int_equal(coffer_list_page(st, pre, 3, NULL, page_cb, &a, n1), COFFER_OK);
	assert_int_equal(coffer_list_page(st, pre, 3, "", page_cb, &b, n2), COFFER_OK);
	assert_string_equal(n1, n2);
	snprintf(first, sizeof first, "%s", a.names[0]);
	assert_string_equal(first, b.names[0]);
	/* Bad input. */
	assert_int_equal(coffer_list_page(st, pre, 0, NULL, page_cb, &a, n1), COFFER_EINVAL);
	assert_int_equal(coffer_list_page(st, pre, 1001, NULL, page_cb, &a, n1), COFFER_EINVAL);
	assert_int_equal(coffer_list_page(st, "a b", 5, NULL, page_cb, &a, n1), COFFER_EINVAL);
	assert_int_equal(coffer_list_page(st, pre, 5, "garbage", page_cb, &a, n1), COFFER_EINVAL);
	assert_int_equal(coffer_list_page(st, pre, 5, "p1zz", page_cb, &a, n1), COFFER_EINVAL);
	coffer_secret_free(after);
	coffer_close(st);
}

typedef struct del_race {
	atomic_int stop;
	atomic_int started;
	long ok, deleted, other;
} del_race;

static void *race_reader(void *arg)
{
	del_race *dr = arg;
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "race.del", COFFER_ACCESS);
	int first = 0;
	while (!atomic_load(&dr->stop) || !first) {
		coffer_value *v = NULL;
		int rc = coffer_access(s, "latest", &v);
		if (rc == COFFER_OK &&
		    strcmp((const char *)coffer_value_data(v, NULL), "value-d") == 0)
			__atomic_add_fetch(&dr->ok, 1, __ATOMIC_RELAXED);
		else if (rc == COFFER_EDELETED)
			__atomic_add_fetch(&dr->deleted, 1, __ATOMIC_RELAXED);
		else
			__atomic_add_fetch(&dr->other, 1, __ATOMIC_RELAXED);
		coffer_value_free(v);
		if (!first++)
			atomic_fetch_add(&dr->started, 1);
	}
	coffer_secret_free(s);
	coffer_close(st);
	return NULL;
}

/* Delete racing access: readers (handles of their own) see the value or "scheduled for
 * deletion", nothing else; once delete returns, every read refuses; once restore returns,
 * every read gives the value again. */
static void test_race_delete(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "race.del", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *r = ref(st, "race.del", COFFER_ACCESS);
	put_ok(s, "value-d", 7, "1");
	del_race dr = {0};
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_reader, &dr), 0);
	while (atomic_load(&dr.started) < 3) /* every reader is reading */
		usleep(1000);
	for (int round = 0; round < 10; round++) {
		assert_int_equal(coffer_delete(s, 7, NULL), COFFER_OK);
		access_rc_is(r, "latest", COFFER_EDELETED);
		assert_int_equal(coffer_restore(s), COFFER_OK);
		access_is(r, "latest", "value-d", 7, "1");
	}
	atomic_store(&dr.stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(dr.other, 0);
	assert_true(dr.ok + dr.deleted >= 3);
	coffer_secret_free(r);
	coffer_secret_free(s);
	coffer_close(st);
}

/* ------------------------------------------------------------------------------------------ */
/* The audit log (docs/lifecycle.md).                                                         */

typedef struct audit_seen {
	uint64_t ids[4096];
	char chains[4096][40];
	char what[8192];
	size_t n, wn;
} audit_seen;

static int audit_cb(void *ctx, const coffer_audit_entry *e)
{
	audit_seen *a = ctx;
	if (a->n < 4096) {
		a->ids[a->n] = e->id;
		snprintf(a->chains[a->n], sizeof a->chains[0], "%s", e->chain);
		a->n++;
	}
	a->wn += (size_t)snprintf(a->what + a->wn, sizeof a->what - a->wn, "%s:%s:%d ", e->action,
	                          e->version, e->outcome);
	if (a->wn >= sizeof a->what)
		a->wn = sizeof a->what - 1;
	return 0;
}

static void verify_ok(coffer_store *st)
{
	uint64_t n = 0, bad = 0;
	char err[300] = "";
	int rc = coffer_audit_verify(st, &n, &bad, err, sizeof err);
	if (rc != COFFER_OK)
		fail_msg("audit verify: rc %d, entry %llu: %s", rc, (unsigned long long)bad, err);
	assert_true(n > 0);
}

static void verify_names(coffer_store *st, uint64_t want)
{
	uint64_t bad = 0;
	char err[300] = "";
	assert_int_equal(coffer_audit_verify(st, NULL, &bad, err, sizeof err), COFFER_EINTEGRITY);
	if (bad != want)
		fail_msg("verify named entry %llu, want %llu: %s", (unsigned long long)bad,
		         (unsigned long long)want, err);
	assert_non_null(strstr(err, "entry"));
}

/* The next entry of the same chain after `id` (what verify names when id is deleted). */
static uint64_t next_in_chain(const audit_seen *all, uint64_t id)
{
	size_t i = 0;
	while (i < all->n && all->ids[i] != id)
		i++;
	for (size_t k = i + 1; k < all->n; k++)
		if (strcmp(all->chains[k], all->chains[i]) == 0)
			return all->ids[k];
	return 0;
}

/* coffer_audit_append_batch: the entries in one transaction, in order, all or none; the chain
 * verifies across them. */
static void test_audit_batch(void **state)
{
	coffer_store *st = open_store();
	char nm[300];
	name(nm, sizeof nm, "abatch");
	coffer_audit_record recs[3] = {
	    {"svc:a", "Access", nm, "1", 0, NULL, 0},
	    {NULL, "Access", nm, NULL, 7, NULL, 0},
	    {"svc:b", "Put", nm, "2", 0, "canary-batch-rid", 16},
	};
	assert_int_equal(coffer_audit_append_batch(st, recs, 3), COFFER_OK);
	assert_int_equal(coffer_audit_append_batch(st, recs, 0), COFFER_OK);
	audit_seen *a = calloc(1, sizeof *a);
	assert_int_equal(coffer_audit_list(st, 0, nm, audit_cb, a), COFFER_OK);
	assert_string_equal(a->what, "Access:1:0 Access::7 Put:2:0 ");
	/* One bad record: nothing of the batch is written. */
	coffer_audit_record bad[2] = {{"svc:a", "Access", nm, "3", 0, NULL, 0},
	                              {"svc:\n", "Access", nm, "4", 0, NULL, 0}};
	assert_int_equal(coffer_audit_append_batch(st, bad, 2), COFFER_EINVAL);
	bad[1].principal = "svc:a";
	bad[1].action = NULL;
	assert_int_equal(coffer_audit_append_batch(st, bad, 2), COFFER_EMISUSE);
	memset(a, 0, sizeof *a);
	assert_int_equal(coffer_audit_list(st, 0, nm, audit_cb, a), COFFER_OK);
	assert_int_equal(a->n, 3);
	/* A batch longer than one multi-row INSERT (16 rows on both backends): in order, chained
	 * across the INSERTs; a bad record near the end of such a batch writes none of it. */
	enum { LONG = 37 };
	coffer_audit_record lng[LONG];
	char vers[LONG][8];
	char want[LONG * 16] = "", one[16];
	for (int i = 0; i < LONG; i++) {
		snprintf(vers[i], sizeof vers[i], "%d", 100 + i);
		lng[i] = (coffer_audit_record){"svc:long", "Access", nm, vers[i], 0, NULL, 0};
	}
	lng[LONG - 2].action = NULL;
	assert_int_equal(coffer_audit_append_batch(st, lng, LONG), COFFER_EMISUSE);
	memset(a, 0, sizeof *a);
	assert_int_equal(coffer_audit_list(st, 0, nm, audit_cb, a), COFFER_OK);
	assert_int_equal(a->n, 3);
	lng[LONG - 2].action = "Access";
	assert_int_equal(coffer_audit_append_batch(st, lng, LONG), COFFER_OK);
	memset(a, 0, sizeof *a);
	assert_int_equal(coffer_audit_list(st, 0, nm, audit_cb, a), COFFER_OK);
	assert_int_equal(a->n, 3 + LONG);
	strcpy(want, "Access:1:0 Access::7 Put:2:0 ");
	for (int i = 0; i < LONG; i++) {
		snprintf(one, sizeof one, "Access:%d:0 ", 100 + i);
		strcat(want, one);
	}
	assert_string_equal(a->what, want);
	free(a);
	verify_ok(st);
	coffer_close(st);
	(void)state;
}

/* Puts and lifecycle changes are in the log (with their outcome, refusals too); reads when
 * asked for; no value or request id in clear; verify passes, and names the entry each time one
 * is deleted, edited, or two are swapped. */
static void test_audit(void **state)
{
	coffer_options ao = {.master_key_b64 = TEST_MASTER_KEY,
	                     .flags = COFFER_OPEN_NO_ENV | COFFER_OPEN_AUDIT_READS,
	                     .principal = "cli:tester"};
	coffer_store *st = NULL;
	char err[512];
	assert_int_equal(coffer_open(&st, location, &ao, err, sizeof err), COFFER_OK);
	coffer_secret *s = ref(st, "audit", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *ro = ref(st, "audit", COFFER_ACCESS);
	coffer_put_opts o = {.request_id = "canary-request-7f3a", .request_id_len = 19};
	assert_int_equal(coffer_put_ex(s, "canary-value-91c2", 17, &o, NULL, NULL), COFFER_OK);
	put_ok(s, "canary-value-91c3", 17, "2");
	access_is(s, "1", "canary-value-91c2", 17, "1");
	assert_int_equal(coffer_disable(s, "1", NULL), COFFER_OK);
	assert_int_equal(coffer_put(ro, "x", 1, NULL), COFFER_EPERM); /* a refusal */
	assert_int_equal(coffer_label_set(s, "stable", "2", NULL), COFFER_OK);
	assert_int_equal(coffer_destroy(s, "1", NULL), COFFER_OK);
	assert_int_equal(coffer_audit_append(st, "svc:a", "custom", NULL, NULL, 5, "tok-x", 5),
	                 COFFER_OK);
	char nm[300];
	name(nm, sizeof nm, "audit");
	audit_seen *a = calloc(1, sizeof *a);
	assert_int_equal(coffer_audit_list(st, 0, nm, audit_cb, a), COFFER_OK);
	assert_string_equal(a->what, "put:1:0 put:2:0 access:1:0 disable:1:0 label:stable:0 "
	                             "destroy:1:0 ");
	verify_ok(st);
	/* Key operations too. */
	assert_int_equal(coffer_rotate_data_key(st, NULL), COFFER_OK);
	audit_seen *k = calloc(1, sizeof *k);
	assert_int_equal(coffer_audit_list(st, 0, "", audit_cb, k), COFFER_OK);
	assert_non_null(strstr(k->what, "rotate-key:key "));
	free(k);
	verify_ok(st);
	/* Canary scan: values, the request id, the token: nowhere in the database in clear. */
	if (!is_pg()) {
		char cmd[4400];
		snprintf(cmd, sizeof cmd, "grep -rqaE 'canary-value|canary-request|tok-x' '%s'",
		         location);
		assert_int_not_equal(system(cmd), 0);
	} else {
		tamper("DO $$ BEGIN IF EXISTS (SELECT 1 FROM coffer_audit a WHERE a::text ~ "
		       "'canary-value|canary-request|tok-x') THEN RAISE EXCEPTION 'clear'; END IF; "
		       "END $$");
	}
	/* Tampering, each time on a copy put back afterwards. */
	audit_seen *all = calloc(1, sizeof *all);
	assert_int_equal(coffer_audit_list(st, 0, NULL, audit_cb, all), COFFER_OK);
	const char *t = is_pg() ? "coffer_audit" : "audit";
	const char *keep = saved("audit");
	tamper("CREATE TABLE %s AS SELECT * FROM %s", keep, t);
	uint64_t victim = a->ids[2], other = a->ids[4];
	/* Delete one: the next entry of its chain is named. */
	tamper("DELETE FROM %s WHERE id = %llu", t, (unsigned long long)victim);
	verify_names(st, next_in_chain(all, victim));
	tamper("DELETE FROM %s; INSERT INTO %s SELECT * FROM %s", t, t, keep);
	verify_ok(st);
	/* Edit one. */
	tamper("UPDATE %s SET outcome = -4 WHERE id = %llu", t, (unsigned long long)victim);
	verify_names(st, victim);
	tamper("DELETE FROM %s; INSERT INTO %s SELECT * FROM %s", t, t, keep);
	/* Swap two (all but their ids). */
	const char *cols = "chain, seq, ts_ms, principal, action, secret, version, outcome, error, "
	                   "rid, mac";
	tamper("DELETE FROM %s WHERE id IN (%llu, %llu); INSERT INTO %s (id, %s) SELECT %llu, %s "
	       "FROM %s WHERE id = %llu; INSERT INTO %s (id, %s) SELECT %llu, %s FROM %s WHERE id "
	       "= %llu",
	       t, (unsigned long long)victim, (unsigned long long)other, t, cols,
	       (unsigned long long)victim, cols, keep, (unsigned long long)other, t, cols,
	       (unsigned long long)other, cols, keep, (unsigned long long)victim);
	verify_names(st, victim);
	tamper("DELETE FROM %s; INSERT INTO %s SELECT * FROM %s; DROP TABLE %s", t, t, keep, keep);
	verify_ok(st);
	free(all);
	free(a);
	coffer_secret_free(ro);
	coffer_secret_free(s);
	coffer_close(st);
}

/* ------------------------------------------------------------------------------------------ */
/* Edits made outside coffer (tests/sqltool.h).                                               */

static int is_pg(void)
{
	return sqltool_is_pg(location);
}

/* The tables, as each backend names them. */
static const char *tab_s(void)
{
	return is_pg() ? "coffer_secrets" : "secrets";
}

static const char *tab_v(void)
{
	return is_pg() ? "coffer_versions" : "versions";
}

static void tamper(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void tamper(const char *fmt, ...)
{
	char sql[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	int rc = sqltool_run(location, sql, NULL);
	if (rc != 0)
		fail_msg("tamper SQL failed (%d): %s", rc, sql);
}

/* The WHERE clause naming one version row of a prefixed secret. */
static const char *row_of(const char *base, int version)
{
	static char buf[600];
	char n[300];
	name(n, sizeof n, base);
	snprintf(buf, sizeof buf,
	         "secret_id = (SELECT id FROM %s WHERE name = '%s') AND version = %d", tab_s(), n,
	         version);
	return buf;
}

/* Access through a fresh handle (no cache); the handle's message lands in msg. */
static int access_fresh(const char *base, const char *version, char *val, size_t vlen, char *msg,
                        size_t mlen)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, base, COFFER_ACCESS);
	coffer_value *v = NULL;
	int rc = coffer_access(s, version, &v);
	snprintf(msg, mlen, "%s", coffer_errmsg(st));
	if (rc == COFFER_OK)
		snprintf(val, vlen, "%s", (const char *)coffer_value_data(v, NULL));
	coffer_value_free(v);
	coffer_secret_free(s);
	coffer_close(st);
	return rc;
}

/* An integrity error naming the secret, never a value (fresh handle, so read from the store). */
static void expect_integrity(const char *base, const char *version)
{
	char val[64] = "", msg[512] = "", n[300];
	int rc = access_fresh(base, version, val, sizeof val, msg, sizeof msg);
	if (rc != COFFER_EINTEGRITY)
		fail_msg("access %s@%s after an edit outside coffer: rc %d (%s), value '%s'", base,
		         version, rc, msg, val);
	name(n, sizeof n, base);
	assert_non_null(strstr(msg, n));
	assert_non_null(strstr(msg, "MAC"));
	assert_null(strstr(msg, "value-")); /* the values of these tests all start so */
}

/* FNV-1a 32 of a name, modulo 1,024: the PostgreSQL backend's bucket of generations
 * (src/store/postgres/gen.c). */
static uint32_t pg_bucket_of(const char *p)
{
	uint32_t h = 2166136261u;
	for (; *p != '\0'; p++) {
		h ^= (unsigned char)*p;
		h *= 16777619u;
	}
	return h % 1024;
}

/* A write to another secret that invalidates the cached row of `full` in every handle: on
 * SQLite any write (one store generation); on PostgreSQL a write of a secret in the same bucket
 * of names (writes of other buckets leave the row cached, by design: docs/postgres.md). So every
 * handle's cache misses for `full` next time. */
static void bump_generation(const char *full)
{
	char base[64], n[300];
	for (int i = 0;; i++) {
		snprintf(base, sizeof base, "tamper.bump%d", i);
		name(n, sizeof n, base);
		if (pg_bucket_of(n) == pg_bucket_of(full))
			break;
	}
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, base, COFFER_PUT);
	put_ok(s, "value-bump", 10, NULL);
	coffer_secret_free(s);
	coffer_close(st);
}

/* A long-lived handle (a server's): its cache may keep serving the true newest value after an
 * edit outside coffer (no generation bump), never an older one; its first cache miss after the
 * edit is an integrity error. */
static void expect_server_view(coffer_secret *s, const char *newest, const char *ver)
{
	coffer_value *v = NULL;
	int rc = coffer_access(s, "latest", &v);
	if (rc == COFFER_OK) {
		assert_string_equal((const char *)coffer_value_data(v, NULL), newest);
		assert_string_equal(coffer_value_version(v), ver);
	} else {
		assert_int_equal(rc, COFFER_EINTEGRITY);
	}
	coffer_value_free(v);
	v = NULL;
	bump_generation(coffer_secret_name(s));
	assert_int_equal(coffer_access(s, "latest", &v), COFFER_EINTEGRITY);
	assert_null(v);
}

/*
 * Issue 14 #4: metadata cannot be rolled back quietly. Marking the newest version destroyed or
 * deleting its row in the database (sqlite3 / psql, not coffer) must make the next read an
 * integrity error, not the older value; an explicit version whose state was edited is an
 * integrity error, not "not found"; so is an edited last version id.
 */
static void test_metadata_tamper(void **state)
{
	coffer_store *server = open_store();
	coffer_secret *w = ref(server, "tamper", COFFER_PUT | COFFER_ACCESS);
	put_ok(w, "value-1", 7, "1");
	put_ok(w, "value-2", 7, "2");
	put_ok(w, "value-3", 7, "3");
	access_is(w, "latest", "value-3", 7, "3"); /* cached by the long-lived handle */

	/* The newest version marked destroyed: latest would move back to 2. */
	tamper("UPDATE %s SET state = 1 WHERE %s", tab_v(), row_of("tamper", 3));
	expect_integrity("tamper", "latest");
	expect_server_view(w, "value-3", "3");
	expect_integrity("tamper", "3");
	/* Put back as it was: all good again. */
	tamper("UPDATE %s SET state = 0 WHERE %s", tab_v(), row_of("tamper", 3));
	access_is(w, "latest", "value-3", 7, "3");

	/* The newest version's row deleted. */
	tamper("DELETE FROM %s WHERE %s", tab_v(), row_of("tamper", 3));
	expect_integrity("tamper", "latest");
	expect_server_view(w, "value-3", "3");
	expect_integrity("tamper", "3");

	/* An older version marked destroyed: reading it is an integrity error, not "not found". */
	coffer_secret *o = ref(server, "tamper.old", COFFER_PUT | COFFER_ACCESS);
	put_ok(o, "value-a", 7, "1");
	put_ok(o, "value-b", 7, "2");
	tamper("UPDATE %s SET state = 1 WHERE %s", tab_v(), row_of("tamper.old", 1));
	expect_integrity("tamper.old", "1");
	access_is(o, "2", "value-b", 7, "2"); /* the rest of the secret still reads */
	/* A state that is neither (256 would be 0 in a byte): caught, not read as either. */
	tamper("UPDATE %s SET state = 256 WHERE %s", tab_v(), row_of("tamper.old", 2));
	expect_integrity("tamper.old", "2");
	expect_integrity("tamper.old", "latest");

	/* The last version id edited. */
	coffer_secret *l = ref(server, "tamper.last", COFFER_PUT | COFFER_ACCESS);
	put_ok(l, "value-x", 7, "1");
	put_ok(l, "value-y", 7, "2");
	char n[300];
	name(n, sizeof n, "tamper.last");
	tamper("UPDATE %s SET last_version = 1 WHERE name = '%s'", tab_s(), n);
	expect_integrity("tamper.last", "latest");
	expect_integrity("tamper.last", "1");
	coffer_secret_free(l);
	coffer_secret_free(o);
	coffer_secret_free(w);
	coffer_close(server);
}

/* A disabled version's state is MAC'd as the others are: enabling it (or disabling another)
 * in the database is an integrity error, never a value it should not give. */
static void test_disabled_tamper(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "tamper.dis", COFFER_PUT | COFFER_ACCESS);
	put_ok(s, "value-1", 7, "1");
	put_ok(s, "value-2", 7, "2");
	put_ok(s, "value-3", 7, "3");
	assert_int_equal(coffer_disable(s, "2", NULL), COFFER_OK);
	tamper("UPDATE %s SET state = 0 WHERE %s", tab_v(), row_of("tamper.dis", 2));
	expect_integrity("tamper.dis", "2");
	tamper("UPDATE %s SET state = 2 WHERE %s", tab_v(), row_of("tamper.dis", 2));
	access_rc_is(s, "2", COFFER_EDISABLED);
	/* The newest disabled behind coffer's back: latest would move back to 1. */
	tamper("UPDATE %s SET state = 2 WHERE %s", tab_v(), row_of("tamper.dis", 3));
	expect_integrity("tamper.dis", "latest");
	expect_integrity("tamper.dis", "3");
	coffer_secret_free(s);
	coffer_close(st);
}

/* A table of the test's own, for rows an attacker keeps to put back later. */
static const char *saved(const char *what)
{
	static char buf[4][64];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "saved_%s_%u", what, (unsigned)getpid());
	return buf[i];
}

static void access_rc_is(coffer_secret *s, const char *version, int want)
{
	coffer_value *v = NULL;
	int rc = coffer_access(s, version, &v);
	coffer_value_free(v);
	if (rc != want)
		fail_msg("access %s: rc %d (%s), want %d", version, rc, coffer_strerror(rc), want);
}

/*
 * What else an edit outside coffer may try: the MAC columns themselves, a secret's row put back
 * to an older state (with its MAC of then), a destroyed version's row restored from a copy, a
 * listing, a destroy or a put over edited metadata (none may bless it), and the metadata key
 * deleted.
 */
static void test_metadata_replay(void **state)
{
	coffer_store *st = open_store();
	coffer_secret *m = ref(st, "replay.mac", COFFER_PUT | COFFER_ACCESS);
	char n[300], sql_row[600];
	put_ok(m, "value-m1", 8, "1");
	put_ok(m, "value-m2", 8, "2");
	/* One version's MAC copied over another's; then the secret's MAC swapped. */
	snprintf(sql_row, sizeof sql_row, "%s", row_of("replay.mac", 1));
	tamper("CREATE TABLE %s AS SELECT mac FROM %s WHERE %s", saved("mac"), tab_v(), sql_row);
	tamper("UPDATE %s SET mac = (SELECT mac FROM %s WHERE %s) WHERE %s", tab_v(), tab_v(),
	       row_of("replay.mac", 2), sql_row);
	expect_integrity("replay.mac", "1");
	access_is(m, "2", "value-m2", 8, "2");
	tamper("UPDATE %s SET mac = (SELECT mac FROM %s) WHERE %s; DROP TABLE %s", tab_v(),
	       saved("mac"), sql_row, saved("mac"));
	access_is(m, "1", "value-m1", 8, "1");
	name(n, sizeof n, "replay.mac");
	tamper("UPDATE %s SET mac = (SELECT mac FROM %s WHERE name <> '%s' AND mac IS NOT NULL "
	       "LIMIT 1) WHERE name = '%s'",
	       tab_s(), tab_s(), n, n);
	expect_integrity("replay.mac", "latest");

	/* The secret's row put back as it was before the newest put: latest would be 2 again. */
	coffer_secret *r = ref(st, "replay.row", COFFER_PUT | COFFER_ACCESS);
	put_ok(r, "value-r1", 8, "1");
	put_ok(r, "value-r2", 8, "2");
	name(n, sizeof n, "replay.row");
	tamper("CREATE TABLE %s AS SELECT last_version, latest, epoch, mac, previous FROM %s "
	       "WHERE name = '%s'",
	       saved("row"), tab_s(), n);
	put_ok(r, "value-r3", 8, "3");
	tamper("UPDATE %s SET last_version = (SELECT last_version FROM %s), latest = (SELECT "
	       "latest FROM %s), epoch = (SELECT epoch FROM %s), mac = (SELECT mac FROM %s), "
	       "previous = (SELECT previous FROM %s) WHERE name = '%s'; DROP TABLE %s",
	       tab_s(), saved("row"), saved("row"), saved("row"), saved("row"), saved("row"), n,
	       saved("row"));
	expect_integrity("replay.row", "latest");
	expect_integrity("replay.row", "2");
	/* A put or a destroy there must not bless the rollback; a listing shows it. */
	char ver[COFFER_VERSION_MAX] = "";
	assert_int_equal(coffer_put(r, "value-r4", 8, ver), COFFER_EINTEGRITY);
	assert_non_null(strstr(coffer_errmsg(st), "beyond"));
	assert_int_equal(coffer_destroy(r, "1", ver), COFFER_EINTEGRITY);
	assert_non_null(strstr(coffer_errmsg(st), "MAC"));
	assert_int_equal(coffer_list_versions(r, collect_states, &(states){{0}, 0}),
	                 COFFER_EINTEGRITY);
	expect_integrity("replay.row", "latest");

	/* A destroyed version's row restored from a copy taken before the destroy. */
	coffer_secret *d = ref(st, "replay.destroyed", COFFER_PUT | COFFER_ACCESS);
	put_ok(d, "value-d1", 8, "1");
	put_ok(d, "value-d2", 8, "2");
	snprintf(sql_row, sizeof sql_row, "%s", row_of("replay.destroyed", 1));
	tamper("CREATE TABLE %s AS SELECT * FROM %s WHERE %s", saved("dest"), tab_v(), sql_row);
	assert_int_equal(coffer_destroy(d, "1", ver), COFFER_OK);
	access_rc_is(d, "1", COFFER_ENOTFOUND);
	tamper("DELETE FROM %s WHERE %s; INSERT INTO %s SELECT * FROM %s; DROP TABLE %s", tab_v(),
	       sql_row, tab_v(), saved("dest"), saved("dest"));
	expect_integrity("replay.destroyed", "1");
	access_is(d, "latest", "value-d2", 8, "2");

	/* A batch: the items of an edited secret fail alone, the others are committed. */
	coffer_secret *ok = ref(st, "replay.batch", COFFER_PUT | COFFER_ACCESS);
	coffer_put_item it[3] = {{.secret = ok, .value = "value-b1", .len = 8},
	                         {.secret = d, .value = "value-d3", .len = 8},
	                         {.secret = ok, .value = "value-b2", .len = 8}};
	assert_int_equal(coffer_put_batch(st, it, 3), COFFER_OK);
	assert_int_equal(it[0].rc, COFFER_OK);
	assert_int_equal(it[2].rc, COFFER_OK);
	assert_string_equal(it[2].version, "2");
	/* A put checks the secret's MAC, not every row (O(1)): d's metadata is intact, so it
	 * goes in; the restored row stays caught. */
	assert_int_equal(it[1].rc, COFFER_OK);
	expect_integrity("replay.destroyed", "1");
	/* Its last version id was edited in test_metadata_tamper. */
	coffer_secret *t = ref(st, "tamper.last", COFFER_PUT);
	it[0] = (coffer_put_item){.secret = ok, .value = "value-b3", .len = 8};
	it[1] = (coffer_put_item){.secret = t, .value = "value-t", .len = 7};
	it[2] = (coffer_put_item){.secret = ok, .value = "value-b4", .len = 8};
	assert_int_equal(coffer_put_batch(st, it, 3), COFFER_OK);
	assert_int_equal(it[1].rc, COFFER_EINTEGRITY);
	name(n, sizeof n, "tamper.last");
	assert_non_null(strstr(coffer_errmsg(st), n));
	assert_int_equal(it[0].rc, COFFER_OK);
	assert_int_equal(it[2].rc, COFFER_OK);
	access_is(ok, "latest", "value-b4", 8, it[2].version);

	/* The metadata key deleted: no handle opens the store (a new one would have no way to
	 * check anything). Put back, all is well again. */
	const char *hdr = is_pg() ? "coffer_header" : "header";
	tamper("CREATE TABLE %s AS SELECT meta_key FROM %s; UPDATE %s SET meta_key = NULL",
	       saved("key"), hdr, hdr);
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *no = (coffer_store *)1;
	char err[512];
	assert_int_equal(coffer_open(&no, location, &o, err, sizeof err), COFFER_EINTEGRITY);
	assert_ptr_equal(no, (coffer_store *)1);
	assert_non_null(strstr(err, "metadata key is missing"));
	tamper("UPDATE %s SET meta_key = (SELECT meta_key FROM %s); DROP TABLE %s", hdr,
	       saved("key"), saved("key"));
	coffer_close(open_store());
	access_is(ok, "latest", "value-b4", 8, it[2].version); /* the open handle went on */
	coffer_secret_free(t);
	coffer_secret_free(ok);
	coffer_secret_free(d);
	coffer_secret_free(r);
	coffer_secret_free(m);
	coffer_close(st);
}

/* A destroy MACs every version of the secret again: with more versions than one statement of
 * the PostgreSQL backend writes (1024), every one of them still reads, and states stay right. */
static void test_destroy_many(void **state)
{
	enum { N = 1100 };
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "destroy.many", COFFER_PUT | COFFER_ACCESS);
	static coffer_put_item it[N];
	static char vals[N][16];
	for (int i = 0; i < N; i++) {
		int n = snprintf(vals[i], sizeof vals[i], "value-%d", i + 1);
		it[i] = (coffer_put_item){.secret = s, .value = vals[i], .len = (size_t)n};
	}
	assert_int_equal(coffer_put_batch(st, it, N), COFFER_OK);
	assert_string_equal(it[N - 1].version, "1100");
	char ver[COFFER_VERSION_MAX];
	assert_int_equal(coffer_destroy(s, "5", ver), COFFER_OK);
	assert_int_equal(coffer_destroy(s, "latest", ver), COFFER_OK);
	assert_string_equal(ver, "1100");
	coffer_close(open_store()); /* a fresh handle reads from the store: */
	coffer_store *fresh = open_store();
	coffer_secret *f = ref(fresh, "destroy.many", COFFER_ACCESS);
	access_is(f, "latest", "value-1099", 10, "1099");
	access_is(f, "1", "value-1", 7, "1");
	access_is(f, "1030", "value-1030", 10, "1030");
	access_rc_is(f, "5", COFFER_ENOTFOUND);
	access_rc_is(f, "1100", COFFER_ENOTFOUND);
	size_t n = 0;
	assert_int_equal(coffer_list_versions(f, count_enabled, &n), COFFER_OK);
	assert_int_equal(n, N - 2);
	coffer_secret_free(f);
	coffer_close(fresh);
	coffer_secret_free(s);
	coffer_close(st);
}

static coffer_store *open_key(const char *b64, const char *pass, const char *file, int want)
{
	coffer_options o = {.master_key_b64 = b64,
	                    .passphrase = pass,
	                    .key_file = file,
	                    .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[512];
	int rc = coffer_open(&st, location, &o, err, sizeof err);
	if (rc != want)
		fail_msg("open: want %d, got %d: %s", want, rc, err);
	if (want == COFFER_EKEY)
		assert_non_null(strstr(err, "wrong master key"));
	return st;
}

static void rotate_master(coffer_store *st, const char *b64, const char *pass, const char *file)
{
	coffer_options o = {.master_key_b64 = b64, .passphrase = pass, .key_file = file};
	char err[512];
	int rc = coffer_rotate_master_key(st, &o, err, sizeof err);
	if (rc != COFFER_OK)
		fail_msg("rotate master: %s", err);
}

/* Data-key rotation, the re-encrypt pass, and master-key rotation (key, passphrase, key file),
 * with a second handle that must learn the new data key by itself. */
static void test_key_rotation(void **state)
{
	coffer_store *s1 = open_store(), *s2 = open_store();
	coffer_secret *w = ref(s1, "rotate", COFFER_PUT | COFFER_ACCESS);
	coffer_secret *r = ref(s2, "rotate", COFFER_PUT | COFFER_ACCESS);
	put_ok(w, "v1", 2, "1");
	put_ok(w, "v2", 2, "2");
	uint32_t k1 = 0, k2 = 0;
	assert_int_equal(coffer_rotate_data_key(s1, &k1), COFFER_OK);
	put_ok(w, "v3", 2, "3");
	access_is(r, "latest", "v3", 2, "3"); /* s2 loads the new key on its own */
	assert_int_equal(coffer_rotate_data_key(s2, &k2), COFFER_OK);
	assert_true(k2 > k1);
	put_ok(r, "v4", 2, "4");
	access_is(w, "latest", "v4", 2, "4");
	size_t moved = 0;
	assert_int_equal(coffer_reencrypt(s1, &moved), COFFER_OK);
	assert_true(moved >= 3); /* v1..v3 at least (other secrets of this store too) */
	assert_int_equal(coffer_reencrypt(s2, &moved), COFFER_OK);
	assert_int_equal(moved, 0);
	access_is(r, "1", "v1", 2, "1");
	access_is(r, "2", "v2", 2, "2");

	/* Master key: a new base64 key. */
	rotate_master(s1, TEST_OTHER_KEY, NULL, NULL);
	open_key(TEST_MASTER_KEY, NULL, NULL, COFFER_EKEY);
	coffer_store *s3 = open_key(TEST_OTHER_KEY, NULL, NULL, COFFER_OK);
	coffer_secret *t = ref(s3, "rotate", COFFER_ACCESS);
	access_is(t, "1", "v1", 2, "1");
	access_is(t, "latest", "v4", 2, "4");
	put_ok(w, "v5", 2, "5"); /* the rotating handle keeps working */
	/* Then a passphrase, then a key file created on the way, then back. */
	rotate_master(s1, NULL, "rotate me please", NULL);
	open_key(TEST_OTHER_KEY, NULL, NULL, COFFER_EKEY);
	coffer_close(open_key(NULL, "rotate me please", NULL, COFFER_OK));
	char kf[4300];
	snprintf(kf, sizeof kf, "%s/rotated-%s.key", tmpdir[0] ? tmpdir : "/tmp", prefix);
	rotate_master(s1, NULL, NULL, kf);
	coffer_close(open_key(NULL, NULL, kf, COFFER_OK));
	unlink(kf);
	rotate_master(s1, TEST_MASTER_KEY, NULL, NULL);
	coffer_store *s4 = open_store();
	coffer_secret *u = ref(s4, "rotate", COFFER_ACCESS);
	access_is(u, "latest", "v5", 2, "5");
	access_is(t, "latest", "v5", 2, "5"); /* open handles keep their data keys */

	coffer_options none = {0};
	char err[256];
	assert_int_equal(coffer_rotate_master_key(s1, &none, err, sizeof err), COFFER_EINVAL);
	coffer_options bad = {.master_key_b64 = "short"};
	assert_int_equal(coffer_rotate_master_key(s1, &bad, err, sizeof err), COFFER_EKEY);
	coffer_secret_free(u);
	coffer_secret_free(t);
	coffer_secret_free(w);
	coffer_secret_free(r);
	coffer_close(s4);
	coffer_close(s3);
	coffer_close(s2);
	coffer_close(s1);
}

static void test_wrong_master_key(void **state)
{
	coffer_store *st = open_store(); /* make sure the store exists */
	coffer_close(st);
	coffer_options o = {.master_key_b64 = TEST_OTHER_KEY, .flags = COFFER_OPEN_NO_ENV};
	char err[512];
	st = (coffer_store *)1;
	assert_int_equal(coffer_open(&st, location, &o, err, sizeof err), COFFER_EKEY);
	assert_ptr_equal(st, (coffer_store *)1);
	assert_non_null(strstr(err, "wrong master key"));
	o.master_key_b64 = "not base64!";
	assert_int_equal(coffer_open(&st, location, &o, err, sizeof err), COFFER_EKEY);
	assert_non_null(strstr(err, "base64"));
	o.master_key_b64 = "AQID"; /* valid base64, 3 bytes */
	assert_int_equal(coffer_open(&st, location, &o, err, sizeof err), COFFER_EKEY);
}

static void test_open_errors(void **state)
{
	coffer_store *st = NULL;
	char err[512];
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	assert_int_equal(coffer_open(&st, "nosuch://x", &o, err, sizeof err), COFFER_EINVAL);
	assert_non_null(strstr(err, "unknown store scheme"));
	o.max_value = COFFER_VALUE_HARD_MAX + 1;
	assert_int_equal(coffer_open(&st, location, &o, err, sizeof err), COFFER_EINVAL);
	assert_null(st);
	assert_int_equal(coffer_open(NULL, location, &o, err, sizeof err), COFFER_EMISUSE);
	/* free/close of NULL are no-ops */
	coffer_close(NULL);
	coffer_secret_free(NULL);
	coffer_value_free(NULL);
	assert_string_equal(coffer_strerror(COFFER_ENOTFOUND), "not found");
	assert_string_equal(coffer_strerror(12345), "unknown error");
	assert_int_equal(coffer_grpc_status(COFFER_EPERM), 7);
	assert_int_equal(coffer_exit_code(COFFER_ENOTFOUND), 3);
	/* A full disk is its own error: RESOURCE_EXHAUSTED, exit 7, and says so. */
	assert_string_equal(coffer_strerror(COFFER_EFULL), "disk full");
	assert_int_equal(coffer_grpc_status(COFFER_EFULL), 8);
	assert_int_equal(coffer_exit_code(COFFER_EFULL), 7);
}

/* Entries in a folder other than . and .., or -1 if it cannot be read (e.g. missing). */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

static int open_no_create(const char *loc, char *err, size_t errlen)
{
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY,
	                    .flags = COFFER_OPEN_NO_CREATE | COFFER_OPEN_NO_ENV};
	coffer_store *st = (coffer_store *)1;
	int rc = coffer_open(&st, loc, &o, err, errlen);
	if (rc == COFFER_OK)
		coffer_close(st);
	else
		assert_ptr_equal(st, (coffer_store *)1);
	return rc;
}

/* COFFER_OPEN_NO_CREATE opens an existing store and creates nothing where there is none: no
 * folder, no database, no key file, and no header in a store whose creation stopped half-way. */
static void test_no_create(void **state)
{
	char err[512], loc[4400];
	coffer_close(open_store()); /* the suite's store exists */
	assert_int_equal(open_no_create(location, err, sizeof err), COFFER_OK);
	if (tmpdir[0] == '\0')
		return; /* the rest needs folders of its own (SQLite) */
	snprintf(loc, sizeof loc, "%s/no-such-store", tmpdir);
	assert_int_equal(open_no_create(loc, err, sizeof err), COFFER_ENOTFOUND);
	assert_int_equal(entries(loc), -1);
	snprintf(loc, sizeof loc, "%s/empty-folder", tmpdir);
	assert_int_equal(mkdir(loc, 0700), 0);
	assert_int_equal(open_no_create(loc, err, sizeof err), COFFER_ENOTFOUND);
	assert_int_equal(entries(loc), 0);
	/* A creation that failed at its key file (its folder is missing) leaves a store without a
	 * header; opening that without NO_CREATE would finish it, with NO_CREATE nothing is made.
	 */
	char kf[4500];
	snprintf(loc, sizeof loc, "%s/half-made", tmpdir);
	snprintf(kf, sizeof kf, "%s/no-such-folder/key", tmpdir);
	coffer_options o = {.key_file = kf, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	assert_int_not_equal(coffer_open(&st, loc, &o, err, sizeof err), COFFER_OK);
	assert_int_equal(open_no_create(loc, err, sizeof err), COFFER_ENOTFOUND);
	assert_non_null(strstr(err, "no store"));
	snprintf(kf, sizeof kf, "%s/half-made/master.key", tmpdir);
	assert_int_equal(access(kf, F_OK), -1);
	/* Without the flag it is finished, and then opens with it. */
	coffer_close(open_key_at(loc));
	assert_int_equal(open_no_create(loc, err, sizeof err), COFFER_OK);
}

/* A SQLite store folder that gives group or others any access is refused, saying the fix. */
static void test_folder_mode(void **state)
{
	if (tmpdir[0] == '\0')
		return; /* a database has no folder */
	coffer_close(open_store());
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	char err[512];
	static const mode_t modes[] = {0750, 0705, 0770, 0701};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		coffer_store *st = NULL;
		assert_int_equal(chmod(location, modes[i]), 0);
		assert_int_equal(coffer_open(&st, location, &o, err, sizeof err), COFFER_EPERM);
		assert_null(st);
		assert_non_null(strstr(err, "chmod 700"));
	}
	assert_int_equal(chmod(location, 0700), 0);
	coffer_close(open_store());
}

int main(void)
{
	const char *loc = getenv("COFFER_TEST_STORE");
	unsigned seed = (unsigned)getpid();
	snprintf(prefix, sizeof prefix, "r%u.", seed);
	printf("# conformance: names prefixed '%s'\n", prefix);
	if (loc != NULL && loc[0] != '\0') {
		snprintf(location, sizeof location, "%s", loc);
	} else {
		test_tmpdir(tmpdir, sizeof tmpdir);
		snprintf(location, sizeof location, "%s/store", tmpdir);
	}
	printf("# conformance: store %s\n",
	       strncmp(location, "postgres", 8) == 0 ? "postgres" : location);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seed_workflow),
	    cmocka_unit_test(test_binary_values),
	    cmocka_unit_test(test_bad_names),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_bad_versions),
	    cmocka_unit_test(test_permissions),
	    cmocka_unit_test(test_listing_and_exact_names),
	    cmocka_unit_test(test_cache_coherence),
	    cmocka_unit_test(test_batch),
	    cmocka_unit_test(test_batch_same_secret),
	    cmocka_unit_test(test_batch_retention),
	    cmocka_unit_test(test_concurrent_puts),
	    cmocka_unit_test(test_destroy),
	    cmocka_unit_test(test_disable_enable),
	    cmocka_unit_test(test_check_and_set),
	    cmocka_unit_test(test_request_id),
	    cmocka_unit_test(test_retention),
	    cmocka_unit_test(test_race_check_and_set),
	    cmocka_unit_test(test_race_request_id),
	    cmocka_unit_test(test_race_retention),
	    cmocka_unit_test(test_labels),
	    cmocka_unit_test(test_retention_labels),
	    cmocka_unit_test(test_labels_tamper),
	    cmocka_unit_test(test_race_labels),
	    cmocka_unit_test(test_delete_restore),
	    cmocka_unit_test(test_delete_tamper),
	    cmocka_unit_test(test_retention_tamper),
	    cmocka_unit_test(test_describe),
	    cmocka_unit_test(test_list_pages),
	    cmocka_unit_test(test_race_delete),
	    cmocka_unit_test(test_audit),
	    cmocka_unit_test(test_audit_batch),
	    cmocka_unit_test(test_metadata_tamper),
	    cmocka_unit_test(test_disabled_tamper),
	    cmocka_unit_test(test_metadata_replay),
	    cmocka_unit_test(test_destroy_many),
	    cmocka_unit_test(test_key_rotation),
	    cmocka_unit_test(test_wrong_master_key),
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test(test_no_create),
	    cmocka_unit_test(test_folder_mode),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	if (tmpdir[0] != '\0')
		test_rmrf(tmpdir);
	return failed;
}
