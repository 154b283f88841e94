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

int admin_method(gs_method m)
{
	return m >= GS_M_ADMIN_VERSIONS && m <= GS_M_ADMIN_AUDIT;
}

const char *admin_method_name(gs_method m)
{
	return m == GS_M_ADMIN_VERSIONS       ? "Versions"
	       : m == GS_M_ADMIN_LIST         ? "List"
	       : m == GS_M_ADMIN_DESTROY      ? "Destroy"
	       : m == GS_M_ADMIN_DISABLE      ? "Disable"
	       : m == GS_M_ADMIN_ENABLE       ? "Enable"
	       : m == GS_M_ADMIN_LABEL        ? "Label"
	       : m == GS_M_ADMIN_DELETE       ? "Delete"
	       : m == GS_M_ADMIN_RESTORE      ? "Restore"
	       : m == GS_M_ADMIN_AUDIT_VERIFY ? "AuditVerify"
	       : m == GS_M_ADMIN_DESCRIBE     ? "Describe"
	       : m == GS_M_ADMIN_PUT          ? "Put"
	       : m == GS_M_ADMIN_META         ? "Meta"
	       : m == GS_M_ADMIN_AUDIT        ? "Audit"
	                                      : "Unknown";
}

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

static void do_versions(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__VersionsRequest *q =
	    coffer__admin__v1__versions_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed VersionsRequest");
		return;
	}
	a->req = q;
	if (!name_ok(a, q->secret))
		return;
	coffer_secret *sec = NULL;
	versions_ctx v = {0};
	labels_ctx *lc = calloc(1, sizeof *lc);
	int rc = lc == NULL ? COFFER_ENOMEM : coffer_secret_ref(st, q->secret, COFFER_ACCESS, &sec);
	if (rc == COFFER_OK)
		rc = coffer_list_versions(sec, version_cb, &v);
	if (rc == COFFER_OK)
		rc = coffer_list_labels(sec, label_cb, lc);
	if (rc != COFFER_OK) {
		fail_rc(a, st, rc);
	} else {
		Coffer__Admin__V1__VersionsResponse resp =
		    COFFER__ADMIN__V1__VERSIONS_RESPONSE__INIT;
		v.ptrs = calloc(v.n > 0 ? v.n : 1, sizeof(*v.ptrs));
		if (v.ptrs == NULL) {
			fail(a, GS_RESOURCE_EXHAUSTED, "out of memory");
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
			pack(a, &resp.base);
		}
	}
	free(lc);
	coffer_secret_free(sec);
	free(v.ptrs);
	free(v.infos);
	free(v.ids);
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

static int list_cb(void *ctx, const char *name, size_t nversions)
{
	list_ctx *l = ctx;
	if (l->after[0] != '\0' && strcmp(name, l->after) <= 0)
		return 0;
	if (l->n == l->limit) {
		l->more = 1;
		return LIST_STOP;
	}
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

/* A page by coffer_list_page: prefix and an opaque token. */
static int page_cb(void *ctx, const char *name, size_t nversions)
{
	list_ctx *l = ctx;
	if (l->n == l->limit)
		return 0;
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

static void do_list_page(coffer_store *st, Coffer__Admin__V1__ListRequest *q, admin_answer *a)
{
	list_ctx l = {0};
	char next[COFFER_PAGE_TOKEN_MAX] = "";
	l.limit = q->limit == 0 || q->limit > ADMIN_LIST_MAX ? ADMIN_LIST_MAX : q->limit;
	l.items = calloc(l.limit, sizeof(*l.items));
	l.ptrs = calloc(l.limit, sizeof(*l.ptrs));
	if (l.items == NULL || l.ptrs == NULL) {
		fail(a, GS_RESOURCE_EXHAUSTED, "out of memory");
	} else {
		int rc = coffer_list_page(st, q->prefix, l.limit, q->page_token, page_cb, &l, next);
		if (rc != COFFER_OK) {
			fail_rc(a, st, rc);
		} else {
			Coffer__Admin__V1__ListResponse resp =
			    COFFER__ADMIN__V1__LIST_RESPONSE__INIT;
			resp.n_secrets = l.n;
			resp.secrets = l.ptrs;
			resp.more = next[0] != '\0';
			resp.next_page_token = next;
			pack(a, &resp.base);
		}
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.items[i].name);
	free(l.items);
	free(l.ptrs);
}

static void do_list(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__ListRequest *q =
	    coffer__admin__v1__list_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed ListRequest");
		return;
	}
	a->req = q;
	if (q->paged || q->prefix[0] != '\0' || q->page_token[0] != '\0') {
		do_list_page(st, q, a);
		return;
	}
	list_ctx l = {0};
	l.after = q->start_after;
	l.limit = q->limit == 0 || q->limit > ADMIN_LIST_MAX ? ADMIN_LIST_MAX : q->limit;
	l.items = calloc(l.limit, sizeof(*l.items));
	l.ptrs = calloc(l.limit, sizeof(*l.ptrs));
	if (l.items == NULL || l.ptrs == NULL) {
		fail(a, GS_RESOURCE_EXHAUSTED, "out of memory");
	} else {
		int rc = coffer_list_secrets(st, list_cb, &l);
		if (rc != COFFER_OK && rc != LIST_STOP) {
			fail_rc(a, st, rc);
		} else {
			Coffer__Admin__V1__ListResponse resp =
			    COFFER__ADMIN__V1__LIST_RESPONSE__INIT;
			resp.n_secrets = l.n;
			resp.secrets = l.ptrs;
			resp.more = l.more;
			pack(a, &resp.base);
		}
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.items[i].name);
	free(l.items);
	free(l.ptrs);
}

/* --- Destroy ------------------------------------------------------------------------------- */

static void do_destroy(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__DestroyRequest *q =
	    coffer__admin__v1__destroy_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed DestroyRequest");
		return;
	}
	a->req = q;
	if (!name_ok(a, q->secret))
		return;
	if (q->version[0] == '\0') {
		fail(a, GS_INVALID_ARGUMENT, "version is required ('latest' or a version id)");
		return;
	}
	coffer_secret *sec = NULL;
	char ver[COFFER_VERSION_MAX];
	int rc = coffer_secret_ref(st, q->secret, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_destroy(sec, q->version, ver);
	coffer_secret_free(sec);
	if (rc != COFFER_OK) {
		fail_rc(a, st, rc);
		return;
	}
	snprintf(a->version, sizeof(a->version), "%s", ver);
	Coffer__Admin__V1__DestroyResponse resp = COFFER__ADMIN__V1__DESTROY_RESPONSE__INIT;
	resp.secret = q->secret;
	resp.version = ver;
	pack(a, &resp.base);
}

/* --- the lifecycle ------------------------------------------------------------------------ */

static void do_state(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a,
                     int enable)
{
	Coffer__Admin__V1__StateRequest *q =
	    coffer__admin__v1__state_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed StateRequest");
		return;
	}
	a->req = q;
	if (!name_ok(a, q->secret))
		return;
	if (q->version[0] == '\0') {
		fail(a, GS_INVALID_ARGUMENT, "version is required (a version id or a label)");
		return;
	}
	coffer_secret *sec = NULL;
	char ver[COFFER_VERSION_MAX] = "";
	int rc = coffer_secret_ref(st, q->secret, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = enable ? coffer_enable(sec, q->version, ver)
		            : coffer_disable(sec, q->version, ver);
	coffer_secret_free(sec);
	if (rc != COFFER_OK) {
		fail_rc(a, st, rc);
		return;
	}
	snprintf(a->version, sizeof(a->version), "%s", ver);
	Coffer__Admin__V1__StateResponse resp = COFFER__ADMIN__V1__STATE_RESPONSE__INIT;
	resp.secret = q->secret;
	resp.version = ver;
	pack(a, &resp.base);
}

static void do_label(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__LabelRequest *q =
	    coffer__admin__v1__label_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed LabelRequest");
		return;
	}
	a->req = q;
	if (!name_ok(a, q->secret))
		return;
	if (q->label[0] == '\0' || (!q->delete_ && q->version[0] == '\0')) {
		fail(a, GS_INVALID_ARGUMENT, "label and version are required");
		return;
	}
	coffer_secret *sec = NULL;
	char ver[COFFER_VERSION_MAX] = "";
	int rc = coffer_secret_ref(st, q->secret, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = q->delete_ ? coffer_label_delete(sec, q->label)
		                : coffer_label_set(sec, q->label, q->version, ver);
	coffer_secret_free(sec);
	if (rc != COFFER_OK) {
		fail_rc(a, st, rc);
		return;
	}
	snprintf(a->version, sizeof(a->version), "%s", ver);
	Coffer__Admin__V1__LabelResponse resp = COFFER__ADMIN__V1__LABEL_RESPONSE__INIT;
	resp.secret = q->secret;
	resp.label = q->label;
	resp.version = ver;
	pack(a, &resp.base);
}

static void do_delete(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__DeleteRequest *q =
	    coffer__admin__v1__delete_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed DeleteRequest");
		return;
	}
	a->req = q;
	if (!name_ok(a, q->secret))
		return;
	if (q->force && q->recovery_days != 0) {
		fail(a, GS_INVALID_ARGUMENT, "give either recovery_days or force");
		return;
	}
	unsigned days = q->force ? 0 : q->recovery_days ? q->recovery_days : COFFER_RECOVERY_DAYS;
	coffer_secret *sec = NULL;
	int64_t at = 0;
	int rc = coffer_secret_ref(st, q->secret, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_delete(sec, days, &at);
	coffer_secret_free(sec);
	if (rc != COFFER_OK) {
		fail_rc(a, st, rc);
		return;
	}
	Coffer__Admin__V1__DeleteResponse resp = COFFER__ADMIN__V1__DELETE_RESPONSE__INIT;
	resp.secret = q->secret;
	resp.purge_at_unix_ms = q->force ? 0 : at;
	pack(a, &resp.base);
}

static void do_restore(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__RestoreRequest *q =
	    coffer__admin__v1__restore_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed RestoreRequest");
		return;
	}
	a->req = q;
	if (!name_ok(a, q->secret))
		return;
	coffer_secret *sec = NULL;
	int rc = coffer_secret_ref(st, q->secret, COFFER_PUT, &sec);
	if (rc == COFFER_OK)
		rc = coffer_restore(sec);
	coffer_secret_free(sec);
	if (rc != COFFER_OK) {
		fail_rc(a, st, rc);
		return;
	}
	Coffer__Admin__V1__RestoreResponse resp = COFFER__ADMIN__V1__RESTORE_RESPONSE__INIT;
	resp.secret = q->secret;
	pack(a, &resp.base);
}

static void do_audit_verify(coffer_store *st, admin_answer *a)
{
	uint64_t entries = 0, bad = 0;
	char err[400] = "";
	int rc = coffer_audit_verify(st, &entries, &bad, err, sizeof err);
	if (rc == COFFER_EINTEGRITY) {
		a->rc = rc;
		a->status = coffer_grpc_status(rc);
		snprintf(a->message, sizeof(a->message), "audit log broken at entry %llu: %s",
		         (unsigned long long)bad, err[0] ? err : "MAC mismatch");
		return;
	}
	if (rc != COFFER_OK) {
		fail_rc(a, st, rc);
		return;
	}
	Coffer__Admin__V1__AuditVerifyResponse resp =
	    COFFER__ADMIN__V1__AUDIT_VERIFY_RESPONSE__INIT;
	resp.entries = entries;
	pack(a, &resp.base);
}

static void do_describe(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__DescribeRequest *q =
	    coffer__admin__v1__describe_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed DescribeRequest");
		return;
	}
	a->req = q;
	if (!name_ok(a, q->secret))
		return;
	coffer_secret *sec = NULL;
	coffer_secret_info *in = calloc(1, sizeof *in);
	labels_ctx *lc = calloc(1, sizeof *lc);
	int rc = in == NULL || lc == NULL ? COFFER_ENOMEM
	                                  : coffer_secret_ref(st, q->secret, COFFER_ACCESS, &sec);
	if (rc == COFFER_OK)
		rc = coffer_describe(sec, in);
	if (rc == COFFER_OK && in->purge_at_unix_ms == 0)
		rc = coffer_list_labels(sec, label_cb, lc);
	coffer_secret_free(sec);
	if (rc != COFFER_OK) {
		fail_rc(a, st, rc);
	} else {
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
		pack(a, &resp.base);
	}
	free(in);
	free(lc);
}

static void do_put(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__PutRequest *q = coffer__admin__v1__put_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed PutRequest");
		return;
	}
	a->req = q;
	coffer_secret *sec = NULL;
	char ver[COFFER_VERSION_MAX] = "";
	int replayed = 0, rc = COFFER_OK;
	if (name_ok(a, q->secret)) {
		coffer_put_opts po = {.flags = q->check_version ? COFFER_PUT_IF_VERSION : 0,
		                      .if_version = q->if_version,
		                      .request_id = q->request_id.len ? q->request_id.data : NULL,
		                      .request_id_len = q->request_id.len};
		rc = coffer_secret_ref(st, q->secret, COFFER_PUT, &sec);
		if (rc == COFFER_OK)
			rc = coffer_put_ex(sec, q->value.data, q->value.len, &po, ver, &replayed);
		coffer_secret_free(sec);
		if (rc != COFFER_OK) {
			fail_rc(a, st, rc);
		} else {
			snprintf(a->version, sizeof(a->version), "%s", ver);
			Coffer__Admin__V1__PutResponse resp = COFFER__ADMIN__V1__PUT_RESPONSE__INIT;
			resp.secret = q->secret;
			resp.version = ver;
			resp.replayed = replayed != 0;
			pack(a, &resp.base);
		}
	}
	/* The value and the request body are wiped here: protobuf-c frees without wiping. */
	if (q->value.data != NULL)
		explicit_bzero(q->value.data, q->value.len);
	if (q->request_id.data != NULL)
		explicit_bzero(q->request_id.data, q->request_id.len);
}

static void do_meta(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__MetaRequest *q =
	    coffer__admin__v1__meta_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed MetaRequest");
		return;
	}
	a->req = q;
	if (!name_ok(a, q->secret))
		return;
	coffer_secret *sec = NULL;
	int rc = coffer_secret_ref(st, q->secret, COFFER_PUT, &sec);
	if (rc == COFFER_OK && (q->set_description || q->set_tags))
		rc = coffer_set_info(sec, q->set_description ? q->description : NULL,
		                     q->set_tags ? q->tags : NULL);
	if (rc == COFFER_OK && q->set_max_versions)
		rc = coffer_set_max_versions(sec, q->max_versions);
	coffer_secret_free(sec);
	if (rc != COFFER_OK) {
		fail_rc(a, st, rc);
		return;
	}
	Coffer__Admin__V1__MetaResponse resp = COFFER__ADMIN__V1__META_RESPONSE__INIT;
	resp.secret = q->secret;
	pack(a, &resp.base);
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

static void do_audit(coffer_store *st, const uint8_t *body, size_t blen, admin_answer *a)
{
	Coffer__Admin__V1__AuditRequest *q =
	    coffer__admin__v1__audit_request__unpack(NULL, blen, body);
	if (q == NULL) {
		fail(a, GS_INVALID_ARGUMENT, "malformed AuditRequest");
		return;
	}
	a->req = q;
	if (q->secret[0] != '\0' && !name_ok(a, q->secret))
		return;
	audit_ctx x = {0};
	x.after = q->after_id;
	x.limit = q->limit == 0 || q->limit > ADMIN_LIST_MAX ? ADMIN_LIST_MAX : q->limit;
	x.items = calloc(x.limit, sizeof(*x.items));
	x.ptrs = calloc(x.limit, sizeof(*x.ptrs));
	if (x.items == NULL || x.ptrs == NULL) {
		fail(a, GS_RESOURCE_EXHAUSTED, "out of memory");
	} else {
		int rc = coffer_audit_list(st, q->since_unix_ms,
		                           q->secret[0] != '\0' ? q->secret : NULL, audit_cb, &x);
		if (rc != COFFER_OK && rc != AUDIT_STOP) {
			fail_rc(a, st, rc);
		} else {
			Coffer__Admin__V1__AuditResponse resp =
			    COFFER__ADMIN__V1__AUDIT_RESPONSE__INIT;
			resp.n_entries = x.n;
			resp.entries = x.ptrs;
			resp.more = x.more;
			pack(a, &resp.base);
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
}

/* --- entry --------------------------------------------------------------------------------- */

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
	/* Put's value (2) and request id (5) are bytes: NULs allowed there. */
	if (strings_have_nul(body, blen, m == GS_M_ADMIN_PUT ? (1u << 2 | 1u << 5) : 0)) {
		fail(a, GS_INVALID_ARGUMENT, "malformed request: a string field holds a NUL byte");
		return;
	}
	switch (m) {
	case GS_M_ADMIN_VERSIONS:
		do_versions(st, body, blen, a);
		break;
	case GS_M_ADMIN_LIST:
		do_list(st, body, blen, a);
		break;
	case GS_M_ADMIN_DESTROY:
		do_destroy(st, body, blen, a);
		break;
	case GS_M_ADMIN_DISABLE:
	case GS_M_ADMIN_ENABLE:
		do_state(st, body, blen, a, m == GS_M_ADMIN_ENABLE);
		break;
	case GS_M_ADMIN_LABEL:
		do_label(st, body, blen, a);
		break;
	case GS_M_ADMIN_DELETE:
		do_delete(st, body, blen, a);
		break;
	case GS_M_ADMIN_RESTORE:
		do_restore(st, body, blen, a);
		break;
	case GS_M_ADMIN_AUDIT_VERIFY:
		do_audit_verify(st, a);
		break;
	case GS_M_ADMIN_DESCRIBE:
		do_describe(st, body, blen, a);
		break;
	case GS_M_ADMIN_PUT:
		do_put(st, body, blen, a);
		break;
	case GS_M_ADMIN_META:
		do_meta(st, body, blen, a);
		break;
	case GS_M_ADMIN_AUDIT:
		do_audit(st, body, blen, a);
		break;
	default:
		fail(a, GS_UNIMPLEMENTED, "unknown method");
	}
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
