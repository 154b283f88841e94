/*
 * keys.c -- PostgreSQL backend: key rotation, rekey, pruning, the metadata key, the re-encrypt
 * pass.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres/pg.h"

static int update_key(pg_store *s, uint64_t key_id, const uint8_t *sealed, size_t len)
{
	uint8_t id[8];
	pg_put_be64(id, key_id);
	const char *v[2] = {(const char *)id, (const char *)sealed};
	const int l[2] = {8, (int)len};
	PGresult *r = pg_run(s, ST_KEY_UPDATE, v, l);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "re-sealing a data key");
	PQclear(r);
	return rc;
}

/* Inside the open transaction: lock the keyring, re-seal every key through cb. */
static int reseal_keys(pg_store *s, rekey_fn cb, void *ctx)
{
	PGresult *r = pg_run(s, ST_KEYS_LOCK, NULL, NULL);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "locking the keyring");
	for (int i = 0; rc == COFFER_OK && i < PQntuples(r); i++) {
		uint64_t id;
		uint8_t out[STORE_SEALED_KEY_MAX];
		size_t out_len = 0;
		if (!pg_col_uint(r, i, 0, 8, &id) || id > UINT32_MAX) {
			pg_set_err(s, "the keyring in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		rc = cb(ctx, (uint32_t)id, (const uint8_t *)PQgetvalue(r, i, 1),
		        (size_t)PQgetlength(r, i, 1), out, &out_len);
		if (rc == COFFER_OK && (out_len == 0 || out_len > STORE_SEALED_KEY_MAX)) {
			pg_set_err(s, "bad sealed key length");
			rc = COFFER_EMISUSE;
		}
		if (rc == COFFER_OK)
			rc = update_key(s, id, out, out_len);
	}
	PQclear(r);
	return rc;
}

/* Changes to the keyring (add, reseal, prune) take turns on this lock, in every process; it lets
 * puts (ROW SHARE) through. FOR UPDATE on the existing rows would not stop an insert. */
#define PG_LOCK_KEYRING "LOCK TABLE coffer_keys IN SHARE ROW EXCLUSIVE MODE"

static int begin_locked(pg_store *s, const char *lock)
{
	int rc = pg_begin_write(s);
	if (rc == COFFER_OK && (rc = pg_exec_cmd(s, lock, "locking the keyring")) != COFFER_OK)
		pg_rollback(s);
	return rc;
}

/* A passphrase rekey: the new salt and limits, inside the open transaction. */
static int set_kdf(pg_store *s, const store_kdf *kdf)
{
	uint8_t ops[8], mem[8];
	pg_put_be64(ops, kdf->opslimit);
	pg_put_be64(mem, kdf->memlimit);
	const char *v[3] = {(const char *)kdf->salt, (const char *)ops, (const char *)mem};
	const int l[3] = {STORE_SALT_LEN, 8, 8};
	PGresult *r = pg_run(s, ST_SET_KDF, v, l);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "writing the passphrase salt");
	if (rc == COFFER_OK && strcmp(PQcmdTuples(r), "1") != 0) {
		pg_set_err(s, "the store has no header");
		rc = COFFER_ECORRUPT;
	}
	PQclear(r);
	return rc;
}

static int reseal_meta_key(pg_store *s, rekey_fn cb, void *ctx);

/* One transaction for the whole keyring and the metadata key: a master-key rotation is all or
 * nothing. */
int pg_keys_reseal(store *st, rekey_fn cb, void *ctx, const store_kdf *kdf)
{
	pg_store *s = (pg_store *)st;
	int rc = begin_locked(s, PG_LOCK_KEYRING);
	if (rc != COFFER_OK)
		return rc;
	rc = reseal_keys(s, cb, ctx);
	if (rc == COFFER_OK)
		rc = reseal_meta_key(s, cb, ctx);
	if (rc == COFFER_OK && kdf != NULL)
		rc = set_kdf(s, kdf);
	return pg_finish_write(s, rc);
}

/* Inside the locked transaction: check() every key; count them and find the largest id. */
static int check_keys(pg_store *s, store_key_cb check, void *ctx, size_t *n, uint32_t *max)
{
	PGresult *r = pg_run(s, ST_KEYS, NULL, NULL);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the keyring");
	for (int i = 0; rc == COFFER_OK && i < PQntuples(r); i++) {
		uint64_t id;
		if (!pg_col_uint(r, i, 0, 8, &id) || id == 0 || id >= UINT32_MAX) {
			pg_set_err(s, "the keyring in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		rc = check(ctx, (uint32_t)id, (const uint8_t *)PQgetvalue(r, i, 1),
		           (size_t)PQgetlength(r, i, 1));
		*max = (uint32_t)id; /* ascending */
		(*n)++;
	}
	PQclear(r);
	return rc;
}

static int insert_key(pg_store *s, uint32_t key_id, const uint8_t *sealed, size_t len)
{
	uint8_t id[8];
	pg_put_be64(id, key_id);
	const char *v[2] = {(const char *)id, (const char *)sealed};
	const int l[2] = {8, (int)len};
	PGresult *r = pg_run(s, ST_BOOT_KEY, v, l);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "adding a data key");
	PQclear(r);
	return rc;
}

/* Never retried: a connection lost during COMMIT leaves the outcome unknown (EUNAVAIL). */
int pg_keys_add(store *st, store_key_cb check, store_key_make_fn make, void *ctx)
{
	pg_store *s = (pg_store *)st;
	size_t n = 0, len = 0;
	uint32_t max = 0;
	uint8_t sealed[STORE_SEALED_KEY_MAX];
	int rc = begin_locked(s, PG_LOCK_KEYRING);
	if (rc != COFFER_OK)
		return rc;
	rc = check_keys(s, check, ctx, &n, &max);
	if (rc == COFFER_OK)
		rc = make(ctx, max + 1, n, sealed, &len);
	if (rc == COFFER_OK && (len == 0 || len > STORE_SEALED_KEY_MAX)) {
		pg_set_err(s, "bad sealed key length");
		rc = COFFER_EMISUSE;
	}
	if (rc == COFFER_OK)
		rc = insert_key(s, max + 1, sealed, len);
	return pg_finish_write(s, rc);
}

/* EXCLUSIVE waits for every put and re-encrypt batch in flight (ROW SHARE) and holds off new
 * ones, so the versions checked here are all the versions that may use a key. */
int pg_keys_prune(store *st, size_t *pruned)
{
	pg_store *s = (pg_store *)st;
	uint64_t n = 0;
	*pruned = 0;
	int rc = begin_locked(s, "LOCK TABLE coffer_keys IN EXCLUSIVE MODE");
	if (rc != COFFER_OK)
		return rc;
	PGresult *r = PQexec(s->conn, "DELETE FROM coffer_keys WHERE key_id < "
	                              "(SELECT max(key_id) FROM coffer_keys) AND key_id NOT IN "
	                              "(SELECT key_id FROM coffer_versions WHERE state <> 1)");
	rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "pruning data keys");
	if (rc == COFFER_OK && !pg_parse_u64(PQcmdTuples(r), &n)) {
		pg_set_err(s, "unexpected reply while pruning data keys");
		rc = COFFER_EIO;
	}
	PQclear(r);
	if (rc == COFFER_OK && n == 0) {
		pg_rollback(s); /* nothing pruned: no generation bump */
		return COFFER_OK;
	}
	rc = pg_finish_write(s, rc);
	if (rc == COFFER_OK)
		*pruned = (size_t)n;
	return rc;
}

static int set_meta_key(pg_store *s, const uint8_t *sealed, size_t len)
{
	const char *v[1] = {(const char *)sealed};
	const int l[1] = {(int)len};
	PGresult *r = pg_run(s, ST_SET_META_KEY, v, l);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "writing the metadata key");
	PQclear(r);
	return rc;
}

/* Inside the open transaction: the sealed metadata key into buf (*len 0: none), locked. */
static int get_meta_key(pg_store *s, uint8_t buf[STORE_SEALED_KEY_MAX], size_t *len)
{
	PGresult *r = pg_run(s, ST_META_KEY, NULL, NULL);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the metadata key");
	*len = 0;
	if (rc == COFFER_OK && (PQntuples(r) != 1 || PQgetlength(r, 0, 0) > STORE_SEALED_KEY_MAX)) {
		pg_set_err(s, "the store header in this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	if (rc == COFFER_OK && !PQgetisnull(r, 0, 0)) {
		*len = (size_t)PQgetlength(r, 0, 0);
		memcpy(buf, PQgetvalue(r, 0, 0), *len);
	}
	PQclear(r);
	return rc;
}

/* Inside the open transaction: re-seal the metadata key through cb, if the store has one. */
static int reseal_meta_key(pg_store *s, rekey_fn cb, void *ctx)
{
	uint8_t old[STORE_SEALED_KEY_MAX], out[STORE_SEALED_KEY_MAX];
	size_t len = 0, out_len = 0;
	int rc = get_meta_key(s, old, &len);
	if (rc != COFFER_OK || len == 0)
		return rc;
	rc = cb(ctx, STORE_META_KEY_ID, old, len, out, &out_len);
	if (rc == COFFER_OK && (out_len == 0 || out_len > STORE_SEALED_KEY_MAX)) {
		pg_set_err(s, "bad sealed key length");
		rc = COFFER_EMISUSE;
	}
	return rc == COFFER_OK ? set_meta_key(s, out, out_len) : rc;
}

/* Inside the open transaction: retag one page of secrets after id *after. */
static int retag_page(pg_store *s, uint64_t *after, store_retag_fn cb, void *ctx, int *done)
{
	uint8_t a[8];
	pg_put_be64(a, *after);
	const char *v[1] = {(const char *)a};
	const int l[1] = {8};
	PGresult *r = pg_run(s, ST_SECRET_PAGE, v, l);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading secrets");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		store_meta m;
		size_t len = (size_t)PQgetlength(r, i, 1);
		if (!pg_col_uint(r, i, 0, 8, after) || !pg_col_meta(r, i, 2, &m) || len == 0 ||
		    len > COFFER_NAME_MAX) {
			pg_set_err(s, "a secret row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		rc = pg_retag(s, *after, PQgetvalue(r, i, 1), len, &m, cb, ctx);
	}
	*done = n < PG_PAGE_ROWS;
	PQclear(r);
	return rc;
}

/* EXCLUSIVE on coffer_keys waits for every put, re-encrypt batch and keyring change in flight
 * and holds off new ones; whoever comes second finds the metadata key made. */
int pg_meta_init(store *st, const uint8_t *sealed, size_t len, rekey_fn rekey, store_retag_fn cb,
                 void *ctx, uint8_t *found, size_t *found_len)
{
	pg_store *s = (pg_store *)st;
	uint64_t after = 0;
	int done = 0;
	int rc = begin_locked(s, "LOCK TABLE coffer_keys IN EXCLUSIVE MODE");
	if (rc != COFFER_OK)
		return rc;
	rc = get_meta_key(s, found, found_len);
	if (rc != COFFER_OK || *found_len > 0) {
		pg_rollback(s);
		return rc;
	}
	rc = reseal_keys(s, rekey, ctx);
	while (rc == COFFER_OK && !done)
		rc = retag_page(s, &after, cb, ctx, &done);
	if (rc == COFFER_OK)
		rc = set_meta_key(s, sealed, len);
	return pg_finish_write(s, rc);
}

static int write_resealed(pg_store *s, uint64_t sid, uint64_t ver, uint32_t kid,
                          const uint8_t *sealed, size_t len)
{
	uint8_t b[3][8];
	pg_put_be64(b[0], sid);
	pg_put_be64(b[1], ver);
	pg_put_be64(b[2], kid);
	const char *v[4] = {(const char *)b[0], (const char *)b[1], (const char *)b[2],
	                    (const char *)sealed};
	const int l[4] = {8, 8, 8, (int)len};
	PGresult *r = pg_run(s, ST_RESEAL_UPDATE, v, l);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "re-encrypting a version");
	PQclear(r);
	return rc;
}

/* Re-seal row i of a locked batch through cb and write it back. */
static int reseal_one_row(pg_store *s, const PGresult *r, int i, const store_key *newest,
                          store_reseal_fn cb, void *ctx)
{
	uint64_t sid, ver, kid;
	if (!pg_col_uint(r, i, 1, 8, &sid) || !pg_col_uint(r, i, 2, 8, &ver) ||
	    !pg_col_uint(r, i, 3, 8, &kid) || kid > UINT32_MAX) {
		pg_set_err(s, "a version row in this database is damaged");
		return COFFER_ECORRUPT;
	}
	store_row row = {.version = ver,
	                 .key_id = (uint32_t)kid,
	                 .sealed = (uint8_t *)PQgetvalue(r, i, 4),
	                 .sealed_len = (size_t)PQgetlength(r, i, 4)};
	uint32_t new_kid = 0;
	uint8_t *out = NULL;
	size_t out_len = 0;
	int rc = cb(ctx, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), &row, newest, &new_kid,
	            &out, &out_len);
	if (rc == COFFER_OK && (out == NULL || out_len == 0 || out_len > INT32_MAX)) {
		pg_set_err(s, "the sealed value is empty or too large");
		rc = COFFER_EMISUSE;
	}
	if (rc == COFFER_OK)
		rc = write_resealed(s, sid, ver, new_kid, out, out_len);
	free(out);
	return rc;
}

/* One transaction of the re-encrypt pass: lock up to PG_RESEAL_ROWS rows sealed with a key
 * below `below`, re-seal them with the newest key, commit. Never retried: the caller runs the
 * next batch, which finds what is left. */
int pg_reseal_batch(store *st, uint32_t below, store_reseal_fn cb, void *ctx, size_t *done)
{
	pg_store *s = (pg_store *)st;
	uint8_t k[8];
	pg_put_be64(k, below);
	const char *v[1] = {(const char *)k};
	const int l[1] = {8};
	pg_newest nk;
	*done = 0;
	int rc = pg_ensure_conn(s);
	if (rc == COFFER_OK)
		rc = pg_begin_sealing(s, &nk);
	if (rc != COFFER_OK)
		return rc;
	PGresult *r = pg_run(s, ST_RESEAL_SELECT, v, l);
	rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "selecting versions to re-encrypt");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++)
		rc = reseal_one_row(s, r, i, &nk.key, cb, ctx);
	PQclear(r);
	if (rc == COFFER_OK && n == 0) {
		pg_rollback(s); /* nothing to move: no generation bump */
		return COFFER_OK;
	}
	rc = pg_finish_write(s, rc);
	if (rc == COFFER_OK)
		*done = (size_t)n;
	return rc;
}
