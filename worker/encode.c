/* encode.c - the pipeline's last stage for lossless files: interleaved float PCM to FLAC
 * or WAV bytes in memory (pipeline.h), through libsndfile on a growable buffer. FLAC's
 * Vorbis comments are rewritten here, since libsndfile only knows fixed field names.
 * MP3 lives in encode_mp3.c.
 */
#include "pipeline.h"
#include "membuf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sndfile.h>

#include "../common/util.h"

/* ---- libsndfile on a growable in-memory file (membuf.h) ------------------------------ */

/* libsndfile virtual I/O over mg_membuf_t. */
static sf_count_t s_vio_filelen(void *user) { return (sf_count_t)((mg_membuf_t *)user)->len; }
static sf_count_t s_vio_seek(sf_count_t off, int whence, void *user)
{
    return (sf_count_t)mg_membuf_seek(user, (int64_t)off, whence);
}
static sf_count_t s_vio_read(void *ptr, sf_count_t count, void *user)
{
    mg_membuf_t *mb = user;
    if (count <= 0 || mb->pos >= mb->len) return 0;
    size_t n = mb->len - mb->pos;
    if ((uint64_t)count < n) n = (size_t)count;
    memcpy(ptr, mb->data + mb->pos, n);
    mb->pos += n;
    return (sf_count_t)n;
}
static sf_count_t s_vio_write(const void *ptr, sf_count_t count, void *user)
{
    if (count <= 0) return 0;
    return mg_membuf_write(user, ptr, (size_t)count) == 0 ? count : 0;
}
static sf_count_t s_vio_tell(void *user) { return (sf_count_t)((mg_membuf_t *)user)->pos; }

/* ---- quantisation ----------------------------------------------------------------- */

/* Float [-1, 1] to integer PCM, done here rather than by libsndfile so the scale is the
 * same one readers use (x * 2^(bits-1), clipped) and the result does not depend on the
 * libsndfile version's normalisation and clipping settings. NaN becomes 0. No dither:
 * output must be a pure function of the input (the pipeline's sha256 is reproducible). */
static int32_t s_quantise(float x, int bits)
{
    if (isnan(x)) return 0;
    const double full = (double)(1L << (bits - 1));
    double v = nearbyint((double)x * full);
    if (v > full - 1) v = full - 1;
    if (v < -full) v = -full;
    return (int32_t)v;
}

/* Writes pcm through an open SNDFILE as 16- or 24-bit integers. 0 or -1. */
static int s_sf_write_pcm(SNDFILE *sf, const float *pcm, size_t frames, int channels, int bits)
{
    enum { CHUNK = 4096 };
    int32_t buf32[CHUNK * 2];
    short buf16[CHUNK * 2];
    size_t done = 0;
    while (done < frames) {
        size_t n = frames - done < CHUNK ? frames - done : CHUNK;
        const float *src = pcm + done * (size_t)channels;
        size_t ns = n * (size_t)channels;
        sf_count_t w;
        if (bits == 16) {
            for (size_t i = 0; i < ns; i++) buf16[i] = (short)s_quantise(src[i], 16);
            w = sf_writef_short(sf, buf16, (sf_count_t)n);
        } else {
            /* libsndfile's int is full-scale 32-bit; PCM_24 keeps the top 24 bits. */
            for (size_t i = 0; i < ns; i++) buf32[i] = (int32_t)((uint32_t)s_quantise(src[i], 24) << 8);
            w = sf_writef_int(sf, buf32, (sf_count_t)n);
        }
        if (w != (sf_count_t)n) return -1;
        done += n;
    }
    return 0;
}

/* Encodes pcm with libsndfile into a new buffer (*data owned by the caller on success). */
/* loop_frames > 0 (WAV only): the file is one period of a seamless loop, written as a
 * forward loop over the whole file in the smpl chunk, where samplers and game engines read it. */
static int s_sf_encode(const char *what, int major, const float *pcm, size_t frames, int rate,
                       int channels, int bits, size_t loop_frames, unsigned char **data, size_t *len,
                       char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    if (!pcm || frames == 0) {
        mg_set_error(err, errlen, "%s encode: no samples to encode", what);
        return -1;
    }
    if (channels < 1 || channels > 2 || rate < 1000 || rate > 655350) {
        mg_set_error(err, errlen, "%s encode: unsupported layout %d Hz x %d channels", what, rate,
                 channels);
        return -1;
    }
    if (bits != 16 && bits != 24) {
        mg_set_error(err, errlen, "%s encode: bit depth %d not supported (use 16 or 24)", what, bits);
        return -1;
    }
    mg_membuf_t mb = {0};
    SF_VIRTUAL_IO vio = {s_vio_filelen, s_vio_seek, s_vio_read, s_vio_write, s_vio_tell};
    SF_INFO info = {0};
    info.samplerate = rate;
    info.channels = channels;
    info.format = major | (bits == 24 ? SF_FORMAT_PCM_24 : SF_FORMAT_PCM_16);
    SNDFILE *sf = sf_open_virtual(&vio, SFM_WRITE, &info, &mb);
    if (!sf) {
        mg_set_error(err, errlen, "%s encode: libsndfile cannot open a %d Hz x %d, %d-bit stream: %s",
                 what, rate, channels, bits, sf_strerror(NULL));
        free(mb.data);
        return -1;
    }
    int rc = 0;
    if (loop_frames > 0) {
        SF_INSTRUMENT inst;
        memset(&inst, 0, sizeof inst);
        inst.gain = 1;
        inst.basenote = 60;
        inst.velocity_lo = 0;
        inst.velocity_hi = 127;
        inst.key_lo = 0;
        inst.key_hi = 127;
        inst.loop_count = 1;
        inst.loops[0].mode = SF_LOOP_FORWARD;
        inst.loops[0].start = 0;
        inst.loops[0].end = (unsigned)loop_frames; /* libsndfile stores end - 1: the last frame, inclusive */
        inst.loops[0].count = 0;                    /* forever */
        if (sf_command(sf, SFC_SET_INSTRUMENT, &inst, sizeof inst) != SF_TRUE) {
            mg_set_error(err, errlen, "%s encode: libsndfile would not take the loop points", what);
            rc = -1;
        }
    }
    if (rc == 0) rc = s_sf_write_pcm(sf, pcm, frames, channels, bits);
    if (rc != 0 && !*err)
        mg_set_error(err, errlen, "%s encode: libsndfile write failed: %s", what,
                 mb.oom ? "out of memory" : sf_strerror(sf));
    /* Closing finalises the stream (FLAC: STREAMINFO with length and MD5; WAV: sizes). */
    if (sf_close(sf) != 0 && rc == 0) {
        mg_set_error(err, errlen, "%s encode: libsndfile close failed", what);
        rc = -1;
    }
    if (rc == 0 && mb.oom) {
        mg_set_error(err, errlen, "%s encode: out of memory", what);
        rc = -1;
    }
    if (rc != 0) {
        free(mb.data);
        return -1;
    }
    *data = mb.data;
    *len = mb.len;
    return 0;
}

/* ---- FLAC Vorbis comments ---------------------------------------------------------- */

enum { S_FLAC_STREAMINFO = 0, S_FLAC_VORBIS_COMMENT = 4, S_FLAC_MAX_BLOCK = 0xFFFFFF };

static void s_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void s_block_header(unsigned char *p, int last, int type, size_t len)
{
    p[0] = (unsigned char)((last ? 0x80 : 0) | (type & 0x7F));
    p[1] = (unsigned char)(len >> 16);
    p[2] = (unsigned char)(len >> 8);
    p[3] = (unsigned char)len;
}

/* Builds a VORBIS_COMMENT block body: vendor "mg <version>", then "KEY=value" per tag.
 * Field names must be ASCII 0x20..0x7D without '='; other bytes become '_' (kv keys are
 * already [A-Za-z0-9_.-], so this only guards hand-built tag sets). Empty names are
 * rejected. Returns a malloc'd body (caller owns) or NULL with err set. */
static unsigned char *s_vorbis_comment(const mg_kv_t *tags, size_t *out_len, char *err,
                                       size_t errlen)
{
    static const char vendor[] = "mg " MG_VERSION;
    size_t n = tags ? tags->n : 0;
    size_t total = 4 + (sizeof vendor - 1) + 4;
    for (size_t i = 0; i < n; i++) {
        const char *k = tags->pairs[i].key, *v = tags->pairs[i].value;
        if (!k || !*k) {
            mg_set_error(err, errlen, "flac tags: tag %zu has an empty name", i + 1);
            return NULL;
        }
        size_t c = strlen(k) + 1 + (v ? strlen(v) : 0);
        if (c > UINT32_MAX || total > S_FLAC_MAX_BLOCK) break;
        total += 4 + c;
    }
    if (total > S_FLAC_MAX_BLOCK) {
        mg_set_error(err, errlen,
                 "flac tags: Vorbis comments too large for one metadata block (over %d bytes); "
                 "shorten the tag values",
                 S_FLAC_MAX_BLOCK);
        return NULL;
    }
    unsigned char *body = malloc(total), *p = body;
    if (!body) {
        mg_set_error(err, errlen, "flac tags: out of memory");
        return NULL;
    }
    s_le32(p, (uint32_t)(sizeof vendor - 1));
    memcpy(p + 4, vendor, sizeof vendor - 1);
    p += 4 + sizeof vendor - 1;
    s_le32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        const char *k = tags->pairs[i].key, *v = tags->pairs[i].value ? tags->pairs[i].value : "";
        size_t kl = strlen(k), vl = strlen(v);
        s_le32(p, (uint32_t)(kl + 1 + vl));
        p += 4;
        for (size_t j = 0; j < kl; j++) {
            unsigned char ch = (unsigned char)k[j];
            *p++ = (ch < 0x20 || ch > 0x7D || ch == '=') ? '_' : ch;
        }
        *p++ = '=';
        memcpy(p, v, vl);
        p += vl;
    }
    *out_len = total;
    return body;
}

/* Replaces the metadata of an encoded FLAC stream: keeps STREAMINFO first, drops any
 * VORBIS_COMMENT block, inserts ours right after STREAMINFO, keeps the other blocks in
 * order and sets the last-metadata-block flag on the final one only. On success *data /
 * *len are replaced by a new buffer (the old one is freed); on failure they are
 * untouched and err says why. */
static int s_flac_set_tags(unsigned char **data, size_t *len, const mg_kv_t *tags, char *err,
                           size_t errlen)
{
    const unsigned char *in = *data;
    size_t n = *len;
    if (n < 8 || memcmp(in, "fLaC", 4) != 0) {
        mg_set_error(err, errlen, "flac tags: encoder output does not start with \"fLaC\"");
        return -1;
    }
    /* First pass: validate the block chain and find where audio frames start. */
    size_t pos = 4, keep_bytes = 0;
    int last = 0, first = 1;
    while (!last) {
        if (pos + 4 > n) {
            mg_set_error(err, errlen, "flac tags: metadata block header truncated at byte %zu", pos);
            return -1;
        }
        int type = in[pos] & 0x7F;
        last = in[pos] & 0x80;
        size_t bl = ((size_t)in[pos + 1] << 16) | ((size_t)in[pos + 2] << 8) | in[pos + 3];
        if (type == 127 || pos + 4 + bl > n) {
            mg_set_error(err, errlen, "flac tags: bad metadata block (type %d, %zu bytes) at byte %zu",
                     type, bl, pos);
            return -1;
        }
        if (first && type != S_FLAC_STREAMINFO) {
            mg_set_error(err, errlen, "flac tags: first metadata block is type %d, not STREAMINFO",
                     type);
            return -1;
        }
        first = 0;
        if (type != S_FLAC_VORBIS_COMMENT) keep_bytes += 4 + bl;
        pos += 4 + bl;
    }
    size_t audio_off = pos;

    size_t vc_len;
    unsigned char *vc = s_vorbis_comment(tags, &vc_len, err, errlen);
    if (!vc) return -1;
    size_t out_len = 4 + keep_bytes + 4 + vc_len + (n - audio_off);
    unsigned char *out = malloc(out_len);
    if (!out) {
        free(vc);
        mg_set_error(err, errlen, "flac tags: out of memory (%zu bytes)", out_len);
        return -1;
    }
    memcpy(out, "fLaC", 4);
    size_t o = 4, last_hdr = 0;
    pos = 4;
    last = 0;
    while (!last) {
        int type = in[pos] & 0x7F;
        last = in[pos] & 0x80;
        size_t bl = ((size_t)in[pos + 1] << 16) | ((size_t)in[pos + 2] << 8) | in[pos + 3];
        if (type != S_FLAC_VORBIS_COMMENT) {
            last_hdr = o;
            s_block_header(out + o, 0, type, bl);
            memcpy(out + o + 4, in + pos + 4, bl);
            o += 4 + bl;
        }
        if (type == S_FLAC_STREAMINFO) {
            last_hdr = o;
            s_block_header(out + o, 0, S_FLAC_VORBIS_COMMENT, vc_len);
            memcpy(out + o + 4, vc, vc_len);
            o += 4 + vc_len;
        }
        pos += 4 + bl;
    }
    out[last_hdr] |= 0x80;
    memcpy(out + o, in + audio_off, n - audio_off);
    o += n - audio_off;
    free(vc);
    free(*data);
    *data = out;
    *len = o;
    return 0;
}

int mg_encode_flac(const float *pcm, size_t frames, int rate, int channels, int bits,
                   const mg_kv_t *tags, unsigned char **data, size_t *len, char *err, size_t errlen)
{
    if (s_sf_encode("flac", SF_FORMAT_FLAC, pcm, frames, rate, channels, bits, 0, data, len, err,
                    errlen) != 0)
        return -1;
    if (s_flac_set_tags(data, len, tags, err, errlen) != 0) {
        free(*data);
        *data = NULL;
        *len = 0;
        return -1;
    }
    return 0;
}

int mg_encode_wav(const float *pcm, size_t frames, int rate, int channels, unsigned char **data,
                  size_t *len, char *err, size_t errlen)
{
    return mg_encode_wav_loop(pcm, frames, rate, channels, 0, data, len, err, errlen);
}

int mg_encode_wav_loop(const float *pcm, size_t frames, int rate, int channels, size_t loop_frames,
                       unsigned char **data, size_t *len, char *err, size_t errlen)
{
    if (err && errlen) err[0] = 0;
    return s_sf_encode("wav", SF_FORMAT_WAV, pcm, frames, rate, channels, 16, loop_frames, data, len, err,
                       errlen);
}
