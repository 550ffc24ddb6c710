/*
 * fuzz_wire - libFuzzer target for the module's wire parser (twofold_wire.c).
 *
 * The input is what the daemon sends the module: a byte stream of
 * length-prefixed frames (fuzz/corpus/wire holds real ones).  Each input is
 *
 *   1. consumed frame by frame the way pam_twofold.c's read_frame does
 *      (tf_get_length, tf_length_ok before any allocation, the body copied
 *      into a buffer of exactly its length so that an overread is caught),
 *      each body checked by tf_parse with the capabilities the module
 *      declares with and without FIDO2, and each PAYLOAD it lets through
 *      parsed as the key step's request, as key_step does;
 *   2. taken whole as one frame body, through tf_parse with every
 *      capability set;
 *   3. taken whole as a key request (tf_parse_key_request);
 *   4. taken whole as text for tf_text_ok, against a reference decoder.
 *
 * Besides the sanitizers it checks what the callers rely on, and aborts when
 * a check fails: an accepted frame has a type the module receives, fields
 * inside the body, valid text, PAYLOAD only as declared and only in
 * PROMPT_ECHO_OFF, a known verdict; an accepted key request is exactly the
 * canonical encoding of what was parsed (no byte skipped or reinterpreted);
 * tf_text_ok agrees with the reference.
 *
 * Built by `make -C pam fuzz` (clang, -fsanitize=fuzzer,address,undefined);
 * replayed without libFuzzer by tests/fuzz_replay_wire in `make -C pam check`.
 */
#include "twofold_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond, what) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_wire: invariant broken: %s (%s:%d)\n", what, __FILE__, __LINE__); \
			abort(); \
		} \
	} while (0)

/* The module's receive loop stops after this many messages (MAX_MESSAGES in pam_twofold.c). */
#define STREAM_MESSAGES 64

/* Reference UTF-8 check (Unicode 15, table 3-7), written differently from tf_text_ok on purpose. */
static int reference_text_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char a = s[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t more;

		if (a == 0)
			return 0;
		if (a <= 0x7f) {
			i++;
			continue;
		}
		if (a >= 0xc2 && a <= 0xdf)
			more = 1;
		else if (a == 0xe0)
			more = 2, lo = 0xa0;
		else if ((a >= 0xe1 && a <= 0xec) || a == 0xee || a == 0xef)
			more = 2;
		else if (a == 0xed)
			more = 2, hi = 0x9f;
		else if (a == 0xf0)
			more = 3, lo = 0x90;
		else if (a >= 0xf1 && a <= 0xf3)
			more = 3;
		else if (a == 0xf4)
			more = 3, hi = 0x8f;
		else
			return 0;
		if (more > len - i - 1)
			return 0; /* cut short */
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= more; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += more + 1;
	}
	return 1;
}

static int within(const unsigned char *p, size_t n, const unsigned char *base, size_t len)
{
	return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

/* What the callers of tf_parse rely on, for an accepted frame. */
static void check_msg(const struct tf_msg *m, const unsigned char *body, size_t len, uint32_t caps)
{
	switch (m->type) {
	case TF_PROMPT_ECHO_OFF:
	case TF_PROMPT_ECHO_ON:
	case TF_INFO:
	case TF_ERROR_MSG:
		REQUIRE(m->has_text, "a prompt or message without TEXT accepted");
		break;
	case TF_VERDICT:
		REQUIRE(m->has_result && m->result <= TF_RESULT_DENIED, "a VERDICT without a known RESULT accepted");
		break;
	case TF_PROTOCOL_ERROR:
		break;
	default:
		REQUIRE(0, "a message type the module does not receive accepted");
	}
	if (m->has_text) {
		REQUIRE(within(m->text, m->text_len, body, len), "TEXT outside the frame");
		REQUIRE(m->text_len <= TF_BOUND_TEXT, "TEXT over its bound");
		REQUIRE(reference_text_ok(m->text, m->text_len), "TEXT that is not UTF-8 without NUL accepted");
	}
	if (m->has_payload) {
		REQUIRE(caps & TF_CAP_BINARY_PAYLOAD, "PAYLOAD accepted without BINARY_PAYLOAD declared");
		REQUIRE(m->type == TF_PROMPT_ECHO_OFF, "PAYLOAD accepted outside PROMPT_ECHO_OFF");
		REQUIRE(within(m->payload, m->payload_len, body, len), "PAYLOAD outside the frame");
		REQUIRE(m->payload_len <= TF_BOUND_PAYLOAD, "PAYLOAD over its bound");
	}
}

/* An accepted key request, encoded again: it must give back the input, byte for byte. */
static void check_key_request(const struct tf_key_request *req, const unsigned char *p, size_t len)
{
	unsigned char *out = malloc(TF_BOUND_PAYLOAD + 1);
	size_t n = 0, rp = strlen(req->rp_id), pin = strlen(req->pin_prompt);

	REQUIRE(out != NULL, "out of memory");
	REQUIRE(rp >= 1 && rp <= 255 && pin <= 255, "rp id or pin prompt length out of range");
	REQUIRE(req->n_creds >= 1 && req->n_creds <= TF_KEY_MAX_CREDS, "credential count out of range");
	REQUIRE(req->timeout_ms >= TF_KEY_MIN_TIMEOUT_MS && req->timeout_ms <= TF_KEY_MAX_TIMEOUT_MS, "timeout out of range");
	REQUIRE(within(req->client_data_hash, TF_KEY_HASH_LEN, p, len), "client data hash outside the payload");
	out[n++] = TF_KEY_REQUEST_MAGIC;
	out[n++] = TF_KEY_VERSION;
	out[n++] = (unsigned char)(TF_KEY_FLAG_UP | (req->require_uv ? TF_KEY_FLAG_UV : 0));
	out[n++] = (unsigned char)(req->timeout_ms >> 24);
	out[n++] = (unsigned char)(req->timeout_ms >> 16);
	out[n++] = (unsigned char)(req->timeout_ms >> 8);
	out[n++] = (unsigned char)req->timeout_ms;
	out[n++] = (unsigned char)rp;
	memcpy(out + n, req->rp_id, rp), n += rp;
	memcpy(out + n, req->client_data_hash, TF_KEY_HASH_LEN), n += TF_KEY_HASH_LEN;
	out[n++] = (unsigned char)req->n_creds;
	for (size_t i = 0; i < req->n_creds; i++) {
		const struct tf_key_cred *c = &req->creds[i];

		REQUIRE(c->len >= 1 && c->len <= TF_KEY_MAX_CRED_ID, "credential id length out of range");
		REQUIRE(within(c->id, c->len, p, len), "credential id outside the payload");
		REQUIRE(n + 2 + c->len <= len, "the request re-encodes longer than it was");
		out[n++] = (unsigned char)(c->len >> 8);
		out[n++] = (unsigned char)c->len;
		memcpy(out + n, c->id, c->len), n += c->len;
	}
	REQUIRE(n + 1 + pin <= len, "the request re-encodes longer than it was");
	out[n++] = (unsigned char)pin;
	memcpy(out + n, req->pin_prompt, pin), n += pin;
	REQUIRE(n == len && memcmp(out, p, len) == 0, "an accepted key request is not the canonical encoding of what was parsed");
	free(out);
}

static void parse_key_request(const unsigned char *p, size_t len)
{
	struct tf_key_request req;
	const char *why = NULL;

	if (tf_parse_key_request(p, len, &req, &why) == 0)
		check_key_request(&req, p, len);
	else
		REQUIRE(why != NULL, "a refused key request without a reason");
}

/* One body through tf_parse; its PAYLOAD through the key request parser. Returns 0 when accepted. */
static int parse_body(const unsigned char *body, size_t len, uint32_t caps)
{
	struct tf_msg m;
	const char *why = NULL;

	if (tf_parse(body, len, caps, &m, &why) != 0) {
		REQUIRE(why != NULL, "a refused frame without a reason");
		return -1;
	}
	check_msg(&m, body, len, caps);
	if (m.has_payload)
		parse_key_request(m.payload, m.payload_len);
	return 0;
}

/* The stream, as read_frame and read_message consume it. */
static void parse_stream(const unsigned char *data, size_t size, uint32_t caps)
{
	size_t pos = 0;

	for (int messages = 0; messages < STREAM_MESSAGES; messages++) {
		uint32_t len;
		unsigned char *body;
		int st;

		if (size - pos < TF_LENGTH_BYTES)
			return; /* EOF before a length word */
		len = tf_get_length(data + pos);
		pos += TF_LENGTH_BYTES;
		if (!tf_length_ok(len))
			return; /* malformed: the module fails the dialog before allocating */
		REQUIRE(len >= TF_MIN_FRAME && len <= TF_MAX_FRAME, "tf_length_ok let a bad length through");
		if (size - pos < len)
			return; /* EOF inside a frame */
		body = malloc(len); /* exactly its length, as read_frame allocates it */
		REQUIRE(body != NULL, "out of memory");
		memcpy(body, data + pos, len);
		pos += len;
		st = parse_body(body, len, caps);
		free(body);
		if (st != 0)
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t caps[] = {
		0, TF_CAP_BINARY_PAYLOAD, TF_CAP_BINARY_PAYLOAD | TF_CAP_FIDO2, TF_CAP_FIDO2, 0xffffffffu,
	};

	parse_stream(data, size, TF_CAP_BINARY_PAYLOAD | TF_CAP_FIDO2);
	parse_stream(data, size, 0);
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		parse_body(data, size, caps[i]);
	parse_key_request(data, size);
	REQUIRE(tf_text_ok(data, size) == reference_text_ok(data, size), "tf_text_ok disagrees with the reference UTF-8 check");
	return 0;
}
