/*
 * postgres.c -- PostgreSQL backend: open / close / errmsg, and the table of operations the core
 * calls.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store/postgres/pg.h"

static void open_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* Parse only to validate: libpq's parse errors may quote the password, so none is shown. */
static int url_valid(const char *location)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(location, &perr);
	if (perr != NULL)
		PQfreemem(perr);
	if (opts == NULL)
		return 0;
	PQconninfoFree(opts);
	return 1;
}

static PGconn *connect_url(const char *location)
{
	/* Our defaults come first, so the URL's own settings override them. */
	static const char *const keys[] = {"connect_timeout",
	                                   "application_name",
	                                   "keepalives_idle",
	                                   "keepalives_interval",
	                                   "keepalives_count",
	                                   "dbname",
	                                   NULL};
	const char *vals[] = {"10", "coffer", "30", "10", "3", location, NULL};
	return PQconnectdbParams(keys, vals, 1);
}

static int pg_open(const char *location, unsigned flags, store **out, char *err, size_t errlen)
{
	pg_store *s;
	int rc;

	if (location == NULL || !url_valid(location)) {
		open_err(err, errlen,
		         "invalid PostgreSQL URL (not shown, as it may contain a password)");
		return COFFER_EINVAL;
	}
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return COFFER_ENOMEM;
	s->audit_nosync = (flags & STORE_OPEN_AUDIT_NOSYNC) != 0;
	s->conn = connect_url(location);
	if (s->conn == NULL) {
		free(s);
		return COFFER_ENOMEM;
	}
	PQsetNoticeReceiver(s->conn, pg_on_notice, s);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		char line[256];
		pg_copy_line(line, sizeof line, PQerrorMessage(s->conn));
		pg_set_err(s, "cannot connect to PostgreSQL: %s", line);
		rc = COFFER_EUNAVAIL;
	} else if (PQserverVersion(s->conn) < 90500) {
		pg_set_err(s, "PostgreSQL 9.5 or newer is needed (INSERT ... ON CONFLICT)");
		rc = COFFER_EINVAL;
	} else {
		rc = pg_schema_ensure(s, (flags & STORE_OPEN_CREATE) != 0);
		if (rc == COFFER_OK)
			rc = pg_session_setup(s);
	}
	if (rc != COFFER_OK) {
		open_err(err, errlen, s->err);
		PQfinish(s->conn);
		free(s);
		return rc;
	}
	*out = (store *)s;
	return COFFER_OK;
}

static void pg_close(store *st)
{
	pg_store *s = (pg_store *)st;
	if (s == NULL)
		return;
	PQfinish(s->conn);
	free(s);
}

static const char *pg_errmsg(store *st)
{
	pg_store *s = (pg_store *)st;
	return s != NULL ? s->err : "no store";
}

/* A database has no "beside": the user gives COFFER_MASTER_KEY, a key file or a passphrase. */
static int pg_default_key_file(const char *location, char *buf, size_t len)
{
	return COFFER_ENOTFOUND;
}

const store_ops postgres_store_ops = {
    .scheme = "postgres",
    .open = pg_open,
    .close = pg_close,
    .errmsg = pg_errmsg,
    .default_key_file = pg_default_key_file,
    .bootstrap = pg_bootstrap,
    .keys_load = pg_keys_load,
    .put = pg_put,
    .get = pg_get,
    .generation = pg_generation,
    .generation_of = pg_generation_of,
    .list_secrets = pg_list_secrets,
    .list_versions = pg_list_versions,
    .keys_add = pg_keys_add,
    .keys_reseal = pg_keys_reseal,
    .reseal_batch = pg_reseal_batch,
    .keys_prune = pg_keys_prune,
    .destroy = pg_destroy,
    .labels_get = pg_labels_get,
    .purge = pg_purge,
    .list_page = pg_list_page,
    .info_set = pg_info_set,
    .audit_pending = pg_audit_pending,
    .audit_append = pg_audit_append,
    .audit_list = pg_audit_list,
    .meta_init = pg_meta_init,
    .decl_add = pg_decl_add,
    .decl_list = pg_decl_list,
    .import_secret = pg_import_secret,
    .audit_import = pg_audit_import,
};
