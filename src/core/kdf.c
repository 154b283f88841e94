/*
 * Passphrase-derived master keys, derived once per process. Argon2id at MODERATE limits costs
 * about a second and 256 MiB; a server opens one handle per worker and one for its committer, and
 * each would pay it again. So a derived key is kept while at least one handle made from it is
 * open, found again by (salt, limits, keyed hash of the passphrase), and wiped when the last
 * such handle closes: a closed library holds no key material.
 */
#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "core/internal.h"

#define KDF_SLOTS 4

typedef struct kdf_entry {
	uint8_t salt[STORE_SALT_LEN];
	uint64_t ops, mem;
	uint8_t tag[crypto_generichash_BYTES]; /* BLAKE2b of the passphrase, keyed per process */
	crypto_key key;                        /* NULL k: a free slot */
	unsigned refs;
} kdf_entry;

static pthread_mutex_t kdf_mu = PTHREAD_MUTEX_INITIALIZER;
static kdf_entry kdf_slots[KDF_SLOTS];
static uint8_t kdf_tag_key[crypto_generichash_KEYBYTES];
static int kdf_tag_key_ready;
unsigned long core_kdf_derivations; /* for tests: how many times Argon2id ran */

static kdf_entry *kdf_find(const uint8_t *salt, uint64_t ops, uint64_t mem, const uint8_t *tag)
{
	for (size_t i = 0; i < KDF_SLOTS; i++) {
		kdf_entry *e = &kdf_slots[i];
		if (e->key.k != NULL && e->ops == ops && e->mem == mem &&
		    sodium_memcmp(e->salt, salt, STORE_SALT_LEN) == 0 &&
		    sodium_memcmp(e->tag, tag, sizeof e->tag) == 0)
			return e;
	}
	return NULL;
}

static int key_copy(const crypto_key *from, crypto_key *to)
{
	int rc = crypto_key_new(to);
	if (rc == COFFER_OK)
		memcpy(to->k, from->k, CRYPTO_KEY_LEN);
	return rc;
}

/* Derive (or find) the key; on success *out is the caller's own copy and *ref must be given to
 * core_kdf_release() when the handle closes. The lock is held across Argon2id on purpose: a
 * second opener waits for the first derivation instead of running its own. */
int core_kdf_derive(const char *pass, size_t len, const uint8_t salt[STORE_SALT_LEN], uint64_t ops,
                    uint64_t mem, crypto_key *out, void **ref)
{
	uint8_t tag[crypto_generichash_BYTES];
	pthread_mutex_lock(&kdf_mu);
	if (!kdf_tag_key_ready) {
		randombytes_buf(kdf_tag_key, sizeof kdf_tag_key);
		kdf_tag_key_ready = 1;
	}
	crypto_generichash(tag, sizeof tag, (const unsigned char *)pass, len, kdf_tag_key,
	                   sizeof kdf_tag_key);
	kdf_entry *e = kdf_find(salt, ops, mem, tag);
	int rc = COFFER_OK;
	if (e == NULL) {
		for (size_t i = 0; i < KDF_SLOTS && e == NULL; i++)
			e = kdf_slots[i].key.k == NULL ? &kdf_slots[i] : NULL;
		crypto_key fresh = {0};
		rc = crypto_key_from_passphrase(&fresh, pass, len, salt, ops, mem);
		core_kdf_derivations += rc == COFFER_OK;
		if (rc == COFFER_OK && e != NULL) {
			memcpy(e->salt, salt, STORE_SALT_LEN);
			e->ops = ops;
			e->mem = mem;
			memcpy(e->tag, tag, sizeof tag);
			e->key = fresh;
			e->refs = 0;
		} else if (rc == COFFER_OK) { /* every slot in use: serve this one uncached */
			*out = fresh;
			*ref = NULL;
			pthread_mutex_unlock(&kdf_mu);
			return COFFER_OK;
		}
	}
	if (rc == COFFER_OK && (rc = key_copy(&e->key, out)) == COFFER_OK) {
		e->refs++;
		*ref = e;
	} else if (e != NULL && e->key.k != NULL && e->refs == 0) {
		crypto_key_free(&e->key); /* just derived, and nobody holds it */
		sodium_memzero(e, sizeof *e);
	}
	pthread_mutex_unlock(&kdf_mu);
	sodium_memzero(tag, sizeof tag);
	return rc;
}

void core_kdf_release(void *ref)
{
	kdf_entry *e = ref;
	if (e == NULL)
		return;
	pthread_mutex_lock(&kdf_mu);
	if (e->refs > 0 && --e->refs == 0) {
		crypto_key_free(&e->key);
		sodium_memzero(e, sizeof *e);
	}
	pthread_mutex_unlock(&kdf_mu);
}
