/*
 * canary.h -- the "nothing readable at rest" check shared by the SQLite and PostgreSQL tests:
 * 1,000 random canary values, put through the public API, then searched for in raw bytes
 * (store files, a pg_dump) as raw text, a 12-byte fragment, hex (both cases) and base64.
 */
#ifndef COFFER_TEST_CANARY_H
#define COFFER_TEST_CANARY_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "coffer.h"

#define CANARIES       1000
#define CANARY_LEN     24
#define CANARY_SECRETS 10

typedef unsigned char canary_set[CANARIES][CANARY_LEN];

/* Deterministic canaries from a printed seed. */
static inline void canary_make(canary_set c, uint32_t seed)
{
	printf("# canary seed %u\n", seed);
	for (int i = 0; i < CANARIES; i++)
		for (int j = 0; j < CANARY_LEN; j++) {
			seed = seed * 1103515245u + 12345u;
			c[i][j] = (unsigned char)('A' + (seed >> 16) % 26);
		}
}

/* Put every canary (secrets canary-0..9, batches of 50) and read the last one back.
 * Returns COFFER_OK or the first failure. */
static inline int canary_put_all(coffer_store *st, canary_set c)
{
	coffer_secret *s[CANARY_SECRETS] = {0};
	int rc = COFFER_OK;
	for (int i = 0; i < CANARY_SECRETS && rc == COFFER_OK; i++) {
		char name[32];
		snprintf(name, sizeof name, "canary-%d", i);
		rc = coffer_secret_ref(st, name, COFFER_PUT | COFFER_ACCESS, &s[i]);
	}
	for (int i = 0; i < CANARIES && rc == COFFER_OK; i += 50) {
		coffer_put_item it[50];
		for (int j = 0; j < 50; j++)
			it[j] = (coffer_put_item){.secret = s[(i + j) % CANARY_SECRETS],
			                          .value = c[i + j],
			                          .len = CANARY_LEN};
		rc = coffer_put_batch(st, it, 50);
	}
	coffer_value *v = NULL;
	if (rc == COFFER_OK)
		rc = coffer_access(s[CANARY_SECRETS - 1], "latest", &v);
	if (rc == COFFER_OK && memcmp(coffer_value_data(v, NULL), c[CANARIES - 1], CANARY_LEN))
		rc = COFFER_EINTEGRITY; /* the canaries are really in there */
	coffer_value_free(v);
	for (int i = 0; i < CANARY_SECRETS; i++)
		coffer_secret_free(s[i]);
	return rc;
}

/* How many forms of one canary occur in buf. */
static inline int canary_hits(const void *buf, size_t n, const unsigned char *canary)
{
	char hex[2 * CANARY_LEN + 1], b64[64];
	int hits = memmem(buf, n, canary, CANARY_LEN) != NULL;
	hits += memmem(buf, n, canary, 12) != NULL; /* a fragment */
	sodium_bin2hex(hex, sizeof hex, canary, CANARY_LEN);
	hits += memmem(buf, n, hex, 2 * CANARY_LEN) != NULL;
	for (int j = 0; hex[j]; j++)
		hex[j] = (char)(hex[j] >= 'a' ? hex[j] - 32 : hex[j]);
	hits += memmem(buf, n, hex, 2 * CANARY_LEN) != NULL;
	sodium_bin2base64(b64, sizeof b64, canary, CANARY_LEN, sodium_base64_VARIANT_ORIGINAL);
	hits += memmem(buf, n, b64, strlen(b64)) != NULL;
	return hits;
}

/* Hits of all canaries in buf. */
static inline int canary_scan(const void *buf, size_t n, canary_set c)
{
	int hits = 0;
	for (int i = 0; i < CANARIES; i++)
		hits += canary_hits(buf, n, c[i]);
	return hits;
}

#endif
