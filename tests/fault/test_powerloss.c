/*
 * Power loss: a child process runs a workload (puts, batches, data-key rotation, re-encryption,
 * rekey) on a store through faultvfs, logging to a pipe what it is about to do and what was
 * acknowledged. At a random xSync the shim writes, drops or garbles each unsynced sector and
 * _exit()s the child. The parent reopens the store normally and checks it against the log:
 *   - PRAGMA integrity_check is ok;
 *   - every acknowledged put reads back with its exact value (none lost);
 *   - every version the store lists reads back as the value the client put for it (no corrupt
 *     record accepted, no version that was never put), ids without gaps;
 *   - the store opens with the master key of the last acknowledged rekey (or, with a rekey in
 *     flight, with the old or the new one) and every version decrypts under the key it names;
 *   - no stray file (key material in temporary files) is left in the folder.
 *
 *   test_powerloss [full|normal]   full (default): asserted. normal: synchronous=NORMAL (set on
 *                                  the store's own connection, a test-only knob), what it loses
 *                                  is printed, not asserted.
 * Iterations: 100 (NORMAL: 40), or 1000 with COFFER_SOAK=1 (COFFER_POWERLOSS_ITERS overrides). The
 * first iteration's seed is printed; FAULT_SEED=<seed> starts there.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "coffer.h"
#include "faultvfs.h"
#include "oracle.h"
#include "testutil.h"

#define NSECRETS 4
#define NOPS     48
#define MAXLOG   (NOPS * 8)

static const char *const keys[2] = {TEST_MASTER_KEY, TEST_OTHER_KEY};
static int normal_mode;

/* ---- the child ---- */

static sqlite3 *last_db; /* the connection the store opened last (auto extension) */
static int capture_db(sqlite3 *db, char **err, const void *api)
{
	last_db = db;
	return SQLITE_OK;
}

static int logfd = -1;
static void logf_(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (write(logfd, buf, (size_t)n) != n)
		_exit(3);
}

static void secret_name(char *buf, size_t len, uint64_t i)
{
	snprintf(buf, len, "pl.secret-%" PRIu64, i % NSECRETS);
}

static void child(const char *dir, uint64_t seed, long crash_at, int key)
{
	if (faultvfs_register() != SQLITE_OK)
		_exit(4);
	sqlite3_auto_extension((void (*)(void))capture_db);
	faultvfs_powerloss(crash_at, seed);
	coffer_options o = {.master_key_b64 = keys[key], .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[256];
	if (coffer_open(&st, dir, &o, err, sizeof err) != COFFER_OK)
		_exit(5);
	if (normal_mode && sqlite3_exec(last_db, "PRAGMA synchronous = NORMAL", 0, 0, 0) != 0)
		_exit(6);
	/* Checkpoints every few commits, so that power also fails during them. */
	if (sqlite3_exec(last_db, "PRAGMA wal_autocheckpoint = 16", 0, 0, 0) != SQLITE_OK)
		_exit(6);
	unsigned char val[32768];
	uint64_t j = 1000;
	for (int op = 0; op < NOPS; op++) {
		uint64_t r = oracle_mix(seed ^ (uint64_t)op << 32) % 100;
		char name[64], ver[COFFER_VERSION_MAX];
		if (r < 80) {
			secret_name(name, sizeof name, oracle_mix(seed + (uint64_t)op));
			coffer_secret *s = NULL;
			if (coffer_secret_ref(st, name, COFFER_PUT, &s) != COFFER_OK)
				_exit(7);
			size_t len = oracle_value(seed, ++j, val, sizeof val);
			logf_("A %s %" PRIu64 "\n", name, j);
			int rc = coffer_put(s, val, len, ver);
			if (rc != COFFER_OK)
				logf_("E put %d\n", rc);
			else
				logf_("K %s %s %" PRIu64 "\n", name, ver, j);
			coffer_secret_free(s);
		} else if (r < 90) {
			coffer_put_item items[3];
			static unsigned char bv[3][32768];
			coffer_secret *ss[3] = {0};
			uint64_t js[3];
			for (int i = 0; i < 3; i++) {
				secret_name(name, sizeof name,
				            oracle_mix(seed * 7 + (uint64_t)op * 3 + (uint64_t)i));
				if (coffer_secret_ref(st, name, COFFER_PUT, &ss[i]) != COFFER_OK)
					_exit(7);
				js[i] = ++j;
				items[i] = (coffer_put_item){
				    .secret = ss[i],
				    .value = bv[i],
				    .len = oracle_value(seed, j, bv[i], sizeof bv[i])};
				logf_("A %s %" PRIu64 "\n", name, j);
			}
			int rc = coffer_put_batch(st, items, 3);
			for (int i = 0; i < 3; i++) {
				if (rc == COFFER_OK && items[i].rc == COFFER_OK)
					logf_("K %s %s %" PRIu64 "\n", coffer_secret_name(ss[i]),
					      items[i].version, js[i]);
				coffer_secret_free(ss[i]);
			}
			if (rc != COFFER_OK)
				logf_("E batch %d\n", rc);
		} else if (r < 94) {
			uint32_t id = 0;
			int rc = coffer_rotate_data_key(st, &id);
			if (rc != COFFER_OK && rc != COFFER_EBUSY) /* EBUSY: the keyring is full */
				logf_("E rotate %d\n", rc);
		} else if (r < 97) {
			size_t n = 0;
			int rc = coffer_reencrypt(st, &n);
			if (rc != COFFER_OK)
				logf_("E reencrypt %d\n", rc);
		} else {
			int nk = !key;
			logf_("R %d\n", nk);
			coffer_options no = {.master_key_b64 = keys[nk]};
			int rc = coffer_rotate_master_key(st, &no, err, sizeof err);
			if (rc == COFFER_OK) {
				key = nk;
				logf_("r %d\n", nk);
			} else {
				logf_("E rekey %d\n", rc);
			}
		}
	}
	/* The workload ended before the chosen sync: the power goes now. */
	faultvfs_crash_now();
}

/* ---- the parent ---- */

typedef struct entry {
	char kind; /* 'A' attempt, 'K' acknowledged */
	char name[64];
	char version[COFFER_VERSION_MAX];
	uint64_t j;
} entry;

typedef struct stats {
	long iters, crashed_in_sync, lost, corrupt, unreadable, integrity_bad, open_bad, stray,
	    errors, acked, gaps, rekey_lost;
} stats;

static void fail_iter(const char *why, uint64_t seed, const char *dir)
{
	fprintf(stderr, "power loss: %s (seed %" PRIu64 ", store kept at %s)\n", why, seed, dir);
}

typedef struct vctx {
	coffer_store *st;
	const char *name;
	entry *log;
	int nlog;
	uint64_t seed;
	stats *s;
	uint64_t expect_next;
	int bad;
	uint64_t vers[256];
	int nver;
} vctx;

/* The listing only collects (the handle's mutex is held during the callback). */
static int collect_version(void *p, const coffer_version_info *info)
{
	vctx *c = p;
	uint64_t v = strtoull(info->version, NULL, 10);
	if (v != c->expect_next)
		c->s->gaps++;
	c->expect_next = v + 1;
	if (info->state == COFFER_STATE_ENABLED && c->nver < 256)
		c->vers[c->nver++] = v;
	return 0;
}

static void check_version(vctx *c, const char *version)
{
	/* The value the client put for this (secret, version): acknowledged, or one in flight
	 * for this secret (an attempt with no acknowledgement). */
	int found = 0, ok = 0, rc = 0;
	for (int i = 0; i < c->nlog && !ok; i++) {
		entry *e = &c->log[i];
		if (strcmp(e->name, c->name) != 0)
			continue;
		if (e->kind == 'K' && strcmp(e->version, version) != 0)
			continue;
		if (e->kind == 'A') {
			int acked = 0;
			for (int k = i + 1; k < c->nlog; k++)
				acked |= c->log[k].kind == 'K' && c->log[k].j == e->j;
			if (acked)
				continue;
		}
		found = 1;
		ok = oracle_reads(c->st, c->name, version, c->seed, e->j, &rc);
	}
	if (!ok) {
		if (found && rc != COFFER_OK)
			c->s->unreadable++;
		else
			c->s->corrupt++;
		fprintf(stderr, "  secret %s version %s: %s (rc %d)\n", c->name, version,
		        found ? "does not read back as put" : "was never put", rc);
		c->bad = 1;
	}
}

static int one_iteration(const char *dir, uint64_t seed, stats *s)
{
	/* A store with some history, made without faults. */
	coffer_options o = {.master_key_b64 = keys[0], .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[256];
	if (coffer_open(&st, dir, &o, err, sizeof err) != COFFER_OK) {
		fprintf(stderr, "create: %s\n", err);
		return -1;
	}
	coffer_close(st);

	long crash_at = 1 + (long)(oracle_mix(seed ^ 0xC0FFEE) % (normal_mode ? 12 : 70));
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		logfd = fds[1];
		child(dir, seed, crash_at, 0);
		_exit(1);
	}
	close(fds[1]);
	static char buf[MAXLOG * 128];
	size_t got = 0;
	ssize_t n;
	while ((n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	close(fds[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != FAULTVFS_POWER_LOST) {
		fail_iter("the workload did not end in a power loss", seed, dir);
		fprintf(stderr, "  status %d\n", status);
		return -1;
	}
	s->iters++;

	/* Parse the log. */
	static entry log[MAXLOG];
	int nlog = 0, key = 0, rekey_in_flight = -1;
	for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		entry *e = &log[nlog];
		if (line[0] == 'A' && sscanf(line, "A %63s %" SCNu64, e->name, &e->j) == 2) {
			e->kind = 'A';
			nlog++;
		} else if (line[0] == 'K' &&
		           sscanf(line, "K %63s %20s %" SCNu64, e->name, e->version, &e->j) == 3) {
			e->kind = 'K';
			nlog++;
			s->acked++;
		} else if (line[0] == 'R') {
			rekey_in_flight = atoi(line + 2);
		} else if (line[0] == 'r') {
			key = atoi(line + 2);
			rekey_in_flight = -1;
		} else if (line[0] == 'E') {
			s->errors++;
			rekey_in_flight = -1;
		}
	}

	char msg[256];
	int bad = 0;
	if (!oracle_integrity(dir, msg, sizeof msg)) {
		s->integrity_bad++;
		fprintf(stderr, "  integrity_check: %s\n", msg);
		bad = 1;
	}
	o.master_key_b64 = keys[key];
	int rc = coffer_open(&st, dir, &o, err, sizeof err);
	if (rc == COFFER_EKEY && rekey_in_flight >= 0) {
		o.master_key_b64 = keys[rekey_in_flight];
		rc = coffer_open(&st, dir, &o, err, sizeof err);
	} else if (rc == COFFER_EKEY && normal_mode) {
		/* NORMAL can lose an acknowledged rekey too: the store still has the old key. */
		o.master_key_b64 = keys[!key];
		rc = coffer_open(&st, dir, &o, err, sizeof err);
		if (rc == COFFER_OK)
			s->rekey_lost++;
	}
	if (rc != COFFER_OK) {
		s->open_bad++;
		fprintf(stderr, "  reopen: %s (%d)\n", err, rc);
		fail_iter("the store does not reopen", seed, dir);
		return -1;
	}
	/* Every acknowledged put. */
	for (int i = 0; i < nlog; i++) {
		if (log[i].kind != 'K')
			continue;
		if (!oracle_reads(st, log[i].name, log[i].version, seed, log[i].j, &rc)) {
			s->lost++;
			bad = 1;
			if (!normal_mode)
				fprintf(stderr, "  lost: %s@%s (rc %d)\n", log[i].name,
				        log[i].version, rc);
		}
	}
	/* Every version the store has. */
	for (uint64_t i = 0; i < NSECRETS; i++) {
		char name[64];
		secret_name(name, sizeof name, i);
		coffer_secret *sec = NULL;
		if (coffer_secret_ref(st, name, COFFER_ACCESS, &sec) != COFFER_OK)
			return -1;
		static vctx c;
		c = (vctx){.st = st,
		           .name = name,
		           .log = log,
		           .nlog = nlog,
		           .seed = seed,
		           .s = s,
		           .expect_next = 1};
		rc = coffer_list_versions(sec, collect_version, &c);
		for (int k = 0; k < c.nver; k++) {
			char v[COFFER_VERSION_MAX];
			snprintf(v, sizeof v, "%" PRIu64, c.vers[k]);
			check_version(&c, v);
		}
		if (rc != COFFER_OK && rc != COFFER_ENOTFOUND) {
			s->unreadable++;
			fprintf(stderr, "  list %s: %s\n", name, coffer_errmsg(st));
			c.bad = 1;
		}
		bad |= c.bad;
		/* Still writable. */
		coffer_secret_free(sec);
	}
	coffer_secret *w = NULL;
	if (coffer_secret_ref(st, "pl.after", COFFER_PUT, &w) != COFFER_OK ||
	    coffer_put(w, "x", 1, NULL) != COFFER_OK) {
		fprintf(stderr, "  put after reopen: %s\n", coffer_errmsg(st));
		bad = 1;
	}
	coffer_secret_free(w);
	coffer_close(st);
	char stray[256];
	if (oracle_stray_files(dir, NULL, stray, sizeof stray) != 0) {
		s->stray++;
		fprintf(stderr, "  stray file %s\n", stray);
		bad = 1;
	}
	if (bad && !normal_mode) {
		fail_iter("check failed", seed, dir);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	normal_mode = argc > 1 && strcmp(argv[1], "normal") == 0;
	const char *soak = getenv("COFFER_SOAK");
	long iters = soak != NULL && strcmp(soak, "1") == 0 ? 1000 : normal_mode ? 40 : 100;
	if (getenv("COFFER_POWERLOSS_ITERS") != NULL)
		iters = atol(getenv("COFFER_POWERLOSS_ITERS"));
	uint64_t seed0 = getenv("FAULT_SEED") != NULL
	                     ? strtoull(getenv("FAULT_SEED"), NULL, 10)
	                     : (uint64_t)time(NULL) * 1000 + (uint64_t)getpid();
	printf("power loss, synchronous=%s: %ld iterations from seed %" PRIu64 "\n",
	       normal_mode ? "NORMAL" : "FULL", iters, seed0);
	stats s = {0};
	int failed = 0;
	char base[4096];
	test_tmpdir(base, sizeof base);
	for (long i = 0; i < iters; i++) {
		char dir[4200];
		snprintf(dir, sizeof dir, "%s/s%ld", base, i);
		uint64_t seed = seed0 + (uint64_t)i;
		if (one_iteration(dir, seed, &s) != 0) {
			failed = 1;
			if (!normal_mode)
				break;
		} else {
			test_rmrf(dir);
		}
	}
	printf("iterations %ld, acknowledged puts %ld, lost %ld, corrupt accepted %ld, unreadable "
	       "%ld, integrity_check failures %ld, id gaps %ld, reopen failures %ld, stray files "
	       "%ld, failed operations %ld\n",
	       s.iters, s.acked, s.lost, s.corrupt, s.unreadable, s.integrity_bad, s.gaps,
	       s.open_bad, s.stray, s.errors);
	if (normal_mode) {
		printf("synchronous=NORMAL lost %ld of %ld acknowledged puts and %ld acknowledged "
		       "rekeys in %ld power losses (not asserted)\n",
		       s.lost, s.acked, s.rekey_lost, s.iters);
		return 0;
	}
	if (!failed)
		test_rmrf(base);
	return failed || s.iters != iters ? 1 : 0;
}
