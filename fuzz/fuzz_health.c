/*
 * fuzz_health.c -- libFuzzer target over the HealthCheckRequest decoder (src/server/health.c),
 * which reads bytes any caller sends. Checks as properties: a decoded name fits and has no NUL,
 * and encoding it again as field 1 decodes to the same name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char svc[HEALTH_SERVICE_MAX], again[HEALTH_SERVICE_MAX];
	if (health_decode_request(data, size, svc) != 0)
		return 0;
	size_t n = strlen(svc);
	check(n < HEALTH_SERVICE_MAX);
	uint8_t msg[3 + HEALTH_SERVICE_MAX];
	size_t off = 0;
	msg[off++] = 0x0a;
	if (n >= 0x80) {
		msg[off++] = (uint8_t)(0x80 | (n & 0x7f));
		msg[off++] = (uint8_t)(n >> 7);
	} else {
		msg[off++] = (uint8_t)n;
	}
	memcpy(msg + off, svc, n);
	check(health_decode_request(msg, off + n, again) == 0);
	check(strcmp(svc, again) == 0);
	int st = health_status(svc);
	check(st == -1 || st == HEALTH_SERVING || st == HEALTH_NOT_SERVING);
	return 0;
}
