/*
 * gen.c -- PostgreSQL backend: store generations: shared between the handles of a process,
 * announced by NOTIFY, bumped by every write transaction before COMMIT, read by generation().
 */
#include <pthread.h>
#include <string.h>

#include "store/postgres/pg.h"

/*
 * Handles of one process on the same store share the newest generation any of them has seen, so
 * a put through one handle is seen at once through the others (read-your-writes inside a
 * process, as with SQLite); other processes learn it by NOTIFY. A shared value only ever rises,
 * and a higher token can only cause cache misses, never a stale hit.
 */
#define PG_SHARED_MAX 64 /* distinct stores per process that share; beyond, a handle is alone */

static struct {
	char instance[33];
	uint64_t gen;
} shared_gens[PG_SHARED_MAX];
static size_t nshared;
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t *shared_slot(const char *instance, size_t len)
{
	uint64_t *slot = NULL;
	if (len == 0 || len >= sizeof shared_gens[0].instance)
		return NULL;
	pthread_mutex_lock(&shared_mu);
	for (size_t i = 0; i < nshared && slot == NULL; i++)
		if (strlen(shared_gens[i].instance) == len &&
		    memcmp(shared_gens[i].instance, instance, len) == 0)
			slot = &shared_gens[i].gen;
	if (slot == NULL && nshared < PG_SHARED_MAX) {
		memcpy(shared_gens[nshared].instance, instance, len);
		slot = &shared_gens[nshared++].gen;
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
		shared_raise(s->shared, gen);
	if (from_table)
		s->checked_ms = pg_now_ms();
}

/* The newest generation this handle knows of, its own or another handle's. */
static uint64_t newest_gen(const pg_store *s)
{
	uint64_t g = s->shared != NULL ? __atomic_load_n(s->shared, __ATOMIC_ACQUIRE) : 0;
	return g > s->gen ? g : s->gen;
}

int pg_load_gen(pg_store *s)
{
	PGresult *r = pg_run(s, ST_GEN, NULL, NULL);
	uint64_t gen;
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the store generation");
	if (rc == COFFER_OK && (PQntuples(r) != 1 || !pg_col_uint(r, 0, 0, 8, &gen))) {
		pg_set_err(s, "the coffer_meta table of this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	if (rc == COFFER_OK && s->shared == NULL)
		s->shared = shared_slot(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
	if (rc == COFFER_OK)
		pg_learn_gen(s, gen, 1);
	PQclear(r);
	return rc;
}

static int bump_gen(pg_store *s, uint64_t *gen)
{
	PGresult *r = pg_run(s, ST_BUMP, NULL, NULL);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "bumping the store generation");
	if (rc == COFFER_OK && (PQntuples(r) != 1 || !pg_col_uint(r, 0, 0, 8, gen))) {
		pg_set_err(s, "the coffer_meta table of this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	PQclear(r);
	return rc;
}

/* COMMIT; a connection lost here leaves the outcome unknown. */
int pg_commit(pg_store *s)
{
	PGresult *r = PQexec(s->conn, "COMMIT");
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "COMMIT");
	if (rc == COFFER_EUNAVAIL && s->lost)
		pg_set_err(
		    s, "lost the connection to PostgreSQL during COMMIT: the put may or may not "
		       "have been committed");
	else if (rc == COFFER_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		pg_set_err(s, "PostgreSQL rolled the put back");
		rc = COFFER_EIO;
	}
	PQclear(r);
	return rc;
}

/* Finish a write transaction: bump and announce the generation, COMMIT, or roll back. */
int pg_finish_write(pg_store *s, int rc)
{
	uint64_t gen = 0;
	size_t an = s->audit_n;
	s->audit_n = 0;
	if (rc == COFFER_OK && an > 0)
		rc = pg_audit_write(s, s->audit_chain, an, s->audit_fn, s->audit_ctx);
	s->sealing = 0;
	if (rc == COFFER_OK)
		rc = bump_gen(s, &gen);
	if (rc != COFFER_OK) {
		pg_rollback(s);
		if (rc == COFFER_EUNAVAIL && s->lost) {
			char why[PG_ERR_MAX];
			memcpy(why, s->err, sizeof why);
			pg_set_err(s, "%.400s (before COMMIT: nothing was written)", why);
		}
		return rc;
	}
	rc = pg_commit(s);
	if (rc == COFFER_OK)
		pg_learn_gen(s, gen, 0);
	return rc;
}

/* Take every notification that has arrived, without blocking. */
static int drain(pg_store *s)
{
	PGnotify *nf;
	if (!PQconsumeInput(s->conn))
		return 0; /* the socket is closed or broken */
	while ((nf = PQnotifies(s->conn)) != NULL) {
		uint64_t g;
		/* A store in another schema of this database shares the channel: its numbers
		 * only raise ours, which costs cache misses, never a stale hit. */
		if (strcmp(nf->relname, PG_CHANNEL) == 0 && pg_parse_u64(nf->extra, &g))
			pg_learn_gen(s, g, 0);
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

int pg_generation(store *st, uint64_t *gen)
{
	pg_store *s = (pg_store *)st;
	int rc = pg_ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	if ((!drain(s) || s->doomed) && (rc = pg_reconnect(s)) != COFFER_OK)
		return rc;
	if ((rc = pg_retry(s, check_once, NULL, 0)) != COFFER_OK)
		return rc;
	*gen = pg_token(s, newest_gen(s));
	return COFFER_OK;
}
