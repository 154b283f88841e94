/* Opening and closing a store: backend, header, master key, keyring. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/internal.h"

void core_set_err(coffer_store *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->errmsg, sizeof st->errmsg, fmt, ap);
	va_end(ap);
}

void core_set_backend_err(coffer_store *st, int rc)
{
	const char *m = st->ops->errmsg(st->be);
	core_set_err(st, "%s", m != NULL && m[0] != '\0' ? m : coffer_strerror(rc));
}

const char *coffer_errmsg(const coffer_store *st)
{
	return st == NULL ? "no store" : st->errmsg;
}

unsigned coffer_created(const coffer_store *st)
{
	return st == NULL ? 0 : st->created;
}

/* Append src[0..n) to buf, which holds *used bytes of len; never overflows, stays NUL-ended. */
static void append(char *buf, size_t len, size_t *used, const char *src, size_t n)
{
	size_t room = len - 1 - *used;
	n = n < room ? n : room;
	memcpy(buf + *used, src, n);
	*used += n;
	buf[*used] = '\0';
}

/* Whether a URL query key, percent-decoded as libpq decodes it, names a connection parameter
 * that holds a secret (password=, sslpassword=). */
static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

/* Whether a URL query key, percent-decoded as libpq decodes it, names a connection parameter
 * that holds a secret (password=, sslpassword=). */
static int secret_param(const char *key, size_t n)
{
	char dec[16];
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)key[i];
		if (c == '%' && i + 2 < n && hex_digit(key[i + 1]) >= 0 &&
		    hex_digit(key[i + 2]) >= 0) {
			c = hex_digit(key[i + 1]) << 4 | hex_digit(key[i + 2]);
			i += 2;
		}
		if (used == sizeof dec - 1)
			return 0;
		dec[used++] = (char)c;
	}
	dec[used] = '\0';
	return strcmp(dec, "password") == 0 || strcmp(dec, "sslpassword") == 0;
}

const char *coffer_location_display(const char *loc, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return "(location)";
	if (loc == NULL)
		loc = "./.coffer";
	const char *sep = strstr(loc, "://");
	const char *query = sep != NULL ? strchr(sep + 3, '?') : NULL;
	size_t auth_len = sep == NULL ? 0 : strcspn(sep + 3, "/?#");
	const char *at = sep != NULL ? memrchr(sep + 3, '@', auth_len) : NULL;
	const char *colon = at != NULL ? memchr(sep + 3, ':', (size_t)(at - sep - 3)) : NULL;
	size_t used = 0;
	buf[0] = '\0';
	/* Up to the query: the userinfo password replaced. */
	size_t head = query != NULL ? (size_t)(query - loc) : strlen(loc);
	for (const char *p = loc; p < loc + head;) {
		if (p == colon) {
			append(buf, len, &used, ":***", 4);
			p = at;
		} else {
			append(buf, len, &used, p++, 1);
		}
	}
	/* The query: each key=value, the value of a secret parameter replaced. */
	for (const char *p = query; p != NULL && *p != '\0';) {
		append(buf, len, &used, p, 1); /* '?' or '&' */
		size_t item = strcspn(p + 1, "&"), key = strcspn(p + 1, "=&");
		append(buf, len, &used, p + 1, key);
		if (key < item && secret_param(p + 1, key))
			append(buf, len, &used, "=***", 4);
		else
			append(buf, len, &used, p + 1 + key, item - key);
		p += 1 + item;
	}
	return buf;
}

int coffer_default_key_file(const char *location, char *buf, size_t len)
{
	const char *rest = NULL;
	char path[4096];
	const store_ops *ops = store_lookup(location != NULL ? location : "./.coffer", &rest);
	if (buf == NULL || len == 0)
		return COFFER_EMISUSE;
	if (ops == NULL)
		return COFFER_EINVAL;
	int rc = ops->default_key_file(rest, path, sizeof path);
	if (rc != COFFER_OK)
		return rc == COFFER_EINVAL ? rc : COFFER_ENOTFOUND;
	if (strlen(path) >= len)
		return COFFER_EINVAL;
	memcpy(buf, path, strlen(path) + 1);
	return COFFER_OK;
}

const char *coffer_key_file(const coffer_store *st)
{
	return st == NULL ? NULL : st->key_file;
}

const crypto_key *core_key_by_id(const coffer_store *st, uint32_t id)
{
	for (size_t i = 0; i < st->nkeys; i++)
		if (st->keys[i].id == id)
			return &st->keys[i].key;
	return NULL;
}

/* An opening in progress: what coffer_open() needs to pass between its steps. */
typedef struct opening {
	coffer_store *st;
	const coffer_options *opts;
	const char *location; /* as given to the backend */
	char *err;
	size_t errlen;
	crypto_key master;
	void *kdf_ref; /* see kdf.c */
} opening;

extern char **environ;

void coffer_env_scrub(void)
{
	static const char *const vars[] = {"COFFER_MASTER_KEY", "COFFER_PASSPHRASE",
	                                   "COFFER_KEY_FILE"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		size_t n = strlen(vars[i]);
		for (char **e = environ; e != NULL && *e != NULL; e++)
			if (strncmp(*e, vars[i], n) == 0 && (*e)[n] == '=')
				sodium_memzero(*e + n + 1, strlen(*e + n + 1));
		unsetenv(vars[i]);
	}
}

static const char *opt_or_env(const char *opt, const char *env, unsigned flags)
{
	if (opt != NULL)
		return opt;
	if (flags & COFFER_OPEN_NO_ENV)
		return NULL;
	const char *v = getenv(env);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The master key from a key file: the explicit one, else the backend's default. A missing key
 * file is created only for a store that has no header yet (a new store). */
static int master_from_file(opening *o, int new_store)
{
	char path[4096];
	const char *file = opt_or_env(o->opts->key_file, "COFFER_KEY_FILE", o->opts->flags);
	if (file == NULL) {
		if (o->st->ops->default_key_file(o->location, path, sizeof path) != COFFER_OK) {
			snprintf(o->err, o->errlen,
			         "no master key: set COFFER_MASTER_KEY, COFFER_PASSPHRASE or "
			         "COFFER_KEY_FILE (this store has no default key file)");
			return COFFER_EKEY;
		}
		file = path;
	}
	/* Temporaries of killed key-file writers hold random keys: the key file's own and those
	 * of an in-place `coffer rekey`, which writes FILE.new first. */
	char next[4096 + 8];
	crypto_key_file_sweep(file);
	if (snprintf(next, sizeof next, "%s.new", file) < (int)sizeof next)
		crypto_key_file_sweep(next);
	free(o->st->key_file); /* a second resolve (lost bootstrap race) */
	if ((o->st->key_file = strdup(file)) == NULL)
		return COFFER_ENOMEM;
	int rc = crypto_key_file_read(file, &o->master, o->err, o->errlen);
	if (rc == COFFER_ENOTFOUND && new_store) {
		int created = 0;
		rc = crypto_key_file_create(file, &o->master, &created, o->err, o->errlen);
		if (rc == COFFER_OK && created)
			o->st->created |= COFFER_CREATED_KEY_FILE;
	} else if (rc == COFFER_ENOTFOUND) {
		snprintf(o->err, o->errlen,
		         "no master key: key file '%s' is missing and the store already exists "
		         "(set COFFER_MASTER_KEY, COFFER_PASSPHRASE or --key-file)",
		         file);
		rc = COFFER_EKEY;
	}
	return rc;
}

/* Characters, not bytes: a UTF-8 passphrase is judged by what the user typed. */
size_t core_utf8_chars(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

static int master_from_passphrase(opening *o, const char *pass, const store_boot *hdr,
                                  int new_store)
{
	size_t n = strlen(pass);
	if (new_store && core_utf8_chars(pass, n) < CORE_PASSPHRASE_MIN) {
		snprintf(o->err, o->errlen, CORE_PASSPHRASE_SHORT, CORE_PASSPHRASE_MIN);
		return COFFER_EINVAL;
	}
	core_kdf_release(o->kdf_ref); /* a second derivation (lost bootstrap race) */
	o->kdf_ref = NULL;
	int rc = core_kdf_derive(pass, n, hdr->kdf_salt, hdr->kdf_opslimit, hdr->kdf_memlimit,
	                         &o->master, &o->kdf_ref);
	if (rc != COFFER_OK)
		snprintf(o->err, o->errlen, "cannot derive the master key from the passphrase");
	return rc;
}

static int master_resolve(opening *o, const store_boot *hdr, int new_store)
{
	const coffer_options *op = o->opts;
	const char *b64 = opt_or_env(op->master_key_b64, "COFFER_MASTER_KEY", op->flags);
	if (b64 != NULL) {
		int rc = crypto_key_from_base64(&o->master, b64, strlen(b64));
		if (rc == COFFER_EKEY)
			snprintf(o->err, o->errlen,
			         "COFFER_MASTER_KEY is not the base64 encoding of 32 bytes");
		return rc;
	}
	const char *pass = opt_or_env(op->passphrase, "COFFER_PASSPHRASE", op->flags);
	if (pass != NULL)
		return master_from_passphrase(o, pass, hdr, new_store);
	return master_from_file(o, new_store);
}

typedef struct keyring_ctx {
	coffer_store *st;
	const crypto_key *master;
	core_data_key keys[CORE_KEYRING_MAX]; /* the keyring being built; key.k NULL: reuse */
	size_t n;
	crypto_key meta; /* the metadata key, when opened by this load */
	unsigned flags;  /* CORE_KR_* */
	char *err;
	size_t errlen;
} keyring_ctx;

/* The metadata key comes first. Only a handle that does not hold it yet (one being opened) opens
 * it; whether it opens is judged once the data keys did (core_meta_ready), so a wrong master key
 * still says "wrong master key". */
static int meta_loaded(keyring_ctx *kc, const uint8_t *sealed, size_t len)
{
	kc->flags |= CORE_KR_META;
	if (kc->st->meta.k != NULL)
		return COFFER_OK;
	int rc = crypto_open_meta_key(kc->master, kc->st->store_id, sealed, len, &kc->meta);
	return rc == COFFER_ENOMEM ? rc : COFFER_OK;
}

static int key_loaded(void *ctx, uint32_t id, const uint8_t *sealed, size_t len)
{
	keyring_ctx *kc = ctx;
	coffer_store *st = kc->st;
	if (id == STORE_META_KEY_ID)
		return meta_loaded(kc, sealed, len);
	if (kc->n == CORE_KEYRING_MAX) {
		snprintf(kc->err, kc->errlen, "keyring holds more than %d keys", CORE_KEYRING_MAX);
		return COFFER_ECORRUPT;
	}
	core_data_key *k = &kc->keys[kc->n];
	k->id = id;
	k->key.k = NULL;
	kc->n++;
	if (core_key_by_id(st, id) != NULL)
		return COFFER_OK; /* a reload: this one is held already */
	int fmt = 0;
	int rc = crypto_open_key_fmt(kc->master, st->store_id, id, sealed, len, &k->key, &fmt);
	if (rc == COFFER_ENOMEM)
		return rc;
	if (rc == COFFER_OK && fmt == CRYPTO_KEYRING_V2)
		kc->flags |= CORE_KR_V2;
	if (rc == COFFER_OK)
		return COFFER_OK;
	if (st->nkeys > 0)
		snprintf(kc->err, kc->errlen, "%s (data key %u does not open with the key in hand)",
		         CORE_STALE_MASTER, (unsigned)id);
	else
		snprintf(kc->err, kc->errlen,
		         "wrong master key: it cannot open this store's keyring (key %u)",
		         (unsigned)id);
	return COFFER_EKEY;
}

static void newest_index(coffer_store *st)
{
	st->newest = 0;
	for (size_t i = 1; i < st->nkeys; i++)
		if (st->keys[i].id > st->keys[st->newest].id)
			st->newest = i;
}

/* The loaded keyring replaces the handle's: held keys move over, the rest are freed. */
static void keyring_swap(coffer_store *st, keyring_ctx *kc)
{
	for (size_t i = 0; i < kc->n; i++) {
		if (kc->keys[i].key.k != NULL)
			continue;
		for (size_t j = 0; j < st->nkeys; j++)
			if (st->keys[j].id == kc->keys[i].id) {
				kc->keys[i].key = st->keys[j].key;
				st->keys[j].key.k = NULL;
			}
	}
	for (size_t j = 0; j < st->nkeys; j++)
		crypto_key_free(&st->keys[j].key);
	memcpy(st->keys, kc->keys, kc->n * sizeof kc->keys[0]);
	st->nkeys = kc->n;
	newest_index(st);
	if (kc->meta.k != NULL) {
		st->meta = kc->meta;
		kc->meta.k = NULL;
	}
	st->keyring_flags = kc->flags;
}

int core_keyring_load(coffer_store *st, const crypto_key *master, char *err, size_t errlen)
{
	keyring_ctx *kc = calloc(1, sizeof *kc);
	if (kc == NULL)
		return COFFER_ENOMEM;
	*kc = (keyring_ctx){.st = st, .master = master, .err = err, .errlen = errlen};
	err[0] = '\0';
	int rc = st->ops->keys_load(st->be, key_loaded, kc);
	if (rc == COFFER_OK && kc->n == 0) {
		snprintf(err, errlen, "store has no data keys");
		rc = COFFER_ECORRUPT;
	} else if (rc != COFFER_OK && err[0] == '\0') {
		snprintf(err, errlen, "%s", st->ops->errmsg(st->be));
	}
	if (rc == COFFER_OK)
		keyring_swap(st, kc);
	for (size_t i = 0; rc != COFFER_OK && i < kc->n; i++)
		crypto_key_free(&kc->keys[i].key);
	crypto_key_free(&kc->meta);
	free(kc);
	return rc;
}

const core_data_key *core_key_adopt(coffer_store *st, uint32_t id, crypto_key *key, uint32_t keep)
{
	size_t slot = st->nkeys;
	if (slot == CORE_KEYRING_MAX) { /* the handle still holds keys pruned since */
		slot = st->keys[0].id != keep ? 0 : 1;
		for (size_t i = 0; i < st->nkeys; i++)
			if (st->keys[i].id < st->keys[slot].id && st->keys[i].id != keep)
				slot = i;
		crypto_key_free(&st->keys[slot].key);
	} else {
		st->nkeys++;
	}
	st->keys[slot].id = id;
	st->keys[slot].key = *key;
	key->k = NULL;
	newest_index(st);
	return &st->keys[slot];
}

/* A new store: propose a header sealed under our master key; another process may win the race,
 * in which case its header (and, for a passphrase, its salt) is the one in force. */
static int bootstrap_new(opening *o, store_boot *hdr)
{
	store_boot prop;
	memset(&prop, 0, sizeof prop);
	crypto_random(prop.store_id, sizeof prop.store_id);
	crypto_random(prop.kdf_salt, sizeof prop.kdf_salt);
	crypto_passphrase_defaults(&prop.kdf_opslimit, &prop.kdf_memlimit);
	prop.first_key_id = 1;
	int rc = master_resolve(o, &prop, 1);
	if (rc != COFFER_OK)
		return rc;
	crypto_key dk = {0}, mk = {0};
	if ((rc = crypto_key_random(&dk)) != COFFER_OK)
		return rc;
	rc = crypto_seal_key(&o->master, prop.store_id, prop.first_key_id, &dk, prop.sealed_key);
	if (rc == COFFER_OK)
		rc = crypto_key_random(&mk);
	/* A new store has its metadata key from the start, written with the header. */
	if (rc == COFFER_OK)
		rc = crypto_seal_meta_key(&o->master, prop.store_id, &mk, prop.sealed_meta_key);
	crypto_key_free(&dk);
	crypto_key_free(&mk);
	prop.sealed_key_len = CRYPTO_SEALED_KEY_LEN;
	prop.sealed_meta_key_len = CRYPTO_SEALED_KEY_LEN;
	int created = 0;
	if (rc == COFFER_OK)
		rc = o->st->ops->bootstrap(o->st->be, &prop, hdr, &created);
	if (rc != COFFER_OK) {
		snprintf(o->err, o->errlen, "%s", o->st->ops->errmsg(o->st->be));
		return rc;
	}
	if (created) {
		o->st->created |= COFFER_CREATED_STORE;
	} else if (memcmp(prop.kdf_salt, hdr->kdf_salt, STORE_SALT_LEN) != 0) {
		crypto_key_free(
		    &o->master); /* lost the race: derive again with the winner's salt */
		rc = master_resolve(o, hdr, 0);
	}
	return rc;
}

/* A store that was never finished (a header is written last, with the first data key). */
static void no_store(opening *o)
{
	char shown[512];
	snprintf(o->err, o->errlen, "no store at %s (it has no header yet)",
	         coffer_location_display(o->location, shown, sizeof shown));
}

static int open_keys(opening *o)
{
	store_boot hdr;
	int rc = o->st->ops->bootstrap(o->st->be, NULL, &hdr, &(int){0});
	if (rc == COFFER_OK)
		rc = master_resolve(o, &hdr, 0);
	else if (rc == COFFER_ENOTFOUND && (o->opts->flags & COFFER_OPEN_NO_CREATE))
		no_store(o); /* no header yet: not a store, and not ours to finish */
	else if (rc == COFFER_ENOTFOUND)
		rc = bootstrap_new(o, &hdr);
	else
		snprintf(o->err, o->errlen, "%s", o->st->ops->errmsg(o->st->be));
	if (rc == COFFER_OK) {
		memcpy(o->st->store_id, hdr.store_id, STORE_ID_LEN);
		rc = core_keyring_load(o->st, &o->master, o->err, o->errlen);
	}
	if (rc == COFFER_OK)
		rc = core_meta_ready(o->st, &o->master, o->err, o->errlen);
	if (rc == COFFER_OK) {
		/* Kept for key rotation and for loading keys other processes add; locked away
		 * (no access at all) while not in use. */
		o->st->master = o->master;
		o->master.k = NULL;
		sodium_mprotect_noaccess(o->st->master.k);
		o->st->kdf_ref = o->kdf_ref;
	} else {
		core_kdf_release(o->kdf_ref);
	}
	o->kdf_ref = NULL;
	crypto_key_free(&o->master);
	return rc;
}

static int open_steps(opening *o, const char *location)
{
	coffer_store *st = o->st;
	const char *rest = NULL;
	st->ops = store_lookup(location, &rest);
	if (st->ops == NULL) {
		/* Only the scheme is echoed: the rest of a URL may hold a password. */
		int n = (int)(strstr(location, "://") - location);
		snprintf(
		    o->err, o->errlen,
		    "unknown store scheme '%.*s': use a folder path, sqlite:DIR or postgres://",
		    n > 32 ? 32 : n, location);
		return COFFER_EINVAL;
	}
	o->location = rest;
	size_t maxv = o->opts->max_value == 0 ? COFFER_VALUE_DEFAULT_MAX : o->opts->max_value;
	if (maxv > COFFER_VALUE_HARD_MAX) {
		snprintf(o->err, o->errlen, "max value size %zu exceeds the hard limit of %d bytes",
		         maxv, COFFER_VALUE_HARD_MAX);
		return COFFER_EINVAL;
	}
	st->max_value = maxv;
	unsigned flags = (o->opts->flags & COFFER_OPEN_NO_CREATE) ? 0 : STORE_OPEN_CREATE;
	if (o->opts->flags & COFFER_OPEN_AUDIT_NOSYNC)
		flags |= STORE_OPEN_AUDIT_NOSYNC;
	int rc = st->ops->open(rest, flags, &st->be, o->err, o->errlen);
	if (rc != COFFER_OK)
		return rc;
	return open_keys(o);
}

int coffer_open(coffer_store **out, const char *location, const coffer_options *opts, char *errbuf,
                size_t errlen)
{
	static const coffer_options defaults;
	char dummy[CORE_ERRMSG_MAX];
	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof dummy;
	}
	errbuf[0] = '\0';
	if (out == NULL) {
		snprintf(errbuf, errlen, "out parameter is NULL");
		return COFFER_EMISUSE;
	}
	if (crypto_init() != COFFER_OK) {
		snprintf(errbuf, errlen, "libsodium failed to initialize");
		return COFFER_EIO;
	}
	coffer_store *st = calloc(1, sizeof *st);
	if (st == NULL)
		return COFFER_ENOMEM;
	opening o = {
	    .st = st, .opts = opts != NULL ? opts : &defaults, .err = errbuf, .errlen = errlen};
	int rc = pthread_mutex_init(&st->mu, NULL) != 0 ? COFFER_ENOMEM : COFFER_OK;
	if (rc == COFFER_OK)
		rc = open_steps(&o, location != NULL ? location : "./.coffer");
	if (rc == COFFER_OK && (st->cache = core_cache_new()) == NULL)
		rc = COFFER_ENOMEM;
	if (rc == COFFER_OK)
		core_audit_init(st, o.opts->principal, o.opts->flags);
	/* Secrets past their recovery window go for good at open (best effort: a busy store
	 * leaves them to the next open or the server's periodic purge). */
	size_t purged = 0;
	if (rc == COFFER_OK && st->ops->purge != NULL)
		(void)st->ops->purge(st->be, (uint64_t)core_now_ms(), &purged);
	if (rc != COFFER_OK) {
		if (errbuf[0] == '\0')
			snprintf(errbuf, errlen, "%s", coffer_strerror(rc));
		coffer_close(st);
		return rc;
	}
	*out = st;
	return COFFER_OK;
}

void coffer_close(coffer_store *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->nkeys; i++)
		crypto_key_free(&st->keys[i].key);
	crypto_key_free(&st->master); /* sodium_free lifts the protection, then wipes */
	crypto_key_free(&st->meta);
	core_kdf_release(st->kdf_ref);
	core_cache_free(st->cache);
	free(st->key_file);
	if (st->be != NULL)
		st->ops->close(st->be);
	pthread_mutex_destroy(&st->mu);
	free(st);
}
