/*
 * sk_api.h - for tests only: the interface between OpenSSH 9.2's client
 * tools (through ssh-sk-helper) and a security key middleware, the library
 * named by SecurityKeyProvider / SSH_SK_PROVIDER / ssh-keygen -w.
 *
 * Written for Twofold from OpenSSH's PROTOCOL.u2f and the layout its sk-api.h
 * (API version 0x000a0000) defines; not a copy of that file.  Everything here
 * is binary interface: the constants, the order and types of the fields, the
 * four exported functions.  ssh-sk-helper refuses a middleware whose
 * sk_api_version() differs in the upper 16 bits from its own, so a layout
 * mistake here shows up as a failed enroll in pam/tests/sk/sk_check.sh.
 */
#ifndef TWOFOLD_SK_API_H
#define TWOFOLD_SK_API_H

#include <stddef.h>
#include <stdint.h>

#define SSH_SK_VERSION_MAJOR 0x000a0000u
#define SSH_SK_VERSION_MAJOR_MASK 0xffff0000u

/* Algorithms. */
#define SSH_SK_ECDSA 0x00   /* ECDSA on NIST P-256 */
#define SSH_SK_ED25519 0x01

/* Request flags (from the key file's flags) and the authenticator-data flags answered. */
#define SSH_SK_USER_PRESENCE_REQD 0x01
#define SSH_SK_USER_VERIFICATION_REQD 0x04
#define SSH_SK_FORCE_OPERATION 0x10
#define SSH_SK_RESIDENT_KEY 0x20

/* Results (0 is success). */
#define SSH_SK_ERR_GENERAL -1
#define SSH_SK_ERR_UNSUPPORTED -2
#define SSH_SK_ERR_PIN_REQUIRED -3
#define SSH_SK_ERR_DEVICE_NOT_FOUND -4
#define SSH_SK_ERR_CREDENTIAL_EXISTS -5

/* What enrolling answers; the caller frees every buffer with free(). The flags become the key's. */
struct sk_enroll_response {
	uint8_t flags;
	uint8_t *public_key;        /* P-256: the uncompressed point (65 bytes); Ed25519: 32 bytes */
	size_t public_key_len;
	uint8_t *key_handle;        /* opaque to OpenSSH, stored in the private key file */
	size_t key_handle_len;
	uint8_t *signature;         /* attestation (optional) */
	size_t signature_len;
	uint8_t *attestation_cert;
	size_t attestation_cert_len;
	uint8_t *authdata;
	size_t authdata_len;
};

/* What signing answers: ECDSA r and s as big-endian integers; Ed25519 the 64-byte signature in sig_r. */
struct sk_sign_response {
	uint8_t flags;
	uint32_t counter;
	uint8_t *sig_r;
	size_t sig_r_len;
	uint8_t *sig_s;
	size_t sig_s_len;
};

struct sk_resident_key {
	uint32_t alg;
	size_t slot;
	char *application;
	struct sk_enroll_response key;
	uint8_t flags;
	uint8_t *user_id;
	size_t user_id_len;
};

/* A NULL-terminated array of these: "device" and "user"; required ones must be understood. */
struct sk_option {
	char *name;
	char *value;
	uint8_t required;
};

uint32_t sk_api_version(void);

int sk_enroll(uint32_t alg, const uint8_t *challenge, size_t challenge_len, const char *application,
	uint8_t flags, const char *pin, struct sk_option **options, struct sk_enroll_response **enroll_response);

int sk_sign(uint32_t alg, const uint8_t *data, size_t data_len, const char *application,
	const uint8_t *key_handle, size_t key_handle_len, uint8_t flags, const char *pin,
	struct sk_option **options, struct sk_sign_response **sign_response);

int sk_load_resident_keys(const char *pin, struct sk_option **options, struct sk_resident_key ***rks,
	size_t *nrks);

#endif
