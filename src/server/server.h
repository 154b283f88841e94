/*
 * server.h -- the one entry point the coffer CLI uses to run the server.
 */
#ifndef COFFER_SERVER_SERVER_H
#define COFFER_SERVER_SERVER_H

#include <stddef.h>

/*
 * `coffer serve`'s options, as the CLI's parser read them (see `coffer serve --help`); numbers
 * are already checked against their ranges. Zero or NULL means the default.
 */
typedef struct coffer_serve_args coffer_serve_args;

struct coffer_serve_args {
	const char *store;    /* NULL: ./.coffer */
	const char *key_file; /* NULL: the library's order (environment, then the store's own) */
	size_t max_value;
	const char *const *listen; /* [SERVICE=]HOST:PORT or [SERVICE=]unix:PATH */
	size_t n_listen;
	const char *const *allow_uid; /* UID or user name */
	size_t n_allow_uid;
	unsigned threads;
	const char *policy;
	const char *record_policy; /* development: write the kept declarations here at exit */
	const char *tokens;
	const char *tls_cert;
	const char *tls_key;
	int insecure;
	int quiet;
	int audit;              /* --audit: every request into the store's audit log */
	const char *audit_sync; /* --audit-sync: "full" (default) or "os" */
	long policy_wait_ms;    /* -1: the default */
	unsigned idle_timeout_s;
	unsigned header_timeout_s;
	unsigned max_conns;
	const char *metrics;    /* --metrics HOST:PORT, or NULL */
	const char *log_format; /* "text" or "json", or NULL (text) */
	/*
	 * The configuration file these came from in part (--config), or NULL. On SIGHUP the server
	 * calls reread() to read it again, with the same flags and environment on top: 0 and *out
	 * (valid until the next call), or -1 with a message in err (file:line). Only the policy,
	 * token and TLS file settings take effect; the rest is named in the log as needing a
	 * restart.
	 */
	const char *config;
	/* Where an option's value came from, for messages: "FILE:LINE" for the index-th value of
	 * the option (long name) when it came from the file, else NULL. May be NULL. */
	const char *(*origin)(void *ctx, const char *option, size_t index);
	void *origin_ctx;
	int (*reread)(void *ctx, const coffer_serve_args **out, char *err, size_t errlen);
	void *reread_ctx;
};

/*
 * Run `coffer serve`. Blocks until SIGTERM or SIGINT and drains in-flight calls. SIGHUP reads the
 * policy, token and TLS files again (and the configuration file, if any): all of them good, they
 * replace the old ones for new calls and connections without closing any; one bad, nothing changes
 * and a log line says why. Returns the process exit code (0 after a clean drain; 2 for a usage
 * error; otherwise coffer_exit_code() of what failed).
 */
int coffer_serve(const coffer_serve_args *a);

#endif
