/*
 * loop.h -- the network side of coffer serve: listeners, one libevent loop per worker thread,
 * TLS, timeouts and the graceful drain on SIGTERM/SIGINT.
 */
#ifndef COFFER_SERVER_LOOP_H
#define COFFER_SERVER_LOOP_H

#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "grpc.h"
#include "policy.h"
#include "service.h"

#define SRV_MAX_LISTEN  32
#define SRV_MAX_THREADS 64
#define SRV_MAX_ALLOW   32  /* --allow-uid entries */
#define SRV_UNIX_PATH   108 /* sizeof(sockaddr_un.sun_path) */

typedef struct srv_listen {
	char principal[POL_PRINCIPAL_MAX];
	char host[256];
	char port[16];
	char path[SRV_UNIX_PATH];     /* a Unix socket listener's path ("" for TCP) */
	struct sockaddr_storage addr; /* resolved by srv_resolve() */
	socklen_t addrlen;
	int is_unix;
	int loopback;
	int need_token;
	int bound_port;
	int twin; /* "localhost": 1 + the index of the IPv4 listener whose port this IPv6 one takes
	           */
	dev_t sock_dev; /* the socket file we created (removed at exit only if still ours) */
	ino_t sock_ino;
	int fds[SRV_MAX_THREADS]; /* one SO_REUSEPORT socket per worker (Unix: one, duplicated) */
} srv_listen;

/*
 * Who may call without a token over loopback TCP or a Unix socket: the server's own uid, root,
 * and the --allow-uid list. A caller of another uid is answered UNAUTHENTICATED unless its call
 * carries a bearer token (which then names it). Over other TCP there is no uid: tokens rule.
 */
typedef struct srv_uids {
	uid_t self;
	uid_t allow[SRV_MAX_ALLOW];
	size_t n_allow;
} srv_uids;

typedef struct srv_config {
	srv_listen listen[SRV_MAX_LISTEN];
	size_t n_listen;
	unsigned threads;
	unsigned max_conns; /* per process */
	SSL_CTX *tls;       /* NULL: plaintext h2c (Unix socket listeners: always); swapped only
	                     * through srv_tls_swap() once workers run */
	int tls_on;         /* tls != NULL at start (set before srv_run) */
	gs_limits limits;
	srv_uids uids;
	svc_shared *sh;
	coffer_store *stores[SRV_MAX_THREADS]; /* one handle per worker */
	/* Called once every worker is set up and running (its sockets, netlink one included,
	 * open), before the first signal is awaited: where `coffer serve` says it is ready. */
	void (*on_ready)(void *ctx);
	void *ready_ctx;
	/* Called on the main thread for each SIGHUP while serving (NULL: SIGHUP is ignored). */
	void (*on_reload)(void *ctx);
	void *reload_ctx;
} srv_config;

/*
 * Resolve every listener's host (the first address) and say whether it is loopback, binding
 * nothing, so that what may be exposed is decided before any socket exists. 0 or -1 with err.
 */
int srv_resolve(srv_config *cfg, char *err, size_t errlen);

/*
 * Bind every resolved listener: n sockets each, one per worker, sharing the port with
 * SO_REUSEPORT; fills bound_port. A port that another process holds is refused ("HOST:PORT is
 * already in use by another process"), never shared. A Unix socket is created with mode 0600, or
 * 0666 when uids are allowed besides the server's own (the peer's uid then decides); a path that
 * is not a socket is never replaced, a socket another server listens on is refused, and a stale
 * one (left by a server that was killed) is replaced. 0 or -1 with err.
 */
int srv_bind(srv_config *cfg, char *err, size_t errlen);

/* Remove the Unix socket files srv_bind() created, if they are still the ones it created. */
void srv_unbind(srv_config *cfg);

/*
 * Check, before serving, that callers of loopback TCP listeners can be identified here (the
 * kernel's sock_diag): 0, or -1 with err. Without any such listener, 0.
 */
int srv_check_identity(const srv_config *cfg, char *err, size_t errlen);

/*
 * Block SIGTERM, SIGINT and SIGHUP in this thread and every thread it starts, before the listening
 * address is announced, so that a signal sent right after start-up is a drain, not a kill.
 */
void srv_block_signals(void);

/* Replace the TLS context new connections get (SIGHUP); open connections keep theirs. The old
 * context is released (freed once its last connection ends). */
void srv_tls_swap(srv_config *cfg, SSL_CTX *ctx);

/* Run the workers until SIGTERM or SIGINT, then drain (SIGHUP calls on_reload). 0 or -1. */
int srv_run(srv_config *cfg);

/*
 * A TLS context serving only h2 (ALPN): TLS 1.3, or TLS 1.2 with ECDHE and AEAD suites only. The
 * key file must be a regular file (not a symlink) owned by the server's user or root, with no
 * access for group or others; it is read once. NULL with err on failure.
 */
SSL_CTX *srv_tls_new(const char *cert, const char *key, char *err, size_t errlen);

#endif
