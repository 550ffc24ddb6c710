/*
 * twofold_wire.c - framing of the Twofold wire protocol, version 1.
 * See twofold_wire.h and docs/protocol.md.
 */
#include "twofold_wire.h"

#include <string.h>

/* Bound of a known tag; 0 and *known = 0 for a tag this module does not know. */
static size_t tag_bound(uint8_t tag, int *known)
{
	*known = 1;
	switch (tag) {
	case TF_TAG_USER: return TF_BOUND_USER;
	case TF_TAG_SERVICE: return TF_BOUND_SERVICE;
	case TF_TAG_RHOST: return TF_BOUND_RHOST;
	case TF_TAG_TTY: return TF_BOUND_TTY;
	case TF_TAG_RUSER: return TF_BOUND_RUSER;
	case TF_TAG_PASSWORD: return TF_BOUND_PASSWORD;
	case TF_TAG_DEADLINE: return TF_BOUND_DEADLINE;
	case TF_TAG_CAPABILITIES: return TF_BOUND_CAPABILITIES;
	case TF_TAG_TEXT: return TF_BOUND_TEXT;
	case TF_TAG_PAYLOAD: return TF_BOUND_PAYLOAD;
	case TF_TAG_RESULT: return TF_BOUND_RESULT;
	case TF_TAG_JSON: return TF_BOUND_JSON;
	default:
		*known = 0;
		return 0;
	}
}

static int tag_is_text(uint8_t tag)
{
	switch (tag) {
	case TF_TAG_RESULT:
	case TF_TAG_DEADLINE:
	case TF_TAG_CAPABILITIES:
	case TF_TAG_PAYLOAD:
		return 0;
	default:
		return 1;
	}
}

/* Whether this module declared the capability a known tag needs. */
static int tag_declared(uint8_t tag, uint32_t capabilities)
{
	if (tag == TF_TAG_PAYLOAD)
		return (capabilities & TF_CAP_BINARY_PAYLOAD) != 0;
	return 1;
}

/*
 * Whether a message type the module receives lists this known tag.
 * PAYLOAD only in PROMPT_ECHO_OFF: the protocol allows it in ECHO_ON too,
 * but the only binary step the module knows (the key step) uses ECHO_OFF.
 */
static int tag_listed(uint8_t type, uint8_t tag)
{
	if (tag == TF_TAG_TEXT)
		return 1; /* every type the module receives has TEXT */
	if (tag == TF_TAG_PAYLOAD)
		return type == TF_PROMPT_ECHO_OFF;
	return type == TF_VERDICT && tag == TF_TAG_RESULT;
}

int tf_text_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c == 0x00)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1fu;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0fu;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07u;
		} else {
			return 0; /* continuation byte, overlong lead (c0, c1) or > f4 */
		}
		if (len - i - 1 < n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			unsigned char cc = s[i + k];
			if ((cc & 0xc0u) != 0x80u)
				return 0;
			cp = (cp << 6) | (cc & 0x3fu);
		}
		if ((n == 2 && cp < 0x800u) || (n == 3 && cp < 0x10000u))
			return 0; /* overlong */
		if (cp >= 0xd800u && cp <= 0xdfffu)
			return 0; /* surrogate */
		if (cp > 0x10ffffu)
			return 0;
		i += n + 1;
	}
	return 1;
}

void tf_out_begin(struct tf_out *out, uint8_t type)
{
	out->buf[0] = out->buf[1] = out->buf[2] = out->buf[3] = 0;
	out->buf[4] = TF_VERSION;
	out->buf[5] = type;
	out->len = TF_LENGTH_BYTES + TF_MIN_FRAME;
}

int tf_out_field(struct tf_out *out, uint8_t tag, const void *value, size_t len)
{
	int known;
	size_t bound = tag_bound(tag, &known);

	if (!known || len > bound)
		return -1;
	if (tag_is_text(tag) && !tf_text_ok(value, len))
		return -1;
	if (sizeof(out->buf) - out->len < TF_FIELD_HEADER + len)
		return -1;
	out->buf[out->len] = tag;
	out->buf[out->len + 1] = (unsigned char)(len >> 8);
	out->buf[out->len + 2] = (unsigned char)(len & 0xffu);
	if (len > 0)
		memcpy(out->buf + out->len + TF_FIELD_HEADER, value, len);
	out->len += TF_FIELD_HEADER + len;
	return 0;
}

int tf_out_text(struct tf_out *out, uint8_t tag, const char *text)
{
	return tf_out_field(out, tag, text, strlen(text));
}

int tf_out_u32(struct tf_out *out, uint8_t tag, uint32_t value)
{
	unsigned char be[4];

	be[0] = (unsigned char)(value >> 24);
	be[1] = (unsigned char)(value >> 16);
	be[2] = (unsigned char)(value >> 8);
	be[3] = (unsigned char)value;
	return tf_out_field(out, tag, be, sizeof(be));
}

size_t tf_out_finish(struct tf_out *out)
{
	uint32_t n = (uint32_t)(out->len - TF_LENGTH_BYTES);

	out->buf[0] = (unsigned char)(n >> 24);
	out->buf[1] = (unsigned char)(n >> 16);
	out->buf[2] = (unsigned char)(n >> 8);
	out->buf[3] = (unsigned char)n;
	return out->len;
}

uint32_t tf_get_length(const unsigned char w[TF_LENGTH_BYTES])
{
	return ((uint32_t)w[0] << 24) | ((uint32_t)w[1] << 16) | ((uint32_t)w[2] << 8) | (uint32_t)w[3];
}

int tf_length_ok(uint32_t length)
{
	return length >= TF_MIN_FRAME && length <= TF_MAX_FRAME;
}

const char *tf_type_name(uint8_t type)
{
	switch (type) {
	case TF_AUTH_START: return "AUTH_START";
	case TF_ANSWER: return "ANSWER";
	case TF_PROMPT_ECHO_OFF: return "PROMPT_ECHO_OFF";
	case TF_PROMPT_ECHO_ON: return "PROMPT_ECHO_ON";
	case TF_INFO: return "INFO";
	case TF_ERROR_MSG: return "ERROR_MSG";
	case TF_VERDICT: return "VERDICT";
	case TF_PROTOCOL_ERROR: return "PROTOCOL_ERROR";
	default: return "?";
	}
}

const char *tf_result_name(uint8_t result)
{
	switch (result) {
	case TF_RESULT_SUCCESS: return "SUCCESS";
	case TF_RESULT_FAILURE: return "FAILURE";
	case TF_RESULT_LOCKED: return "LOCKED";
	case TF_RESULT_IGNORE: return "IGNORE";
	case TF_RESULT_UNAVAILABLE: return "UNAVAILABLE";
	case TF_RESULT_BAD_REQUEST: return "BAD_REQUEST";
	case TF_RESULT_DENIED: return "DENIED";
	default: return "?";
	}
}

/* Version and a type the daemon may send to the module. */
static int parse_header(const unsigned char *body, size_t len, struct tf_msg *msg, const char **why)
{
	if (len < TF_MIN_FRAME || len > TF_MAX_FRAME) {
		*why = "bad frame length";
		return -1;
	}
	if (body[0] != TF_VERSION) {
		*why = "unsupported protocol version";
		return -1;
	}
	msg->type = body[1];
	switch (msg->type) {
	case TF_PROMPT_ECHO_OFF:
	case TF_PROMPT_ECHO_ON:
	case TF_INFO:
	case TF_ERROR_MSG:
	case TF_VERDICT:
	case TF_PROTOCOL_ERROR:
		return 0;
	default:
		*why = "unexpected message type";
		return -1;
	}
}

/* One known field, inside the frame: checked, then kept in *msg. */
static int parse_known_field(uint8_t tag, const unsigned char *value, size_t flen, size_t bound, uint32_t capabilities,
			     struct tf_msg *msg, const char **why)
{
	if (flen > bound) {
		*why = "field longer than its bound";
		return -1;
	}
	if (tag_is_text(tag) && !tf_text_ok(value, flen)) {
		*why = "text field with NUL or invalid UTF-8";
		return -1;
	}
	/* Checked above like any field, then refused: a daemon that
	 * sends a field where none belongs does not speak our protocol. */
	if (!tag_declared(tag, capabilities)) {
		*why = "PAYLOAD, which needs BINARY_PAYLOAD, a capability this module did not declare";
		return -1;
	}
	if (!tag_listed(msg->type, tag)) {
		*why = "a known field the message type does not list";
		return -1;
	}
	if (tag == TF_TAG_TEXT) {
		msg->text = value;
		msg->text_len = flen;
		msg->has_text = 1;
	} else if (tag == TF_TAG_PAYLOAD) {
		msg->payload = value;
		msg->payload_len = flen;
		msg->has_payload = 1;
	} else if (tag == TF_TAG_RESULT) {
		if (flen != 1) {
			*why = "RESULT is not one byte";
			return -1;
		}
		msg->result = value[0];
		msg->has_result = 1;
	}
	return 0;
}

/* The fields each type requires, and a known verdict code. */
static int check_required(const struct tf_msg *msg, const char **why)
{
	switch (msg->type) {
	case TF_PROMPT_ECHO_OFF:
	case TF_PROMPT_ECHO_ON:
	case TF_INFO:
	case TF_ERROR_MSG:
		if (!msg->has_text) {
			*why = "message without TEXT";
			return -1;
		}
		return 0;
	case TF_VERDICT:
		if (!msg->has_result) {
			*why = "VERDICT without RESULT";
			return -1;
		}
		if (msg->result > TF_RESULT_DENIED) {
			*why = "unknown verdict code";
			return -1;
		}
		return 0;
	default:
		return 0; /* PROTOCOL_ERROR: TEXT is optional here */
	}
}

int tf_parse(const unsigned char *body, size_t len, uint32_t capabilities, struct tf_msg *msg, const char **why)
{
	unsigned char seen[256];
	size_t pos = TF_MIN_FRAME;

	memset(msg, 0, sizeof(*msg));
	memset(seen, 0, sizeof(seen));
	if (parse_header(body, len, msg, why) != 0)
		return -1;
	while (pos < len) {
		size_t flen, bound;
		int known;
		uint8_t tag;

		if (len - pos < TF_FIELD_HEADER) {
			*why = "truncated field header";
			return -1;
		}
		tag = body[pos];
		flen = ((size_t)body[pos + 1] << 8) | body[pos + 2];
		pos += TF_FIELD_HEADER;
		if (flen > len - pos) {
			*why = "field runs past the end of the frame";
			return -1;
		}
		pos += flen;
		bound = tag_bound(tag, &known);
		if (!known)
			continue; /* room for later versions */
		if (seen[tag]) {
			*why = "duplicate field";
			return -1;
		}
		seen[tag] = 1;
		if (parse_known_field(tag, body + pos - flen, flen, bound, capabilities, msg, why) != 0)
			return -1;
	}
	return check_required(msg, why);
}

/* ------------------------------------------------------------------ */
/* The key step                                                        */

/* A cursor over a key request: every read checks what is left first. */
struct reader {
	const unsigned char *p;
	size_t left;
};

static int take(struct reader *r, size_t n, const unsigned char **out)
{
	if (r->left < n)
		return -1;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

static int take_u8(struct reader *r, uint32_t *v)
{
	const unsigned char *b;

	if (take(r, 1, &b) != 0)
		return -1;
	*v = b[0];
	return 0;
}

static int take_be(struct reader *r, size_t n, uint32_t *v)
{
	const unsigned char *b;

	if (take(r, n, &b) != 0)
		return -1;
	*v = 0;
	for (size_t i = 0; i < n; i++)
		*v = (*v << 8) | b[i];
	return 0;
}

/* A u8-prefixed text of min..255 bytes, copied NUL-terminated into out[256]. */
static int take_text(struct reader *r, size_t min, char out[256], const char **why, const char *what)
{
	const unsigned char *b;
	uint32_t n;

	if (take_u8(r, &n) != 0 || take(r, n, &b) != 0) {
		*why = what;
		return -1;
	}
	if (n < min || !tf_text_ok(b, n)) {
		*why = what;
		return -1;
	}
	memcpy(out, b, n);
	out[n] = '\0';
	return 0;
}

/* magic, version, flags, timeout. */
static int take_key_header(struct reader *r, struct tf_key_request *req, const char **why)
{
	uint32_t magic, version, flags;

	if (take_u8(r, &magic) != 0 || take_u8(r, &version) != 0 || take_u8(r, &flags) != 0 ||
	    take_be(r, 4, &req->timeout_ms) != 0) {
		*why = "key request: truncated header";
		return -1;
	}
	if (magic != TF_KEY_REQUEST_MAGIC || version != TF_KEY_VERSION) {
		*why = "key request: bad magic or version";
		return -1;
	}
	if ((flags & TF_KEY_FLAG_UP) == 0 || (flags & ~(TF_KEY_FLAG_UP | TF_KEY_FLAG_UV)) != 0) {
		*why = "key request: bad flags (user presence unset, or an unknown bit)";
		return -1;
	}
	if (req->timeout_ms < TF_KEY_MIN_TIMEOUT_MS || req->timeout_ms > TF_KEY_MAX_TIMEOUT_MS) {
		*why = "key request: timeout out of range";
		return -1;
	}
	req->require_uv = (flags & TF_KEY_FLAG_UV) != 0;
	return 0;
}

/* n_creds, then each u16-prefixed credential id. */
static int take_creds(struct reader *r, struct tf_key_request *req, const char **why)
{
	uint32_t n;

	if (take_u8(r, &n) != 0 || n < 1 || n > TF_KEY_MAX_CREDS) {
		*why = "key request: missing, no or too many credential ids";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t id_len;

		if (take_be(r, 2, &id_len) != 0 || id_len < 1 || id_len > TF_KEY_MAX_CRED_ID ||
		    take(r, id_len, &req->creds[i].id) != 0) {
			*why = "key request: bad credential id";
			return -1;
		}
		req->creds[i].len = id_len;
	}
	req->n_creds = n;
	return 0;
}

int tf_parse_key_request(const unsigned char *p, size_t len, struct tf_key_request *req, const char **why)
{
	struct reader r = { .p = p, .left = len };

	memset(req, 0, sizeof(*req));
	if (p == NULL || len > TF_BOUND_PAYLOAD) {
		*why = "key request: empty or over the PAYLOAD bound";
		return -1;
	}
	if (take_key_header(&r, req, why) != 0 ||
	    take_text(&r, 1, req->rp_id, why, "key request: bad rp id") != 0)
		return -1;
	if (take(&r, TF_KEY_HASH_LEN, &req->client_data_hash) != 0) {
		*why = "key request: truncated client data hash";
		return -1;
	}
	if (take_creds(&r, req, why) != 0 ||
	    take_text(&r, 0, req->pin_prompt, why, "key request: bad pin prompt") != 0)
		return -1;
	if (r.left != 0) {
		*why = "key request: trailing bytes";
		return -1;
	}
	return 0;
}

static void put_u16_value(unsigned char **w, const unsigned char *v, size_t n)
{
	(*w)[0] = (unsigned char)(n >> 8);
	(*w)[1] = (unsigned char)n;
	memcpy(*w + 2, v, n);
	*w += 2 + n;
}

size_t tf_key_response(unsigned char *buf, size_t size, uint8_t status, int32_t fido_error, const unsigned char *cred_id,
		       size_t cred_id_len, const unsigned char *auth_data, size_t auth_data_len, const unsigned char *sig,
		       size_t sig_len)
{
	unsigned char *w = buf;
	uint32_t e = (uint32_t)fido_error;

	if (size < TF_KEY_RESPONSE_MAX)
		return 0;
	if (status == 0 && (cred_id_len < 1 || cred_id_len > TF_KEY_MAX_CRED_ID || auth_data_len < TF_KEY_MIN_AUTH_DATA ||
			    auth_data_len > TF_KEY_MAX_AUTH_DATA || sig_len < 1 || sig_len > TF_KEY_MAX_SIG))
		return 0;
	w[0] = TF_KEY_RESPONSE_MAGIC;
	w[1] = TF_KEY_VERSION;
	w[2] = status;
	w[3] = (unsigned char)(e >> 24);
	w[4] = (unsigned char)(e >> 16);
	w[5] = (unsigned char)(e >> 8);
	w[6] = (unsigned char)e;
	w += 7;
	if (status == 0) {
		put_u16_value(&w, cred_id, cred_id_len);
		put_u16_value(&w, auth_data, auth_data_len);
		put_u16_value(&w, sig, sig_len);
	}
	return (size_t)(w - buf);
}
