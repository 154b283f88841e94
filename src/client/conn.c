/*
 * conn.c -- a gRPC client connection on nghttp2: TCP or Unix socket, optional TLS, unary calls
 * (see conn.h).
 *
 * Everything is non-blocking underneath and bounded by one deadline per operation, so a server
 * that stalls, closes early or sends garbage yields an error, never a hang. Secret values pass
 * through the read buffer, nghttp2's frame buffers and the message buffer: each is wiped after
 * use (nghttp2 gets a wiping allocator; TLS records are cleansed with SSL_OP_CLEANSE_PLAINTEXT).
 */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "coffer.h"

#define READ_CHUNK      16384
#define MAX_RESP_HEADER (64u * 1024u) /* bytes of response header fields we accept */

struct cc_conn {
	cc_config cfg;
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	nghttp2_session *h2;
	int settings_seen, goaway, eof, dead;
	int bad_frames;   /* nghttp2 reported a connection error in the server's bytes */
	uint8_t first[8]; /* the first bytes the server sent (to recognize HTTP/1.x) */
	size_t first_len;
	uint8_t rbuf[READ_CHUNK];
	/* the call in flight */
	int32_t stream_id;
	int stream_closed;
	uint32_t rst_code;
	int http_status, ct_grpc, have_grpc_status, grpc_status;
	uint32_t hdr_bytes;
	char grpc_message[512];
	char ct[64];
	int fail_rc; /* set by a callback: the call failed (fail_msg says why) */
	char fail_msg[256];
	uint8_t prefix[5];
	size_t prefix_have;
	pb_buf *msg; /* the response message, being filled */
	size_t msg_len;
	int msg_started, msg_done;
	const uint8_t *req; /* prefix + request message */
	size_t req_len, req_off;
};

/* --- a wiping allocator for nghttp2 (its frame buffers carry values) ------------------------- */

static void *w_malloc(size_t n, void *ud)
{
	return malloc(n);
}

static void w_free(void *p, void *ud)
{
	if (p != NULL) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

static void *w_calloc(size_t n, size_t sz, void *ud)
{
	return calloc(n, sz);
}

static void *w_realloc(void *p, size_t n, void *ud)
{
	if (p == NULL)
		return malloc(n);
	size_t old = malloc_usable_size(p);
	void *q = malloc(n);
	if (q == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	w_free(p, NULL);
	return q;
}

static nghttp2_mem wipe_mem = {NULL, w_malloc, w_free, w_calloc, w_realloc};

/* --- time and errors ----------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int remaining(uint64_t deadline)
{
	uint64_t n = now_ms();
	return n >= deadline ? 0 : (int)(deadline - n);
}

static const char *where(const cc_conn *c, char *buf, size_t len)
{
	if (c->cfg.path[0] != '\0')
		snprintf(buf, len, "unix:%s", c->cfg.path);
	else
		snprintf(buf, len, "%s", c->cfg.authority);
	return buf;
}

/* The OpenSSL error queue's first reason (or `fallback`), and clear the queue. */
static void ssl_reason(char *out, size_t len, const char *fallback)
{
	unsigned long e = ERR_get_error();
	if (e != 0)
		ERR_error_string_n(e, out, len);
	else
		snprintf(out, len, "%s", fallback);
	ERR_clear_error();
}

/* --- sockets ------------------------------------------------------------------------------- */

static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {fd, events, 0};
	for (;;) {
		int ms = remaining(deadline);
		if (ms == 0)
			return 0;
		int n = poll(&p, 1, ms);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int connect_one(const struct sockaddr *sa, socklen_t salen, uint64_t deadline, int *err)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (connect(fd, sa, salen) != 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			*err = errno;
			close(fd);
			return -1;
		}
		int w = wait_fd(fd, POLLOUT, deadline);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (w <= 0) {
			*err = w == 0 ? ETIMEDOUT : errno;
			close(fd);
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
			*err = soerr != 0 ? soerr : errno;
			close(fd);
			return -1;
		}
	}
	if (sa->sa_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

static int net_connect(cc_conn *c, uint64_t deadline, char *err, size_t errlen)
{
	char w[400];
	int e = 0;
	if (c->cfg.path[0] != '\0') {
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, c->cfg.path, strlen(c->cfg.path));
		c->fd = connect_one((struct sockaddr *)&sun, sizeof(sun), deadline, &e);
	} else {
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		int gai = getaddrinfo(c->cfg.host, c->cfg.port, &hints, &res);
		if (gai != 0) {
			snprintf(err, errlen, "cannot resolve %s: %s", c->cfg.host,
			         gai_strerror(gai));
			return COFFER_EUNAVAIL;
		}
		for (struct addrinfo *ai = res; ai != NULL && c->fd < 0; ai = ai->ai_next)
			c->fd = connect_one(ai->ai_addr, ai->ai_addrlen, deadline, &e);
		freeaddrinfo(res);
	}
	if (c->fd < 0) {
		snprintf(err, errlen, "connect to %s: %s%s", where(c, w, sizeof(w)), strerror(e),
		         e == ECONNREFUSED ? " (is coffer serve running there?)" : "");
		return COFFER_EUNAVAIL;
	}
	return 0;
}

/* --- TLS ----------------------------------------------------------------------------------- */

static int tls_setup(cc_conn *c, char *err, size_t errlen)
{
	char why[256];
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (c->ctx == NULL)
		return COFFER_ENOMEM;
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
#ifdef SSL_OP_CLEANSE_PLAINTEXT
	SSL_CTX_set_options(c->ctx, SSL_OP_CLEANSE_PLAINTEXT);
#endif
	if (c->cfg.ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(c->ctx, c->cfg.ca_file, NULL) != 1) {
			ssl_reason(why, sizeof(why), "no certificate in it");
			snprintf(err, errlen, "cannot load the CA file %s: %s", c->cfg.ca_file,
			         why);
			return COFFER_EINVAL;
		}
	} else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
		ssl_reason(why, sizeof(why), "unknown reason");
		snprintf(err, errlen, "cannot load the system's CA certificates: %s", why);
		return COFFER_EUNAVAIL;
	}
	static const unsigned char alpn[] = {2, 'h', '2'};
	if (SSL_CTX_set_alpn_protos(c->ctx, alpn, sizeof(alpn)) != 0)
		return COFFER_ENOMEM;
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		return COFFER_ENOMEM;
	const char *name = c->cfg.server_name != NULL ? c->cfg.server_name : c->cfg.host;
	unsigned char ip[16];
	int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
	if (is_ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1)
			return COFFER_EINVAL;
	} else {
		SSL_set_tlsext_host_name(c->ssl, name);
		if (SSL_set1_host(c->ssl, name) != 1)
			return COFFER_EINVAL;
	}
	return 0;
}

static int tls_handshake(cc_conn *c, uint64_t deadline, char *err, size_t errlen)
{
	char w[400], why[256];
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			int ok =
			    wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
			if (ok > 0)
				continue;
			snprintf(err, errlen, "TLS handshake with %s: %s", where(c, w, sizeof(w)),
			         ok == 0 ? "timed out" : strerror(errno));
			return COFFER_EUNAVAIL;
		}
		long vr = SSL_get_verify_result(c->ssl);
		if (vr != X509_V_OK)
			snprintf(why, sizeof(why), "certificate verify failed: %s",
			         X509_verify_cert_error_string(vr));
		else
			ssl_reason(why, sizeof(why),
			           e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN
			               ? "the server closed the connection (is it serving TLS?)"
			               : "handshake failed");
		ERR_clear_error();
		snprintf(err, errlen, "TLS handshake with %s: %s", where(c, w, sizeof(w)), why);
		return COFFER_EUNAVAIL;
	}
	const unsigned char *proto = NULL;
	unsigned plen = 0;
	SSL_get0_alpn_selected(c->ssl, &proto, &plen);
	if (plen != 2 || memcmp(proto, "h2", 2) != 0) {
		snprintf(err, errlen,
		         "%s did not agree to HTTP/2 over TLS (ALPN h2): not a gRPC server",
		         where(c, w, sizeof(w)));
		return COFFER_EUNAVAIL;
	}
	return 0;
}

/* --- raw I/O ------------------------------------------------------------------------------- */

/* Write all of it before the deadline. 0 or -1 (err set). */
static int io_write(cc_conn *c, const uint8_t *p, size_t len, uint64_t deadline, char *err,
                    size_t errlen)
{
	char w[400];
	while (len > 0) {
		ssize_t n;
		short ev = POLLOUT;
		if (c->ssl != NULL) {
			ERR_clear_error();
			int r = SSL_write(c->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));
			n = r > 0 ? r : -1;
			if (r <= 0) {
				/* Retried with the same buffer, as OpenSSL requires. */
				int e = SSL_get_error(c->ssl, r);
				errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE
				            ? EAGAIN
				            : EPIPE;
				if (e == SSL_ERROR_WANT_READ)
					ev = POLLIN;
			}
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
		}
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (wait_fd(c->fd, ev, deadline) > 0)
				continue;
			snprintf(err, errlen, "%s: timed out sending", where(c, w, sizeof(w)));
			return -1;
		}
		if (!c->settings_seen)
			snprintf(err, errlen,
			         "%s closed the connection before speaking HTTP/2 (%s): not a gRPC "
			         "server%s",
			         where(c, w, sizeof(w)), strerror(errno),
			         c->cfg.tls ? "" : ", or one that wants TLS");
		else
			snprintf(err, errlen, "%s closed the connection (%s)",
			         where(c, w, sizeof(w)), strerror(errno));
		c->eof = 1;
		return -1;
	}
	return 0;
}

/* Read what is there (waiting until the deadline). >0 bytes, 0 at EOF, -1 error/timeout. */
static ssize_t io_read(cc_conn *c, uint64_t deadline, char *err, size_t errlen)
{
	char w[400];
	for (;;) {
		ssize_t n;
		short ev = POLLIN;
		if (c->ssl != NULL) {
			ERR_clear_error();
			int r = SSL_read(c->ssl, c->rbuf, sizeof(c->rbuf));
			if (r > 0)
				return r;
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
				return 0; /* closed without close_notify */
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				char why[256];
				ssl_reason(why, sizeof(why), "TLS error");
				snprintf(err, errlen, "%s: %s", where(c, w, sizeof(w)), why);
				return -1;
			}
			if (e == SSL_ERROR_WANT_WRITE)
				ev = POLLOUT;
			n = -1;
			errno = EAGAIN;
		} else {
			n = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);
			if (n >= 0)
				return n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			if (errno == ECONNRESET)
				return 0;
			snprintf(err, errlen, "%s: %s", where(c, w, sizeof(w)), strerror(errno));
			return -1;
		}
		int ok = wait_fd(c->fd, ev, deadline);
		if (ok > 0)
			continue;
		snprintf(err, errlen, "%s: no answer within %u ms", where(c, w, sizeof(w)),
		         c->cfg.timeout_ms);
		return -1;
	}
}

/* --- nghttp2 callbacks --------------------------------------------------------------------- */

static void call_fail(cc_conn *c, int rc, const char *msg)
{
	if (c->fail_rc != 0)
		return;
	c->fail_rc = rc;
	snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", msg);
	c->dead = 1; /* the connection's state is not to be trusted for another call */
	if (c->stream_id > 0 && !c->stream_closed)
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, c->stream_id, NGHTTP2_CANCEL);
}

static void percent_decode(const uint8_t *v, size_t len, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < outlen; i++) {
		unsigned ch = v[i];
		if (ch == '%' && i + 2 < len) {
			char hex[3] = {(char)v[i + 1], (char)v[i + 2], 0};
			char *end;
			unsigned long x = strtoul(hex, &end, 16);
			if (*end == '\0') {
				ch = (unsigned)x;
				i += 2;
			}
		}
		out[o++] = ch >= 0x20 && ch != 0x7f ? (char)ch : '?';
	}
	out[o] = '\0';
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
	cc_conn *c = ud;
	if (frame->hd.stream_id != c->stream_id || c->stream_id <= 0)
		return 0;
	c->hdr_bytes += (uint32_t)(nlen + vlen + 32);
	if (c->hdr_bytes > MAX_RESP_HEADER) {
		call_fail(c, COFFER_EIO, "the server sent response headers over 64 KiB");
		return 0;
	}
	if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
		c->http_status = 0;
		for (size_t i = 0; vlen == 3 && i < 3; i++)
			c->http_status = value[i] >= '0' && value[i] <= '9'
			                     ? c->http_status * 10 + (value[i] - '0')
			                     : -1000;
		if (c->http_status < 0)
			c->http_status = 0;
	} else if (nlen == 12 && memcmp(name, "content-type", 12) == 0) {
		percent_decode(value, vlen, c->ct, sizeof(c->ct));
		c->ct_grpc = vlen >= 16 &&
		             strncasecmp((const char *)value, "application/grpc", 16) == 0 &&
		             (vlen == 16 || value[16] == '+' || value[16] == ';');
	} else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
		int st = 0, ok = vlen > 0 && vlen <= 3;
		for (size_t i = 0; ok && i < vlen; i++) {
			ok = value[i] >= '0' && value[i] <= '9';
			st = st * 10 + (value[i] - '0');
		}
		c->have_grpc_status = ok;
		c->grpc_status = ok ? st : 2;
		if (!ok)
			call_fail(c, COFFER_EIO, "the server sent a malformed grpc-status");
	} else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
		percent_decode(value, vlen, c->grpc_message, sizeof(c->grpc_message));
	}
	return 0;
}

static void body_prefix(cc_conn *c)
{
	char msg[160];
	uint32_t len = (uint32_t)c->prefix[1] << 24 | (uint32_t)c->prefix[2] << 16 |
	               (uint32_t)c->prefix[3] << 8 | c->prefix[4];
	if (c->prefix[0] != 0) {
		call_fail(c, COFFER_EIO,
		          c->prefix[0] == 1 ? "the server sent a compressed message (not asked for)"
		                            : "the server sent a malformed gRPC message prefix");
		return;
	}
	/* Refused from the declared length, before anything is allocated. */
	if (len > c->cfg.max_response) {
		snprintf(msg, sizeof(msg),
		         "the server's response message of %u bytes is over the limit of %zu bytes",
		         len, c->cfg.max_response);
		call_fail(c, COFFER_ETOOBIG, msg);
		return;
	}
	c->msg_started = 1;
	c->msg_len = len;
	c->msg_done = len == 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *ud)
{
	cc_conn *c = ud;
	if (stream_id != c->stream_id || c->fail_rc != 0)
		return 0;
	while (len > 0 && c->fail_rc == 0) {
		if (c->msg_done) {
			call_fail(c, COFFER_EIO, "the server sent more than one response message");
			break;
		}
		if (!c->msg_started) {
			size_t n = 5 - c->prefix_have < len ? 5 - c->prefix_have : len;
			memcpy(c->prefix + c->prefix_have, data, n);
			c->prefix_have += n;
			data += n;
			len -= n;
			if (c->prefix_have == 5)
				body_prefix(c);
			continue;
		}
		size_t n = c->msg_len - c->msg->len < len ? c->msg_len - c->msg->len : len;
		/* pb_put-style growth would over-reserve: grow to what arrived, capped by msg_len.
		 */
		pb_buf *b = c->msg;
		if (b->cap - b->len < n) {
			size_t cap = b->cap ? b->cap : 4096;
			while (cap - b->len < n)
				cap *= 2;
			if (cap > c->msg_len)
				cap = c->msg_len;
			uint8_t *d = malloc(cap);
			if (d == NULL) {
				call_fail(c, COFFER_ENOMEM, "out of memory");
				break;
			}
			if (b->len > 0)
				memcpy(d, b->data, b->len);
			if (b->data != NULL) {
				explicit_bzero(b->data, b->cap);
				free(b->data);
			}
			b->data = d;
			b->cap = cap;
		}
		memcpy(b->data + b->len, data, n);
		b->len += n;
		data += n;
		len -= n;
		if (b->len == c->msg_len)
			c->msg_done = 1;
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	cc_conn *c = ud;
	if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
		c->settings_seen = 1;
	else if (frame->hd.type == NGHTTP2_GOAWAY)
		c->goaway = 1;
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t code, void *ud)
{
	cc_conn *c = ud;
	if (stream_id == c->stream_id) {
		c->stream_closed = 1;
		c->rst_code = code;
	}
	return 0;
}

static ssize_t req_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                        uint32_t *data_flags, nghttp2_data_source *src, void *ud)
{
	cc_conn *c = ud;
	size_t n = c->req_len - c->req_off;
	if (n > length)
		n = length;
	memcpy(buf, c->req + c->req_off, n);
	c->req_off += n;
	if (c->req_off == c->req_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* --- driving the session ------------------------------------------------------------------- */

/* Write everything nghttp2 has to send, wiping each frame buffer once written. */
static int flush(cc_conn *c, uint64_t deadline, char *err, size_t errlen)
{
	for (;;) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);
		if (n < 0) {
			snprintf(err, errlen, "HTTP/2: %s", nghttp2_strerror((int)n));
			return COFFER_EIO;
		}
		if (n == 0)
			return 0;
		int rv = io_write(c, data, (size_t)n, deadline, err, errlen);
		explicit_bzero((void *)(uintptr_t)data, (size_t)n);
		if (rv != 0)
			return COFFER_EUNAVAIL;
	}
}

/* The server sent what nghttp2 refused: say what kind of server it looks like. */
static int bad_bytes(cc_conn *c, const char *why, char *err, size_t errlen)
{
	char w[400];
	c->dead = 1;
	if (!c->settings_seen && c->first_len >= 5 && memcmp(c->first, "HTTP/", 5) == 0)
		snprintf(
		    err, errlen,
		    "%s is not an HTTP/2 server (it answered in HTTP/1.x): not a gRPC server%s",
		    where(c, w, sizeof(w)), c->cfg.tls ? "" : ", or one that wants TLS");
	else if (!c->settings_seen)
		snprintf(
		    err, errlen,
		    "%s is not an HTTP/2 server (it sent bytes that are not HTTP/2 frames): not "
		    "a gRPC server%s",
		    where(c, w, sizeof(w)), c->cfg.tls ? "" : ", or one that wants TLS");
	else
		snprintf(err, errlen, "%s broke the HTTP/2 protocol: %s", where(c, w, sizeof(w)),
		         why);
	return c->settings_seen ? COFFER_EIO : COFFER_EUNAVAIL;
}

/* Read once and feed nghttp2. 0, or a coffer_rc with err. */
static int pump(cc_conn *c, uint64_t deadline, char *err, size_t errlen)
{
	char w[400];
	/* Our GOAWAY for bad frames went out with the last flush: the session is over. */
	if (!nghttp2_session_want_read(c->h2)) {
		if (c->bad_frames || !c->goaway || !c->settings_seen)
			return bad_bytes(c, "invalid frames", err, errlen);
		snprintf(err, errlen, "%s ended the connection (GOAWAY) in the middle of the call",
		         where(c, w, sizeof(w)));
		c->dead = 1;
		return COFFER_EUNAVAIL;
	}
	ssize_t n = io_read(c, deadline, err, errlen);
	if (n < 0)
		return COFFER_EUNAVAIL;
	if (n == 0) {
		c->eof = 1;
		if (c->bad_frames)
			return bad_bytes(c, "connection error", err, errlen);
		if (!c->settings_seen)
			snprintf(err, errlen,
			         "%s closed the connection before speaking HTTP/2 (not a gRPC "
			         "server%s?)",
			         where(c, w, sizeof(w)),
			         c->cfg.tls ? "" : ", or one that wants TLS");
		else
			snprintf(err, errlen, "%s closed the connection in the middle of the call",
			         where(c, w, sizeof(w)));
		return COFFER_EUNAVAIL;
	}
	if (c->first_len < sizeof(c->first)) {
		size_t k = sizeof(c->first) - c->first_len < (size_t)n
		               ? sizeof(c->first) - c->first_len
		               : (size_t)n;
		memcpy(c->first + c->first_len, c->rbuf, k);
		c->first_len += k;
	}
	ssize_t rv = nghttp2_session_mem_recv(c->h2, c->rbuf, (size_t)n);
	explicit_bzero(c->rbuf, (size_t)n);
	if (rv < 0)
		return bad_bytes(c, nghttp2_strerror((int)rv), err, errlen);
	/* A connection error (bad frame) ends the session with a GOAWAY of ours, not an error. */
	if (c->bad_frames || !nghttp2_session_want_read(c->h2)) {
		if (c->bad_frames || !c->settings_seen)
			return bad_bytes(c, "invalid frames", err, errlen);
		if (!c->stream_closed && c->stream_id > 0) {
			snprintf(err, errlen, "%s ended the connection in the middle of the call",
			         where(c, w, sizeof(w)));
			c->dead = 1;
			return COFFER_EUNAVAIL;
		}
	}
	return 0;
}

/* nghttp2 found a connection error in what the server sent. */
static int on_invalid_frame(nghttp2_session *s, const nghttp2_frame *frame, int lib_error, void *ud)
{
	return 0;
}

static int on_error2(nghttp2_session *s, int lib_error, const char *msg, size_t len, void *ud)
{
	cc_conn *c = ud;
	if (lib_error != NGHTTP2_ERR_CALLBACK_FAILURE)
		c->bad_frames = 1;
	return 0;
}

static int session_new(cc_conn *c)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -1;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cbs);
		return -1;
	}
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
	nghttp2_session_callbacks_set_error_callback2(cbs, on_error2);
	nghttp2_option_set_max_continuations(opt, 8);
	nghttp2_option_set_max_settings(opt, 32);
	int rv = nghttp2_session_client_new3(&c->h2, cbs, c, opt, &wipe_mem);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	return rv == 0 ? 0 : -1;
}

int cc_conn_open(cc_conn **out, const cc_config *cfg, char *err, size_t errlen)
{
	char w[400];
	cc_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return COFFER_ENOMEM;
	}
	c->cfg = *cfg;
	c->fd = -1;
	uint64_t deadline = now_ms() + cfg->timeout_ms;
	int rc = net_connect(c, deadline, err, errlen);
	if (rc == 0 && cfg->tls && (rc = tls_setup(c, err, errlen)) == 0)
		rc = tls_handshake(c, deadline, err, errlen);
	if (rc == 0 && session_new(c) != 0) {
		snprintf(err, errlen, "out of memory");
		rc = COFFER_ENOMEM;
	}
	if (rc == 0) {
		/* Our stream flow-control window: the largest response plus its framing. */
		nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		                               {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 16}};
		if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2) != 0)
			rc = COFFER_ENOMEM;
	}
	if (rc == 0)
		rc = flush(c, deadline, err, errlen);
	/* Wait for the server's SETTINGS: what is on the other end is known before any call. */
	while (rc == 0 && !c->settings_seen) {
		rc = pump(c, deadline, err, errlen);
		if (rc == 0)
			rc = flush(c, deadline, err, errlen);
	}
	if (rc != 0 && rc != COFFER_ENOMEM && err[0] == '\0')
		snprintf(err, errlen, "%s: connection failed", where(c, w, sizeof(w)));
	if (rc != 0) {
		cc_conn_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void cc_conn_close(cc_conn *c)
{
	if (c == NULL)
		return;
	if (c->h2 != NULL)
		nghttp2_session_del(c->h2);
	if (c->ssl != NULL) {
		if (!c->eof && !c->dead)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->ctx != NULL)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	explicit_bzero(c, sizeof(*c));
	free(c);
}

int cc_conn_usable(cc_conn *c)
{
	char err[256];
	struct pollfd p = {c->fd, POLLIN, 0};
	if (c->dead || c->eof || c->goaway)
		return 0;
	/* What arrived since the last call (a GOAWAY, the end of the connection after the server's
	 * idle timeout or restart) is read now, so that a closed connection is not used. */
	if ((c->ssl != NULL && SSL_pending(c->ssl) > 0) || poll(&p, 1, 0) > 0) {
		uint64_t now = now_ms();
		if (pump(c, now, err, sizeof(err)) != 0 ||
		    flush(c, now + c->cfg.timeout_ms, err, sizeof(err)) != 0)
			return 0;
	}
	return !c->dead && !c->eof && !c->goaway && nghttp2_session_want_read(c->h2) &&
	       nghttp2_session_check_request_allowed(c->h2);
}

/* --- one call ------------------------------------------------------------------------------ */

static void call_reset(cc_conn *c, pb_buf *resp)
{
	c->stream_id = 0;
	c->stream_closed = 0;
	c->rst_code = 0;
	c->http_status = 0;
	c->ct_grpc = 0;
	c->have_grpc_status = 0;
	c->grpc_status = 0;
	c->hdr_bytes = 0;
	c->grpc_message[0] = '\0';
	c->ct[0] = '\0';
	c->fail_rc = 0;
	c->fail_msg[0] = '\0';
	c->prefix_have = 0;
	c->msg = resp;
	c->msg_len = 0;
	c->msg_started = c->msg_done = 0;
}

/* What the finished stream says. */
static int call_result(cc_conn *c, const char *path, char *err, size_t errlen)
{
	char w[400];
	if (c->fail_rc != 0) {
		snprintf(err, errlen, "%s", c->fail_msg);
		return c->fail_rc;
	}
	if (c->http_status != 200 && !c->have_grpc_status) {
		snprintf(err, errlen, "%s answered HTTP status %d to %s: not a gRPC server",
		         where(c, w, sizeof(w)), c->http_status, path);
		return COFFER_EUNAVAIL;
	}
	if (!c->ct_grpc && !c->have_grpc_status) {
		snprintf(err, errlen, "%s answered with content-type '%s': not a gRPC server",
		         where(c, w, sizeof(w)), c->ct);
		return COFFER_EUNAVAIL;
	}
	if (!c->have_grpc_status) {
		if (c->rst_code != 0)
			snprintf(err, errlen, "%s reset the call (HTTP/2 error %s)",
			         where(c, w, sizeof(w)), nghttp2_http2_strerror(c->rst_code));
		else
			snprintf(err, errlen,
			         "%s ended the call without a gRPC status (truncated answer)",
			         where(c, w, sizeof(w)));
		return COFFER_EIO;
	}
	if (c->grpc_status != 0) {
		if (c->grpc_status == 12)
			snprintf(err, errlen,
			         "%s does not serve %s (%s): not a coffer server, or an "
			         "older one",
			         where(c, w, sizeof(w)), path,
			         c->grpc_message[0] ? c->grpc_message : "UNIMPLEMENTED");
		else if (c->grpc_message[0] != '\0')
			snprintf(err, errlen, "%s", c->grpc_message);
		else
			snprintf(err, errlen, "the server answered gRPC status %d", c->grpc_status);
		return cc_rc_from_status(c->grpc_status, c->grpc_message);
	}
	if (!c->msg_started || !c->msg_done) {
		snprintf(err, errlen, "%s",
		         c->prefix_have == 0 && !c->msg_started
		             ? "the server answered OK without a response message"
		             : "the server's response message is truncated");
		return COFFER_EIO;
	}
	return 0;
}

int cc_call(cc_conn *c, const char *path, const pb_buf *req, const char *token, pb_buf *resp,
            char *err, size_t errlen)
{
	char tmo[32], auth[600] = "";
	uint64_t deadline = now_ms() + c->cfg.timeout_ms;
	if (req->oom || req->len > UINT32_MAX - 5) {
		snprintf(err, errlen, "out of memory");
		return COFFER_ENOMEM;
	}
	pb_buf framed = {0};
	uint8_t pre[5] = {0, (uint8_t)(req->len >> 24), (uint8_t)(req->len >> 16),
	                  (uint8_t)(req->len >> 8), (uint8_t)req->len};
	/* Raw bytes: the 5-byte prefix and then the message, into one wiped buffer. */
	framed.data = malloc(req->len + 5);
	if (framed.data == NULL) {
		snprintf(err, errlen, "out of memory");
		return COFFER_ENOMEM;
	}
	framed.cap = framed.len = req->len + 5;
	memcpy(framed.data, pre, 5);
	if (req->len > 0)
		memcpy(framed.data + 5, req->data, req->len);

	call_reset(c, resp);
	c->req = framed.data;
	c->req_len = framed.len;
	c->req_off = 0;
	/* grpc-timeout takes at most 8 digits */
	snprintf(tmo, sizeof(tmo), "%um",
	         c->cfg.timeout_ms > 99999999u ? 99999999u : c->cfg.timeout_ms);
	nghttp2_nv hdrs[9];
	size_t nh = 0;
#define HDR(n, v, fl)                                                                              \
	hdrs[nh++] = (nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), (fl)}
	HDR(":method", "POST", NGHTTP2_NV_FLAG_NONE);
	HDR(":scheme", c->cfg.tls ? "https" : "http", NGHTTP2_NV_FLAG_NONE);
	HDR(":authority", c->cfg.authority, NGHTTP2_NV_FLAG_NONE);
	HDR(":path", path, NGHTTP2_NV_FLAG_NONE);
	HDR("content-type", "application/grpc", NGHTTP2_NV_FLAG_NONE);
	HDR("te", "trailers", NGHTTP2_NV_FLAG_NONE);
	HDR("grpc-timeout", tmo, NGHTTP2_NV_FLAG_NONE);
	HDR("user-agent", "coffer-client/" COFFER_VERSION_STRING, NGHTTP2_NV_FLAG_NONE);
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Bearer %s", token);
		/* Never indexed: the token stays out of either side's HPACK table. */
		HDR("authorization", auth, NGHTTP2_NV_FLAG_NO_INDEX);
	}
#undef HDR
	nghttp2_data_provider prd;
	prd.source.ptr = c;
	prd.read_callback = req_read;
	int rc = 0;
	c->stream_id = nghttp2_submit_request(c->h2, NULL, hdrs, nh, &prd, NULL);
	explicit_bzero(auth, sizeof(auth)); /* nghttp2 copied it */
	if (c->stream_id < 0) {
		snprintf(err, errlen, "HTTP/2: %s", nghttp2_strerror(c->stream_id));
		rc = COFFER_EIO;
	}
	if (rc == 0)
		rc = flush(c, deadline, err, errlen);
	while (rc == 0 && !c->stream_closed && c->fail_rc == 0) {
		rc = pump(c, deadline, err, errlen);
		if (rc == 0)
			rc = flush(c, deadline, err, errlen);
	}
	if (rc == 0 && c->fail_rc != 0)
		flush(c, deadline, err, errlen); /* the RST_STREAM, best effort */
	if (rc == 0)
		rc = call_result(c, path, err, errlen);
	else
		c->dead = 1;
	c->req = NULL;
	c->msg = NULL;
	pb_buf_free(&framed);
	return rc;
}

/* --- status mapping ------------------------------------------------------------------------ */

int cc_rc_from_status(int status, const char *message)
{
	if (status == 0)
		return COFFER_OK;
	/* The exact code, when the server sent that code's own text. */
	if (message != NULL) {
#define X(name, value, msg, grpc, exitcode)                                                        \
	if ((grpc) == status && (value) != 0 && strcmp(message, (msg)) == 0)                       \
		return (value);
		COFFER_ERROR_LIST(X)
#undef X
	}
	switch (status) {
	case 9: /* FAILED_PRECONDITION: the lifecycle's refusals, told apart by the server's text */
		if (message != NULL && strstr(message, "check-and-set") != NULL)
			return COFFER_ECONFLICT;
		if (message != NULL && strstr(message, "scheduled for deletion") != NULL)
			return COFFER_EDELETED;
		if (message != NULL && strstr(message, "disabled") != NULL)
			return COFFER_EDISABLED;
		return COFFER_EIO;
	case 6: /* ALREADY_EXISTS: a request id used with another value */
		return message != NULL && strstr(message, "request id") != NULL ? COFFER_EREUSED
		                                                                : COFFER_EIO;
	case 13:
		if (message != NULL && (strstr(message, "audit log broken") != NULL ||
		                        strstr(message, "integrity") != NULL))
			return COFFER_EINTEGRITY;
		return COFFER_EIO;
	case 3:
		return COFFER_EINVAL;
	case 5:
		return COFFER_ENOTFOUND;
	case 7:
	case 16:
		return COFFER_EPERM;
	case 8:
		return COFFER_ENOMEM;
	case 4:
	case 12:
	case 14:
		return COFFER_EUNAVAIL;
	default:
		return COFFER_EIO;
	}
}
