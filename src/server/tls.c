/*
 * tls.c -- the server's TLS context: protocol versions, cipher suites, ALPN, and the private key
 * file, which is guarded like the master key file (see loop.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "loop.h"

#define TLS_KEY_FILE_MAX (64u * 1024u) /* a PEM private key is a few KiB at most */

/*
 * TLS 1.2 suites: ECDHE key exchange (forward secrecy) with an AEAD cipher only -- no CBC with
 * its SHA-1 or SHA-2 MAC (Lucky 13 and kin), no RSA key transport, no finite-field DHE (slow,
 * and its parameters are the client's guess). Both RSA and ECDSA certificates are served.
 * TLS 1.3 has only AEAD suites with (EC)DHE: OpenSSL's defaults stand.
 */
static const char tls12_ciphers[] = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!PSK";

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h2[] = {2, 'h', '2'};
	unsigned char *sel = NULL;
	if (SSL_select_next_proto(&sel, outlen, h2, sizeof(h2), in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL; /* gRPC needs h2: refuse anything else */
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* An encrypted key is not supported: never let OpenSSL prompt on the terminal for a password. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
	return r != NULL ? r : "unusable";
}

/*
 * Open the private key file once and check the open file itself (fstat), so that the file read is
 * the file checked, as the master key file is: a symlink is refused outright (whoever controls it
 * or its folder would choose the key), as are anything but a regular file, a file owned by another
 * user than the server's (or root), and one that group or others have any access to. Returns the
 * fd, or -1 with err.
 */
static int open_key_file(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "TLS key '%s': %s", path,
		         errno == ELOOP ? "is a symbolic link; give the path of the key file itself"
		                        : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		snprintf(err, errlen, "TLS key '%s' is not a regular file", path);
	else if (st.st_uid != geteuid() && st.st_uid != 0)
		snprintf(err, errlen,
		         "TLS key '%s' belongs to another user (uid %u); it must be owned by the "
		         "server's user or root",
		         path, (unsigned)st.st_uid);
	else if ((st.st_mode & 077) != 0)
		snprintf(err, errlen,
		         "TLS key '%s' is accessible by group or others (mode %04o); run: chmod "
		         "600 '%s'",
		         path, (unsigned)(st.st_mode & 07777), path);
	else
		return fd;
	close(fd);
	return -1;
}

/* Read the whole key file into a buffer the caller wipes and frees. 0, or -1 with err. */
static int read_key_file(int fd, const char *path, uint8_t **out, size_t *len, char *err,
                         size_t errlen)
{
	uint8_t *buf = malloc(TLS_KEY_FILE_MAX + 1);
	size_t n = 0;
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, TLS_KEY_FILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (r > 0 && n + (size_t)r > TLS_KEY_FILE_MAX)) {
			snprintf(err, errlen, "TLS key '%s': %s", path,
			         r < 0 ? strerror(errno) : "too large for a private key");
			sodium_memzero(buf, TLS_KEY_FILE_MAX + 1);
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* Load the private key from its file into ctx; the key's bytes are wiped from our memory. */
static int load_key(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
	uint8_t *pem = NULL;
	size_t len = 0;
	int fd = open_key_file(path, err, errlen);
	if (fd < 0)
		return -1;
	int rc = read_key_file(fd, path, &pem, &len, err, errlen);
	close(fd);
	if (rc != 0)
		return -1;
	rc = -1;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
	if (key == NULL)
		snprintf(err, errlen, "TLS key '%s': not an unencrypted PEM private key (%s)", path,
		         ssl_reason());
	else if (SSL_CTX_use_PrivateKey(ctx, key) != 1)
		snprintf(err, errlen, "TLS key '%s': %s", path, ssl_reason());
	else
		rc = 0;
	EVP_PKEY_free(key);
	BIO_free(bio);
	sodium_memzero(pem, TLS_KEY_FILE_MAX + 1);
	free(pem);
	return rc;
}

static void tls_settings(SSL_CTX *ctx)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	/*
	 * OpenSSL decrypts a record in place in its read buffer, which lives as long as the
	 * connection: a put's value would stay there in clear until a later record overwrites it.
	 * Wipe it once handed over (OpenSSL 3); before 3.0, release the buffer whenever it is
	 * empty, and our wiping allocator (wipe_install_global) wipes it.
	 */
#ifdef SSL_OP_CLEANSE_PLAINTEXT
	SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
#else
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
#endif
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
}

SSL_CTX *srv_tls_new(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	tls_settings(ctx);
	ERR_clear_error();
	if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
		snprintf(err, errlen, "TLS: cannot set the cipher suites (%s)", ssl_reason());
	} else if (load_key(ctx, key, err, errlen) != 0) {
		/* err says why */
	} else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "TLS certificate '%s': %s", cert, ssl_reason());
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "TLS key '%s' does not match the certificate '%s'", key,
		         cert);
	} else {
		return ctx;
	}
	SSL_CTX_free(ctx);
	return NULL;
}
