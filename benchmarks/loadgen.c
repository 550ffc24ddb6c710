/*
 * loadgen - load generator for twofoldd over its Unix socket.
 *
 *   loadgen -s SOCKET [-s SOCKET...] -N USERS [-m verify|wrong|enroll] [-c CLIENTS] [-n OPS]
 *           [-w WARMUP] [-d MAX_SECONDS] [-p DAEMON_PID] [-P LABEL:PID,...] [-S STATE_FILE]
 *           [-T IO_TIMEOUT_S] [--seed SEED] [--prefix PREFIX] [--label TEXT] [--allow-failures]
 *
 * One thread per client, blocking sockets (64 threads on this machine cost
 * less than the daemon's work per dialog; `stubd` measures the ceiling of
 * this generator against a trivial C server).  Each client repeats, until
 * OPS operations are done or MAX_SECONDS pass:
 *
 *   verify  connect; AUTH_START(user, sshd, 127.0.0.1, ssh) -> PROMPT ->
 *           ANSWER(the right TOTP code, computed when the prompt arrives)
 *           -> VERDICT SUCCESS; close.  (What pam_twofold.so does.)
 *   wrong   the same with a code that matches no step of the window:
 *           VERDICT FAILURE (the daemon must run with throttle_delay_ms = 0,
 *           or the back-off delay is what is measured).
 *   enroll  one connection per new user "be<index>": REQUEST enrollBegin ->
 *           code from the offered secret -> enrollVerify + enrollActivate
 *           (or enrollConfirm on daemons that predate them).
 *
 * Users: index i is PREFIX + %07d, its secret is derived from SEED and i
 * (bench_common.h).  verify/wrong walk a ring over the N users starting at
 * the cursor kept in STATE_FILE; a user is used at most once per 30 s step
 * (replay protection would refuse a second code in the same step): before
 * the run starts, if any of the users it needs was already used in the
 * current step, loadgen waits for the next step, so no run ever mixes in a
 * wait.  Hence OPS + WARMUP <= N.
 *
 * Every socket send/receive gives up after IO_TIMEOUT_S (default 20): a daemon that stops
 * answering fails the run (a connection error) instead of hanging it; the run itself stops
 * handing out operations after MAX_SECONDS.
 *
 * Several -s (up to 256: several daemons on one database, or a fleet's relays): user i's dialogs
 * go to socket i % count, so every daemon serves its share and no user is split between them.
 *
 * Latency is per dialog, from connect() to the verdict (or, for enroll,
 * to the last response).  With -p it reads the daemon's utime+stime and
 * resets/reads its VmHWM around the measured part.  -P LABEL:PID,PID,... (up to
 * 8 groups; many processes, e.g. a fleet's relays, servers and PostgreSQL) adds
 * "cpu_s_LABEL=" to RESULT: the group's utime+stime over the measured part
 * only (the same interval as -p); a PID written +PID also counts its children
 * as they are at each reading and its reaped children (PostgreSQL's postmaster
 * and its backends).
 *
 * Output: a human summary on stderr and one machine-readable line on
 * stdout:  RESULT key=value ...
 * Exit status: 0; 1 if any operation ended otherwise than expected (unless
 * --allow-failures); 2 on a usage or setup error.
 */
#include "bench_common.h"

#include <dirent.h>
#include <getopt.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

enum mode { M_VERIFY, M_WRONG, M_ENROLL };

struct state_file {
	uint64_t magic;
	int64_t nusers;
	int64_t cursor;        /* next ring position for verify/wrong */
	int64_t enroll_next;   /* next "be" index for enroll */
	int64_t last_step[];   /* step of the last accepted code, per user; -1 none */
};
#define STATE_MAGIC 0x7466626e63683031ULL /* "tfbnch01" */

static struct {
	const char *socket;
	/* -s given several times: each dialog goes to sockets[user index % nsockets] (several daemons on
	 * one database, or the relays of a simulated fleet). */
	const char *sockets[256];
	int nsockets;
	enum mode mode;
	int clients;
	long nusers, ops, warmup;
	double max_seconds;
	int pid;
	const char *state_path;
	const char *seed, *prefix, *label;
	int allow_failures;
} opt = { .mode = M_VERIFY, .clients = 1, .ops = -1, .warmup = 0, .max_seconds = 60,
	  .seed = DEFAULT_SEED, .prefix = DEFAULT_PREFIX, .label = "" };

static struct state_file *st;
static struct state_file st_private;

/* -P groups of processes whose CPU is measured over the measured part. */
#define MAX_CPU_GROUPS 8
#define MAX_GROUP_PIDS 512
static struct cpu_group {
	const char *label;
	int npids;
	int pids[MAX_GROUP_PIDS];
	char tree[MAX_GROUP_PIDS]; /* +PID: with its children */
	double before;
} cpu_groups[MAX_CPU_GROUPS];
static int ncpu_groups;

static double group_cpu_seconds(const struct cpu_group *g)
{
	long long ticks = 0;
	int any_tree = 0;
	for (int i = 0; i < g->npids; i++) {
		long long t = proc_ticks(g->pids[i], g->tree[i], NULL);
		ticks += t > 0 ? t : 0;
		any_tree |= g->tree[i];
	}
	if (any_tree) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL) {
			int pid = atoi(e->d_name), parent = 0;
			if (pid <= 0)
				continue;
			long long t = proc_ticks(pid, 0, &parent);
			for (int i = 0; i < g->npids && t > 0; i++)
				if (g->tree[i] && g->pids[i] == parent) {
					ticks += t;
					break;
				}
		}
		if (d)
			closedir(d);
	}
	return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static void parse_cpu_group(char *spec)
{
	char *colon = strchr(spec, ':');
	if (colon == NULL || colon == spec || ncpu_groups == MAX_CPU_GROUPS)
		die("-P LABEL:PID,PID,... (at most %d groups)", MAX_CPU_GROUPS);
	*colon = '\0';
	struct cpu_group *g = &cpu_groups[ncpu_groups++];
	g->label = spec;
	for (char *tok = strtok(colon + 1, ","); tok != NULL; tok = strtok(NULL, ",")) {
		if (g->npids == MAX_GROUP_PIDS)
			die("-P %s: at most %d processes", spec, MAX_GROUP_PIDS);
		g->tree[g->npids] = tok[0] == '+';
		g->pids[g->npids] = atoi(tok + (tok[0] == '+'));
		if (g->pids[g->npids] <= 0)
			die("-P %s: not a pid: %s", spec, tok);
		g->npids++;
	}
}

/* Run-time shared state. */
static atomic_long next_op;        /* operations handed out in the current phase */
static long phase_limit;           /* operations in the current phase */
static volatile int phase_stop;    /* the time limit passed */
static double phase_deadline;
static int64_t *latency_ns;        /* per measured operation */
static atomic_long done_ok, done_bad, done_conn_err;
static atomic_long verdict_counts[8];
static pthread_barrier_t barrier;
static int measuring;              /* 0 warmup, 1 measured */
static int enroll_api = -1;        /* -1 unknown, 1 enrollVerify+Activate, 0 enrollConfirm */
static pthread_mutex_t api_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[512];
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note_error(const char *fmt, ...)
{
	pthread_mutex_lock(&err_lock);
	if (first_error[0] == '\0') {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(first_error, sizeof first_error, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&err_lock);
}

/* ---------------------------------------------------------------- */

static void open_state(void)
{
	if (opt.state_path == NULL) {
		st = calloc(1, sizeof st_private + (size_t)opt.nusers * sizeof(int64_t));
		if (st == NULL)
			die("out of memory");
		st->magic = STATE_MAGIC;
		st->nusers = opt.nusers;
		for (long i = 0; i < opt.nusers; i++)
			st->last_step[i] = -1;
		return;
	}
	size_t size = sizeof st_private + (size_t)opt.nusers * sizeof(int64_t);
	int fd = open(opt.state_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		die("cannot open %s: %s", opt.state_path, strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) != 0)
		die("fstat %s: %s", opt.state_path, strerror(errno));
	int fresh = sb.st_size == 0;
	if (fresh && ftruncate(fd, (off_t)size) != 0)
		die("ftruncate %s: %s", opt.state_path, strerror(errno));
	if (!fresh && (size_t)sb.st_size != size)
		die("%s was made for another user count (delete it)", opt.state_path);
	st = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (st == MAP_FAILED)
		die("mmap %s: %s", opt.state_path, strerror(errno));
	close(fd);
	if (fresh) {
		st->magic = STATE_MAGIC;
		st->nusers = opt.nusers;
		for (long i = 0; i < opt.nusers; i++)
			st->last_step[i] = -1;
	} else if (st->magic != STATE_MAGIC || st->nusers != opt.nusers) {
		die("%s is not a loadgen state file for %ld users", opt.state_path, opt.nusers);
	}
}

/* ---------------------------------------------------------------- */
/* One verify dialog. Returns the verdict code, or -1 on a connection/protocol error. */

static int verify_dialog(struct conn *c, long index, int wrong)
{
	char user[64], code[7];
	unsigned char secret[SECRET_LEN];
	struct frame_out f;
	int verdict = -1;
	int64_t used_step = -1;

	user_name(user, sizeof user, opt.prefix, index);
	user_secret(opt.seed, index, secret);
	const char *path = opt.sockets[index % opt.nsockets];
	int fd = unix_connect(path);
	if (fd < 0) {
		note_error("connect %s: %s", path, strerror(errno));
		return -1;
	}
	conn_init(c, fd);
	fo_begin(&f, T_AUTH_START);
	fo_text(&f, F_USER, user);
	fo_text(&f, F_SERVICE, "sshd");
	fo_text(&f, F_RHOST, "127.0.0.1");
	fo_text(&f, F_TTY, "ssh");
	fo_end(&f);
	if (write_all(fd, f.buf, f.len) != 0) {
		note_error("send AUTH_START: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		unsigned char *body;
		long n = conn_read_frame(c, &body);
		if (n <= 0) {
			if (n < 0 && errno == ETIMEDOUT)
				note_error("user %s: no answer from the daemon within %d s", user, io_timeout_s);
			else
				note_error("user %s: connection closed before the verdict", user);
			goto out;
		}
		switch (body[1]) {
		case T_PROMPT_ECHO_OFF:
		case T_PROMPT_ECHO_ON: {
			int64_t step = current_step();
			if (wrong)
				wrong_code(secret, SECRET_LEN, step, code);
			else
				totp6(secret, SECRET_LEN, step, code);
			used_step = step;
			fo_begin(&f, T_ANSWER);
			fo_text(&f, F_TEXT, code);
			fo_end(&f);
			if (write_all(fd, f.buf, f.len) != 0) {
				note_error("send ANSWER: %s", strerror(errno));
				goto out;
			}
			break;
		}
		case T_INFO:
		case T_ERROR_MSG:
			break;
		case T_VERDICT: {
			const unsigned char *v;
			if (frame_field(body, n, F_RESULT, &v) != 1) {
				note_error("VERDICT without RESULT");
				goto out;
			}
			verdict = v[0];
			goto out;
		}
		case T_PROTOCOL_ERROR: {
			const unsigned char *v;
			long len = frame_field(body, n, F_TEXT, &v);
			note_error("PROTOCOL_ERROR: %.*s", (int)(len > 0 ? len : 0), len > 0 ? (const char *)v : "");
			goto out;
		}
		default:
			note_error("unexpected message type 0x%02x", body[1]);
			goto out;
		}
	}
out:
	close(fd);
	if (verdict == 0 && !wrong && st != NULL)
		st->last_step[index] = used_step;
	return verdict;
}

/* ---------------------------------------------------------------- */
/* Control requests (enroll). */

/* Sends one JSON request and reads the response into out (NUL-terminated). 0 or -1. */
static int control(struct conn *c, const char *json, char *out, size_t cap)
{
	struct frame_out f;
	unsigned char *body;
	const unsigned char *v;

	fo_begin(&f, T_REQUEST);
	fo_text(&f, F_JSON, json);
	fo_end(&f);
	if (write_all(c->fd, f.buf, f.len) != 0)
		return -1;
	long n = conn_read_frame(c, &body);
	if (n <= 0) {
		if (n < 0 && errno == ETIMEDOUT)
			note_error("control request: no response from the daemon within %d s", io_timeout_s);
		else
			note_error("control request: connection closed before the response");
		return -1;
	}
	if (body[1] != T_RESPONSE) {
		long len = frame_field(body, n, F_TEXT, &v);
		note_error("control: got message 0x%02x %.*s", body[1], (int)(len > 0 ? len : 0), len > 0 ? (const char *)v : "");
		return -1;
	}
	long len = frame_field(body, n, F_JSON, &v);
	if (len < 0)
		return -1;
	size_t m = (size_t)len < cap - 1 ? (size_t)len : cap - 1;
	memcpy(out, v, m);
	out[m] = '\0';
	return 0;
}

static int is_invalid_request(const char *response)
{
	return strstr(response, "\"error\"") != NULL && strstr(response, "invalidRequest") != NULL;
}

/* Returns 1 on a complete enrollment, 0 on a refusal, -1 on a connection error. */
static int enroll_dialog(struct conn *c, long index)
{
	char user[64], json[512], resp[8192], code[7];
	unsigned char secret[64];
	int result = -1;

	snprintf(user, sizeof user, "be%07ld", index);
	const char *path = opt.sockets[index % opt.nsockets];
	int fd = unix_connect(path);
	if (fd < 0) {
		note_error("connect %s: %s", path, strerror(errno));
		return -1;
	}
	conn_init(c, fd);
	snprintf(json, sizeof json, "{\"enrollBegin\":{\"user\":\"%s\"}}", user);
	if (control(c, json, resp, sizeof resp) != 0)
		goto out;
	char *p = strstr(resp, "\"secretBase32\":\"");
	if (p == NULL) {
		note_error("enrollBegin %s: %.300s", user, resp);
		result = 0;
		goto out;
	}
	p += strlen("\"secretBase32\":\"");
	char *q = strchr(p, '"');
	if (q == NULL)
		goto out;
	*q = '\0';
	int slen = base32_decode(p, secret, sizeof secret);
	if (slen <= 0) {
		note_error("enrollBegin %s: bad secretBase32", user);
		goto out;
	}
	totp6(secret, (size_t)slen, current_step(), code);

	pthread_mutex_lock(&api_lock);
	int api = enroll_api;
	if (api < 0) {
		/* First enrollment decides which requests this daemon knows (serialized). */
		snprintf(json, sizeof json, "{\"enrollVerify\":{\"user\":\"%s\",\"codes\":[\"%s\"]}}", user, code);
		if (control(c, json, resp, sizeof resp) != 0) {
			pthread_mutex_unlock(&api_lock);
			goto out;
		}
		enroll_api = api = is_invalid_request(resp) ? 0 : 1;
		pthread_mutex_unlock(&api_lock);
		if (api == 1)
			goto verified;
	} else {
		pthread_mutex_unlock(&api_lock);
	}
	if (api == 1) {
		snprintf(json, sizeof json, "{\"enrollVerify\":{\"user\":\"%s\",\"codes\":[\"%s\"]}}", user, code);
	} else {
		snprintf(json, sizeof json, "{\"enrollConfirm\":{\"user\":\"%s\",\"code\":\"%s\"}}", user, code);
	}
	if (control(c, json, resp, sizeof resp) != 0)
		goto out;
verified:
	if (strstr(resp, "\"recoveryCodes\"") == NULL) {
		note_error("%s %s: %.300s", api == 1 ? "enrollVerify" : "enrollConfirm", user, resp);
		result = 0;
		goto out;
	}
	if (api == 1) {
		snprintf(json, sizeof json, "{\"enrollActivate\":{\"user\":\"%s\"}}", user);
		if (control(c, json, resp, sizeof resp) != 0)
			goto out;
		if (strstr(resp, "\"ok\"") == NULL && strstr(resp, "\"recoveryCodes\"") == NULL) {
			note_error("enrollActivate %s: %.300s", user, resp);
			result = 0;
			goto out;
		}
	}
	result = 1;
out:
	close(fd);
	return result;
}

/* ---------------------------------------------------------------- */

static void *worker(void *arg)
{
	struct conn c = { 0 };
	(void)arg;
	for (int phase = 0; phase < 2; phase++) {
		pthread_barrier_wait(&barrier); /* phase starts */
		for (;;) {
			if (phase_stop)
				break;
			long k = atomic_fetch_add(&next_op, 1);
			if (k >= phase_limit)
				break;
			long base = phase == 0 ? 0 : opt.warmup;
			int64_t t0 = now_ns();
			int ok;
			if (opt.mode == M_ENROLL) {
				int r = enroll_dialog(&c, st->enroll_next + base + k);
				ok = r == 1;
				if (r < 0)
					atomic_fetch_add(&done_conn_err, 1);
			} else {
				long index = (st->cursor + base + k) % opt.nusers;
				int v = verify_dialog(&c, index, opt.mode == M_WRONG);
				ok = v == (opt.mode == M_WRONG ? 1 : 0);
				if (v < 0)
					atomic_fetch_add(&done_conn_err, 1);
				else if (v < 8)
					atomic_fetch_add(&verdict_counts[v], 1);
				if (!ok && v >= 0 && v < 7)
					note_error("user index %ld: verdict %s", index, VERDICT_NAMES[v]);
			}
			int64_t t1 = now_ns();
			if (phase == 1) {
				latency_ns[k] = t1 - t0;
				atomic_fetch_add(ok ? &done_ok : &done_bad, 1);
			}
			if (now_mono() > phase_deadline)
				phase_stop = 1;
		}
		pthread_barrier_wait(&barrier); /* phase ends */
	}
	free(c.in);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: loadgen -s SOCKET [-s SOCKET...] -N USERS [-m verify|wrong|enroll] [-c CLIENTS] [-n OPS] [-w WARMUP]\n"
			"               [-d MAX_SECONDS] [-p DAEMON_PID] [-P LABEL:PID,...] [-S STATE_FILE] [-T IO_TIMEOUT_S]\n"
			"               [--seed S] [--prefix P] [--label TEXT] [--allow-failures]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seed", required_argument, NULL, 1 },
		{ "prefix", required_argument, NULL, 2 },
		{ "label", required_argument, NULL, 3 },
		{ "allow-failures", no_argument, NULL, 4 },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "s:m:c:N:n:w:d:p:P:S:T:", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (opt.nsockets == (int)(sizeof opt.sockets / sizeof opt.sockets[0]))
				die("at most 256 sockets");
			opt.sockets[opt.nsockets++] = optarg;
			opt.socket = opt.sockets[0];
			break;
		case 'm':
			if (strcmp(optarg, "verify") == 0) opt.mode = M_VERIFY;
			else if (strcmp(optarg, "wrong") == 0) opt.mode = M_WRONG;
			else if (strcmp(optarg, "enroll") == 0) opt.mode = M_ENROLL;
			else usage();
			break;
		case 'c': opt.clients = atoi(optarg); break;
		case 'N': opt.nusers = atol(optarg); break;
		case 'n': opt.ops = atol(optarg); break;
		case 'w': opt.warmup = atol(optarg); break;
		case 'd': opt.max_seconds = atof(optarg); break;
		case 'p': opt.pid = atoi(optarg); break;
		case 'P': parse_cpu_group(optarg); break;
		case 'S': opt.state_path = optarg; break;
		case 'T': io_timeout_s = atoi(optarg) > 0 ? atoi(optarg) : 20; break;
		case 1: opt.seed = optarg; break;
		case 2: opt.prefix = optarg; break;
		case 3: opt.label = optarg; break;
		case 4: opt.allow_failures = 1; break;
		default: usage();
		}
	}
	if (opt.socket == NULL || opt.nusers <= 0 || opt.clients <= 0 || opt.clients > 1024 || opt.warmup < 0)
		usage();
	if (opt.ops < 0)
		opt.ops = opt.nusers - opt.warmup;
	if (opt.mode != M_ENROLL && opt.ops + opt.warmup > opt.nusers)
		die("OPS + WARMUP (%ld) exceeds the %ld users: a user may verify only once per 30 s step", opt.ops + opt.warmup, opt.nusers);
	if (opt.ops <= 0)
		die("nothing to do");
	const char *mode_name = opt.mode == M_VERIFY ? "verify" : opt.mode == M_WRONG ? "wrong" : "enroll";

	open_state();
	/* Never reuse a user within a step: if any user of this run was used in the current step, wait. */
	if (opt.mode == M_VERIFY) {
		int64_t newest = -1;
		for (long k = 0; k < opt.ops + opt.warmup; k++) {
			int64_t s = st->last_step[(st->cursor + k) % opt.nusers];
			if (s > newest)
				newest = s;
		}
		int64_t now = current_step();
		if (newest >= now) {
			double t0 = now_wall();
			sleep_until_step(newest + 1);
			fprintf(stderr, "loadgen: waited %.1f s for a fresh 30 s step (users of this run were used in this step)\n", now_wall() - t0);
		}
		/* Do not start in the last second of a step: a code computed at the prompt stays valid (window ±1), but
		 * keep the accounting simple by starting early in a step when the run is short. */
	}

	latency_ns = calloc((size_t)opt.ops, sizeof(int64_t));
	if (latency_ns == NULL)
		die("out of memory");
	pthread_barrier_init(&barrier, NULL, (unsigned)opt.clients + 1);
	pthread_t *threads = calloc((size_t)opt.clients, sizeof(pthread_t));
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < opt.clients; i++)
		if (pthread_create(&threads[i], &attr, worker, NULL) != 0)
			die("pthread_create failed");

	/* Warmup phase. */
	phase_limit = opt.warmup;
	atomic_store(&next_op, 0);
	phase_deadline = now_mono() + opt.max_seconds;
	phase_stop = 0;
	pthread_barrier_wait(&barrier);
	pthread_barrier_wait(&barrier);

	/* Measured phase. */
	struct rusage ru0, ru1;
	double cpu0 = opt.pid ? proc_cpu_seconds(opt.pid) : -1;
	for (int g = 0; g < ncpu_groups; g++)
		cpu_groups[g].before = group_cpu_seconds(&cpu_groups[g]);
	int hwm_reset = opt.pid ? proc_reset_hwm(opt.pid) == 0 : 0;
	getrusage(RUSAGE_SELF, &ru0);
	measuring = 1;
	phase_limit = opt.ops;
	atomic_store(&next_op, 0);
	phase_stop = 0;
	double t0 = now_mono();
	phase_deadline = t0 + opt.max_seconds;
	pthread_barrier_wait(&barrier);
	pthread_barrier_wait(&barrier);
	double t1 = now_mono();
	getrusage(RUSAGE_SELF, &ru1);
	double cpu1 = opt.pid ? proc_cpu_seconds(opt.pid) : -1;
	double group_cpu[MAX_CPU_GROUPS];
	for (int g = 0; g < ncpu_groups; g++)
		group_cpu[g] = group_cpu_seconds(&cpu_groups[g]) - cpu_groups[g].before;
	long hwm = opt.pid ? proc_status_kib(opt.pid, "VmHWM") : -1;
	long rss = opt.pid ? proc_status_kib(opt.pid, "VmRSS") : -1;
	for (int i = 0; i < opt.clients; i++)
		pthread_join(threads[i], NULL);

	long n = atomic_load(&done_ok) + atomic_load(&done_bad);
	long k_issued = atomic_load(&next_op);
	(void)k_issued;
	if (opt.mode == M_VERIFY || opt.mode == M_WRONG)
		st->cursor = (st->cursor + opt.warmup + n) % opt.nusers;
	else
		st->enroll_next += opt.warmup + n;

	/* Latencies of the operations that ran (indices 0..n-1 were all handed out and finished). */
	int64_t *lat = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
	long m = 0;
	for (long k = 0; k < opt.ops && m < n; k++)
		if (latency_ns[k] > 0)
			lat[m++] = latency_ns[k];
	qsort(lat, (size_t)m, sizeof(int64_t), cmp_i64);
	double secs = t1 - t0;
	double rate = (double)n / secs;
	double dcpu = (cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1;
	double lg_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
			(double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
	long bad = atomic_load(&done_bad);

	fprintf(stderr, "loadgen %s %s: %d clients, %ld ops in %.2f s = %.0f/s; p50 %.2f ms p99 %.2f ms p99.9 %.2f ms max %.2f ms",
		mode_name, opt.label, opt.clients, n, secs, rate, pct_ms(lat, m, 50), pct_ms(lat, m, 99), pct_ms(lat, m, 99.9),
		m ? (double)lat[m - 1] / 1e6 : 0.0);
	if (dcpu >= 0)
		fprintf(stderr, "; daemon CPU %.3f ms/op (%.0f%% of a core), VmHWM %.1f MiB%s", 1000 * dcpu / (double)(n ? n : 1),
			100 * dcpu / secs, (double)hwm / 1024, hwm_reset ? "" : " (since start)");
	fprintf(stderr, "; loadgen CPU %.3f ms/op (%.0f%% of a core); unexpected %ld\n", 1000 * lg_cpu / (double)(n ? n : 1),
		100 * lg_cpu / secs, bad);
	if (bad > 0 || first_error[0])
		fprintf(stderr, "loadgen: first problem: %s\n", first_error[0] ? first_error : "(none recorded)");
	if (opt.mode != M_ENROLL)
		fprintf(stderr, "loadgen: verdicts SUCCESS %ld FAILURE %ld LOCKED %ld IGNORE %ld UNAVAILABLE %ld DENIED %ld, connection errors %ld\n",
			atomic_load(&verdict_counts[0]), atomic_load(&verdict_counts[1]), atomic_load(&verdict_counts[2]),
			atomic_load(&verdict_counts[3]), atomic_load(&verdict_counts[4]), atomic_load(&verdict_counts[6]),
			atomic_load(&done_conn_err));

	printf("RESULT mode=%s label=%s clients=%d users=%ld ops=%ld secs=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
	       "cpu_ms_per_op=%.4f daemon_cpu_pct=%.1f hwm_kib=%ld hwm_reset=%d rss_kib=%ld lg_cpu_ms_per_op=%.4f lg_cpu_pct=%.1f unexpected=%ld warmup=%ld",
	       mode_name, opt.label[0] ? opt.label : "-", opt.clients, opt.nusers, n, secs, rate, pct_ms(lat, m, 50), pct_ms(lat, m, 99),
	       pct_ms(lat, m, 99.9), m ? (double)lat[m - 1] / 1e6 : 0.0, dcpu >= 0 ? 1000 * dcpu / (double)(n ? n : 1) : -1.0,
	       dcpu >= 0 ? 100 * dcpu / secs : -1.0, hwm, hwm_reset, rss, 1000 * lg_cpu / (double)(n ? n : 1), 100 * lg_cpu / secs, bad, opt.warmup);
	for (int g = 0; g < ncpu_groups; g++)
		printf(" cpu_s_%s=%.3f", cpu_groups[g].label, group_cpu[g]);
	printf("\n");
	fflush(stdout);
	return (bad > 0 && !opt.allow_failures) || n == 0 ? 1 : 0;
}
