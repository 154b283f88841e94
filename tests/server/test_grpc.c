/*
 * test_grpc.c -- the socket-free protocol layer (src/server/grpc.c, wire.c) driven by an
 * in-memory nghttp2 client: bytes out of one side go straight into the other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <sodium.h>

#include "grpc.h"
#include "wire.h"

#define PUT_PATH    "/nitric.proto.secrets.v1.SecretManager/Put"
#define ACCESS_PATH "/nitric.proto.secrets.v1.SecretManager/Access"

/* What the client saw on its one stream. */
typedef struct seen {
	char status[8];
	char grpc_status[8];
	char grpc_message[256];
	int has_details;
	uint8_t data[4096];
	size_t data_len;
	uint32_t rst_code;
	int rst, closed;
} seen;

typedef struct harness {
	gs_conn *srv;
	nghttp2_session *cli;
	seen s;
	gs_call *held; /* the last call handed to the owner */
	int calls;
	const uint8_t *body; /* request body for the client's data provider */
	size_t body_len, body_off;
} harness;

static void on_call(void *ud, gs_call *call)
{
	harness *h = ud;
	h->calls++;
	h->held = call;
}

static int cli_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                         size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
	harness *h = ud;
	char *dst = NULL;
	size_t cap = 0;
	if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
		dst = h->s.status;
		cap = sizeof(h->s.status);
	} else if (nlen == 11 && memcmp(name, "grpc-status", 11) == 0) {
		dst = h->s.grpc_status;
		cap = sizeof(h->s.grpc_status);
	} else if (nlen == 12 && memcmp(name, "grpc-message", 12) == 0) {
		dst = h->s.grpc_message;
		cap = sizeof(h->s.grpc_message);
	} else if (nlen == 23 && memcmp(name, "grpc-status-details-bin", 23) == 0) {
		h->s.has_details = 1;
	}
	if (dst != NULL)
		snprintf(dst, cap, "%.*s", (int)vlen, value);
	return 0;
}

static int cli_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                       void *ud)
{
	harness *h = ud;
	if (h->s.data_len + len <= sizeof(h->s.data)) {
		memcpy(h->s.data + h->s.data_len, d, len);
		h->s.data_len += len;
	}
	return 0;
}

static int cli_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	harness *h = ud;
	if (f->hd.type == NGHTTP2_RST_STREAM) {
		h->s.rst = 1;
		h->s.rst_code = f->rst_stream.error_code;
	}
	return 0;
}

static int cli_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	((harness *)ud)->s.closed = 1;
	return 0;
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
	harness *h = ud;
	size_t n = h->body_len - h->body_off;
	if (n > len)
		n = len;
	memcpy(buf, h->body + h->body_off, n);
	h->body_off += n;
	if (h->body_off == h->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void harness_init(harness *h)
{
	nghttp2_session_callbacks *cbs;
	memset(h, 0, sizeof(*h));
	gs_conn_cb cb = {.on_call = on_call, .ud = h};
	h->srv = gs_conn_new(NULL, &cb);
	assert_non_null(h->srv);
	assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cli_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cli_on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cli_on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cli_on_close);
	assert_int_equal(nghttp2_session_client_new(&h->cli, cbs, h), 0);
	nghttp2_session_callbacks_del(cbs);
	assert_int_equal(nghttp2_submit_settings(h->cli, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

static void harness_fini(harness *h)
{
	nghttp2_session_del(h->cli);
	gs_conn_free(h->srv);
}

/* Move bytes both ways until neither side has anything to say. */
static void pump(harness *h)
{
	for (int round = 0; round < 100; round++) {
		const uint8_t *d;
		ssize_t n, moved = 0;
		while ((n = nghttp2_session_mem_send(h->cli, &d)) > 0) {
			gs_conn_recv(h->srv, d, (size_t)n);
			moved += n;
		}
		while ((n = gs_conn_send(h->srv, &d)) > 0) {
			assert_true(nghttp2_session_mem_recv(h->cli, d, (size_t)n) == n);
			moved += n;
		}
		if (moved == 0)
			return;
	}
}

#define HDR(n, v)                                                                                  \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0                    \
	}

static int32_t request(harness *h, const char *path, const uint8_t *body, size_t len)
{
	nghttp2_nv hdrs[] = {HDR(":method", "POST"),
	                     HDR(":scheme", "http"),
	                     {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
	                     HDR(":authority", "x"),
	                     HDR("content-type", "application/grpc")};
	nghttp2_data_provider prd = {.read_callback = body_read};
	h->body = body;
	h->body_len = len;
	h->body_off = 0;
	int32_t id = nghttp2_submit_request(h->cli, NULL, hdrs, 5, &prd, NULL);
	assert_true(id > 0);
	pump(h);
	return id;
}

/* The gRPC framing of a message into buf. */
static size_t frame_msg(uint8_t *buf, const uint8_t *msg, size_t len, uint32_t declared)
{
	buf[0] = 0;
	buf[1] = (uint8_t)(declared >> 24);
	buf[2] = (uint8_t)(declared >> 16);
	buf[3] = (uint8_t)(declared >> 8);
	buf[4] = (uint8_t)declared;
	memcpy(buf + 5, msg, len);
	return len + 5;
}

static void test_ok_roundtrip(void **state)
{
	harness h;
	uint8_t req[64], *resp;
	size_t rlen, blen;
	harness_init(&h);
	static const uint8_t access[] = {0x0a, 0x0e, 0x0a, 0x09, 0x0a, 0x07, 'a',  'p',
	                                 'i',  '-',  'k',  'e',  'y',  0x12, 0x01, '1'};
	request(&h, ACCESS_PATH, req, frame_msg(req, access, sizeof(access), sizeof(access)));
	assert_int_equal(h.calls, 1);
	assert_int_equal(gs_call_method(h.held), GS_M_ACCESS);
	const uint8_t *body = gs_call_body(h.held, &blen);
	assert_int_equal(blen, sizeof(access));
	assert_memory_equal(body, access, blen);

	wire_secret_req q;
	assert_int_equal(wire_decode_access(body, blen, &q), 0);
	assert_string_equal(q.name, "api-key");
	assert_string_equal(q.version, "1");
	wire_secret_req_free(&q);

	assert_int_equal(
	    wire_encode_access_resp("api-key", "1", (const uint8_t *)"v\0x", 3, &resp, &rlen), 0);
	assert_int_equal(gs_conn_calls_pending(h.srv), 1);
	assert_int_equal(gs_call_reply(h.held, GS_OK, NULL, NULL, resp, rlen), 0);
	assert_int_equal(gs_conn_calls_pending(h.srv), 0);
	pump(&h);
	assert_string_equal(h.s.status, "200");
	assert_string_equal(h.s.grpc_status, "0");
	assert_int_equal(h.s.data_len, rlen + 5);
	assert_memory_equal(h.s.data + 5, resp, rlen);
	assert_true(h.s.closed);
	free(resp);
	harness_fini(&h);
}

static void test_error_trailers_only(void **state)
{
	harness h;
	uint8_t req[16];
	harness_init(&h);
	request(&h, PUT_PATH, req, frame_msg(req, (const uint8_t *)"\x0a\x00", 2, 2));
	assert_int_equal(h.calls, 1);
	gs_call_reply(h.held, GS_NOT_FOUND, "secret 'x' has no version '7' \xc3\xa9%", "cause",
	              NULL, 0);
	pump(&h);
	assert_string_equal(h.s.status, "200");
	assert_string_equal(h.s.grpc_status, "5");
	assert_string_equal(h.s.grpc_message, "secret 'x' has no version '7' %C3%A9%25");
	assert_true(h.s.has_details);
	assert_int_equal(h.s.data_len, 0);
	harness_fini(&h);
}

static void test_unknown_method(void **state)
{
	harness h;
	uint8_t req[16];
	harness_init(&h);
	request(&h, "/nitric.proto.secrets.v1.SecretManager/Destroy", req,
	        frame_msg(req, (const uint8_t *)"", 0, 0));
	assert_int_equal(h.calls, 0);
	assert_string_equal(h.s.grpc_status, "12");
	harness_fini(&h);
}

static void test_oversize_prefix(void **state)
{
	harness h;
	uint8_t req[16];
	harness_init(&h);
	request(&h, PUT_PATH, req, frame_msg(req, (const uint8_t *)"ab", 2, GS_MAX_MESSAGE + 1));
	assert_int_equal(h.calls, 0);
	assert_string_equal(h.s.grpc_status, "8");
	assert_non_null(strstr(h.s.grpc_message, "4194304"));
	harness_fini(&h);
}

static void test_truncated_and_compressed(void **state)
{
	harness h;
	uint8_t req[16];
	harness_init(&h);
	request(&h, PUT_PATH, req, frame_msg(req, (const uint8_t *)"ab", 2, 9));
	assert_string_equal(h.s.grpc_status, "13");
	harness_fini(&h);

	harness_init(&h);
	frame_msg(req, (const uint8_t *)"ab", 2, 2);
	req[0] = 1;
	request(&h, PUT_PATH, req, 7);
	assert_int_equal(h.calls, 0);
	assert_string_equal(h.s.grpc_status, "13");
	harness_fini(&h);
}

static void test_header_list_limit(void **state)
{
	harness h;
	nghttp2_nv hdrs[GS_MAX_HEADER_FIELDS + 10];
	char names[GS_MAX_HEADER_FIELDS + 10][16];
	harness_init(&h);
	size_t n = 0;
	hdrs[n++] = (nghttp2_nv)HDR(":method", "POST");
	hdrs[n++] = (nghttp2_nv)HDR(":scheme", "http");
	hdrs[n++] = (nghttp2_nv)HDR(":path", PUT_PATH);
	hdrs[n++] = (nghttp2_nv)HDR(":authority", "x");
	while (n < GS_MAX_HEADER_FIELDS + 10) {
		snprintf(names[n], sizeof(names[n]), "x-f%zu", n);
		hdrs[n] = (nghttp2_nv){(uint8_t *)names[n], (uint8_t *)"v", strlen(names[n]), 1, 0};
		n++;
	}
	assert_true(nghttp2_submit_request(h.cli, NULL, hdrs, n, NULL, NULL) > 0);
	pump(&h);
	assert_int_equal(h.calls, 0);
	assert_true(h.s.rst);
	harness_fini(&h);
}

/* The owner answers after the peer reset the stream, and after the connection is gone. */
static void test_late_replies(void **state)
{
	harness h;
	uint8_t req[16];
	harness_init(&h);
	int32_t id = request(&h, PUT_PATH, req, frame_msg(req, (const uint8_t *)"\x0a\x00", 2, 2));
	gs_call *call = h.held;
	assert_true(gs_call_alive(call));
	nghttp2_submit_rst_stream(h.cli, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
	pump(&h);
	assert_false(gs_call_alive(call));
	assert_int_equal(gs_call_reply(call, GS_OK, NULL, NULL, (const uint8_t *)"", 0), 0);
	harness_fini(&h);

	harness_init(&h);
	request(&h, PUT_PATH, req, frame_msg(req, (const uint8_t *)"\x0a\x00", 2, 2));
	call = h.held;
	gs_conn_free(h.srv);
	h.srv = NULL;
	assert_false(gs_call_alive(call));
	gs_call_reply(call, GS_INTERNAL, "gone", NULL, NULL, 0); /* only frees */
	nghttp2_session_del(h.cli);
}

/* Calls parked for their policy filling half the streams make the connection offer more. */
static void test_waiting_calls_raise_stream_limit(void **state)
{
	harness h;
	uint8_t req[16];
	gs_call *calls[60];
	size_t len = frame_msg(req, (const uint8_t *)"\x0a\x00", 2, 2);
	harness_init(&h);
	for (int i = 0; i < 60; i++) {
		request(&h, PUT_PATH, req, len);
		calls[i] = h.held;
		assert_int_equal(nghttp2_session_get_remote_settings(
		                     h.cli, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
		                 i < 50 ? GS_MAX_STREAMS : 2 * GS_MAX_STREAMS);
		gs_call_wait(calls[i]);
		pump(&h);
	}
	/* Answered calls are no longer waiting; the limit stays where it is on this connection. */
	for (int i = 0; i < 60; i++)
		gs_call_reply(calls[i], GS_OK, NULL, NULL, (const uint8_t *)"", 0);
	pump(&h);
	assert_int_equal(
	    nghttp2_session_get_remote_settings(h.cli, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
	    2 * GS_MAX_STREAMS);
	harness_fini(&h);
}

static void test_timeouts(void **state)
{
	harness h;
	harness_init(&h);
	/* No preface yet: the header-read timeout applies. */
	assert_int_equal(gs_conn_tick(h.srv, 1000), 0);
	assert_int_equal(gs_conn_tick(h.srv, 1000 + 10000), 1);
	harness_fini(&h);

	harness_init(&h);
	pump(&h); /* preface + settings exchanged */
	assert_int_equal(gs_conn_tick(h.srv, 1000), 0);
	assert_int_equal(gs_conn_tick(h.srv, 60000), 0);
	assert_int_equal(gs_conn_tick(h.srv, 1000 + 120000), 1);
	harness_fini(&h);

	/* A request whose body never comes: DEADLINE_EXCEEDED after the idle timeout. */
	harness_init(&h);
	nghttp2_nv hdrs[] = {HDR(":method", "POST"), HDR(":scheme", "http"), HDR(":path", PUT_PATH),
	                     HDR(":authority", "x"), HDR("content-type", "application/grpc")};
	assert_true(nghttp2_submit_headers(h.cli, NGHTTP2_FLAG_NONE, -1, NULL, hdrs, 5, NULL) > 0);
	pump(&h);
	assert_int_equal(gs_conn_tick(h.srv, 1000), 0);
	assert_int_equal(gs_conn_tick(h.srv, 1000 + 119999), 0);
	assert_int_equal(h.s.grpc_status[0], '\0');
	assert_int_equal(gs_conn_tick(h.srv, 1000 + 120000), 0);
	pump(&h);
	assert_string_equal(h.s.grpc_status, "4");
	assert_int_equal(h.calls, 0);
	harness_fini(&h);
}

/* A put's value is read where it lies in the request's bytes: the decoder makes no copy of it
 * (the bytes stay its only plaintext copy). Field rules as protobuf: last wins, submessages
 * merge, unknown fields skipped, a known field of another wire type is malformed. */
static void test_wire_put_in_place(void **state)
{
	/* secret{name:"a"}, value:"v1", unknown field 3 (varint), secret{name:"bb"}, value:"val" */
	static const uint8_t put[] = {0x0a, 0x03, 0x0a, 0x01, 'a',  0x12, 0x02, 'v',
	                              '1',  0x18, 0x07, 0x0a, 0x04, 0x0a, 0x02, 'b',
	                              'b',  0x12, 0x03, 'v',  'a',  'l'};
	wire_secret_req q;
	assert_int_equal(wire_decode_put(put, sizeof(put), &q), 0);
	assert_string_equal(q.name, "bb");
	assert_int_equal(q.value_len, 3);
	assert_ptr_equal(q.value, put + sizeof(put) - 3);
	wire_secret_req_free(&q);
	/* no name, no value: decoded as empty (the core then refuses them) */
	assert_int_equal(wire_decode_put(put, 0, &q), 0);
	assert_string_equal(q.name, "");
	assert_int_equal(q.value_len, 0);
	wire_secret_req_free(&q);
	/* value as a varint: malformed; truncated length: malformed; field number 0: malformed */
	static const uint8_t badtype[] = {0x10, 0x01};
	static const uint8_t trunc[] = {0x12, 0x05, 'v'};
	static const uint8_t field0[] = {0x02, 0x01, 'v'};
	static const uint8_t subtype[] = {0x0a, 0x02, 0x08, 0x01};
	assert_int_equal(wire_decode_put(badtype, sizeof(badtype), &q), -1);
	assert_int_equal(wire_decode_put(trunc, sizeof(trunc), &q), -1);
	assert_int_equal(wire_decode_put(field0, sizeof(field0), &q), -1);
	assert_int_equal(wire_decode_put(subtype, sizeof(subtype), &q), -1);
	/* Access: secret_version{secret{name:"n"}, version:"7"}, then secret_version{version:"9"}
	 * merges in (last version wins, the name stays) */
	static const uint8_t acc[] = {0x0a, 0x08, 0x0a, 0x03, 0x0a, 0x01, 'n', 0x12,
	                              0x01, '7',  0x0a, 0x03, 0x12, 0x01, '9'};
	assert_int_equal(wire_decode_access(acc, sizeof(acc), &q), 0);
	assert_string_equal(q.name, "n");
	assert_string_equal(q.version, "9");
	wire_secret_req_free(&q);
	static const uint8_t accnul[] = {0x0a, 0x03, 0x12, 0x01, 0};
	assert_int_equal(wire_decode_access(accnul, sizeof(accnul), &q), -1);
}

/* The Access answer encoded in place is byte for byte what protobuf-c packs. */
static void test_wire_access_resp_in_place(void **state)
{
	static uint8_t value[5000];
	char longname[201];
	memset(longname, 'n', 200);
	longname[200] = '\0';
	for (size_t i = 0; i < sizeof(value); i++)
		value[i] = (uint8_t)(i * 7 + 1);
	const struct {
		const char *name, *version;
		size_t vlen;
	} cases[] = {{"api-key", "3", 32}, {longname, "18446744073709551615", 4096},
	             {"a", "1", 1},        {"b", "", 130},
	             {"", "7", 0},         {"c", "12", sizeof(value)}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *want = NULL;
		size_t wlen = 0;
		assert_int_equal(wire_encode_access_resp(cases[i].name, cases[i].version, value,
		                                         cases[i].vlen, &want, &wlen),
		                 0);
		wire_access_resp w;
		size_t len = wire_access_resp_prepare(&w, cases[i].name, cases[i].version, value,
		                                      cases[i].vlen);
		assert_int_equal(len, wlen);
		uint8_t *got = malloc(len + 1);
		assert_non_null(got);
		got[len] = 0xee;
		wire_access_resp_write(&w, got);
		assert_memory_equal(got, want, len);
		assert_int_equal(got[len], 0xee);
		free(got);
		free(want);
	}
}

static void test_wire_nul_and_details(void **state)
{
	/* SecretPutRequest{secret{name:"a\0b"}, value:"v"} */
	static const uint8_t nul_name[] = {0x0a, 0x05, 0x0a, 0x03, 'a', 0, 'b', 0x12, 0x01, 'v'};
	wire_secret_req q;
	assert_int_equal(wire_decode_put(nul_name, sizeof(nul_name), &q), -1);
	static const uint8_t ok_put[] = {0x0a, 0x05, 0x0a, 0x03, 'a', 'z', 'b', 0x12, 0x01, 'v'};
	assert_int_equal(wire_decode_put(ok_put, sizeof(ok_put), &q), 0);
	assert_string_equal(q.name, "azb");
	assert_int_equal(q.value_len, 1);
	wire_secret_req_free(&q);

	char b64[600];
	assert_int_equal(wire_status_details_b64(5, "msg", "the cause", b64, sizeof(b64)), 0);
	assert_true(strlen(b64) > 20);
	assert_null(strchr(b64, '='));
	assert_int_equal(wire_status_details_b64(5, "msg", "the cause", b64, 8), -1);

	char enc[8];
	gs_percent_encode("abcdefghij", enc, sizeof(enc));
	assert_string_equal(enc, "abcdefg");
}

static void test_declare_policy(void **state)
{
	/* Declare{id{Policy}, policy{principals[{Service,""}], actions[400,401],
	 * resources[{Secret,"k"}]}} */
	static const uint8_t decl[] = {0x0a, 0x02, 0x08, 0x07, 0x52, 0x11, 0x0a, 0x02,
	                               0x08, 0x01, 0x12, 0x04, 0x90, 0x03, 0x91, 0x03,
	                               0x1a, 0x05, 0x08, 0x08, 0x12, 0x01, 'k'};
	wire_declare d;
	assert_int_equal(wire_decode_declare(decl, sizeof(decl), &d), 0);
	assert_int_equal(d.kind, WIRE_DECL_POLICY);
	assert_int_equal(d.n_principals, 1);
	assert_string_equal(d.principals[0], "");
	assert_int_equal(d.n_secrets, 1);
	assert_string_equal(d.secrets[0], "k");
	assert_int_equal(d.perms, WIRE_PERM_PUT | WIRE_PERM_ACCESS);
	wire_declare_free(&d);
}

static void test_declare_first_contract(void **state)
{
	/* nitric.resource.v1: Declare{resource{Policy=8}, policy{principals[{Function=1}],
	 * actions[500,501], resources[{Secret=9,"k"}]}}, as @nitric/sdk 0.15.0 sends it. */
	static const uint8_t decl[] = {0x0a, 0x02, 0x08, 0x08, 0x52, 0x11, 0x0a, 0x02,
	                               0x08, 0x01, 0x12, 0x04, 0xf4, 0x03, 0xf5, 0x03,
	                               0x1a, 0x05, 0x08, 0x09, 0x12, 0x01, 'k'};
	/* Declare{resource{Secret=9,"s"}} without its config field, as 0.15.0 declares a secret. */
	static const uint8_t secret[] = {0x0a, 0x05, 0x08, 0x09, 0x12, 0x01, 's'};
	wire_declare d;
	assert_int_equal(wire_decode_declare_v0(decl, sizeof(decl), &d), 0);
	assert_int_equal(d.kind, WIRE_DECL_POLICY);
	assert_int_equal(d.n_principals, 1);
	assert_int_equal(d.n_secrets, 1);
	assert_string_equal(d.secrets[0], "k");
	assert_int_equal(d.perms, WIRE_PERM_PUT | WIRE_PERM_ACCESS);
	wire_declare_free(&d);
	/* The same bytes read as the current contract grant nothing (other enum values). */
	assert_int_equal(wire_decode_declare(decl, sizeof(decl), &d), 0);
	assert_int_equal(d.n_secrets, 0);
	assert_int_equal(d.perms, 0);
	wire_declare_free(&d);
	assert_int_equal(wire_decode_declare_v0(secret, sizeof(secret), &d), 0);
	assert_int_equal(d.kind, WIRE_DECL_SECRET);
	assert_string_equal(d.name, "s");
	wire_declare_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ok_roundtrip),
	    cmocka_unit_test(test_error_trailers_only),
	    cmocka_unit_test(test_unknown_method),
	    cmocka_unit_test(test_oversize_prefix),
	    cmocka_unit_test(test_truncated_and_compressed),
	    cmocka_unit_test(test_header_list_limit),
	    cmocka_unit_test(test_late_replies),
	    cmocka_unit_test(test_waiting_calls_raise_stream_limit),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_wire_nul_and_details),
	    cmocka_unit_test(test_wire_put_in_place),
	    cmocka_unit_test(test_wire_access_resp_in_place),
	    cmocka_unit_test(test_declare_policy),
	    cmocka_unit_test(test_declare_first_contract),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
