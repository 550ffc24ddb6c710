/*
 * stubd - a trivial stand-in for twofoldd, to measure the load generator's
 * own ceiling: one epoll thread answers AUTH_START with PROMPT_ECHO_OFF and
 * any ANSWER with VERDICT SUCCESS, then closes.  No store, no crypto, no
 * fsync.  If loadgen drives stubd much faster than twofoldd, loadgen is not
 * what limits the daemon's numbers.
 *
 *   stubd SOCKET_PATH SECONDS      (exits by itself after SECONDS)
 */
#include "bench_common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

struct client {
	int fd;
	size_t have;
	unsigned char in[1024];
};

static void reply(int fd, int type, int tag, const void *v, size_t n)
{
	struct frame_out f;
	fo_begin(&f, type);
	fo_field(&f, tag, v, n);
	fo_end(&f);
	(void)!send(fd, f.buf, f.len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int main(int argc, char **argv)
{
	if (argc != 3)
		die("usage: stubd SOCKET_PATH SECONDS");
	double until = now_mono() + atof(argv[2]);
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[1]);
	unlink(argv[1]);
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 256) != 0)
		die("bind/listen %s: %s", argv[1], strerror(errno));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	printf("ready\n");
	fflush(stdout);
	while (now_mono() < until) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 200);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				for (;;) {
					int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					struct client *c = calloc(1, sizeof *c);
					c->fd = fd;
					struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
				}
				continue;
			}
			struct client *c = evs[i].data.ptr;
			ssize_t r = recv(c->fd, c->in + c->have, sizeof c->in - c->have, 0);
			int done = r <= 0;
			if (r > 0) {
				c->have += (size_t)r;
				while (c->have >= 4) {
					uint32_t len = ((uint32_t)c->in[0] << 24) | ((uint32_t)c->in[1] << 16) | ((uint32_t)c->in[2] << 8) | c->in[3];
					if (len < 2 || len + 4 > sizeof c->in) {
						done = 1;
						break;
					}
					if (c->have < len + 4)
						break;
					int type = c->in[5];
					if (type == T_AUTH_START) {
						reply(c->fd, T_PROMPT_ECHO_OFF, F_TEXT, "Verification code: ", 19);
					} else if (type == T_ANSWER) {
						unsigned char ok = 0;
						reply(c->fd, T_VERDICT, F_RESULT, &ok, 1);
						done = 1;
					} else {
						done = 1;
					}
					memmove(c->in, c->in + len + 4, c->have - len - 4);
					c->have -= len + 4;
				}
			}
			if (done) {
				close(c->fd);
				free(c);
			}
		}
	}
	unlink(argv[1]);
	return 0;
}
