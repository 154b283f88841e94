/*
 * service.c -- Put, Access and Declare on top of libcoffer (see service.h).
 */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "admin.h"
#include "auditq.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "wire.h"

#define BATCH_MAX 256 /* puts in one group commit */
#define RETRY_MS  10  /* how often a call waiting for its policy looks again */

static const char *const method_names[GS_M_COUNT] = {
    "Unknown",     "Put",      "Access",   "Declare", "Declare", "Check",  "Versions",
    "List",        "Destroy",  "Disable",  "Enable",  "Label",   "Delete", "Restore",
    "AuditVerify", "Describe", "AdminPut", "Meta",    "Audit"};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Per-call state the service keeps while a call is in its hands. */
typedef struct svc_req {
	svc_worker *w;
	gs_call *call;
	char principal[POL_PRINCIPAL_MAX];
	uint64_t start_us;
	uint64_t wait_until_us; /* 0 until the call first waits for a policy */
} svc_req;

struct svc_put_job {
	svc_put_job *next;
	svc_req *req;
	char name[COFFER_NAME_MAX + 1];
	/* The request's bytes, taken from the call (gs_call_take_body): the value is a view into
	 * them, never copied, and they are wiped as soon as the commit is over. */
	uint8_t *body;
	size_t body_cap;
	const uint8_t *value;
	size_t len;
	int rc;
	char version[COFFER_VERSION_MAX];
	char errmsg[256];
};

/* A declaration to keep in the store (issue 13 item 8); answered before it is written. */
typedef struct svc_decl_job {
	struct svc_decl_job *next;
	char service[POL_PRINCIPAL_MAX];
	char secret[COFFER_NAME_MAX + 1];
	unsigned actions; /* WIRE_PERM_* == COFFER_DECL_* */
} svc_decl_job;

struct svc_committer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	svc_put_job *head, *tail;
	svc_decl_job *dhead, *dtail; /* written before the puts queued with them */
	int stop;
	coffer_store *st;
};

/* --- logging ------------------------------------------------------------------------------- */

static void log_later(svc_worker *w);

void svc_tick(svc_worker *w, uint64_t now_ms)
{
	if (now_ms < w->next_purge_ms)
		return;
	w->next_purge_ms = now_ms + SVC_PURGE_EVERY_MS;
	size_t n = 0;
	if (coffer_purge(w->st, &n) == COFFER_OK && n > 0 && !w->sh->quiet) {
		char line[128];
		int len = snprintf(
		    line, sizeof line,
		    "coffer: %zu secret(s) past their recovery window deleted for good\n", n);
		if (len > 0 && (size_t)len < sizeof line &&
		    sizeof(w->logbuf) - w->loglen > (size_t)len) {
			memcpy(w->logbuf + w->loglen, line, (size_t)len);
			w->loglen += (size_t)len;
			log_later(w);
		}
	}
}

void svc_log_flush(svc_worker *w)
{
	size_t off = 0;
	while (off < w->loglen) {
		ssize_t n = write(STDERR_FILENO, w->logbuf + off, w->loglen - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	w->loglen = 0;
}

/*
 * Lines are written once per loop iteration, after every ready connection was served: the flush
 * event has the lowest priority, so one write() carries the lines of a whole batch.
 */
static void log_later(svc_worker *w)
{
	if (w->logev != NULL && !w->log_scheduled) {
		w->log_scheduled = 1;
		event_active(w->logev, 0, 0);
	}
}

static void log_cb(evutil_socket_t fd, short what, void *arg)
{
	svc_worker *w = arg;
	w->log_scheduled = 0;
	svc_log_flush(w);
}

/* The fields of an audit entry: names only once validated, never a value or a token. */
static const char *audit_secret(const char *secret)
{
	return secret != NULL && coffer_name_check(secret, strlen(secret)) == COFFER_OK ? secret
	                                                                                : NULL;
}

/*
 * The length of s if it is shorter than max and only ASCII letters and digits (and, with
 * punct, '.', '_' and '-'), else -1. A loop, not strspn: with a 62-byte set strspn cost more
 * than the rest of the checks of an audit entry or a log line, once per request.
 */
static long word_len(const char *s, size_t max, int punct)
{
	size_t i = 0;
	for (; s[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (i + 1 >= max ||
		    !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= 'A' && ch <= 'Z') || (punct && (ch == '.' || ch == '_' || ch == '-'))))
			return -1;
	}
	return (long)i;
}

/* A version id or label for an audit entry: under 64 of [0-9A-Za-z._-]. */
static const char *audit_version(const char *version)
{
	return version != NULL && word_len(version, 64, 1) >= 0 ? version : NULL;
}

static void log_audit_failure(svc_worker *w, int arc)
{
	if (sizeof(w->logbuf) - w->loglen > 128) {
		int n = snprintf(w->logbuf + w->loglen, sizeof(w->logbuf) - w->loglen,
		                 "coffer: error: the audit log refused an entry: %s\n",
		                 coffer_strerror(arc));
		if (n > 0 && (size_t)n < sizeof(w->logbuf) - w->loglen)
			w->loglen += (size_t)n;
		log_later(w);
	}
}

/* A version printed in a request line: 1 to 20 ASCII letters or digits ("latest", an id). */
static int version_loggable(const char *v)
{
	return v != NULL && word_len(v, COFFER_VERSION_MAX, 0) > 0;
}

/* One line per request; names are printed only once validated, values never. */
static void log_req(svc_req *r, gs_method m, const char *secret, const char *version, int status)
{
	svc_worker *w = r->w;
	uint64_t us = now_us() - r->start_us;
	metrics_request(m, status, us);
	if (w->sh->quiet)
		return;
	if (sizeof(w->logbuf) - w->loglen < 1024)
		svc_log_flush(w);
	if (secret == NULL || coffer_name_check(secret, strlen(secret)) != COFFER_OK)
		secret = "-";
	if (!version_loggable(version))
		version = "-";
	w->loglen += log_format_request(w->logbuf + w->loglen, sizeof(w->logbuf) - w->loglen,
	                                method_names[m], r->principal, secret, version, status,
	                                (unsigned long long)us);
	log_later(w);
}

/*
 * Log the request and answer it (what gs_call_reply() takes). With --audit the answer waits in
 * the audit queue (auditq.c) until a group commit has written its entry (principal, method,
 * secret, version, gRPC status as a positive outcome): no answer leaves unaudited.
 */
static void answer(svc_req *r, gs_method m, const char *secret, const char *version, int status,
                   const char *msg, const char *cause, const uint8_t *body, size_t len)
{
	log_req(r, m, secret, version, status);
	if (r->w->aq != NULL)
		aq_answer(r->w->aq, r->call, r->principal, method_names[m], audit_secret(secret),
		          audit_version(version), status, msg, cause, body, len);
	else
		gs_call_reply(r->call, status, msg, cause, body, len);
}

int svc_log_refused(svc_worker *w, const gs_call *call, const char *principal, int status)
{
	svc_req r;
	memset(&r, 0, sizeof(r));
	r.w = w;
	r.start_us = now_us(); /* refused as soon as seen: no measurable service time */
	snprintf(r.principal, sizeof(r.principal), "%s", principal);
	/* The protocol layer answers these itself, right after: they are rare (malformed calls),
	 * so each is written on its own, and one that cannot be written is not answered. */
	if (w->sh->audit) {
		int arc =
		    coffer_audit_append(w->st, r.principal, method_names[gs_call_method(call)],
		                        NULL, NULL, status, NULL, 0);
		if (arc != COFFER_OK) {
			log_audit_failure(w, arc);
			return -1;
		}
	}
	log_req(&r, gs_call_method(call), NULL, NULL, status);
	return 0;
}

void svc_refuse(svc_worker *w, gs_call *call, const char *principal, int status, const char *msg)
{
	svc_req r;
	memset(&r, 0, sizeof(r));
	r.w = w;
	r.call = call;
	r.start_us = now_us();
	snprintf(r.principal, sizeof(r.principal), "%s", principal);
	answer(&r, gs_call_method(call), NULL, NULL, status, msg, msg, NULL, 0);
}

/* --- answering ----------------------------------------------------------------------------- */

static void req_done(svc_req *r)
{
	r->w->inflight--;
	free(r);
}

static void reply_error(svc_req *r, gs_method m, const char *secret, const char *version,
                        int status, const char *msg)
{
	/* The cause travels as grpc-status-details-bin; the SDK shows it as the error's Details. */
	answer(r, m, secret, version, status, msg, msg, NULL, 0);
	req_done(r);
}

/* Map a coffer error to gRPC, never passing on detail for key or integrity failures. */
/* Once per process: the operator must restart the server with the new master key. The message
 * is the library's own (it names no secret, key or value). */
static void log_key_trouble(svc_worker *w, const char *detail)
{
	static int logged;
	char line[1200];
	if (w->sh->quiet || __atomic_exchange_n(&logged, 1, __ATOMIC_RELAXED))
		return;
	size_t n = log_format_msg(line, sizeof(line), "error", detail);
	if (n > 0 && sizeof(w->logbuf) - w->loglen > n) {
		memcpy(w->logbuf + w->loglen, line, (size_t)n);
		w->loglen += (size_t)n;
		log_later(w);
	}
}

static void reply_coffer_error(svc_req *r, gs_method m, const char *secret, const char *version,
                               int rc, const char *detail)
{
	int status = coffer_grpc_status(rc);
	metrics_coffer_error(rc);
	const char *msg = detail != NULL && detail[0] != '\0' ? detail : coffer_strerror(rc);
	/* Internal details stay inside, except a stale master key (another process ran
	 * `coffer rekey`): the caller and the log are told that plainly. */
	if (rc == COFFER_EKEY && msg != coffer_strerror(rc))
		log_key_trouble(r->w, msg);
	else if (status == GS_INTERNAL)
		msg = coffer_strerror(rc);
	reply_error(r, m, secret, version, status, msg);
}

/* --- permissions --------------------------------------------------------------------------- */

static void retry_cb(evutil_socket_t fd, short what, void *arg);

/*
 * 1: allowed. 0: answered (denied) or parked to look again later. In development a data call can
 * overtake its own policy Declare (the SDK does not wait for it), so it waits a little for it.
 */
static int permitted(svc_req *r, gs_method m, const char *secret, unsigned perm)
{
	char msg[COFFER_NAME_MAX + 128];
	pol_verdict v = pol_check(r->w->sh->pol, r->principal, secret, perm);
	if (v == POL_ALLOW)
		return 1;
	/* In development a grant for another action may be followed by this one (a program
	 * restarted with more permissions, or another SDK release declaring the same secret). */
	if (v == POL_UNKNOWN || (v == POL_DENY && pol_dev_mode(r->w->sh->pol))) {
		uint64_t now = now_us();
		uint64_t deadline = gs_call_deadline_us(r->call);
		if (r->wait_until_us == 0)
			r->wait_until_us = now + (uint64_t)r->w->sh->policy_wait_ms * 1000u;
		/* The client gives up at its grpc-timeout: say so then, rather than hold the stream
		 * until it resets it (a reset of an unanswered stream draws on the Rapid Reset
		 * budget, and a burst of those would cost the client its connection). */
		if (deadline != 0 && now >= deadline) {
			snprintf(msg, sizeof(msg),
			         "deadline exceeded while waiting for a policy for secret '%s'",
			         secret);
			reply_error(r, m, secret, NULL, GS_DEADLINE_EXCEEDED, msg);
			return 0;
		}
		if (now < r->wait_until_us) {
			struct timeval tv = {0, RETRY_MS * 1000};
			if (event_base_once(r->w->base, -1, EV_TIMEOUT, retry_cb, r, &tv) == 0) {
				gs_call_wait(r->call); /* lets the policy Declare get a stream */
				return 0;
			}
		}
	}
	snprintf(msg, sizeof(msg), "service '%s' is not allowed to %s secret '%s'%s", r->principal,
	         perm == WIRE_PERM_PUT ? "put" : "access", secret,
	         v == POL_UNKNOWN ? " (no policy declared for it)" : "");
	reply_error(r, m, secret, NULL, GS_PERMISSION_DENIED, msg);
	return 0;
}

/*
 * The name's check is the core's (coffer_secret_ref), with its message: answered here before the
 * name reaches a policy lookup or a log line. 1: valid (*out is a handle on the worker's store).
 */
static int name_ok(svc_req *r, gs_method m, const char *name, unsigned perm, coffer_secret **out)
{
	int rc = coffer_secret_ref(r->w->st, name, perm, out);
	if (rc == COFFER_OK)
		return 1;
	reply_coffer_error(r, m, NULL, NULL, rc, coffer_errmsg(r->w->st));
	return 0;
}

/* --- Put ----------------------------------------------------------------------------------- */

static void committer_push(svc_committer *c, svc_put_job *j)
{
	pthread_mutex_lock(&c->mu);
	j->next = NULL;
	if (c->tail != NULL)
		c->tail->next = j;
	else
		c->head = j;
	c->tail = j;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void handle_put(svc_req *r)
{
	wire_secret_req q;
	size_t blen, bcap;
	const uint8_t *body = gs_call_body(r->call, &blen);
	coffer_secret *sec = NULL;

	if (wire_decode_put(body, blen, &q) != 0) {
		reply_error(r, GS_M_PUT, NULL, NULL, GS_INVALID_ARGUMENT,
		            "malformed SecretPutRequest");
		return;
	}
	if (!name_ok(r, GS_M_PUT, q.name, COFFER_PUT, &sec))
		goto out;
	/* The value's checks are the core's too (the batch makes them again, for nothing). */
	int rc = coffer_put_check(sec, q.value, q.value_len);
	if (rc != COFFER_OK) {
		reply_coffer_error(r, GS_M_PUT, q.name, NULL, rc, coffer_errmsg(r->w->st));
		goto out;
	}
	if (!permitted(r, GS_M_PUT, q.name, WIRE_PERM_PUT))
		goto out; /* answered, or parked with its body: handle_put runs again */
	svc_put_job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		reply_error(r, GS_M_PUT, q.name, NULL, GS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	snprintf(j->name, sizeof(j->name), "%s", q.name);
	/* The body moves to the job, at the same address: q.value still points into it. */
	j->body = gs_call_take_body(r->call, &blen, &bcap);
	j->body_cap = bcap;
	j->value = q.value;
	j->len = q.value_len;
	j->req = r;
	committer_push(r->w->sh->committer, j);
out:
	coffer_secret_free(sec);
	wire_secret_req_free(&q);
}

static void put_answer(svc_put_job *j)
{
	svc_req *r = j->req;
	if (j->rc != COFFER_OK) {
		reply_coffer_error(r, GS_M_PUT, j->name, NULL, j->rc, j->errmsg);
		return;
	}
	uint8_t *out = NULL;
	size_t olen = 0;
	if (wire_encode_put_resp(j->name, j->version, &out, &olen) != 0) {
		reply_error(r, GS_M_PUT, j->name, j->version, GS_RESOURCE_EXHAUSTED,
		            "out of memory");
		return;
	}
	answer(r, GS_M_PUT, j->name, j->version, GS_OK, NULL, NULL, out, olen);
	free(out);
	req_done(r);
}

/* The committer said some puts are done: answer them on this, their own, thread. */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	svc_worker *w = arg;
	pthread_mutex_lock(&w->mu);
	svc_put_job *j = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->mu);
	while (j != NULL) {
		svc_put_job *next = j->next;
		put_answer(j);
		free(j);
		j = next;
	}
}

/* --- Access -------------------------------------------------------------------------------- */

static void fill_access(uint8_t *dst, size_t len, void *ctx)
{
	wire_access_resp_write(ctx, dst);
}

/* The value goes from the library's (wiped) value straight into the answer's (wiped) buffer. */
static void access_answer(svc_req *r, const char *name, coffer_value *v)
{
	size_t vlen;
	const uint8_t *data = coffer_value_data(v, &vlen);
	const char *ver = coffer_value_version(v);
	/* Encoded straight into the answer's buffer: gRPC's when it goes out now; audited, the
	 * queue's, where it waits for its entry's commit (auditq.c; wiped when freed). */
	wire_access_resp w;
	size_t len = wire_access_resp_prepare(&w, name, ver, data, vlen);
	log_req(r, GS_M_ACCESS, name, ver, GS_OK);
	if (r->w->aq == NULL)
		gs_call_reply_fill(r->call, len, fill_access, &w);
	else
		aq_answer_fill(r->w->aq, r->call, r->principal, method_names[GS_M_ACCESS],
		               audit_secret(name), audit_version(ver), len, fill_access, &w);
	req_done(r);
}

static void handle_access(svc_req *r)
{
	wire_secret_req q;
	size_t blen;
	const uint8_t *body = gs_call_body(r->call, &blen);
	coffer_secret *sec = NULL;
	coffer_value *v = NULL;

	if (wire_decode_access(body, blen, &q) != 0) {
		reply_error(r, GS_M_ACCESS, NULL, NULL, GS_INVALID_ARGUMENT,
		            "malformed SecretAccessRequest");
		return;
	}
	if (!name_ok(r, GS_M_ACCESS, q.name, COFFER_ACCESS, &sec))
		goto out;
	if (q.version[0] == '\0') {
		reply_error(r, GS_M_ACCESS, q.name, NULL, GS_INVALID_ARGUMENT,
		            "secret version is required ('latest' or a version id)");
		goto out;
	}
	if (!permitted(r, GS_M_ACCESS, q.name, WIRE_PERM_ACCESS))
		goto out;
	int rc = coffer_access(sec, q.version, &v);
	if (rc != COFFER_OK)
		reply_coffer_error(r, GS_M_ACCESS, q.name, q.version, rc, coffer_errmsg(r->w->st));
	else
		access_answer(r, q.name, v);
	coffer_value_free(v);
out:
	coffer_secret_free(sec);
	wire_secret_req_free(&q);
}

/* --- Declare ------------------------------------------------------------------------------- */

/*
 * Keep a declaration in the store, if it is news (pol_record): through the committer, queued
 * ahead of any put that arrives after it, so a put that succeeded implies its declaration was
 * written. Out of memory: not kept (the grant in memory still holds for this run).
 */
static void remember(svc_worker *w, const char *service, const char *secret, unsigned actions)
{
	if (!pol_record(w->sh->pol, service, secret, actions))
		return;
	svc_decl_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	snprintf(j->service, sizeof(j->service), "%s", service);
	snprintf(j->secret, sizeof(j->secret), "%s", secret);
	j->actions = actions;
	svc_committer *c = w->sh->committer;
	pthread_mutex_lock(&c->mu);
	if (c->dtail != NULL)
		c->dtail->next = j;
	else
		c->dhead = j;
	c->dtail = j;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void declare_policy(svc_req *r, const wire_declare *d)
{
	svc_worker *w = r->w;
	for (size_t i = 0; i < d->n_principals; i++) {
		/* The SDK names itself with an empty service name; another name grants nothing. */
		const char *p = d->principals[i];
		if (p[0] != '\0' && strcmp(p, r->principal) != 0)
			continue;
		for (size_t k = 0; k < d->n_secrets; k++) {
			const char *s = d->secrets[k];
			if (coffer_name_check(s, strlen(s)) != COFFER_OK)
				continue;
			remember(w, r->principal, s, d->perms);
			if (!pol_declare(w->sh->pol, r->principal, s, d->perms) &&
			    !pol_dev_mode(w->sh->pol) && !w->sh->quiet) {
				char msg[COFFER_NAME_MAX + 160], line[2 * COFFER_NAME_MAX + 320];
				snprintf(
				    msg, sizeof(msg),
				    "policy declared by '%s' for secret '%s' grants nothing (the "
				    "policy file rules)",
				    r->principal, s);
				size_t n = log_format_msg(line, sizeof(line), "warn", msg);
				if (n > 0 && sizeof(w->logbuf) - w->loglen > n) {
					memcpy(w->logbuf + w->loglen, line, n);
					w->loglen += n;
					log_later(w);
				}
			}
		}
	}
}

static void handle_declare(svc_req *r)
{
	wire_declare d;
	size_t blen;
	const uint8_t *body = gs_call_body(r->call, &blen);
	uint8_t *out = NULL;
	size_t olen = 0;

	int rc = gs_call_method(r->call) == GS_M_DECLARE_V0 ? wire_decode_declare_v0(body, blen, &d)
	                                                    : wire_decode_declare(body, blen, &d);
	if (rc != 0) {
		reply_error(r, GS_M_DECLARE, NULL, NULL, GS_INVALID_ARGUMENT,
		            "malformed ResourceDeclareRequest");
		return;
	}
	if (d.kind == WIRE_DECL_POLICY)
		declare_policy(r, &d);
	else if (d.kind == WIRE_DECL_SECRET && d.name != NULL &&
	         coffer_name_check(d.name, strlen(d.name)) == COFFER_OK)
		remember(r->w, r->principal, d.name, 0);
	/* Declare answers OK whatever it declared: a failed Declare crashes the caller's process.
	 */
	if (wire_encode_declare_resp(&out, &olen) != 0) {
		reply_error(r, GS_M_DECLARE, NULL, NULL, GS_RESOURCE_EXHAUSTED, "out of memory");
	} else {
		answer(r, GS_M_DECLARE, d.kind == WIRE_DECL_SECRET ? d.name : NULL, NULL, GS_OK,
		       NULL, NULL, out, olen);
		req_done(r);
	}
	free(out);
	wire_declare_free(&d);
}

/* --- the admin service (admin.c) ------------------------------------------------------------ */

static void handle_admin(svc_req *r)
{
	admin_answer a;
	size_t blen;
	gs_method m = gs_call_method(r->call);
	const uint8_t *body = gs_call_body(r->call, &blen);
	admin_call(r->w->st, r->w->sh->pol, r->principal, m, body, blen, &a);
	if (a.rc != COFFER_OK) {
		reply_coffer_error(r, m, a.secret, a.version, a.rc, a.message);
	} else if (a.status != GS_OK) {
		reply_error(r, m, a.secret, a.version, a.status, a.message);
	} else {
		answer(r, m, a.secret, a.version, GS_OK, NULL, NULL, a.body, a.len);
		req_done(r);
	}
	admin_answer_free(&a);
}

/* --- dispatch ------------------------------------------------------------------------------ */

static void dispatch(svc_req *r)
{
	switch (gs_call_method(r->call)) {
	case GS_M_PUT:
		handle_put(r);
		break;
	case GS_M_ACCESS:
		handle_access(r);
		break;
	case GS_M_DECLARE:
	case GS_M_DECLARE_V0:
		handle_declare(r);
		break;
	case GS_M_ADMIN_VERSIONS:
	case GS_M_ADMIN_LIST:
	case GS_M_ADMIN_DESTROY:
		handle_admin(r);
		break;
	default:
		if (admin_method(gs_call_method(r->call))) { /* the lifecycle's admin calls */
			handle_admin(r);
			break;
		}
		reply_error(r, GS_M_UNKNOWN, NULL, NULL, GS_UNIMPLEMENTED, "unknown method");
	}
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	svc_req *r = arg;
	svc_worker *w = r->w; /* r may be freed by dispatch() */
	if (!gs_call_alive(r->call)) {
		gs_call_abandon(r->call);
		req_done(r);
		return;
	}
	dispatch(r);
	(void)w;
}

/* --- health ------------------------------------------------------------------------------- */

void svc_health(svc_worker *w, gs_call *call)
{
	svc_req r;
	char service[HEALTH_SERVICE_MAX];
	size_t blen;
	const uint8_t *body = gs_call_body(call, &blen);
	memset(&r, 0, sizeof(r));
	r.w = w;
	r.call = call;
	r.start_us = now_us();
	snprintf(r.principal, sizeof(r.principal), "-");
	if (health_decode_request(body, blen, service) != 0) {
		answer(&r, GS_M_HEALTH_CHECK, NULL, NULL, GS_INVALID_ARGUMENT,
		       "malformed HealthCheckRequest", NULL, NULL, 0);
		return;
	}
	int st = health_status(service);
	if (st < 0) {
		answer(&r, GS_M_HEALTH_CHECK, NULL, NULL, GS_NOT_FOUND, "unknown service", NULL,
		       NULL, 0);
		return;
	}
	uint8_t out[2];
	size_t n = health_encode_response(st, out);
	answer(&r, GS_M_HEALTH_CHECK, NULL, NULL, GS_OK, NULL, NULL, out, n);
}

/* Who is calling: the listener's service, or the owner of a valid bearer token. */
static int authenticate(svc_req *r, const char *principal, int need_token)
{
	size_t tlen = 0;
	const char *tok = gs_call_bearer(r->call, &tlen);
	if (tok == NULL) {
		if (need_token) {
			reply_error(r, gs_call_method(r->call), NULL, NULL, GS_UNAUTHENTICATED,
			            "this listener requires 'authorization: Bearer <token>'");
			return 0;
		}
		snprintf(r->principal, sizeof(r->principal), "%s", principal);
		return 1;
	}
	if (tlen == 0 || pol_token_principal(r->w->sh->pol, tok, tlen, r->principal,
	                                     sizeof(r->principal)) != 0) {
		snprintf(r->principal, sizeof(r->principal), "-");
		reply_error(r, gs_call_method(r->call), NULL, NULL, GS_UNAUTHENTICATED,
		            "invalid bearer token");
		return 0;
	}
	return 1;
}

void svc_handle(svc_worker *w, gs_call *call, const char *principal, int need_token)
{
	svc_req *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		gs_call_reply(call, GS_RESOURCE_EXHAUSTED, "out of memory", NULL, NULL, 0);
		return;
	}
	r->w = w;
	r->call = call;
	r->start_us = now_us();
	w->inflight++;
	if (authenticate(r, principal, need_token))
		dispatch(r);
}

/* --- worker set-up ------------------------------------------------------------------------- */

int svc_worker_init(svc_worker *w, svc_shared *sh, coffer_store *st, struct event_base *base)
{
	memset(w, 0, sizeof(*w));
	w->sh = sh;
	w->st = st;
	w->base = base;
	if (pthread_mutex_init(&w->mu, NULL) != 0)
		return -1;
	w->wake = event_new(base, -1, 0, wake_cb, w);
	w->logev = event_new(base, -1, 0, log_cb, w);
	if (w->wake == NULL || w->logev == NULL)
		return -1;
	if (sh->auditq != NULL && (w->aq = aq_worker_new(sh->auditq, base, &w->inflight)) == NULL)
		return -1;
	return event_priority_set(w->logev, SVC_PRIO_LOG);
}

void svc_worker_fini(svc_worker *w)
{
	/* Answers the committer posted after this worker's loop ended: their connections are gone,
	 * so answering only frees them. */
	if (w->wake != NULL)
		wake_cb(-1, 0, w);
	aq_worker_free(w->aq); /* after the puts: answers to connections gone are only freed */
	w->aq = NULL;
	if (w->wake != NULL)
		event_free(w->wake);
	if (w->logev != NULL)
		event_free(w->logev);
	pthread_mutex_destroy(&w->mu);
	svc_log_flush(w);
}

/* --- the committer ------------------------------------------------------------------------- */

/* The commit is over: wipe each request's bytes (the value's only copy), then hand the answers
 * to their workers, one lock and one wake-up per worker. */
static void jobs_post(svc_put_job **jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		svc_put_job *j = jobs[i];
		if (j->body != NULL) {
			sodium_memzero(j->body, j->body_cap);
			free(j->body);
		}
		j->body = NULL;
		j->value = NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (jobs[i] == NULL)
			continue;
		svc_worker *w = jobs[i]->req->w;
		pthread_mutex_lock(&w->mu);
		for (size_t k = i; k < n; k++) {
			svc_put_job *j = jobs[k];
			if (j == NULL || j->req->w != w)
				continue;
			j->next = w->done;
			w->done = j;
			jobs[k] = NULL;
		}
		pthread_mutex_unlock(&w->mu);
		event_active(w->wake, 0, 0);
	}
}

/* Commit a batch of puts in one transaction and hand each answer back to its worker. */
static void commit_batch(svc_committer *c, svc_put_job **jobs, size_t n)
{
	coffer_put_item items[BATCH_MAX];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		coffer_secret *sec = NULL;
		jobs[i]->rc = coffer_secret_ref(c->st, jobs[i]->name, COFFER_PUT, &sec);
		if (jobs[i]->rc != COFFER_OK) {
			snprintf(jobs[i]->errmsg, sizeof(jobs[i]->errmsg), "%s",
			         coffer_errmsg(c->st));
			continue;
		}
		memset(&items[k], 0, sizeof(items[k]));
		items[k].secret = sec;
		items[k].value = jobs[i]->value;
		items[k].len = jobs[i]->len;
		k++;
	}
	int brc = coffer_put_batch(c->st, items, k);
	if (k > 0)
		metrics_put_batch(k);
	for (size_t i = 0, it = 0; i < n; i++) {
		svc_put_job *j = jobs[i];
		if (j->rc == COFFER_OK) {
			coffer_put_item *item = &items[it++];
			j->rc = item->rc;
			if (j->rc == COFFER_OK)
				snprintf(j->version, sizeof(j->version), "%s", item->version);
			else if (brc != COFFER_OK)
				snprintf(j->errmsg, sizeof(j->errmsg), "%s", coffer_errmsg(c->st));
			coffer_secret_free(item->secret);
		}
	}
	jobs_post(jobs, n);
}

/* Write the queued declarations in one transaction; a failure is logged, never answered (the
 * Declare was answered OK already: a failed Declare crashes the caller's program). */
static void commit_decls(svc_committer *c, svc_decl_job *list)
{
	size_t n = 0;
	for (svc_decl_job *j = list; j != NULL; j = j->next)
		n++;
	coffer_declaration *d = calloc(n, sizeof(*d));
	int rc = COFFER_ENOMEM;
	if (d != NULL) {
		size_t i = 0;
		for (svc_decl_job *j = list; j != NULL; j = j->next, i++) {
			d[i].service = j->service;
			d[i].secret = j->secret;
			d[i].actions = j->actions;
		}
		rc = coffer_declare(c->st, d, n);
	}
	if (rc != COFFER_OK)
		fprintf(stderr, "coffer: could not keep %zu declaration(s) in the store: %s\n", n,
		        d != NULL ? coffer_errmsg(c->st) : "out of memory");
	free(d);
	while (list != NULL) {
		svc_decl_job *next = list->next;
		free(list);
		list = next;
	}
}

static void *committer_main(void *arg)
{
	svc_committer *c = arg;
	svc_put_job *batch[BATCH_MAX];
	for (;;) {
		size_t n = 0;
		pthread_mutex_lock(&c->mu);
		while (c->head == NULL && c->dhead == NULL && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->head == NULL && c->dhead == NULL && c->stop) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		/* Taken together, under the lock: every declaration queued before a put taken here
		 * is written before it (a put that succeeded implies its Declare was kept). */
		svc_decl_job *decls = c->dhead;
		c->dhead = c->dtail = NULL;
		/* Everything that queued up while the last commit ran goes into this one. */
		while (c->head != NULL && n < BATCH_MAX) {
			batch[n++] = c->head;
			c->head = c->head->next;
		}
		if (c->head == NULL)
			c->tail = NULL;
		pthread_mutex_unlock(&c->mu);
		if (decls != NULL)
			commit_decls(c, decls);
		if (n > 0)
			commit_batch(c, batch, n);
	}
	return NULL;
}

svc_committer *svc_committer_start(coffer_store *st, char *err, size_t errlen)
{
	svc_committer *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->st = st;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
		snprintf(err, errlen, "cannot start the committer thread");
		free(c);
		return NULL;
	}
	return c;
}

void svc_committer_stop(svc_committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}
