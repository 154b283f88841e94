/*
 * conn.h -- one client connection to a gRPC server: socket (TCP or Unix) or TLS, HTTP/2 on
 * nghttp2, and unary gRPC calls made one at a time. Errors come back as a coffer_rc and a message.
 */
#ifndef COFFER_CLIENT_CONN_H
#define COFFER_CLIENT_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "pb.h"

typedef struct cc_conn cc_conn;

typedef struct cc_config {
	char host[256]; /* TCP host (no brackets), "" for a Unix socket */
	char port[16];
	char path[108]; /* Unix socket path */
	char authority[300];
	int tls;
	const char *ca_file;
	const char *server_name;
	unsigned timeout_ms;
	size_t max_response;
} cc_config;

/* Connect and exchange HTTP/2 settings. 0, or a coffer_rc with err. */
int cc_conn_open(cc_conn **out, const cc_config *cfg, char *err, size_t errlen);
void cc_conn_close(cc_conn *c);

/* 1 while the connection can take another call (no GOAWAY, not closed); reads what the server
 * sent since the last call (without waiting) to know. */
int cc_conn_usable(cc_conn *c);

/*
 * One unary call: `req` is the request message (protobuf bytes), `token` an optional bearer
 * token. On success `resp` holds the response message (wiped when freed). Returns 0 or a
 * coffer_rc with err (the server's grpc-message, or what went wrong on the way).
 */
int cc_call(cc_conn *c, const char *path, const pb_buf *req, const char *token, pb_buf *resp,
            char *err, size_t errlen);

/* The gRPC status to coffer_rc mapping (coffer_client_rc_from_status). */
int cc_rc_from_status(int status, const char *message);

#endif
