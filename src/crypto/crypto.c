/* Sealing values and data keys with XChaCha20-Poly1305; keys in sodium_malloc memory. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"

int crypto_init(void)
{
	/* sodium_init() is thread-safe and idempotent: 0 first time, 1 afterwards. */
	return sodium_init() < 0 ? COFFER_EIO : COFFER_OK;
}

void crypto_random(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

int crypto_key_new(crypto_key *key)
{
	key->k = sodium_malloc(CRYPTO_KEY_LEN);
	return key->k == NULL ? COFFER_ENOMEM : COFFER_OK;
}

int crypto_key_random(crypto_key *key)
{
	int rc = crypto_key_new(key);
	if (rc == COFFER_OK)
		crypto_aead_xchacha20poly1305_ietf_keygen(key->k);
	return rc;
}

void crypto_key_free(crypto_key *key)
{
	if (key != NULL && key->k != NULL) {
		sodium_free(key->k); /* wipes before unmapping */
		key->k = NULL;
	}
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* AD for a value: format | store_id | key_id | version | name_len | name. */
#define VALUE_AD_MAX (1 + 16 + 4 + 8 + 2 + COFFER_NAME_MAX)

static size_t value_ad(uint8_t ad[VALUE_AD_MAX], uint8_t format, const crypto_place *pl)
{
	size_t n = 0;
	ad[n++] = format;
	memcpy(ad + n, pl->store_id, 16);
	n += 16;
	put_be32(ad + n, pl->key_id);
	n += 4;
	put_be64(ad + n, pl->version);
	n += 8;
	ad[n++] = (uint8_t)(pl->name_len >> 8);
	ad[n++] = (uint8_t)pl->name_len;
	memcpy(ad + n, pl->name, pl->name_len);
	return n + pl->name_len;
}

static void seal_raw(const unsigned char *key, const uint8_t *ad, size_t ad_len, const void *pt,
                     size_t pt_len, uint8_t *out)
{
	out[0] = CRYPTO_FORMAT_V1;
	randombytes_buf(out + 1, CRYPTO_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + CRYPTO_NONCE_LEN, NULL, pt, pt_len, ad,
	                                           ad_len, NULL, out + 1, key);
}

static int open_raw(const unsigned char *key, const uint8_t *ad, size_t ad_len,
                    const uint8_t *sealed, size_t sealed_len, void *pt, size_t *pt_len)
{
	unsigned long long n = 0;
	if (sealed_len < CRYPTO_OVERHEAD || sealed[0] != CRYPTO_FORMAT_V1)
		return COFFER_EINTEGRITY;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &n, NULL, sealed + 1 + CRYPTO_NONCE_LEN,
	                                               sealed_len - 1 - CRYPTO_NONCE_LEN, ad,
	                                               ad_len, sealed + 1, key) != 0) {
		sodium_memzero(pt, sealed_len - CRYPTO_OVERHEAD);
		return COFFER_EINTEGRITY;
	}
	*pt_len = (size_t)n;
	return COFFER_OK;
}

int crypto_seal_value(const crypto_key *key, const crypto_place *place, const void *pt,
                      size_t pt_len, uint8_t **out, size_t *out_len)
{
	uint8_t ad[VALUE_AD_MAX];
	if (place->name_len > COFFER_NAME_MAX)
		return COFFER_EINVAL;
	uint8_t *buf = malloc(pt_len + CRYPTO_OVERHEAD);
	if (buf == NULL)
		return COFFER_ENOMEM;
	seal_raw(key->k, ad, value_ad(ad, CRYPTO_FORMAT_V1, place), pt, pt_len, buf);
	*out = buf;
	*out_len = pt_len + CRYPTO_OVERHEAD;
	return COFFER_OK;
}

int crypto_open_value(const crypto_key *key, const crypto_place *place, const uint8_t *sealed,
                      size_t sealed_len, void *pt, size_t *pt_len)
{
	uint8_t ad[VALUE_AD_MAX];
	if (place->name_len > COFFER_NAME_MAX || sealed_len < CRYPTO_OVERHEAD)
		return COFFER_EINTEGRITY;
	/* The format byte is read from the blob but also bound in the AD, so flipping it fails. */
	size_t ad_len = value_ad(ad, sealed[0], place);
	return open_raw(key->k, ad, ad_len, sealed, sealed_len, pt, pt_len);
}

/* AD for a data key: "coffer-keyring" | store_id | key_id, and for the second format "+mac" after
 * that. Only the second is made now: it says the store has a metadata key (crypto.h). */
#define KEY_AD_MAX (14 + 16 + 4 + 4)

static size_t key_ad(uint8_t ad[KEY_AD_MAX], const uint8_t *store_id, uint32_t key_id, int format)
{
	memcpy(ad, "coffer-keyring", 14);
	memcpy(ad + 14, store_id, 16);
	put_be32(ad + 30, key_id);
	if (format == CRYPTO_KEYRING_V1)
		return 34;
	memcpy(ad + 34, "+mac", 4);
	return KEY_AD_MAX;
}

/* AD for the metadata key: "coffer-metakey" | store_id (never a data key's AD). */
#define META_AD_LEN (14 + 16)

static void meta_ad(uint8_t ad[META_AD_LEN], const uint8_t *store_id)
{
	memcpy(ad, "coffer-metakey", 14);
	memcpy(ad + 14, store_id, 16);
}

/* Open a sealed 32-byte key under `master` with the given AD into a new key. */
static int open_key_ad(const crypto_key *master, const uint8_t *ad, size_t ad_len,
                       const uint8_t *sealed, size_t sealed_len, crypto_key *out)
{
	size_t n = 0;
	if (sealed_len != CRYPTO_SEALED_KEY_LEN)
		return COFFER_EINTEGRITY;
	int rc = crypto_key_new(out);
	if (rc != COFFER_OK)
		return rc;
	rc = open_raw(master->k, ad, ad_len, sealed, sealed_len, out->k, &n);
	if (rc != COFFER_OK || n != CRYPTO_KEY_LEN) {
		crypto_key_free(out);
		return COFFER_EINTEGRITY;
	}
	return COFFER_OK;
}

int crypto_seal_key_fmt(const crypto_key *master, const uint8_t *store_id, uint32_t key_id,
                        const crypto_key *data_key, int format, uint8_t out[CRYPTO_SEALED_KEY_LEN])
{
	uint8_t ad[KEY_AD_MAX];
	if (format != CRYPTO_KEYRING_V1 && format != CRYPTO_KEYRING_V2)
		return COFFER_EINVAL;
	seal_raw(master->k, ad, key_ad(ad, store_id, key_id, format), data_key->k, CRYPTO_KEY_LEN,
	         out);
	return COFFER_OK;
}

int crypto_seal_key(const crypto_key *master, const uint8_t *store_id, uint32_t key_id,
                    const crypto_key *data_key, uint8_t out[CRYPTO_SEALED_KEY_LEN])
{
	return crypto_seal_key_fmt(master, store_id, key_id, data_key, CRYPTO_KEYRING_V2, out);
}

int crypto_open_key_fmt(const crypto_key *master, const uint8_t *store_id, uint32_t key_id,
                        const uint8_t *sealed, size_t sealed_len, crypto_key *data_key, int *format)
{
	uint8_t ad[KEY_AD_MAX];
	int rc = open_key_ad(master, ad, key_ad(ad, store_id, key_id, CRYPTO_KEYRING_V2), sealed,
	                     sealed_len, data_key);
	int fmt = CRYPTO_KEYRING_V2;
	if (rc == COFFER_EINTEGRITY) {
		fmt = CRYPTO_KEYRING_V1;
		rc = open_key_ad(master, ad, key_ad(ad, store_id, key_id, fmt), sealed, sealed_len,
		                 data_key);
	}
	if (rc == COFFER_OK && format != NULL)
		*format = fmt;
	return rc;
}

int crypto_open_key(const crypto_key *master, const uint8_t *store_id, uint32_t key_id,
                    const uint8_t *sealed, size_t sealed_len, crypto_key *data_key)
{
	return crypto_open_key_fmt(master, store_id, key_id, sealed, sealed_len, data_key, NULL);
}

int crypto_seal_meta_key(const crypto_key *master, const uint8_t *store_id,
                         const crypto_key *meta_key, uint8_t out[CRYPTO_SEALED_KEY_LEN])
{
	uint8_t ad[META_AD_LEN];
	meta_ad(ad, store_id);
	seal_raw(master->k, ad, sizeof ad, meta_key->k, CRYPTO_KEY_LEN, out);
	return COFFER_OK;
}

int crypto_open_meta_key(const crypto_key *master, const uint8_t *store_id, const uint8_t *sealed,
                         size_t sealed_len, crypto_key *meta_key)
{
	uint8_t ad[META_AD_LEN];
	meta_ad(ad, store_id);
	return open_key_ad(master, ad, sizeof ad, sealed, sealed_len, meta_key);
}

void crypto_mac(const crypto_key *key, const uint8_t *msg, size_t len, uint8_t out[CRYPTO_MAC_LEN])
{
	/* Keyed BLAKE2b: a PRF, so a tag says nothing about the key or about other tags. */
	crypto_generichash(out, CRYPTO_MAC_LEN, msg, len, key->k, CRYPTO_KEY_LEN);
}

void crypto_mac2(const crypto_key *key, const uint8_t *head, size_t hlen, const void *body,
                 size_t blen, uint8_t out[CRYPTO_MAC_LEN])
{
	crypto_generichash_state h;
	crypto_generichash_init(&h, key->k, CRYPTO_KEY_LEN, CRYPTO_MAC_LEN);
	crypto_generichash_update(&h, head, hlen);
	crypto_generichash_update(&h, body, blen);
	crypto_generichash_final(&h, out, CRYPTO_MAC_LEN);
	sodium_memzero(&h, sizeof h);
}

int crypto_mac_verify(const crypto_key *key, const uint8_t *msg, size_t len,
                      const uint8_t tag[CRYPTO_MAC_LEN])
{
	uint8_t want[CRYPTO_MAC_LEN];
	crypto_mac(key, msg, len, want);
	int same = sodium_memcmp(want, tag, CRYPTO_MAC_LEN) == 0; /* constant time */
	sodium_memzero(want, sizeof want);
	return same ? COFFER_OK : COFFER_EINTEGRITY;
}

void crypto_passphrase_defaults(uint64_t *opslimit, uint64_t *memlimit)
{
	/* MODERATE (3 passes, 256 MiB): INTERACTIVE is meant for logins checked online, and a
	 * copy of a store can be attacked offline. */
	*opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
	*memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
}

int crypto_key_from_passphrase(crypto_key *key, const char *pass, size_t pass_len,
                               const uint8_t salt[16], uint64_t opslimit, uint64_t memlimit)
{
	/* The limits come from the store header: bound them so a hostile header cannot make us
	 * allocate without limit or spin forever. */
	if (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > 64 ||
	    memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > (uint64_t)4 << 30)
		return COFFER_ECORRUPT;
	int rc = crypto_key_new(key);
	if (rc != COFFER_OK)
		return rc;
	if (crypto_pwhash(key->k, CRYPTO_KEY_LEN, pass, pass_len, salt, opslimit, (size_t)memlimit,
	                  crypto_pwhash_ALG_ARGON2ID13) != 0) {
		crypto_key_free(key);
		return COFFER_ENOMEM;
	}
	return COFFER_OK;
}

int crypto_key_from_base64(crypto_key *key, const char *b64, size_t len)
{
	while (len > 0 && (b64[len - 1] == '\n' || b64[len - 1] == '\r' || b64[len - 1] == ' ' ||
	                   b64[len - 1] == '\t'))
		len--;
	while (len > 0 && (b64[0] == ' ' || b64[0] == '\t')) {
		b64++;
		len--;
	}
	int rc = crypto_key_new(key);
	if (rc != COFFER_OK)
		return rc;
	size_t n = 0;
	const char *end = NULL;
	if (sodium_base642bin(key->k, CRYPTO_KEY_LEN, b64, len, NULL, &n, &end,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n != CRYPTO_KEY_LEN || end != b64 + len) {
		crypto_key_free(key);
		return COFFER_EKEY;
	}
	return COFFER_OK;
}

void crypto_key_to_base64(const crypto_key *key, char *out, size_t out_len)
{
	sodium_bin2base64(out, out_len, key->k, CRYPTO_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
}
