/*
 * pb.h -- the few protobuf wire-format operations the client needs, by hand: an encoder into a
 * buffer that is wiped when freed (requests carry values), and a bounds-checked field reader.
 *
 * Why not protobuf-c, as the server uses: its unpacked messages copy `bytes` fields into
 * allocations it frees without wiping, and sharing the server's generated code would tie this
 * layer to src/server. The client's messages are a handful of flat fields.
 */
#ifndef COFFER_CLIENT_PB_H
#define COFFER_CLIENT_PB_H

#include <stddef.h>
#include <stdint.h>

typedef struct pb_buf {
	uint8_t *data;
	size_t len, cap;
	int oom; /* an allocation failed: the buffer is unusable */
} pb_buf;

void pb_buf_free(pb_buf *b); /* wipes */
void pb_put_varint(pb_buf *b, uint32_t field, uint64_t v);
void pb_put_bytes(pb_buf *b, uint32_t field, const void *p, size_t len);
void pb_put_str(pb_buf *b, uint32_t field, const char *s);
/* Append another buffer as an embedded message field. */
void pb_put_msg(pb_buf *b, uint32_t field, const pb_buf *inner);

typedef struct pb_reader {
	const uint8_t *p, *end;
} pb_reader;

typedef struct pb_field {
	uint32_t field;
	unsigned wire;       /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
	uint64_t v;          /* wire 0 */
	const uint8_t *data; /* wire 2 */
	size_t len;
} pb_field;

/* The next field: 1, 0 at the end, -1 for malformed bytes. */
int pb_next(pb_reader *r, pb_field *f);

/*
 * Copy a length-delimited field as a C string into out (outlen includes the NUL). -1 if it is
 * too long or holds a NUL byte.
 */
int pb_str(const pb_field *f, char *out, size_t outlen);

#endif
