/*
 * wipe.h -- allocators that wipe memory before freeing it, for the libraries that carry secret
 * values through their own buffers: nghttp2 (frames), libevent (socket buffers) and OpenSSL (TLS
 * records). Values then do not linger in freed heap memory. Linux/glibc: the size of a block
 * comes from malloc_usable_size().
 */
#ifndef COFFER_SERVER_WIPE_H
#define COFFER_SERVER_WIPE_H

#include <stddef.h>

void wipe_free(void *p);
void *wipe_realloc(void *p, size_t n);

/* The nghttp2_mem that wipes (pointer to a static; for nghttp2_session_server_new3). */
const void *wipe_nghttp2_mem(void);

/*
 * Install the wiping allocators in libevent and OpenSSL. Must run before either library
 * allocates anything (libevent) or it has no effect (OpenSSL refuses late changes).
 */
void wipe_install_global(void);

#endif
