/*
 * sk_soft.so - for tests only, never installed: a software security key for
 * OpenSSH's client tools, loaded as their middleware (SecurityKeyProvider,
 * SSH_SK_PROVIDER, ssh-keygen -w; sk_api.h, API version 0x000a0000).
 *
 * Enrolling makes a new key pair on libcrypto (ECDSA P-256 or Ed25519) and
 * returns the private key itself (DER) as the key handle, which OpenSSH keeps
 * in the private key file: the "authenticator" needs no memory, so a key
 * enrolled once signs with any copy of the library.  Signing follows
 * PROTOCOL.u2f: the signature covers
 *     SHA-256(application) || flags || counter (uint32, big-endian) || SHA-256(message)
 * and the response carries the flags and counter (always 1) it covers.  No
 * resident keys (loading them finds none), no attestation (OpenSSH then
 * records an empty one).
 *
 * The user-presence flag is answered when asked for (a touch); user
 * verification only by the knob, whatever the request says: a key that
 * signs without UV even for a verify-required key file lets the tests show
 * that sshd's verify-required refuses such a signature.
 *
 * Knobs (environment, read at each call):
 *   TWOFOLD_SK_UV=1: signatures carry the user-verified flag (0x04), as after
 *       a PIN; unset or 0: user presence only
 *   TWOFOLD_SK_LOG=PATH: appends one line per call: "version",
 *       "enroll ecdsa flags=0x05 pin=no -> 0",
 *       "sign ed25519 flags=0x01 pin=yes -> flags=0x05" ("pin": whether the
 *       caller gave one, never its value; a failed call ends "-> error N")
 * A knob with another value fails the call: a misconfigured key is a broken
 * test, never a key that quietly behaves some other way.
 */
#include <fcntl.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sk_api.h"

#if SSH_SK_VERSION_MAJOR != 0x000a0000u
#error "sk_soft.c implements the middleware API 0x000a0000 (OpenSSH 9.2)"
#endif

#define EXPORT __attribute__((visibility("default")))
#define COUNTER 1u
#define SHA256_LEN 32
/* What the key signs: SHA-256(application), flags, counter, SHA-256(message). */
#define SIGNED_LEN (SHA256_LEN + 1 + 4 + SHA256_LEN)

static const char *alg_name(uint32_t alg)
{
	return alg == SSH_SK_ECDSA ? "ecdsa" : alg == SSH_SK_ED25519 ? "ed25519" : "unknown";
}

/* One line to TWOFOLD_SK_LOG, in one write (O_APPEND: several helpers may log at once). */
static void log_line(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *format, ...)
{
	const char *path = getenv("TWOFOLD_SK_LOG");
	if (path == NULL || *path == '\0')
		return;
	char line[256];
	va_list ap;
	va_start(ap, format);
	int n = vsnprintf(line, sizeof(line) - 1, format, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n)
		fprintf(stderr, "sk_soft: cannot write to %s\n", path);
	close(fd);
}

/* TWOFOLD_SK_UV: 1 (true), unset or 0 (false), anything else -1. */
static int uv_knob(void)
{
	const char *value = getenv("TWOFOLD_SK_UV");
	if (value == NULL || strcmp(value, "0") == 0)
		return 0;
	if (strcmp(value, "1") == 0)
		return 1;
	fprintf(stderr, "sk_soft: TWOFOLD_SK_UV=%s is not 0 or 1\n", value);
	return -1;
}

/* The options OpenSSH sends are "device" and "user"; an unknown required one is refused. */
static bool options_ok(struct sk_option **options)
{
	for (size_t i = 0; options != NULL && options[i] != NULL; i++) {
		const char *name = options[i]->name;
		if (options[i]->required && strcmp(name, "device") != 0 && strcmp(name, "user") != 0)
			return false;
	}
	return true;
}

static uint8_t *copy(const uint8_t *bytes, size_t len)
{
	uint8_t *out = malloc(len > 0 ? len : 1);
	if (out != NULL && len > 0)
		memcpy(out, bytes, len);
	return out;
}

EXPORT uint32_t sk_api_version(void)
{
	log_line("version");
	return SSH_SK_VERSION_MAJOR;
}

static EVP_PKEY *generate(uint32_t alg)
{
	if (alg == SSH_SK_ECDSA)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (alg == SSH_SK_ED25519)
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	return NULL;
}

/* The public key as OpenSSH wants it: P-256's uncompressed point (65 bytes), or Ed25519's 32 bytes. */
static int put_public_key(EVP_PKEY *key, uint32_t alg, struct sk_enroll_response *response)
{
	uint8_t *point = NULL;
	size_t len = 32;
	if (alg == SSH_SK_ED25519) {
		if ((response->public_key = malloc(len)) == NULL ||
			EVP_PKEY_get_raw_public_key(key, response->public_key, &len) != 1 || len != 32)
			return SSH_SK_ERR_GENERAL;
	} else {
		len = EVP_PKEY_get1_encoded_public_key(key, &point);
		if (len == 65 && point[0] == 0x04)
			response->public_key = copy(point, len);
		OPENSSL_free(point);
		if (response->public_key == NULL)
			return SSH_SK_ERR_GENERAL;
	}
	response->public_key_len = len;
	return 0;
}

/* The key handle: the private key, DER (SEC1 for P-256, PKCS#8 for Ed25519). */
static int put_key_handle(EVP_PKEY *key, struct sk_enroll_response *response)
{
	uint8_t *der = NULL;
	int len = i2d_PrivateKey(key, &der);
	if (len <= 0)
		return SSH_SK_ERR_GENERAL;
	response->key_handle = copy(der, (size_t)len);
	response->key_handle_len = (size_t)len;
	OPENSSL_clear_free(der, (size_t)len);
	return response->key_handle != NULL ? 0 : SSH_SK_ERR_GENERAL;
}

static void free_enroll_response(struct sk_enroll_response *response)
{
	if (response == NULL)
		return;
	free(response->public_key);
	if (response->key_handle != NULL)
		OPENSSL_cleanse(response->key_handle, response->key_handle_len);
	free(response->key_handle);
	free(response);
}

EXPORT int sk_enroll(uint32_t alg, const uint8_t *challenge, size_t challenge_len, const char *application,
	uint8_t flags, const char *pin, struct sk_option **options, struct sk_enroll_response **enroll_response)
{
	(void)challenge;
	(void)challenge_len;
	int result = SSH_SK_ERR_GENERAL;
	EVP_PKEY *key = NULL;
	struct sk_enroll_response *response = NULL;
	*enroll_response = NULL;
	if (!options_ok(options)) {
		result = SSH_SK_ERR_UNSUPPORTED;
	} else if (application != NULL && (key = generate(alg)) != NULL &&
		(response = calloc(1, sizeof(*response))) != NULL) {
		response->flags = flags;  /* the key file's flags (verify-required, no-touch-required) */
		result = put_public_key(key, alg, response);
		if (result == 0)
			result = put_key_handle(key, response);
	} else if (alg != SSH_SK_ECDSA && alg != SSH_SK_ED25519) {
		result = SSH_SK_ERR_UNSUPPORTED;
	}
	EVP_PKEY_free(key);
	if (result == 0)
		*enroll_response = response;
	else
		free_enroll_response(response);
	log_line("enroll %s flags=0x%02x pin=%s -> %s%d", alg_name(alg), flags,
		pin != NULL && *pin != '\0' ? "yes" : "no", result == 0 ? "" : "error ", result);
	return result;
}

/* The private key in a key handle, if it is one of ours for this algorithm. */
static EVP_PKEY *key_from_handle(uint32_t alg, const uint8_t *handle, size_t len)
{
	const unsigned char *p = handle;
	EVP_PKEY *key = d2i_AutoPrivateKey(NULL, &p, (long)len);
	if (key == NULL)
		return NULL;
	bool fits = alg == SSH_SK_ED25519 ? EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519
		: alg == SSH_SK_ECDSA && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) == 256;
	if (!fits) {
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

/* The bytes PROTOCOL.u2f says are signed. */
static bool signed_bytes(const char *application, uint8_t flags, const uint8_t *data, size_t data_len,
	uint8_t out[SIGNED_LEN])
{
	uint8_t *p = out;
	if (!EVP_Digest(application, strlen(application), p, NULL, EVP_sha256(), NULL))
		return false;
	p += SHA256_LEN;
	*p++ = flags;
	for (int shift = 24; shift >= 0; shift -= 8)
		*p++ = (uint8_t)(COUNTER >> shift);
	return EVP_Digest(data, data_len, p, NULL, EVP_sha256(), NULL) == 1;
}

/* Signs with SHA-256 (ECDSA) or pure Ed25519; the signature in a buffer of OpenSSL's. */
static uint8_t *sign_bytes(EVP_PKEY *key, uint32_t alg, const uint8_t *bytes, size_t len, size_t *sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *sig = NULL;
	*sig_len = 0;
	if (ctx != NULL &&
		EVP_DigestSignInit(ctx, NULL, alg == SSH_SK_ECDSA ? EVP_sha256() : NULL, NULL, key) == 1 &&
		EVP_DigestSign(ctx, NULL, sig_len, bytes, len) == 1 && (sig = OPENSSL_malloc(*sig_len)) != NULL &&
		EVP_DigestSign(ctx, sig, sig_len, bytes, len) != 1) {
		OPENSSL_free(sig);
		sig = NULL;
	}
	EVP_MD_CTX_free(ctx);
	return sig;
}

static uint8_t *bignum_bytes(const BIGNUM *n, size_t *len)
{
	*len = (size_t)BN_num_bytes(n);
	uint8_t *out = malloc(*len > 0 ? *len : 1);
	if (out != NULL)
		BN_bn2bin(n, out);
	return out;
}

/* Fills the response's signature fields: r and s for ECDSA (from DER), the 64 bytes for Ed25519. */
static int signature_fields(uint32_t alg, const uint8_t *sig, size_t len, struct sk_sign_response *response)
{
	if (alg == SSH_SK_ED25519) {
		response->sig_r = copy(sig, len);
		response->sig_r_len = len;
		return len == 64 && response->sig_r != NULL ? 0 : SSH_SK_ERR_GENERAL;
	}
	const unsigned char *p = sig;
	ECDSA_SIG *ecdsa = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (ecdsa == NULL)
		return SSH_SK_ERR_GENERAL;
	response->sig_r = bignum_bytes(ECDSA_SIG_get0_r(ecdsa), &response->sig_r_len);
	response->sig_s = bignum_bytes(ECDSA_SIG_get0_s(ecdsa), &response->sig_s_len);
	ECDSA_SIG_free(ecdsa);
	return response->sig_r != NULL && response->sig_s != NULL ? 0 : SSH_SK_ERR_GENERAL;
}

/* Signs with the key in the handle; the response's flags and counter are the signed ones. */
static int sign_with_handle(uint32_t alg, const uint8_t *data, size_t data_len, const char *application,
	const uint8_t *handle, size_t handle_len, uint8_t flags, struct sk_sign_response *response)
{
	uint8_t bytes[SIGNED_LEN];
	size_t sig_len = 0;
	uint8_t *sig = NULL;
	int result = SSH_SK_ERR_GENERAL;
	EVP_PKEY *key = key_from_handle(alg, handle, handle_len);
	response->flags = flags;
	response->counter = COUNTER;
	if (key != NULL && signed_bytes(application, flags, data, data_len, bytes) &&
		(sig = sign_bytes(key, alg, bytes, sizeof(bytes), &sig_len)) != NULL)
		result = signature_fields(alg, sig, sig_len, response);
	OPENSSL_free(sig);
	EVP_PKEY_free(key);
	return result;
}

static void free_sign_response(struct sk_sign_response *response)
{
	if (response == NULL)
		return;
	free(response->sig_r);
	free(response->sig_s);
	free(response);
}

EXPORT int sk_sign(uint32_t alg, const uint8_t *data, size_t data_len, const char *application,
	const uint8_t *key_handle, size_t key_handle_len, uint8_t flags, const char *pin,
	struct sk_option **options, struct sk_sign_response **sign_response)
{
	int uv = uv_knob();
	uint8_t answered = (uint8_t)((flags & SSH_SK_USER_PRESENCE_REQD) | (uv == 1 ? SSH_SK_USER_VERIFICATION_REQD : 0));
	int result = SSH_SK_ERR_GENERAL;
	struct sk_sign_response *response = NULL;
	*sign_response = NULL;
	if (!options_ok(options))
		result = SSH_SK_ERR_UNSUPPORTED;
	else if (uv >= 0 && application != NULL && (response = calloc(1, sizeof(*response))) != NULL)
		result = sign_with_handle(alg, data, data_len, application, key_handle, key_handle_len, answered, response);
	if (result == 0)
		*sign_response = response;
	else
		free_sign_response(response);
	const char *given = pin != NULL && *pin != '\0' ? "yes" : "no";
	if (result == 0)
		log_line("sign %s flags=0x%02x pin=%s -> flags=0x%02x", alg_name(alg), flags, given, answered);
	else
		log_line("sign %s flags=0x%02x pin=%s -> error %d", alg_name(alg), flags, given, result);
	return result;
}

EXPORT int sk_load_resident_keys(const char *pin, struct sk_option **options, struct sk_resident_key ***rks,
	size_t *nrks)
{
	(void)pin;
	(void)options;
	*rks = NULL;
	*nrks = 0;
	log_line("load_resident_keys -> 0 keys");
	return 0;
}
