/*
 * loop.c -- listeners, worker loops, connections, TLS, timeouts, drain (see loop.h).
 *
 * Each worker thread owns an event_base, its own listening socket for every listener (the kernel
 * spreads connections across them with SO_REUSEPORT), its connections and a store handle. Nothing
 * about a connection is ever touched by another thread; the only cross-thread events are the
 * committer's "puts done" wake-ups and the main thread's "drain now".
 */
#include "loop.h"
#include "auditq.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <sodium.h>

#include "peer.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"

#define TICK_MS      250
#define OUT_HIGH     (4u * 1024u * 1024u) /* stop reading a peer that does not read its answers */
#define DRAIN_MAX_MS 10000
#define LINGER_MS    2000

typedef struct srv_worker srv_worker;
typedef struct srv_conn srv_conn;

/* Who the caller of a connection is, decided once at accept (see conn_identify). */
typedef enum conn_ident {
	IDENT_NONE = 0, /* not a local listener: no uid, tokens (or --insecure) rule */
	IDENT_ALLOWED,  /* a uid allowed to call without a token */
	IDENT_REFUSED,  /* a uid that is not */
	IDENT_UNKNOWN,  /* the lookup failed: refused too (fail closed) */
} conn_ident;

/*
 * A connection does its I/O in one of two ways. Plaintext h2c (the common, local case) reads and
 * writes the socket itself: one recv() per readable event and one writev() per batch of answers,
 * with a write event only while the kernel pushes back. TLS goes through a libevent OpenSSL
 * bufferevent.
 */
struct srv_conn {
	srv_worker *w;
	const srv_listen *l;
	gs_conn *g;
	srv_conn *prev, *next;
	int closing;
	/* TLS */
	struct bufferevent *bev;
	/* plaintext */
	evutil_socket_t fd;
	struct event *rev, *wev;
	struct evbuffer *out; /* what the kernel did not take yet (plaintext) */
	int reading;
	int writing;   /* wev is pending */
	int lingering; /* closed for writing, draining the peer's last bytes until linger_until */
	uint64_t linger_until;
	/* identity */
	conn_ident ident;
	uid_t uid;          /* IDENT_ALLOWED, IDENT_REFUSED */
	peer_status lookup; /* IDENT_UNKNOWN: why */
	int lookup_err;     /* ... and its errno */
	int refusal_logged;
};

struct srv_worker {
	srv_config *cfg;
	unsigned idx;
	pthread_t thread;
	struct event_base *base;
	struct evconnlistener *lev[SRV_MAX_LISTEN];
	struct event *tick, *drain;
	svc_worker svc;
	uint8_t rbuf[64 * 1024];
	uint8_t wbuf[64 * 1024]; /* a plaintext flush's frames, sent from here (plain_flush) */
	srv_conn *conns;
	unsigned n_conns;
	int diag;          /* sock_diag netlink socket for loopback peers (-1: not open yet) */
	uint32_t diag_seq; /* its request counter */
	int draining;
	uint64_t drain_deadline;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- connections --------------------------------------------------------------------------- */

static void conn_free(srv_conn *sc)
{
	srv_worker *w = sc->w;
	if (sc->prev != NULL)
		sc->prev->next = sc->next;
	else
		w->conns = sc->next;
	if (sc->next != NULL)
		sc->next->prev = sc->prev;
	w->n_conns--;
	metrics_conn_closed();
	gs_conn_free(sc->g);
	if (sc->bev != NULL) {
		bufferevent_free(sc->bev);
	} else {
		if (sc->rev != NULL)
			event_free(sc->rev);
		if (sc->wev != NULL)
			event_free(sc->wev);
		if (sc->out != NULL)
			evbuffer_free(sc->out);
		close(sc->fd);
	}
	free(sc);
}

static struct evbuffer *conn_out(srv_conn *sc)
{
	return sc->bev != NULL ? bufferevent_get_output(sc->bev) : sc->out;
}

static void conn_reading(srv_conn *sc, int on)
{
	if (sc->bev != NULL) {
		if (on)
			bufferevent_enable(sc->bev, EV_READ);
		else
			bufferevent_disable(sc->bev, EV_READ);
	} else if (on != sc->reading) {
		if (on)
			event_add(sc->rev, NULL);
		else
			event_del(sc->rev);
	}
	sc->reading = on;
}

static void plain_want_write(srv_conn *sc, int on)
{
	if (on == sc->writing)
		return;
	if (on)
		event_add(sc->wev, NULL);
	else
		event_del(sc->wev);
	sc->writing = on;
}

/* Plaintext: write what is pending now; ask for a write event only if the kernel pushed back. */
static void plain_write(srv_conn *sc)
{
	while (evbuffer_get_length(sc->out) > 0) {
		int n = evbuffer_write(sc->out, sc->fd);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			plain_want_write(sc, 1);
			return;
		}
		/* The peer is gone: drop what cannot be delivered. */
		evbuffer_drain(sc->out, evbuffer_get_length(sc->out));
		sc->closing = 1;
		break;
	}
	plain_want_write(sc, 0);
}

/*
 * Plaintext: send len bytes now, unless earlier output still waits (then after it); what the
 * kernel does not take waits in sc->out for a write event. The bytes are the caller's to wipe.
 */
static void plain_send(srv_conn *sc, const uint8_t *p, size_t len)
{
	if (evbuffer_get_length(sc->out) == 0) {
		while (len > 0) {
			ssize_t n = send(sc->fd, p, len, MSG_NOSIGNAL);
			if (n > 0) {
				p += n;
				len -= (size_t)n;
			} else if (n < 0 && errno == EINTR) {
				continue;
			} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				break;
			} else {
				sc->closing = 1; /* the peer is gone: nothing can be delivered */
				return;
			}
		}
	}
	if (len > 0) {
		if (evbuffer_add(sc->out, p, len) != 0)
			sc->closing = 1;
		plain_write(sc);
	}
}

/*
 * Plaintext: the protocol layer's frames (an answer's HEADERS, DATA and trailers, and whatever
 * else is due) are gathered in the worker's wbuf and sent with one send(), not copied into an
 * evbuffer chain that is allocated, written with writev and freed (and wiped: it held the
 * value) per answer. wbuf is wiped of what it held before this returns.
 */
static void plain_flush(srv_conn *sc)
{
	uint8_t *buf = sc->w->wbuf;
	size_t off = 0;
	for (;;) {
		const uint8_t *data;
		ssize_t n = gs_conn_send(sc->g, &data);
		if (n <= 0) {
			if (n < 0)
				sc->closing = 1;
			break;
		}
		if (off + (size_t)n > sizeof(sc->w->wbuf)) {
			plain_send(sc, buf, off);
			sodium_memzero(buf, off);
			off = 0;
		}
		if ((size_t)n > sizeof(sc->w->wbuf)) {
			/* Larger than the buffer (nghttp2 makes frames of 16 KiB at most): sent
			 * from nghttp2's own, which gs_conn_send wipes on its next call. */
			plain_send(sc, data, (size_t)n);
			continue;
		}
		memcpy(buf + off, data, (size_t)n);
		off += (size_t)n;
	}
	if (off > 0) {
		plain_send(sc, buf, off);
		sodium_memzero(buf, off);
	}
}

/* TLS: the frames go into the bufferevent's output, which encrypts and writes them. */
static void tls_flush(srv_conn *sc)
{
	struct evbuffer *out = bufferevent_get_output(sc->bev);
	for (;;) {
		const uint8_t *data;
		ssize_t n = gs_conn_send(sc->g, &data);
		if (n <= 0) {
			if (n < 0)
				sc->closing = 1;
			break;
		}
		if (evbuffer_add(out, data, (size_t)n) != 0) {
			sc->closing = 1;
			break;
		}
	}
}

/* Move what the protocol layer has to say into the output, and start writing it. */
static void conn_flush(srv_conn *sc)
{
	struct evbuffer *out = conn_out(sc);
	if (sc->bev == NULL)
		plain_flush(sc);
	else
		tls_flush(sc);
	if (gs_conn_done(sc->g))
		sc->closing = 1;
	if (sc->closing)
		conn_reading(sc, 0);
	else if (evbuffer_get_length(out) > OUT_HIGH)
		conn_reading(sc, 0); /* a peer that does not read its answers is not read from */
}

/* Close when finished and everything has been written. Returns 1 if the conn was freed. */
static int conn_maybe_close(srv_conn *sc)
{
	if (sc->lingering) {
		if (mono_ms() < sc->linger_until)
			return 0;
		conn_free(sc);
		return 1;
	}
	if (!sc->closing || evbuffer_get_length(conn_out(sc)) != 0)
		return 0;
	if (sc->bev == NULL) {
		/*
		 * Lingering close: stop sending but read (and drop) for a moment. Closing with the
		 * peer's data unread would make the kernel answer with a RST, which can destroy the
		 * GOAWAY still on its way to the peer, and with it the reason for the close.
		 */
		shutdown(sc->fd, SHUT_WR);
		sc->lingering = 1;
		sc->linger_until = mono_ms() + LINGER_MS;
		conn_reading(sc, 1);
		return 0;
	}
	conn_free(sc);
	return 1;
}

/* --- identity of callers ------------------------------------------------------------------ */

static int uid_allowed(const srv_uids *u, uid_t uid)
{
	if (uid == u->self || uid == 0)
		return 1;
	for (size_t i = 0; i < u->n_allow; i++)
		if (u->allow[i] == uid)
			return 1;
	return 0;
}

/*
 * Once per connection, at accept: the uid of the caller of a local listener, from the kernel
 * (SO_PEERCRED on a Unix socket, sock_diag for loopback TCP: one netlink request and reply on the
 * worker's own socket). Not per request: the peer socket's owner cannot change.
 */
static void conn_identify(srv_worker *w, srv_conn *sc, evutil_socket_t fd)
{
	peer_status st;
	int e = 0;
	uid_t uid = (uid_t)-1;
	if (sc->l->is_unix) {
		st = peer_unix_uid(fd, &uid, &e);
	} else {
		if (w->diag < 0)
			w->diag = peer_diag_open();
		if (w->diag < 0) {
			st = PEER_ERROR;
			e = errno;
		} else {
			st = peer_tcp_uid(w->diag, &w->diag_seq, fd, &uid, &e);
		}
	}
	if (st != PEER_OK) {
		sc->ident = IDENT_UNKNOWN;
		sc->lookup = st;
		sc->lookup_err = e;
		return;
	}
	sc->uid = uid;
	sc->ident = uid_allowed(&w->cfg->uids, uid) ? IDENT_ALLOWED : IDENT_REFUSED;
}

/* What a refused caller is told: who it is taken for, and what would let it in. */
static void refusal_text(const srv_conn *sc, char *msg, size_t len)
{
	const srv_config *cfg = sc->w->cfg;
	char why[200];
	unsigned self = (unsigned)cfg->uids.self;
	int dev = pol_dev_mode(cfg->sh->pol);
	if (sc->ident == IDENT_UNKNOWN) {
		snprintf(msg, len,
		         "cannot tell which user is calling (%s), so the call is refused%s%s",
		         peer_status_text(sc->lookup, sc->lookup_err, why, sizeof(why)),
		         sc->l->is_unix ? "" : "; connect over a Unix socket (--listen unix:PATH)",
		         dev              ? ""
		         : sc->l->is_unix ? "; send a bearer token"
		                          : " or send a bearer token");
	} else if (dev) {
		snprintf(msg, len,
		         "uid %u may not use this development server (started by uid %u); start it "
		         "with --allow-uid %u or use --policy with tokens",
		         (unsigned)sc->uid, self, (unsigned)sc->uid);
	} else {
		snprintf(msg, len,
		         "uid %u may not act as service '%s' on this server (started by uid %u) "
		         "without a bearer token; start it with --allow-uid %u or send "
		         "'authorization: Bearer <token>'",
		         (unsigned)sc->uid, sc->l->principal, self, (unsigned)sc->uid);
	}
}

/* Answer a call of a refused caller UNAUTHENTICATED; the reason is logged once per connection. */
static void refuse_call(srv_conn *sc, gs_call *call)
{
	char msg[512];
	refusal_text(sc, msg, sizeof(msg));
	if (!sc->refusal_logged && !sc->w->cfg->sh->quiet) {
		log_msg("warn", "refused a caller of service %s: %s", sc->l->principal, msg);
		sc->refusal_logged = 1;
	}
	svc_refuse(&sc->w->svc, call, "-", GS_UNAUTHENTICATED, msg);
}

static void on_call(void *ud, gs_call *call)
{
	srv_conn *sc = ud;
	size_t tlen = 0;
	if (gs_call_method(call) == GS_M_HEALTH_CHECK) { /* anyone may ask whether we serve */
		svc_health(&sc->w->svc, call);
		return;
	}
	/* A call with a bearer token is the token's to authenticate (svc_handle); the uid rules
	 * only what acts as the listener's own service. */
	if ((sc->ident == IDENT_REFUSED || sc->ident == IDENT_UNKNOWN) &&
	    gs_call_bearer(call, &tlen) == NULL) {
		refuse_call(sc, call);
		return;
	}
	svc_handle(&sc->w->svc, call, sc->l->principal, sc->l->need_token);
}

static int on_refused(void *ud, const gs_call *call, int status)
{
	srv_conn *sc = ud;
	return svc_log_refused(&sc->w->svc, call, sc->l->principal, status);
}

static void on_output(void *ud)
{
	srv_conn *sc = ud;
	conn_flush(sc);
	conn_maybe_close(sc);
}

/* Bytes arrived: through the protocol layer, answers out, one log write for the batch. */
static void conn_input(srv_conn *sc, const uint8_t *data, size_t len)
{
	if (!sc->closing && gs_conn_recv(sc->g, data, len) != 0)
		sc->closing = 1;
}

static void conn_after_input(srv_conn *sc)
{
	conn_flush(sc);
	conn_maybe_close(sc);
}

static void plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
	srv_conn *sc = arg;
	srv_worker *w = sc->w;
	ssize_t n = recv(fd, w->rbuf, sizeof(w->rbuf), 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		conn_free(sc); /* the peer closed or failed: nobody to answer */
		return;
	}
	if (sc->lingering) {
		if (n > 0)
			sodium_memzero(w->rbuf, (size_t)n);
		return;
	}
	if (n > 0) {
		conn_input(sc, w->rbuf, (size_t)n);
		sodium_memzero(w->rbuf, (size_t)n); /* it may have held a value being put */
	}
	conn_after_input(sc);
}

static void plain_write_cb(evutil_socket_t fd, short what, void *arg)
{
	srv_conn *sc = arg;
	plain_write(sc);
	if (conn_maybe_close(sc))
		return;
	if (!sc->closing && evbuffer_get_length(sc->out) <= OUT_HIGH / 4)
		conn_reading(sc, 1);
}

static void tls_read_cb(struct bufferevent *bev, void *arg)
{
	srv_conn *sc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec vec[8];

	while (evbuffer_get_length(in) > 0) {
		int nv = evbuffer_peek(in, -1, NULL, vec, 8);
		size_t used = 0;
		for (int i = 0; i < nv && i < 8; i++) {
			conn_input(sc, vec[i].iov_base, vec[i].iov_len);
			used += vec[i].iov_len;
		}
		evbuffer_drain(in, used);
	}
	conn_after_input(sc);
}

static void tls_write_cb(struct bufferevent *bev, void *arg)
{
	srv_conn *sc = arg;
	if (conn_maybe_close(sc))
		return;
	if (!sc->closing)
		conn_reading(sc, 1);
}

static void tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	srv_conn *sc = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_free(sc);
}

/*
 * The TLS context new connections get. SIGHUP may replace it (srv_tls_swap) while workers accept:
 * each takes a reference under the mutex, and a connection's SSL holds its own, so the old context
 * lives until its last connection ends.
 */
static pthread_mutex_t tls_mu = PTHREAD_MUTEX_INITIALIZER;

static SSL_CTX *tls_current(srv_config *cfg)
{
	pthread_mutex_lock(&tls_mu);
	SSL_CTX *ctx = cfg->tls;
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&tls_mu);
	return ctx;
}

void srv_tls_swap(srv_config *cfg, SSL_CTX *ctx)
{
	pthread_mutex_lock(&tls_mu);
	SSL_CTX *old = cfg->tls;
	cfg->tls = ctx;
	pthread_mutex_unlock(&tls_mu);
	SSL_CTX_free(old);
}

static int conn_io_tls(srv_worker *w, srv_conn *sc, evutil_socket_t fd)
{
	SSL_CTX *ctx = tls_current(w->cfg);
	if (ctx == NULL)
		return -1;
	SSL *ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* the SSL keeps its own reference */
	if (ssl == NULL)
		return -1;
	sc->bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                         BEV_OPT_CLOSE_ON_FREE);
	if (sc->bev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_setcb(sc->bev, tls_read_cb, tls_write_cb, tls_event_cb, sc);
	bufferevent_enable(sc->bev, EV_READ | EV_WRITE);
	return 0;
}

static int conn_io_plain(srv_worker *w, srv_conn *sc, evutil_socket_t fd)
{
	sc->fd = fd;
	sc->out = evbuffer_new();
	sc->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, plain_read_cb, sc);
	sc->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, plain_write_cb, sc);
	return sc->out != NULL && sc->rev != NULL && sc->wev != NULL ? 0 : -1;
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	srv_worker *w = arg;
	const srv_listen *l = NULL;
	int one = 1;

	for (size_t i = 0; i < w->cfg->n_listen; i++)
		if (w->lev[i] == lev)
			l = &w->cfg->listen[i];
	if (l == NULL || w->draining || w->n_conns >= w->cfg->max_conns / w->cfg->threads + 1) {
		close(fd);
		return;
	}
	if (!l->is_unix)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	srv_conn *sc = calloc(1, sizeof(*sc));
	if (sc == NULL) {
		close(fd);
		return;
	}
	sc->w = w;
	sc->l = l;
	sc->fd = fd;
	gs_conn_cb cb = {
	    .on_call = on_call, .on_output = on_output, .ud = sc, .on_refused = on_refused};
	sc->g = gs_conn_new(&w->cfg->limits, &cb);
	/* Linked first, so that conn_free() can undo any partial set-up below. */
	sc->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = sc;
	w->conns = sc;
	w->n_conns++;
	metrics_conn_opened();
	if (l->is_unix || l->loopback)
		conn_identify(w, sc, fd);
	int rc = w->cfg->tls_on && !l->is_unix ? conn_io_tls(w, sc, fd) : conn_io_plain(w, sc, fd);
	if (rc != 0 || sc->g == NULL) {
		conn_free(sc); /* closes fd itself, or through the bufferevent that took it */
		return;
	}
	conn_reading(sc, 1);
	conn_flush(sc); /* our SETTINGS go first */
}

/* --- timers and drain ---------------------------------------------------------------------- */

static void worker_check_done(srv_worker *w)
{
	if (!w->draining)
		return;
	if ((w->n_conns == 0 && w->svc.inflight == 0) || mono_ms() >= w->drain_deadline)
		event_base_loopexit(w->base, NULL);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	srv_worker *w = arg;
	uint64_t now = mono_ms();
	srv_conn *sc = w->conns;
	while (sc != NULL) {
		srv_conn *next = sc->next;
		if (!sc->lingering) {
			if (gs_conn_tick(sc->g, now))
				sc->closing = 1;
			conn_flush(sc);
		}
		conn_maybe_close(sc);
		sc = next;
	}
	svc_tick(&w->svc, now);
	svc_log_flush(&w->svc);
	worker_check_done(w);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	srv_worker *w = arg;
	w->draining = 1;
	w->drain_deadline = mono_ms() + DRAIN_MAX_MS;
	for (size_t i = 0; i < w->cfg->n_listen; i++) {
		if (w->lev[i] != NULL)
			evconnlistener_free(w->lev[i]);
		w->lev[i] = NULL;
	}
	/* GOAWAY: in-flight calls finish, new streams are refused, then each conn closes. */
	for (srv_conn *sc = w->conns; sc != NULL; sc = sc->next) {
		gs_conn_shutdown(sc->g);
		conn_flush(sc);
	}
	worker_check_done(w);
}

static void *worker_main(void *arg)
{
	srv_worker *w = arg;
	event_base_dispatch(w->base);
	/* Anything left after the drain deadline is cut. */
	while (w->conns != NULL)
		conn_free(w->conns);
	return NULL;
}

static int worker_init(srv_worker *w, srv_config *cfg, unsigned idx)
{
	struct timeval tv = {0, TICK_MS * 1000};
	memset(w, 0, sizeof(*w));
	w->cfg = cfg;
	w->idx = idx;
	w->diag = -1;
	/* Opened now, a fixed resource; should it fail, lookups retry and refuse meanwhile. */
	for (size_t i = 0; i < cfg->n_listen && w->diag < 0; i++)
		if (cfg->listen[i].loopback && !cfg->listen[i].is_unix)
			w->diag = peer_diag_open();
	w->base = event_base_new();
	if (w->base == NULL || event_base_priority_init(w->base, SVC_PRIORITIES) != 0)
		return -1;
	if (svc_worker_init(&w->svc, cfg->sh, cfg->stores[idx], w->base) != 0)
		return -1;
	w->tick = event_new(w->base, -1, EV_PERSIST, tick_cb, w);
	w->drain = event_new(w->base, -1, 0, drain_cb, w);
	if (w->tick == NULL || w->drain == NULL || event_add(w->tick, &tv) != 0)
		return -1;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		w->lev[i] = evconnlistener_new(w->base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE, -1,
		                               cfg->listen[i].fds[idx]);
		if (w->lev[i] == NULL)
			return -1;
		cfg->listen[i].fds[idx] = -1; /* the listener owns it now */
	}
	return 0;
}

static void worker_fini(srv_worker *w)
{
	if (w->cfg == NULL)
		return; /* never initialized (an earlier worker failed to start) */
	for (size_t i = 0; i < w->cfg->n_listen; i++)
		if (w->lev[i] != NULL)
			evconnlistener_free(w->lev[i]);
	if (w->tick != NULL)
		event_free(w->tick);
	if (w->drain != NULL)
		event_free(w->drain);
	svc_worker_fini(&w->svc);
	if (w->base != NULL)
		event_base_free(w->base);
	if (w->diag >= 0)
		close(w->diag);
}

int srv_run(srv_config *cfg)
{
	static srv_worker workers[SRV_MAX_THREADS];
	sigset_t set;
	int sig = 0, rv = 0;
	unsigned started = 0;

	/* Blocked since start-up (srv_block_signals): only sigwait() below takes them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	for (unsigned i = 0; i < cfg->threads; i++) {
		if (worker_init(&workers[i], cfg, i) != 0) {
			rv = -1;
			break;
		}
	}
	for (unsigned i = 0; rv == 0 && i < cfg->threads; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			rv = -1;
			break;
		}
		started++;
	}
	if (rv == 0 && cfg->on_ready != NULL)
		cfg->on_ready(cfg->ready_ctx);
	sigaddset(&set, SIGHUP);
	/* SIGHUP: reload (policy, tokens, TLS) on this thread while the workers serve on. */
	while (rv == 0 && sigwait(&set, &sig) == 0 && sig == SIGHUP)
		if (cfg->on_reload != NULL)
			cfg->on_reload(cfg->reload_ctx);
	health_set_draining();
	notify_stopping();
	for (unsigned i = 0; i < started; i++)
		event_active(workers[i].drain, 0, 0);
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);
	/*
	 * Puts still being committed (only after the drain deadline) post their answers to the
	 * workers' queues: stop the committer before those queues go, then let each worker free
	 * what is left in its queue.
	 */
	svc_committer_stop(cfg->sh->committer);
	cfg->sh->committer = NULL;
	/* Then the audit committer: what it writes now goes back to the workers' queues, which
	 * worker_fini empties (the connections are gone: answering frees). */
	aq_stop(cfg->sh->auditq);
	for (unsigned i = 0; i < cfg->threads; i++)
		worker_fini(&workers[i]);
	return rv;
}

void srv_block_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* --- binding ------------------------------------------------------------------------------- */

static int sa_port(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

static void sa_set_port(struct sockaddr_storage *sa, int port)
{
	if (sa->ss_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

/* "host:port", "[v6]:port" or "unix:path", for messages. */
static void listen_name(const srv_listen *l, int port, char *out, size_t outlen)
{
	int v6 = strchr(l->host, ':') != NULL;
	if (l->is_unix)
		snprintf(out, outlen, "unix:%s", l->path);
	else
		snprintf(out, outlen, "%s%s%s:%d", v6 ? "[" : "", l->host, v6 ? "]" : "", port);
}

/*
 * "localhost" is both loopback families, whatever the resolver says (RFC 6761; /etc/hosts often
 * lists only 127.0.0.1, while a client's resolver may try ::1 first): the listener becomes
 * 127.0.0.1 and a twin on ::1 that takes the same port (port 0: the one picked for IPv4).
 */
static int expand_localhost(srv_config *cfg, size_t i, char *err, size_t errlen)
{
	if (cfg->n_listen >= SRV_MAX_LISTEN) {
		snprintf(err, errlen,
		         "too many listeners ('localhost' listens on 127.0.0.1 and ::1)");
		return -1;
	}
	memmove(&cfg->listen[i + 2], &cfg->listen[i + 1],
	        (cfg->n_listen - i - 1) * sizeof(cfg->listen[0]));
	cfg->n_listen++;
	cfg->listen[i + 1] = cfg->listen[i];
	snprintf(cfg->listen[i].host, sizeof(cfg->listen[i].host), "127.0.0.1");
	snprintf(cfg->listen[i + 1].host, sizeof(cfg->listen[i + 1].host), "::1");
	cfg->listen[i + 1].twin = (int)i + 1;
	return 0;
}

int srv_resolve(srv_config *cfg, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		srv_listen *l = &cfg->listen[i];
		for (unsigned t = 0; t < SRV_MAX_THREADS; t++)
			l->fds[t] = -1;
		if (l->is_unix)
			continue; /* local by nature: nothing to resolve */
		if (l->twin == 0 && strcasecmp(l->host, "localhost") == 0) {
			if (expand_localhost(cfg, i, err, errlen) != 0)
				return -1;
			l = &cfg->listen[i];
		}
		int rc = getaddrinfo(l->host, l->port, &hints, &res);
		if (rc != 0) {
			snprintf(err, errlen, "cannot resolve '%s': %s", l->host, gai_strerror(rc));
			return -1;
		}
		/* The first address: the one checked is the one bound. */
		memset(&l->addr, 0, sizeof(l->addr));
		memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
		l->addrlen = res->ai_addrlen;
		l->loopback = is_loopback(res->ai_addr);
		freeaddrinfo(res);
	}
	return 0;
}

static int bind_one(const srv_listen *l, const struct sockaddr_storage *sa, int reuseport)
{
	int one = 1;
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* SO_REUSEADDR: a restart is not refused for the last run's connections in TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)sa, l->addrlen) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * Every worker has its own socket on the port, joined with SO_REUSEPORT, and the kernel spreads
 * connections across them. But SO_REUSEPORT lets any socket of the same user join that group,
 * another coffer serve's too (both root, say): the kernel would then split the connections
 * between two servers, maybe on two stores. So a port another process holds is refused in two
 * steps:
 *
 * 1. Before joining, a probe socket WITHOUT SO_REUSEPORT is bound to the address. The kernel
 *    refuses it (EADDRINUSE) if anything listens there, reuseport group or not, including on a
 *    wildcard address that covers ours. It is closed at once (it would keep our own workers
 *    out). Port 0 needs no probe: the kernel picks a port no socket has, reuseport or not.
 * 2. The probe leaves a gap: two servers starting at the same moment can both pass it before
 *    either listens. So once our sockets listen, the listening sockets on our port are listed
 *    (/proc/self/net/tcp and tcp6, this network namespace) and any that is not one of ours, on
 *    our address or a wildcard, means sharing: refused. Of two racing servers, the one that
 *    listened last sees the other's sockets and leaves; both may leave, none stays sharing.
 *    (Connections the kernel handed the leaving server's sockets in that instant are reset.)
 *
 * What is left: a program that bound the port with SO_REUSEPORT and listens only after our
 * check could still join; nothing short of giving up SO_REUSEPORT closes that.
 */
static int probe_port(const srv_listen *l, char *err, size_t errlen)
{
	char w[300];
	if (sa_port(&l->addr) == 0)
		return 0;
	int fd = bind_one(l, &l->addr, 0);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	listen_name(l, sa_port(&l->addr), w, sizeof(w));
	if (errno == EADDRINUSE)
		snprintf(err, errlen, "%s is already in use by another process", w);
	else
		snprintf(err, errlen, "cannot listen on %s: %s", w, strerror(errno));
	return -1;
}

static int bind_listener(srv_listen *l, unsigned threads, char *err, size_t errlen)
{
	struct sockaddr_storage sa = l->addr;
	char w[300];
	if (probe_port(l, err, errlen) != 0)
		return -1;
	/* Port 0 picks a free port once; the other workers then join that same port. */
	for (unsigned t = 0; t < threads; t++) {
		l->fds[t] = bind_one(l, &sa, 1);
		if (l->fds[t] < 0 || listen(l->fds[t], 1024) != 0) {
			int e = errno;
			listen_name(l, sa_port(&sa), w, sizeof(w));
			if (e == EADDRINUSE)
				snprintf(err, errlen, "%s is already in use by another process", w);
			else
				snprintf(err, errlen, "cannot listen on %s: %s", w, strerror(e));
			return -1;
		}
		if (t == 0) {
			struct sockaddr_storage got;
			socklen_t len = sizeof(got);
			if (getsockname(l->fds[0], (struct sockaddr *)&got, &len) != 0) {
				snprintf(err, errlen, "getsockname: %s", strerror(errno));
				return -1;
			}
			l->bound_port = sa_port(&got);
			sa_set_port(&sa, l->bound_port);
		}
	}
	return 0;
}

/* The address as /proc/net/tcp{,6} prints it: the raw 32-bit words of the address, %08X each. */
static void proc_addr(const struct sockaddr_storage *sa, char *out, size_t outlen)
{
	uint32_t w[4];
	if (sa->ss_family == AF_INET) {
		memcpy(w, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		snprintf(out, outlen, "%08X", w[0]);
	} else {
		memcpy(w, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		snprintf(out, outlen, "%08X%08X%08X%08X", w[0], w[1], w[2], w[3]);
	}
}

static int is_ours(const srv_config *cfg, unsigned long inode)
{
	struct stat st;
	for (size_t i = 0; i < cfg->n_listen; i++)
		for (unsigned t = 0; t < cfg->threads; t++)
			if (cfg->listen[i].fds[t] >= 0 && fstat(cfg->listen[i].fds[t], &st) == 0 &&
			    (unsigned long)st.st_ino == inode)
				return 1;
	return 0;
}

/* 1 if a line of /proc/net/tcp{,6} is a listening socket, not ours, that overlaps l. */
static int foreign_listener(const srv_config *cfg, const srv_listen *l, const char *ours,
                            const char *line)
{
	char addr[64];
	unsigned port, state;
	unsigned long inode;
	/* Fields: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode */
	if (sscanf(line, " %*u: %63[0-9A-F]:%X %*s %X %*s %*s %*s %*u %*u %lu", addr, &port, &state,
	           &inode) != 4)
		return 0;
	if (state != 0x0A || port != (unsigned)l->bound_port || is_ours(cfg, inode))
		return 0; /* not listening (0x0A), another port, or ours */
	/* Same address, or a wildcard on either side (0.0.0.0 or ::, which also takes IPv4). */
	return strcmp(addr, ours) == 0 || strspn(addr, "0") == strlen(addr) ||
	       strspn(ours, "0") == strlen(ours);
}

static int shared_with_others(const srv_config *cfg, const srv_listen *l)
{
	static const char *const tables[] = {"/proc/self/net/tcp", "/proc/self/net/tcp6"};
	char ours[64], line[512];
	int found = 0;
	proc_addr(&l->addr, ours, sizeof(ours));
	for (size_t i = 0; i < 2 && !found; i++) {
		FILE *f = fopen(tables[i], "re");
		if (f == NULL)
			continue; /* no procfs (or no IPv6): the probe alone has spoken */
		while (!found && fgets(line, sizeof(line), f) != NULL)
			found = foreign_listener(cfg, l, ours, line);
		fclose(f);
	}
	return found;
}

/* --- Unix socket listeners ------------------------------------------------------------------ */

static void unix_addr(const srv_listen *l, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, l->path, strlen(l->path) + 1); /* fits: checked when parsed */
}

/*
 * What is at the socket path before we bind: nothing (fine), a socket that another server
 * listens on (refused), a stale socket that nobody listens on (left by a server that was killed:
 * removed, if it is still the same file), or something else (refused: never replaced).
 */
static int unix_clear_path(const srv_listen *l, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st, again;
	if (lstat(l->path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot listen on unix:%s: %s", l->path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "refusing to replace %s: it exists and is not a socket",
		         l->path);
		return -1;
	}
	unix_addr(l, &sun);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	int e = errno;
	if (fd >= 0)
		close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "unix:%s is already in use by another process", l->path);
		return -1;
	}
	if (e != ECONNREFUSED) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s", l->path, strerror(e));
		return -1;
	}
	if (lstat(l->path, &again) != 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino ||
	    unlink(l->path) != 0) {
		snprintf(err, errlen, "cannot replace the stale socket %s", l->path);
		return -1;
	}
	return 0;
}

/*
 * Bind and listen on the path, the file created with `mode` (the umask set for the bind: no moment
 * with looser permissions; no other thread runs yet). Every worker gets a duplicate of the one
 * listening socket: a Unix socket has no SO_REUSEPORT, and whichever worker accepts first wins.
 */
static int bind_unix(srv_listen *l, unsigned threads, mode_t mode, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	if (unix_clear_path(l, err, errlen) != 0)
		return -1;
	unix_addr(l, &sun);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on unix:%s: %s", l->path, strerror(errno));
		return -1;
	}
	mode_t old = umask(0777 & ~mode);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	int e = errno;
	umask(old);
	if (rc != 0 || listen(fd, 1024) != 0 || lstat(l->path, &st) != 0) {
		e = rc != 0 ? e : errno;
		snprintf(err, errlen, "cannot listen on unix:%s: %s", l->path,
		         e == EADDRINUSE ? "in use by another process" : strerror(e));
		close(fd);
		return -1;
	}
	l->sock_dev = st.st_dev;
	l->sock_ino = st.st_ino;
	l->fds[0] = fd;
	for (unsigned t = 1; t < threads; t++) {
		l->fds[t] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (l->fds[t] < 0) {
			snprintf(err, errlen, "cannot listen on unix:%s: %s", l->path,
			         strerror(errno));
			return -1;
		}
	}
	return 0;
}

void srv_unbind(srv_config *cfg)
{
	struct stat st;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		srv_listen *l = &cfg->listen[i];
		if (!l->is_unix || l->sock_ino == 0)
			continue;
		/* Only our own socket: after us, the path may have become someone else's. */
		if (lstat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == l->sock_dev &&
		    st.st_ino == l->sock_ino)
			unlink(l->path);
		l->sock_ino = 0;
	}
}

int srv_check_identity(const srv_config *cfg, char *err, size_t errlen)
{
	char why[300];
	for (size_t i = 0; i < cfg->n_listen; i++) {
		const srv_listen *l = &cfg->listen[i];
		if (l->is_unix || !l->loopback)
			continue;
		if (peer_selftest(why, sizeof(why)) == 0)
			return 0;
		snprintf(err, errlen,
		         "cannot identify the callers of %s: %s; listen on a Unix socket instead "
		         "(--listen unix:PATH)",
		         l->host, why);
		return -1;
	}
	return 0;
}

/* A machine without IPv6 (no ::1): "localhost" is then 127.0.0.1 alone. */
static int no_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno == EAFNOSUPPORT;
	struct sockaddr_in6 a;
	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_loopback;
	int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	int e = errno;
	close(fd);
	return rc != 0 && e == EADDRNOTAVAIL;
}

static void drop_listener(srv_config *cfg, size_t i)
{
	memmove(&cfg->listen[i], &cfg->listen[i + 1],
	        (cfg->n_listen - i - 1) * sizeof(cfg->listen[0]));
	cfg->n_listen--;
	for (size_t j = i; j < cfg->n_listen; j++)
		if (cfg->listen[j].twin > (int)i)
			cfg->listen[j].twin--;
}

int srv_bind(srv_config *cfg, char *err, size_t errlen)
{
	char w[300];
	/* Others may connect only if other uids are allowed: then the peer's uid decides. */
	mode_t mode = cfg->uids.n_allow > 0 ? 0666 : 0600;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		srv_listen *l = &cfg->listen[i];
		if (l->twin > 0) {
			if (no_ipv6()) {
				fprintf(stderr,
				        "coffer serve: no IPv6 loopback (::1) here: localhost "
				        "is served on 127.0.0.1 only\n");
				drop_listener(cfg, i--);
				continue;
			}
			if (sa_port(&l->addr) == 0)
				sa_set_port(&l->addr, cfg->listen[l->twin - 1].bound_port);
		}
		int rc = l->is_unix ? bind_unix(l, cfg->threads, mode, err, errlen)
		                    : bind_listener(l, cfg->threads, err, errlen);
		if (rc != 0)
			return -1;
	}
	for (size_t i = 0; i < cfg->n_listen; i++) {
		const srv_listen *l = &cfg->listen[i];
		if (!l->is_unix && shared_with_others(cfg, l)) {
			listen_name(l, l->bound_port, w, sizeof(w));
			snprintf(err, errlen, "%s is already in use by another process", w);
			return -1;
		}
	}
	return 0;
}
