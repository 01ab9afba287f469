/* What a request will need, loaded on a thread of its own while the
 * caller goes on: libcurl, libcrypto and OpenSSL's HMAC tables are more
 * than half of a one-shot `trainctl call`, and loading the Lua library
 * needs none of them. lazy_curl(), lazy_crypto() and crypto_hmac() wait
 * for the part they need. */
#ifndef TRAINCTL_PRELOAD_H
#define TRAINCTL_PRELOAD_H

/* Starts the thread (no signal is delivered to it); without one, each
 * library loads where it is first needed, as always. */
void preload_start(void);
/* Waits for the thread to end: before exit, whose handlers (OpenSSL's
 * among them) must not run while it loads. */
void preload_wait(void);

#endif
