/*
 * pam_twofold.c - PAM module relaying a login to twofoldd, the Twofold
 * TOTP daemon.
 *
 * The module is deliberately thin: it owns no secret and makes no
 * decision.  It checks that the socket belongs to the daemon, opens it,
 * sends AUTH_START with the PAM items and its capabilities (BINARY_PAYLOAD
 * and FIDO2 when built with libfido2's headers and not given nofido2, else
 * none), relays the daemon's prompts and messages through the PAM
 * conversation, runs the key step when the daemon asks for one (a FIDO2
 * assertion through twofold_fido), sends back the answers, and maps the
 * daemon's VERDICT to a PAM return code (docs/protocol.md has the table).
 *
 * "Unavailable" (PAM_AUTHINFO_UNAVAIL, or PAM_IGNORE with failmode=open)
 * only means that no dialog could start: no socket directory or socket,
 * connect refused or timed out, AUTH_START not sent, no complete first
 * frame before the timeout or EOF, or VERDICT UNAVAILABLE as the very
 * first message.  Once the daemon has answered, every failure (timeout,
 * EOF, malformed frame, PROTOCOL_ERROR, a later VERDICT UNAVAILABLE) is
 * PAM_AUTH_ERR whatever failmode: a daemon made to stall must not turn
 * failmode=open into a pass.  A socket that is not the daemon's (wrong
 * directory owner or mode, wrong peer uid) is PAM_AUTH_ERR too.
 *
 * Options:
 *   socket=PATH      daemon socket (absolute), default /run/twofold/twofold.sock;
 *                    its directory must be owned by root or daemon_user and
 *                    not writable by group or others, every ancestor owned by
 *                    root or daemon_user and, if writable by group or others,
 *                    sticky; no symlink on the way
 *   daemon_user=NAME the daemon's account: its uid may own the socket
 *                    directory and the listening socket (root always may)
 *   timeout=SECONDS  1..3600, default 10: limit for connecting, for sending
 *                    each frame and for waiting for each daemon message
 *                    (time the user spends answering a prompt is not counted);
 *                    sent to the daemon as DEADLINE (milliseconds)
 *   dialog_timeout=SECONDS  1..86400, default 900: limit for the whole
 *                    dialog, the user's answers included
 *   failmode=closed|open   default closed; open applies only when no
 *                    dialog could start (see above)
 *   forward_password send PAM_AUTHTOK to the daemon (PASSWORD field)
 *   nofido2          do not offer the key step (sshd: the user's key is on
 *                    the client, not on this host)
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
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <security/pam_modules.h>
#include <security/pam_ext.h>
#include <security/pam_modutil.h>

#include "twofold_fido.h"
#include "twofold_wire.h"

#define TF_EXPORT __attribute__((visibility("default")))

#define DEFAULT_SOCKET "/run/twofold/twofold.sock"
#define DEFAULT_TIMEOUT_S 10
#define MAX_TIMEOUT_S 3600
#define DEFAULT_DIALOG_TIMEOUT_S 900
#define MAX_DIALOG_TIMEOUT_S 86400
#define MAX_MESSAGES 64          /* daemon messages in one dialog, the verdict included */

struct options {
	const char *socket_path;
	int timeout_s;
	int dialog_timeout_s;
	int fail_open;
	int forward_password;
	int nofido2;
	int debug;
	const char *daemon_user; /* NULL: only root may own the socket */
	uid_t daemon_uid;
};

/* Everything pam_sm_authenticate must release, in one place. */
struct session {
	pam_handle_t *pamh;
	const struct options *opt;
	int flags;
	const char *user;        /* canonical name when the account exists */
	uint32_t capabilities;   /* declared in AUTH_START: what the daemon may send */
	int fd;
	int64_t dialog_deadline; /* set when connecting */
	int messages;            /* complete, valid daemon messages so far */
	struct tf_out *out;      /* outgoing frame; may hold the password or an answer */
	unsigned char *frame;    /* last received frame body */
	size_t frame_len;
	char *answer;            /* the user's reply to the current prompt */
	char *text;              /* NUL-terminated copy of the current message text */
};

/* ------------------------------------------------------------------ */
/* Options                                                             */

static int parse_seconds(const char *s, long max, int *out)
{
	char *end = NULL;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* One option; returns 0, or -1 after logging why it is bad. */
static int parse_option(pam_handle_t *pamh, const char *a, struct options *opt)
{
	const size_t sun_path_size = sizeof(((struct sockaddr_un *)0)->sun_path);

	if (strncmp(a, "socket=", 7) == 0) {
		if (a[7] != '/' || strlen(a + 7) >= sun_path_size) {
			pam_syslog(pamh, LOG_ERR, "bad option \"%s\": the socket must be an absolute path shorter than %zu bytes",
				   a, sun_path_size);
			return -1;
		}
		opt->socket_path = a + 7;
	} else if (strncmp(a, "timeout=", 8) == 0) {
		if (parse_seconds(a + 8, MAX_TIMEOUT_S, &opt->timeout_s) != 0) {
			pam_syslog(pamh, LOG_ERR, "bad option \"%s\": the timeout must be whole seconds from 1 to %d",
				   a, MAX_TIMEOUT_S);
			return -1;
		}
	} else if (strncmp(a, "dialog_timeout=", 15) == 0) {
		if (parse_seconds(a + 15, MAX_DIALOG_TIMEOUT_S, &opt->dialog_timeout_s) != 0) {
			pam_syslog(pamh, LOG_ERR, "bad option \"%s\": dialog_timeout must be whole seconds from 1 to %d",
				   a, MAX_DIALOG_TIMEOUT_S);
			return -1;
		}
	} else if (strncmp(a, "daemon_user=", 12) == 0 && a[12] != '\0') {
		opt->daemon_user = a + 12; /* resolved once every option is read */
	} else if (strcmp(a, "failmode=closed") == 0 || strcmp(a, "failmode=open") == 0) {
		opt->fail_open = a[9] == 'o';
	} else if (strcmp(a, "forward_password") == 0) {
		opt->forward_password = 1;
	} else if (strcmp(a, "nofido2") == 0) {
		opt->nofido2 = 1;
	} else if (strcmp(a, "debug") == 0) {
		opt->debug = 1;
	} else {
		pam_syslog(pamh, LOG_ERR, "unknown or malformed option \"%s\"", a);
		return -1;
	}
	return 0;
}

/* Returns 0, or -1 after logging every bad option. */
static int parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *opt)
{
	int bad = 0;

	opt->socket_path = DEFAULT_SOCKET;
	opt->timeout_s = DEFAULT_TIMEOUT_S;
	opt->dialog_timeout_s = DEFAULT_DIALOG_TIMEOUT_S;
	opt->fail_open = 0;
	opt->forward_password = 0;
	opt->nofido2 = 0;
	opt->debug = 0;
	opt->daemon_user = NULL;
	opt->daemon_uid = 0;

	for (int i = 0; i < argc; i++)
		bad |= parse_option(pamh, argv[i], opt) != 0;
	if (!bad && opt->daemon_user != NULL) {
		const struct passwd *pw = pam_modutil_getpwnam(pamh, opt->daemon_user);

		if (pw == NULL) {
			pam_syslog(pamh, LOG_ERR, "bad option \"daemon_user=%s\": no such account", opt->daemon_user);
			bad = 1;
		} else {
			opt->daemon_uid = pw->pw_uid;
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

/* The per-message deadline, but never past the end of the dialog. */
static int64_t message_deadline(const struct session *s)
{
	int64_t d = deadline_after(s->opt);

	return d < s->dialog_deadline ? d : s->dialog_deadline;
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

/* No dialog could start: fail closed, or open when so configured. */
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

/*
 * The daemon answered, then failed or misbehaved.  Never "unavailable":
 * an attacker who can make the daemon stall (wrong codes, throttle delay)
 * must not reach failmode=open.
 */
__attribute__((format(printf, 2, 3)))
static int dialog_failed(const struct session *s, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);

	pam_syslog(s->pamh, LOG_ERR, "twofoldd dialog failed for user %s (%s); dialog started: failing closed whatever failmode",
		   s->user, reason);
	return PAM_AUTH_ERR;
}

/* Sends the frame in s->out, then wipes it.  Returns an io_status. */
static int send_frame(struct session *s)
{
	size_t n = tf_out_finish(s->out);
	int st = send_all(s->fd, s->out->buf, n, message_deadline(s));

	explicit_bzero(s->out, sizeof(*s->out));
	return st;
}

enum read_status {
	RF_OK,
	RF_NONE,      /* timeout, EOF or I/O error before a complete frame */
	RF_MALFORMED, /* the length word is out of bounds */
	RF_NOMEM,
};

/* Reads one frame body into s->frame, checking its length before allocating. */
static int read_frame(struct session *s, const char **why, char *errbuf, size_t errsize)
{
	unsigned char word[TF_LENGTH_BYTES];
	int64_t deadline = message_deadline(s);
	uint32_t len;
	int st;

	drop_frame(s);
	st = recv_all(s->fd, word, sizeof(word), deadline);
	if (st != IO_OK) {
		*why = io_reason(st, errbuf, errsize);
		return RF_NONE;
	}
	len = tf_get_length(word);
	if (!tf_length_ok(len)) {
		*why = "frame length out of bounds";
		return RF_MALFORMED;
	}
	s->frame = malloc(len);
	if (s->frame == NULL) {
		*why = "out of memory";
		return RF_NOMEM;
	}
	s->frame_len = len;
	st = recv_all(s->fd, s->frame, len, deadline);
	if (st != IO_OK) {
		*why = st == IO_EOF ? "connection closed inside a frame" : io_reason(st, errbuf, errsize);
		return RF_NONE;
	}
	return RF_OK;
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

/* ------------------------------------------------------------------ */
/* Who we talk to                                                      */

static int owner_ok(const struct options *opt, uid_t uid)
{
	return uid == 0 || (opt->daemon_user != NULL && uid == opt->daemon_uid);
}

/*
 * The socket's directory and its ancestors must be out of reach of other
 * local users, or one of them could put a socket of their own in the
 * daemon's place.  Returns 0, 1 when the directory does not exist (the
 * daemon is not installed or not running), or -1 after logging why not.
 * No symlink is followed: lstat on every component.
 */
static int check_socket_dir(const struct session *s)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *path = s->opt->socket_path;
	size_t len = (size_t)(strrchr(path, '/') - path); /* path is absolute */
	struct stat st;
	int is_dir = 1;

	memcpy(dir, path, len == 0 ? 1 : len);
	dir[len == 0 ? 1 : len] = '\0';

	for (;;) {
		char *slash;

		if (lstat(dir, &st) != 0) {
			if (is_dir && (errno == ENOENT || errno == ENOTDIR))
				return 1;
			pam_syslog(s->pamh, LOG_ERR, "refusing socket %s: cannot check %s: %m", path, dir);
			return -1;
		}
		if (!S_ISDIR(st.st_mode)) {
			pam_syslog(s->pamh, LOG_ERR, "refusing socket %s: %s is %s", path, dir,
				   S_ISLNK(st.st_mode) ? "a symlink (give the real path)" : "not a directory");
			return -1;
		}
		if (!owner_ok(s->opt, st.st_uid)) {
			pam_syslog(s->pamh, LOG_ERR, "refusing socket %s: %s is owned by uid %u, not root or daemon_user",
				   path, dir, (unsigned)st.st_uid);
			return -1;
		}
		/* The directory itself: nobody else may add or rename entries.
		 * An ancestor may be shared (/tmp) if sticky. */
		if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (is_dir || (st.st_mode & S_ISVTX) == 0)) {
			pam_syslog(s->pamh, LOG_ERR, "refusing socket %s: %s is writable by group or others (mode %04o)",
				   path, dir, (unsigned)(st.st_mode & 07777));
			return -1;
		}
		if (strcmp(dir, "/") == 0)
			return 0;
		slash = strrchr(dir, '/');
		slash[slash == dir ? 1 : 0] = '\0';
		is_dir = 0;
	}
}

/* The listening socket must be root's or daemon_user's. */
static int check_peer(const struct session *s)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(s->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
		pam_syslog(s->pamh, LOG_ERR, "refusing socket %s: cannot read the peer's credentials: %m",
			   s->opt->socket_path);
		return -1;
	}
	if (!owner_ok(s->opt, cred.uid)) {
		pam_syslog(s->pamh, LOG_ERR, "refusing socket %s: it is served by uid %u (pid %d), not root or daemon_user; "
			   "not talking to an impostor (PAM_AUTH_ERR whatever failmode)",
			   s->opt->socket_path, (unsigned)cred.uid, (int)cred.pid);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Phases of pam_sm_authenticate; each returns a PAM code.             */

/* PAM_USER, canonical: sssd or LDAP may accept "Alice" for "alice", and
 * the daemon must see one name per account. */
static int get_user(struct session *s)
{
	const char *user = NULL;
	const struct passwd *pw;
	int ret = pam_get_user(s->pamh, &user, NULL);

	if (ret != PAM_SUCCESS || user == NULL) {
		pam_syslog(s->pamh, LOG_NOTICE, "cannot determine the user name: %s", pam_strerror(s->pamh, ret));
		if (ret == PAM_SUCCESS)
			return PAM_USER_UNKNOWN;
		return ret == PAM_CONV_AGAIN ? PAM_INCOMPLETE : ret; /* the convention: ask to be called again */
	}
	s->user = user;
	pw = pam_modutil_getpwnam(s->pamh, user);
	if (pw != NULL && pw->pw_name != NULL) {
		if (s->opt->debug && strcmp(pw->pw_name, user) != 0)
			pam_syslog(s->pamh, LOG_DEBUG, "user %s is account %s", user, pw->pw_name);
		s->user = pw->pw_name; /* lives as long as the PAM handle */
	}
	return PAM_SUCCESS;
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

/*
 * The key step needs libfido2's headers at build time (libfido2 itself is
 * loaded only when a key step comes).  nofido2 is for stacks where a key
 * could never be on this host (sshd): the daemon then offers codes at once.
 */
static uint32_t module_capabilities(const struct options *opt)
{
	if (!tf_fido_built() || opt->nofido2)
		return 0;
	return TF_CAP_BINARY_PAYLOAD | TF_CAP_FIDO2;
}

/* AUTH_START.  Items that cannot be sent faithfully are refused here,
 * never truncated or dropped, and never turned into fail-open. */
static int build_auth_start(struct session *s)
{
	const void *item = NULL;

	s->out = calloc(1, sizeof(*s->out));
	if (s->out == NULL)
		return PAM_BUF_ERR;
	tf_out_begin(s->out, TF_AUTH_START);
	if (tf_out_text(s->out, TF_TAG_USER, s->user) != 0) {
		pam_syslog(s->pamh, LOG_NOTICE, "user name too long or not UTF-8; refusing");
		return PAM_USER_UNKNOWN;
	}
	if (pam_get_item(s->pamh, PAM_SERVICE, &item) != PAM_SUCCESS || item == NULL ||
	    tf_out_text(s->out, TF_TAG_SERVICE, item) != 0) {
		pam_syslog(s->pamh, LOG_ERR, "PAM_SERVICE missing, too long or not UTF-8; refusing");
		return PAM_SERVICE_ERR;
	}
	if (add_item(s, PAM_RHOST, TF_TAG_RHOST, "PAM_RHOST") != 0 ||
	    add_item(s, PAM_TTY, TF_TAG_TTY, "PAM_TTY") != 0 ||
	    add_item(s, PAM_RUSER, TF_TAG_RUSER, "PAM_RUSER") != 0)
		return PAM_SERVICE_ERR;
	/* The daemon must answer within our wait, or its answer is lost. */
	if (tf_out_u32(s->out, TF_TAG_DEADLINE, (uint32_t)s->opt->timeout_s * 1000u) != 0)
		return PAM_SERVICE_ERR;
	/* What we can carry beyond text prompts: the daemon offers only
	 * factors we can relay.  Sent even when zero: the daemon's log then
	 * shows a module that knows CAPABILITIES. */
	s->capabilities = module_capabilities(s->opt);
	if (tf_out_u32(s->out, TF_TAG_CAPABILITIES, s->capabilities) != 0)
		return PAM_SERVICE_ERR;
	if (s->opt->forward_password) {
		/* The password is an extra for the daemon: one that cannot be
		 * sent (none yet, over 512 bytes, not UTF-8) is left out. */
		item = NULL;
		if (pam_get_item(s->pamh, PAM_AUTHTOK, &item) != PAM_SUCCESS || item == NULL) {
			if (s->opt->debug)
				pam_syslog(s->pamh, LOG_DEBUG, "forward_password: no PAM_AUTHTOK to forward");
		} else if (tf_out_text(s->out, TF_TAG_PASSWORD, item) != 0) {
			pam_syslog(s->pamh, LOG_NOTICE, "forward_password: PAM_AUTHTOK is too long or not UTF-8; not forwarded");
		}
	}
	return PAM_SUCCESS;
}

/* Checks the socket, connects, checks the peer, sends AUTH_START. */
static int open_dialog(struct session *s)
{
	const char *path = s->opt->socket_path;
	char errbuf[128];
	int st = check_socket_dir(s);

	if (st > 0)
		return unavailable(s, "connect %s: its directory does not exist", path);
	if (st < 0)
		return PAM_AUTH_ERR; /* logged; a planted socket must not reach failmode=open */
	s->dialog_deadline = now_ms() + (int64_t)s->opt->dialog_timeout_s * 1000;
	st = connect_daemon(path, message_deadline(s), &s->fd);
	if (st != IO_OK)
		return unavailable(s, "connect %s: %s", path, io_reason(st, errbuf, sizeof(errbuf)));
	if (check_peer(s) != 0)
		return PAM_AUTH_ERR;
	if (s->opt->debug)
		pam_syslog(s->pamh, LOG_DEBUG, "connected to %s", path);
	st = send_frame(s);
	if (st == IO_ERROR && (errno == EPIPE || errno == ECONNRESET)) {
		/* A daemon refusing the connection may have answered and closed before AUTH_START went
		 * out: its verdict stays readable on a Unix socket, so only its absence is "unavailable". */
		if (s->opt->debug)
			pam_syslog(s->pamh, LOG_DEBUG, "sending AUTH_START: %s; reading the daemon's answer",
				   io_reason(st, errbuf, sizeof(errbuf)));
		return PAM_SUCCESS;
	}
	if (st != IO_OK)
		return unavailable(s, "sending AUTH_START: %s", io_reason(st, errbuf, sizeof(errbuf)));
	if (s->opt->debug)
		pam_syslog(s->pamh, LOG_DEBUG, "sent AUTH_START for user %s, capabilities 0x%08x", s->user,
			   (unsigned)s->capabilities);
	return PAM_SUCCESS;
}

static int dialog_expired(const struct session *s)
{
	return now_ms() >= s->dialog_deadline;
}

/*
 * Reads and checks the next daemon message.  Only when no complete frame
 * came before the first one is the daemon "unavailable"; any bad frame,
 * and any failure after the first message, is PAM_AUTH_ERR.
 */
static int read_message(struct session *s, struct tf_msg *m)
{
	const char *why = NULL;
	char errbuf[128];
	int st = read_frame(s, &why, errbuf, sizeof(errbuf));

	if (st == RF_NOMEM)
		return PAM_BUF_ERR;
	if (st == RF_NONE && s->messages == 0)
		return unavailable(s, "%s", why);
	if (st == RF_NONE && dialog_expired(s))
		return dialog_failed(s, "the dialog lasted longer than dialog_timeout=%d s", s->opt->dialog_timeout_s);
	if (st != RF_OK || tf_parse(s->frame, s->frame_len, s->capabilities, m, &why) != 0)
		return dialog_failed(s, "%s", why);
	s->messages++;
	if (s->opt->debug)
		pam_syslog(s->pamh, LOG_DEBUG, "received %s", tf_type_name(m->type));
	if (dialog_expired(s))
		return dialog_failed(s, "the dialog lasted longer than dialog_timeout=%d s", s->opt->dialog_timeout_s);
	return PAM_SUCCESS;
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
		/* Only as the first message does it mean "cannot decide". */
		if (s->messages == 1)
			return unavailable(s, "VERDICT UNAVAILABLE%s%.*s", sep, len, text);
		return dialog_failed(s, "VERDICT UNAVAILABLE, not as the first message%s%.*s", sep, len, text);
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

/*
 * Sends an ANSWER: TEXT, and PAYLOAD when payload != NULL (the key step).
 * Wipes s->answer.
 */
static int send_answer(struct session *s, const char *text, const unsigned char *payload, size_t payload_len)
{
	char errbuf[128];
	int st;

	tf_out_begin(s->out, TF_ANSWER);
	st = tf_out_text(s->out, TF_TAG_TEXT, text);
	if (st == 0 && payload != NULL)
		st = tf_out_field(s->out, TF_TAG_PAYLOAD, payload, payload_len);
	wipe_free_string(&s->answer);
	if (st != 0) {
		/* Sending it would make the daemon see a protocol error. */
		explicit_bzero(s->out, sizeof(*s->out));
		pam_syslog(s->pamh, LOG_NOTICE, "answer too long or not UTF-8; refusing");
		return PAM_AUTH_ERR;
	}
	st = send_frame(s);
	if (st != IO_OK)
		return dialog_failed(s, "sending ANSWER: %s", io_reason(st, errbuf, sizeof(errbuf)));
	if (s->opt->debug)
		pam_syslog(s->pamh, LOG_DEBUG, "sent ANSWER%s", payload != NULL ? " with a key response" : "");
	return PAM_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* The key step                                                        */

#define DEFAULT_PIN_PROMPT "Security key PIN: "

/* The wire's bounds and the layer's must agree, or a request could overflow it. */
_Static_assert(TF_KEY_MAX_CREDS == TF_FIDO_MAX_CREDS && TF_KEY_HASH_LEN == TF_FIDO_HASH_LEN &&
		       TF_KEY_MAX_CRED_ID == TF_FIDO_MAX_CRED_ID && TF_KEY_MAX_AUTH_DATA == TF_FIDO_MAX_AUTH_DATA &&
		       TF_KEY_MAX_SIG == TF_FIDO_MAX_SIG,
	       "twofold_wire.h and twofold_fido.h disagree on the key step's bounds");

/* What the libfido2 layer's callbacks need. */
struct key_ctx {
	struct session *s;
	const char *pin_prompt;
	int conv_failed;
};

/* The key holding a credential is about to wait: show the daemon's text ("Touch your security key."). */
static void key_touch(void *ctx)
{
	struct key_ctx *k = ctx;

	if (k->s->flags & PAM_SILENT)
		return; /* the key blinks anyway */
	if (converse(k->s->pamh, PAM_TEXT_INFO, k->s->text, NULL) != PAM_SUCCESS)
		k->conv_failed = 1;
}

/* The key wants its PIN: asked through the conversation, given to libfido2 only, never logged. */
static int key_pin(void *ctx, char *buf, size_t len)
{
	struct key_ctx *k = ctx;
	char *answer = NULL;
	size_t n;
	int ok;

	if (converse(k->s->pamh, PAM_PROMPT_ECHO_OFF, k->pin_prompt, &answer) != PAM_SUCCESS) {
		k->conv_failed = 1;
		return -1;
	}
	n = strlen(answer);
	ok = n > 0 && n < len;
	if (ok)
		memcpy(buf, answer, n + 1);
	wipe_free_string(&answer);
	return ok ? 0 : -1;
}

static void to_assert_request(const struct tf_key_request *req, struct tf_fido_assert_request *q)
{
	memset(q, 0, sizeof(*q));
	q->rp_id = req->rp_id;
	q->client_data_hash = req->client_data_hash;
	for (size_t i = 0; i < req->n_creds; i++) {
		q->creds[i].id = req->creds[i].id;
		q->creds[i].len = req->creds[i].len;
	}
	q->n_creds = req->n_creds;
	q->require_uv = req->require_uv;
	q->timeout_ms = (int)req->timeout_ms; /* tf_parse_key_request: at most 120000 */
}

/* Says why a key step gave no assertion (the daemon decides what follows). */
static void log_key_outcome(const struct session *s, int status, int fido_error)
{
	if (status == TF_FIDO_OK) {
		if (s->opt->debug)
			pam_syslog(s->pamh, LOG_DEBUG, "key step for user %s: assertion made", s->user);
		return;
	}
	pam_syslog(s->pamh, status == TF_FIDO_NO_LIBRARY ? LOG_ERR : LOG_NOTICE,
		   "key step for user %s: %s (status %d, libfido2 error %d)", s->user, tf_fido_status_text(status),
		   status, fido_error);
}

/*
 * A PROMPT_ECHO_OFF with a key request: get an assertion from the key that
 * holds a listed credential, and answer with TEXT "" and the key response,
 * whatever the outcome (the daemon falls back or fails).  A malformed
 * request fails the login: a started dialog never fails open.
 */
static int key_step(struct session *s, const struct tf_msg *m)
{
	struct tf_key_request req;
	struct tf_fido_assert_request q;
	struct tf_fido_assert_result res;
	unsigned char payload[TF_KEY_RESPONSE_MAX];
	struct key_ctx k = { .s = s, .pin_prompt = DEFAULT_PIN_PROMPT, .conv_failed = 0 };
	const char *why = NULL;
	size_t len;
	int st;

	if (tf_parse_key_request(m->payload, m->payload_len, &req, &why) != 0)
		return dialog_failed(s, "malformed key request: %s", why);
	if (req.pin_prompt[0] != '\0')
		k.pin_prompt = req.pin_prompt;
	to_assert_request(&req, &q);
	st = tf_fido_assert(&q, key_pin, key_touch, &k, &res);
	log_key_outcome(s, st, res.fido_error);
	len = tf_key_response(payload, sizeof(payload), (uint8_t)st, res.fido_error, res.cred_id, res.cred_id_len,
			      res.auth_data, res.auth_data_len, res.sig, res.sig_len);
	explicit_bzero(&res, sizeof(res));
	if (k.conv_failed) {
		pam_syslog(s->pamh, LOG_ERR, "conversation failed; abandoning the dialog");
		return PAM_CONV_ERR;
	}
	if (len == 0)
		return dialog_failed(s, "the key's answer does not fit the key response");
	if (dialog_expired(s))
		return dialog_failed(s, "the dialog lasted longer than dialog_timeout=%d s", s->opt->dialog_timeout_s);
	return send_answer(s, "", payload, len);
}

/* Shows or asks one prompt or message; sends the answer to a prompt. */
static int relay_message(struct session *s, const struct tf_msg *m)
{
	int style, ret;

	wipe_free_string(&s->text); /* may hold an enrollment key or recovery codes */
	s->text = strndup((const char *)m->text, m->text_len); /* tf_parse: no NUL inside */
	if (s->text == NULL)
		return PAM_BUF_ERR;
	if (m->has_payload)
		return key_step(s, m); /* tf_parse: only in a PROMPT_ECHO_OFF, only when declared */
	if ((m->type == TF_INFO || m->type == TF_ERROR_MSG) && (s->flags & PAM_SILENT)) {
		if (s->opt->debug)
			pam_syslog(s->pamh, LOG_DEBUG, "PAM_SILENT: not showing %s", tf_type_name(m->type));
		return PAM_SUCCESS;
	}
	switch (m->type) {
	case TF_INFO: style = PAM_TEXT_INFO; break;
	case TF_ERROR_MSG: style = PAM_ERROR_MSG; break;
	case TF_PROMPT_ECHO_OFF: style = PAM_PROMPT_ECHO_OFF; break;
	default: style = PAM_PROMPT_ECHO_ON; break;
	}
	ret = converse(s->pamh, style, s->text, style == PAM_TEXT_INFO || style == PAM_ERROR_MSG ? NULL : &s->answer);
	if (ret != PAM_SUCCESS) {
		pam_syslog(s->pamh, LOG_ERR, "conversation failed; abandoning the dialog");
		return ret;
	}
	if (dialog_expired(s))
		return dialog_failed(s, "the dialog lasted longer than dialog_timeout=%d s", s->opt->dialog_timeout_s);
	if (s->answer == NULL)
		return PAM_SUCCESS;
	return send_answer(s, s->answer, NULL, 0);
}

/* Relays daemon messages until the verdict or a failure. */
static int run_dialog(struct session *s)
{
	for (;;) {
		struct tf_msg m;
		int ret;

		/* The verdict must come within MAX_MESSAGES: a daemon that
		 * talks forever is broken or not ours. */
		if (s->messages == MAX_MESSAGES)
			return dialog_failed(s, "no verdict within %d messages", MAX_MESSAGES);
		ret = read_message(s, &m);
		if (ret != PAM_SUCCESS)
			return ret;
		if (m.type == TF_VERDICT)
			return verdict_to_pam(s, &m);
		if (m.type == TF_PROTOCOL_ERROR)
			return dialog_failed(s, "PROTOCOL_ERROR from the daemon: %.*s",
					     m.has_text ? (int)m.text_len : 0, m.has_text ? (const char *)m.text : "");
		ret = relay_message(s, &m);
		if (ret != PAM_SUCCESS)
			return ret;
	}
}

/* ------------------------------------------------------------------ */
/* PAM entry points                                                    */

TF_EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct options opt;
	struct session s;
	int ret;

	memset(&s, 0, sizeof(s));
	s.pamh = pamh;
	s.opt = &opt;
	s.flags = flags;
	s.fd = -1;
	s.user = "?";

	/* Each phase runs only if the one before it succeeded. */
	ret = parse_options(pamh, argc, argv, &opt) == 0 ? PAM_SUCCESS : PAM_SERVICE_ERR;
	if (ret == PAM_SUCCESS)
		ret = get_user(&s);
	if (ret == PAM_SUCCESS)
		ret = build_auth_start(&s);
	if (ret == PAM_SUCCESS)
		ret = open_dialog(&s);
	if (ret == PAM_SUCCESS)
		ret = run_dialog(&s);

	if (s.fd >= 0)
		close(s.fd);
	wipe_free_string(&s.answer);
	wipe_free_string(&s.text);
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
