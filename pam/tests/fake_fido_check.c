/*
 * fake_fido_check - for tests only: drives libfido2 as pam_twofold.so and
 * twofoldctl do (manifest, fido_dev_new_with_info, fido_dev_set_timeout,
 * fido_dev_open_with_info, make_cred / get_assert) and checks the results
 * with libfido2's own verify functions.  Run with fake_fido.so preloaded;
 * pam/tests/fake_fido_check.sh runs the scenarios and compares the output.
 *
 *   fake_fido_check info
 *   fake_fido_check dlopen
 *   fake_fido_check register es256|eddsa CREDFILE [exclude=CREDFILE] [uv=1] [pin=PIN]
 *                   [timeout=MS] [x5c=OUTFILE]
 *   fake_fido_check assert CREDFILE [up=0] [uv=1] [pin=PIN] [timeout=MS] [rpid=ID] [unknown=1]
 *
 * Output: key=value lines (libfido2's error names for results).  Exit 0
 * when the step ran, whatever libfido2 said; 2 on a usage or file error.
 */
#include <dlfcn.h>
#include <fido.h>
#include <fido/eddsa.h>
#include <fido/es256.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RP_ID "pam://twofold.test"
#define MAX_ID 1024

static const unsigned char user_id[] = "twofold-user-0001";

/* What `register` writes and `assert` reads: the credential to allow and to verify with. */
struct saved_cred {
	int alg;
	unsigned char id[MAX_ID];
	size_t id_len;
	unsigned char pk[64];
	size_t pk_len;
};

/* key=value options after the positional arguments. */
struct opts {
	const char *exclude, *pin, *x5c, *rpid;
	int uv, up, timeout, unknown;
};

static _Noreturn void fail(const char *what)
{
	fprintf(stderr, "fake_fido_check: %s\n", what);
	exit(2);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->up = 1;
	o->timeout = 5000;
	o->rpid = RP_ID;
	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		const char *v = eq != NULL ? eq + 1 : "";
		size_t k = eq != NULL ? (size_t)(eq - argv[i]) : strlen(argv[i]);
		if (k == 7 && strncmp(argv[i], "exclude", k) == 0) o->exclude = v;
		else if (k == 3 && strncmp(argv[i], "pin", k) == 0) o->pin = v;
		else if (k == 3 && strncmp(argv[i], "x5c", k) == 0) o->x5c = v;
		else if (k == 4 && strncmp(argv[i], "rpid", k) == 0) o->rpid = v;
		else if (k == 2 && strncmp(argv[i], "uv", k) == 0) o->uv = atoi(v);
		else if (k == 2 && strncmp(argv[i], "up", k) == 0) o->up = atoi(v);
		else if (k == 7 && strncmp(argv[i], "timeout", k) == 0) o->timeout = atoi(v);
		else if (k == 7 && strncmp(argv[i], "unknown", k) == 0) o->unknown = atoi(v);
		else fail("unknown option");
	}
}

static void print_hex(const char *key, const unsigned char *p, size_t n)
{
	printf("%s=", key);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

/* One line of hex digits into out. */
static int read_hex(FILE *f, unsigned char *out, size_t max, size_t *len)
{
	char line[2 * MAX_ID + 2];
	unsigned int byte;
	size_t n;

	*len = 0;
	if (fgets(line, sizeof(line), f) == NULL)
		return -1;
	n = strcspn(line, "\n");
	if (n % 2 != 0 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		if (sscanf(line + i, "%2x", &byte) != 1)
			return -1;
		out[(*len)++] = (unsigned char)byte;
	}
	return *len > 0 ? 0 : -1;
}

static void save_cred(const char *path, const fido_cred_t *cred)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		fail("cannot write the credential file");
	fprintf(f, "%d\n", fido_cred_type(cred));
	for (size_t i = 0; i < fido_cred_id_len(cred); i++)
		fprintf(f, "%02x", fido_cred_id_ptr(cred)[i]);
	fprintf(f, "\n");
	for (size_t i = 0; i < fido_cred_pubkey_len(cred); i++)
		fprintf(f, "%02x", fido_cred_pubkey_ptr(cred)[i]);
	fprintf(f, "\n");
	if (fclose(f) != 0)
		fail("cannot write the credential file");
}

static void load_cred(const char *path, struct saved_cred *c)
{
	FILE *f = fopen(path, "r");

	if (f == NULL || fscanf(f, "%d\n", &c->alg) != 1 || read_hex(f, c->id, sizeof(c->id), &c->id_len) < 0 ||
	    read_hex(f, c->pk, sizeof(c->pk), &c->pk_len) < 0)
		fail("cannot read the credential file");
	fclose(f);
}

static long elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* The module's way in: the first device of the manifest, with the timeout set before open. */
static fido_dev_t *open_first(int timeout_ms)
{
	fido_dev_info_t *list = fido_dev_info_new(8);
	fido_dev_t *dev = NULL;
	size_t n = 0;
	int r;

	if (list == NULL)
		fail("fido_dev_info_new");
	r = fido_dev_info_manifest(list, 8, &n);
	printf("manifest=%s\ndevices=%zu\n", fido_strerr(r), n);
	if (r == FIDO_OK && n > 0) {
		if ((dev = fido_dev_new_with_info(fido_dev_info_ptr(list, 0))) == NULL)
			fail("fido_dev_new_with_info");
		fido_dev_set_timeout(dev, timeout_ms);
		r = fido_dev_open_with_info(dev);
		printf("open=%s\n", fido_strerr(r));
		if (r != FIDO_OK)
			fido_dev_free(&dev);
	}
	fido_dev_info_free(&list, 8);
	return dev;
}

static void close_dev(fido_dev_t *dev)
{
	fido_dev_close(dev);
	fido_dev_free(&dev);
}

static int cmd_info(void)
{
	fido_dev_t *dev = open_first(5000);
	fido_cbor_info_t *ci = fido_cbor_info_new();

	if (dev == NULL) {
		fido_cbor_info_free(&ci);
		return 0;
	}
	printf("fido2=%d\nhas_uv=%d\nsupports_pin=%d\nhas_pin=%d\n", fido_dev_is_fido2(dev), fido_dev_has_uv(dev),
	    fido_dev_supports_pin(dev), fido_dev_has_pin(dev));
	if (ci != NULL && fido_dev_get_cbor_info(dev, ci) == FIDO_OK)
		print_hex("info_aaguid", fido_cbor_info_aaguid_ptr(ci), fido_cbor_info_aaguid_len(ci));
	fido_cbor_info_free(&ci);
	close_dev(dev);
	return 0;
}

/* The module loads libfido2 with dlopen and dlsym on the handle: the fake must be found that way too. */
static int cmd_dlopen(void)
{
	void *h = dlopen("libfido2.so.1", RTLD_NOW | RTLD_LOCAL);
	int (*manifest)(fido_dev_info_t *, size_t, size_t *);
	fido_dev_info_t *list;
	size_t n = 0;

	if (h == NULL) {
		printf("dlopen=failed\n");
		return 0;
	}
	manifest = (int (*)(fido_dev_info_t *, size_t, size_t *))dlsym(h, "fido_dev_info_manifest");
	if (manifest == NULL || (list = fido_dev_info_new(8)) == NULL)
		fail("dlsym fido_dev_info_manifest");
	printf("dlopen=ok\ndlopen_manifest=%s\n", fido_strerr(manifest(list, 8, &n)));
	printf("dlopen_devices=%zu\n", n);
	if (n > 0)
		printf("dlopen_path=%s\n", fido_dev_info_path(fido_dev_info_ptr(list, 0)));
	fido_dev_info_free(&list, 8);
	dlclose(h);
	return 0;
}

static void report_cred(const fido_cred_t *cred, const struct opts *o)
{
	FILE *f;

	printf("fmt=%s\nflags=0x%02x\ncount=%u\n", fido_cred_fmt(cred), fido_cred_flags(cred),
	    fido_cred_sigcount(cred));
	print_hex("aaguid", fido_cred_aaguid_ptr(cred), fido_cred_aaguid_len(cred));
	printf("verify_self=%s\n", fido_strerr(fido_cred_verify_self(cred)));
	printf("verify_x5c=%s\n", fido_strerr(fido_cred_verify(cred)));
	printf("x5c_len=%zu\n", fido_cred_x5c_len(cred));
	if (o->x5c != NULL && fido_cred_x5c_len(cred) > 0) {
		if ((f = fopen(o->x5c, "wb")) == NULL ||
		    fwrite(fido_cred_x5c_ptr(cred), 1, fido_cred_x5c_len(cred), f) != fido_cred_x5c_len(cred) ||
		    fclose(f) != 0)
			fail("cannot write the x5c file");
	}
}

static void set_up_cred(fido_cred_t *cred, int alg, const struct opts *o, const unsigned char cdh[32])
{
	struct saved_cred ex;

	if (fido_cred_set_type(cred, alg) != FIDO_OK || fido_cred_set_clientdata_hash(cred, cdh, 32) != FIDO_OK ||
	    fido_cred_set_rp(cred, o->rpid, "Twofold test") != FIDO_OK ||
	    fido_cred_set_user(cred, user_id, sizeof(user_id) - 1, "alice", "Alice", NULL) != FIDO_OK)
		fail("fido_cred_set_*");
	if (o->exclude != NULL) {
		load_cred(o->exclude, &ex);
		if (fido_cred_exclude(cred, ex.id, ex.id_len) != FIDO_OK)
			fail("fido_cred_exclude");
	}
	if (o->uv && fido_cred_set_uv(cred, FIDO_OPT_TRUE) != FIDO_OK)
		fail("fido_cred_set_uv");
}

static int cmd_register(const char *alg_name, const char *path, const struct opts *o)
{
	int alg = strcmp(alg_name, "eddsa") == 0 ? COSE_EDDSA : COSE_ES256;
	unsigned char cdh[32];
	fido_cred_t *cred = fido_cred_new();
	fido_dev_t *dev = open_first(o->timeout);
	struct timespec start;
	int r;

	if (cred == NULL || RAND_bytes(cdh, sizeof(cdh)) != 1)
		fail("fido_cred_new");
	if (dev != NULL) {
		set_up_cred(cred, alg, o, cdh);
		clock_gettime(CLOCK_MONOTONIC, &start);
		r = fido_dev_make_cred(dev, cred, o->pin);
		printf("make_cred=%s\nelapsed_ms=%ld\n", fido_strerr(r), elapsed_ms(&start));
		if (r == FIDO_OK) {
			report_cred(cred, o);
			save_cred(path, cred);
		}
		close_dev(dev);
	}
	fido_cred_free(&cred);
	return 0;
}

static void verify_assert(const fido_assert_t *a, const struct saved_cred *c)
{
	es256_pk_t *es = es256_pk_new();
	eddsa_pk_t *ed = eddsa_pk_new();
	int r;

	if (es == NULL || ed == NULL)
		fail("pk_new");
	if (c->alg == COSE_EDDSA)
		r = eddsa_pk_from_ptr(ed, c->pk, c->pk_len) == FIDO_OK ?
		    fido_assert_verify(a, 0, COSE_EDDSA, ed) : FIDO_ERR_INVALID_ARGUMENT;
	else
		r = es256_pk_from_ptr(es, c->pk, c->pk_len) == FIDO_OK ?
		    fido_assert_verify(a, 0, COSE_ES256, es) : FIDO_ERR_INVALID_ARGUMENT;
	printf("verify=%s\n", fido_strerr(r));
	es256_pk_free(&es);
	eddsa_pk_free(&ed);
}

static void set_up_assert(fido_assert_t *a, const struct saved_cred *c, const struct opts *o,
    const unsigned char cdh[32])
{
	unsigned char other[64];

	if (RAND_bytes(other, sizeof(other)) != 1 ||
	    fido_assert_set_clientdata_hash(a, cdh, 32) != FIDO_OK || fido_assert_set_rp(a, o->rpid) != FIDO_OK ||
	    fido_assert_allow_cred(a, o->unknown ? other : c->id, o->unknown ? sizeof(other) : c->id_len) != FIDO_OK ||
	    fido_assert_set_up(a, o->up ? FIDO_OPT_TRUE : FIDO_OPT_FALSE) != FIDO_OK ||
	    (o->uv && fido_assert_set_uv(a, FIDO_OPT_TRUE) != FIDO_OK))
		fail("fido_assert_set_*");
}

static int cmd_assert(const char *path, const struct opts *o)
{
	struct saved_cred c;
	unsigned char cdh[32];
	fido_assert_t *a = fido_assert_new();
	fido_dev_t *dev;
	struct timespec start;
	int r;

	load_cred(path, &c);
	if (a == NULL || RAND_bytes(cdh, sizeof(cdh)) != 1)
		fail("fido_assert_new");
	if ((dev = open_first(o->timeout)) != NULL) {
		set_up_assert(a, &c, o, cdh);
		clock_gettime(CLOCK_MONOTONIC, &start);
		r = fido_dev_get_assert(dev, a, o->pin);
		printf("get_assert=%s\nelapsed_ms=%ld\n", fido_strerr(r), elapsed_ms(&start));
		if (r == FIDO_OK) {
			printf("flags=0x%02x\ncount=%u\n", fido_assert_flags(a, 0), fido_assert_sigcount(a, 0));
			printf("id_match=%d\n", fido_assert_id_len(a, 0) == c.id_len &&
			    memcmp(fido_assert_id_ptr(a, 0), c.id, c.id_len) == 0);
			verify_assert(a, &c);
		}
		close_dev(dev);
	}
	fido_assert_free(&a);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;

	fido_init(0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "info") == 0)
		return cmd_info();
	if (argc == 2 && strcmp(argv[1], "dlopen") == 0)
		return cmd_dlopen();
	if (argc >= 4 && strcmp(argv[1], "register") == 0) {
		parse_opts(argc - 4, argv + 4, &o);
		return cmd_register(argv[2], argv[3], &o);
	}
	if (argc >= 3 && strcmp(argv[1], "assert") == 0) {
		parse_opts(argc - 3, argv + 3, &o);
		return cmd_assert(argv[2], &o);
	}
	fail("usage: fake_fido_check info | dlopen | register ALG CREDFILE [opts] | assert CREDFILE [opts]");
}
