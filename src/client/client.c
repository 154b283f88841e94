/*
 * client.c -- the public coffer_client_* API (include/coffer_client.h) over conn.c: the Nitric
 * SecretManager for put and access, coffer's admin service for the rest.
 */
#include "coffer_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "pb.h"

#define PATH_PUT          "/nitric.proto.secrets.v1.SecretManager/Put"
#define PATH_ACCESS       "/nitric.proto.secrets.v1.SecretManager/Access"
#define PATH_VERSIONS     "/coffer.admin.v1.Admin/Versions"
#define PATH_LIST         "/coffer.admin.v1.Admin/List"
#define PATH_DESTROY      "/coffer.admin.v1.Admin/Destroy"
#define PATH_DECLARE      "/nitric.proto.resources.v1.Resources/Declare"
#define PATH_DISABLE      "/coffer.admin.v1.Admin/Disable"
#define PATH_ENABLE       "/coffer.admin.v1.Admin/Enable"
#define PATH_LABEL        "/coffer.admin.v1.Admin/Label"
#define PATH_DELETE       "/coffer.admin.v1.Admin/Delete"
#define PATH_RESTORE      "/coffer.admin.v1.Admin/Restore"
#define PATH_AUDIT_VERIFY "/coffer.admin.v1.Admin/AuditVerify"
#define PATH_DESCRIBE     "/coffer.admin.v1.Admin/Describe"
#define PATH_ADMIN_PUT    "/coffer.admin.v1.Admin/Put"
#define PATH_META         "/coffer.admin.v1.Admin/Meta"
#define PATH_AUDIT        "/coffer.admin.v1.Admin/Audit"

#define TOKEN_MAX 512

struct coffer_client {
	cc_config cfg;
	cc_conn *conn;
	char ca_file[4096];
	char server_name[256];
	char token[TOKEN_MAX + 1];
	int has_token;
	int declare;
	char errmsg[512];
};

struct coffer_client_value {
	uint8_t *data;
	size_t len;
	char version[COFFER_VERSION_MAX];
};

/* The core's name rule (coffer_name_check), checked here so that a bad name costs no round trip. */
static int coffer_client_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > COFFER_NAME_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		            (ch >= '0' && ch <= '9');
		if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-')))
			return -1;
	}
	return 0;
}

static int set_err(coffer_client *c, int rc, const char *msg)
{
	snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg);
	return rc;
}

/* --- connecting ---------------------------------------------------------------------------- */

/* HOST:PORT, [V6]:PORT or unix:PATH into cfg. 0 or -1. */
static int parse_address(const char *addr, cc_config *cfg)
{
	if (strncmp(addr, "unix:", 5) == 0) {
		size_t n = strlen(addr + 5);
		if (n == 0 || n >= sizeof(cfg->path))
			return -1;
		memcpy(cfg->path, addr + 5, n + 1);
		snprintf(cfg->authority, sizeof(cfg->authority), "localhost");
		return 0;
	}
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || colon == addr || colon[1] == '\0')
		return -1;
	size_t hlen = (size_t)(colon - addr);
	const char *h = addr;
	if (h[0] == '[') {
		if (hlen < 3 || h[hlen - 1] != ']')
			return -1;
		h++;
		hlen -= 2;
	} else if (memchr(h, ':', hlen) != NULL) {
		return -1; /* an IPv6 address needs its brackets */
	}
	const char *p = colon + 1;
	size_t plen = strlen(p);
	unsigned long port =
	    plen >= 1 && plen <= 5 && strspn(p, "0123456789") == plen ? strtoul(p, NULL, 10) : 0;
	if (port < 1 || port > 65535)
		return -1;
	if (hlen == 0 || hlen >= sizeof(cfg->host) || memchr(h, '/', hlen) != NULL)
		return -1;
	memcpy(cfg->host, h, hlen);
	cfg->host[hlen] = '\0';
	memcpy(cfg->port, p, plen + 1);
	snprintf(cfg->authority, sizeof(cfg->authority), "%s", addr);
	return 0;
}

static void copy_err(char *errbuf, size_t errlen, const char *msg)
{
	if (errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s", msg);
}

int coffer_client_connect(coffer_client **out, const char *address,
                          const coffer_client_options *opts, char *errbuf, size_t errlen)
{
	coffer_client_options o;
	memset(&o, 0, sizeof(o));
	if (opts != NULL)
		o = *opts;
	if (out == NULL || address == NULL) {
		copy_err(errbuf, errlen, "no server address");
		return COFFER_EINVAL;
	}
	coffer_client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		copy_err(errbuf, errlen, "out of memory");
		return COFFER_ENOMEM;
	}
	int rc = COFFER_EINVAL;
	const char *why = NULL;
	if (parse_address(address, &c->cfg) != 0)
		why = "expected the server address as HOST:PORT, [IPv6]:PORT or unix:PATH";
	else if (o.token != NULL && (o.token[0] == '\0' || strlen(o.token) > TOKEN_MAX ||
	                             strpbrk(o.token, "\r\n") != NULL))
		why = "the token must be 1 to 512 characters on one line";
	else if (o.tls && c->cfg.path[0] != '\0')
		why = "TLS is not used over a Unix socket";
	else if ((o.ca_file != NULL && strlen(o.ca_file) >= sizeof(c->ca_file)) ||
	         (o.server_name != NULL && strlen(o.server_name) >= sizeof(c->server_name)))
		why = "CA file path or server name too long";
	if (why != NULL) {
		copy_err(errbuf, errlen, why);
		free(c);
		return rc;
	}
	if (o.token != NULL) {
		snprintf(c->token, sizeof(c->token), "%s", o.token);
		c->has_token = 1;
	}
	if (o.ca_file != NULL) {
		snprintf(c->ca_file, sizeof(c->ca_file), "%s", o.ca_file);
		c->cfg.ca_file = c->ca_file;
	}
	if (o.server_name != NULL) {
		snprintf(c->server_name, sizeof(c->server_name), "%s", o.server_name);
		c->cfg.server_name = c->server_name;
	}
	c->cfg.tls = o.tls != 0;
	c->declare = o.declare != 0;
	c->cfg.timeout_ms = o.timeout_ms != 0 ? o.timeout_ms : 30000;
	c->cfg.max_response = o.max_response != 0 ? o.max_response : COFFER_CLIENT_MAX_RESPONSE;
	rc = cc_conn_open(&c->conn, &c->cfg, c->errmsg, sizeof(c->errmsg));
	if (rc != COFFER_OK) {
		copy_err(errbuf, errlen, c->errmsg);
		coffer_client_close(c);
		return rc;
	}
	*out = c;
	return COFFER_OK;
}

void coffer_client_close(coffer_client *c)
{
	if (c == NULL)
		return;
	cc_conn_close(c->conn);
	explicit_bzero(c, sizeof(*c));
	free(c);
}

const char *coffer_client_errmsg(const coffer_client *c)
{
	return c != NULL ? c->errmsg : "no client";
}

int coffer_client_rc_from_status(int grpc_status, const char *message)
{
	return cc_rc_from_status(grpc_status, message);
}

/*
 * One call, on a fresh connection if the last one was closed or failed (a server restarted or
 * idle-timed out between calls). A call that failed on the way is not repeated: a put might have
 * been stored.
 */
static int call(coffer_client *c, const char *path, const pb_buf *req, pb_buf *resp)
{
	if (c->conn == NULL || !cc_conn_usable(c->conn)) {
		cc_conn_close(c->conn);
		c->conn = NULL;
		int rc = cc_conn_open(&c->conn, &c->cfg, c->errmsg, sizeof(c->errmsg));
		if (rc != COFFER_OK)
			return rc;
	}
	return cc_call(c->conn, path, req, c->has_token ? c->token : NULL, resp, c->errmsg,
	               sizeof(c->errmsg));
}

static int check_name(coffer_client *c, const char *name)
{
	if (name == NULL || coffer_client_name_ok(name) != 0)
		return set_err(
		    c, COFFER_EINVAL,
		    "invalid secret name: use 1-255 bytes of A-Z a-z 0-9 . _ -, starting "
		    "with a letter or digit");
	return COFFER_OK;
}

static int check_version(coffer_client *c, const char *version)
{
	if (version == NULL || version[0] == '\0' || strlen(version) >= COFFER_VERSION_MAX)
		return set_err(c, COFFER_EINVAL, "expected a version: 'latest' or a version id");
	return COFFER_OK;
}

static int protocol_error(coffer_client *c, const char *what)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "malformed %s from the server", what);
	return set_err(c, COFFER_EIO, msg);
}

/* SecretVersion {1: Secret {1: name}, 2: version}: the version id, checked. 0 or -1. */
static int read_secret_version(const uint8_t *p, size_t len, char ver[COFFER_VERSION_MAX])
{
	pb_reader r = {p, p + len};
	pb_field f;
	int k;
	ver[0] = '\0';
	while ((k = pb_next(&r, &f)) == 1)
		if (f.field == 2 && pb_str(&f, ver, COFFER_VERSION_MAX) != 0)
			return -1;
	if (k != 0 || ver[0] == '\0' || strspn(ver, "0123456789") != strlen(ver))
		return -1;
	return 0;
}

/*
 * Resources/Declare{id: {Policy}, policy: {principals: [{Service, ""}], actions: [action],
 * resources: [{Secret, name}]}}: what a Nitric SDK sends for secret(name).allow(...). The
 * empty service name means "the caller itself".
 */
#define RT_SERVICE    1
#define RT_POLICY     7
#define RT_SECRET     8
#define ACTION_PUT    400
#define ACTION_ACCESS 401

static int declare(coffer_client *c, const char *name, unsigned action)
{
	pb_buf id = {0}, who = {0}, res = {0}, pol = {0}, req = {0}, resp = {0};
	pb_put_varint(&id, 1, RT_POLICY);
	pb_put_varint(&who, 1, RT_SERVICE);
	pb_put_varint(&res, 1, RT_SECRET);
	pb_put_str(&res, 2, name);
	pb_put_msg(&pol, 1, &who);
	pb_put_varint(&pol, 2, action);
	pb_put_msg(&pol, 3, &res);
	pb_put_msg(&req, 1, &id);
	pb_put_msg(&req, 10, &pol);
	int rc = call(c, PATH_DECLARE, &req, &resp);
	pb_buf_free(&id);
	pb_buf_free(&who);
	pb_buf_free(&res);
	pb_buf_free(&pol);
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

/* --- put and access (Nitric) --------------------------------------------------------------- */

int coffer_client_put(coffer_client *c, const char *name, const void *value, size_t len,
                      char version_out[COFFER_VERSION_MAX])
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK)
		return rc;
	if (value == NULL || len == 0)
		return set_err(c, COFFER_EINVAL, "secret value must not be empty");
	if (len > COFFER_VALUE_HARD_MAX)
		return set_err(c, COFFER_ETOOBIG, "secret value over 1 MiB");
	if (c->declare && (rc = declare(c, name, ACTION_PUT)) != COFFER_OK)
		return rc;
	pb_buf sec = {0}, req = {0}, resp = {0};
	pb_put_str(&sec, 1, name);
	pb_put_msg(&req, 1, &sec);
	pb_put_bytes(&req, 2, value, len);
	rc = call(c, PATH_PUT, &req, &resp);
	if (rc == COFFER_OK) {
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		char ver[COFFER_VERSION_MAX] = "";
		int k;
		while ((k = pb_next(&r, &f)) == 1)
			if (f.field == 1 &&
			    (f.wire != 2 || read_secret_version(f.data, f.len, ver) != 0))
				k = -1;
		if (k != 0 || ver[0] == '\0')
			rc = protocol_error(c, "SecretPutResponse");
		else if (version_out != NULL)
			memcpy(version_out, ver, strlen(ver) + 1);
	}
	pb_buf_free(&sec);
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

int coffer_client_access(coffer_client *c, const char *name, const char *version,
                         coffer_client_value **out)
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK ||
	    (rc = check_version(c, version)) != COFFER_OK)
		return rc;
	if (c->declare && (rc = declare(c, name, ACTION_ACCESS)) != COFFER_OK)
		return rc;
	pb_buf sec = {0}, sv = {0}, req = {0}, resp = {0};
	pb_put_str(&sec, 1, name);
	pb_put_msg(&sv, 1, &sec);
	pb_put_str(&sv, 2, version);
	pb_put_msg(&req, 1, &sv);
	rc = call(c, PATH_ACCESS, &req, &resp);
	if (rc == COFFER_OK) {
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		const uint8_t *val = NULL;
		size_t vlen = 0;
		char ver[COFFER_VERSION_MAX] = "";
		int k;
		while ((k = pb_next(&r, &f)) == 1) {
			if (f.field == 1 &&
			    (f.wire != 2 || read_secret_version(f.data, f.len, ver) != 0))
				k = -1;
			else if (f.field == 2 && f.wire == 2) {
				val = f.data;
				vlen = f.len;
			}
			if (k != 1)
				break;
		}
		coffer_client_value *v = NULL;
		if (k != 0 || ver[0] == '\0' || val == NULL || vlen == 0) {
			rc = protocol_error(c, "SecretAccessResponse");
		} else if ((v = calloc(1, sizeof(*v))) == NULL ||
		           (v->data = malloc(vlen + 1)) == NULL) {
			free(v);
			rc = set_err(c, COFFER_ENOMEM, "out of memory");
		} else {
			memcpy(v->data, val, vlen);
			v->data[vlen] = '\0';
			v->len = vlen;
			memcpy(v->version, ver, sizeof(ver));
			*out = v;
		}
	}
	pb_buf_free(&sec);
	pb_buf_free(&sv);
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

const void *coffer_client_value_data(const coffer_client_value *v, size_t *len)
{
	if (len != NULL)
		*len = v->len;
	return v->data;
}

const char *coffer_client_value_version(const coffer_client_value *v)
{
	return v->version;
}

void coffer_client_value_free(coffer_client_value *v)
{
	if (v == NULL)
		return;
	if (v->data != NULL) {
		explicit_bzero(v->data, v->len + 1);
		free(v->data);
	}
	explicit_bzero(v, sizeof(*v));
	free(v);
}

/* --- the admin service --------------------------------------------------------------------- */

/* VersionInfo {1 version, 2 created_unix_ms, 3 state, 4 size, 5 key_id}. 0 or -1. */
static int read_version_info(const uint8_t *p, size_t len, coffer_version_info *info,
                             char id[COFFER_VERSION_MAX])
{
	pb_reader r = {p, p + len};
	pb_field f;
	int k, state = 0;
	memset(info, 0, sizeof(*info));
	id[0] = '\0';
	while ((k = pb_next(&r, &f)) == 1) {
		if (f.field == 1 && pb_str(&f, id, COFFER_VERSION_MAX) != 0)
			return -1;
		if (f.field >= 2 && f.field <= 5 && f.wire != 0)
			return -1;
		if (f.field == 2)
			info->created_unix_ms = (int64_t)f.v;
		else if (f.field == 3)
			state = (int)(f.v > 1000 ? 1000 : f.v);
		else if (f.field == 4)
			info->size = f.v > SIZE_MAX ? SIZE_MAX : (size_t)f.v;
		else if (f.field == 5)
			info->key_id = (uint32_t)f.v;
	}
	if (k != 0 || id[0] == '\0' || strspn(id, "0123456789") != strlen(id))
		return -1;
	/* VERSION_STATE_ENABLED 1, DESTROYED 2, DISABLED 3 (the proto's numbering; 0 is
	 * unspecified) */
	if (state < 1 || state > 3)
		return -1;
	info->state = state == 2   ? COFFER_STATE_DESTROYED
	              : state == 3 ? COFFER_STATE_DISABLED
	                           : COFFER_STATE_ENABLED;
	info->version = id;
	return 0;
}

int coffer_client_versions(coffer_client *c, const char *name,
                           int (*cb)(void *ctx, const coffer_version_info *info), void *ctx)
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK)
		return rc;
	if (cb == NULL)
		return set_err(c, COFFER_EINVAL, "no callback");
	pb_buf req = {0}, resp = {0};
	pb_put_str(&req, 1, name);
	rc = call(c, PATH_VERSIONS, &req, &resp);
	if (rc == COFFER_OK) {
		/* Check the whole answer before the first callback: all or nothing. */
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		coffer_version_info info;
		char id[COFFER_VERSION_MAX];
		int k;
		while ((k = pb_next(&r, &f)) == 1)
			if (f.field == 2 &&
			    (f.wire != 2 || read_version_info(f.data, f.len, &info, id) != 0))
				break;
		if (k != 0) {
			rc = protocol_error(c, "VersionsResponse");
		} else {
			r = (pb_reader){resp.data, resp.data + resp.len};
			while (rc == COFFER_OK && pb_next(&r, &f) == 1)
				if (f.field == 2 &&
				    read_version_info(f.data, f.len, &info, id) == 0)
					rc = cb(ctx, &info);
		}
	}
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

/* One List page: callbacks for each name, *more and the last name. */
static int list_page(coffer_client *c, const pb_buf *resp,
                     int (*cb)(void *ctx, const char *name, size_t nversions), void *ctx, int *more,
                     char last[COFFER_NAME_MAX + 1])
{
	pb_reader r = {resp->data, resp->data + resp->len};
	pb_field f;
	int k;
	*more = 0;
	/* Validate the page first (names valid and strictly increasing from the last page's last
	 * one), then call back: a bad page yields no callback at all. */
	char prev[COFFER_NAME_MAX + 1];
	for (int pass = 0; pass < 2; pass++) {
		r = (pb_reader){resp->data, resp->data + resp->len};
		memcpy(prev, last, sizeof(prev));
		while ((k = pb_next(&r, &f)) == 1) {
			if (f.field == 2) {
				*more = f.wire == 0 && f.v != 0;
				continue;
			}
			if (f.field != 1)
				continue;
			if (f.wire != 2)
				return protocol_error(c, "ListResponse");
			pb_reader s = {f.data, f.data + f.len};
			pb_field g;
			char name[COFFER_NAME_MAX + 1] = "";
			uint64_t n = 0;
			int j;
			while ((j = pb_next(&s, &g)) == 1) {
				if (g.field == 1 && pb_str(&g, name, sizeof(name)) != 0)
					j = -1;
				else if (g.field == 2)
					n = g.v;
				if (j != 1)
					break;
			}
			if (j != 0 || name[0] == '\0' || coffer_client_name_ok(name) != 0 ||
			    (prev[0] != '\0' && strcmp(name, prev) <= 0))
				return protocol_error(c, "ListResponse");
			memcpy(prev, name, strlen(name) + 1);
			if (pass == 1) {
				memcpy(last, name, strlen(name) + 1);
				int rc = cb(ctx, name, n > SIZE_MAX ? SIZE_MAX : (size_t)n);
				if (rc != 0)
					return rc;
			}
		}
		if (k != 0)
			return protocol_error(c, "ListResponse");
	}
	return COFFER_OK;
}

int coffer_client_list(coffer_client *c, int (*cb)(void *ctx, const char *name, size_t nversions),
                       void *ctx)
{
	char last[COFFER_NAME_MAX + 1] = "";
	int more = 1, rc = COFFER_OK;
	if (cb == NULL)
		return set_err(c, COFFER_EINVAL, "no callback");
	while (rc == COFFER_OK && more) {
		pb_buf req = {0}, resp = {0};
		char before[COFFER_NAME_MAX + 1];
		memcpy(before, last, sizeof(before));
		pb_put_str(&req, 1, last);
		rc = call(c, PATH_LIST, &req, &resp);
		if (rc == COFFER_OK)
			rc = list_page(c, &resp, cb, ctx, &more, last);
		/* A server that says "more" without moving on would loop forever. */
		if (rc == COFFER_OK && more && strcmp(before, last) == 0)
			rc = protocol_error(c, "ListResponse (more without names)");
		pb_buf_free(&req);
		pb_buf_free(&resp);
	}
	return rc;
}

int coffer_client_destroy(coffer_client *c, const char *name, const char *version,
                          char version_out[COFFER_VERSION_MAX])
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK ||
	    (rc = check_version(c, version)) != COFFER_OK)
		return rc;
	pb_buf req = {0}, resp = {0};
	pb_put_str(&req, 1, name);
	pb_put_str(&req, 2, version);
	rc = call(c, PATH_DESTROY, &req, &resp);
	if (rc == COFFER_OK) {
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		char ver[COFFER_VERSION_MAX] = "";
		int k;
		while ((k = pb_next(&r, &f)) == 1)
			if (f.field == 2 && pb_str(&f, ver, sizeof(ver)) != 0)
				break;
		if (k != 0 || ver[0] == '\0' || strspn(ver, "0123456789") != strlen(ver))
			rc = protocol_error(c, "DestroyResponse");
		else if (version_out != NULL)
			memcpy(version_out, ver, strlen(ver) + 1);
	}
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

/* --- the lifecycle (Admin/Disable, Enable, Label, Delete, Restore, AuditVerify) -------------- */

/* A numeric version id from a response field `field`; "" allowed when may_be_empty. */
static int read_version_field(coffer_client *c, const pb_buf *resp, uint32_t field,
                              int may_be_empty, char ver[COFFER_VERSION_MAX], const char *what)
{
	pb_reader r = {resp->data, resp->data + resp->len};
	pb_field f;
	int k;
	ver[0] = '\0';
	while ((k = pb_next(&r, &f)) == 1)
		if (f.field == field && (f.wire != 2 || pb_str(&f, ver, COFFER_VERSION_MAX) != 0)) {
			k = -1;
			break;
		}
	if (k != 0 || (ver[0] == '\0' && !may_be_empty) || strspn(ver, "0123456789") != strlen(ver))
		return protocol_error(c, what);
	return COFFER_OK;
}

static int state_call(coffer_client *c, const char *path, const char *name, const char *version,
                      char version_out[COFFER_VERSION_MAX])
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK ||
	    (rc = check_version(c, version)) != COFFER_OK)
		return rc;
	pb_buf req = {0}, resp = {0};
	char ver[COFFER_VERSION_MAX];
	pb_put_str(&req, 1, name);
	pb_put_str(&req, 2, version);
	rc = call(c, path, &req, &resp);
	if (rc == COFFER_OK)
		rc = read_version_field(c, &resp, 2, 0, ver, "StateResponse");
	if (rc == COFFER_OK && version_out != NULL)
		memcpy(version_out, ver, strlen(ver) + 1);
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

int coffer_client_disable(coffer_client *c, const char *name, const char *version,
                          char version_out[COFFER_VERSION_MAX])
{
	return state_call(c, PATH_DISABLE, name, version, version_out);
}

int coffer_client_enable(coffer_client *c, const char *name, const char *version,
                         char version_out[COFFER_VERSION_MAX])
{
	return state_call(c, PATH_ENABLE, name, version, version_out);
}

static int label_call(coffer_client *c, const char *name, const char *label, const char *version,
                      char version_out[COFFER_VERSION_MAX])
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK)
		return rc;
	if (label == NULL || label[0] == '\0' || strlen(label) > 63)
		return set_err(c, COFFER_EINVAL, "a label is 1-63 characters");
	if (version != NULL && (rc = check_version(c, version)) != COFFER_OK)
		return rc;
	pb_buf req = {0}, resp = {0};
	char ver[COFFER_VERSION_MAX];
	pb_put_str(&req, 1, name);
	pb_put_str(&req, 2, label);
	if (version != NULL)
		pb_put_str(&req, 3, version);
	else
		pb_put_varint(&req, 4, 1);
	rc = call(c, PATH_LABEL, &req, &resp);
	if (rc == COFFER_OK)
		rc = read_version_field(c, &resp, 3, version == NULL, ver, "LabelResponse");
	if (rc == COFFER_OK && version_out != NULL)
		memcpy(version_out, ver, strlen(ver) + 1);
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

int coffer_client_label_set(coffer_client *c, const char *name, const char *label,
                            const char *version, char version_out[COFFER_VERSION_MAX])
{
	if (version == NULL)
		return set_err(c, COFFER_EINVAL, "expected a version: an id, latest or a label");
	return label_call(c, name, label, version, version_out);
}

int coffer_client_label_delete(coffer_client *c, const char *name, const char *label)
{
	return label_call(c, name, label, NULL, NULL);
}

int coffer_client_labels(coffer_client *c, const char *name,
                         int (*cb)(void *ctx, const char *label, const char *version), void *ctx)
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK)
		return rc;
	if (cb == NULL)
		return set_err(c, COFFER_EINVAL, "no callback");
	pb_buf req = {0}, resp = {0};
	pb_put_str(&req, 1, name);
	rc = call(c, PATH_VERSIONS, &req, &resp);
	for (int pass = 0; rc == COFFER_OK && pass < 2; pass++) {
		/* Check every label first, then call back: all or nothing. */
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		int k;
		while (rc == COFFER_OK && (k = pb_next(&r, &f)) == 1) {
			if (f.field != 3)
				continue;
			char label[64] = "", ver[COFFER_VERSION_MAX] = "";
			pb_reader s = {f.data, f.data + f.len};
			pb_field g;
			int j = f.wire == 2 ? 1 : -1;
			while (j == 1 && (j = pb_next(&s, &g)) == 1) {
				if ((g.field == 1 && pb_str(&g, label, sizeof label) != 0) ||
				    (g.field == 2 && pb_str(&g, ver, sizeof ver) != 0))
					j = -1;
			}
			if (j != 0 || label[0] == '\0' || ver[0] == '\0' ||
			    strspn(ver, "0123456789") != strlen(ver)) {
				rc = protocol_error(c, "VersionsResponse (labels)");
				break;
			}
			if (pass == 1)
				rc = cb(ctx, label, ver);
		}
		if (rc == COFFER_OK && k != 0)
			rc = protocol_error(c, "VersionsResponse");
	}
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

int coffer_client_delete(coffer_client *c, const char *name, unsigned recovery_days, int force,
                         int64_t *purge_at_ms)
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK)
		return rc;
	pb_buf req = {0}, resp = {0};
	pb_put_str(&req, 1, name);
	if (!force && recovery_days > 0)
		pb_put_varint(&req, 2, recovery_days);
	if (force)
		pb_put_varint(&req, 3, 1);
	rc = call(c, PATH_DELETE, &req, &resp);
	if (rc == COFFER_OK) {
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		int64_t at = 0;
		int k;
		while ((k = pb_next(&r, &f)) == 1)
			if (f.field == 2) {
				if (f.wire != 0) {
					k = -1;
					break;
				}
				at = (int64_t)f.v;
			}
		if (k != 0 || at < 0)
			rc = protocol_error(c, "DeleteResponse");
		else if (purge_at_ms != NULL)
			*purge_at_ms = at;
	}
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

int coffer_client_restore(coffer_client *c, const char *name)
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK)
		return rc;
	pb_buf req = {0}, resp = {0};
	pb_put_str(&req, 1, name);
	rc = call(c, PATH_RESTORE, &req, &resp);
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

int coffer_client_audit_verify(coffer_client *c, uint64_t *entries)
{
	pb_buf req = {0}, resp = {0};
	int rc = call(c, PATH_AUDIT_VERIFY, &req, &resp);
	if (rc == COFFER_OK) {
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		uint64_t n = 0;
		int k;
		while ((k = pb_next(&r, &f)) == 1)
			if (f.field == 1) {
				if (f.wire != 0) {
					k = -1;
					break;
				}
				n = f.v;
			}
		if (k != 0)
			rc = protocol_error(c, "AuditVerifyResponse");
		else if (entries != NULL)
			*entries = n;
	}
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

/* A version id field: digits or "" (may_be_empty). 0 or -1. */
static int id_ok(const char *v, int may_be_empty)
{
	return (v[0] != '\0' || may_be_empty) && strspn(v, "0123456789") == strlen(v) ? 0 : -1;
}

int coffer_client_describe(coffer_client *c, const char *name, coffer_secret_info *out,
                           int (*label_cb)(void *ctx, const char *label, const char *version),
                           void *ctx)
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK)
		return rc;
	if (out == NULL)
		return set_err(c, COFFER_EINVAL, "no output");
	pb_buf req = {0}, resp = {0};
	pb_put_str(&req, 1, name);
	rc = call(c, PATH_DESCRIBE, &req, &resp);
	for (int pass = 0; rc == COFFER_OK && pass < 2; pass++) {
		/* Check the whole answer, then fill and call back. */
		coffer_secret_info in;
		memset(&in, 0, sizeof in);
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		int k, bad = 0;
		while (!bad && rc == COFFER_OK && (k = pb_next(&r, &f)) == 1) {
			int str = f.field == 2 || f.field == 3 || (f.field >= 6 && f.field <= 8) ||
			          f.field == 11;
			if ((str && f.wire != 2) ||
			    (!str && f.field <= 11 && f.field != 1 && f.wire != 0)) {
				bad = 1;
				break;
			}
			switch (f.field) {
			case 2:
				bad = pb_str(&f, in.description, sizeof in.description) != 0;
				break;
			case 3:
				bad = pb_str(&f, in.tags, sizeof in.tags) != 0;
				break;
			case 4:
				in.created_unix_ms = (int64_t)f.v;
				break;
			case 5:
				in.updated_unix_ms = (int64_t)f.v;
				break;
			case 6:
				bad = pb_str(&f, in.current_version, COFFER_VERSION_MAX) != 0 ||
				      id_ok(in.current_version, 1) != 0;
				break;
			case 7:
				bad = pb_str(&f, in.previous_version, COFFER_VERSION_MAX) != 0 ||
				      id_ok(in.previous_version, 1) != 0;
				break;
			case 8:
				bad = pb_str(&f, in.last_version, COFFER_VERSION_MAX) != 0 ||
				      id_ok(in.last_version, 1) != 0;
				break;
			case 9:
				in.max_versions = f.v;
				break;
			case 10:
				in.purge_at_unix_ms = (int64_t)f.v;
				break;
			case 11: {
				char label[64] = "", ver[COFFER_VERSION_MAX] = "";
				pb_reader s2 = {f.data, f.data + f.len};
				pb_field g;
				int j;
				while ((j = pb_next(&s2, &g)) == 1)
					if ((g.field == 1 &&
					     pb_str(&g, label, sizeof label) != 0) ||
					    (g.field == 2 && pb_str(&g, ver, sizeof ver) != 0)) {
						j = -1;
						break;
					}
				bad = j != 0 || label[0] == '\0' || id_ok(ver, 0) != 0;
				if (!bad) {
					in.nlabels++;
					if (pass == 1 && label_cb != NULL)
						rc = label_cb(ctx, label, ver);
				}
				break;
			}
			default:
				break;
			}
		}
		if (rc == COFFER_OK && (bad || k != 0))
			rc = protocol_error(c, "DescribeResponse");
		if (rc == COFFER_OK && pass == 1)
			*out = in;
	}
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

int coffer_client_put_ex(coffer_client *c, const char *name, const void *value, size_t len,
                         const coffer_put_opts *opts, char version_out[COFFER_VERSION_MAX],
                         int *replayed)
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK)
		return rc;
	if (value == NULL && len > 0)
		return set_err(c, COFFER_EINVAL, "no value");
	if (opts != NULL && opts->request_id != NULL &&
	    (opts->request_id_len == 0 || opts->request_id_len > COFFER_REQUEST_ID_MAX))
		return set_err(c, COFFER_EINVAL, "a request id is 1 to 255 bytes");
	pb_buf req = {0}, resp = {0};
	pb_put_str(&req, 1, name);
	pb_put_bytes(&req, 2, value, len);
	if (opts != NULL && (opts->flags & COFFER_PUT_IF_VERSION)) {
		pb_put_varint(&req, 3, 1);
		pb_put_varint(&req, 4, opts->if_version);
	}
	if (opts != NULL && opts->request_id != NULL)
		pb_put_bytes(&req, 5, opts->request_id, opts->request_id_len);
	rc = call(c, PATH_ADMIN_PUT, &req, &resp);
	if (rc == COFFER_OK) {
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		char ver[COFFER_VERSION_MAX] = "";
		int k, rep = 0;
		while ((k = pb_next(&r, &f)) == 1) {
			if (f.field == 2 && (f.wire != 2 || pb_str(&f, ver, sizeof ver) != 0)) {
				k = -1;
				break;
			}
			if (f.field == 3)
				rep = f.v != 0;
		}
		if (k != 0 || id_ok(ver, 0) != 0) {
			rc = protocol_error(c, "PutResponse");
		} else {
			if (version_out != NULL)
				memcpy(version_out, ver, strlen(ver) + 1);
			if (replayed != NULL)
				*replayed = rep;
		}
	}
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

int coffer_client_list_page(coffer_client *c, const char *prefix, size_t limit,
                            const char *page_token,
                            int (*cb)(void *ctx, const char *name, size_t nversions), void *ctx,
                            char next_token[COFFER_PAGE_TOKEN_MAX])
{
	if (cb == NULL || next_token == NULL)
		return set_err(c, COFFER_EINVAL, "no callback");
	if (limit == 0 || limit > COFFER_PAGE_SIZE_MAX)
		return set_err(c, COFFER_EINVAL, "a page is 1 to 1000 names");
	pb_buf req = {0}, resp = {0};
	pb_put_varint(&req, 2, limit);
	pb_put_varint(&req, 5, 1); /* paged: answer next_page_token */
	if (prefix != NULL && prefix[0] != '\0')
		pb_put_str(&req, 3, prefix);
	if (page_token != NULL && page_token[0] != '\0')
		pb_put_str(&req, 4, page_token);
	int rc = call(c, PATH_LIST, &req, &resp);
	char last[COFFER_NAME_MAX + 1] = "";
	int more = 0;
	if (rc == COFFER_OK)
		rc = list_page(c, &resp, cb, ctx, &more, last);
	if (rc == COFFER_OK) {
		pb_reader r = {resp.data, resp.data + resp.len};
		pb_field f;
		int k;
		next_token[0] = '\0';
		while ((k = pb_next(&r, &f)) == 1)
			if (f.field == 3 &&
			    (f.wire != 2 || pb_str(&f, next_token, COFFER_PAGE_TOKEN_MAX) != 0)) {
				k = -1;
				break;
			}
		if (k != 0)
			rc = protocol_error(c, "ListResponse");
	}
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

int coffer_client_set_info(coffer_client *c, const char *name, const char *description,
                           const char *tags, int64_t max_versions)
{
	int rc;
	if ((rc = check_name(c, name)) != COFFER_OK)
		return rc;
	pb_buf req = {0}, resp = {0};
	pb_put_str(&req, 1, name);
	if (description != NULL) {
		pb_put_varint(&req, 2, 1);
		pb_put_str(&req, 3, description);
	}
	if (tags != NULL) {
		pb_put_varint(&req, 4, 1);
		pb_put_str(&req, 5, tags);
	}
	if (max_versions >= 0) {
		pb_put_varint(&req, 6, 1);
		pb_put_varint(&req, 7, (uint64_t)max_versions);
	}
	rc = call(c, PATH_META, &req, &resp);
	pb_buf_free(&req);
	pb_buf_free(&resp);
	return rc;
}

/* AuditEntry into e (strings in bufs). 0 or -1. */
typedef struct audit_bufs {
	char chain[128], principal[300], action[64], secret[COFFER_NAME_MAX + 1],
	    version[COFFER_VERSION_MAX], error[512], request_hash[160];
} audit_bufs;

static int read_audit_entry(const uint8_t *p, size_t len, coffer_audit_entry *e, audit_bufs *b)
{
	pb_reader r = {p, p + len};
	pb_field f;
	int k;
	memset(e, 0, sizeof(*e));
	memset(b, 0, sizeof(*b));
	while ((k = pb_next(&r, &f)) == 1) {
		char *dst = NULL;
		size_t dlen = 0;
		switch (f.field) {
		case 1:
			e->id = f.v;
			break;
		case 2:
			dst = b->chain;
			dlen = sizeof b->chain;
			break;
		case 3:
			e->seq = f.v;
			break;
		case 4:
			e->time_unix_ms = (int64_t)f.v;
			break;
		case 5:
			dst = b->principal;
			dlen = sizeof b->principal;
			break;
		case 6:
			dst = b->action;
			dlen = sizeof b->action;
			break;
		case 7:
			dst = b->secret;
			dlen = sizeof b->secret;
			break;
		case 8:
			dst = b->version;
			dlen = sizeof b->version;
			break;
		case 9: /* sint32: zigzag */
			e->outcome = (int)((f.v >> 1) ^ (~(f.v & 1) + 1));
			break;
		case 10:
			dst = b->error;
			dlen = sizeof b->error;
			break;
		case 11:
			dst = b->request_hash;
			dlen = sizeof b->request_hash;
			break;
		default:
			break;
		}
		if (dst != NULL && (f.wire != 2 || pb_str(&f, dst, dlen) != 0))
			return -1;
		if (dst == NULL && f.field >= 1 && f.field <= 11 && f.wire != 0)
			return -1;
	}
	if (k != 0 || e->id == 0 || b->action[0] == '\0')
		return -1;
	e->chain = b->chain;
	e->principal = b->principal;
	e->action = b->action;
	e->secret = b->secret;
	e->version = b->version;
	e->error = b->error;
	e->request_hash = b->request_hash;
	return 0;
}

int coffer_client_audit(coffer_client *c, int64_t since_unix_ms, const char *secret,
                        int (*cb)(void *ctx, const coffer_audit_entry *e), void *ctx)
{
	int rc = COFFER_OK, more = 1;
	uint64_t after = 0;
	if (cb == NULL)
		return set_err(c, COFFER_EINVAL, "no callback");
	if (secret != NULL && (rc = check_name(c, secret)) != COFFER_OK)
		return rc;
	audit_bufs *b = malloc(sizeof *b);
	if (b == NULL)
		return set_err(c, COFFER_ENOMEM, "out of memory");
	while (rc == COFFER_OK && more) {
		pb_buf req = {0}, resp = {0};
		if (since_unix_ms > 0)
			pb_put_varint(&req, 1, (uint64_t)since_unix_ms);
		if (secret != NULL)
			pb_put_str(&req, 2, secret);
		if (after > 0)
			pb_put_varint(&req, 3, after);
		rc = call(c, PATH_AUDIT, &req, &resp);
		uint64_t before = after;
		more = 0;
		for (int pass = 0; rc == COFFER_OK && pass < 2; pass++) {
			/* Check the page (ids increasing) first, then call back. */
			pb_reader r = {resp.data, resp.data + resp.len};
			pb_field f;
			coffer_audit_entry e;
			uint64_t last = before;
			int k;
			while (rc == COFFER_OK && (k = pb_next(&r, &f)) == 1) {
				if (f.field == 2) {
					more = f.wire == 0 && f.v != 0;
					continue;
				}
				if (f.field != 1)
					continue;
				if (f.wire != 2 || read_audit_entry(f.data, f.len, &e, b) != 0 ||
				    e.id <= last) {
					rc = protocol_error(c, "AuditResponse");
					break;
				}
				last = e.id;
				if (pass == 1)
					rc = cb(ctx, &e);
			}
			if (rc == COFFER_OK && k != 0)
				rc = protocol_error(c, "AuditResponse");
			if (pass == 1)
				after = last;
		}
		if (rc == COFFER_OK && more && after == before)
			rc = protocol_error(c, "AuditResponse (more without entries)");
		pb_buf_free(&req);
		pb_buf_free(&resp);
	}
	free(b);
	return rc;
}
