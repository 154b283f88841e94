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
#include "loop.h"
#include "wipe.h"

static const char usage_text[] =
    "usage: coffer serve [options]\n"
    "\n"
    "Serve the store over Nitric's gRPC protocol (SecretManager Put/Access, Resources\n"
    "Declare), so Nitric SDKs work against it unmodified (set SERVICE_ADDRESS).\n"
    "\n"
    "options:\n"
    "  --listen [SERVICE=]HOST:PORT  listen for the service SERVICE (default 'default');\n"
    "                             repeatable, one port per service; default 127.0.0.1:50051.\n"
    "                             Port 0 picks a free port (printed at start).\n"
    "  --listen [SERVICE=]unix:PATH  listen on a Unix socket (plaintext h2c, mode 0600;\n"
    "                             0666 with --allow-uid); SDKs: SERVICE_ADDRESS=unix:PATH.\n"
    "                             A path that is not a socket is never replaced; the\n"
    "                             socket is removed at exit.\n"
    "  --allow-uid UID|USER       also serve this local user without a token (repeatable).\n"
    "                             Over loopback TCP and Unix sockets, a call without a\n"
    "                             token is served only for the server's own uid, root and\n"
    "                             these; others get UNAUTHENTICATED (16).\n"
    "  --store DIR|URL            the store (default $COFFER_STORE, else ./.coffer)\n"
    "  --threads N                worker threads (default: the number of cores)\n"
    "  --policy FILE              the operator's grants rule, one per line:\n"
    "                               allow SERVICE put|access|put,access SECRET...  ('*': all)\n"
    "                             Without it (development), a service's own policy Declare\n"
    "                             grants it what it declared.\n"
    "  --tokens FILE              bearer tokens, one 'PRINCIPAL TOKEN' per line; clients send\n"
    "                             'authorization: Bearer TOKEN' and act as PRINCIPAL, whatever\n"
    "                             their uid. Needs --policy.\n"
    "  --tls-cert FILE --tls-key FILE  serve TLS (ALPN h2; TLS 1.3, or 1.2 with ECDHE and\n"
    "                             AES-GCM/ChaCha20-Poly1305) instead of plaintext h2c; the key\n"
    "                             file must be mode 0600 (or stricter), not a symlink\n"
    "  --insecure                 allow a non-loopback address without TLS and tokens\n"
    "  --max-value BYTES          largest value accepted (default 65536, at most 1048576)\n"
    "  --policy-wait MS           how long a call waits for its policy Declare (default 1000)\n"
    "  --idle-timeout SECS        close connections idle this long (default 120)\n"
    "  --header-timeout SECS      close connections whose headers stall this long (default 10)\n"
    "  --max-conns N              connections at once (default 1024)\n"
    "  --quiet                    no per-request log lines\n"
    "  --audit                    record every request in the store's audit log before\n"
    "                             answering it (docs/lifecycle.md)\n"
    "  -h, --help                 this text\n"
    "\n"
    "Logs one line per request to stderr (method, principal, secret, version, status,\n"
    "microseconds), never a value. SIGTERM or SIGINT drains in-flight calls and exits 0.\n";

typedef struct serve_opts {
	srv_config cfg;
	const char *store;
	const char *policy;
	const char *tokens;
	const char *tls_cert;
	const char *tls_key;
	int insecure;
	size_t max_value;
	unsigned long policy_wait_ms;
} serve_opts;

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "coffer serve: %s%s%s\n(see 'coffer serve --help')\n", msg,
	        arg != NULL ? ": " : "", arg != NULL ? arg : "");
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

static const char *need_arg(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int parse_number_opt(const char *opt, const char *v, unsigned long lo, unsigned long hi,
                            unsigned long *out)
{
	if (v == NULL || parse_ulong(v, lo, hi, out) != 0) {
		usage_error("bad or missing number for", opt);
		return -1;
	}
	return 0;
}

/* --allow-uid UID|USER: a number is a uid (it need not have a user name); else a user name. */
static int parse_allow_uid(srv_uids *u, const char *v)
{
	unsigned long n;
	uid_t uid;
	if (v == NULL || v[0] == '\0')
		return usage_error("missing value for", "--allow-uid");
	if (u->n_allow >= SRV_MAX_ALLOW)
		return usage_error("too many --allow-uid", NULL);
	if (parse_ulong(v, 0, (uid_t)-2, &n) == 0) {
		uid = (uid_t)n;
	} else {
		struct passwd pw, *found = NULL;
		char buf[4096];
		if (getpwnam_r(v, &pw, buf, sizeof(buf), &found) != 0 || found == NULL)
			return usage_error("--allow-uid: no such user", v);
		uid = found->pw_uid;
	}
	u->allow[u->n_allow++] = uid;
	return 0;
}

static int parse_one(serve_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	unsigned long n;
	srv_config *cfg = &o->cfg;

	if (strcmp(a, "--listen") == 0) {
		const char *v = need_arg(argc, argv, i);
		if (cfg->n_listen >= SRV_MAX_LISTEN)
			return usage_error("too many --listen", NULL);
		if (v == NULL || parse_listen(v, &cfg->listen[cfg->n_listen]) != 0)
			return usage_error(
			    "expected --listen [SERVICE=]HOST:PORT or [SERVICE=]unix:PATH", v);
		cfg->n_listen++;
	} else if (strcmp(a, "--store") == 0 || strcmp(a, "--policy") == 0 ||
	           strcmp(a, "--tokens") == 0 || strcmp(a, "--tls-cert") == 0 ||
	           strcmp(a, "--tls-key") == 0) {
		const char *v = need_arg(argc, argv, i);
		if (v == NULL)
			return usage_error("missing value for", a);
		const char **dst = a[2] == 's'   ? &o->store
		                   : a[2] == 'p' ? &o->policy
		                   : a[3] == 'o' ? &o->tokens
		                   : a[6] == 'c' ? &o->tls_cert
		                                 : &o->tls_key;
		*dst = v;
	} else if (strcmp(a, "--allow-uid") == 0) {
		return parse_allow_uid(&cfg->uids, need_arg(argc, argv, i));
	} else if (strcmp(a, "--insecure") == 0) {
		o->insecure = 1;
	} else if (strcmp(a, "--quiet") == 0) {
		cfg->sh->quiet = 1;
	} else if (strcmp(a, "--audit") == 0) {
		cfg->sh->audit = 1;
	} else if (strcmp(a, "--threads") == 0) {
		if (parse_number_opt(a, need_arg(argc, argv, i), 1, SRV_MAX_THREADS, &n) != 0)
			return 2;
		cfg->threads = (unsigned)n;
	} else if (strcmp(a, "--max-value") == 0) {
		if (parse_number_opt(a, need_arg(argc, argv, i), 1, COFFER_VALUE_HARD_MAX, &n) != 0)
			return 2;
		o->max_value = n;
	} else if (strcmp(a, "--policy-wait") == 0) {
		if (parse_number_opt(a, need_arg(argc, argv, i), 0, 60000, &n) != 0)
			return 2;
		o->policy_wait_ms = n;
	} else if (strcmp(a, "--idle-timeout") == 0 || strcmp(a, "--header-timeout") == 0) {
		if (parse_number_opt(a, need_arg(argc, argv, i), 1, 86400, &n) != 0)
			return 2;
		if (a[2] == 'i')
			cfg->limits.idle_timeout_ms = (uint32_t)(n * 1000);
		else
			cfg->limits.header_timeout_ms = (uint32_t)(n * 1000);
	} else if (strcmp(a, "--max-conns") == 0) {
		if (parse_number_opt(a, need_arg(argc, argv, i), 1, 100000, &n) != 0)
			return 2;
		cfg->max_conns = (unsigned)n;
	} else {
		return usage_error("unknown option", a);
	}
	return 0;
}

static int parse_args(serve_opts *o, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 1;
		}
		int rc = parse_one(o, argc, argv, &i);
		if (rc != 0)
			return rc;
	}
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return usage_error("--tls-cert and --tls-key go together", NULL);
	if (o->tokens != NULL && o->policy == NULL)
		return usage_error(
		    "--tokens needs --policy: without a policy file a caller's own "
		    "Declare grants it what it asks, so a token would authenticate its "
		    "holder and restrict nothing; give --policy FILE with the grants of "
		    "each token's principal",
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
	opts.principal = "server"; /* the library's own audit entries (puts, in their transaction) */
	/* One handle per worker (reads never wait on each other) and one for the committer. */
	for (unsigned i = 0; i <= o->cfg.threads; i++) {
		coffer_store **dst = i < o->cfg.threads ? &o->cfg.stores[i] : committer_st;
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
		fprintf(stderr, "coffer: created store %s\n", where);
	if (created & COFFER_CREATED_KEY_FILE)
		fprintf(
		    stderr,
		    "coffer: created master key file for %s (back it up: without it the secrets "
		    "cannot be read)\n",
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
	printf("coffer: store %s, %u threads, %s, %s\n", where, o->cfg.threads,
	       pol_dev_mode(pol) ? "development policy (a service's own Declare grants it)"
	                         : "policy file rules",
	       memory_locked
	           ? "memory locked"
	           : "memory not locked (RLIMIT_MEMLOCK is limited; keys stay in locked pages)");
	fflush(stdout);
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
	if (srv_bind(&o->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "coffer serve: %s\n", err);
		srv_unbind(&o->cfg);
		close_stores(o, committer_st);
		return 1;
	}
	o->cfg.sh->committer = svc_committer_start(committer_st, err, sizeof(err));
	if (o->cfg.sh->committer == NULL) {
		fprintf(stderr, "coffer serve: %s\n", err);
		srv_unbind(&o->cfg);
		close_stores(o, committer_st);
		return 1;
	}
	announce_ctx ready = {o, pol};
	o->cfg.on_ready = announce;
	o->cfg.ready_ctx = &ready;
	rc = srv_run(&o->cfg) == 0 ? 0 : 1;
	srv_unbind(&o->cfg);
	svc_committer_stop(o->cfg.sh->committer);
	close_stores(o, committer_st);
	fprintf(stderr, "coffer: stopped\n");
	return rc;
}

int coffer_serve_main(int argc, char **argv)
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
	o.store = getenv("COFFER_STORE");
	if ((rc = parse_args(&o, argc, argv)) != 0)
		return rc == 1 ? 0 : rc;
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
	return rc;
}
