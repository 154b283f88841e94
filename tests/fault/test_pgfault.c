/*
 * PostgreSQL faults, with the oracle of the SQLite fault tests.
 *
 *   test_pgfault cut       the store talks to the server through a TCP proxy in this process
 *                          that cuts every connection after a random number of bytes, client to
 *                          server (inside a transaction, inside COMMIT) or server to client (the
 *                          answer to COMMIT lost: outcome unknown), once per round, over puts,
 *                          batches, data-key rotation and re-encryption.
 *   test_pgfault restart   the server is stopped with -m immediate (pg_server.sh crash) while
 *                          a re-encryption or a rekey runs, then started again: the pass is
 *                          run again to its end, and every version decrypts under the key the
 *                          store names; the store opens with exactly one master key (the new
 *                          one after a rekey that returned OK). Stops the shared server: serial.
 *   test_pgfault timeout   a put waits on a lock another session holds, past the store's
 *                          statement_timeout (set in the URL).
 * Afterwards, through a direct connection: every acknowledged put reads back exactly; every
 * version the store lists is a value the client put for that secret, and never one whose put
 * failed with an error other than COFFER_EUNAVAIL (outcome unknown); every call returned OK or
 * an error from the list. COFFER_TEST_STORE is the database URL (tests/pg/run_with_db.sh).
 * Rounds: 60, 1,500 with COFFER_SOAK=1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coffer.h"
#include "oracle.h"
#include "testutil.h"

/* ---- the proxy ---- */

#define MAXPAIRS 32
static int lfd, pg_port;
static int pairs[MAXPAIRS][2]; /* client, server; -1 free */
static pthread_mutex_t pmu = PTHREAD_MUTEX_INITIALIZER;
static long cut_left = -1; /* bytes to let through before the cut, -1: never */
static int cut_dir;        /* 0: client to server, 1: server to client */
static atomic_int cuts_done;

static void close_all_locked(void)
{
	for (int i = 0; i < MAXPAIRS; i++)
		if (pairs[i][0] >= 0) {
			close(pairs[i][0]);
			close(pairs[i][1]);
			pairs[i][0] = pairs[i][1] = -1;
		}
}

static void *proxy(void *arg)
{
	for (;;) {
		struct pollfd p[1 + 2 * MAXPAIRS];
		int idx[1 + 2 * MAXPAIRS], n = 0;
		pthread_mutex_lock(&pmu);
		p[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
		idx[n++] = -1;
		for (int i = 0; i < MAXPAIRS; i++)
			if (pairs[i][0] >= 0)
				for (int d = 0; d < 2; d++) {
					p[n] = (struct pollfd){.fd = pairs[i][d], .events = POLLIN};
					idx[n++] = i * 2 + d;
				}
		pthread_mutex_unlock(&pmu);
		if (poll(p, (nfds_t)n, 100) <= 0)
			continue;
		pthread_mutex_lock(&pmu);
		if (p[0].revents & POLLIN) {
			int c = accept(lfd, NULL, NULL);
			int s = socket(AF_INET, SOCK_STREAM, 0);
			struct sockaddr_in a = {.sin_family = AF_INET,
			                        .sin_port = htons((uint16_t)pg_port)};
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			int slot = -1;
			for (int i = 0; i < MAXPAIRS && slot < 0; i++)
				if (pairs[i][0] < 0)
					slot = i;
			if (c >= 0 && s >= 0 && slot >= 0 &&
			    connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
				pairs[slot][0] = c;
				pairs[slot][1] = s;
			} else {
				if (getenv("FAULT_VERBOSE") != NULL)
					fprintf(stderr, "proxy: cannot pair (%d %d %d): %s\n", c, s,
					        slot, strerror(errno));
				if (c >= 0)
					close(c);
				if (s >= 0)
					close(s);
			}
		}
		for (int k = 1; k < n; k++) {
			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int i = idx[k] / 2, d = idx[k] % 2;
			if (pairs[i][d] != p[k].fd)
				continue; /* closed meanwhile */
			char buf[16384];
			ssize_t got = read(pairs[i][d], buf, sizeof buf);
			if (got <= 0) {
				if (getenv("FAULT_VERBOSE") != NULL)
					fprintf(stderr, "proxy: pair %d side %d closed (%zd)\n", i,
					        d, got);
				close(pairs[i][0]);
				close(pairs[i][1]);
				pairs[i][0] = pairs[i][1] = -1;
				continue;
			}
			size_t pass = (size_t)got;
			int cut = 0;
			if (cut_left >= 0 && cut_dir == d) {
				if ((long)pass >= cut_left) {
					pass = (size_t)cut_left;
					cut = 1;
				}
				cut_left -= (long)pass;
			}
			if (pass > 0 && write(pairs[i][!d], buf, pass) != (ssize_t)pass) {
				close(pairs[i][0]);
				close(pairs[i][1]);
				pairs[i][0] = pairs[i][1] = -1;
			}
			if (cut) {
				close_all_locked();
				cut_left = -1;
				cuts_done++;
				break;
			}
		}
		pthread_mutex_unlock(&pmu);
	}
	return NULL;
}

static int start_proxy(void)
{
	for (int i = 0; i < MAXPAIRS; i++)
		pairs[i][0] = pairs[i][1] = -1;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof a;
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 16) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	pthread_t t;
	if (pthread_create(&t, NULL, proxy, NULL) != 0)
		return -1;
	pthread_detach(t);
	return ntohs(a.sin_port);
}

/* The URL with its port replaced (and `extra` appended as a query). */
static int url_with(const char *url, int port, const char *extra, char *out, size_t len)
{
	const char *at = strrchr(url, '@');
	const char *colon = at != NULL ? strchr(at, ':') : NULL;
	const char *slash = colon != NULL ? strchr(colon, '/') : NULL;
	if (slash == NULL)
		return -1;
	if (port == 0)
		port = atoi(colon + 1);
	snprintf(out, len, "%.*s:%d%s%s%s", (int)(colon - url), url, port, slash,
	         extra != NULL ? (strchr(slash, '?') ? "&" : "?") : "", extra != NULL ? extra : "");
	return 0;
}

/* ---- the workload and the oracle ---- */

#define NSEC 3
typedef struct attempt {
	char name[32];
	uint64_t j;
	int rc;
	char version[COFFER_VERSION_MAX];
} attempt;
static attempt att[8192];
static int natt;
static long bad_rc;
static const uint64_t SEED = 4242;

static int listed(int rc)
{
	return rc <= 0 && rc >= COFFER_EFULL;
}

static int open_url(coffer_store **st, const char *url)
{
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	char err[256];
	int rc = coffer_open(st, url, &o, err, sizeof err);
	if (rc != COFFER_OK)
		fprintf(stderr, "open: %s\n", err);
	return rc;
}

static int collect(void *ctx, const coffer_version_info *i)
{
	uint64_t *v = ctx;
	if (i->state == COFFER_STATE_ENABLED && v[0] < 4000)
		v[++v[0]] = strtoull(i->version, NULL, 10);
	return 0;
}

static int check(const char *direct)
{
	coffer_store *st = NULL;
	if (open_url(&st, direct) != COFFER_OK)
		return 1;
	long lost = 0, corrupt = 0, failed_stored = 0, acked = 0;
	for (int i = 0; i < natt; i++) {
		if (att[i].rc != COFFER_OK)
			continue;
		acked++;
		int rc;
		if (!oracle_reads(st, att[i].name, att[i].version, SEED, att[i].j, &rc)) {
			lost++;
			fprintf(stderr, "  lost %s@%s (rc %d)\n", att[i].name, att[i].version, rc);
		}
	}
	static uint64_t vers[4001];
	for (int s = 0; s < NSEC; s++) {
		char name[32];
		snprintf(name, sizeof name, "pgf.%d", s);
		coffer_secret *sec = NULL;
		if (coffer_secret_ref(st, name, COFFER_ACCESS, &sec) != COFFER_OK)
			return 1;
		vers[0] = 0;
		int rc = coffer_list_versions(sec, collect, vers);
		coffer_secret_free(sec);
		if (rc != COFFER_OK && rc != COFFER_ENOTFOUND) {
			fprintf(stderr, "  list %s: %s\n", name, coffer_errmsg(st));
			corrupt++;
			continue;
		}
		for (uint64_t k = 1; k <= vers[0]; k++) {
			char v[COFFER_VERSION_MAX];
			snprintf(v, sizeof v, "%" PRIu64, vers[k]);
			int found = -1;
			for (int i = 0; i < natt && found < 0; i++) {
				if (strcmp(att[i].name, name) != 0)
					continue;
				if (att[i].rc == COFFER_OK && strcmp(att[i].version, v) != 0)
					continue;
				int r2;
				if (oracle_reads(st, name, v, SEED, att[i].j, &r2))
					found = i;
			}
			if (found < 0) {
				corrupt++;
				fprintf(stderr, "  %s@%s is no value put\n", name, v);
			} else if (att[found].rc != COFFER_OK && att[found].rc != COFFER_EUNAVAIL) {
				failed_stored++;
				fprintf(stderr, "  %s@%s stored although its put failed with %d\n",
				        name, v, att[found].rc);
			}
		}
	}
	coffer_close(st);
	printf("attempts %d, acknowledged %ld, lost %ld, corrupt %ld, stored despite a definite "
	       "error %ld, calls returning codes outside the list %ld\n",
	       natt, acked, lost, corrupt, failed_stored, bad_rc);
	return lost || corrupt || failed_stored || bad_rc;
}

static void put_one(coffer_store *st, const char *name, uint64_t j)
{
	static unsigned char v[32768];
	attempt *a = &att[natt++];
	snprintf(a->name, sizeof a->name, "%s", name);
	a->j = j;
	coffer_secret *s = NULL;
	a->rc = coffer_secret_ref(st, name, COFFER_PUT, &s);
	if (a->rc == COFFER_OK)
		a->rc = coffer_put(s, v, oracle_value(SEED, j, v, sizeof v), a->version);
	if (a->rc != COFFER_OK && getenv("FAULT_VERBOSE") != NULL)
		fprintf(stderr, "put %s: %d %s\n", name, a->rc, coffer_errmsg(st));
	coffer_secret_free(s);
	if (!listed(a->rc))
		bad_rc++;
}

static int count_none(void *ctx, const char *name, size_t n)
{
	return 0;
}

static int run_cut(const char *url)
{
	char direct[2048], proxied[2048];
	pg_port = 0;
	if (url_with(url, 0, NULL, direct, sizeof direct) != 0)
		return 1;
	const char *colon = strchr(strrchr(url, '@'), ':');
	pg_port = atoi(colon + 1);
	int pport = start_proxy();
	if (pport < 0 || url_with(url, pport, "connect_timeout=5", proxied, sizeof proxied) != 0)
		return 1;
	const char *soak = getenv("COFFER_SOAK");
	int rounds = soak != NULL && strcmp(soak, "1") == 0 ? 1500 : 60;
	uint64_t seed = getenv("FAULT_SEED") != NULL ? strtoull(getenv("FAULT_SEED"), NULL, 10)
	                                             : (uint64_t)time(NULL);
	printf("connection cuts: %d rounds from seed %" PRIu64 "\n", rounds, seed);
	coffer_store *st = NULL;
	if (open_url(&st, proxied) != COFFER_OK)
		return 1;
	uint64_t j = 0;
	for (int r = 0; r < rounds; r++) {
		uint64_t h = oracle_mix(seed + (uint64_t)r);
		/* Reconnected before the fault is armed (after a failed reconnect the store fails
		 * fast for PG_RETRY_PAUSE_MS, 200 ms), so each cut lands in this round's own calls.
		 */
		for (int k = 0; k < 100 && coffer_list_secrets(st, count_none, NULL) != COFFER_OK;
		     k++)
			usleep(50000);
		pthread_mutex_lock(&pmu);
		cut_dir = (int)(h % 2);
		cut_left = (long)((h >> 8) % (cut_dir ? 600 : 1500));
		pthread_mutex_unlock(&pmu);
		uint64_t what = (h >> 20) % 20;
		char name[32];
		snprintf(name, sizeof name, "pgf.%d", (int)((h >> 28) % NSEC));
		if (what < 15) {
			put_one(st, name, ++j);
		} else if (what < 17) {
			/* a batch */
			static unsigned char v[2][32768];
			coffer_secret *ss[2] = {0};
			coffer_put_item it[2];
			int rc = COFFER_OK;
			for (int i = 0; i < 2 && rc == COFFER_OK; i++) {
				snprintf(name, sizeof name, "pgf.%d",
				         (int)((h >> (32 + i)) % NSEC));
				rc = coffer_secret_ref(st, name, COFFER_PUT, &ss[i]);
				it[i] =
				    (coffer_put_item){.secret = ss[i],
				                      .value = v[i],
				                      .len = oracle_value(SEED, j + 1 + (uint64_t)i,
				                                          v[i], sizeof v[i])};
			}
			if (rc == COFFER_OK)
				rc = coffer_put_batch(st, it, 2);
			for (int i = 0; i < 2; i++) {
				attempt *a = &att[natt++];
				snprintf(a->name, sizeof a->name, "%s",
				         ss[i] != NULL ? coffer_secret_name(ss[i]) : "none");
				a->j = ++j;
				a->rc = rc == COFFER_OK ? it[i].rc : rc;
				if (a->rc == COFFER_OK)
					memcpy(a->version, it[i].version, COFFER_VERSION_MAX);
				coffer_secret_free(ss[i]);
			}
			if (!listed(rc))
				bad_rc++;
		} else if (what < 19) {
			int rc = coffer_rotate_data_key(st, NULL);
			if (!listed(rc))
				bad_rc++;
		} else {
			size_t n = 0;
			int rc = coffer_reencrypt(st, &n);
			if (!listed(rc))
				bad_rc++;
		}
		pthread_mutex_lock(&pmu);
		cut_left = -1;
		pthread_mutex_unlock(&pmu);
	}
	coffer_close(st);
	printf("connections cut: %d\n", (int)cuts_done);
	return check(direct);
}

/* A put waits on a lock held by another session, past statement_timeout: an error, nothing
 * stored; once the lock goes, the same handle puts again. */
static int run_timeout(const char *url)
{
	char direct[2048], timed[2048];
	if (url_with(url, 0, NULL, direct, sizeof direct) != 0 ||
	    url_with(url, 0, "options=-c%20statement_timeout%3D300", timed, sizeof timed) != 0)
		return 1;
	coffer_store *st = NULL;
	if (open_url(&st, timed) != COFFER_OK)
		return 1;
	put_one(st, "pgf.0", 1);
	if (att[0].rc != COFFER_OK)
		return 1;
	/* psql holds an exclusive lock on coffer_secrets for 3 s. */
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		execlp("psql", "psql", "-X", "-q", "-o", "/dev/null", "-d", direct, "-c",
		       "BEGIN; LOCK TABLE coffer_secrets IN ACCESS EXCLUSIVE MODE; SELECT "
		       "pg_sleep(3); COMMIT;",
		       (char *)NULL);
		_exit(127);
	}
	/* wait until the lock is held */
	coffer_store *probe = NULL;
	for (int i = 0; i < 100; i++) {
		usleep(50000);
		char cmd[2300];
		snprintf(
		    cmd, sizeof cmd,
		    "psql -X -q -t -A -d '%s' -c \"SELECT count(*) FROM pg_locks l JOIN pg_class c "
		    "ON c.oid = l.relation WHERE c.relname = 'coffer_secrets' AND l.mode = "
		    "'AccessExclusiveLock' AND l.granted\" | grep -q '^1$'",
		    direct);
		if (system(cmd) == 0)
			break;
	}
	(void)probe;
	put_one(st, "pgf.0", 2);
	int rc = att[1].rc;
	printf("put under a held lock with statement_timeout=300ms: %d (%s): %s\n", rc,
	       coffer_strerror(rc), rc != COFFER_OK ? coffer_errmsg(st) : "");
	int status;
	waitpid(pid, &status, 0);
	int bad = rc == COFFER_OK || !listed(rc);
	put_one(st, "pgf.0", 3);
	if (att[2].rc != COFFER_OK) {
		fprintf(stderr, "the same handle cannot put after the timeout: %s\n",
		        coffer_errmsg(st));
		bad = 1;
	}
	coffer_close(st);
	return check(direct) || bad;
}

/* ---- restart during rotation ---- */

typedef struct rot_job {
	coffer_store *st;
	int rekey;
	const char *new_key;
	int rc;
} rot_job;

static void *rotate_thread(void *p)
{
	rot_job *j = p;
	if (j->rekey) {
		coffer_options nk = {.master_key_b64 = j->new_key};
		char err[256];
		j->rc = coffer_rotate_master_key(j->st, &nk, err, sizeof err);
	} else {
		size_t n = 0;
		j->rc = coffer_reencrypt(j->st, &n);
	}
	return NULL;
}

static int pg_script(const char *verb)
{
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "'%s' %s '%s'", getenv("COFFER_PG_SCRIPT"), verb,
	         getenv("COFFER_PG_STATE"));
	return system(cmd);
}

static int open_key(coffer_store **st, const char *url, const char *key)
{
	coffer_options o = {.master_key_b64 = key, .flags = COFFER_OPEN_NO_ENV};
	char err[256];
	return coffer_open(st, url, &o, err, sizeof err);
}

static int run_restart(const char *url)
{
	if (getenv("COFFER_PG_SCRIPT") == NULL || getenv("COFFER_PG_STATE") == NULL)
		return 77;
	const char *soak = getenv("COFFER_SOAK");
	int rounds = soak != NULL && strcmp(soak, "1") == 0 ? 20 : 4;
	uint64_t seed = getenv("FAULT_SEED") != NULL ? strtoull(getenv("FAULT_SEED"), NULL, 10)
	                                             : (uint64_t)time(NULL);
	printf("server restarts during rotation: %d rounds from seed %" PRIu64 "\n", rounds, seed);
	const char *keys[2] = {TEST_MASTER_KEY, TEST_OTHER_KEY};
	int key = 0, bad = 0;
	uint64_t j = 0;
	for (int r = 0; r < rounds && !bad; r++) {
		coffer_store *st = NULL;
		if (open_key(&st, url, keys[key]) != COFFER_OK) {
			fprintf(stderr, "round %d: the store does not open with its key\n", r);
			return 1;
		}
		/* Versions under the current data key, then a new one for the pass to move them to.
		 */
		for (int i = 0; i < 80; i++) {
			char name[32];
			snprintf(name, sizeof name, "pgf.%d", i % NSEC);
			put_one(st, name, ++j);
		}
		if (coffer_rotate_data_key(st, NULL) != COFFER_OK)
			return 1;
		rot_job job = {.st = st, .rekey = r % 2, .new_key = keys[!key]};
		pthread_t t;
		pthread_create(&t, NULL, rotate_thread, &job);
		/* A rekey is one short transaction: the crash comes sooner for it. */
		usleep((useconds_t)(oracle_mix(seed + (uint64_t)r) % (job.rekey ? 8000 : 100000)));
		pg_script("crash");
		pthread_join(t, NULL);
		if (pg_script("restart") != 0) {
			fprintf(stderr, "cannot restart the server\n");
			return 1;
		}
		if (!listed(job.rc))
			bad_rc++;
		printf("round %d: %s during the crash returned %d (%s)\n", r,
		       job.rekey ? "rekey" : "reencrypt", job.rc, coffer_strerror(job.rc));
		coffer_close(st);
		/* Which key the store names: exactly one of the two opens it. */
		coffer_store *a = NULL, *b = NULL;
		int ra = open_key(&a, url, keys[key]), rb = open_key(&b, url, keys[!key]);
		coffer_close(a);
		coffer_close(b);
		if ((ra == COFFER_OK) == (rb == COFFER_OK)) {
			fprintf(stderr, "round %d: old key %d, new key %d: not exactly one opens\n",
			        r, ra, rb);
			bad = 1;
			break;
		}
		if (job.rekey && job.rc == COFFER_OK && rb != COFFER_OK) {
			fprintf(stderr, "round %d: an acknowledged rekey was lost\n", r);
			bad = 1;
		}
		if (job.rekey && job.rc != COFFER_OK && job.rc != COFFER_EUNAVAIL &&
		    rb == COFFER_OK) {
			fprintf(stderr, "round %d: a rekey that failed (%d) took effect\n", r,
			        job.rc);
			bad = 1;
		}
		if (rb == COFFER_OK)
			key = !key;
		/* The pass again, to its end. */
		if (open_key(&st, url, keys[key]) != COFFER_OK)
			return 1;
		size_t n = 0;
		int rc = coffer_reencrypt(st, &n);
		if (rc != COFFER_OK) {
			fprintf(stderr, "round %d: re-encryption after the restart: %s\n", r,
			        coffer_errmsg(st));
			bad = 1;
		}
		coffer_close(st);
	}
	/* check() opens with TEST_MASTER_KEY: hand it the key the store names now. */
	if (key != 0) {
		coffer_store *st = NULL;
		coffer_options nk = {.master_key_b64 = TEST_MASTER_KEY};
		char err[256];
		if (open_key(&st, url, keys[key]) != COFFER_OK ||
		    coffer_rotate_master_key(st, &nk, err, sizeof err) != COFFER_OK)
			return 1;
		coffer_close(st);
	}
	return check(url) || bad;
}

int main(int argc, char **argv)
{
	const char *url = getenv("COFFER_TEST_STORE");
	if (url == NULL || strncmp(url, "postgres", 8) != 0) {
		fprintf(stderr, "COFFER_TEST_STORE is not a PostgreSQL URL: skipped\n");
		return 77;
	}
	if (argc > 1 && strcmp(argv[1], "timeout") == 0)
		return run_timeout(url);
	if (argc > 1 && strcmp(argv[1], "restart") == 0)
		return run_restart(url);
	return run_cut(url);
}
