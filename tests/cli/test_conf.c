/*
 * test_conf.c -- the coffer.conf reader (src/cli/conf.c) on good, malformed and hostile input:
 * every refusal names the file and line, never echoes a value, and keeps nothing half-read
 * from being used (the caller frees and stops).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/conf.h"

enum { K_LISTEN = 1, K_THREADS, K_INSECURE, K_STORE };

/* A key set of each kind, as the CLI derives from its option table. */
static int lookup(void *ctx, const char *name, conf_key *out)
{
	(void)ctx;
	static const struct {
		const char *name;
		conf_key k;
	} keys[] = {
	    {"listen", {K_LISTEN, CONF_STR, 1, 0, 0}},
	    {"threads", {K_THREADS, CONF_UINT, 0, 1, 64}},
	    {"insecure", {K_INSECURE, CONF_FLAG, 0, 0, 0}},
	    {"store", {K_STORE, CONF_STR, 0, 0, 0}},
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(keys[i].name, name) == 0) {
			*out = keys[i].k;
			return 0;
		}
	return -1;
}

static char err[512];

static int parse_n(conf_file *cf, const char *buf, size_t len)
{
	memset(cf, 0, sizeof(*cf));
	err[0] = '\0';
	return conf_parse(cf, "t.conf", buf, len, "serve", lookup, NULL, err, sizeof(err));
}

static int parse(conf_file *cf, const char *buf)
{
	return parse_n(cf, buf, strlen(buf));
}

/* The text must be refused with a message starting "t.conf:LINE: " and containing want. */
static void refused(const char *buf, size_t len, unsigned line, const char *want)
{
	conf_file cf;
	char prefix[32];
	assert_int_equal(parse_n(&cf, buf, len), -1);
	snprintf(prefix, sizeof(prefix), "t.conf:%u: ", line);
	if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
		fail_msg("got '%s', wanted '%s...%s'", err, prefix, want);
	conf_free(&cf);
}

static void good_file(void **state)
{
	(void)state;
	conf_file cf;
	const char *text = "\xef\xbb\xbf# coffer.conf\r\n"
	                   "; another comment\n"
	                   "\n"
	                   "  [ serve ]  \n"
	                   "listen = 127.0.0.1:50051\n"
	                   "listen=api=unix:/run/coffer/api.sock\n"
	                   "\tthreads\t=\t4\t\n"
	                   "insecure = off\n"
	                   "store = postgres://u:p#;w@h/db?x=1 # not a comment\n";
	assert_int_equal(parse(&cf, text), 0);
	assert_int_equal(cf.n, 5);
	assert_int_equal(cf.e[0].id, K_LISTEN);
	assert_string_equal(cf.e[0].val, "127.0.0.1:50051");
	assert_int_equal(cf.e[0].line, 5);
	assert_string_equal(cf.e[1].val, "api=unix:/run/coffer/api.sock");
	assert_int_equal(cf.e[2].id, K_THREADS);
	assert_string_equal(cf.e[2].val, "4");
	assert_int_equal(cf.e[3].id, K_INSECURE);
	assert_string_equal(cf.e[3].val, "0");
	assert_string_equal(cf.e[4].val, "postgres://u:p#;w@h/db?x=1 # not a comment");
	assert_int_equal(cf.e[4].line, 9);
	conf_free(&cf);
	/* No trailing newline; an empty file; comments only. */
	assert_int_equal(parse(&cf, "[serve]\nthreads=1"), 0);
	assert_int_equal(cf.n, 1);
	conf_free(&cf);
	assert_int_equal(parse(&cf, ""), 0);
	assert_int_equal(cf.n, 0);
	conf_free(&cf);
	assert_int_equal(parse(&cf, "# nothing\n\n[serve]\n"), 0);
	conf_free(&cf);
}

static void malformed(void **state)
{
	(void)state;
#define R(s, line, want) refused(s, strlen(s), line, want)
	R("threads = 2\n", 1, "outside a section");
	R("[serve]\nbogus = 1\n", 2, "unknown key 'bogus'");
	R("[serve]\nThreads = 2\n", 2, "expected KEY = VALUE");
	R("[serve]\n= 2\n", 2, "expected KEY = VALUE");
	R("[serve]\nthreads\n", 2, "expected KEY = VALUE");
	R("[serve]\nthreads = \n", 2, "has no value");
	R("[serve]\nthreads = 0\n", 2, "from 1 to 64");
	R("[serve]\nthreads = 65\n", 2, "from 1 to 64");
	R("[serve]\nthreads = -1\n", 2, "from 1 to 64");
	R("[serve]\nthreads = 99999999999999999999\n", 2, "from 1 to 64");
	R("[serve]\nthreads = 2 # two\n", 2, "from 1 to 64");
	R("[serve]\ninsecure = maybe\n", 2, "true or false");
	R("[serve]\nthreads = 2\n\nthreads = 3\n", 4, "given twice (first at line 2)");
	R("[serve]\nstore = a\nstore = a\n", 3, "given twice");
	R("[serve]\ninsecure = yes\ninsecure = no\n", 3, "given twice");
	R("[serve\n", 1, "expected [serve]");
	R("[client]\nthreads = 2\n", 1, "unknown section [client]");
	R("[serve]\n[other]\n", 2, "unknown section [other]");
	R("[serve]\nstore = a\x01"
	  "b\n",
	  2, "control character");
	R("[serve]\nstore = a\x7f\n", 2, "control character");
	R("[serve]\nstore = a\rb\n", 2, "control character");
#undef R
}

/* Values are never repeated in a message: they may hold a password. */
static void no_value_in_messages(void **state)
{
	(void)state;
	conf_file cf;
	const char *bad[] = {
	    "[serve]\nstore = postgres://u:CANARY@h/x\nstore = postgres://u:CANARY@h/x\n",
	    "[serve]\nthreads = CANARY\n", "[serve]\ninsecure = CANARY\n",
	    "[serve]\nstore = CANARY\x02\n", "[CANARY-very-long-section-name-that-is-long]\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(parse(&cf, bad[i]), -1);
		assert_null(strstr(err, "CANARY"));
		conf_free(&cf);
	}
}

static void hostile(void **state)
{
	(void)state;
	/* A NUL byte anywhere: a binary file, or a value cut short without anyone noticing. */
	static const char nul[] = "[serve]\nstore = abc\0def\n";
	refused(nul, sizeof(nul) - 1, 2, "NUL byte");
	static const char nul2[] = "\0[serve]\n";
	refused(nul2, sizeof(nul2) - 1, 1, "NUL byte");
	/* A line just at the limit is fine; one byte longer is refused, never split. */
	size_t big = CONF_MAX_LINE + 64;
	char *line = malloc(big);
	assert_non_null(line);
	int n = snprintf(line, big, "[serve]\nstore = ");
	size_t head = (size_t)n - 8; /* "store = " on line 2 */
	memset(line + n, 'x', CONF_MAX_LINE - head);
	size_t len = (size_t)n + CONF_MAX_LINE - head;
	conf_file cf;
	assert_int_equal(parse_n(&cf, line, len), 0);
	assert_int_equal(strlen(cf.e[0].val), CONF_MAX_LINE - head);
	conf_free(&cf);
	line[len] = 'x';
	refused(line, len + 1, 2, "longer than");
	free(line);
	/* A huge file: refused whole, before any line. */
	size_t huge = CONF_MAX_BYTES + 1;
	char *h = malloc(huge);
	assert_non_null(h);
	memset(h, '\n', huge);
	assert_int_equal(parse_n(&cf, h, huge), -1);
	assert_non_null(strstr(err, "larger than"));
	conf_free(&cf);
	/* Exactly the limit of blank lines is a valid (empty) file. */
	assert_int_equal(parse_n(&cf, h, CONF_MAX_BYTES), 0);
	conf_free(&cf);
	free(h);
	/* Many repeated values of a repeatable key are all kept (the caller caps them). */
	char many[8192] = "[serve]\n";
	for (int i = 0; i < 200; i++)
		strcat(many, "listen = 127.0.0.1:1\n");
	assert_int_equal(parse(&cf, many), 0);
	assert_int_equal(cf.n, 200);
	assert_int_equal(cf.e[199].line, 201);
	conf_free(&cf);
}

static void load_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/coffer-conf-XXXXXX", path[256];
	conf_file cf;
	assert_non_null(mkdtemp(dir));
	memset(&cf, 0, sizeof(cf));
	/* Missing; a directory; a FIFO (refused, not waited on). */
	snprintf(path, sizeof(path), "%s/none.conf", dir);
	assert_int_equal(conf_load(&cf, path, "serve", lookup, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(conf_load(&cf, dir, "serve", lookup, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(conf_load(&cf, path, "serve", lookup, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(path);
	/* A good file; a file over the size limit. */
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("[serve]\nthreads = 7\n", f);
	fclose(f);
	assert_int_equal(conf_load(&cf, path, "serve", lookup, NULL, err, sizeof(err)), 0);
	assert_int_equal(cf.n, 1);
	assert_string_equal(cf.e[0].val, "7");
	conf_free(&cf);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fseek(f, CONF_MAX_BYTES, SEEK_SET), 0);
	fputc('\n', f);
	fclose(f);
	assert_int_equal(conf_load(&cf, path, "serve", lookup, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "larger than"));
	conf_free(&cf);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(good_file),
	    cmocka_unit_test(malformed),
	    cmocka_unit_test(no_value_in_messages),
	    cmocka_unit_test(hostile),
	    cmocka_unit_test(load_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
