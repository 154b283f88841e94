/*
 * conf.c -- the strict INI reader (see conf.h).
 *
 * Not inih: Debian's libinih silently splits a line longer than its build-time INI_MAX_LINE (200
 * bytes by default) into two, cannot see a NUL byte (fgets), treats an indented line as the
 * continuation of the previous value and a " ;" inside a value as a comment (both by build-time
 * options), and gives its handler no line number unless built with INI_HANDLER_LINENO. Each of
 * those turns a typo in a service's configuration into a silently different setting; this reader
 * refuses them with the file and line instead, in about as many lines as the glue inih needs.
 */
#include "cli/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n-- > 0)
		*v++ = 0;
}

void conf_free(conf_file *cf)
{
	for (size_t i = 0; i < cf->n; i++) {
		wipe(cf->e[i].val, strlen(cf->e[i].val));
		free(cf->e[i].val);
	}
	free(cf->e);
	cf->e = NULL;
	cf->n = cf->cap = 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int parse_bool(const char *s, size_t n, int *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strlen(yes[i]) == n && strncmp(s, yes[i], n) == 0)
			return *out = 1, 0;
		if (strlen(no[i]) == n && strncmp(s, no[i], n) == 0)
			return *out = 0, 0;
	}
	return -1;
}

static int parse_uint(const char *s, size_t n, unsigned long lo, unsigned long hi)
{
	unsigned long v = 0;
	if (n == 0 || n > 9) /* every range the table has fits in 9 digits */
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v < lo || v > hi ? -1 : 0;
}

static int add_entry(conf_file *cf, int id, const char *v, size_t n, unsigned line)
{
	if (cf->n == cf->cap) {
		size_t cap = cf->cap ? cf->cap * 2 : 16;
		conf_entry *e = realloc(cf->e, cap * sizeof(*e));
		if (e == NULL)
			return -1;
		cf->e = e;
		cf->cap = cap;
	}
	char *c = malloc(n + 1);
	if (c == NULL)
		return -1;
	memcpy(c, v, n);
	c[n] = '\0';
	cf->e[cf->n++] = (conf_entry){id, c, line};
	return 0;
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		int off_ = snprintf(err, errlen, "%s:%u: ", name, lineno);                         \
		if (off_ >= 0 && (size_t)off_ < errlen)                                            \
			snprintf(err + off_, errlen - (size_t)off_, __VA_ARGS__);                  \
		return -1;                                                                         \
	} while (0)

int conf_parse(conf_file *cf, const char *name, const char *buf, size_t len, const char *section,
               conf_lookup lookup, void *ctx, char *err, size_t errlen)
{
	unsigned lineno = 0;
	int in_section = 0;
	size_t pos = 0;
	if (len > CONF_MAX_BYTES)
		FAIL("larger than %u bytes", CONF_MAX_BYTES);
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) /* a UTF-8 byte order mark */
		pos = 3;
	while (pos < len) {
		lineno++;
		const char *l = buf + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - l) : len - pos;
		pos += n + (nl != NULL);
		if (memchr(l, '\0', n) != NULL)
			FAIL("a NUL byte (is this a text file?)");
		if (n > 0 && l[n - 1] == '\r')
			n--;
		if (n > CONF_MAX_LINE)
			FAIL("line longer than %u bytes", CONF_MAX_LINE);
		while (n > 0 && is_blank(*l))
			l++, n--;
		while (n > 0 && is_blank(l[n - 1]))
			n--;
		if (n == 0 || l[0] == '#' || l[0] == ';')
			continue;
		if (l[0] == '[') {
			if (l[n - 1] != ']')
				FAIL("expected [%s]", section);
			const char *s = l + 1;
			size_t sn = n - 2;
			while (sn > 0 && is_blank(*s))
				s++, sn--;
			while (sn > 0 && is_blank(s[sn - 1]))
				sn--;
			if (sn != strlen(section) || strncmp(s, section, sn) != 0) {
				int printable = sn <= 32;
				for (size_t i = 0; i < sn && printable; i++)
					printable = s[i] > ' ' && s[i] < 0x7f;
				if (printable)
					FAIL("unknown section [%.*s] (the only section is [%s])",
					     (int)sn, s, section);
				FAIL("unknown section (the only section is [%s])", section);
			}
			in_section = 1;
			continue;
		}
		const char *eq = memchr(l, '=', n);
		if (eq == NULL)
			FAIL("expected KEY = VALUE, a [section], or a # comment");
		size_t kn = (size_t)(eq - l);
		while (kn > 0 && is_blank(l[kn - 1]))
			kn--;
		char key[64];
		int key_ok = kn > 0 && kn < sizeof(key);
		for (size_t i = 0; i < kn && key_ok; i++)
			key_ok = (l[i] >= 'a' && l[i] <= 'z') || (l[i] >= '0' && l[i] <= '9') ||
			         l[i] == '-';
		if (!key_ok)
			FAIL("expected KEY = VALUE (a key is lower-case letters, digits and '-')");
		memcpy(key, l, kn);
		key[kn] = '\0';
		if (!in_section)
			FAIL("'%s' outside a section: put it under [%s]", key, section);
		conf_key k;
		if (lookup(ctx, key, &k) != 0)
			FAIL("unknown key '%s'", key);
		const char *v = eq + 1;
		size_t vn = n - (size_t)(v - l);
		while (vn > 0 && is_blank(*v))
			v++, vn--;
		if (vn == 0)
			FAIL("'%s' has no value", key);
		for (size_t i = 0; i < vn; i++)
			if ((unsigned char)v[i] < 0x20 ? v[i] != '\t' : v[i] == 0x7f)
				FAIL("'%s': a control character in the value", key);
		if (!k.multi)
			for (size_t i = 0; i < cf->n; i++)
				if (cf->e[i].id == k.id)
					FAIL("'%s' given twice (first at line %u); it takes one "
					     "value",
					     key, cf->e[i].line);
		int rc;
		if (k.kind == CONF_FLAG) {
			int b;
			if (parse_bool(v, vn, &b) != 0)
				FAIL("'%s' wants true or false (or yes/no, on/off, 1/0)", key);
			rc = add_entry(cf, k.id, b ? "1" : "0", 1, lineno);
		} else if (k.kind == CONF_UINT) {
			if (parse_uint(v, vn, k.lo, k.hi) != 0)
				FAIL("'%s' wants a number from %lu to %lu", key, k.lo, k.hi);
			rc = add_entry(cf, k.id, v, vn, lineno);
		} else {
			rc = add_entry(cf, k.id, v, vn, lineno);
		}
		if (rc != 0)
			FAIL("out of memory");
	}
	return 0;
}

int conf_load(conf_file *cf, const char *path, const char *section, conf_lookup lookup, void *ctx,
              char *err, size_t errlen)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO named as the file is refused below instead of stalling the start. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((unsigned long long)st.st_size > CONF_MAX_BYTES) {
		snprintf(err, errlen, "%s: larger than %u bytes", path, CONF_MAX_BYTES);
		close(fd);
		return -1;
	}
	/* Read to the end (one byte past the limit tells a file that grew meanwhile). */
	size_t cap = (size_t)st.st_size + 1, len = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		if (len == cap) {
			if (cap > CONF_MAX_BYTES)
				break;
			char *b = realloc(buf, cap * 2);
			if (b == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = b;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	int rc = conf_parse(cf, path, buf, len, section, lookup, ctx, err, errlen);
	wipe(buf, len);
	free(buf);
	return rc;
}
