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

typedef struct aq_item {
	struct aq_item *next;
	aq_worker *w;
	gs_call *call;
	int status;
	int audited; /* the transaction that carried its entry committed */
	char *message, *cause;
	uint8_t *body;
	size_t len;
	char principal[129];
	char action[33];
	char secret[COFFER_NAME_MAX + 1];
	char version[65];
	int has_secret, has_version;
} aq_item;

struct aq_worker {
	aq_committer *c;
	struct event *wake;
	size_t *inflight;
	pthread_mutex_t mu;
	aq_item *done; /* posted back by the committer, newest first */
};

struct aq_committer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	aq_item *head, *tail;
	size_t queued;
	int stop;    /* set by aq_stop: finish the queue, then end */
	int stopped; /* the thread ended: aq_answer drops its call */
	int joined;
	coffer_store *st;
};

static void item_free(aq_item *it)
{
	if (it->body != NULL)
		sodium_memzero(it->body, it->len);
	free(it->body);
	free(it->message);
	free(it->cause);
	free(it);
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

void aq_answer(aq_worker *w, gs_call *call, const char *principal, const char *action,
               const char *secret, const char *version, int status, const char *message,
               const char *cause, const uint8_t *body, size_t len)
{
	aq_committer *c = w->c;
	aq_item *it = calloc(1, sizeof(*it));
	int bad = it == NULL;
	if (!bad) {
		it->message = dup_or_null(message, &bad);
		it->cause = dup_or_null(cause, &bad);
		if (status == GS_OK && len > 0) {
			it->body = malloc(len);
			if (it->body == NULL)
				bad = 1;
			else
				memcpy(it->body, body, len);
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
	snprintf(it->principal, sizeof(it->principal), "%s", principal != NULL ? principal : "-");
	snprintf(it->action, sizeof(it->action), "%s", action);
	it->has_secret = secret != NULL;
	snprintf(it->secret, sizeof(it->secret), "%s", secret != NULL ? secret : "");
	it->has_version = version != NULL;
	snprintf(it->version, sizeof(it->version), "%s", version != NULL ? version : "");
	pthread_mutex_lock(&c->mu);
	if (c->stop || c->stopped) { /* after aq_stop (shutdown): the connections are gone */
		pthread_mutex_unlock(&c->mu);
		item_free(it);
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
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* On the worker's thread: send what the committer posted, in the order it was queued. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	aq_worker *w = arg;
	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->mu);
	aq_item *list = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->mu);
	aq_item *rev = NULL; /* posted newest first: turn it around */
	while (list != NULL) {
		aq_item *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
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
		item_free(rev);
		rev = next;
	}
}

static void post(aq_item *it)
{
	aq_worker *w = it->w;
	pthread_mutex_lock(&w->mu);
	it->next = w->done;
	w->done = it;
	pthread_mutex_unlock(&w->mu);
	event_active(w->wake, 0, 0);
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
	for (size_t i = 0; i < n; i++) {
		items[i]->audited = rc == COFFER_OK;
		post(items[i]);
	}
}

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *committer_main(void *arg)
{
	aq_committer *c = arg;
	static aq_item *batch[AQ_BATCH_MAX];
	size_t last_n = 0;    /* entries in the transaction before */
	uint64_t last_us = 0; /* how long it took */
	for (;;) {
		size_t n = 0;
		pthread_mutex_lock(&c->mu);
		while (c->head == NULL && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->head == NULL && c->stop) {
			c->stopped = 1;
			pthread_mutex_unlock(&c->mu);
			break;
		}
		/*
		 * Gather: the callers answered by the last transaction come back with their next
		 * requests within a moment; started at once, this transaction would leave them to
		 * the one after it, and each caller would wait for two durable writes instead of
		 * one. So wait until as many entries are queued as the last transaction carried,
		 * for at most half as long as it took (AQ_GATHER_MAX_US). A lone caller never waits
		 * (1 >= 1).
		 */
		if (c->queued < last_n && !c->stop) {
			uint64_t wait =
			    last_us / 2 < AQ_GATHER_MAX_US ? last_us / 2 : AQ_GATHER_MAX_US;
			uint64_t until = mono_us() + wait;
			while (c->queued < last_n && !c->stop) {
				uint64_t now = mono_us();
				if (now >= until)
					break;
				struct timespec ts;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				uint64_t ns = (uint64_t)ts.tv_nsec + (until - now) * 1000u;
				ts.tv_sec += (time_t)(ns / 1000000000u);
				ts.tv_nsec = (long)(ns % 1000000000u);
				pthread_cond_timedwait(&c->cv, &c->mu, &ts);
			}
		}
		/* Everything queued by now goes into this transaction. */
		while (c->head != NULL && n < AQ_BATCH_MAX) {
			batch[n++] = c->head;
			c->head = c->head->next;
		}
		c->queued -= n;
		if (c->head == NULL)
			c->tail = NULL;
		pthread_mutex_unlock(&c->mu);
		uint64_t t0 = mono_us();
		commit(c, batch, n);
		last_us = mono_us() - t0;
		last_n = n;
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
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
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
	if (w->wake == NULL) {
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
	event_free(w->wake);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
