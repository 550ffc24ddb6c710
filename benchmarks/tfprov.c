/*
 * tfprov - provisioning and process helpers for the Twofold benchmarks.
 *
 *   tfprov import -s SOCKET -N COUNT [-o FIRST] [-c CONNECTIONS] [-w DEPTH] [-b BATCH] [--seed S] [--prefix P]
 *       Enrolls users FIRST..FIRST+COUNT-1 through the daemon's admin request
 *       importEnrollment(user, source: .uri(otpauth://...)) (or importURI on
 *       daemons that predate it), CONNECTIONS connections, each keeping up to
 *       DEPTH requests in flight (pipelined; the daemon answers them in turn).
 *       -c 1 -w 1 is what `twofoldctl import` would do, one at a time.
 *       -b BATCH > 1 sends importEnrollments requests of BATCH users each (what
 *       `twofoldctl bulk-import` does; one transaction per request).
 *       Prints "RESULT users=... secs=... rate=... errors=...".
 *
 *   tfprov ga-files DIR FIRST COUNT [--seed S] [--prefix P]
 *       One google-authenticator secret file per user, DIR/<user>, mode 0600:
 *       TOTP, DISALLOW_REUSE, RATE_LIMIT 3 30, WINDOW_SIZE 3 (= ±1 step).
 *
 *   tfprov oath-file FILE FIRST COUNT [--seed S] [--prefix P]
 *       A pam_oath users file, one "HOTP/T30/6 <user> - <hex secret>" line per user.
 *
 *   tfprov uri-list FILE FIRST COUNT [--seed S] [--prefix P]
 *       The list `twofoldctl bulk-import` reads, mode 0600: one "<user> <otpauth:// URI>" line
 *       per user, the URIs `import` sends.
 *
 *   tfprov fsync-probe DIR COUNT
 *       Writes 4 KiB and syncs, COUNT times, in a file in DIR (then removes it):
 *       the disk's sync latency, which bounds a durable commit.  Two patterns:
 *       overwrite in a preallocated 4 MiB file + fdatasync (what SQLite's WAL does
 *       once it is reused), and append + fsync (a growing file: metadata too).
 *       Prints "RESULT fsync_p50_ms=... fsync_p99_ms=... fsync_per_s=... append_p50_ms=... append_p99_ms=...".
 *
 *   tfprov request -s SOCKET JSON
 *       Sends one control request (REQUEST, its JSON as the daemon's ControlRequest encodes it,
 *       e.g. {"hostAdd":{"name":"web-1","certificatePEM":"..."}}) and prints the response's JSON.
 *       Exits 1 if the daemon answered with an error or not at all (what `twofoldctl` does, without
 *       needing a twofoldctl binary of the same build).
 *
 *   tfprov start-daemon NOTIFY_PATH LOG_FILE PID_FILE TIMEOUT_S -- PROGRAM ARGS...
 *       Starts PROGRAM with NOTIFY_SOCKET=NOTIFY_PATH, stdout+stderr to LOG_FILE,
 *       waits for its READY=1 datagram (as systemd would), writes its pid to
 *       PID_FILE and exits 0, leaving it running.  Exits 1 if it dies or is not
 *       ready within TIMEOUT_S.
 */
#include "bench_common.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *seed = DEFAULT_SEED, *prefix = DEFAULT_PREFIX;

/* ---------------------------------------------------------------- */
/* import */

static const char *sock_path;
static long first_user, count_users;
static int nconns = 4, depth = 16;
static int import_api = 1; /* 1 importEnrollment, 0 importURI */
static int batch = 1;     /* users per request; > 1: importEnrollments */
static atomic_long errors;
static char first_error[512];
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

static void bench_uri(long index, char *user, size_t user_cap, char *uri, size_t uri_cap)
{
	char b32[64];
	unsigned char secret[SECRET_LEN];

	user_name(user, user_cap, prefix, index);
	user_secret(seed, index, secret);
	base32_encode(secret, SECRET_LEN, b32, sizeof b32);
	snprintf(uri, uri_cap, "otpauth://totp/Bench:%s?secret=%s&issuer=Bench&algorithm=SHA1&digits=6&period=30", user, b32);
}

/* One importEnrollments request for the n users at index, index+stride, ... */
static void build_bulk_import(struct frame_out *f, long index, long stride, long n)
{
	static _Thread_local char json[66000];
	size_t len = (size_t)snprintf(json, sizeof json, "{\"importEnrollments\":{\"_0\":[");
	for (long k = 0; k < n; k++) {
		char user[64], uri[300];
		bench_uri(index + k * stride, user, sizeof user, uri, sizeof uri);
		len += (size_t)snprintf(json + len, sizeof json - len, "%s{\"user\":\"%s\",\"source\":{\"uri\":{\"_0\":\"%s\"}}}",
					k ? "," : "", user, uri);
		if (len >= sizeof json - 2)
			die("bulk import request too large: lower -b");
	}
	snprintf(json + len, sizeof json - len, "]}}");
	fo_begin(f, T_REQUEST);
	fo_text(f, F_JSON, json);
	fo_end(f);
}

static void build_import(struct frame_out *f, long index)
{
	char user[64], json[600], uri[300];

	bench_uri(index, user, sizeof user, uri, sizeof uri);
	if (import_api)
		snprintf(json, sizeof json, "{\"importEnrollment\":{\"user\":\"%s\",\"source\":{\"uri\":{\"_0\":\"%s\"}}}}", user, uri);
	else
		snprintf(json, sizeof json, "{\"importURI\":{\"user\":\"%s\",\"uri\":\"%s\"}}", user, uri);
	fo_begin(f, T_REQUEST);
	fo_text(f, F_JSON, json);
	fo_end(f);
}

/* 1 ok, 0 refused (text in out), -1 connection error */
static int read_import_response(struct conn *c, char *out, size_t cap)
{
	unsigned char *body;
	const unsigned char *v = NULL;
	long n = conn_read_frame(c, &body);
	if (n <= 0)
		return -1;
	long len = frame_field(body, n, body[1] == T_RESPONSE ? F_JSON : F_TEXT, &v);
	if (len < 0 || v == NULL)
		len = 0;
	size_t m = (size_t)len < cap - 1 ? (size_t)len : cap - 1;
	if (m > 0)
		memcpy(out, v, m);
	out[m] = '\0';
	if (body[1] != T_RESPONSE)
		return 0;
	if (strncmp(out, "{\"importedMany\"", 15) == 0)
		return ((size_t)len < cap - 1 && strstr(out, "\"error\"") == NULL) ? 1 : 0;
	return (strncmp(out, "{\"ok\"", 5) == 0 || strncmp(out, "{\"imported\"", 11) == 0) ? 1 : 0;
}

static void note(const char *what, long index, const char *text)
{
	atomic_fetch_add(&errors, 1);
	pthread_mutex_lock(&err_lock);
	if (first_error[0] == '\0')
		snprintf(first_error, sizeof first_error, "%s user index %ld: %.400s", what, index, text);
	pthread_mutex_unlock(&err_lock);
}

static void *import_worker(void *arg)
{
	long t = (long)(intptr_t)arg;
	struct conn c = { 0 };
	struct frame_out *f = malloc(sizeof *f);
	size_t resp_cap = 1 << 20;
	char *resp = malloc(resp_cap);
	int fd = unix_connect(sock_path);
	if (fd < 0) {
		note("connect", -1, strerror(errno));
		free(f);
		free(resp);
		return NULL;
	}
	conn_init(&c, fd);
	/* Stripe t: indices first + t + k*nconns, in requests of `batch` users. */
	long users = 0;
	for (long k = t; k < count_users; k += nconns)
		users++;
	long total = (users + batch - 1) / batch;
	long sent = 0, got = 0;
	while (got < total) {
		while (sent < total && sent - got < depth) {
			long index = first_user + t + sent * batch * nconns;
			long n = users - sent * batch < batch ? users - sent * batch : batch;
			if (batch > 1)
				build_bulk_import(f, index, nconns, n);
			else
				build_import(f, index);
			if (write_all(fd, f->buf, f->len) != 0) {
				note("send", index, strerror(errno));
				goto out;
			}
			sent++;
		}
		long index = first_user + t + got * batch * nconns;
		int r = read_import_response(&c, resp, resp_cap);
		if (r < 0) {
			note(errno == ETIMEDOUT ? "no response within the I/O timeout at" : "connection closed at", index, "");
			goto out;
		}
		if (r == 0)
			note(batch > 1 ? "bulk import refused at least one user of the request starting at" : "import refused for", index, resp);
		got++;
	}
out:
	close(fd);
	free(c.in);
	free(f);
	free(resp);
	return NULL;
}

static int cmd_import(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seed", required_argument, NULL, 1 }, { "prefix", required_argument, NULL, 2 }, { NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "s:N:o:c:w:b:", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': sock_path = optarg; break;
		case 'N': count_users = atol(optarg); break;
		case 'o': first_user = atol(optarg); break;
		case 'c': nconns = atoi(optarg); break;
		case 'w': depth = atoi(optarg); break;
		case 'b': batch = atoi(optarg); break;
		case 1: seed = optarg; break;
		case 2: prefix = optarg; break;
		default: die("usage: tfprov import -s SOCKET -N COUNT [-o FIRST] [-c CONNECTIONS] [-w DEPTH] [-b BATCH]");
		}
	}
	if (sock_path == NULL || count_users <= 0 || nconns < 1 || depth < 1 || batch < 1 || batch > 300)
		die("usage: tfprov import -s SOCKET -N COUNT [-o FIRST] [-c CONNECTIONS] [-w DEPTH] [-b BATCH (1..300)]");
	double t0 = now_mono();
	/* The first user on its own connection finds out which import request the daemon knows. */
	{
		struct conn c = { 0 };
		struct frame_out *f = malloc(sizeof *f);
		char resp[2048];
		int fd = unix_connect(sock_path);
		if (fd < 0)
			die("connect %s: %s", sock_path, strerror(errno));
		conn_init(&c, fd);
		build_import(f, first_user);
		if (write_all(fd, f->buf, f->len) != 0)
			die("send: %s", strerror(errno));
		int r = read_import_response(&c, resp, sizeof resp);
		if (r == 0 && strstr(resp, "invalidRequest") != NULL) {
			import_api = 0;
			build_import(f, first_user);
			if (write_all(fd, f->buf, f->len) != 0)
				die("send: %s", strerror(errno));
			r = read_import_response(&c, resp, sizeof resp);
		}
		if (r != 1)
			die("import of the first user failed: %s", resp);
		close(fd);
		free(c.in);
		free(f);
	}
	first_user++;
	count_users--;
	if (nconns > count_users)
		nconns = count_users > 0 ? (int)count_users : 1;
	pthread_t th[256];
	if (nconns > 256)
		nconns = 256;
	for (long t = 0; t < nconns && count_users > 0; t++)
		pthread_create(&th[t], NULL, import_worker, (void *)(intptr_t)t);
	for (long t = 0; t < nconns && count_users > 0; t++)
		pthread_join(th[t], NULL);
	double secs = now_mono() - t0;
	long n = count_users + 1;
	const char *api = batch > 1 ? "importEnrollments" : import_api ? "importEnrollment" : "importURI";
	fprintf(stderr, "tfprov import: %ld users (%s, %d per request) over %d connection(s), depth %d: %.1f s = %.0f users/s, %ld errors\n",
		n, api, batch, nconns, depth, secs, (double)n / secs, atomic_load(&errors));
	if (first_error[0])
		fprintf(stderr, "tfprov import: first error: %s\n", first_error);
	printf("RESULT users=%ld conns=%d depth=%d batch=%d secs=%.3f rate=%.1f errors=%ld api=%s\n", n, nconns, depth, batch, secs,
	       (double)n / secs, atomic_load(&errors), api);
	return atomic_load(&errors) ? 1 : 0;
}

/* ---------------------------------------------------------------- */
/* Files for the peers */

static void parse_common(int argc, char **argv, int from)
{
	for (int i = from; i < argc; i++) {
		if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
			seed = argv[++i];
		else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
			prefix = argv[++i];
		else
			die("unknown argument %s", argv[i]);
	}
}

static int cmd_ga_files(int argc, char **argv)
{
	if (argc < 5)
		die("usage: tfprov ga-files DIR FIRST COUNT");
	const char *dir = argv[2];
	long first = atol(argv[3]), count = atol(argv[4]);
	parse_common(argc, argv, 5);
	mkdir(dir, 0700);
	for (long i = first; i < first + count; i++) {
		char user[64], path[4096], b32[64], text[512];
		unsigned char secret[SECRET_LEN];
		user_name(user, sizeof user, prefix, i);
		user_secret(seed, i, secret);
		base32_encode(secret, SECRET_LEN, b32, sizeof b32);
		snprintf(path, sizeof path, "%s/%s", dir, user);
		int n = snprintf(text, sizeof text, "%s\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n", b32);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) != 0)
			die("cannot write %s: %s", path, strerror(errno));
	}
	return 0;
}

/* oath-file and uri-list: one line per user, in a new file of mode 0600 (the lines hold secrets). */
static int cmd_user_lines(int argc, char **argv, int uris)
{
	if (argc < 5)
		die("usage: tfprov %s FILE FIRST COUNT", argv[1]);
	const char *path = argv[2];
	long first = atol(argv[3]), count = atol(argv[4]);
	parse_common(argc, argv, 5);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL)
		die("cannot write %s: %s", path, strerror(errno));
	for (long i = first; i < first + count; i++) {
		char user[64], text[300];
		if (uris) {
			bench_uri(i, user, sizeof user, text, sizeof text);
			fprintf(f, "%s %s\n", user, text);
		} else {
			unsigned char secret[SECRET_LEN];
			user_name(user, sizeof user, prefix, i);
			user_secret(seed, i, secret);
			hex_encode(secret, SECRET_LEN, text);
			fprintf(f, "HOTP/T30/6\t%s\t-\t%s\n", user, text);
		}
	}
	if (fclose(f) != 0)
		die("cannot write %s", path);
	return 0;
}

/* ---------------------------------------------------------------- */
/* fsync-probe */

static void sync_series(const char *path, long count, int append, double *p50, double *p99, double *per_s)
{
	unsigned char block[4096];
	memset(block, 0xa5, sizeof block);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("cannot create %s: %s", path, strerror(errno));
	if (!append) {
		for (int i = 0; i < 1024; i++)
			if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
				die("write %s: %s", path, strerror(errno));
		if (fsync(fd) != 0)
			die("fsync %s: %s", path, strerror(errno));
	}
	int64_t *lat = calloc((size_t)count, sizeof(int64_t));
	double t0 = now_mono();
	for (long i = 0; i < count; i++) {
		int64_t a = now_ns();
		ssize_t w = append ? write(fd, block, sizeof block) : pwrite(fd, block, sizeof block, (off_t)(i % 1024) * 4096);
		if (w != (ssize_t)sizeof block || (append ? fsync(fd) : fdatasync(fd)) != 0)
			die("write/sync %s: %s", path, strerror(errno));
		lat[i] = now_ns() - a;
	}
	*per_s = (double)count / (now_mono() - t0);
	close(fd);
	unlink(path);
	qsort(lat, (size_t)count, sizeof(int64_t), cmp_i64);
	*p50 = pct_ms(lat, count, 50);
	*p99 = pct_ms(lat, count, 99);
	free(lat);
}

static int cmd_fsync_probe(int argc, char **argv)
{
	if (argc != 4 || atol(argv[3]) <= 0)
		die("usage: tfprov fsync-probe DIR COUNT");
	long count = atol(argv[3]);
	char path[4096];
	double a50, a99, aps, o50, o99, ops;
	snprintf(path, sizeof path, "%s/fsync-probe.%d", argv[2], (int)getpid());
	sync_series(path, count, 0, &o50, &o99, &ops);
	sync_series(path, count, 1, &a50, &a99, &aps);
	printf("RESULT fsync_p50_ms=%.3f fsync_p99_ms=%.3f fsync_per_s=%.0f append_p50_ms=%.3f append_p99_ms=%.3f append_per_s=%.0f\n",
	       o50, o99, ops, a50, a99, aps);
	return 0;
}

/* ---------------------------------------------------------------- */
/* start-daemon */

static int cmd_start_daemon(int argc, char **argv)
{
	if (argc < 8 || strcmp(argv[6], "--") != 0)
		die("usage: tfprov start-daemon NOTIFY_PATH LOG_FILE PID_FILE TIMEOUT_S -- PROGRAM ARGS...");
	const char *notify = argv[2], *log = argv[3], *pidfile = argv[4];
	double timeout = atof(argv[5]);
	char **prog = argv + 7;

	int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(notify) >= sizeof sa.sun_path)
		die("notify path too long");
	strcpy(sa.sun_path, notify);
	unlink(notify);
	if (bind(ns, (struct sockaddr *)&sa, sizeof sa) != 0)
		die("bind %s: %s", notify, strerror(errno));
	int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		die("open %s: %s", log, strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		setsid(); /* its own session: a ^C of the benchmark script is handled by the script's trap */
		dup2(logfd, 1);
		dup2(logfd, 2);
		int devnull = open("/dev/null", O_RDONLY);
		dup2(devnull, 0);
		setenv("NOTIFY_SOCKET", notify, 1);
		execvp(prog[0], prog);
		fprintf(stderr, "exec %s: %s\n", prog[0], strerror(errno));
		_exit(127);
	}
	double deadline = now_mono() + timeout;
	char buf[4096];
	while (now_mono() < deadline) {
		struct pollfd p = { .fd = ns, .events = POLLIN };
		if (poll(&p, 1, 200) > 0) {
			ssize_t n = recv(ns, buf, sizeof buf - 1, 0);
			if (n > 0) {
				buf[n] = '\0';
				if (strstr(buf, "READY=1") != NULL) {
					FILE *f = fopen(pidfile, "w");
					if (f == NULL)
						die("cannot write %s", pidfile);
					fprintf(f, "%d\n", (int)pid);
					fclose(f);
					unlink(notify);
					printf("%d\n", (int)pid);
					return 0;
				}
			}
		}
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "tfprov: %s exited before it was ready (status %d); see %s\n", prog[0], status, log);
			unlink(notify);
			return 1;
		}
	}
	fprintf(stderr, "tfprov: %s not ready within %.0f s; killing it\n", prog[0], timeout);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(notify);
	return 1;
}

/* ---------------------------------------------------------------- */
/* One control request */

static int cmd_request(int argc, char **argv)
{
	if (argc != 5 || strcmp(argv[2], "-s") != 0)
		die("usage: tfprov request -s SOCKET JSON");
	struct conn c = { 0 };
	struct frame_out *f = malloc(sizeof *f);
	int fd = unix_connect(argv[3]);
	if (f == NULL || fd < 0)
		die("connect %s: %s", argv[3], strerror(errno));
	conn_init(&c, fd);
	fo_begin(f, T_REQUEST);
	fo_text(f, F_JSON, argv[4]);
	fo_end(f);
	if (write_all(fd, f->buf, f->len) != 0)
		die("send: %s", strerror(errno));
	unsigned char *body;
	const unsigned char *v = NULL;
	long n = conn_read_frame(&c, &body);
	if (n <= 0)
		die("no response from %s", argv[3]);
	long len = frame_field(body, n, body[1] == T_RESPONSE ? F_JSON : F_TEXT, &v);
	if (len < 0 || v == NULL)
		len = 0;
	printf("%.*s\n", (int)len, (const char *)v);
	int ok = body[1] == T_RESPONSE && !(len >= 9 && memcmp(v, "{\"error\"", 9) == 0);
	close(fd);
	free(c.in);
	free(f);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: tfprov import|ga-files|oath-file|fsync-probe|request|start-daemon ...");
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(argv[1], "import") == 0)
		return cmd_import(argc - 1, argv + 1);
	if (strcmp(argv[1], "ga-files") == 0)
		return cmd_ga_files(argc, argv);
	if (strcmp(argv[1], "oath-file") == 0)
		return cmd_user_lines(argc, argv, 0);
	if (strcmp(argv[1], "uri-list") == 0)
		return cmd_user_lines(argc, argv, 1);
	if (strcmp(argv[1], "fsync-probe") == 0)
		return cmd_fsync_probe(argc, argv);
	if (strcmp(argv[1], "start-daemon") == 0)
		return cmd_start_daemon(argc, argv);
	if (strcmp(argv[1], "request") == 0)
		return cmd_request(argc, argv);
	die("unknown command %s", argv[1]);
}
