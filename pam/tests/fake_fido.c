/*
 * fake_fido.so - for tests only, never installed: a software FIDO2 security key.
 *
 * LD_PRELOADed into a process that uses libfido2, it replaces
 * fido_dev_info_manifest with one that lists a single device, registered with
 * fido_dev_info_set, whose transport functions answer CTAPHID INIT and the
 * CTAP 2.0 commands getInfo, makeCredential, getAssertion and clientPIN
 * (PIN protocol 1) from key pairs kept in a state file.  Everything above the
 * transport is the real libfido2: the framing of requests, the parsing of
 * replies, the PIN exchange, the timeouts.
 *
 * A process that loads libfido2 with dlopen("libfido2.so.1") and dlsym(handle)
 * would never see a preloaded symbol (dlsym on a handle searches only that
 * library and its dependencies), so dlopen is wrapped too: asked for
 * libfido2.so*, it opens this library instead, whose own dependency is the
 * real libfido2; dlsym(handle) then finds this manifest first and every
 * other fido_* in libfido2.
 *
 * Knobs (environment, read at each manifest, open and dlopen):
 *   TWOFOLD_FAKE_FIDO_STATE=PATH  required: the key's memory (credentials with
 *       their private keys, the sign counter, PIN retries), flock'ed; created by
 *       the first makeCredential or clientPIN.  A fresh path is a new key.
 *   TWOFOLD_FAKE_FIDO=present (default) | absent: the manifest lists no device
 *       | hang: makeCredential and getAssertion are never answered (libfido2
 *       gives up after its timeout with FIDO_ERR_RX) | nolib: dlopen of
 *       libfido2.so* fails as if it were not installed
 *   TWOFOLD_FAKE_FIDO_UP=0: assertions never carry the UP flag
 *   TWOFOLD_FAKE_FIDO_COUNTER=normal (default: +1 per assertion, probes with
 *       up=false included) | zero: reports 0 | backwards: the stored count goes
 *       down by one per assertion (down to 0) and is reported: a clone
 *   TWOFOLD_FAKE_FIDO_RPID=wrong: the authenticator data of both commands carry
 *       (and the signatures cover) SHA-256("wrong-rp.invalid")
 *   TWOFOLD_FAKE_FIDO_UV=builtin (default: option uv=true, the UV flag when
 *       asked) | none: no uv, no clientPin; uv=true is UNSUPPORTED_OPTION
 *       | pin: clientPin=true, PIN protocol 1, PIN TWOFOLD_FAKE_FIDO_PIN
 *       (default 123456); makeCredential without the PIN is PIN_REQUIRED,
 *       8 wrong PINs in a row block it (PIN_BLOCKED, kept in the state)
 *   TWOFOLD_FAKE_FIDO_ALG=es256 (default) | eddsa: the one algorithm the key
 *       makes credentials with (others: UNSUPPORTED_ALGORITHM)
 *   TWOFOLD_FAKE_FIDO_AAGUID=32 hex digits (default "twofold-fake-key" in ASCII)
 *   TWOFOLD_FAKE_FIDO_ATTESTATION=KEY.pem:CERT.der: packed attestation signed
 *       with that key, x5c [CERT]; without it, packed self attestation
 *   TWOFOLD_FAKE_FIDO_LOG=PATH: appends one line per call or command
 *       ("dlopen libfido2.so.1", "manifest", "open", "getInfo", "makeCredential",
 *       "getAssertion up=1 uv=0" (uv: the option or a PIN), "clientPIN sub=N",
 *       "close")
 * No discoverable credentials (rk=true is UNSUPPORTED_OPTION; an empty allow
 * list finds nothing) and no extensions.  pam/tests/fake_fido_check.sh shows
 * every knob at work.  A knob with a value not listed aborts the process: a
 * misconfigured fake is a broken test, never a key that quietly behaves some
 * other way.
 */
#include <cbor.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fido.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FAKE_PATH "twofold-fake-fido:0"
#define FAKE_CID 0x74660001u
#define MAX_CREDS 64
#define CRED_ID_LEN 48
#define MAX_USER_ID 64
#define MAX_KEY_DER 256
#define MAX_CERT 4096
#define MAX_REPLY 4096               /* libfido2 reads makeCredential replies into 4096 bytes */
#define MAX_AUTH_DATA 512
#define MAX_SIG 128
#define PIN_RETRIES 8
#define PIN_TOKEN_LEN 32
#define DEFAULT_AAGUID "74776f666f6c642d66616b652d6b6579" /* "twofold-fake-key" */
#define WRONG_RP_ID "wrong-rp.invalid"

#define FLAG_UP 0x01
#define FLAG_UV 0x04
#define FLAG_AT 0x40

enum presence { DEV_PRESENT, DEV_ABSENT, DEV_HANG, DEV_NOLIB };
enum counter_mode { COUNT_NORMAL, COUNT_ZERO, COUNT_BACKWARDS };
enum uv_mode { UV_BUILTIN, UV_NONE, UV_PIN };

struct config {
	const char *state;
	const char *log;
	enum presence presence;
	bool up_missing;
	enum counter_mode counter;
	bool wrong_rpid;
	enum uv_mode uv;
	const char *pin;
	int alg;
	unsigned char aaguid[16];
	const char *attestation;
};

struct cred {
	int alg;
	unsigned char id[CRED_ID_LEN];
	unsigned char rp_hash[SHA256_DIGEST_LENGTH];
	unsigned char user[MAX_USER_ID];
	size_t user_len;
	unsigned char key[MAX_KEY_DER];
	size_t key_len;
};

/* The key's memory: loaded and saved under an exclusive flock on the file. */
struct state {
	int fd;
	uint32_t counter;
	int pin_retries;
	size_t n;
	struct cred creds[MAX_CREDS];
};

struct reply {
	unsigned char buf[MAX_REPLY];
	size_t len;
};

/* One open of the device: what libfido2's io handle points to. */
struct fake_dev {
	struct config cfg;
	uint8_t reply_cmd;
	bool have_reply;
	struct reply reply;
	EVP_PKEY *agreement;                   /* PIN protocol 1 key agreement, per power-up */
	unsigned char pin_token[PIN_TOKEN_LEN];
	bool token_valid;
};

/* What makeCredential and getAssertion share for user verification. */
struct uv_request {
	const unsigned char *cdh;
	bool uv_option;
	const unsigned char *pin_auth;
	size_t pin_auth_len;
};

/* ---------------------------------------------------------------- knobs, log */

static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fake_fido: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

/* The index of the knob's value in choices (the first is the default). */
static int pick(const char *name, const char *const *choices)
{
	const char *v = getenv(name);

	if (v == NULL || *v == '\0')
		return 0;
	for (int i = 0; choices[i] != NULL; i++)
		if (strcmp(v, choices[i]) == 0)
			return i;
	die("%s=%s is not a known value", name, v);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes hex into out (at most max bytes); -1 on anything but hex digit pairs. */
static int hex_decode(const char *hex, unsigned char *out, size_t max, size_t *len)
{
	size_t n = strlen(hex);

	if (n % 2 != 0 || n / 2 > max)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

static void hex_encode(char *out, const unsigned char *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static void load_config(struct config *c)
{
	static const char *const presence[] = { "present", "absent", "hang", "nolib", NULL };
	static const char *const up[] = { "1", "0", NULL };
	static const char *const counter[] = { "normal", "zero", "backwards", NULL };
	static const char *const rpid[] = { "right", "wrong", NULL };
	static const char *const uv[] = { "builtin", "none", "pin", NULL };
	static const char *const alg[] = { "es256", "eddsa", NULL };
	const char *aaguid = getenv("TWOFOLD_FAKE_FIDO_AAGUID");
	size_t len = 0;

	memset(c, 0, sizeof(*c));
	if ((c->state = getenv("TWOFOLD_FAKE_FIDO_STATE")) == NULL || c->state[0] != '/')
		die("TWOFOLD_FAKE_FIDO_STATE must be an absolute path");
	c->log = getenv("TWOFOLD_FAKE_FIDO_LOG");
	c->presence = (enum presence)pick("TWOFOLD_FAKE_FIDO", presence);
	c->up_missing = pick("TWOFOLD_FAKE_FIDO_UP", up) == 1;
	c->counter = (enum counter_mode)pick("TWOFOLD_FAKE_FIDO_COUNTER", counter);
	c->wrong_rpid = pick("TWOFOLD_FAKE_FIDO_RPID", rpid) == 1;
	c->uv = (enum uv_mode)pick("TWOFOLD_FAKE_FIDO_UV", uv);
	if ((c->pin = getenv("TWOFOLD_FAKE_FIDO_PIN")) == NULL || c->pin[0] == '\0')
		c->pin = "123456";
	c->alg = pick("TWOFOLD_FAKE_FIDO_ALG", alg) == 1 ? COSE_EDDSA : COSE_ES256;
	if (aaguid == NULL || aaguid[0] == '\0')
		aaguid = DEFAULT_AAGUID;
	if (hex_decode(aaguid, c->aaguid, sizeof(c->aaguid), &len) < 0 || len != sizeof(c->aaguid))
		die("TWOFOLD_FAKE_FIDO_AAGUID=%s is not 32 hex digits", aaguid);
	c->attestation = getenv("TWOFOLD_FAKE_FIDO_ATTESTATION");
	if (c->attestation != NULL && c->attestation[0] == '\0')
		c->attestation = NULL;
}

/* Appends one line to the log: a test tells from it whether the key was used. */
static void log_line(const struct config *c, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n, fd;

	if (c->log == NULL || c->log[0] == '\0')
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		die("log line too long");
	line[n++] = '\n';
	/* 0644: a test may read the log of a key used by a login running as another user. */
	if ((fd = open(c->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0)
		die("cannot open the log %s: %s", c->log, strerror(errno));
	/* One write with O_APPEND: lines of concurrent processes never interleave. */
	if (write(fd, line, (size_t)n) != n)
		die("cannot write the log %s", c->log);
	close(fd);
}

/* ---------------------------------------------------------------- state file */

static int parse_cred(char *rest, struct cred *cr)
{
	char *save = NULL, *alg = strtok_r(rest, " ", &save), *id = strtok_r(NULL, " ", &save);
	char *rp = strtok_r(NULL, " ", &save), *user = strtok_r(NULL, " ", &save);
	char *key = strtok_r(NULL, " ", &save);
	size_t id_len = 0, rp_len = 0;

	if (alg == NULL || key == NULL)
		return -1;
	cr->alg = atoi(alg);
	if (hex_decode(id, cr->id, sizeof(cr->id), &id_len) < 0 || id_len != sizeof(cr->id) ||
	    hex_decode(rp, cr->rp_hash, sizeof(cr->rp_hash), &rp_len) < 0 || rp_len != sizeof(cr->rp_hash) ||
	    (strcmp(user, "-") != 0 && hex_decode(user, cr->user, sizeof(cr->user), &cr->user_len) < 0) ||
	    hex_decode(key, cr->key, sizeof(cr->key), &cr->key_len) < 0)
		return -1;
	return 0;
}

static void parse_state(char *text, struct state *st)
{
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "counter ", 8) == 0)
			st->counter = (uint32_t)strtoul(line + 8, NULL, 10);
		else if (strncmp(line, "retries ", 8) == 0)
			st->pin_retries = atoi(line + 8);
		else if (strncmp(line, "cred ", 5) == 0 && st->n < MAX_CREDS) {
			if (parse_cred(line + 5, &st->creds[st->n]) < 0)
				die("bad credential line in the state file");
			st->n++;
		}
	}
}

/* Locks and reads the state; a missing file is an empty key unless create. */
static void state_load(const struct config *c, struct state *st, bool create)
{
	struct stat sb;
	char *text;

	memset(st, 0, sizeof(*st));
	st->pin_retries = PIN_RETRIES;
	if ((st->fd = open(c->state, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600)) < 0) {
		if (errno == ENOENT && !create)
			return;
		die("cannot open the state %s: %s", c->state, strerror(errno));
	}
	if (flock(st->fd, LOCK_EX) != 0 || fstat(st->fd, &sb) != 0 || sb.st_size > (1 << 20))
		die("cannot lock or stat the state %s", c->state);
	if ((text = calloc(1, (size_t)sb.st_size + 1)) == NULL)
		die("out of memory");
	if (pread(st->fd, text, (size_t)sb.st_size, 0) != sb.st_size)
		die("cannot read the state %s", c->state);
	parse_state(text, st);
	free(text);
}

static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size - *len)
		die("state too large");
	*len += (size_t)n;
}

static void format_cred(const struct cred *cr, char *buf, size_t size, size_t *len)
{
	char id[2 * CRED_ID_LEN + 1], rp[2 * SHA256_DIGEST_LENGTH + 1];
	char user[2 * MAX_USER_ID + 1], key[2 * MAX_KEY_DER + 1];

	hex_encode(id, cr->id, sizeof(cr->id));
	hex_encode(rp, cr->rp_hash, sizeof(cr->rp_hash));
	hex_encode(user, cr->user, cr->user_len);
	hex_encode(key, cr->key, cr->key_len);
	/* "-" for an empty user id: the fields are split on blanks. */
	append(buf, size, len, "cred %d %s %s %s %s\n", cr->alg, id, rp, cr->user_len > 0 ? user : "-", key);
}

/* Writes the state back; the caller still holds the lock (state_close drops it). */
static void state_save(const struct state *st)
{
	size_t size = 64 + MAX_CREDS * (2 * (CRED_ID_LEN + SHA256_DIGEST_LENGTH + MAX_USER_ID + MAX_KEY_DER) + 16);
	char *buf = malloc(size);
	size_t len = 0;

	if (buf == NULL || st->fd < 0)
		die("cannot save the state");
	append(buf, size, &len, "counter %u\nretries %d\n", st->counter, st->pin_retries);
	for (size_t i = 0; i < st->n; i++)
		format_cred(&st->creds[i], buf, size, &len);
	if (ftruncate(st->fd, 0) != 0 || pwrite(st->fd, buf, len, 0) != (ssize_t)len)
		die("cannot write the state");
	free(buf);
}

static void state_close(struct state *st)
{
	if (st->fd >= 0)
		close(st->fd);
	OPENSSL_cleanse(st, sizeof(*st));
}

/* ---------------------------------------------------------------- CBOR helpers */

/* Adds key: value to a definite map and drops the caller's references. */
static bool put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value)
{
	bool ok = map != NULL && key != NULL && value != NULL &&
	    cbor_map_add(map, (struct cbor_pair){ .key = key, .value = value });

	if (key != NULL)
		cbor_decref(&key);
	if (value != NULL)
		cbor_decref(&value);
	return ok;
}

/* Appends item to a definite array and drops the caller's reference. */
static bool push(cbor_item_t *array, cbor_item_t *item)
{
	bool ok = array != NULL && item != NULL && cbor_array_push(array, item);

	if (item != NULL)
		cbor_decref(&item);
	return ok;
}

/* A small integer in the shortest form libfido2 expects (keys must be 8-bit). */
static cbor_item_t *small_int(int v)
{
	return v >= 0 ? cbor_build_uint8((uint8_t)v) : cbor_build_negint8((uint8_t)(-v - 1));
}

static const cbor_item_t *map_get_int(const cbor_item_t *map, int key)
{
	struct cbor_pair *pairs = cbor_map_handle(map);

	for (size_t i = 0; i < cbor_map_size(map); i++) {
		const cbor_item_t *k = pairs[i].key;
		if ((cbor_isa_uint(k) && key >= 0 && cbor_get_int(k) == (uint64_t)key) ||
		    (cbor_isa_negint(k) && key < 0 && cbor_get_int(k) == (uint64_t)(-key - 1)))
			return pairs[i].value;
	}
	return NULL;
}

static const cbor_item_t *map_get_str(const cbor_item_t *map, const char *key)
{
	struct cbor_pair *pairs = cbor_map_handle(map);

	for (size_t i = 0; i < cbor_map_size(map); i++) {
		const cbor_item_t *k = pairs[i].key;
		if (cbor_isa_string(k) && cbor_string_is_definite(k) && cbor_string_length(k) == strlen(key) &&
		    memcmp(cbor_string_handle(k), key, strlen(key)) == 0)
			return pairs[i].value;
	}
	return NULL;
}

static bool get_bytes(const cbor_item_t *item, const unsigned char **p, size_t *n)
{
	if (item == NULL || !cbor_isa_bytestring(item) || !cbor_bytestring_is_definite(item))
		return false;
	*p = cbor_bytestring_handle(item);
	*n = cbor_bytestring_length(item);
	return true;
}

/* Copies a text string into out as a C string; false when absent or too long. */
static bool get_text(const cbor_item_t *item, char *out, size_t size)
{
	if (item == NULL || !cbor_isa_string(item) || !cbor_string_is_definite(item) ||
	    cbor_string_length(item) >= size)
		return false;
	memcpy(out, cbor_string_handle(item), cbor_string_length(item));
	out[cbor_string_length(item)] = '\0';
	return true;
}

/* An option of the "options" map: its value, dflt when absent. */
static bool option(const cbor_item_t *options, const char *name, bool dflt)
{
	const cbor_item_t *v;

	if (options == NULL || !cbor_isa_map(options) || (v = map_get_str(options, name)) == NULL ||
	    !cbor_is_bool(v))
		return dflt;
	return cbor_get_bool(v);
}

static void reply_status(struct reply *r, uint8_t status)
{
	r->buf[0] = status;
	r->len = 1;
}

/* Status OK and the serialised map; takes the map's reference. */
static void reply_map(struct reply *r, cbor_item_t *map)
{
	size_t n = map == NULL ? 0 : cbor_serialize(map, r->buf + 1, sizeof(r->buf) - 1);

	if (map != NULL)
		cbor_decref(&map);
	if (n == 0) {
		reply_status(r, FIDO_ERR_ERR_OTHER);
		return;
	}
	r->buf[0] = FIDO_ERR_SUCCESS;
	r->len = n + 1;
}

/* ---------------------------------------------------------------- keys */

static EVP_PKEY *new_key(int alg)
{
	if (alg == COSE_EDDSA)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static EVP_PKEY *cred_key(const struct cred *cr)
{
	const unsigned char *p = cr->key;

	return d2i_AutoPrivateKey(NULL, &p, (long)cr->key_len);
}

/* The P-256 point x||y, or the Ed25519 key, of k; returns its length or 0. */
static size_t public_bytes(EVP_PKEY *k, unsigned char out[64])
{
	unsigned char point[65];
	size_t len = 0;

	if (EVP_PKEY_is_a(k, "ED25519")) {
		len = 32;
		return EVP_PKEY_get_raw_public_key(k, out, &len) == 1 && len == 32 ? 32 : 0;
	}
	if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &len) != 1 ||
	    len != 65 || point[0] != 0x04)
		return 0;
	memcpy(out, point + 1, 64);
	return 64;
}

/* The COSE_Key of k with algorithm alg (-7 ES256, -8 EdDSA, -25 ECDH for PIN protocol 1). */
static cbor_item_t *cose_key(EVP_PKEY *k, int alg)
{
	unsigned char pub[64];
	size_t n = public_bytes(k, pub);
	bool ed = n == 32;
	cbor_item_t *map = cbor_new_definite_map(ed ? 4 : 5);

	if (n == 0 || map == NULL ||
	    !put(map, small_int(1), small_int(ed ? COSE_KTY_OKP : COSE_KTY_EC2)) ||
	    !put(map, small_int(3), small_int(alg)) ||
	    !put(map, small_int(-1), small_int(ed ? COSE_ED25519 : COSE_P256)) ||
	    !put(map, small_int(-2), cbor_build_bytestring(pub, 32)) ||
	    (!ed && !put(map, small_int(-3), cbor_build_bytestring(pub + 32, 32)))) {
		if (map != NULL)
			cbor_decref(&map);
		return NULL;
	}
	return map;
}

/* Signs a||b: ES256 as DER ECDSA over SHA-256, Ed25519 over the bytes themselves. */
static int sign(EVP_PKEY *k, const unsigned char *a, size_t alen, const unsigned char *b, size_t blen,
    unsigned char *sig, size_t *siglen)
{
	unsigned char tbs[MAX_AUTH_DATA + SHA256_DIGEST_LENGTH];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const EVP_MD *md = EVP_PKEY_is_a(k, "ED25519") ? NULL : EVP_sha256();
	int ok;

	if (ctx == NULL || alen + blen > sizeof(tbs)) {
		EVP_MD_CTX_free(ctx);
		return -1;
	}
	memcpy(tbs, a, alen);
	memcpy(tbs + alen, b, blen);
	*siglen = MAX_SIG;
	ok = EVP_DigestSignInit(ctx, NULL, md, NULL, k) == 1 &&
	    EVP_DigestSign(ctx, sig, siglen, tbs, alen + blen) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- authenticator data */

struct authdata {
	unsigned char buf[MAX_AUTH_DATA];
	size_t len;
};

/* rpIdHash, flags, signCount: what every authenticator data starts with. */
static void authdata_head(struct authdata *ad, const struct config *c, const unsigned char rp_hash[32],
    uint8_t flags, uint32_t count)
{
	/* RPID=wrong: the key answers for the right rp but says (and signs) another one. */
	if (c->wrong_rpid)
		SHA256((const unsigned char *)WRONG_RP_ID, strlen(WRONG_RP_ID), ad->buf);
	else
		memcpy(ad->buf, rp_hash, SHA256_DIGEST_LENGTH);
	ad->buf[32] = flags;
	ad->buf[33] = (unsigned char)(count >> 24);
	ad->buf[34] = (unsigned char)(count >> 16);
	ad->buf[35] = (unsigned char)(count >> 8);
	ad->buf[36] = (unsigned char)count;
	ad->len = 37;
}

/* Appends the attested credential data: AAGUID, id length and id, COSE public key. */
static int authdata_attested(struct authdata *ad, const struct config *c, const struct cred *cr, EVP_PKEY *k)
{
	cbor_item_t *pub = cose_key(k, cr->alg);
	size_t n;

	if (pub == NULL || ad->len + 16 + 2 + CRED_ID_LEN > sizeof(ad->buf)) {
		if (pub != NULL)
			cbor_decref(&pub);
		return -1;
	}
	memcpy(ad->buf + ad->len, c->aaguid, 16);
	ad->buf[ad->len + 16] = (unsigned char)(CRED_ID_LEN >> 8);
	ad->buf[ad->len + 17] = (unsigned char)CRED_ID_LEN;
	memcpy(ad->buf + ad->len + 18, cr->id, CRED_ID_LEN);
	ad->len += 18 + CRED_ID_LEN;
	n = cbor_serialize(pub, ad->buf + ad->len, sizeof(ad->buf) - ad->len);
	cbor_decref(&pub);
	if (n == 0)
		return -1;
	ad->len += n;
	return 0;
}

/* ---------------------------------------------------------------- attestation */

static int read_file(const char *path, unsigned char *buf, size_t size, size_t *len)
{
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return -1;
	*len = fread(buf, 1, size, f);
	/* A file filling the buffer may have more: refuse rather than truncate a certificate. */
	if (ferror(f) || *len == size) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

/* TWOFOLD_FAKE_FIDO_ATTESTATION=KEY.pem:CERT.der: the attestation key and its certificate. */
static EVP_PKEY *attestation_key(const struct config *c, unsigned char *cert, size_t *cert_len)
{
	char key_path[4096];
	const char *colon = strchr(c->attestation, ':');
	EVP_PKEY *k = NULL;
	FILE *f;

	if (colon == NULL || (size_t)(colon - c->attestation) >= sizeof(key_path))
		die("TWOFOLD_FAKE_FIDO_ATTESTATION must be KEY.pem:CERT.der");
	memcpy(key_path, c->attestation, (size_t)(colon - c->attestation));
	key_path[colon - c->attestation] = '\0';
	if ((f = fopen(key_path, "r")) != NULL) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (k == NULL || read_file(colon + 1, cert, MAX_CERT, cert_len) < 0)
		die("cannot read the attestation key %s or certificate %s", key_path, colon + 1);
	return k;
}

/* Packed attestation: self (the credential key signs, no x5c) or full (the attestation key, x5c). */
static cbor_item_t *attestation_statement(const struct config *c, EVP_PKEY *ck, int alg,
    const struct authdata *ad, const unsigned char *cdh)
{
	unsigned char sig[MAX_SIG], cert[MAX_CERT];
	size_t sig_len = 0, cert_len = 0;
	EVP_PKEY *k = c->attestation != NULL ? attestation_key(c, cert, &cert_len) : ck;
	cbor_item_t *stmt = cbor_new_definite_map(c->attestation != NULL ? 3 : 2);
	cbor_item_t *x5c = NULL;
	bool ok;

	if (k != ck)
		alg = EVP_PKEY_is_a(k, "ED25519") ? COSE_EDDSA : COSE_ES256;
	ok = stmt != NULL && sign(k, ad->buf, ad->len, cdh, SHA256_DIGEST_LENGTH, sig, &sig_len) == 0 &&
	    put(stmt, cbor_build_string("alg"), small_int(alg)) &&
	    put(stmt, cbor_build_string("sig"), cbor_build_bytestring(sig, sig_len));
	if (ok && k != ck) {
		ok = (x5c = cbor_new_definite_array(1)) != NULL && push(x5c, cbor_build_bytestring(cert, cert_len));
		ok = put(stmt, cbor_build_string("x5c"), x5c) && ok;
	}
	if (k != ck)
		EVP_PKEY_free(k);
	if (!ok && stmt != NULL)
		cbor_decref(&stmt);
	return ok ? stmt : NULL;
}

/* ---------------------------------------------------------------- PIN protocol 1 */

/* The platform's COSE key (ECDH, P-256) as an EVP_PKEY. */
static EVP_PKEY *platform_key(const cbor_item_t *cose)
{
	const unsigned char *x, *y;
	size_t xn, yn;
	unsigned char point[65];
	char group[] = "P-256";
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *k = NULL;

	if (cose == NULL || !cbor_isa_map(cose) || !get_bytes(map_get_int(cose, -2), &x, &xn) ||
	    !get_bytes(map_get_int(cose, -3), &y, &yn) || xn != 32 || yn != 32)
		return NULL;
	point[0] = 0x04;
	memcpy(point + 1, x, 32);
	memcpy(point + 33, y, 32);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
	params[2] = OSSL_PARAM_construct_end();
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
		k = NULL;
	EVP_PKEY_CTX_free(ctx);
	return k;
}

/* Protocol 1's shared secret: SHA-256 of the ECDH x coordinate. */
static int shared_secret(EVP_PKEY *own, EVP_PKEY *peer, unsigned char out[32])
{
	unsigned char z[32];
	size_t zlen = sizeof(z);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(own, NULL);
	int ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
	    EVP_PKEY_derive(ctx, z, &zlen) == 1 && zlen == 32;

	EVP_PKEY_CTX_free(ctx);
	if (ok)
		SHA256(z, sizeof(z), out);
	OPENSSL_cleanse(z, sizeof(z));
	return ok ? 0 : -1;
}

/* AES-256-CBC with a zero IV and no padding, as protocol 1 has it. */
static int aes_cbc(const unsigned char key[32], bool encrypt, const unsigned char *in, size_t n, unsigned char *out)
{
	static const unsigned char iv[16];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0;
	int ok = ctx != NULL && n % 16 == 0 &&
	    EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv, encrypt ? 1 : 0) == 1 &&
	    EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
	    EVP_CipherUpdate(ctx, out, &len, in, (int)n) == 1 && EVP_CipherFinal_ex(ctx, out + len, &fin) == 1;

	EVP_CIPHER_CTX_free(ctx);
	return ok && (size_t)(len + fin) == n ? 0 : -1;
}

/* A reply map of one entry; key agreement, retries and the PIN token are all this shape. */
static void reply_one(struct reply *r, int key, cbor_item_t *value)
{
	cbor_item_t *map = cbor_new_definite_map(1);

	if (!put(map, small_int(key), value)) {
		if (map != NULL)
			cbor_decref(&map);
		reply_status(r, FIDO_ERR_ERR_OTHER);
		return;
	}
	reply_map(r, map);
}

static void pin_retries(struct fake_dev *dev, struct reply *r)
{
	struct state st;

	state_load(&dev->cfg, &st, false);
	reply_one(r, 3, small_int(st.pin_retries));
	state_close(&st);
}

static void key_agreement(struct fake_dev *dev, struct reply *r)
{
	if (dev->agreement == NULL)
		dev->agreement = new_key(COSE_ES256);
	if (dev->agreement == NULL) {
		reply_status(r, FIDO_ERR_ERR_OTHER);
		return;
	}
	reply_one(r, 1, cose_key(dev->agreement, COSE_ECDH_ES256));
}

/* Whether pinHashEnc decrypts to LEFT(SHA-256(PIN), 16). */
static bool pin_matches(const struct config *c, const unsigned char secret[32], const unsigned char *enc, size_t n)
{
	unsigned char got[16], want[SHA256_DIGEST_LENGTH];
	bool ok;

	if (n != sizeof(got) || aes_cbc(secret, false, enc, n, got) < 0)
		return false;
	SHA256((const unsigned char *)c->pin, strlen(c->pin), want);
	ok = CRYPTO_memcmp(got, want, sizeof(got)) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

/* A wrong PIN costs a retry and the key agreement (as CTAP 2.0 says); none left: blocked. */
static uint8_t count_pin_attempt(struct fake_dev *dev, bool good)
{
	struct state st;
	uint8_t status;

	state_load(&dev->cfg, &st, true);
	if (st.pin_retries <= 0) {
		status = FIDO_ERR_PIN_BLOCKED;
	} else if (good) {
		st.pin_retries = PIN_RETRIES;
		status = FIDO_ERR_SUCCESS;
	} else {
		st.pin_retries--;
		status = st.pin_retries == 0 ? FIDO_ERR_PIN_BLOCKED : FIDO_ERR_PIN_INVALID;
	}
	state_save(&st);
	state_close(&st);
	if (!good) {
		EVP_PKEY_free(dev->agreement);
		dev->agreement = NULL;
	}
	return status;
}

static void pin_token(struct fake_dev *dev, const cbor_item_t *req, struct reply *r)
{
	unsigned char secret[32], enc[PIN_TOKEN_LEN];
	const unsigned char *phe;
	size_t phe_len;
	EVP_PKEY *peer = platform_key(map_get_int(req, 3));
	uint8_t status;

	if (peer == NULL || dev->agreement == NULL || !get_bytes(map_get_int(req, 6), &phe, &phe_len) ||
	    shared_secret(dev->agreement, peer, secret) < 0) {
		EVP_PKEY_free(peer);
		reply_status(r, FIDO_ERR_MISSING_PARAMETER);
		return;
	}
	EVP_PKEY_free(peer);
	if ((status = count_pin_attempt(dev, pin_matches(&dev->cfg, secret, phe, phe_len))) != FIDO_ERR_SUCCESS) {
		reply_status(r, status);
		return;
	}
	if (!dev->token_valid)
		dev->token_valid = RAND_bytes(dev->pin_token, sizeof(dev->pin_token)) == 1;
	if (!dev->token_valid || aes_cbc(secret, true, dev->pin_token, sizeof(enc), enc) < 0)
		reply_status(r, FIDO_ERR_ERR_OTHER);
	else
		reply_one(r, 2, cbor_build_bytestring(enc, sizeof(enc)));
	OPENSSL_cleanse(secret, sizeof(secret));
}

static void client_pin(struct fake_dev *dev, const cbor_item_t *req, struct reply *r)
{
	const cbor_item_t *proto = req == NULL ? NULL : map_get_int(req, 1);
	const cbor_item_t *sub = req == NULL ? NULL : map_get_int(req, 2);
	uint64_t subcommand = sub != NULL && cbor_isa_uint(sub) ? cbor_get_int(sub) : 0;

	log_line(&dev->cfg, "clientPIN sub=%u", (unsigned)subcommand);
	if (dev->cfg.uv != UV_PIN) {
		reply_status(r, FIDO_ERR_INVALID_COMMAND);
		return;
	}
	if (proto == NULL || !cbor_isa_uint(proto) || cbor_get_int(proto) != 1 || sub == NULL) {
		reply_status(r, FIDO_ERR_MISSING_PARAMETER);
		return;
	}
	switch (subcommand) {
	case 1: /* getPINRetries */
		pin_retries(dev, r);
		break;
	case 2: /* getKeyAgreement */
		key_agreement(dev, r);
		break;
	case 5: /* getPINToken */
		pin_token(dev, req, r);
		break;
	default: /* setPIN, changePIN: the fake's PIN is set by its knob */
		reply_status(r, FIDO_ERR_INVALID_COMMAND);
		break;
	}
}

/* ---------------------------------------------------------------- user verification */

/* pinAuth (protocol 1): LEFT(HMAC-SHA-256(pinToken, clientDataHash), 16). */
static bool pin_auth_valid(const struct fake_dev *dev, const struct uv_request *u)
{
	unsigned char mac[SHA256_DIGEST_LENGTH];
	unsigned int mac_len = 0;

	if (!dev->token_valid || u->pin_auth_len != 16 ||
	    HMAC(EVP_sha256(), dev->pin_token, sizeof(dev->pin_token), u->cdh, SHA256_DIGEST_LENGTH, mac,
	    &mac_len) == NULL)
		return false;
	return CRYPTO_memcmp(mac, u->pin_auth, 16) == 0;
}

/* Whether the UV flag is earned, or the CTAP error that ends the command. */
static uint8_t user_verification(const struct fake_dev *dev, const struct uv_request *u, bool makecred,
    bool *verified)
{
	*verified = false;
	if (u->pin_auth != NULL) {
		if (dev->cfg.uv != UV_PIN)
			return FIDO_ERR_PIN_AUTH_INVALID;
		if (!pin_auth_valid(dev, u))
			return FIDO_ERR_PIN_AUTH_INVALID;
		*verified = true;
		return FIDO_ERR_SUCCESS;
	}
	if (u->uv_option) {
		if (dev->cfg.uv != UV_BUILTIN)
			return FIDO_ERR_UNSUPPORTED_OPTION;
		*verified = true;
		return FIDO_ERR_SUCCESS;
	}
	/* CTAP 2.0: a key with a PIN set makes no credential without it. */
	if (makecred && dev->cfg.uv == UV_PIN)
		return FIDO_ERR_PIN_REQUIRED;
	return FIDO_ERR_SUCCESS;
}

static void parse_uv(const cbor_item_t *req, int options_key, int pin_auth_key, const unsigned char *cdh,
    struct uv_request *u)
{
	memset(u, 0, sizeof(*u));
	u->cdh = cdh;
	u->uv_option = option(map_get_int(req, options_key), "uv", false);
	if (!get_bytes(map_get_int(req, pin_auth_key), &u->pin_auth, &u->pin_auth_len))
		u->pin_auth = NULL;
}

/* ---------------------------------------------------------------- getInfo */

static void get_info(struct fake_dev *dev, struct reply *r)
{
	const struct config *c = &dev->cfg;
	cbor_item_t *map = cbor_new_definite_map(c->uv == UV_PIN ? 5 : 4);
	cbor_item_t *versions = cbor_new_definite_array(1);
	cbor_item_t *options = cbor_new_definite_map(c->uv == UV_NONE ? 3 : 4);
	cbor_item_t *protocols = c->uv == UV_PIN ? cbor_new_definite_array(1) : NULL;
	/* libfido2 insists on CTAP2 canonical CBOR: map keys by length, then bytewise. */
	bool ok = push(versions, cbor_build_string("FIDO_2_0")) &&
	    put(options, cbor_build_string("rk"), cbor_build_bool(false)) &&
	    put(options, cbor_build_string("up"), cbor_build_bool(true)) &&
	    (c->uv != UV_BUILTIN || put(options, cbor_build_string("uv"), cbor_build_bool(true))) &&
	    put(options, cbor_build_string("plat"), cbor_build_bool(false)) &&
	    (c->uv != UV_PIN || put(options, cbor_build_string("clientPin"), cbor_build_bool(true))) &&
	    (c->uv != UV_PIN || push(protocols, small_int(1)));

	log_line(c, "getInfo");
	/* put always takes its arguments' references, so each is called whatever came before. */
	ok = put(map, small_int(1), versions) && ok;
	ok = put(map, small_int(3), cbor_build_bytestring(c->aaguid, sizeof(c->aaguid))) && ok;
	ok = put(map, small_int(4), options) && ok;
	ok = put(map, small_int(5), cbor_build_uint16(MAX_REPLY)) && ok;
	if (c->uv == UV_PIN)
		ok = put(map, small_int(6), protocols) && ok;
	if (!ok) {
		if (map != NULL)
			cbor_decref(&map);
		reply_status(r, FIDO_ERR_ERR_OTHER);
		return;
	}
	reply_map(r, map);
}

/* ---------------------------------------------------------------- credentials */

/* The first credential of an allowList or excludeList that the key holds for rp_hash, or -1. */
static int find_listed(const struct state *st, const cbor_item_t *list, const unsigned char rp_hash[32])
{
	cbor_item_t **items;
	const unsigned char *id;
	size_t n;

	if (list == NULL || !cbor_isa_array(list))
		return -1;
	items = cbor_array_handle(list);
	for (size_t i = 0; i < cbor_array_size(list); i++) {
		if (!cbor_isa_map(items[i]) || !get_bytes(map_get_str(items[i], "id"), &id, &n) || n != CRED_ID_LEN)
			continue;
		for (size_t j = 0; j < st->n; j++)
			if (memcmp(st->creds[j].id, id, n) == 0 &&
			    memcmp(st->creds[j].rp_hash, rp_hash, SHA256_DIGEST_LENGTH) == 0)
				return (int)j;
	}
	return -1;
}

struct mc_request {
	const unsigned char *cdh;
	char rp_id[256];
	const unsigned char *user;
	size_t user_len;
	bool alg_offered;
	const cbor_item_t *exclude;
	bool rk;
	struct uv_request uv;
};

static bool offers_alg(const cbor_item_t *params, int alg)
{
	cbor_item_t **items = cbor_array_handle(params);
	const cbor_item_t *a;

	for (size_t i = 0; i < cbor_array_size(params); i++)
		if (cbor_isa_map(items[i]) && (a = map_get_str(items[i], "alg")) != NULL && cbor_isa_negint(a) &&
		    -(int64_t)cbor_get_int(a) - 1 == alg)
			return true;
	return false;
}

static uint8_t parse_make_credential(const struct config *c, const cbor_item_t *req, struct mc_request *m)
{
	const cbor_item_t *rp, *user, *params;
	size_t n;

	memset(m, 0, sizeof(*m));
	if (req == NULL || !get_bytes(map_get_int(req, 1), &m->cdh, &n) || n != SHA256_DIGEST_LENGTH ||
	    (rp = map_get_int(req, 2)) == NULL || !cbor_isa_map(rp) ||
	    !get_text(map_get_str(rp, "id"), m->rp_id, sizeof(m->rp_id)) ||
	    (user = map_get_int(req, 3)) == NULL || !cbor_isa_map(user) ||
	    !get_bytes(map_get_str(user, "id"), &m->user, &m->user_len) || m->user_len > MAX_USER_ID ||
	    (params = map_get_int(req, 4)) == NULL || !cbor_isa_array(params))
		return FIDO_ERR_MISSING_PARAMETER;
	m->alg_offered = offers_alg(params, c->alg);
	m->exclude = map_get_int(req, 5);
	m->rk = option(map_get_int(req, 7), "rk", false);
	parse_uv(req, 7, 8, m->cdh, &m->uv);
	return FIDO_ERR_SUCCESS;
}

/* A new key pair, stored; the reply is the packed attestation object's three members. */
static void new_credential(struct fake_dev *dev, struct state *st, const struct mc_request *m,
    const unsigned char rp_hash[32], bool verified, struct reply *r)
{
	struct cred *cr = &st->creds[st->n];
	struct authdata ad;
	unsigned char *p = cr->key;
	EVP_PKEY *k = NULL;
	cbor_item_t *map = cbor_new_definite_map(3);
	bool ok;

	memset(cr, 0, sizeof(*cr));
	cr->alg = dev->cfg.alg;
	memcpy(cr->rp_hash, rp_hash, SHA256_DIGEST_LENGTH);
	memcpy(cr->user, m->user, m->user_len);
	cr->user_len = m->user_len;
	ok = RAND_bytes(cr->id, sizeof(cr->id)) == 1 && (k = new_key(cr->alg)) != NULL &&
	    i2d_PrivateKey(k, NULL) > 0 && i2d_PrivateKey(k, NULL) <= MAX_KEY_DER && i2d_PrivateKey(k, &p) > 0;
	if (ok) {
		cr->key_len = (size_t)(p - cr->key);
		authdata_head(&ad, &dev->cfg, rp_hash, FLAG_UP | (verified ? FLAG_UV : 0) | FLAG_AT, st->counter);
		ok = authdata_attested(&ad, &dev->cfg, cr, k) == 0 &&
		    put(map, small_int(1), cbor_build_string("packed")) &&
		    put(map, small_int(2), cbor_build_bytestring(ad.buf, ad.len)) &&
		    put(map, small_int(3), attestation_statement(&dev->cfg, k, cr->alg, &ad, m->cdh));
	}
	EVP_PKEY_free(k);
	if (!ok) {
		if (map != NULL)
			cbor_decref(&map);
		reply_status(r, FIDO_ERR_ERR_OTHER);
		return;
	}
	st->n++;
	state_save(st);
	reply_map(r, map);
}

/* Returns false when the key does not answer (TWOFOLD_FAKE_FIDO=hang). */
static bool make_credential(struct fake_dev *dev, const cbor_item_t *req, struct reply *r)
{
	unsigned char rp_hash[SHA256_DIGEST_LENGTH];
	struct mc_request m;
	struct state st;
	uint8_t status;
	bool verified = false;

	log_line(&dev->cfg, "makeCredential");
	if (dev->cfg.presence == DEV_HANG)
		return false;
	if ((status = parse_make_credential(&dev->cfg, req, &m)) != FIDO_ERR_SUCCESS ||
	    (status = user_verification(dev, &m.uv, true, &verified)) != FIDO_ERR_SUCCESS) {
		reply_status(r, status);
		return true;
	}
	if (!m.alg_offered || m.rk) {
		/* Only the algorithm of TWOFOLD_FAKE_FIDO_ALG; no discoverable credentials. */
		reply_status(r, !m.alg_offered ? FIDO_ERR_UNSUPPORTED_ALGORITHM : FIDO_ERR_UNSUPPORTED_OPTION);
		return true;
	}
	SHA256((const unsigned char *)m.rp_id, strlen(m.rp_id), rp_hash);
	state_load(&dev->cfg, &st, true);
	if (find_listed(&st, m.exclude, rp_hash) >= 0)
		reply_status(r, FIDO_ERR_CREDENTIAL_EXCLUDED);
	else if (st.n >= MAX_CREDS)
		reply_status(r, FIDO_ERR_KEY_STORE_FULL);
	else
		new_credential(dev, &st, &m, rp_hash, verified, r);
	state_close(&st);
	return true;
}

/* ---------------------------------------------------------------- assertions */

struct ga_request {
	char rp_id[256];
	const unsigned char *cdh;
	const cbor_item_t *allow;
	bool up;
	struct uv_request uv;
};

static uint8_t parse_get_assertion(const cbor_item_t *req, struct ga_request *g)
{
	size_t n;

	memset(g, 0, sizeof(*g));
	g->up = true;
	if (req == NULL || !get_text(map_get_int(req, 1), g->rp_id, sizeof(g->rp_id)) ||
	    !get_bytes(map_get_int(req, 2), &g->cdh, &n) || n != SHA256_DIGEST_LENGTH)
		return FIDO_ERR_MISSING_PARAMETER;
	g->allow = map_get_int(req, 3);
	g->up = option(map_get_int(req, 5), "up", true);
	parse_uv(req, 5, 6, g->cdh, &g->uv);
	return FIDO_ERR_SUCCESS;
}

/* The sign count this assertion reports, after updating the stored one. */
static uint32_t next_count(const struct config *c, struct state *st)
{
	switch (c->counter) {
	case COUNT_ZERO:
		return 0;
	case COUNT_BACKWARDS: /* a clone: lower than the last count reported, down to 0 */
		if (st->counter > 0)
			st->counter--;
		return st->counter;
	case COUNT_NORMAL:
	default:
		return ++st->counter;
	}
}

static void assertion_reply(const struct fake_dev *dev, const struct cred *cr, const unsigned char *cdh,
    uint8_t flags, uint32_t count, struct reply *r)
{
	struct authdata ad;
	unsigned char sig[MAX_SIG];
	size_t sig_len = 0;
	EVP_PKEY *k = cred_key(cr);
	cbor_item_t *map = cbor_new_definite_map(3), *desc = cbor_new_definite_map(2);
	bool ok;

	authdata_head(&ad, &dev->cfg, cr->rp_hash, flags, count);
	ok = k != NULL && sign(k, ad.buf, ad.len, cdh, SHA256_DIGEST_LENGTH, sig, &sig_len) == 0 &&
	    put(desc, cbor_build_string("id"), cbor_build_bytestring(cr->id, sizeof(cr->id))) &&
	    put(desc, cbor_build_string("type"), cbor_build_string("public-key"));
	EVP_PKEY_free(k);
	ok = put(map, small_int(1), desc) && ok;
	ok = ok && put(map, small_int(2), cbor_build_bytestring(ad.buf, ad.len)) &&
	    put(map, small_int(3), cbor_build_bytestring(sig, sig_len));
	if (!ok) {
		if (map != NULL)
			cbor_decref(&map);
		reply_status(r, FIDO_ERR_ERR_OTHER);
		return;
	}
	reply_map(r, map);
}

/* Returns false when the key does not answer (TWOFOLD_FAKE_FIDO=hang). */
static bool get_assertion(struct fake_dev *dev, const cbor_item_t *req, struct reply *r)
{
	unsigned char rp_hash[SHA256_DIGEST_LENGTH];
	struct ga_request g;
	struct state st;
	uint8_t status = parse_get_assertion(req, &g);
	bool verified = false;
	uint32_t count;
	int i;

	log_line(&dev->cfg, "getAssertion up=%d uv=%d", g.up, g.uv.uv_option || g.uv.pin_auth != NULL);
	if (dev->cfg.presence == DEV_HANG)
		return false;
	if (status != FIDO_ERR_SUCCESS || (status = user_verification(dev, &g.uv, false, &verified)) != FIDO_ERR_SUCCESS) {
		reply_status(r, status);
		return true;
	}
	SHA256((const unsigned char *)g.rp_id, strlen(g.rp_id), rp_hash);
	state_load(&dev->cfg, &st, false);
	if ((i = find_listed(&st, g.allow, rp_hash)) < 0) {
		/* No discoverable credentials: an empty allow list finds nothing either. */
		reply_status(r, FIDO_ERR_NO_CREDENTIALS);
	} else {
		count = next_count(&dev->cfg, &st);
		state_save(&st);
		assertion_reply(dev, &st.creds[i], g.cdh,
		    (g.up && !dev->cfg.up_missing ? FLAG_UP : 0) | (verified ? FLAG_UV : 0), count, r);
	}
	state_close(&st);
	return true;
}

/* ---------------------------------------------------------------- transport */

/* CTAPHID INIT: the nonce echoed, a channel id, and CBOR (CTAP2) capability without CTAP1 MSG. */
static int init_reply(struct fake_dev *dev, const unsigned char *nonce, size_t n)
{
	const uint32_t cid = FAKE_CID;

	if (n != 8)
		return -1;
	memcpy(dev->reply.buf, nonce, 8);
	memcpy(dev->reply.buf + 8, &cid, 4);
	dev->reply.buf[12] = 2;  /* CTAPHID protocol version */
	dev->reply.buf[13] = 1;  /* device version 1.0.0 */
	dev->reply.buf[14] = 0;
	dev->reply.buf[15] = 0;
	dev->reply.buf[16] = FIDO_CAP_CBOR | FIDO_CAP_NMSG;
	dev->reply.len = 17;
	dev->reply_cmd = CTAP_CMD_INIT;
	dev->have_reply = true;
	return 0;
}

static int cbor_command(struct fake_dev *dev, const unsigned char *buf, size_t n)
{
	struct cbor_load_result res;
	cbor_item_t *req = NULL;
	bool answered = true;

	if (n == 0)
		return -1;
	if (n > 1 && ((req = cbor_load(buf + 1, n - 1, &res)) == NULL || !cbor_isa_map(req))) {
		reply_status(&dev->reply, FIDO_ERR_INVALID_CBOR);
	} else if (buf[0] == CTAP_CBOR_GETINFO) {
		get_info(dev, &dev->reply);
	} else if (buf[0] == CTAP_CBOR_MAKECRED) {
		answered = make_credential(dev, req, &dev->reply);
	} else if (buf[0] == CTAP_CBOR_ASSERT) {
		answered = get_assertion(dev, req, &dev->reply);
	} else if (buf[0] == CTAP_CBOR_CLIENT_PIN) {
		client_pin(dev, req, &dev->reply);
	} else {
		log_line(&dev->cfg, "command 0x%02x", buf[0]);
		reply_status(&dev->reply, FIDO_ERR_INVALID_COMMAND);
	}
	if (req != NULL)
		cbor_decref(&req);
	dev->reply_cmd = CTAP_CMD_CBOR;
	dev->have_reply = answered;
	return 0;
}

/* The whole request arrives in one call (no HID framing): answer it now, hand it over in fake_rx. */
static int fake_tx(fido_dev_t *d, uint8_t cmd, const unsigned char *buf, size_t n)
{
	struct fake_dev *dev = fido_dev_io_handle(d);

	if (dev == NULL)
		return -1;
	dev->have_reply = false;
	switch (cmd) {
	case CTAP_CMD_INIT:
		return init_reply(dev, buf, n);
	case CTAP_CMD_CBOR:
		return cbor_command(dev, buf, n);
	case CTAP_CMD_CANCEL:
		return 0; /* every command is answered at once or never: nothing to cancel */
	default:
		return -1;
	}
}

static int fake_rx(fido_dev_t *d, uint8_t cmd, unsigned char *buf, size_t n, int ms)
{
	struct fake_dev *dev = fido_dev_io_handle(d);

	if (dev == NULL)
		return -1;
	if (!dev->have_reply || dev->reply_cmd != cmd) {
		/* A key that does not answer: nothing until the caller's timeout (-1: never), as a HID read. */
		poll(NULL, 0, ms);
		return -1;
	}
	if (dev->reply.len > n)
		return -1;
	memcpy(buf, dev->reply.buf, dev->reply.len);
	dev->have_reply = false;
	return (int)dev->reply.len;
}

static void *fake_open(const char *path)
{
	struct fake_dev *dev;

	if (path == NULL || strcmp(path, FAKE_PATH) != 0 || (dev = calloc(1, sizeof(*dev))) == NULL)
		return NULL;
	load_config(&dev->cfg);
	log_line(&dev->cfg, "open");
	return dev;
}

static void fake_close(void *handle)
{
	struct fake_dev *dev = handle;

	if (dev == NULL)
		return;
	log_line(&dev->cfg, "close");
	EVP_PKEY_free(dev->agreement);
	OPENSSL_cleanse(dev, sizeof(*dev));
	free(dev);
}

/* libfido2 wants read and write functions, but with transport functions set never calls them. */
static int fake_read(void *handle, unsigned char *buf, size_t n, int ms)
{
	(void)handle, (void)buf, (void)n, (void)ms;
	return -1;
}

static int fake_write(void *handle, const unsigned char *buf, size_t n)
{
	(void)handle, (void)buf, (void)n;
	return -1;
}

/* ---------------------------------------------------------------- the replaced entry points */

int fido_dev_info_manifest(fido_dev_info_t *devlist, size_t ilen, size_t *olen)
{
	static const fido_dev_io_t io = { fake_open, fake_close, fake_read, fake_write };
	static const fido_dev_transport_t transport = { fake_rx, fake_tx };
	struct config c;
	int r;

	load_config(&c);
	*olen = 0;
	log_line(&c, "manifest");
	if (c.presence == DEV_ABSENT || ilen == 0)
		return FIDO_OK;
	if ((r = fido_dev_info_set(devlist, 0, FAKE_PATH, "Twofold", "Fake FIDO2 key (tests)", &io,
	    &transport)) == FIDO_OK)
		*olen = 1;
	return r;
}

static bool is_libfido2(const char *file)
{
	const char *base = strrchr(file, '/');

	return strncmp(base != NULL ? base + 1 : file, "libfido2.so", strlen("libfido2.so")) == 0;
}

/* See the top of the file: a dlopen'ed libfido2 is this library, whose dependency is the real one. */
void *dlopen(const char *file, int mode)
{
	static void *(*real)(const char *, int);
	struct config c;
	Dl_info self;

	if (real == NULL && (real = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen")) == NULL)
		return NULL;
	if (file == NULL || !is_libfido2(file))
		return real(file, mode);
	load_config(&c);
	log_line(&c, "dlopen %s", file);
	/* nolib: a real failed dlopen, so dlerror() says something. */
	if (c.presence == DEV_NOLIB)
		return real("/nonexistent/twofold-fake-fido/libfido2.so.1", mode);
	if (dladdr((void *)fake_open, &self) == 0 || self.dli_fname == NULL)
		die("dladdr cannot find this library");
	return real(self.dli_fname, mode);
}
