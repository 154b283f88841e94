/*
 * wipe.c -- wiping allocators (see wipe.h).
 */
#include "wipe.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <sodium.h>

void wipe_free(void *p)
{
	if (p == NULL)
		return;
	sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

/* Never realloc in place: the old block may hold a value and must be wiped, not abandoned. */
void *wipe_realloc(void *p, size_t n)
{
	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		wipe_free(p);
		return NULL;
	}
	void *q = malloc(n);
	if (q == NULL)
		return NULL;
	size_t old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}

static void *ng_malloc(size_t n, void *ud)
{
	return malloc(n);
}

static void ng_free(void *p, void *ud)
{
	wipe_free(p);
}

static void *ng_calloc(size_t nmemb, size_t size, void *ud)
{
	return calloc(nmemb, size);
}

static void *ng_realloc(void *p, size_t n, void *ud)
{
	return wipe_realloc(p, n);
}

const void *wipe_nghttp2_mem(void)
{
	static const nghttp2_mem mem = {NULL, ng_malloc, ng_free, ng_calloc, ng_realloc};
	return &mem;
}

static void *ssl_malloc(size_t n, const char *file, int line)
{
	return malloc(n);
}

static void *ssl_realloc(void *p, size_t n, const char *file, int line)
{
	return wipe_realloc(p, n);
}

static void ssl_free(void *p, const char *file, int line)
{
	wipe_free(p);
}

void wipe_install_global(void)
{
	event_set_mem_functions(malloc, wipe_realloc, wipe_free);
	/* Fails (harmlessly) if OpenSSL already allocated: then its buffers are not wiped. */
	(void)CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc, ssl_free);
}
