/*
 * The audit log (docs/lifecycle.md, "Audit log"): entries chained by MACs under the metadata key
 * (sealed by the master key; it survives a rekey, so the log does too) with the domain
 * "coffer-audit". Each entry's MAC covers its chain, its sequence number, its content and the
 * MAC of the entry before it in its chain: deleting, editing or reordering entries is found by
 * coffer_audit_verify(). Never a value; request ids only as their keyed hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/internal.h"

#define AUDIT_MSG_MAX 2048

static size_t put_str(uint8_t *p, size_t at, const char *s)
{
	size_t n = strlen(s);
	p[at] = (uint8_t)(n >> 8);
	p[at + 1] = (uint8_t)n;
	memcpy(p + at + 2, s, n);
	return at + 2 + n;
}

static size_t put_be(uint8_t *p, size_t at, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[at + (size_t)i] = (uint8_t)v;
	return at + 8;
}

static void audit_mac(const coffer_store *st, const store_audit *e, uint8_t out[STORE_MAC_LEN])
{
	uint8_t msg[AUDIT_MSG_MAX];
	size_t n = sizeof "coffer-audit";
	memcpy(msg, "coffer-audit", n);
	memcpy(msg + n, st->store_id, STORE_ID_LEN);
	n += STORE_ID_LEN;
	n = put_str(msg, n, e->chain);
	n = put_be(msg, n, e->seq);
	n = put_be(msg, n, (uint64_t)e->ts_ms);
	n = put_str(msg, n, e->principal);
	n = put_str(msg, n, e->action);
	n = put_str(msg, n, e->secret);
	n = put_str(msg, n, e->version);
	n = put_be(msg, n, (uint64_t)(int64_t)e->outcome);
	n = put_str(msg, n, e->error);
	n = put_str(msg, n, e->rid);
	msg[n++] = (uint8_t)e->prev_len;
	memcpy(msg + n, e->prev, e->prev_len <= STORE_MAC_LEN ? e->prev_len : 0);
	n += e->prev_len <= STORE_MAC_LEN ? e->prev_len : 0;
	out[0] = CORE_MAC_FORMAT;
	crypto_mac(&st->meta, msg, n, out + 1);
}

/* Copy s into a field of cap bytes, cut to fit (snprintf's "%s" without its formatting: the
 * fields of every entry are copied, and an audited server writes one per request). */
static void put_field(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (n > cap - 1)
		n = cap - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static int fill(void *ctx, size_t i, store_audit *e)
{
	const audit_fill *f = ctx;
	e->ts_ms = core_now_ms();
	put_field(e->principal, sizeof e->principal, f->principal);
	put_field(e->action, sizeof e->action, f->action);
	if (f->secret != NULL)
		put_field(e->secret, sizeof e->secret, f->secret);
	else
		snprintf(e->secret, sizeof e->secret, "%.*s", (int)f->puts[i].name_len,
		         f->puts[i].name);
	char ver[COFFER_VERSION_MAX] = "";
	if (f->version != NULL)
		put_field(e->version, sizeof e->version, f->version);
	else if (f->done != NULL && *f->done != 0)
		core_version_format(*f->done, ver);
	else if (f->puts != NULL)
		core_version_format(f->puts[i].version, ver);
	if (f->version == NULL)
		put_field(e->version, sizeof e->version, ver);
	e->outcome = f->outcome;
	put_field(e->error, sizeof e->error, f->error != NULL ? f->error : "");
	e->rid[0] = '\0';
	if (f->rid != NULL)
		sodium_bin2hex(e->rid, sizeof e->rid, f->rid, STORE_RID_LEN);
	audit_mac(f->st, e, e->mac);
	e->mac_len = STORE_MAC_LEN;
	return COFFER_OK;
}

/* Pending entries live in the handle until the write they ride on is done. */
void core_audit_pending(coffer_store *st, const char *action, const char *secret,
                        const char *version, const uint64_t *done, const store_put *puts, size_t n,
                        const uint8_t *rid)
{
	if (st->ops->audit_pending == NULL)
		return;
	audit_fill *f = &st->audit_fill;
	*f = (audit_fill){st,   st->principal, action,    secret, version,
	                  done, puts,          COFFER_OK, NULL,   rid};
	st->ops->audit_pending(st->be, st->audit_chain, n, fill, f);
}

void core_audit_clear(coffer_store *st)
{
	if (st->ops->audit_pending != NULL)
		st->ops->audit_pending(st->be, st->audit_chain, 0, NULL, NULL);
}

int core_audit_one(coffer_store *st, const char *principal, const char *action, const char *secret,
                   const char *version, int outcome, const uint8_t *rid)
{
	if (st->ops->audit_append == NULL)
		return COFFER_OK;
	char err[48];
	if (outcome > 0) /* an embedder's own status (the server's: a gRPC status) */
		snprintf(err, sizeof err, "status %d", outcome);
	else
		snprintf(err, sizeof err, "%s",
		         outcome != COFFER_OK ? coffer_strerror(outcome) : "");
	audit_fill f = {st,
	                principal != NULL ? principal : st->principal,
	                action,
	                secret != NULL ? secret : "",
	                version != NULL ? version : "",
	                NULL,
	                NULL,
	                outcome,
	                err,
	                rid};
	return st->ops->audit_append(st->be, st->audit_chain, 1, fill, &f);
}

void core_audit_init(coffer_store *st, const char *principal, unsigned flags)
{
	uint8_t id[8];
	snprintf(st->principal, sizeof st->principal, "%s",
	         principal != NULL && principal[0] != '\0' ? principal : "lib");
	crypto_random(id, sizeof id);
	sodium_bin2hex(st->audit_chain, sizeof st->audit_chain, id, sizeof id);
	st->audit_reads = (flags & COFFER_OPEN_AUDIT_READS) != 0;
}

/* A printable field of an API caller: bounded, no control characters. */
static int field_ok(const char *s, size_t max)
{
	size_t n = s == NULL ? 0 : strnlen(s, max + 1);
	if (n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

int coffer_audit_append(coffer_store *st, const char *principal, const char *action,
                        const char *secret, const char *version, int outcome,
                        const void *request_id, size_t request_id_len)
{
	if (st == NULL || action == NULL || action[0] == '\0')
		return COFFER_EMISUSE;
	if (!field_ok(principal, 128) || !field_ok(action, 32) || !field_ok(secret, 255) ||
	    !field_ok(version, 64) || request_id_len > COFFER_REQUEST_ID_MAX)
		return COFFER_EINVAL;
	uint8_t rid[STORE_RID_LEN];
	pthread_mutex_lock(&st->mu);
	if (request_id != NULL && request_id_len > 0)
		core_request_hash(st, secret != NULL ? secret : "",
		                  secret != NULL ? strlen(secret) : 0, request_id, request_id_len,
		                  rid);
	int rc = core_audit_one(st, principal, action, secret, version, outcome,
	                        request_id != NULL && request_id_len > 0 ? rid : NULL);
	if (rc != COFFER_OK)
		core_set_backend_err(st, rc);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* A batch of embedder entries: fill entry i from recs[i] (checked by the caller). */
typedef struct batch_fill {
	coffer_store *st;
	const coffer_audit_record *recs;
	const uint8_t (*rids)[STORE_RID_LEN]; /* NULL entries: no request id */
} batch_fill;

static int fill_batch(void *ctx, size_t i, store_audit *e)
{
	const batch_fill *b = ctx;
	const coffer_audit_record *r = &b->recs[i];
	char err[48] = "";
	if (r->outcome > 0)
		snprintf(err, sizeof err, "status %d", r->outcome);
	else if (r->outcome != COFFER_OK)
		put_field(err, sizeof err, coffer_strerror(r->outcome));
	int has_rid = r->request_id != NULL && r->request_id_len > 0;
	audit_fill f = {b->st,
	                r->principal != NULL ? r->principal : b->st->principal,
	                r->action,
	                r->secret != NULL ? r->secret : "",
	                r->version != NULL ? r->version : "",
	                NULL,
	                NULL,
	                r->outcome,
	                err,
	                has_rid ? b->rids[i] : NULL};
	return fill(&f, 0, e);
}

int coffer_audit_append_batch(coffer_store *st, const coffer_audit_record *recs, size_t n)
{
	if (st == NULL || (recs == NULL && n > 0))
		return COFFER_EMISUSE;
	for (size_t i = 0; i < n; i++) {
		const coffer_audit_record *r = &recs[i];
		if (r->action == NULL || r->action[0] == '\0')
			return COFFER_EMISUSE;
		if (!field_ok(r->principal, 128) || !field_ok(r->action, 32) ||
		    !field_ok(r->secret, 255) || !field_ok(r->version, 64) ||
		    r->request_id_len > COFFER_REQUEST_ID_MAX)
			return COFFER_EINVAL;
	}
	if (n == 0 || st->ops->audit_append == NULL)
		return COFFER_OK;
	uint8_t(*rids)[STORE_RID_LEN] = calloc(n, sizeof *rids);
	if (rids == NULL)
		return COFFER_ENOMEM;
	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < n; i++)
		if (recs[i].request_id != NULL && recs[i].request_id_len > 0)
			core_request_hash(st, recs[i].secret != NULL ? recs[i].secret : "",
			                  recs[i].secret != NULL ? strlen(recs[i].secret) : 0,
			                  recs[i].request_id, recs[i].request_id_len, rids[i]);
	batch_fill b = {st, recs, (const uint8_t(*)[STORE_RID_LEN])rids};
	int rc = st->ops->audit_append(st->be, st->audit_chain, n, fill_batch, &b);
	if (rc != COFFER_OK)
		core_set_backend_err(st, rc);
	pthread_mutex_unlock(&st->mu);
	sodium_memzero(rids, n * sizeof *rids);
	free(rids);
	return rc;
}

typedef struct list_ctx {
	int64_t since;
	const char *secret;
	int (*cb)(void *ctx, const coffer_audit_entry *e);
	void *ctx;
} list_ctx;

static int list_row(void *ctx, const store_audit *e)
{
	list_ctx *lc = ctx;
	if (e->ts_ms < lc->since || (lc->secret != NULL && strcmp(e->secret, lc->secret) != 0))
		return 0;
	coffer_audit_entry out = {e->id,        e->chain,  e->seq,    e->ts_ms,
	                          e->principal, e->action, e->secret, e->version,
	                          e->outcome,   e->error,  e->rid};
	return lc->cb(lc->ctx, &out);
}

int coffer_audit_list(coffer_store *st, int64_t since_unix_ms, const char *secret,
                      int (*cb)(void *ctx, const coffer_audit_entry *e), void *ctx)
{
	if (st == NULL || cb == NULL)
		return COFFER_EMISUSE;
	if (st->ops->audit_list == NULL)
		return COFFER_EMISUSE;
	list_ctx lc = {since_unix_ms, secret, cb, ctx};
	pthread_mutex_lock(&st->mu);
	int rc = st->ops->audit_list(st->be, 0, list_row, &lc);
	if (rc < 0)
		core_set_backend_err(st, rc);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* Verification: per chain, the last entry seen (its seq and MAC). Chains are few. */
#define VERIFY_CHAINS 4096
typedef struct chain_state {
	char chain[STORE_AUDIT_CHAIN_MAX + 1];
	uint64_t seq;
	uint8_t mac[STORE_MAC_LEN];
	size_t mac_len;
} chain_state;

typedef struct verify_ctx {
	coffer_store *st;
	chain_state *chains;
	size_t n;
	uint64_t entries;
	uint64_t bad_id;
	char why[256];
} verify_ctx;

static int verify_row(void *ctx, const store_audit *e)
{
	verify_ctx *vc = ctx;
	chain_state *c = NULL;
	for (size_t i = 0; i < vc->n && c == NULL; i++)
		if (strcmp(vc->chains[i].chain, e->chain) == 0)
			c = &vc->chains[i];
	if (c == NULL) {
		if (vc->n == VERIFY_CHAINS) {
			snprintf(vc->why, sizeof vc->why, "more than %d chains", VERIFY_CHAINS);
			vc->bad_id = e->id;
			return 1;
		}
		c = &vc->chains[vc->n++];
		memset(c, 0, sizeof *c);
		snprintf(c->chain, sizeof c->chain, "%s", e->chain);
	}
	vc->entries++;
	if (e->seq != c->seq + 1) {
		snprintf(vc->why, sizeof vc->why,
		         "entry %llu is number %llu of its chain, but %llu was expected (an entry "
		         "deleted or moved)",
		         (unsigned long long)e->id, (unsigned long long)e->seq,
		         (unsigned long long)(c->seq + 1));
		vc->bad_id = e->id;
		return 1;
	}
	store_audit x = *e;
	memcpy(x.prev, c->mac, sizeof x.prev);
	x.prev_len = c->mac_len;
	uint8_t want[STORE_MAC_LEN];
	audit_mac(vc->st, &x, want);
	if (e->mac_len != STORE_MAC_LEN || sodium_memcmp(want, e->mac, STORE_MAC_LEN) != 0) {
		snprintf(vc->why, sizeof vc->why,
		         "entry %llu does not match its MAC (edited, or the entry before it in its "
		         "chain changed)",
		         (unsigned long long)e->id);
		vc->bad_id = e->id;
		return 1;
	}
	c->seq = e->seq;
	memcpy(c->mac, e->mac, sizeof c->mac);
	c->mac_len = e->mac_len;
	return 0;
}

int coffer_audit_verify(coffer_store *st, uint64_t *entries, uint64_t *first_bad, char *errbuf,
                        size_t errlen)
{
	if (st == NULL || st->ops->audit_list == NULL)
		return COFFER_EMISUSE;
	verify_ctx vc = {st, calloc(VERIFY_CHAINS, sizeof(chain_state)), 0, 0, 0, ""};
	if (vc.chains == NULL)
		return COFFER_ENOMEM;
	pthread_mutex_lock(&st->mu);
	int rc = st->ops->audit_list(st->be, 0, verify_row, &vc);
	if (rc < 0)
		core_set_backend_err(st, rc);
	pthread_mutex_unlock(&st->mu);
	if (rc == 1) {
		rc = COFFER_EINTEGRITY;
		if (first_bad != NULL)
			*first_bad = vc.bad_id;
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "audit log: %s", vc.why);
	} else if (rc == COFFER_OK && entries != NULL) {
		*entries = vc.entries;
	}
	free(vc.chains);
	return rc;
}

/* coffer_copy: an entry of another store's log, as it was, MAC'd into this store's chain. */
int core_audit_copy_fill(void *ctx, size_t i, store_audit *e)
{
	const core_audit_copy *c = ctx;
	const store_audit *src = &c->src[i];
	e->ts_ms = src->ts_ms;
	memcpy(e->principal, src->principal, sizeof e->principal);
	memcpy(e->action, src->action, sizeof e->action);
	memcpy(e->secret, src->secret, sizeof e->secret);
	memcpy(e->version, src->version, sizeof e->version);
	e->outcome = src->outcome;
	memcpy(e->error, src->error, sizeof e->error);
	memcpy(e->rid, src->rid, sizeof e->rid);
	audit_mac(c->st, e, e->mac);
	e->mac_len = STORE_MAC_LEN;
	return COFFER_OK;
}
