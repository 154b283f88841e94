/*
 * put.c -- PostgreSQL backend: put: one transaction per batch (locks in name order, version ids,
 * sealing, request ids, retention).
 */
#include <stdlib.h>
#include <string.h>

#include "store/postgres/pg.h"

typedef struct put_slot {
	const char *name;
	size_t len;
	size_t idx;         /* position in the caller's array */
	uint64_t secret_id; /* filled by reserve() */
	uint64_t version;
	struct put_slot *head; /* the first slot of this secret: it holds meta */
	store_meta meta; /* head only: the secret as it stands after the items sealed so far */
} put_slot;

/* Byte order of names, then array order: the lock order of a batch. */
static int slot_cmp(const void *a, const void *b)
{
	const put_slot *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);
	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int same_name(const put_slot *a, const put_slot *b)
{
	return a->len == b->len && memcmp(a->name, b->name, a->len) == 0;
}

/* Lock each distinct secret and reserve its versions, in sorted order (no deadlocks). */
static int reserve(pg_store *s, put_slot *slots, size_t n)
{
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && same_name(&slots[i], &slots[j]); j++)
			;
		uint8_t count[8];
		uint64_t id;
		store_meta *m = &slots[i].meta;
		pg_put_be64(count, j - i);
		const char *v[2] = {slots[i].name, (const char *)count};
		const int l[2] = {(int)slots[i].len, 8};
		PGresult *r = pg_run(s, ST_UPSERT, v, l);
		int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reserving version ids");
		if (rc == COFFER_OK &&
		    (PQntuples(r) != 1 || !pg_col_uint(r, 0, 0, 8, &id) ||
		     !pg_col_meta(r, 0, 1, m) || m->last_version < j - i ||
		     (!PQgetisnull(r, 0, 5) && !pg_col_uint(r, 0, 5, 8, &m->rows_max)) ||
		     !pg_col_uint(r, 0, 6, 8, &m->max_versions) || !pg_col_ext(r, 0, 7, m))) {
			pg_set_err(s, "unexpected reply while reserving version ids");
			rc = COFFER_EIO;
		}
		PQclear(r);
		if (rc != COFFER_OK)
			return rc;
		m->last_version -= j - i; /* what the secret was before this batch */
		for (size_t k = i; k < j; k++) {
			slots[k].secret_id = id;
			slots[k].version = m->last_version + (k - i) + 1;
			slots[k].head = &slots[i];
		}
	}
	return COFFER_OK;
}

/* The version row, and the secret's new latest and MAC (NULL MACs become '': none). */
static int insert_version(pg_store *s, const put_slot *slot, const store_seal_io *io)
{
	static const uint8_t none[1];
	uint8_t sid[8], ver[8], kid[8], prev[8];
	pg_put_be64(sid, slot->secret_id);
	pg_put_be64(ver, slot->version);
	pg_put_be64(kid, io->key_id);
	pg_put_be64(prev, io->previous);
	const char *v[7] = {(const char *)sid,
	                    (const char *)ver,
	                    (const char *)kid,
	                    (const char *)io->sealed,
	                    (const char *)(io->mac_len ? io->row_mac : none),
	                    (const char *)(io->mac_len ? io->secret_mac : none),
	                    (const char *)prev};
	const int l[7] = {8, 8, 8, (int)io->sealed_len, (int)io->mac_len, (int)io->mac_len, 8};
	PGresult *r = pg_run(s, ST_INSERT_VERSION, v, l);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "inserting a version");
	PQclear(r);
	return rc;
}

/*
 * Every transaction that seals values (put, a re-encrypt batch) begins by taking ROW SHARE on
 * coffer_keys and then reading the newest data key, in one round trip. ROW SHARE conflicts only
 * with the EXCLUSIVE lock of keys_prune: a prune waits for the sealing transactions in flight
 * (so it sees the versions they insert) and the ones that start later read the newest key after
 * it committed; the newest key itself is never pruned. Rotation and rekey take SHARE ROW
 * EXCLUSIVE, which does not conflict with ROW SHARE: puts never wait for them.
 */
#define PG_BEGIN_SEALING                                                                           \
	PG_BEGIN "; LOCK TABLE coffer_keys IN ROW SHARE MODE; "                                    \
	         "SELECT key_id, sealed FROM coffer_keys ORDER BY key_id DESC LIMIT 1"

/* The reply of PG_BEGIN_SEALING (text format: a simple query). */
static int parse_newest(pg_store *s, const PGresult *r, pg_newest *nk)
{
	uint64_t id = 0;
	size_t len = 0;
	nk->key = (store_key){0, nk->buf, 0};
	if (PQntuples(r) == 0)
		return COFFER_OK; /* no header yet: the core refuses to seal */
	if (PQntuples(r) != 1 || !pg_parse_u64(PQgetvalue(r, 0, 0), &id) || id == 0 ||
	    id > UINT32_MAX) {
		pg_set_err(s, "the keyring in this database is damaged");
		return COFFER_ECORRUPT;
	}
	unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &len);
	if (b == NULL)
		return COFFER_ENOMEM;
	int rc = len > 0 && len <= STORE_SEALED_KEY_MAX ? COFFER_OK : COFFER_ECORRUPT;
	if (rc == COFFER_OK)
		memcpy(nk->buf, b, len);
	else
		pg_set_err(s, "the keyring in this database is damaged");
	PQfreemem(b);
	nk->key = (store_key){(uint32_t)id, nk->buf, len};
	return rc;
}

int pg_begin_sealing(pg_store *s, pg_newest *nk)
{
	pg_untouch(s);
	PGresult *r = PQexec(s->conn, PG_BEGIN_SEALING);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "BEGIN");
	if (rc == COFFER_OK)
		rc = parse_newest(s, r, nk);
	PQclear(r);
	if (rc == COFFER_OK)
		s->sealing = 1;
	else
		pg_rollback(s);
	return rc;
}

/* Inside the open transaction, the secret locked: what the store holds for this request id. */
static int request_get(pg_store *s, const put_slot *slot, const uint8_t *rid, store_seal_io *io)
{
	uint8_t sid[8];
	pg_put_be64(sid, slot->secret_id);
	const char *v[2] = {(const char *)sid, (const char *)rid};
	const int l[2] = {8, STORE_RID_LEN};
	PGresult *r = pg_run(s, ST_REQ_GET, v, l);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading a request id");
	if (rc == COFFER_OK && PQntuples(r) == 1) {
		if (!pg_col_uint(r, 0, 0, 8, &io->rid_version) ||
		    PQgetlength(r, 0, 1) != STORE_RID_LEN) {
			pg_set_err(s, "a request id row in this database is damaged");
			rc = COFFER_ECORRUPT;
		} else {
			memcpy(io->rid_vhash, PQgetvalue(r, 0, 1), STORE_RID_LEN);
		}
	}
	PQclear(r);
	return rc;
}

static int request_put(pg_store *s, const put_slot *slot, const uint8_t *rid,
                       const store_seal_io *io)
{
	uint8_t sid[8], ver[8];
	pg_put_be64(sid, slot->secret_id);
	pg_put_be64(ver, slot->version);
	const char *v[4] = {(const char *)sid, (const char *)rid, (const char *)io->vhash,
	                    (const char *)ver};
	const int l[4] = {8, STORE_RID_LEN, STORE_RID_LEN, 8};
	PGresult *r = pg_run(s, ST_REQ_PUT, v, l);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "storing a request id");
	PQclear(r);
	return rc;
}

/* Retention after item i: the secret with all its rows through the core, as a destroy. The
 * secret's next item in the batch sees what it left. */
static int retain(pg_store *s, const put_slot *slot, const store_seal_io *io, store_meta *m)
{
	uint64_t sid = 0;
	store_meta now;
	int rc = pg_read_secret_locked(s, slot->name, slot->len, &sid, &now);
	/* The row's last_version is already the batch's last reserved id (reserve() took them all
	 * at once); the MAC just written covers this item's version as the last one. Verify and
	 * re-sign what the MAC covers: write_meta leaves last_version alone, so the row keeps the
	 * reservation, which the secret's last item in the batch makes true. */
	if (rc == COFFER_OK)
		now.last_version = m->last_version;
	if (rc == COFFER_OK)
		rc = pg_retag(s, sid, slot->name, slot->len, &now, io->retain, io->retain_ctx);
	if (rc == COFFER_OK) {
		now.rows_max = m->rows_max;
		*m = now;
	}
	return rc;
}

/* Seal and insert every item in array order; `byidx` maps an array index to its slot. *replay
 * is set when a request id was done before (a batch of one: nothing is written). */
static int seal_all(pg_store *s, put_slot *const *byidx, store_put *items, size_t n,
                    const store_key *newest, store_seal_fn seal, void *ctx, int *replay)
{
	for (size_t i = 0; i < n; i++) {
		store_meta *m = &byidx[i]->head->meta;
		store_seal_io io;
		memset(&io, 0, sizeof io);
		io.version = byidx[i]->version;
		io.newest = newest;
		io.before = *m;
		int rc =
		    items[i].rid != NULL ? request_get(s, byidx[i], items[i].rid, &io) : COFFER_OK;
		if (rc == COFFER_OK)
			rc = seal(ctx, i, &io);
		if (rc == COFFER_OK && io.replay) {
			byidx[i]->version = io.rid_version;
			*replay = 1;
			return COFFER_OK;
		}
		if (rc == COFFER_OK &&
		    (io.sealed == NULL || io.sealed_len == 0 || io.sealed_len > INT32_MAX)) {
			pg_set_err(s, "the sealed value is empty or too large");
			rc = COFFER_EMISUSE;
		}
		if (rc == COFFER_OK)
			rc = insert_version(s, byidx[i], &io);
		if (rc == COFFER_OK && items[i].rid != NULL)
			rc = request_put(s, byidx[i], items[i].rid, &io);
		items[i].version = byidx[i]->version; /* known now: the audit entry names it */
		free(io.sealed);
		if (rc != COFFER_OK)
			return rc;
		/* The next item of this secret sees what this one left. */
		m->previous = io.previous;
		m->last_version = m->latest = io.version;
		memcpy(m->mac, io.secret_mac, STORE_MAC_LEN);
		m->mac_len = io.mac_len;
		if (io.retain != NULL && (rc = retain(s, byidx[i], &io, m)) != COFFER_OK)
			return rc;
	}
	return COFFER_OK;
}

typedef struct put_args {
	put_slot *slots;
	put_slot *const *byidx;
	store_put *items;
	size_t n;
	store_seal_fn seal;
	void *ctx;
	int *replay;
} put_args;

/*
 * One attempt. *sealing is set once seal() has been called: from then on the attempt may not be
 * repeated (store.h: seal is called once per item).
 */
static int put_once(pg_store *s, void *arg, int *sealing)
{
	const put_args *a = arg;
	put_slot *slots = a->slots;
	put_slot *const *byidx = a->byidx;
	store_put *items = a->items;
	size_t n = a->n;
	int *replay = a->replay;
	pg_newest nk;
	int rc = pg_begin_sealing(s, &nk);
	if (rc != COFFER_OK)
		return rc;
	rc = reserve(s, slots, n);
	/* Only these secrets' buckets are bumped at the end (pg_finish_write). */
	for (size_t i = 0; rc == COFFER_OK && i < n; i++)
		pg_touch(s, slots[i].name, slots[i].len);
	if (rc == COFFER_OK) {
		*sealing = 1;
		rc = seal_all(s, byidx, items, n, &nk.key, a->seal, a->ctx, replay);
	}
	if (rc == COFFER_OK && *replay) { /* nothing to write: the reservation goes back */
		s->sealing = 0;
		pg_rollback(s);
		return COFFER_OK;
	}
	return pg_finish_write(s, rc);
}

int pg_put(store *st, store_put *items, size_t n, store_seal_fn seal, void *ctx)
{
	pg_store *s = (pg_store *)st;
	put_slot *slots;
	put_slot **byidx;
	int replay = 0, rc;

	if (n == 0)
		return COFFER_OK;
	slots = calloc(n, sizeof *slots);
	byidx = calloc(n, sizeof *byidx);
	if (slots == NULL || byidx == NULL) {
		free(slots);
		free(byidx);
		return COFFER_ENOMEM;
	}
	uint64_t *given = malloc(n * sizeof *given);
	if (given == NULL) {
		free(slots);
		free(byidx);
		return COFFER_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		slots[i] = (put_slot){.name = items[i].name, .len = items[i].name_len, .idx = i};
		given[i] = items[i].version;
	}
	qsort(slots, n, sizeof *slots, slot_cmp);
	for (size_t i = 0; i < n; i++)
		byidx[slots[i].idx] = &slots[i];

	/* Safe to repeat only if nothing was sealed: the first attempt surely rolled back. */
	put_args a = {slots, byidx, items, n, seal, ctx, &replay};
	rc = pg_retry(s, put_once, &a, PG_RETRY_BUSY);
	for (size_t i = 0; i < n; i++) {
		/* seal_all wrote each version for the audit entries; on failure the out-parameters
		 * go back to what they were. */
		items[i].version = rc == COFFER_OK ? byidx[i]->version : given[i];
		if (rc == COFFER_OK)
			items[i].replayed = replay;
	}
	free(given);
	free(slots);
	free(byidx);
	return rc;
}
