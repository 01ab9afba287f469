/* Loads libcurl, libcrypto, libedit and libjq with dlopen the first time they
 * are needed; see lazy.h for why. */
#define LAZY_IMPL
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "lazy.h"

struct curl_api curl_api;
struct crypto_api crypto_api;
struct edit_api edit_api;
struct jq_api jq_api;

/* jv.h defines a static jv_is_valid, calling jv_get_kind, in every file
 * that includes it; an unoptimised build keeps it, and libjq is not
 * linked: the name goes through the table too. */
jv_kind jv_get_kind(jv x) { return jq_api.get_kind(x); }

/* Each library is loaded once, under pthread_once: a one-shot call
 * loads libcurl and libcrypto on threads of their own (preload.h) while
 * the Lua library loads, and whoever needs one first waits there for it.
 * A failure stays: a library does not appear later in a run. */
struct loader {
	pthread_once_t once;
	const char *failed; /* NULL once loaded */
	char why[256];
};

/* Lazy binding, as for a program linked with the library: RTLD_NOW
 * resolved every function of libcurl and of its thirty libraries at
 * once, a tenth of a one-shot call. Every function trainctl calls is
 * found here by dlsym; what lazy binding defers is the libraries' calls
 * into each other, so an install whose libraries do not match fails
 * when such a call is first made, with the loader's "symbol lookup
 * error", rather than here. LD_BIND_NOW=1 brings the check back to the
 * load (tests/host/cli_spec.lua runs --version so). */
static void *open_any(const char *const *names, struct loader *l)
{
	void *lib = NULL;
	int i;

	/* The error said is the first name's (the library's soname): the
	 * others are fallbacks (a -dev package's link), not what is missing. */
	for (i = 0; names[i] && !lib; i++)
		if (!(lib = dlopen(names[i], RTLD_LAZY | RTLD_GLOBAL)) &&
		    i == 0)
			snprintf(l->why, sizeof l->why, "cannot load %s: %s",
				 names[0], dlerror());
	return lib;
}

#define SYM(api, field, name)                                                  \
	do {                                                                   \
		*(void **)(&api.field) = dlsym(lib, name);                     \
		if (api.field == NULL) {                                       \
			snprintf(l->why, sizeof l->why, "missing %s", name);   \
			return l->why;                                         \
		}                                                              \
	} while (0)

#define OPTIONAL(api, field, name) (*(void **)(&api.field) = dlsym(lib, name))

/* lazy_NAME(): load_NAME's answer, from its one run. */
#define LOADER(name)                                                           \
	static struct loader name##_loader = { PTHREAD_ONCE_INIT, NULL, "" };  \
	static void once_##name(void)                                          \
	{                                                                      \
		name##_loader.failed = load_##name(&name##_loader);            \
	}                                                                      \
	const char *lazy_##name(void)                                          \
	{                                                                      \
		pthread_once(&name##_loader.once, once_##name);                \
		return name##_loader.failed;                                   \
	}

static const char *load_curl(struct loader *l)
{
	static const char *const names[] = { "libcurl.so.4", "libcurl.so",
					     NULL };
	void *lib;

	/* libcurl needs libcrypto (through libssl): loaded first, on its
	 * own, it is in the global scope before libcurl comes. The other
	 * way round, a later dlopen of libcrypto would move it there, and
	 * glibc keeps the scope it replaces for as long as the process
	 * runs. */
	lazy_crypto();
	if (!(lib = open_any(names, l)))
		return l->why;
	SYM(curl_api, global_init, "curl_global_init");
	SYM(curl_api, global_cleanup, "curl_global_cleanup");
	SYM(curl_api, easy_init, "curl_easy_init");
	SYM(curl_api, easy_reset, "curl_easy_reset");
	SYM(curl_api, easy_cleanup, "curl_easy_cleanup");
	SYM(curl_api, easy_setopt, "curl_easy_setopt");
	SYM(curl_api, easy_getinfo, "curl_easy_getinfo");
	SYM(curl_api, easy_strerror, "curl_easy_strerror");
	SYM(curl_api, multi_init, "curl_multi_init");
	SYM(curl_api, multi_setopt, "curl_multi_setopt");
	SYM(curl_api, multi_add_handle, "curl_multi_add_handle");
	SYM(curl_api, multi_remove_handle, "curl_multi_remove_handle");
	SYM(curl_api, multi_perform, "curl_multi_perform");
	SYM(curl_api, multi_poll, "curl_multi_poll");
	SYM(curl_api, multi_wakeup, "curl_multi_wakeup");
	SYM(curl_api, multi_socket_action, "curl_multi_socket_action");
	SYM(curl_api, multi_assign, "curl_multi_assign");
	SYM(curl_api, multi_timeout, "curl_multi_timeout");
	SYM(curl_api, multi_info_read, "curl_multi_info_read");
	SYM(curl_api, multi_cleanup, "curl_multi_cleanup");
	SYM(curl_api, slist_append, "curl_slist_append");
	SYM(curl_api, slist_free_all, "curl_slist_free_all");
	SYM(curl_api, version, "curl_version");
	SYM(curl_api, version_info, "curl_version_info");
	SYM(curl_api, getdate, "curl_getdate");
	return NULL;
}

LOADER(curl)

static const char *load_crypto(struct loader *l)
{
	static const char *const names[] = { "libcrypto.so.3", "libcrypto.so",
					     NULL };
	void *lib;

	if (!(lib = open_any(names, l)))
		return l->why;
	SYM(crypto_api, digest, "EVP_Digest");
	SYM(crypto_api, sha256, "EVP_sha256");
	SYM(crypto_api, sha1, "EVP_sha1");
	SYM(crypto_api, md5, "EVP_md5");
	SYM(crypto_api, hmac, "HMAC");
	SYM(crypto_api, encode_block, "EVP_EncodeBlock");
	SYM(crypto_api, decode_block, "EVP_DecodeBlock");
	SYM(crypto_api, rand_bytes, "RAND_bytes");
	SYM(crypto_api, memcmp, "CRYPTO_memcmp");
	SYM(crypto_api, version, "OpenSSL_version");
	OPTIONAL(crypto_api, mac_fetch, "EVP_MAC_fetch");
	OPTIONAL(crypto_api, mac_ctx_new, "EVP_MAC_CTX_new");
	OPTIONAL(crypto_api, mac_ctx_set_params, "EVP_MAC_CTX_set_params");
	OPTIONAL(crypto_api, mac_init, "EVP_MAC_init");
	OPTIONAL(crypto_api, mac_update, "EVP_MAC_update");
	OPTIONAL(crypto_api, mac_final, "EVP_MAC_final");
	OPTIONAL(crypto_api, md_name, "EVP_MD_get0_name");
	return NULL;
}

LOADER(crypto)

static const char *load_edit(struct loader *l)
{
	static const char *const names[] = { "libedit.so.2", "libedit.so",
					     NULL };
	void *lib;

	if (!(lib = open_any(names, l)))
		return l->why;
	SYM(edit_api, readline, "readline");
	SYM(edit_api, add_history, "add_history");
	SYM(edit_api, read_history, "read_history");
	SYM(edit_api, write_history, "write_history");
	SYM(edit_api, stifle_history, "stifle_history");
	SYM(edit_api, completion_matches, "rl_completion_matches");
	SYM(edit_api, readline_name, "rl_readline_name");
	SYM(edit_api, attempted_completion_function,
	    "rl_attempted_completion_function");
	SYM(edit_api, completion_append_character,
	    "rl_completion_append_character");
	return NULL;
}

LOADER(edit)

static const char *load_jq(struct loader *l)
{
	static const char *const names[] = { "libjq.so.1", "libjq.so", NULL };
	void *lib;

	if (!(lib = open_any(names, l)))
		return l->why;
	SYM(jq_api, init, "jq_init");
	SYM(jq_api, set_error_cb, "jq_set_error_cb");
	SYM(jq_api, compile, "jq_compile");
	SYM(jq_api, start, "jq_start");
	SYM(jq_api, next, "jq_next");
	SYM(jq_api, teardown, "jq_teardown");
	SYM(jq_api, parse_sized, "jv_parse_sized");
	SYM(jq_api, dump_string, "jv_dump_string");
	SYM(jq_api, string_value, "jv_string_value");
	SYM(jq_api, string_length_bytes, "jv_string_length_bytes");
	SYM(jq_api, free, "jv_free");
	SYM(jq_api, copy, "jv_copy");
	SYM(jq_api, get_kind, "jv_get_kind");
	SYM(jq_api, invalid_has_msg, "jv_invalid_has_msg");
	SYM(jq_api, invalid_get_msg, "jv_invalid_get_msg");
	return NULL;
}

LOADER(jq)
