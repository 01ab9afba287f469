/* trainctl.sign: the request signatures of the three clouds.
 *
 *   ncp_v2  NAVER Cloud API Gateway v2 (reference/aitems.md 1.1)
 *   acs_v2  Alibaba ROA "acs AK:sig" HMAC-SHA1 (reference/opensearch.md 5.3)
 *   acs3    Alibaba ACS3-HMAC-SHA256 (reference/opensearch.md 5.2)
 *
 * Inputs are Lua tables; intermediate strings live on the Lua stack or in
 * Lua-owned buffers, so a bad argument cannot leak memory. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "crypto.h"
#include "host.h"
#include "options.h"

#define WHO "sign"
/* Numbers sign as their text (a timestamp, an access key of digits). */
#define FIELD (OPT_REQUIRED | OPT_NUMBERS)

static void push_hmac(lua_State *L, const EVP_MD *md, const char *key,
		      size_t klen, const char *msg, size_t mlen)
{
	unsigned char out[EVP_MAX_MD_SIZE];
	int n = crypto_hmac(md, key, klen, msg, mlen, out);

	if (n < 0)
		luaL_error(L, "sign: hmac failed");
	lua_pushlstring(L, (const char *)out, (size_t)n);
}

static void push_base64(lua_State *L, int idx)
{
	size_t len;
	const char *s = lua_tolstring(L, idx, &len);
	luaL_Buffer b;
	char *p = luaL_buffinitsize(L, &b, CRYPTO_BASE64_SIZE(len));

	luaL_pushresultsize(&b, crypto_base64(s, len, p));
}

static void push_hex(lua_State *L, const unsigned char *s, size_t len)
{
	char buf[2 * EVP_MAX_MD_SIZE];

	crypto_hex(s, len, buf);
	lua_pushlstring(L, buf, 2 * len);
}

static void push_sha256_hex(lua_State *L, const char *s, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	int n = crypto_digest(EVP_sha256(), s, len, md);

	if (n < 0)
		luaL_error(L, "sign: digest failed");
	push_hex(L, md, (size_t)n);
}

/* method " " uri "\n" timestamp "\n" access_key, HMAC-SHA256, base64. */
static int l_ncp_v2(lua_State *L)
{
	size_t mlen, ulen, tlen, alen, slen, i;
	const char *method, *uri, *ts, *ak, *sk;
	luaL_Buffer b;

	luaL_checktype(L, 1, LUA_TTABLE);
	method = opt_lstring(L, 1, "method", WHO, FIELD, &mlen);
	uri = opt_lstring(L, 1, "uri", WHO, FIELD, &ulen);
	ts = opt_lstring(L, 1, "timestamp", WHO, FIELD, &tlen);
	ak = opt_lstring(L, 1, "access_key", WHO, FIELD, &alen);
	sk = opt_lstring(L, 1, "secret_key", WHO, FIELD, &slen);
	luaL_buffinit(L, &b);
	for (i = 0; i < mlen; i++)
		luaL_addchar(&b, (char)toupper((unsigned char)method[i]));
	luaL_addchar(&b, ' ');
	luaL_addlstring(&b, uri, ulen);
	luaL_addchar(&b, '\n');
	luaL_addlstring(&b, ts, tlen);
	luaL_addchar(&b, '\n');
	luaL_addlstring(&b, ak, alen);
	luaL_pushresult(&b);
	{
		size_t len;
		const char *msg = lua_tolstring(L, -1, &len);
		push_hmac(L, EVP_sha256(), sk, slen, msg, len);
	}
	push_base64(L, -1);
	return 1;
}

/* A sorted view of a Lua map: pairs of (name, value) strings kept alive in
 * a Lua table at `anchor`, pointers in a userdata freed by the GC. */
struct kv {
	const char *k, *v;
	size_t klen, vlen;
};

static int kvcmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->k, y->k, n);

	if (c)
		return c;
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	n = x->vlen < y->vlen ? x->vlen : y->vlen;
	c = memcmp(x->v, y->v, n);
	if (c)
		return c;
	return x->vlen < y->vlen ? -1 : x->vlen > y->vlen;
}

typedef int (*keep_fn)(const char *lname);

/* A header name is an RFC 9110 token: a name with a comma, a colon or a
 * space would make the signed-header list mean something else. */
static int is_token(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || strchr("!#$%&'*+-.^_`|~", c)) || c == 0)
			return 0;
	}
	return 1;
}

/* Collect the string-convertible entries of the table field `name` of
 * argument 1. With `lower`, names are lower-cased; with `keep`, only the
 * names it accepts are kept. Pushes an anchor table and returns the
 * sorted array (in a userdata also anchored there). */
static struct kv *collect(lua_State *L, const char *name, int lower,
			  keep_fn keep, size_t *count)
{
	struct kv *arr;
	size_t n = 0, cap = 0;
	int t, anchor;

	lua_newtable(L);
	anchor = lua_gettop(L);
	if (!opt_table(L, 1, name, WHO))
		lua_pushnil(L);
	t = lua_gettop(L);
	if (lua_istable(L, t)) {
		lua_pushnil(L);
		while (lua_next(L, t))
			cap++, lua_pop(L, 1);
	}
	arr = lua_newuserdatauv(L, (cap ? cap : 1) * sizeof *arr, 0);
	lua_rawseti(L, anchor, 1);
	if (cap) {
		int slot = 2;
		lua_pushnil(L);
		while (lua_next(L, t) && n < cap) {
			size_t klen, vlen, i;
			const char *k = luaL_tolstring(L, -2, &klen);
			const char *v;
			if (lower) {
				luaL_Buffer b;
				char *p;
				if (!is_token(k, klen))
					luaL_error(
						L,
						"sign: invalid header name %s",
						lua_tostring(L, -1));
				p = luaL_buffinitsize(L, &b, klen);
				for (i = 0; i < klen; i++)
					p[i] = (char)tolower(
						(unsigned char)k[i]);
				luaL_pushresultsize(&b, klen);
				lua_remove(L, -2);
				k = lua_tolstring(L, -1, &klen);
			}
			lua_rawseti(L, anchor, slot++);
			v = luaL_tolstring(L, -1, &vlen);
			lua_rawseti(L, anchor, slot++);
			lua_pop(L, 1); /* value; the key stays for lua_next */
			if (keep && !keep(k))
				continue;
			arr[n].k = k, arr[n].klen = klen;
			arr[n].v = v, arr[n].vlen = vlen;
			n++;
		}
	}
	lua_pop(L, 1); /* the input table */
	qsort(arr, n, sizeof *arr, kvcmp);
	*count = n;
	return arr;
}

/* RFC 3986: everything but unreserved characters is percent-encoded, as
 * encodeURIComponent does after also escaping ! ' ( ) *. */
static void add_pct(luaL_Buffer *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || c == '_' || c == '.' ||
		    c == '~') {
			luaL_addchar(b, (char)c);
		} else {
			luaL_addchar(b, '%');
			luaL_addchar(b, hex[c >> 4]);
			luaL_addchar(b, hex[c & 15]);
		}
	}
}

/* Header values are trimmed and control whitespace becomes a space. */
static void add_header_value(luaL_Buffer *b, const char *v, size_t len)
{
	size_t i;

	while (len && isspace((unsigned char)*v))
		v++, len--;
	while (len && isspace((unsigned char)v[len - 1]))
		len--;
	for (i = 0; i < len; i++) {
		char c = v[i];
		luaL_addchar(b,
			     (c == '\t' || c == '\n' || c == '\r' || c == '\f')
				     ? ' '
				     : c);
	}
}

/* "name:value\n" per distinct name; values of a repeated name (arriving
 * with different cases) are sorted and joined with ",". */
static void add_headers(luaL_Buffer *b, const struct kv *h, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i;
		luaL_addlstring(b, h[i].k, h[i].klen);
		luaL_addchar(b, ':');
		for (;;) {
			add_header_value(b, h[j].v, h[j].vlen);
			j++;
			if (j >= n || h[j].klen != h[i].klen ||
			    memcmp(h[j].k, h[i].k, h[i].klen))
				break;
			luaL_addchar(b, ',');
		}
		luaL_addchar(b, '\n');
		i = j;
	}
}

static const char *find(const struct kv *h, size_t n, const char *name,
			size_t *len)
{
	size_t i, nlen = strlen(name);

	for (i = 0; i < n; i++)
		if (h[i].klen == nlen && memcmp(h[i].k, name, nlen) == 0) {
			*len = h[i].vlen;
			return h[i].v;
		}
	*len = 0;
	return "";
}

static int is_acs(const char *k) { return strncmp(k, "x-acs-", 6) == 0; }

static int is_acs3_signed(const char *k)
{
	return is_acs(k) || strcmp(k, "host") == 0 ||
	       strcmp(k, "content-type") == 0;
}

/* ROA: VERB, Accept, Content-MD5, Content-Type, Date lines, then the
 * x-acs-* headers, then the resource with its unencoded sorted query.
 * An empty query value signs as "key" (Go, Python and C++ SDKs). */
static int l_acs_v2(lua_State *L)
{
	static const char *const lines[] = { "accept", "content-md5",
					     "content-type", "date" };
	size_t nh, nq, plen, slen, mlen, i, len;
	const char *path, *secret, *method, *v;
	struct kv *h, *q;
	luaL_Buffer b;

	luaL_checktype(L, 1, LUA_TTABLE);
	method = opt_lstring(L, 1, "method", WHO, FIELD, &mlen);
	path = opt_lstring(L, 1, "path", WHO, FIELD, &plen);
	secret = opt_lstring(L, 1, "secret", WHO, FIELD, &slen);
	h = collect(L, "headers", 1, NULL, &nh);
	q = collect(L, "query", 0, NULL, &nq);
	luaL_buffinit(L, &b);
	for (i = 0; i < mlen; i++)
		luaL_addchar(&b, (char)toupper((unsigned char)method[i]));
	luaL_addchar(&b, '\n');
	for (i = 0; i < 4; i++) {
		v = find(h, nh, lines[i], &len);
		luaL_addlstring(&b, v, len);
		luaL_addchar(&b, '\n');
	}
	{
		size_t first = 0, last;
		while (first < nh && !is_acs(h[first].k))
			first++;
		last = first;
		while (last < nh && is_acs(h[last].k))
			last++;
		add_headers(&b, h + first, last - first);
	}
	luaL_addlstring(&b, path, plen);
	for (i = 0; i < nq; i++) {
		luaL_addchar(&b, i ? '&' : '?');
		luaL_addlstring(&b, q[i].k, q[i].klen);
		if (q[i].vlen) {
			luaL_addchar(&b, '=');
			luaL_addlstring(&b, q[i].v, q[i].vlen);
		}
	}
	luaL_pushresult(&b);
	{
		const char *sts = lua_tolstring(L, -1, &len);
		push_hmac(L, EVP_sha1(), secret, slen, sts, len);
	}
	push_base64(L, -1);
	lua_replace(L, -2);
	lua_insert(L, -2);
	return 2; /* signature, string_to_sign */
}

static void add_canonical_uri(luaL_Buffer *b, const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] == '+')
			luaL_addstring(b, "%20");
		else if (p[i] == '*')
			luaL_addstring(b, "%2A");
		else if (p[i] == '%' && i + 2 < len && p[i + 1] == '7' &&
			 (p[i + 2] == 'E' || p[i + 2] == 'e')) {
			luaL_addchar(b, '~');
			i += 2;
		} else
			luaL_addchar(b, p[i]);
	}
}

static void add_canonical_query(luaL_Buffer *b, const struct kv *q, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (i)
			luaL_addchar(b, '&');
		add_pct(b, q[i].k, q[i].klen);
		luaL_addchar(b, '=');
		add_pct(b, q[i].v, q[i].vlen);
	}
}

/* The signed header names, each once, joined with ';'. */
static void push_signed_names(lua_State *L, const struct kv *h, size_t n)
{
	luaL_Buffer b;
	size_t i;

	luaL_buffinit(L, &b);
	for (i = 0; i < n; i++) {
		if (i && h[i].klen == h[i - 1].klen &&
		    memcmp(h[i].k, h[i - 1].k, h[i].klen) == 0)
			continue;
		if (i)
			luaL_addchar(&b, ';');
		luaL_addlstring(&b, h[i].k, h[i].klen);
	}
	luaL_pushresult(&b);
}

/* The body's hash; payload_hash stands in for hashing the body (the
 * vendor vectors and streamed uploads give the hash, not the bytes). */
static void push_payload_hash(lua_State *L)
{
	size_t blen;
	const char *body;

	if (opt_lstring(L, 1, "payload_hash", WHO, 0, NULL))
		return;
	body = opt_lstring(L, 1, "body", WHO, OPT_NUMBERS, &blen);
	push_sha256_hex(L, body ? body : "", body ? blen : 0);
	if (body)
		lua_remove(L, -2);
}

/* Pushes the canonical request and the signed header names:
 * method, URI, query, headers, signed names, payload hash. */
static void push_canonical_request(lua_State *L)
{
	size_t nh, nq, mlen, plen;
	const char *method = opt_lstring(L, 1, "method", WHO, FIELD, &mlen);
	const char *path = opt_lstring(L, 1, "path", WHO, FIELD, &plen);
	struct kv *h = collect(L, "headers", 1, is_acs3_signed, &nh);
	struct kv *q = collect(L, "query", 0, NULL, &nq);
	luaL_Buffer b;

	luaL_buffinit(L, &b);
	luaL_addlstring(&b, method, mlen);
	luaL_addchar(&b, '\n');
	add_canonical_uri(&b, path, plen);
	luaL_addchar(&b, '\n');
	add_canonical_query(&b, q, nq);
	luaL_addchar(&b, '\n');
	add_headers(&b, h, nh);
	luaL_addchar(&b, '\n');
	luaL_pushresult(&b);
	push_signed_names(L, h, nh);
	lua_insert(L, -2);
	lua_pushvalue(L, -2);
	lua_pushliteral(L, "\n");
	push_payload_hash(L);
	lua_concat(L, 4);
}

/* "ACS3-HMAC-SHA256\n" hex(sha256(canonical request)) */
static void push_string_to_sign(lua_State *L, int creq)
{
	size_t len;
	const char *cr = lua_tolstring(L, creq, &len);

	lua_pushliteral(L, "ACS3-HMAC-SHA256\n");
	push_sha256_hex(L, cr, len);
	lua_concat(L, 2);
}

static void push_authorization(lua_State *L, int names, int sts)
{
	size_t slen, alen, len;
	const char *secret = opt_lstring(L, 1, "secret", WHO, FIELD, &slen);
	const char *ak = opt_lstring(L, 1, "access_key", WHO, FIELD, &alen);
	const char *msg = lua_tolstring(L, sts, &len);
	unsigned char out[EVP_MAX_MD_SIZE];
	int n = crypto_hmac(EVP_sha256(), secret, slen, msg, len, out);

	if (n < 0)
		luaL_error(L, "sign: hmac failed");
	lua_pushliteral(L, "ACS3-HMAC-SHA256 Credential=");
	lua_pushlstring(L, ak, alen);
	lua_pushliteral(L, ",SignedHeaders=");
	lua_pushvalue(L, names);
	lua_pushliteral(L, ",Signature=");
	push_hex(L, out, (size_t)n);
	lua_concat(L, 6);
}

/* acs3{...} -> authorization, canonical_request, string_to_sign:
 * canonical request -> string to sign -> authorization. */
static int l_acs3(lua_State *L)
{
	int creq;

	luaL_checktype(L, 1, LUA_TTABLE);
	/* Checked first, in this order, as the errors have always come. */
	opt_lstring(L, 1, "method", WHO, FIELD, NULL);
	opt_lstring(L, 1, "path", WHO, FIELD, NULL);
	opt_lstring(L, 1, "secret", WHO, FIELD, NULL);
	opt_lstring(L, 1, "access_key", WHO, FIELD, NULL);
	opt_lstring(L, 1, "body", WHO, OPT_NUMBERS, NULL);
	lua_settop(L, 1);
	push_canonical_request(L);
	creq = lua_gettop(L);
	push_string_to_sign(L, creq);
	push_authorization(L, creq - 1, creq + 1);
	lua_pushvalue(L, creq);
	lua_pushvalue(L, creq + 1);
	return 3;
}

static const luaL_Reg funcs[] = { { "ncp_v2", l_ncp_v2 },
				  { "acs_v2", l_acs_v2 },
				  { "acs3", l_acs3 },
				  { NULL, NULL } };

int luaopen_trainctl_sign(lua_State *L)
{
	const char *why = lazy_crypto();

	if (why)
		return host_raise_environment(L, "trainctl.sign", why);
	luaL_newlib(L, funcs);
	return 1;
}
