/*
 * gen.c -- PostgreSQL backend: generations (the store's and each bucket's of secret names):
 * shared between the handles of a process, bumped by every write transaction before COMMIT,
 * announced by NOTIFY after it, read by generation() and generation_of().
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/pg.h"

/*
 * Generations. The store has one (coffer_meta.wgen), bumped by writes that may touch any secret,
 * and one per bucket of secret names (coffer_gen), bumped by writes of secrets of that bucket.
 * The token of a name is the sum of the store's and its bucket's generation (both only rise, so
 * the sum changes whenever either does), with the session epoch in the high bits.
 *
 * Handles of one process on the same store share the newest generations any of them has seen,
 * so a put through one handle is seen at once through the others (read-your-writes inside a
 * process, as with SQLite); other processes learn them by NOTIFY. A shared value only ever
 * rises, and a higher token can only cause cache misses, never a stale hit.
 */
#define PG_SHARED_MAX 64 /* distinct stores per process that share; beyond, a handle is alone */

typedef struct pg_shared {
	char instance[33];
	uint64_t gen;
	uint64_t bgen[PG_GEN_BUCKETS];
} pg_shared;

static pg_shared *shared_gens[PG_SHARED_MAX];
static size_t nshared;
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;

static pg_shared *shared_slot(const char *instance, size_t len)
{
	pg_shared *slot = NULL;
	if (len == 0 || len >= sizeof shared_gens[0]->instance)
		return NULL;
	pthread_mutex_lock(&shared_mu);
	for (size_t i = 0; i < nshared && slot == NULL; i++)
		if (strlen(shared_gens[i]->instance) == len &&
		    memcmp(shared_gens[i]->instance, instance, len) == 0)
			slot = shared_gens[i];
	/* Kept for the life of the process, as the handles that share it may come and go. */
	if (slot == NULL && nshared < PG_SHARED_MAX && (slot = calloc(1, sizeof *slot)) != NULL) {
		memcpy(slot->instance, instance, len);
		shared_gens[nshared++] = slot;
	}
	pthread_mutex_unlock(&shared_mu);
	return slot;
}

static void shared_raise(uint64_t *slot, uint64_t gen)
{
	uint64_t cur = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	while (cur < gen &&
	       !__atomic_compare_exchange_n(slot, &cur, gen, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
}

/* The bucket of a name: FNV-1a, so every coffer of schema 5 agrees (the buckets are shared). */
uint32_t pg_bucket(const char *name, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 16777619u;
	}
	return h % PG_GEN_BUCKETS;
}

/* The token for the core: the session epoch in the high bits, so a reconnect changes it. */
uint64_t pg_token(const pg_store *s, uint64_t gen)
{
	return (uint64_t)s->epoch << PG_GEN_BITS | (gen & ((UINT64_C(1) << PG_GEN_BITS) - 1));
}

void pg_learn_gen(pg_store *s, uint64_t gen, int from_table)
{
	if (gen > s->gen)
		s->gen = gen;
	if (s->shared != NULL)
		shared_raise(&s->shared->gen, gen);
	if (from_table)
		s->checked_ms = pg_now_ms();
}

void pg_learn_bucket(pg_store *s, uint32_t b, uint64_t gen)
{
	if (b >= PG_GEN_BUCKETS)
		return;
	if (gen > s->bgen[b])
		s->bgen[b] = gen;
	if (s->shared != NULL)
		shared_raise(&s->shared->bgen[b], gen);
}

static uint64_t newest(uint64_t own, const uint64_t *shared)
{
	uint64_t g = shared != NULL ? __atomic_load_n(shared, __ATOMIC_ACQUIRE) : 0;
	return g > own ? g : own;
}

/* The newest store generation this handle knows of, its own or another handle's. */
static uint64_t newest_gen(const pg_store *s)
{
	return newest(s->gen, s->shared != NULL ? &s->shared->gen : NULL);
}

static uint64_t newest_bucket(const pg_store *s, uint32_t b)
{
	return newest(s->bgen[b], s->shared != NULL ? &s->shared->bgen[b] : NULL);
}

/* The token of bucket b as of the generations g (the store's) and bg (the bucket's). */
uint64_t pg_bucket_token(const pg_store *s, uint64_t g, uint64_t bg)
{
	return pg_token(s, g + bg);
}

/* Mark the bucket of a secret the open write transaction writes. */
void pg_touch(pg_store *s, const char *name, size_t len)
{
	uint32_t b = pg_bucket(name, len);
	uint64_t bit = UINT64_C(1) << (b % 64);
	if ((s->touched[b / 64] & bit) == 0) {
		s->touched[b / 64] |= bit;
		s->ntouched++;
	}
}

void pg_untouch(pg_store *s)
{
	memset(s->touched, 0, sizeof s->touched);
	s->ntouched = 0;
}

/* Every generation from the tables (one round trip): the store's with the instance name, and
 * each bucket's. */
int pg_load_gen(pg_store *s)
{
	PGresult *r = pg_run(s, ST_GEN, NULL, NULL);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the store generation");
	int n = rc == COFFER_OK ? PQntuples(r) : 0, meta = -1;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		uint64_t b;
		if (!pg_col_uint(r, i, 0, 4, &b)) {
			rc = COFFER_ECORRUPT;
		} else if (b == UINT32_MAX) { /* -1: coffer_meta */
			if (meta >= 0)
				rc = COFFER_ECORRUPT;
			meta = i;
		} else if (b >= PG_GEN_BUCKETS) {
			rc = COFFER_ECORRUPT;
		}
	}
	uint64_t gen = 0;
	if (rc == COFFER_OK &&
	    (meta < 0 || n != PG_GEN_BUCKETS + 1 || !pg_col_uint(r, meta, 1, 8, &gen)))
		rc = COFFER_ECORRUPT;
	if (rc == COFFER_ECORRUPT)
		pg_set_err(s, "the coffer_meta or coffer_gen table of this database is damaged");
	if (rc == COFFER_OK && s->shared == NULL)
		s->shared = shared_slot(PQgetvalue(r, meta, 2), (size_t)PQgetlength(r, meta, 2));
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		uint64_t b, g;
		if (i != meta && pg_col_uint(r, i, 0, 4, &b) && pg_col_uint(r, i, 1, 8, &g))
			pg_learn_bucket(s, (uint32_t)b, g);
	}
	if (rc == COFFER_OK)
		pg_learn_gen(s, gen, 1);
	PQclear(r);
	return rc;
}

/* One notification's worth of (bucket, generation) pairs, kept under PostgreSQL's 8000 bytes. */
#define PG_NOTIFY_PAIRS 256

/*
 * Inside the open write transaction, last statement before COMMIT: bump the generation of each
 * bucket written (or the store's, when none is marked), and build the statement that announces
 * the new values after COMMIT ("B:G ..." per bucket, or the store's "G" alone, as schema 4 did).
 * *notify is malloc'd.
 */
static int bump(pg_store *s, char **notify)
{
	static const int formats[1] = {0};
	size_t cap = 64 + s->ntouched * 32 + (s->ntouched / PG_NOTIFY_PAIRS + 1) * 64;
	char *list = NULL, *q = malloc(cap);
	PGresult *r;
	int rc = q != NULL ? COFFER_OK : COFFER_ENOMEM;
	*notify = NULL;
	if (rc == COFFER_OK && s->ntouched == 0) {
		r = pg_run(s, ST_BUMP, NULL, NULL);
		uint64_t gen = 0;
		rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "bumping the store generation");
		if (rc == COFFER_OK && (PQntuples(r) != 1 || !pg_col_uint(r, 0, 0, 8, &gen))) {
			pg_set_err(s, "the coffer_meta table of this database is damaged");
			rc = COFFER_ECORRUPT;
		}
		PQclear(r);
		if (rc == COFFER_OK)
			snprintf(q, cap, "SELECT pg_notify('" PG_CHANNEL "', '%llu')",
			         (unsigned long long)gen);
		goto out;
	}
	if (rc == COFFER_OK && (list = malloc(s->ntouched * 12 + 3)) == NULL)
		rc = COFFER_ENOMEM;
	if (rc != COFFER_OK)
		goto out;
	size_t at = 0;
	list[at++] = '{';
	for (uint32_t b = 0; b < PG_GEN_BUCKETS; b++)
		if (s->touched[b / 64] & UINT64_C(1) << (b % 64))
			at += (size_t)sprintf(list + at, "%s%u", at > 1 ? "," : "", b);
	list[at++] = '}';
	list[at] = '\0';
	const char *v[1] = {list};
	r = PQexecPrepared(s->conn, pg_stmts[ST_BUMP_BUCKETS].name, 1, v, NULL, formats, 1);
	rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "bumping the generations of the secrets written");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	if (rc == COFFER_OK && (size_t)n != s->ntouched) {
		pg_set_err(s, "the coffer_gen table of this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	at = (size_t)snprintf(q, cap, "SELECT ");
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		uint64_t b, g;
		if (!pg_col_uint(r, i, 0, 4, &b) || !pg_col_uint(r, i, 1, 8, &g) ||
		    b >= PG_GEN_BUCKETS) {
			pg_set_err(s, "the coffer_gen table of this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		if (i % PG_NOTIFY_PAIRS == 0)
			at += (size_t)snprintf(q + at, cap - at, "%spg_notify('" PG_CHANNEL "', '",
			                       i > 0 ? "'), " : "");
		at += (size_t)snprintf(q + at, cap - at, "%s%llu:%llu",
		                       i % PG_NOTIFY_PAIRS ? " " : "", (unsigned long long)b,
		                       (unsigned long long)g);
	}
	if (rc == COFFER_OK)
		snprintf(q + at, cap - at, "')");
	PQclear(r);
out:
	free(list);
	if (rc == COFFER_OK)
		*notify = q;
	else
		free(q);
	return rc;
}

/* What the announcement of a committed write says, learned by the writer itself (parses the
 * statement bump() made; the same format as the notifications). */
static void learn_payload(pg_store *s, const char *p)
{
	while (*p != '\0') {
		char *end;
		unsigned long long a = strtoull(p, &end, 10);
		if (end == p)
			return;
		if (*end == ':') {
			const char *g = end + 1;
			unsigned long long v = strtoull(g, &end, 10);
			if (end == g)
				return;
			if (a < PG_GEN_BUCKETS)
				pg_learn_bucket(s, (uint32_t)a, v);
		} else {
			pg_learn_gen(s, a, 0);
		}
		p = end;
		while (*p == ' ')
			p++;
		if (*p != '\0' && (*p < '0' || *p > '9'))
			return;
	}
}

/* Learn every payload of the statement bump() made. */
static void learn_notify(pg_store *s, const char *q)
{
	static const char head[] = "pg_notify('" PG_CHANNEL "', '";
	char buf[8192];
	for (const char *p = strstr(q, head); p != NULL; p = strstr(p, head)) {
		p += sizeof head - 1;
		size_t n = strcspn(p, "'");
		if (n >= sizeof buf)
			return;
		memcpy(buf, p, n);
		buf[n] = '\0';
		learn_payload(s, buf);
		p += n;
	}
}

static int commit_status(pg_store *s, PGresult *r)
{
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "COMMIT");
	if (rc == COFFER_EUNAVAIL && s->lost)
		pg_set_err(
		    s, "lost the connection to PostgreSQL during COMMIT: the put may or may not "
		       "have been committed");
	else if (rc == COFFER_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		pg_set_err(s, "PostgreSQL rolled the put back");
		rc = COFFER_EIO;
	}
	return rc;
}

/* COMMIT; a connection lost here leaves the outcome unknown. */
int pg_commit(pg_store *s)
{
	PGresult *r = PQexec(s->conn, "COMMIT");
	int rc = commit_status(s, r);
	PQclear(r);
	return rc;
}

/*
 * COMMIT, then announce: both in one round trip, the NOTIFY in a transaction of its own.
 * PostgreSQL serializes the commits of all notifying transactions (to queue notifications in
 * commit order), WAL flush included; a NOTIFY inside the write would make every write of every
 * server take turns for its whole commit. The announcement's own commit writes no WAL to flush,
 * so the turns it takes are short. The put is acknowledged only once the NOTIFY is queued; if it
 * is lost (the connection drops between the two), readers learn the write from the table within
 * PG_MAX_STALE_MS, as for any lost notification.
 */
static int commit_announce(pg_store *s, const char *notify)
{
	size_t n = strlen(notify);
	char *q = malloc(n + 16);
	if (q == NULL) {
		PGresult *r = PQexec(s->conn, "COMMIT");
		int rc = commit_status(s, r);
		PQclear(r);
		return rc;
	}
	memcpy(q, "COMMIT; ", 8);
	memcpy(q + 8, notify, n + 1);
	int sent = PQsendQuery(s->conn, q);
	free(q);
	PGresult *r = sent ? PQgetResult(s->conn) : NULL;
	int rc = commit_status(s, r);
	PQclear(r);
	if (sent)
		while ((r = PQgetResult(s->conn)) != NULL)
			PQclear(r); /* the announcement's: its failure only delays readers */
	/* A failed COMMIT ends the transaction; should the string have been refused whole, the
	 * transaction is still open: end it, so the session stays usable. */
	if (rc != COFFER_OK && PQtransactionStatus(s->conn) == PQTRANS_INERROR)
		PQclear(PQexec(s->conn, "ROLLBACK"));
	return rc;
}

/* Finish a write transaction: bump the generations, COMMIT and announce them, or roll back. */
int pg_finish_write(pg_store *s, int rc)
{
	char *notify = NULL;
	size_t an = s->audit_n;
	s->audit_n = 0;
	if (rc == COFFER_OK && an > 0)
		rc = pg_audit_write(s, s->audit_chain, an, s->audit_fn, s->audit_ctx);
	s->sealing = 0;
	if (rc == COFFER_OK)
		rc = bump(s, &notify);
	pg_untouch(s);
	if (rc != COFFER_OK) {
		pg_rollback(s);
		if (rc == COFFER_EUNAVAIL && s->lost) {
			char why[PG_ERR_MAX];
			memcpy(why, s->err, sizeof why);
			pg_set_err(s, "%.400s (before COMMIT: nothing was written)", why);
		}
		return rc;
	}
	rc = commit_announce(s, notify);
	if (rc == COFFER_OK)
		learn_notify(s, notify);
	free(notify);
	return rc;
}

/* Take every notification that has arrived, without blocking. */
static int drain(pg_store *s)
{
	PGnotify *nf;
	if (!PQconsumeInput(s->conn))
		return 0; /* the socket is closed or broken */
	while ((nf = PQnotifies(s->conn)) != NULL) {
		/* A store in another schema of this database shares the channel: its numbers
		 * only raise ours, which costs cache misses, never a stale hit. */
		if (strcmp(nf->relname, PG_CHANNEL) == 0)
			learn_payload(s, nf->extra);
		PQfreemem(nf);
	}
	return 1;
}

/* Read the generation from the table if it was not read for PG_MAX_STALE_MS (a session just
 * set up has read it). */
static int check_once(pg_store *s, void *arg, int *unsafe)
{
	return pg_now_ms() - s->checked_ms < PG_MAX_STALE_MS ? COFFER_OK : pg_load_gen(s);
}

/* Notifications taken, the session checked, the tables read if their knowledge is old. */
static int refresh(pg_store *s)
{
	int rc = pg_ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	if ((!drain(s) || s->doomed) && (rc = pg_reconnect(s)) != COFFER_OK)
		return rc;
	return pg_retry(s, check_once, NULL, 0);
}

/* The whole store's token: the sum of every generation (each only rises). */
int pg_generation(store *st, uint64_t *gen)
{
	pg_store *s = (pg_store *)st;
	int rc = refresh(s);
	if (rc != COFFER_OK)
		return rc;
	uint64_t sum = newest_gen(s);
	for (uint32_t b = 0; b < PG_GEN_BUCKETS; b++)
		sum += newest_bucket(s, b);
	*gen = pg_token(s, sum);
	return COFFER_OK;
}

/* One secret's token: changes with a write of any secret of its bucket, or of every secret. */
int pg_generation_of(store *st, const char *name, size_t name_len, uint64_t *gen)
{
	pg_store *s = (pg_store *)st;
	int rc = refresh(s);
	if (rc != COFFER_OK)
		return rc;
	uint32_t b = pg_bucket(name, name_len);
	*gen = pg_bucket_token(s, newest_gen(s), newest_bucket(s, b));
	return COFFER_OK;
}
