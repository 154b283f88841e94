/*
 * lifecycle.c -- PostgreSQL backend: destroy and retag, labels, description and tags, purge,
 * declarations, import.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/postgres/pg.h"

#define PG_ROWS_PER_WRITE 1024 /* version rows per statement of write_rows() */

/* Inside the open transaction: every row of secret sid (version, state, mac), ascending. */
static int read_rows(pg_store *s, uint64_t sid, store_row **rows, size_t *n)
{
	uint8_t id[8];
	pg_put_be64(id, sid);
	const char *v[1] = {(const char *)id};
	const int l[1] = {8};
	PGresult *r = pg_run(s, ST_ROWS, v, l);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading versions");
	int m = rc == COFFER_OK ? PQntuples(r) : 0;
	*rows = m > 0 ? calloc((size_t)m, sizeof **rows) : NULL;
	*n = 0;
	if (m > 0 && *rows == NULL)
		rc = COFFER_ENOMEM;
	for (int i = 0; rc == COFFER_OK && i < m; i++) {
		uint64_t ver, state;
		store_row *row = &(*rows)[i];
		if (!pg_col_uint(r, i, 0, 8, &ver) || !pg_col_uint(r, i, 1, 2, &state)) {
			pg_set_err(s, "a version row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		row->version = ver;
		row->state = (int)(int16_t)state;
		pg_col_mac(r, i, 2, row->mac, &row->mac_len);
		(*n)++;
	}
	PQclear(r);
	return rc;
}

/* Append a decimal number and a separator to an array literal. */
static size_t append_num(char *buf, size_t at, int64_t v, char sep)
{
	return at + (size_t)snprintf(buf + at, 24, "%lld%c", (long long)v, sep);
}

/* Inside the open transaction: rows[0..n)'s states and MACs, PG_ROWS_PER_WRITE per statement. */
static int write_rows_chunk(pg_store *s, uint64_t sid, const store_row *rows, size_t n)
{
	static const int formats[4] = {1, 0, 0, 1};
	char *vers = malloc(n * 24 + 3), *states = malloc(n * 24 + 3);
	uint8_t *macs = malloc(n * STORE_MAC_LEN), id[8];
	int rc = vers != NULL && states != NULL && macs != NULL ? COFFER_OK : COFFER_ENOMEM;
	size_t a = 1, b = 1;
	for (size_t i = 0; rc == COFFER_OK && i < n; i++) {
		a = append_num(vers, a, (int64_t)rows[i].version, i + 1 < n ? ',' : '}');
		b = append_num(states, b, rows[i].state, i + 1 < n ? ',' : '}');
		memcpy(macs + i * STORE_MAC_LEN, rows[i].mac, STORE_MAC_LEN);
	}
	if (rc == COFFER_OK) {
		vers[0] = states[0] = '{';
		pg_put_be64(id, sid);
		const char *v[4] = {(const char *)id, vers, states, (const char *)macs};
		const int l[4] = {8, 0, 0, (int)(n * STORE_MAC_LEN)};
		PGresult *r =
		    PQexecPrepared(s->conn, pg_stmts[ST_WRITE_ROWS].name, 4, v, l, formats, 1);
		rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "writing versions");
		PQclear(r);
	}
	free(vers);
	free(states);
	free(macs);
	return rc;
}

static int write_meta(pg_store *s, uint64_t sid, const store_meta *m)
{
	uint8_t b[3][8];
	pg_put_be64(b[0], sid);
	pg_put_be64(b[1], m->latest);
	pg_put_be64(b[2], m->epoch);
	uint8_t purge[8], mx[8];
	pg_put_be64(purge, m->purge_ms);
	pg_put_be64(mx, m->max_versions);
	const char *v[7] = {(const char *)b[0],
	                    (const char *)b[1],
	                    (const char *)b[2],
	                    (const char *)m->mac,
	                    m->ldigest_len == STORE_DIGEST_LEN ? (const char *)m->ldigest : NULL,
	                    (const char *)purge,
	                    (const char *)mx};
	const int l[7] = {8, 8, 8, (int)m->mac_len, (int)m->ldigest_len, 8, 8};
	PGresult *r = pg_run(s, ST_WRITE_META, v, l);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "writing a secret");
	PQclear(r);
	return rc;
}

/* Inside the open transaction: the secret's custom labels into m->labels (allocated here). */
static int read_labels(pg_store *s, uint64_t sid, store_meta *m)
{
	uint8_t id[8];
	pg_put_be64(id, sid);
	const char *v[1] = {(const char *)id};
	const int l[1] = {8};
	m->nlabels = 0;
	m->labels_changed = 0;
	m->labels = calloc(STORE_LABELS_MAX + 1, sizeof *m->labels);
	if (m->labels == NULL)
		return COFFER_ENOMEM;
	PGresult *r = pg_run(s, ST_LABELS, v, l);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading labels");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	for (int i = 0; rc == COFFER_OK && i < n; i++) {
		size_t len = (size_t)PQgetlength(r, i, 0);
		store_label *lb = &m->labels[m->nlabels];
		if (m->nlabels == STORE_LABELS_MAX || len == 0 || len > STORE_LABEL_MAX ||
		    !pg_col_uint(r, i, 1, 8, &lb->version)) {
			pg_set_err(s, "a label row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		memcpy(lb->name, PQgetvalue(r, i, 0), len);
		lb->name[len] = '\0';
		m->nlabels++;
	}
	PQclear(r);
	return rc;
}

/* Inside the open transaction: the secret's custom labels become m->labels. */
static int write_labels(pg_store *s, uint64_t sid, const store_meta *m)
{
	uint8_t id[8];
	pg_put_be64(id, sid);
	const char *v1[1] = {(const char *)id};
	const int l1[1] = {8};
	PGresult *r = pg_run(s, ST_LABELS_DEL, v1, l1);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "writing labels");
	PQclear(r);
	if (rc != COFFER_OK || m->nlabels == 0)
		return rc;
	static const int formats[3] = {1, 0, 0};
	char *names = malloc(m->nlabels * (STORE_LABEL_MAX + 1) + 3);
	char *vers = malloc(m->nlabels * 24 + 3);
	if (names == NULL || vers == NULL)
		rc = COFFER_ENOMEM;
	size_t a = 1, b = 1;
	for (size_t i = 0; rc == COFFER_OK && i < m->nlabels; i++) {
		size_t len = strlen(m->labels[i].name);
		memcpy(names + a, m->labels[i].name, len);
		a += len;
		names[a++] = i + 1 < m->nlabels ? ',' : '}';
		b = append_num(vers, b, (int64_t)m->labels[i].version,
		               i + 1 < m->nlabels ? ',' : '}');
	}
	if (rc == COFFER_OK) {
		names[0] = vers[0] = '{';
		names[a] = '\0';
		const char *v[3] = {(const char *)id, names, vers};
		const int l[3] = {8, 0, 0};
		r = PQexecPrepared(s->conn, pg_stmts[ST_LABEL_INS].name, 3, v, l, formats, 1);
		rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "writing labels");
		PQclear(r);
	}
	free(names);
	free(vers);
	return rc;
}

static void info_fill(const PGresult *r, store_info *info)
{
	uint64_t c = 0, u = 0;
	memset(info, 0, sizeof *info);
	snprintf(info->description, sizeof info->description, "%s",
	         PQgetisnull(r, 0, 9) ? "" : PQgetvalue(r, 0, 9));
	snprintf(info->tags, sizeof info->tags, "%s",
	         PQgetisnull(r, 0, 10) ? "" : PQgetvalue(r, 0, 10));
	(void)pg_col_uint(r, 0, 11, 8, &c);
	(void)pg_col_uint(r, 0, 12, 8, &u);
	(void)pg_col_uint(r, 0, 13, 8, &info->max_versions);
	info->created_ms = (int64_t)c;
	info->updated_ms = (int64_t)u;
}

int pg_labels_get(store *st, const char *name, size_t name_len, store_meta *meta, store_info *info)
{
	pg_store *s = (pg_store *)st;
	const char *v[1] = {name};
	const int l[1] = {(int)name_len};
	meta->labels = NULL;
	int rc = pg_ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	PGresult *r = pg_run(s, ST_LABELS_GET, v, l);
	rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading labels");
	int n = rc == COFFER_OK ? PQntuples(r) : 0;
	if (rc == COFFER_OK && n == 0) {
		pg_set_err(s, "not found");
		rc = COFFER_ENOTFOUND;
	} else if (rc == COFFER_OK && (!pg_col_meta(r, 0, 0, meta) || !pg_col_ext(r, 0, 4, meta) ||
	                               !pg_col_uint(r, 0, 13, 8, &meta->max_versions))) {
		pg_set_err(s, "a secret row in this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	if (rc == COFFER_OK &&
	    (meta->labels = calloc(STORE_LABELS_MAX + 1, sizeof *meta->labels)) == NULL)
		rc = COFFER_ENOMEM;
	for (int i = 0; rc == COFFER_OK && i < n && !PQgetisnull(r, i, 7); i++) {
		size_t len = (size_t)PQgetlength(r, i, 7);
		store_label *lb = &meta->labels[meta->nlabels];
		if (meta->nlabels == STORE_LABELS_MAX || len == 0 || len > STORE_LABEL_MAX ||
		    !pg_col_uint(r, i, 8, 8, &lb->version)) {
			pg_set_err(s, "a label row in this database is damaged");
			rc = COFFER_ECORRUPT;
			break;
		}
		memcpy(lb->name, PQgetvalue(r, i, 7), len);
		lb->name[len] = '\0';
		meta->nlabels++;
	}
	if (rc == COFFER_OK && info != NULL)
		info_fill(r, info);
	PQclear(r);
	if (rc != COFFER_OK) {
		free(meta->labels);
		meta->labels = NULL;
	}
	return rc;
}

int pg_purge(store *st, uint64_t now, size_t *count)
{
	pg_store *s = (pg_store *)st;
	uint8_t t[8];
	uint64_t n = 0;
	*count = 0;
	pg_put_be64(t, now);
	static const Oid types[1] = {OID_INT8};
	static const int formats[1] = {1};
	const char *v[1] = {(const char *)t};
	const int l[1] = {8};
	/* A read first: the common case (nothing due) writes nothing. */
	int rc = pg_ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	PGresult *r =
	    PQexecParams(s->conn,
	                 "SELECT 1 FROM coffer_secrets WHERE purge_ms > 0 AND purge_ms <= "
	                 "$1 LIMIT 1",
	                 1, types, v, l, formats, 1);
	rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "looking for deleted secrets");
	int due = rc == COFFER_OK && PQntuples(r) > 0;
	PQclear(r);
	if (!due)
		return rc;
	rc = pg_begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	static const char *const sql[] = {
	    "DELETE FROM coffer_versions WHERE secret_id IN (SELECT id FROM coffer_secrets WHERE "
	    "purge_ms > 0 AND purge_ms <= $1)",
	    "DELETE FROM coffer_labels WHERE secret_id IN (SELECT id FROM coffer_secrets WHERE "
	    "purge_ms > 0 AND purge_ms <= $1)",
	    "DELETE FROM coffer_requests WHERE secret_id IN (SELECT id FROM coffer_secrets WHERE "
	    "purge_ms > 0 AND purge_ms <= $1)",
	    "DELETE FROM coffer_secrets WHERE purge_ms > 0 AND purge_ms <= $1"};
	for (size_t i = 0; i < sizeof sql / sizeof sql[0] && rc == COFFER_OK; i++) {
		r = PQexecParams(s->conn, sql[i], 1, types, v, l, formats, 1);
		rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "purging deleted secrets");
		if (rc == COFFER_OK && i + 1 == sizeof sql / sizeof sql[0] &&
		    !pg_parse_u64(PQcmdTuples(r), &n)) {
			pg_set_err(s, "unexpected reply while purging deleted secrets");
			rc = COFFER_EIO;
		}
		PQclear(r);
	}
	if (rc == COFFER_OK && n == 0) { /* nothing went: no generation to bump */
		pg_rollback(s);
		return COFFER_OK;
	}
	rc = pg_finish_write(s, rc);
	if (rc == COFFER_OK)
		*count = (size_t)n;
	return rc;
}

int pg_info_set(store *st, const char *name, size_t name_len, const char *description,
                const char *tags)
{
	pg_store *s = (pg_store *)st;
	int rc = pg_begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	pg_touch(s, name, name_len);
	static const Oid types[5] = {OID_TEXT, OID_BOOL, OID_TEXT, OID_BOOL, OID_TEXT};
	static const int formats[5] = {1, 1, 1, 1, 1};
	const char dset = description != NULL, tset = tags != NULL;
	const char *v[5] = {name, &dset, description, &tset, tags};
	const int l[5] = {(int)name_len, 1, description != NULL ? (int)strlen(description) : 0, 1,
	                  tags != NULL ? (int)strlen(tags) : 0};
	PGresult *r =
	    PQexecParams(s->conn,
	                 "UPDATE coffer_secrets SET description = CASE WHEN $2 THEN $3 "
	                 "ELSE description END, tags = CASE WHEN $4 THEN $5 ELSE tags END, "
	                 "updated_ms = " PG_NOW_MS " WHERE name = $1",
	                 5, types, v, l, formats, 1);
	rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "setting a secret's description");
	if (rc == COFFER_OK && strcmp(PQcmdTuples(r), "0") == 0) {
		pg_set_err(s, "not found");
		rc = COFFER_ENOTFOUND;
	}
	PQclear(r);
	return pg_finish_write(s, rc);
}

/* Inside the open transaction: hand one secret and all its rows to cb, write back the result. */
int pg_retag(pg_store *s, uint64_t sid, const char *name, size_t name_len, store_meta *m,
             store_retag_fn cb, void *ctx)
{
	store_row *rows = NULL;
	size_t n = 0;
	int rc = read_rows(s, sid, &rows, &n);
	if (rc == COFFER_OK)
		rc = read_labels(s, sid, m);
	if (rc == COFFER_OK)
		rc = cb(ctx, name, name_len, m, rows, n);
	for (size_t i = 0; rc == COFFER_OK && i < n; i += PG_ROWS_PER_WRITE)
		rc = write_rows_chunk(s, sid, rows + i,
		                      n - i < PG_ROWS_PER_WRITE ? n - i : PG_ROWS_PER_WRITE);
	if (rc == COFFER_OK)
		rc = write_meta(s, sid, m);
	if (rc == COFFER_OK && m->labels_changed)
		rc = write_labels(s, sid, m);
	free(rows);
	free(m->labels);
	m->labels = NULL;
	return rc;
}

/* The secret's row is locked first (as a put locks it), so destroys and puts of one secret take
 * turns. Dead tuples keep the old ciphertext until VACUUM reclaims them (docs/postgres.md). */
/* Inside the open transaction: the secret's id and metadata, its row locked. */
int pg_read_secret_locked(pg_store *s, const char *name, size_t name_len, uint64_t *sid,
                          store_meta *m)
{
	const char *v[1] = {name};
	const int l[1] = {(int)name_len};
	PGresult *r = pg_run(s, ST_SECRET, v, l);
	int rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "reading a secret");
	if (rc == COFFER_OK && PQntuples(r) == 0) {
		pg_set_err(s, "not found");
		rc = COFFER_ENOTFOUND;
	} else if (rc == COFFER_OK &&
	           (!pg_col_uint(r, 0, 0, 8, sid) || !pg_col_meta(r, 0, 1, m) ||
	            !pg_col_uint(r, 0, 5, 8, &m->max_versions) || !pg_col_ext(r, 0, 6, m))) {
		pg_set_err(s, "a secret row in this database is damaged");
		rc = COFFER_ECORRUPT;
	}
	PQclear(r);
	return rc;
}

int pg_destroy(store *st, const char *name, size_t name_len, store_retag_fn cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	int rc = pg_begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	pg_touch(s, name, name_len);
	uint64_t sid = 0;
	store_meta m;
	rc = pg_read_secret_locked(s, name, name_len, &sid, &m);
	if (rc == COFFER_OK)
		rc = pg_retag(s, sid, name, name_len, &m, cb, ctx);
	return pg_finish_write(s, rc);
}

/* Never retried: a connection lost during COMMIT leaves the outcome unknown (EUNAVAIL). */
int pg_decl_add(store *st, const store_decl *items, size_t n)
{
	pg_store *s = (pg_store *)st;
	char actions[16], when[24];
	int rc = pg_begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	snprintf(when, sizeof when, "%lld", (long long)pg_now_ms());
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		snprintf(actions, sizeof actions, "%u", items[i].actions);
		const char *v[4] = {items[i].service, items[i].secret, actions, when};
		PGresult *r = PQexecParams(
		    s->conn,
		    "INSERT INTO coffer_declarations (service, secret, actions, declared_ms) "
		    "VALUES ($1, $2, $3::integer, $4::bigint) ON CONFLICT (service, secret) DO "
		    "UPDATE "
		    "SET actions = coffer_declarations.actions | excluded.actions",
		    4, NULL, v, NULL, NULL, 0);
		rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "recording a declaration");
		PQclear(r);
	}
	if (rc != COFFER_OK) {
		pg_rollback(s);
		return rc;
	}
	return pg_commit(s);
}

int pg_decl_list(store *st, store_decl_cb cb, void *ctx)
{
	pg_store *s = (pg_store *)st;
	int rc = pg_ensure_conn(s);
	if (rc != COFFER_OK)
		return rc;
	PGresult *r = PQexec(s->conn, "SELECT service, secret, actions, declared_ms FROM "
	                              "coffer_declarations ORDER BY service, secret");
	rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "listing declarations");
	for (int i = 0; rc == COFFER_OK && i < PQntuples(r); i++) {
		store_decl d = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
		                (unsigned)strtoul(PQgetvalue(r, i, 2), NULL, 10),
		                strtoll(PQgetvalue(r, i, 3), NULL, 10)};
		rc = cb(ctx, &d);
	}
	PQclear(r);
	return rc;
}

/* coffer copy: a whole secret written as given, in one transaction (store.h, import_secret). */
int pg_import_secret(store *st, const char *name, size_t name_len, const store_meta *m,
                     const store_info *info, const store_row *rows, size_t n, int *existed)
{
	pg_store *s = (pg_store *)st;
	*existed = 0;
	int rc = pg_begin_write(s);
	if (rc != COFFER_OK)
		return rc;
	pg_touch(s, name, name_len);
	static const Oid types[13] = {OID_TEXT, OID_INT8, OID_INT8,  OID_INT8, OID_BYTEA,
	                              OID_INT8, OID_INT8, OID_BYTEA, OID_INT8, OID_TEXT,
	                              OID_TEXT, OID_INT8, OID_INT8};
	static const int formats[13] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	uint8_t b[8][8];
	pg_put_be64(b[0], m->last_version);
	pg_put_be64(b[1], m->latest);
	pg_put_be64(b[2], m->epoch);
	pg_put_be64(b[3], m->max_versions);
	pg_put_be64(b[4], m->previous);
	pg_put_be64(b[5], m->purge_ms);
	pg_put_be64(b[6], (uint64_t)info->created_ms);
	pg_put_be64(b[7], (uint64_t)info->updated_ms);
	const char *d = info->description[0] != '\0' ? info->description : NULL;
	const char *t = info->tags[0] != '\0' ? info->tags : NULL;
	const char *v[13] = {name,
	                     (const char *)b[0],
	                     (const char *)b[1],
	                     (const char *)b[2],
	                     (const char *)m->mac,
	                     (const char *)b[3],
	                     (const char *)b[4],
	                     m->ldigest_len == STORE_DIGEST_LEN ? (const char *)m->ldigest : NULL,
	                     (const char *)b[5],
	                     d,
	                     t,
	                     (const char *)b[6],
	                     (const char *)b[7]};
	const int l[13] = {(int)name_len,
	                   8,
	                   8,
	                   8,
	                   (int)m->mac_len,
	                   8,
	                   8,
	                   (int)m->ldigest_len,
	                   8,
	                   d != NULL ? (int)strlen(d) : 0,
	                   t != NULL ? (int)strlen(t) : 0,
	                   8,
	                   8};
	PGresult *r = PQexecParams(
	    s->conn,
	    "INSERT INTO coffer_secrets (name, last_version, latest, epoch, mac, max_versions, "
	    "previous, ldigest, purge_ms, description, tags, created_ms, updated_ms) VALUES ($1, "
	    "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (name) DO NOTHING "
	    "RETURNING id",
	    13, types, v, l, formats, 1);
	rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "importing a secret");
	uint64_t sid = 0;
	if (rc == COFFER_OK && PQntuples(r) == 0)
		*existed = 1;
	else if (rc == COFFER_OK && !pg_col_uint(r, 0, 0, 8, &sid)) {
		pg_set_err(s, "importing a secret: no id returned");
		rc = COFFER_EIO;
	}
	PQclear(r);
	if (rc != COFFER_OK || *existed) {
		pg_rollback(s);
		return rc;
	}
	static const Oid vtypes[7] = {OID_INT8, OID_INT8,  OID_INT8, OID_INT8,
	                              OID_INT8, OID_BYTEA, OID_BYTEA};
	static const int vformats[7] = {1, 1, 1, 1, 1, 1, 1};
	for (size_t i = 0; i < n && rc == COFFER_OK; i++) {
		uint8_t c[5][8];
		pg_put_be64(c[0], sid);
		pg_put_be64(c[1], rows[i].version);
		pg_put_be64(c[2], rows[i].key_id);
		pg_put_be64(c[3], (uint64_t)(int64_t)rows[i].state);
		pg_put_be64(c[4], (uint64_t)rows[i].created_ms);
		const char *vv[7] = {(const char *)c[0],
		                     (const char *)c[1],
		                     (const char *)c[2],
		                     (const char *)c[3],
		                     (const char *)c[4],
		                     rows[i].sealed != NULL ? (const char *)rows[i].sealed : "",
		                     (const char *)rows[i].mac};
		const int vl[7] = {8,
		                   8,
		                   8,
		                   8,
		                   8,
		                   rows[i].sealed != NULL ? (int)rows[i].sealed_len : 0,
		                   (int)rows[i].mac_len};
		r = PQexecParams(
		    s->conn,
		    "INSERT INTO coffer_versions (secret_id, version, key_id, state, "
		    "created_ms, sealed, mac) VALUES ($1, $2, $3, $4::bigint::smallint, $5, "
		    "$6, $7)",
		    7, vtypes, vv, vl, vformats, 1);
		rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "importing a version");
		PQclear(r);
	}
	if (rc == COFFER_OK)
		rc = write_labels(s, sid, m);
	return pg_finish_write(s, rc);
}
