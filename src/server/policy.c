/*
 * policy.c -- grants and bearer tokens (see policy.h).
 *
 * The tables are small (one row per service and secret), so a linear scan under a read lock is
 * both simple and fast enough; a write happens only on Declare.
 */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "coffer.h"
#include "wire.h"

#define POL_MAX_GRANTS 10000 /* a ceiling on a table that clients can grow in development */
#define POL_MAX_TOKENS 10000
#define HASH_LEN       crypto_generichash_BYTES

typedef struct grant {
	char principal[POL_PRINCIPAL_MAX];
	char *secret; /* "*" for all */
	unsigned perms;
} grant;

typedef struct token {
	char principal[POL_PRINCIPAL_MAX];
	unsigned char hash[HASH_LEN];
} token;

struct pol_table {
	pthread_rwlock_t lock;
	int dev;
	grant *grants;
	size_t n_grants, cap_grants;
	token *tokens;
	size_t n_tokens, cap_tokens;
	grant *decls; /* what services declared (pol_record), granting nothing by itself */
	size_t n_decls, cap_decls;
	unsigned char key[crypto_generichash_KEYBYTES]; /* per process: hashes are never stored */
};

pol_table *pol_new(int dev)
{
	pol_table *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	if (pthread_rwlock_init(&t->lock, NULL) != 0) {
		free(t);
		return NULL;
	}
	t->dev = dev;
	randombytes_buf(t->key, sizeof(t->key));
	return t;
}

void pol_free(pol_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_grants; i++)
		free(t->grants[i].secret);
	free(t->grants);
	for (size_t i = 0; i < t->n_decls; i++)
		free(t->decls[i].secret);
	free(t->decls);
	if (t->tokens != NULL)
		sodium_memzero(t->tokens, t->cap_tokens * sizeof(token));
	free(t->tokens);
	sodium_memzero(t->key, sizeof(t->key));
	pthread_rwlock_destroy(&t->lock);
	free(t);
}

int pol_dev_mode(const pol_table *t)
{
	return t->dev;
}

int pol_principal_ok(const char *s, size_t len)
{
	if (len == 0 || len >= POL_PRINCIPAL_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* Add perms to the (principal, secret) row, creating it. Caller holds the write lock. */
static int grant_add(pol_table *t, const char *principal, const char *secret, unsigned perms)
{
	for (size_t i = 0; i < t->n_grants; i++) {
		grant *g = &t->grants[i];
		if (strcmp(g->principal, principal) == 0 && strcmp(g->secret, secret) == 0) {
			g->perms |= perms;
			return 0;
		}
	}
	if (t->n_grants >= POL_MAX_GRANTS)
		return -1;
	if (t->n_grants == t->cap_grants) {
		size_t cap = t->cap_grants ? t->cap_grants * 2 : 16;
		grant *g = realloc(t->grants, cap * sizeof(*g));
		if (g == NULL)
			return -1;
		t->grants = g;
		t->cap_grants = cap;
	}
	grant *g = &t->grants[t->n_grants];
	g->secret = strdup(secret);
	if (g->secret == NULL)
		return -1;
	snprintf(g->principal, sizeof(g->principal), "%s", principal);
	g->perms = perms;
	t->n_grants++;
	return 0;
}

/* Split a line into whitespace-separated words (no strtok: the line is ours, bounded). */
static size_t split_words(char *line, char **words, size_t max)
{
	size_t n = 0;
	char *p = line;
	while (*p != '\0' && n < max) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			break;
		words[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	return n;
}

static int parse_actions(const char *s, unsigned *perms)
{
	*perms = 0;
	while (*s != '\0') {
		size_t n = strcspn(s, ",");
		unsigned bit = n == 3 && strncmp(s, "put", 3) == 0      ? WIRE_PERM_PUT
		               : n == 6 && strncmp(s, "access", 6) == 0 ? WIRE_PERM_ACCESS
		               : n == 5 && strncmp(s, "admin", 5) == 0  ? POL_PERM_ADMIN
		                                                        : 0;
		if (bit == 0)
			return -1;
		*perms |= bit;
		s += n;
		if (*s == ',' && *++s == '\0')
			return -1;
	}
	return *perms != 0 ? 0 : -1;
}

static int policy_line(pol_table *t, char *line, char *err, size_t errlen, const char *path,
                       int lineno)
{
	char *w[64];
	unsigned perms;
	size_t n = split_words(line, w, 64);
	if (n == 0)
		return 0;
	int syntax_ok = n >= 3 && strcmp(w[0], "allow") == 0 &&
	                pol_principal_ok(w[1], strlen(w[1])) && parse_actions(w[2], &perms) == 0;
	if (!syntax_ok || (n == 3 && !(perms & POL_PERM_ADMIN))) {
		snprintf(err, errlen,
		         "%s:%d: expected 'allow PRINCIPAL put|access|admin[,...] SECRET...'", path,
		         lineno);
		return -1;
	}
	/* admin reaches every secret (List crosses them all): say so rather than narrow it. */
	if ((perms & POL_PERM_ADMIN) && (n > 4 || (n == 4 && strcmp(w[3], "*") != 0))) {
		snprintf(err, errlen,
		         "%s:%d: admin is granted for the whole store: write 'allow %s %s' or "
		         "'allow %s %s *'",
		         path, lineno, w[1], w[2], w[1], w[2]);
		return -1;
	}
	if (n == 3) {
		if (grant_add(t, w[1], "*", perms) != 0) {
			snprintf(err, errlen, "%s:%d: too many grants", path, lineno);
			return -1;
		}
		return 0;
	}
	for (size_t i = 3; i < n; i++) {
		if (strcmp(w[i], "*") != 0 && coffer_name_check(w[i], strlen(w[i])) != COFFER_OK) {
			snprintf(err, errlen, "%s:%d: bad secret name", path, lineno);
			return -1;
		}
		if (grant_add(t, w[1], w[i], perms) != 0) {
			snprintf(err, errlen, "%s:%d: too many grants", path, lineno);
			return -1;
		}
	}
	return 0;
}

typedef int (*line_fn)(pol_table *t, char *line, char *err, size_t errlen, const char *path,
                       int lineno);

/* Feed each line of f to fn; f is closed. The caller's path is for messages only. */
static int each_line_of(pol_table *t, FILE *f, const char *path, line_fn fn, char *err,
                        size_t errlen)
{
	char line[4096], iobuf[BUFSIZ];
	int lineno = 0, rv = 0;
	/* Our own stdio buffer, so that the token file's bytes can be wiped after reading. */
	setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
	pthread_rwlock_wrlock(&t->lock);
	while (rv == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		rv = fn(t, line, err, errlen, path, lineno);
	}
	pthread_rwlock_unlock(&t->lock);
	fclose(f);
	sodium_memzero(line, sizeof(line)); /* token files hold secrets */
	sodium_memzero(iobuf, sizeof(iobuf));
	return rv;
}

static int each_line(pol_table *t, const char *path, line_fn fn, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return each_line_of(t, f, path, fn, err, errlen);
}

int pol_load_file(pol_table *t, const char *path, char *err, size_t errlen)
{
	return each_line(t, path, policy_line, err, errlen);
}

static int token_line(pol_table *t, char *line, char *err, size_t errlen, const char *path,
                      int lineno)
{
	char *w[3];
	size_t n = split_words(line, w, 3);
	if (n == 0)
		return 0;
	if (n != 2 || !pol_principal_ok(w[0], strlen(w[0])) || strlen(w[1]) < 16) {
		snprintf(err, errlen, "%s:%d: expected 'PRINCIPAL TOKEN' (token of 16+ chars)",
		         path, lineno);
		return -1;
	}
	if (t->n_tokens >= POL_MAX_TOKENS) {
		snprintf(err, errlen, "%s:%d: too many tokens", path, lineno);
		return -1;
	}
	if (t->n_tokens == t->cap_tokens) {
		size_t cap = t->cap_tokens ? t->cap_tokens * 2 : 8;
		token *nt = calloc(cap, sizeof(*nt));
		if (nt == NULL)
			return -1;
		if (t->tokens != NULL) {
			memcpy(nt, t->tokens, t->n_tokens * sizeof(*nt));
			sodium_memzero(t->tokens, t->cap_tokens * sizeof(*nt));
			free(t->tokens);
		}
		t->tokens = nt;
		t->cap_tokens = cap;
	}
	token *tk = &t->tokens[t->n_tokens++];
	snprintf(tk->principal, sizeof(tk->principal), "%s", w[0]);
	crypto_generichash(tk->hash, HASH_LEN, (const unsigned char *)w[1], strlen(w[1]), t->key,
	                   sizeof(t->key));
	return 0;
}

/*
 * Open the token file for reading, refusing what could let someone else read or choose the
 * tokens. The checks are made on the open file itself (fstat), so that the file read is the file
 * checked: a path checked with stat() and then opened could be swapped in between. A symlink is
 * refused outright (O_NOFOLLOW): whoever controls the link, or the directory it is in, would
 * choose the file. O_NONBLOCK keeps a FIFO from stalling the start before it is refused.
 * Returns the open fd, or -1 with err.
 */
static int open_token_file(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			snprintf(err, errlen,
			         "%s: is a symbolic link; give the path of the token file itself",
			         path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	const char *why = NULL;
	if (fstat(fd, &st) != 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_uid != geteuid() && st.st_uid != 0)
		why = "owned by another user; it must be owned by the server's user (or root)";
	if (why != NULL) {
		snprintf(err, errlen, "%s: %s", path, why);
		close(fd);
		return -1;
	}
	/* Tokens are secrets: refuse a file others can use, as the core refuses such a key file. */
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		         "%s: group or others have access to it (mode %03o); chmod 600 it", path,
		         (unsigned)(st.st_mode & 0777));
		close(fd);
		return -1;
	}
	return fd;
}

int pol_load_tokens(pol_table *t, const char *path, char *err, size_t errlen)
{
	size_t before = t->n_tokens;
	int fd = open_token_file(path, err, errlen);
	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (each_line_of(t, f, path, token_line, err, errlen) != 0)
		return -1;
	return (int)(t->n_tokens - before);
}

size_t pol_token_count(const pol_table *t)
{
	pol_table *m = (pol_table *)t; /* the lock is not part of the table's value */
	pthread_rwlock_rdlock(&m->lock);
	size_t n = m->n_tokens;
	pthread_rwlock_unlock(&m->lock);
	return n;
}

int pol_reload(pol_table *t, const char *policy, const char *tokens, size_t *n_grants,
               size_t *n_tokens, char *err, size_t errlen)
{
	/* Everything is read into a scratch table first: a bad file changes nothing. */
	pol_table *s = pol_new(t->dev);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(s->key, t->key, sizeof(s->key)); /* the same keyed hash for the tokens */
	if ((policy != NULL && pol_load_file(s, policy, err, errlen) != 0) ||
	    (tokens != NULL && pol_load_tokens(s, tokens, err, errlen) < 0)) {
		pol_free(s);
		return -1;
	}
	/* One swap under the write lock: a check sees the old rules or the new, never a mix. The
	 * declarations services made stay where they are. */
	pthread_rwlock_wrlock(&t->lock);
	grant *g = t->grants;
	size_t ng = t->n_grants, cg = t->cap_grants;
	t->grants = s->grants;
	t->n_grants = s->n_grants;
	t->cap_grants = s->cap_grants;
	s->grants = g;
	s->n_grants = ng;
	s->cap_grants = cg;
	if (tokens != NULL) {
		token *tk = t->tokens;
		size_t nt = t->n_tokens, ct = t->cap_tokens;
		t->tokens = s->tokens;
		t->n_tokens = s->n_tokens;
		t->cap_tokens = s->cap_tokens;
		s->tokens = tk;
		s->n_tokens = nt;
		s->cap_tokens = ct;
	}
	if (n_grants != NULL)
		*n_grants = t->n_grants;
	if (n_tokens != NULL)
		*n_tokens = t->n_tokens;
	pthread_rwlock_unlock(&t->lock);
	pol_free(s); /* the old rules, tokens wiped */
	return 0;
}

int pol_token_principal(pol_table *t, const char *tok, size_t len, char *out, size_t outlen)
{
	unsigned char h[HASH_LEN];
	int found = -1;
	crypto_generichash(h, HASH_LEN, (const unsigned char *)tok, len, t->key, sizeof(t->key));
	pthread_rwlock_rdlock(&t->lock);
	/* Compare against every entry, so the time does not tell which one matched. */
	for (size_t i = 0; i < t->n_tokens; i++)
		if (sodium_memcmp(h, t->tokens[i].hash, HASH_LEN) == 0 && found < 0)
			found = (int)i;
	if (found >= 0)
		snprintf(out, outlen, "%s", t->tokens[found].principal);
	pthread_rwlock_unlock(&t->lock);
	return found >= 0 ? 0 : -1;
}

int pol_declare(pol_table *t, const char *principal, const char *secret, unsigned perms)
{
	if (!t->dev || perms == 0)
		return 0;
	pthread_rwlock_wrlock(&t->lock);
	int rv = grant_add(t, principal, secret, perms);
	pthread_rwlock_unlock(&t->lock);
	return rv == 0 ? 1 : 0;
}

int pol_admin_ok(pol_table *t, const char *principal)
{
	int ok = 0;
	if (t->dev)
		return strcmp(principal, "default") == 0;
	pthread_rwlock_rdlock(&t->lock);
	for (size_t i = 0; i < t->n_grants && !ok; i++)
		ok = (t->grants[i].perms & POL_PERM_ADMIN) != 0 &&
		     strcmp(t->grants[i].principal, principal) == 0;
	pthread_rwlock_unlock(&t->lock);
	return ok;
}

pol_verdict pol_check(pol_table *t, const char *principal, const char *secret, unsigned perm)
{
	pol_verdict v = POL_UNKNOWN;
	pthread_rwlock_rdlock(&t->lock);
	for (size_t i = 0; i < t->n_grants; i++) {
		const grant *g = &t->grants[i];
		if (strcmp(g->principal, principal) != 0)
			continue;
		if (strcmp(g->secret, secret) != 0 && strcmp(g->secret, "*") != 0)
			continue;
		if (g->perms & perm) {
			v = POL_ALLOW;
			break;
		}
		v = POL_DENY;
	}
	pthread_rwlock_unlock(&t->lock);
	/* With a policy file nothing more is coming: unknown means no. */
	if (v == POL_UNKNOWN && !t->dev)
		v = POL_DENY;
	return v;
}

int pol_record(pol_table *t, const char *principal, const char *secret, unsigned perms)
{
	int news = 0;
	pthread_rwlock_wrlock(&t->lock);
	size_t i;
	for (i = 0; i < t->n_decls; i++) {
		grant *g = &t->decls[i];
		if (strcmp(g->principal, principal) == 0 && strcmp(g->secret, secret) == 0) {
			news = (g->perms | perms) != g->perms;
			g->perms |= perms;
			break;
		}
	}
	if (i == t->n_decls && t->n_decls < POL_MAX_GRANTS) {
		if (t->n_decls == t->cap_decls) {
			size_t cap = t->cap_decls ? t->cap_decls * 2 : 16;
			grant *g = realloc(t->decls, cap * sizeof(*g));
			if (g != NULL) {
				t->decls = g;
				t->cap_decls = cap;
			}
		}
		char *copy = t->n_decls < t->cap_decls ? strdup(secret) : NULL;
		if (copy != NULL) {
			grant *g = &t->decls[t->n_decls++];
			g->secret = copy;
			snprintf(g->principal, sizeof(g->principal), "%s", principal);
			g->perms = perms;
			news = 1;
		}
	}
	pthread_rwlock_unlock(&t->lock);
	return news;
}
