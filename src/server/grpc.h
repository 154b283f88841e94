/*
 * grpc.h -- one gRPC-over-HTTP/2 server connection, without sockets.
 *
 * Bytes read from the peer go in with gs_conn_recv(); bytes to write come out of gs_conn_send().
 * Everything between -- HTTP/2 (nghttp2), gRPC framing, request limits -- happens here, so that the
 * whole protocol layer can be unit-tested and fuzzed without a network. A complete unary request is
 * handed to the owner as a gs_call through gs_conn_cb.on_call; the owner answers it, now or later,
 * with gs_call_reply(). All functions of one connection and its calls must be used from one
 * thread.
 */
#ifndef COFFER_SERVER_GRPC_H
#define COFFER_SERVER_GRPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* gRPC status codes used by the server (google.rpc.Code). */
enum {
	GS_OK = 0,
	GS_UNKNOWN = 2,
	GS_INVALID_ARGUMENT = 3,
	GS_DEADLINE_EXCEEDED = 4,
	GS_NOT_FOUND = 5,
	GS_PERMISSION_DENIED = 7,
	GS_RESOURCE_EXHAUSTED = 8,
	GS_UNIMPLEMENTED = 12,
	GS_INTERNAL = 13,
	GS_UNAVAILABLE = 14,
	GS_UNAUTHENTICATED = 16,
};

/* The methods the server knows (Put and Access have the same messages in both contracts); anything
 * else is answered UNIMPLEMENTED by the layer itself. */
typedef enum gs_method {
	GS_M_UNKNOWN = 0,
	GS_M_PUT,
	GS_M_ACCESS,
	GS_M_DECLARE,
	GS_M_DECLARE_V0,     /* nitric.resource.v1 (the first contract): other enum values */
	GS_M_HEALTH_CHECK,   /* grpc.health.v1.Health/Check (health.h) */
	GS_M_ADMIN_VERSIONS, /* coffer.admin.v1.Admin (admin.c) */
	GS_M_ADMIN_LIST,
	GS_M_ADMIN_DESTROY,
	GS_M_ADMIN_DISABLE,
	GS_M_ADMIN_ENABLE,
	GS_M_ADMIN_LABEL,
	GS_M_ADMIN_DELETE,
	GS_M_ADMIN_RESTORE,
	GS_M_ADMIN_AUDIT_VERIFY,
	GS_M_ADMIN_DESCRIBE,
	GS_M_ADMIN_PUT,
	GS_M_ADMIN_META,
	GS_M_ADMIN_AUDIT,
	GS_M_COUNT /* not a method: how many there are */
} gs_method;

#define GS_MAX_MESSAGE       (4u * 1024u * 1024u) /* the gRPC default, what the SDK's client allows */
#define GS_MAX_HEADER_BYTES  16384u /* name + value + 32 per field, as RFC 9113 counts */
#define GS_MAX_HEADER_FIELDS 100u
#define GS_MAX_STREAMS       100u
/* Streams a connection may open while its calls wait for their policy (see gs_call_wait). */
#define GS_MAX_STREAMS_WAITING 2048u
#define GS_MAX_CONTINUATIONS   8u
#define GS_TOKEN_MAX           512u /* longest bearer token we keep */

typedef struct gs_limits {
	uint32_t max_message;       /* bytes of one gRPC message; 0: GS_MAX_MESSAGE */
	uint32_t max_conn_buffered; /* request bytes buffered per connection; 0: 8 MiB */
	uint32_t header_timeout_ms; /* preface or a header block left incomplete this long: close */
	uint32_t idle_timeout_ms;   /* nothing in flight and nothing received this long: close;
	                               also how long a request may take to arrive (slow bodies) */
	uint32_t rst_burst;         /* Rapid Reset: RST_STREAM frames allowed in a burst */
	uint32_t rst_rate;          /* ... and regained per second */
} gs_limits;

typedef struct gs_conn gs_conn;
typedef struct gs_call gs_call;

typedef struct gs_conn_cb {
	/* A complete request. The call now belongs to the owner until gs_call_reply(). */
	void (*on_call)(void *ud, gs_call *call);
	/* Optional: an answer was queued outside gs_conn_recv(); gs_conn_send() has bytes to write.
	 */
	void (*on_output)(void *ud);
	void *ud;
	/* Optional: this layer is about to answer a request itself (bad framing, unknown method,
	 * ...). Nonzero: do not answer it; its stream is reset instead (the owner could not
	 * record it, e.g. in its audit log). */
	int (*on_refused)(void *ud, const gs_call *call, int status);
} gs_conn_cb;

/* A new server connection; NULL when out of memory. `lim` may be NULL (defaults). */
gs_conn *gs_conn_new(const gs_limits *lim, const gs_conn_cb *cb);

/* Free the connection. Calls still held by the owner stay valid; replying to them only frees them.
 */
void gs_conn_free(gs_conn *c);

/*
 * Feed bytes read from the peer, all of them. Returns 0, or -1 when the connection must be closed
 * (protocol error, flood, limit): the caller should still write what gs_conn_send() yields (a
 * GOAWAY) and then close.
 */
int gs_conn_recv(gs_conn *c, const uint8_t *data, size_t len);

/*
 * The next bytes to write to the peer: returns how many (0 if nothing now), sets *out to them;
 * valid until the next call on the connection. Returns -1 on a fatal error.
 */
ssize_t gs_conn_send(gs_conn *c, const uint8_t **out);

/* 1 when the connection is finished (both sides done, or a fatal error): write, then close. */
int gs_conn_done(const gs_conn *c);

/* Begin a graceful shutdown: GOAWAY, let in-flight calls finish, then gs_conn_done() becomes 1. */
void gs_conn_shutdown(gs_conn *c);

/*
 * Time passes: `now_ms` is a monotonic clock. Applies the header-read and idle timeouts, and
 * answers DEADLINE_EXCEEDED to a request whose body is still arriving after the idle timeout.
 * Returns 1
 * when the connection should be closed (after writing what gs_conn_send() yields).
 */
int gs_conn_tick(gs_conn *c, uint64_t now_ms);

/* Calls handed to the owner and not yet replied to. */
size_t gs_conn_calls_pending(const gs_conn *c);

/* --- a call ------------------------------------------------------------------------------- */

gs_method gs_call_method(const gs_call *call);
const char *gs_call_path(const gs_call *call);
/* The request message (protobuf bytes, without the 5-byte gRPC prefix). */
const uint8_t *gs_call_body(const gs_call *call, size_t *len);
/*
 * Take the request message's buffer from the call (a put's value stays in it, uncopied, until
 * its commit ends): *len bytes of message in a buffer of *cap bytes, or NULL for an empty message.
 * The caller wipes all *cap bytes and frees it; the call's gs_call_body() is empty from then on.
 */
uint8_t *gs_call_take_body(gs_call *call, size_t *len, size_t *cap);
/* The bearer token of an "authorization: Bearer ..." header, or NULL. */
const char *gs_call_bearer(const gs_call *call, size_t *len);
/* Opaque slot for the owner. */
void gs_call_set_owner_data(gs_call *call, void *p);
void *gs_call_owner_data(const gs_call *call);
/* The client's deadline (grpc-timeout) in CLOCK_MONOTONIC microseconds, or 0 for none. */
uint64_t gs_call_deadline_us(const gs_call *call);
/* 1 while the peer can still receive the answer (connection alive, stream not reset). */
int gs_call_alive(const gs_call *call);

/*
 * Answer and free the call. status GS_OK sends `body` (protobuf bytes) as the one response
 * message; any other status sends no message, `message` as grpc-message and, when `cause` is not
 * NULL, a grpc-status-details-bin trailer carrying google.rpc.Status{code, message,
 * [Any(Struct{"cause": cause})]}. Returns 0, or -1 when it could not be queued (the call is freed
 * either way).
 */
int gs_call_reply(gs_call *call, int status, const char *message, const char *cause,
                  const uint8_t *body, size_t len);

/*
 * Answer OK with a message written in place: fill(dst, len, ctx) writes exactly `len` bytes into
 * the answer's own buffer (after the gRPC prefix), which is wiped when freed; nothing is written
 * when the call is gone already. An Access answer's value is then copied once, from the library's
 * value into the bytes sent. Otherwise as gs_call_reply().
 */
typedef void (*gs_fill_fn)(uint8_t *dst, size_t len, void *ctx);
int gs_call_reply_fill(gs_call *call, size_t len, gs_fill_fn fill, void *ctx);

/*
 * The owner parks this call until its policy arrives (development mode). A client with more calls
 * than streams queues its policy Declare behind calls that wait for that very policy, so while
 * waiting calls fill half of the connection's streams the connection advertises more (doubling,
 * up to GS_MAX_STREAMS_WAITING). Memory stays bounded by that cap and by the connection's budget
 * of buffered request bytes. The mark ends when the call is answered or abandoned.
 */
void gs_call_wait(gs_call *call);

/* Drop a call without answering (e.g. at shutdown); the stream, if alive, is reset. */
void gs_call_abandon(gs_call *call);

/* Percent-encode `msg` for grpc-message into out (NUL-terminated, truncated to fit). */
void gs_percent_encode(const char *msg, char *out, size_t outlen);

#endif
