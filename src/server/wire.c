/*
 * wire.c -- decode the Nitric requests coffer serves and encode its answers (protobuf-c).
 */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "nitric/proto/resources/v1/resources.pb-c.h"
#include "nitric/proto/secrets/v1/secrets.pb-c.h"
#include "nitric/resource/v1/resource.pb-c.h"
#include "wipe.h"

typedef Nitric__Proto__Secrets__V1__Secret PbSecret;
typedef Nitric__Proto__Secrets__V1__SecretVersion PbSecretVersion;
typedef Nitric__Proto__Secrets__V1__SecretPutResponse PbPutResp;
typedef Nitric__Proto__Secrets__V1__SecretAccessResponse PbAccessResp;
typedef Nitric__Proto__Resources__V1__ResourceDeclareRequest PbDeclareReq;
typedef Nitric__Proto__Resources__V1__ResourceIdentifier PbResId;
typedef Nitric__Proto__Resources__V1__PolicyResource PbPolicy;

/*
 * protobuf-c turns a proto3 string into a C string, so a name like "api-key\0x" would silently
 * become "api-key". To refuse such names instead, we walk the raw bytes along the known path of
 * each string field and look for a NUL ourselves.
 */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (int shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* Skip one field's payload given its wire type; for type 2 return the payload. */
static int next_field(const uint8_t **p, const uint8_t *end, uint32_t *fieldno, const uint8_t **ld,
                      size_t *ldlen)
{
	uint64_t key, v;
	if (read_varint(p, end, &key) != 0)
		return -1;
	*fieldno = (uint32_t)(key >> 3);
	*ld = NULL;
	switch (key & 7) {
	case 0:
		return read_varint(p, end, &v);
	case 1:
		if (end - *p < 8)
			return -1;
		*p += 8;
		return 0;
	case 5:
		if (end - *p < 4)
			return -1;
		*p += 4;
		return 0;
	case 2:
		if (read_varint(p, end, &v) != 0 || v > (uint64_t)(end - *p))
			return -1;
		*ld = *p;
		*ldlen = (size_t)v;
		*p += v;
		return 0;
	default:
		return -1; /* groups are not used by this contract */
	}
}

static void *pb_alloc(void *ud, size_t n)
{
	return malloc(n);
}

static void pb_free(void *ud, void *p)
{
	wipe_free(p);
}

/* Declarations are unpacked by protobuf-c; what it frees is wiped, as every request's bytes are.
 * (Put and Access are read in place below: protobuf-c would copy a put's value.) */
static ProtobufCAllocator wiping_allocator = {pb_alloc, pb_free, NULL};

/*
 * The string or bytes field at `path` (field numbers, depth n), read in place: as protobuf-c does,
 * the last occurrence wins and repeated submessages merge; unknown fields are skipped; a field on
 * the path of another wire type than length-delimited is malformed (-1). Not found: *val NULL.
 */
static int pb_find(const uint8_t *buf, size_t len, const uint32_t *path, size_t n,
                   const uint8_t **val, size_t *vlen)
{
	const uint8_t *p = buf, *end = buf + len;
	while (p < end) {
		const uint8_t *key_at = p, *ld;
		size_t ldlen = 0;
		uint32_t f;
		if (next_field(&p, end, &f, &ld, &ldlen) != 0 || f == 0)
			return -1;
		if (f != path[0])
			continue;
		if (ld == NULL || (*key_at & 7) != 2)
			return -1;
		if (n == 1) {
			*val = ld;
			*vlen = ldlen;
		} else if (pb_find(ld, ldlen, path + 1, n - 1, val, vlen) != 0) {
			return -1;
		}
	}
	return 0;
}

/* One allocation holds the request's strings, NUL-terminated: the name, then the version. */
static int strings_of(wire_secret_req *out, const uint8_t *name, size_t nlen,
                      const uint8_t *version, size_t vlen)
{
	if ((nlen > 0 && memchr(name, 0, nlen) != NULL) ||
	    (vlen > 0 && memchr(version, 0, vlen) != NULL))
		return -1;
	char *b = malloc(nlen + vlen + 2);
	if (b == NULL)
		return -1;
	if (nlen > 0)
		memcpy(b, name, nlen);
	b[nlen] = '\0';
	if (vlen > 0)
		memcpy(b + nlen + 1, version, vlen);
	b[nlen + 1 + vlen] = '\0';
	out->name_buf = b;
	out->name = b;
	out->version = b + nlen + 1;
	return 0;
}

/*
 * SecretPutRequest{1: secret Secret{1: name string}, 2: value bytes}, read in place: the value is
 * a view into `buf`, so the request's bytes stay the only plaintext copy of it (protobuf-c would
 * copy it into the message it unpacks). A name holding a NUL byte is malformed.
 */
int wire_decode_put(const uint8_t *buf, size_t len, wire_secret_req *out)
{
	static const uint32_t name_path[] = {1, 1}, value_path[] = {2};
	const uint8_t *name = NULL, *value = NULL;
	size_t nlen = 0, vlen = 0;
	memset(out, 0, sizeof(*out));
	if (pb_find(buf, len, name_path, 2, &name, &nlen) != 0 ||
	    pb_find(buf, len, value_path, 1, &value, &vlen) != 0 ||
	    strings_of(out, name, nlen, NULL, 0) != 0)
		return -1;
	out->value = vlen > 0 ? value : (const uint8_t *)"";
	out->value_len = vlen;
	return 0;
}

/* SecretAccessRequest{1: secret_version SecretVersion{1: secret Secret{1: name}, 2: version}},
 * read in place as a put is (one allocation for both strings, none for the message). */
int wire_decode_access(const uint8_t *buf, size_t len, wire_secret_req *out)
{
	static const uint32_t name_path[] = {1, 1, 1}, version_path[] = {1, 2};
	const uint8_t *name = NULL, *version = NULL;
	size_t nlen = 0, vlen = 0;
	memset(out, 0, sizeof(*out));
	if (pb_find(buf, len, name_path, 3, &name, &nlen) != 0 ||
	    pb_find(buf, len, version_path, 2, &version, &vlen) != 0 ||
	    strings_of(out, name, nlen, version, vlen) != 0)
		return -1;
	return 0;
}

void wire_secret_req_free(wire_secret_req *r)
{
	if (r == NULL)
		return;
	free(r->name_buf);
	r->name_buf = NULL;
	if (r->msg == NULL)
		return;
	protobuf_c_message_free_unpacked(r->msg, &wiping_allocator);
	r->msg = NULL;
}

static void declare_policy(const PbPolicy *pol, wire_declare *out)
{
	for (size_t i = 0; i < pol->n_principals && out->n_principals < WIRE_DECL_MAX_ITEMS; i++) {
		const PbResId *id = pol->principals[i];
		if (id != NULL && id->type == NITRIC__PROTO__RESOURCES__V1__RESOURCE_TYPE__Service)
			out->principals[out->n_principals++] = id->name;
	}
	for (size_t i = 0; i < pol->n_resources && out->n_secrets < WIRE_DECL_MAX_ITEMS; i++) {
		const PbResId *id = pol->resources[i];
		if (id != NULL && id->type == NITRIC__PROTO__RESOURCES__V1__RESOURCE_TYPE__Secret)
			out->secrets[out->n_secrets++] = id->name;
	}
	for (size_t i = 0; i < pol->n_actions; i++) {
		if (pol->actions[i] == NITRIC__PROTO__RESOURCES__V1__ACTION__SecretPut)
			out->perms |= WIRE_PERM_PUT;
		else if (pol->actions[i] == NITRIC__PROTO__RESOURCES__V1__ACTION__SecretAccess)
			out->perms |= WIRE_PERM_ACCESS;
	}
}

int wire_decode_declare(const uint8_t *buf, size_t len, wire_declare *out)
{
	PbDeclareReq *m =
	    nitric__proto__resources__v1__resource_declare_request__unpack(NULL, len, buf);
	if (m == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	out->msg = m;
	out->name = m->id != NULL ? m->id->name : "";
	/* A secret is a secret with or without its (empty) config message. */
	if (m->config_case ==
	        NITRIC__PROTO__RESOURCES__V1__RESOURCE_DECLARE_REQUEST__CONFIG_SECRET ||
	    (m->config_case ==
	         NITRIC__PROTO__RESOURCES__V1__RESOURCE_DECLARE_REQUEST__CONFIG__NOT_SET &&
	     m->id != NULL && m->id->type == NITRIC__PROTO__RESOURCES__V1__RESOURCE_TYPE__Secret)) {
		out->kind = WIRE_DECL_SECRET;
	} else if (m->config_case ==
	               NITRIC__PROTO__RESOURCES__V1__RESOURCE_DECLARE_REQUEST__CONFIG_POLICY &&
	           m->policy != NULL) {
		out->kind = WIRE_DECL_POLICY;
		declare_policy(m->policy, out);
	}
	return 0;
}

typedef Nitric__Resource__V1__ResourceDeclareRequest PbDeclareReqV0;
typedef Nitric__Resource__V1__Resource PbResV0;
typedef Nitric__Resource__V1__PolicyResource PbPolicyV0;

/* The first contract: the principal is a Function, and the enum values differ from the current. */
static void declare_policy_v0(const PbPolicyV0 *pol, wire_declare *out)
{
	for (size_t i = 0; i < pol->n_principals && out->n_principals < WIRE_DECL_MAX_ITEMS; i++) {
		const PbResV0 *id = pol->principals[i];
		if (id != NULL && id->type == NITRIC__RESOURCE__V1__RESOURCE_TYPE__Function)
			out->principals[out->n_principals++] = id->name;
	}
	for (size_t i = 0; i < pol->n_resources && out->n_secrets < WIRE_DECL_MAX_ITEMS; i++) {
		const PbResV0 *id = pol->resources[i];
		if (id != NULL && id->type == NITRIC__RESOURCE__V1__RESOURCE_TYPE__Secret)
			out->secrets[out->n_secrets++] = id->name;
	}
	for (size_t i = 0; i < pol->n_actions; i++) {
		if (pol->actions[i] == NITRIC__RESOURCE__V1__ACTION__SecretPut)
			out->perms |= WIRE_PERM_PUT;
		else if (pol->actions[i] == NITRIC__RESOURCE__V1__ACTION__SecretAccess)
			out->perms |= WIRE_PERM_ACCESS;
	}
}

int wire_decode_declare_v0(const uint8_t *buf, size_t len, wire_declare *out)
{
	PbDeclareReqV0 *m = nitric__resource__v1__resource_declare_request__unpack(NULL, len, buf);
	if (m == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	out->msg = m;
	out->name = m->resource != NULL ? m->resource->name : "";
	/* @nitric/sdk 0.15.0 declares a secret without its config message. */
	if (m->config_case == NITRIC__RESOURCE__V1__RESOURCE_DECLARE_REQUEST__CONFIG_SECRET ||
	    (m->config_case == NITRIC__RESOURCE__V1__RESOURCE_DECLARE_REQUEST__CONFIG__NOT_SET &&
	     m->resource != NULL &&
	     m->resource->type == NITRIC__RESOURCE__V1__RESOURCE_TYPE__Secret)) {
		out->kind = WIRE_DECL_SECRET;
	} else if (m->config_case ==
	               NITRIC__RESOURCE__V1__RESOURCE_DECLARE_REQUEST__CONFIG_POLICY &&
	           m->policy != NULL) {
		out->kind = WIRE_DECL_POLICY;
		declare_policy_v0(m->policy, out);
	}
	return 0;
}

void wire_declare_free(wire_declare *d)
{
	if (d == NULL || d->msg == NULL)
		return;
	protobuf_c_message_free_unpacked(d->msg, NULL);
	d->msg = NULL;
}

static int pack_new(const ProtobufCMessage *m, uint8_t **out, size_t *outlen)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	/* One spare byte so that an empty message still gets a distinct non-NULL buffer. */
	uint8_t *b = malloc(n + 1);
	if (b == NULL)
		return -1;
	protobuf_c_message_pack(m, b);
	*out = b;
	*outlen = n;
	return 0;
}

int wire_encode_put_resp(const char *name, const char *version, uint8_t **out, size_t *outlen)
{
	PbSecret sec = NITRIC__PROTO__SECRETS__V1__SECRET__INIT;
	PbSecretVersion sv = NITRIC__PROTO__SECRETS__V1__SECRET_VERSION__INIT;
	PbPutResp resp = NITRIC__PROTO__SECRETS__V1__SECRET_PUT_RESPONSE__INIT;
	sec.name = (char *)name;
	sv.secret = &sec;
	sv.version = (char *)version;
	resp.secret_version = &sv;
	return pack_new(&resp.base, out, outlen);
}

int wire_encode_access_resp(const char *name, const char *version, const uint8_t *value,
                            size_t vlen, uint8_t **out, size_t *outlen)
{
	PbSecret sec = NITRIC__PROTO__SECRETS__V1__SECRET__INIT;
	PbSecretVersion sv = NITRIC__PROTO__SECRETS__V1__SECRET_VERSION__INIT;
	PbAccessResp resp = NITRIC__PROTO__SECRETS__V1__SECRET_ACCESS_RESPONSE__INIT;
	sec.name = (char *)name;
	sv.secret = &sec;
	sv.version = (char *)version;
	resp.secret_version = &sv;
	resp.value.data = (uint8_t *)value;
	resp.value.len = vlen;
	return pack_new(&resp.base, out, outlen);
}

/* The same message as wire_encode_access_resp() gives (proto3: empty strings and bytes left out,
 * the two submessages always there), encoded by hand into the caller's buffer. */
static size_t varint_len(size_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *put_ld(uint8_t *p, uint8_t key, size_t len)
{
	*p++ = key;
	while (len >= 0x80) {
		*p++ = (uint8_t)(len | 0x80);
		len >>= 7;
	}
	*p++ = (uint8_t)len;
	return p;
}

static size_t ld_size(size_t len)
{
	return len > 0 ? 1 + varint_len(len) + len : 0;
}

size_t wire_access_resp_prepare(wire_access_resp *w, const char *name, const char *version,
                                const uint8_t *value, size_t vlen)
{
	w->name = name;
	w->version = version;
	w->value = value;
	w->name_len = strlen(name);
	w->version_len = strlen(version);
	w->value_len = vlen;
	w->sec_len = ld_size(w->name_len);
	w->sv_len = 1 + varint_len(w->sec_len) + w->sec_len + ld_size(w->version_len);
	return 1 + varint_len(w->sv_len) + w->sv_len + ld_size(vlen);
}

void wire_access_resp_write(const wire_access_resp *w, uint8_t *dst)
{
	uint8_t *p = put_ld(dst, 0x0a, w->sv_len);
	p = put_ld(p, 0x0a, w->sec_len);
	if (w->name_len > 0) {
		p = put_ld(p, 0x0a, w->name_len);
		memcpy(p, w->name, w->name_len);
		p += w->name_len;
	}
	if (w->version_len > 0) {
		p = put_ld(p, 0x12, w->version_len);
		memcpy(p, w->version, w->version_len);
		p += w->version_len;
	}
	if (w->value_len > 0) {
		p = put_ld(p, 0x12, w->value_len);
		memcpy(p, w->value, w->value_len);
	}
}

int wire_encode_declare_resp(uint8_t **out, size_t *outlen)
{
	Nitric__Proto__Resources__V1__ResourceDeclareResponse resp =
	    NITRIC__PROTO__RESOURCES__V1__RESOURCE_DECLARE_RESPONSE__INIT;
	return pack_new(&resp.base, out, outlen);
}

int wire_status_details_b64(int code, const char *message, const char *cause, char *out,
                            size_t outlen)
{
	Google__Protobuf__Value val = GOOGLE__PROTOBUF__VALUE__INIT;
	Google__Protobuf__Struct__FieldsEntry entry = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
	Google__Protobuf__Struct__FieldsEntry *entries[1] = {&entry};
	Google__Protobuf__Struct st = GOOGLE__PROTOBUF__STRUCT__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	Google__Protobuf__Any *anys[1] = {&any};
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	uint8_t inner[1024], outer[2048];

	val.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	val.string_value = (char *)cause;
	entry.key = "cause";
	entry.value = &val;
	st.n_fields = 1;
	st.fields = entries;
	if (protobuf_c_message_get_packed_size(&st.base) > sizeof(inner))
		return -1;
	any.type_url = "type.googleapis.com/google.protobuf.Struct";
	any.value.data = inner;
	any.value.len = protobuf_c_message_pack(&st.base, inner);
	status.code = code;
	status.message = (char *)message;
	status.n_details = 1;
	status.details = anys;
	if (protobuf_c_message_get_packed_size(&status.base) > sizeof(outer))
		return -1;
	size_t n = protobuf_c_message_pack(&status.base, outer);
	if (sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) > outlen)
		return -1;
	sodium_bin2base64(out, outlen, outer, n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	return 0;
}
