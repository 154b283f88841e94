/*
 * pb.c -- protobuf wire format, the subset the client needs (see pb.h).
 */
#include "pb.h"

#include <stdlib.h>
#include <string.h>

void pb_buf_free(pb_buf *b)
{
	if (b->data != NULL) {
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	memset(b, 0, sizeof(*b));
}

/* Grow by copying, never realloc: the old block may hold a value and is wiped first. */
static int reserve(pb_buf *b, size_t more)
{
	if (b->oom)
		return -1;
	if (more <= b->cap - b->len)
		return 0;
	if (more > SIZE_MAX / 2 - b->len) {
		b->oom = 1;
		return -1;
	}
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->len < more)
		cap *= 2;
	uint8_t *d = malloc(cap);
	if (d == NULL) {
		b->oom = 1;
		return -1;
	}
	if (b->len > 0)
		memcpy(d, b->data, b->len);
	if (b->data != NULL) {
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
	b->data = d;
	b->cap = cap;
	return 0;
}

static void raw_varint(pb_buf *b, uint64_t v)
{
	if (reserve(b, 10) != 0)
		return;
	do {
		uint8_t byte = v & 0x7f;
		v >>= 7;
		b->data[b->len++] = byte | (v ? 0x80 : 0);
	} while (v);
}

void pb_put_varint(pb_buf *b, uint32_t field, uint64_t v)
{
	raw_varint(b, (uint64_t)field << 3);
	raw_varint(b, v);
}

void pb_put_bytes(pb_buf *b, uint32_t field, const void *p, size_t len)
{
	raw_varint(b, (uint64_t)field << 3 | 2);
	raw_varint(b, len);
	if (len == 0 || reserve(b, len) != 0)
		return;
	memcpy(b->data + b->len, p, len);
	b->len += len;
}

void pb_put_str(pb_buf *b, uint32_t field, const char *s)
{
	if (s != NULL && s[0] != '\0') /* proto3: an empty string is not sent */
		pb_put_bytes(b, field, s, strlen(s));
}

void pb_put_msg(pb_buf *b, uint32_t field, const pb_buf *inner)
{
	if (inner->oom)
		b->oom = 1;
	else
		pb_put_bytes(b, field, inner->data, inner->len);
}

static int read_varint(pb_reader *r, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
		uint8_t byte = *r->p++;
		x |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

int pb_next(pb_reader *r, pb_field *f)
{
	uint64_t key;
	if (r->p >= r->end)
		return 0;
	if (read_varint(r, &key) != 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
		return -1;
	memset(f, 0, sizeof(*f));
	f->field = (uint32_t)(key >> 3);
	f->wire = (unsigned)(key & 7);
	switch (f->wire) {
	case 0:
		return read_varint(r, &f->v) == 0 ? 1 : -1;
	case 1:
	case 5: {
		size_t n = f->wire == 1 ? 8 : 4;
		if ((size_t)(r->end - r->p) < n)
			return -1;
		r->p += n;
		return 1;
	}
	case 2: {
		uint64_t n;
		if (read_varint(r, &n) != 0 || n > (uint64_t)(r->end - r->p))
			return -1;
		f->data = r->p;
		f->len = (size_t)n;
		r->p += n;
		return 1;
	}
	default:
		return -1;
	}
}

int pb_str(const pb_field *f, char *out, size_t outlen)
{
	if (f->wire != 2 || f->len >= outlen || memchr(f->data, 0, f->len) != NULL)
		return -1;
	if (f->len > 0)
		memcpy(out, f->data, f->len);
	out[f->len] = '\0';
	return 0;
}
