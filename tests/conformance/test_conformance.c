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
#include <sys/stat.h>

#include "../sqltool.h"
#include "../testutil.h"

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
	    "0",   "-1",  "abc",     "99999999999999999999", "", " 1", "1 ", "01", "+1",
	    "1.0", "0x1", "latest1", "9223372036854775808"};
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
	                     vi->state == COFFER_STATE_ENABLED ? "+" : "-", vi->size);
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
	assert_non_null(strstr(coffer_errmsg(st), "no enabled version '2'"));
	assert_int_equal(coffer_destroy(s, "99", ver), COFFER_ENOTFOUND);
	assert_int_equal(coffer_destroy(s, "0", ver), COFFER_EINVAL);
	assert_int_equal(coffer_destroy(s, "abc", ver), COFFER_EINVAL);
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

/* A write to another secret: bumps the generation, so every handle's cache misses next time. */
static void bump_generation(void)
{
	coffer_store *st = open_store();
	coffer_secret *s = ref(st, "tamper.bump", COFFER_PUT);
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
	bump_generation();
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
	tamper("CREATE TABLE %s AS SELECT last_version, latest, epoch, mac FROM %s WHERE name = "
	       "'%s'",
	       saved("row"), tab_s(), n);
	put_ok(r, "value-r3", 8, "3");
	tamper("UPDATE %s SET last_version = (SELECT last_version FROM %s), latest = (SELECT "
	       "latest FROM %s), epoch = (SELECT epoch FROM %s), mac = (SELECT mac FROM %s) WHERE "
	       "name = '%s'; DROP TABLE %s",
	       tab_s(), saved("row"), saved("row"), saved("row"), saved("row"), n, saved("row"));
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
	    cmocka_unit_test(test_concurrent_puts),
	    cmocka_unit_test(test_destroy),
	    cmocka_unit_test(test_metadata_tamper),
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
