/*
 * metrics.h -- counters for Prometheus, and the opt-in HTTP listener that serves them
 * (`coffer serve --metrics HOST:PORT`, GET /metrics, text exposition format 0.0.4).
 *
 * What is counted: requests by method and gRPC status, their latency (histograms), errors the
 * library reported, the access(latest) cache's hits and misses, the sizes of group-commit put
 * batches, connections, build info. Labels are method names, status names and error names only:
 * never a secret name, value, principal, token or key. Recording is lock-free (relaxed atomics)
 * and may be called from any thread, whether or not the listener runs.
 */
#ifndef COFFER_SERVER_METRICS_H
#define COFFER_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

void metrics_request(gs_method m, int status, uint64_t us);
void metrics_coffer_error(int rc);
void metrics_put_batch(size_t n);
void metrics_conn_opened(void);
void metrics_conn_closed(void);
/* A SIGHUP reload: applied (ok != 0) or refused. */
void metrics_reload(int ok);

/* The whole exposition text into a malloc'd string (*len bytes); NULL when out of memory. */
char *metrics_render(size_t *len);

/*
 * Parse HOST:PORT ([v6]:PORT) for --metrics: 0, or -1. host gets the address, port the number.
 */
int metrics_parse_addr(const char *arg, char *host, size_t hostlen, unsigned *port);

/* Start the HTTP listener on its own thread; *bound_port gets the port (useful with 0).
 * 0, or -1 with err. */
int metrics_start(const char *host, unsigned port, int *bound_port, char *err, size_t errlen);
/* Stop it (if started) and join its thread. */
void metrics_stop(void);

#endif
