/* failmalloc -- see failmalloc.h. Test code only. */
#include "failmalloc.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__real_sodium_malloc(size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void *__wrap_sodium_malloc(size_t n);

static int armed, persistent_;
static long target, count, injected;

static int fail_now(void)
{
	if (!armed)
		return 0;
	count++;
	if (count == target || (persistent_ && count > target)) {
		injected++;
		return 1;
	}
	return 0;
}

void failmalloc_arm(long n, int persistent)
{
	target = n;
	persistent_ = persistent;
	count = 0;
	injected = 0;
	armed = 1;
}

void failmalloc_clear(void)
{
	armed = 0;
}

long failmalloc_injected(void)
{
	return injected;
}

long failmalloc_count(void)
{
	return count;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return fail_now() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

void *__wrap_sodium_malloc(size_t n)
{
	return fail_now() ? NULL : __real_sodium_malloc(n);
}

/* SQLite's allocator. */
static void *sq_malloc(int n)
{
	return fail_now() ? NULL : __real_malloc((size_t)n);
}

static void sq_free(void *p)
{
	free(p);
}

static void *sq_realloc(void *p, int n)
{
	return fail_now() ? NULL : __real_realloc(p, (size_t)n);
}

static int sq_size(void *p)
{
	return p != NULL ? (int)malloc_usable_size(p) : 0;
}

static int sq_roundup(int n)
{
	return (n + 7) & ~7;
}

static int sq_init(void *ud)
{
	return SQLITE_OK;
}

static void sq_shutdown(void *ud)
{
}

int failmalloc_install(void)
{
	static const sqlite3_mem_methods m = {sq_malloc,  sq_free, sq_realloc,  sq_size,
	                                      sq_roundup, sq_init, sq_shutdown, NULL};
	return sqlite3_config(SQLITE_CONFIG_MALLOC, &m) == SQLITE_OK ? 0 : -1;
}
