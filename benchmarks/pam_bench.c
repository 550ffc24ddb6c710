/*
 * pam_bench - in-process PAM throughput, side by side.
 *
 *   pam_bench -C CONFDIR -s SERVICE:USERS[,SERVICE:USERS...] [-t THREADS[,THREADS...]]
 *             [-n AUTHS] [-d MAX_SECONDS] [-o FIRST_USER] [--seed S] [--prefix P] [--syslog-sink]
 *
 * For each thread count, for each service (in the order given), THREADS
 * threads loop
 *
 *     pam_start_confdir(SERVICE, user, conv, CONFDIR) ; PAM_RHOST, PAM_TTY ;
 *     pam_authenticate ; pam_end
 *
 * until AUTHS authentications are done (at most USERS of that service) or
 * MAX_SECONDS pass.  The conversation answers every prompt with the user's
 * right TOTP code, computed when the prompt arrives (secrets come from the
 * seed, bench_common.h: the same users and secrets the daemon, the
 * google-authenticator files and the users.oath file were given).
 *
 * Each service walks a ring over its USERS users (indices FIRST_USER ..
 * FIRST_USER+USERS-1, default from 0) and uses a user at most
 * once per 30 s step (every module here refuses a reused code); if the
 * users a run needs were already used in the current step it waits for the
 * next step before the run starts, never during it.
 *
 * --syslog-sink: if /dev/log does not exist (no syslog daemon), bind it for
 * the duration of the run and discard (count) what arrives, so modules that
 * log each login pay for a datagram as with a syslog daemon rather than
 * falling back to writing /dev/console (glibc does with LOG_CONS).  It is
 * removed at exit (and on SIGINT/SIGTERM/SIGHUP).
 *
 * Output: one line per run on stdout
 *     RESULT service=... threads=... auths=... secs=... rate=... p50_ms=... p99_ms=... ok=... failed=... log_lines=...
 * and a summary on stderr.  Exit status 1 if any authentication failed.
 */
#include "bench_common.h"

#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <syslog.h>
#include <sys/stat.h>

#include <security/pam_appl.h>

#define MAX_SERVICES 16
#define MAX_THREADS 64

struct service {
	char name[64];
	long users;
	long cursor;
	int64_t *last_step;
};

static struct service services[MAX_SERVICES];
static int nservices;
static int thread_counts[8] = { 1, 4 };
static int nthread_counts = 2;
static long auths = 2000;
static double max_seconds = 20;
static const char *confdir;
static const char *seed = DEFAULT_SEED, *prefix = DEFAULT_PREFIX;
static long first_index; /* users FIRST .. FIRST+USERS-1 */

/* Current run */
static struct service *cur;
static long run_limit;
static atomic_long next_auth, n_ok, n_failed;
static int64_t *lat;
static double deadline;
static volatile int stop_flag;
static char first_error[256];
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---------------------------------------------------------------- */
/* syslog sink */

static const char *sink_path;
static int sink_fd = -1;
static atomic_long sink_lines;
static volatile int sink_stop;
static pthread_t sink_thread;

static void sink_remove(void)
{
	if (sink_path != NULL) {
		unlink(sink_path);
		sink_path = NULL;
	}
}

static void sink_signal(int sig)
{
	if (sink_path != NULL)
		unlink(sink_path);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void *sink_main(void *arg)
{
	char buf[2048];
	(void)arg;
	while (!sink_stop) {
		struct pollfd p = { .fd = sink_fd, .events = POLLIN };
		if (poll(&p, 1, 100) > 0) {
			while (recv(sink_fd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
				atomic_fetch_add(&sink_lines, 1);
		}
	}
	return NULL;
}

static void sink_start(void)
{
	static const char *path = "/dev/log";
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "pam_bench: %s exists (a syslog daemon runs): log lines go there and are not counted\n", path);
		return;
	}
	sink_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	if (bind(sink_fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		fprintf(stderr, "pam_bench: cannot bind %s (%s): no syslog sink\n", path, strerror(errno));
		close(sink_fd);
		sink_fd = -1;
		return;
	}
	chmod(path, 0666);
	sink_path = path;
	atexit(sink_remove);
	signal(SIGINT, sink_signal);
	signal(SIGTERM, sink_signal);
	signal(SIGHUP, sink_signal);
	pthread_create(&sink_thread, NULL, sink_main, NULL);
}

static void sink_finish(void)
{
	if (sink_fd < 0)
		return;
	sink_stop = 1;
	pthread_join(sink_thread, NULL);
	sink_remove();
	close(sink_fd);
}

/* ---------------------------------------------------------------- */

struct convdata {
	long index;
	unsigned char secret[SECRET_LEN];
	int64_t step;
	int prompts;
};

static int conversation(int num_msg, const struct pam_message **msg, struct pam_response **resp, void *appdata)
{
	struct convdata *cd = appdata;
	struct pam_response *r = calloc((size_t)num_msg, sizeof *r);
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < num_msg; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			char code[7];
			cd->step = current_step();
			totp6(cd->secret, SECRET_LEN, cd->step, code);
			r[i].resp = strdup(code);
			cd->prompts++;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static void *worker(void *arg)
{
	(void)arg;
	struct convdata cd;
	struct pam_conv conv = { conversation, &cd };
	char user[64];
	while (!stop_flag) {
		long k = atomic_fetch_add(&next_auth, 1);
		if (k >= run_limit)
			break;
		long slot = (cur->cursor + k) % cur->users;
		long index = first_index + slot;
		user_name(user, sizeof user, prefix, index);
		memset(&cd, 0, sizeof cd);
		cd.index = index;
		user_secret(seed, index, cd.secret);
		int64_t t0 = now_ns();
		pam_handle_t *pamh = NULL;
		int rc = pam_start_confdir(cur->name, user, &conv, confdir, &pamh);
		if (rc == PAM_SUCCESS) {
			pam_set_item(pamh, PAM_RHOST, "127.0.0.1");
			pam_set_item(pamh, PAM_TTY, "ssh");
			rc = pam_authenticate(pamh, PAM_SILENT);
			pam_end(pamh, rc);
		}
		lat[k] = now_ns() - t0;
		if (rc == PAM_SUCCESS) {
			atomic_fetch_add(&n_ok, 1);
			if (cd.prompts > 0)
				cur->last_step[slot] = cd.step;
		} else {
			atomic_fetch_add(&n_failed, 1);
			pthread_mutex_lock(&err_lock);
			if (first_error[0] == '\0')
				snprintf(first_error, sizeof first_error, "%s user %s: %d %s", cur->name, user, rc, pam_strerror(NULL, rc));
			pthread_mutex_unlock(&err_lock);
		}
		if ((k & 15) == 0 && now_mono() > deadline)
			stop_flag = 1;
	}
	return NULL;
}

static void run(struct service *s, int threads)
{
	long limit = auths < s->users ? auths : s->users;
	/* A fresh step if any user of this run was used in the current one. */
	int64_t newest = -1;
	for (long k = 0; k < limit; k++) {
		int64_t v = s->last_step[(s->cursor + k) % s->users];
		if (v > newest)
			newest = v;
	}
	if (newest >= current_step()) {
		double t = now_wall();
		sleep_until_step(newest + 1);
		fprintf(stderr, "pam_bench: %s: waited %.1f s for a fresh 30 s step\n", s->name, now_wall() - t);
	}
	cur = s;
	run_limit = limit;
	atomic_store(&next_auth, 0);
	atomic_store(&n_ok, 0);
	atomic_store(&n_failed, 0);
	first_error[0] = '\0';
	stop_flag = 0;
	lat = calloc((size_t)limit, sizeof(int64_t));
	usleep(150000); /* let the sink drain the previous run's lines */
	long lines0 = atomic_load(&sink_lines);
	pthread_t th[MAX_THREADS];
	double t0 = now_mono();
	deadline = t0 + max_seconds;
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	double secs = now_mono() - t0;
	long n = atomic_load(&n_ok) + atomic_load(&n_failed);
	if (sink_fd >= 0)
		usleep(150000);
	long lines = sink_fd >= 0 ? atomic_load(&sink_lines) - lines0 : -1;
	s->cursor = (s->cursor + n) % s->users;
	int64_t *sorted = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
	long m = 0;
	for (long k = 0; k < limit; k++)
		if (lat[k] > 0)
			sorted[m++] = lat[k];
	qsort(sorted, (size_t)m, sizeof(int64_t), cmp_i64);
	fprintf(stderr, "pam_bench %-16s %d thread(s): %ld auths in %.2f s = %.0f/s; p50 %.3f ms p99 %.3f ms; failed %ld%s%s\n",
		s->name, threads, n, secs, (double)n / secs, pct_ms(sorted, m, 50), pct_ms(sorted, m, 99),
		atomic_load(&n_failed), first_error[0] ? "; first: " : "", first_error);
	printf("RESULT service=%s threads=%d users=%ld auths=%ld secs=%.3f rate=%.1f ok_rate=%.1f p50_ms=%.4f p99_ms=%.4f ok=%ld failed=%ld log_lines=%ld\n",
	       s->name, threads, s->users, n, secs, (double)n / secs, (double)atomic_load(&n_ok) / secs, pct_ms(sorted, m, 50),
	       pct_ms(sorted, m, 99), atomic_load(&n_ok), atomic_load(&n_failed), lines);
	fflush(stdout);
	free(sorted);
	free(lat);
}

static void usage(void)
{
	fprintf(stderr, "usage: pam_bench -C CONFDIR -s SERVICE:USERS[,...] [-t 1,4] [-n AUTHS] [-d MAX_SECONDS] [-o FIRST_USER]\n"
			"                 [--seed S] [--prefix P]\n"
			"                 [--syslog-sink]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seed", required_argument, NULL, 1 }, { "prefix", required_argument, NULL, 2 },
		{ "syslog-sink", no_argument, NULL, 3 }, { NULL, 0, NULL, 0 },
	};
	int ch, want_sink = 0;
	while ((ch = getopt_long(argc, argv, "C:s:t:n:d:o:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C': confdir = optarg; break;
		case 's': {
			char *list = strdup(optarg), *save = NULL;
			for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				char *colon = strchr(tok, ':');
				if (colon == NULL || nservices == MAX_SERVICES)
					usage();
				*colon = '\0';
				struct service *s = &services[nservices++];
				snprintf(s->name, sizeof s->name, "%s", tok);
				s->users = atol(colon + 1);
				if (s->users <= 0)
					usage();
				s->last_step = malloc((size_t)s->users * sizeof(int64_t));
				for (long i = 0; i < s->users; i++)
					s->last_step[i] = -1;
			}
			break;
		}
		case 't': {
			nthread_counts = 0;
			char *list = strdup(optarg), *save = NULL;
			for (char *tok = strtok_r(list, ",", &save); tok && nthread_counts < 8; tok = strtok_r(NULL, ",", &save)) {
				int t = atoi(tok);
				if (t < 1 || t > MAX_THREADS)
					usage();
				thread_counts[nthread_counts++] = t;
			}
			break;
		}
		case 'n': auths = atol(optarg); break;
		case 'o': first_index = atol(optarg); break;
		case 'd': max_seconds = atof(optarg); break;
		case 1: seed = optarg; break;
		case 2: prefix = optarg; break;
		case 3: want_sink = 1; break;
		default: usage();
		}
	}
	if (confdir == NULL || nservices == 0 || auths <= 0)
		usage();
	if (want_sink)
		sink_start();
	long failed = 0;
	for (int t = 0; t < nthread_counts; t++) {
		for (int i = 0; i < nservices; i++) {
			run(&services[i], thread_counts[t]);
			failed += atomic_load(&n_failed);
		}
	}
	sink_finish();
	return failed ? 1 : 0;
}
