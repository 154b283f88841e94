/*
 * serve_main.c -- `coffer serve`: options, hardening, stores, and the run (see server.h).
 */
#include "server.h"

#include <errno.h>
#include <pwd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/thread.h>
#include <sodium.h>

#include "coffer.h"
#include "log.h"
#include "auditq.h"
#include "loop.h"
#include "metrics.h"
#include "notify.h"
#include "wipe.h"
#include "wire.h"

typedef struct serve_opts {
	srv_config cfg;
	const char *store;
	const char *key_file;
	const char *policy;
	const char *tokens;
	const char *tls_cert;
	const char *tls_key;
	const char *record_policy; /* --record-policy FILE */
	int insecure;
	size_t max_value;
	unsigned long policy_wait_ms;
	const char *metrics; /* --metrics HOST:PORT, or NULL */
	char metrics_host[256];
	unsigned metrics_port;
	int metrics_bound;
	const coffer_serve_args *args; /* as started (what a changed file is compared with) */
	char *cur_policy, *cur_tokens, *cur_cert, *cur_key; /* reloaded paths (NULL: as started) */
	coffer_store *audit_st; /* --audit: the audit committer's handle */
	int audit_nosync;       /* --audit-sync os */
} serve_opts;

/*
 * The store when --store is not given: $COFFER_STORE, else $STATE_DIRECTORY (systemd's
 * StateDirectory=, e.g. /var/lib/coffer: the first path when it lists several), else NULL, which
 * the library takes as ./.coffer. Under systemd the working directory is /, so without this a
 * unit would need --store spelled out to avoid /.coffer.
 */
static const char *default_store(void)
{
	static char state[4096];
	const char *s = getenv("COFFER_STORE");
	if (s != NULL && s[0] != '\0')
		return s;
	s = getenv("STATE_DIRECTORY");
	if (s == NULL || s[0] != '/')
		return NULL;
	size_t n = strcspn(s, ":");
	if (n >= sizeof(state))
		return NULL;
	memcpy(state, s, n);
	state[n] = '\0';
	return state;
}

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "coffer serve: %s%s%s\nTry 'coffer serve --help'.\n", msg,
	        arg != NULL ? ": " : "", arg != NULL ? arg : "");
	return 2;
}

/* A bad value of an option: named with the configuration file's line when it came from there. */
static int value_error(const coffer_serve_args *a, const char *option, size_t index,
                       const char *msg, const char *arg)
{
	const char *at = a->origin != NULL ? a->origin(a->origin_ctx, option, index) : NULL;
	if (at == NULL)
		return usage_error(msg, arg);
	fprintf(stderr, "coffer serve: %s: %s (%s)\n", at, msg, option);
	return 2;
}

static int parse_ulong(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* unix:PATH -- the path as given (relative to the server's working directory, or absolute). */
static int parse_unix(const char *path, srv_listen *l)
{
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(l->path))
		return -1;
	memcpy(l->path, path, n + 1);
	l->is_unix = 1;
	return 0;
}

/* [SERVICE=]HOST:PORT, HOST may be [v6]; or [SERVICE=]unix:PATH. */
static int parse_listen(const char *arg, srv_listen *l)
{
	const char *eq = strchr(arg, '=');
	const char *hp = arg;
	memset(l, 0, sizeof(*l));
	snprintf(l->principal, sizeof(l->principal), "default");
	/* "unix:PATH" names no service: an '=' in it is part of the path. */
	if (eq != NULL && strncmp(arg, "unix:", 5) != 0) {
		if (!pol_principal_ok(arg, (size_t)(eq - arg)))
			return -1;
		snprintf(l->principal, sizeof(l->principal), "%.*s", (int)(eq - arg), arg);
		hp = eq + 1;
	}
	if (strncmp(hp, "unix:", 5) == 0)
		return parse_unix(hp + 5, l);
	const char *colon = strrchr(hp, ':');
	if (colon == NULL || colon == hp || colon[1] == '\0')
		return -1;
	const char *h = hp;
	size_t hlen = (size_t)(colon - hp);
	if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	unsigned long port;
	if (hlen == 0 || hlen >= sizeof(l->host) || parse_ulong(colon + 1, 0, 65535, &port) != 0)
		return -1;
	snprintf(l->host, sizeof(l->host), "%.*s", (int)hlen, h);
	snprintf(l->port, sizeof(l->port), "%lu", port);
	return 0;
}

/* --allow-uid UID|USER: a number is a uid (it need not have a user name); else a user name. */
static int parse_allow_uid(srv_uids *u, const coffer_serve_args *a, size_t i)
{
	unsigned long n;
	uid_t uid;
	const char *v = a->allow_uid[i];
	if (v == NULL || v[0] == '\0')
		return value_error(a, "allow-uid", i, "missing value for", "--allow-uid");
	if (u->n_allow >= SRV_MAX_ALLOW)
		return value_error(a, "allow-uid", i, "too many --allow-uid", NULL);
	if (parse_ulong(v, 0, (uid_t)-2, &n) == 0) {
		uid = (uid_t)n;
	} else {
		struct passwd pw, *found = NULL;
		char buf[4096];
		if (getpwnam_r(v, &pw, buf, sizeof(buf), &found) != 0 || found == NULL)
			return value_error(a, "allow-uid", i, "--allow-uid: no such user", v);
		uid = found->pw_uid;
	}
	u->allow[u->n_allow++] = uid;
	return 0;
}

/* The parsed options (numbers are range-checked by the CLI's parser) into the configuration;
 * what only the server can judge (addresses, users, combinations) is judged here. */
static int apply_args(serve_opts *o, const coffer_serve_args *a)
{
	srv_config *cfg = &o->cfg;
	if (a->store != NULL)
		o->store = a->store;
	o->key_file = a->key_file;
	o->policy = a->policy;
	o->record_policy = a->record_policy;
	o->tokens = a->tokens;
	o->tls_cert = a->tls_cert;
	o->tls_key = a->tls_key;
	o->insecure = a->insecure;
	o->max_value = a->max_value;
	cfg->sh->quiet = a->quiet;
	cfg->sh->audit = a->audit;
	if (a->audit_sync != NULL) {
		if (strcmp(a->audit_sync, "full") != 0 && strcmp(a->audit_sync, "os") != 0)
			return value_error(a, "audit-sync", 0, "expected --audit-sync full or os",
			                   a->audit_sync);
		o->audit_nosync = strcmp(a->audit_sync, "os") == 0;
		if (!a->audit)
			return usage_error("--audit-sync is for --audit", NULL);
	}
	if (a->n_listen > SRV_MAX_LISTEN)
		return usage_error("too many --listen", NULL);
	for (size_t i = 0; i < a->n_listen; i++) {
		if (parse_listen(a->listen[i], &cfg->listen[cfg->n_listen]) != 0)
			return value_error(
			    a, "listen", i,
			    "expected --listen [SERVICE=]HOST:PORT or [SERVICE=]unix:PATH",
			    a->listen[i]);
		cfg->n_listen++;
	}
	if (a->metrics != NULL) {
		if (metrics_parse_addr(a->metrics, o->metrics_host, sizeof(o->metrics_host),
		                       &o->metrics_port) != 0)
			return value_error(a, "metrics", 0, "expected --metrics HOST:PORT",
			                   a->metrics);
		o->metrics = a->metrics;
	}
	if (a->log_format != NULL) {
		log_format f;
		if (log_parse_format(a->log_format, &f) != 0)
			return value_error(a, "log-format", 0, "expected --log-format text or json",
			                   a->log_format);
		log_set_format(f);
	}
	for (size_t i = 0; i < a->n_allow_uid; i++) {
		int rc = parse_allow_uid(&cfg->uids, a, i);
		if (rc != 0)
			return rc;
	}
	if (a->threads > SRV_MAX_THREADS)
		return usage_error("too many --threads", NULL);
	cfg->threads = a->threads;
	if (a->policy_wait_ms >= 0)
		o->policy_wait_ms = (unsigned long)a->policy_wait_ms;
	if (a->idle_timeout_s != 0)
		cfg->limits.idle_timeout_ms = a->idle_timeout_s * 1000u;
	if (a->header_timeout_s != 0)
		cfg->limits.header_timeout_ms = a->header_timeout_s * 1000u;
	if (a->max_conns != 0)
		cfg->max_conns = a->max_conns;
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return usage_error("--tls-cert and --tls-key go together", NULL);
	if (o->tokens != NULL && o->policy == NULL)
		return usage_error(
		    "--tokens needs --policy: without a policy file a caller's own "
		    "Declare grants it what it asks, so a token would authenticate its "
		    "holder and restrict nothing; give --policy FILE with the grants of "
		    "each token's principal",
		    NULL);
	if (o->record_policy != NULL && o->policy != NULL)
		return usage_error(
		    "--record-policy writes what development mode learns; it does not "
		    "go with --policy",
		    NULL);
	if (o->cfg.n_listen == 0) {
		parse_listen("127.0.0.1:50051", &o->cfg.listen[0]);
		o->cfg.n_listen = 1;
	}
	if (o->cfg.threads == 0) {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		o->cfg.threads = nc < 1 ? 1 : nc > SRV_MAX_THREADS ? SRV_MAX_THREADS : (unsigned)nc;
	}
	return 0;
}

/* No core file and no ptrace attach: the process holds keys and plaintext. */
static int memory_locked;

/*
 * Keep values out of swap where the system allows it: lock every page as it is faulted in.
 * Only with an unlimited RLIMIT_MEMLOCK (raised here when privileged): under a finite limit,
 * MCL_FUTURE would turn allocations past the limit into failures.
 */
static void lock_memory(void)
{
#if !defined(__SANITIZE_ADDRESS__) && defined(MCL_ONFAULT)
	/* (Not under ASan, whose shadow memory is far too large to lock.) */
	struct rlimit ml = {RLIM_INFINITY, RLIM_INFINITY};
	if (setrlimit(RLIMIT_MEMLOCK, &ml) != 0 && getrlimit(RLIMIT_MEMLOCK, &ml) != 0)
		return;
	if (ml.rlim_cur == RLIM_INFINITY && mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0)
		memory_locked = 1;
#endif
}

static void harden(void)
{
	struct rlimit rl = {0, 0};
	setrlimit(RLIMIT_CORE, &rl);
#if !defined(__SANITIZE_ADDRESS__)
	/* Not in sanitizer builds: LeakSanitizer attaches to the process with ptrace at exit. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
	lock_memory();
	signal(SIGPIPE, SIG_IGN);
}

static int open_stores(serve_opts *o, coffer_store **committer_st)
{
	coffer_options opts;
	char err[512];
	memset(&opts, 0, sizeof(opts));
	opts.max_value = o->max_value;
	opts.key_file = o->key_file;
	opts.principal =
	    "server"; /* the library's own audit entries (puts, in their transaction) */
	/* One handle per worker (reads never wait on each other), one for the committer and,
	 * with --audit, one for the audit committer. */
	for (unsigned i = 0; i <= o->cfg.threads + (o->cfg.sh->audit ? 1 : 0); i++) {
		coffer_store **dst = i < o->cfg.threads    ? &o->cfg.stores[i]
		                     : i == o->cfg.threads ? committer_st
		                                           : &o->audit_st;
		opts.flags = dst == &o->audit_st && o->audit_nosync ? COFFER_OPEN_AUDIT_NOSYNC : 0;
		int rc = coffer_open(dst, o->store, &opts, err, sizeof(err));
		if (rc != COFFER_OK) {
			fprintf(stderr, "coffer serve: cannot open the store: %s\n", err);
			return coffer_exit_code(rc);
		}
	}
	coffer_env_scrub(); /* every handle holds its key: the environment's copy goes */
	return 0;
}

static void close_stores(serve_opts *o, coffer_store *committer_st)
{
	for (unsigned i = 0; i < o->cfg.threads; i++)
		coffer_close(o->cfg.stores[i]);
	coffer_close(committer_st);
	coffer_close(o->audit_st);
	o->audit_st = NULL;
}

/*
 * The declarations kept in the store (issue 13 item 8). In development they are granted again,
 * so a restart keeps what the programs declared; with a policy file they grant nothing, and
 * those the file does not cover are counted (coffer policy show lists them).
 */
typedef struct decl_load {
	pol_table *pol;
	size_t n, uncovered;
} decl_load;

static int load_decl(void *ctx, const coffer_declaration *d)
{
	decl_load *l = ctx;
	if (!pol_principal_ok(d->service, strlen(d->service)) ||
	    coffer_name_check(d->secret, strlen(d->secret)) != COFFER_OK)
		return 0; /* not one coffer wrote: ignored */
	unsigned acts = d->actions & (WIRE_PERM_PUT | WIRE_PERM_ACCESS);
	pol_record(l->pol, d->service, d->secret, acts);
	l->n++;
	if (pol_dev_mode(l->pol))
		pol_declare(l->pol, d->service, d->secret, acts);
	else if (((acts & WIRE_PERM_PUT) &&
	          pol_check(l->pol, d->service, d->secret, WIRE_PERM_PUT) != POL_ALLOW) ||
	         ((acts & WIRE_PERM_ACCESS) &&
	          pol_check(l->pol, d->service, d->secret, WIRE_PERM_ACCESS) != POL_ALLOW))
		l->uncovered++;
	return 0;
}

static int load_declarations(coffer_store *st, pol_table *pol)
{
	decl_load l = {pol, 0, 0};
	int rc = coffer_list_declarations(st, load_decl, &l);
	if (rc != COFFER_OK) {
		fprintf(stderr,
		        "coffer serve: cannot read the declarations kept in the store: %s\n",
		        coffer_errmsg(st));
		return coffer_exit_code(rc);
	}
	if (l.n > 0 && pol_dev_mode(pol))
		fprintf(stderr,
		        "coffer: %zu declaration(s) kept from earlier runs, granted again "
		        "(development)\n",
		        l.n);
	if (l.uncovered > 0)
		fprintf(stderr,
		        "coffer: %zu declared grant(s) are not in the policy file: they are "
		        "denied (coffer policy show lists what was declared)\n",
		        l.uncovered);
	return 0;
}

/* --record-policy FILE: every declaration kept in the store, as a policy file --policy takes;
 * written whole to FILE.tmp, then renamed over FILE. */
static int write_decl(void *ctx, const coffer_declaration *d)
{
	FILE *f = ctx;
	unsigned a = d->actions & (WIRE_PERM_PUT | WIRE_PERM_ACCESS);
	if (a == 0)
		fprintf(f, "# %s declared %s without any action\n", d->service, d->secret);
	else
		fprintf(f, "allow %s %s %s\n", d->service,
		        a == (WIRE_PERM_PUT | WIRE_PERM_ACCESS) ? "put,access"
		        : a == WIRE_PERM_PUT                    ? "put"
		                                                : "access",
		        d->secret);
	return 0;
}

static int record_policy(const char *path, coffer_store *st)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		fprintf(stderr, "coffer serve: --record-policy: path too long\n");
		return 1;
	}
	FILE *f = fopen(tmp, "we");
	if (f == NULL) {
		fprintf(stderr, "coffer serve: --record-policy: %s: %s\n", tmp, strerror(errno));
		return 1;
	}
	fprintf(f,
	        "# Recorded by coffer serve --record-policy: what the services declared in\n"
	        "# development mode. Run with: coffer serve --policy %s\n",
	        path);
	int rc = coffer_list_declarations(st, write_decl, f);
	int bad = ferror(f) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
	bad |= fclose(f) != 0;
	if (rc != COFFER_OK || bad || rename(tmp, path) != 0) {
		fprintf(stderr, "coffer serve: --record-policy: cannot write %s: %s\n", path,
		        rc != COFFER_OK ? coffer_errmsg(st) : strerror(errno));
		unlink(tmp);
		return 1;
	}
	fprintf(stderr, "coffer: wrote the declared grants to %s\n", path);
	return 0;
}

static int load_policy(serve_opts *o, pol_table *pol)
{
	char err[512];
	if (o->policy != NULL && pol_load_file(pol, o->policy, err, sizeof(err)) != 0) {
		fprintf(stderr, "coffer serve: policy: %s\n", err);
		return 2;
	}
	if (o->tokens != NULL && pol_load_tokens(pol, o->tokens, err, sizeof(err)) < 0) {
		fprintf(stderr, "coffer serve: tokens: %s\n", err);
		return 2;
	}
	return 0;
}

/*
 * A listener off loopback needs TLS and tokens, unless the operator insists. Decided on the
 * resolved addresses, before any socket is bound or the store opened.
 */
static int check_exposure(serve_opts *o, pol_table *pol)
{
	for (size_t i = 0; i < o->cfg.n_listen; i++) {
		srv_listen *l = &o->cfg.listen[i];
		int local = l->loopback || l->is_unix;
		l->need_token = !local && pol_token_count(pol) > 0;
		if (local || o->insecure || (o->tls_cert != NULL && pol_token_count(pol) > 0))
			continue;
		fprintf(stderr,
		        "coffer serve: refusing to listen on %s (not loopback) without TLS "
		        "(--tls-cert/--tls-key) and tokens (--tokens); --insecure forces it\n",
		        l->host);
		return 2;
	}
	return 0;
}

/* Which local users may call without a token, when some listener is local. */
static void announce_uids(const srv_config *cfg)
{
	int local = 0;
	for (size_t i = 0; i < cfg->n_listen; i++)
		local |= cfg->listen[i].loopback || cfg->listen[i].is_unix;
	if (!local)
		return;
	if (cfg->uids.self == 0)
		printf("coffer: local callers served without a token: uid 0 (root, this server's)");
	else
		printf("coffer: local callers served without a token: uid %u (this server's), root",
		       (unsigned)cfg->uids.self);
	for (size_t i = 0; i < cfg->uids.n_allow; i++)
		printf(", uid %u", (unsigned)cfg->uids.allow[i]);
	printf("\n");
}

typedef struct announce_ctx {
	serve_opts *o;
	pol_table *pol;
} announce_ctx;

/* The start-up lines; the last ("coffer: store ...") is what scripts and tests wait for, so it
 * is printed only once every worker runs. */
static void announce(void *ctx)
{
	serve_opts *o = ((announce_ctx *)ctx)->o;
	pol_table *pol = ((announce_ctx *)ctx)->pol;
	char shown[1024];
	const char *where = coffer_location_display(o->store, shown, sizeof(shown));
	unsigned created = coffer_created(o->cfg.stores[0]);
	if (created & COFFER_CREATED_STORE)
		log_msg("info", "created store %s", where);
	if (created & COFFER_CREATED_KEY_FILE)
		log_msg("warn",
		        "created master key file for %s (back it up: without it the secrets "
		        "cannot be read)",
		        where);
	for (size_t i = 0; i < o->cfg.n_listen; i++) {
		const srv_listen *l = &o->cfg.listen[i];
		int v6 = strchr(l->host, ':') != NULL;
		if (l->is_unix)
			printf("coffer: listening on unix:%s (service %s)\n", l->path,
			       l->principal);
		else
			printf("coffer: listening on %s%s%s:%d (service %s)%s\n", v6 ? "[" : "",
			       l->host, v6 ? "]" : "", l->bound_port, l->principal,
			       o->cfg.tls != NULL ? " tls" : "");
	}
	announce_uids(&o->cfg);
	if (o->metrics != NULL) {
		int v6 = strchr(o->metrics_host, ':') != NULL;
		printf("coffer: metrics on http://%s%s%s:%d/metrics\n", v6 ? "[" : "",
		       o->metrics_host, v6 ? "]" : "", o->metrics_bound);
	}
	printf("coffer: store %s, %u threads, %s, %s\n", where, o->cfg.threads,
	       pol_dev_mode(pol) ? "development policy (a service's own Declare grants it)"
	                         : "policy file rules",
	       memory_locked
	           ? "memory locked"
	           : "memory not locked (RLIMIT_MEMLOCK is limited; keys stay in locked pages)");
	fflush(stdout);
	char status[1200];
	snprintf(status, sizeof(status), "serving %s on %zu listener%s", where, o->cfg.n_listen,
	         o->cfg.n_listen == 1 ? "" : "s");
	notify_ready(status);
}

/* ---- SIGHUP ----------------------------------------------------------------------------- */

static int same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_list(const char *const *a, size_t na, const char *const *b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (!same_str(a[i], b[i]))
			return 0;
	return 1;
}

static void add_name(char *buf, size_t len, const char *name)
{
	size_t n = strlen(buf);
	snprintf(buf + n, len - n, "%s%s", n > 0 ? ", " : "", name);
}

/* The settings of the re-read file that differ from the running ones and that only a restart
 * applies, by option name, into buf ("" when none). */
static void restart_needed(const coffer_serve_args *was, const coffer_serve_args *now, char *buf,
                           size_t len)
{
	buf[0] = '\0';
	if (!same_str(was->store, now->store))
		add_name(buf, len, "store");
	if (!same_str(was->key_file, now->key_file))
		add_name(buf, len, "key-file");
	if (was->max_value != now->max_value)
		add_name(buf, len, "max-value");
	if (!same_list(was->listen, was->n_listen, now->listen, now->n_listen))
		add_name(buf, len, "listen");
	if (!same_list(was->allow_uid, was->n_allow_uid, now->allow_uid, now->n_allow_uid))
		add_name(buf, len, "allow-uid");
	if (was->threads != now->threads)
		add_name(buf, len, "threads");
	if (!same_str(was->record_policy, now->record_policy))
		add_name(buf, len, "record-policy");
	if (was->insecure != now->insecure)
		add_name(buf, len, "insecure");
	if (was->quiet != now->quiet)
		add_name(buf, len, "quiet");
	if (was->audit != now->audit)
		add_name(buf, len, "audit");
	if (!same_str(was->audit_sync, now->audit_sync))
		add_name(buf, len, "audit-sync");
	if (was->policy_wait_ms != now->policy_wait_ms)
		add_name(buf, len, "policy-wait");
	if (was->idle_timeout_s != now->idle_timeout_s)
		add_name(buf, len, "idle-timeout");
	if (was->header_timeout_s != now->header_timeout_s)
		add_name(buf, len, "header-timeout");
	if (was->max_conns != now->max_conns)
		add_name(buf, len, "max-conns");
	if (!same_str(was->metrics, now->metrics))
		add_name(buf, len, "metrics");
	if (!same_str(was->log_format, now->log_format))
		add_name(buf, len, "log-format");
	/* A file setting turned on or off changes the mode (development, exposure, h2c or TLS):
	 * only a path changed between two files is applied by a reload. */
	if ((was->policy == NULL) != (now->policy == NULL))
		add_name(buf, len, "policy (on/off)");
	if ((was->tokens == NULL) != (now->tokens == NULL))
		add_name(buf, len, "tokens (on/off)");
	if ((was->tls_cert == NULL) != (now->tls_cert == NULL))
		add_name(buf, len, "tls-cert/tls-key (on/off)");
}

static int set_path(char **cur, const char *v)
{
	char *c = v != NULL ? strdup(v) : NULL;
	if (v != NULL && c == NULL)
		return -1;
	free(*cur);
	*cur = c;
	return 0;
}

static const char *cur_or(const char *cur, const char *start)
{
	return cur != NULL ? cur : start;
}

/* One SIGHUP, on the main thread: every file is read and checked before anything is swapped,
 * so a bad one changes nothing. Log lines name files and counts, never their contents. */
static void reload(void *ctx)
{
	serve_opts *o = ((announce_ctx *)ctx)->o;
	pol_table *pol = ((announce_ctx *)ctx)->pol;
	const coffer_serve_args *a = o->args;
	const char *policy = cur_or(o->cur_policy, o->policy),
	           *tokens = cur_or(o->cur_tokens, o->tokens);
	const char *cert = cur_or(o->cur_cert, o->tls_cert), *key = cur_or(o->cur_key, o->tls_key);
	char err[1024], restart[512] = "", what[1024] = "";
	SSL_CTX *tls = NULL;
	int ok = 0;

	notify_reloading();
	log_msg("info", "SIGHUP: reloading");
	if (a->reread != NULL) {
		const coffer_serve_args *now = NULL;
		if (a->reread(a->reread_ctx, &now, err, sizeof(err)) != 0) {
			log_msg("error", "reload refused, nothing changed: %s", err);
			goto done;
		}
		restart_needed(a, now, restart, sizeof(restart));
		/* Paths of files in use, changed in the configuration file, are taken. */
		if (policy != NULL && now->policy != NULL)
			policy = now->policy;
		if (tokens != NULL && now->tokens != NULL)
			tokens = now->tokens;
		if (cert != NULL && now->tls_cert != NULL && now->tls_key != NULL) {
			cert = now->tls_cert;
			key = now->tls_key;
		}
	}
	if (cert != NULL && (tls = srv_tls_new(cert, key, err, sizeof(err))) == NULL) {
		log_msg("error", "reload refused, nothing changed: %s", err);
		goto done;
	}
	size_t ng = 0, nt = 0;
	if (policy != NULL && pol_reload(pol, policy, tokens, &ng, &nt, err, sizeof(err)) != 0) {
		log_msg("error", "reload refused, nothing changed: %s", err);
		if (tls != NULL)
			SSL_CTX_free(tls);
		goto done;
	}
	if (set_path(&o->cur_policy, policy) != 0 || set_path(&o->cur_tokens, tokens) != 0 ||
	    set_path(&o->cur_cert, cert) != 0 || set_path(&o->cur_key, key) != 0) {
		/* Out of memory after the swap: the new rules hold; the next reload reads the
		 * start-up paths again. */
		log_msg("warn", "reload: out of memory keeping the file names");
	}
	if (tls != NULL)
		srv_tls_swap(&o->cfg, tls);
	if (policy != NULL)
		snprintf(what, sizeof(what), "policy %s (%zu grants)", policy, ng);
	else
		snprintf(what, sizeof(what), "no policy file (development)");
	if (tokens != NULL)
		snprintf(what + strlen(what), sizeof(what) - strlen(what), ", tokens %s (%zu)",
		         tokens, nt);
	if (cert != NULL)
		snprintf(what + strlen(what), sizeof(what) - strlen(what), ", TLS %s", cert);
	log_msg("info", "reloaded: %s", what);
	ok = 1;
done:
	if (restart[0] != '\0')
		log_msg("warn", "%s changed %s: needs a restart, not applied", a->config, restart);
	metrics_reload(ok);
	notify_ready(ok ? "reloaded" : "reload refused; serving with the previous files");
}

static int serve(serve_opts *o, pol_table *pol)
{
	char err[512];
	coffer_store *committer_st = NULL;
	int rc;

	if (srv_resolve(&o->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "coffer serve: %s\n", err);
		return 1;
	}
	if ((rc = check_exposure(o, pol)) != 0)
		return rc;
	if (srv_check_identity(&o->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "coffer serve: %s\n", err);
		return 1;
	}
	if (o->tls_cert != NULL) {
		o->cfg.tls = srv_tls_new(o->tls_cert, o->tls_key, err, sizeof(err));
		if (o->cfg.tls == NULL) {
			fprintf(stderr, "coffer serve: %s\n", err);
			return 2;
		}
	}
	/* The store first: a wrong key is refused before any socket listens. */
	if ((rc = open_stores(o, &committer_st)) != 0) {
		close_stores(o, committer_st);
		return rc;
	}
	if ((rc = load_declarations(committer_st, pol)) != 0) {
		close_stores(o, committer_st);
		return rc;
	}
	if (srv_bind(&o->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "coffer serve: %s\n", err);
		srv_unbind(&o->cfg);
		close_stores(o, committer_st);
		return 1;
	}
	if (o->metrics != NULL && metrics_start(o->metrics_host, o->metrics_port, &o->metrics_bound,
	                                        err, sizeof(err)) != 0) {
		fprintf(stderr, "coffer serve: %s\n", err);
		srv_unbind(&o->cfg);
		close_stores(o, committer_st);
		return 1;
	}
	o->cfg.sh->committer = svc_committer_start(committer_st, err, sizeof(err));
	if (o->cfg.sh->committer == NULL) {
		fprintf(stderr, "coffer serve: %s\n", err);
		metrics_stop();
		srv_unbind(&o->cfg);
		close_stores(o, committer_st);
		return 1;
	}
	/* --audit: the audit committer, on a handle of its own (auditq.h). */
	if (o->cfg.sh->audit &&
	    (o->cfg.sh->auditq = aq_start(o->audit_st, err, sizeof(err))) == NULL) {
		fprintf(stderr, "coffer serve: %s\n", err);
		svc_committer_stop(o->cfg.sh->committer);
		metrics_stop();
		srv_unbind(&o->cfg);
		close_stores(o, committer_st);
		return 1;
	}
	announce_ctx ready = {o, pol};
	o->cfg.on_ready = announce;
	o->cfg.ready_ctx = &ready;
	o->cfg.on_reload = reload;
	o->cfg.reload_ctx = &ready;
	o->cfg.tls_on = o->cfg.tls != NULL;
	rc = srv_run(&o->cfg) == 0 ? 0 : 1;
	metrics_stop();
	srv_unbind(&o->cfg);
	svc_committer_stop(o->cfg.sh->committer);
	aq_free(o->cfg.sh->auditq);
	o->cfg.sh->auditq = NULL;
	if (o->record_policy != NULL && record_policy(o->record_policy, committer_st) != 0)
		rc = 1;
	close_stores(o, committer_st);
	log_msg("info", "stopped");
	return rc;
}

int coffer_serve(const coffer_serve_args *args)
{
	static serve_opts o;
	static svc_shared sh;
	int rc;

	harden();
	srv_block_signals();
	wipe_install_global();
	memset(&o, 0, sizeof(o));
	memset(&sh, 0, sizeof(sh));
	o.cfg.sh = &sh;
	o.cfg.max_conns = 1024;
	o.cfg.uids.self = geteuid();
	o.policy_wait_ms = 1000;
	o.store = default_store();
	o.args = args;
	if ((rc = apply_args(&o, args)) != 0)
		return rc;
	if (sodium_init() < 0 || evthread_use_pthreads() != 0) {
		fprintf(stderr, "coffer serve: cannot initialize libsodium or libevent threads\n");
		return 1;
	}
	sh.max_value = o.max_value != 0 ? o.max_value : COFFER_VALUE_DEFAULT_MAX;
	sh.policy_wait_ms = (unsigned)o.policy_wait_ms;
	sh.pol = pol_new(o.policy == NULL);
	if (sh.pol == NULL)
		return 1;
	rc = load_policy(&o, sh.pol);
	if (rc == 0)
		rc = serve(&o, sh.pol);
	if (o.cfg.tls != NULL)
		SSL_CTX_free(o.cfg.tls);
	for (size_t i = 0; i < o.cfg.n_listen; i++)
		for (unsigned t = 0; t < SRV_MAX_THREADS; t++)
			if (o.cfg.listen[i].fds[t] > 0)
				close(o.cfg.listen[i].fds[t]);
	pol_free(sh.pol);
	free(o.cur_policy);
	free(o.cur_tokens);
	free(o.cur_cert);
	free(o.cur_key);
	return rc;
}
