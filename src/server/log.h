/*
 * log.h -- the server's log lines: one line each on stderr, starting with an RFC 3339 UTC
 * timestamp and a level (text), or one JSON object per line (--log-format json).
 *
 * Never pass a value, a token or a key: callers log names that were validated, numbers and the
 * library's own messages only.
 */
#ifndef COFFER_SERVER_LOG_H
#define COFFER_SERVER_LOG_H

#include <stddef.h>

typedef enum log_format { LOG_TEXT = 0, LOG_JSON = 1 } log_format;

/* Set once at start-up, before any thread logs. */
void log_set_format(log_format f);
log_format log_get_format(void);
/* Parse "text" or "json": 0, or -1 for anything else. */
int log_parse_format(const char *s, log_format *out);

/* The current time as RFC 3339 UTC with milliseconds ("2026-12-02T13:29:51.123Z"). */
void log_timestamp(char out[32]);

/*
 * Format one request line into buf (text: "TS info coffer: METHOD principal=P secret=S
 * version=V status=N us=U\n"; json: {"time":..,"level":"info","msg":"request",...}).
 * Returns its length, or 0 when it does not fit.
 */
size_t log_format_request(char *buf, size_t len, const char *method, const char *principal,
                          const char *secret, const char *version, int status,
                          unsigned long long us);

/* Format and write one line ("coffer: " + the message) at `level` ("info", "warn", "error"). */
void log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Format one such line into buf (as log_msg writes it); returns its length, 0 if it does not fit.
 */
size_t log_format_msg(char *buf, size_t len, const char *level, const char *msg);

#endif
