/* coffer -- the command-line tool: put, access, versions, list, init, serve. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "coffer.h"
#ifdef COFFER_WITH_SERVER
#include "server/server.h"
#endif

#define EXIT_USAGE 2

static const char usage_text[] =
    "usage: coffer [--store DIR|URL] [--key-file FILE] COMMAND [ARGS]\n"
    "\n"
    "An encrypted, versioned secret store (the Nitric Secrets building block).\n"
    "\n"
    "commands:\n"
    "  init                      create the store and its master key (init and put\n"
    "                            create a store; the other commands need one)\n"
    "  put NAME [VALUE|-]        store a new version; prints its id. The value comes from\n"
    "      [--file FILE]         the argument, FILE, or standard input (exact bytes; on a\n"
    "                            terminal it is read without echo, up to the newline)\n"
    "  access NAME[@VERSION]     write the value's exact bytes to standard output;\n"
    "                            VERSION is 'latest' (default) or an id such as 2\n"
    "  versions NAME [--json]    list a secret's versions\n"
    "  list [--json]             list secret names and their readable versions\n"
    "  destroy NAME@VERSION      delete that version's value for good (the id stays\n"
    "                            taken; latest moves back)\n"
    "  run --env VAR=NAME[@VERSION]... [--] CMD [ARGS]\n"
    "                            run CMD with those secrets in its environment (and\n"
    "                            none of coffer's key variables); exits with CMD's code\n"
    "  rotate-key                add a data key, re-encrypt every version with it and\n"
    "                            prune unused keys (finishes an interrupted pass first)\n"
    "  rekey [--new-key-file F]  re-seal the keyring under a new master key: in place of\n"
    "                            DIR/master.key, or a new key file F (restart running\n"
    "                            servers with the new key afterwards)\n"
#ifdef COFFER_WITH_SERVER
    "  serve [OPTIONS]           run the Nitric gRPC server (coffer serve --help)\n"
#endif
    "\n"
    "options:\n"
    "  --store DIR|URL   the store: a folder (SQLite, default ./.coffer, env COFFER_STORE)\n"
    "                    or postgres://user@host/db\n"
    "  --key-file FILE   master key file (env COFFER_KEY_FILE; default DIR/master.key).\n"
    "                    COFFER_MASTER_KEY (base64 of 32 bytes) or COFFER_PASSPHRASE\n"
    "                    (Argon2id, at least 12 characters) take precedence over it.\n"
    "  --max-value BYTES largest value put accepts (default 65536, at most 1048576;\n"
    "                    env COFFER_MAX_VALUE)\n"
    "  -h, --help        this help\n"
    "  --version         print the version\n"
    "\n"
    "Names: 1-255 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit.\n"
    "A value given as an argument is visible to other local users in the process list;\n"
    "prefer standard input or --file for real secrets.\n"
    "\n"
    "exit codes: 0 ok, 1 other failure, 2 usage or invalid input, 3 not found (also: no\n"
    "            store), 4 permission denied, 5 key or integrity failure, 6 store busy or\n"
    "            unavailable, 7 disk full\n";

typedef struct cli {
	const char *store;
	const char *key_file;
	int json;
	const char *file;
	const char *new_key_file;
	size_t max_value; /* 0: the library's default */
	const char *args[3];
	int nargs;
	coffer_store *st;
} cli;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "coffer: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'coffer --help'.\n");
	va_end(ap);
	return EXIT_USAGE;
}

static int fail(cli *c, int rc)
{
	fprintf(stderr, "coffer: error: %s\n",
	        c->st != NULL ? coffer_errmsg(c->st) : coffer_strerror(rc));
	return coffer_exit_code(rc);
}

static const char *store_location(const cli *c)
{
	const char *loc = c->store != NULL ? c->store : getenv("COFFER_STORE");
	return loc == NULL || loc[0] == '\0' ? "./.coffer" : loc;
}

/* The folder of a local (SQLite) store, or NULL for a URL store. */
static const char *local_dir(const cli *c)
{
	const char *loc = store_location(c);
	if (strncmp(loc, "sqlite:", 7) == 0)
		return loc + 7 + (strncmp(loc + 7, "//", 2) == 0 ? 2 : 0);
	return strstr(loc, "://") == NULL ? loc : NULL;
}

/* After "wrong master key": point at the key an interrupted `coffer rekey` left behind. */
static void rekey_hint(const cli *c)
{
	char path[4096];
	const char *dir = local_dir(c);
	if (dir != NULL &&
	    snprintf(path, sizeof path, "%s/master.key.new", dir) < (int)sizeof path &&
	    access(path, F_OK) == 0)
		fprintf(stderr,
		        "coffer: hint: an interrupted 'coffer rekey' left %s; if the store opens "
		        "with --key-file %s, move that file to %s/master.key\n",
		        path, path, dir);
}

/* Only init and put (and serve) make a store; every other command needs one to exist. */
enum { OPEN_EXISTING, OPEN_OR_CREATE };

static int open_store(cli *c, int how)
{
	char err[1024], shown[1024];
	coffer_options o = {.key_file = c->key_file,
	                    .max_value = c->max_value,
	                    .flags = how == OPEN_EXISTING ? COFFER_OPEN_NO_CREATE : 0};
	const char *loc = store_location(c);
	int rc = coffer_open(&c->st, loc, &o, err, sizeof err);
	coffer_env_scrub(); /* nothing of the key reaches a `coffer run` child */
	if (rc == COFFER_ENOTFOUND && how == OPEN_EXISTING) {
		fprintf(stderr, "coffer: error: no store at %s (create one with coffer init)\n",
		        coffer_location_display(loc, shown, sizeof shown));
		return coffer_exit_code(rc);
	}
	if (rc != COFFER_OK) {
		fprintf(stderr, "coffer: error: %s\n", err);
		if (rc == COFFER_EKEY)
			rekey_hint(c);
		return coffer_exit_code(rc);
	}
	unsigned cr = coffer_created(c->st);
	loc = coffer_location_display(loc, shown, sizeof shown);
	if (cr & COFFER_CREATED_STORE)
		fprintf(stderr, "coffer: created store %s\n", loc);
	if (cr & COFFER_CREATED_KEY_FILE)
		fprintf(stderr,
		        "coffer: created master key file for %s (back it up: without it the "
		        "secrets cannot be read)\n",
		        loc);
	return 0;
}

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

static int read_value(cli *c, const char *name, unsigned char **val, size_t *len)
{
	const size_t max = COFFER_VALUE_HARD_MAX; /* the store applies its own, smaller limit */
	if (c->nargs == 2 && strcmp(c->args[1], "-") != 0) {
		if (c->file != NULL)
			return usage_error("give the value either as an argument or with --file");
		*len = strlen(c->args[1]);
		*val = malloc(*len + 1);
		if (*val == NULL)
			return fail(c, COFFER_ENOMEM);
		memcpy(*val, c->args[1], *len + 1);
		return 0;
	}
	int fd = 0, rc;
	if (c->file != NULL && (fd = open(c->file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		fprintf(stderr, "coffer: error: cannot open '%s': %s\n", c->file, strerror(errno));
		return 1;
	}
	if (c->file == NULL && isatty(0))
		rc = read_tty(name, max, val, len);
	else
		rc = read_fd(fd, max, val, len);
	if (fd != 0)
		close(fd);
	if (rc == COFFER_ETOOBIG) {
		fprintf(stderr, "coffer: error: value is over the hard limit of %zu bytes\n", max);
		return coffer_exit_code(rc);
	}
	return rc == COFFER_OK ? 0 : fail(c, rc);
}

static int secret_open(cli *c, int how, const char *name, unsigned perms, coffer_secret **sec)
{
	int rc = open_store(c, how);
	if (rc != 0)
		return rc;
	rc = coffer_secret_ref(c->st, name, perms, sec);
	return rc == COFFER_OK ? 0 : fail(c, rc);
}

static int cmd_put(cli *c)
{
	if (c->nargs < 1 || c->nargs > 2)
		return usage_error("usage: coffer put NAME [VALUE|-] [--file FILE]");
	const char *name = c->args[0];
	unsigned char *val = NULL;
	size_t len = 0;
	coffer_secret *sec = NULL;
	int rc = secret_open(c, OPEN_OR_CREATE, name, COFFER_PUT, &sec);
	if (rc == 0)
		rc = read_value(c, name, &val, &len);
	if (rc == 0) {
		char ver[COFFER_VERSION_MAX];
		int r = coffer_put(sec, val, len, ver);
		rc = r == COFFER_OK ? 0 : fail(c, r);
		if (r == COFFER_OK) {
			if (!coffer_name_portable(name, strlen(name)))
				fprintf(stderr,
				        "coffer: warning: '%s' is not a portable name (clouds "
				        "accept lower-case letters, digits and '-', up to %d)\n",
				        name, COFFER_PORTABLE_NAME_MAX);
			printf("%s\n", ver);
		}
	}
	if (val != NULL) {
		explicit_bzero(val, len);
		free(val);
	}
	coffer_secret_free(sec);
	return rc;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
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
static const char *split_ref(const char *ref, char name[COFFER_NAME_MAX + 2])
{
	const char *at = strchr(ref, '@');
	size_t n = at != NULL ? (size_t)(at - ref) : strlen(ref);
	if (n > COFFER_NAME_MAX + 1)
		n = COFFER_NAME_MAX + 1; /* still invalid (too long): the library says so */
	memcpy(name, ref, n);
	name[n] = '\0';
	return at != NULL ? at + 1 : "latest";
}

static int cmd_access(cli *c)
{
	if (c->nargs != 1)
		return usage_error("usage: coffer access NAME[@VERSION]");
	char name[COFFER_NAME_MAX + 2];
	const char *version = split_ref(c->args[0], name);
	coffer_secret *sec = NULL;
	int rc = secret_open(c, OPEN_EXISTING, name, COFFER_ACCESS, &sec);
	coffer_value *v = NULL;
	if (rc == 0) {
		int r = coffer_access(sec, version, &v);
		rc = r == COFFER_OK ? 0 : fail(c, r);
	}
	if (rc == 0) {
		size_t len = 0;
		const unsigned char *data = coffer_value_data(v, &len);
		if (write_all(1, data, len) != 0) {
			fprintf(stderr, "coffer: error: cannot write to standard output: %s\n",
			        strerror(errno));
			rc = 1;
		}
	}
	coffer_value_free(v);
	coffer_secret_free(sec);
	return rc;
}

static void format_time(int64_t ms, char *buf, size_t len, int iso)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm);
}

static int print_version(void *ctx, const coffer_version_info *vi)
{
	cli *c = ctx;
	char when[32];
	const char *state = vi->state == COFFER_STATE_ENABLED ? "enabled" : "destroyed";
	format_time(vi->created_unix_ms, when, sizeof when, c->json);
	if (c->json)
		printf("%s{\"version\":\"%s\",\"created\":\"%s\",\"created_unix_ms\":%lld,"
		       "\"state\":\"%s\",\"size\":%zu,\"key_id\":%u}",
		       c->nargs++ > 1 ? "," : "", vi->version, when, (long long)vi->created_unix_ms,
		       state, vi->size, (unsigned)vi->key_id);
	else
		printf("%-10s %-20s %-10s %-8zu %u\n", vi->version, when, state, vi->size,
		       (unsigned)vi->key_id);
	return 0;
}

static int cmd_versions(cli *c)
{
	if (c->nargs != 1)
		return usage_error("usage: coffer versions NAME [--json]");
	coffer_secret *sec = NULL;
	int rc = secret_open(c, OPEN_EXISTING, c->args[0], COFFER_ACCESS, &sec);
	if (rc == 0) {
		if (c->json)
			printf("[");
		else
			printf("%-10s %-20s %-10s %-8s %s\n", "VERSION", "CREATED (UTC)", "STATE",
			       "SIZE", "KEY");
		int r = coffer_list_versions(sec, print_version, c);
		rc = r == COFFER_OK ? 0 : fail(c, r);
		if (c->json && rc == 0)
			printf("]\n");
	}
	coffer_secret_free(sec);
	return rc;
}

static int print_name(void *ctx, const char *name, size_t nversions)
{
	cli *c = ctx;
	if (c->json)
		printf("%s{\"name\":\"%s\",\"versions\":%zu}", c->nargs++ > 0 ? "," : "", name,
		       nversions);
	else
		printf("%-40s %zu\n", name, nversions);
	return 0;
}

static int cmd_list(cli *c)
{
	if (c->nargs != 0)
		return usage_error("usage: coffer list [--json]");
	int rc = open_store(c, OPEN_EXISTING);
	if (rc != 0)
		return rc;
	if (c->json)
		printf("[");
	else
		printf("%-40s %s\n", "NAME", "VERSIONS");
	int r = coffer_list_secrets(c->st, print_name, c);
	if (r != COFFER_OK)
		return fail(c, r);
	if (c->json)
		printf("]\n");
	return 0;
}

static int cmd_destroy(cli *c)
{
	if (c->nargs != 1 || strchr(c->args[0], '@') == NULL)
		return usage_error("usage: coffer destroy NAME@VERSION (VERSION: an id or latest)");
	char name[COFFER_NAME_MAX + 2], ver[COFFER_VERSION_MAX];
	const char *version = split_ref(c->args[0], name);
	coffer_secret *sec = NULL;
	int rc = secret_open(c, OPEN_EXISTING, name, COFFER_PUT, &sec);
	if (rc == 0) {
		int r = coffer_destroy(sec, version, ver);
		rc = r == COFFER_OK ? 0 : fail(c, r);
		if (r == COFFER_OK)
			fprintf(stderr, "coffer: destroyed %s@%s\n", name, ver);
	}
	coffer_secret_free(sec);
	return rc;
}

static int cmd_rotate_key(cli *c)
{
	if (c->nargs != 0)
		return usage_error("usage: coffer rotate-key");
	int rc = open_store(c, OPEN_EXISTING);
	uint32_t id = 0;
	size_t moved = 0;
	/* First finish what an interrupted rotate-key left (and prune the keys nothing uses), so
	 * killed rotations never fill the keyring. */
	if (rc == 0 && (rc = coffer_reencrypt(c->st, &moved)) != COFFER_OK)
		return fail(c, rc);
	if (rc == 0 && moved > 0)
		fprintf(stderr, "coffer: finished an interrupted re-encryption (%zu versions)\n",
		        moved);
	if (rc == 0 && (rc = coffer_rotate_data_key(c->st, &id)) != COFFER_OK)
		return fail(c, rc);
	if (rc == 0)
		fprintf(stderr, "coffer: new data key %u; re-encrypting old versions...\n",
		        (unsigned)id);
	if (rc == 0 && (rc = coffer_reencrypt(c->st, &moved)) != COFFER_OK)
		return fail(c, rc);
	if (rc == 0)
		fprintf(stderr, "coffer: %zu versions re-encrypted under data key %u\n", moved,
		        (unsigned)id);
	return rc;
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* Without --new-key-file, a local store using its default key file gets a new one in place:
 * master.key.new is created and used, then renamed over master.key. */
static int cmd_rekey(cli *c)
{
	if (c->nargs != 0)
		return usage_error("usage: coffer rekey [--new-key-file FILE]");
	char tmp[4096], dst[4096], err[1024];
	const char *dir = local_dir(c);
	const char *target = c->new_key_file;
	int in_place = target == NULL;
	if (in_place && (dir == NULL || c->key_file != NULL || getenv("COFFER_KEY_FILE") ||
	                 getenv("COFFER_MASTER_KEY") || getenv("COFFER_PASSPHRASE"))) {
		fprintf(stderr, "coffer: error: this store does not use its default key file; "
		                "give --new-key-file FILE\n");
		return EXIT_USAGE;
	}
	if (in_place) {
		snprintf(tmp, sizeof tmp, "%s/master.key.new", dir);
		snprintf(dst, sizeof dst, "%s/master.key", dir);
		if (access(tmp, F_OK) == 0) {
			fprintf(stderr,
			        "coffer: error: %s exists (an interrupted rekey?); see which "
			        "key opens the store, then remove or move it\n",
			        tmp);
			return 1;
		}
		target = tmp;
	}
	int rc = open_store(c, OPEN_EXISTING);
	if (rc != 0)
		return rc;
	coffer_options o = {.key_file = target};
	int r = coffer_rotate_master_key(c->st, &o, err, sizeof err);
	if (r != COFFER_OK) {
		fprintf(stderr, "coffer: error: %s\n", err);
		return coffer_exit_code(r);
	}
	if (in_place && rename(tmp, dst) != 0) {
		fprintf(stderr,
		        "coffer: error: the store now opens with %s, but moving it to %s "
		        "failed: %s\n",
		        tmp, dst, strerror(errno));
		return 1;
	}
	if (in_place)
		fsync_dir(dir); /* the rename is durable before we say so */
	fprintf(stderr,
	        "coffer: master key rotated; the store now opens with %s\n"
	        "coffer: running servers (coffer serve) on this store still hold the old key: they "
	        "keep serving the data keys they have, but refuse anything that needs a key added "
	        "from now on; restart them with the new key\n",
	        in_place ? dst : target);
	return 0;
}

static int cmd_init(cli *c)
{
	if (c->nargs != 0)
		return usage_error("usage: coffer init");
	int rc = open_store(c, OPEN_OR_CREATE);
	if (rc == 0 && coffer_created(c->st) == 0)
		fprintf(stderr, "coffer: store already initialized; nothing to do\n");
	return rc;
}

#define RUN_MAX_ENV 64

/* Read one secret into the environment variable `var`. */
static int run_setenv(cli *c, const char *var, const char *ref)
{
	char name[COFFER_NAME_MAX + 2];
	const char *version = split_ref(ref, name);
	coffer_secret *sec = NULL;
	coffer_value *v = NULL;
	int r = coffer_secret_ref(c->st, name, COFFER_ACCESS, &sec);
	if (r == COFFER_OK)
		r = coffer_access(sec, version, &v);
	int rc = r == COFFER_OK ? 0 : fail(c, r);
	size_t len = 0;
	const char *data = coffer_value_data(v, &len);
	if (rc == 0 && memchr(data, '\0', len) != NULL) {
		fprintf(stderr,
		        "coffer: error: secret '%s' holds a NUL byte and cannot be an "
		        "environment variable\n",
		        name);
		rc = 2;
	}
	if (rc == 0 && setenv(var, data, 1) != 0) {
		fprintf(stderr, "coffer: error: cannot set %s: %s\n", var, strerror(errno));
		rc = 1;
	}
	coffer_value_free(v);
	coffer_secret_free(sec);
	return rc;
}

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

/* coffer run --env VAR=NAME[@VERSION]... [--] CMD [ARGS]: exec CMD with the secrets set. */
static int cmd_run(cli *c, int argc, char **argv)
{
	const char *specs[RUN_MAX_ENV];
	int nspecs = 0, i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "--env") != 0 || i + 1 >= argc || nspecs == RUN_MAX_ENV)
			return usage_error("usage: coffer run --env VAR=NAME[@VERSION]... [--] CMD "
			                   "[ARGS] (at most %d --env)",
			                   RUN_MAX_ENV);
		specs[nspecs++] = argv[++i];
	}
	if (i >= argc || nspecs == 0)
		return usage_error("usage: coffer run --env VAR=NAME[@VERSION]... [--] CMD [ARGS]");
	for (int k = 0; k < nspecs; k++) {
		const char *eq = strchr(specs[k], '=');
		if (eq == NULL || !valid_var(specs[k], (size_t)(eq - specs[k])))
			return usage_error("--env wants VAR=NAME[@VERSION], got '%.60s'", specs[k]);
	}
	int rc = open_store(c, OPEN_EXISTING);
	for (int k = 0; k < nspecs && rc == 0; k++) {
		char var[256];
		const char *eq = strchr(specs[k], '=');
		snprintf(var, sizeof var, "%.*s", (int)(eq - specs[k]), specs[k]);
		rc = run_setenv(c, var, eq + 1);
	}
	coffer_close(c->st);
	c->st = NULL;
	if (rc != 0)
		return rc;
	execvp(argv[i], argv + i);
	fprintf(stderr, "coffer: error: cannot run '%s': %s\n", argv[i], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

/* A byte count from 1 to COFFER_VALUE_HARD_MAX, decimal digits only. */
static int parse_size(const char *s, size_t *out)
{
	size_t v = 0, i = 0;
	for (; s[i] >= '0' && s[i] <= '9' && i < 8; i++)
		v = v * 10 + (size_t)(s[i] - '0');
	if (i == 0 || s[i] != '\0' || v < 1 || v > COFFER_VALUE_HARD_MAX)
		return -1;
	*out = v;
	return 0;
}

/* Parse options among argv[from..argc); the first non-option (when *cmd_index < 0) is the
 * command, the rest are its arguments. "--" ends options. Returns -1 after printing help. */
static int parse_args(cli *c, int argc, char **argv, int from, int stop_at_cmd, int *cmd_index)
{
	int only_args = 0;
	for (int i = from; i < argc; i++) {
		const char *a = argv[i];
		int has_val = i + 1 < argc;
		if (only_args || a[0] != '-' || strcmp(a, "-") == 0) {
			if (*cmd_index < 0) {
				*cmd_index = i;
				if (stop_at_cmd)
					return 0;
			} else if (c->nargs < 3) {
				c->args[c->nargs++] = a;
			} else {
				return usage_error("too many arguments");
			}
		} else if (strcmp(a, "--") == 0) {
			only_args = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage_text, stdout);
			return -1;
		} else if (strcmp(a, "--version") == 0) {
			printf("coffer %s\n", coffer_libversion());
			return -1;
		} else if (strcmp(a, "--store") == 0 && has_val) {
			c->store = argv[++i];
		} else if (strcmp(a, "--key-file") == 0 && has_val) {
			c->key_file = argv[++i];
		} else if (strcmp(a, "--max-value") == 0 && has_val) {
			if (parse_size(argv[++i], &c->max_value) != 0)
				return usage_error("--max-value wants 1 to %d (bytes), got '%.40s'",
				                   COFFER_VALUE_HARD_MAX, argv[i]);
		} else if (strcmp(a, "--file") == 0 && has_val && *cmd_index >= 0) {
			c->file = argv[++i];
		} else if (strcmp(a, "--new-key-file") == 0 && has_val && *cmd_index >= 0) {
			c->new_key_file = argv[++i];
		} else if (strcmp(a, "--json") == 0 && *cmd_index >= 0) {
			c->json = 1;
		} else {
			return usage_error("unknown option or missing value: '%s'", a);
		}
	}
	return 0;
}

static void harden(void)
{
	/* Values pass through this process: no core dumps, no ptrace attach by others. */
	struct rlimit no = {0, 0};
	setrlimit(RLIMIT_CORE, &no);
#if !defined(__SANITIZE_ADDRESS__)
	/* Not in sanitizer builds: LeakSanitizer attaches to the process with ptrace at exit,
	 * which a non-dumpable process refuses to a user without CAP_SYS_PTRACE. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

static int dispatch(cli *c, const char *cmd)
{
	static const struct {
		const char *name;
		int (*fn)(cli *);
	} cmds[] = {{"put", cmd_put},           {"access", cmd_access},
	            {"versions", cmd_versions}, {"list", cmd_list},
	            {"init", cmd_init},         {"rotate-key", cmd_rotate_key},
	            {"destroy", cmd_destroy},   {"rekey", cmd_rekey}};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			return cmds[i].fn(c);
	return usage_error("unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
	harden();
	cli c = {0};
	int cmd = -1;
	/* Global options first, up to the command; serve parses the rest itself. */
	int rc = parse_args(&c, argc, argv, 1, 1, &cmd);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if (cmd < 0)
		return usage_error("missing command");
#ifdef COFFER_WITH_SERVER
	if (strcmp(argv[cmd], "serve") == 0) {
		if (c.max_value != 0)
			return usage_error("give --max-value after 'serve' (coffer serve --help)");
		if (c.store != NULL)
			setenv("COFFER_STORE", c.store, 1);
		if (c.key_file != NULL)
			setenv("COFFER_KEY_FILE", c.key_file, 1);
		return coffer_serve_main(argc - cmd, argv + cmd);
	}
#endif
	if (strcmp(argv[cmd], "run") == 0)
		return cmd_run(&c, argc - cmd, argv + cmd);
	const char *env_max = getenv("COFFER_MAX_VALUE");
	if (c.max_value == 0 && env_max != NULL && env_max[0] != '\0' &&
	    parse_size(env_max, &c.max_value) != 0)
		return usage_error("COFFER_MAX_VALUE wants 1 to %d (bytes)", COFFER_VALUE_HARD_MAX);
	rc = parse_args(&c, argc, argv, cmd + 1, 0, &cmd);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	rc = dispatch(&c, argv[cmd]);
	coffer_close(c.st);
	return rc;
}
