/*
 * health.c -- grpc.health.v1.Health/Check messages and statuses (see health.h).
 */
#include "health.h"

#include <string.h>

static int draining;

/* The services a client may ask about: the server's own gRPC services, both contract
 * generations, and the health service itself. */
static const char *const services[] = {
    "nitric.proto.secrets.v1.SecretManager",
    "nitric.proto.resources.v1.Resources",
    "nitric.secret.v1.SecretService",
    "nitric.resource.v1.ResourceService",
    "grpc.health.v1.Health",
};

static int varint(const uint8_t *b, size_t n, size_t *off, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*off >= n)
			return -1;
		uint8_t c = b[(*off)++];
		v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

int health_decode_request(const uint8_t *b, size_t n, char service[HEALTH_SERVICE_MAX])
{
	size_t off = 0;
	service[0] = '\0';
	while (off < n) {
		uint64_t key, len;
		if (varint(b, n, &off, &key) != 0 || (key >> 3) == 0)
			return -1;
		switch (key & 7) {
		case 0: /* varint */
			if (varint(b, n, &off, &len) != 0)
				return -1;
			break;
		case 1: /* fixed64 */
			if (n - off < 8)
				return -1;
			off += 8;
			break;
		case 2: /* length-delimited */
			if (varint(b, n, &off, &len) != 0 || len > n - off)
				return -1;
			if ((key >> 3) == 1) {
				if (len >= HEALTH_SERVICE_MAX || memchr(b + off, 0, len) != NULL)
					return -1;
				memcpy(service, b + off, len);
				service[len] = '\0';
			}
			off += len;
			break;
		case 5: /* fixed32 */
			if (n - off < 4)
				return -1;
			off += 4;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

int health_status(const char *service)
{
	int known = service[0] == '\0';
	for (size_t i = 0; !known && i < sizeof(services) / sizeof(services[0]); i++)
		known = strcmp(service, services[i]) == 0;
	if (!known)
		return -1;
	return __atomic_load_n(&draining, __ATOMIC_RELAXED) ? HEALTH_NOT_SERVING : HEALTH_SERVING;
}

void health_set_draining(void)
{
	__atomic_store_n(&draining, 1, __ATOMIC_RELAXED);
}

size_t health_encode_response(int status, uint8_t out[2])
{
	if (status == HEALTH_UNKNOWN)
		return 0; /* proto3: a zero enum is not sent */
	out[0] = 0x08;    /* field 1, varint */
	out[1] = (uint8_t)status;
	return 2;
}
