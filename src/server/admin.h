/*
 * admin.h -- coffer's admin service (proto/coffer/admin/v1/admin.proto): Versions, List and
 * Destroy on a store handle, for principals granted admin. Socket-free: a request body in, an
 * answer out; service.c does the answering and the logging.
 */
#ifndef COFFER_SERVER_ADMIN_H
#define COFFER_SERVER_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "coffer.h"
#include "grpc.h"
#include "policy.h"

#define ADMIN_LIST_MAX 1000 /* names in one List page */

typedef struct admin_answer {
	int rc;     /* a coffer_rc from the core (mapped like the Nitric calls' errors), or 0 */
	int status; /* else a gRPC status found here (GS_OK: body is the answer) */
	char message[512]; /* the error's detail (names, never a value) */
	uint8_t *body; /* the encoded response when status == GS_OK; freed by admin_answer_free */
	size_t len;
	const char *secret; /* for the log: the validated secret name, or NULL (borrowed) */
	char version[COFFER_VERSION_MAX]; /* for the log: the version, or "" */
	void *req;                        /* the decoded request (owns `secret`) */
} admin_answer;

/* Is this one of the admin methods? */
int admin_method(gs_method m);

/* The log name of an admin method ("Versions", ...). */
const char *admin_method_name(gs_method m);

/*
 * Answer one admin call of `principal` (already authenticated) on `st`. Always fills *a; free it
 * with admin_answer_free() once answered.
 */
void admin_call(coffer_store *st, pol_table *pol, const char *principal, gs_method m,
                const uint8_t *body, size_t blen, admin_answer *a);
void admin_answer_free(admin_answer *a);

#endif
