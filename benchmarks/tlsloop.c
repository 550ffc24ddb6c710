/*
 * tlsloop - what one relay-to-server TLS handshake costs, without the rest of a dialog.
 *
 *   tlsloop -a ADDRESS:PORT --cert FILE --key FILE --ca FILE [-c CLIENTS] [-n COUNT] [-d MAX_SECONDS]
 *           [--alpn PROTOCOL] [-p PID] [--label TEXT]
 *
 * CLIENTS threads each repeat, until COUNT handshakes are done or MAX_SECONDS pass: a TCP
 * connection (TCP_NODELAY, as the relay's), a full TLS 1.3 handshake presenting a host certificate
 * (what a relay does for every dialog: no session is resumed), the server's certificate checked
 * against the CA and ALPN "twofold-relay/1" offered, then close_notify and a wait for the server to
 * close. The server therefore does everything it does for a relay's connection up to the first
 * message (the handshake, the host registry lookup, the dialog pipeline), and no dialog.
 *
 * Output: a summary on stderr and "RESULT handshakes=... secs=... rate=... p50_ms=... p99_ms=...
 * client_cpu_s=... server_cpu_s=... errors=..." on stdout: client_cpu_s is this process's
 * (OpenSSL; the relay uses BoringSSL through swift-nio-ssl), server_cpu_s that of -p PID.
 * Exit status 1 if any handshake failed.
 */
#include "bench_common.h"

#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/resource.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static struct {
	const char *host, *port, *cert, *key, *ca, *alpn, *label;
	int clients, pid;
	long count;
	double max_seconds;
} opt = { .alpn = "twofold-relay/1", .label = "-", .clients = 1, .count = 1000, .max_seconds = 60 };

static SSL_CTX *ctx;
static struct addrinfo *target;
static atomic_long next_op, errors;
static double deadline;
static int64_t *latencies;
static char first_error[300];
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;

static void note(const char *what)
{
	atomic_fetch_add(&errors, 1);
	pthread_mutex_lock(&err_lock);
	if (first_error[0] == '\0') {
		unsigned long e = ERR_peek_last_error();
		snprintf(first_error, sizeof first_error, "%s: %s", what, e ? ERR_error_string(e, NULL) : strerror(errno));
	}
	pthread_mutex_unlock(&err_lock);
	ERR_clear_error();
}

/* One handshake; 0 on success. */
static int one(void)
{
	int fd = socket(target->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return note("socket"), -1;
	struct timeval tv = { .tv_sec = 20, .tv_usec = 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int on = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
	if (connect(fd, target->ai_addr, target->ai_addrlen) != 0) {
		close(fd);
		return note("connect"), -1;
	}
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	int rc = -1;
	if (SSL_connect(ssl) != 1) {
		note("handshake");
	} else if (SSL_get_verify_result(ssl) != X509_V_OK) {
		note("server certificate not verified");
	} else {
		const unsigned char *chosen = NULL;
		unsigned len = 0;
		SSL_get0_alpn_selected(ssl, &chosen, &len);
		if (len == 0) {
			note("no ALPN protocol chosen");
		} else {
			/* close_notify, then wait for the server's close: it has processed the whole handshake. */
			SSL_shutdown(ssl);
			char buf[4096];
			while (SSL_read(ssl, buf, sizeof buf) > 0)
				;
			rc = 0;
		}
	}
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
	return rc;
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		long i = atomic_fetch_add(&next_op, 1);
		if (i >= opt.count || now_mono() > deadline)
			return NULL;
		int64_t t0 = now_ns();
		if (one() == 0)
			latencies[i] = now_ns() - t0;
		else
			latencies[i] = -1;
	}
}

static double own_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cert", required_argument, NULL, 1 }, { "key", required_argument, NULL, 2 },
		{ "ca", required_argument, NULL, 3 },   { "alpn", required_argument, NULL, 4 },
		{ "label", required_argument, NULL, 5 }, { NULL, 0, NULL, 0 },
	};
	const char *usage = "usage: tlsloop -a ADDRESS:PORT --cert FILE --key FILE --ca FILE [-c CLIENTS] [-n COUNT] [-d MAX_SECONDS] "
			    "[--alpn PROTOCOL] [-p PID] [--label TEXT]";
	char *address = NULL;
	int ch;
	while ((ch = getopt_long(argc, argv, "a:c:n:d:p:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a': address = optarg; break;
		case 'c': opt.clients = atoi(optarg); break;
		case 'n': opt.count = atol(optarg); break;
		case 'd': opt.max_seconds = atof(optarg); break;
		case 'p': opt.pid = atoi(optarg); break;
		case 1: opt.cert = optarg; break;
		case 2: opt.key = optarg; break;
		case 3: opt.ca = optarg; break;
		case 4: opt.alpn = optarg; break;
		case 5: opt.label = optarg; break;
		default: die("%s", usage);
		}
	}
	char *colon = address ? strrchr(address, ':') : NULL;
	if (colon == NULL || opt.cert == NULL || opt.key == NULL || opt.ca == NULL || opt.clients < 1 || opt.clients > 256 ||
	    opt.count < 1 || strlen(opt.alpn) > 255)
		die("%s", usage);
	*colon = '\0';
	opt.host = address;
	opt.port = colon + 1;
	signal(SIGPIPE, SIG_IGN);

	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	int gai = getaddrinfo(opt.host, opt.port, &hints, &target);
	if (gai != 0)
		die("%s: %s", opt.host, gai_strerror(gai));

	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* A relay never resumes: every dialog is a full handshake. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_use_certificate_chain_file(ctx, opt.cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, opt.key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1)
		die("cannot load the certificate, key or CA: %s", ERR_error_string(ERR_get_error(), NULL));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	unsigned char wire[256];
	wire[0] = (unsigned char)strlen(opt.alpn);
	memcpy(wire + 1, opt.alpn, wire[0]);
	SSL_CTX_set_alpn_protos(ctx, wire, wire[0] + 1u);

	latencies = calloc((size_t)opt.count, sizeof *latencies);
	if (latencies == NULL)
		die("out of memory");
	double cpu0 = own_cpu(), scpu0 = opt.pid ? proc_cpu_seconds(opt.pid) : 0;
	double t0 = now_mono();
	deadline = t0 + opt.max_seconds;
	pthread_t th[256];
	for (int t = 0; t < opt.clients; t++)
		pthread_create(&th[t], NULL, worker, NULL);
	for (int t = 0; t < opt.clients; t++)
		pthread_join(th[t], NULL);
	double secs = now_mono() - t0;
	double cpu = own_cpu() - cpu0, scpu = opt.pid ? proc_cpu_seconds(opt.pid) - scpu0 : 0;

	long started = atomic_load(&next_op) < opt.count ? atomic_load(&next_op) : opt.count, ok = 0;
	for (long i = 0; i < started; i++)
		if (latencies[i] >= 0)
			latencies[ok++] = latencies[i];
	qsort(latencies, (size_t)ok, sizeof *latencies, cmp_i64);
	double rate = (double)ok / secs;
	fprintf(stderr, "tlsloop %s: %ld handshakes, %d clients, %.1f s = %.0f/s, p50 %.2f ms, p99 %.2f ms, CPU per handshake: client %.0f µs, server %.0f µs; %ld errors\n",
		opt.label, ok, opt.clients, secs, rate, pct_ms(latencies, ok, 50), pct_ms(latencies, ok, 99), ok ? 1e6 * cpu / (double)ok : 0,
		ok ? 1e6 * scpu / (double)ok : 0, atomic_load(&errors));
	if (first_error[0])
		fprintf(stderr, "tlsloop: first error: %s\n", first_error);
	printf("RESULT label=%s clients=%d handshakes=%ld secs=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f client_cpu_s=%.3f server_cpu_s=%.3f errors=%ld\n",
	       opt.label, opt.clients, ok, secs, rate, pct_ms(latencies, ok, 50), pct_ms(latencies, ok, 99), cpu, scpu, atomic_load(&errors));
	return atomic_load(&errors) ? 1 : 0;
}
