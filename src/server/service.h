/*
 * service.h -- the Nitric services (SecretManager Put/Access, Resources Declare) on libcoffer.
 *
 * Access runs on the worker thread that received it, on that worker's own store handle. Put goes
 * to one committer thread that gathers every put waiting at that moment into one durable
 * transaction (coffer_put_batch), so throughput grows with the number of clients in flight; the
 * answers come back to each worker through its completion queue. With --audit every answer
 * then waits in the audit queue (auditq.h) until a group commit has written its entry.
 */
#ifndef COFFER_SERVER_SERVICE_H
#define COFFER_SERVER_SERVICE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "coffer.h"
#include "grpc.h"
#include "policy.h"

struct event_base;
struct event;

typedef struct svc_put_job svc_put_job;
typedef struct svc_committer svc_committer;
typedef struct aq_committer aq_committer;
typedef struct aq_worker aq_worker;

/* What every worker shares. */
typedef struct svc_shared {
	pol_table *pol;
	svc_committer *committer;
	size_t max_value;        /* bytes, the store's limit */
	unsigned policy_wait_ms; /* how long a data call waits for its policy in development */
	int quiet;               /* no per-request log lines (benchmarks) */
	int audit;               /* --audit: every request into the audit log before its answer */
	aq_committer *auditq;    /* with --audit: the group commit of the entries (auditq.h) */
} svc_shared;

/* One worker thread's service state. */
typedef struct svc_worker {
	svc_shared *sh;
	coffer_store *st; /* this thread's own handle, for Access */
	struct event_base *base;
	struct event *wake;  /* activated by the committer when puts are done */
	struct event *logev; /* writes the buffered log lines at the end of a loop iteration */
	pthread_mutex_t mu;
	svc_put_job *done; /* finished puts waiting to be answered on this thread */
	size_t inflight;   /* calls this worker still has to answer */
	aq_worker *aq;     /* with --audit: answers waiting for their entries (auditq.h) */
	char logbuf[8192];
	size_t loglen;
	int log_scheduled;
	uint64_t next_purge_ms; /* monotonic: when to look for secrets past their window again */
} svc_worker;

#define SVC_PURGE_EVERY_MS 60000 /* secrets past their recovery window go within a minute */

/* Called from the worker's tick: every SVC_PURGE_EVERY_MS, coffer_purge() (a read when nothing
 * is due). */
void svc_tick(svc_worker *w, uint64_t now_ms);

/* Event priorities: `base` must have SVC_PRIORITIES; I/O uses the default (middle) one. */
#define SVC_PRIORITIES 3
#define SVC_PRIO_LOG   2

/* Set up / tear down a worker's service state (wake event on `base`). 0 or -1. */
int svc_worker_init(svc_worker *w, svc_shared *sh, coffer_store *st, struct event_base *base);
void svc_worker_fini(svc_worker *w);

/*
 * Handle a complete request. `principal` is the listener's service; `need_token` says the
 * listener demands a bearer token. The call is answered now or later on this thread.
 */
void svc_handle(svc_worker *w, gs_call *call, const char *principal, int need_token);

/*
 * Answer a grpc.health.v1.Health/Check call (health.h). Served to any caller that reaches the
 * server, with or without a token or a known uid: it tells only whether the server serves.
 */
void svc_health(svc_worker *w, gs_call *call);

/* Log (and with --audit record, one entry in a transaction of its own) a request the protocol
 * layer answers itself. -1: its audit entry could not be written (the layer must not answer). */
int svc_log_refused(svc_worker *w, const gs_call *call, const char *principal, int status);

/* Answer a call refused before the service saw it (`msg` as message and cause), logged and
 * audited as any other answer. */
void svc_refuse(svc_worker *w, gs_call *call, const char *principal, int status, const char *msg);

/* Write buffered log lines to stderr (one write). */
void svc_log_flush(svc_worker *w);

/* The committer thread: start on its own store handle; stop after the queue is empty. */
svc_committer *svc_committer_start(coffer_store *st, char *err, size_t errlen);
void svc_committer_stop(svc_committer *c);

#endif
