/*
 * Key rotation. Rotating the data key adds a key to the keyring (new values use it); the
 * re-encrypt pass moves old values over; rotating the master key re-seals only the keyring.
 * The master key is kept under sodium_mprotect_noaccess and unlocked only inside these calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/internal.h"

static const crypto_key *master_unlock(coffer_store *st)
{
	sodium_mprotect_readonly(st->master.k);
	return &st->master;
}

static void master_lock(coffer_store *st)
{
	sodium_mprotect_noaccess(st->master.k);
}

const crypto_key *core_key_find(coffer_store *st, uint32_t id)
{
	const crypto_key *k = core_key_by_id(st, id);
	if (k != NULL || st->master.k == NULL)
		return k;
	char err[CORE_ERRMSG_MAX];
	(void)core_keyring_load(st, master_unlock(st), err, sizeof err);
	master_lock(st);
	return core_key_by_id(st, id);
}

static int unsupported(coffer_store *st, const void *op)
{
	if (op != NULL)
		return 0;
	core_set_err(st, "the %s backend does not support key rotation", st->ops->scheme);
	return 1;
}

/* Add one new data key under the master key; the caller holds the lock. */
static int add_data_key(coffer_store *st, uint32_t *out_id)
{
	if (st->nkeys == CORE_KEYRING_MAX) {
		core_set_err(st, "the keyring is full (%d keys)", CORE_KEYRING_MAX);
		return COFFER_EINVAL;
	}
	uint32_t id = 0;
	for (size_t i = 0; i < st->nkeys; i++)
		id = st->keys[i].id > id ? st->keys[i].id : id;
	id++;
	core_data_key *k = &st->keys[st->nkeys];
	uint8_t sealed[CRYPTO_SEALED_KEY_LEN];
	int rc = crypto_key_random(&k->key);
	if (rc == COFFER_OK)
		rc = crypto_seal_key(master_unlock(st), st->store_id, id, &k->key, sealed);
	master_lock(st);
	if (rc == COFFER_OK)
		rc = st->ops->keys_add(st->be, id, sealed, sizeof sealed);
	if (rc != COFFER_OK) {
		crypto_key_free(&k->key);
		return rc;
	}
	k->id = id;
	st->newest = st->nkeys++;
	*out_id = id;
	return COFFER_OK;
}

int coffer_rotate_data_key(coffer_store *st, uint32_t *key_id)
{
	if (st == NULL)
		return COFFER_EMISUSE;
	pthread_mutex_lock(&st->mu);
	int rc = COFFER_EMISUSE;
	uint32_t id = 0;
	if (!unsupported(st, (const void *)st->ops->keys_add)) {
		char err[CORE_ERRMSG_MAX];
		/* Learn keys other processes added, so the new id is really new. */
		rc = core_keyring_load(st, master_unlock(st), err, sizeof err);
		master_lock(st);
		if (rc == COFFER_OK)
			rc = add_data_key(st, &id);
		if (rc == COFFER_EBUSY) { /* another process took that id just now: once more */
			rc = core_keyring_load(st, master_unlock(st), err, sizeof err);
			master_lock(st);
			if (rc == COFFER_OK)
				rc = add_data_key(st, &id);
		}
		if (rc != COFFER_OK)
			core_set_backend_err(st, rc);
	}
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK && key_id != NULL)
		*key_id = id;
	return rc;
}

int (*core_reencrypt_hook)(int phase);

/* Re-encrypt one row under the newest key. */
static int reseal_one(void *ctx, const char *name, size_t name_len, const store_row *row,
                      uint32_t *new_key_id, uint8_t **sealed, size_t *sealed_len)
{
	coffer_store *st = ctx;
	if (core_reencrypt_hook != NULL && core_reencrypt_hook(1) != 0)
		return COFFER_EIO;
	const crypto_key *old = core_key_find(st, row->key_id);
	const core_data_key *nk = &st->keys[st->newest];
	if (old == NULL || row->sealed_len < CRYPTO_OVERHEAD || name_len > COFFER_NAME_MAX)
		return COFFER_EINTEGRITY;
	size_t cap = row->sealed_len - CRYPTO_OVERHEAD, len = 0;
	uint8_t *pt = malloc(cap + 1);
	if (pt == NULL)
		return COFFER_ENOMEM;
	crypto_place from = {st->store_id, row->key_id, row->version, name, name_len};
	crypto_place to = {st->store_id, nk->id, row->version, name, name_len};
	int rc = crypto_open_value(old, &from, row->sealed, row->sealed_len, pt, &len);
	if (rc == COFFER_OK)
		rc = crypto_seal_value(&nk->key, &to, pt, len, sealed, sealed_len);
	sodium_memzero(pt, cap + 1);
	free(pt);
	if (rc == COFFER_OK)
		*new_key_id = nk->id;
	else if (rc == COFFER_EINTEGRITY)
		core_set_err(st,
		             "secret '%.*s' version %llu failed its integrity check; nothing "
		             "after it was re-encrypted",
		             (int)name_len, name, (unsigned long long)row->version);
	return rc;
}

int coffer_reencrypt(coffer_store *st, size_t *count)
{
	if (st == NULL)
		return COFFER_EMISUSE;
	pthread_mutex_lock(&st->mu);
	int rc = COFFER_EMISUSE;
	size_t moved = 0;
	if (!unsupported(st, (const void *)st->ops->reseal_values)) {
		char err[CORE_ERRMSG_MAX];
		rc = core_keyring_load(st, master_unlock(st), err, sizeof err);
		master_lock(st);
		st->errmsg[0] = '\0';
		if (rc == COFFER_OK && core_reencrypt_hook != NULL && core_reencrypt_hook(0) != 0)
			rc = COFFER_EIO;
		if (rc == COFFER_OK)
			rc = st->ops->reseal_values(st->be, st->keys[st->newest].id, reseal_one, st,
			                            &moved);
		if (rc != COFFER_OK && st->errmsg[0] == '\0')
			core_set_backend_err(st, rc);
	}
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK && count != NULL)
		*count = moved;
	return rc;
}

typedef struct rekey_ctx {
	coffer_store *st;
	const crypto_key *old_master, *new_master;
} rekey_ctx;

static int rekey_one(void *ctx, uint32_t key_id, const uint8_t *sealed, size_t len, uint8_t *out,
                     size_t *out_len)
{
	rekey_ctx *rc_ = ctx;
	crypto_key dk = {0};
	int rc = crypto_open_key(rc_->old_master, rc_->st->store_id, key_id, sealed, len, &dk);
	if (rc == COFFER_OK)
		rc = crypto_seal_key(rc_->new_master, rc_->st->store_id, key_id, &dk, out);
	crypto_key_free(&dk);
	*out_len = CRYPTO_SEALED_KEY_LEN;
	if (rc == COFFER_EINTEGRITY)
		core_set_err(rc_->st, "data key %u does not open with the current master key",
		             (unsigned)key_id);
	return rc;
}

/* The new master key from explicit options only (never the environment). */
static int new_master(coffer_store *st, const coffer_options *o, crypto_key *key, char *err,
                      size_t errlen)
{
	if (o->master_key_b64 != NULL) {
		int rc = crypto_key_from_base64(key, o->master_key_b64, strlen(o->master_key_b64));
		if (rc == COFFER_EKEY)
			snprintf(err, errlen, "the new master key is not base64 of 32 bytes");
		return rc;
	}
	if (o->passphrase != NULL) {
		store_boot hdr;
		int rc = st->ops->bootstrap(st->be, NULL, &hdr, &(int){0});
		if (rc == COFFER_OK)
			rc = crypto_key_from_passphrase(key, o->passphrase, strlen(o->passphrase),
			                                hdr.kdf_salt, hdr.kdf_opslimit,
			                                hdr.kdf_memlimit);
		if (rc != COFFER_OK)
			snprintf(err, errlen,
			         "cannot derive the new master key from the passphrase");
		return rc;
	}
	if (o->key_file != NULL) {
		int created = 0;
		return crypto_key_file_create(o->key_file, key, &created, err, errlen);
	}
	snprintf(err, errlen, "no new master key given (key, passphrase or key file)");
	return COFFER_EINVAL;
}

int coffer_rotate_master_key(coffer_store *st, const coffer_options *new_key, char *errbuf,
                             size_t errlen)
{
	char dummy[CORE_ERRMSG_MAX];
	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof dummy;
	}
	errbuf[0] = '\0';
	if (st == NULL || new_key == NULL)
		return COFFER_EMISUSE;
	pthread_mutex_lock(&st->mu);
	crypto_key nk = {0};
	int rc = COFFER_EMISUSE;
	if (unsupported(st, (const void *)st->ops->keys_reseal)) {
		snprintf(errbuf, errlen, "%s", st->errmsg);
	} else if ((rc = new_master(st, new_key, &nk, errbuf, errlen)) == COFFER_OK) {
		rekey_ctx rk = {st, master_unlock(st), &nk};
		st->errmsg[0] = '\0';
		rc = st->ops->keys_reseal(st->be, rekey_one, &rk);
		master_lock(st);
		if (rc != COFFER_OK)
			snprintf(errbuf, errlen, "%s",
			         st->errmsg[0] ? st->errmsg : st->ops->errmsg(st->be));
	}
	if (rc == COFFER_OK) {
		crypto_key_free(&st->master);
		st->master = nk;
		nk.k = NULL;
		master_lock(st);
	}
	crypto_key_free(&nk);
	pthread_mutex_unlock(&st->mu);
	return rc;
}
