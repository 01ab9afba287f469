/* trainctl.crypto: digests, HMAC, hex/base64 and random bytes on OpenSSL 3.
 * Digests return binary strings; callers hex- or base64-encode as the
 * signature scheme asks. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <lauxlib.h>

#include "crypto.h"
#include "host.h"

static int digest(lua_State *L, const EVP_MD *md)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	unsigned char out[EVP_MAX_MD_SIZE];
	int n = crypto_digest(md, s, len, out);

	if (n < 0)
		return luaL_error(L, "digest failed");
	lua_pushlstring(L, (const char *)out, (size_t)n);
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
	int n = crypto_hmac(md, k, klen, m, mlen, out);

	if (n < 0)
		return luaL_error(L, "hmac failed");
	lua_pushlstring(L, (const char *)out, (size_t)n);
	return 1;
}

static int l_hmac_sha256(lua_State *L) { return hmac(L, EVP_sha256()); }
static int l_hmac_sha1(lua_State *L) { return hmac(L, EVP_sha1()); }

static int l_hex_encode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;

	crypto_hex((const unsigned char *)s, len,
		   luaL_buffinitsize(L, &b, len * 2));
	luaL_pushresultsize(&b, len * 2);
	return 1;
}

static int l_hex_decode(lua_State *L)
{
	size_t len, bad = 0;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	int rc = crypto_unhex(
		s, len, (unsigned char *)luaL_buffinitsize(L, &b, len / 2),
		&bad);

	if (rc == -1) {
		return host_fail(L, NULL, "invalid hex: odd length");
	}
	if (rc < 0) {
		return host_fail(L, NULL, "invalid hex digit at offset %d",
				 (int)bad);
	}
	luaL_pushresultsize(&b, len / 2);
	return 1;
}

static int l_base64_encode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, CRYPTO_BASE64_SIZE(len));

	luaL_pushresultsize(&b, crypto_base64(s, len, p));
	return 1;
}

static int l_base64_decode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, len / 4 * 3 + 1);
	long n = crypto_unbase64(s, len, (unsigned char *)p);

	if (n < 0) {
		return host_fail(L, NULL, "invalid base64");
	}
	luaL_pushresultsize(&b, (size_t)n);
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
		return host_raise_environment(L, "trainctl.crypto", why);
	luaL_newlib(L, funcs);
	return 1;
}
