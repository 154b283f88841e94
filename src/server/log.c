/*
 * log.c -- timestamps, levels and the JSON form of the server's log lines (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static log_format fmt = LOG_TEXT;

void log_set_format(log_format f)
{
	fmt = f;
}

log_format log_get_format(void)
{
	return fmt;
}

int log_parse_format(const char *s, log_format *out)
{
	if (s != NULL && strcmp(s, "text") == 0)
		*out = LOG_TEXT;
	else if (s != NULL && strcmp(s, "json") == 0)
		*out = LOG_JSON;
	else
		return -1;
	return 0;
}

/* The seconds part changes once a second: formatted once per second per thread (a request line
 * is written per request, and strftime cost more than the rest of the line). */
static _Thread_local time_t ts_sec = -1;
static _Thread_local char ts_prefix[24];
static _Thread_local size_t ts_len;

void log_timestamp(char out[32])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != ts_sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		ts_len = strftime(ts_prefix, sizeof(ts_prefix), "%Y-%m-%dT%H:%M:%S", &tm);
		ts_sec = ts_len > 0 ? ts.tv_sec : -1;
	}
	unsigned ms = (unsigned)(ts.tv_nsec / 1000000L) % 1000u;
	memcpy(out, ts_prefix, ts_len);
	char *p = out + ts_len;
	*p++ = '.';
	*p++ = (char)('0' + ms / 100);
	*p++ = (char)('0' + ms / 10 % 10);
	*p++ = (char)('0' + ms % 10);
	*p++ = 'Z';
	*p = '\0';
}

/* Append a string / a decimal number at buf+*off; -1 when it does not fit (a NUL must too). */
static int add_str(char *buf, size_t len, size_t *off, const char *s)
{
	size_t n = strlen(s);
	if (n >= len - *off)
		return -1;
	memcpy(buf + *off, s, n);
	*off += n;
	return 0;
}

static int add_num(char *buf, size_t len, size_t *off, long long v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	*--p = '\0';
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	return add_str(buf, len, off, p);
}

/* Append s as a JSON string (quoted, escaped) at buf+*off; -1 when it does not fit. */
static int json_str(char *buf, size_t len, size_t *off, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = *off;
	if (o + 1 >= len)
		return -1;
	buf[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (o + 7 >= len)
			return -1;
		if (*p == '"' || *p == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)*p;
		} else if (*p < 0x20 || *p == 0x7f) {
			memcpy(buf + o, "\\u00", 4);
			buf[o + 4] = hex[*p >> 4];
			buf[o + 5] = hex[*p & 15];
			o += 6;
		} else {
			buf[o++] = (char)*p;
		}
	}
	if (o + 1 >= len)
		return -1;
	buf[o++] = '"';
	*off = o;
	return 0;
}

static int put(char *buf, size_t len, size_t *off, const char *fmt_, ...)
    __attribute__((format(printf, 4, 5)));
static int put(char *buf, size_t len, size_t *off, const char *fmt_, ...)
{
	va_list ap;
	va_start(ap, fmt_);
	int n = vsnprintf(buf + *off, len - *off, fmt_, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *off)
		return -1;
	*off += (size_t)n;
	return 0;
}

size_t log_format_request(char *buf, size_t len, const char *method, const char *principal,
                          const char *secret, const char *version, int status,
                          unsigned long long us)
{
	char ts[32];
	size_t off = 0;
	log_timestamp(ts);
	if (fmt == LOG_TEXT) {
		/* The line of every request: built without printf. */
		if (add_str(buf, len, &off, ts) != 0 ||
		    add_str(buf, len, &off, " info coffer: ") != 0 ||
		    add_str(buf, len, &off, method) != 0 ||
		    add_str(buf, len, &off, " principal=") != 0 ||
		    add_str(buf, len, &off, principal) != 0 ||
		    add_str(buf, len, &off, " secret=") != 0 ||
		    add_str(buf, len, &off, secret) != 0 ||
		    add_str(buf, len, &off, " version=") != 0 ||
		    add_str(buf, len, &off, version) != 0 ||
		    add_str(buf, len, &off, " status=") != 0 ||
		    add_num(buf, len, &off, status) != 0 || add_str(buf, len, &off, " us=") != 0 ||
		    us > (unsigned long long)INT64_MAX ||
		    add_num(buf, len, &off, (long long)us) != 0 ||
		    add_str(buf, len, &off, "\n") != 0)
			return 0;
		buf[off] = '\0';
		return off;
	}
	if (put(buf, len, &off,
	        "{\"time\":\"%s\",\"level\":\"info\",\"msg\":\"request\",\"method\":", ts) != 0 ||
	    json_str(buf, len, &off, method) != 0 || put(buf, len, &off, ",\"principal\":") != 0 ||
	    json_str(buf, len, &off, principal) != 0 || put(buf, len, &off, ",\"secret\":") != 0 ||
	    json_str(buf, len, &off, secret) != 0 || put(buf, len, &off, ",\"version\":") != 0 ||
	    json_str(buf, len, &off, version) != 0 ||
	    put(buf, len, &off, ",\"status\":%d,\"us\":%llu}\n", status, us) != 0)
		return 0;
	return off;
}

size_t log_format_msg(char *buf, size_t len, const char *level, const char *msg)
{
	char ts[32];
	size_t off = 0;
	log_timestamp(ts);
	if (fmt == LOG_TEXT) {
		if (put(buf, len, &off, "%s %s coffer: %s\n", ts, level, msg) != 0)
			return 0;
		return off;
	}
	if (put(buf, len, &off, "{\"time\":\"%s\",\"level\":", ts) != 0 ||
	    json_str(buf, len, &off, level) != 0 || put(buf, len, &off, ",\"msg\":") != 0 ||
	    json_str(buf, len, &off, msg) != 0 || put(buf, len, &off, "}\n") != 0)
		return 0;
	return off;
}

void log_msg(const char *level, const char *f, ...)
{
	char msg[1024], line[2048];
	va_list ap;
	va_start(ap, f);
	vsnprintf(msg, sizeof(msg), f, ap);
	va_end(ap);
	size_t n = log_format_msg(line, sizeof(line), level, msg);
	if (n > 0)
		(void)!write(STDERR_FILENO, line, n);
}
