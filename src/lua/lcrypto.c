/* trainctl.crypto: digests, HMAC, hex/base64 and random bytes on OpenSSL 3.
 * Digests return binary strings; callers hex- or base64-encode as the
 * signature scheme asks. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <lauxlib.h>

#include "host.h"
#include "lazy.h"

static int digest(lua_State *L, const EVP_MD *md)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(s, len, out, &n, md, NULL))
		return luaL_error(L, "digest failed");
	lua_pushlstring(L, (const char *)out, n);
	return 1;
}

static int l_sha256(lua_State *L) { return digest(L, EVP_sha256()); }
static int l_sha1(lua_State *L) { return digest(L, EVP_sha1()); }
static int l_md5(lua_State *L) { return digest(L, EVP_md5()); }

static int hmac(lua_State *L, const EVP_MD *md)
{
	size_t klen, mlen;
	const char *k = luaL_checklstring(L, 1, &klen);
	const char *m = luaL_checklstring(L, 2, &mlen);
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	/* HMAC() treats a NULL key as "reuse"; an empty key must stay empty. */
	if (!HMAC(md, klen ? k : "", (int)klen, (const unsigned char *)m, mlen,
		  out, &n))
		return luaL_error(L, "hmac failed");
	lua_pushlstring(L, (const char *)out, n);
	return 1;
}

static int l_hmac_sha256(lua_State *L) { return hmac(L, EVP_sha256()); }
static int l_hmac_sha1(lua_State *L) { return hmac(L, EVP_sha1()); }

static int l_hex_encode(lua_State *L)
{
	static const char digits[] = "0123456789abcdef";
	size_t len, i;
	const unsigned char *s =
		(const unsigned char *)luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, len * 2);

	for (i = 0; i < len; i++) {
		p[2 * i] = digits[s[i] >> 4];
		p[2 * i + 1] = digits[s[i] & 15];
	}
	luaL_pushresultsize(&b, len * 2);
	return 1;
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

static int l_hex_decode(lua_State *L)
{
	size_t len, i;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *p;

	if (len % 2) {
		luaL_pushfail(L);
		lua_pushliteral(L, "invalid hex: odd length");
		return 2;
	}
	p = luaL_buffinitsize(L, &b, len / 2);
	for (i = 0; i < len; i += 2) {
		int hi = hexval((unsigned char)s[i]);
		int lo = hexval((unsigned char)s[i + 1]);
		if (hi < 0 || lo < 0) {
			luaL_pushfail(L);
			lua_pushfstring(L, "invalid hex digit at offset %d",
					(int)(hi < 0 ? i : i + 1));
			return 2;
		}
		p[i / 2] = (char)(hi << 4 | lo);
	}
	luaL_pushresultsize(&b, len / 2);
	return 1;
}

static int l_base64_encode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	size_t cap = 4 * ((len + 2) / 3) + 1;
	char *p = luaL_buffinitsize(L, &b, cap);
	int n = EVP_EncodeBlock((unsigned char *)p, (const unsigned char *)s,
				(int)len);

	luaL_pushresultsize(&b, (size_t)n);
	return 1;
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

static int l_base64_decode(lua_State *L)
{
	size_t len, pad;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *p;
	int n;

	if (!b64_valid(s, len, &pad)) {
		luaL_pushfail(L);
		lua_pushliteral(L, "invalid base64");
		return 2;
	}
	if (len == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	p = luaL_buffinitsize(L, &b, len / 4 * 3);
	n = EVP_DecodeBlock((unsigned char *)p, (const unsigned char *)s,
			    (int)len);
	if (n < 0) {
		luaL_pushfail(L);
		lua_pushliteral(L, "invalid base64");
		return 2;
	}
	luaL_pushresultsize(&b, (size_t)n - pad);
	return 1;
}

static int l_random_bytes(lua_State *L)
{
	lua_Integer n = luaL_checkinteger(L, 1);
	luaL_Buffer b;
	char *p;

	luaL_argcheck(L, n >= 0 && n <= 1 << 20, 1, "out of range");
	p = luaL_buffinitsize(L, &b, (size_t)n);
	if (n > 0 && RAND_bytes((unsigned char *)p, (int)n) != 1)
		return luaL_error(L, "random_bytes: no entropy");
	luaL_pushresultsize(&b, (size_t)n);
	return 1;
}

/* Constant time in the content; the length is not secret. */
static int l_equal(lua_State *L)
{
	size_t la, lb;
	const char *a = luaL_checklstring(L, 1, &la);
	const char *b = luaL_checklstring(L, 2, &lb);

	lua_pushboolean(L, la == lb && CRYPTO_memcmp(a, b, la) == 0);
	return 1;
}

static const luaL_Reg funcs[] = { { "sha256", l_sha256 },
				  { "sha1", l_sha1 },
				  { "md5", l_md5 },
				  { "hmac_sha256", l_hmac_sha256 },
				  { "hmac_sha1", l_hmac_sha1 },
				  { "hex_encode", l_hex_encode },
				  { "hex_decode", l_hex_decode },
				  { "base64_encode", l_base64_encode },
				  { "base64_decode", l_base64_decode },
				  { "random_bytes", l_random_bytes },
				  { "equal", l_equal },
				  { NULL, NULL } };

int luaopen_trainctl_crypto(lua_State *L)
{
	const char *why = lazy_crypto();

	if (why)
		return luaL_error(L, "trainctl.crypto: %s", why);
	luaL_newlib(L, funcs);
	return 1;
}
