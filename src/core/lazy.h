/* libcurl, libcrypto, libedit and libjq, loaded on first use.
 *
 * Linked normally, libcurl brings some thirty libraries (GnuTLS, Kerberos,
 * LDAP, ...) whose loading and constructors cost about 5 ms at every start,
 * libcrypto another 1 ms of relocations and libedit 0.4 ms: a bare Lua
 * starts in about 1 ms, and a script that never signs or requests, or a
 * batch job that never opens the REPL, should not pay for them; libjq
 * (with libonig) serves only `call --jq`. Include
 * this header instead of the libraries' own: their function names below
 * then call through tables filled by dlopen/dlsym. */
#ifndef TRAINCTL_LAZY_H
#define TRAINCTL_LAZY_H

#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <jq.h>

/* Each returns NULL once its library is loaded, else why it is not. Any
 * thread may call them: a second caller waits for the first to finish. */
const char *lazy_curl(void);
const char *lazy_crypto(void);
const char *lazy_edit(void);
const char *lazy_jq(void);

struct curl_api {
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	void (*easy_reset)(CURL *);
	void (*easy_cleanup)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_perform)(CURLM *, int *);
	CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd[], unsigned int,
				int, int *);
	CURLMcode (*multi_wakeup)(CURLM *);
	CURLMcode (*multi_timeout)(CURLM *, long *);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_cleanup)(CURLM *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	char *(*version)(void);
	curl_version_info_data *(*version_info)(CURLversion);
	time_t (*getdate)(const char *, const time_t *);
};

struct crypto_api {
	int (*digest)(const void *, size_t, unsigned char *, unsigned int *,
		      const EVP_MD *, ENGINE *);
	const EVP_MD *(*sha256)(void);
	const EVP_MD *(*sha1)(void);
	const EVP_MD *(*md5)(void);
	unsigned char *(*hmac)(const EVP_MD *, const void *, int,
			       const unsigned char *, size_t, unsigned char *,
			       unsigned int *);
	int (*encode_block)(unsigned char *, const unsigned char *, int);
	int (*decode_block)(unsigned char *, const unsigned char *, int);
	int (*rand_bytes)(unsigned char *, int);
	int (*memcmp)(const void *, const void *, size_t);
	const char *(*version)(int);
	/* OpenSSL 3 only; NULL with an older libcrypto (HMAC() is used). */
	EVP_MAC *(*mac_fetch)(OSSL_LIB_CTX *, const char *, const char *);
	EVP_MAC_CTX *(*mac_ctx_new)(EVP_MAC *);
	int (*mac_ctx_set_params)(EVP_MAC_CTX *, const OSSL_PARAM[]);
	int (*mac_init)(EVP_MAC_CTX *, const unsigned char *, size_t,
			const OSSL_PARAM[]);
	int (*mac_update)(EVP_MAC_CTX *, const unsigned char *, size_t);
	int (*mac_final)(EVP_MAC_CTX *, unsigned char *, size_t *, size_t);
	const char *(*md_name)(const EVP_MD *);
};

typedef char *rl_compentry_func_t(const char *, int);
typedef char **rl_completion_func_t(const char *, int, int);

struct edit_api {
	char *(*readline)(const char *);
	int (*add_history)(const char *);
	int (*read_history)(const char *);
	int (*write_history)(const char *);
	void (*stifle_history)(int);
	char **(*completion_matches)(const char *, rl_compentry_func_t *);
	const char **readline_name;
	rl_completion_func_t **attempted_completion_function;
	int *completion_append_character;
};

struct jq_api {
	jq_state *(*init)(void);
	void (*set_error_cb)(jq_state *, jq_msg_cb, void *);
	int (*compile)(jq_state *, const char *);
	void (*start)(jq_state *, jv, int);
	jv (*next)(jq_state *);
	void (*teardown)(jq_state **);
	jv (*parse_sized)(const char *, int);
	jv (*dump_string)(jv, int);
	const char *(*string_value)(jv);
	int (*string_length_bytes)(jv);
	void (*free)(jv);
	jv (*copy)(jv);
	jv_kind (*get_kind)(jv);
	int (*invalid_has_msg)(jv);
	jv (*invalid_get_msg)(jv);
};

extern struct curl_api curl_api;
extern struct crypto_api crypto_api;
extern struct edit_api edit_api;
extern struct jq_api jq_api;

#ifndef LAZY_IMPL
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init curl_api.global_init
#define curl_global_cleanup curl_api.global_cleanup
#define curl_easy_init curl_api.easy_init
#define curl_easy_reset curl_api.easy_reset
#define curl_easy_cleanup curl_api.easy_cleanup
#define curl_easy_setopt curl_api.easy_setopt
#define curl_easy_getinfo curl_api.easy_getinfo
#define curl_easy_strerror curl_api.easy_strerror
#define curl_multi_init curl_api.multi_init
#define curl_multi_setopt curl_api.multi_setopt
#define curl_multi_add_handle curl_api.multi_add_handle
#define curl_multi_remove_handle curl_api.multi_remove_handle
#define curl_multi_perform curl_api.multi_perform
#define curl_multi_poll curl_api.multi_poll
#define curl_multi_wakeup curl_api.multi_wakeup
#define curl_multi_timeout curl_api.multi_timeout
#define curl_multi_socket_action curl_api.multi_socket_action
#define curl_multi_assign curl_api.multi_assign
#define curl_multi_info_read curl_api.multi_info_read
#define curl_multi_cleanup curl_api.multi_cleanup
#define curl_slist_append curl_api.slist_append
#define curl_slist_free_all curl_api.slist_free_all
#define curl_version curl_api.version
#define curl_version_info curl_api.version_info
#define curl_getdate curl_api.getdate

#undef EVP_sha256
#undef EVP_sha1
#undef EVP_md5
#undef CRYPTO_memcmp
#define EVP_Digest crypto_api.digest
#define EVP_sha256 crypto_api.sha256
#define EVP_sha1 crypto_api.sha1
#define EVP_md5 crypto_api.md5
#define HMAC crypto_api.hmac
#define EVP_EncodeBlock crypto_api.encode_block
#define EVP_DecodeBlock crypto_api.decode_block
#define RAND_bytes crypto_api.rand_bytes
#define CRYPTO_memcmp crypto_api.memcmp
#define OpenSSL_version crypto_api.version
#define EVP_MAC_fetch crypto_api.mac_fetch
#define EVP_MAC_CTX_new crypto_api.mac_ctx_new
#define EVP_MAC_CTX_set_params crypto_api.mac_ctx_set_params
#define EVP_MAC_init crypto_api.mac_init
#define EVP_MAC_update crypto_api.mac_update
#define EVP_MAC_final crypto_api.mac_final
#define EVP_MD_get0_name crypto_api.md_name

#define readline edit_api.readline
#define add_history edit_api.add_history
#define read_history edit_api.read_history
#define write_history edit_api.write_history
#define stifle_history edit_api.stifle_history
#define rl_completion_matches edit_api.completion_matches
#define rl_readline_name (*edit_api.readline_name)
#define rl_attempted_completion_function                                       \
	(*edit_api.attempted_completion_function)
#define rl_completion_append_character (*edit_api.completion_append_character)

#define jq_init jq_api.init
#define jq_set_error_cb jq_api.set_error_cb
#define jq_compile jq_api.compile
#define jq_start jq_api.start
#define jq_next jq_api.next
#define jq_teardown jq_api.teardown
#define jv_parse_sized jq_api.parse_sized
#define jv_dump_string jq_api.dump_string
#define jv_string_value jq_api.string_value
#define jv_string_length_bytes jq_api.string_length_bytes
#define jv_free jq_api.free
#define jv_copy jq_api.copy
#define jv_get_kind jq_api.get_kind
#define jv_invalid_has_msg jq_api.invalid_has_msg
#define jv_invalid_get_msg jq_api.invalid_get_msg
#endif

#endif
