/* Key files: the master key at rest on the local disk, guarded like an SSH private key. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "crypto/crypto.h"

#define KEY_FILE_MAX 256 /* base64 of 32 bytes is 44; leave room for whitespace, refuse more */

int crypto_key_file_read(const char *path, crypto_key *key, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot open key file '%s': %s", path,
		         e == ELOOP ? "it is a symbolic link" : strerror(e));
		return e == ENOENT ? COFFER_ENOTFOUND : COFFER_EKEY;
	}
	struct stat st;
	int rc = COFFER_EKEY;
	char buf[KEY_FILE_MAX + 1];
	ssize_t n = 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "key file '%s' is not a regular file", path);
	} else if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "key file '%s' belongs to another user (uid %u)", path,
		         (unsigned)st.st_uid);
	} else if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		         "key file '%s' is accessible by group or others (mode %04o); "
		         "run: chmod 600 '%s'",
		         path, (unsigned)(st.st_mode & 07777), path);
	} else if ((n = read(fd, buf, sizeof buf)) < 0 || n > KEY_FILE_MAX) {
		snprintf(err, errlen, "cannot read key file '%s'", path);
	} else if ((rc = crypto_key_from_base64(key, buf, (size_t)n)) != COFFER_OK) {
		snprintf(err, errlen, "key file '%s' does not hold a base64 256-bit key", path);
		rc = rc == COFFER_ENOMEM ? rc : COFFER_EKEY;
	}
	sodium_memzero(buf, sizeof buf);
	close(fd);
	return rc;
}

/* The folder of path into dir (at least 4096 bytes); returns the file's own name. */
static const char *split_path(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == NULL ? 0 : (size_t)(slash - path);
	if (n == 0 || n >= len) {
		memcpy(dir, slash == path ? "/" : ".", 2);
	} else {
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	return slash == NULL ? path : slash + 1;
}

void crypto_fsync_dir_of(const char *path)
{
	char dir[4096];
	(void)split_path(path, dir, sizeof dir);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A failed file operation: COFFER_EFULL when the disk is full (so the user knows that freeing
 * space is the fix), else COFFER_EIO; the message says which. */
static int file_error(const char *what, const char *path, int e, char *err, size_t errlen)
{
	int full = e == ENOSPC || e == EDQUOT;
	snprintf(err, errlen, "cannot %s key file '%s': %s", what, path,
	         full ? "the disk is full" : strerror(e));
	return full ? COFFER_EFULL : COFFER_EIO;
}

/* NAME.tmpXXXXXX: the temporaries crypto_key_file_create() makes for key file NAME (mkostemp
 * replaces the six X with letters and digits). */
static int is_tmp_of(const char *entry, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(entry, name, n) != 0 || strncmp(entry + n, ".tmp", 4) != 0 ||
	    strlen(entry + n + 4) != 6)
		return 0;
	for (const char *p = entry + n + 4; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9')))
			return 0;
	return 1;
}

/* Remove one temporary if it is a regular file of ours that nobody is writing: its creator
 * holds an flock on it until it is done, and a killed creator's lock went with it. */
static void remove_tmp(int dfd, const char *entry)
{
	int fd = openat(dfd, entry, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat a, b;
	if (fd < 0)
		return;
	if (fstat(fd, &a) == 0 && S_ISREG(a.st_mode) && a.st_uid == geteuid() &&
	    flock(fd, LOCK_EX | LOCK_NB) == 0 &&
	    fstatat(dfd, entry, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino)
		(void)unlinkat(dfd, entry, 0);
	close(fd);
}

void crypto_key_file_sweep(const char *path)
{
	char dir[4096];
	const char *name = split_path(path, dir, sizeof dir);
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (is_tmp_of(e->d_name, name))
			remove_tmp(dirfd(d), e->d_name);
	closedir(d);
}

/* A temporary for path, created 0600 and locked (see remove_tmp). A sweeper may have removed it
 * between mkostemp and flock: then make another. */
static int make_tmp(const char *path, char *tmp, size_t len)
{
	for (int tries = 0; tries < 8; tries++) {
		if (snprintf(tmp, len, "%s.tmpXXXXXX", path) >= (int)len) {
			errno = ENAMETOOLONG;
			return -1;
		}
		int fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT|O_EXCL, mode 0600 */
		struct stat st;
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0)
			return fd;
		close(fd);
	}
	errno = EAGAIN;
	return -1;
}

/* Written to a private temporary file first and then link()ed into place, so a concurrent
 * opener never reads a half-written key: link() fails with EEXIST, never follows a symlink. */
int crypto_key_file_create(const char *path, crypto_key *key, int *created, char *err,
                           size_t errlen)
{
	char tmp[4096];
	crypto_key_file_sweep(path); /* what killed attempts left */
	int fd = make_tmp(path, tmp, sizeof tmp);
	if (fd < 0) {
		if (errno == ENAMETOOLONG) {
			snprintf(err, errlen, "key file path too long");
			return COFFER_EINVAL;
		}
		return file_error("create", path, errno, err, errlen);
	}
	int rc = crypto_key_random(key);
	char b64[64];
	if (rc == COFFER_OK) {
		crypto_key_to_base64(key, b64, sizeof b64);
		size_t len = strlen(b64);
		b64[len++] = '\n';
		if (fchmod(fd, 0600) != 0 || write_all(fd, b64, len) != 0 || fsync(fd) != 0)
			rc = file_error("write", path, errno, err, errlen);
		sodium_memzero(b64, sizeof b64);
	}
	/* fd (and its lock) stays open until the temporary is gone. */
	if (rc == COFFER_OK && link(tmp, path) != 0) {
		if (errno == EEXIST) {
			unlink(tmp);
			close(fd);
			crypto_key_free(key);
			*created = 0;
			return crypto_key_file_read(path, key, err, errlen);
		}
		rc = file_error("create", path, errno, err, errlen);
	}
	unlink(tmp);
	close(fd);
	if (rc != COFFER_OK) {
		crypto_key_free(key);
		return rc;
	}
	crypto_fsync_dir_of(path);
	*created = 1;
	return COFFER_OK;
}
