/*
 * copy_tool -- what tests/backup/test_copy.sh drives, through the public API only:
 *   copy_tool fill LOC KEYFILE NSECRETS NVERSIONS   secrets with NVERSIONS versions each, then
 *       states (destroyed, disabled), labels, description, tags, retention, declarations and
 *       audit entries, all varied by secret
 *   copy_tool dump LOC KEYFILE       everything a copy must keep, one canonical line each (a
 *       value as its BLAKE2b hash; disabled ones enabled for a moment to read them? no: by state)
 *   copy_tool copy SRC SKEY DST DKEY [KILL_AFTER]   coffer_copy; with KILL_AFTER, SIGKILL itself
 *       after that many secrets (a kill -9 at a known point, between two secrets' commits)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "coffer.h"

static coffer_store *open_store(const char *loc, const char *key)
{
	coffer_options o = {.key_file = key != NULL && key[0] != '\0' ? key : NULL};
	coffer_store *st = NULL;
	char err[512];
	int rc = coffer_open(&st, loc, &o, err, sizeof err);
	if (rc != COFFER_OK) {
		fprintf(stderr, "copy_tool: open %s: %s\n", loc, err);
		exit(1);
	}
	return st;
}

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		int rc_ = (x);                                                                     \
		if (rc_ != COFFER_OK) {                                                            \
			fprintf(stderr, "copy_tool: %s: %s (%s)\n", #x, coffer_strerror(rc_),      \
			        coffer_errmsg(st));                                                \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static int fill(const char *loc, const char *key, int ns, int nv)
{
	coffer_store *st = open_store(loc, key);
	char name[64], val[128], vo[COFFER_VERSION_MAX];
	for (int s = 0; s < ns; s++) {
		snprintf(name, sizeof name, "sec-%04d", s);
		coffer_secret *sec = NULL;
		CHECK(coffer_secret_ref(st, name, COFFER_PUT | COFFER_ACCESS, &sec));
		for (int v0 = 0; v0 < nv;) {
			coffer_put_item items[100];
			char vals[100][64];
			int k = 0;
			for (; k < 100 && v0 < nv; k++, v0++) {
				snprintf(vals[k], sizeof vals[k], "value-%d-%d-%u", s, v0 + 1,
				         (unsigned)randombytes_uniform(1000000));
				items[k] = (coffer_put_item){
				    .secret = sec, .value = vals[k], .len = strlen(vals[k])};
			}
			CHECK(coffer_put_batch(st, items, (size_t)k));
		}
		if (nv >= 3 && s % 3 == 0)
			CHECK(coffer_destroy(sec, "1", vo));
		if (nv >= 4 && s % 4 == 1)
			CHECK(coffer_disable(sec, "2", vo));
		if (nv >= 2 && s % 5 == 2)
			CHECK(coffer_label_set(sec, "stable", "2", vo));
		if (s % 7 == 3)
			CHECK(coffer_label_set(sec, "prod", "latest", vo));
		if (s % 2 == 0) {
			snprintf(val, sizeof val, "the secret number %d", s);
			CHECK(
			    coffer_set_info(sec, val, s % 4 == 0 ? "team=core\nenv=prod\n" : NULL));
		}
		if (s % 6 == 5)
			CHECK(coffer_set_max_versions(sec, (uint64_t)nv + 10));
		coffer_secret_free(sec);
	}
	coffer_declaration d[2] = {{"svc-a", "sec-0000", COFFER_DECL_ACCESS, 0},
	                           {"svc-b", "sec-0001", COFFER_DECL_PUT | COFFER_DECL_ACCESS, 0}};
	CHECK(coffer_declare(st, d, 2));
	CHECK(coffer_audit_append(st, "svc-a", "access", "sec-0000", "latest", COFFER_OK, NULL, 0));
	coffer_close(st);
	return 0;
}

typedef struct vrow {
	char version[COFFER_VERSION_MAX];
	long long created;
	int state;
	size_t size;
} vrow;

typedef struct dump_ctx {
	vrow *v;
	size_t n, cap;
} dump_ctx;

/* Collected first: the handle is busy during the listing. */
static int dump_version(void *ctx, const coffer_version_info *vi)
{
	dump_ctx *d = ctx;
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 64;
		d->v = realloc(d->v, d->cap * sizeof *d->v);
		if (d->v == NULL)
			exit(1);
	}
	vrow *r = &d->v[d->n++];
	snprintf(r->version, sizeof r->version, "%s", vi->version);
	r->created = (long long)vi->created_unix_ms;
	r->state = vi->state;
	r->size = vi->size;
	return 0;
}

static void print_versions(coffer_store *st, coffer_secret *sec, const char *name, dump_ctx *d)
{
	for (size_t i = 0; i < d->n; i++) {
		vrow *r = &d->v[i];
		char hex[65] = "-";
		if (r->state == COFFER_STATE_ENABLED) {
			coffer_value *v = NULL;
			if (coffer_access(sec, r->version, &v) != COFFER_OK) {
				fprintf(stderr, "copy_tool: %s@%s does not read: %s\n", name,
				        r->version, coffer_errmsg(st));
				exit(1);
			}
			size_t len = 0;
			const void *p = coffer_value_data(v, &len);
			unsigned char h[32];
			crypto_generichash(h, sizeof h, p, len, NULL, 0);
			sodium_bin2hex(hex, sizeof hex, h, sizeof h);
			coffer_value_free(v);
		}
		printf("  v %s created=%lld state=%d size=%zu value=%s\n", r->version, r->created,
		       r->state, r->size, hex);
	}
	free(d->v);
}

static int dump_label(void *ctx, const char *label, const char *version)
{
	(void)ctx;
	printf("  label %s=%s\n", label, version);
	return 0;
}

typedef struct names {
	char (*v)[COFFER_NAME_MAX + 1];
	size_t n, cap;
} names;

static int collect(void *ctx, const char *name, size_t nversions)
{
	(void)nversions;
	names *ns = ctx;
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? 2 * ns->cap : 64;
		ns->v = realloc(ns->v, ns->cap * sizeof *ns->v);
		if (ns->v == NULL)
			exit(1);
	}
	snprintf(ns->v[ns->n++], sizeof ns->v[0], "%s", name);
	return 0;
}

static int dump_decl(void *ctx, const coffer_declaration *d)
{
	(void)ctx;
	printf("decl %s %s %u\n", d->service, d->secret, d->actions);
	return 0;
}

static int dump_audit(void *ctx, const coffer_audit_entry *e)
{
	(void)ctx;
	printf("audit %lld %s %s %s %s %d %s %s\n", (long long)e->time_unix_ms, e->principal,
	       e->action, e->secret, e->version, e->outcome, e->error, e->request_hash);
	return 0;
}

static int dump(const char *loc, const char *key)
{
	coffer_store *st = open_store(loc, key);
	names ns = {0};
	CHECK(coffer_list_secrets(st, collect, &ns));
	for (size_t i = 0; i < ns.n; i++) {
		coffer_secret *sec = NULL;
		CHECK(coffer_secret_ref(st, ns.v[i], COFFER_PUT | COFFER_ACCESS, &sec));
		coffer_secret_info in;
		CHECK(coffer_describe(sec, &in));
		printf("secret %s desc=[%s] tags=[%s] created=%lld updated=%lld current=%s last=%s "
		       "previous=%s max=%llu purge=%lld labels=%zu\n",
		       ns.v[i], in.description, in.tags, (long long)in.created_unix_ms,
		       (long long)in.updated_unix_ms, in.current_version, in.last_version,
		       in.previous_version, (unsigned long long)in.max_versions,
		       (long long)in.purge_at_unix_ms, in.nlabels);
		CHECK(coffer_list_labels(sec, dump_label, NULL));
		dump_ctx d = {0};
		CHECK(coffer_list_versions(sec, dump_version, &d));
		print_versions(st, sec, ns.v[i], &d);
		coffer_secret_free(sec);
	}
	free(ns.v);
	CHECK(coffer_list_declarations(st, dump_decl, NULL));
	/* Copy's own audit entries are not in the source: only the source's kind are dumped. */
	CHECK(coffer_audit_list(st, 0, NULL, dump_audit, NULL));
	uint64_t entries = 0, bad = 0;
	char err[256];
	CHECK(coffer_audit_verify(st, &entries, &bad, err, sizeof err));
	printf("audit-verified %llu\n", (unsigned long long)entries);
	coffer_close(st);
	return 0;
}

static long kill_after = -1;

static int progress(void *ctx, const char *secret, size_t done, size_t total, int skipped)
{
	(void)ctx;
	(void)secret;
	(void)total;
	(void)skipped;
	if (kill_after >= 0 && (long)done >= kill_after)
		raise(SIGKILL);
	return 0;
}

static int copy(const char *src, const char *skey, const char *dst, const char *dkey)
{
	coffer_store *st = open_store(src, skey);
	coffer_store *d = open_store(dst, dkey);
	coffer_copy_stats stats;
	int rc = coffer_copy(st, d, progress, NULL, &stats);
	if (rc != COFFER_OK) {
		fprintf(stderr, "copy_tool: copy: %s (%s)\n", coffer_strerror(rc),
		        coffer_errmsg(d));
		return 1;
	}
	printf("copied=%llu verified=%llu audit=%llu\n", (unsigned long long)stats.secrets_copied,
	       (unsigned long long)stats.secrets_verified, (unsigned long long)stats.audit_copied);
	coffer_close(d);
	coffer_close(st);
	return 0;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	if (argc == 6 && strcmp(argv[1], "fill") == 0)
		return fill(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc == 4 && strcmp(argv[1], "dump") == 0)
		return dump(argv[2], argv[3]);
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "copy") == 0) {
		if (argc == 7)
			kill_after = atol(argv[6]);
		return copy(argv[2], argv[3], argv[4], argv[5]);
	}
	fprintf(stderr, "usage: copy_tool fill|dump|copy ...\n");
	return 2;
}
