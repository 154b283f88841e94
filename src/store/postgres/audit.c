/*
 * audit.c -- PostgreSQL backend: the audit log: one hash chain per handle, written inside the write
 * transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/pg.h"

#define AUDIT_ROWS 16 /* entries per INSERT: one round trip each, not one per entry */
#define AUDIT_COLS 11

/* One INSERT of b[0..k): 11 binary parameters per row. */
static int audit_insert(pg_store *s, const store_audit *b, size_t k)
{
	static const Oid t1[AUDIT_COLS] = {OID_TEXT, OID_INT8, OID_INT8, OID_TEXT,
	                                   OID_TEXT, OID_TEXT, OID_TEXT, OID_INT8,
	                                   OID_TEXT, OID_TEXT, OID_BYTEA};
	Oid t[AUDIT_ROWS * AUDIT_COLS];
	const char *v[AUDIT_ROWS * AUDIT_COLS];
	int l[AUDIT_ROWS * AUDIT_COLS], f[AUDIT_ROWS * AUDIT_COLS];
	uint8_t num[AUDIT_ROWS][3][8];
	char sql[200 + AUDIT_ROWS * AUDIT_COLS * 6];
	size_t at =
	    (size_t)snprintf(sql, sizeof sql,
	                     "INSERT INTO coffer_audit (chain, seq, ts_ms, principal, action, "
	                     "secret, version, outcome, error, rid, mac) VALUES ");
	for (size_t i = 0; i < k; i++) {
		const store_audit *e = &b[i];
		pg_put_be64(num[i][0], e->seq);
		pg_put_be64(num[i][1], (uint64_t)e->ts_ms);
		pg_put_be64(num[i][2], (uint64_t)(int64_t)e->outcome);
		const char *vi[AUDIT_COLS] = {e->chain,
		                              (const char *)num[i][0],
		                              (const char *)num[i][1],
		                              e->principal,
		                              e->action,
		                              e->secret,
		                              e->version,
		                              (const char *)num[i][2],
		                              e->error,
		                              e->rid,
		                              (const char *)e->mac};
		const int li[AUDIT_COLS] = {(int)strlen(e->chain),
		                            8,
		                            8,
		                            (int)strlen(e->principal),
		                            (int)strlen(e->action),
		                            (int)strlen(e->secret),
		                            (int)strlen(e->version),
		                            8,
		                            (int)strlen(e->error),
		                            (int)strlen(e->rid),
		                            (int)e->mac_len};
		for (size_t c = 0; c < AUDIT_COLS; c++) {
			size_t j = i * AUDIT_COLS + c;
			t[j] = t1[c];
			v[j] = vi[c];
			l[j] = li[c];
			f[j] = 1;
			at += (size_t)snprintf(sql + at, sizeof sql - at, "%s$%zu",
			                       c == 0 ? (i == 0 ? "(" : "), (") : ", ", j + 1);
		}
	}
	snprintf(sql + at, sizeof sql - at, ")");
	PGresult *r = PQexecParams(s->conn, sql, (int)(k * AUDIT_COLS), t, v, l, f, 1);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "writing the audit log");
	PQclear(r);
	return rc;
}

/* Inside the open write transaction: n entries after the chain's last one. */
int pg_audit_write(pg_store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	store_audit *b = calloc(AUDIT_ROWS, sizeof *b);
	if (b == NULL)
		return COFFER_ENOMEM;
	store_audit *e = &b[0];
	snprintf(e->chain, sizeof e->chain, "%s", chain);
	static const Oid t1[1] = {OID_TEXT};
	static const int f1[1] = {1};
	const char *v1[1] = {e->chain};
	const int l1[1] = {(int)strlen(e->chain)};
	PGresult *r =
	    PQexecParams(s->conn,
	                 "SELECT seq, mac FROM coffer_audit WHERE chain = $1 ORDER BY seq "
	                 "DESC LIMIT 1",
	                 1, t1, v1, l1, f1, 1);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the audit log");
	uint64_t seq = 0;
	uint8_t prev[STORE_MAC_LEN];
	size_t prev_len = 0;
	if (rc == COFFER_OK && PQntuples(r) == 1) {
		if (!pg_col_uint(r, 0, 0, 8, &seq))
			rc = COFFER_ECORRUPT;
		pg_col_mac(r, 0, 1, prev, &prev_len);
	}
	PQclear(r);
	/* Each entry is filled (and MAC'd over the one before) in order; k of them per INSERT. */
	for (size_t i = 0; i < n && rc == COFFER_OK;) {
		size_t k = 0;
		for (; k < AUDIT_ROWS && i < n && rc == COFFER_OK; k++, i++) {
			e = &b[k];
			memset(e, 0, sizeof *e);
			snprintf(e->chain, sizeof e->chain, "%s", chain);
			e->seq = ++seq;
			memcpy(e->prev, prev, prev_len);
			e->prev_len = prev_len;
			rc = fn(ctx, i, e);
			memcpy(prev, e->mac, sizeof prev);
			prev_len = e->mac_len;
		}
		if (rc == COFFER_OK)
			rc = audit_insert(s, b, k);
	}
	free(b);
	return rc;
}

void pg_audit_pending(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	pg_store *s = (pg_store *)st;
	s->audit_n = n;
	s->audit_fn = fn;
	s->audit_ctx = ctx;
	snprintf(s->audit_chain, sizeof s->audit_chain, "%s", chain != NULL ? chain : "");
}

/* n entries in a transaction of their own; without a sync when asked (this transaction only). */
static int audit_txn(pg_store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx,
                     int nosync)
{
	s->audit_n = 0;
	int rc = pg_begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	if (nosync) {
		PGresult *r = PQexec(s->conn, "SET LOCAL synchronous_commit TO off");
		rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "SET LOCAL synchronous_commit");
		PQclear(r);
	}
	if (rc == COFFER_OK)
		rc = pg_audit_write(s, chain, n, fn, ctx);
	if (rc != COFFER_OK) {
		pg_rollback(s);
		return rc;
	}
	return pg_commit(s); /* no generation bump: nothing a cache holds changed */
}

int pg_audit_append(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	pg_store *s = (pg_store *)st;
	return audit_txn(s, chain, n, fn, ctx, s->audit_nosync); /* STORE_OPEN_AUDIT_NOSYNC */
}

/* coffer copy: n entries of another store's log in one transaction. */
int pg_audit_import(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	return audit_txn((pg_store *)st, chain, n, fn, ctx, 0);
}

static void res_text(const PGresult *r, int i, int col, char *out, size_t cap)
{
	snprintf(out, cap, "%s", PQgetisnull(r, i, col) ? "" : PQgetvalue(r, i, col));
}

int pg_audit_list(store *st, uint64_t after, int (*cb)(void *ctx, const store_audit *e), void *ctx)
{
	pg_store *s = (pg_store *)st;
	int rc = pg_ensure_conn(s);
	for (;;) {
		if (rc != COFFER_OK)
			return rc;
		uint8_t a[8];
		pg_put_be64(a, after);
		static const Oid t[1] = {OID_INT8};
		static const int f[1] = {1};
		const char *v[1] = {(const char *)a};
		const int l[1] = {8};
		PGresult *r =
		    PQexecParams(s->conn,
		                 "SELECT id, chain, seq, ts_ms, principal, action, secret, "
		                 "version, outcome::bigint, error, rid, mac FROM coffer_audit "
		                 "WHERE id > $1 ORDER BY id LIMIT 1000",
		                 1, t, v, l, f, 1);
		rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the audit log");
		int n = rc == COFFER_OK ? PQntuples(r) : 0;
		for (int i = 0; rc == COFFER_OK && i < n; i++) {
			store_audit e;
			uint64_t seq = 0, ts = 0, oc = 0;
			memset(&e, 0, sizeof e);
			if (!pg_col_uint(r, i, 0, 8, &e.id) || !pg_col_uint(r, i, 2, 8, &seq) ||
			    !pg_col_uint(r, i, 3, 8, &ts) || !pg_col_uint(r, i, 8, 8, &oc)) {
				pg_set_err(s, "an audit row in this database is damaged");
				rc = COFFER_ECORRUPT;
				break;
			}
			e.seq = seq;
			e.ts_ms = (int64_t)ts;
			e.outcome = (int)(int64_t)oc;
			res_text(r, i, 1, e.chain, sizeof e.chain);
			res_text(r, i, 4, e.principal, sizeof e.principal);
			res_text(r, i, 5, e.action, sizeof e.action);
			res_text(r, i, 6, e.secret, sizeof e.secret);
			res_text(r, i, 7, e.version, sizeof e.version);
			res_text(r, i, 9, e.error, sizeof e.error);
			res_text(r, i, 10, e.rid, sizeof e.rid);
			pg_col_mac(r, i, 11, e.mac, &e.mac_len);
			after = e.id;
			rc = cb(ctx, &e);
		}
		PQclear(r);
		if (rc != COFFER_OK || n < 1000)
			return rc;
	}
}
