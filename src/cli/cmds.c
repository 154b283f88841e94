/*
 * cmds.c -- the handlers of the coffer CLI's commands (the table is in table.c). A handler gets
 * the parsed command line and returns the process exit code; it prints its result only once
 * the command succeeded (text, or JSON with --json), and its errors through cli_fail().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#ifdef COFFER_WITH_SERVER
#include "server/server.h"
#endif

/* Read at most max+1 bytes from fd into a growing buffer (so "too large" can be told). */
static int read_fd(int fd, size_t max, unsigned char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf != NULL) {
		if (n == cap) {
			size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			unsigned char *nb = ncap > cap ? malloc(ncap) : NULL;
			if (nb == NULL)
				break; /* over the ceiling or out of memory */
			memcpy(nb, buf, n);
			explicit_bzero(buf, n);
			free(buf);
			buf = nb;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			explicit_bzero(buf, n);
			free(buf);
			return COFFER_EIO;
		}
		if (r == 0) {
			*out = buf;
			*len = n;
			return COFFER_OK;
		}
		n += (size_t)r;
	}
	if (buf != NULL)
		explicit_bzero(buf, n);
	free(buf);
	return n >= max + 1 ? COFFER_ETOOBIG : COFFER_ENOMEM;
}

/* On a terminal: prompt, no echo, one line. */
static int read_tty(const char *name, size_t max, unsigned char **out, size_t *len)
{
	struct termios old, quiet;
	fprintf(stderr, "Value for %s (input hidden): ", name);
	fflush(stderr);
	int restore = tcgetattr(0, &old) == 0;
	if (restore) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	unsigned char *buf = malloc(max + 2);
	size_t n = 0;
	int rc = buf == NULL ? COFFER_ENOMEM : COFFER_OK;
	while (rc == COFFER_OK) {
		ssize_t r = read(0, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || buf[n] == '\n')
			break;
		if (++n > max)
			rc = COFFER_ETOOBIG;
	}
	if (restore)
		tcsetattr(0, TCSAFLUSH, &old);
	fputc('\n', stderr);
	if (rc != COFFER_OK && buf != NULL) {
		explicit_bzero(buf, max + 2);
		free(buf);
		return rc;
	}
	*out = buf;
	*len = n;
	return rc;
}

static void value_wipe_free(unsigned char *val, size_t len)
{
	if (val != NULL) {
		explicit_bzero(val, len);
		free(val);
	}
}

/* The value of a put: the argument, --file FILE ('-': standard input), or standard input. */
static int read_value(cli *c, const char *name, unsigned char **val, size_t *len, int *from_stdin)
{
	const size_t max = COFFER_VALUE_HARD_MAX; /* the store applies its own, smaller limit */
	const char *file = cli_opt(c, O_FILE);
	*from_stdin = 0;
	if (c->nargs == 2 && strcmp(c->args[1], "-") != 0) {
		if (file != NULL)
			return cli_usage_error(
			    c, "give the value either as an argument or with --file");
		*len = strlen(c->args[1]);
		*val = malloc(*len + 1);
		if (*val == NULL)
			return cli_fail(c, COFFER_ENOMEM, NULL);
		memcpy(*val, c->args[1], *len + 1);
		return 0;
	}
	if (c->nargs == 2 && file != NULL && strcmp(file, "-") != 0)
		return cli_usage_error(c, "'-' and --file both name the value's source");
	if (file != NULL && strcmp(file, "-") == 0)
		file = NULL;
	int fd = 0, rc;
	if (file != NULL && (fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return cli_fail(c, COFFER_EIO, "cannot open '%s': %s", file, strerror(errno));
	if (file == NULL && isatty(0)) {
		rc = read_tty(name, max, val, len);
	} else {
		*from_stdin = file == NULL;
		rc = read_fd(fd, max, val, len);
	}
	if (fd != 0)
		close(fd);
	if (rc == COFFER_ETOOBIG)
		return cli_fail(c, rc, "value is over the hard limit of %zu bytes", max);
	return rc == COFFER_OK ? 0
	                       : cli_fail(c, rc, "cannot read the value: %s", coffer_strerror(rc));
}

int cmd_put(cli *c)
{
	const char *name = c->args[0];
	unsigned char *val = NULL;
	size_t len = 0, read_len = 0;
	int from_stdin = 0;
	char ver[COFFER_VERSION_MAX];
	int rc = cli_target_open(c, 1);
	if (rc == 0)
		rc = read_value(c, name, &val, &len, &from_stdin);
	read_len = len;
	if (rc == 0 && len > 0 && val[len - 1] == '\n') {
		if (cli_has(c, O_TRIM)) {
			len -= 1 + (len > 1 && val[len - 2] == '\r');
		} else if (from_stdin) {
			cli_note(c,
			         "warning: the value ends with a newline, which is stored as part "
			         "of it (--trim drops it; printf %%s sends none)");
		}
	}
	const char *rid = cli_opt(c, O_REQUEST_ID);
	int cas = cli_has(c, O_IF_VERSION), replayed = 0;
	if (rc == 0 && rid != NULL && (rid[0] == '\0' || strlen(rid) > COFFER_REQUEST_ID_MAX))
		rc = cli_usage_error(c, "--request-id wants 1 to %d bytes", COFFER_REQUEST_ID_MAX);
	if (rc == 0 && (cas || rid != NULL) && c->tgt->ops->put_ex == NULL)
		rc = cli_fail(c, COFFER_EMISUSE,
		              "--if-version and --request-id are not available "
		              "against this server");
	if (rc == 0 && (cas || rid != NULL)) {
		coffer_put_opts po = {.flags = cas ? COFFER_PUT_IF_VERSION : 0,
		                      .if_version = c->num[O_IF_VERSION],
		                      .request_id = rid,
		                      .request_id_len = rid != NULL ? strlen(rid) : 0};
		int r = c->tgt->ops->put_ex(c->tgt, name, val, len, &po, ver, &replayed);
		rc = r == COFFER_OK ? 0 : cli_fail(c, r, NULL);
	} else if (rc == 0) {
		int r = c->tgt->ops->put(c->tgt, name, val, len, ver);
		rc = r == COFFER_OK ? 0 : cli_fail(c, r, NULL);
	}
	value_wipe_free(val, read_len);
	if (rc != 0)
		return rc;
	if (!coffer_name_portable(name, strlen(name)))
		cli_note(c,
		         "warning: '%s' is not a portable name (clouds accept lower-case letters, "
		         "digits and '-', up to %d)",
		         name, COFFER_PORTABLE_NAME_MAX);
	if (replayed)
		cli_note(c,
		         "request id seen before: version %s is the one its first put made; "
		         "nothing stored",
		         ver);
	if (c->json) {
		json_t *j = json_pack("{s:s,s:s}", "name", name, "version", ver);
		if (j != NULL && rid != NULL)
			json_object_set_new(j, "replayed", json_boolean(replayed));
		return cli_emit(c, j);
	}
	printf("%s\n", ver);
	return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Split "NAME[@VERSION]" into name (bounded copy) and version ("latest" by default). */
const char *cli_split_ref(const char *ref, char name[COFFER_NAME_MAX + 2])
{
	const char *at = strchr(ref, '@');
	size_t n = at != NULL ? (size_t)(at - ref) : strlen(ref);
	if (n > COFFER_NAME_MAX + 1)
		n = COFFER_NAME_MAX + 1; /* still invalid (too long): the library says so */
	memcpy(name, ref, n);
	name[n] = '\0';
	return at != NULL ? at + 1 : "latest";
}

#define split_ref cli_split_ref

static char *base64(const unsigned char *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	for (size_t i = 0; out != NULL && i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
		             (i + 2 < n ? p[i + 2] : 0);
		*o++ = tab[v >> 18 & 63];
		*o++ = tab[v >> 12 & 63];
		*o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? tab[v & 63] : '=';
	}
	if (out != NULL)
		*o = '\0';
	return out;
}

int cmd_access(cli *c)
{
	char name[COFFER_NAME_MAX + 2];
	const char *version = split_ref(c->args[0], name);
	tgt_value v = {0};
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	int r = c->tgt->ops->access(c->tgt, name, version, &v);
	if (r != COFFER_OK)
		return cli_fail(c, r, NULL);
	if (c->json) {
		char *b64 = base64(v.data, v.len);
		json_t *j = b64 == NULL ? NULL
		                        : json_pack("{s:s,s:s,s:s}", "name", name, "version",
		                                    v.version, "value_b64", b64);
		json_t *text = json_stringn((const char *)v.data, v.len); /* NULL: not UTF-8 */
		if (j != NULL && text != NULL)
			json_object_set_new(j, "value", text);
		else
			json_decref(text);
		if (b64 != NULL)
			explicit_bzero(b64, strlen(b64));
		free(b64);
		c->tgt->ops->value_free(c->tgt, &v);
		return cli_emit(c, j);
	}
	if (write_all(1, v.data, v.len) != 0)
		rc =
		    cli_fail(c, COFFER_EIO, "cannot write to standard output: %s", strerror(errno));
	c->tgt->ops->value_free(c->tgt, &v);
	return rc;
}

void cli_format_time(int64_t ms, char *buf, size_t len, int iso)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm);
}

int cmd_versions(cli *c)
{
	tgt_version *vs = NULL;
	size_t n = 0;
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	int r = c->tgt->ops->versions(c->tgt, c->args[0], &vs, &n);
	if (r != COFFER_OK)
		return cli_fail(c, r, NULL);
	tgt_label *ls = NULL;
	size_t nl = 0;
	if (c->tgt->ops->labels != NULL &&
	    (r = c->tgt->ops->labels(c->tgt, c->args[0], &ls, &nl)) != COFFER_OK) {
		free(vs);
		return cli_fail(c, r, NULL);
	}
	json_t *arr = c->json ? json_array() : NULL;
	if (!c->json)
		printf("%-10s %-20s %-10s %-8s %-4s %s\n", "VERSION", "CREATED (UTC)", "STATE",
		       "SIZE", "KEY", "LABELS");
	for (size_t i = 0; i < n; i++) {
		char when[32], labels[1024] = "";
		json_t *jl = c->json ? json_array() : NULL;
		size_t off = 0;
		for (size_t k = 0; k < nl; k++) {
			if (strcmp(ls[k].version, vs[i].version) != 0)
				continue;
			if (jl != NULL)
				json_array_append_new(jl, json_string(ls[k].label));
			else if (off < sizeof labels)
				off += (size_t)snprintf(labels + off, sizeof labels - off, "%s%s",
				                        off ? "," : "", ls[k].label);
		}
		const char *state = vs[i].state == COFFER_STATE_ENABLED    ? "enabled"
		                    : vs[i].state == COFFER_STATE_DISABLED ? "disabled"
		                                                           : "destroyed";
		cli_format_time(vs[i].created_unix_ms, when, sizeof when, c->json);
		if (c->json)
			json_array_append_new(
			    arr, json_pack("{s:s,s:s,s:I,s:s,s:I,s:I,s:o}", "version",
			                   vs[i].version, "created", when, "created_unix_ms",
			                   (json_int_t)vs[i].created_unix_ms, "state", state,
			                   "size", (json_int_t)vs[i].size, "key_id",
			                   (json_int_t)vs[i].key_id, "labels", jl));
		else
			printf("%-10s %-20s %-10s %-8zu %-4u %s\n", vs[i].version, when, state,
			       vs[i].size, (unsigned)vs[i].key_id, labels[0] ? labels : "-");
	}
	free(vs);
	free(ls);
	return c->json ? cli_emit(c, arr) : 0;
}

int cmd_list(cli *c)
{
	tgt_name *ns = NULL;
	size_t n = 0;
	char next[COFFER_PAGE_TOKEN_MAX] = "";
	const char *prefix = cli_opt(c, O_PREFIX), *token = cli_opt(c, O_PAGE_TOKEN);
	/* Paged (--limit or --page-token): one page, and the JSON is an object that carries
	 * next_page_token. Otherwise every name (with --prefix: those), and the JSON stays the
	 * array it always was. */
	int paged = cli_has(c, O_LIMIT) || token != NULL;
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	int r;
	if ((paged || prefix != NULL) && c->tgt->ops->list_page == NULL)
		return cli_fail(c, COFFER_EMISUSE,
		                "--prefix, --limit and --page-token are not "
		                "available against this server");
	if (paged) {
		r = c->tgt->ops->list_page(c->tgt, prefix,
		                           cli_has(c, O_LIMIT) ? c->num[O_LIMIT] : 100, token, &ns,
		                           &n, next);
	} else if (prefix != NULL) {
		/* every page of the prefix, so memory is the names', not the store's */
		cli_vec all = {.size = sizeof(tgt_name)};
		r = COFFER_OK;
		do {
			tgt_name *pg = NULL;
			size_t pn = 0;
			char tok[COFFER_PAGE_TOKEN_MAX];
			snprintf(tok, sizeof tok, "%s", next);
			r = c->tgt->ops->list_page(c->tgt, prefix, COFFER_PAGE_SIZE_MAX, tok, &pg,
			                           &pn, next);
			for (size_t i = 0; r == COFFER_OK && i < pn; i++) {
				if (all.n == all.cap) {
					size_t ncap = all.cap ? all.cap * 2 : 64;
					void *ni = realloc(all.items, ncap * all.size);
					if (ni == NULL) {
						r = COFFER_ENOMEM;
						break;
					}
					all.items = ni;
					all.cap = ncap;
				}
				((tgt_name *)all.items)[all.n++] = pg[i];
				pg[i].name = NULL;
			}
			cli_names_free(pg, pn);
		} while (r == COFFER_OK && next[0] != '\0');
		if (r != COFFER_OK)
			cli_names_free(all.items, all.n);
		ns = r == COFFER_OK ? all.items : NULL;
		n = r == COFFER_OK ? all.n : 0;
	} else {
		r = c->tgt->ops->list(c->tgt, &ns, &n);
	}
	if (r != COFFER_OK)
		return cli_fail(c, r, NULL);
	json_t *arr = c->json ? json_array() : NULL;
	if (!c->json)
		printf("%-40s %s\n", "NAME", "VERSIONS");
	for (size_t i = 0; i < n; i++) {
		if (c->json) {
			json_t *o = json_pack("{s:s,s:I}", "name", ns[i].name, "versions",
			                      (json_int_t)ns[i].nversions);
			if (ns[i].declared)
				json_object_set_new(o, "declared", json_true());
			json_array_append_new(arr, o);
		} else {
			printf("%-40s %zu%s\n", ns[i].name, ns[i].nversions,
			       ns[i].declared ? " (declared, no value yet)" : "");
		}
		free(ns[i].name);
	}
	free(ns);
	if (paged && c->json)
		return cli_emit(c, json_pack("{s:o,s:s}", "secrets", arr, "next_page_token", next));
	if (paged && next[0] != '\0')
		cli_note(c, "more: coffer list%s%s --limit %lu --page-token %s",
		         prefix ? " --prefix " : "", prefix ? prefix : "",
		         cli_has(c, O_LIMIT) ? c->num[O_LIMIT] : 100UL, next);
	return c->json ? cli_emit(c, arr) : 0;
}

/* coffer policy show: the grants services declared to coffer serve, kept in the store. */
typedef struct decl_rows {
	cli *c;
	json_t *arr;
	int header;
} decl_rows;

static int print_decl(void *ctx, const coffer_declaration *d)
{
	decl_rows *r = ctx;
	const char *acts = d->actions == (COFFER_DECL_PUT | COFFER_DECL_ACCESS) ? "put,access"
	                   : d->actions == COFFER_DECL_PUT                      ? "put"
	                   : d->actions == COFFER_DECL_ACCESS                   ? "access"
	                                                                        : "";
	if (r->arr != NULL) {
		json_t *a = json_array();
		if (d->actions & COFFER_DECL_PUT)
			json_array_append_new(a, json_string("put"));
		if (d->actions & COFFER_DECL_ACCESS)
			json_array_append_new(a, json_string("access"));
		json_array_append_new(r->arr, json_pack("{s:s,s:s,s:o}", "service", d->service,
		                                        "secret", d->secret, "actions", a));
		return 0;
	}
	if (!r->header) { /* printed with the first row, so a failure prints no table */
		printf("%-20s %-40s %s\n", "SERVICE", "SECRET", "ACTIONS");
		r->header = 1;
	}
	printf("%-20s %-40s %s\n", d->service, d->secret,
	       acts[0] != '\0' ? acts : "(declared, no actions)");
	return 0;
}

int cmd_policy(cli *c)
{
	if (strcmp(c->args[0], "show") != 0)
		return cli_usage_error(c, "policy wants 'show'");
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	decl_rows r = {c, c->json ? json_array() : NULL, 0};
	int e = coffer_list_declarations(c->tgt->st, print_decl, &r);
	if (e != COFFER_OK) {
		json_decref(r.arr);
		return cli_fail(c, e, NULL);
	}
	if (!c->json && !r.header)
		printf("%-20s %-40s %s\n", "SERVICE", "SECRET", "ACTIONS");
	return c->json ? cli_emit(c, r.arr) : 0;
}

int cmd_destroy(cli *c)
{
	if (strchr(c->args[0], '@') == NULL)
		return cli_usage_error(c, "destroy wants NAME@VERSION (VERSION: an id or latest)");
	char name[COFFER_NAME_MAX + 2], ver[COFFER_VERSION_MAX];
	const char *version = split_ref(c->args[0], name);
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	int r = c->tgt->ops->destroy(c->tgt, name, version, ver);
	if (r != COFFER_OK)
		return cli_fail(c, r, NULL);
	if (c->json)
		return cli_emit(c, json_pack("{s:s,s:s,s:s}", "name", name, "version", ver, "state",
		                             "destroyed"));
	fprintf(stderr, "coffer: destroyed %s@%s\n", name, ver);
	return 0;
}

int cmd_init(cli *c)
{
	int rc = cli_target_open(c, 1);
	if (rc != 0)
		return rc;
	unsigned cr = coffer_created(c->tgt->st);
	if (cr == 0)
		cli_note(c, "store already initialized; nothing to do");
	if (c->json)
		return cli_emit(c, json_pack("{s:b,s:b}", "created_store",
		                             (cr & COFFER_CREATED_STORE) != 0, "created_key_file",
		                             (cr & COFFER_CREATED_KEY_FILE) != 0));
	return 0;
}

int cmd_rotate_key(cli *c)
{
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	coffer_store *st = c->tgt->st;
	uint32_t id = 0;
	size_t earlier = 0, moved = 0;
	/* First finish what an interrupted rotate-key left (and prune the keys nothing uses), so
	 * killed rotations never fill the keyring. */
	if ((rc = coffer_reencrypt(st, &earlier)) != COFFER_OK)
		return cli_fail(c, rc, NULL);
	if (earlier > 0)
		cli_note(c, "finished an interrupted re-encryption (%zu versions)", earlier);
	if ((rc = coffer_rotate_data_key(st, &id)) != COFFER_OK)
		return cli_fail(c, rc, NULL);
	if (!c->json)
		cli_note(c, "new data key %u; re-encrypting old versions...", (unsigned)id);
	if ((rc = coffer_reencrypt(st, &moved)) != COFFER_OK)
		return cli_fail(c, rc, NULL);
	if (c->json)
		return cli_emit(c, json_pack("{s:I,s:I,s:I}", "key_id", (json_int_t)id,
		                             "reencrypted", (json_int_t)moved,
		                             "finished_interrupted", (json_int_t)earlier));
	cli_note(c, "%zu versions re-encrypted under data key %u", moved, (unsigned)id);
	return 0;
}

/* What to do after a rekey: each step one line, in text and in JSON. */
static int rekey_report(cli *c, const char *now, const char *old, int in_place)
{
	char steps[3][8192];
	int n = 0;
	if (in_place) {
		snprintf(steps[n++], sizeof steps[0],
		         "nothing else for commands on this machine: %s holds the new key", now);
	} else if (old != NULL) {
		snprintf(steps[n++], sizeof steps[0],
		         "either move the new key over the old one (the old one no longer opens "
		         "the store): mv '%s' '%s'",
		         now, old);
		snprintf(steps[n++], sizeof steps[0],
		         "or keep it where it is and give it to every command: export "
		         "COFFER_KEY_FILE='%s' (or --key-file '%s')",
		         now, now);
	} else {
		snprintf(steps[n++], sizeof steps[0],
		         "give the new key to every command: unset COFFER_MASTER_KEY and "
		         "COFFER_PASSPHRASE, then export COFFER_KEY_FILE='%s' (or --key-file '%s')",
		         now, now);
	}
	snprintf(steps[n++], sizeof steps[0],
	         "running servers (coffer serve) on this store still hold the old key: they keep "
	         "serving the data keys they have, but refuse anything that needs a key added "
	         "from now on; restart them with the new key");
	if (c->json) {
		json_t *next = json_array();
		for (int i = 0; i < n; i++)
			json_array_append_new(next, json_string(steps[i]));
		return cli_emit(c, json_pack("{s:s,s:b,s:o}", "key_file", now, "in_place", in_place,
		                             "next", next));
	}
	fprintf(stderr, "coffer: master key rotated; the store now opens with %s%s\n", now,
	        in_place ? " (replaced in place)" : " only");
	fprintf(stderr, "coffer: next:\n");
	for (int i = 0; i < n; i++)
		fprintf(stderr, "coffer:   - %s\n", steps[i]);
	return 0;
}

int cmd_rekey(cli *c)
{
	char err[1024], now[PATH_MAX], old[PATH_MAX];
	const char *newkf = cli_opt(c, O_NEW_KEY_FILE);
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	coffer_store *st = c->tgt->st;
	const char *kf = coffer_key_file(st);
	int have_old = kf != NULL && realpath(kf, old) != NULL;
	if (newkf == NULL) {
		int r = coffer_rekey_in_place(st, err, sizeof err);
		if (r != COFFER_OK)
			return cli_fail(c, r, "%s", err);
		return rekey_report(c, have_old ? old : kf, NULL, 1);
	}
	coffer_options o = {.key_file = newkf};
	int r = coffer_rotate_master_key(st, &o, err, sizeof err);
	if (r != COFFER_OK)
		return cli_fail(c, r, "%s", err);
	if (realpath(newkf, now) == NULL)
		snprintf(now, sizeof now, "%s", newkf);
	return rekey_report(c, now, have_old ? old : NULL, 0);
}

int cmd_backup(cli *c)
{
	const char *file = c->args[0];
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	int r = coffer_backup(c->tgt->st, file);
	if (r != COFFER_OK)
		return cli_fail(c, r, "%s", coffer_errmsg(c->tgt->st));
	struct stat sb;
	long long bytes = stat(file, &sb) == 0 ? (long long)sb.st_size : -1;
	if (c->json)
		return cli_emit(c,
		                json_pack("{s:s,s:I}", "file", file, "bytes", (json_int_t)bytes));
	cli_note(c, "backup written to %s (%lld bytes); the master key is not in it: keep it apart",
	         file, bytes);
	return 0;
}

int cmd_restore_backup(cli *c)
{
	char err[1024], shown[1024];
	const char *file = c->args[0], *loc = cli_store_location(c);
	int r = coffer_restore_backup(file, loc, err, sizeof err);
	if (r != COFFER_OK)
		return cli_fail(c, r, "%s", err);
	loc = coffer_location_display(loc, shown, sizeof shown);
	if (c->json)
		return cli_emit(c, json_pack("{s:s,s:s}", "file", file, "store", loc));
	cli_note(c,
	         "restored %s into %s; it opens with the master key of the store backed up (put "
	         "that key file at %s/master.key, or give --key-file)",
	         file, loc, loc);
	return 0;
}

static int copy_progress(void *ctx, const char *secret, size_t done, size_t total, int skipped)
{
	cli *c = ctx;
	if (!c->json && (done % 10 == 0 || done == total))
		fprintf(stderr, "coffer: %zu of %zu secrets (%s%s)\n", done, total, secret,
		        skipped ? ", already there: verified" : "");
	return 0;
}

int cmd_copy(cli *c)
{
	char err[1024], shown[1024];
	const char *to = cli_opt(c, O_TO);
	if (to == NULL)
		return cli_usage_error(c, "copy needs --to DIR|URL");
	int rc = cli_target_open(c, 0);
	if (rc != 0)
		return rc;
	coffer_options o = {.key_file = cli_opt(c, O_TO_KEY_FILE)};
	coffer_store *dst = NULL;
	int r = coffer_open(&dst, to, &o, err, sizeof err);
	if (r != COFFER_OK)
		return cli_fail(c, r, "target: %s", err);
	const char *shown_to = coffer_location_display(to, shown, sizeof shown);
	if (coffer_created(dst) & COFFER_CREATED_KEY_FILE)
		cli_note(c,
		         "created master key file for %s (back it up: without it the secrets "
		         "cannot be read)",
		         shown_to);
	coffer_copy_stats stats;
	r = coffer_copy(c->tgt->st, dst, copy_progress, c, &stats);
	if (r != COFFER_OK) {
		snprintf(err, sizeof err, "%s", coffer_errmsg(dst));
		coffer_close(dst);
		return cli_fail(c, r, "%s%s", err,
		                r == COFFER_ECONFLICT || r == COFFER_EINTEGRITY
		                    ? ""
		                    : " (run the same copy again to resume)");
	}
	coffer_close(dst);
	if (c->json)
		return cli_emit(c, json_pack("{s:s,s:I,s:I,s:I}", "to", shown_to, "copied",
		                             (json_int_t)stats.secrets_copied, "verified",
		                             (json_int_t)stats.secrets_verified, "audit_entries",
		                             (json_int_t)stats.audit_copied));
	cli_note(
	    c, "copied %llu secrets into %s (%llu there already, verified), %llu audit entries",
	    (unsigned long long)stats.secrets_copied, shown_to,
	    (unsigned long long)stats.secrets_verified, (unsigned long long)stats.audit_copied);
	return 0;
}

#define RUN_MAX_ENV 64

static int valid_var(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* Read one secret into the environment variable `var`. */
static int run_setenv(cli *c, const char *var, const char *ref)
{
	char name[COFFER_NAME_MAX + 2];
	const char *version = split_ref(ref, name);
	tgt_value v = {0};
	int r = c->tgt->ops->access(c->tgt, name, version, &v);
	if (r != COFFER_OK)
		return cli_fail(c, r, NULL);
	int rc = 0;
	if (memchr(v.data, '\0', v.len) != NULL)
		rc = cli_fail(c, COFFER_EINVAL,
		              "secret '%s' holds a NUL byte and cannot be an environment variable",
		              name);
	else if (setenv(var, (const char *)v.data, 1) != 0)
		rc = cli_fail(c, COFFER_ENOMEM, "cannot set %s: %s", var, strerror(errno));
	c->tgt->ops->value_free(c->tgt, &v);
	return rc;
}

/* coffer run --env VAR=NAME[@VERSION]... [--] CMD [ARGS]: exec CMD with the secrets set. */
int cmd_run(cli *c)
{
	const char *specs[RUN_MAX_ENV];
	size_t nspecs = cli_opt_all(c, O_ENV, specs, RUN_MAX_ENV);
	if (nspecs == 0)
		return cli_usage_error(c, "run needs at least one --env VAR=NAME[@VERSION]");
	if (nspecs > RUN_MAX_ENV)
		return cli_usage_error(c, "at most %d --env", RUN_MAX_ENV);
	for (size_t k = 0; k < nspecs; k++) {
		const char *eq = strchr(specs[k], '=');
		if (eq == NULL || !valid_var(specs[k], (size_t)(eq - specs[k])))
			return cli_usage_error(c, "--env wants VAR=NAME[@VERSION], got '%.60s'",
			                       specs[k]);
	}
	int rc = cli_target_open(c, 0);
	for (size_t k = 0; k < nspecs && rc == 0; k++) {
		char var[256];
		const char *eq = strchr(specs[k], '=');
		snprintf(var, sizeof var, "%.*s", (int)(eq - specs[k]), specs[k]);
		rc = run_setenv(c, var, eq + 1);
	}
	if (c->tgt != NULL)
		c->tgt->ops->close(c->tgt);
	c->tgt = NULL;
	if (rc != 0)
		return rc;
	fflush(NULL);
	execvp(c->args[0], c->args);
	int e = errno;
	return cli_fail(c, e == ENOENT ? 127 : 126, "cannot run '%s': %s", c->args[0], strerror(e));
}

int cmd_serve(cli *c)
{
	return serve_conf_run(c); /* serve_conf.c: flags, environment, coffer.conf */
}

int cmd_help(cli *c)
{
	const cmd_def *d = NULL;
	if (c->nargs == 1 && (d = cli_find_cmd(c->args[0])) == NULL) {
		const char *s = cli_suggest_cmd(c->args[0]);
		return s != NULL ? cli_usage_error(c, "unknown command '%.60s'; did you mean '%s'?",
		                                   c->args[0], s)
		                 : cli_usage_error(c, "unknown command '%.60s'", c->args[0]);
	}
	if (c->json)
		return cli_emit(c, cli_help_json(d));
	if (d != NULL)
		cli_help_cmd(d);
	else
		cli_help_global();
	return 0;
}

int cmd_completion(cli *c)
{
	if (cli_completion(c->args[0]) != 0)
		return cli_usage_error(c, "completion wants bash or zsh, got '%.40s'", c->args[0]);
	return 0;
}
