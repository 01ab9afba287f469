/* What a request will need, loaded on two threads of their own while
 * the caller goes on: libcurl, libcrypto and OpenSSL's HMAC tables are more
 * than half of a one-shot `trainctl call`, and loading the Lua library
 * needs none of them. lazy_curl(), lazy_crypto() and crypto_hmac() wait
 * for the part they need. */
#ifndef TRAINCTL_PRELOAD_H
#define TRAINCTL_PRELOAD_H

/* Starts the threads (no signal is delivered to them); without them,
 * each library loads where it is first needed, as always. */
void preload_start(void);
/* Waits for the threads to end: before exit, whose handlers (OpenSSL's
 * among them) must not run while they load. */
void preload_wait(void);

#endif
