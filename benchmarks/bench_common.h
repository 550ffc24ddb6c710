/*
 * bench_common.h - shared by the Twofold benchmark tools (loadgen, tfprov,
 * pam_bench, stubd): deterministic per-user secrets, TOTP, base32, the wire
 * framing of docs/protocol.md, timing and statistics helpers.
 *
 * Users are named PREFIX + 7 digits ("bu0000042").  Their TOTP secrets are
 * derived from a seed and the user index, so every tool agrees on them
 * without a secrets file:
 *
 *     secret(i) = first 20 bytes of HMAC-SHA256(seed, "twofold-bench/" || i)
 *
 * Header-only (static functions) so each tool is one compilation unit.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SECRET_LEN 20
#define DEFAULT_SEED "twofold-bench-v1"
#define DEFAULT_PREFIX "bu"
#define STEP_SECONDS 30

/* ---------------------------------------------------------------- */
/* Errors and time                                                   */

static __attribute__((unused)) void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static __attribute__((unused)) void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static inline double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline double now_wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int64_t current_step(void)
{
	return (int64_t)time(NULL) / STEP_SECONDS;
}

/* Sleeps until `step` has begun (plus a small margin so the daemon agrees). */
static __attribute__((unused)) void sleep_until_step(int64_t step)
{
	for (;;) {
		double t = now_wall();
		double start = (double)step * STEP_SECONDS + 0.05;
		if (t >= start)
			return;
		double left = start - t;
		struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
		nanosleep(&ts, NULL);
	}
}

/* ---------------------------------------------------------------- */
/* Users, secrets, codes                                             */

static inline void user_name(char *out, size_t cap, const char *prefix, long index)
{
	snprintf(out, cap, "%s%07ld", prefix, index);
}

static __attribute__((unused)) void user_secret(const char *seed, long index, unsigned char out[SECRET_LEN])
{
	char msg[64];
	unsigned char mac[32];
	unsigned int len = 0;
	int n = snprintf(msg, sizeof msg, "twofold-bench/%ld", index);

	if (HMAC(EVP_sha256(), seed, (int)strlen(seed), (const unsigned char *)msg, (size_t)n, mac, &len) == NULL)
		die("HMAC failed");
	memcpy(out, mac, SECRET_LEN);
}

/* RFC 4226 HOTP, 6 digits, SHA-1: writes 6 digits and a NUL. */
static __attribute__((unused)) void hotp6(const unsigned char *key, size_t keylen, uint64_t counter, char out[7])
{
	unsigned char msg[8], mac[20];
	unsigned int len = 0;

	for (int i = 7; i >= 0; i--) {
		msg[i] = (unsigned char)(counter & 0xff);
		counter >>= 8;
	}
	if (HMAC(EVP_sha1(), key, (int)keylen, msg, sizeof msg, mac, &len) == NULL || len != 20)
		die("HMAC-SHA1 failed");
	int off = mac[19] & 0x0f;
	uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
		       ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
	snprintf(out, 7, "%06u", bin % 1000000u);
}

static inline void totp6(const unsigned char *key, size_t keylen, int64_t step, char out[7])
{
	hotp6(key, keylen, (uint64_t)step, out);
}

/* A 6-digit code that matches none of the steps `step`-3 .. `step`+3. */
static __attribute__((unused)) void wrong_code(const unsigned char *key, size_t keylen, int64_t step, char out[7])
{
	char valid[7][7];
	for (int d = -3; d <= 3; d++)
		totp6(key, keylen, step + d, valid[d + 3]);
	for (unsigned c = 0;; c++) {
		snprintf(out, 7, "%06u", c);
		int clash = 0;
		for (int d = 0; d < 7; d++)
			clash |= strcmp(out, valid[d]) == 0;
		if (!clash)
			return;
	}
}

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* RFC 4648 base32 without padding. */
static __attribute__((unused)) void base32_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	uint32_t buf = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		buf = (buf << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			if (o + 1 < cap)
				out[o++] = B32[(buf >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0 && o + 1 < cap)
		out[o++] = B32[(buf << (5 - bits)) & 31];
	out[o] = '\0';
}

/* Returns the number of bytes, or -1. */
static __attribute__((unused)) int base32_decode(const char *in, unsigned char *out, size_t cap)
{
	uint32_t buf = 0;
	int bits = 0;
	size_t o = 0;

	for (const char *p = in; *p && *p != '='; p++) {
		const char *q = strchr(B32, *p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		if (q == NULL || *p == '\0')
			return -1;
		buf = (buf << 5) | (uint32_t)(q - B32);
		bits += 5;
		if (bits >= 8) {
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char)(buf >> (bits - 8));
			bits -= 8;
		}
	}
	return (int)o;
}

static __attribute__((unused)) void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char H[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = H[in[i] >> 4];
		out[2 * i + 1] = H[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---------------------------------------------------------------- */
/* Wire protocol (docs/protocol.md)                                  */

enum {
	T_AUTH_START = 0x01, T_ANSWER = 0x02,
	T_PROMPT_ECHO_OFF = 0x11, T_PROMPT_ECHO_ON = 0x12, T_INFO = 0x13, T_ERROR_MSG = 0x14,
	T_VERDICT = 0x20, T_REQUEST = 0x30, T_RESPONSE = 0x31, T_PROTOCOL_ERROR = 0x7f,
};
enum {
	F_USER = 0x01, F_SERVICE = 0x02, F_RHOST = 0x03, F_TTY = 0x04,
	F_TEXT = 0x10, F_RESULT = 0x20, F_JSON = 0x30,
};
static const char *const VERDICT_NAMES[] = { "SUCCESS", "FAILURE", "LOCKED", "IGNORE", "UNAVAILABLE", "BAD_REQUEST", "DENIED" };

struct frame_out {
	unsigned char buf[70000];
	size_t len;
};

static inline void fo_begin(struct frame_out *f, int type)
{
	f->len = 6;
	f->buf[4] = 1;
	f->buf[5] = (unsigned char)type;
}

static inline void fo_field(struct frame_out *f, int tag, const void *value, size_t n)
{
	if (f->len + 3 + n > sizeof f->buf)
		die("frame too large");
	f->buf[f->len++] = (unsigned char)tag;
	f->buf[f->len++] = (unsigned char)(n >> 8);
	f->buf[f->len++] = (unsigned char)n;
	memcpy(f->buf + f->len, value, n);
	f->len += n;
}

static inline void fo_text(struct frame_out *f, int tag, const char *s)
{
	fo_field(f, tag, s, strlen(s));
}

static inline void fo_end(struct frame_out *f)
{
	uint32_t n = (uint32_t)(f->len - 4);
	f->buf[0] = (unsigned char)(n >> 24);
	f->buf[1] = (unsigned char)(n >> 16);
	f->buf[2] = (unsigned char)(n >> 8);
	f->buf[3] = (unsigned char)n;
}

/* A buffered reader over a blocking socket. */
struct conn {
	int fd;
	unsigned char *in;
	size_t cap, start, end;
};

static __attribute__((unused)) void conn_init(struct conn *c, int fd)
{
	c->fd = fd;
	if (c->in == NULL) {
		c->cap = 1 << 16;
		c->in = malloc(c->cap);
		if (c->in == NULL)
			die("out of memory");
	}
	c->start = c->end = 0;
}

static __attribute__((unused)) int write_all(int fd, const void *p, size_t n)
{
	const unsigned char *b = p;
	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one frame; *body points into the connection's buffer until the next call.
 * Returns the body length (≥ 2), 0 on EOF before a frame, -1 on error. */
static __attribute__((unused)) long conn_read_frame(struct conn *c, unsigned char **body)
{
	for (;;) {
		size_t have = c->end - c->start;
		if (have >= 4) {
			const unsigned char *p = c->in + c->start;
			uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
			if (n < 2 || n > (4u << 20))
				return -1;
			if (have >= 4 + (size_t)n) {
				*body = c->in + c->start + 4;
				c->start += 4 + n;
				return (long)n;
			}
			if (4 + (size_t)n > c->cap) {
				size_t ncap = 4 + (size_t)n;
				unsigned char *nb = malloc(ncap);
				if (nb == NULL)
					return -1;
				memcpy(nb, c->in + c->start, have);
				free(c->in);
				c->in = nb;
				c->cap = ncap;
				c->start = 0;
				c->end = have;
			}
		}
		if (c->start > 0 && c->end == c->cap) {
			memmove(c->in, c->in + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		} else if (c->start == c->end) {
			c->start = c->end = 0;
		}
		ssize_t r = recv(c->fd, c->in + c->end, c->cap - c->end, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				errno = ETIMEDOUT;
			return -1;
		}
		if (r == 0)
			return have == 0 ? 0 : -1;
		c->end += (size_t)r;
	}
}

/* Finds field `tag` in a frame body; returns its length or -1. The JSON field of a
 * RESPONSE with length 0xFFFF runs to the end of the frame. */
static __attribute__((unused)) long frame_field(const unsigned char *body, long n, int tag, const unsigned char **value)
{
	long i = 2;
	while (i + 3 <= n) {
		int t = body[i];
		long len = ((long)body[i + 1] << 8) | body[i + 2];
		if (t == F_JSON && len == 0xFFFF && body[1] == T_RESPONSE)
			len = n - (i + 3);
		if (i + 3 + len > n)
			return -1;
		if (t == tag) {
			*value = body + i + 3;
			return len;
		}
		i += 3 + len;
	}
	return -1;
}

/* Every send and receive on a daemon connection gives up after this many seconds (a hung daemon
 * must fail a run, not hang it). */
static int io_timeout_s = 20;

static __attribute__((unused)) int unix_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = io_timeout_s, .tv_usec = 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		close(fd);
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	for (int attempt = 0;; attempt++) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			return fd;
		/* A full accept backlog answers EAGAIN on Unix sockets: back off briefly. */
		if ((errno == EAGAIN || errno == EINTR) && attempt < 2000) {
			usleep(500);
			continue;
		}
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
}

/* ---------------------------------------------------------------- */
/* Statistics                                                        */

static __attribute__((unused)) int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in ms. */
static __attribute__((unused)) double pct_ms(const int64_t *sorted, long n, double p)
{
	if (n <= 0)
		return 0;
	long rank = (long)((p / 100.0) * (double)n + 0.999999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1e6;
}

/* ---------------------------------------------------------------- */
/* /proc of the daemon                                               */

/* utime+stime (+ cutime+cstime of its reaped children with `reaped`) of a process, in clock ticks;
 * its parent in *ppid when given; -1 if unreadable. */
static __attribute__((unused)) long long proc_ticks(int pid, int reaped, int *ppid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After "pid (comm)": field 3 is state, 4 the parent; utime and stime are fields 14 and 15. */
	char *p = strrchr(buf, ')');
	long long ut = 0, st = 0, cut = 0, cst = 0;
	int parent = 0;
	if (p == NULL || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld %lld %lld", &parent, &ut, &st, &cut, &cst) != 5)
		return -1;
	if (ppid)
		*ppid = parent;
	return ut + st + (reaped ? cut + cst : 0);
}

/* utime + stime of a process, in seconds; -1 if unreadable. */
static __attribute__((unused)) double proc_cpu_seconds(int pid)
{
	long long ticks = proc_ticks(pid, 0, NULL);
	return ticks < 0 ? -1 : (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/* A "VmXXX:" value of /proc/PID/status in KiB; -1 if absent. */
static __attribute__((unused)) long proc_status_kib(int pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* Resets the peak RSS (VmHWM) of a process (needs root or the same uid); 0 on success. */
static __attribute__((unused)) int proc_reset_hwm(int pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/clear_refs", pid);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	int ok = fputs("5", f) >= 0;
	return (fclose(f) == 0 && ok) ? 0 : -1;
}

#endif
