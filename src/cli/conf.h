/*
 * conf.h -- the strict INI reader behind `coffer serve --config FILE` (coffer.conf).
 *
 * The format, all of it:
 *   # or ; at the start of a line (after blanks) begins a comment line
 *   [serve]                         the one section a caller allows (others are errors)
 *   key = value                     value: the rest of the line, blanks trimmed, taken as is
 * No quoting, no escapes, no inline comments (a '#' or ';' inside a value is part of it), no
 * continuation lines, no keys outside a section. Refused with "FILE:LINE: why": a NUL byte, a
 * control character in a value, a line longer than CONF_MAX_LINE bytes, a file larger than
 * CONF_MAX_BYTES, an unknown section or key, an empty or bad value, a key that takes one value
 * given twice. Messages never repeat a value (it could be a URL with a password).
 *
 * The keys and their kinds come from the caller (conf_lookup): the CLI derives them from its
 * option table, so the file's key names are the long option names and cannot drift from them.
 * This file knows nothing of the table, so that it can be tested alone.
 */
#ifndef COFFER_CLI_CONF_H
#define COFFER_CLI_CONF_H

#include <stddef.h>

#define CONF_MAX_BYTES (1u << 20) /* 1 MiB */
#define CONF_MAX_LINE  4096u

typedef enum conf_kind { CONF_FLAG, CONF_STR, CONF_UINT } conf_kind;

typedef struct conf_key {
	int id;
	conf_kind kind;
	int multi;            /* may be given more than once (each is kept, in order) */
	unsigned long lo, hi; /* CONF_UINT */
} conf_key;

/* Fill *out for the key `name` (NUL-terminated, [a-z0-9-] only): 0, or -1 if there is none. */
typedef int (*conf_lookup)(void *ctx, const char *name, conf_key *out);

typedef struct conf_entry {
	int id;
	char *val; /* CONF_FLAG: "1" or "0"; CONF_UINT: the decimal digits */
	unsigned line;
} conf_entry;

typedef struct conf_file {
	conf_entry *e;
	size_t n, cap;
} conf_file;

/*
 * Parse len bytes of buf (name is for messages) into cf (appended to; conf_free() it either
 * way). section: the one section name allowed. 0, or -1 with "name:line: why" in err.
 */
int conf_parse(conf_file *cf, const char *name, const char *buf, size_t len, const char *section,
               conf_lookup lookup, void *ctx, char *err, size_t errlen);

/* Read the regular file at path (at most CONF_MAX_BYTES) and parse it. 0, or -1 with err. */
int conf_load(conf_file *cf, const char *path, const char *section, conf_lookup lookup, void *ctx,
              char *err, size_t errlen);

/* Free the entries (their values wiped first). */
void conf_free(conf_file *cf);

#endif
