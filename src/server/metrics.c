/*
 * metrics.c -- Prometheus counters and their HTTP listener (libevent's evhttp) (see metrics.h).
 */
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "coffer.h"

#define N_METHODS GS_M_COUNT
#define N_STATUS  17 /* gRPC codes 0..16 */
#define N_LAT     14
#define N_BATCH   9
#define N_ERRORS  32 /* -rc of the library's codes */

static const char *const method_label[N_METHODS] = {
    "Unknown",     "Put",      "Access",   "Declare", "Declare", "Check",  "Versions",
    "List",        "Destroy",  "Disable",  "Enable",  "Label",   "Delete", "Restore",
    "AuditVerify", "Describe", "AdminPut", "Meta",    "Audit"};
static const char *const status_label[N_STATUS] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};
/* Latency bucket bounds in microseconds (printed in seconds). */
static const uint64_t lat_le_us[N_LAT] = {100,   250,   500,    1000,   2500,   5000,    10000,
                                          25000, 50000, 100000, 250000, 500000, 1000000, 2500000};
static const uint64_t batch_le[N_BATCH] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

static struct {
	uint64_t requests[N_METHODS][N_STATUS];
	uint64_t lat_bucket[N_METHODS][N_LAT]; /* non-cumulative here; summed when rendered */
	uint64_t lat_count[N_METHODS];
	uint64_t lat_sum_us[N_METHODS];
	uint64_t errors[N_ERRORS];
	uint64_t batch_bucket[N_BATCH + 1];
	uint64_t batch_count, batch_sum;
	uint64_t conns_total;
	int64_t conns_open;
	uint64_t reloads[2]; /* SIGHUP: [0] refused, [1] applied */
} m;

static void add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void metrics_request(gs_method meth, int status, uint64_t us)
{
	size_t mi = (size_t)meth < N_METHODS ? (size_t)meth : 0;
	size_t si = status >= 0 && status < N_STATUS ? (size_t)status : 2;
	add(&m.requests[mi][si], 1);
	size_t b = 0;
	while (b < N_LAT && us > lat_le_us[b])
		b++;
	if (b < N_LAT)
		add(&m.lat_bucket[mi][b], 1);
	add(&m.lat_count[mi], 1);
	add(&m.lat_sum_us[mi], us);
}

/* Errors of the caller's making (bad input, no such secret, not allowed) are requests' statuses;
 * what is counted here is what went wrong in the store, keys or integrity. */
void metrics_coffer_error(int rc)
{
	if (rc == COFFER_OK || rc == COFFER_EINVAL || rc == COFFER_ETOOBIG ||
	    rc == COFFER_ENOTFOUND || rc == COFFER_EPERM)
		return;
	if (rc < 0 && -rc < N_ERRORS)
		add(&m.errors[-rc], 1);
}

void metrics_put_batch(size_t n)
{
	size_t b = 0;
	while (b < N_BATCH && n > batch_le[b])
		b++;
	add(&m.batch_bucket[b], 1);
	add(&m.batch_count, 1);
	add(&m.batch_sum, n);
}

void metrics_conn_opened(void)
{
	add(&m.conns_total, 1);
	__atomic_fetch_add(&m.conns_open, 1, __ATOMIC_RELAXED);
}

void metrics_reload(int ok)
{
	add(&m.reloads[ok ? 1 : 0], 1);
}

void metrics_conn_closed(void)
{
	__atomic_fetch_sub(&m.conns_open, 1, __ATOMIC_RELAXED);
}

/* --- rendering ----------------------------------------------------------------------------- */

typedef struct out {
	char *buf;
	size_t len, cap;
	int oom;
} out;

static void emit(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(out *o, const char *fmt, ...)
{
	for (;;) {
		if (o->oom)
			return;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t cap = o->cap * 2 + (size_t)n;
		char *nb = realloc(o->buf, cap);
		if (nb == NULL) {
			o->oom = 1;
			return;
		}
		o->buf = nb;
		o->cap = cap;
	}
}

/* The library's error names, from the one error list. */
static const char *error_name(int rc)
{
#define X(name, value, msg, grpc, exitcode)                                                        \
	if (rc == (value))                                                                         \
		return "COFFER_" #name;
	COFFER_ERROR_LIST(X)
#undef X
	return NULL;
}

char *metrics_render(size_t *len)
{
	out o = {malloc(16384), 0, 16384, 0};
	if (o.buf == NULL)
		return NULL;

	emit(&o,
	     "# HELP coffer_build_info The running coffer: its version and libcoffer's.\n"
	     "# TYPE coffer_build_info gauge\n"
	     "coffer_build_info{version=\"%s\",libversion=\"%s\"} 1\n",
	     COFFER_VERSION_STRING, coffer_libversion());

	emit(&o, "# HELP coffer_requests_total gRPC requests answered, by method and status.\n"
	         "# TYPE coffer_requests_total counter\n");
	for (size_t mi = 0; mi < N_METHODS; mi++) {
		if (mi == GS_M_DECLARE_V0)
			continue; /* folded into Declare below */
		for (size_t si = 0; si < N_STATUS; si++) {
			uint64_t v = get(&m.requests[mi][si]);
			if (mi == GS_M_DECLARE)
				v += get(&m.requests[GS_M_DECLARE_V0][si]);
			if (v != 0 || (si == 0 && mi != GS_M_UNKNOWN))
				emit(&o, "coffer_requests_total{method=\"%s\",code=\"%s\"} %llu\n",
				     method_label[mi], status_label[si], (unsigned long long)v);
		}
	}

	emit(&o,
	     "# HELP coffer_request_duration_seconds Time from a request's arrival to its answer.\n"
	     "# TYPE coffer_request_duration_seconds histogram\n");
	for (size_t mi = 0; mi < N_METHODS; mi++) {
		if (mi == GS_M_DECLARE_V0)
			continue;
		uint64_t cum = 0, count = get(&m.lat_count[mi]), sum = get(&m.lat_sum_us[mi]);
		if (mi == GS_M_DECLARE) {
			count += get(&m.lat_count[GS_M_DECLARE_V0]);
			sum += get(&m.lat_sum_us[GS_M_DECLARE_V0]);
		}
		for (size_t b = 0; b < N_LAT; b++) {
			cum += get(&m.lat_bucket[mi][b]);
			if (mi == GS_M_DECLARE)
				cum += get(&m.lat_bucket[GS_M_DECLARE_V0][b]);
			emit(&o,
			     "coffer_request_duration_seconds_bucket{method=\"%s\",le=\"%g\"} "
			     "%llu\n",
			     method_label[mi], (double)lat_le_us[b] / 1e6, (unsigned long long)cum);
		}
		emit(&o,
		     "coffer_request_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n"
		     "coffer_request_duration_seconds_sum{method=\"%s\"} %.6f\n"
		     "coffer_request_duration_seconds_count{method=\"%s\"} %llu\n",
		     method_label[mi], (unsigned long long)count, method_label[mi],
		     (double)sum / 1e6, method_label[mi], (unsigned long long)count);
	}

	emit(
	    &o,
	    "# HELP coffer_store_errors_total Store, key and integrity errors the library reported "
	    "to requests.\n# TYPE coffer_store_errors_total counter\n");
	for (int e = 1; e < N_ERRORS; e++) {
		const char *name = error_name(-e);
		int caller = -e == COFFER_EINVAL || -e == COFFER_ETOOBIG ||
		             -e == COFFER_ENOTFOUND || -e == COFFER_EPERM;
		if (name != NULL && !caller)
			emit(&o, "coffer_store_errors_total{error=\"%s\"} %llu\n", name,
			     (unsigned long long)get(&m.errors[e]));
	}

	uint64_t hits = 0, misses = 0;
	coffer_cache_stats(&hits, &misses);
	emit(&o,
	     "# HELP coffer_cache_hits_total access(latest) answered from the cache of sealed "
	     "rows.\n"
	     "# TYPE coffer_cache_hits_total counter\ncoffer_cache_hits_total %llu\n"
	     "# HELP coffer_cache_misses_total access(latest) that read the store.\n"
	     "# TYPE coffer_cache_misses_total counter\ncoffer_cache_misses_total %llu\n",
	     (unsigned long long)hits, (unsigned long long)misses);

	emit(&o, "# HELP coffer_put_batch_size Puts committed together in one transaction.\n"
	         "# TYPE coffer_put_batch_size histogram\n");
	uint64_t cum = 0;
	for (size_t b = 0; b < N_BATCH; b++) {
		cum += get(&m.batch_bucket[b]);
		emit(&o, "coffer_put_batch_size_bucket{le=\"%llu\"} %llu\n",
		     (unsigned long long)batch_le[b], (unsigned long long)cum);
	}
	emit(&o,
	     "coffer_put_batch_size_bucket{le=\"+Inf\"} %llu\ncoffer_put_batch_size_sum %llu\n"
	     "coffer_put_batch_size_count %llu\n",
	     (unsigned long long)get(&m.batch_count), (unsigned long long)get(&m.batch_sum),
	     (unsigned long long)get(&m.batch_count));

	int64_t open = __atomic_load_n(&m.conns_open, __ATOMIC_RELAXED);
	emit(&o,
	     "# HELP coffer_connections_open gRPC connections open now.\n"
	     "# TYPE coffer_connections_open gauge\ncoffer_connections_open %lld\n"
	     "# HELP coffer_connections_total gRPC connections accepted.\n"
	     "# TYPE coffer_connections_total counter\ncoffer_connections_total %llu\n",
	     (long long)(open < 0 ? 0 : open), (unsigned long long)get(&m.conns_total));
	emit(&o,
	     "# HELP coffer_reloads_total SIGHUP reloads of the policy, token and TLS files.\n"
	     "# TYPE coffer_reloads_total counter\n"
	     "coffer_reloads_total{result=\"ok\"} %llu\ncoffer_reloads_total{result=\"refused\"} "
	     "%llu\n",
	     (unsigned long long)get(&m.reloads[1]), (unsigned long long)get(&m.reloads[0]));

	if (o.oom) {
		free(o.buf);
		return NULL;
	}
	*len = o.len;
	return o.buf;
}

/* --- the HTTP listener --------------------------------------------------------------------- */

static struct event_base *http_base;
static struct evhttp *http;
static pthread_t http_thread;
static int http_running;

static void on_request(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is served here");
		return;
	}
	size_t len = 0;
	char *text = metrics_render(&len);
	struct evbuffer *b = evbuffer_new();
	if (text == NULL || b == NULL) {
		free(text);
		if (b != NULL)
			evbuffer_free(b);
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	evbuffer_add(b, text, len);
	free(text);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

static void *http_main(void *arg)
{
	(void)arg;
	event_base_dispatch(http_base);
	return NULL;
}

int metrics_parse_addr(const char *arg, char *host, size_t hostlen, unsigned *port)
{
	const char *colon = arg != NULL ? strrchr(arg, ':') : NULL;
	if (colon == NULL || colon == arg || colon[1] == '\0')
		return -1;
	const char *h = arg;
	size_t hl = (size_t)(colon - arg);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	char *end;
	errno = 0;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || colon[1] == '-' || p > 65535 || hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned)p;
	return 0;
}

int metrics_start(const char *host, unsigned port, int *bound_port, char *err, size_t errlen)
{
	http_base = event_base_new();
	http = http_base != NULL ? evhttp_new(http_base) : NULL;
	if (http == NULL) {
		snprintf(err, errlen, "metrics: out of memory");
		metrics_stop();
		return -1;
	}
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(http, 10);
	evhttp_set_max_headers_size(http, 8192);
	evhttp_set_max_body_size(http, 0);
	evhttp_set_gencb(http, on_request, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, host, (uint16_t)port);
	if (bs == NULL) {
		snprintf(err, errlen, "metrics: cannot listen on %s:%u: %s", host, port,
		         errno != 0 ? strerror(errno) : "bad address");
		metrics_stop();
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	*bound_port = (int)port;
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
		*bound_port = ss.ss_family == AF_INET6
		                  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
		                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (pthread_create(&http_thread, NULL, http_main, NULL) != 0) {
		snprintf(err, errlen, "metrics: cannot start a thread");
		metrics_stop();
		return -1;
	}
	http_running = 1;
	return 0;
}

void metrics_stop(void)
{
	if (http_running) {
		event_base_loopbreak(http_base);
		pthread_join(http_thread, NULL);
		http_running = 0;
	}
	if (http != NULL)
		evhttp_free(http);
	if (http_base != NULL)
		event_base_free(http_base);
	http = NULL;
	http_base = NULL;
}
