/* Secrets and versions: put, access, listing. Every entry point validates before it locks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/internal.h"

void (*core_value_free_hook)(const void *data, size_t len);

/* Echo user-supplied text into a message safely: bounded, printable ASCII only. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t i = 0;
	for (; s != NULL && s[i] != '\0' && i + 4 < len; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'') ? s[i] : '?';
	if (s != NULL && s[i] != '\0' && i + 4 >= len)
		memcpy(buf + i, "...", 3), i += 3;
	buf[i] = '\0';
	return buf;
}

int coffer_secret_ref(coffer_store *st, const char *name, unsigned perms, coffer_secret **out)
{
	if (st == NULL || out == NULL)
		return COFFER_EMISUSE;
	size_t len = name == NULL ? 0 : strnlen(name, COFFER_NAME_MAX + 1);
	if (coffer_name_check(name, len) != COFFER_OK) {
		char buf[64];
		pthread_mutex_lock(&st->mu);
		core_set_err(st,
		             "invalid secret name '%s': use 1-%d characters of A-Z a-z 0-9 . _ -, "
		             "starting with a letter or digit",
		             printable(name, buf, sizeof buf), COFFER_NAME_MAX);
		pthread_mutex_unlock(&st->mu);
		return COFFER_EINVAL;
	}
	if (perms == 0 || (perms & ~(COFFER_PUT | COFFER_ACCESS)) != 0) {
		pthread_mutex_lock(&st->mu);
		core_set_err(st, "invalid permissions 0x%x: use COFFER_PUT and/or COFFER_ACCESS",
		             perms);
		pthread_mutex_unlock(&st->mu);
		return COFFER_EINVAL;
	}
	coffer_secret *sec = malloc(sizeof *sec + len + 1);
	if (sec == NULL)
		return COFFER_ENOMEM;
	sec->st = st;
	sec->perms = perms;
	sec->name_len = len;
	memcpy(sec->name, name, len + 1);
	*out = sec;
	return COFFER_OK;
}

void coffer_secret_free(coffer_secret *sec)
{
	free(sec);
}

const char *coffer_secret_name(const coffer_secret *sec)
{
	return sec == NULL ? NULL : sec->name;
}

/* Check one put item; on failure sets the store's message (the caller holds the lock). */
static int put_check(coffer_store *st, const coffer_put_item *it)
{
	if (it->secret == NULL || it->secret->st != st) {
		core_set_err(st, "put item names a secret of another store");
		return COFFER_EMISUSE;
	}
	const char *name = it->secret->name;
	if (!(it->secret->perms & COFFER_PUT)) {
		core_set_err(st, "permission denied: this handle to secret '%s' may not put", name);
		return COFFER_EPERM;
	}
	if (it->value == NULL || it->len == 0) {
		core_set_err(st, "empty value for secret '%s': a value is 1 to %zu bytes", name,
		             st->max_value);
		return COFFER_EINVAL;
	}
	if (it->len > st->max_value) {
		core_set_err(st, "value for secret '%s' is %zu bytes, over the limit of %zu bytes",
		             name, it->len, st->max_value);
		return COFFER_ETOOBIG;
	}
	return COFFER_OK;
}

int coffer_put_check(coffer_secret *sec, const void *value, size_t len)
{
	if (sec == NULL)
		return COFFER_EMISUSE;
	coffer_put_item it = {.secret = sec, .value = value, .len = len};
	pthread_mutex_lock(&sec->st->mu);
	int rc = put_check(sec->st, &it);
	pthread_mutex_unlock(&sec->st->mu);
	return rc;
}

typedef struct seal_ctx {
	coffer_store *st;
	coffer_put_item **items; /* the valid items, in order */
	int msg_set;             /* the store's message says what failed (a key, a MAC) */
	size_t bad;              /* the item whose secret failed its MAC check, or SIZE_MAX */
} seal_ctx;

static int seal_one(void *ctx, size_t i, store_seal_io *io)
{
	seal_ctx *sc = ctx;
	const coffer_put_item *it = sc->items[i];
	const core_data_key *k = NULL;
	/* The secret as this transaction read it must match its MAC: a put never blesses metadata
	 * edited outside coffer. */
	int rc = core_meta_put(sc->st, it->secret->name, it->secret->name_len, io);
	if (rc != COFFER_OK) {
		sc->msg_set = 1;
		sc->bad = i;
		return rc;
	}
	/* The store's newest key, read in this put's transaction: a rotation by any process is
	 * used from the first put that starts after it committed. */
	rc = core_newest_key(sc->st, io->newest, 0, &k);
	if (rc != COFFER_OK) {
		sc->msg_set = 1;
		return rc;
	}
	crypto_place pl = {sc->st->store_id, k->id, io->version, it->secret->name,
	                   it->secret->name_len};
	io->key_id = k->id;
	return crypto_seal_value(&k->key, &pl, it->value, it->len, &io->sealed, &io->sealed_len);
}

/* One transaction for the items still pending (rc == COFFER_OK); *bad names an item whose
 * secret failed its MAC check (the transaction then rolled back), else SIZE_MAX. */
static int put_pending(coffer_store *st, coffer_put_item *items, size_t n, coffer_put_item **valid,
                       store_put *puts, size_t *bad)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (items[i].rc != COFFER_OK)
			continue;
		valid[m] = &items[i];
		puts[m].name = items[i].secret->name;
		puts[m].name_len = items[i].secret->name_len;
		puts[m].version = 0;
		m++;
	}
	*bad = SIZE_MAX;
	if (m == 0)
		return COFFER_OK;
	seal_ctx sc = {st, valid, 0, SIZE_MAX};
	int rc = st->ops->put(st->be, puts, m, seal_one, &sc);
	if (rc != COFFER_OK && !sc.msg_set)
		core_set_backend_err(st, rc);
	if (rc == COFFER_EINTEGRITY && sc.bad != SIZE_MAX) {
		*bad = (size_t)(valid[sc.bad] - items);
		return rc;
	}
	for (size_t j = 0; j < m; j++) {
		valid[j]->rc = rc;
		if (rc == COFFER_OK)
			core_version_format(puts[j].version, valid[j]->version);
	}
	return rc;
}

/* Every pending item of secret `sec` fails its MAC check. */
static void fail_secret(coffer_put_item *items, size_t n, const coffer_secret *sec)
{
	for (size_t i = 0; i < n; i++)
		if (items[i].rc == COFFER_OK && items[i].secret->name_len == sec->name_len &&
		    memcmp(items[i].secret->name, sec->name, sec->name_len) == 0)
			items[i].rc = COFFER_EINTEGRITY;
}

/* An item whose secret fails its MAC check fails alone, as any other invalid item: the items of
 * that secret get COFFER_EINTEGRITY and the rest are committed without them (the transaction
 * that found it rolled back, so nothing of it was written). Each round fails at least one more
 * item, so this ends. */
static int put_locked(coffer_store *st, coffer_put_item *items, size_t n, coffer_put_item **valid,
                      store_put *puts)
{
	char msg[CORE_ERRMSG_MAX] = "";
	for (size_t i = 0; i < n; i++)
		items[i].rc = put_check(st, &items[i]);
	for (;;) {
		size_t bad = SIZE_MAX;
		int rc = put_pending(st, items, n, valid, puts, &bad);
		if (bad == SIZE_MAX) {
			/* The message says which secret failed its check. */
			if (rc == COFFER_OK && msg[0] != '\0')
				memcpy(st->errmsg, msg, sizeof msg);
			return rc;
		}
		memcpy(msg, st->errmsg, sizeof msg);
		fail_secret(items, n, items[bad].secret);
	}
}

int coffer_put_batch(coffer_store *st, coffer_put_item *items, size_t n)
{
	if (st == NULL || (items == NULL && n > 0) || n > SIZE_MAX / 64)
		return COFFER_EMISUSE;
	if (n == 0)
		return COFFER_OK;
	coffer_put_item **valid = malloc(n * sizeof *valid);
	store_put *puts = malloc(n * sizeof *puts);
	int rc = COFFER_ENOMEM;
	if (valid != NULL && puts != NULL) {
		pthread_mutex_lock(&st->mu);
		rc = put_locked(st, items, n, valid, puts);
		pthread_mutex_unlock(&st->mu);
	}
	free(valid);
	free(puts);
	return rc;
}

int coffer_put(coffer_secret *sec, const void *value, size_t len,
               char version_out[COFFER_VERSION_MAX])
{
	if (sec == NULL)
		return COFFER_EMISUSE;
	coffer_put_item it = {.secret = sec, .value = value, .len = len};
	coffer_put_item *valid[1];
	store_put puts[1];
	pthread_mutex_lock(&sec->st->mu);
	int rc = put_locked(sec->st, &it, 1, valid, puts);
	pthread_mutex_unlock(&sec->st->mu);
	if (rc == COFFER_OK)
		rc = it.rc;
	if (rc == COFFER_OK && version_out != NULL)
		memcpy(version_out, it.version, COFFER_VERSION_MAX);
	return rc;
}

/* Decrypt a sealed row into a new value. */
static int open_row(coffer_store *st, const coffer_secret *sec, uint64_t version, uint32_t key_id,
                    const uint8_t *sealed, size_t sealed_len, coffer_value **out)
{
	const crypto_key *key = NULL;
	int rc = core_key_find(st, key_id, &key); /* EKEY: the master key went stale */
	if (rc != COFFER_OK && rc != COFFER_EINTEGRITY)
		return rc;
	size_t cap = sealed_len >= CRYPTO_OVERHEAD ? sealed_len - CRYPTO_OVERHEAD : 0;
	coffer_value *v = rc != COFFER_OK ? NULL : malloc(sizeof *v + cap + 1);
	if (rc == COFFER_OK && v == NULL)
		rc = COFFER_ENOMEM;
	if (rc == COFFER_OK) {
		crypto_place pl = {st->store_id, key_id, version, sec->name, sec->name_len};
		rc = crypto_open_value(key, &pl, sealed, sealed_len, v->data, &v->len);
	}
	if (rc == COFFER_EINTEGRITY) {
		char ver[COFFER_VERSION_MAX];
		core_version_format(version, ver);
		core_set_err(st,
		             "secret '%s' version '%s' failed its integrity check "
		             "(tampered, moved or corrupt data)",
		             sec->name, ver);
	}
	if (rc != COFFER_OK) {
		free(v); /* nothing was decrypted into it, or it was wiped */
		return rc;
	}
	v->data[v->len] = '\0';
	core_version_format(version, v->version);
	*out = v;
	return COFFER_OK;
}

/* The checks a call on one version makes first: the handle's permission, then the version id
 * ("latest" gives 0). The caller holds the lock. */
static int check_call(coffer_secret *sec, unsigned perm, const char *verb, const char *version,
                      uint64_t *want)
{
	if (!(sec->perms & perm)) {
		core_set_err(sec->st, "permission denied: this handle to secret '%s' may not %s",
		             sec->name, verb);
		return COFFER_EPERM;
	}
	if (core_version_parse(version, want) != COFFER_OK) {
		char buf[40];
		core_set_err(sec->st,
		             "invalid version id '%s' for secret '%s': use 'latest' or a decimal "
		             "id from 1",
		             printable(version, buf, sizeof buf), sec->name);
		return COFFER_EINVAL;
	}
	return COFFER_OK;
}

static int access_locked(coffer_store *st, coffer_secret *sec, uint64_t want, const char *vstr,
                         coffer_value **out)
{
	uint64_t gen = 0;
	const core_cache_entry *e = NULL;
	if (st->ops->generation(st->be, &gen) == COFFER_OK)
		e = core_cache_get(st->cache, sec->name, sec->name_len, gen);
	if (e != NULL && (want == 0 || want == e->version)) {
		core_cache_count(1);
		return open_row(st, sec, e->version, e->key_id, e->sealed, e->sealed_len, out);
	}
	core_cache_count(0);
	store_row row;
	store_meta meta;
	memset(&row, 0, sizeof row);
	int rc = st->ops->get(st->be, sec->name, sec->name_len, want, &row, &meta);
	/* Read from the store: checked against the MACs (a cached row was, when it was read). */
	if (rc == COFFER_OK)
		rc = core_meta_read(st, sec->name, sec->name_len, want, &meta, &row);
	if (rc == COFFER_ENOTFOUND) {
		if (want == 0)
			core_set_err(st, "secret '%s' not found (it has no versions)", sec->name);
		else
			core_set_err(st, "secret '%s' version '%s' not found", sec->name, vstr);
	} else if (rc != COFFER_OK && rc != COFFER_EINTEGRITY) {
		core_set_backend_err(st, rc);
	}
	if (rc == COFFER_OK)
		rc = open_row(st, sec, row.version, row.key_id, row.sealed, row.sealed_len, out);
	if (rc == COFFER_OK && want == 0)
		core_cache_put(st->cache, sec->name, sec->name_len, &row);
	free(row.sealed);
	return rc;
}

int coffer_access(coffer_secret *sec, const char *version, coffer_value **out)
{
	if (sec == NULL || out == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	uint64_t want = 0;
	int rc = COFFER_OK;
	pthread_mutex_lock(&st->mu);
	rc = check_call(sec, COFFER_ACCESS, "access", version, &want);
	if (rc == COFFER_OK)
		rc = access_locked(st, sec, want, version, out);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static int destroy_locked(coffer_store *st, coffer_secret *sec, uint64_t want, const char *vstr,
                          uint64_t *done)
{
	if (st->ops->destroy == NULL) {
		core_set_err(st, "the %s backend cannot destroy versions", st->ops->scheme);
		return COFFER_EMISUSE;
	}
	/* The core checks every row of the secret against the MACs and re-MACs them, inside the
	 * destroy's transaction; "latest" is resolved there too. */
	core_destroy_ctx dc = {st, want, 0};
	st->errmsg[0] = '\0';
	int rc = st->ops->destroy(st->be, sec->name, sec->name_len, core_meta_destroy, &dc);
	if (rc == COFFER_ENOTFOUND)
		core_set_err(st, "secret '%s' has no enabled version '%s'", sec->name, vstr);
	else if (rc != COFFER_OK && (rc != COFFER_EINTEGRITY || st->errmsg[0] == '\0'))
		core_set_backend_err(st, rc);
	else if (rc == COFFER_OK)
		*done = dc.done;
	return rc;
}

int coffer_destroy(coffer_secret *sec, const char *version, char version_out[COFFER_VERSION_MAX])
{
	if (sec == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	uint64_t want = 0, done = 0;
	int rc;
	pthread_mutex_lock(&st->mu);
	rc = check_call(sec, COFFER_PUT, "destroy", version, &want);
	if (rc == COFFER_OK)
		rc = destroy_locked(st, sec, want, version, &done);
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK && version_out != NULL)
		core_version_format(done, version_out);
	return rc;
}

const void *coffer_value_data(const coffer_value *v, size_t *len)
{
	if (v == NULL) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = v->len;
	return v->data;
}

const char *coffer_value_version(const coffer_value *v)
{
	return v == NULL ? NULL : v->version;
}

void coffer_value_free(coffer_value *v)
{
	if (v == NULL)
		return;
	sodium_memzero(v->data, v->len + 1);
	if (core_value_free_hook != NULL)
		core_value_free_hook(v->data, v->len);
	free(v);
}

int coffer_list_secrets(coffer_store *st, int (*cb)(void *ctx, const char *name, size_t nversions),
                        void *ctx)
{
	if (st == NULL || cb == NULL)
		return COFFER_EMISUSE;
	pthread_mutex_lock(&st->mu);
	int rc = st->ops->list_secrets(st->be, cb, ctx);
	if (rc < 0)
		core_set_backend_err(st, rc);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

typedef struct versions_ctx {
	coffer_secret *sec;
	int (*cb)(void *ctx, const coffer_version_info *info);
	void *ctx;
	store_meta checked; /* the metadata last checked against its MAC */
	uint64_t next;      /* the version the listing must give next */
	int failed;         /* a row failed its check: the store's message says which */
	int stopped;        /* the caller's callback stopped the listing */
} versions_ctx;

/* Each row is checked against the MACs, as a read would: a listing does not show a state that
 * was edited outside coffer. */
static int version_row(void *ctx, const store_meta *m, const store_row *row)
{
	versions_ctx *vc = ctx;
	coffer_secret *sec = vc->sec;
	int rc = core_meta_list(sec->st, sec->name, sec->name_len, m, &vc->checked, row, vc->next);
	if (rc != COFFER_OK) {
		vc->failed = 1;
		return rc;
	}
	vc->next++;
	char ver[COFFER_VERSION_MAX];
	core_version_format(row->version, ver);
	coffer_version_info info = {
	    ver, row->created_ms, row->state,
	    row->sealed_len >= CRYPTO_OVERHEAD ? row->sealed_len - CRYPTO_OVERHEAD : 0,
	    row->key_id};
	rc = vc->cb(vc->ctx, &info);
	vc->stopped = rc != 0;
	return rc;
}

static int list_versions_locked(coffer_secret *sec, versions_ctx *vc)
{
	coffer_store *st = sec->st;
	if (!(sec->perms & COFFER_ACCESS)) {
		core_set_err(st, "permission denied: this handle to secret '%s' may not access",
		             sec->name);
		return COFFER_EPERM;
	}
	int rc = st->ops->list_versions(st->be, sec->name, sec->name_len, version_row, vc);
	if (rc == COFFER_OK && !vc->stopped)
		rc = core_meta_list_end(st, sec->name, sec->name_len, &vc->checked, vc->next);
	else if (rc == COFFER_ENOTFOUND)
		core_set_err(st, "secret '%s' not found", sec->name);
	else if (rc < 0 && !vc->failed)
		core_set_backend_err(st, rc);
	return rc;
}

int coffer_list_versions(coffer_secret *sec, int (*cb)(void *ctx, const coffer_version_info *info),
                         void *ctx)
{
	if (sec == NULL || cb == NULL)
		return COFFER_EMISUSE;
	versions_ctx vc;
	memset(&vc, 0, sizeof vc);
	vc.sec = sec;
	vc.cb = cb;
	vc.ctx = ctx;
	vc.next = 1;
	pthread_mutex_lock(&sec->st->mu);
	int rc = list_versions_locked(sec, &vc);
	pthread_mutex_unlock(&sec->st->mu);
	return rc;
}
