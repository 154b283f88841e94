/*
 * fuzz_core.c -- libFuzzer target over libcoffer's parsers of untrusted bytes: secret names,
 * version ids, base64 master keys and sealed blobs read from a store. The first byte picks the
 * parser; each branch also checks a property, so a wrong answer aborts like a crash would.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "crypto/crypto.h"

static const uint8_t store_id[16] = "fuzz-store-id-16";

static void check(int ok)
{
	if (!ok)
		abort();
}

static void fuzz_name(const uint8_t *d, size_t n)
{
	int valid = coffer_name_check((const char *)d, n) == COFFER_OK;
	int portable = coffer_name_portable((const char *)d, n);
	check(!portable || valid); /* portable names are a subset of valid ones */
	check(!valid || (n >= 1 && n <= COFFER_NAME_MAX));
	check(!valid || memchr(d, '/', n) == NULL);
}

static void fuzz_version(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);
	if (s == NULL)
		return;
	memcpy(s, d, n);
	s[n] = '\0';
	uint64_t v = 0;
	if (core_version_parse(s, &v) == COFFER_OK && v != 0) {
		/* Only canonical ids parse: formatting gives the very same string back. */
		char back[COFFER_VERSION_MAX];
		core_version_format(v, back);
		check(strcmp(back, s) == 0);
		check(v <= (uint64_t)INT64_MAX);
	}
	free(s);
}

static void fuzz_key_b64(const uint8_t *d, size_t n)
{
	crypto_key k = {0};
	if (crypto_key_from_base64(&k, (const char *)d, n) == COFFER_OK)
		crypto_key_free(&k);
	else
		check(k.k == NULL);
}

static void fuzz_sealed(const uint8_t *d, size_t n)
{
	static crypto_key key;
	if (key.k == NULL) {
		if (crypto_key_new(&key) != COFFER_OK)
			abort();
		memset(key.k, 0x42, CRYPTO_KEY_LEN);
	}
	crypto_place pl = {store_id, 1, 7, "fuzz", 4};
	uint8_t *pt = malloc(n + 1);
	size_t len = 0;
	if (pt == NULL)
		return;
	/* Arbitrary bytes never open (a forgery would need the key). */
	check(crypto_open_value(&key, &pl, d, n, pt, &len) == COFFER_EINTEGRITY);
	/* And the same bytes sealed properly round-trip exactly. */
	uint8_t *sealed = NULL;
	size_t slen = 0;
	if (crypto_seal_value(&key, &pl, d, n, &sealed, &slen) == COFFER_OK) {
		check(crypto_open_value(&key, &pl, sealed, slen, pt, &len) == COFFER_OK);
		check(len == n && (n == 0 || memcmp(pt, d, n) == 0));
		free(sealed);
	}
	free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (crypto_init() != COFFER_OK) /* as coffer_open() does before any key is made */
		abort();
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	switch (data[0] % 4) {
	case 0:
		fuzz_name(d, n);
		break;
	case 1:
		fuzz_version(d, n);
		break;
	case 2:
		fuzz_key_b64(d, n);
		break;
	default:
		fuzz_sealed(d, n);
		break;
	}
	return 0;
}
