/* membuf.c - a growable, seekable file in memory, behind the encoders' custom I/O
 * (libsndfile virtual I/O in encode.c, an AVIOContext in encode_mp3.c). See membuf.h.
 */
#include "membuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mg_membuf_write(mg_membuf_t *mb, const void *src, size_t n)
{
    if (n == 0) return 0;
    if (mb->pos > SIZE_MAX - n) { mb->oom = 1; return -1; }
    size_t end = mb->pos + n;
    if (end > mb->cap) {
        size_t cap = mb->cap ? mb->cap : 64 * 1024;
        while (cap < end) {
            if (cap > SIZE_MAX / 2) { cap = end; break; }
            cap *= 2;
        }
        unsigned char *p = realloc(mb->data, cap);
        if (!p) { mb->oom = 1; return -1; }
        mb->data = p;
        mb->cap = cap;
    }
    if (mb->pos > mb->len) memset(mb->data + mb->len, 0, mb->pos - mb->len);
    memcpy(mb->data + mb->pos, src, n);
    mb->pos = end;
    if (end > mb->len) mb->len = end;
    return 0;
}

int64_t mg_membuf_seek(mg_membuf_t *mb, int64_t off, int whence)
{
    int64_t base;
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = (int64_t)mb->pos; break;
    case SEEK_END: base = (int64_t)mb->len; break;
    default: return -1;
    }
    if (off < -base) return -1;
    mb->pos = (size_t)(base + off);
    return (int64_t)mb->pos;
}
