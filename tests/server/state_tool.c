/*
 * state_tool STORE (disable|enable|destroy) NAME VERSION, state_tool STORE delete NAME DAYS,
 * state_tool STORE restore NAME -: one version state change (or a delete or restore) through the
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
