/*
 * state_tool STORE (disable|enable|destroy) NAME VERSION, state_tool STORE delete NAME DAYS,
 * state_tool STORE restore NAME -, state_tool STORE audit-verify - -: one version state change
 * (or a delete or restore, or the audit log's check: prints the number of entries, or names the
 * first broken one and exits 5) through the
 * public API, in a process of its own beside a running server (the CLI gets these commands
 * later; tests/server/test_lifecycle.mjs needs them now). The master key comes as coffer_open()
 * finds it (the store's default key file, or the COFFER_* variables). Exit code: the CLI's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coffer.h"

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: state_tool STORE disable|enable|destroy NAME VERSION\n");
		return 2;
	}
	coffer_store *st = NULL;
	char err[512] = "";
	int rc = coffer_open(&st, argv[1], NULL, err, sizeof err);
	if (rc != COFFER_OK) {
		fprintf(stderr, "state_tool: %s\n", err);
		return coffer_exit_code(rc);
	}
	if (strcmp(argv[2], "audit-verify") == 0) {
		uint64_t n = 0, bad = 0;
		char why[300] = "";
		rc = coffer_audit_verify(st, &n, &bad, why, sizeof why);
		if (rc == COFFER_OK)
			printf("%llu\n", (unsigned long long)n);
		else
			fprintf(stderr, "state_tool: %s\n", why[0] ? why : coffer_errmsg(st));
		coffer_close(st);
		return coffer_exit_code(rc);
	}
	coffer_secret *sec = NULL;
	rc = coffer_secret_ref(st, argv[3], COFFER_PUT, &sec);
	char ver[COFFER_VERSION_MAX] = "";
	if (rc == COFFER_OK && strcmp(argv[2], "disable") == 0)
		rc = coffer_disable(sec, argv[4], ver);
	else if (rc == COFFER_OK && strcmp(argv[2], "enable") == 0)
		rc = coffer_enable(sec, argv[4], ver);
	else if (rc == COFFER_OK && strcmp(argv[2], "destroy") == 0)
		rc = coffer_destroy(sec, argv[4], ver);
	else if (rc == COFFER_OK && strcmp(argv[2], "delete") == 0)
		rc = coffer_delete(sec, (unsigned)atoi(argv[4]), NULL);
	else if (rc == COFFER_OK && strcmp(argv[2], "restore") == 0)
		rc = coffer_restore(sec);
	else if (rc == COFFER_OK)
		rc = COFFER_EINVAL;
	if (rc != COFFER_OK)
		fprintf(stderr, "state_tool: %s\n", coffer_errmsg(st));
	else
		printf("%s\n", ver);
	coffer_secret_free(sec);
	coffer_close(st);
	return coffer_exit_code(rc);
}
