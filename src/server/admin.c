/*
 * admin.c -- coffer's admin service: Versions, List, Destroy (see admin.h and
 * proto/coffer/admin/v1/admin.proto).
 */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coffer/admin/v1/admin.pb-c.h"

typedef Coffer__Admin__V1__VersionInfo PbVersionInfo;
typedef Coffer__Admin__V1__SecretSummary PbSummary;

static void fail(admin_answer *a, int status, const char *msg)
{
	a->status = status;
	snprintf(a->message, sizeof(a->message), "%s", msg);
}

static void fail_rc(admin_answer *a, coffer_store *st, int rc)
{
	a->rc = rc;
	a->status = coffer_grpc_status(rc);
	snprintf(a->message, sizeof(a->message), "%s", coffer_errmsg(st));
}

/*
 * protobuf-c turns a string field into a C string, so "db.password\0x" would become
 * "db.password": a Destroy of another secret than the one named. Every admin request is flat
 * (strings and varints at the top level), so a walk over its fields finds such NULs.
 */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (int shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* bytes_fields: a bit per field number that is `bytes` (NULs allowed), for Put. */
static int strings_have_nul(const uint8_t *p, size_t len, uint64_t bytes_fields)
{
	const uint8_t *end = p + len;
	while (p < end) {
		uint64_t key, v;
		if (read_varint(&p, end, &key) != 0)
			return 1;
		switch (key & 7) {
		case 0:
			if (read_varint(&p, end, &v) != 0)
				return 1;
			break;
		case 1:
		case 5:
			if ((size_t)(end - p) < ((key & 7) == 1 ? 8u : 4u))
				return 1;
			p += (key & 7) == 1 ? 8 : 4;
			break;
		case 2:
			if (read_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p))
				return 1;
			if (!((key >> 3) < 64 && (bytes_fields >> (key >> 3) & 1)) &&
			    memchr(p, 0, (size_t)v) != NULL)
				return 1;
			p += v;
			break;
		default:
			return 1;
		}
	}
	return 0;
}

/* A name the core accepts; else INVALID_ARGUMENT with the rule. */
static int name_ok(admin_answer *a, const char *name)
{
	if (name[0] == '\0') {
		fail(a, GS_INVALID_ARGUMENT, "secret name is required");
		return 0;
	}
	if (coffer_name_check(name, strlen(name)) != COFFER_OK) {
		snprintf(
		    a->message, sizeof(a->message),
		    "invalid secret name: use 1-%d bytes of A-Z a-z 0-9 . _ -, starting with a "
		    "letter or digit",
		    COFFER_NAME_MAX);
		a->status = GS_INVALID_ARGUMENT;
		return 0;
	}
	a->secret = name;
	return 1;
}

/* Pack a message into a->body; RESOURCE_EXHAUSTED if it is over the gRPC limit or no memory. */
static void pack(admin_answer *a, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	if (n > GS_MAX_MESSAGE) {
		fail(a, GS_RESOURCE_EXHAUSTED, "answer larger than the 4 MiB gRPC message limit");
		return;
	}
	a->body = malloc(n > 0 ? n : 1);
	if (a->body == NULL) {
		fail(a, GS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	a->len = protobuf_c_message_pack(msg, a->body);
	a->status = GS_OK;
}

/* --- one request: what every method shares ---------------------------------------------- */

typedef struct admin_req {
	coffer_store *st;
	const void *q;      /* the decoded request */
	coffer_secret *sec; /* the secret it names, opened with the method's permission, or NULL */
	admin_answer *a;
} admin_req;

enum {
	SECRET_NONE,     /* the method names no secret */
	SECRET_OPTIONAL, /* a name, checked when given, not opened (Audit) */
	SECRET_READ,     /* a name, checked and opened for reading */
	SECRET_WRITE,    /* a name, checked and opened for writing */
};

/*
 * A method: its request type, how it names a secret, an argument rule checked before the secret
 * is opened (NULL or the message of INVALID_ARGUMENT), and the call. run() returns a coffer_rc:
 * COFFER_OK once it has packed the answer or failed it itself; anything else is answered from
 * the core's error.
 */
typedef struct admin_op {
	const char *name;
	const ProtobufCMessageDescriptor *desc;
	int secret;
	const char *(*check)(const void *q);
	int (*run)(admin_req *r);
} admin_op;

/* The string field `secret` of a request (every request that names one calls it that). */
static const char *req_secret(const admin_op *op, const void *q)
{
	const ProtobufCFieldDescriptor *f =
	    protobuf_c_message_descriptor_get_field_by_name(op->desc, "secret");
	return f == NULL ? NULL : *(char *const *)((const char *)q + f->offset);
}

/* protobuf-c frees without wiping: a request's bytes fields (Put's value) are wiped here. */
static void wipe_bytes(const ProtobufCMessageDescriptor *desc, void *q)
{
	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		if (f->type != PROTOBUF_C_TYPE_BYTES || f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		ProtobufCBinaryData *b = (ProtobufCBinaryData *)((char *)q + f->offset);
		if (b->data != NULL)
			explicit_bzero(b->data, b->len);
	}
}

/* --- Versions ------------------------------------------------------------------------------ */

typedef struct labels_ctx {
	Coffer__Admin__V1__LabelInfo items[66]; /* latest, previous, at most 64 custom */
	Coffer__Admin__V1__LabelInfo *ptrs[66];
	char names[66][64];
	char ids[66][COFFER_VERSION_MAX];
	size_t n;
} labels_ctx;

static int label_cb(void *ctx, const char *label, const char *version)
{
	labels_ctx *l = ctx;
	if (l->n == sizeof l->items / sizeof l->items[0])
		return 0;
	coffer__admin__v1__label_info__init(&l->items[l->n]);
	snprintf(l->names[l->n], sizeof l->names[0], "%s", label);
	snprintf(l->ids[l->n], sizeof l->ids[0], "%s", version);
	l->items[l->n].label = l->names[l->n];
	l->items[l->n].version = l->ids[l->n];
	l->ptrs[l->n] = &l->items[l->n];
	l->n++;
	return 0;
}

typedef struct versions_ctx {
	PbVersionInfo *infos;
	PbVersionInfo **ptrs;
	char (*ids)[COFFER_VERSION_MAX];
	size_t n, cap;
} versions_ctx;

static int version_cb(void *ctx, const coffer_version_info *info)
{
	versions_ctx *v = ctx;
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		PbVersionInfo *infos = realloc(v->infos, cap * sizeof(*infos));
		if (infos != NULL)
			v->infos = infos;
		char(*ids)[COFFER_VERSION_MAX] = realloc(v->ids, cap * sizeof(*ids));
		if (ids != NULL)
			v->ids = ids;
		if (infos == NULL || ids == NULL)
			return COFFER_ENOMEM;
		v->cap = cap;
	}
	PbVersionInfo *pi = &v->infos[v->n];
	coffer__admin__v1__version_info__init(pi);
	snprintf(v->ids[v->n], COFFER_VERSION_MAX, "%s", info->version);
	pi->created_unix_ms = info->created_unix_ms;
	pi->state = info->state == COFFER_STATE_DESTROYED
	                ? COFFER__ADMIN__V1__VERSION_STATE__VERSION_STATE_DESTROYED
	            : info->state == COFFER_STATE_DISABLED
	                ? COFFER__ADMIN__V1__VERSION_STATE__VERSION_STATE_DISABLED
	                : COFFER__ADMIN__V1__VERSION_STATE__VERSION_STATE_ENABLED;
	pi->size = info->size;
	pi->key_id = info->key_id;
	v->n++;
	return 0;
}

static int run_versions(admin_req *r)
{
	const Coffer__Admin__V1__VersionsRequest *q = r->q;
	versions_ctx v = {0};
	labels_ctx *lc = calloc(1, sizeof *lc);
	int rc = lc == NULL ? COFFER_ENOMEM : coffer_list_versions(r->sec, version_cb, &v);
	if (rc == COFFER_OK)
		rc = coffer_list_labels(r->sec, label_cb, lc);
	if (rc == COFFER_OK) {
		Coffer__Admin__V1__VersionsResponse resp =
		    COFFER__ADMIN__V1__VERSIONS_RESPONSE__INIT;
		v.ptrs = calloc(v.n > 0 ? v.n : 1, sizeof(*v.ptrs));
		if (v.ptrs == NULL) {
			fail(r->a, GS_RESOURCE_EXHAUSTED, "out of memory");
		} else {
			for (size_t i = 0; i < v.n; i++) {
				v.infos[i].version = v.ids[i]; /* ids has its final address now */
				v.ptrs[i] = &v.infos[i];
			}
			resp.secret = q->secret;
			resp.n_versions = v.n;
			resp.versions = v.ptrs;
			resp.n_labels = lc->n;
			resp.labels = lc->ptrs;
			pack(r->a, &resp.base);
		}
	}
	free(lc);
	free(v.ptrs);
	free(v.infos);
	free(v.ids);
	return rc;
}

/* --- List ---------------------------------------------------------------------------------- */

typedef struct list_ctx {
	const char *after;
	size_t limit;
	PbSummary *items;
	PbSummary **ptrs;
	size_t n;
	int more;
} list_ctx;

#define LIST_STOP 1 /* the page is full and a further name exists */

static int list_add(list_ctx *l, const char *name, size_t nversions)
{
	char *copy = strdup(name);
	if (copy == NULL)
		return COFFER_ENOMEM;
	coffer__admin__v1__secret_summary__init(&l->items[l->n]);
	l->items[l->n].name = copy;
	l->items[l->n].enabled_versions = nversions;
	l->ptrs[l->n] = &l->items[l->n];
	l->n++;
	return 0;
}

/* The unpaged List: names after start_after, up to the limit. */
static int list_cb(void *ctx, const char *name, size_t nversions)
{
	list_ctx *l = ctx;
	if (l->after[0] != '\0' && strcmp(name, l->after) <= 0)
		return 0;
	if (l->n == l->limit) {
		l->more = 1;
		return LIST_STOP;
	}
	return list_add(l, name, nversions);
}

/* A page by coffer_list_page: prefix and an opaque token. */
static int page_cb(void *ctx, const char *name, size_t nversions)
{
	list_ctx *l = ctx;
	return l->n == l->limit ? 0 : list_add(l, name, nversions);
}

static size_t page_limit(uint32_t asked)
{
	return asked == 0 || asked > ADMIN_LIST_MAX ? ADMIN_LIST_MAX : asked;
}

static int run_list(admin_req *r)
{
	const Coffer__Admin__V1__ListRequest *q = r->q;
	int paged = q->paged || q->prefix[0] != '\0' || q->page_token[0] != '\0';
	char next[COFFER_PAGE_TOKEN_MAX] = "";
	list_ctx l = {0};
	l.after = q->start_after;
	l.limit = page_limit(q->limit);
	l.items = calloc(l.limit, sizeof(*l.items));
	l.ptrs = calloc(l.limit, sizeof(*l.ptrs));
	int rc = COFFER_OK;
	if (l.items == NULL || l.ptrs == NULL) {
		fail(r->a, GS_RESOURCE_EXHAUSTED, "out of memory");
	} else {
		rc = paged ? coffer_list_page(r->st, q->prefix, l.limit, q->page_token, page_cb, &l,
		                              next)
		           : coffer_list_secrets(r->st, list_cb, &l);
		if (rc == LIST_STOP && !paged)
			rc = COFFER_OK;
		if (rc == COFFER_OK) {
			Coffer__Admin__V1__ListResponse resp =
			    COFFER__ADMIN__V1__LIST_RESPONSE__INIT;
			resp.n_secrets = l.n;
			resp.secrets = l.ptrs;
			resp.more = paged ? next[0] != '\0' : l.more;
			if (paged)
				resp.next_page_token = next;
			pack(r->a, &resp.base);
		}
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.items[i].name);
	free(l.items);
	free(l.ptrs);
	return rc;
}

/* --- Destroy and the lifecycle ------------------------------------------------------------- */

static const char *check_destroy(const void *q)
{
	const Coffer__Admin__V1__DestroyRequest *d = q;
	return d->version[0] == '\0' ? "version is required ('latest' or a version id)" : NULL;
}

static int run_destroy(admin_req *r)
{
	const Coffer__Admin__V1__DestroyRequest *q = r->q;
	char ver[COFFER_VERSION_MAX] = "";
	int rc = coffer_destroy(r->sec, q->version, ver);
	if (rc != COFFER_OK)
		return rc;
	snprintf(r->a->version, sizeof(r->a->version), "%s", ver);
	Coffer__Admin__V1__DestroyResponse resp = COFFER__ADMIN__V1__DESTROY_RESPONSE__INIT;
	resp.secret = q->secret;
	resp.version = ver;
	pack(r->a, &resp.base);
	return COFFER_OK;
}

static const char *check_state(const void *q)
{
	const Coffer__Admin__V1__StateRequest *s = q;
	return s->version[0] == '\0' ? "version is required (a version id or a label)" : NULL;
}

static int run_state(admin_req *r, int enable)
{
	const Coffer__Admin__V1__StateRequest *q = r->q;
	char ver[COFFER_VERSION_MAX] = "";
	int rc = enable ? coffer_enable(r->sec, q->version, ver)
	                : coffer_disable(r->sec, q->version, ver);
	if (rc != COFFER_OK)
		return rc;
	snprintf(r->a->version, sizeof(r->a->version), "%s", ver);
	Coffer__Admin__V1__StateResponse resp = COFFER__ADMIN__V1__STATE_RESPONSE__INIT;
	resp.secret = q->secret;
	resp.version = ver;
	pack(r->a, &resp.base);
	return COFFER_OK;
}

static int run_enable(admin_req *r)
{
	return run_state(r, 1);
}

static int run_disable(admin_req *r)
{
	return run_state(r, 0);
}

static const char *check_label(const void *q)
{
	const Coffer__Admin__V1__LabelRequest *l = q;
	return l->label[0] == '\0' || (!l->delete_ && l->version[0] == '\0')
	           ? "label and version are required"
	           : NULL;
}

static int run_label(admin_req *r)
{
	const Coffer__Admin__V1__LabelRequest *q = r->q;
	char ver[COFFER_VERSION_MAX] = "";
	int rc = q->delete_ ? coffer_label_delete(r->sec, q->label)
	                    : coffer_label_set(r->sec, q->label, q->version, ver);
	if (rc != COFFER_OK)
		return rc;
	snprintf(r->a->version, sizeof(r->a->version), "%s", ver);
	Coffer__Admin__V1__LabelResponse resp = COFFER__ADMIN__V1__LABEL_RESPONSE__INIT;
	resp.secret = q->secret;
	resp.label = q->label;
	resp.version = ver;
	pack(r->a, &resp.base);
	return COFFER_OK;
}

static const char *check_delete(const void *q)
{
	const Coffer__Admin__V1__DeleteRequest *d = q;
	return d->force && d->recovery_days != 0 ? "give either recovery_days or force" : NULL;
}

static int run_delete(admin_req *r)
{
	const Coffer__Admin__V1__DeleteRequest *q = r->q;
	unsigned days = q->force ? 0 : q->recovery_days ? q->recovery_days : COFFER_RECOVERY_DAYS;
	int64_t at = 0;
	int rc = coffer_delete(r->sec, days, &at);
	if (rc != COFFER_OK)
		return rc;
	Coffer__Admin__V1__DeleteResponse resp = COFFER__ADMIN__V1__DELETE_RESPONSE__INIT;
	resp.secret = q->secret;
	resp.purge_at_unix_ms = q->force ? 0 : at;
	pack(r->a, &resp.base);
	return COFFER_OK;
}

static int run_restore(admin_req *r)
{
	const Coffer__Admin__V1__RestoreRequest *q = r->q;
	int rc = coffer_restore(r->sec);
	if (rc != COFFER_OK)
		return rc;
	Coffer__Admin__V1__RestoreResponse resp = COFFER__ADMIN__V1__RESTORE_RESPONSE__INIT;
	resp.secret = q->secret;
	pack(r->a, &resp.base);
	return COFFER_OK;
}

/* --- Describe, Put, Meta ------------------------------------------------------------------- */

static int run_describe(admin_req *r)
{
	const Coffer__Admin__V1__DescribeRequest *q = r->q;
	coffer_secret_info *in = calloc(1, sizeof *in);
	labels_ctx *lc = calloc(1, sizeof *lc);
	int rc = in == NULL || lc == NULL ? COFFER_ENOMEM : coffer_describe(r->sec, in);
	if (rc == COFFER_OK && in->purge_at_unix_ms == 0)
		rc = coffer_list_labels(r->sec, label_cb, lc);
	if (rc == COFFER_OK) {
		Coffer__Admin__V1__DescribeResponse resp =
		    COFFER__ADMIN__V1__DESCRIBE_RESPONSE__INIT;
		resp.secret = q->secret;
		resp.description = in->description;
		resp.tags = in->tags;
		resp.created_unix_ms = in->created_unix_ms;
		resp.updated_unix_ms = in->updated_unix_ms;
		resp.current_version = in->current_version;
		resp.previous_version = in->previous_version;
		resp.last_version = in->last_version;
		resp.max_versions = in->max_versions;
		resp.purge_at_unix_ms = in->purge_at_unix_ms;
		resp.n_labels = lc->n;
		resp.labels = lc->ptrs;
		pack(r->a, &resp.base);
	}
	free(in);
	free(lc);
	return rc;
}

static int run_put(admin_req *r)
{
	const Coffer__Admin__V1__PutRequest *q = r->q;
	coffer_put_opts po = {.flags = q->check_version ? COFFER_PUT_IF_VERSION : 0,
	                      .if_version = q->if_version,
	                      .request_id = q->request_id.len ? q->request_id.data : NULL,
	                      .request_id_len = q->request_id.len};
	char ver[COFFER_VERSION_MAX] = "";
	int replayed = 0;
	int rc = coffer_put_ex(r->sec, q->value.data, q->value.len, &po, ver, &replayed);
	if (rc != COFFER_OK)
		return rc;
	snprintf(r->a->version, sizeof(r->a->version), "%s", ver);
	Coffer__Admin__V1__PutResponse resp = COFFER__ADMIN__V1__PUT_RESPONSE__INIT;
	resp.secret = q->secret;
	resp.version = ver;
	resp.replayed = replayed != 0;
	pack(r->a, &resp.base);
	return COFFER_OK;
}

static int run_meta(admin_req *r)
{
	const Coffer__Admin__V1__MetaRequest *q = r->q;
	int rc = COFFER_OK;
	if (q->set_description || q->set_tags)
		rc = coffer_set_info(r->sec, q->set_description ? q->description : NULL,
		                     q->set_tags ? q->tags : NULL);
	if (rc == COFFER_OK && q->set_max_versions)
		rc = coffer_set_max_versions(r->sec, q->max_versions);
	if (rc != COFFER_OK)
		return rc;
	Coffer__Admin__V1__MetaResponse resp = COFFER__ADMIN__V1__META_RESPONSE__INIT;
	resp.secret = q->secret;
	pack(r->a, &resp.base);
	return COFFER_OK;
}

/* --- the audit log ------------------------------------------------------------------------- */

static int run_audit_verify(admin_req *r)
{
	uint64_t entries = 0, bad = 0;
	char err[400] = "";
	int rc = coffer_audit_verify(r->st, &entries, &bad, err, sizeof err);
	if (rc == COFFER_EINTEGRITY) {
		r->a->rc = rc;
		r->a->status = coffer_grpc_status(rc);
		snprintf(r->a->message, sizeof(r->a->message), "audit log broken at entry %llu: %s",
		         (unsigned long long)bad, err[0] ? err : "MAC mismatch");
		return COFFER_OK;
	}
	if (rc != COFFER_OK)
		return rc;
	Coffer__Admin__V1__AuditVerifyResponse resp =
	    COFFER__ADMIN__V1__AUDIT_VERIFY_RESPONSE__INIT;
	resp.entries = entries;
	pack(r->a, &resp.base);
	return COFFER_OK;
}

typedef struct audit_ctx {
	uint64_t after;
	size_t limit, n;
	int more;
	Coffer__Admin__V1__AuditEntry *items;
	Coffer__Admin__V1__AuditEntry **ptrs;
} audit_ctx;

#define AUDIT_STOP 1

static char *dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static int audit_cb(void *ctx, const coffer_audit_entry *e)
{
	audit_ctx *x = ctx;
	if (e->id <= x->after)
		return 0;
	if (x->n == x->limit) {
		x->more = 1;
		return AUDIT_STOP;
	}
	Coffer__Admin__V1__AuditEntry *o = &x->items[x->n];
	coffer__admin__v1__audit_entry__init(o);
	o->id = e->id;
	o->seq = e->seq;
	o->time_unix_ms = e->time_unix_ms;
	o->outcome = e->outcome;
	o->chain = dup_or_empty(e->chain);
	o->principal = dup_or_empty(e->principal);
	o->action = dup_or_empty(e->action);
	o->secret = dup_or_empty(e->secret);
	o->version = dup_or_empty(e->version);
	o->error = dup_or_empty(e->error);
	o->request_hash = dup_or_empty(e->request_hash);
	x->ptrs[x->n] = o;
	x->n++; /* counted before the check, so that the strings are freed */
	if (o->chain == NULL || o->principal == NULL || o->action == NULL || o->secret == NULL ||
	    o->version == NULL || o->error == NULL || o->request_hash == NULL)
		return COFFER_ENOMEM;
	return 0;
}

static int run_audit(admin_req *r)
{
	const Coffer__Admin__V1__AuditRequest *q = r->q;
	audit_ctx x = {0};
	x.after = q->after_id;
	x.limit = page_limit(q->limit);
	x.items = calloc(x.limit, sizeof(*x.items));
	x.ptrs = calloc(x.limit, sizeof(*x.ptrs));
	int rc = COFFER_OK;
	if (x.items == NULL || x.ptrs == NULL) {
		fail(r->a, GS_RESOURCE_EXHAUSTED, "out of memory");
	} else {
		rc = coffer_audit_list(r->st, q->since_unix_ms,
		                       q->secret[0] != '\0' ? q->secret : NULL, audit_cb, &x);
		if (rc == AUDIT_STOP)
			rc = COFFER_OK;
		if (rc == COFFER_OK) {
			Coffer__Admin__V1__AuditResponse resp =
			    COFFER__ADMIN__V1__AUDIT_RESPONSE__INIT;
			resp.n_entries = x.n;
			resp.entries = x.ptrs;
			resp.more = x.more;
			pack(r->a, &resp.base);
		}
	}
	for (size_t i = 0; i < x.n; i++) {
		Coffer__Admin__V1__AuditEntry *o = &x.items[i];
		free(o->chain);
		free(o->principal);
		free(o->action);
		free(o->secret);
		free(o->version);
		free(o->error);
		free(o->request_hash);
	}
	free(x.items);
	free(x.ptrs);
	return rc;
}

/* --- the table and the entry --------------------------------------------------------------- */

#define OP(m, nm, type, sec, chk, fn)                                                              \
	[m - GS_M_ADMIN_VERSIONS] = {nm, &coffer__admin__v1__##type##__descriptor, sec, chk, fn}

static const admin_op ops[] = {
    OP(GS_M_ADMIN_VERSIONS, "Versions", versions_request, SECRET_READ, NULL, run_versions),
    OP(GS_M_ADMIN_LIST, "List", list_request, SECRET_NONE, NULL, run_list),
    OP(GS_M_ADMIN_DESTROY, "Destroy", destroy_request, SECRET_WRITE, check_destroy, run_destroy),
    OP(GS_M_ADMIN_DISABLE, "Disable", state_request, SECRET_WRITE, check_state, run_disable),
    OP(GS_M_ADMIN_ENABLE, "Enable", state_request, SECRET_WRITE, check_state, run_enable),
    OP(GS_M_ADMIN_LABEL, "Label", label_request, SECRET_WRITE, check_label, run_label),
    OP(GS_M_ADMIN_DELETE, "Delete", delete_request, SECRET_WRITE, check_delete, run_delete),
    OP(GS_M_ADMIN_RESTORE, "Restore", restore_request, SECRET_WRITE, NULL, run_restore),
    OP(GS_M_ADMIN_AUDIT_VERIFY, "AuditVerify", audit_verify_request, SECRET_NONE, NULL,
       run_audit_verify),
    OP(GS_M_ADMIN_DESCRIBE, "Describe", describe_request, SECRET_READ, NULL, run_describe),
    OP(GS_M_ADMIN_PUT, "Put", put_request, SECRET_WRITE, NULL, run_put),
    OP(GS_M_ADMIN_META, "Meta", meta_request, SECRET_WRITE, NULL, run_meta),
    OP(GS_M_ADMIN_AUDIT, "Audit", audit_request, SECRET_OPTIONAL, NULL, run_audit),
};

static const admin_op *op_of(gs_method m)
{
	if (m < GS_M_ADMIN_VERSIONS || m > GS_M_ADMIN_AUDIT)
		return NULL;
	const admin_op *op = &ops[m - GS_M_ADMIN_VERSIONS];
	return op->run != NULL ? op : NULL;
}

int admin_method(gs_method m)
{
	return op_of(m) != NULL;
}

const char *admin_method_name(gs_method m)
{
	const admin_op *op = op_of(m);
	return op != NULL ? op->name : "Unknown";
}

/* Decode, check the arguments and the name, open the secret, run; the error from the core. */
static void run_op(const admin_op *op, coffer_store *st, const uint8_t *body, size_t blen,
                   admin_answer *a)
{
	void *q = protobuf_c_message_unpack(op->desc, NULL, blen, body);
	if (q == NULL) {
		snprintf(a->message, sizeof(a->message), "malformed %s", op->desc->short_name);
		a->status = GS_INVALID_ARGUMENT;
		return;
	}
	a->req = q;
	admin_req r = {.st = st, .q = q, .a = a};
	const char *name = op->secret != SECRET_NONE ? req_secret(op, q) : NULL;
	const char *bad = op->check != NULL ? op->check(q) : NULL;
	int rc = COFFER_OK;
	if (name != NULL && (op->secret != SECRET_OPTIONAL || name[0] != '\0') &&
	    !name_ok(a, name)) {
		/* answered by name_ok */
	} else if (bad != NULL) {
		fail(a, GS_INVALID_ARGUMENT, bad);
	} else {
		if (op->secret == SECRET_READ || op->secret == SECRET_WRITE)
			rc = coffer_secret_ref(
			    st, name, op->secret == SECRET_READ ? COFFER_ACCESS : COFFER_PUT,
			    &r.sec);
		if (rc == COFFER_OK)
			rc = op->run(&r);
		coffer_secret_free(r.sec);
		if (rc != COFFER_OK)
			fail_rc(a, st, rc);
	}
	wipe_bytes(op->desc, q);
}

void admin_call(coffer_store *st, pol_table *pol, const char *principal, gs_method m,
                const uint8_t *body, size_t blen, admin_answer *a)
{
	memset(a, 0, sizeof(*a));
	if (!pol_admin_ok(pol, principal)) {
		snprintf(a->message, sizeof(a->message),
		         "service '%s' is not allowed to use the admin service (%s)", principal,
		         pol_dev_mode(pol)
		             ? "in development only the service 'default' may"
		             : "grant it with 'allow PRINCIPAL admin' in the policy file");
		a->status = GS_PERMISSION_DENIED;
		return;
	}
	const admin_op *op = op_of(m);
	if (op == NULL) {
		fail(a, GS_UNIMPLEMENTED, "unknown method");
		return;
	}
	/* Put's value (2) and request id (5) are bytes: NULs allowed there. */
	if (strings_have_nul(body, blen, m == GS_M_ADMIN_PUT ? (1u << 2 | 1u << 5) : 0)) {
		fail(a, GS_INVALID_ARGUMENT, "malformed request: a string field holds a NUL byte");
		return;
	}
	run_op(op, st, body, blen, a);
}

void admin_answer_free(admin_answer *a)
{
	free(a->body);
	a->body = NULL;
	if (a->req != NULL)
		protobuf_c_message_free_unpacked(a->req, NULL);
	a->req = NULL;
	a->secret = NULL;
}
