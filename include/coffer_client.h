/*
 * coffer_client.h -- the client of a running `coffer serve`: libcoffer_client.
 *
 * Put and access go over Nitric's gRPC protocol (nitric.proto.secrets.v1.SecretManager), the same
 * calls the Nitric SDKs make; versions, list and destroy go over coffer's admin service
 * (proto/coffer/admin/v1/admin.proto), which the server allows only to principals granted `admin`
 * in its policy file (or to the service `default` of a development server). The client never
 * holds a master key: the server does the sealing.
 *
 * Transport: HTTP/2 over plain TCP with prior knowledge (h2c), over TLS (ALPN h2, the server's
 * certificate verified against a CA file or the system's CAs, and its name checked), or over a
 * Unix socket. One connection per handle, one call at a time: a handle is used by one thread at
 * a time (give each thread its own handle).
 *
 * Conventions are those of coffer.h: functions return COFFER_OK or a negative coffer_rc from the
 * one error list, out-parameters are written only on success, _free/_close of NULL is a no-op,
 * and no value or token ever appears in an error message. After a failure,
 * coffer_client_errmsg() says what happened, e.g. "connect to 127.0.0.1:50051: Connection
 * refused", "127.0.0.1:50051 is not an HTTP/2 server (it answered in HTTP/1.x)", or the server's
 * own message ("secret 'db.password' has no version '7'").
 *
 * The server's gRPC status becomes a coffer_rc with coffer_client_rc_from_status(). Failures of
 * the connection itself are COFFER_EUNAVAIL (refused, unreachable, closed mid-call, timed out,
 * TLS handshake or certificate failure, not a gRPC server), COFFER_EIO (a protocol violation:
 * truncated or malformed frames or messages) or COFFER_ETOOBIG (a response over the size limit).
 */
#ifndef COFFER_CLIENT_H
#define COFFER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "coffer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct coffer_client coffer_client;
typedef struct coffer_client_value coffer_client_value;

/* Largest response message accepted by default (the gRPC default, what the server allows). */
#define COFFER_CLIENT_MAX_RESPONSE (4u * 1024u * 1024u)

/* Options for coffer_client_connect(); zero-initialize, set what you need. NULL: all defaults. */
typedef struct coffer_client_options {
	const char *token;       /* bearer token ("authorization: Bearer ..."), or NULL for none */
	int tls;                 /* non-zero: TLS (h2 by ALPN) instead of plaintext h2c */
	const char *ca_file;     /* PEM CA certificates to verify the server; NULL: system CAs */
	const char *server_name; /* the name the certificate must carry (and SNI); NULL: HOST */
	unsigned timeout_ms;     /* connect, handshake and each call; 0: 30000 */
	size_t max_response;     /* largest response message; 0: COFFER_CLIENT_MAX_RESPONSE */
	/* Non-zero: before each put or access, declare a policy granting the caller that action on
	 * that secret (Resources/Declare), as the Nitric SDKs do. A development server (no policy
	 * file) grants what a service declares, so put and access work there without waiting for
	 * a policy; a server with a policy file grants nothing for it (and logs that). */
	int declare;
} coffer_client_options;

/*
 * Connect to the server at `address`: "HOST:PORT" (HOST a name, an IPv4 address or [IPv6]) or
 * "unix:PATH". The connection is made, the TLS handshake done and the HTTP/2 settings exchanged
 * before this returns, so a wrong address, port, certificate or protocol is reported here. The
 * strings in opts are copied (the token into memory wiped at close). On failure *out is untouched
 * and errbuf (if not NULL) says why.
 * Returns COFFER_OK, COFFER_EINVAL (malformed address or options), COFFER_EUNAVAIL (no connection:
 * refused, unreachable, timeout, TLS failure, not an HTTP/2 server), COFFER_EIO, COFFER_ENOMEM.
 */
COFFER_API int coffer_client_connect(coffer_client **out, const char *address,
                                     const coffer_client_options *opts, char *errbuf,
                                     size_t errlen) COFFER_MUST_CHECK;

/* Close the connection and free the handle (the token is wiped). */
COFFER_API void coffer_client_close(coffer_client *c);

/* The detail message of the last failed call on this handle; never NULL. */
COFFER_API const char *coffer_client_errmsg(const coffer_client *c);

/*
 * The coffer_rc for a gRPC status and its grpc-message: the code of the error list with that
 * status whose message the server sent (the server sends coffer_strerror()'s text where it gives
 * no detail), else 3 -> EINVAL, 5 -> ENOTFOUND, 7 and 16 (UNAUTHENTICATED) -> EPERM, 8 -> ENOMEM,
 * 4 (DEADLINE_EXCEEDED), 12 (UNIMPLEMENTED: not a coffer server) and 14 -> EUNAVAIL, 0 -> OK,
 * anything else -> EIO. `message` may be NULL.
 */
COFFER_API int coffer_client_rc_from_status(int grpc_status, const char *message);

/*
 * Store `value` (len bytes) as a new version of `name` (SecretManager/Put). On success the new
 * version id is written to version_out when not NULL.
 * Returns COFFER_OK, COFFER_EINVAL (bad name or empty value, here or on the server, or a value
 * over the server's limit), COFFER_EPERM, and the codes of the connection and of coffer_put().
 */
COFFER_API int coffer_client_put(coffer_client *c, const char *name, const void *value, size_t len,
                                 char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;

/*
 * Read a version of `name` (SecretManager/Access): `version` is "latest" (any case) or an id.
 * On success *out owns a value freed (and wiped) with coffer_client_value_free(), which also
 * carries the real version id the server resolved.
 * Returns COFFER_OK, COFFER_EINVAL, COFFER_ENOTFOUND, COFFER_EPERM, and the codes of the
 * connection and of coffer_access().
 */
COFFER_API int coffer_client_access(coffer_client *c, const char *name, const char *version,
                                    coffer_client_value **out) COFFER_MUST_CHECK;

/* The value's bytes (a NUL follows them, not counted in *len); owned by the value. */
COFFER_API const void *coffer_client_value_data(const coffer_client_value *v, size_t *len);

/* The real version id the value came from (never "latest"); owned by the value. */
COFFER_API const char *coffer_client_value_version(const coffer_client_value *v);

/* Wipe and free a value. */
COFFER_API void coffer_client_value_free(coffer_client_value *v);

/*
 * Call `cb` for each version of `name`, oldest first (Admin/Versions). Info is valid only during
 * the call. A non-zero return from cb stops and is returned as is.
 * Returns COFFER_OK, cb's value, COFFER_EPERM (no admin grant), COFFER_ENOTFOUND, COFFER_EINVAL,
 * and the codes of the connection and of coffer_list_versions().
 */
COFFER_API int coffer_client_versions(coffer_client *c, const char *name,
                                      int (*cb)(void *ctx, const coffer_version_info *info),
                                      void *ctx);

/*
 * Call `cb` for each secret name in byte order with its number of enabled versions (Admin/List,
 * fetched a page of up to 1000 names at a time). A non-zero return from cb stops and is returned.
 * Returns COFFER_OK, cb's value, COFFER_EPERM, and the codes of the connection.
 */
COFFER_API int coffer_client_list(coffer_client *c,
                                  int (*cb)(void *ctx, const char *name, size_t nversions),
                                  void *ctx);

/*
 * Destroy one version for good (Admin/Destroy): `version` is an id or "latest". The real id
 * destroyed is written to version_out when not NULL.
 * Returns COFFER_OK, COFFER_EPERM, COFFER_EINVAL, COFFER_ENOTFOUND, and the codes of the
 * connection and of coffer_destroy().
 */
COFFER_API int coffer_client_destroy(coffer_client *c, const char *name, const char *version,
                                     char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;

/*
 * The lifecycle (docs/lifecycle.md), over the admin service; each needs an admin grant.
 * Disable / Enable one version (an id or a label; "latest" for disable only); the real id is
 * written to version_out when not NULL. Label set points `label` at `version` (an id, latest,
 * previous or another label) and writes the id; label delete removes it. Labels calls cb with
 * ("latest", id), ("previous", id) and each custom label (Admin/Versions). Delete schedules the
 * secret for deletion for recovery_days (0: the server's default, 7), or with force destroys it
 * now; *purge_at_ms (when not NULL) gets when it goes for good (0 with force). Restore brings it
 * back. Audit verify checks the audit log's MAC chains: COFFER_OK with *entries, or
 * COFFER_EINTEGRITY with coffer_client_errmsg() naming the first broken entry.
 * Return COFFER_OK or the codes of the connection and of the matching coffer.h call, among
 * them COFFER_EDISABLED and COFFER_EDELETED (refused by state: exit code 8).
 */
COFFER_API int coffer_client_disable(coffer_client *c, const char *name, const char *version,
                                     char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;
COFFER_API int coffer_client_enable(coffer_client *c, const char *name, const char *version,
                                    char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;
COFFER_API int coffer_client_label_set(coffer_client *c, const char *name, const char *label,
                                       const char *version,
                                       char version_out[COFFER_VERSION_MAX]) COFFER_MUST_CHECK;
COFFER_API int coffer_client_label_delete(coffer_client *c, const char *name,
                                          const char *label) COFFER_MUST_CHECK;
COFFER_API int coffer_client_labels(coffer_client *c, const char *name,
                                    int (*cb)(void *ctx, const char *label, const char *version),
                                    void *ctx);
COFFER_API int coffer_client_delete(coffer_client *c, const char *name, unsigned recovery_days,
                                    int force, int64_t *purge_at_ms) COFFER_MUST_CHECK;
COFFER_API int coffer_client_restore(coffer_client *c, const char *name) COFFER_MUST_CHECK;
COFFER_API int coffer_client_audit_verify(coffer_client *c, uint64_t *entries) COFFER_MUST_CHECK;

/*
 * Describe: the secret's metadata as coffer_describe() gives it (Admin/Describe), and label_cb
 * (when not NULL) called for each label with the id it names. Put with options: as
 * coffer_put_ex() (check-and-set, request id; *replayed when not NULL), over Admin/Put (Nitric's
 * Put has no such fields), so it needs an admin grant. List page: as coffer_list_page() (prefix,
 * 1-1000 names, the previous page's next_token; next_token "" on the last page).
 * Return COFFER_OK, cb's value, or the codes of the connection and of those coffer.h calls.
 */
COFFER_API int coffer_client_describe(coffer_client *c, const char *name, coffer_secret_info *out,
                                      int (*label_cb)(void *ctx, const char *label,
                                                      const char *version),
                                      void *ctx) COFFER_MUST_CHECK;
COFFER_API int coffer_client_put_ex(coffer_client *c, const char *name, const void *value,
                                    size_t len, const coffer_put_opts *opts,
                                    char version_out[COFFER_VERSION_MAX],
                                    int *replayed) COFFER_MUST_CHECK;
/*
 * Set info: as coffer_set_info() and coffer_set_max_versions() (Admin/Meta): description and
 * tags NULL to leave them, max_versions < 0 to leave it. Audit: each audit log entry at or after
 * since_unix_ms (0: all), of one secret (NULL: all), in the order written (Admin/Audit, a page of
 * up to 1000 at a time); the strings live during the callback only.
 */
COFFER_API int coffer_client_set_info(coffer_client *c, const char *name, const char *description,
                                      const char *tags, int64_t max_versions) COFFER_MUST_CHECK;
COFFER_API int coffer_client_audit(coffer_client *c, int64_t since_unix_ms, const char *secret,
                                   int (*cb)(void *ctx, const coffer_audit_entry *e), void *ctx);
COFFER_API int coffer_client_list_page(coffer_client *c, const char *prefix, size_t limit,
                                       const char *page_token,
                                       int (*cb)(void *ctx, const char *name, size_t nversions),
                                       void *ctx, char next_token[COFFER_PAGE_TOKEN_MAX]);

#ifdef __cplusplus
}
#endif
#endif /* COFFER_CLIENT_H */
