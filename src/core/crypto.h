/* Digests, HMAC, hex and base64 on OpenSSL (loaded lazily: call
 * lazy_crypto first). Without Lua; trainctl.crypto and trainctl.sign are
 * bindings of these. */
#ifndef TRAINCTL_CRYPTO_H
#define TRAINCTL_CRYPTO_H

#include <stddef.h>

#include "lazy.h"

/* Space for the base64 of n bytes, its terminating NUL included. */
#define CRYPTO_BASE64_SIZE(n) (4 * (((n) + 2) / 3) + 1)

/* Each writes at most EVP_MAX_MD_SIZE bytes; the length, or -1. */
int crypto_digest(const EVP_MD *md, const void *s, size_t n,
		  unsigned char *out);
int crypto_hmac(const EVP_MD *md, const void *key, size_t klen, const void *msg,
		size_t mlen, unsigned char *out);
/* Loads libcrypto and readies HMAC-SHA256, which crypto_hmac would do at
 * its first call; from any thread. */
void crypto_warm(void);

/* Lower-case hex: 2n characters. */
void crypto_hex(const unsigned char *s, size_t n, char *out);
/* n/2 bytes; -1 for an odd length, -2 for a bad digit (at *bad). */
int crypto_unhex(const char *s, size_t n, unsigned char *out, size_t *bad);

/* RFC 4648 standard alphabet, padded; the length written (no NUL). */
size_t crypto_base64(const void *s, size_t n, char *out);
/* At most n/4*3 bytes; the length, or -1 unless `s` is the one canonical
 * encoding of some bytes. */
long crypto_unbase64(const char *s, size_t n, unsigned char *out);

#endif
