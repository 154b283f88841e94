/*
 * crypto.h -- keys and sealing (libsodium). Internal to libcoffer.
 *
 * Sealed value layout:   format(1) | nonce(24) | XChaCha20-Poly1305(ciphertext | tag(16))
 * Authenticated data:    format | store_id(16) | key_id(u32 BE) | version(u64 BE) |
 *                        name_len(u16 BE) | name
 * so a ciphertext moved to another store, secret, version or key fails to open.
 * Sealed data keys use the same layout with AD = "coffer-keyring" | store_id | key_id | "+mac"
 * (CRYPTO_KEYRING_V2). Stores from before metadata MACs sealed them without "+mac" (V1); a key in
 * the second form says that the store has a metadata key, and nobody without the master key can
 * make one or turn it back into the first form. The metadata key (the key of the MACs over each
 * secret's metadata, docs/internals.md) is sealed the same way with AD = "coffer-metakey" |
 * store_id.
 */
#ifndef COFFER_CRYPTO_H
#define COFFER_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "coffer.h"

#define CRYPTO_KEY_LEN        32
#define CRYPTO_NONCE_LEN      24
#define CRYPTO_TAG_LEN        16
#define CRYPTO_FORMAT_V1      0x01
#define CRYPTO_OVERHEAD       (1 + CRYPTO_NONCE_LEN + CRYPTO_TAG_LEN)
#define CRYPTO_SEALED_KEY_LEN (CRYPTO_OVERHEAD + CRYPTO_KEY_LEN)

/* A 256-bit key in sodium_malloc memory (guard pages, mlock where allowed, wiped on free). */
typedef struct crypto_key {
	unsigned char *k; /* CRYPTO_KEY_LEN bytes */
} crypto_key;

int crypto_init(void) __attribute__((warn_unused_result));

int crypto_key_new(crypto_key *key) __attribute__((warn_unused_result));
int crypto_key_random(crypto_key *key) __attribute__((warn_unused_result));
void crypto_key_free(crypto_key *key);

/* Where a value lives: bound into the authenticated data. */
typedef struct crypto_place {
	const uint8_t *store_id; /* 16 bytes */
	uint32_t key_id;
	uint64_t version;
	const char *name;
	size_t name_len;
} crypto_place;

/* Seal pt into a malloc'd blob (*out, *out_len = pt_len + CRYPTO_OVERHEAD). */
int crypto_seal_value(const crypto_key *key, const crypto_place *place, const void *pt,
                      size_t pt_len, uint8_t **out, size_t *out_len)
    __attribute__((warn_unused_result));

/* Open a sealed blob into pt (capacity >= sealed_len - CRYPTO_OVERHEAD). On failure the output
 * is wiped and COFFER_EINTEGRITY returned, whatever the reason (opaque, like libsodium). */
int crypto_open_value(const crypto_key *key, const crypto_place *place, const uint8_t *sealed,
                      size_t sealed_len, void *pt, size_t *pt_len)
    __attribute__((warn_unused_result));

/* Seal / open a data key under the master key. crypto_seal_key() makes the current format
 * (CRYPTO_KEYRING_V2); crypto_open_key() opens either, and crypto_open_key_fmt() says which it
 * was in *format (when not NULL). */
#define CRYPTO_KEYRING_V1 1
#define CRYPTO_KEYRING_V2 2
int crypto_seal_key(const crypto_key *master, const uint8_t *store_id, uint32_t key_id,
                    const crypto_key *data_key, uint8_t out[CRYPTO_SEALED_KEY_LEN])
    __attribute__((warn_unused_result));
int crypto_seal_key_fmt(const crypto_key *master, const uint8_t *store_id, uint32_t key_id,
                        const crypto_key *data_key, int format, uint8_t out[CRYPTO_SEALED_KEY_LEN])
    __attribute__((warn_unused_result));
int crypto_open_key(const crypto_key *master, const uint8_t *store_id, uint32_t key_id,
                    const uint8_t *sealed, size_t sealed_len, crypto_key *data_key)
    __attribute__((warn_unused_result));
int crypto_open_key_fmt(const crypto_key *master, const uint8_t *store_id, uint32_t key_id,
                        const uint8_t *sealed, size_t sealed_len, crypto_key *data_key, int *format)
    __attribute__((warn_unused_result));

/* Seal / open the metadata key under the master key. */
int crypto_seal_meta_key(const crypto_key *master, const uint8_t *store_id,
                         const crypto_key *meta_key, uint8_t out[CRYPTO_SEALED_KEY_LEN])
    __attribute__((warn_unused_result));
int crypto_open_meta_key(const crypto_key *master, const uint8_t *store_id, const uint8_t *sealed,
                         size_t sealed_len, crypto_key *meta_key)
    __attribute__((warn_unused_result));

/* A MAC (keyed BLAKE2b-256) of msg; verify compares in constant time: COFFER_OK or
 * COFFER_EINTEGRITY. */
#define CRYPTO_MAC_LEN 32
void crypto_mac(const crypto_key *key, const uint8_t *msg, size_t len, uint8_t out[CRYPTO_MAC_LEN]);
int crypto_mac_verify(const crypto_key *key, const uint8_t *msg, size_t len,
                      const uint8_t tag[CRYPTO_MAC_LEN]) __attribute__((warn_unused_result));
/* The MAC of head | body, the two in one pass (a long body is not copied). */
void crypto_mac2(const crypto_key *key, const uint8_t *head, size_t hlen, const void *body,
                 size_t blen, uint8_t out[CRYPTO_MAC_LEN]);

/* Argon2id: derive a master key from a passphrase and the store's salt and limits. */
int crypto_key_from_passphrase(crypto_key *key, const char *pass, size_t pass_len,
                               const uint8_t salt[16], uint64_t opslimit, uint64_t memlimit)
    __attribute__((warn_unused_result));
void crypto_passphrase_defaults(uint64_t *opslimit, uint64_t *memlimit);

/* Decode base64 (standard alphabet, surrounding whitespace ignored) of exactly 32 bytes. */
int crypto_key_from_base64(crypto_key *key, const char *b64, size_t len)
    __attribute__((warn_unused_result));
/* Encode a key as base64 into out (at least 64 bytes). */
void crypto_key_to_base64(const crypto_key *key, char *out, size_t out_len);

void crypto_random(void *buf, size_t len);

/* Read a key file: refuses symlinks, non-regular files, files of another owner and files
 * readable or writable by group/others. */
int crypto_key_file_read(const char *path, crypto_key *key, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Create a key file holding a fresh random key (O_EXCL|O_NOFOLLOW, mode 0600, fsync'd, and its
 * directory fsync'd). If the file appeared meanwhile (another process won the race), the key in
 * it is returned instead; *created says which. */
int crypto_key_file_create(const char *path, crypto_key *key, int *created, char *err,
                           size_t errlen) __attribute__((warn_unused_result));
/* Remove what killed crypto_key_file_create(path) calls left: path.tmpXXXXXX files in its folder
 * that are regular, ours, and not being written (their creator holds an flock until done).
 * Best effort, silent. */
void crypto_key_file_sweep(const char *path);
/* fsync the folder holding path (after a rename or link into it). Best effort. */
void crypto_fsync_dir_of(const char *path);

#endif
