/* Digests, HMAC, hex and base64 (crypto.h). */
#include <openssl/hmac.h>

#include "crypto.h"

int crypto_digest(const EVP_MD *md, const void *s, size_t n, unsigned char *out)
{
	unsigned int len = 0;

	return EVP_Digest(s, n, out, &len, md, NULL) ? (int)len : -1;
}

int crypto_hmac(const EVP_MD *md, const void *key, size_t klen, const void *msg,
		size_t mlen, unsigned char *out)
{
	unsigned int len = 0;

	/* HMAC() treats a NULL key as "reuse"; an empty key must stay empty. */
	if (!HMAC(md, klen ? key : "", (int)klen, msg, mlen, out, &len))
		return -1;
	return (int)len;
}

void crypto_hex(const unsigned char *s, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[s[i] >> 4];
		out[2 * i + 1] = digits[s[i] & 15];
	}
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int crypto_unhex(const char *s, size_t n, unsigned char *out, size_t *bad)
{
	size_t i;

	if (n % 2)
		return -1;
	for (i = 0; i < n; i += 2) {
		int hi = hexval((unsigned char)s[i]);
		int lo = hexval((unsigned char)s[i + 1]);
		if (hi < 0 || lo < 0) {
			*bad = hi < 0 ? i : i + 1;
			return -2;
		}
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

size_t crypto_base64(const void *s, size_t n, char *out)
{
	return (size_t)EVP_EncodeBlock((unsigned char *)out, s, (int)n);
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* EVP_DecodeBlock accepts some invalid input (no padding check, trailing
 * garbage after '='), so the shape is validated first: RFC 4648 standard
 * alphabet, length a multiple of four, at most two '=' and only at the
 * end, and zero pad bits, so that every byte string has exactly one
 * accepted encoding (RFC 4648 section 3.5). */
static int b64_valid(const char *s, size_t len, size_t *pad)
{
	size_t i;
	int last = 0;

	*pad = 0;
	if (len % 4)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '=') {
			if (i < len - 2)
				return 0;
			(*pad)++;
		} else if (*pad || (last = b64_value(c)) < 0) {
			return 0;
		}
	}
	if (*pad == 1 && (last & 0x3))
		return 0;
	if (*pad == 2 && (last & 0xf))
		return 0;
	return 1;
}

long crypto_unbase64(const char *s, size_t n, unsigned char *out)
{
	size_t pad;
	int len;

	if (!b64_valid(s, n, &pad))
		return -1;
	if (n == 0)
		return 0;
	len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	return len < 0 ? -1 : (long)((size_t)len - pad);
}
