/*
 * cmds_life.c -- the handlers of the lifecycle commands (docs/lifecycle.md): disable, enable,
 * label, delete, restore, describe, meta, audit. Like cmds.c, each goes through c->tgt's ops
 * only, prints its result once the command succeeded, and its errors through cli_fail().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

/* A target without the op (a server that lacks it): one clear error. */
static int no_op(cli *c, const char *what)
{
	return cli_fail(c, COFFER_EMISUSE, "%s is not available against this server", what);
}

static int set_state(cli *c, int enable)
{
	const char *verb = enable ? "enable" : "disable";
	if (strchr(c->args[0], '@') == NULL)
		return cli_usage_error(c, "%s wants NAME@VERSION (VERSION: an id%s or a label)",
		                       verb, enable ? "" : ", latest");
	char name[COFFER_NAME_MAX + 2], ver[COFFER_VERSION_MAX] = "";
	const char *version = cli_split_ref(c->args[0], name);
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	if (c->tgt->ops->set_state == NULL)
		return no_op(c, verb);
	int r = c->tgt->ops->set_state(c->tgt, name, version, enable, ver);
	if (r != COFFER_OK)
		return cli_fail(c, r, NULL);
	const char *state = enable ? "enabled" : "disabled";
	if (c->json)
		return cli_emit(
		    c, json_pack("{s:s,s:s,s:s}", "name", name, "version", ver, "state", state));
	fprintf(stderr, "coffer: %s %s@%s\n", state, name, ver);
	return 0;
}

int cmd_disable(cli *c)
{
	return set_state(c, 0);
}

int cmd_enable(cli *c)
{
	return set_state(c, 1);
}

int cmd_label(cli *c)
{
	const char *name = c->args[0], *label = c->args[1];
	int del = cli_has(c, O_DELETE_LABEL);
	if (del && c->nargs == 3)
		return cli_usage_error(c, "label --delete takes NAME LABEL, no version");
	if (!del && c->nargs != 3)
		return cli_usage_error(c,
		                       "label wants NAME LABEL VERSION (or NAME LABEL --delete)");
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	char ver[COFFER_VERSION_MAX] = "";
	int r;
	if (del) {
		if (c->tgt->ops->label_delete == NULL)
			return no_op(c, "label --delete");
		r = c->tgt->ops->label_delete(c->tgt, name, label);
	} else {
		if (c->tgt->ops->label_set == NULL)
			return no_op(c, "label");
		r = c->tgt->ops->label_set(c->tgt, name, label, c->args[2], ver);
	}
	if (r != COFFER_OK)
		return cli_fail(c, r, NULL);
	if (c->json)
		return cli_emit(
		    c,
		    del ? json_pack("{s:s,s:s,s:b}", "name", name, "label", label, "deleted", 1)
		        : json_pack("{s:s,s:s,s:s}", "name", name, "label", label, "version", ver));
	if (del)
		fprintf(stderr, "coffer: removed label %s of %s\n", label, name);
	else
		fprintf(stderr, "coffer: %s@%s is %s@%s\n", name, label, name, ver);
	return 0;
}

int cmd_delete(cli *c)
{
	const char *name = c->args[0];
	int force = cli_has(c, O_FORCE);
	if (force && cli_has(c, O_RECOVERY_DAYS))
		return cli_usage_error(c, "give either --recovery-days or --force");
	unsigned days = force                         ? 0
	                : cli_has(c, O_RECOVERY_DAYS) ? (unsigned)c->num[O_RECOVERY_DAYS]
	                                              : COFFER_RECOVERY_DAYS;
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	if (c->tgt->ops->del == NULL)
		return no_op(c, "delete");
	int64_t at = 0;
	int r = c->tgt->ops->del(c->tgt, name, days, &at);
	if (r != COFFER_OK)
		return cli_fail(c, r, NULL);
	if (force)
		at = 0;
	char when[32] = "";
	if (at > 0)
		cli_format_time(at, when, sizeof when, 1);
	if (c->json) {
		json_t *j =
		    json_pack("{s:s,s:I}", "name", name, "purge_at_unix_ms", (json_int_t)at);
		if (j != NULL)
			json_object_set_new(j, "purge_at",
			                    at > 0 ? json_string(when) : json_null());
		return cli_emit(c, j);
	}
	if (force)
		fprintf(stderr, "coffer: destroyed %s and every version of it for good\n", name);
	else
		fprintf(stderr,
		        "coffer: %s is scheduled for deletion at %s (coffer restore %s undoes it "
		        "until then)\n",
		        name, when, name);
	return 0;
}

int cmd_restore(cli *c)
{
	const char *name = c->args[0];
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	if (c->tgt->ops->restore == NULL)
		return no_op(c, "restore");
	int r = c->tgt->ops->restore(c->tgt, name);
	if (r != COFFER_OK)
		return cli_fail(c, r, NULL);
	if (c->json)
		return cli_emit(c, json_pack("{s:s,s:b}", "name", name, "restored", 1));
	fprintf(stderr, "coffer: restored %s\n", name);
	return 0;
}

/* "K=V\n" lines into an object. */
static json_t *tags_json(const char *tags)
{
	json_t *o = json_object();
	for (const char *p = tags; o != NULL && *p != '\0';) {
		size_t len = strcspn(p, "\n");
		const char *eq = memchr(p, '=', len);
		if (eq != NULL) {
			char key[64];
			size_t kl =
			    (size_t)(eq - p) < sizeof key - 1 ? (size_t)(eq - p) : sizeof key - 1;
			memcpy(key, p, kl);
			key[kl] = '\0';
			json_object_set_new(o, key,
			                    json_stringn(eq + 1, (size_t)(p + len - eq - 1)));
		}
		p += len + (p[len] == '\n');
	}
	return o;
}

int cmd_describe(cli *c)
{
	const char *name = c->args[0];
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	if (c->tgt->ops->describe == NULL)
		return no_op(c, "describe");
	coffer_secret_info *in = calloc(1, sizeof *in);
	if (in == NULL)
		return cli_fail(c, COFFER_ENOMEM, NULL);
	tgt_label *ls = NULL;
	size_t nl = 0;
	int r = c->tgt->ops->describe(c->tgt, name, in);
	if (r == COFFER_OK && c->tgt->ops->labels != NULL && in->purge_at_unix_ms == 0)
		r = c->tgt->ops->labels(c->tgt, name, &ls, &nl);
	if (r != COFFER_OK) {
		free(in);
		return cli_fail(c, r, NULL);
	}
	char created[32], updated[32], purge[32] = "";
	cli_format_time(in->created_unix_ms, created, sizeof created, 1);
	cli_format_time(in->updated_unix_ms, updated, sizeof updated, 1);
	if (in->purge_at_unix_ms > 0)
		cli_format_time(in->purge_at_unix_ms, purge, sizeof purge, 1);
	if (c->json) {
		json_t *labels = json_object();
		for (size_t i = 0; i < nl; i++)
			json_object_set_new(labels, ls[i].label, json_string(ls[i].version));
		json_t *j = json_pack(
		    "{s:s,s:s,s:o,s:s,s:I,s:s,s:I,s:s,s:s,s:s,s:I,s:o,s:b,s:I}", "name", name,
		    "description", in->description, "tags", tags_json(in->tags), "created", created,
		    "created_unix_ms", (json_int_t)in->created_unix_ms, "updated", updated,
		    "updated_unix_ms", (json_int_t)in->updated_unix_ms, "current_version",
		    in->current_version, "previous_version", in->previous_version, "last_version",
		    in->last_version, "max_versions", (json_int_t)in->max_versions, "labels",
		    labels, "deleted", in->purge_at_unix_ms > 0, "purge_at_unix_ms",
		    (json_int_t)in->purge_at_unix_ms);
		free(in);
		free(ls);
		return cli_emit(c, j);
	}
	printf("name:             %s\n", name);
	printf("description:      %s\n", in->description);
	printf("tags:            ");
	if (in->tags[0] == '\0')
		printf(" -");
	for (const char *p = in->tags; *p != '\0';) {
		size_t len = strcspn(p, "\n");
		printf(" %.*s", (int)len, p);
		p += len + (p[len] == '\n');
	}
	printf("\ncreated:          %s\n", created);
	printf("updated:          %s\n", updated);
	printf("current version:  %s\n", in->current_version[0] ? in->current_version : "-");
	printf("previous version: %s\n", in->previous_version[0] ? in->previous_version : "-");
	printf("last version:     %s\n", in->last_version[0] ? in->last_version : "-");
	if (in->max_versions > 0)
		printf("max versions:     %llu\n", (unsigned long long)in->max_versions);
	else
		printf("max versions:     no limit\n");
	printf("labels:          ");
	if (nl == 0)
		printf(" -");
	for (size_t i = 0; i < nl; i++)
		printf(" %s=%s", ls[i].label, ls[i].version);
	printf("\n");
	if (purge[0] != '\0')
		printf("deleted:          scheduled; destroyed for good at %s\n", purge);
	free(in);
	free(ls);
	return 0;
}

/* Merge --tag K=V / --tag K (remove) into the secret's "K=V\n" lines. */
static int merge_tags(cli *c, const char *have, const char **given, size_t ngiven, char *out,
                      size_t outlen)
{
	char keys[COFFER_TAGS_MAX + 64][64];
	const char *vals[COFFER_TAGS_MAX + 64];
	size_t vlens[COFFER_TAGS_MAX + 64], n = 0;
	for (const char *p = have; *p != '\0';) {
		size_t len = strcspn(p, "\n");
		const char *eq = memchr(p, '=', len);
		if (eq != NULL && (size_t)(eq - p) < 64 && n < COFFER_TAGS_MAX) {
			snprintf(keys[n], 64, "%.*s", (int)(eq - p), p);
			vals[n] = eq + 1;
			vlens[n++] = (size_t)(p + len - eq - 1);
		}
		p += len + (p[len] == '\n');
	}
	for (size_t g = 0; g < ngiven; g++) {
		const char *eq = strchr(given[g], '=');
		size_t kl = eq != NULL ? (size_t)(eq - given[g]) : strlen(given[g]);
		if (kl == 0 || kl > 63)
			return cli_usage_error(c,
			                       "--tag wants KEY=VALUE or KEY (a key of 1-63 "
			                       "characters), got '%.60s'",
			                       given[g]);
		size_t k = 0;
		while (k < n && !(strlen(keys[k]) == kl && memcmp(keys[k], given[g], kl) == 0))
			k++;
		if (eq == NULL) { /* remove */
			if (k < n) {
				memmove(&keys[k], &keys[k + 1], (n - k - 1) * sizeof keys[0]);
				memmove(&vals[k], &vals[k + 1], (n - k - 1) * sizeof vals[0]);
				memmove(&vlens[k], &vlens[k + 1], (n - k - 1) * sizeof vlens[0]);
				n--;
			}
			continue;
		}
		if (k == n) {
			if (n == sizeof vals / sizeof vals[0])
				return cli_usage_error(c, "too many tags");
			snprintf(keys[n++], 64, "%.*s", (int)kl, given[g]);
		}
		vals[k] = eq + 1;
		vlens[k] = strlen(eq + 1);
	}
	size_t off = 0;
	out[0] = '\0';
	for (size_t k = 0; k < n; k++) {
		int w = snprintf(out + off, outlen - off, "%s%s=%.*s", k ? "\n" : "", keys[k],
		                 (int)vlens[k], vals[k]);
		if (w < 0 || (size_t)w >= outlen - off)
			return cli_usage_error(c, "the tags are too long together");
		off += (size_t)w;
	}
	return 0;
}

int cmd_meta(cli *c)
{
	const char *name = c->args[0];
	const char *desc = cli_opt(c, O_DESCRIPTION);
	const char *given[COFFER_TAGS_MAX + 1];
	size_t ngiven = cli_opt_all(c, O_TAG, given, COFFER_TAGS_MAX + 1);
	int maxv = cli_has(c, O_MAX_VERSIONS);
	if (desc == NULL && ngiven == 0 && !maxv)
		return cli_usage_error(c, "meta wants --description, --tag or --max-versions");
	if (ngiven > COFFER_TAGS_MAX)
		return cli_usage_error(c, "at most %d --tag", COFFER_TAGS_MAX);
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	if (c->tgt->ops->set_info == NULL || c->tgt->ops->describe == NULL)
		return no_op(c, "meta");
	coffer_secret_info *in = calloc(1, sizeof *in);
	char *tags = calloc(1, 8192);
	int r = in == NULL || tags == NULL ? COFFER_ENOMEM : COFFER_OK;
	if (r == COFFER_OK && ngiven > 0)
		r = c->tgt->ops->describe(c->tgt, name, in);
	if (r == COFFER_OK && ngiven > 0 &&
	    (rc = merge_tags(c, in->tags, given, ngiven, tags, 8192)) != 0) {
		free(in);
		free(tags);
		return rc;
	}
	if (r == COFFER_OK)
		r = c->tgt->ops->set_info(c->tgt, name, desc, ngiven > 0 ? tags : NULL,
		                          maxv ? (int64_t)c->num[O_MAX_VERSIONS] : -1);
	if (r == COFFER_OK)
		r = c->tgt->ops->describe(c->tgt, name, in);
	free(tags);
	if (r != COFFER_OK) {
		free(in);
		return cli_fail(c, r, NULL);
	}
	json_t *j = NULL;
	if (c->json)
		j = json_pack("{s:s,s:s,s:o,s:I}", "name", name, "description", in->description,
		              "tags", tags_json(in->tags), "max_versions",
		              (json_int_t)in->max_versions);
	free(in);
	if (c->json)
		return cli_emit(c, j);
	fprintf(stderr, "coffer: updated %s\n", name);
	return 0;
}

/* --since: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or Unix seconds; -1 if none of them. */
static int64_t parse_since(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0') {
		memset(&tm, 0, sizeof tm);
		end = strptime(s, "%Y-%m-%d", &tm);
	}
	if (end != NULL && *end == '\0')
		return (int64_t)timegm(&tm) * 1000;
	int64_t v = 0;
	size_t i = 0;
	for (; s[i] >= '0' && s[i] <= '9' && i < 12; i++)
		v = v * 10 + (s[i] - '0');
	return i > 0 && s[i] == '\0' ? v * 1000 : -1;
}

typedef struct audit_rows {
	json_t *arr;
	int header;
} audit_rows;

static int audit_row(void *ctx, const coffer_audit_entry *e)
{
	audit_rows *r = ctx;
	char when[32];
	cli_format_time(e->time_unix_ms, when, sizeof when, 1);
	if (r->arr != NULL) {
		json_t *o = json_pack(
		    "{s:I,s:s,s:I,s:s,s:I,s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "id", (json_int_t)e->id,
		    "chain", e->chain ? e->chain : "", "seq", (json_int_t)e->seq, "time", when,
		    "time_unix_ms", (json_int_t)e->time_unix_ms, "principal",
		    e->principal ? e->principal : "", "action", e->action, "secret",
		    e->secret ? e->secret : "", "version", e->version ? e->version : "", "outcome",
		    e->outcome, "error", e->error ? e->error : "", "request_hash",
		    e->request_hash ? e->request_hash : "");
		return o == NULL || json_array_append_new(r->arr, o) != 0 ? COFFER_ENOMEM : 0;
	}
	if (!r->header) {
		printf("%-8s %-20s %-20s %-10s %-24s %-8s %s\n", "ID", "TIME (UTC)", "PRINCIPAL",
		       "ACTION", "SECRET", "VERSION", "OUTCOME");
		r->header = 1;
	}
	printf("%-8llu %-20s %-20s %-10s %-24s %-8s %s\n", (unsigned long long)e->id, when,
	       e->principal && e->principal[0] ? e->principal : "-", e->action,
	       e->secret && e->secret[0] ? e->secret : "-",
	       e->version && e->version[0] ? e->version : "-",
	       e->outcome == 0           ? "ok"
	       : e->error && e->error[0] ? e->error
	                                 : "failed");
	return 0;
}

int cmd_audit(cli *c)
{
	int verify = c->nargs == 1;
	if (verify && strcmp(c->args[0], "verify") != 0)
		return cli_usage_error(c, "audit takes no argument, or 'verify'");
	if (verify && (cli_has(c, O_SINCE) || cli_has(c, O_SECRET)))
		return cli_usage_error(c,
		                       "audit verify checks the whole log: no --since or --secret");
	int64_t since = 0;
	const char *s = cli_opt(c, O_SINCE);
	if (s != NULL && (since = parse_since(s)) < 0)
		return cli_usage_error(c,
		                       "--since wants YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix "
		                       "seconds, got '%.60s'",
		                       s);
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	if (verify) {
		if (c->tgt->ops->audit_verify == NULL)
			return no_op(c, "audit verify");
		uint64_t entries = 0, bad = 0;
		char err[512] = "";
		int r = c->tgt->ops->audit_verify(c->tgt, &entries, &bad, err, sizeof err);
		if (r == COFFER_EINTEGRITY && err[0] == '\0')
			return cli_fail(c, r, NULL); /* the server's message names the entry */
		if (r == COFFER_EINTEGRITY)
			return cli_fail(c, r, "audit log broken at entry %llu: %s",
			                (unsigned long long)bad, err[0] ? err : "MAC mismatch");
		if (r != COFFER_OK)
			return cli_fail(c, r, NULL);
		if (c->json)
			return cli_emit(
			    c, json_pack("{s:b,s:I}", "ok", 1, "entries", (json_int_t)entries));
		printf("audit log ok: %llu entries, every chain intact\n",
		       (unsigned long long)entries);
		return 0;
	}
	if (c->tgt->ops->audit_list == NULL)
		return no_op(c, "audit");
	/* Text rows are printed as they come (the log can be long); JSON only at the end. */
	audit_rows r = {c->json ? json_array() : NULL, 0};
	int e = c->tgt->ops->audit_list(c->tgt, since, cli_opt(c, O_SECRET), audit_row, &r);
	if (e != COFFER_OK) {
		json_decref(r.arr);
		return cli_fail(c, e, NULL);
	}
	if (!c->json && !r.header)
		printf("%-8s %-20s %-20s %-10s %-24s %-8s %s\n", "ID", "TIME (UTC)", "PRINCIPAL",
		       "ACTION", "SECRET", "VERSION", "OUTCOME");
	return c->json ? cli_emit(c, r.arr) : 0;
}
