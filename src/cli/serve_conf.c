/*
 * serve_conf.c -- `coffer serve`'s settings: flags > environment > coffer.conf > defaults.
 *
 * The file's keys are the command table's options (see OPT_CONF / OPT_NOCONF in cli.h), under
 * their long names in a [serve] section; a key that takes several values (listen, allow-uid) is
 * repeated. Values given as flags replace the file's (all of a repeatable key's values at once).
 * The environment variables that name a setting (COFFER_STORE, COFFER_KEY_FILE,
 * COFFER_MAX_VALUE) are read once, at start, so that a SIGHUP re-reading the file sees the same
 * ones (the library scrubs COFFER_KEY_FILE from the environment once the store is open).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/conf.h"
#include "server/server.h"

#define MAXV 64 /* values of a repeatable key */

typedef enum src { SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_FLAG } src;

typedef struct setting {
	const char *v[MAXV];
	size_t n;
	src from;
	unsigned line[MAXV]; /* SRC_FILE: each value's line */
} setting;

typedef struct resolved {
	conf_file file;
	setting s[O_COUNT];
	coffer_serve_args a;
} resolved;

static const struct {
	opt_id id;
	const char *name;
} env_of[] = {
    {O_STORE, "COFFER_STORE"}, {O_KEY_FILE, "COFFER_KEY_FILE"}, {O_MAX_VALUE, "COFFER_MAX_VALUE"}};
#define N_ENV (sizeof env_of / sizeof env_of[0])

typedef struct serve_ctx {
	cli *c;
	const char *path;      /* the configuration file, or NULL */
	const char *path_why;  /* how it was chosen */
	char *env[N_ENV];      /* snapshot at start ("" unset counts as unset) */
	resolved first, *last; /* as started; the last SIGHUP's (freed at the next) */
} serve_ctx;

static int is_key(opt_id id)
{
	const opt_def *o = &cli_opts[id];
	if (o->flags & OPT_NOCONF)
		return 0;
	if (o->flags & OPT_GLOBAL)
		return (o->flags & OPT_CONF) != 0;
	const cmd_def *d = cli_find_cmd("serve");
	for (const opt_id *p = d != NULL ? d->opts : NULL; p != NULL && *p != O_COUNT; p++)
		if (*p == id)
			return 1;
	return 0;
}

static int lookup(void *ctx, const char *name, conf_key *out)
{
	(void)ctx;
	for (int i = 0; i < O_COUNT; i++) {
		const opt_def *o = &cli_opts[i];
		if (o->name == NULL || strcmp(o->name, name) != 0 || !is_key(o->id))
			continue;
		out->id = o->id;
		out->kind = o->kind == ARG_NONE   ? CONF_FLAG
		            : o->kind == ARG_UINT ? CONF_UINT
		                                  : CONF_STR;
		out->multi = (o->flags & OPT_MULTI) != 0;
		out->lo = o->lo;
		out->hi = o->hi;
		return 0;
	}
	return -1;
}

static const char *env_snap(const serve_ctx *x, opt_id id)
{
	for (size_t i = 0; i < N_ENV; i++)
		if (env_of[i].id == id)
			return x->env[i];
	return NULL;
}

static const char *env_name(opt_id id)
{
	for (size_t i = 0; i < N_ENV; i++)
		if (env_of[i].id == id)
			return env_of[i].name;
	return NULL;
}

static void resolved_free(resolved *r)
{
	conf_free(&r->file);
}

static const char *one(const resolved *r, opt_id id)
{
	return r->s[id].n > 0 ? r->s[id].v[r->s[id].n - 1] : NULL;
}

static unsigned long num(const resolved *r, opt_id id)
{
	const char *v = one(r, id);
	return v != NULL ? strtoul(v, NULL, 10) : 0;
}

static const char *origin(void *ctx, const char *option, size_t index);

/* Every key's values and their source; then the arguments coffer_serve() takes. */
static int resolve(serve_ctx *x, resolved *r, char *err, size_t errlen)
{
	cli *c = x->c;
	memset(r, 0, sizeof(*r));
	if (x->path != NULL &&
	    conf_load(&r->file, x->path, "serve", lookup, NULL, err, errlen) != 0)
		return -1;
	for (int i = 0; i < O_COUNT; i++) {
		opt_id id = (opt_id)i;
		setting *s = &r->s[id];
		if (!is_key(id))
			continue;
		size_t n = cli_opt_all(c, id, s->v, MAXV);
		if (n > 0) {
			if (n > MAXV)
				goto too_many;
			s->n = n;
			s->from = SRC_FLAG;
			if (cli_opts[id].kind == ARG_NONE)
				s->v[0] = "1", s->n = 1;
			continue;
		}
		const char *e = env_snap(x, id);
		if (e != NULL) {
			s->v[0] = e;
			s->n = 1;
			s->from = SRC_ENV;
			continue;
		}
		for (size_t j = 0; j < r->file.n; j++) {
			if (r->file.e[j].id != (int)id)
				continue;
			if (s->n == MAXV)
				goto too_many;
			s->line[s->n] = r->file.e[j].line;
			s->v[s->n++] = r->file.e[j].val;
			s->from = SRC_FILE;
		}
		continue;
	too_many:
		snprintf(err, errlen, "more than %d values for %s", MAXV, cli_opts[id].name);
		return -1;
	}
	const char *mv = r->s[O_MAX_VALUE].from == SRC_ENV ? one(r, O_MAX_VALUE) : NULL;
	if (mv != NULL) {
		size_t k = strspn(mv, "0123456789");
		unsigned long v = k > 0 && k <= 8 && mv[k] == '\0' ? strtoul(mv, NULL, 10) : 0;
		if (v < 1 || v > COFFER_VALUE_HARD_MAX) {
			snprintf(err, errlen, "COFFER_MAX_VALUE wants 1 to %d (bytes)",
			         COFFER_VALUE_HARD_MAX);
			return -1;
		}
	}
	coffer_serve_args *a = &r->a;
	a->store = one(r, O_STORE);
	a->key_file = one(r, O_KEY_FILE);
	a->max_value = num(r, O_MAX_VALUE);
	a->listen = r->s[O_LISTEN].v;
	a->n_listen = r->s[O_LISTEN].n;
	a->allow_uid = r->s[O_ALLOW_UID].v;
	a->n_allow_uid = r->s[O_ALLOW_UID].n;
	a->threads = (unsigned)num(r, O_THREADS);
	a->policy = one(r, O_POLICY);
	a->record_policy = one(r, O_RECORD_POLICY);
	a->tokens = one(r, O_TOKENS);
	a->tls_cert = one(r, O_TLS_CERT);
	a->tls_key = one(r, O_TLS_KEY);
	a->insecure = num(r, O_INSECURE) != 0;
	a->quiet = num(r, O_QUIET) != 0;
	a->audit = num(r, O_AUDIT) != 0;
	a->audit_sync = one(r, O_AUDIT_SYNC);
	a->policy_wait_ms = one(r, O_POLICY_WAIT) != NULL ? (long)num(r, O_POLICY_WAIT) : -1;
	a->idle_timeout_s = (unsigned)num(r, O_IDLE_TIMEOUT);
	a->header_timeout_s = (unsigned)num(r, O_HEADER_TIMEOUT);
	a->max_conns = (unsigned)num(r, O_MAX_CONNS);
	a->metrics = one(r, O_METRICS);
	a->log_format = one(r, O_LOG_FORMAT);
	a->config = x->path;
	a->origin = origin;
	a->origin_ctx = x;
	return 0;
}

/* The file's line of the index-th value of an option, for the server's start-up messages. */
static const char *origin(void *ctx, const char *option, size_t index)
{
	static char buf[4200];
	serve_ctx *x = ctx;
	const resolved *r = &x->first;
	conf_key k;
	if (x->path == NULL || lookup(NULL, option, &k) != 0)
		return NULL;
	const setting *s = &r->s[k.id];
	if (s->from != SRC_FILE || s->n == 0)
		return NULL;
	/* A scalar's value is its last (the only one); a list's the index-th. */
	size_t i = k.multi ? index : s->n - 1;
	if (i >= s->n)
		return NULL;
	snprintf(buf, sizeof(buf), "%s:%u", x->path, s->line[i]);
	return buf;
}

#ifdef COFFER_WITH_SERVER
static int reread(void *ctx, const coffer_serve_args **out, char *err, size_t errlen)
{
	serve_ctx *x = ctx;
	resolved *r = malloc(sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (resolve(x, r, err, errlen) != 0) {
		resolved_free(r);
		free(r);
		return -1;
	}
	r->a.reread = reread;
	r->a.reread_ctx = x;
	if (x->last != NULL) {
		resolved_free(x->last);
		free(x->last);
	}
	x->last = r;
	*out = &r->a;
	return 0;
}
#endif

/* A value fit to print: a location's password (user:PASSWORD@, password=) masked. */
static const char *shown(const char *v, char *buf, size_t len)
{
	return strstr(v, "://") != NULL || strstr(v, "password") != NULL
	           ? coffer_location_display(v, buf, len)
	           : v;
}

static void print_config(const serve_ctx *x, const resolved *r)
{
	char buf[2048], where[4200];
	printf("# coffer serve: the effective settings (flags > environment > file > defaults)\n");
	if (x->path != NULL)
		printf("# configuration file: %s (%s)\n", x->path, x->path_why);
	else
		printf("# configuration file: none (%s)\n", x->path_why);
	printf("[serve]\n");
	for (int i = 0; i < O_COUNT; i++) {
		const opt_def *o = &cli_opts[i];
		const setting *s = &r->s[i];
		if (!is_key(o->id))
			continue;
		if (s->n == 0) {
			printf("# %s: not set (default)\n", o->name);
			continue;
		}
		for (size_t j = 0; j < s->n; j++) {
			if (s->from == SRC_FLAG)
				snprintf(where, sizeof(where), "flag --%s", o->name);
			else if (s->from == SRC_ENV)
				snprintf(where, sizeof(where), "environment %s", env_name(o->id));
			else
				snprintf(where, sizeof(where), "%s:%u", x->path, s->line[j]);
			const char *v = o->kind == ARG_NONE
			                    ? (strcmp(s->v[j], "1") == 0 ? "true" : "false")
			                    : shown(s->v[j], buf, sizeof(buf));
			printf("%s = %s%*s# %s\n", o->name, v,
			       (int)(strlen(o->name) + strlen(v) < 40
			                 ? 40 - strlen(o->name) - strlen(v)
			                 : 1),
			       "", where);
		}
	}
}

int serve_conf_run(cli *c)
{
	static serve_ctx x; /* lives as long as the server: SIGHUP re-reads through it */
	char err[1024];
	memset(&x, 0, sizeof(x));
	x.c = c;
	const char *env_path = getenv("COFFER_CONFIG");
	if ((x.path = cli_opt(c, O_CONFIG)) != NULL) {
		x.path_why = "--config";
	} else if (env_path != NULL) {
		x.path = env_path[0] != '\0' ? env_path : NULL;
		x.path_why =
		    env_path[0] != '\0' ? "environment COFFER_CONFIG" : "COFFER_CONFIG is empty";
	} else if (access(SERVE_CONF_DEFAULT, F_OK) == 0) {
		x.path = SERVE_CONF_DEFAULT;
		x.path_why = "the default path";
	} else {
		x.path_why = "no --config, no COFFER_CONFIG, no " SERVE_CONF_DEFAULT;
	}
	for (size_t i = 0; i < N_ENV; i++) {
		const char *e = getenv(env_of[i].name);
		if (e != NULL && e[0] != '\0' && (x.env[i] = strdup(e)) == NULL)
			return cli_fail(c, COFFER_ENOMEM, "out of memory");
	}
	int rc;
	if (resolve(&x, &x.first, err, sizeof(err)) != 0) {
		rc = cli_fail(c, COFFER_EINVAL, "%s", err);
	} else if (cli_has(c, O_PRINT_CONFIG)) {
		print_config(&x, &x.first);
		rc = fflush(stdout) == 0 ? 0 : 1;
	} else {
#ifdef COFFER_WITH_SERVER
		if (x.path != NULL) {
			x.first.a.reread = reread;
			x.first.a.reread_ctx = &x;
		}
		rc = coffer_serve(&x.first.a);
#else
		rc = cli_fail(c, COFFER_EMISUSE, "this coffer was built without the server");
#endif
	}
	resolved_free(&x.first);
	if (x.last != NULL) {
		resolved_free(x.last);
		free(x.last);
	}
	for (size_t i = 0; i < N_ENV; i++)
		free(x.env[i]);
	return rc;
}
