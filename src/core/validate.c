/* Validation of names and version ids: the first thing every entry point does, so that nothing
 * malformed reaches the crypto or a storage backend (never a path, never SQL). */
#include <string.h>
#include <strings.h>

#include "core/internal.h"

static int is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int coffer_name_check(const char *name, size_t len)
{
	if (name == NULL || len == 0 || len > COFFER_NAME_MAX)
		return COFFER_EINVAL;
	if (!is_alnum((unsigned char)name[0]))
		return COFFER_EINVAL;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
			return COFFER_EINVAL;
	}
	return COFFER_OK;
}

int coffer_name_portable(const char *name, size_t len)
{
	if (coffer_name_check(name, len) != COFFER_OK || len > COFFER_PORTABLE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

int core_version_parse(const char *s, uint64_t *out)
{
	if (s == NULL || s[0] == '\0')
		return COFFER_EINVAL;
	if (strcasecmp(s, "latest") == 0) {
		*out = 0;
		return COFFER_OK;
	}
	/* Canonical decimal only: no sign, no leading zero, no spaces, no overflow; ids start at 1
	 * and fit in a signed 64-bit integer (what SQL backends store). */
	if (s[0] == '0')
		return COFFER_EINVAL;
	uint64_t v = 0;
	size_t i = 0;
	for (; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 19)
			return COFFER_EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > (uint64_t)INT64_MAX)
		return COFFER_EINVAL;
	*out = v;
	return COFFER_OK;
}

void core_version_format(uint64_t v, char out[COFFER_VERSION_MAX])
{
	char tmp[COFFER_VERSION_MAX];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 && n < COFFER_VERSION_MAX - 1);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
}

int core_label_syntax(const char *s)
{
	size_t n = s == NULL ? 0 : strnlen(s, STORE_LABEL_MAX + 1);
	if (n == 0 || n > STORE_LABEL_MAX ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0; /* a letter first: a label never reads as a version id */
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return strcasecmp(s, "latest") != 0;
}

int core_ref_parse(const char *s, uint64_t *want, const char **label)
{
	*label = NULL;
	if (core_version_parse(s, want) == COFFER_OK)
		return COFFER_OK;
	if (!core_label_syntax(s))
		return COFFER_EINVAL;
	*want = 0;
	*label = s;
	return COFFER_OK;
}
