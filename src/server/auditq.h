/*
 * auditq.h -- answers held until their audit entries are durable (coffer serve --audit).
 *
 * Every answer of an audited server goes through here instead of straight to gs_call_reply():
 * the worker queues the answer with its entry (aq_answer) and goes on serving; once it has
 * served every connection that was ready (a flush event at their priority), it wakes the one
 * committer thread, which, on its own store handle, takes every entry queued by then from all
 * workers and appends them in one transaction (coffer_audit_append_batch); only after it commits
 * does each worker send those answers, on its own thread. If the transaction fails, none of them is
 * sent: each becomes UNAVAILABLE (14) "the audit log could not record this request". So no answer
 * leaves without its entry, and the cost of a durable write is shared by every request that
 * arrived while the one before it was being written (group commit).
 */
#ifndef COFFER_SERVER_AUDITQ_H
#define COFFER_SERVER_AUDITQ_H

#include <stddef.h>
#include <stdint.h>

#include "coffer.h"
#include "grpc.h"

struct event_base;

typedef struct aq_committer aq_committer;
typedef struct aq_worker aq_worker;

#define AQ_BATCH_MAX 1024 /* entries in one transaction */

/* The committer thread, on its own handle `st` (which it does not close). NULL on failure. */
aq_committer *aq_start(coffer_store *st, char *err, size_t errlen);
/* Commit what is queued, post those answers to their workers, end the thread. After every
 * worker's loop has ended; aq_answer() afterwards drops its call unanswered. NULL or stopped
 * already: nothing. aq_free: stop, then free (after every aq_worker_free). */
void aq_stop(aq_committer *c);
void aq_free(aq_committer *c);

/* One worker's side: answers come back through an event on `base`; `inflight` counts each
 * answer held here (the worker's drain waits for it). NULL when out of memory. */
aq_worker *aq_worker_new(aq_committer *c, struct event_base *base, size_t *inflight);
/* Send (to connections now gone: free) what was posted back, then free. NULL: nothing. */
void aq_worker_free(aq_worker *w);

/*
 * Queue the answer of `call` (what gs_call_reply() would send; body and messages are copied,
 * the body wiped when freed) with its audit entry: principal, action (the method), secret and
 * version (NULL: none; must already be printable), outcome = `status`. Out of memory, or after
 * aq_stop(): the call is dropped unanswered (its stream reset), never answered unaudited.
 */
void aq_answer(aq_worker *w, gs_call *call, const char *principal, const char *action,
               const char *secret, const char *version, int status, const char *message,
               const char *cause, const uint8_t *body, size_t len);
/* The same for an OK answer of len bytes that fill() writes straight into the queue's buffer
 * (what gs_call_reply_fill() does for an answer sent at once): no copy of its own to make. */
void aq_answer_fill(aq_worker *w, gs_call *call, const char *principal, const char *action,
                    const char *secret, const char *version, size_t len,
                    void (*fill)(uint8_t *dst, size_t len, void *ctx), void *ctx);

#endif
