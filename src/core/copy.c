/*
 * copy.c -- coffer_copy(): every secret (each version with its id and state, labels,
 * description, tags, retention, scheduled deletion), the declarations and the audit log of one
 * store into another, re-sealed under the target's data key and identity and MAC'd under its
 * metadata key. Values are opened one secret at a time into sodium_malloc'd memory (locked, never
 * swapped, wiped when freed) and sealed again: no plaintext value reaches a disk.
 *
 * Resumable: each secret is written in ONE transaction of the target (import_secret), so after
 * an interruption a secret is either wholly in the target or not at all. A rerun skips a secret
 * the target holds once it has verified it is the same (every field and every value); one that
 * differs stops the copy (COFFER_ECONFLICT). The audit log is copied last, the entries the
 * target already holds checked against the source's first ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/internal.h"

#define COPY_AUDIT_BATCH 500

typedef struct xsecret {
	char name[COFFER_NAME_MAX + 1];
	size_t len;
	store_meta meta; /* labels: allocated by labels_get */
	store_info info;
	store_row *rows; /* sealed: NULL (values live in vals) */
	size_t n, cap;
	uint8_t **vals; /* sodium_malloc'd plaintext of each row that holds one, else NULL */
	size_t *vlens;
	store_meta listed; /* the metadata checked while listing */
	int bad;
} xsecret;

static void x_free(xsecret *x)
{
	for (size_t i = 0; x->vals != NULL && i < x->n; i++)
		if (x->vals[i] != NULL)
			sodium_free(x->vals[i]);
	free(x->vals);
	free(x->vlens);
	free(x->rows);
	free(x->meta.labels);
	memset(x, 0, sizeof *x);
}

static int collect_row(void *ctx, const store_meta *m, const store_row *row)
{
	xsecret *x = ctx;
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 16;
		store_row *more = realloc(x->rows, cap * sizeof *more);
		if (more == NULL)
			return COFFER_ENOMEM;
		x->rows = more;
		x->cap = cap;
	}
	x->rows[x->n] = *row;
	x->rows[x->n].sealed = NULL;
	x->n++;
	x->listed = *m;
	x->listed.labels = NULL;
	return COFFER_OK;
}

/* One secret of st, whole, checked against its MACs, its values opened. */
static int read_secret(coffer_store *st, const char *name, xsecret *x)
{
	memset(x, 0, sizeof *x);
	snprintf(x->name, sizeof x->name, "%s", name);
	x->len = strlen(x->name);
	int rc = st->ops->labels_get(st->be, x->name, x->len, &x->meta, &x->info);
	if (rc == COFFER_OK)
		rc = st->ops->list_versions(st->be, x->name, x->len, collect_row, x);
	if (rc != COFFER_OK && st->errmsg[0] == '\0')
		core_set_backend_err(st, rc);
	if (rc == COFFER_OK &&
	    (x->n > 0 &&
	     (x->listed.epoch != x->meta.epoch || x->listed.last_version != x->meta.last_version ||
	      memcmp(x->listed.mac, x->meta.mac, STORE_MAC_LEN) != 0))) {
		core_set_err(st,
		             "secret '%s' changed while it was being copied: stop writers to the "
		             "source, then run the copy again",
		             x->name);
		rc = COFFER_EBUSY;
	}
	x->meta.max_versions = x->n > 0 ? x->listed.max_versions : x->info.max_versions;
	if (rc == COFFER_OK)
		rc = core_meta_check_all(st, x->name, x->len, &x->meta, x->rows, x->n);
	if (rc == COFFER_OK && ((x->vals = calloc(x->n + 1, sizeof *x->vals)) == NULL ||
	                        (x->vlens = calloc(x->n + 1, sizeof *x->vlens)) == NULL))
		rc = COFFER_ENOMEM;
	for (size_t i = 0; i < x->n && rc == COFFER_OK; i++) {
		if (x->rows[i].state == COFFER_STATE_DESTROYED)
			continue;
		store_row row;
		store_meta m;
		memset(&row, 0, sizeof row);
		memset(&m, 0, sizeof m);
		rc = st->ops->get(st->be, x->name, x->len, x->rows[i].version, &row, &m);
		if (rc == COFFER_OK &&
		    (row.version != x->rows[i].version || row.state != x->rows[i].state ||
		     m.epoch != x->meta.epoch || row.mac_len != x->rows[i].mac_len ||
		     memcmp(row.mac, x->rows[i].mac, STORE_MAC_LEN) != 0 || row.sealed == NULL)) {
			core_set_err(st,
			             "secret '%s' changed while it was being copied: stop writers "
			             "to the source, then run the copy again",
			             x->name);
			rc = COFFER_EBUSY;
		}
		const crypto_key *key = NULL;
		if (rc == COFFER_OK)
			rc = core_key_find(st, row.key_id, &key);
		size_t cap =
		    row.sealed_len >= CRYPTO_OVERHEAD ? row.sealed_len - CRYPTO_OVERHEAD : 0;
		if (rc == COFFER_OK && (x->vals[i] = sodium_malloc(cap + 1)) == NULL)
			rc = COFFER_ENOMEM;
		if (rc == COFFER_OK) {
			crypto_place pl = {st->store_id, row.key_id, row.version, x->name, x->len};
			rc = crypto_open_value(key, &pl, row.sealed, row.sealed_len, x->vals[i],
			                       &x->vlens[i]);
			if (rc != COFFER_OK)
				core_set_err(st,
				             "secret '%s' version %llu failed its integrity check",
				             x->name, (unsigned long long)row.version);
		}
		free(row.sealed);
	}
	return rc;
}

/* The target's form of x: the same ids, states, times and labels, sealed and MAC'd anew. */
static int write_secret(coffer_store *dst, xsecret *x, int *existed)
{
	const core_data_key *k = &dst->keys[dst->newest];
	store_row *rows = calloc(x->n + 1, sizeof *rows);
	if (rows == NULL)
		return COFFER_ENOMEM;
	int rc = COFFER_OK;
	for (size_t i = 0; i < x->n && rc == COFFER_OK; i++) {
		rows[i] = x->rows[i];
		rows[i].key_id = k->id;
		rows[i].sealed = NULL;
		if (x->vals[i] != NULL) {
			crypto_place pl = {dst->store_id, k->id, rows[i].version, x->name, x->len};
			rc = crypto_seal_value(&k->key, &pl, x->vals[i], x->vlens[i],
			                       &rows[i].sealed, &rows[i].sealed_len);
		}
	}
	store_meta m = x->meta;
	if (rc == COFFER_OK) {
		core_meta_sign_all(dst, x->name, x->len, &m, rows, x->n);
		rc = dst->ops->import_secret(dst->be, x->name, x->len, &m, &x->info, rows, x->n,
		                             existed);
		if (rc != COFFER_OK)
			core_set_backend_err(dst, rc);
	}
	for (size_t i = 0; i < x->n; i++)
		free(rows[i].sealed);
	free(rows);
	return rc;
}

/* A secret the target holds already (an earlier, interrupted copy): the same in every field? */
static int same_secret(const xsecret *a, const xsecret *b)
{
	if (a->n != b->n || a->meta.last_version != b->meta.last_version ||
	    a->meta.latest != b->meta.latest || a->meta.previous != b->meta.previous ||
	    a->meta.purge_ms != b->meta.purge_ms || a->meta.max_versions != b->meta.max_versions ||
	    a->meta.nlabels != b->meta.nlabels ||
	    strcmp(a->info.description, b->info.description) != 0 ||
	    strcmp(a->info.tags, b->info.tags) != 0)
		return 0;
	for (size_t i = 0; i < a->meta.nlabels; i++)
		if (strcmp(a->meta.labels[i].name, b->meta.labels[i].name) != 0 ||
		    a->meta.labels[i].version != b->meta.labels[i].version)
			return 0;
	for (size_t i = 0; i < a->n; i++) {
		if (a->rows[i].version != b->rows[i].version ||
		    a->rows[i].state != b->rows[i].state ||
		    a->rows[i].created_ms != b->rows[i].created_ms ||
		    (a->vals[i] == NULL) != (b->vals[i] == NULL))
			return 0;
		if (a->vals[i] != NULL && (a->vlens[i] != b->vlens[i] ||
		                           sodium_memcmp(a->vals[i], b->vals[i], a->vlens[i]) != 0))
			return 0;
	}
	return 1;
}

typedef struct names {
	char **v;
	size_t n, cap;
} names;

static int collect_name(void *ctx, const char *name, size_t nversions)
{
	(void)nversions;
	names *ns = ctx;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? 2 * ns->cap : 64;
		char **more = realloc(ns->v, cap * sizeof *more);
		if (more == NULL)
			return COFFER_ENOMEM;
		ns->v = more;
		ns->cap = cap;
	}
	if ((ns->v[ns->n] = strdup(name)) == NULL)
		return COFFER_ENOMEM;
	ns->n++;
	return COFFER_OK;
}

static void names_free(names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

static int copy_one(coffer_store *src, coffer_store *dst, const char *name, int *skipped)
{
	xsecret x, y;
	int existed = 0;
	*skipped = 0;
	int rc = read_secret(src, name, &x);
	if (rc != COFFER_OK) {
		snprintf(dst->errmsg, sizeof dst->errmsg, "source: %.480s", src->errmsg);
		x_free(&x);
		return rc;
	}
	rc = write_secret(dst, &x, &existed);
	if (rc == COFFER_OK && existed) {
		rc = read_secret(dst, name, &y);
		if (rc == COFFER_OK && !same_secret(&x, &y)) {
			core_set_err(
			    dst,
			    "secret '%s' exists in the target and differs from the source: "
			    "not overwritten (copy into an empty store)",
			    name);
			rc = COFFER_ECONFLICT;
		}
		x_free(&y);
		*skipped = 1;
	}
	x_free(&x);
	return rc;
}

typedef struct decls {
	store_decl *v;
	char **strs;
	size_t n, cap;
} decls;

static int collect_decl(void *ctx, const store_decl *d)
{
	decls *ds = ctx;
	if (ds->n == ds->cap) {
		size_t cap = ds->cap ? 2 * ds->cap : 32;
		store_decl *more = realloc(ds->v, cap * sizeof *more);
		if (more == NULL)
			return COFFER_ENOMEM;
		ds->v = more;
		char **ms = realloc(ds->strs, 2 * cap * sizeof *ms);
		if (ms == NULL)
			return COFFER_ENOMEM;
		ds->strs = ms;
		ds->cap = cap;
	}
	ds->strs[2 * ds->n] = strdup(d->service);
	ds->strs[2 * ds->n + 1] = strdup(d->secret);
	if (ds->strs[2 * ds->n] == NULL || ds->strs[2 * ds->n + 1] == NULL) {
		free(ds->strs[2 * ds->n]);
		free(ds->strs[2 * ds->n + 1]);
		return COFFER_ENOMEM;
	}
	ds->v[ds->n] = *d;
	ds->v[ds->n].service = ds->strs[2 * ds->n];
	ds->v[ds->n].secret = ds->strs[2 * ds->n + 1];
	ds->n++;
	return COFFER_OK;
}

static int copy_decls(coffer_store *src, coffer_store *dst)
{
	if (src->ops->decl_list == NULL || dst->ops->decl_add == NULL)
		return COFFER_OK;
	decls ds = {0};
	int rc = src->ops->decl_list(src->be, collect_decl, &ds);
	if (rc == COFFER_OK && ds.n > 0)
		rc = dst->ops->decl_add(dst->be, ds.v, ds.n);
	if (rc != COFFER_OK)
		core_set_backend_err(dst, rc);
	for (size_t i = 0; i < 2 * ds.n; i++)
		free(ds.strs[i]);
	free(ds.strs);
	free(ds.v);
	return rc;
}

typedef struct audits {
	store_audit *v;
	size_t n, cap;
} audits;

static int collect_audit(void *ctx, const store_audit *e)
{
	audits *as = ctx;
	if (as->n == as->cap) {
		size_t cap = as->cap ? 2 * as->cap : 64;
		store_audit *more = realloc(as->v, cap * sizeof *more);
		if (more == NULL)
			return COFFER_ENOMEM;
		as->v = more;
		as->cap = cap;
	}
	as->v[as->n++] = *e;
	return COFFER_OK;
}

static int same_entry(const store_audit *a, const store_audit *b)
{
	return a->ts_ms == b->ts_ms && a->outcome == b->outcome &&
	       strcmp(a->principal, b->principal) == 0 && strcmp(a->action, b->action) == 0 &&
	       strcmp(a->secret, b->secret) == 0 && strcmp(a->version, b->version) == 0 &&
	       strcmp(a->error, b->error) == 0 && strcmp(a->rid, b->rid) == 0;
}

/* The source's log after the entries the target holds (which must be its first ones). */
static int copy_audit(coffer_store *src, coffer_store *dst, uint64_t *copied)
{
	audits a = {0}, b = {0};
	*copied = 0;
	int rc = src->ops->audit_list(src->be, 0, collect_audit, &a);
	if (rc == COFFER_OK)
		rc = dst->ops->audit_list(dst->be, 0, collect_audit, &b);
	if (rc != COFFER_OK)
		core_set_backend_err(dst, rc);
	if (rc == COFFER_OK && b.n > a.n)
		rc = COFFER_ECONFLICT;
	for (size_t i = 0; i < b.n && rc == COFFER_OK; i++)
		if (!same_entry(&a.v[i], &b.v[i]))
			rc = COFFER_ECONFLICT;
	if (rc == COFFER_ECONFLICT)
		core_set_err(dst, "the target's audit log is not the start of the source's: not "
		                  "copied (copy into an empty store)");
	/* In batches, each one transaction: an interruption leaves a prefix, which a rerun
	 * checks and continues. */
	for (size_t i = b.n; i < a.n && rc == COFFER_OK;) {
		size_t k = a.n - i < COPY_AUDIT_BATCH ? a.n - i : COPY_AUDIT_BATCH;
		core_audit_copy c = {dst, &a.v[i]};
		rc = dst->ops->audit_import(dst->be, dst->audit_chain, k, core_audit_copy_fill, &c);
		if (rc != COFFER_OK)
			core_set_backend_err(dst, rc);
		else
			*copied += k;
		i += k;
	}
	free(a.v);
	free(b.v);
	return rc;
}

int coffer_copy(coffer_store *src, coffer_store *dst, coffer_copy_progress cb, void *ctx,
                coffer_copy_stats *stats)
{
	if (src == NULL || dst == NULL || src == dst)
		return COFFER_EMISUSE;
	coffer_copy_stats local;
	if (stats == NULL)
		stats = &local;
	memset(stats, 0, sizeof *stats);
	/* Always in the same order: two copies running the other way cannot deadlock. */
	pthread_mutex_t *first = (uintptr_t)src < (uintptr_t)dst ? &src->mu : &dst->mu;
	pthread_mutex_t *second = first == &src->mu ? &dst->mu : &src->mu;
	pthread_mutex_lock(first);
	pthread_mutex_lock(second);
	src->errmsg[0] = dst->errmsg[0] = '\0';
	int rc = COFFER_OK;
	if (dst->ops->import_secret == NULL || src->ops->labels_get == NULL || dst->nkeys == 0) {
		core_set_err(dst, "the %s backend cannot take a copy", dst->ops->scheme);
		rc = COFFER_EMISUSE;
	} else if (memcmp(src->store_id, dst->store_id, STORE_ID_LEN) == 0) {
		core_set_err(dst, "source and target are the same store");
		rc = COFFER_EINVAL;
	}
	names ns = {0};
	if (rc == COFFER_OK) {
		rc = src->ops->list_secrets(src->be, collect_name, &ns);
		if (rc != COFFER_OK)
			core_set_backend_err(dst, rc);
	}
	for (size_t i = 0; i < ns.n && rc == COFFER_OK; i++) {
		int skipped = 0;
		rc = copy_one(src, dst, ns.v[i], &skipped);
		if (rc != COFFER_OK)
			break;
		if (skipped)
			stats->secrets_verified++;
		else
			stats->secrets_copied++;
		if (cb != NULL && (rc = cb(ctx, ns.v[i], i + 1, ns.n, skipped)) != COFFER_OK) {
			core_set_err(dst, "copy stopped by its caller after '%s'", ns.v[i]);
			break;
		}
	}
	names_free(&ns);
	if (rc == COFFER_OK)
		rc = copy_decls(src, dst);
	if (rc == COFFER_OK && src->ops->audit_list != NULL && dst->ops->audit_import != NULL)
		rc = copy_audit(src, dst, &stats->audit_copied);
	pthread_mutex_unlock(second);
	pthread_mutex_unlock(first);
	return rc;
}
