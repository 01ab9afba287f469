/* trainctl.crypto against the published vectors: RFC 4231 (HMAC-SHA256),
 * RFC 2202 (HMAC-SHA1), FIPS 180 (SHA-1, SHA-256), RFC 1321 (MD5) and
 * RFC 4648 (base64). Each case is a Lua expression evaluated in a state
 * where C is the module, as a script would call it. */
#include <lauxlib.h>
#include <lualib.h>

#include "host.h"
#include "tap.h"

static lua_State *L;

static const char prelude[] =
	"C = require 'trainctl.crypto'\n"
	"hex, unhex = C.hex_encode, C.hex_decode\n"
	"b64, unb64 = C.base64_encode, C.base64_decode\n"
	/* Lua's I/O convention: nil and a non-empty message, nothing else. */
	"function rejects(f, s)\n"
	"  local n = select('#', f(s))\n"
	"  local v, err = f(s)\n"
	"  return n == 2 and v == nil and type(err) == 'string' and #err > 0\n"
	"end\n";

/* The value of a Lua expression as a string, or "error: ..." */
static const char *eval(const char *expr)
{
	lua_settop(L, 0);
	lua_pushfstring(L, "return %s", expr);
	if (luaL_loadstring(L, lua_tostring(L, -1)) != LUA_OK ||
	    lua_pcall(L, 0, 1, 0) != LUA_OK)
		return lua_pushfstring(L, "error: %s", lua_tostring(L, -1));
	return luaL_tolstring(L, -1, NULL);
}

struct vec {
	const char *name, *expr, *want;
};

static const struct vec rfc4231[] = {
	{ "RFC 4231 case 1",
	  "hex(C.hmac_sha256(('\\x0b'):rep(20), 'Hi There'))",
	  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
	{ "RFC 4231 case 2: key shorter than the length of the HMAC output",
	  "hex(C.hmac_sha256('Jefe', 'what do ya want for nothing?'))",
	  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
	{ "RFC 4231 case 3: 50 bytes of 0xdd",
	  "hex(C.hmac_sha256(('\\xaa'):rep(20), ('\\xdd'):rep(50)))",
	  "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
	{ "RFC 4231 case 4: key 0x01..0x19",
	  "hex(C.hmac_sha256(unhex('"
	  "0102030405060708090a0b0c0d0e0f10111213141516171819'), "
	  "('\\xcd'):rep(50)))",
	  "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
	{ "RFC 4231 case 5: truncation to 128 bits",
	  "hex(C.hmac_sha256(('\\x0c'):rep(20), 'Test With "
	  "Truncation')):sub(1, 32)",
	  "a3b6167473100ee06e0c796c2955552b" },
	{ "RFC 4231 case 6: 131-byte key (hashed first)",
	  "hex(C.hmac_sha256(('\\xaa'):rep(131), 'Test Using Larger Than "
	  "Block-Size Key - Hash Key First'))",
	  "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
	{ "RFC 4231 case 7: 131-byte key and data longer than a block",
	  "hex(C.hmac_sha256(('\\xaa'):rep(131), 'This is a test using a "
	  "larger than block-size key and a larger than block-size data. The "
	  "key needs to be hashed before being used by the HMAC algorithm.'))",
	  "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
};

static const struct vec rfc2202[] = {
	{ "RFC 2202 HMAC-SHA1 case 1",
	  "hex(C.hmac_sha1(('\\x0b'):rep(20), 'Hi There'))",
	  "b617318655057264e28bc0b6fb378c8ef146be00" },
	{ "RFC 2202 HMAC-SHA1 case 2",
	  "hex(C.hmac_sha1('Jefe', 'what do ya want for nothing?'))",
	  "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
	{ "RFC 2202 HMAC-SHA1 case 3",
	  "hex(C.hmac_sha1(('\\xaa'):rep(20), ('\\xdd'):rep(50)))",
	  "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
	{ "RFC 2202 HMAC-SHA1 case 4",
	  "hex(C.hmac_sha1(unhex('"
	  "0102030405060708090a0b0c0d0e0f10111213141516171819'), "
	  "('\\xcd'):rep(50)))",
	  "4c9007f4026250c6bc8414f9bf50c86c2d7235da" },
	{ "RFC 2202 HMAC-SHA1 case 5 (and its 96-bit truncation)",
	  "hex(C.hmac_sha1(('\\x0c'):rep(20), 'Test With Truncation'))",
	  "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04" },
	{ "RFC 2202 HMAC-SHA1 case 6: 80-byte key",
	  "hex(C.hmac_sha1(('\\xaa'):rep(80), 'Test Using Larger Than "
	  "Block-Size Key - Hash Key First'))",
	  "aa4ae5e15272d00e95705637ce8a3b55ed402112" },
	{ "RFC 2202 HMAC-SHA1 case 7: 80-byte key, 73-byte data",
	  "hex(C.hmac_sha1(('\\xaa'):rep(80), 'Test Using Larger Than "
	  "Block-Size Key and Larger Than One Block-Size Data'))",
	  "e8e99d0f45237d786d6bbaa7965c7808bbff1a91" },
};

static const struct vec fips180[] = {
	{ "FIPS 180 SHA-1 'abc'", "hex(C.sha1('abc'))",
	  "a9993e364706816aba3e25717850c26c9cd0d89d" },
	{ "FIPS 180 SHA-1 448-bit message",
	  "hex(C.sha1('"
	  "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))",
	  "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
	{ "FIPS 180 SHA-1 one million 'a'", "hex(C.sha1(('a'):rep(1000000)))",
	  "34aa973cd4c4daa4f61eeb2bdbad27316534016f" },
	{ "FIPS 180 SHA-256 'abc'", "hex(C.sha256('abc'))",
	  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "FIPS 180 SHA-256 448-bit message",
	  "hex(C.sha256('"
	  "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	{ "FIPS 180 SHA-256 one million 'a'",
	  "hex(C.sha256(('a'):rep(1000000)))",
	  "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0" },
	{ "SHA-256 digests are 32 raw bytes", "#C.sha256('')", "32" },
	{ "SHA-1 digests are 20 raw bytes", "#C.sha1('')", "20" },
};

static const struct vec rfc1321[] = {
	{ "RFC 1321 MD5 ''", "hex(C.md5(''))",
	  "d41d8cd98f00b204e9800998ecf8427e" },
	{ "RFC 1321 MD5 'a'", "hex(C.md5('a'))",
	  "0cc175b9c0f1b6a831c399e269772661" },
	{ "RFC 1321 MD5 'abc'", "hex(C.md5('abc'))",
	  "900150983cd24fb0d6963f7d28e17f72" },
	{ "RFC 1321 MD5 'message digest'", "hex(C.md5('message digest'))",
	  "f96b697d7cb7938d525a2f31aaf161d0" },
	{ "RFC 1321 MD5 a..z", "hex(C.md5('abcdefghijklmnopqrstuvwxyz'))",
	  "c3fcd3d76192e4007dfb496cca67e13b" },
	{ "RFC 1321 MD5 A..Za..z0..9",
	  "hex(C.md5('"
	  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'))",
	  "d174ab98d277d9f5a5611c2c9f419d9f" },
	{ "RFC 1321 MD5 8 x '1234567890'", "hex(C.md5(('1234567890'):rep(8)))",
	  "57edf4a22be3c955ac49da2e2107b67a" },
};

/* RFC 4648 section 10, both ways. */
static const char *const rfc4648[][2] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static const struct vec misc[] = {
	{ "hex_encode is lower-case and binary-safe",
	  "hex('\\0\\1\\127\\128\\255')", "00017f80ff" },
	{ "hex_decode accepts both cases",
	  "unhex('00aBcD7f') == '\\0\\xab\\xcd\\x7f'", "true" },
	{ "hex round-trips every byte value",
	  "(function() local s = '' for i = 0, 255 do s = s .. string.char(i) "
	  "end "
	  "return unhex(hex(s)) == s end)()",
	  "true" },
	{ "base64 round-trips every byte value and every length mod 3",
	  "(function() for n = 0, 258 do local s = C.random_bytes(n) "
	  "if unb64(b64(s)) ~= s then return n end end return true end)()",
	  "true" },
	{ "base64 with embedded NULs", "b64('\\0\\0\\0\\0')", "AAAAAA==" },
	{ "HMAC with an empty key is the HMAC of the empty key",
	  "hex(C.hmac_sha256('', ''))",
	  "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad" },
	{ "random_bytes(n) returns n bytes", "#C.random_bytes(33)", "33" },
	{ "random_bytes(0) returns the empty string", "C.random_bytes(0) == ''",
	  "true" },
	{ "random_bytes differs between calls",
	  "C.random_bytes(16) ~= C.random_bytes(16)", "true" },
	{ "random_bytes rejects a negative count", "pcall(C.random_bytes, -1)",
	  "false" },
	{ "equal: same content", "C.equal('secret', 'secret')", "true" },
	{ "equal: different last byte", "C.equal('secret', 'secreT')",
	  "false" },
	{ "equal: prefix is not equal", "C.equal('secret', 'secre')", "false" },
	{ "equal: empty strings", "C.equal('', '')", "true" },
	{ "equal: NUL bytes count", "C.equal('a\\0b', 'a\\0c')", "false" },
	{ "digests raise on a non-string argument", "pcall(C.sha256, {})",
	  "false" },
};

/* Invalid input returns nil, err (a failure of the data, not a bug). */
static const char *const bad_base64[] = {
	"Zm9",	    /* not a multiple of four */
	"Zg=",	    /* short padding */
	"Zm9v!A==", /* outside the alphabet */
	"Zm9_",	    /* the URL-safe alphabet is another encoding */
	"Zm9-",	    /* idem */
	"Zg==Zg==", /* data after padding */
	"Z===",	    /* three padding characters */
	"=Zg=",	    /* padding first */
	" Zg=",	    /* whitespace */
	"Zg==\n",   /* trailing newline */
};

static const char *const bad_hex[] = { "abc",  "zz", "0g", "g0",
				       "0x00", " 0", "00 " };

/* The input as a readable test name: control characters escaped. */
static const char *shown(const char *s)
{
	static char out[64];
	size_t n = 0;

	for (; *s && n + 5 < sizeof out; s++) {
		if ((unsigned char)*s < ' ')
			n += (size_t)snprintf(out + n, sizeof out - n,
					      "\\x%02x", (unsigned char)*s);
		else
			out[n++] = *s;
	}
	out[n] = '\0';
	return out;
}

static void run(const struct vec *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		is_str(eval(v[i].expr), v[i].want, "%s", v[i].name);
}

#define RUN(a) run(a, sizeof a / sizeof a[0])

int main(void)
{
	size_t i;

	L = luaL_newstate();
	luaL_openlibs(L);
	luaL_requiref(L, "trainctl.crypto", luaopen_trainctl_crypto, 0);
	lua_pop(L, 1);
	if (luaL_dostring(L, prelude) != LUA_OK) {
		printf("Bail out! %s\n", lua_tostring(L, -1));
		return 1;
	}
	RUN(rfc4231);
	RUN(rfc2202);
	RUN(fips180);
	RUN(rfc1321);
	for (i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
		const char *plain = rfc4648[i][0], *enc = rfc4648[i][1];
		lua_getglobal(L, "b64");
		lua_pushstring(L, plain);
		lua_call(L, 1, 1);
		is_str(lua_tostring(L, -1), enc, "RFC 4648 BASE64(\"%s\")",
		       plain);
		lua_getglobal(L, "unb64");
		lua_pushstring(L, enc);
		lua_call(L, 1, 1);
		is_str(lua_tostring(L, -1), plain, "RFC 4648 decode \"%s\"",
		       enc);
		lua_settop(L, 0);
	}
	for (i = 0; i < sizeof bad_base64 / sizeof bad_base64[0]; i++) {
		lua_settop(L, 0);
		lua_getglobal(L, "rejects");
		lua_getglobal(L, "unb64");
		lua_pushstring(L, bad_base64[i]);
		lua_call(L, 2, 1);
		ok(lua_toboolean(L, -1),
		   "base64_decode rejects \"%s\" with nil, err",
		   shown(bad_base64[i]));
	}
	for (i = 0; i < sizeof bad_hex / sizeof bad_hex[0]; i++) {
		lua_settop(L, 0);
		lua_getglobal(L, "rejects");
		lua_getglobal(L, "unhex");
		lua_pushstring(L, bad_hex[i]);
		lua_call(L, 2, 1);
		ok(lua_toboolean(L, -1),
		   "hex_decode rejects \"%s\" with nil, err", bad_hex[i]);
	}
	RUN(misc);
	lua_close(L);
	return done_testing();
}
