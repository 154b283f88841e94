/* Secrets and versions: put, access, listing. Every entry point validates before it locks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include <sodium.h>

#include "core/internal.h"

void (*core_value_free_hook)(const void *data, size_t len);
int64_t (*core_clock_hook)(void);

int64_t core_now_ms(void)
{
	if (core_clock_hook != NULL)
		return core_clock_hook();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
	coffer_put_item **items;   /* the valid items, in order */
	int msg_set;               /* the store's message says what failed (a key, a MAC) */
	size_t bad;                /* the item whose secret failed its MAC check, or SIZE_MAX */
	const struct put_extra *x; /* coffer_put_ex's options (a put of one), or NULL */
} seal_ctx;

/* What coffer_put_ex() adds to a put of one. */
typedef struct put_extra {
	const coffer_put_opts *opts;
	int has_rid;
	uint8_t rid[STORE_RID_LEN]; /* the request id's keyed hash */
	int replayed;               /* out */
} put_extra;

_Static_assert(STORE_RID_LEN == CRYPTO_MAC_LEN, "a request hash is a MAC");

/* Request id and check-and-set, inside the put's transaction, the secret locked and its
 * metadata checked. A request id seen before answers its version (io->replay) or refuses. */
static int put_rules(seal_ctx *sc, const coffer_put_item *it, store_seal_io *io)
{
	const put_extra *x = sc->x;
	coffer_store *st = sc->st;
	const char *name = it->secret->name;
	if (x->has_rid) {
		core_value_hash(st, x->rid, it->value, it->len, io->vhash);
		if (io->rid_version != 0) {
			if (sodium_memcmp(io->rid_vhash, io->vhash, STORE_RID_LEN) == 0) {
				io->replay = 1;
				return COFFER_OK;
			}
			core_set_err(st,
			             "secret '%s': this request id was used by an earlier put (of "
			             "version %llu) with another value",
			             name, (unsigned long long)io->rid_version);
			return COFFER_EREUSED;
		}
	}
	if ((x->opts->flags & COFFER_PUT_IF_VERSION) &&
	    io->before.last_version != x->opts->if_version) {
		if (io->before.last_version == 0)
			core_set_err(
			    st,
			    "check-and-set: secret '%s' has no versions, not version %llu as "
			    "expected; nothing stored",
			    name, (unsigned long long)x->opts->if_version);
		else
			core_set_err(st,
			             "check-and-set: secret '%s' is at version %llu, not %llu as "
			             "expected; nothing stored",
			             name, (unsigned long long)io->before.last_version,
			             (unsigned long long)x->opts->if_version);
		return COFFER_ECONFLICT;
	}
	return COFFER_OK;
}

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
	if (sc->x != NULL && (rc = put_rules(sc, it, io)) != COFFER_OK) {
		sc->msg_set = 1;
		return rc;
	}
	if (io->replay)
		return COFFER_OK;
	if (io->before.max_versions > 0) { /* retention, once the row is in */
		io->retain = core_meta_retain;
		io->retain_ctx = sc->st;
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
                       store_put *puts, size_t *bad, put_extra *x)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (items[i].rc != COFFER_OK)
			continue;
		valid[m] = &items[i];
		puts[m].name = items[i].secret->name;
		puts[m].name_len = items[i].secret->name_len;
		puts[m].version = 0;
		puts[m].rid = x != NULL && x->has_rid ? x->rid : NULL;
		puts[m].replayed = 0;
		m++;
	}
	*bad = SIZE_MAX;
	if (m == 0)
		return COFFER_OK;
	seal_ctx sc = {st, valid, 0, SIZE_MAX, x};
	/* Audited in the put's own transaction, one entry per version made. */
	core_audit_pending(st, "put", NULL, NULL, NULL, puts, m,
	                   x != NULL && x->has_rid ? x->rid : NULL);
	int rc = st->ops->put(st->be, puts, m, seal_one, &sc);
	core_audit_clear(st);
	if (rc != COFFER_OK) /* refused or failed: recorded on its own */
		(void)core_audit_one(st, NULL, "put", puts[0].name, NULL, rc,
		                     x != NULL && x->has_rid ? x->rid : NULL);
	if (rc == COFFER_OK && m == 1 && puts[0].replayed) { /* answered, nothing written */
		char ver[COFFER_VERSION_MAX];
		core_version_format(puts[0].version, ver);
		(void)core_audit_one(st, NULL, "put-replayed", puts[0].name, ver, COFFER_OK,
		                     x != NULL && x->has_rid ? x->rid : NULL);
	}
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
                      store_put *puts, put_extra *x)
{
	char msg[CORE_ERRMSG_MAX] = "";
	for (size_t i = 0; i < n; i++)
		items[i].rc = put_check(st, &items[i]);
	for (;;) {
		size_t bad = SIZE_MAX;
		int rc = put_pending(st, items, n, valid, puts, &bad, x);
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
		rc = put_locked(st, items, n, valid, puts, NULL);
		pthread_mutex_unlock(&st->mu);
	}
	free(valid);
	free(puts);
	return rc;
}

int coffer_put_ex(coffer_secret *sec, const void *value, size_t len, const coffer_put_opts *opts,
                  char version_out[COFFER_VERSION_MAX], int *replayed)
{
	if (sec == NULL || (opts != NULL && (opts->flags & ~COFFER_PUT_IF_VERSION) != 0))
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	coffer_put_item it = {.secret = sec, .value = value, .len = len};
	coffer_put_item *valid[1];
	store_put puts[1];
	put_extra x = {opts, 0, {0}, 0};
	int rc = COFFER_OK;
	pthread_mutex_lock(&st->mu);
	if (opts != NULL && opts->request_id != NULL) {
		if (opts->request_id_len == 0 || opts->request_id_len > COFFER_REQUEST_ID_MAX) {
			core_set_err(st, "invalid request id for secret '%s': use 1 to %d bytes",
			             sec->name, COFFER_REQUEST_ID_MAX);
			rc = COFFER_EINVAL;
		} else {
			x.has_rid = 1;
			core_request_hash(st, sec->name, sec->name_len, opts->request_id,
			                  opts->request_id_len, x.rid);
		}
	}
	if (rc == COFFER_OK)
		rc = put_locked(st, &it, 1, valid, puts, opts != NULL ? &x : NULL);
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK)
		rc = it.rc;
	if (rc == COFFER_OK && version_out != NULL)
		memcpy(version_out, it.version, COFFER_VERSION_MAX);
	if (rc == COFFER_OK && replayed != NULL)
		*replayed = puts[0].replayed;
	return rc;
}

int coffer_put(coffer_secret *sec, const void *value, size_t len,
               char version_out[COFFER_VERSION_MAX])
{
	return coffer_put_ex(sec, value, len, NULL, version_out, NULL);
}

int coffer_set_max_versions(coffer_secret *sec, uint64_t max)
{
	if (sec == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	int rc = COFFER_OK;
	pthread_mutex_lock(&st->mu);
	if (!(sec->perms & COFFER_PUT)) {
		core_set_err(st,
		             "permission denied: this handle to secret '%s' may not set its "
		             "retention",
		             sec->name);
		rc = COFFER_EPERM;
	} else if (st->ops->destroy == NULL) {
		core_set_err(st, "the %s backend has no retention", st->ops->scheme);
		rc = COFFER_EMISUSE;
	} else {
		/* MAC'd with the secret: set in the state-change transaction, rows re-MAC'd. */
		core_setmax_ctx sc = {st, max};
		st->errmsg[0] = '\0';
		core_audit_pending(st, "meta", sec->name, "", NULL, NULL, 1, NULL);
		rc = st->ops->destroy(st->be, sec->name, sec->name_len, core_meta_setmax, &sc);
		core_audit_clear(st);
		if (rc == COFFER_ENOTFOUND)
			core_set_err(st, "secret '%s' not found (it has no versions)", sec->name);
		else if (rc != COFFER_OK && (rc != COFFER_EINTEGRITY || st->errmsg[0] == '\0') &&
		         rc != COFFER_EDELETED)
			core_set_backend_err(st, rc);
	}
	pthread_mutex_unlock(&st->mu);
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
                      uint64_t *want, const char **label)
{
	if (!(sec->perms & perm)) {
		core_set_err(sec->st, "permission denied: this handle to secret '%s' may not %s",
		             sec->name, verb);
		return COFFER_EPERM;
	}
	if (core_ref_parse(version, want, label) != COFFER_OK) {
		char buf[40];
		core_set_err(sec->st,
		             "invalid version id '%s' for secret '%s': use 'latest' or a decimal "
		             "id from 1 (or a label: a letter, then letters, digits, . _ -)",
		             printable(version, buf, sizeof buf), sec->name);
		return COFFER_EINVAL;
	}
	return COFFER_OK;
}

/* A label read with the secret's metadata and checked against its MAC: the version it names
 * (*want), or COFFER_ENOTFOUND (message set). */
static int resolve_label(coffer_store *st, coffer_secret *sec, const char *label, uint64_t *want)
{
	store_meta m;
	memset(&m, 0, sizeof m);
	if (st->ops->labels_get == NULL) {
		core_set_err(st, "the %s backend has no labels", st->ops->scheme);
		return COFFER_EMISUSE;
	}
	int rc = st->ops->labels_get(st->be, sec->name, sec->name_len, &m, NULL);
	if (rc == COFFER_OK)
		rc = core_meta_labels_read(st, sec->name, sec->name_len, &m);
	else if (rc == COFFER_ENOTFOUND)
		core_set_err(st, "secret '%s' not found (it has no versions)", sec->name);
	else
		core_set_backend_err(st, rc);
	if (rc == COFFER_OK && (*want = core_label_find(&m, label)) == 0) {
		core_set_err(st, "secret '%s' has no label '%s'", sec->name, label);
		rc = COFFER_ENOTFOUND;
	}
	free(m.labels);
	return rc;
}

static int access_locked(coffer_store *st, coffer_secret *sec, uint64_t want, const char *vstr,
                         coffer_value **out)
{
	uint64_t gen = 0;
	const core_cache_entry *e = NULL;
	int grc = st->ops->generation_of != NULL
	              ? st->ops->generation_of(st->be, sec->name, sec->name_len, &gen)
	              : st->ops->generation(st->be, &gen);
	if (grc == COFFER_OK)
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
	if (rc == COFFER_EDELETED) {
		core_set_err(st, "secret '%s' is scheduled for deletion (restore it to read it)",
		             sec->name);
	} else if (rc == COFFER_EDISABLED) {
		core_set_err(st, "secret '%s' version '%s' is disabled (enable it to read it)",
		             sec->name, vstr);
	} else if (rc == COFFER_ENOTFOUND) {
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
	const char *label = NULL;
	rc = check_call(sec, COFFER_ACCESS, "access", version, &want, &label);
	/* A label names a version as the metadata read with it says, then that version is read
	 * as any other (with its own checks): the version the label named at that moment. */
	if (rc == COFFER_OK && label != NULL)
		rc = resolve_label(st, sec, label, &want);
	if (rc == COFFER_OK)
		rc = access_locked(st, sec, want, version, out);
	if (st->audit_reads) /* the embedder asked for reads too: a transaction of its own */
		(void)core_audit_one(st, NULL, "access", sec->name, version, rc, NULL);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* destroy, disable, enable: one state change in one write transaction. */
static int retag_locked(coffer_store *st, coffer_secret *sec, uint64_t want, const char *label,
                        const char *vstr, int to, uint64_t *done)
{
	if (st->ops->destroy == NULL) {
		core_set_err(st, "the %s backend cannot change version states", st->ops->scheme);
		return COFFER_EMISUSE;
	}
	/* The core checks every row of the secret against the MACs and re-MACs them, inside the
	 * change's transaction; "latest" is resolved there too. */
	core_destroy_ctx dc = {st, want, 0, to, -1, label};
	const char *verb = to == COFFER_STATE_DESTROYED  ? "destroy"
	                   : to == COFFER_STATE_DISABLED ? "disable"
	                                                 : "enable";
	st->errmsg[0] = '\0';
	core_audit_pending(st, verb, sec->name, NULL, &dc.done, NULL, 1, NULL);
	int rc = st->ops->destroy(st->be, sec->name, sec->name_len, core_meta_destroy, &dc);
	core_audit_clear(st);
	if (rc != COFFER_OK)
		(void)core_audit_one(st, NULL, verb, sec->name, vstr, rc, NULL);
	if (rc == COFFER_ENOTFOUND && dc.was == -2)
		core_set_err(st, "secret '%s' has no label '%s'", sec->name, vstr);
	else if (rc == COFFER_ENOTFOUND && dc.was == COFFER_STATE_DESTROYED)
		core_set_err(st, "secret '%s' version '%s' is destroyed", sec->name, vstr);
	else if (rc == COFFER_ENOTFOUND)
		core_set_err(st, "secret '%s' has no %sversion '%s'", sec->name,
		             want == 0 ? "enabled " : "", vstr);
	else if (rc != COFFER_OK && (rc != COFFER_EINTEGRITY || st->errmsg[0] == '\0'))
		core_set_backend_err(st, rc);
	else if (rc == COFFER_OK)
		*done = dc.done;
	return rc;
}

static int change_state(coffer_secret *sec, const char *version, int to, const char *verb,
                        char version_out[COFFER_VERSION_MAX])
{
	if (sec == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	uint64_t want = 0, done = 0;
	int rc;
	pthread_mutex_lock(&st->mu);
	const char *label = NULL;
	rc = check_call(sec, COFFER_PUT, verb, version, &want, &label);
	if (rc == COFFER_OK && want == 0 && label == NULL && to == COFFER_STATE_ENABLED) {
		core_set_err(st, "enable needs a version id of secret '%s', not 'latest'",
		             sec->name);
		rc = COFFER_EINVAL;
	}
	if (rc == COFFER_OK)
		rc = retag_locked(st, sec, want, label, version, to, &done);
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK && version_out != NULL)
		core_version_format(done, version_out);
	return rc;
}

static int label_locked(coffer_secret *sec, core_label_ctx *lc, const char *vstr)
{
	coffer_store *st = sec->st;
	if (!(sec->perms & COFFER_PUT)) {
		core_set_err(st, "permission denied: this handle to secret '%s' may not label",
		             sec->name);
		return COFFER_EPERM;
	}
	if (!core_label_syntax(lc->label) || strcasecmp(lc->label, "previous") == 0) {
		char buf[80];
		core_set_err(
		    st,
		    "invalid label '%s' for secret '%s': use 1-%d characters of A-Z a-z 0-9 "
		    ". _ -, starting with a letter ('latest' and 'previous' are kept by "
		    "coffer)",
		    printable(lc->label, buf, sizeof buf), sec->name, STORE_LABEL_MAX);
		return COFFER_EINVAL;
	}
	if (st->ops->destroy == NULL || st->ops->labels_get == NULL) {
		core_set_err(st, "the %s backend has no labels", st->ops->scheme);
		return COFFER_EMISUSE;
	}
	st->errmsg[0] = '\0';
	const char *verb = lc->remove ? "unlabel" : "label";
	core_audit_pending(st, verb, sec->name, lc->label, NULL, NULL, 1, NULL);
	int rc = st->ops->destroy(st->be, sec->name, sec->name_len, core_meta_label, lc);
	core_audit_clear(st);
	if (rc != COFFER_OK)
		(void)core_audit_one(st, NULL, verb, sec->name, lc->label, rc, NULL);
	if (rc == COFFER_ENOTFOUND && lc->remove)
		core_set_err(st, "secret '%s' has no label '%s'", sec->name, lc->label);
	else if (rc == COFFER_ENOTFOUND && lc->missing == 2)
		core_set_err(st, "secret '%s' version '%s' is destroyed: it cannot be labelled",
		             sec->name, vstr);
	else if (rc == COFFER_ENOTFOUND)
		core_set_err(st, "secret '%s' has no version '%s'", sec->name, vstr);
	else if (rc == COFFER_EBUSY && lc->full)
		core_set_err(st, "secret '%s' has %d labels already: delete one first", sec->name,
		             STORE_LABELS_MAX);
	else if (rc != COFFER_OK && (rc != COFFER_EINTEGRITY || st->errmsg[0] == '\0'))
		core_set_backend_err(st, rc);
	return rc;
}

int coffer_label_set(coffer_secret *sec, const char *label, const char *version,
                     char version_out[COFFER_VERSION_MAX])
{
	if (sec == NULL || label == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	core_label_ctx lc = {st, label, 0, 0, NULL, 0, 0, 0};
	pthread_mutex_lock(&st->mu);
	int rc = check_call(sec, COFFER_PUT, "label", version, &lc.want, &lc.from);
	if (rc == COFFER_OK)
		rc = label_locked(sec, &lc, version);
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK && version_out != NULL)
		core_version_format(lc.done, version_out);
	return rc;
}

int coffer_label_delete(coffer_secret *sec, const char *label)
{
	if (sec == NULL || label == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	core_label_ctx lc = {st, label, 1, 0, NULL, 0, 0, 0};
	pthread_mutex_lock(&st->mu);
	int rc = label_locked(sec, &lc, label);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int coffer_list_labels(coffer_secret *sec,
                       int (*cb)(void *ctx, const char *label, const char *version), void *ctx)
{
	if (sec == NULL || cb == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	store_meta m;
	memset(&m, 0, sizeof m);
	int rc = COFFER_OK;
	pthread_mutex_lock(&st->mu);
	if (!(sec->perms & COFFER_ACCESS)) {
		core_set_err(st, "permission denied: this handle to secret '%s' may not access",
		             sec->name);
		rc = COFFER_EPERM;
	} else if (st->ops->labels_get == NULL) {
		core_set_err(st, "the %s backend has no labels", st->ops->scheme);
		rc = COFFER_EMISUSE;
	} else {
		rc = st->ops->labels_get(st->be, sec->name, sec->name_len, &m, NULL);
		if (rc == COFFER_OK)
			rc = core_meta_labels_read(st, sec->name, sec->name_len, &m);
		else if (rc == COFFER_ENOTFOUND)
			core_set_err(st, "secret '%s' not found (it has no versions)", sec->name);
		else
			core_set_backend_err(st, rc);
	}
	pthread_mutex_unlock(&st->mu);
	/* The callback runs unlocked (it may call coffer), on the copy read. */
	char ver[COFFER_VERSION_MAX];
	if (rc == COFFER_OK && m.latest != 0) {
		core_version_format(m.latest, ver);
		rc = cb(ctx, "latest", ver);
	}
	if (rc == COFFER_OK && m.previous != 0) {
		core_version_format(m.previous, ver);
		rc = cb(ctx, "previous", ver);
	}
	for (size_t i = 0; rc == COFFER_OK && i < m.nlabels; i++) {
		core_version_format(m.labels[i].version, ver);
		rc = cb(ctx, m.labels[i].name, ver);
	}
	free(m.labels);
	return rc;
}

int coffer_destroy(coffer_secret *sec, const char *version, char version_out[COFFER_VERSION_MAX])
{
	return change_state(sec, version, COFFER_STATE_DESTROYED, "destroy", version_out);
}

int coffer_disable(coffer_secret *sec, const char *version, char version_out[COFFER_VERSION_MAX])
{
	return change_state(sec, version, COFFER_STATE_DISABLED, "disable", version_out);
}

int coffer_enable(coffer_secret *sec, const char *version, char version_out[COFFER_VERSION_MAX])
{
	return change_state(sec, version, COFFER_STATE_ENABLED, "enable", version_out);
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

/* --- delete, restore, purge, describe, info, pages ------------------------------------------ */

static int purge_locked(coffer_store *st, size_t *count)
{
	if (st->ops->purge == NULL)
		return COFFER_OK;
	int rc = st->ops->purge(st->be, (uint64_t)core_now_ms(), count);
	if (rc != COFFER_OK)
		core_set_backend_err(st, rc);
	return rc;
}

int coffer_purge(coffer_store *st, size_t *count)
{
	if (st == NULL)
		return COFFER_EMISUSE;
	size_t n = 0;
	pthread_mutex_lock(&st->mu);
	int rc = purge_locked(st, &n);
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK && count != NULL)
		*count = n;
	return rc;
}

static int delete_locked(coffer_secret *sec, core_delete_ctx *dc)
{
	coffer_store *st = sec->st;
	if (!(sec->perms & COFFER_PUT)) {
		core_set_err(st, "permission denied: this handle to secret '%s' may not %s",
		             sec->name, dc->purge_ms != 0 ? "delete" : "restore");
		return COFFER_EPERM;
	}
	if (st->ops->destroy == NULL) {
		core_set_err(st, "the %s backend cannot delete secrets", st->ops->scheme);
		return COFFER_EMISUSE;
	}
	st->errmsg[0] = '\0';
	const char *verb = dc->purge_ms != 0 ? "delete" : "restore";
	core_audit_pending(st, verb, sec->name, "", NULL, NULL, 1, NULL);
	int rc = st->ops->destroy(st->be, sec->name, sec->name_len, core_meta_delete, dc);
	core_audit_clear(st);
	if (rc != COFFER_OK)
		(void)core_audit_one(st, NULL, verb, sec->name, "", rc, NULL);
	if (rc == COFFER_EINVAL && dc->not_deleted)
		core_set_err(st, "secret '%s' is not scheduled for deletion", sec->name);
	else if (rc == COFFER_ENOTFOUND && dc->too_late)
		core_set_err(st, "secret '%s' is past its recovery window: it is gone for good",
		             sec->name);
	else if (rc == COFFER_ENOTFOUND)
		core_set_err(st, "secret '%s' not found", sec->name);
	else if (rc != COFFER_OK && (rc != COFFER_EINTEGRITY || st->errmsg[0] == '\0'))
		core_set_backend_err(st, rc);
	return rc;
}

int coffer_delete(coffer_secret *sec, unsigned recovery_days, int64_t *purge_at_ms)
{
	if (sec == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	int rc = COFFER_OK;
	int64_t now = core_now_ms();
	/* Now, for good, is "from 1 ms ago": a purge at this time takes it. */
	uint64_t at = recovery_days == 0 ? (uint64_t)now - 1
	                                 : (uint64_t)now + (uint64_t)recovery_days * 86400000u;
	core_delete_ctx dc = {st, at, (uint64_t)now, 0, 0};
	pthread_mutex_lock(&st->mu);
	if (recovery_days > COFFER_RECOVERY_DAYS_MAX) {
		core_set_err(st, "recovery window of %u days for secret '%s': use 1 to %d (0: now)",
		             recovery_days, sec->name, COFFER_RECOVERY_DAYS_MAX);
		rc = COFFER_EINVAL;
	}
	if (rc == COFFER_OK)
		rc = delete_locked(sec, &dc);
	size_t n = 0;
	if (rc == COFFER_OK && recovery_days == 0)
		rc = purge_locked(st, &n);
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK && purge_at_ms != NULL)
		*purge_at_ms = (int64_t)at;
	return rc;
}

int coffer_restore(coffer_secret *sec)
{
	if (sec == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	core_delete_ctx dc = {st, 0, (uint64_t)core_now_ms(), 0, 0};
	pthread_mutex_lock(&st->mu);
	int rc = delete_locked(sec, &dc);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int coffer_describe(coffer_secret *sec, coffer_secret_info *out)
{
	if (sec == NULL || out == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	store_meta m;
	store_info info;
	memset(&m, 0, sizeof m);
	int rc = COFFER_OK;
	pthread_mutex_lock(&st->mu);
	if (!(sec->perms & COFFER_ACCESS)) {
		core_set_err(st, "permission denied: this handle to secret '%s' may not access",
		             sec->name);
		rc = COFFER_EPERM;
	} else if (st->ops->labels_get == NULL) {
		core_set_err(st, "the %s backend cannot describe secrets", st->ops->scheme);
		rc = COFFER_EMISUSE;
	} else {
		rc = st->ops->labels_get(st->be, sec->name, sec->name_len, &m, &info);
		if (rc == COFFER_OK)
			rc = core_meta_labels_read(st, sec->name, sec->name_len, &m);
		else if (rc == COFFER_ENOTFOUND)
			core_set_err(st, "secret '%s' not found (it has no versions)", sec->name);
		else
			core_set_backend_err(st, rc);
	}
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK) {
		memset(out, 0, sizeof *out);
		snprintf(out->description, sizeof out->description, "%s", info.description);
		snprintf(out->tags, sizeof out->tags, "%s", info.tags);
		out->created_unix_ms = info.created_ms;
		out->updated_unix_ms = info.updated_ms;
		if (m.latest != 0)
			core_version_format(m.latest, out->current_version);
		core_version_format(m.last_version, out->last_version);
		if (m.previous != 0)
			core_version_format(m.previous, out->previous_version);
		out->max_versions = info.max_versions;
		out->purge_at_unix_ms = (int64_t)m.purge_ms;
		out->nlabels = m.nlabels;
	}
	free(m.labels);
	return rc;
}

/* A description: printable, no control characters (bytes >= 0x80 pass: UTF-8). */
static int description_ok(const char *d)
{
	size_t n = strnlen(d, COFFER_DESCRIPTION_MAX + 1);
	if (n > COFFER_DESCRIPTION_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)d[i] < 0x20 || d[i] == 0x7f)
			return 0;
	return 1;
}

/* Tags: "KEY=VALUE" lines; normalized into out (each line ending in a newline). */
static int tags_ok(const char *t, char *out, size_t cap)
{
	size_t o = 0, count = 0;
	const char *p = t;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		if (len == 0) { /* an empty line */
			p += nl != NULL ? 1 : 0;
			if (nl == NULL)
				break;
			continue;
		}
		if (eq == NULL || eq == p || (size_t)(eq - p) > STORE_LABEL_MAX ||
		    len - (size_t)(eq - p) - 1 > 255 || ++count > COFFER_TAGS_MAX ||
		    o + len + 2 > cap)
			return 0;
		for (const char *k = p; k < eq; k++)
			if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
			      (*k >= '0' && *k <= '9') || *k == '.' || *k == '_' || *k == '-'))
				return 0;
		for (const char *v = eq + 1; v < p + len; v++)
			if ((unsigned char)*v < 0x20 || *v == 0x7f)
				return 0;
		memcpy(out + o, p, len);
		o += len;
		out[o++] = '\n';
		p += len + (nl != NULL ? 1 : 0);
	}
	out[o] = '\0';
	return 1;
}

int coffer_set_info(coffer_secret *sec, const char *description, const char *tags)
{
	if (sec == NULL)
		return COFFER_EMISUSE;
	coffer_store *st = sec->st;
	char norm[STORE_TAGS_MAX + 1];
	int rc = COFFER_OK;
	pthread_mutex_lock(&st->mu);
	if (!(sec->perms & COFFER_PUT)) {
		core_set_err(st, "permission denied: this handle to secret '%s' may not change it",
		             sec->name);
		rc = COFFER_EPERM;
	} else if (description != NULL && !description_ok(description)) {
		core_set_err(st,
		             "invalid description for secret '%s': at most %d bytes, no control "
		             "characters",
		             sec->name, COFFER_DESCRIPTION_MAX);
		rc = COFFER_EINVAL;
	} else if (tags != NULL && !tags_ok(tags, norm, sizeof norm)) {
		core_set_err(
		    st,
		    "invalid tags for secret '%s': KEY=VALUE lines, at most %d, a key 1-%d "
		    "of A-Z a-z 0-9 . _ -, a value of at most 255 printable bytes",
		    sec->name, COFFER_TAGS_MAX, STORE_LABEL_MAX);
		rc = COFFER_EINVAL;
	} else if (st->ops->info_set == NULL) {
		core_set_err(st, "the %s backend cannot describe secrets", st->ops->scheme);
		rc = COFFER_EMISUSE;
	} else {
		core_audit_pending(st, "meta", sec->name, "", NULL, NULL, 1, NULL);
		rc = st->ops->info_set(st->be, sec->name, sec->name_len, description,
		                       tags != NULL ? norm : NULL);
		core_audit_clear(st);
		if (rc == COFFER_ENOTFOUND)
			core_set_err(st, "secret '%s' not found (it has no versions)", sec->name);
		else if (rc != COFFER_OK)
			core_set_backend_err(st, rc);
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* Page tokens: "p1" then the hex of the last name of the page (names are ASCII, so the token
 * is safe in any URL, header or JSON). */
typedef struct page_ctx {
	int (*cb)(void *ctx, const char *name, size_t nversions);
	void *ctx;
	size_t n;
	char last[COFFER_NAME_MAX + 1];
} page_ctx;

static int page_row(void *ctx, const char *name, size_t nversions)
{
	page_ctx *pc = ctx;
	pc->n++;
	snprintf(pc->last, sizeof pc->last, "%s", name);
	return pc->cb(pc->ctx, name, nversions);
}

static int token_decode(const char *t, char *name, size_t cap)
{
	size_t n = strlen(t);
	if (n < 4 || n % 2 != 0 || t[0] != 'p' || t[1] != '1' || (n - 2) / 2 >= cap)
		return 0;
	for (size_t i = 2; i < n; i += 2) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = t[i + (size_t)k];
			v = v * 16 + (unsigned)(c >= '0' && c <= '9'   ? c - '0'
			                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
			                                               : 99);
		}
		if (v > 0xff)
			return 0;
		name[(i - 2) / 2] = (char)v;
	}
	name[(n - 2) / 2] = '\0';
	return coffer_name_check(name, (n - 2) / 2) == COFFER_OK;
}

int coffer_list_page(coffer_store *st, const char *prefix, size_t page_size, const char *page_token,
                     int (*cb)(void *ctx, const char *name, size_t nversions), void *ctx,
                     char next_token[COFFER_PAGE_TOKEN_MAX])
{
	if (st == NULL || cb == NULL || next_token == NULL)
		return COFFER_EMISUSE;
	char after[COFFER_NAME_MAX + 1] = "";
	const char *pre = prefix != NULL ? prefix : "";
	size_t plen = strnlen(pre, COFFER_NAME_MAX + 1);
	int rc = COFFER_OK;
	pthread_mutex_lock(&st->mu);
	if (page_size == 0 || page_size > COFFER_PAGE_SIZE_MAX) {
		core_set_err(st, "page size %zu: use 1 to %d", page_size, COFFER_PAGE_SIZE_MAX);
		rc = COFFER_EINVAL;
	} else if (plen > 0 && coffer_name_check(pre, plen) != COFFER_OK &&
	           (plen > COFFER_NAME_MAX ||
	            strspn(pre,
	                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	                plen)) {
		core_set_err(st,
		             "invalid prefix: use characters of secret names (A-Z a-z 0-9 . _ -)");
		rc = COFFER_EINVAL;
	} else if (page_token != NULL && page_token[0] != '\0' &&
	           !token_decode(page_token, after, sizeof after)) {
		core_set_err(st, "invalid page token: pass the next_page_token of the page before");
		rc = COFFER_EINVAL;
	} else if (st->ops->list_page == NULL) {
		core_set_err(st, "the %s backend cannot list in pages", st->ops->scheme);
		rc = COFFER_EMISUSE;
	}
	page_ctx pc = {cb, ctx, 0, ""};
	if (rc == COFFER_OK) {
		rc = st->ops->list_page(st->be, pre, plen, after, strlen(after), page_size,
		                        page_row, &pc);
		if (rc < 0)
			core_set_backend_err(st, rc);
	}
	pthread_mutex_unlock(&st->mu);
	if (rc == COFFER_OK) {
		next_token[0] = '\0';
		if (pc.n == page_size) { /* maybe more: the next page says */
			size_t o = 0;
			next_token[o++] = 'p';
			next_token[o++] = '1';
			for (size_t i = 0; pc.last[i] != '\0'; i++) {
				static const char hex[] = "0123456789abcdef";
				next_token[o++] = hex[(unsigned char)pc.last[i] >> 4];
				next_token[o++] = hex[(unsigned char)pc.last[i] & 15];
			}
			next_token[o] = '\0';
		}
	}
	return rc;
}
