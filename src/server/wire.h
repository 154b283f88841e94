/*
 * wire.h -- the Nitric protobuf messages coffer serves, decoded into plain C views and encoded
 * back, plus the google.rpc.Status payload of error trailers. Socket-free and store-free.
 */
#ifndef COFFER_SERVER_WIRE_H
#define COFFER_SERVER_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Permission bits, the same values as COFFER_PUT / COFFER_ACCESS in coffer.h. */
#define WIRE_PERM_PUT    0x1u
#define WIRE_PERM_ACCESS 0x2u

/*
 * A decoded SecretPutRequest / SecretAccessRequest. Access: pointers borrow from the unpacked
 * message. Put: `value` points into the bytes decoded (no copy of the value is made: those bytes
 * stay its only copy, to be wiped by their owner), `name` is a copy of its own.
 */
typedef struct wire_secret_req {
	void *msg;            /* the protobuf-c message, freed by wire_secret_req_free() */
	char *name_buf;       /* Put: the name's own copy, freed by wire_secret_req_free() */
	const char *name;     /* secret name, "" when absent */
	const char *version;  /* Access only: version, "" when absent */
	const uint8_t *value; /* Put only */
	size_t value_len;
} wire_secret_req;

/* Decode a request body. Returns 0, or -1 for bytes that are not the message (or no memory). */
int wire_decode_put(const uint8_t *buf, size_t len, wire_secret_req *out);
int wire_decode_access(const uint8_t *buf, size_t len, wire_secret_req *out);
void wire_secret_req_free(wire_secret_req *r);

/* What a Declare said, reduced to what coffer cares about. */
typedef enum wire_decl_kind {
	WIRE_DECL_OTHER = 0, /* a resource coffer does not serve: answered OK, ignored */
	WIRE_DECL_SECRET,
	WIRE_DECL_POLICY,
} wire_decl_kind;

#define WIRE_DECL_MAX_ITEMS 64 /* principals or resources kept from one policy */

typedef struct wire_declare {
	void *msg;
	wire_decl_kind kind;
	const char *name; /* the declared resource's name (secret) */
	/* policy: principals that are services, secrets it names, and the secret actions */
	size_t n_principals;
	const char *principals[WIRE_DECL_MAX_ITEMS];
	size_t n_secrets;
	const char *secrets[WIRE_DECL_MAX_ITEMS];
	unsigned perms; /* WIRE_PERM_* */
} wire_declare;

/* The current contract (nitric.proto.resources.v1) and the first one (nitric.resource.v1). */
int wire_decode_declare(const uint8_t *buf, size_t len, wire_declare *out);
int wire_decode_declare_v0(const uint8_t *buf, size_t len, wire_declare *out);
void wire_declare_free(wire_declare *d);

/*
 * Encode responses into a new malloc'd buffer (*out, *outlen). The access answer carries the
 * value, so its buffer must be wiped by the caller before it is freed. Return 0 or -1 (no memory).
 */
int wire_encode_put_resp(const char *name, const char *version, uint8_t **out, size_t *outlen);
int wire_encode_access_resp(const char *name, const char *version, const uint8_t *value,
                            size_t vlen, uint8_t **out, size_t *outlen);
int wire_encode_declare_resp(uint8_t **out, size_t *outlen);

/*
 * An Access answer encoded straight into a buffer of the caller's (the gRPC answer's own), the
 * same bytes as wire_encode_access_resp(): prepare returns the size, write puts exactly that many
 * bytes at dst. The strings and the value are borrowed until the write.
 */
typedef struct wire_access_resp {
	const char *name, *version;
	const uint8_t *value;
	size_t name_len, version_len, value_len, sec_len, sv_len;
} wire_access_resp;
size_t wire_access_resp_prepare(wire_access_resp *w, const char *name, const char *version,
                                const uint8_t *value, size_t vlen);
void wire_access_resp_write(const wire_access_resp *w, uint8_t *dst);

/*
 * The grpc-status-details-bin value: base64 (unpadded) of google.rpc.Status{code, message,
 * details: [Any{type.googleapis.com/google.protobuf.Struct, Struct{"cause": cause}}]}.
 * Writes a NUL-terminated string into out; returns 0, or -1 if it does not fit.
 */
int wire_status_details_b64(int code, const char *message, const char *cause, char *out,
                            size_t outlen);

#endif
