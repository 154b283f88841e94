/*
 * auditq.c -- group commit of the server's audit entries (see auditq.h).
 */
#include "auditq.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <sodium.h>

#include "log.h"

/* An answer body this small is copied into the item itself (an Access of a value of up to
 * about 200 bytes): no allocation per request. */
#define AQ_BODY_INLINE 256
/* Items a worker keeps for reuse once their answers are sent (its thread's alone). */
#define AQ_SPARE_MAX 256

typedef struct aq_item {
	struct aq_item *next;
	aq_worker *w;
	gs_call *call;
	int status;
	int audited; /* the transaction that carried its entry committed */
	char *message, *cause;
	uint8_t *body; /* inline, or malloc'd when larger than AQ_BODY_INLINE */
	size_t len;
	char principal[129];
	char action[33];
	char secret[COFFER_NAME_MAX + 1];
	char version[65];
	int has_secret, has_version;
	uint8_t inline_body[AQ_BODY_INLINE];
} aq_item;

struct aq_worker {
	aq_committer *c;
	struct event *wake;
	struct event *flush; /* after every ready connection was served: "commit what I queued" */
	int flush_scheduled;
	size_t *inflight;
	pthread_mutex_t mu;
	aq_item *done, *done_tail; /* posted back by the committer, in queue order */
	aq_item *spare;            /* for reuse (the worker's thread only) */
	size_t nspare;
};

struct aq_committer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	aq_item *head, *tail;
	size_t queued;
	/* A worker has served every connection that was ready (its flush event ran) since the
	 * committer last took the queue: what is queued is a whole burst, commit it. */
	int ready;
	int waiting; /* the committer sleeps on cv: the one who sets ready signals */
	int stop;    /* set by aq_stop: finish the queue, then end */
	int stopped; /* the thread ended: aq_answer drops its call */
	int joined;
	coffer_store *st;
};

/* Wipe the body and free what the item points to; the item itself stays. */
static void item_clear(aq_item *it)
{
	if (it->body != NULL) {
		sodium_memzero(it->body, it->len);
		if (it->body != it->inline_body)
			free(it->body);
	}
	free(it->message);
	free(it->cause);
	it->body = NULL;
	it->message = it->cause = NULL;
	it->len = 0;
}

static void item_free(aq_item *it)
{
	item_clear(it);
	free(it);
}

/* On the worker's thread: an item done with goes back to the worker's spares. */
static void item_release(aq_worker *w, aq_item *it)
{
	item_clear(it);
	if (w->nspare >= AQ_SPARE_MAX) {
		free(it);
		return;
	}
	it->next = w->spare;
	w->spare = it;
	w->nspare++;
}

/* A bounded copy of s into a field of cap bytes (s may be NULL: def). */
static void put_field(char *dst, size_t cap, const char *s, const char *def)
{
	if (s == NULL)
		s = def;
	size_t n = strnlen(s, cap - 1);
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static char *dup_or_null(const char *s, int *bad)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	if (d == NULL)
		*bad = 1;
	return d;
}

typedef struct copy_ctx {
	const uint8_t *body;
} copy_ctx;

static void copy_body(uint8_t *dst, size_t len, void *ctx)
{
	memcpy(dst, ((copy_ctx *)ctx)->body, len);
}

/* aq_answer and aq_answer_fill: the body (of an OK answer) is written by fill. */
static void queue_answer(aq_worker *w, gs_call *call, const char *principal, const char *action,
                         const char *secret, const char *version, int status, const char *message,
                         const char *cause, size_t len,
                         void (*fill)(uint8_t *dst, size_t len, void *ctx), void *ctx)
{
	aq_committer *c = w->c;
	aq_item *it = w->spare;
	if (it != NULL) {
		w->spare = it->next;
		w->nspare--;
		it->next = NULL;
		it->audited = 0;
	} else {
		it = calloc(1, sizeof(*it));
	}
	int bad = it == NULL;
	if (!bad) {
		it->message = dup_or_null(message, &bad);
		it->cause = dup_or_null(cause, &bad);
		if (status == GS_OK && len > 0) {
			it->body = len <= sizeof(it->inline_body) ? it->inline_body : malloc(len);
			if (it->body == NULL)
				bad = 1;
			else
				fill(it->body, len, ctx);
			it->len = len;
		}
	}
	if (bad) {
		/* No entry can be written for it: it gets no answer either. */
		if (it != NULL)
			item_free(it);
		gs_call_abandon(call);
		return;
	}
	it->w = w;
	it->call = call;
	it->status = status;
	put_field(it->principal, sizeof(it->principal), principal, "-");
	put_field(it->action, sizeof(it->action), action, "");
	it->has_secret = secret != NULL;
	put_field(it->secret, sizeof(it->secret), secret, "");
	it->has_version = version != NULL;
	put_field(it->version, sizeof(it->version), version, "");
	pthread_mutex_lock(&c->mu);
	if (c->stop || c->stopped) { /* after aq_stop (shutdown): the connections are gone */
		pthread_mutex_unlock(&c->mu);
		item_release(w, it);
		gs_call_abandon(call);
		return;
	}
	(*w->inflight)++;
	if (c->tail != NULL)
		c->tail->next = it;
	else
		c->head = it;
	c->tail = it;
	c->queued++;
	int wake = c->waiting && c->queued >= AQ_BATCH_MAX; /* a burst that fills a transaction */
	pthread_mutex_unlock(&c->mu);
	if (wake)
		pthread_cond_signal(&c->cv);
	if (!w->flush_scheduled) {
		w->flush_scheduled = 1;
		event_active(w->flush, 0, 0);
	}
}

void aq_answer(aq_worker *w, gs_call *call, const char *principal, const char *action,
               const char *secret, const char *version, int status, const char *message,
               const char *cause, const uint8_t *body, size_t len)
{
	copy_ctx cc = {body};
	queue_answer(w, call, principal, action, secret, version, status, message, cause, len,
	             copy_body, &cc);
}

void aq_answer_fill(aq_worker *w, gs_call *call, const char *principal, const char *action,
                    const char *secret, const char *version, size_t len,
                    void (*fill)(uint8_t *dst, size_t len, void *ctx), void *ctx)
{
	queue_answer(w, call, principal, action, secret, version, GS_OK, NULL, NULL, len, fill,
	             ctx);
}

/*
 * On the worker's thread, once per loop iteration in which it queued answers: it runs after the
 * connections that were ready (it was made active while they were served, at their priority), so
 * the committer starts a transaction when the worker has queued all it could, not on its first
 * entry (a transaction per burst, not per request), and a lone caller never waits for others.
 */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	aq_worker *w = arg;
	aq_committer *c = w->c;
	(void)fd;
	(void)what;
	w->flush_scheduled = 0;
	pthread_mutex_lock(&c->mu);
	c->ready = 1;
	int wake = c->waiting && c->head != NULL;
	pthread_mutex_unlock(&c->mu);
	if (wake)
		pthread_cond_signal(&c->cv);
}

/* On the worker's thread: send what the committer posted, in the order it was queued. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	aq_worker *w = arg;
	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->mu);
	aq_item *rev = w->done;
	w->done = w->done_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	while (rev != NULL) {
		aq_item *next = rev->next;
		if (rev->audited)
			gs_call_reply(rev->call, rev->status, rev->message, rev->cause, rev->body,
			              rev->len);
		else
			gs_call_reply(
			    rev->call, GS_UNAVAILABLE,
			    "the audit log could not record this request, so its answer is "
			    "withheld",
			    "audit log write failed", NULL, 0);
		(*w->inflight)--;
		item_release(w, rev);
		rev = next;
	}
}

/* Hand the n items of a transaction back to their workers: per worker, its items in queue
 * order under one lock and one wakeup (the items array is consumed). */
static void post_all(aq_item **items, size_t n, int audited)
{
	for (size_t i = 0; i < n; i++) {
		items[i]->audited = audited;
		items[i]->next = NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (items[i] == NULL)
			continue;
		aq_worker *w = items[i]->w;
		aq_item *head = items[i], *tail = items[i];
		items[i] = NULL;
		for (size_t j = i + 1; j < n; j++)
			if (items[j] != NULL && items[j]->w == w) {
				tail->next = items[j];
				tail = items[j];
				items[j] = NULL;
			}
		pthread_mutex_lock(&w->mu);
		if (w->done_tail != NULL)
			w->done_tail->next = head;
		else
			w->done = head;
		w->done_tail = tail;
		pthread_mutex_unlock(&w->mu);
		event_active(w->wake, 0, 0);
	}
}

static void commit(aq_committer *c, aq_item **items, size_t n)
{
	static coffer_audit_record recs[AQ_BATCH_MAX]; /* the committer thread's alone */
	for (size_t i = 0; i < n; i++) {
		aq_item *it = items[i];
		recs[i] = (coffer_audit_record){it->principal,
		                                it->action,
		                                it->has_secret ? it->secret : NULL,
		                                it->has_version ? it->version : NULL,
		                                it->status,
		                                NULL,
		                                0};
	}
	int rc = coffer_audit_append_batch(c->st, recs, n);
	if (rc != COFFER_OK)
		log_msg("error",
		        "the audit log could not record %zu request(s), answered UNAVAILABLE: %s",
		        n, coffer_errmsg(c->st));
	post_all(items, n, rc == COFFER_OK);
}

static void *committer_main(void *arg)
{
	aq_committer *c = arg;
	static aq_item *batch[AQ_BATCH_MAX];
	for (;;) {
		size_t n = 0;
		pthread_mutex_lock(&c->mu);
		/*
		 * Wait for a burst: entries queued and their worker done with every connection that
		 * was ready (flush_cb), or a transaction's worth queued. Answers held here are what
		 * callers wait for, so a worker that has nothing more to serve is not kept waiting;
		 * while a transaction is being written, the next bursts queue up and go together.
		 */
		while (!c->stop && !(c->head != NULL && (c->ready || c->queued >= AQ_BATCH_MAX))) {
			c->waiting = 1;
			pthread_cond_wait(&c->cv, &c->mu);
			c->waiting = 0;
		}
		if (c->head == NULL && c->stop) {
			c->stopped = 1;
			pthread_mutex_unlock(&c->mu);
			break;
		}
		/* Everything queued by now goes into this transaction. */
		while (c->head != NULL && n < AQ_BATCH_MAX) {
			batch[n++] = c->head;
			c->head = c->head->next;
		}
		c->queued -= n;
		if (c->head == NULL) {
			c->tail = NULL;
			c->ready = 0;
		}
		pthread_mutex_unlock(&c->mu);
		commit(c, batch, n);
	}
	return NULL;
}

aq_committer *aq_start(coffer_store *st, char *err, size_t errlen)
{
	aq_committer *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->st = st;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
		snprintf(err, errlen, "cannot start the audit committer thread");
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
		free(c);
		return NULL;
	}
	return c;
}

void aq_stop(aq_committer *c)
{
	if (c == NULL || c->joined)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	c->joined = 1;
}

void aq_free(aq_committer *c)
{
	if (c == NULL)
		return;
	aq_stop(c);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

aq_worker *aq_worker_new(aq_committer *c, struct event_base *base, size_t *inflight)
{
	aq_worker *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->c = c;
	w->inflight = inflight;
	if (pthread_mutex_init(&w->mu, NULL) != 0) {
		free(w);
		return NULL;
	}
	w->wake = event_new(base, -1, 0, wake_cb, w);
	w->flush = event_new(base, -1, 0, flush_cb, w);
	if (w->wake == NULL || w->flush == NULL) {
		if (w->wake != NULL)
			event_free(w->wake);
		if (w->flush != NULL)
			event_free(w->flush);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return NULL;
	}
	return w;
}

void aq_worker_free(aq_worker *w)
{
	if (w == NULL)
		return;
	wake_cb(-1, 0, w);
	while (w->spare != NULL) {
		aq_item *next = w->spare->next;
		free(w->spare);
		w->spare = next;
	}
	event_free(w->wake);
	event_free(w->flush);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
