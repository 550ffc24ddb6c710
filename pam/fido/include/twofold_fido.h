/*
 * twofold_fido: the one place Twofold talks to FIDO2 keys, through libfido2 loaded at run time
 * (dlopen of libfido2.so.1), so a process that never meets a key step never loads it. Shared by
 * pam_twofold.so (assertions at login) and twofoldctl (registration, `key add`).
 *
 * Built without libfido2's headers (no libfido2-dev), every call returns TF_FIDO_NOT_BUILT.
 * Nothing here decides policy: the daemon says what to ask for and checks what comes back.
 */
#ifndef TWOFOLD_FIDO_H
#define TWOFOLD_FIDO_H

#include <stddef.h>
#include <stdint.h>

#define TF_FIDO_HASH_LEN 32            /* clientDataHash: the daemon's challenge */
#define TF_FIDO_MAX_CREDS 16           /* allow-list / exclude-list entries */
#define TF_FIDO_MAX_CRED_ID 1023
#define TF_FIDO_MAX_AUTH_DATA 1024
#define TF_FIDO_MAX_SIG 512
#define TF_FIDO_MAX_X5C 4096           /* the attestation certificate (DER) */
#define TF_FIDO_MAX_PIN 256

/* What happened. The numbers travel in the key step's response (docs/protocol.md): never renumber. */
enum tf_fido_status {
    TF_FIDO_OK = 0,
    TF_FIDO_NO_LIBRARY = 1,      /* libfido2.so.1 could not be loaded at run time */
    TF_FIDO_NO_DEVICE = 2,       /* no key is plugged in */
    TF_FIDO_NO_CREDENTIAL = 3,   /* keys present, none holds a credential of the list */
    TF_FIDO_TIMEOUT = 4,         /* not touched in time, or the key never answered */
    TF_FIDO_PIN_REQUIRED = 5,    /* user verification needs a PIN and none was given */
    TF_FIDO_PIN_INVALID = 6,
    TF_FIDO_PIN_BLOCKED = 7,
    TF_FIDO_UV_UNSUPPORTED = 8,  /* user verification asked for; the key can do neither UV nor a PIN */
    TF_FIDO_EXCLUDED = 9,        /* registration: the key already holds a credential of the exclude list */
    TF_FIDO_ERROR = 10,          /* anything else; fido_error says what */
    TF_FIDO_NOT_BUILT = 11,      /* built without libfido2's headers */
};

/* A credential id (allow list, exclude list). */
struct tf_fido_cred_ref {
    const unsigned char *id;
    size_t len;
};

struct tf_fido_assert_request {
    const char *rp_id;
    const unsigned char *client_data_hash;          /* TF_FIDO_HASH_LEN bytes */
    struct tf_fido_cred_ref creds[TF_FIDO_MAX_CREDS];
    size_t n_creds;                                 /* 1..TF_FIDO_MAX_CREDS */
    int require_uv;                                 /* built-in UV, or else a PIN through pin_fn */
    int timeout_ms;                                 /* per key, for the touch */
};

struct tf_fido_assert_result {
    int fido_error;                                 /* libfido2's FIDO_ERR_* for TF_FIDO_ERROR etc., else 0 */
    unsigned char cred_id[TF_FIDO_MAX_CRED_ID];
    size_t cred_id_len;
    unsigned char auth_data[TF_FIDO_MAX_AUTH_DATA]; /* raw authenticator data (not CBOR-wrapped) */
    size_t auth_data_len;
    unsigned char sig[TF_FIDO_MAX_SIG];
    size_t sig_len;
};

struct tf_fido_register_request {
    const char *rp_id;
    const char *rp_name;
    const unsigned char *user_id;                   /* user handle, 1..64 bytes */
    size_t user_id_len;
    const char *user_name;
    const unsigned char *client_data_hash;          /* TF_FIDO_HASH_LEN bytes */
    struct tf_fido_cred_ref exclude[TF_FIDO_MAX_CREDS];
    size_t n_exclude;
    int require_uv;
    int timeout_ms;
};

struct tf_fido_register_result {
    int fido_error;
    char fmt[32];                                   /* attestation format: "packed", "fido-u2f", "none", ... */
    unsigned char auth_data[TF_FIDO_MAX_AUTH_DATA]; /* raw authenticator data, attested credential data included */
    size_t auth_data_len;
    unsigned char sig[TF_FIDO_MAX_SIG];             /* attestation signature (empty for "none") */
    size_t sig_len;
    unsigned char x5c[TF_FIDO_MAX_X5C];             /* attestation certificate, DER (empty: none) */
    size_t x5c_len;
};

/*
 * Asked for a PIN when user verification needs one: writes a NUL-terminated PIN into buf
 * (at most len bytes with the NUL) and returns 0, or returns -1 (the user gave none). The PIN goes
 * to libfido2 only and is wiped after use.
 */
typedef int (*tf_fido_pin_fn)(void *ctx, char *buf, size_t len);

/* Called once a key is found and is about to wait for a touch (e.g. to show "Touch your key"). */
typedef void (*tf_fido_touch_fn)(void *ctx);

/*
 * Finds the keys present (fido_dev_info_manifest), and gets an assertion over client_data_hash
 * for rp_id from the first that holds a credential of the list: every key is asked silently
 * first (no user presence, at most 3 s), so only that one blinks. Then touch_fn is called (only
 * then), pin_fn only when require_uv and the key has no built-in UV but a PIN, and the key waits
 * timeout_ms for the touch. The result is filled only with TF_FIDO_OK (fido_error always).
 * Returns a tf_fido_status. No global state: callable from several threads at once.
 */
int tf_fido_assert(const struct tf_fido_assert_request *request, tf_fido_pin_fn pin_fn, tf_fido_touch_fn touch_fn, void *ctx,
                   struct tf_fido_assert_result *result);

/*
 * Makes a credential (ES256, else EdDSA when the key refuses ES256; not discoverable) on the first
 * key present. pin_fn is asked when require_uv and the key has no built-in UV but a PIN, or when
 * the key insists on its PIN anyway (a CTAP 2.0 key with a PIN set). rp_name may be NULL.
 * Returns a tf_fido_status.
 */
int tf_fido_register(const struct tf_fido_register_request *request, tf_fido_pin_fn pin_fn, tf_fido_touch_fn touch_fn, void *ctx,
                     struct tf_fido_register_result *result);

/* A short English text for a status ("no security key found"). */
const char *tf_fido_status_text(int status);

/* 1 when built with libfido2's headers (the key step is possible), else 0. */
int tf_fido_built(void);

#endif
