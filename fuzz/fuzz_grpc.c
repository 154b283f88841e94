/*
 * fuzz_grpc.c -- libFuzzer target over the socket-free protocol layer: the input is what a client
 * sends after the HTTP/2 preface. Every complete request is decoded as its method's message and
 * answered (OK or an error, chosen by the body), so framing, decoding, encoding and the reply
 * paths all run. The same function is replayed over the saved corpus in every build.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "grpc.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                 "\x00\x00\x00\x04\x00\x00\x00\x00\x00";

static void answer_put(gs_call *call, const uint8_t *body, size_t len)
{
	wire_secret_req q;
	uint8_t *out = NULL;
	size_t olen = 0;
	if (wire_decode_put(body, len, &q) != 0) {
		gs_call_reply(call, GS_INVALID_ARGUMENT, "malformed", NULL, NULL, 0);
		return;
	}
	if (q.value_len == 0 || wire_encode_put_resp(q.name, "1", &out, &olen) != 0)
		gs_call_reply(call, GS_INVALID_ARGUMENT, q.name, q.name, NULL, 0);
	else
		gs_call_reply(call, GS_OK, NULL, NULL, out, olen);
	free(out);
	wire_secret_req_free(&q);
}

static void answer_access(gs_call *call, const uint8_t *body, size_t len)
{
	wire_secret_req q;
	uint8_t *out = NULL;
	size_t olen = 0;
	if (wire_decode_access(body, len, &q) != 0) {
		gs_call_reply(call, GS_INVALID_ARGUMENT, "malformed", NULL, NULL, 0);
		return;
	}
	if (wire_encode_access_resp(q.name, q.version, (const uint8_t *)q.version,
	                            strlen(q.version), &out, &olen) != 0)
		gs_call_reply(call, GS_NOT_FOUND, q.version, q.name, NULL, 0);
	else
		gs_call_reply(call, GS_OK, NULL, NULL, out, olen);
	free(out);
	wire_secret_req_free(&q);
}

static void on_call(void *ud, gs_call *call)
{
	size_t len, tlen;
	const uint8_t *body = gs_call_body(call, &len);
	wire_declare d;
	uint8_t *out = NULL;
	size_t olen = 0;
	(void)gs_call_bearer(call, &tlen);
	switch (gs_call_method(call)) {
	case GS_M_PUT:
		answer_put(call, body, len);
		break;
	case GS_M_ACCESS:
		answer_access(call, body, len);
		break;
	case GS_M_DECLARE:
		if (wire_decode_declare(body, len, &d) == 0) {
			wire_declare_free(&d);
			if (wire_encode_declare_resp(&out, &olen) == 0)
				gs_call_reply(call, GS_OK, NULL, NULL, out, olen);
			else
				gs_call_abandon(call);
			free(out);
		} else {
			gs_call_abandon(call);
		}
		break;
	default:
		gs_call_reply(call, GS_UNIMPLEMENTED, gs_call_path(call), NULL, NULL, 0);
	}
}

static void drain(gs_conn *c)
{
	const uint8_t *out;
	while (gs_conn_send(c, &out) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		if (sodium_init() < 0)
			return 0;
		init = 1;
	}
	gs_conn_cb cb = {.on_call = on_call};
	gs_conn *c = gs_conn_new(NULL, &cb);
	if (c == NULL)
		return 0;
	drain(c);
	gs_conn_recv(c, preface, sizeof(preface) - 1);
	/* Feed in uneven pieces so that frame and message boundaries fall everywhere. */
	size_t off = 0, step = size > 0 ? (size_t)(data[0] % 61) + 1 : 1;
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		if (gs_conn_recv(c, data + off, n) != 0)
			break;
		drain(c);
		off += n;
	}
	drain(c);
	gs_conn_tick(c, 1000);
	gs_conn_shutdown(c);
	drain(c);
	gs_conn_free(c);
	return 0;
}
