/*
 * conn.c -- PostgreSQL backend: small helpers, results and errors, sessions (LISTEN, prepare),
 * reconnect, and the one rule for retrying after a lost connection.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/postgres/pg.h"

int64_t pg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pg_put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const char *p, int len)
{
	uint64_t v = 0;
	for (int i = 0; i < len; i++)
		v = v << 8 | (uint8_t)p[i];
	return v;
}

/* A binary integer column of the expected width; 0 if NULL or of another width. */
int pg_col_uint(const PGresult *r, int row, int col, int width, uint64_t *v)
{
	if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != width)
		return 0;
	*v = get_be(PQgetvalue(r, row, col), width);
	return 1;
}

/* A MAC column: copied when it has the one valid length; otherwise len says 0 (NULL or empty:
 * none) or 1 (something else, which never verifies). */
void pg_col_mac(const PGresult *r, int row, int col, uint8_t mac[STORE_MAC_LEN], size_t *len)
{
	size_t n = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);
	memset(mac, 0, STORE_MAC_LEN);
	*len = n == 0 ? 0 : n == STORE_MAC_LEN ? n : 1;
	if (n == STORE_MAC_LEN)
		memcpy(mac, PQgetvalue(r, row, col), n);
}

/* Columns first..first+3: last_version, latest, epoch, mac. 0 if malformed. */
int pg_col_meta(const PGresult *r, int row, int first, store_meta *m)
{
	memset(m, 0, sizeof *m);
	if (!pg_col_uint(r, row, first, 8, &m->last_version) ||
	    !pg_col_uint(r, row, first + 1, 8, &m->latest) ||
	    !pg_col_uint(r, row, first + 2, 8, &m->epoch))
		return 0;
	pg_col_mac(r, row, first + 3, m->mac, &m->mac_len);
	return 1;
}

/* Columns col .. col + 2: previous, the label digest (a digest of another length is kept as
 * one byte that never verifies) and purge_ms. 0 if malformed. */
int pg_col_ext(const PGresult *r, int row, int col, store_meta *m)
{
	if (!pg_col_uint(r, row, col, 8, &m->previous) ||
	    !pg_col_uint(r, row, col + 2, 8, &m->purge_ms))
		return 0;
	size_t n = PQgetisnull(r, row, col + 1) ? 0 : (size_t)PQgetlength(r, row, col + 1);
	memset(m->ldigest, 0, sizeof m->ldigest);
	m->ldigest_len = n == 0 ? 0 : n == STORE_DIGEST_LEN ? n : 1;
	if (n == STORE_DIGEST_LEN)
		memcpy(m->ldigest, PQgetvalue(r, row, col + 1), n);
	return 1;
}

/* Decimal payload of a notification; 0 if malformed. */
int pg_parse_u64(const char *s, uint64_t *v)
{
	uint64_t n = 0;
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10)
			return 0;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return 1;
}

/* Mask every occurrence of `secret` in `buf` (same length, so it never grows). */
static void scrub(char *buf, const char *secret)
{
	size_t n = secret != NULL ? strlen(secret) : 0;
	char *p;
	if (n == 0)
		return;
	while ((p = strstr(buf, secret)) != NULL)
		memset(p, '*', n);
}

/* Copy a libpq message: first line only (the rest is hints and context), newline-free. */
void pg_copy_line(char *dst, size_t len, const char *src)
{
	size_t n = 0;
	if (src == NULL)
		src = "";
	while (src[n] != '\0' && src[n] != '\n' && n + 1 < len)
		n++;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void pg_set_err(pg_store *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	scrub(s->err, s->conn != NULL ? PQpass(s->conn) : NULL);
}

/* Map a server error to a coffer code; the SQLSTATE class decides. */
static int sqlstate_rc(const char *state)
{
	if (state == NULL)
		return COFFER_EIO;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		return COFFER_EUNAVAIL; /* connection failure, server shutting down */
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0)
		return COFFER_EBUSY; /* serialization failure, deadlock, lock not available */
	if (strcmp(state, "53200") == 0)
		return COFFER_ENOMEM;
	if (strcmp(state, "53100") == 0)
		return COFFER_EFULL; /* disk_full */
	if (strcmp(state, "25006") == 0)
		return COFFER_EUNAVAIL; /* a read-only server: a standby, or the old primary */
	if (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0)
		return COFFER_ECORRUPT; /* our tables or columns are gone */
	return COFFER_EIO;
}

/*
 * Check a result. On failure set the message (the server's primary message and SQLSTATE only:
 * never the DETAIL, which may quote row contents), remember whether the connection was lost,
 * and return the code. Never clears r.
 */
int pg_res_rc(pg_store *s, const PGresult *r, ExecStatusType want, const char *what)
{
	const char *state;
	char line[256];
	int rc;

	if (r != NULL && PQresultStatus(r) == want)
		return COFFER_OK;
	state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	pg_copy_line(line, sizeof line,
	             r != NULL && PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) != NULL
	                 ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
	                 : PQerrorMessage(s->conn));
	rc = sqlstate_rc(state);
	s->lost = PQstatus(s->conn) != CONNECTION_OK || rc == COFFER_EUNAVAIL;
	if (s->lost && state != NULL && strcmp(state, "25006") == 0) {
		/* Treated as lost, so the next attempt reconnects (a multi-host URL with
		 * target_session_attrs=read-write then finds the new primary). */
		pg_set_err(s, "PostgreSQL refused a write during %s: the server is read-only",
		           what);
		return COFFER_EUNAVAIL;
	}
	if (s->lost) {
		pg_set_err(s, "lost the connection to PostgreSQL during %s: %s", what, line);
		return COFFER_EUNAVAIL;
	}
	if (r != NULL && PQresultStatus(r) != PGRES_FATAL_ERROR && state == NULL)
		pg_set_err(s, "unexpected PostgreSQL reply during %s", what);
	else if (rc == COFFER_EFULL)
		pg_set_err(
		    s,
		    "PostgreSQL error during %s: the database server's disk is full (free some "
		    "space there and try again): %s (SQLSTATE %s)",
		    what, line, state);
	else
		pg_set_err(s, "PostgreSQL error during %s: %s (SQLSTATE %s)", what, line,
		           state != NULL ? state : "none");
	return rc;
}

/* Run a prepared statement with binary parameters and binary results. */
PGresult *pg_run(pg_store *s, int st, const char *const *vals, const int *lens)
{
	static const int formats[7] = {1, 1, 1, 1, 1, 1, 1};
	return PQexecPrepared(s->conn, pg_stmts[st].name, pg_stmts[st].nparams, vals, lens, formats,
	                      1);
}

/* Run a fixed command (BEGIN, COMMIT, ...) and check it. */
int pg_exec_cmd(pg_store *s, const char *sql, const char *what)
{
	PGresult *r = PQexec(s->conn, sql);
	int rc = pg_res_rc(s, r, PGRES_COMMAND_OK, what);
	PQclear(r);
	return rc;
}

void pg_rollback(pg_store *s)
{
	s->sealing = 0;
	pg_untouch(s);
	if (PQstatus(s->conn) == CONNECTION_OK)
		PQclear(PQexec(s->conn, "ROLLBACK"));
}

/*
 * libpq would print notices on stderr; a library never prints. A FATAL one arriving while the
 * session is idle (pg_terminate_backend, a shutdown) means the session is gone, though the
 * socket may not show it yet: remember it so generation() reconnects instead of trusting
 * notifications that will never come.
 */
void pg_on_notice(void *arg, const PGresult *r)
{
	pg_store *s = arg;
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
		s->doomed = 1;
}

/* What every new session needs: LISTEN, the prepared statements, the current generation. */
int pg_session_setup(pg_store *s)
{
	s->doomed = 0;
	int rc = pg_exec_cmd(s, "LISTEN " PG_CHANNEL, "LISTEN");
	/* A write stuck behind someone else's lock (a maintenance ALTER, a forgotten session)
	 * fails as busy after 10 s instead of hanging every put; a lock_timeout given in the
	 * URL (options=-c lock_timeout=...) is kept. */
	if (rc == COFFER_OK) {
		PGresult *r = PQexec(s->conn, "SELECT set_config('lock_timeout', '10s', false) "
		                              "WHERE current_setting('lock_timeout') = '0'");
		rc = pg_res_rc(s, r, PGRES_TUPLES_OK, "setting lock_timeout");
		PQclear(r);
	}
	for (int i = 0; rc == COFFER_OK && i < ST_COUNT; i++) {
		PGresult *r = PQprepare(s->conn, pg_stmts[i].name, pg_stmts[i].sql,
		                        pg_stmts[i].nparams, pg_stmts[i].types);
		rc = pg_res_rc(s, r, PGRES_COMMAND_OK, "preparing statements");
		PQclear(r);
	}
	if (rc != COFFER_OK)
		return rc;
	/* A new session may follow an outage or a failover: start a new epoch of tokens. */
	s->epoch = (uint16_t)(s->epoch + 1);
	if (s->epoch == 0)
		s->epoch = 1;
	s->gen = 0;
	memset(s->bgen, 0, sizeof s->bgen);
	return pg_load_gen(s);
}

/* Reset a broken connection and set the session up again. */
int pg_reconnect(pg_store *s)
{
	int64_t t = pg_now_ms();
	char line[256];

	if (s->failed_ms != 0 && t - s->failed_ms < PG_RETRY_PAUSE_MS)
		return COFFER_EUNAVAIL; /* keep the message of the failed attempt */
	PQreset(s->conn);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		s->failed_ms = t;
		pg_copy_line(line, sizeof line, PQerrorMessage(s->conn));
		pg_set_err(s, "cannot connect to PostgreSQL: %s", line);
		return COFFER_EUNAVAIL;
	}
	s->failed_ms = 0;
	return pg_session_setup(s);
}

int pg_ensure_conn(pg_store *s)
{
	s->lost = 0;
	if (PQstatus(s->conn) == CONNECTION_OK && !s->doomed)
		return COFFER_OK;
	return pg_reconnect(s);
}

/*
 * The one retry rule of this backend. Run `once`; if it failed because the connection was lost,
 * reconnect and run it once more, unless the attempt set *unsafe: it passed a point after which
 * a repeat could be seen (a read that already handed a row to a callback) or could write twice
 * (a put that called seal(): it may have committed, or seal() would be called twice). Reads,
 * and writes that surely did not commit, are thus retried once; nothing else ever is.
 * PG_RETRY_BUSY: also repeat (on the same session) an attempt that failed as busy (a deadlock
 * or serialization failure: PostgreSQL rolled it back).
 */
int pg_retry(pg_store *s, pg_once_fn once, void *arg, unsigned flags)
{
	int unsafe = 0;
	int rc = pg_ensure_conn(s);
	if (rc == COFFER_OK)
		rc = once(s, arg, &unsafe);
	if (unsafe)
		return rc;
	if (rc == COFFER_EBUSY && (flags & PG_RETRY_BUSY) != 0)
		return once(s, arg, &unsafe);
	if (rc == COFFER_EUNAVAIL && s->lost && pg_reconnect(s) == COFFER_OK)
		rc = once(s, arg, &unsafe);
	return rc;
}

static int begin_once(pg_store *s, void *arg, int *unsafe)
{
	pg_untouch(s);
	return pg_exec_cmd(s, PG_BEGIN, "BEGIN");
}

/* BEGIN a write transaction (nothing was sent yet, so a retry is always safe). */
int pg_begin_write(pg_store *s)
{
	return pg_retry(s, begin_once, NULL, 0);
}
