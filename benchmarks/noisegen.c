/*
 * noisegen - clients that misbehave, many at once, against twofoldd's Unix socket.
 *
 *   noisegen -s SOCKET -n CONNECTIONS [-u USER] [-k KIND,KIND,...] [-d SECONDS] [-x STOP_FILE]
 *            [-r REOPEN_MS] [-t TRICKLE_MS] [-W WAIT_CLOSE_S] [--seed N] [--label TEXT]
 *
 * Opens CONNECTIONS connections at once, kind i % (number of kinds) for the i-th, and keeps that
 * many open: when the daemon closes one, another of the same kind replaces it REOPEN_MS later
 * (default 0). That goes on for SECONDS (-d), or until STOP_FILE exists (-x), or, with neither,
 * until standard input reaches EOF (a test closes its end when its real logins are done). Then nothing is reopened:
 * the trickles go on trickling and noisegen waits up to WAIT_CLOSE_S (default 30) for the daemon
 * to close what is left; what is still open then is closed here and reported as "open".
 *
 * Kinds (docs/protocol.md for the frames):
 *   silent          connects and never sends a byte
 *   midframe        a frame header announcing 64 bytes and 3 of them, then silence
 *   bigframe        a header announcing 65,536 bytes (the largest frame the daemon accepts) and
 *                   65,000 of them, then silence: what the daemon buffers for a half-sent frame
 *   trickle         slowloris: a header announcing 60,000 bytes, then one byte every TRICKLE_MS
 *                   (default 500) for as long as the connection lasts
 *   halfclose       shutdown(SHUT_WR) after a partial frame or after a whole AUTH_START (USER,
 *                   sshd), at random; then reads until the daemon closes
 *   outoforder      valid frames in an order the protocol forbids, one of these at random:
 *                   an ANSWER before AUTH_START; two AUTH_STARTs; AUTH_START then a control REQUEST
 *                   (ping) on the login path; a REQUEST (ping) then an AUTH_START on the control path
 *   Default: all six.
 *
 * USER (default: the account noisegen runs as) is the user its AUTH_STARTs name: a non-root peer
 * may ask only about its own account, so that is the one that reaches a prompt.
 *
 * Output, on stdout: "NOISE-READY opened=N" once the first CONNECTIONS are open (a test starts
 * measuring then); at the end one line per kind and outcome
 *   NOISE kind=K outcome=O count=C min_ms=… p50_ms=… max_ms=…
 * (the time from connect to the daemon's close), and a summary
 *   NOISE-SUMMARY label=… opened=… closed_by_daemon=… still_open=… connect_errors=… seconds=… peak_open=…
 * Outcomes: eof (closed without a word), protocol-error, refused-uid / refused-reserved /
 * refused-total / refused-dialogs / refused-other (VERDICT DENIED "refused: …", by the reason),
 * failure-idle / failure-total (VERDICT FAILURE at idle_timeout / connection_timeout),
 * verdict-NAME (any other verdict), prompt-eof (a prompt, then closed), reset (ECONNRESET),
 * open (still open after WAIT_CLOSE_S: the daemon never closed it).
 * Exit status 0; 2 on a usage or setup error.
 */
#include "bench_common.h"

#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>

enum kind { K_SILENT, K_MIDFRAME, K_BIGFRAME, K_TRICKLE, K_HALFCLOSE, K_OUTOFORDER, K_COUNT };
static const char *const KIND_NAMES[K_COUNT] = { "silent", "midframe", "bigframe", "trickle", "halfclose", "outoforder" };

#define MAX_OUTCOMES 24
struct outcome_stats {
	char name[32];
	long count;
	int64_t *life_ms; /* every lifetime, for the median */
	long cap;
};
static struct outcome_stats stats[K_COUNT][MAX_OUTCOMES];

struct noise_conn {
	int fd;            /* -1: a slot waiting to be reopened */
	enum kind kind;
	int64_t opened_ns;
	int64_t next_send_ns; /* trickle: next byte due */
	int64_t reopen_ns;    /* closed slot: when to reopen */
	long trickled;
	unsigned char in[8192];
	size_t have;
	int last_type;     /* last message type received, -1 none */
	int verdict;       /* last VERDICT's code, -1 none */
	char reason[96];   /* last VERDICT's or PROTOCOL_ERROR's text */
};

static struct {
	const char *socket, *user, *label, *stop_file;
	long n;
	int kinds[K_COUNT], nkinds;
	double seconds, wait_close;
	int reopen_ms, trickle_ms;
	unsigned seed;
} opt = { .label = "-", .reopen_ms = 0, .trickle_ms = 500, .wait_close = 30, .seed = 1 };

static struct noise_conn *conns;
static int ep;
static long opened, closed_by_daemon, closed_by_us, connect_errors, open_now, peak_open;
static int first_connect_errno; /* the first connect() error's errno, for the report */
static unsigned char big_body[65000];

static void record(const struct noise_conn *c, const char *outcome, int64_t now)
{
	struct outcome_stats *s = NULL;
	for (int i = 0; i < MAX_OUTCOMES; i++) {
		if (stats[c->kind][i].name[0] == '\0') {
			snprintf(stats[c->kind][i].name, sizeof stats[c->kind][i].name, "%s", outcome);
			s = &stats[c->kind][i];
			break;
		}
		if (strcmp(stats[c->kind][i].name, outcome) == 0) {
			s = &stats[c->kind][i];
			break;
		}
	}
	if (s == NULL)
		return;
	if (s->count == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->life_ms = realloc(s->life_ms, (size_t)s->cap * sizeof(int64_t));
		if (s->life_ms == NULL)
			die("out of memory");
	}
	s->life_ms[s->count++] = (now - c->opened_ns) / 1000000;
}

/* What the connection's last messages say, at its close. */
static const char *classify(const struct noise_conn *c)
{
	if (c->last_type < 0)
		return "eof";
	if (c->last_type == T_PROTOCOL_ERROR)
		return "protocol-error";
	if (c->last_type == T_VERDICT) {
		if (c->verdict == 6 && strncmp(c->reason, "refused: ", 9) == 0) {
			const char *r = c->reason + 9;
			if (strncmp(r, "uid ", 4) == 0) return "refused-uid";
			if (strstr(r, "reserved for root") != NULL) return "refused-reserved";
			if (strncmp(r, "all ", 4) == 0) return "refused-total";
			if (strstr(r, "login dialogs") != NULL) return "refused-dialogs";
			return "refused-other";
		}
		if (c->verdict == 1 && strstr(c->reason, "idle_timeout") != NULL)
			return "failure-idle";
		if (c->verdict == 1 && strstr(c->reason, "connection_timeout") != NULL)
			return "failure-total";
		static char name[32];
		snprintf(name, sizeof name, "verdict-%s", c->verdict >= 0 && c->verdict < 7 ? VERDICT_NAMES[c->verdict] : "?");
		return name;
	}
	if (c->last_type == T_PROMPT_ECHO_OFF || c->last_type == T_PROMPT_ECHO_ON)
		return "prompt-eof";
	return "other-eof";
}

static void append_frame(struct frame_out *f, unsigned char *out, size_t *len)
{
	memcpy(out + *len, f->buf, f->len);
	*len += f->len;
}

static void auth_start(struct frame_out *f)
{
	fo_begin(f, T_AUTH_START);
	fo_text(f, F_USER, opt.user);
	fo_text(f, F_SERVICE, "sshd");
	fo_end(f);
}

static void ping(struct frame_out *f)
{
	fo_begin(f, T_REQUEST);
	fo_text(f, F_JSON, "{\"ping\":{}}");
	fo_end(f);
}

static void send_some(int fd, const void *p, size_t n)
{
	/* Non-blocking: what does not fit now is simply not sent (these clients misbehave anyway;
	 * only bigframe comes near the socket buffer, and the daemon reads it). */
	(void)!send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* What each kind does right after connecting. */
static void open_moves(struct noise_conn *c)
{
	static struct frame_out f;
	static unsigned char out[2 * sizeof f.buf];
	size_t len = 0;
	switch (c->kind) {
	case K_SILENT:
		break;
	case K_MIDFRAME: {
		const unsigned char partial[] = { 0, 0, 0, 64, 1, T_AUTH_START, F_USER };
		send_some(c->fd, partial, sizeof partial);
		break;
	}
	case K_BIGFRAME: {
		const unsigned char header[] = { 0, 1, 0, 0 }; /* 65,536 */
		send_some(c->fd, header, sizeof header);
		send_some(c->fd, big_body, sizeof big_body);
		break;
	}
	case K_TRICKLE: {
		const unsigned char header[] = { 0, 0, 0xEA, 0x60 }; /* 60,000 */
		send_some(c->fd, header, sizeof header);
		c->next_send_ns = now_ns() + (int64_t)opt.trickle_ms * 1000000;
		break;
	}
	case K_HALFCLOSE:
		if (rand_r(&opt.seed) % 2) {
			auth_start(&f);
			send_some(c->fd, f.buf, f.len);
		} else {
			const unsigned char partial[] = { 0, 0, 0, 64, 1, T_AUTH_START };
			send_some(c->fd, partial, sizeof partial);
		}
		shutdown(c->fd, SHUT_WR);
		break;
	case K_OUTOFORDER:
		switch (rand_r(&opt.seed) % 4) {
		case 0:
			fo_begin(&f, T_ANSWER);
			fo_text(&f, F_TEXT, "123456");
			fo_end(&f);
			append_frame(&f, out, &len);
			break;
		case 1:
			auth_start(&f);
			append_frame(&f, out, &len);
			append_frame(&f, out, &len);
			break;
		case 2:
			auth_start(&f);
			append_frame(&f, out, &len);
			ping(&f);
			append_frame(&f, out, &len);
			break;
		default:
			ping(&f);
			append_frame(&f, out, &len);
			auth_start(&f);
			append_frame(&f, out, &len);
			break;
		}
		send_some(c->fd, out, len);
		break;
	default:
		break;
	}
}

/* A non-blocking connect: a full accept backlog (EAGAIN on a Unix socket) is retried 10 ms later
 * instead of holding up every other connection; anything else counts as a connect error. */
static int connect_now(int *fd_out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", opt.socket);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		*fd_out = fd;
		return 1;
	}
	int e = errno;
	close(fd);
	errno = e;
	return e == EAGAIN ? 0 : -1;
}

static void open_conn(struct noise_conn *c)
{
	int fd = -1;
	/* Before connect(): the daemon's timers start when it accepts, so a lifetime measured from
	 * here is never shorter than the daemon's, even when this process is preempted meanwhile. */
	int64_t started = now_ns();
	int r = connect_now(&fd);
	c->reopen_ns = 0;
	if (r <= 0) {
		if (r < 0 && connect_errors++ == 0)
			first_connect_errno = errno;
		c->fd = -1;
		c->reopen_ns = now_ns() + (r < 0 ? 100 : 10) * 1000000LL; /* retry later */
		return;
	}
	c->fd = fd;
	c->opened_ns = started;
	c->have = 0;
	c->last_type = -1;
	c->verdict = -1;
	c->reason[0] = '\0';
	c->trickled = 0;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
	opened++;
	if (++open_now > peak_open)
		peak_open = open_now;
	open_moves(c);
}

static void close_conn(struct noise_conn *c, const char *outcome, int by_daemon, int reopen)
{
	int64_t now = now_ns();
	record(c, outcome, now);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	open_now--;
	if (by_daemon)
		closed_by_daemon++;
	else
		closed_by_us++;
	c->reopen_ns = reopen ? now + (int64_t)opt.reopen_ms * 1000000 : 0;
}

/* Reads what the daemon sent; returns 1 when it has closed. */
static int read_conn(struct noise_conn *c, int *reset)
{
	for (;;) {
		if (c->have == sizeof c->in)
			c->have = 0; /* nothing this long is expected; keep only the newest bytes */
		ssize_t r = recv(c->fd, c->in + c->have, sizeof c->in - c->have, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			*reset = 1;
			return 1;
		}
		if (r == 0)
			return 1;
		c->have += (size_t)r;
		/* Parse whole frames; keep the last message's type and, for VERDICT / PROTOCOL_ERROR, its text. */
		size_t at = 0;
		while (c->have - at >= 4) {
			const unsigned char *p = c->in + at;
			uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
			if (n < 2 || 4 + (size_t)n > sizeof c->in) {
				c->have = at = 0;
				break;
			}
			if (c->have - at < 4 + (size_t)n)
				break;
			const unsigned char *body = p + 4, *v;
			c->last_type = body[1];
			if (body[1] == T_VERDICT && frame_field(body, n, F_RESULT, &v) == 1)
				c->verdict = v[0];
			if (body[1] == T_VERDICT || body[1] == T_PROTOCOL_ERROR) {
				long len = frame_field(body, n, F_TEXT, &v);
				snprintf(c->reason, sizeof c->reason, "%.*s", (int)(len > 0 ? (len < 95 ? len : 95) : 0), len > 0 ? (const char *)v : "");
			}
			at += 4 + n;
		}
		memmove(c->in, c->in + at, c->have - at);
		c->have -= at;
	}
}

static int stdin_closed(void)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	if (poll(&p, 1, 0) <= 0)
		return 0;
	char buf[256];
	ssize_t r = read(0, buf, sizeof buf);
	return r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN);
}

static void usage(void)
{
	fprintf(stderr, "usage: noisegen -s SOCKET -n CONNECTIONS [-u USER] [-k KIND,...] [-d SECONDS] [-x STOP_FILE] [-r REOPEN_MS]\n"
			"                [-t TRICKLE_MS] [-W WAIT_CLOSE_S] [--seed N] [--label TEXT]\n"
			"kinds: silent midframe bigframe trickle halfclose outoforder (default: all)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seed", required_argument, NULL, 1 },
		{ "label", required_argument, NULL, 2 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char *kinds = NULL;
	while ((ch = getopt_long(argc, argv, "s:n:u:k:d:x:r:t:W:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': opt.socket = optarg; break;
		case 'n': opt.n = atol(optarg); break;
		case 'u': opt.user = optarg; break;
		case 'k': kinds = optarg; break;
		case 'd': opt.seconds = atof(optarg); break;
		case 'x': opt.stop_file = optarg; break;
		case 'r': opt.reopen_ms = atoi(optarg); break;
		case 't': opt.trickle_ms = atoi(optarg); break;
		case 'W': opt.wait_close = atof(optarg); break;
		case 1: opt.seed = (unsigned)atol(optarg); break;
		case 2: opt.label = optarg; break;
		default: usage();
		}
	}
	if (opt.socket == NULL || opt.n <= 0 || opt.trickle_ms <= 0 || opt.reopen_ms < 0)
		usage();
	if (kinds == NULL) {
		for (int k = 0; k < K_COUNT; k++)
			opt.kinds[opt.nkinds++] = k;
	} else {
		for (char *tok = strtok(kinds, ","); tok != NULL; tok = strtok(NULL, ",")) {
			int found = -1;
			for (int k = 0; k < K_COUNT; k++)
				if (strcmp(tok, KIND_NAMES[k]) == 0)
					found = k;
			if (found < 0 || opt.nkinds == K_COUNT)
				usage();
			opt.kinds[opt.nkinds++] = found;
		}
	}
	if (opt.user == NULL) {
		struct passwd *pw = getpwuid(geteuid());
		if (pw == NULL)
			die("who am I? (no passwd entry for uid %u)", (unsigned)geteuid());
		opt.user = strdup(pw->pw_name);
	}
	signal(SIGPIPE, SIG_IGN);
	/* One descriptor per connection: the soft limit (often 1,024) up to the hard one. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (rlim_t)opt.n + 16 > rl.rlim_cur)
		die("%ld connections need more descriptors than the limit (%lu): raise ulimit -n", opt.n, (unsigned long)rl.rlim_cur);
	big_body[0] = 1;
	big_body[1] = T_AUTH_START;
	memset(big_body + 2, 'x', sizeof big_body - 2);

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	conns = calloc((size_t)opt.n, sizeof *conns);
	if (conns == NULL)
		die("out of memory");
	double t0 = now_mono();
	for (long i = 0; i < opt.n; i++) {
		conns[i].kind = (enum kind)opt.kinds[i % opt.nkinds];
		open_conn(&conns[i]);
	}
	/* The first CONNECTIONS, retried while the backlog is full. */
	for (long pending = opt.n - opened; pending > 0 && connect_errors < 10 * opt.n;) {
		usleep(1000);
		pending = 0;
		for (long i = 0; i < opt.n; i++)
			if (conns[i].fd < 0) {
				open_conn(&conns[i]);
				pending += conns[i].fd < 0;
			}
	}
	printf("NOISE-READY opened=%ld connect_errors=%ld first_connect_error=\"%s\"\n", opened, connect_errors,
	       connect_errors ? strerror(first_connect_errno) : "");
	fflush(stdout);

	int churning = 1;
	double drain_deadline = 0;
	struct epoll_event events[256];
	for (;;) {
		double t = now_mono();
		if (churning && ((opt.seconds > 0 && t - t0 >= opt.seconds) || (opt.stop_file != NULL && access(opt.stop_file, F_OK) == 0) ||
				 (opt.seconds <= 0 && opt.stop_file == NULL && stdin_closed()))) {
			churning = 0;
			drain_deadline = t + opt.wait_close;
		}
		if (!churning && (open_now == 0 || t >= drain_deadline))
			break;
		int n = epoll_wait(ep, events, 256, 10);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct noise_conn *c = events[i].data.ptr;
			if (c->fd < 0)
				continue;
			int reset = 0;
			if (read_conn(c, &reset) || (events[i].events & (EPOLLHUP | EPOLLERR)))
				close_conn(c, reset && c->last_type < 0 ? "reset" : classify(c), 1, churning);
		}
		int64_t now = now_ns();
		for (long i = 0; i < opt.n; i++) {
			struct noise_conn *c = &conns[i];
			if (c->fd < 0) {
				if (churning && c->reopen_ns <= now)
					open_conn(c);
			} else if (c->kind == K_TRICKLE && c->next_send_ns <= now) {
				const unsigned char byte = (unsigned char)(c->trickled == 0 ? 1 : 'x');
				send_some(c->fd, &byte, 1);
				c->trickled++;
				c->next_send_ns = now + (int64_t)opt.trickle_ms * 1000000;
			}
		}
	}
	for (long i = 0; i < opt.n; i++)
		if (conns[i].fd >= 0)
			close_conn(&conns[i], "open", 0, 0);
	double secs = now_mono() - t0;

	for (int k = 0; k < K_COUNT; k++)
		for (int i = 0; i < MAX_OUTCOMES && stats[k][i].name[0]; i++) {
			struct outcome_stats *s = &stats[k][i];
			qsort(s->life_ms, (size_t)s->count, sizeof(int64_t), cmp_i64);
			printf("NOISE label=%s kind=%s outcome=%s count=%ld min_ms=%lld p50_ms=%lld max_ms=%lld\n", opt.label, KIND_NAMES[k], s->name,
			       s->count, (long long)s->life_ms[0], (long long)s->life_ms[s->count / 2], (long long)s->life_ms[s->count - 1]);
		}
	printf("NOISE-SUMMARY label=%s user=%s opened=%ld closed_by_daemon=%ld still_open=%ld connect_errors=%ld seconds=%.1f peak_open=%ld first_connect_error=\"%s\"\n",
	       opt.label, opt.user, opened, closed_by_daemon, closed_by_us, connect_errors, secs, peak_open,
	       connect_errors ? strerror(first_connect_errno) : "");
	fflush(stdout);
	return 0;
}
