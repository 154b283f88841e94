/*
 * Metadata MACs: whoever can write the database must not be able to move a secret's latest back
 * to an older value (mark the newest version destroyed, delete its row, lower last_version)
 * without coffer noticing. Values were authenticated already (their AD names the secret and the
 * version); this authenticates what points at them. See docs/internals.md for the design, what
 * it detects and what it leaves open.
 *
 *   secret MAC = MAC_meta("coffer-secret" | fmt | store_id | name | last_version | latest | epoch)
 *   row MAC    = MAC_meta("coffer-version" | fmt | store_id | name | version | state | epoch)
 *
 * epoch counts the versions destroyed so far: every destroy re-MACs all rows of the secret, so a
 * row restored from before a destroy fails its check. A put only adds a row and re-MACs the
 * secret (O(1)); a read checks the secret's MAC and the one row it returns (O(1)).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "core/internal.h"

/* domain (with its NUL) | fmt | store_id | name_len | name | four 64-bit fields at most */
#define MSG_MAX (16 + 1 + STORE_ID_LEN + 2 + COFFER_NAME_MAX + 6 * 8 + 2 + STORE_DIGEST_LEN)

static size_t put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
	return 8;
}

/* domain | fmt | store_id | name_len (u16 BE) | name: what both MACs begin with. */
static size_t msg_head(uint8_t *p, const char *domain, const coffer_store *st, const char *name,
                       size_t len)
{
	size_t n =
	    strlen(domain) + 1; /* with its NUL: the domains are not prefixes of each other */
	memcpy(p, domain, n);
	p[n++] = CORE_MAC_FORMAT;
	memcpy(p + n, st->store_id, STORE_ID_LEN);
	n += STORE_ID_LEN;
	p[n++] = (uint8_t)(len >> 8);
	p[n++] = (uint8_t)len;
	memcpy(p + n, name, len);
	return n + len;
}

static size_t secret_msg(uint8_t p[MSG_MAX], const coffer_store *st, const char *name, size_t len,
                         const store_meta *m)
{
	size_t n = msg_head(p, "coffer-secret", st, name, len);
	n += put_u64(p + n, m->last_version);
	n += put_u64(p + n, m->latest);
	n += put_u64(p + n, m->epoch);
	/* Schema 3: previous and the label digest, only when there is one of them, so the MACs of
	 * a secret without (every secret of a store from before) stay as they were. The message
	 * without them has a fixed length for a name, so neither form can pass for the other. */
	if (m->previous == 0 && m->ldigest_len == 0 && m->purge_ms == 0 && m->max_versions == 0)
		return n;
	p[n++] = 1;
	n += put_u64(p + n, m->previous);
	n += put_u64(p + n, m->purge_ms);
	n += put_u64(p + n, m->max_versions);
	p[n++] = (uint8_t)m->ldigest_len;
	memcpy(p + n, m->ldigest, m->ldigest_len <= STORE_DIGEST_LEN ? m->ldigest_len : 0);
	return n + (m->ldigest_len <= STORE_DIGEST_LEN ? m->ldigest_len : 0);
}

/* The digest of a secret's custom labels (sorted by name): none when it has none. */
static void labels_digest(const coffer_store *st, const char *name, size_t len, store_meta *m)
{
	if (m->nlabels == 0) {
		m->ldigest_len = 0;
		memset(m->ldigest, 0, sizeof m->ldigest);
		return;
	}
	uint8_t head[MSG_MAX];
	size_t n = msg_head(head, "coffer-labels", st, name, len);
	uint8_t body[STORE_LABELS_MAX * (1 + STORE_LABEL_MAX + 8)];
	size_t b = 0;
	for (size_t i = 0; i < m->nlabels && i < STORE_LABELS_MAX; i++) {
		size_t l = strlen(m->labels[i].name);
		body[b++] = (uint8_t)l;
		memcpy(body + b, m->labels[i].name, l);
		b += l;
		b += put_u64(body + b, m->labels[i].version);
	}
	crypto_mac2(&st->meta, head, n, body, b, m->ldigest);
	m->ldigest_len = STORE_DIGEST_LEN;
}

/* The labels read in the same snapshot as the metadata are the ones its MAC names. */
static int labels_check(coffer_store *st, const char *name, size_t len, const store_meta *m)
{
	store_meta d = *m;
	labels_digest(st, name, len, &d);
	if (d.ldigest_len == m->ldigest_len &&
	    sodium_memcmp(d.ldigest, m->ldigest, STORE_DIGEST_LEN) == 0)
		return COFFER_OK;
	core_set_err(st,
	             "secret '%.*s' failed its integrity check: its labels do not match its MAC "
	             "(edited outside coffer?)",
	             (int)len, name);
	return COFFER_EINTEGRITY;
}

static size_t row_msg(uint8_t p[MSG_MAX], const coffer_store *st, const char *name, size_t len,
                      uint64_t epoch, const store_row *r)
{
	size_t n = msg_head(p, "coffer-version", st, name, len);
	n += put_u64(p + n, r->version);
	n += put_u64(p + n, (uint64_t)(int64_t)r->state); /* all of it: 256 is not 0 */
	return n + put_u64(p + n, epoch);
}

static void sign(const coffer_store *st, const uint8_t *msg, size_t n, uint8_t mac[STORE_MAC_LEN],
                 size_t *mac_len)
{
	mac[0] = CORE_MAC_FORMAT;
	crypto_mac(&st->meta, msg, n, mac + 1);
	*mac_len = STORE_MAC_LEN;
}

static int verify(const coffer_store *st, const uint8_t *msg, size_t n, const uint8_t *mac,
                  size_t mac_len)
{
	if (mac_len != STORE_MAC_LEN || mac[0] != CORE_MAC_FORMAT)
		return COFFER_EINTEGRITY;
	return crypto_mac_verify(&st->meta, msg, n, mac + 1);
}

static void meta_sign(const coffer_store *st, const char *name, size_t len, store_meta *m)
{
	uint8_t msg[MSG_MAX];
	sign(st, msg, secret_msg(msg, st, name, len, m), m->mac, &m->mac_len);
}

static void row_sign(const coffer_store *st, const char *name, size_t len, uint64_t epoch,
                     store_row *r)
{
	uint8_t msg[MSG_MAX];
	sign(st, msg, row_msg(msg, st, name, len, epoch, r), r->mac, &r->mac_len);
}

/* Names reach here validated (A-Z a-z 0-9 . _ -), or from the store in meta_init, which never
 * prints them: safe to echo in a message. Every message names the secret, never a value. */
#define FAILED "secret '%.*s' failed its integrity check: "

static int meta_check(coffer_store *st, const char *name, size_t len, const store_meta *m)
{
	uint8_t msg[MSG_MAX];
	if (verify(st, msg, secret_msg(msg, st, name, len, m), m->mac, m->mac_len) == COFFER_OK)
		return COFFER_OK;
	core_set_err(st, FAILED "its metadata does not match its MAC (edited outside coffer?)",
	             (int)len, name);
	return COFFER_EINTEGRITY;
}

static int row_check(coffer_store *st, const char *name, size_t len, uint64_t epoch,
                     const store_row *r)
{
	uint8_t msg[MSG_MAX];
	if (verify(st, msg, row_msg(msg, st, name, len, epoch, r), r->mac, r->mac_len) == COFFER_OK)
		return COFFER_OK;
	core_set_err(st,
	             FAILED "version '%llu' does not match its MAC (its state edited, or its row "
	                    "restored from an older copy, outside coffer?)",
	             (int)len, name, (unsigned long long)r->version);
	return COFFER_EINTEGRITY;
}

/* A row that is not as the secret's MAC says: missing, or not what it should be. */
static int unlike(coffer_store *st, const char *name, size_t len, uint64_t v, const char *is,
                  const char *says)
{
	core_set_err(st,
	             FAILED "version '%llu' is %s, but its MAC says it %s (edited outside coffer?)",
	             (int)len, name, (unsigned long long)v, is, says);
	return COFFER_EINTEGRITY;
}

/* A row beyond the last version the secret's MAC names: the secret row was put back to an older
 * state (with its MAC of then) while newer versions exist. */
static int beyond(coffer_store *st, const char *name, size_t len, uint64_t v, uint64_t last)
{
	core_set_err(st,
	             FAILED "version '%llu' exists beyond the last version its MAC names (%llu): "
	                    "its metadata was rolled back outside coffer?",
	             (int)len, name, (unsigned long long)v, (unsigned long long)last);
	return COFFER_EINTEGRITY;
}

static int meta_check_read(coffer_store *st, const char *name, size_t len, const store_meta *m)
{
	int rc = meta_check(st, name, len, m);
	if (rc == COFFER_OK && m->rows_max > m->last_version)
		rc = beyond(st, name, len, m->rows_max, m->last_version);
	return rc;
}

int core_meta_read(coffer_store *st, const char *name, size_t len, uint64_t want,
                   const store_meta *m, const store_row *row)
{
	int rc = meta_check_read(st, name, len, m);
	if (rc != COFFER_OK)
		return rc;
	if (m->purge_ms != 0)
		return COFFER_EDELETED; /* as its MAC says; the caller says so */
	if (want == 0 && m->latest == 0)
		return COFFER_ENOTFOUND; /* every version destroyed, as the MAC says */
	if (want > m->last_version)
		return COFFER_ENOTFOUND; /* never created */
	if (want == 0 && (row->version != m->latest || row->state != COFFER_STATE_ENABLED))
		return unlike(st, name, len, m->latest,
		              row->version == 0 ? "missing" : "not enabled",
		              "is the newest enabled");
	if (row->version == 0)
		return unlike(st, name, len, want, "missing", "exists");
	rc = row_check(st, name, len, m->epoch, row);
	if (rc == COFFER_OK && row->state == COFFER_STATE_DISABLED)
		rc = COFFER_EDISABLED; /* as its MAC says; the caller says so */
	else if (rc == COFFER_OK && row->state != COFFER_STATE_ENABLED)
		rc = COFFER_ENOTFOUND; /* destroyed, as its MAC says */
	return rc;
}

int core_meta_put(coffer_store *st, const char *name, size_t len, store_seal_io *io)
{
	const store_meta *b = &io->before;
	int rc = COFFER_OK;
	if (b->last_version != 0)
		rc = meta_check_read(st, name, len, b);
	else if (b->latest != 0 || b->epoch != 0 || b->mac_len != 0)
		rc = meta_check(st, name, len, b); /* a "new" secret that is not: never verifies */
	else if (b->rows_max != 0)
		rc = beyond(st, name, len, b->rows_max, 0);
	if (rc != COFFER_OK)
		return rc;
	if (b->purge_ms != 0) {
		core_set_err(st, "secret '%.*s' is scheduled for deletion: restore it first",
		             (int)len, name);
		return COFFER_EDELETED;
	}
	store_meta after = {.last_version = io->version,
	                    .latest = io->version,
	                    .epoch = b->epoch,
	                    .previous = b->latest,
	                    .ldigest_len = b->ldigest_len,
	                    .max_versions = b->max_versions};
	memcpy(after.ldigest, b->ldigest, sizeof after.ldigest);
	io->previous = b->latest;
	store_row row = {.version = io->version, .state = COFFER_STATE_ENABLED};
	meta_sign(st, name, len, &after);
	row_sign(st, name, len, b->epoch, &row);
	memcpy(io->secret_mac, after.mac, STORE_MAC_LEN);
	memcpy(io->row_mac, row.mac, STORE_MAC_LEN);
	io->mac_len = STORE_MAC_LEN;
	return COFFER_OK;
}

/* Every row of a secret against its MACs: versions 1..last_version, each once, and latest the
 * newest enabled one. What destroy checks before it re-MACs everything. */
static int check_all(coffer_store *st, const char *name, size_t len, const store_meta *m,
                     const store_row *rows, size_t n)
{
	int rc = meta_check(st, name, len, m);
	uint64_t newest = 0;
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		if (rows[i].version > m->last_version)
			return beyond(st, name, len, rows[i].version, m->last_version);
		if (rows[i].version != i + 1)
			return unlike(st, name, len, i + 1, "missing", "exists");
		rc = row_check(st, name, len, m->epoch, &rows[i]);
		if (rows[i].state == COFFER_STATE_ENABLED)
			newest = rows[i].version;
	}
	if (rc == COFFER_OK && n < m->last_version)
		return unlike(st, name, len, n + 1, "missing", "exists");
	if (rc == COFFER_OK && newest != m->latest)
		return unlike(st, name, len, newest, "the newest enabled one", "is not");
	if (rc == COFFER_OK && m->labels != NULL)
		rc = labels_check(st, name, len, m);
	return rc;
}

/* Re-MAC every row with the secret's (new) epoch, then the secret. */
static void sign_all(coffer_store *st, const char *name, size_t len, store_meta *m, store_row *rows,
                     size_t n)
{
	m->latest = 0;
	for (size_t i = 0; i < n; i++) {
		row_sign(st, name, len, m->epoch, &rows[i]);
		if (rows[i].state == COFFER_STATE_ENABLED && rows[i].version > m->latest)
			m->latest = rows[i].version;
	}
	if (m->labels_changed)
		labels_digest(st, name, len, m);
	meta_sign(st, name, len, m);
}

static int deleted(coffer_store *st, const char *name, size_t len)
{
	core_set_err(st, "secret '%.*s' is scheduled for deletion: restore it first", (int)len,
	             name);
	return COFFER_EDELETED;
}

int core_meta_setmax(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                     size_t n)
{
	core_setmax_ctx *sc = ctx;
	int rc = check_all(sc->st, name, len, m, rows, n);
	if (rc != COFFER_OK)
		return rc;
	if (m->purge_ms != 0)
		return deleted(sc->st, name, len);
	m->max_versions = sc->max;
	m->epoch++; /* a copy of the secret's row from before never verifies with the rows */
	sign_all(sc->st, name, len, m, rows, n);
	return COFFER_OK;
}

int core_meta_delete(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                     size_t n)
{
	core_delete_ctx *dc = ctx;
	int rc = check_all(dc->st, name, len, m, rows, n);
	if (rc != COFFER_OK)
		return rc;
	if (dc->purge_ms == 0 && m->purge_ms == 0) {
		dc->not_deleted = 1;
		return COFFER_EINVAL;
	}
	if (dc->purge_ms == 0 && m->purge_ms <= dc->now_ms) {
		dc->too_late = 1;
		return COFFER_ENOTFOUND;
	}
	m->purge_ms = dc->purge_ms;
	/* The rows are MAC'd again under a new epoch: a copy of the secret's row from before the
	 * delete (or the restore) never verifies with them. */
	m->epoch++;
	sign_all(dc->st, name, len, m, rows, n);
	return COFFER_OK;
}

int core_meta_destroy(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                      size_t n)
{
	core_destroy_ctx *dc = ctx;
	int rc = check_all(dc->st, name, len, m, rows, n);
	if (rc != COFFER_OK)
		return rc;
	if (m->purge_ms != 0)
		return deleted(dc->st, name, len);
	/* "latest" and labels are resolved here, in the change's own transaction. */
	uint64_t v = dc->want != 0 ? dc->want : m->latest;
	if (dc->label != NULL && (v = core_label_find(m, dc->label)) == 0) {
		dc->was = -2; /* no such label */
		return COFFER_ENOTFOUND;
	}
	if (v == 0 || v > n)
		return COFFER_ENOTFOUND;
	dc->was = rows[v - 1].state;
	if (rows[v - 1].state == COFFER_STATE_DESTROYED)
		return COFFER_ENOTFOUND; /* for good: nothing moves it again */
	rows[v - 1].state = dc->to;
	/* Any change of state re-MACs every row under a new epoch: a copy of a row from before
	 * (enabled again, say) never verifies. */
	m->epoch++;
	sign_all(dc->st, name, len, m, rows, n);
	dc->done = v;
	return COFFER_OK;
}

int core_meta_retain(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                     size_t n)
{
	coffer_store *st = ctx;
	int rc = check_all(st, name, len, m, rows, n);
	if (rc != COFFER_OK || m->max_versions == 0)
		return rc;
	size_t held = 0;
	for (size_t i = 0; i < n; i++)
		held += rows[i].state != COFFER_STATE_DESTROYED;
	if (held <= m->max_versions)
		return COFFER_OK;
	/* Oldest first; the newest (this put's) is never reached, as max_versions >= 1. A version
	 * with a label (previous, or a custom one) is kept: it may leave more than max_versions. */
	for (size_t i = 0; i < n && held > m->max_versions; i++) {
		if (rows[i].state == COFFER_STATE_DESTROYED || rows[i].version == m->latest ||
		    rows[i].version == m->previous || core_label_of(m, rows[i].version) != NULL)
			continue;
		rows[i].state = COFFER_STATE_DESTROYED;
		held--;
	}
	m->epoch++;
	sign_all(st, name, len, m, rows, n);
	return COFFER_OK;
}

uint64_t core_label_find(const store_meta *m, const char *label)
{
	if (strcasecmp(label, "previous") == 0)
		return m->previous;
	for (size_t i = 0; i < m->nlabels; i++)
		if (strcmp(m->labels[i].name, label) == 0)
			return m->labels[i].version;
	return 0;
}

const char *core_label_of(const store_meta *m, uint64_t version)
{
	for (size_t i = 0; m->labels != NULL && i < m->nlabels; i++)
		if (m->labels[i].version == version)
			return m->labels[i].name;
	return NULL;
}

int core_meta_labels_read(coffer_store *st, const char *name, size_t len, const store_meta *m)
{
	int rc = meta_check(st, name, len, m);
	return rc == COFFER_OK ? labels_check(st, name, len, m) : rc;
}

int core_meta_label(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                    size_t n)
{
	core_label_ctx *lc = ctx;
	int rc = check_all(lc->st, name, len, m, rows, n);
	if (rc != COFFER_OK)
		return rc;
	if (m->purge_ms != 0)
		return deleted(lc->st, name, len);
	size_t at = m->nlabels;
	for (size_t i = 0; i < m->nlabels; i++)
		if (strcmp(m->labels[i].name, lc->label) == 0)
			at = i;
	if (lc->remove) {
		if (at == m->nlabels)
			return COFFER_ENOTFOUND;
		memmove(&m->labels[at], &m->labels[at + 1],
		        (m->nlabels - at - 1) * sizeof *m->labels);
		m->nlabels--;
	} else {
		uint64_t v = lc->want != 0 ? lc->want : m->latest;
		if (lc->from != NULL)
			v = core_label_find(m, lc->from);
		if (v == 0 || v > n || rows[v - 1].state == COFFER_STATE_DESTROYED) {
			lc->missing = v == 0 ? 1 : 2;
			return COFFER_ENOTFOUND;
		}
		if (at == m->nlabels) {
			if (m->nlabels == STORE_LABELS_MAX) {
				lc->full = 1;
				return COFFER_EBUSY;
			}
			/* Sorted by name (byte order, as the stores return them). */
			at = 0;
			while (at < m->nlabels && strcmp(m->labels[at].name, lc->label) < 0)
				at++;
			memmove(&m->labels[at + 1], &m->labels[at],
			        (m->nlabels - at) * sizeof *m->labels);
			m->nlabels++;
			snprintf(m->labels[at].name, sizeof m->labels[at].name, "%s", lc->label);
		}
		m->labels[at].version = v;
		lc->done = v;
	}
	m->labels_changed = 1;
	/* A move is a change like a state's: a copy of the label rows from before never verifies
	 * once the epoch moved. */
	m->epoch++;
	sign_all(lc->st, name, len, m, rows, n);
	return COFFER_OK;
}

void core_request_hash(const coffer_store *st, const char *name, size_t len, const void *rid,
                       size_t rid_len, uint8_t out[STORE_RID_LEN])
{
	uint8_t msg[MSG_MAX];
	size_t n = msg_head(msg, "coffer-request", st, name, len);
	crypto_mac2(&st->meta, msg, n, rid, rid_len, out);
}

void core_value_hash(const coffer_store *st, const uint8_t rid_hash[STORE_RID_LEN],
                     const void *value, size_t vlen, uint8_t out[STORE_RID_LEN])
{
	uint8_t msg[32 + STORE_RID_LEN];
	size_t n = strlen("coffer-request-value") + 1;
	memcpy(msg, "coffer-request-value", n);
	memcpy(msg + n, rid_hash, STORE_RID_LEN);
	crypto_mac2(&st->meta, msg, n + STORE_RID_LEN, value, vlen, out);
}

/* meta_init: a store's metadata as it stands is taken as the truth once, when a handle with the
 * master key first opens it after the upgrade. */
typedef struct init_ctx {
	coffer_store *st;
	const crypto_key *master;
} init_ctx;

static int init_retag(void *ctx, const char *name, size_t len, store_meta *m, store_row *rows,
                      size_t n)
{
	init_ctx *ic = ctx;
	m->epoch = 0;
	sign_all(ic->st, name, len, m, rows, n);
	return COFFER_OK;
}

/* Data keys move to the sealed form that says "this store has a metadata key". One already in
 * that form while the store has no metadata key means the key was deleted outside coffer. */
static int init_rekey(void *ctx, uint32_t key_id, const uint8_t *sealed, size_t len, uint8_t *out,
                      size_t *out_len)
{
	init_ctx *ic = ctx;
	crypto_key dk = {0};
	int fmt = 0;
	int rc = crypto_open_key_fmt(ic->master, ic->st->store_id, key_id, sealed, len, &dk, &fmt);
	if (rc == COFFER_OK && fmt != CRYPTO_KEYRING_V1)
		rc = COFFER_EINTEGRITY;
	else if (rc == COFFER_OK)
		rc = crypto_seal_key(ic->master, ic->st->store_id, key_id, &dk, out);
	crypto_key_free(&dk);
	*out_len = CRYPTO_SEALED_KEY_LEN;
	if (rc == COFFER_EINTEGRITY)
		core_set_err(ic->st, "%s", CORE_META_KEY_GONE);
	return rc;
}

/* Give the store its metadata key and MACs (one transaction), or take the one another process
 * gave it first. */
static int meta_init(coffer_store *st, const crypto_key *master, char *err, size_t errlen)
{
	crypto_key mk = {0};
	uint8_t sealed[CRYPTO_SEALED_KEY_LEN], found[STORE_SEALED_KEY_MAX];
	size_t found_len = 0;
	int rc = crypto_key_random(&mk);
	if (rc == COFFER_OK)
		rc = crypto_seal_meta_key(master, st->store_id, &mk, sealed);
	st->meta = mk; /* init_retag signs with it */
	init_ctx ic = {st, master};
	st->errmsg[0] = '\0';
	if (rc == COFFER_OK)
		rc = st->ops->meta_init(st->be, sealed, sizeof sealed, init_rekey, init_retag, &ic,
		                        found, &found_len);
	if (rc != COFFER_OK)
		snprintf(err, errlen, "adding metadata MACs to this store: %s",
		         st->errmsg[0] ? st->errmsg : st->ops->errmsg(st->be));
	if (rc == COFFER_OK && found_len > 0) { /* another process was first: its key */
		crypto_key_free(&st->meta);
		rc = crypto_open_meta_key(master, st->store_id, found, found_len, &st->meta);
		if (rc == COFFER_EINTEGRITY)
			snprintf(err, errlen, "%s", CORE_META_KEY_BAD);
	}
	if (rc != COFFER_OK)
		crypto_key_free(&st->meta);
	return rc;
}

int core_meta_ready(coffer_store *st, const crypto_key *master, char *err, size_t errlen)
{
	if (st->meta.k != NULL)
		return COFFER_OK;
	if (st->keyring_flags & CORE_KR_META) {
		snprintf(err, errlen, "%s", CORE_META_KEY_BAD);
		return COFFER_EINTEGRITY;
	}
	if (st->keyring_flags & CORE_KR_V2) {
		snprintf(err, errlen, "%s", CORE_META_KEY_GONE);
		return COFFER_EINTEGRITY;
	}
	if (st->ops->meta_init == NULL) {
		snprintf(err, errlen, "the %s backend cannot add metadata MACs", st->ops->scheme);
		return COFFER_EMISUSE;
	}
	return meta_init(st, master, err, errlen);
}

static int same_meta(const store_meta *a, const store_meta *b)
{
	return a->last_version == b->last_version && a->latest == b->latest &&
	       a->epoch == b->epoch && a->mac_len == b->mac_len && a->previous == b->previous &&
	       a->ldigest_len == b->ldigest_len && a->purge_ms == b->purge_ms &&
	       a->max_versions == b->max_versions &&
	       memcmp(a->ldigest, b->ldigest, sizeof a->ldigest) == 0 &&
	       memcmp(a->mac, b->mac, sizeof a->mac) == 0;
}

int core_meta_list(coffer_store *st, const char *name, size_t len, const store_meta *m,
                   store_meta *checked, const store_row *row, uint64_t expect)
{
	int rc = COFFER_OK;
	if (checked->mac_len == 0 || !same_meta(m, checked)) {
		rc = meta_check(st, name, len, m);
		if (rc == COFFER_OK)
			*checked = *m;
	}
	if (rc == COFFER_OK && row->version > m->last_version)
		rc = beyond(st, name, len, row->version, m->last_version);
	if (rc == COFFER_OK && row->version != expect)
		rc = unlike(st, name, len, expect, "missing", "exists");
	if (rc == COFFER_OK)
		rc = row_check(st, name, len, m->epoch, row);
	return rc;
}

int core_meta_list_end(coffer_store *st, const char *name, size_t len, const store_meta *checked,
                       uint64_t next)
{
	if (checked->mac_len != 0 && checked->last_version >= next)
		return unlike(st, name, len, next, "missing", "exists");
	return COFFER_OK;
}

/* coffer_copy (copy.c): check a whole secret as read, and MAC it under this store. */
int core_meta_check_all(coffer_store *st, const char *name, size_t len, const store_meta *m,
                        const store_row *rows, size_t n)
{
	return check_all(st, name, len, m, rows, n);
}

void core_meta_sign_all(coffer_store *st, const char *name, size_t len, store_meta *m,
                        store_row *rows, size_t n)
{
	m->labels_changed = 1;
	sign_all(st, name, len, m, rows, n);
}
