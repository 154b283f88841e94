/*
 * health.h -- the standard gRPC health service, grpc.health.v1.Health/Check.
 *
 * The messages, from grpc's public src/proto/grpc/health/v1/health.proto (written here by hand,
 * as protobuf's wire format, not copied):
 *   message HealthCheckRequest  { string service = 1; }
 *   message HealthCheckResponse { ServingStatus status = 1; }
 *   enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
 * Check with service "" asks about the server as a whole; a service the server does not have
 * is answered NOT_FOUND, as the protocol says. Watch (server streaming) is not offered: this
 * server answers unary calls only, and clients treat its UNIMPLEMENTED as "use Check".
 */
#ifndef COFFER_SERVER_HEALTH_H
#define COFFER_SERVER_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#define HEALTH_SERVICE_MAX 256

enum { HEALTH_UNKNOWN = 0, HEALTH_SERVING = 1, HEALTH_NOT_SERVING = 2 };

/* The service name of a HealthCheckRequest (NUL-terminated): 0, or -1 if malformed or too long. */
int health_decode_request(const uint8_t *b, size_t n, char service[HEALTH_SERVICE_MAX]);

/* The status of `service` ("" for the whole server): HEALTH_SERVING or HEALTH_NOT_SERVING, or -1
 * for a service this server does not have. */
int health_status(const char *service);

/* The server stops serving (draining): Check says NOT_SERVING from now on. Thread-safe. */
void health_set_draining(void);

/* Encode a HealthCheckResponse into out (2 bytes at most); returns its length. */
size_t health_encode_response(int status, uint8_t out[2]);

#endif
