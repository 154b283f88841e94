/*
 * Key rotation. Rotating the data key adds a key to the keyring (new values use it); the
 * re-encrypt pass moves old values over; rotating the master key re-seals only the keyring.
 * The master key is kept under sodium_mprotect_noaccess and unlocked only inside these calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Reload the keyring with the master key unlocked for just that; the handle's message on error. */
static int keyring_reload(coffer_store *st)
{
	char err[CORE_ERRMSG_MAX];
	int rc = core_keyring_load(st, master_unlock(st), err, sizeof err);
	master_lock(st);
	if (rc != COFFER_OK)
		core_set_err(st, "%s", err);
	return rc;
}

int core_key_find(coffer_store *st, uint32_t id, const crypto_key **out)
{
	*out = core_key_by_id(st, id);
	if (*out != NULL)
		return COFFER_OK;
	int rc = keyring_reload(st);
	if (rc != COFFER_OK)
		return rc;
	*out = core_key_by_id(st, id);
	return *out != NULL ? COFFER_OK : COFFER_EINTEGRITY;
}

int core_newest_key(coffer_store *st, const store_key *newest, uint32_t keep,
                    const core_data_key **out)
{
	if (newest->id == 0) {
		core_set_err(st, "store has no data keys");
		return COFFER_ECORRUPT;
	}
	for (size_t i = 0; i < st->nkeys; i++)
		if (st->keys[i].id == newest->id) {
			*out = &st->keys[i];
			return COFFER_OK;
		}
	/* Another process rotated: open its key with ours (a key of another master: a rekey). */
	crypto_key k = {0};
	int rc = crypto_open_key(master_unlock(st), st->store_id, newest->id, newest->sealed,
	                         newest->len, &k);
	master_lock(st);
	if (rc == COFFER_ENOMEM)
		return rc;
	if (rc != COFFER_OK) {
		core_set_err(st, "%s (data key %u does not open with the key in hand)",
		             CORE_STALE_MASTER, (unsigned)newest->id);
		return COFFER_EKEY;
	}
	*out = core_key_adopt(st, newest->id, &k, keep);
	return COFFER_OK;
}

static int unsupported(coffer_store *st, const void *op)
{
	if (op != NULL)
		return 0;
	core_set_err(st, "the %s backend does not support key rotation", st->ops->scheme);
	return 1;
}

/* Adding a data key: what the backend calls back inside its write transaction. */
typedef struct add_ctx {
	coffer_store *st;
	const crypto_key *master;
	crypto_key fresh; /* the new key, kept by the handle once committed */
	uint32_t id;
} add_ctx;

/* Each stored key must open with our master key: a keyring resealed by another process's rekey
 * must never get a key sealed under the old one (the store would open with neither). */
static int add_check(void *ctx, uint32_t id, const uint8_t *sealed, size_t len)
{
	add_ctx *ac = ctx;
	crypto_key k = {0};
	int rc = crypto_open_key(ac->master, ac->st->store_id, id, sealed, len, &k);
	crypto_key_free(&k);
	if (rc == COFFER_OK || rc == COFFER_ENOMEM)
		return rc;
	core_set_err(ac->st, "%s (data key %u does not open with the key in hand)",
	             CORE_STALE_MASTER, (unsigned)id);
	return COFFER_EKEY;
}

static int add_make(void *ctx, uint32_t id, size_t nkeys, uint8_t *out, size_t *out_len)
{
	add_ctx *ac = ctx;
	if (nkeys >= CORE_KEYRING_MAX) {
		core_set_err(
		    ac->st,
		    "the keyring is full (%d data keys, each still used by some version): "
		    "finish re-encryption first (coffer_reencrypt(); coffer rotate-key does "
		    "it), which moves old versions to the newest key and prunes the others",
		    CORE_KEYRING_MAX);
		return COFFER_EBUSY;
	}
	int rc = crypto_key_random(&ac->fresh);
	if (rc == COFFER_OK)
		rc = crypto_seal_key(ac->master, ac->st->store_id, id, &ac->fresh, out);
	*out_len = CRYPTO_SEALED_KEY_LEN;
	ac->id = id;
	return rc;
}

int coffer_rotate_data_key(coffer_store *st, uint32_t *key_id)
{
	if (st == NULL)
		return COFFER_EMISUSE;
	pthread_mutex_lock(&st->mu);
	int rc = COFFER_EMISUSE;
	add_ctx ac = {st, NULL, {0}, 0};
	if (!unsupported(st, (const void *)st->ops->keys_add)) {
		st->errmsg[0] = '\0';
		ac.master = master_unlock(st);
		rc = st->ops->keys_add(st->be, add_check, add_make, &ac);
		master_lock(st);
		if (rc != COFFER_OK && st->errmsg[0] == '\0')
			core_set_backend_err(st, rc);
	}
	/* Kept only once committed: an id names one key for the life of the store. */
	if (rc == COFFER_OK)
		(void)core_key_adopt(st, ac.id, &ac.fresh, 0);
	crypto_key_free(&ac.fresh);
	/* Key operations are recorded in the audit log right after (a transaction of their own). */
	char kid[16] = "";
	if (rc == COFFER_OK)
		snprintf(kid, sizeof kid, "key %u", (unsigned)ac.id);
	if (rc != COFFER_EMISUSE)
		(void)core_audit_one(st, NULL, "rotate-key", "", kid, rc, NULL);
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK && key_id != NULL)
		*key_id = ac.id;
	return rc;
}

int (*core_reencrypt_hook)(int phase);

/* Re-encrypt one row under the newest key of the batch's transaction. */
static int reseal_one(void *ctx, const char *name, size_t name_len, const store_row *row,
                      const store_key *newest, uint32_t *new_key_id, uint8_t **sealed,
                      size_t *sealed_len)
{
	coffer_store *st = ctx;
	if (core_reencrypt_hook != NULL && core_reencrypt_hook(1) != 0)
		return COFFER_EIO;
	if (row->sealed_len < CRYPTO_OVERHEAD || name_len > COFFER_NAME_MAX)
		return COFFER_EINTEGRITY;
	const crypto_key *old = NULL;
	const core_data_key *nk = NULL;
	int rc = core_key_find(st, row->key_id, &old); /* first: it may reload the keyring */
	if (rc == COFFER_OK)
		rc = core_newest_key(st, newest, row->key_id, &nk);
	if (rc != COFFER_OK && rc != COFFER_EINTEGRITY)
		return rc;
	size_t cap = row->sealed_len - CRYPTO_OVERHEAD, len = 0;
	uint8_t *pt = rc == COFFER_OK ? malloc(cap + 1) : NULL;
	if (rc == COFFER_OK && pt == NULL)
		return COFFER_ENOMEM;
	if (rc == COFFER_OK) {
		crypto_place from = {st->store_id, row->key_id, row->version, name, name_len};
		crypto_place to = {st->store_id, nk->id, row->version, name, name_len};
		rc = crypto_open_value(old, &from, row->sealed, row->sealed_len, pt, &len);
		if (rc == COFFER_OK)
			rc = crypto_seal_value(&nk->key, &to, pt, len, sealed, sealed_len);
		sodium_memzero(pt, cap + 1);
		free(pt);
	}
	if (rc == COFFER_OK)
		*new_key_id = nk->id;
	else if (rc == COFFER_EINTEGRITY)
		core_set_err(st,
		             "secret '%.*s' version %llu failed its integrity check; nothing "
		             "after it was re-encrypted",
		             (int)name_len, name, (unsigned long long)row->version);
	return rc;
}

/*
 * Batches move the rows sealed with a key below the newest one known when the pass starts to the
 * newest key of each batch's own transaction. A rotation landing meanwhile only raises the key
 * rows move to: moved rows are never selected again, so the pass ends (rows under a key that
 * came later are that rotation's own pass's work).
 */
static int reencrypt_locked(coffer_store *st, size_t *moved)
{
	int rc = keyring_reload(st);
	if (rc != COFFER_OK)
		return rc;
	uint32_t below = st->keys[st->newest].id;
	if (core_reencrypt_hook != NULL && core_reencrypt_hook(0) != 0)
		return COFFER_EIO;
	size_t done = STORE_RESEAL_BATCH;
	while (rc == COFFER_OK && done == STORE_RESEAL_BATCH) {
		rc = st->ops->reseal_batch(st->be, below, reseal_one, st, &done);
		*moved += rc == COFFER_OK ? done : 0;
	}
	/* Every row is past the old keys now (as far as this pass knows): drop the unused ones,
	 * which also frees the slots of keys added by rotations that were killed. */
	size_t pruned = 0;
	if (rc == COFFER_OK && st->ops->keys_prune != NULL)
		rc = st->ops->keys_prune(st->be, &pruned);
	return rc;
}

int coffer_reencrypt(coffer_store *st, size_t *count)
{
	if (st == NULL)
		return COFFER_EMISUSE;
	pthread_mutex_lock(&st->mu);
	int rc = COFFER_EMISUSE;
	size_t moved = 0;
	if (!unsupported(st, (const void *)st->ops->reseal_batch)) {
		st->errmsg[0] = '\0';
		rc = reencrypt_locked(st, &moved);
		if (rc != COFFER_OK && st->errmsg[0] == '\0')
			core_set_backend_err(st, rc);
		(void)core_audit_one(st, NULL, "reencrypt", "", "", rc, NULL);
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

/* The metadata key is re-sealed with the data keys, in the same transaction: its MACs need no
 * change, whatever the master key. */
static int rekey_meta(rekey_ctx *rk, const uint8_t *sealed, size_t len, uint8_t *out,
                      size_t *out_len)
{
	crypto_key mk = {0};
	int rc = crypto_open_meta_key(rk->old_master, rk->st->store_id, sealed, len, &mk);
	if (rc == COFFER_OK)
		rc = crypto_seal_meta_key(rk->new_master, rk->st->store_id, &mk, out);
	crypto_key_free(&mk);
	*out_len = CRYPTO_SEALED_KEY_LEN;
	if (rc == COFFER_EINTEGRITY) {
		core_set_err(rk->st, "%s", CORE_META_KEY_BAD);
		return COFFER_EINTEGRITY;
	}
	return rc;
}

static int rekey_one(void *ctx, uint32_t key_id, const uint8_t *sealed, size_t len, uint8_t *out,
                     size_t *out_len)
{
	rekey_ctx *rc_ = ctx;
	if (key_id == STORE_META_KEY_ID)
		return rekey_meta(rc_, sealed, len, out, out_len);
	crypto_key dk = {0};
	int rc = crypto_open_key(rc_->old_master, rc_->st->store_id, key_id, sealed, len, &dk);
	if (rc == COFFER_OK)
		rc = crypto_seal_key(rc_->new_master, rc_->st->store_id, key_id, &dk, out);
	crypto_key_free(&dk);
	*out_len = CRYPTO_SEALED_KEY_LEN;
	if (rc == COFFER_EINTEGRITY) {
		core_set_err(rc_->st, "%s (data key %u does not open with the key in hand)",
		             CORE_STALE_MASTER, (unsigned)key_id);
		rc = COFFER_EKEY;
	}
	return rc;
}

/* The new master key from explicit options only (never the environment). A new passphrase gets
 * a new salt and today's limits (*kdf), written with the re-sealed keyring: reusing the old
 * salt would let work done against the old passphrase's salt serve for the new one. */
static int new_master(const coffer_options *o, crypto_key *key, int *created, store_kdf *kdf,
                      int *use_kdf, char *err, size_t errlen)
{
	if (o->master_key_b64 != NULL) {
		int rc = crypto_key_from_base64(key, o->master_key_b64, strlen(o->master_key_b64));
		if (rc == COFFER_EKEY)
			snprintf(err, errlen, "the new master key is not base64 of 32 bytes");
		return rc;
	}
	if (o->passphrase != NULL) {
		size_t n = strlen(o->passphrase);
		if (core_utf8_chars(o->passphrase, n) < CORE_PASSPHRASE_MIN) {
			snprintf(err, errlen, CORE_PASSPHRASE_SHORT, CORE_PASSPHRASE_MIN);
			return COFFER_EINVAL;
		}
		crypto_random(kdf->salt, sizeof kdf->salt);
		crypto_passphrase_defaults(&kdf->opslimit, &kdf->memlimit);
		*use_kdf = 1;
		int rc = crypto_key_from_passphrase(key, o->passphrase, n, kdf->salt, kdf->opslimit,
		                                    kdf->memlimit);
		if (rc != COFFER_OK)
			snprintf(err, errlen,
			         "cannot derive the new master key from the passphrase");
		return rc;
	}
	if (o->key_file != NULL)
		return crypto_key_file_create(o->key_file, key, created, err, errlen);
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
	store_kdf kdf;
	int rc = COFFER_EMISUSE, created = 0, use_kdf = 0;
	if (unsupported(st, (const void *)st->ops->keys_reseal)) {
		snprintf(errbuf, errlen, "%s", st->errmsg);
	} else if ((rc = new_master(new_key, &nk, &created, &kdf, &use_kdf, errbuf, errlen)) ==
	           COFFER_OK) {
		rekey_ctx rk = {st, master_unlock(st), &nk};
		st->errmsg[0] = '\0';
		rc = st->ops->keys_reseal(st->be, rekey_one, &rk, use_kdf ? &kdf : NULL);
		master_lock(st);
		if (rc != COFFER_OK)
			snprintf(errbuf, errlen, "%s",
			         st->errmsg[0] ? st->errmsg : st->ops->errmsg(st->be));
		/* A key file made for a rekey that surely did not commit holds a useless key; when
		 * the outcome is unknown (connection lost) it may be the one the store needs now.
		 */
		if (rc != COFFER_OK && rc != COFFER_EUNAVAIL && created)
			(void)unlink(new_key->key_file);
	}
	if (rc == COFFER_OK) {
		crypto_key_free(&st->master);
		st->master = nk;
		nk.k = NULL;
		master_lock(st);
	}
	crypto_key_free(&nk);
	(void)core_audit_one(st, NULL, "rekey", "", "", rc, NULL);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int coffer_rekey_in_place(coffer_store *st, char *errbuf, size_t errlen)
{
	char dummy[CORE_ERRMSG_MAX], tmp[4096 + 8];
	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof dummy;
	}
	errbuf[0] = '\0';
	if (st == NULL)
		return COFFER_EMISUSE;
	if (st->key_file == NULL) {
		snprintf(errbuf, errlen,
		         "this store's master key was not read from a key file (it came from "
		         "COFFER_MASTER_KEY, a passphrase or the options): give the new key "
		         "explicitly (coffer rekey --new-key-file FILE)");
		return COFFER_EINVAL;
	}
	if (snprintf(tmp, sizeof tmp, "%s.new", st->key_file) >= (int)sizeof tmp) {
		snprintf(errbuf, errlen, "key file path too long");
		return COFFER_EINVAL;
	}
	/* FILE.new is where the new key is made; one that exists is another rekey's (running, or
	 * interrupted after the keyring was re-sealed: then it is the key that opens the store). */
	if (access(tmp, F_OK) == 0) {
		snprintf(errbuf, errlen,
		         "'%s' exists (a rekey running or interrupted?): see which key opens the "
		         "store (coffer --key-file '%s' list), then remove it or move it over '%s'",
		         tmp, tmp, st->key_file);
		return COFFER_EBUSY;
	}
	coffer_options o = {.key_file = tmp};
	int rc = coffer_rotate_master_key(st, &o, errbuf, errlen);
	if (rc != COFFER_OK)
		return rc;
	if (rename(tmp, st->key_file) != 0) {
		snprintf(
		    errbuf, errlen,
		    "the store now opens with the key in '%s', but moving it over '%s' failed: "
		    "%s; move it by hand",
		    tmp, st->key_file, strerror(errno));
		return COFFER_EIO;
	}
	crypto_fsync_dir_of(st->key_file); /* the rename is durable before we say so */
	return COFFER_OK;
}
