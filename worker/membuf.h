/* membuf.h - a growable, seekable file in memory: the encoders write FLAC, WAV and MP3
 * into it through their libraries' custom I/O hooks, and the pipeline hands the bytes on.
 * Writes past the end grow it; a seek past the end followed by a write zero-fills the gap.
 */
#ifndef MG_MEMBUF_H
#define MG_MEMBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    unsigned char *data; /* owned: free() it, or take it and set data = NULL */
    size_t len, cap, pos;
    int oom;             /* set when a write could not grow the buffer */
} mg_membuf_t;

/* Writes n bytes at pos. 0, or -1 (and oom set) when the buffer cannot grow. */
int mg_membuf_write(mg_membuf_t *mb, const void *src, size_t n);
/* fseek semantics (SEEK_SET / SEEK_CUR / SEEK_END). The new position, or -1. */
int64_t mg_membuf_seek(mg_membuf_t *mb, int64_t off, int whence);

#endif
