/*
 * remote.c -- remote mode: `coffer --server ADDR` (or COFFER_SERVER) runs the commands flagged
 * CMD_REMOTE against a running `coffer serve`, through libcoffer_client (coffer_client.h), as a
 * target with the same ops as the local one (so output and exit codes are the same). Put and
 * access go over Nitric's SecretManager, versions, list and destroy over coffer's admin service.
 *
 * No master key is needed, looked for or read in this mode: no store is opened, no key file
 * created, and the key options are refused. The token is taken from --token-file, COFFER_TOKEN,
 * COFFER_TOKEN_FILE or (visible in the process list, so last in the docs) --token; it is copied
 * and the original wiped from argv and the environment at once, so neither /proc/PID/cmdline
 * nor a `coffer run` child keeps it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#ifdef COFFER_WITH_CLIENT
#include "coffer_client.h"
#endif

#define TOKEN_FILE_MAX 4096

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Copy the environment variable's value, then wipe it in place and unset it. NULL: unset. */
static int take_env(const char *name, char **out)
{
	extern char **environ;
	size_t n = strlen(name);
	const char *v = getenv(name);
	*out = NULL;
	if (v != NULL && v[0] != '\0' && (*out = strdup(v)) == NULL)
		return COFFER_ENOMEM;
	for (char **e = environ; e != NULL && *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			explicit_bzero(*e + n + 1, strlen(*e + n + 1));
	unsetenv(name);
	return COFFER_OK;
}

static void token_free(char *tok)
{
	if (tok != NULL) {
		explicit_bzero(tok, strlen(tok));
		free(tok);
	}
}

/* The first line of a token file (trailing blanks and CR dropped). */
static int read_token_file(cli *c, const char *path, char **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cli_fail(c, COFFER_EIO, "cannot open the token file '%s': %s", path,
		                strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 077) != 0)
		cli_note(c,
		         "warning: the token file '%s' is open to group or others (chmod 600 it)",
		         path);
	char buf[TOKEN_FILE_MAX + 1];
	size_t n = 0;
	int rc = 0;
	while (n < sizeof buf - 1) {
		ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = cli_fail(c, COFFER_EIO, "cannot read the token file '%s': %s", path,
			              strerror(errno));
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	size_t len = strcspn(buf, "\n");
	while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (rc == 0 && len == 0)
		rc = cli_fail(c, COFFER_EINVAL,
		              "the token file '%s' holds no token on its first line", path);
	if (rc == 0 && (*out = strndup(buf, len)) == NULL)
		rc = cli_fail(c, COFFER_ENOMEM, NULL);
	explicit_bzero(buf, sizeof buf);
	return rc;
}

#ifdef COFFER_WITH_CLIENT
/* COFFER_TLS: 1/true/yes on, 0/false/no (or empty) off; -1 for anything else. */
static int env_flag(const char *name)
{
	const char *v = getenv(name);
	if (v == NULL || v[0] == '\0' || strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 ||
	    strcasecmp(v, "no") == 0)
		return 0;
	if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0)
		return 1;
	return -1;
}
#endif

static const opt_id remote_only[] = {O_TOKEN, O_TOKEN_FILE, O_TLS, O_CA_FILE};

int cli_remote_check(cli *c)
{
	/* A token on the command line is copied and wiped from argv whatever happens next. */
	const char *argtok = cli_opt(c, O_TOKEN);
	if (argtok != NULL) {
		token_free(c->token);
		c->token = strdup(argtok);
		for (size_t k = 0; k < c->nseen; k++)
			if (c->seen[k].id == O_TOKEN)
				explicit_bzero((char *)c->seen[k].val, strlen(c->seen[k].val));
		if (c->token == NULL)
			return cli_fail(c, COFFER_ENOMEM, NULL);
	}
	unsigned f = c->cmd->flags;
	if (!(f & (CMD_REMOTE | CMD_LOCAL)))
		return 0; /* help, completion: nowhere to run */
	const char *srv = cli_opt(c, O_SERVER);
	int from_env = 0;
	if (srv != NULL && srv[0] == '\0')
		return cli_usage_error(c, "--server wants HOST:PORT, [IPv6]:PORT or unix:PATH");
	if (srv != NULL && cli_has(c, O_STORE))
		return cli_usage_error(c,
		                       "--server and --store name two different places; give one");
	if (srv == NULL && !cli_has(c, O_STORE) && (srv = env_nonempty("COFFER_SERVER")) != NULL)
		from_env = 1;
	if (srv == NULL) {
		for (const opt_id *o = c->cmd->opts; *o != O_COUNT; o++)
			if (*o == O_TOKENS && cli_has(c, O_TOKEN)) /* serve's --tokens FILE */
				return cli_usage_error(c,
				                       "--token is for remote mode (--server); did "
				                       "you mean '--tokens'?");
		for (size_t i = 0; i < sizeof remote_only / sizeof remote_only[0]; i++)
			if (cli_has(c, remote_only[i]))
				return cli_usage_error(c,
				                       "--%s is for remote mode: give --server "
				                       "HOST:PORT (or set COFFER_SERVER)",
				                       cli_opts[remote_only[i]].name);
		return 0;
	}
	const char *via =
	    from_env ? "COFFER_SERVER is set: unset it, or give --store DIR" : "--server is given";
	if (f & CMD_LOCAL)
		return cli_usage_error(c,
		                       "'coffer %s' works on a local store only, not through a "
		                       "server (%s)",
		                       c->cmd->name, via);
	if (cli_has(c, O_KEY_FILE))
		return cli_usage_error(c,
		                       "--key-file has no use with a server, which holds the "
		                       "master key (%s)",
		                       via);
	if (cli_has(c, O_MAX_VALUE))
		return cli_usage_error(c,
		                       "--max-value has no use with a server, whose own limit "
		                       "applies (coffer serve --max-value) (%s)",
		                       via);
	if (cli_has(c, O_TOKEN) && cli_has(c, O_TOKEN_FILE))
		return cli_usage_error(c,
		                       "give the token either with --token or with --token-file");
	c->server = srv;
	/* Where the token comes from: the line, then the environment. Every source in the
	 * environment is taken out of it, so that a `coffer run` child never sees the token. */
	char *envtok = NULL, *envfile = NULL;
	const char *ef = env_nonempty("COFFER_TOKEN_FILE");
	int rc = take_env("COFFER_TOKEN", &envtok);
	if (rc == COFFER_OK && ef != NULL && (envfile = strdup(ef)) == NULL)
		rc = COFFER_ENOMEM;
	unsetenv("COFFER_TOKEN_FILE");
	if (rc != COFFER_OK) {
		token_free(envtok);
		free(envfile);
		return cli_fail(c, rc, NULL);
	}
	const char *tokfile = cli_opt(c, O_TOKEN_FILE);
	if (c->token == NULL && tokfile == NULL) {
		if (envtok != NULL && envfile != NULL)
			rc = cli_usage_error(c, "COFFER_TOKEN and COFFER_TOKEN_FILE are both set; "
			                        "unset one");
		else if (envtok != NULL) {
			c->token = envtok;
			envtok = NULL;
		} else {
			tokfile = envfile;
		}
	}
	if (rc == 0 && c->token == NULL && tokfile != NULL)
		rc = read_token_file(c, tokfile, &c->token);
	token_free(envtok);
	free(envfile);
	return rc;
}

#ifdef COFFER_WITH_CLIENT

typedef struct rtarget {
	target base;
	coffer_client *cl;
} rtarget;

static coffer_client *cl_of(target *t)
{
	return ((rtarget *)t)->cl;
}

static int rt_put(target *t, const char *name, const void *val, size_t len,
                  char version[COFFER_VERSION_MAX])
{
	return coffer_client_put(cl_of(t), name, val, len, version);
}

static int rt_access(target *t, const char *name, const char *version, tgt_value *out)
{
	coffer_client_value *v = NULL;
	int rc = coffer_client_access(cl_of(t), name, version, &v);
	if (rc != COFFER_OK)
		return rc;
	out->data = coffer_client_value_data(v, &out->len);
	snprintf(out->version, sizeof out->version, "%s", coffer_client_value_version(v));
	out->priv = v;
	return COFFER_OK;
}

static void rt_value_free(target *t, tgt_value *v)
{
	coffer_client_value_free(v->priv);
	memset(v, 0, sizeof *v);
}

static int rt_versions(target *t, const char *name, tgt_version **out, size_t *n)
{
	cli_vec v = {.size = sizeof(tgt_version)};
	int rc = coffer_client_versions(cl_of(t), name, cli_collect_version, &v);
	if (rc != COFFER_OK) {
		free(v.items);
		return rc;
	}
	*out = v.items;
	*n = v.n;
	return COFFER_OK;
}

static int rt_list(target *t, tgt_name **out, size_t *n)
{
	cli_vec v = {.size = sizeof(tgt_name)};
	int rc = coffer_client_list(cl_of(t), cli_collect_name, &v);
	if (rc != COFFER_OK) {
		cli_names_free(v.items, v.n);
		return rc;
	}
	*out = v.items;
	*n = v.n;
	return COFFER_OK;
}

static int rt_destroy(target *t, const char *name, const char *version,
                      char version_out[COFFER_VERSION_MAX])
{
	return coffer_client_destroy(cl_of(t), name, version, version_out);
}

static const char *rt_errmsg(target *t)
{
	return coffer_client_errmsg(cl_of(t));
}

static void rt_close(target *t)
{
	coffer_client_close(cl_of(t));
	free(t);
}

static int rt_set_state(target *t, const char *name, const char *version, int enable,
                        char version_out[COFFER_VERSION_MAX])
{
	return enable ? coffer_client_enable(cl_of(t), name, version, version_out)
	              : coffer_client_disable(cl_of(t), name, version, version_out);
}

static int rt_label_set(target *t, const char *name, const char *label, const char *version,
                        char version_out[COFFER_VERSION_MAX])
{
	return coffer_client_label_set(cl_of(t), name, label, version, version_out);
}

static int rt_label_delete(target *t, const char *name, const char *label)
{
	return coffer_client_label_delete(cl_of(t), name, label);
}

static int rt_collect_label(void *ctx, const char *label, const char *version)
{
	cli_vec *v = ctx;
	if (v->n == v->cap) {
		size_t ncap = v->cap ? v->cap * 2 : 8;
		void *ni = realloc(v->items, ncap * v->size);
		if (ni == NULL)
			return COFFER_ENOMEM;
		v->items = ni;
		v->cap = ncap;
	}
	tgt_label *o = (tgt_label *)v->items + v->n++;
	snprintf(o->label, sizeof o->label, "%s", label);
	snprintf(o->version, sizeof o->version, "%s", version);
	return 0;
}

static int rt_labels(target *t, const char *name, tgt_label **out, size_t *n)
{
	cli_vec v = {.size = sizeof(tgt_label)};
	int rc = coffer_client_labels(cl_of(t), name, rt_collect_label, &v);
	if (rc != COFFER_OK) {
		free(v.items);
		return rc;
	}
	*out = v.items;
	*n = v.n;
	return COFFER_OK;
}

static int rt_del(target *t, const char *name, unsigned days, int64_t *purge_at_ms)
{
	return coffer_client_delete(cl_of(t), name, days, days == 0, purge_at_ms);
}

static int rt_restore(target *t, const char *name)
{
	return coffer_client_restore(cl_of(t), name);
}

static int rt_audit_verify(target *t, uint64_t *entries, uint64_t *first_bad, char *err,
                           size_t errlen)
{
	/* The server's message names the first broken entry: the CLI prints it as is. */
	(void)first_bad;
	(void)err;
	(void)errlen;
	return coffer_client_audit_verify(cl_of(t), entries);
}

static int rt_put_ex(target *t, const char *name, const void *val, size_t len,
                     const coffer_put_opts *opts, char version[COFFER_VERSION_MAX], int *replayed)
{
	return coffer_client_put_ex(cl_of(t), name, val, len, opts, version, replayed);
}

static int rt_describe(target *t, const char *name, coffer_secret_info *out)
{
	return coffer_client_describe(cl_of(t), name, out, NULL, NULL);
}

static int rt_list_page(target *t, const char *prefix, size_t limit, const char *token,
                        tgt_name **out, size_t *n, char next_token[COFFER_PAGE_TOKEN_MAX])
{
	cli_vec v = {.size = sizeof(tgt_name)};
	int rc = coffer_client_list_page(cl_of(t), prefix, limit, token, cli_collect_name, &v,
	                                 next_token);
	if (rc != COFFER_OK) {
		cli_names_free(v.items, v.n);
		return rc;
	}
	*out = v.items;
	*n = v.n;
	return COFFER_OK;
}

static int rt_set_info(target *t, const char *name, const char *description, const char *tags,
                       int64_t max_versions)
{
	return coffer_client_set_info(cl_of(t), name, description, tags, max_versions);
}

static int rt_audit_list(target *t, int64_t since_ms, const char *secret,
                         int (*cb)(void *ctx, const coffer_audit_entry *e), void *ctx)
{
	return coffer_client_audit(cl_of(t), since_ms, secret, cb, ctx);
}

static const target_ops remote_ops = {
    .put = rt_put,
    .access = rt_access,
    .value_free = rt_value_free,
    .versions = rt_versions,
    .list = rt_list,
    .destroy = rt_destroy,
    .errmsg = rt_errmsg,
    .close = rt_close,
    .set_state = rt_set_state,
    .label_set = rt_label_set,
    .label_delete = rt_label_delete,
    .labels = rt_labels,
    .del = rt_del,
    .restore = rt_restore,
    .audit_verify = rt_audit_verify,
    .put_ex = rt_put_ex,
    .describe = rt_describe,
    .list_page = rt_list_page,
    .set_info = rt_set_info,
    .audit_list = rt_audit_list,
};

int cli_remote_open(cli *c, target **out)
{
	char err[1024];
	int tls = cli_has(c, O_TLS) || cli_has(c, O_CA_FILE);
	const char *ca = cli_opt(c, O_CA_FILE);
	if (!tls) {
		int e = env_flag("COFFER_TLS");
		if (e < 0)
			return cli_fail(c, COFFER_EINVAL, "COFFER_TLS wants 1 or 0");
		tls = e || env_nonempty("COFFER_CA_FILE") != NULL;
	}
	if (ca == NULL)
		ca = env_nonempty("COFFER_CA_FILE");
	coffer_client_options o = {
	    .token = c->token,
	    .tls = tls,
	    .ca_file = ca,
	    /* A token means a server with a policy file, where a Declare grants nothing; without
	     * one the server may be a development server, which grants what a caller declares. */
	    .declare = c->token == NULL,
	};
	rtarget *t = calloc(1, sizeof *t);
	if (t == NULL)
		return cli_fail(c, COFFER_ENOMEM, NULL);
	int rc = coffer_client_connect(&t->cl, c->server, &o, err, sizeof err);
	if (rc != COFFER_OK) {
		free(t);
		return cli_fail(c, rc, "%s", err);
	}
	coffer_env_scrub(); /* as in local mode: no key variable reaches a `coffer run` child */
	t->base.ops = &remote_ops;
	t->base.st = NULL;
	*out = &t->base;
	return 0;
}

#else

int cli_remote_open(cli *c, target **out)
{
	return cli_fail(c, COFFER_EMISUSE, "this coffer was built without the client (--server)");
}

#endif

void cli_remote_done(cli *c)
{
	token_free(c->token);
	c->token = NULL;
}
