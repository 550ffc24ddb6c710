/*
 * fido_layer - for tests only: runs the libfido2 layer (fido/twofold_fido.c)
 * once, so the tests can drive it against the fake authenticator
 * (LD_PRELOAD=tests/fake_fido.so) without the daemon.
 *
 *   fido_layer register RPID USER_ID_HEX USER_NAME CDH_HEX UV TIMEOUT_MS [EXCLUDE_ID_HEX...]
 *   fido_layer assert RPID CDH_HEX UV TIMEOUT_MS CRED_ID_HEX...
 *
 * UV is 0 or 1.  A PIN, when the layer asks for one, is read from the
 * environment (TWOFOLD_TEST_PIN; unset: the user gives none): a test
 * driver, never a pattern for real code.  Prints one "key=value" per line:
 * status, status_text, fido_error, and on success the results in hex.
 * "touch" and "pin" lines on stderr tell the test when the layer called back.
 * Exits 0 when the layer was run (whatever its status), 2 on bad usage.
 */
#include "twofold_fido.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
	fprintf(stderr, "usage: fido_layer register RPID USER_ID_HEX USER_NAME CDH_HEX UV TIMEOUT_MS [EXCLUDE_ID_HEX...]\n"
			"       fido_layer assert RPID CDH_HEX UV TIMEOUT_MS CRED_ID_HEX...\n");
	return 2;
}

/* Decodes hex into a new buffer; NULL when it is not even-length hex. */
static unsigned char *unhex(const char *s, size_t *len)
{
	size_t n = strlen(s);
	unsigned char *out;

	if (n % 2 != 0 || n == 0)
		return NULL;
	out = malloc(n / 2);
	for (size_t i = 0; out != NULL && i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1) {
			free(out);
			return NULL;
		}
		out[i] = (unsigned char)v;
	}
	*len = n / 2;
	return out;
}

static void print_hex(const char *key, const unsigned char *p, size_t n)
{
	printf("%s=", key);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static int pin_from_env(void *ctx, char *buf, size_t len)
{
	const char *pin = getenv("TWOFOLD_TEST_PIN");

	(void)ctx;
	fprintf(stderr, "pin\n");
	if (pin == NULL || strlen(pin) >= len)
		return -1;
	memcpy(buf, pin, strlen(pin) + 1);
	return 0;
}

static void touch(void *ctx)
{
	(void)ctx;
	fprintf(stderr, "touch\n");
}

static void print_status(int st, int fido_error)
{
	printf("status=%d\nstatus_text=%s\nfido_error=%d\n", st, tf_fido_status_text(st), fido_error);
}

/* Fills refs from hex arguments; -1 on bad hex or too many. */
static int cred_refs(char **args, int n, struct tf_fido_cred_ref *refs, size_t *count)
{
	if (n > TF_FIDO_MAX_CREDS)
		return -1;
	for (int i = 0; i < n; i++) {
		refs[i].id = unhex(args[i], &refs[i].len);
		if (refs[i].id == NULL)
			return -1;
	}
	*count = (size_t)n;
	return 0;
}

static int run_register(int argc, char **argv)
{
	struct tf_fido_register_request q;
	static struct tf_fido_register_result r;
	size_t cdh_len = 0;
	int st;

	if (argc < 8)
		return usage();
	memset(&q, 0, sizeof(q));
	q.rp_id = argv[2];
	q.rp_name = "Twofold test";
	q.user_id = unhex(argv[3], &q.user_id_len);
	q.user_name = argv[4];
	q.client_data_hash = unhex(argv[5], &cdh_len);
	q.require_uv = atoi(argv[6]);
	q.timeout_ms = atoi(argv[7]);
	if (q.user_id == NULL || q.client_data_hash == NULL || cdh_len != TF_FIDO_HASH_LEN ||
	    cred_refs(argv + 8, argc - 8, q.exclude, &q.n_exclude) != 0)
		return usage();
	st = tf_fido_register(&q, pin_from_env, touch, NULL, &r);
	print_status(st, r.fido_error);
	if (st == TF_FIDO_OK) {
		printf("fmt=%s\n", r.fmt);
		print_hex("auth_data", r.auth_data, r.auth_data_len);
		print_hex("sig", r.sig, r.sig_len);
		print_hex("x5c", r.x5c, r.x5c_len);
	}
	return 0;
}

static int run_assert(int argc, char **argv)
{
	struct tf_fido_assert_request q;
	static struct tf_fido_assert_result r;
	size_t cdh_len = 0;
	int st;

	if (argc < 7)
		return usage();
	memset(&q, 0, sizeof(q));
	q.rp_id = argv[2];
	q.client_data_hash = unhex(argv[3], &cdh_len);
	q.require_uv = atoi(argv[4]);
	q.timeout_ms = atoi(argv[5]);
	if (q.client_data_hash == NULL || cdh_len != TF_FIDO_HASH_LEN || cred_refs(argv + 6, argc - 6, q.creds, &q.n_creds) != 0)
		return usage();
	st = tf_fido_assert(&q, pin_from_env, touch, NULL, &r);
	print_status(st, r.fido_error);
	if (st == TF_FIDO_OK) {
		print_hex("cred_id", r.cred_id, r.cred_id_len);
		print_hex("auth_data", r.auth_data, r.auth_data_len);
		print_hex("sig", r.sig, r.sig_len);
	}
	return 0;
}

int main(int argc, char **argv)
{
	printf("built=%d\n", tf_fido_built());
	if (argc >= 2 && strcmp(argv[1], "register") == 0)
		return run_register(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "assert") == 0)
		return run_assert(argc, argv);
	return usage();
}
