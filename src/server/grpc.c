/*
 * grpc.c -- gRPC over HTTP/2 for one server connection, bytes in and bytes out (see grpc.h).
 *
 * One gs_call per HTTP/2 stream holds the request state: header accounting, the 5-byte gRPC
 * message prefix, the message buffer, and later the response. It is freed when both the stream
 * is closed and the owner no longer holds it.
 */
#include "grpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <nghttp2/nghttp2.h>
#include <sodium.h>

#include "wipe.h"
#include "wire.h"

#define PATH_MAX_LEN 128

typedef enum body_state {
	BODY_PREFIX = 0, /* reading the 5-byte prefix */
	BODY_MESSAGE,    /* reading the message */
	BODY_COMPLETE,   /* one whole message received */
	BODY_IGNORE,     /* answered already (error); drop what else comes */
} body_state;

struct gs_call {
	gs_conn *conn; /* NULL once the connection is gone */
	gs_call *prev, *next;
	int32_t stream_id;
	unsigned stream_closed : 1;
	unsigned owned : 1;       /* handed to the owner, not yet replied */
	unsigned replied : 1;     /* a response was submitted */
	unsigned hdr_pending : 1; /* header block begun, not complete */
	unsigned is_post : 1;
	unsigned ct_grpc : 1;
	unsigned has_ct : 1;
	unsigned encoded : 1; /* grpc-encoding other than identity */
	unsigned has_bearer : 1;
	unsigned waiting : 1; /* parked by the owner until its policy arrives */
	uint32_t hdr_bytes, hdr_fields;
	gs_method method;
	char path[PATH_MAX_LEN];
	char bearer[GS_TOKEN_MAX + 1];
	size_t bearer_len;
	/* request message */
	body_state state;
	uint8_t prefix[5];
	size_t prefix_have;
	uint8_t *msg;
	size_t msg_len, msg_have, msg_cap;
	/* response */
	uint8_t *resp;
	size_t resp_len, resp_off;
	void *owner_data;
	uint64_t started_ms;  /* first tick that saw the request (0: none yet) */
	uint64_t deadline_us; /* the client's grpc-timeout, on CLOCK_MONOTONIC (0: none) */
};

struct gs_conn {
	nghttp2_session *h2;
	gs_limits lim;
	gs_conn_cb cb;
	gs_call *calls; /* all calls that still have a stream or an owner */
	size_t n_streams, n_owned, buffered, hdr_pending;
	size_t n_waiting;     /* calls parked until their policy arrives (gs_call_wait) */
	uint32_t max_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS advertised last */
	int fatal, in_recv, preface_done;
	uint64_t rx_bytes, rx_seen_at_tick, last_rx_ms, hdr_since_ms;
	uint64_t rst_budget, rst_at_sec; /* Rapid Reset token bucket (see count_reset) */
	uint8_t *sent; /* the bytes gs_conn_send() handed out last (in nghttp2's frame buffer) */
	size_t sent_len;
};

/*
 * Both of Nitric's contract generations, on the same port (see DESIGN.md, the wire contract), and
 * coffer's own admin service (proto/coffer/admin/v1/admin.proto, served by admin.c). The length is
 * kept beside each path: every request's :path is looked up here.
 */
#define PATH(p, m)                                                                                 \
	{                                                                                          \
		p, sizeof(p) - 1, m                                                                \
	}
static const struct {
	const char *name;
	size_t len;
	gs_method method;
} paths[] = {
    PATH("/nitric.proto.secrets.v1.SecretManager/Put", GS_M_PUT),
    PATH("/nitric.proto.secrets.v1.SecretManager/Access", GS_M_ACCESS),
    PATH("/nitric.proto.resources.v1.Resources/Declare", GS_M_DECLARE),
    PATH("/nitric.secret.v1.SecretService/Put", GS_M_PUT),
    PATH("/nitric.secret.v1.SecretService/Access", GS_M_ACCESS),
    PATH("/nitric.resource.v1.ResourceService/Declare", GS_M_DECLARE_V0),
    PATH("/grpc.health.v1.Health/Check", GS_M_HEALTH_CHECK),
    PATH("/coffer.admin.v1.Admin/Versions", GS_M_ADMIN_VERSIONS),
    PATH("/coffer.admin.v1.Admin/List", GS_M_ADMIN_LIST),
    PATH("/coffer.admin.v1.Admin/Destroy", GS_M_ADMIN_DESTROY),
    PATH("/coffer.admin.v1.Admin/Disable", GS_M_ADMIN_DISABLE),
    PATH("/coffer.admin.v1.Admin/Enable", GS_M_ADMIN_ENABLE),
    PATH("/coffer.admin.v1.Admin/Label", GS_M_ADMIN_LABEL),
    PATH("/coffer.admin.v1.Admin/Delete", GS_M_ADMIN_DELETE),
    PATH("/coffer.admin.v1.Admin/Restore", GS_M_ADMIN_RESTORE),
    PATH("/coffer.admin.v1.Admin/AuditVerify", GS_M_ADMIN_AUDIT_VERIFY),
    PATH("/coffer.admin.v1.Admin/Describe", GS_M_ADMIN_DESCRIBE),
    PATH("/coffer.admin.v1.Admin/Put", GS_M_ADMIN_PUT),
    PATH("/coffer.admin.v1.Admin/Meta", GS_M_ADMIN_META),
    PATH("/coffer.admin.v1.Admin/Audit", GS_M_ADMIN_AUDIT),
};

/* --- call lifetime ------------------------------------------------------------------------- */

static void call_unlink(gs_call *call)
{
	gs_conn *c = call->conn;
	if (c == NULL)
		return;
	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	call->prev = call->next = NULL;
}

static void call_release_msg(gs_call *call)
{
	if (call->msg != NULL) {
		/* The message may be a value being put: wipe before free. */
		sodium_memzero(call->msg, call->msg_cap);
		free(call->msg);
		if (call->conn != NULL)
			call->conn->buffered -= call->msg_cap;
		call->msg = NULL;
		call->msg_cap = 0;
	}
}

static void call_free(gs_call *call)
{
	call_release_msg(call);
	if (call->resp != NULL) {
		sodium_memzero(call->resp, call->resp_len); /* an Access answer holds a value */
		free(call->resp);
	}
	if (call->conn != NULL && call->hdr_pending)
		call->conn->hdr_pending--;
	call_unlink(call);
	if (call->has_bearer) /* only then was it written (header_field) */
		sodium_memzero(call->bearer, sizeof(call->bearer));
	free(call);
}

/* Free the call if neither its stream nor its owner needs it any more. */
static void call_maybe_free(gs_call *call)
{
	if (call->owned)
		return;
	if (call->stream_closed || call->conn == NULL)
		call_free(call);
}

/* --- responses ----------------------------------------------------------------------------- */

/* A header with a literal name (nghttp2 need not copy it) and a value it copies. */
#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                          \
		    NGHTTP2_NV_FLAG_NO_COPY_NAME                                                   \
	}
/* Both literals: nothing copied (the answer of every request). */
#define NV_LIT(n, v)                                                                               \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,                      \
		    NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                   \
	}

static ssize_t resp_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *src, void *ud)
{
	gs_call *call = src->ptr;
	size_t n = call->resp_len - call->resp_off;
	if (n > length)
		n = length;
	memcpy(buf, call->resp + call->resp_off, n);
	call->resp_off += n;
	if (call->resp_off == call->resp_len) {
		static const nghttp2_nv trailer[] = {NV_LIT("grpc-status", "0")};
		*data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(s, stream_id, trailer, 1) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

typedef struct copy_fill {
	const uint8_t *body;
} copy_fill;

static void fill_copy(uint8_t *dst, size_t len, void *ctx)
{
	if (len > 0)
		memcpy(dst, ((copy_fill *)ctx)->body, len);
}

static int submit_ok(gs_call *call, size_t len, gs_fill_fn fill, void *ctx)
{
	static const nghttp2_nv hdrs[] = {NV_LIT(":status", "200"),
	                                  NV_LIT("content-type", "application/grpc"),
	                                  NV_LIT("grpc-accept-encoding", "identity")};
	nghttp2_data_provider prd;

	call->resp = malloc(len + 5);
	if (call->resp == NULL)
		return -1;
	call->resp[0] = 0;
	call->resp[1] = (uint8_t)(len >> 24);
	call->resp[2] = (uint8_t)(len >> 16);
	call->resp[3] = (uint8_t)(len >> 8);
	call->resp[4] = (uint8_t)len;
	fill(call->resp + 5, len, ctx);
	call->resp_len = len + 5;
	prd.source.ptr = call;
	prd.read_callback = resp_read;
	return nghttp2_submit_response(call->conn->h2, call->stream_id, hdrs, 3, &prd) == 0 ? 0
	                                                                                    : -1;
}

/* A "Trailers-Only" answer: one HEADERS frame with the status, ending the stream. */
static int submit_error(gs_call *call, const char *http_status, int status, const char *message,
                        const char *cause)
{
	char code[16], enc[512], details[1500];
	nghttp2_nv hdrs[6];
	size_t n = 0;

	snprintf(code, sizeof(code), "%d", status);
	gs_percent_encode(message != NULL ? message : "", enc, sizeof(enc));
	hdrs[n++] = (nghttp2_nv)NV(":status", http_status);
	hdrs[n++] = (nghttp2_nv)NV("content-type", "application/grpc");
	hdrs[n++] = (nghttp2_nv)NV("grpc-status", code);
	hdrs[n++] = (nghttp2_nv)NV("grpc-message", enc);
	if (cause != NULL && wire_status_details_b64(status, message != NULL ? message : "", cause,
	                                             details, sizeof(details)) == 0)
		hdrs[n++] = (nghttp2_nv)NV("grpc-status-details-bin", details);
	return nghttp2_submit_response(call->conn->h2, call->stream_id, hdrs, n, NULL) == 0 ? 0
	                                                                                    : -1;
}

/* An error found by this layer itself, while the peer is still sending. */
static void layer_error(gs_call *call, const char *http_status, int status, const char *message)
{
	if (call->replied)
		return;
	call->replied = 1;
	call->state = BODY_IGNORE;
	call_release_msg(call);
	if ((call->conn->cb.on_refused != NULL &&
	     call->conn->cb.on_refused(call->conn->cb.ud, call, status) != 0) ||
	    submit_error(call, http_status, status, message, NULL) != 0)
		nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE, call->stream_id,
		                          NGHTTP2_INTERNAL_ERROR);
}

/* --- request headers ----------------------------------------------------------------------- */

static gs_call *call_of(nghttp2_session *s, int32_t stream_id)
{
	return nghttp2_session_get_stream_user_data(s, stream_id);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	gs_conn *c = ud;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	gs_call *call = calloc(1, sizeof(*call));
	if (call == NULL)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	call->conn = c;
	call->stream_id = frame->hd.stream_id;
	call->hdr_pending = 1;
	c->hdr_pending++;
	call->next = c->calls;
	if (c->calls != NULL)
		c->calls->prev = call;
	c->calls = call;
	c->n_streams++;
	nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, call);
	return 0;
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * grpc-timeout: 1 to 8 digits and a unit (H M S m u n). Returns the timeout in microseconds
 * (at least 1), or 0 for a malformed value, which is ignored as if absent.
 */
static uint64_t parse_timeout_us(const uint8_t *v, size_t len)
{
	static const struct {
		char unit;
		uint64_t mul, div;
	} units[] = {{'H', 3600000000u, 1}, {'M', 60000000u, 1}, {'S', 1000000u, 1},
	             {'m', 1000u, 1},       {'u', 1, 1},         {'n', 1, 1000}};
	uint64_t n = 0;
	if (len < 2 || len > 9)
		return 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return 0;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (v[len - 1] == (uint8_t)units[i].unit) {
			uint64_t us = n * units[i].mul / units[i].div;
			return us > 0 ? us : 1;
		}
	return 0;
}

static void header_field(gs_call *call, const uint8_t *name, size_t nlen, const uint8_t *value,
                         size_t vlen)
{
	if (nlen == 7 && memcmp(name, ":method", 7) == 0) {
		call->is_post = vlen == 4 && memcmp(value, "POST", 4) == 0;
	} else if (nlen == 5 && memcmp(name, ":path", 5) == 0) {
		size_t n = vlen < PATH_MAX_LEN - 1 ? vlen : PATH_MAX_LEN - 1;
		memcpy(call->path, value, n);
		call->path[n] = '\0';
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
			if (paths[i].len == vlen && memcmp(paths[i].name, value, vlen) == 0) {
				call->method = paths[i].method;
				break;
			}
	} else if (nlen == 12 && memcmp(name, "content-type", 12) == 0) {
		call->has_ct = 1;
		/* application/grpc, or application/grpc+proto / ;params */
		call->ct_grpc = vlen >= 16 &&
		                strncasecmp((const char *)value, "application/grpc", 16) == 0 &&
		                (vlen == 16 || value[16] == '+' || value[16] == ';');
	} else if (nlen == 12 && memcmp(name, "grpc-timeout", 12) == 0) {
		uint64_t t = parse_timeout_us(value, vlen);
		call->deadline_us = t > 0 ? mono_us() + t : 0;
	} else if (nlen == 13 && memcmp(name, "grpc-encoding", 13) == 0) {
		call->encoded = !(vlen == 8 && memcmp(value, "identity", 8) == 0);
	} else if (nlen == 13 && memcmp(name, "authorization", 13) == 0) {
		call->has_bearer = 1;
		call->bearer_len = 0;
		if (vlen > 7 && strncasecmp((const char *)value, "Bearer ", 7) == 0 &&
		    vlen - 7 <= GS_TOKEN_MAX) {
			memcpy(call->bearer, value + 7, vlen - 7);
			call->bearer_len = vlen - 7;
		}
		call->bearer[call->bearer_len] = '\0';
	}
}

/* Every field passes here, so the header list limits are counted by us, not by the library. */
static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
	gs_call *call = call_of(s, frame->hd.stream_id);
	if (call == NULL)
		return 0;
	call->hdr_bytes += (uint32_t)(nlen + vlen + 32);
	call->hdr_fields++;
	if (call->hdr_bytes > GS_MAX_HEADER_BYTES || call->hdr_fields > GS_MAX_HEADER_FIELDS)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream */
	if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		header_field(call, name, nlen, value, vlen);
	return 0;
}

/* The request's headers are complete: refuse now what can be refused without the body. */
static void headers_done(gs_call *call)
{
	if (call->hdr_pending) {
		call->hdr_pending = 0;
		call->conn->hdr_pending--;
	}
	if (!call->is_post)
		layer_error(call, "405", GS_UNIMPLEMENTED, "only POST is served");
	else if (!call->ct_grpc)
		layer_error(call, "415", GS_INVALID_ARGUMENT,
		            "content-type must be application/grpc");
	else if (call->method == GS_M_UNKNOWN) {
		char msg[PATH_MAX_LEN + 32];
		snprintf(msg, sizeof(msg), "unknown method %s", call->path);
		layer_error(call, "200", GS_UNIMPLEMENTED, msg);
	}
}

/* --- request body -------------------------------------------------------------------------- */

static int body_prefix_done(gs_call *call)
{
	gs_conn *c = call->conn;
	uint32_t len = (uint32_t)call->prefix[1] << 24 | (uint32_t)call->prefix[2] << 16 |
	               (uint32_t)call->prefix[3] << 8 | call->prefix[4];
	char msg[128];

	if (call->prefix[0] & 1) {
		layer_error(call, "200", call->encoded ? GS_UNIMPLEMENTED : GS_INTERNAL,
		            call->encoded ? "compression is not supported"
		                          : "compressed flag set without grpc-encoding");
		return -1;
	}
	if (call->prefix[0] != 0) {
		layer_error(call, "200", GS_INTERNAL, "bad gRPC message flags");
		return -1;
	}
	/* The limit is checked against the declared length, before any allocation. */
	if (len > c->lim.max_message) {
		snprintf(msg, sizeof(msg), "received message larger than max (%u vs. %u)", len,
		         c->lim.max_message);
		layer_error(call, "200", GS_RESOURCE_EXHAUSTED, msg);
		return -1;
	}
	call->msg_len = len;
	call->msg_have = 0;
	call->state = len == 0 ? BODY_COMPLETE : BODY_MESSAGE;
	return 0;
}

/* Grow the message buffer only as data really arrives, so a large declared length costs nothing. */
static int body_reserve(gs_call *call, size_t need)
{
	gs_conn *c = call->conn;
	if (need <= call->msg_cap)
		return 0;
	size_t cap = call->msg_cap != 0 ? call->msg_cap : 4096;
	while (cap < need)
		cap *= 2;
	if (cap > call->msg_len)
		cap = call->msg_len;
	if (c->buffered + (cap - call->msg_cap) > c->lim.max_conn_buffered) {
		layer_error(call, "200", GS_RESOURCE_EXHAUSTED, "too much request data in flight");
		return -1;
	}
	uint8_t *m = malloc(cap);
	if (m == NULL) {
		layer_error(call, "200", GS_RESOURCE_EXHAUSTED, "out of memory");
		return -1;
	}
	/* Not realloc: the old buffer may hold a value and must be wiped, not left in the heap. */
	if (call->msg_have > 0)
		memcpy(m, call->msg, call->msg_have);
	call_release_msg(call);
	call->msg = m;
	call->msg_cap = cap;
	c->buffered += cap;
	return 0;
}

static void body_feed(gs_call *call, const uint8_t *data, size_t len)
{
	while (len > 0) {
		if (call->state == BODY_IGNORE)
			return;
		if (call->state == BODY_COMPLETE) {
			layer_error(call, "200", GS_INTERNAL,
			            "more than one request message for a unary method");
			return;
		}
		if (call->state == BODY_PREFIX) {
			size_t n = 5 - call->prefix_have;
			if (n > len)
				n = len;
			memcpy(call->prefix + call->prefix_have, data, n);
			call->prefix_have += n;
			data += n;
			len -= n;
			if (call->prefix_have == 5 && body_prefix_done(call) != 0)
				return;
			continue;
		}
		size_t n = call->msg_len - call->msg_have;
		if (n > len)
			n = len;
		if (body_reserve(call, call->msg_have + n) != 0)
			return;
		memcpy(call->msg + call->msg_have, data, n);
		call->msg_have += n;
		data += n;
		len -= n;
		if (call->msg_have == call->msg_len)
			call->state = BODY_COMPLETE;
	}
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *ud)
{
	gs_call *call = call_of(s, stream_id);
	if (call != NULL && !call->replied)
		body_feed(call, data, len);
	return 0;
}

/* The peer finished its request: hand it over, or say what is wrong with it. */
static void request_done(gs_call *call)
{
	gs_conn *c = call->conn;
	if (call->replied)
		return;
	if (call->state == BODY_PREFIX && call->prefix_have == 0) {
		layer_error(call, "200", GS_INTERNAL, "no request message");
		return;
	}
	if (call->state != BODY_COMPLETE) {
		layer_error(call, "200", GS_INTERNAL, "truncated gRPC message");
		return;
	}
	call->owned = 1;
	c->n_owned++;
	c->cb.on_call(c->cb.ud, call);
}

static uint64_t now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/*
 * Rapid Reset (CVE-2023-44487) is a client opening streams and resetting them before the server
 * has answered, so that the server works for requests that cost the client nothing and never
 * count against the stream limit. Only such resets draw on the budget. A reset of a stream the
 * server has already answered in full is ordinary: grpc-js sends RST_STREAM(NO_ERROR) after most
 * completed calls, and nghttp2's own limiter, which counts every RST_STREAM frame, cut off
 * well-behaved SDKs under steady load (GOAWAY, 13 INTERNAL on calls that had been stored).
 * Returns -1 once the budget is spent: the connection is then torn down.
 */
static int count_reset(gs_conn *c, nghttp2_session *s, int32_t stream_id)
{
	if (call_of(s, stream_id) == NULL ||
	    nghttp2_session_get_stream_local_close(s, stream_id) == 1)
		return 0; /* unknown, closed, or answered in full: not the attack */
	uint64_t now = now_sec();
	if (now > c->rst_at_sec) {
		uint64_t gain = (now - c->rst_at_sec) * c->lim.rst_rate;
		c->rst_budget = c->rst_budget + gain > c->lim.rst_burst ? c->lim.rst_burst
		                                                        : c->rst_budget + gain;
		c->rst_at_sec = now;
	}
	if (c->rst_budget == 0)
		return -1;
	c->rst_budget--;
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	gs_conn *c = ud;
	gs_call *call;

	if (frame->hd.type == NGHTTP2_SETTINGS)
		c->preface_done = 1;
	if (frame->hd.type == NGHTTP2_RST_STREAM && count_reset(c, s, frame->hd.stream_id) != 0) {
		c->fatal = 1;
		nghttp2_session_terminate_session(s, NGHTTP2_ENHANCE_YOUR_CALM);
		return 0;
	}
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	call = call_of(s, frame->hd.stream_id);
	if (call == NULL)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		headers_done(call);
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		request_done(call);
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
	gs_conn *c = ud;
	gs_call *call = call_of(s, stream_id);
	if (call == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(s, stream_id, NULL);
	call->stream_closed = 1;
	c->n_streams--;
	call_maybe_free(call);
	return 0;
}

/* --- the connection ------------------------------------------------------------------------ */

static void limits_defaults(gs_limits *l, const gs_limits *in)
{
	memset(l, 0, sizeof(*l));
	if (in != NULL)
		*l = *in;
	if (l->max_message == 0 || l->max_message > GS_MAX_MESSAGE)
		l->max_message = GS_MAX_MESSAGE;
	if (l->max_conn_buffered == 0)
		l->max_conn_buffered = 8u * 1024u * 1024u;
	if (l->header_timeout_ms == 0)
		l->header_timeout_ms = 10000;
	if (l->idle_timeout_ms == 0)
		l->idle_timeout_ms = 120000;
	if (l->rst_burst == 0)
		l->rst_burst = 200;
	if (l->rst_rate == 0)
		l->rst_rate = 50;
}

static int session_new(gs_conn *c)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	int rv;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -1;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cbs);
		return -1;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	/*
	 * Rapid Reset is limited by count_reset(), which tells an attack from grpc-js's ordinary
	 * resets of answered streams; nghttp2's own limiter counts every RST_STREAM, so it is set
	 * out of reach. CONTINUATION floods (CVE-2024-28182) are capped here.
	 */
	nghttp2_option_set_stream_reset_rate_limit(opt, UINT64_MAX, UINT64_MAX);
	nghttp2_option_set_max_continuations(opt, GS_MAX_CONTINUATIONS);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_settings(opt, 32);
	/* Closed streams are not kept for the RFC 7540 priority tree (which gRPC does not use):
	 * every unary call opens and closes one. */
	nghttp2_option_set_no_closed_streams(opt, 1);
	/* nghttp2's frame buffers carry values: its allocations are wiped when freed. */
	rv = nghttp2_session_server_new3(&c->h2, cbs, c, opt, (nghttp2_mem *)wipe_nghttp2_mem());
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	return rv == 0 ? 0 : -1;
}

gs_conn *gs_conn_new(const gs_limits *lim, const gs_conn_cb *cb)
{
	gs_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	limits_defaults(&c->lim, lim);
	c->rst_budget = c->lim.rst_burst;
	c->rst_at_sec = now_sec();
	c->cb = *cb;
	if (session_new(c) != 0) {
		free(c);
		return NULL;
	}
	c->max_streams = GS_MAX_STREAMS;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GS_MAX_STREAMS},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GS_MAX_HEADER_BYTES},
	};
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2) != 0) {
		nghttp2_session_del(c->h2);
		free(c);
		return NULL;
	}
	return c;
}

void gs_conn_free(gs_conn *c)
{
	if (c == NULL)
		return;
	gs_call *call = c->calls;
	while (call != NULL) {
		gs_call *next = call->next;
		call->stream_closed = 1;
		if (call->owned) {
			/* The owner still holds it: detach so that its reply only frees it. */
			call_release_msg(call);
			call->conn = NULL;
			call->prev = call->next = NULL;
		} else {
			call_free(call);
		}
		call = next;
	}
	nghttp2_session_del(c->h2);
	free(c);
}

int gs_conn_recv(gs_conn *c, const uint8_t *data, size_t len)
{
	if (c->fatal)
		return -1;
	c->in_recv = 1;
	ssize_t rv = nghttp2_session_mem_recv(c->h2, data, len);
	c->in_recv = 0;
	c->rx_bytes += len;
	if (rv < 0) {
		c->fatal = 1;
		/* Tell the peer why when the library has not already done so. */
		if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
			nghttp2_session_terminate_session(c->h2, rv == NGHTTP2_ERR_FLOODED
			                                             ? NGHTTP2_ENHANCE_YOUR_CALM
			                                             : NGHTTP2_PROTOCOL_ERROR);
		return -1;
	}
	return 0;
}

/*
 * nghttp2 serializes every frame into one frame buffer that lives as long as the session, so an
 * Access answer's DATA frame (the value) would stay there, readable, until a later frame happens
 * to overwrite it. The caller has copied what the previous call returned (its pointer is valid
 * only until this call), so wipe it first. The buffer is nghttp2's, but it came from our
 * allocator (wipe_nghttp2_mem) and nghttp2 never reads a frame's bytes back once handed out.
 */
static void wipe_sent(gs_conn *c)
{
	if (c->sent != NULL)
		sodium_memzero(c->sent, c->sent_len);
	c->sent = NULL;
	c->sent_len = 0;
}

ssize_t gs_conn_send(gs_conn *c, const uint8_t **out)
{
	wipe_sent(c);
	ssize_t n = nghttp2_session_mem_send(c->h2, out);
	if (n < 0) {
		c->fatal = 1;
		return -1;
	}
	if (n > 0) {
		c->sent = (uint8_t *)(uintptr_t)*out;
		c->sent_len = (size_t)n;
	}
	return n;
}

int gs_conn_done(const gs_conn *c)
{
	if (c->fatal)
		return !nghttp2_session_want_write(c->h2);
	return !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2);
}

void gs_conn_shutdown(gs_conn *c)
{
	int32_t last = nghttp2_session_get_last_proc_stream_id(c->h2);
	nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0);
}

int gs_conn_tick(gs_conn *c, uint64_t now_ms)
{
	if (c->last_rx_ms == 0 || c->rx_bytes != c->rx_seen_at_tick) {
		c->last_rx_ms = now_ms;
		c->rx_seen_at_tick = c->rx_bytes;
	}
	/* Header-read timeout: a preface or a header block that stays incomplete (slowloris). */
	if (!c->preface_done || c->hdr_pending > 0) {
		if (c->hdr_since_ms == 0)
			c->hdr_since_ms = now_ms;
		else if (now_ms - c->hdr_since_ms >= c->lim.header_timeout_ms) {
			nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
			c->fatal = 1;
			return 1;
		}
	} else {
		c->hdr_since_ms = 0;
	}
	/* Requests still arriving (a body trickled byte by byte) get a deadline too. */
	for (gs_call *call = c->calls; call != NULL; call = call->next) {
		if (call->owned || call->replied || call->stream_closed)
			continue;
		if (call->started_ms == 0)
			call->started_ms = now_ms;
		else if (now_ms - call->started_ms >= c->lim.idle_timeout_ms)
			layer_error(call, "200", GS_DEADLINE_EXCEEDED,
			            "request not received in time");
	}
	/* Idle timeout: nothing in flight and nothing heard. */
	if (c->n_streams == 0 && c->n_owned == 0 &&
	    now_ms - c->last_rx_ms >= c->lim.idle_timeout_ms) {
		nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
		c->fatal = 1;
		return 1;
	}
	return 0;
}

size_t gs_conn_calls_pending(const gs_conn *c)
{
	return c->n_owned;
}

/* --- call accessors and replies ------------------------------------------------------------ */

gs_method gs_call_method(const gs_call *call)
{
	return call->method;
}

const char *gs_call_path(const gs_call *call)
{
	return call->path;
}

const uint8_t *gs_call_body(const gs_call *call, size_t *len)
{
	*len = call->msg_len;
	return call->msg != NULL ? call->msg : (const uint8_t *)"";
}

uint8_t *gs_call_take_body(gs_call *call, size_t *len, size_t *cap)
{
	uint8_t *m = call->msg;
	*len = m != NULL ? call->msg_len : 0;
	*cap = m != NULL ? call->msg_cap : 0;
	if (m != NULL && call->conn != NULL)
		call->conn->buffered -= call->msg_cap;
	call->msg = NULL;
	call->msg_cap = 0;
	call->msg_len = 0;
	return m;
}

const char *gs_call_bearer(const gs_call *call, size_t *len)
{
	if (!call->has_bearer)
		return NULL;
	*len = call->bearer_len;
	return call->bearer;
}

void gs_call_set_owner_data(gs_call *call, void *p)
{
	call->owner_data = p;
}

void *gs_call_owner_data(const gs_call *call)
{
	return call->owner_data;
}

uint64_t gs_call_deadline_us(const gs_call *call)
{
	return call->deadline_us;
}

int gs_call_alive(const gs_call *call)
{
	return call->conn != NULL && !call->stream_closed;
}

static void notify_output(gs_conn *c)
{
	if (c != NULL && !c->in_recv && c->cb.on_output != NULL)
		c->cb.on_output(c->cb.ud);
}

static void call_disown(gs_call *call)
{
	call->owned = 0;
	if (call->conn != NULL)
		call->conn->n_owned--;
	if (call->waiting && call->conn != NULL)
		call->conn->n_waiting--;
	call->waiting = 0;
	call_release_msg(call);
}

static int reply(gs_call *call, int status, const char *message, const char *cause, size_t len,
                 gs_fill_fn fill, void *ctx)
{
	gs_conn *c = call->conn;
	int rv = 0;

	call_disown(call);
	if (!gs_call_alive(call)) {
		call_free(call);
		return 0;
	}
	call->replied = 1;
	rv = status == GS_OK ? submit_ok(call, len, fill, ctx)
	                     : submit_error(call, "200", status, message, cause);
	if (rv != 0)
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, call->stream_id,
		                          NGHTTP2_INTERNAL_ERROR);
	/* The stream closes (and frees the call) once the answer is sent. */
	notify_output(c);
	return rv;
}

int gs_call_reply(gs_call *call, int status, const char *message, const char *cause,
                  const uint8_t *body, size_t len)
{
	copy_fill cf = {body};
	return reply(call, status, message, cause, len, fill_copy, &cf);
}

int gs_call_reply_fill(gs_call *call, size_t len, gs_fill_fn fill, void *ctx)
{
	return reply(call, GS_OK, NULL, NULL, len, fill, ctx);
}

void gs_call_wait(gs_call *call)
{
	gs_conn *c = call->conn;
	if (call->waiting || c == NULL || !call->owned)
		return;
	call->waiting = 1;
	c->n_waiting++;
	if (c->n_waiting * 2 < c->max_streams || c->max_streams >= GS_MAX_STREAMS_WAITING)
		return;
	/* Never lowered again on this connection: lowering would refuse streams already sent. */
	uint32_t more = c->max_streams * 2 < GS_MAX_STREAMS_WAITING ? c->max_streams * 2
	                                                            : GS_MAX_STREAMS_WAITING;
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, more}};
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 1) == 0) {
		c->max_streams = more;
		notify_output(c);
	}
}

void gs_call_abandon(gs_call *call)
{
	call_disown(call);
	if (!gs_call_alive(call)) {
		call_free(call);
		return;
	}
	call->replied = 1;
	nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE, call->stream_id,
	                          NGHTTP2_CANCEL);
	notify_output(call->conn);
}

void gs_percent_encode(const char *msg, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	if (outlen == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
		int plain = *p >= 0x20 && *p <= 0x7e && *p != '%';
		size_t need = plain ? 1 : 3;
		if (o + need >= outlen)
			break;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}
