/*
 * policy.h -- who may put or access which secret, and who a bearer token names.
 *
 * Two modes. In development (no policy file) a service's own policy Declare grants it what it
 * declared. With a policy file the operator's grants rule: a Declare beyond them grants nothing.
 * Thread-safe: every worker thread consults the one table.
 */
#ifndef COFFER_SERVER_POLICY_H
#define COFFER_SERVER_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define POL_PRINCIPAL_MAX 64 /* bytes of a principal (service) name */

typedef struct pol_table pol_table;

typedef enum pol_verdict {
	POL_ALLOW = 0,
	POL_DENY,    /* a grant for this secret exists, but not for this action */
	POL_UNKNOWN, /* nothing granted for this secret yet: in development a policy may be coming
	              */
} pol_verdict;

/* New table; dev != 0 for development mode. NULL when out of memory. */
pol_table *pol_new(int dev);
void pol_free(pol_table *t);
int pol_dev_mode(const pol_table *t);

/* The admin grant (the coffer admin service: versions, list, destroy), beside WIRE_PERM_*. */
#define POL_PERM_ADMIN 0x4u

/*
 * Load operator grants, one per line:  allow PRINCIPAL ACTIONS SECRET...  where ACTIONS is a
 * comma-separated list of put, access and admin ('*' as SECRET: every secret; '#' starts a
 * comment). admin is granted for the whole store: its line names no secret, or only '*'.
 * Returns 0, or -1 with a message in err.
 */
int pol_load_file(pol_table *t, const char *path, char *err, size_t errlen);

/*
 * Load bearer tokens, one per line:  PRINCIPAL TOKEN. Only a keyed hash of each token is kept
 * (the plaintext is wiped). Returns the number loaded, or -1 with a message in err.
 */
int pol_load_tokens(pol_table *t, const char *path, char *err, size_t errlen);
size_t pol_token_count(const pol_table *t);

/*
 * SIGHUP: read the policy file (if not NULL) and the token file (if not NULL) again, into a
 * scratch table, and only if both are good swap the grants (and the tokens) in, under the write
 * lock. The declarations services made are kept. On failure nothing changes: -1 with err (a
 * path and line number, never a token). *n_grants and *n_tokens (may be NULL) get the new counts.
 */
int pol_reload(pol_table *t, const char *policy, const char *tokens, size_t *n_grants,
               size_t *n_tokens, char *err, size_t errlen);

/* Find the principal a token belongs to (constant time per entry). 0 and out filled, or -1. */
int pol_token_principal(pol_table *t, const char *token, size_t len, char *out, size_t outlen);

/*
 * A service declared a policy granting `perms` (WIRE_PERM_*) on `secret` to itself. Returns 1 if
 * this granted something (development), 0 if it was only recorded (a policy file rules).
 */
int pol_declare(pol_table *t, const char *principal, const char *secret, unsigned perms);

/*
 * What services declared (issue 13 item 8), kept apart from the grants: a Declare of the secret
 * alone (perms 0) or of a policy. Returns 1 if this is news (a new service and secret, or new
 * action bits): the caller then records it in the store. 0 if already known, or past the
 * table's ceiling.
 */
int pol_record(pol_table *t, const char *principal, const char *secret, unsigned perms);

/* May `principal` do `perm` (one WIRE_PERM_* bit) on `secret`? */
pol_verdict pol_check(pol_table *t, const char *principal, const char *secret, unsigned perm);

/*
 * May `principal` call the admin service? With a policy file: when granted admin. In development
 * (no policy file): only the service 'default' (the listener a local operator uses).
 */
int pol_admin_ok(pol_table *t, const char *principal);

/* A principal name: 1..63 bytes of A-Z a-z 0-9 . _ - */
int pol_principal_ok(const char *s, size_t len);

#endif
