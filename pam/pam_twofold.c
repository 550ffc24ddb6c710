/*
 * pam_twofold.c - PAM module relaying a login to twofoldd, the Twofold
 * TOTP daemon.
 *
 * The module is deliberately thin: it owns no secret and makes no
 * decision.  It opens a Unix socket to the daemon, sends AUTH_START with
 * the PAM items, relays the daemon's prompts and messages through the PAM
 * conversation, sends back the answers, and maps the daemon's VERDICT to a
 * PAM return code (docs/protocol.md has the table).  Anything that keeps
 * the daemon from giving a verdict (no socket, timeout, malformed frame,
 * early close) makes it "unavailable": PAM_AUTHINFO_UNAVAIL, or PAM_IGNORE
 * with failmode=open.
 *
 * Options:
 *   socket=PATH      daemon socket (absolute), default /run/twofold/twofold.sock
 *   timeout=SECONDS  1..3600, default 10: limit for connecting, for sending
 *                    each frame and for waiting for each daemon message
 *                    (time the user spends answering a prompt is not counted)
 *   failmode=closed|open   default closed
 *   forward_password send PAM_AUTHTOK to the daemon (PASSWORD field)
 *   debug            log the dialog steps (message types only)
 * An unknown or malformed option is logged and the module returns
 * PAM_SERVICE_ERR: a mistyped "failmode=opne" or "timout=5" must not be
 * silently replaced by a default.
 *
 * No global mutable state: two threads may authenticate at once.
 */
#define PAM_SM_AUTH

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <security/pam_modules.h>
#include <security/pam_ext.h>

#include "twofold_wire.h"

#define TF_EXPORT __attribute__((visibility("default")))

#define DEFAULT_SOCKET "/run/twofold/twofold.sock"
#define DEFAULT_TIMEOUT_S 10
#define MAX_TIMEOUT_S 3600

struct options {
	const char *socket_path;
	int timeout_s;
	int fail_open;
	int forward_password;
	int debug;
};

/* Everything pam_sm_authenticate must release, in one place. */
struct session {
	pam_handle_t *pamh;
	const struct options *opt;
	const char *user;
	int fd;
	struct tf_out *out;      /* outgoing frame; may hold the password or an answer */
	unsigned char *frame;    /* last received frame body */
	size_t frame_len;
	char *answer;            /* the user's reply to the current prompt */
	char *text;              /* NUL-terminated copy of the current message text */
};

/* ------------------------------------------------------------------ */
/* Options                                                             */

static int parse_timeout(const char *s, int *out)
{
	char *end = NULL;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > MAX_TIMEOUT_S)
		return -1;
	*out = (int)v;
	return 0;
}

/* Returns 0, or -1 after logging every bad option. */
static int parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *opt)
{
	int bad = 0;

	opt->socket_path = DEFAULT_SOCKET;
	opt->timeout_s = DEFAULT_TIMEOUT_S;
	opt->fail_open = 0;
	opt->forward_password = 0;
	opt->debug = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strncmp(a, "socket=", 7) == 0) {
			const char *p = a + 7;
			if (p[0] != '/' || strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
				pam_syslog(pamh, LOG_ERR, "bad option \"%s\": the socket must be an absolute path shorter than %zu bytes",
					   a, sizeof(((struct sockaddr_un *)0)->sun_path));
				bad = 1;
			} else {
				opt->socket_path = p;
			}
		} else if (strncmp(a, "timeout=", 8) == 0) {
			if (parse_timeout(a + 8, &opt->timeout_s) != 0) {
				pam_syslog(pamh, LOG_ERR, "bad option \"%s\": the timeout must be whole seconds from 1 to %d",
					   a, MAX_TIMEOUT_S);
				bad = 1;
			}
		} else if (strcmp(a, "failmode=closed") == 0) {
			opt->fail_open = 0;
		} else if (strcmp(a, "failmode=open") == 0) {
			opt->fail_open = 1;
		} else if (strncmp(a, "failmode=", 9) == 0) {
			pam_syslog(pamh, LOG_ERR, "bad option \"%s\": failmode is closed or open", a);
			bad = 1;
		} else if (strcmp(a, "forward_password") == 0) {
			opt->forward_password = 1;
		} else if (strcmp(a, "debug") == 0) {
			opt->debug = 1;
		} else {
			pam_syslog(pamh, LOG_ERR, "unknown option \"%s\"", a);
			bad = 1;
		}
	}
	if (bad)
		pam_syslog(pamh, LOG_ERR, "bad configuration: refusing to run (PAM_SERVICE_ERR)");
	return bad ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Socket I/O with deadlines                                           */

enum io_status {
	IO_OK = 0,
	IO_TIMEOUT = -1,
	IO_EOF = -2,
	IO_ERROR = -3, /* errno is set */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_after(const struct options *opt)
{
	return now_ms() + (int64_t)opt->timeout_s * 1000;
}

/* Waits until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events, .revents = 0 };
		int64_t left = deadline - now_ms();
		int r;

		if (left <= 0)
			return IO_TIMEOUT;
		r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return IO_ERROR;
		}
		if (r > 0)
			return IO_OK; /* readable, writable, or an error the next call reports */
	}
}

static int set_nonblocking(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

/*
 * Connects to the daemon before the deadline.  A Unix stream connect on
 * Linux completes at once or fails with EAGAIN when the listen backlog is
 * full; then we wait for room in the kernel (blocking connect bounded by
 * SO_SNDTIMEO) rather than spin.  EINPROGRESS is handled for completeness.
 */
static int connect_daemon(const char *path, int64_t deadline, int *fd_out)
{
	struct sockaddr_un sa;
	int fd, st = IO_ERROR, saved;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked with the options */

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return IO_ERROR;

	for (;;) {
		if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0) {
			st = IO_OK;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) {
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			st = wait_fd(fd, POLLOUT, deadline);
			if (st != IO_OK)
				break;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
				st = IO_ERROR;
			} else if (soerr != 0) {
				errno = soerr;
				st = IO_ERROR;
			}
			break;
		}
		if (errno == EAGAIN) {
			int64_t left = deadline - now_ms();
			struct timeval tv;
			int r;

			if (left <= 0) {
				st = IO_TIMEOUT;
				break;
			}
			tv.tv_sec = (time_t)(left / 1000);
			tv.tv_usec = (suseconds_t)((left % 1000) * 1000);
			if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
			    set_nonblocking(fd, 0) != 0) {
				st = IO_ERROR;
				break;
			}
			r = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
			saved = errno;
			if (set_nonblocking(fd, 1) != 0) {
				st = IO_ERROR;
				break;
			}
			if (r == 0) {
				st = IO_OK;
				break;
			}
			errno = saved;
			if (saved == EAGAIN || saved == EINTR)
				continue; /* the deadline check above ends it */
		}
		st = IO_ERROR;
		break;
	}

	if (st != IO_OK) {
		saved = errno;
		close(fd);
		errno = saved;
		return st;
	}
	*fd_out = fd;
	return IO_OK;
}

static int send_all(int fd, const unsigned char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int st = wait_fd(fd, POLLOUT, deadline);
			if (st != IO_OK)
				return st;
			continue;
		}
		return IO_ERROR;
	}
	return IO_OK;
}

static int recv_all(int fd, unsigned char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = recv(fd, buf, len, 0);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return IO_EOF;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int st = wait_fd(fd, POLLIN, deadline);
			if (st != IO_OK)
				return st;
			continue;
		}
		return IO_ERROR;
	}
	return IO_OK;
}

static const char *io_reason(int st, char *buf, size_t size)
{
	switch (st) {
	case IO_TIMEOUT: return "timed out";
	case IO_EOF: return "connection closed before the verdict";
	default: return strerror_r(errno, buf, size);
	}
}

/* ------------------------------------------------------------------ */
/* Session helpers                                                     */

static void wipe_free(void *p, size_t len)
{
	if (p != NULL) {
		explicit_bzero(p, len);
		free(p);
	}
}

static void wipe_free_string(char **s)
{
	if (*s != NULL) {
		wipe_free(*s, strlen(*s));
		*s = NULL;
	}
}

static void drop_frame(struct session *s)
{
	wipe_free(s->frame, s->frame_len);
	s->frame = NULL;
	s->frame_len = 0;
}

/* The daemon gave no verdict: fail closed, or open when so configured. */
__attribute__((format(printf, 2, 3)))
static int unavailable(const struct session *s, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);

	if (s->opt->fail_open) {
		pam_syslog(s->pamh, LOG_CRIT, "twofoldd unavailable (%s); failmode=open: NOT checking the second factor for user %s",
			   reason, s->user);
		return PAM_IGNORE;
	}
	pam_syslog(s->pamh, LOG_ERR, "twofoldd unavailable (%s); failing closed for user %s", reason, s->user);
	return PAM_AUTHINFO_UNAVAIL;
}

/* Sends the frame in s->out, then wipes it.  Returns an io_status. */
static int send_frame(struct session *s)
{
	size_t n = tf_out_finish(s->out);
	int st = send_all(s->fd, s->out->buf, n, deadline_after(s->opt));

	explicit_bzero(s->out, sizeof(*s->out));
	return st;
}

/* Reads one frame body into s->frame, checking its length before allocating. */
static int read_frame(struct session *s, const char **why, char *errbuf, size_t errsize)
{
	unsigned char word[TF_LENGTH_BYTES];
	int64_t deadline = deadline_after(s->opt);
	uint32_t len;
	int st;

	drop_frame(s);
	st = recv_all(s->fd, word, sizeof(word), deadline);
	if (st != IO_OK) {
		*why = io_reason(st, errbuf, errsize);
		return -1;
	}
	len = tf_get_length(word);
	if (!tf_length_ok(len)) {
		*why = "frame length out of bounds";
		return -1;
	}
	s->frame = malloc(len);
	if (s->frame == NULL) {
		*why = "out of memory";
		return -1;
	}
	s->frame_len = len;
	st = recv_all(s->fd, s->frame, len, deadline);
	if (st != IO_OK) {
		*why = st == IO_EOF ? "connection closed inside a frame" : io_reason(st, errbuf, errsize);
		return -1;
	}
	return 0;
}

/*
 * One message through the PAM conversation.  With answer != NULL the
 * reply is returned in *answer (the caller wipes it); a missing reply is
 * a conversation error.
 */
static int converse(pam_handle_t *pamh, int style, const char *text, char **answer)
{
	const void *item = NULL;
	const struct pam_conv *conv;
	struct pam_message msg;
	const struct pam_message *msgp = &msg;
	struct pam_response *resp = NULL;
	int r;

	r = pam_get_item(pamh, PAM_CONV, &item);
	conv = item;
	if (r != PAM_SUCCESS || conv == NULL || conv->conv == NULL) {
		pam_syslog(pamh, LOG_ERR, "no conversation function");
		return PAM_CONV_ERR;
	}
	msg.msg_style = style;
	msg.msg = text;
	r = conv->conv(1, &msgp, &resp, conv->appdata_ptr);
	if (r == PAM_SUCCESS && answer != NULL) {
		if (resp == NULL || resp->resp == NULL) {
			r = PAM_CONV_ERR;
		} else {
			*answer = resp->resp;
			resp->resp = NULL;
		}
	}
	if (resp != NULL) {
		wipe_free_string(&resp->resp);
		free(resp);
	}
	return r == PAM_SUCCESS ? PAM_SUCCESS : PAM_CONV_ERR;
}

/* Appends an optional string item; one that cannot be sent is an error. */
static int add_item(struct session *s, int item_type, uint8_t tag, const char *name)
{
	const void *item = NULL;

	if (pam_get_item(s->pamh, item_type, &item) != PAM_SUCCESS || item == NULL)
		return 0;
	if (tf_out_text(s->out, tag, item) != 0) {
		pam_syslog(s->pamh, LOG_ERR, "%s is too long or not UTF-8; refusing", name);
		return -1;
	}
	return 0;
}

static int verdict_to_pam(struct session *s, const struct tf_msg *m)
{
	const char *name = tf_result_name(m->result);
	int len = m->has_text ? (int)m->text_len : 0;
	const char *text = m->has_text ? (const char *)m->text : "";
	const char *sep = m->has_text ? ": " : "";

	switch (m->result) {
	case TF_RESULT_SUCCESS:
	case TF_RESULT_IGNORE:
		if (s->opt->debug)
			pam_syslog(s->pamh, LOG_DEBUG, "received VERDICT %s for user %s%s%.*s", name, s->user, sep, len, text);
		return m->result == TF_RESULT_SUCCESS ? PAM_SUCCESS : PAM_IGNORE;
	case TF_RESULT_UNAVAILABLE:
		return unavailable(s, "VERDICT UNAVAILABLE%s%.*s", sep, len, text);
	default:
		break;
	}
	pam_syslog(s->pamh, LOG_NOTICE, "VERDICT %s for user %s%s%.*s", name, s->user, sep, len, text);
	switch (m->result) {
	case TF_RESULT_LOCKED: return PAM_MAXTRIES;
	case TF_RESULT_BAD_REQUEST: return PAM_SERVICE_ERR;
	default: return PAM_AUTH_ERR; /* FAILURE, DENIED; tf_parse rejected other codes */
	}
}

/* ------------------------------------------------------------------ */
/* PAM entry points                                                    */

TF_EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct options opt;
	struct session s;
	const void *item = NULL;
	const char *why = NULL;
	char errbuf[128];
	int ret = PAM_SERVICE_ERR;
	int st;

	memset(&s, 0, sizeof(s));
	s.pamh = pamh;
	s.opt = &opt;
	s.fd = -1;
	s.user = "?";

	if (parse_options(pamh, argc, argv, &opt) != 0) {
		ret = PAM_SERVICE_ERR;
		goto out;
	}

	ret = pam_get_user(pamh, &s.user, NULL);
	if (ret != PAM_SUCCESS || s.user == NULL) {
		pam_syslog(pamh, LOG_NOTICE, "cannot determine the user name: %s", pam_strerror(pamh, ret));
		if (ret == PAM_SUCCESS)
			ret = PAM_USER_UNKNOWN;
		else if (ret == PAM_CONV_AGAIN)
			ret = PAM_INCOMPLETE; /* the convention: ask to be called again */
		s.user = "?";
		goto out;
	}
	ret = PAM_SERVICE_ERR; /* every path below sets its own code */

	s.out = calloc(1, sizeof(*s.out));
	if (s.out == NULL) {
		ret = PAM_BUF_ERR;
		goto out;
	}

	/* AUTH_START.  Items that cannot be sent faithfully are refused here,
	 * never truncated or dropped, and never turned into fail-open. */
	tf_out_begin(s.out, TF_AUTH_START);
	if (tf_out_text(s.out, TF_TAG_USER, s.user) != 0) {
		pam_syslog(pamh, LOG_NOTICE, "user name too long or not UTF-8; refusing");
		ret = PAM_USER_UNKNOWN;
		goto out;
	}
	if (pam_get_item(pamh, PAM_SERVICE, &item) != PAM_SUCCESS || item == NULL ||
	    tf_out_text(s.out, TF_TAG_SERVICE, item) != 0) {
		pam_syslog(pamh, LOG_ERR, "PAM_SERVICE missing, too long or not UTF-8; refusing");
		ret = PAM_SERVICE_ERR;
		goto out;
	}
	if (add_item(&s, PAM_RHOST, TF_TAG_RHOST, "PAM_RHOST") != 0 ||
	    add_item(&s, PAM_TTY, TF_TAG_TTY, "PAM_TTY") != 0 ||
	    add_item(&s, PAM_RUSER, TF_TAG_RUSER, "PAM_RUSER") != 0) {
		ret = PAM_SERVICE_ERR;
		goto out;
	}
	if (opt.forward_password) {
		/* The password is an extra for the daemon: one that cannot be
		 * sent (none yet, over 512 bytes, not UTF-8) is left out. */
		item = NULL;
		if (pam_get_item(pamh, PAM_AUTHTOK, &item) != PAM_SUCCESS || item == NULL) {
			if (opt.debug)
				pam_syslog(pamh, LOG_DEBUG, "forward_password: no PAM_AUTHTOK to forward");
		} else if (tf_out_text(s.out, TF_TAG_PASSWORD, item) != 0) {
			pam_syslog(pamh, LOG_NOTICE, "forward_password: PAM_AUTHTOK is too long or not UTF-8; not forwarded");
		}
	}

	st = connect_daemon(opt.socket_path, deadline_after(&opt), &s.fd);
	if (st != IO_OK) {
		ret = unavailable(&s, "connect %s: %s", opt.socket_path, io_reason(st, errbuf, sizeof(errbuf)));
		goto out;
	}
	if (opt.debug)
		pam_syslog(pamh, LOG_DEBUG, "connected to %s", opt.socket_path);

	st = send_frame(&s);
	if (st != IO_OK) {
		ret = unavailable(&s, "sending AUTH_START: %s", io_reason(st, errbuf, sizeof(errbuf)));
		goto out;
	}
	if (opt.debug)
		pam_syslog(pamh, LOG_DEBUG, "sent AUTH_START for user %s", s.user);

	for (;;) {
		struct tf_msg m;
		int style;

		if (read_frame(&s, &why, errbuf, sizeof(errbuf)) != 0 ||
		    tf_parse(s.frame, s.frame_len, &m, &why) != 0) {
			ret = unavailable(&s, "%s", why);
			goto out;
		}
		if (opt.debug)
			pam_syslog(pamh, LOG_DEBUG, "received %s", tf_type_name(m.type));

		if (m.type == TF_VERDICT) {
			ret = verdict_to_pam(&s, &m);
			goto out;
		}
		if (m.type == TF_PROTOCOL_ERROR) {
			ret = unavailable(&s, "PROTOCOL_ERROR from the daemon: %.*s",
					  m.has_text ? (int)m.text_len : 0, m.has_text ? (const char *)m.text : "");
			goto out;
		}

		/* A prompt or a message: its text, NUL-terminated (tf_parse
		 * checked it has no NUL). */
		free(s.text);
		s.text = strndup((const char *)m.text, m.text_len);
		if (s.text == NULL) {
			ret = PAM_BUF_ERR;
			goto out;
		}

		if (m.type == TF_INFO || m.type == TF_ERROR_MSG) {
			if (flags & PAM_SILENT) {
				if (opt.debug)
					pam_syslog(pamh, LOG_DEBUG, "PAM_SILENT: not showing %s", tf_type_name(m.type));
				continue;
			}
			style = m.type == TF_INFO ? PAM_TEXT_INFO : PAM_ERROR_MSG;
			ret = converse(pamh, style, s.text, NULL);
			if (ret != PAM_SUCCESS) {
				pam_syslog(pamh, LOG_ERR, "conversation failed; abandoning the dialog");
				goto out;
			}
			continue;
		}

		style = m.type == TF_PROMPT_ECHO_OFF ? PAM_PROMPT_ECHO_OFF : PAM_PROMPT_ECHO_ON;
		ret = converse(pamh, style, s.text, &s.answer);
		if (ret != PAM_SUCCESS) {
			pam_syslog(pamh, LOG_ERR, "conversation failed; abandoning the dialog");
			goto out;
		}
		tf_out_begin(s.out, TF_ANSWER);
		if (tf_out_text(s.out, TF_TAG_TEXT, s.answer) != 0) {
			/* Sending it would make the daemon see a protocol error,
			 * and that must not become fail-open. */
			pam_syslog(pamh, LOG_NOTICE, "answer too long or not UTF-8; refusing");
			ret = PAM_AUTH_ERR;
			goto out;
		}
		wipe_free_string(&s.answer);
		st = send_frame(&s);
		if (st != IO_OK) {
			ret = unavailable(&s, "sending ANSWER: %s", io_reason(st, errbuf, sizeof(errbuf)));
			goto out;
		}
		if (opt.debug)
			pam_syslog(pamh, LOG_DEBUG, "sent ANSWER");
	}

out:
	if (s.fd >= 0)
		close(s.fd);
	wipe_free_string(&s.answer);
	free(s.text);
	drop_frame(&s);
	wipe_free(s.out, sizeof(*s.out));
	return ret;
}

TF_EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}
