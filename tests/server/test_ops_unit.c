/*
 * test_ops_unit.c -- the parts of issue 12 that take untrusted bytes or must never leak: the
 * HealthCheckRequest decoder, the health answers, log line formats (JSON escaping, timestamps)
 * and the metrics text (labels and counts).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coffer.h"
#include "health.h"
#include "log.h"
#include "metrics.h"

static void health_decode(void **state)
{
	char svc[HEALTH_SERVICE_MAX];
	/* Empty message: service "". */
	assert_int_equal(health_decode_request((const uint8_t *)"", 0, svc), 0);
	assert_string_equal(svc, "");
	/* service = "a.B" */
	const uint8_t one[] = {0x0a, 3, 'a', '.', 'B'};
	assert_int_equal(health_decode_request(one, sizeof one, svc), 0);
	assert_string_equal(svc, "a.B");
	/* Unknown fields of every wire type are skipped. */
	const uint8_t unk[] = {0x10, 0x96, 0x01, 0x19, 1, 2,    3, 4,   5,   6,    7, 8,
	                       0x25, 1,    2,    3,    4, 0x22, 2, 'x', 'y', 0x0a, 1, 'z'};
	assert_int_equal(health_decode_request(unk, sizeof unk, svc), 0);
	assert_string_equal(svc, "z");
	/* Truncated length, truncated varint, field number 0, group wire types, a NUL inside. */
	const uint8_t trunc[] = {0x0a, 5, 'a'};
	const uint8_t var[] = {0x10, 0x80};
	const uint8_t zero[] = {0x02, 0};
	const uint8_t group[] = {0x0b};
	const uint8_t nul[] = {0x0a, 3, 'a', 0, 'b'};
	assert_int_equal(health_decode_request(trunc, sizeof trunc, svc), -1);
	assert_int_equal(health_decode_request(var, sizeof var, svc), -1);
	assert_int_equal(health_decode_request(zero, sizeof zero, svc), -1);
	assert_int_equal(health_decode_request(group, sizeof group, svc), -1);
	assert_int_equal(health_decode_request(nul, sizeof nul, svc), -1);
	/* A name too long for the buffer is refused, not cut. */
	uint8_t longer[3 + HEALTH_SERVICE_MAX];
	longer[0] = 0x0a;
	longer[1] = (uint8_t)(0x80 | (HEALTH_SERVICE_MAX & 0x7f));
	longer[2] = (uint8_t)(HEALTH_SERVICE_MAX >> 7);
	memset(longer + 3, 'a', HEALTH_SERVICE_MAX);
	assert_int_equal(health_decode_request(longer, sizeof longer, svc), -1);
}

static void health_answers(void **state)
{
	uint8_t out[2];
	assert_int_equal(health_status(""), HEALTH_SERVING);
	assert_int_equal(health_status("nitric.proto.secrets.v1.SecretManager"), HEALTH_SERVING);
	assert_int_equal(health_status("nitric.proto.secrets.v1.SecretManagerX"), -1);
	assert_int_equal(health_encode_response(HEALTH_SERVING, out), 2);
	assert_int_equal(out[0], 0x08);
	assert_int_equal(out[1], 1);
	health_set_draining();
	assert_int_equal(health_status(""), HEALTH_NOT_SERVING);
}

static void log_formats(void **state)
{
	char buf[512];
	log_set_format(LOG_TEXT);
	size_t n = log_format_request(buf, sizeof buf, "Put", "default", "api-key", "3", 0, 812);
	assert_true(n > 0 && buf[n - 1] == '\n');
	/* 2026-12-02T13:32:51.698Z info coffer: ... */
	assert_int_equal(strlen(buf), n);
	assert_true(buf[4] == '-' && buf[10] == 'T' && buf[19] == '.' && buf[23] == 'Z');
	assert_non_null(strstr(buf, "Z info coffer: Put principal=default secret=api-key version=3 "
	                            "status=0 us=812\n"));
	log_set_format(LOG_JSON);
	n = log_format_msg(buf, sizeof buf, "warn", "a \"quoted\"\\ line\n\x01");
	assert_true(n > 0);
	assert_non_null(strstr(
	    buf, "\"level\":\"warn\",\"msg\":\"a \\\"quoted\\\"\\\\ line\\u000a\\u0001\"}\n"));
	/* What does not fit is not written half. */
	assert_int_equal(log_format_msg(buf, 40, "info", "a message longer than the forty bytes"),
	                 0);
	log_set_format(LOG_TEXT);
	log_format f;
	assert_int_equal(log_parse_format("json", &f), 0);
	assert_int_equal(f, LOG_JSON);
	assert_int_equal(log_parse_format("JSON", &f), -1);
}

static uint64_t sample(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	assert_non_null(p);
	return strtoull(p + strlen(key), NULL, 10);
}

static void metrics_text(void **state)
{
	size_t len;
	char *t0 = metrics_render(&len);
	assert_non_null(t0);
	uint64_t put0 = sample(t0, "coffer_requests_total{method=\"Put\",code=\"OK\"} ");
	free(t0);
	metrics_request(GS_M_PUT, 0, 150);     /* into le=0.00025 */
	metrics_request(GS_M_PUT, 0, 3000000); /* beyond every bound: +Inf only */
	metrics_request(GS_M_DECLARE_V0, 7, 10);
	metrics_put_batch(3);
	metrics_coffer_error(COFFER_EBUSY);
	metrics_coffer_error(COFFER_ENOTFOUND); /* the caller's error: not a store error */
	char *t = metrics_render(&len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	assert_int_equal(sample(t, "coffer_requests_total{method=\"Put\",code=\"OK\"} "), put0 + 2);
	assert_int_equal(
	    sample(t, "coffer_requests_total{method=\"Declare\",code=\"PERMISSION_DENIED\"} "), 1);
	assert_int_equal(
	    sample(t, "coffer_request_duration_seconds_bucket{method=\"Put\",le=\"0.0001\"} "), 0);
	assert_int_equal(
	    sample(t, "coffer_request_duration_seconds_bucket{method=\"Put\",le=\"0.00025\"} "), 1);
	assert_int_equal(
	    sample(t, "coffer_request_duration_seconds_bucket{method=\"Put\",le=\"2.5\"} "), 1);
	assert_int_equal(
	    sample(t, "coffer_request_duration_seconds_bucket{method=\"Put\",le=\"+Inf\"} "), 2);
	assert_int_equal(sample(t, "coffer_put_batch_size_bucket{le=\"2\"} "), 0);
	assert_int_equal(sample(t, "coffer_put_batch_size_bucket{le=\"4\"} "), 1);
	assert_int_equal(sample(t, "coffer_put_batch_size_sum "), 3);
	assert_int_equal(sample(t, "coffer_store_errors_total{error=\"COFFER_EBUSY\"} "), 1);
	assert_null(strstr(t, "COFFER_ENOTFOUND"));
	free(t);
	char host[64];
	unsigned port;
	assert_int_equal(metrics_parse_addr("127.0.0.1:9464", host, sizeof host, &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 9464);
	assert_int_equal(metrics_parse_addr("[::1]:0", host, sizeof host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(metrics_parse_addr("127.0.0.1", host, sizeof host, &port), -1);
	assert_int_equal(metrics_parse_addr("127.0.0.1:70000", host, sizeof host, &port), -1);
	assert_int_equal(metrics_parse_addr(":80", host, sizeof host, &port), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(health_decode),
	    cmocka_unit_test(health_answers),
	    cmocka_unit_test(log_formats),
	    cmocka_unit_test(metrics_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
