/*
 * wire_test - the key step's bytes in twofold_wire.c: tf_parse_key_request
 * with good and bad payloads (every truncation, every bound, random
 * mutations), tf_key_response, and tf_parse's rules for PAYLOAD.
 * Exits 0 when every check passes; prints each failure.  Build it with
 * -fsanitize=address,undefined to have the mutations checked for overreads.
 */
#include "twofold_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...) \
	do { \
		if (!(cond)) { \
			failures++; \
			printf("FAIL %s:%d: ", __FILE__, __LINE__); \
			printf(__VA_ARGS__); \
			printf("\n"); \
		} \
	} while (0)

/* A key request under construction. */
struct buf {
	unsigned char b[16384];
	size_t n;
};

static void put8(struct buf *p, unsigned v)
{
	p->b[p->n++] = (unsigned char)v;
}

static void put16(struct buf *p, unsigned v)
{
	put8(p, v >> 8);
	put8(p, v & 0xff);
}

static void put32(struct buf *p, unsigned long v)
{
	put16(p, (unsigned)(v >> 16));
	put16(p, (unsigned)(v & 0xffff));
}

static void putn(struct buf *p, const void *v, size_t n)
{
	memcpy(p->b + p->n, v, n);
	p->n += n;
}

static void putfill(struct buf *p, unsigned char c, size_t n)
{
	memset(p->b + p->n, c, n);
	p->n += n;
}

/* What a request holds; build() writes it in the wire's order. */
struct spec {
	unsigned magic, version, flags;
	unsigned long timeout;
	const char *rp;
	size_t n_creds, id_len;
	const char *pin_prompt;
};

static struct spec good(void)
{
	struct spec s = { 0x4b, 1, 0x03, 30000, "pam://example.com", 2, 64, "PIN for your key: " };
	return s;
}

static struct buf build(struct spec s)
{
	struct buf p = { .n = 0 };

	put8(&p, s.magic);
	put8(&p, s.version);
	put8(&p, s.flags);
	put32(&p, s.timeout);
	put8(&p, (unsigned)strlen(s.rp));
	putn(&p, s.rp, strlen(s.rp));
	putfill(&p, 0xcd, 32);
	put8(&p, (unsigned)s.n_creds);
	for (size_t i = 0; i < s.n_creds; i++) {
		put16(&p, (unsigned)s.id_len);
		putfill(&p, (unsigned char)(0x10 + i), s.id_len);
	}
	put8(&p, (unsigned)strlen(s.pin_prompt));
	putn(&p, s.pin_prompt, strlen(s.pin_prompt));
	return p;
}

static int parses(const struct buf *p, struct tf_key_request *req, const char **why)
{
	*why = NULL;
	return tf_parse_key_request(p->b, p->n, req, why) == 0;
}

static void refused(const char *name, struct buf p)
{
	struct tf_key_request req;
	const char *why;

	CHECK(!parses(&p, &req, &why), "%s: accepted", name);
	CHECK(why != NULL && strncmp(why, "key request: ", 13) == 0, "%s: no reason", name);
}

static void test_good(void)
{
	struct tf_key_request req;
	const char *why;
	struct spec s = good();
	struct buf p = build(s);

	CHECK(parses(&p, &req, &why), "good request refused: %s", why);
	CHECK(req.require_uv == 1 && req.timeout_ms == 30000, "uv %d timeout %u", req.require_uv, (unsigned)req.timeout_ms);
	CHECK(strcmp(req.rp_id, "pam://example.com") == 0, "rp id %s", req.rp_id);
	CHECK(req.client_data_hash == p.b + 8 + strlen(s.rp) && req.client_data_hash[0] == 0xcd, "hash");
	CHECK(req.n_creds == 2 && req.creds[1].len == 64 && req.creds[1].id[0] == 0x11, "creds");
	CHECK(strcmp(req.pin_prompt, "PIN for your key: ") == 0, "pin prompt %s", req.pin_prompt);

	s.flags = 0x02; /* presence only */
	s.pin_prompt = "";
	p = build(s);
	CHECK(parses(&p, &req, &why) && req.require_uv == 0 && req.pin_prompt[0] == '\0', "no uv, no pin prompt: %s", why);

	s = good();
	s.timeout = 1000;
	p = build(s);
	CHECK(parses(&p, &req, &why), "timeout 1000: %s", why);
	s.timeout = 120000;
	p = build(s);
	CHECK(parses(&p, &req, &why), "timeout 120000: %s", why);

	s = good();
	s.n_creds = 16;
	s.id_len = 1;
	p = build(s);
	CHECK(parses(&p, &req, &why) && req.n_creds == 16 && req.creds[15].id[0] == 0x1f, "16 creds: %s", why);
}

/* Lengths at their bounds: 255-byte texts, 1023-byte ids, a payload of exactly 8192 bytes. */
static void test_bounds(void)
{
	struct tf_key_request req;
	const char *why;
	char rp[256], prompt[256];
	struct spec s = good();
	struct buf p;
	size_t k;

	memset(rp, 'r', 255);
	rp[255] = '\0';
	memset(prompt, 'p', 255);
	prompt[255] = '\0';
	s.rp = rp;
	s.pin_prompt = prompt;
	s.n_creds = 7;
	s.id_len = 1023;
	p = build(s);
	CHECK(parses(&p, &req, &why) && strlen(req.rp_id) == 255 && strlen(req.pin_prompt) == 255, "255-byte texts: %s", why);

	/* Eight 1000-byte ids, and a pin prompt that brings the total to 8192, then 8193. */
	s = good();
	s.n_creds = 8;
	s.id_len = 1000;
	s.pin_prompt = "";
	k = 8192 - build(s).n;
	CHECK(k < 255, "setup: %zu", k);
	prompt[k] = '\0';
	s.pin_prompt = prompt;
	p = build(s);
	CHECK(p.n == 8192 && parses(&p, &req, &why), "exactly 8192 bytes: %zu, %s", p.n, why);
	prompt[k] = 'p';
	prompt[k + 1] = '\0';
	p = build(s);
	CHECK(p.n == 8193, "setup: %zu", p.n);
	refused("8193 bytes", p);
}

static void test_bad(void)
{
	struct spec s;
	struct buf p;
	char bad[4] = { (char)0xc3, (char)0x28, 0, 0 }; /* invalid UTF-8 */

	refused("empty", (struct buf){ .n = 0 });
	s = good(), s.magic = 0x6b, refused("response magic", build(s));
	s = good(), s.version = 2, refused("version 2", build(s));
	s = good(), s.version = 0, refused("version 0", build(s));
	s = good(), s.flags = 0x01, refused("no presence flag", build(s));
	s = good(), s.flags = 0x00, refused("no flags", build(s));
	s = good(), s.flags = 0x07, refused("unknown flag bit", build(s));
	s = good(), s.flags = 0x83, refused("high flag bit", build(s));
	s = good(), s.timeout = 999, refused("timeout 999", build(s));
	s = good(), s.timeout = 120001, refused("timeout 120001", build(s));
	s = good(), s.timeout = 0, refused("timeout 0", build(s));
	s = good(), s.timeout = 0xffffffffUL, refused("timeout 2^32-1", build(s));
	s = good(), s.rp = "", refused("empty rp id", build(s));
	s = good(), s.rp = bad, refused("rp id not UTF-8", build(s));
	s = good(), s.pin_prompt = bad, refused("pin prompt not UTF-8", build(s));
	s = good(), s.n_creds = 0, refused("no credential", build(s));
	s = good(), s.n_creds = 17, s.id_len = 1, refused("17 credentials", build(s));
	s = good(), s.id_len = 0, refused("empty credential id", build(s));
	s = good(), s.n_creds = 1, s.id_len = 1024, refused("1024-byte credential id", build(s));

	/* A NUL inside the rp id and inside the pin prompt. */
	p = build(good());
	p.b[8] = 0;
	refused("NUL in rp id", p);
	p = build(good());
	p.b[p.n - 1] = 0;
	refused("NUL in pin prompt", p);
	/* A trailing byte. */
	p = build(good());
	put8(&p, 0);
	refused("trailing byte", p);
	/* An rp id length running past the end. */
	p = build(good());
	p.n = 8;
	p.b[7] = 200;
	refused("rp id past the end", p);
	/* A credential id length running past the end. */
	s = good(), s.n_creds = 1, s.id_len = 4, p = build(s);
	p.b[7 + 1 + 17 + 32 + 1] = 0x03; /* u16 id_len = 0x03xx, far past the end */
	refused("credential id past the end", p);
	/* The pin prompt's length running past the end. */
	p = build(good());
	p.b[p.n - 19] = 19;
	refused("pin prompt past the end", p);

	/* Every proper prefix of a good request is truncated somewhere. */
	p = build(good());
	for (size_t n = 0; n < p.n; n++) {
		struct buf q = p;
		char name[64];

		q.n = n;
		snprintf(name, sizeof(name), "prefix of %zu bytes", n);
		refused(name, q);
	}
}

/* Random mutations: no crash, no overread (under ASan), and whatever is accepted is sane. */
static void test_mutations(void)
{
	struct buf base = build(good());
	unsigned seed = 12345;

	for (int i = 0; i < 200000; i++) {
		struct tf_key_request req;
		const char *why;
		size_t n = base.n;
		unsigned char *copy;
		int flips;

		seed = seed * 1103515245u + 12345u;
		n = (seed >> 8) % 3 == 0 ? (seed >> 12) % (base.n + 1) : base.n;
		copy = malloc(n + 1); /* exact size: ASan sees any overread */
		memcpy(copy, base.b, n);
		flips = 1 + (int)((seed >> 16) % 4);
		for (int f = 0; f < flips && n > 0; f++) {
			seed = seed * 1103515245u + 12345u;
			copy[(seed >> 8) % n] = (unsigned char)(seed >> 20);
		}
		if (tf_parse_key_request(copy, n, &req, &why) == 0) {
			CHECK(req.n_creds >= 1 && req.n_creds <= 16 && req.rp_id[0] != '\0' && req.timeout_ms >= 1000 &&
				      req.timeout_ms <= 120000,
			      "mutation %d accepted something insane", i);
			for (size_t c = 0; c < req.n_creds; c++)
				CHECK(req.creds[c].id >= copy && req.creds[c].id + req.creds[c].len <= copy + n,
				      "mutation %d: id outside the payload", i);
		}
		free(copy);
	}
}

static void test_response(void)
{
	unsigned char out[TF_KEY_RESPONSE_MAX], id[1023], ad[1024], sig[512];
	size_t n;

	memset(id, 0xaa, sizeof(id));
	memset(ad, 0xbb, sizeof(ad));
	memset(sig, 0xcc, sizeof(sig));
	n = tf_key_response(out, sizeof(out), 0, 0, id, 16, ad, 37, sig, 70);
	CHECK(n == 7 + 2 + 16 + 2 + 37 + 2 + 70, "OK response length %zu", n);
	CHECK(out[0] == 0x6b && out[1] == 1 && out[2] == 0 && out[7] == 0 && out[8] == 16 && out[9] == 0xaa, "OK header");
	CHECK(out[25] == 0 && out[26] == 37 && out[27] == 0xbb && out[64] == 0 && out[65] == 70 && out[66] == 0xcc, "OK fields");
	n = tf_key_response(out, sizeof(out), 0, 0, id, 1023, ad, 1024, sig, 512);
	CHECK(n == TF_KEY_RESPONSE_MAX, "response at every bound: %zu", n);
	n = tf_key_response(out, sizeof(out), 4, -2, NULL, 0, NULL, 0, NULL, 0);
	CHECK(n == 7 && out[2] == 4 && out[3] == 0xff && out[4] == 0xff && out[5] == 0xff && out[6] == 0xfe,
	      "timeout response with FIDO_ERR_RX: %zu", n);
	n = tf_key_response(out, sizeof(out), 3, 0x2e, id, 16, ad, 37, sig, 70);
	CHECK(n == 7 && out[6] == 0x2e, "a failed status carries no values: %zu", n);
	CHECK(tf_key_response(out, sizeof(out), 0, 0, id, 0, ad, 37, sig, 70) == 0, "empty id accepted");
	CHECK(tf_key_response(out, sizeof(out), 0, 0, id, 1024, ad, 37, sig, 70) == 0, "1024-byte id accepted");
	CHECK(tf_key_response(out, sizeof(out), 0, 0, id, 16, ad, 36, sig, 70) == 0, "36-byte authData accepted");
	CHECK(tf_key_response(out, sizeof(out), 0, 0, id, 16, ad, 1025, sig, 70) == 0, "1025-byte authData accepted");
	CHECK(tf_key_response(out, sizeof(out), 0, 0, id, 16, ad, 37, sig, 0) == 0, "empty signature accepted");
	CHECK(tf_key_response(out, sizeof(out), 0, 0, id, 16, ad, 37, sig, 513) == 0, "513-byte signature accepted");
	CHECK(tf_key_response(out, sizeof(out) - 1, 3, 0, NULL, 0, NULL, 0, NULL, 0) == 0, "a short buffer accepted");
}

/* A frame: version 1, type, then fields. */
static size_t frame(unsigned char *f, unsigned type, unsigned payload_tag_len, int with_text)
{
	size_t n = 0;

	f[n++] = 1;
	f[n++] = (unsigned char)type;
	if (with_text) {
		f[n++] = TF_TAG_TEXT, f[n++] = 0, f[n++] = 2, f[n++] = 'h', f[n++] = 'i';
	}
	f[n++] = TF_TAG_PAYLOAD, f[n++] = (unsigned char)(payload_tag_len >> 8), f[n++] = (unsigned char)payload_tag_len;
	memset(f + n, 0x4b, payload_tag_len);
	return n + payload_tag_len;
}

static void test_parse_payload(void)
{
	unsigned char f[16];
	struct tf_msg m;
	const char *why = NULL;
	const uint32_t declared = TF_CAP_BINARY_PAYLOAD | TF_CAP_FIDO2;
	size_t n = frame(f, TF_PROMPT_ECHO_OFF, 3, 1);

	CHECK(tf_parse(f, n, declared, &m, &why) == 0 && m.has_payload && m.payload_len == 3 && m.payload[0] == 0x4b,
	      "PAYLOAD in PROMPT_ECHO_OFF, declared: %s", why);
	CHECK(tf_parse(f, n, 0, &m, &why) != 0 && strstr(why, "did not declare") != NULL, "undeclared PAYLOAD accepted");
	CHECK(tf_parse(f, n, TF_CAP_FIDO2, &m, &why) != 0, "PAYLOAD accepted with FIDO2 but no BINARY_PAYLOAD");
	n = frame(f, TF_PROMPT_ECHO_ON, 3, 1);
	CHECK(tf_parse(f, n, declared, &m, &why) != 0 && strstr(why, "does not list") != NULL, "PAYLOAD in ECHO_ON accepted");
	n = frame(f, TF_INFO, 1, 1);
	CHECK(tf_parse(f, n, declared, &m, &why) != 0, "PAYLOAD in INFO accepted");
	n = frame(f, TF_VERDICT, 1, 0);
	CHECK(tf_parse(f, n, declared, &m, &why) != 0, "PAYLOAD in VERDICT accepted");
	n = frame(f, TF_PROMPT_ECHO_OFF, 0, 0);
	CHECK(tf_parse(f, n, declared, &m, &why) != 0 && strstr(why, "without TEXT") != NULL, "a key prompt without TEXT");
}

int main(void)
{
	test_good();
	test_bounds();
	test_bad();
	test_mutations();
	test_response();
	test_parse_payload();
	if (failures != 0) {
		printf("wire_test: %d failure(s)\n", failures);
		return 1;
	}
	printf("wire_test: OK\n");
	return 0;
}
