/*
 * coffer -- the command-line tool. The commands and options are in table.c, their handlers in
 * cmds.c; here: the entry point, how results and errors are printed (text or JSON), and the
 * local target (a store this process opens with libcoffer).
 */
#include <errno.h>
#include <malloc.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"

/* ---- messages, errors and results --------------------------------------------------------- */

static const char *errname(int rc)
{
#define X(name, value, msg, grpc, exitcode)                                                        \
	if (rc == (value))                                                                         \
		return #name;
	COFFER_ERROR_LIST(X)
#undef X
	return "EUNKNOWN";
}

void cli_note(cli *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!c->json) {
		fprintf(stderr, "coffer: %s\n", msg);
		return;
	}
	if (c->messages == NULL)
		c->messages = json_array();
	json_array_append_new(c->messages, json_string(msg));
}

/* Report a failure: rc is a coffer_rc (its exit code from the error list) or, when positive, an
 * exit code as is. The message: fmt, else the target's detail, else the code's text. */
__attribute__((format(printf, 4, 0))) static int failv(cli *c, int rc, const char *hint,
                                                       const char *fmt, va_list ap)
{
	char msg[2048];
	if (fmt != NULL)
		vsnprintf(msg, sizeof msg, fmt, ap);
	else if (c->tgt != NULL && rc < 0)
		snprintf(msg, sizeof msg, "%s", c->tgt->ops->errmsg(c->tgt));
	else
		snprintf(msg, sizeof msg, "%s", rc < 0 ? coffer_strerror(rc) : "failed");
	int code = rc <= 0 ? coffer_exit_code(rc) : rc;
	if (c->json) {
		const char *name = rc <= 0     ? errname(rc)
		                   : rc == 126 ? CLI_ERR_CANNOT_EXEC
		                   : rc == 127 ? CLI_ERR_NO_CMD
		                               : "EOTHER";
		json_t *e = json_pack("{s:s,s:s,s:i}", "code", name, "message", msg, "exit", code);
		if (hint != NULL)
			json_object_set_new(e, "hint", json_string(hint));
		if (c->messages != NULL)
			json_object_set(e, "messages", c->messages);
		json_t *root = json_pack("{s:o}", "error", e);
		json_dumpf(root, stderr, JSON_COMPACT | JSON_ENSURE_ASCII);
		fputc('\n', stderr);
		json_decref(root);
	} else {
		fprintf(stderr, "coffer: error: %s\n", msg);
		if (hint != NULL)
			fprintf(stderr, "coffer: hint: %s\n", hint);
	}
	return code;
}

int cli_fail(cli *c, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int code = failv(c, rc, NULL, fmt, ap);
	va_end(ap);
	return code;
}

static int fail_hint(cli *c, int rc, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_hint(cli *c, int rc, const char *hint, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int code = failv(c, rc, hint, fmt, ap);
	va_end(ap);
	return code;
}

static void json_wipe_free(void *p);

static int write_out(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(1, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int cli_emit(cli *c, json_t *j)
{
	if (j == NULL)
		return cli_fail(c, COFFER_ENOMEM, NULL);
	if (json_is_object(j) && c->messages != NULL)
		json_object_set(j, "messages", c->messages);
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(j);
	if (s == NULL)
		return cli_fail(c, COFFER_ENOMEM, NULL);
	size_t n = strlen(s);
	s[n] = '\n'; /* one write, no stdio buffer keeping a copy */
	int bad = fflush(stdout) != 0 || write_out(s, n + 1) != 0;
	json_wipe_free(s);
	return bad ? cli_fail(c, COFFER_EIO, "cannot write to standard output: %s", strerror(errno))
	           : 0;
}

/* ---- the local target --------------------------------------------------------------------- */

static int lt_secret(target *t, const char *name, unsigned perms, coffer_secret **sec)
{
	return coffer_secret_ref(t->st, name, perms, sec);
}

static int lt_put(target *t, const char *name, const void *val, size_t len,
                  char version[COFFER_VERSION_MAX])
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_put(sec, val, len, version);
	coffer_secret_free(sec);
	return rc;
}

static int lt_access(target *t, const char *name, const char *version, tgt_value *out)
{
	coffer_secret *sec = NULL;
	coffer_value *v = NULL;
	int rc = lt_secret(t, name, COFFER_ACCESS, &sec);
	if (rc == COFFER_OK)
		rc = coffer_access(sec, version, &v);
	coffer_secret_free(sec);
	if (rc != COFFER_OK)
		return rc;
	out->data = coffer_value_data(v, &out->len);
	snprintf(out->version, sizeof out->version, "%s", coffer_value_version(v));
	out->priv = v;
	return COFFER_OK;
}

static void lt_value_free(target *t, tgt_value *v)
{
	coffer_value_free(v->priv);
	memset(v, 0, sizeof *v);
}

static void *vec_push(cli_vec *v)
{
	if (v->n == v->cap) {
		size_t ncap = v->cap ? v->cap * 2 : 16;
		void *ni = realloc(v->items, ncap * v->size);
		if (ni == NULL)
			return NULL;
		v->items = ni;
		v->cap = ncap;
	}
	return (char *)v->items + v->size * v->n++;
}

int cli_collect_version(void *ctx, const coffer_version_info *vi)
{
	tgt_version *o = vec_push(ctx);
	if (o == NULL)
		return COFFER_ENOMEM;
	snprintf(o->version, sizeof o->version, "%s", vi->version);
	o->created_unix_ms = vi->created_unix_ms;
	o->state = vi->state;
	o->size = vi->size;
	o->key_id = vi->key_id;
	return 0;
}

static int lt_versions(target *t, const char *name, tgt_version **out, size_t *n)
{
	coffer_secret *sec = NULL;
	cli_vec v = {.size = sizeof(tgt_version)};
	int rc = lt_secret(t, name, COFFER_ACCESS, &sec);
	if (rc == COFFER_OK)
		rc = coffer_list_versions(sec, cli_collect_version, &v);
	coffer_secret_free(sec);
	if (rc != COFFER_OK) {
		free(v.items);
		return rc;
	}
	*out = v.items;
	*n = v.n;
	return COFFER_OK;
}

int cli_collect_name(void *ctx, const char *name, size_t nversions)
{
	tgt_name *o = vec_push(ctx);
	if (o == NULL)
		return COFFER_ENOMEM;
	if ((o->name = strdup(name)) == NULL) {
		((cli_vec *)ctx)->n--;
		return COFFER_ENOMEM;
	}
	o->nversions = nversions;
	o->declared = 0;
	return 0;
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(((const tgt_name *)x)->name, ((const tgt_name *)y)->name);
}

typedef struct decl_names {
	cli_vec *v;
	size_t nsecrets; /* items[0..nsecrets) are the stored secrets, sorted by name */
} decl_names;

/* A secret a service declared that has no value yet joins the list once, with 0 versions. */
static int collect_declared(void *ctx, const coffer_declaration *d)
{
	decl_names *dn = ctx;
	tgt_name key = {(char *)d->secret, 0, 0}, *items = dn->v->items;
	if (dn->nsecrets > 0 && bsearch(&key, items, dn->nsecrets, sizeof key, name_cmp) != NULL)
		return 0;
	for (size_t i = dn->nsecrets; i < dn->v->n; i++) /* declared by several services */
		if (strcmp(items[i].name, d->secret) == 0)
			return 0;
	int rc = cli_collect_name(dn->v, d->secret, 0);
	if (rc == 0)
		((tgt_name *)dn->v->items)[dn->v->n - 1].declared = 1;
	return rc;
}

void cli_names_free(tgt_name *ns, size_t n)
{
	for (size_t i = 0; ns != NULL && i < n; i++)
		free(ns[i].name);
	free(ns);
}

static int lt_list(target *t, tgt_name **out, size_t *n)
{
	cli_vec v = {.size = sizeof(tgt_name)};
	int rc = coffer_list_secrets(t->st, cli_collect_name, &v);
	if (rc == COFFER_OK) {
		if (v.n > 1)
			qsort(v.items, v.n, sizeof(tgt_name), name_cmp);
		decl_names dn = {&v, v.n};
		rc = coffer_list_declarations(t->st, collect_declared, &dn);
		if (rc == COFFER_EMISUSE) /* a store that keeps no declarations */
			rc = COFFER_OK;
		if (v.n > 1)
			qsort(v.items, v.n, sizeof(tgt_name), name_cmp);
	}
	if (rc != COFFER_OK) {
		cli_names_free(v.items, v.n);
		return rc;
	}
	*out = v.items;
	*n = v.n;
	return COFFER_OK;
}

static int lt_destroy(target *t, const char *name, const char *version,
                      char version_out[COFFER_VERSION_MAX])
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_destroy(sec, version, version_out);
	coffer_secret_free(sec);
	return rc;
}

static const char *lt_errmsg(target *t)
{
	return coffer_errmsg(t->st);
}

static void lt_close(target *t)
{
	coffer_close(t->st);
	free(t);
}

/* The lifecycle: one libcoffer call each. */
static int lt_put_ex(target *t, const char *name, const void *val, size_t len,
                     const coffer_put_opts *opts, char version[COFFER_VERSION_MAX], int *replayed)
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_put_ex(sec, val, len, opts, version, replayed);
	coffer_secret_free(sec);
	return rc;
}

static int lt_set_state(target *t, const char *name, const char *version, int enable,
                        char version_out[COFFER_VERSION_MAX])
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = enable ? coffer_enable(sec, version, version_out)
		            : coffer_disable(sec, version, version_out);
	coffer_secret_free(sec);
	return rc;
}

static int lt_label_set(target *t, const char *name, const char *label, const char *version,
                        char version_out[COFFER_VERSION_MAX])
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_label_set(sec, label, version, version_out);
	coffer_secret_free(sec);
	return rc;
}

static int lt_label_delete(target *t, const char *name, const char *label)
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_label_delete(sec, label);
	coffer_secret_free(sec);
	return rc;
}

static int collect_label(void *ctx, const char *label, const char *version)
{
	tgt_label *o = vec_push(ctx);
	if (o == NULL)
		return COFFER_ENOMEM;
	snprintf(o->label, sizeof o->label, "%s", label);
	snprintf(o->version, sizeof o->version, "%s", version);
	return 0;
}

static int lt_labels(target *t, const char *name, tgt_label **out, size_t *n)
{
	coffer_secret *sec = NULL;
	cli_vec v = {.size = sizeof(tgt_label)};
	int rc = lt_secret(t, name, COFFER_ACCESS, &sec);
	if (rc == COFFER_OK)
		rc = coffer_list_labels(sec, collect_label, &v);
	coffer_secret_free(sec);
	if (rc != COFFER_OK) {
		free(v.items);
		return rc;
	}
	*out = v.items;
	*n = v.n;
	return COFFER_OK;
}

static int lt_del(target *t, const char *name, unsigned days, int64_t *purge_at_ms)
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_delete(sec, days, purge_at_ms);
	coffer_secret_free(sec);
	return rc;
}

static int lt_restore(target *t, const char *name)
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_restore(sec);
	coffer_secret_free(sec);
	return rc;
}

static int lt_describe(target *t, const char *name, coffer_secret_info *out)
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_ACCESS, &sec);
	if (rc == COFFER_OK)
		rc = coffer_describe(sec, out);
	coffer_secret_free(sec);
	return rc;
}

static int lt_set_info(target *t, const char *name, const char *description, const char *tags,
                       int64_t max_versions)
{
	coffer_secret *sec = NULL;
	int rc = lt_secret(t, name, COFFER_PUT, &sec);
	if (rc == COFFER_OK && (description != NULL || tags != NULL))
		rc = coffer_set_info(sec, description, tags);
	if (rc == COFFER_OK && max_versions >= 0)
		rc = coffer_set_max_versions(sec, (uint64_t)max_versions);
	coffer_secret_free(sec);
	return rc;
}

static int lt_list_page(target *t, const char *prefix, size_t limit, const char *token,
                        tgt_name **out, size_t *n, char next_token[COFFER_PAGE_TOKEN_MAX])
{
	cli_vec v = {.size = sizeof(tgt_name)};
	int rc = coffer_list_page(t->st, prefix, limit, token, cli_collect_name, &v, next_token);
	if (rc != COFFER_OK) {
		cli_names_free(v.items, v.n);
		return rc;
	}
	*out = v.items;
	*n = v.n;
	return COFFER_OK;
}

static int lt_audit_list(target *t, int64_t since_ms, const char *secret,
                         int (*cb)(void *ctx, const coffer_audit_entry *e), void *ctx)
{
	return coffer_audit_list(t->st, since_ms, secret, cb, ctx);
}

static int lt_audit_verify(target *t, uint64_t *entries, uint64_t *first_bad, char *err,
                           size_t errlen)
{
	return coffer_audit_verify(t->st, entries, first_bad, err, errlen);
}

static const target_ops local_ops = {
    .put = lt_put,
    .access = lt_access,
    .value_free = lt_value_free,
    .versions = lt_versions,
    .list = lt_list,
    .destroy = lt_destroy,
    .errmsg = lt_errmsg,
    .close = lt_close,
    .put_ex = lt_put_ex,
    .set_state = lt_set_state,
    .label_set = lt_label_set,
    .label_delete = lt_label_delete,
    .labels = lt_labels,
    .del = lt_del,
    .restore = lt_restore,
    .describe = lt_describe,
    .set_info = lt_set_info,
    .list_page = lt_list_page,
    .audit_list = lt_audit_list,
    .audit_verify = lt_audit_verify,
};

const char *cli_store_location(const cli *c)
{
	const char *loc = cli_opt(c, O_STORE);
	if (loc == NULL)
		loc = getenv("COFFER_STORE");
	return loc == NULL || loc[0] == '\0' ? "./.coffer" : loc;
}

/* The key file an open without a key would read: --key-file, COFFER_KEY_FILE, else the store's
 * default (the library knows where). Empty when there is none. */
static void key_file_in_use(const cli *c, char *buf, size_t len)
{
	const char *kf = cli_opt(c, O_KEY_FILE);
	if (kf == NULL && (kf = getenv("COFFER_KEY_FILE")) != NULL && kf[0] == '\0')
		kf = NULL;
	buf[0] = '\0';
	if (kf != NULL)
		snprintf(buf, len, "%s", kf);
	else if (coffer_default_key_file(cli_store_location(c), buf, len) != COFFER_OK)
		buf[0] = '\0';
}

/* After "wrong master key": what a rekey may have left, and where the key may be now. */
static void wrong_key_hint(const cli *c, char *hint, size_t len)
{
	char kf[4096], next[4096 + 8];
	key_file_in_use(c, kf, sizeof kf);
	int from_env = getenv("COFFER_MASTER_KEY") != NULL || getenv("COFFER_PASSPHRASE") != NULL;
	int n = -1;
	if (kf[0] != '\0' && !from_env &&
	    snprintf(next, sizeof next, "%s.new", kf) < (int)sizeof next && access(next, F_OK) == 0)
		n = snprintf(hint, len,
		             "an interrupted 'coffer rekey' left %s; if the store opens with "
		             "--key-file %s, move that file to %s",
		             next, next, kf);
	else if (kf[0] != '\0' && !from_env)
		n = snprintf(
		    hint, len,
		    "after 'coffer rekey --new-key-file F' the store opens only with F: give "
		    "--key-file F (or COFFER_KEY_FILE=F), or move F over %s",
		    kf);
	if (n >= (int)len) /* paths too long to show whole: the generic hint */
		n = -1;
	if (n < 0)
		snprintf(hint, len,
		         "after 'coffer rekey --new-key-file F' the store opens only with F: give "
		         "--key-file F (or COFFER_KEY_FILE=F)");
}

int cli_open_local(cli *c, int create, coffer_store **out)
{
	char err[1024], shown[1024], hint[8192], principal[300];
	/* The audit log names who acted: cli:USER (the real uid's name, else the number). */
	struct passwd *pw = getpwuid(getuid());
	if (pw != NULL && pw->pw_name != NULL && strlen(pw->pw_name) < 256)
		snprintf(principal, sizeof principal, "cli:%s", pw->pw_name);
	else
		snprintf(principal, sizeof principal, "cli:%u", (unsigned)getuid());
	coffer_options o = {.key_file = cli_opt(c, O_KEY_FILE),
	                    .principal = principal,
	                    .max_value = c->num[O_MAX_VALUE],
	                    .flags = create ? 0 : COFFER_OPEN_NO_CREATE};
	const char *loc = cli_store_location(c);
	if (o.max_value == 0) {
		const char *env = getenv("COFFER_MAX_VALUE");
		unsigned long v = 0;
		size_t i = 0;
		for (; env != NULL && env[i] >= '0' && env[i] <= '9' && i < 8; i++)
			v = v * 10 + (unsigned long)(env[i] - '0');
		if (env != NULL && env[0] != '\0' &&
		    (i == 0 || env[i] != '\0' || v < 1 || v > COFFER_VALUE_HARD_MAX))
			return cli_fail(c, COFFER_EINVAL, "COFFER_MAX_VALUE wants 1 to %d (bytes)",
			                COFFER_VALUE_HARD_MAX);
		o.max_value = v;
	}
	wrong_key_hint(c, hint, sizeof hint); /* before the environment is scrubbed */
	int rc = coffer_open(out, loc, &o, err, sizeof err);
	coffer_env_scrub(); /* nothing of the key reaches a `coffer run` child */
	if (rc == COFFER_ENOTFOUND && !create)
		return cli_fail(c, rc, "no store at %s (create one with coffer init)",
		                coffer_location_display(loc, shown, sizeof shown));
	if (rc != COFFER_OK)
		return rc == COFFER_EKEY && strstr(err, "wrong master key") != NULL
		           ? fail_hint(c, rc, hint, "%s", err)
		           : cli_fail(c, rc, "%s", err);
	unsigned cr = coffer_created(*out);
	loc = coffer_location_display(loc, shown, sizeof shown);
	if (cr & COFFER_CREATED_STORE)
		cli_note(c, "created store %s", loc);
	if (cr & COFFER_CREATED_KEY_FILE)
		cli_note(
		    c,
		    "created master key file for %s (back it up: without it the secrets cannot "
		    "be read)",
		    loc);
	return 0;
}

/* Open what the command runs against: the server of remote mode (cli_remote_check() decided),
 * else the local store. */
int cli_target_open(cli *c, int create)
{
	if (c->server != NULL)
		return cli_remote_open(c, &c->tgt);
	target *t = calloc(1, sizeof *t);
	if (t == NULL)
		return cli_fail(c, COFFER_ENOMEM, NULL);
	int rc = cli_open_local(c, create, &t->st);
	if (rc != 0) {
		free(t);
		return rc;
	}
	t->ops = &local_ops;
	c->tgt = t;
	return 0;
}

/* ---- entry -------------------------------------------------------------------------------- */

static void harden(void)
{
	/* Values pass through this process: no core dumps, no ptrace attach by others. */
	struct rlimit no = {0, 0};
	setrlimit(RLIMIT_CORE, &no);
#if !defined(__SANITIZE_ADDRESS__)
	/* Not in sanitizer builds: LeakSanitizer attaches to the process with ptrace at exit,
	 * which a non-dumpable process refuses to a user without CAP_SYS_PTRACE. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

/* JSON strings may hold a value (access --json): jansson's memory is wiped when freed. */
static void *json_alloc(size_t n)
{
	return malloc(n);
}

static void json_wipe_free(void *p)
{
	if (p != NULL)
		explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

int main(int argc, char **argv)
{
	harden();
	json_set_alloc_funcs(json_alloc, json_wipe_free);
	cli c = {0};
	int rc = cli_parse(&c, argc, argv);
	if (rc == 0)
		rc = cli_remote_check(&c);
	if (rc == 0)
		rc = c.cmd->run(&c);
	else if (rc < 0)
		rc = 0;
	if (c.tgt != NULL)
		c.tgt->ops->close(c.tgt);
	cli_remote_done(&c);
	json_decref(c.messages);
	free(c.seen);
	free(c.args);
	return rc;
}
