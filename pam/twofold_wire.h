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

/*
 * What this module declares: nothing beyond text prompts.  The PAM
 * conversation carries text only, so a daemon that sends PAYLOAD is
 * refused (tf_parse).  Sent even when zero: the daemon's log then shows
 * a module that knows CAPABILITIES.
 */
#define TF_MODULE_CAPABILITIES 0u

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
 * (4 + 2 + 3 + 8192 = 8201 bytes; the module sends no PAYLOAD).
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
	uint8_t result; /* RESULT, when has_result */
	int has_result;
};

/*
 * Checks a frame body (the bytes after the length word) the module
 * received, per docs/protocol.md: version, a type the daemon may send to
 * the module, every field inside the frame and within its tag's bound, no
 * known tag twice, text that is UTF-8 without NUL, no known tag the type
 * does not list, the fields the type requires present, a known verdict
 * code, no PAYLOAD unless TF_MODULE_CAPABILITIES declares
 * TF_CAP_BINARY_PAYLOAD (it does not).  Unknown tags are skipped.
 * Returns 0 and fills *msg, or -1 and sets *why to a static reason.
 */
int tf_parse(const unsigned char *body, size_t len, struct tf_msg *msg, const char **why);

#endif /* TWOFOLD_WIRE_H */
