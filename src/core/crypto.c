/* Digests, HMAC, hex and base64 (crypto.h). */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "crypto.h"

int crypto_digest(const EVP_MD *md, const void *s, size_t n, unsigned char *out)
{
	unsigned int len = 0;

	return EVP_Digest(s, n, out, &len, md, NULL) ? (int)len : -1;
}

/* OpenSSL 3's HMAC() looks the MAC and the digest up in its providers
 * at every call, most of a signature's cost; a context kept for each
 * digest is only given the new key. */
static EVP_MAC_CTX *mac_for(const EVP_MD *md)
{
	static struct {
		const EVP_MD *md;
		EVP_MAC_CTX *ctx;
	} kept[4];
	static EVP_MAC *mac;
	OSSL_PARAM params[2] = { OSSL_PARAM_END, OSSL_PARAM_END };
	size_t i;

	for (i = 0; i < 4 && kept[i].md; i++)
		if (kept[i].md == md)
			return kept[i].ctx;
	if (i == 4 || !EVP_MAC_fetch || !EVP_MD_get0_name)
		return NULL;
	if (!mac && !(mac = EVP_MAC_fetch(NULL, "HMAC", NULL)))
		return NULL;
	params[0] = (OSSL_PARAM){ OSSL_MAC_PARAM_DIGEST, OSSL_PARAM_UTF8_STRING,
				  (void *)EVP_MD_get0_name(md), 0,
				  OSSL_PARAM_UNMODIFIED };
	params[0].data_size = strlen(params[0].data);
	kept[i].ctx = EVP_MAC_CTX_new(mac);
	if (!kept[i].ctx || !EVP_MAC_CTX_set_params(kept[i].ctx, params))
		return NULL; /* HMAC() does it, then */
	kept[i].md = md;
	return kept[i].ctx;
}

/* The first fetch fills OpenSSL's tables of names and methods, about
 * 1.5 ms; preload.c has it done on one of its threads. Until it is
 * done, only the thread doing it touches mac_for's table. */
static pthread_once_t warm_once = PTHREAD_ONCE_INIT;
static void warm(void) { mac_for(EVP_sha256()); }

void crypto_warm(void)
{
	if (!lazy_crypto())
		pthread_once(&warm_once, warm);
}

int crypto_hmac(const EVP_MD *md, const void *key, size_t klen, const void *msg,
		size_t mlen, unsigned char *out)
{
	EVP_MAC_CTX *ctx;
	unsigned int len = 0;
	size_t n = 0;

	pthread_once(&warm_once, warm);
	ctx = mac_for(md);

	/* A NULL key means "the last one" to both; an empty key must stay
	 * empty. */
	if (!klen)
		key = "";
	if (ctx)
		return EVP_MAC_init(ctx, key, klen, NULL) &&
				       EVP_MAC_update(ctx, msg, mlen) &&
				       EVP_MAC_final(ctx, out, &n,
						     EVP_MAX_MD_SIZE)
			       ? (int)n
			       : -1;
	if (!HMAC(md, key, (int)klen, msg, mlen, out, &len))
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
