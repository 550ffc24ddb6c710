/*
 * fuzz_module - libFuzzer target for the module's dialog loop: pam_twofold.c
 * itself (#included, so its static functions are reachable), run_dialog
 * reading a daemon that says whatever the input says.
 *
 * The input is the daemon's side of a dialog: a byte stream of
 * length-prefixed frames (fuzz/corpus/module holds real ones).  It is put
 * into one end of a socketpair whose write side is then shut, and the
 * module's own read_frame / read_message / relay_message / key_step /
 * verdict_to_pam consume it from the other end, with real libpam (the
 * conversation is the harness's: it answers prompts, sees messages).  The
 * session is set up as pam_sm_authenticate would after AUTH_START; what
 * connect_daemon and the socket checks do is not fuzzed (no daemon input
 * reaches them).  The key step runs the FIDO2 layer as built without
 * libfido2 (TWOFOLD_NO_FIDO2: "not built"), so no device is touched; the
 * key request itself is parsed first, which is what is fuzzed.
 *
 * The input's length picks a variant (debug, PAM_SILENT, failmode, the
 * declared capabilities, what the conversation answers) so that the
 * corpus covers them all and a crash still reproduces from its file.
 *
 * Besides the sanitizers it checks the module's fail-closed rules and
 * aborts when one breaks: PAM_SUCCESS only for a VERDICT SUCCESS, PAM_IGNORE
 * only for a VERDICT IGNORE or, with failmode=open, when no dialog started;
 * PAM_AUTHINFO_UNAVAIL only when no dialog started (never under failmode=open);
 * PAM_MAXTRIES and PAM_SERVICE_ERR only for VERDICT LOCKED and BAD_REQUEST;
 * no other code; at most 64 messages.
 *
 * Built by `make -C pam fuzz` (clang, -fsanitize=fuzzer,address,undefined);
 * replayed without libFuzzer by tests/fuzz_replay_module in `make -C pam check`.
 */
#include "../pam_twofold.c"

#include <security/pam_appl.h>

#define REQUIRE(cond, what) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_module: invariant broken: %s (%s:%d)\n", what, __FILE__, __LINE__); \
			abort(); \
		} \
	} while (0)

static pam_handle_t *fuzz_pamh;
static const char *fuzz_answer; /* what the conversation answers every prompt with */
static int fuzz_conv_fail;      /* the conversation fails (the user hung up) */

static int fuzz_conv(int n, const struct pam_message **msg, struct pam_response **resp, void *appdata)
{
	struct pam_response *r;

	(void)appdata;
	if (fuzz_conv_fail)
		return PAM_CONV_ERR;
	r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		REQUIRE(msg[i]->msg != NULL, "a conversation message without text");
		REQUIRE(tf_text_ok((const unsigned char *)msg[i]->msg, strlen(msg[i]->msg)), "a conversation text that is not UTF-8");
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			r[i].resp = strdup(fuzz_answer);
			REQUIRE(r[i].resp != NULL, "out of memory");
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static const struct pam_conv fuzz_pam_conv = { fuzz_conv, NULL };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Only the handle is used (conversation, pam_syslog): no stack is ever run. */
	if (pam_start("twofold-fuzz", "fuzz-user", &fuzz_pam_conv, &fuzz_pamh) != PAM_SUCCESS) {
		fprintf(stderr, "fuzz_module: pam_start failed\n");
		exit(1);
	}
	return 0;
}

/* The body of the last frame the module read, if it was this verdict. */
static int last_frame_is_verdict(const struct session *s, uint8_t result)
{
	struct tf_msg m;
	const char *why;

	return s->frame != NULL && tf_parse(s->frame, s->frame_len, s->capabilities, &m, &why) == 0 && m.type == TF_VERDICT &&
	       m.result == result;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *answers[] = { "123456", "", "\xff\xfe not UTF-8", "a 44-byte answer, long enough to be unusual." };
	static const uint32_t caps[] = { TF_CAP_BINARY_PAYLOAD | TF_CAP_FIDO2, 0, TF_CAP_BINARY_PAYLOAD };
	unsigned variant = (unsigned)(size % 97u);
	struct options opt;
	struct session s;
	int sv[2], ret;
	size_t off = 0;

	if (fuzz_pamh == NULL)
		LLVMFuzzerInitialize(NULL, NULL);
	memset(&opt, 0, sizeof(opt));
	opt.socket_path = DEFAULT_SOCKET;
	opt.timeout_s = 1;
	opt.dialog_timeout_s = 60;
	opt.debug = variant & 1u;
	opt.fail_open = (variant >> 1) & 1u;
	fuzz_answer = answers[(variant >> 2) % 4u];
	fuzz_conv_fail = variant % 11u == 0;

	memset(&s, 0, sizeof(s));
	s.pamh = fuzz_pamh;
	s.opt = &opt;
	s.flags = (variant >> 4) & 1u ? PAM_SILENT : 0;
	s.user = "fuzz-user";
	s.capabilities = caps[variant % 3u];
	s.dialog_deadline = now_ms() + (int64_t)opt.dialog_timeout_s * 1000;
	s.out = calloc(1, sizeof(*s.out));
	REQUIRE(s.out != NULL, "out of memory");

	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	set_nonblocking(sv[0], 1); /* as connect_daemon leaves it */
	set_nonblocking(sv[1], 1);
	while (off < size) { /* what does not fit the socket's buffer is cut off: an EOF early */
		ssize_t n = write(sv[1], data + off, size - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(sv[1], SHUT_WR); /* then EOF: no read ever waits */
	s.fd = sv[0];

	ret = run_dialog(&s);

	REQUIRE(s.messages <= MAX_MESSAGES, "more daemon messages than MAX_MESSAGES read");
	switch (ret) {
	case PAM_SUCCESS:
		REQUIRE(last_frame_is_verdict(&s, TF_RESULT_SUCCESS), "PAM_SUCCESS without a VERDICT SUCCESS");
		break;
	case PAM_IGNORE:
		REQUIRE(last_frame_is_verdict(&s, TF_RESULT_IGNORE) ||
				(opt.fail_open && (s.messages == 0 || (s.messages == 1 && last_frame_is_verdict(&s, TF_RESULT_UNAVAILABLE)))),
			"PAM_IGNORE after the dialog started, without a VERDICT IGNORE");
		break;
	case PAM_AUTHINFO_UNAVAIL:
		REQUIRE(!opt.fail_open, "PAM_AUTHINFO_UNAVAIL under failmode=open");
		REQUIRE(s.messages == 0 || (s.messages == 1 && last_frame_is_verdict(&s, TF_RESULT_UNAVAILABLE)),
			"unavailable after the dialog started");
		break;
	case PAM_MAXTRIES:
		REQUIRE(last_frame_is_verdict(&s, TF_RESULT_LOCKED), "PAM_MAXTRIES without a VERDICT LOCKED");
		break;
	case PAM_SERVICE_ERR:
		REQUIRE(last_frame_is_verdict(&s, TF_RESULT_BAD_REQUEST), "PAM_SERVICE_ERR without a VERDICT BAD_REQUEST");
		break;
	case PAM_AUTH_ERR:
	case PAM_CONV_ERR:
	case PAM_BUF_ERR:
		break;
	default:
		REQUIRE(0, "a PAM code run_dialog never returns");
	}

	close(sv[0]);
	close(sv[1]);
	wipe_free_string(&s.answer);
	wipe_free_string(&s.text);
	drop_frame(&s);
	wipe_free(s.out, sizeof(*s.out));
	return 0;
}
