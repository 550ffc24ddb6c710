/*
 * twofold_fido.c - the libfido2 layer (see include/twofold_fido.h).
 *
 * libfido2 is loaded with dlopen only when a key step comes: the module is
 * loaded by every sshd, sudo and login on the host, and most of them never
 * see a key.  Nothing here links against libfido2; its header gives the
 * types, constants and the prototypes the function pointers are typed from.
 *
 * No global mutable state: the library is resolved again on every call
 * (a few dozen dlsym lookups, nothing next to a USB round trip), so two
 * threads may talk to keys at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_DEFAULT, RTLD_NODELETE, explicit_bzero */
#endif

#include "twofold_fido.h"

#include <string.h>

/* TWOFOLD_NO_FIDO2: build without FIDO2 even where the headers are (`make FIDO2=no`). */
#if defined(__has_include) && !defined(TWOFOLD_NO_FIDO2)
#if __has_include(<fido.h>)
#define TF_HAVE_FIDO 1
#endif
#endif

const char *tf_fido_status_text(int status)
{
	switch (status) {
	case TF_FIDO_OK: return "ok";
	case TF_FIDO_NO_LIBRARY: return "libfido2 is not installed (install libfido2-1)";
	case TF_FIDO_NO_DEVICE: return "no security key found";
	case TF_FIDO_NO_CREDENTIAL: return "no security key present holds a registered credential";
	case TF_FIDO_TIMEOUT: return "the security key was not touched in time or did not answer";
	case TF_FIDO_PIN_REQUIRED: return "the security key needs a PIN and none was given";
	case TF_FIDO_PIN_INVALID: return "wrong security key PIN";
	case TF_FIDO_PIN_BLOCKED: return "the security key's PIN is blocked";
	case TF_FIDO_UV_UNSUPPORTED: return "the security key can verify neither a PIN nor a fingerprint";
	case TF_FIDO_EXCLUDED: return "the security key is already registered";
	case TF_FIDO_ERROR: return "security key error";
	case TF_FIDO_NOT_BUILT: return "built without FIDO2 support (no libfido2 headers)";
	default: return "unknown security key status";
	}
}

#ifndef TF_HAVE_FIDO

int tf_fido_built(void)
{
	return 0;
}

int tf_fido_assert(const struct tf_fido_assert_request *request, tf_fido_pin_fn pin_fn, tf_fido_touch_fn touch_fn, void *ctx,
		   struct tf_fido_assert_result *result)
{
	(void)request;
	(void)pin_fn;
	(void)touch_fn;
	(void)ctx;
	memset(result, 0, sizeof(*result));
	return TF_FIDO_NOT_BUILT;
}

int tf_fido_register(const struct tf_fido_register_request *request, tf_fido_pin_fn pin_fn, tf_fido_touch_fn touch_fn,
		     void *ctx, struct tf_fido_register_result *result)
{
	(void)request;
	(void)pin_fn;
	(void)touch_fn;
	(void)ctx;
	memset(result, 0, sizeof(*result));
	return TF_FIDO_NOT_BUILT;
}

#else /* TF_HAVE_FIDO */

#include <dlfcn.h>
#include <fido.h>

#define LIBFIDO2 "libfido2.so.1"
#define MAX_DEVICES 8     /* keys plugged in at once that we look at */
#define PROBE_MS 3000     /* a silent check answers at once; a key that does not is skipped */

int tf_fido_built(void)
{
	return 1;
}

/* Every libfido2 function used, each a pointer typed from its prototype. */
#define TF_FIDO_FUNCTIONS(X) \
	X(fido_init) X(fido_dev_info_new) X(fido_dev_info_manifest) X(fido_dev_info_ptr) \
	X(fido_dev_info_free) X(fido_dev_new_with_info) X(fido_dev_open_with_info) \
	X(fido_dev_set_timeout) X(fido_dev_close) X(fido_dev_free) X(fido_dev_has_uv) \
	X(fido_dev_has_pin) X(fido_assert_new) X(fido_assert_free) X(fido_assert_set_rp) \
	X(fido_assert_set_clientdata_hash) X(fido_assert_allow_cred) X(fido_assert_set_up) \
	X(fido_assert_set_uv) X(fido_dev_get_assert) X(fido_assert_count) X(fido_assert_id_ptr) \
	X(fido_assert_id_len) X(fido_assert_authdata_ptr) X(fido_assert_authdata_len) \
	X(fido_assert_sig_ptr) X(fido_assert_sig_len) X(fido_cred_new) X(fido_cred_free) \
	X(fido_cred_set_type) X(fido_cred_set_rp) X(fido_cred_set_user) \
	X(fido_cred_set_clientdata_hash) X(fido_cred_exclude) X(fido_cred_set_uv) \
	X(fido_dev_make_cred) X(fido_cred_fmt) X(fido_cred_authdata_raw_ptr) \
	X(fido_cred_authdata_raw_len) X(fido_cred_sig_ptr) X(fido_cred_sig_len) \
	X(fido_cred_x5c_ptr) X(fido_cred_x5c_len) X(fido_set_log_handler)

_Static_assert(sizeof(void (*)(void)) == sizeof(void *), "dlsym needs function and object pointers of one size");

struct api {
#define TF_MEMBER(name) __typeof__(name) *name;
	TF_FIDO_FUNCTIONS(TF_MEMBER)
#undef TF_MEMBER
};

/*
 * The global scope first, then libfido2's own handle.  A lookup in the
 * handle alone searches libfido2 and its dependencies only, never the
 * LD_PRELOAD libraries, so the test suite's fake authenticator (a preload
 * that replaces fido_dev_info_manifest) would never be seen.  This opens
 * nothing: whoever controls the global scope of a process controls the
 * process, and the loader ignores LD_PRELOAD for setuid programs.
 */
static void *resolve(void *handle, const char *name)
{
	void *p = dlsym(RTLD_DEFAULT, name);

	return p != NULL ? p : dlsym(handle, name);
}

static void discard_log(const char *line)
{
	(void)line;
}

/*
 * Returns 0, or -1 when libfido2 is not installed (or too old to have a
 * function we use).  RTLD_NODELETE: libfido2 pulls in libcrypto, which
 * registers exit handlers; unmapping it under them would crash the process
 * at exit.  So the handle is released and the library stays mapped.
 */
static int load_api(struct api *api)
{
	void *handle = dlopen(LIBFIDO2, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	int missing = 0;

	if (handle == NULL)
		return -1;
	/* memcpy, not a cast: ISO C has no object-to-function pointer
	 * conversion; POSIX (dlsym) guarantees the representations match. */
#define TF_RESOLVE(name) { \
	void *p = resolve(handle, #name); \
	memcpy(&api->name, &p, sizeof(p)); \
	missing |= p == NULL; }
	TF_FIDO_FUNCTIONS(TF_RESOLVE)
#undef TF_RESOLVE
	dlclose(handle);
	if (missing)
		return -1;
	api->fido_init(0);
	/* libfido2 turns on its debug output when FIDO_DEBUG is in the
	 * environment, which under su or sudo is the calling user's: its lines
	 * go nowhere, so a user cannot make the module trace the key's traffic. */
	api->fido_set_log_handler(discard_log);
	return 0;
}

/* libfido2's error → the status the daemon sees. */
static int map_error(int r)
{
	switch (r) {
	case FIDO_OK: return TF_FIDO_OK;
	case FIDO_ERR_NO_CREDENTIALS: return TF_FIDO_NO_CREDENTIAL;
	case FIDO_ERR_ACTION_TIMEOUT:
	case FIDO_ERR_USER_ACTION_TIMEOUT:
	case FIDO_ERR_TIMEOUT:
	case FIDO_ERR_RX: /* libfido2's read timed out: the key never answered */
		return TF_FIDO_TIMEOUT;
	case FIDO_ERR_PIN_REQUIRED: return TF_FIDO_PIN_REQUIRED;
	case FIDO_ERR_PIN_INVALID:
	case FIDO_ERR_PIN_AUTH_INVALID:
	case FIDO_ERR_PIN_POLICY_VIOLATION: /* too short to be the PIN */
		return TF_FIDO_PIN_INVALID;
	case FIDO_ERR_PIN_BLOCKED:
	case FIDO_ERR_PIN_AUTH_BLOCKED: /* blocked until the key is replugged */
		return TF_FIDO_PIN_BLOCKED;
	case FIDO_ERR_PIN_NOT_SET: return TF_FIDO_UV_UNSUPPORTED; /* no PIN to verify the user with */
	case FIDO_ERR_CREDENTIAL_EXCLUDED: return TF_FIDO_EXCLUDED;
	default: return TF_FIDO_ERROR;
	}
}

/* Records libfido2's error and returns its status. */
static int fail_with(int *fido_error, int r)
{
	*fido_error = r;
	return map_error(r);
}

/* The keys present; *list is freed by the caller (fido_dev_info_free, MAX_DEVICES). */
static int manifest(const struct api *api, fido_dev_info_t **list, size_t *n, int *fido_error)
{
	int r;

	*n = 0;
	*list = api->fido_dev_info_new(MAX_DEVICES);
	if (*list == NULL)
		return fail_with(fido_error, FIDO_ERR_INTERNAL);
	r = api->fido_dev_info_manifest(*list, MAX_DEVICES, n);
	if (r != FIDO_OK)
		return fail_with(fido_error, r);
	return *n == 0 ? TF_FIDO_NO_DEVICE : TF_FIDO_OK;
}

/* Opens key i of the manifest; NULL (and *r set) when it cannot be. */
static fido_dev_t *open_device(const struct api *api, const fido_dev_info_t *list, size_t i, int *r)
{
	fido_dev_t *dev = api->fido_dev_new_with_info(api->fido_dev_info_ptr(list, i));

	if (dev == NULL) {
		*r = FIDO_ERR_INTERNAL;
		return NULL;
	}
	*r = api->fido_dev_open_with_info(dev);
	if (*r != FIDO_OK) {
		api->fido_dev_free(&dev);
		return NULL;
	}
	return dev;
}

static void close_device(const struct api *api, fido_dev_t **dev)
{
	if (*dev != NULL) {
		api->fido_dev_close(*dev);
		api->fido_dev_free(dev);
	}
}

/*
 * How to verify the user: built-in UV (fingerprint) when the key has it,
 * else its PIN, asked through pin_fn into pin (wiped by the caller).
 * Returns a status; *uv is the option to set, *use_pin whether to pass pin.
 */
static int choose_uv(const struct api *api, fido_dev_t *dev, int require_uv, tf_fido_pin_fn pin_fn, void *ctx, char *pin,
		     size_t pin_size, fido_opt_t *uv, int *use_pin)
{
	*uv = FIDO_OPT_OMIT;
	*use_pin = 0;
	if (!require_uv)
		return TF_FIDO_OK;
	if (api->fido_dev_has_uv(dev)) {
		*uv = FIDO_OPT_TRUE;
		return TF_FIDO_OK;
	}
	if (!api->fido_dev_has_pin(dev))
		return TF_FIDO_UV_UNSUPPORTED;
	/* With a PIN the uv option stays omitted: a CTAP 2.0 key refuses
	 * uv=true when it has no built-in UV; the PIN alone sets the UV flag. */
	if (pin_fn == NULL || pin_fn(ctx, pin, pin_size) != 0)
		return TF_FIDO_PIN_REQUIRED;
	pin[pin_size - 1] = '\0';
	if (pin[0] == '\0')
		return TF_FIDO_PIN_REQUIRED;
	*use_pin = 1;
	return TF_FIDO_OK;
}

/* ------------------------------------------------------------------ */
/* Assertions                                                          */

static int assert_request_ok(const struct tf_fido_assert_request *q)
{
	if (q == NULL || q->rp_id == NULL || q->rp_id[0] == '\0' || q->client_data_hash == NULL)
		return 0;
	if (q->n_creds < 1 || q->n_creds > TF_FIDO_MAX_CREDS || q->timeout_ms <= 0)
		return 0;
	for (size_t i = 0; i < q->n_creds; i++)
		if (q->creds[i].id == NULL || q->creds[i].len < 1 || q->creds[i].len > TF_FIDO_MAX_CRED_ID)
			return 0;
	return 1;
}

/* A new assertion for the request, user presence as asked; NULL and *r on failure. */
static fido_assert_t *new_assert(const struct api *api, const struct tf_fido_assert_request *q, fido_opt_t up, int *r)
{
	fido_assert_t *a = api->fido_assert_new();

	*r = a == NULL ? FIDO_ERR_INTERNAL : FIDO_OK;
	if (*r == FIDO_OK)
		*r = api->fido_assert_set_rp(a, q->rp_id);
	if (*r == FIDO_OK)
		*r = api->fido_assert_set_clientdata_hash(a, q->client_data_hash, TF_FIDO_HASH_LEN);
	for (size_t i = 0; *r == FIDO_OK && i < q->n_creds; i++)
		*r = api->fido_assert_allow_cred(a, q->creds[i].id, q->creds[i].len);
	if (*r == FIDO_OK)
		*r = api->fido_assert_set_up(a, up);
	if (*r != FIDO_OK && a != NULL)
		api->fido_assert_free(&a);
	return a;
}

/*
 * Whether the key holds a credential of the list, asked silently (up=false:
 * no blink, no touch), so that only the key that can answer waits for a touch.
 * Returns libfido2's error: FIDO_OK when it does.
 */
static int probe(const struct api *api, fido_dev_t *dev, const struct tf_fido_assert_request *q)
{
	fido_assert_t *a;
	int r;

	api->fido_dev_set_timeout(dev, q->timeout_ms < PROBE_MS ? q->timeout_ms : PROBE_MS);
	a = new_assert(api, q, FIDO_OPT_FALSE, &r);
	if (a != NULL) {
		r = api->fido_dev_get_assert(dev, a, NULL);
		api->fido_assert_free(&a);
	}
	return r;
}

/*
 * The first key holding a credential of the list, opened; NULL when none
 * does, with *status saying why: NO_CREDENTIAL when every key said so,
 * else what the last other failure (a key that did not open or answer) maps to.
 */
static fido_dev_t *find_key(const struct api *api, const fido_dev_info_t *list, size_t n,
			    const struct tf_fido_assert_request *q, int *status, int *fido_error)
{
	int other = FIDO_OK;

	for (size_t i = 0; i < n; i++) {
		int r;
		fido_dev_t *dev = open_device(api, list, i, &r);

		if (dev != NULL) {
			r = probe(api, dev, q);
			if (r == FIDO_OK)
				return dev;
			close_device(api, &dev);
		}
		if (r != FIDO_ERR_NO_CREDENTIALS)
			other = r;
	}
	*status = other == FIDO_OK ? fail_with(fido_error, FIDO_ERR_NO_CREDENTIALS) : fail_with(fido_error, other);
	return NULL;
}

/*
 * libfido2 (up to 1.13) gives an assertion's authenticator data as a CBOR
 * byte string; the daemon wants the raw bytes that were signed.  Returns
 * 0, or -1 when it is not one definite byte string of 37..MAX bytes.
 */
static int unwrap_authdata(const unsigned char *p, size_t len, struct tf_fido_assert_result *out)
{
	size_t hdr, n;

	if (p == NULL || len < 2)
		return -1;
	if (p[0] == 0x58) {
		hdr = 2;
		n = p[1];
	} else if (p[0] == 0x59 && len >= 3) {
		hdr = 3;
		n = ((size_t)p[1] << 8) | p[2];
	} else {
		return -1; /* 0x40..0x57 would be under 24 bytes: too short anyway */
	}
	if (n != len - hdr || n < 37 || n > sizeof(out->auth_data))
		return -1;
	memcpy(out->auth_data, p + hdr, n);
	out->auth_data_len = n;
	return 0;
}

/* Copies the first statement out; -1 when it does not fit the wire's bounds. */
static int copy_assertion(const struct api *api, const fido_assert_t *a, struct tf_fido_assert_result *out)
{
	size_t id_len, sig_len;
	const unsigned char *id, *sig;

	if (api->fido_assert_count(a) < 1)
		return -1;
	id = api->fido_assert_id_ptr(a, 0);
	id_len = api->fido_assert_id_len(a, 0);
	sig = api->fido_assert_sig_ptr(a, 0);
	sig_len = api->fido_assert_sig_len(a, 0);
	if (id == NULL || id_len < 1 || id_len > sizeof(out->cred_id) || sig == NULL || sig_len < 1 ||
	    sig_len > sizeof(out->sig))
		return -1;
	if (unwrap_authdata(api->fido_assert_authdata_ptr(a, 0), api->fido_assert_authdata_len(a, 0), out) != 0)
		return -1;
	memcpy(out->cred_id, id, id_len);
	out->cred_id_len = id_len;
	memcpy(out->sig, sig, sig_len);
	out->sig_len = sig_len;
	return 0;
}

/* The real assertion, on the key that holds the credential: user presence, UV as asked. */
static int assert_on(const struct api *api, fido_dev_t *dev, const struct tf_fido_assert_request *q, tf_fido_pin_fn pin_fn,
		     tf_fido_touch_fn touch_fn, void *ctx, struct tf_fido_assert_result *out)
{
	char pin[TF_FIDO_MAX_PIN];
	fido_assert_t *a = NULL;
	fido_opt_t uv;
	int use_pin, r = FIDO_OK;
	int st = choose_uv(api, dev, q->require_uv, pin_fn, ctx, pin, sizeof(pin), &uv, &use_pin);

	if (st == TF_FIDO_OK)
		a = new_assert(api, q, FIDO_OPT_TRUE, &r);
	if (st == TF_FIDO_OK && a != NULL && uv != FIDO_OPT_OMIT)
		r = api->fido_assert_set_uv(a, uv);
	if (st == TF_FIDO_OK && r == FIDO_OK && a != NULL) {
		api->fido_dev_set_timeout(dev, q->timeout_ms);
		if (touch_fn != NULL)
			touch_fn(ctx);
		r = api->fido_dev_get_assert(dev, a, use_pin ? pin : NULL);
		if (r == FIDO_OK && copy_assertion(api, a, out) != 0)
			r = FIDO_ERR_INVALID_PARAM; /* an answer the wire cannot carry */
	}
	if (st == TF_FIDO_OK)
		st = fail_with(&out->fido_error, r);
	explicit_bzero(pin, sizeof(pin));
	if (a != NULL)
		api->fido_assert_free(&a);
	return st;
}

int tf_fido_assert(const struct tf_fido_assert_request *request, tf_fido_pin_fn pin_fn, tf_fido_touch_fn touch_fn, void *ctx,
		   struct tf_fido_assert_result *result)
{
	struct api api;
	fido_dev_info_t *list = NULL;
	fido_dev_t *dev = NULL;
	size_t n = 0;
	int st;

	memset(result, 0, sizeof(*result));
	if (!assert_request_ok(request)) {
		result->fido_error = FIDO_ERR_INVALID_ARGUMENT;
		return TF_FIDO_ERROR;
	}
	if (load_api(&api) != 0)
		return TF_FIDO_NO_LIBRARY;
	st = manifest(&api, &list, &n, &result->fido_error);
	if (st == TF_FIDO_OK)
		dev = find_key(&api, list, n, request, &st, &result->fido_error);
	if (dev != NULL)
		st = assert_on(&api, dev, request, pin_fn, touch_fn, ctx, result);
	close_device(&api, &dev);
	if (list != NULL)
		api.fido_dev_info_free(&list, MAX_DEVICES);
	if (st != TF_FIDO_OK) {
		int e = result->fido_error;

		explicit_bzero(result, sizeof(*result)); /* nothing half-filled goes out */
		result->fido_error = e;
	}
	return st;
}

/* ------------------------------------------------------------------ */
/* Registration                                                        */

static int register_request_ok(const struct tf_fido_register_request *q)
{
	if (q == NULL || q->rp_id == NULL || q->rp_id[0] == '\0' || q->client_data_hash == NULL)
		return 0;
	if (q->user_id == NULL || q->user_id_len < 1 || q->user_id_len > 64 || q->user_name == NULL)
		return 0;
	if (q->n_exclude > TF_FIDO_MAX_CREDS || q->timeout_ms <= 0)
		return 0;
	for (size_t i = 0; i < q->n_exclude; i++)
		if (q->exclude[i].id == NULL || q->exclude[i].len < 1 || q->exclude[i].len > TF_FIDO_MAX_CRED_ID)
			return 0;
	return 1;
}

/* A credential to make, of the given COSE algorithm; NULL and *r on failure. */
static fido_cred_t *new_cred(const struct api *api, const struct tf_fido_register_request *q, int alg, fido_opt_t uv, int *r)
{
	fido_cred_t *c = api->fido_cred_new();

	*r = c == NULL ? FIDO_ERR_INTERNAL : FIDO_OK;
	if (*r == FIDO_OK)
		*r = api->fido_cred_set_type(c, alg);
	if (*r == FIDO_OK)
		*r = api->fido_cred_set_rp(c, q->rp_id, q->rp_name);
	if (*r == FIDO_OK)
		*r = api->fido_cred_set_user(c, q->user_id, q->user_id_len, q->user_name, q->user_name, NULL);
	if (*r == FIDO_OK)
		*r = api->fido_cred_set_clientdata_hash(c, q->client_data_hash, TF_FIDO_HASH_LEN);
	for (size_t i = 0; *r == FIDO_OK && i < q->n_exclude; i++)
		*r = api->fido_cred_exclude(c, q->exclude[i].id, q->exclude[i].len);
	if (*r == FIDO_OK && uv != FIDO_OPT_OMIT)
		*r = api->fido_cred_set_uv(c, uv);
	if (*r != FIDO_OK && c != NULL)
		api->fido_cred_free(&c);
	return c;
}

/* Copies what the daemon checks; -1 when it does not fit. */
static int copy_credential(const struct api *api, const fido_cred_t *c, struct tf_fido_register_result *out)
{
	const char *fmt = api->fido_cred_fmt(c);
	size_t ad = api->fido_cred_authdata_raw_len(c), sig = api->fido_cred_sig_len(c), x5c = api->fido_cred_x5c_len(c);

	if (fmt == NULL || strlen(fmt) >= sizeof(out->fmt) || ad < 37 || ad > sizeof(out->auth_data) ||
	    sig > sizeof(out->sig) || x5c > sizeof(out->x5c) || api->fido_cred_authdata_raw_ptr(c) == NULL)
		return -1;
	memcpy(out->fmt, fmt, strlen(fmt) + 1);
	memcpy(out->auth_data, api->fido_cred_authdata_raw_ptr(c), ad);
	out->auth_data_len = ad;
	if (sig > 0)
		memcpy(out->sig, api->fido_cred_sig_ptr(c), sig);
	out->sig_len = sig;
	if (x5c > 0)
		memcpy(out->x5c, api->fido_cred_x5c_ptr(c), x5c);
	out->x5c_len = x5c;
	return 0;
}

/* One makeCredential of the given algorithm. Returns libfido2's error. */
static int make_one(const struct api *api, fido_dev_t *dev, const struct tf_fido_register_request *q, int alg, fido_opt_t uv,
		    const char *pin, struct tf_fido_register_result *out)
{
	int r;
	fido_cred_t *c = new_cred(api, q, alg, uv, &r);

	if (c == NULL)
		return r;
	r = api->fido_dev_make_cred(dev, c, pin);
	if (r == FIDO_OK && copy_credential(api, c, out) != 0)
		r = FIDO_ERR_INVALID_PARAM; /* an answer the wire cannot carry */
	api->fido_cred_free(&c);
	return r;
}

/* ES256, or EdDSA when the key refuses ES256 (it does so before any touch). */
static int make_either(const struct api *api, fido_dev_t *dev, const struct tf_fido_register_request *q, fido_opt_t uv,
		       const char *pin, struct tf_fido_register_result *out)
{
	int r = make_one(api, dev, q, COSE_ES256, uv, pin, out);

	if (r == FIDO_ERR_UNSUPPORTED_ALGORITHM)
		r = make_one(api, dev, q, COSE_EDDSA, uv, pin, out);
	return r;
}

/*
 * makeCredential with UV as asked.  A CTAP 2.0 key with a PIN set wants the
 * PIN even when UV was not asked for (FIDO_ERR_PIN_REQUIRED, before any
 * touch): then the PIN is asked and the credential made once more.
 */
static int make_credential(const struct api *api, fido_dev_t *dev, const struct tf_fido_register_request *q,
			   tf_fido_pin_fn pin_fn, tf_fido_touch_fn touch_fn, void *ctx, struct tf_fido_register_result *out)
{
	char pin[TF_FIDO_MAX_PIN];
	fido_opt_t uv;
	int use_pin, r;
	int st = choose_uv(api, dev, q->require_uv, pin_fn, ctx, pin, sizeof(pin), &uv, &use_pin);

	if (st == TF_FIDO_OK) {
		api->fido_dev_set_timeout(dev, q->timeout_ms);
		if (touch_fn != NULL)
			touch_fn(ctx);
		r = make_either(api, dev, q, uv, use_pin ? pin : NULL, out);
		if (r == FIDO_ERR_PIN_REQUIRED && !use_pin && api->fido_dev_has_pin(dev)) {
			st = choose_uv(api, dev, 1, pin_fn, ctx, pin, sizeof(pin), &uv, &use_pin);
			if (st == TF_FIDO_OK && use_pin)
				r = make_either(api, dev, q, FIDO_OPT_OMIT, pin, out);
		}
		if (st == TF_FIDO_OK)
			st = fail_with(&out->fido_error, r);
	}
	explicit_bzero(pin, sizeof(pin));
	return st;
}

int tf_fido_register(const struct tf_fido_register_request *request, tf_fido_pin_fn pin_fn, tf_fido_touch_fn touch_fn,
		     void *ctx, struct tf_fido_register_result *result)
{
	struct api api;
	fido_dev_info_t *list = NULL;
	fido_dev_t *dev = NULL;
	size_t n = 0;
	int st, r = FIDO_OK;

	memset(result, 0, sizeof(*result));
	if (!register_request_ok(request)) {
		result->fido_error = FIDO_ERR_INVALID_ARGUMENT;
		return TF_FIDO_ERROR;
	}
	if (load_api(&api) != 0)
		return TF_FIDO_NO_LIBRARY;
	st = manifest(&api, &list, &n, &result->fido_error);
	if (st == TF_FIDO_OK) {
		dev = open_device(&api, list, 0, &r); /* the first key: registration is done with one plugged in */
		st = dev == NULL ? fail_with(&result->fido_error, r) : TF_FIDO_OK;
	}
	if (dev != NULL)
		st = make_credential(&api, dev, request, pin_fn, touch_fn, ctx, result);
	close_device(&api, &dev);
	if (list != NULL)
		api.fido_dev_info_free(&list, MAX_DEVICES);
	return st;
}

#endif /* TF_HAVE_FIDO */
