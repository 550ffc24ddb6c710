/*
 * twofold_wire.h - framing of the Twofold wire protocol, version 1, as the
 * PAM module speaks it (see docs/protocol.md).
 *
 * This file knows bytes only: no sockets, no PAM, no allocation.  The
 * module builds the frames it sends into a fixed buffer (tf_out_*) and
 * checks every frame it receives with tf_parse() before looking at it.
 */
#ifndef TWOFOLD_WIRE_H
#define TWOFOLD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define TF_VERSION 1u
#define TF_LENGTH_BYTES 4u       /* the u32 length word before every frame */
#define TF_MIN_FRAME 2u          /* version + type */
#define TF_MAX_FRAME 65536u      /* login-dialog frames, either direction */
#define TF_FIELD_HEADER 3u       /* u8 tag + u16 length */

/* Message types. */
enum tf_type {
	TF_AUTH_START = 0x01,
	TF_ANSWER = 0x02,
	TF_PROMPT_ECHO_OFF = 0x11,
	TF_PROMPT_ECHO_ON = 0x12,
	TF_INFO = 0x13,
	TF_ERROR_MSG = 0x14,
	TF_VERDICT = 0x20,
	TF_PROTOCOL_ERROR = 0x7f,
};

/* Field tags. */
enum tf_tag {
	TF_TAG_USER = 0x01,
	TF_TAG_SERVICE = 0x02,
	TF_TAG_RHOST = 0x03,
	TF_TAG_TTY = 0x04,
	TF_TAG_RUSER = 0x05,
	TF_TAG_PASSWORD = 0x06,
	TF_TAG_DEADLINE = 0x07,
	TF_TAG_CAPABILITIES = 0x08,
	TF_TAG_TEXT = 0x10,
	TF_TAG_PAYLOAD = 0x11,
	TF_TAG_RESULT = 0x20,
	TF_TAG_JSON = 0x30,
};

/* Bounds of the field values, in bytes. */
#define TF_BOUND_USER 256u
#define TF_BOUND_SERVICE 64u
#define TF_BOUND_RHOST 256u
#define TF_BOUND_TTY 64u
#define TF_BOUND_RUSER 256u
#define TF_BOUND_PASSWORD 512u
#define TF_BOUND_DEADLINE 4u     /* binary: u32 big-endian milliseconds, exactly 4 bytes */
#define TF_BOUND_CAPABILITIES 4u /* binary: u32 big-endian bitset, exactly 4 bytes */
#define TF_BOUND_TEXT 8192u
#define TF_BOUND_PAYLOAD 8192u   /* binary: a challenge or response, only with TF_CAP_BINARY_PAYLOAD */
#define TF_BOUND_RESULT 1u
#define TF_BOUND_JSON 65000u

/*
 * Capability bits (CAPABILITIES in AUTH_START): what a client can do
 * beyond text prompts.  A daemon ignores bits it does not know.
 */
#define TF_CAP_BINARY_PAYLOAD 0x00000001u /* PAYLOAD in prompts and answers */
#define TF_CAP_FIDO2 0x00000002u /* the client talks to FIDO2 keys (the key step); needs BINARY_PAYLOAD */

/* Verdict codes (the RESULT byte of a VERDICT). */
enum tf_result {
	TF_RESULT_SUCCESS = 0,
	TF_RESULT_FAILURE = 1,
	TF_RESULT_LOCKED = 2,
	TF_RESULT_IGNORE = 3,
	TF_RESULT_UNAVAILABLE = 4,
	TF_RESULT_BAD_REQUEST = 5,
	TF_RESULT_DENIED = 6,
};

/*
 * The largest frame the module sends: an ANSWER with a full TEXT
 * (4 + 2 + 3 + 8192 = 8201 bytes).  An ANSWER to a key step (TEXT "" and
 * a key response, TF_KEY_RESPONSE_MAX) is 4 + 2 + 3 + 3 + 2572 = 2584.
 * AUTH_START with every field at its bound (USER, SERVICE, RHOST, TTY,
 * RUSER, PASSWORD, the 4-byte DEADLINE and the 4-byte CAPABILITIES) is
 * 4 + 2 + 8 * 3 + 1416 = 1446 bytes.
 */
#define TF_OUT_MAX (TF_LENGTH_BYTES + TF_MIN_FRAME + TF_FIELD_HEADER + TF_BOUND_TEXT)

/* An outgoing frame under construction.  Holds secrets: wipe it after use. */
struct tf_out {
	unsigned char buf[TF_OUT_MAX];
	size_t len;
};

/* Starts a frame of the given type. */
void tf_out_begin(struct tf_out *out, uint8_t type);

/*
 * Appends one field.  Returns 0, or -1 (the frame is unchanged) when the
 * value is longer than the tag's bound, is not valid text for a text tag,
 * or does not fit.
 */
int tf_out_field(struct tf_out *out, uint8_t tag, const void *value, size_t len);

/* Same, for a NUL-terminated string. */
int tf_out_text(struct tf_out *out, uint8_t tag, const char *text);

/* Same, for a binary u32 (big-endian, 4 bytes): DEADLINE, CAPABILITIES. */
int tf_out_u32(struct tf_out *out, uint8_t tag, uint32_t value);

/* Writes the length word; returns the number of bytes to send. */
size_t tf_out_finish(struct tf_out *out);

/* Reads a big-endian u32 length word. */
uint32_t tf_get_length(const unsigned char word[TF_LENGTH_BYTES]);

/* Whether a frame length read from the wire is acceptable (checked before allocating). */
int tf_length_ok(uint32_t length);

/* Whether the bytes are valid UTF-8 without NUL (the protocol's "text"). */
int tf_text_ok(const unsigned char *s, size_t len);

/* Name of a message type or verdict code, for logs ("?" when unknown). */
const char *tf_type_name(uint8_t type);
const char *tf_result_name(uint8_t result);

/* A received frame, checked.  Pointers point into the frame body. */
struct tf_msg {
	uint8_t type;
	const unsigned char *text; /* TEXT, when has_text */
	size_t text_len;
	int has_text;
	const unsigned char *payload; /* PAYLOAD, when has_payload (a PROMPT_ECHO_OFF only) */
	size_t payload_len;
	int has_payload;
	uint8_t result; /* RESULT, when has_result */
	int has_result;
};

/*
 * Checks a frame body (the bytes after the length word) the module
 * received, per docs/protocol.md: version, a type the daemon may send to
 * the module, every field inside the frame and within its tag's bound, no
 * known tag twice, text that is UTF-8 without NUL, no known tag the type
 * does not list, the fields the type requires present, a known verdict
 * code, no PAYLOAD unless capabilities (what the module declared in
 * AUTH_START) has TF_CAP_BINARY_PAYLOAD, and a PAYLOAD only in a
 * PROMPT_ECHO_OFF (the only prompt the key step uses).  Unknown tags are
 * skipped.  Returns 0 and fills *msg, or -1 and sets *why to a static reason.
 */
int tf_parse(const unsigned char *body, size_t len, uint32_t capabilities, struct tf_msg *msg, const char **why);

/*
 * The key step (docs/protocol.md, "The key step"): a PROMPT_ECHO_OFF whose
 * PAYLOAD is a key request; the module answers with TEXT "" and a key
 * response.  Integers are big-endian.
 */
#define TF_KEY_REQUEST_MAGIC 0x4bu  /* 'K' */
#define TF_KEY_RESPONSE_MAGIC 0x6bu /* 'k' */
#define TF_KEY_VERSION 1u
#define TF_KEY_FLAG_UV 0x01u        /* user verification required */
#define TF_KEY_FLAG_UP 0x02u        /* user presence required: always set */
#define TF_KEY_MIN_TIMEOUT_MS 1000u
#define TF_KEY_MAX_TIMEOUT_MS 120000u
#define TF_KEY_HASH_LEN 32u         /* clientDataHash */
#define TF_KEY_MAX_CREDS 16u
#define TF_KEY_MAX_CRED_ID 1023u
#define TF_KEY_MIN_AUTH_DATA 37u    /* rpIdHash, flags, signCount */
#define TF_KEY_MAX_AUTH_DATA 1024u
#define TF_KEY_MAX_SIG 512u
/* magic, version, status, fido_error, then three u16-prefixed values at their bounds */
#define TF_KEY_RESPONSE_MAX (3u + 4u + 2u + TF_KEY_MAX_CRED_ID + 2u + TF_KEY_MAX_AUTH_DATA + 2u + TF_KEY_MAX_SIG)

struct tf_key_cred {
	const unsigned char *id; /* into the payload */
	size_t len;
};

/* A key request, checked.  The strings are NUL-terminated copies (libfido2 and PAM want C strings). */
struct tf_key_request {
	int require_uv;
	uint32_t timeout_ms;
	char rp_id[256];
	const unsigned char *client_data_hash; /* TF_KEY_HASH_LEN bytes, into the payload */
	struct tf_key_cred creds[TF_KEY_MAX_CREDS];
	size_t n_creds;
	char pin_prompt[256]; /* may be empty */
};

/*
 * Checks a key request strictly: magic, version, flags (UP set, no unknown
 * bit), timeout in range, rp id 1..255 bytes of text, 1..16 credential ids
 * of 1..1023 bytes, a pin prompt that is text, no length running past the
 * end, no trailing byte.  Returns 0 and fills *req, or -1 and sets *why.
 */
int tf_parse_key_request(const unsigned char *p, size_t len, struct tf_key_request *req, const char **why);

/*
 * Writes a key response into buf (TF_KEY_RESPONSE_MAX bytes suffice).
 * With status 0 the three values must be within their bounds; with any
 * other status they are not written.  Returns the length, or 0 when a
 * value is out of bounds or buf is too small.
 */
size_t tf_key_response(unsigned char *buf, size_t size, uint8_t status, int32_t fido_error, const unsigned char *cred_id,
		       size_t cred_id_len, const unsigned char *auth_data, size_t auth_data_len, const unsigned char *sig,
		       size_t sig_len);

#endif /* TWOFOLD_WIRE_H */
