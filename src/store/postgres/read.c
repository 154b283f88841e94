/*
 * read.c -- PostgreSQL backend: bootstrap, keys_load, get and the listings.
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres/pg.h"

static int read_header(pg_store *s, store_boot *b)
{
	PGresult *r = pg_run(s, ST_READ_HEADER, NULL, NULL);
	uint64_t ops, mem, kid;
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the store header");
	if (rc != COFFER_OK)
		goto out;
	if (PQntuples(r) == 0) {
		pg_set_err(s, "this store has no header yet");
		rc = COFFER_ENOTFOUND;
		goto out;
	}
	if (PQntuples(r) != 1 || PQgetlength(r, 0, 0) != STORE_ID_LEN ||
	    PQgetlength(r, 0, 1) != STORE_SALT_LEN || !pg_col_uint(r, 0, 2, 8, &ops) ||
	    !pg_col_uint(r, 0, 3, 8, &mem) || !pg_col_uint(r, 0, 4, 8, &kid) || kid > UINT32_MAX ||
	    PQgetlength(r, 0, 5) > STORE_SEALED_KEY_MAX ||
	    PQgetlength(r, 0, 6) > STORE_SEALED_KEY_MAX) {
		pg_set_err(s, "the store header in this database is damaged");
		rc = COFFER_ECORRUPT;
		goto out;
	}
	memset(b, 0, sizeof *b);
	memcpy(b->store_id, PQgetvalue(r, 0, 0), STORE_ID_LEN);
	memcpy(b->kdf_salt, PQgetvalue(r, 0, 1), STORE_SALT_LEN);
	b->kdf_opslimit = ops;
	b->kdf_memlimit = mem;
	b->first_key_id = (uint32_t)kid;
	b->sealed_key_len = (size_t)PQgetlength(r, 0, 5);
	memcpy(b->sealed_key, PQgetvalue(r, 0, 5), b->sealed_key_len);
	b->sealed_meta_key_len = (size_t)PQgetlength(r, 0, 6);
	memcpy(b->sealed_meta_key, PQgetvalue(r, 0, 6), b->sealed_meta_key_len);
out:
	PQclear(r);
	return rc;
}

/* Insert the proposal if there is no header; returns whether it was ours. No COMMIT. */
static int insert_header(pg_store *s, const store_boot *p, int *created)
{
	uint8_t ops[8], mem[8], kid[8];
	pg_put_be64(ops, p->kdf_opslimit);
	pg_put_be64(mem, p->kdf_memlimit);
	pg_put_be64(kid, p->first_key_id);
	const char *hv[6] = {(const char *)p->store_id,
	                     (const char *)p->kdf_salt,
	                     (const char *)ops,
	                     (const char *)mem,
	                     (const char *)kid,
	                     p->sealed_meta_key_len > 0 ? (const char *)p->sealed_meta_key : NULL};
	const int hl[6] = {STORE_ID_LEN, STORE_SALT_LEN, 8, 8, 8, (int)p->sealed_meta_key_len};
	PGresult *r = pg_run(s, ST_BOOT_HEADER, hv, hl);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "writing the store header");
	*created = rc == COFFER_OK && PQntuples(r) == 1;
	PQclear(r);
	if (rc != COFFER_OK || !*created)
		return rc;
	/* The header and its key commit together: whoever sees one sees both. */
	const char *kv[2] = {(const char *)kid, (const char *)p->sealed_key};
	const int kl[2] = {8, (int)p->sealed_key_len};
	r = pg_run(s, ST_BOOT_KEY, kv, kl);
	rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "writing the first data key");
	PQclear(r);
	return rc;
}

/* Propose a header (insert-if-absent) and read back the one in force, in one transaction. */
typedef struct boot_args {
	const store_boot *p;
	store_boot *actual;
	int *created;
} boot_args;

static int bootstrap_once(pg_store *s, void *arg, int *unsafe)
{
	const boot_args *a = arg;
	const store_boot *p = a->p;
	store_boot got;
	int made = 0;
	int rc = pg_exec_cmd(s, PG_BEGIN, "BEGIN");
	if (rc == COFFER_OK)
		rc = insert_header(s, p, &made);
	if (rc == COFFER_OK)
		rc = read_header(s, &got);
	if (rc != COFFER_OK) {
		pg_rollback(s);
		return rc;
	}
	if ((rc = pg_exec_cmd(s, "COMMIT", "COMMIT of the store header")) != COFFER_OK)
		return rc;
	*a->actual = got;
	*a->created = made;
	return COFFER_OK;
}

/* proposal == NULL: only read the header (one statement, no transaction needed). */
static int read_once(pg_store *s, void *arg, int *unsafe)
{
	const boot_args *a = arg;
	store_boot got;
	int rc = read_header(s, &got);
	if (rc == COFFER_OK) {
		*a->actual = got;
		*a->created = 0;
	}
	return rc;
}

int pg_bootstrap(store *st, const store_boot *proposal, store_boot *actual, int *created)
{
	pg_store *s = (pg_store *)st;
	boot_args a = {proposal, actual, created};
	if (proposal != NULL &&
	    (proposal->sealed_key_len == 0 || proposal->sealed_key_len > STORE_SEALED_KEY_MAX)) {
		pg_set_err(s, "bad sealed key length");
		return COFFER_EMISUSE;
	}
	/* Lost before COMMIT was answered: retrying is safe (insert-if-absent, then read back).
	 * Lost during COMMIT: *created may then read 0 for a header we wrote; the header in
	 * force, which is what matters, is right either way. */
	return pg_retry(s, proposal != NULL ? bootstrap_once : read_once, &a, 0);
}

typedef struct keys_ctx {
	store_key_cb cb;
	void *ctx;
} keys_ctx;

static int keys_once(pg_store *s, void *arg, int *unsafe)
{
	keys_ctx *k = arg;
	PGresult *r = pg_run(s, ST_KEYS_LOAD, NULL, NULL);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the keyring");
	for (int i = 0; rc == COFFER_OK && i < PQntuples(r); i++) {
		uint64_t id;
		/* id 0 is the metadata key, and comes first; a data key never has id 0. */
		if (!pg_col_uint(r, i, 0, 8, &id) || id > UINT32_MAX ||
		    (id == STORE_META_KEY_ID && i > 0)) {
			pg_set_err(s, "the keyring in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		*unsafe = 1; /* a key handed out: never twice */
		rc = k->cb(k->ctx, (uint32_t)id, (const uint8_t *)PQgetvalue(r, i, 1),
		           (size_t)PQgetlength(r, i, 1));
	}
	PQclear(r);
	return rc;
}

int pg_keys_load(store *st, store_key_cb cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	keys_ctx k = {cb, ctx};
	int unsafe = 0;
	if (s->sealing) /* called back from inside a put or re-encrypt transaction */
		return keys_once(s, &k, &unsafe);
	return pg_retry(s, keys_once, &k, 0);
}

typedef struct get_args {
	const char *name;
	size_t name_len;
	uint64_t version;
	store_row *out;
	store_meta *meta;
} get_args;

/* Columns first..first+3 of a version row: version, key_id, state, created_ms. */
static int parse_row_head(const PGresult *r, int i, int first, store_row *row)
{
	uint64_t ver, kid, state, created;
	if (!pg_col_uint(r, i, first, 8, &ver) || !pg_col_uint(r, i, first + 1, 8, &kid) ||
	    kid > UINT32_MAX || !pg_col_uint(r, i, first + 2, 2, &state) ||
	    !pg_col_uint(r, i, first + 3, 8, &created))
		return 0;
	memset(row, 0, sizeof *row);
	row->version = ver;
	row->key_id = (uint32_t)kid;
	row->state = (int)(int16_t)state;
	row->created_ms = (int64_t)created;
	return 1;
}

/* A get's reply: the metadata (0-4), the row (5-10, NULL if none), the generation (11). */
static int get_fill(pg_store *s, const PGresult *r, const get_args *a)
{
	store_row row;
	store_meta meta;
	uint64_t gen, bgen;
	int has_row = !PQgetisnull(r, 0, 5);
	if (!pg_col_meta(r, 0, 0, &meta) || !pg_col_uint(r, 0, 11, 8, &gen) ||
	    !pg_col_uint(r, 0, 16, 8, &bgen) || !pg_col_ext(r, 0, 12, &meta) ||
	    !pg_col_uint(r, 0, 15, 8, &meta.max_versions) ||
	    (!PQgetisnull(r, 0, 4) && !pg_col_uint(r, 0, 4, 8, &meta.rows_max)) ||
	    (has_row && !parse_row_head(r, 0, 5, &row))) {
		pg_set_err(s, "a version row of secret '%.*s' is damaged", (int)a->name_len,
		           a->name);
		return COFFER_ECORRUPT;
	}
	if (!has_row)
		memset(&row, 0, sizeof row);
	size_t len = has_row ? (size_t)PQgetlength(r, 0, 9) : 0;
	if (len > 0) {
		row.sealed = malloc(len);
		if (row.sealed == NULL)
			return COFFER_ENOMEM;
		memcpy(row.sealed, PQgetvalue(r, 0, 9), len);
	}
	row.sealed_len = len;
	if (has_row)
		pg_col_mac(r, 0, 10, row.mac, &row.mac_len);
	/* The snapshot proves the store and this bucket were at these generations just now (it
	 * says nothing of the other buckets: not a table read for PG_MAX_STALE_MS). */
	pg_learn_gen(s, gen, 0);
	pg_learn_bucket(s, pg_bucket(a->name, a->name_len), bgen);
	row.gen = pg_bucket_token(s, gen, bgen);
	*a->out = row;
	*a->meta = meta;
	return COFFER_OK;
}

static int get_once(pg_store *s, void *arg, int *unsafe)
{
	const get_args *a = arg;
	uint8_t ver[8], bucket[8];
	pg_put_be64(ver, a->version);
	pg_put_be64(bucket, pg_bucket(a->name, a->name_len));
	/* The latest: (name, bucket); a version: (name, version, bucket). */
	const char *v[3] = {a->name, (const char *)(a->version == 0 ? bucket : ver),
	                    (const char *)bucket};
	const int l[3] = {(int)a->name_len, 8, 8};
	PGresult *r = pg_run(s, a->version == 0 ? ST_GET_LATEST : ST_GET_VERSION, v, l);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading a version");
	if (rc == COFFER_OK && PQntuples(r) == 0) {
		pg_set_err(s, "secret '%.*s' not found", (int)a->name_len, a->name);
		rc = COFFER_ENOTFOUND;
	} else if (rc == COFFER_OK) {
		rc = get_fill(s, r, a);
	}
	PQclear(r);
	return rc;
}

int pg_get(store *st, const char *name, size_t name_len, uint64_t version, store_row *out,
           store_meta *meta)
{
	pg_store *s = (pg_store *)st;
	get_args a = {name, name_len, version, out, meta};
	if (name_len == 0 || name_len > COFFER_NAME_MAX) {
		pg_set_err(s, "bad secret name length");
		return COFFER_EINVAL;
	}
	return pg_retry(s, get_once, &a, 0);
}

typedef struct list_ctx {
	store_name_cb name_cb;
	store_row_cb row_cb;
	void *ctx;
	const char *name; /* list_versions: the secret */
	size_t name_len;
	char after[COFFER_NAME_MAX + 1]; /* list_secrets: the last name emitted */
	size_t after_len;
	uint64_t after_version; /* list_versions: the last version emitted */
	size_t emitted;
	int done;
} list_ctx;

static int secrets_page(pg_store *s, void *arg, int *unsafe)
{
	list_ctx *c = arg;
	const char *v[1] = {c->after};
	const int l[1] = {(int)c->after_len};
	PGresult *r = pg_run(s, ST_LIST_SECRETS, v, l);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "listing secrets");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		size_t len = (size_t)PQgetlength(r, i, 0);
		uint64_t count;
		if (len == 0 || len > COFFER_NAME_MAX || !pg_col_uint(r, i, 1, 8, &count)) {
			pg_set_err(s, "a secret row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		memcpy(c->after, PQgetvalue(r, i, 0), len);
		c->after[len] = '\0';
		c->after_len = len;
		c->emitted++;
		*unsafe = 1; /* the cursor moved past a row handed out */
		rc = c->name_cb(c->ctx, c->after, (size_t)count);
	}
	c->done = rc != COFFER_OK || n < PG_PAGE_ROWS;
	PQclear(r);
	return rc;
}

static int versions_page(pg_store *s, void *arg, int *unsafe)
{
	list_ctx *c = arg;
	uint8_t after[8];
	pg_put_be64(after, c->after_version);
	const char *v[2] = {c->name, (const char *)after};
	const int l[2] = {(int)c->name_len, 8};
	PGresult *r = pg_run(s, ST_LIST_VERSIONS, v, l);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "listing versions");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		store_row row;
		store_meta meta;
		uint64_t len;
		if (!parse_row_head(r, i, 0, &row) || !pg_col_uint(r, i, 4, 4, &len) ||
		    !pg_col_meta(r, i, 6, &meta) || !pg_col_ext(r, i, 10, &meta) ||
		    !pg_col_uint(r, i, 13, 8, &meta.max_versions)) {
			pg_set_err(s, "a version row of secret '%.*s' is damaged", (int)c->name_len,
			           c->name);
			rc = COFFER_ECORRUPT;
			break;
		}
		row.sealed_len = (size_t)len;
		pg_col_mac(r, i, 5, row.mac, &row.mac_len);
		c->after_version = row.version;
		c->emitted++;
		*unsafe = 1; /* the cursor moved past a row handed out */
		rc = c->row_cb(c->ctx, &meta, &row);
	}
	c->done = rc != COFFER_OK || n < PG_PAGE_ROWS;
	PQclear(r);
	return rc;
}

/*
 * Page through a listing. The cursor (last name or version emitted) is exact, so a page that
 * failed on a lost connection is fetched again after a reconnect without repeating a callback.
 */
static int list_pages(pg_store *s, list_ctx *c, pg_once_fn page)
{
	int rc = COFFER_OK;
	while (rc == COFFER_OK && !c->done)
		rc = pg_retry(s, page, c, 0);
	return rc;
}

int pg_list_secrets(store *st, store_name_cb cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	list_ctx *c = calloc(1, sizeof *c);
	if (c == NULL)
		return COFFER_ENOMEM;
	c->name_cb = cb;
	c->ctx = ctx;
	int rc = list_pages(s, c, secrets_page);
	free(c);
	return rc;
}

int pg_list_versions(store *st, const char *name, size_t name_len, store_row_cb cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	list_ctx c = {.row_cb = cb, .ctx = ctx, .name = name, .name_len = name_len};
	if (name_len == 0 || name_len > COFFER_NAME_MAX) {
		pg_set_err(s, "bad secret name length");
		return COFFER_EINVAL;
	}
	int rc = list_pages(s, &c, versions_page);
	if (rc == COFFER_OK && c.emitted == 0) {
		/* put() creates a secret and its first version in one transaction. */
		pg_set_err(s, "secret '%.*s' not found", (int)name_len, name);
		rc = COFFER_ENOTFOUND;
	}
	return rc;
}

int pg_list_page(store *st, const char *prefix, size_t prefix_len, const char *after,
                 size_t after_len, size_t limit, store_name_cb cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	int rc = pg_ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	uint8_t lim[8];
	pg_put_be64(lim, limit);
	const char *v[3] = {after, prefix, (const char *)lim};
	const int l[3] = {(int)after_len, (int)prefix_len, 8};
	PGresult *r = pg_run(s, ST_LIST_PAGE, v, l);
	rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "listing secrets");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		uint64_t count = 0;
		if (!pg_col_uint(r, i, 1, 8, &count)) {
			pg_set_err(s, "unexpected reply while listing secrets");
			rc = COFFER_EIO;
			break;
		}
		char name[COFFER_NAME_MAX + 1];
		size_t len = (size_t)PQgetlength(r, i, 0);
		if (len == 0 || len > COFFER_NAME_MAX) {
			pg_set_err(s, "a secret row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		memcpy(name, PQgetvalue(r, i, 0), len);
		name[len] = '\0';
		rc = cb(ctx, name, (size_t)count);
	}
	PQclear(r);
	return rc;
}
