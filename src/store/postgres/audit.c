/*
 * audit.c -- PostgreSQL backend: the audit log: one hash chain per handle, written inside the write
 * transaction.
 */
#include <stdio.h>
#include <string.h>

#include "store/postgres/pg.h"

/* Inside the open write transaction: n entries after the chain's last one. */
int pg_audit_write(pg_store *s, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	store_audit e;
	memset(&e, 0, sizeof e);
	snprintf(e.chain, sizeof e.chain, "%s", chain);
	static const Oid t1[1] = {OID_TEXT};
	static const int f1[1] = {1};
	const char *v1[1] = {e.chain};
	const int l1[1] = {(int)strlen(e.chain)};
	PGresult *r =
	    PQexecParams(s->conn,
	                 "SELECT seq, mac FROM coffer_audit WHERE chain = $1 ORDER BY seq "
	                 "DESC LIMIT 1",
	                 1, t1, v1, l1, f1, 1);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading the audit log");
	if (rc == COFFER_OK && PQntuples(r) == 1) {
		if (!pg_col_uint(r, 0, 0, 8, &e.seq))
			rc = COFFER_ECORRUPT;
		pg_col_mac(r, 0, 1, e.prev, &e.prev_len);
	}
	PQclear(r);
	static const Oid t[11] = {OID_TEXT, OID_INT8, OID_INT8, OID_TEXT, OID_TEXT, OID_TEXT,
	                          OID_TEXT, OID_INT8, OID_TEXT, OID_TEXT, OID_BYTEA};
	static const int f[11] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		e.seq++;
		rc = fn(ctx, i, &e);
		if (rc != COFFER_OK)
			break;
		uint8_t seq[8], ts[8], oc[8];
		pg_put_be64(seq, e.seq);
		pg_put_be64(ts, (uint64_t)e.ts_ms);
		pg_put_be64(oc, (uint64_t)(int64_t)e.outcome);
		const char *v[11] = {e.chain,     (const char *)seq,  (const char *)ts,
		                     e.principal, e.action,           e.secret,
		                     e.version,   (const char *)oc,   e.error,
		                     e.rid,       (const char *)e.mac};
		const int l[11] = {(int)strlen(e.chain),
		                   8,
		                   8,
		                   (int)strlen(e.principal),
		                   (int)strlen(e.action),
		                   (int)strlen(e.secret),
		                   (int)strlen(e.version),
		                   8,
		                   (int)strlen(e.error),
		                   (int)strlen(e.rid),
		                   (int)e.mac_len};
		r = PQexecParams(
		    s->conn,
		    "INSERT INTO coffer_audit (chain, seq, ts_ms, principal, action, secret, "
		    "version, outcome, error, rid, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, "
		    "$8, $9, $10, $11)",
		    11, t, v, l, f, 1);
		rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "writing the audit log");
		PQclear(r);
		memcpy(e.prev, e.mac, sizeof e.prev);
		e.prev_len = e.mac_len;
	}
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

int pg_audit_append(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	pg_store *s = (pg_store *)st;
	s->audit_n = 0;
	int rc = pg_begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	rc = pg_audit_write(s, chain, n, fn, ctx);
	if (rc != COFFER_OK) {
		pg_rollback(s);
		return rc;
	}
	rc = pg_commit(s); /* no generation bump: nothing a cache holds changed */
	return rc;
}

/* coffer copy: n entries of another store's log in one transaction. */
int pg_audit_import(store *st, const char *chain, size_t n, store_audit_fn fn, void *ctx)
{
	pg_store *s = (pg_store *)st;
	s->audit_n = 0;
	int rc = pg_begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	rc = pg_audit_write(s, chain, n, fn, ctx);
	if (rc != COFFER_OK) {
		pg_rollback(s);
		return rc;
	}
	return pg_commit(s);
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
