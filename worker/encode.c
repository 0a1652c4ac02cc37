/* encode.c - the pipeline's last stage: interleaved float PCM to FLAC, MP3 or WAV bytes
 * in memory (pipeline.h). FLAC and WAV go through libsndfile on a growable buffer; FLAC's
 * Vorbis comments are then rewritten here, since libsndfile only knows fixed field names.
 * MP3 is libavcodec's libmp3lame encoder into libavformat's mp3 muxer (ID3v2.4 TXXX).
 */
#include "pipeline.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <sndfile.h>

#include "../common/util.h"

/* ---- growable in-memory file ----------------------------------------------------- */

/* A seekable file in memory, shared by the libsndfile and libavformat back ends. Writes
 * past the end grow it; a seek past the end followed by a write zero-fills the gap. */
typedef struct {
    unsigned char *data; /* owned */
    size_t len, cap, pos;
    int oom;             /* set when a write could not grow the buffer */
} s_membuf_t;

static int s_membuf_write(s_membuf_t *mb, const void *src, size_t n)
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

static int64_t s_membuf_seek(s_membuf_t *mb, int64_t off, int whence)
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

/* libsndfile virtual I/O over s_membuf_t. */
static sf_count_t s_vio_filelen(void *user) { return (sf_count_t)((s_membuf_t *)user)->len; }
static sf_count_t s_vio_seek(sf_count_t off, int whence, void *user)
{
    return (sf_count_t)s_membuf_seek(user, (int64_t)off, whence);
}
static sf_count_t s_vio_read(void *ptr, sf_count_t count, void *user)
{
    s_membuf_t *mb = user;
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
    return s_membuf_write(user, ptr, (size_t)count) == 0 ? count : 0;
}
static sf_count_t s_vio_tell(void *user) { return (sf_count_t)((s_membuf_t *)user)->pos; }

/* ---- quantisation ----------------------------------------------------------------- */

/* Float [-1, 1] to integer PCM, done here rather than by libsndfile so the scale is the
 * same one readers use (x * 2^(bits-1), clipped) and the result does not depend on the
 * libsndfile version's normalisation and clipping settings. NaN becomes 0. No dither:
 * output must be a pure function of the input (the pipeline's sha256 is reproducible). */
static int32_t s_quantise(float x, int bits)
{
    if (!(x == x)) return 0;
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
static int s_sf_encode(const char *what, int major, const float *pcm, size_t frames, int rate,
                       int channels, int bits, unsigned char **data, size_t *len, char *err,
                       size_t errlen)
{
    *data = NULL;
    *len = 0;
    if (!pcm || frames == 0) {
        snprintf(err, errlen, "%s encode: no samples to encode", what);
        return -1;
    }
    if (channels < 1 || channels > 2 || rate < 1000 || rate > 655350) {
        snprintf(err, errlen, "%s encode: unsupported layout %d Hz x %d channels", what, rate,
                 channels);
        return -1;
    }
    if (bits != 16 && bits != 24) {
        snprintf(err, errlen, "%s encode: bit depth %d not supported (use 16 or 24)", what, bits);
        return -1;
    }
    s_membuf_t mb = {0};
    SF_VIRTUAL_IO vio = {s_vio_filelen, s_vio_seek, s_vio_read, s_vio_write, s_vio_tell};
    SF_INFO info = {0};
    info.samplerate = rate;
    info.channels = channels;
    info.format = major | (bits == 24 ? SF_FORMAT_PCM_24 : SF_FORMAT_PCM_16);
    SNDFILE *sf = sf_open_virtual(&vio, SFM_WRITE, &info, &mb);
    if (!sf) {
        snprintf(err, errlen, "%s encode: libsndfile cannot open a %d Hz x %d, %d-bit stream: %s",
                 what, rate, channels, bits, sf_strerror(NULL));
        free(mb.data);
        return -1;
    }
    int rc = s_sf_write_pcm(sf, pcm, frames, channels, bits);
    if (rc != 0)
        snprintf(err, errlen, "%s encode: libsndfile write failed: %s", what,
                 mb.oom ? "out of memory" : sf_strerror(sf));
    /* Closing finalises the stream (FLAC: STREAMINFO with length and MD5; WAV: sizes). */
    if (sf_close(sf) != 0 && rc == 0) {
        snprintf(err, errlen, "%s encode: libsndfile close failed", what);
        rc = -1;
    }
    if (rc == 0 && mb.oom) {
        snprintf(err, errlen, "%s encode: out of memory", what);
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
            snprintf(err, errlen, "flac tags: tag %zu has an empty name", i + 1);
            return NULL;
        }
        size_t c = strlen(k) + 1 + (v ? strlen(v) : 0);
        if (c > UINT32_MAX || total > S_FLAC_MAX_BLOCK) break;
        total += 4 + c;
    }
    if (total > S_FLAC_MAX_BLOCK) {
        snprintf(err, errlen,
                 "flac tags: Vorbis comments too large for one metadata block (over %d bytes); "
                 "shorten the tag values",
                 S_FLAC_MAX_BLOCK);
        return NULL;
    }
    unsigned char *body = malloc(total), *p = body;
    if (!body) {
        snprintf(err, errlen, "flac tags: out of memory");
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
        snprintf(err, errlen, "flac tags: encoder output does not start with \"fLaC\"");
        return -1;
    }
    /* First pass: validate the block chain and find where audio frames start. */
    size_t pos = 4, keep_bytes = 0;
    int last = 0, first = 1;
    while (!last) {
        if (pos + 4 > n) {
            snprintf(err, errlen, "flac tags: metadata block header truncated at byte %zu", pos);
            return -1;
        }
        int type = in[pos] & 0x7F;
        last = in[pos] & 0x80;
        size_t bl = ((size_t)in[pos + 1] << 16) | ((size_t)in[pos + 2] << 8) | in[pos + 3];
        if (type == 127 || pos + 4 + bl > n) {
            snprintf(err, errlen, "flac tags: bad metadata block (type %d, %zu bytes) at byte %zu",
                     type, bl, pos);
            return -1;
        }
        if (first && type != S_FLAC_STREAMINFO) {
            snprintf(err, errlen, "flac tags: first metadata block is type %d, not STREAMINFO",
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
        snprintf(err, errlen, "flac tags: out of memory (%zu bytes)", out_len);
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
    if (s_sf_encode("flac", SF_FORMAT_FLAC, pcm, frames, rate, channels, bits, data, len, err,
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
    return s_sf_encode("wav", SF_FORMAT_WAV, pcm, frames, rate, channels, 16, data, len, err,
                       errlen);
}

/* ---- MP3 ------------------------------------------------------------------------- */

/* The write callback lost its const in FFmpeg 7 (libavformat 61). */
#if LIBAVFORMAT_VERSION_MAJOR >= 61
#define S_AVIO_WBUF const uint8_t *
#else
#define S_AVIO_WBUF uint8_t *
#endif

static int s_avio_write(void *opaque, S_AVIO_WBUF buf, int n)
{
    if (n < 0) return AVERROR(EINVAL);
    return s_membuf_write(opaque, buf, (size_t)n) == 0 ? n : AVERROR(ENOMEM);
}

static int64_t s_avio_seek(void *opaque, int64_t off, int whence)
{
    s_membuf_t *mb = opaque;
    if (whence & AVSEEK_SIZE) return (int64_t)mb->len;
    int64_t r = s_membuf_seek(mb, off, whence & ~AVSEEK_FORCE);
    return r < 0 ? AVERROR(EINVAL) : r;
}

/* Everything mg_encode_mp3 allocates, so one function can release it on every path. */
typedef struct {
    AVCodecContext *enc;
    AVFormatContext *fmt;
    AVIOContext *pb;
    SwrContext *swr;
    AVFrame *frame;
    AVPacket *pkt;
    AVStream *st;
    s_membuf_t mb;
} s_mp3_t;

static void s_mp3_free(s_mp3_t *m)
{
    if (m->pb) {
        av_freep(&m->pb->buffer);
        avio_context_free(&m->pb);
    }
    if (m->fmt) {
        m->fmt->pb = NULL; /* ours, freed above */
        avformat_free_context(m->fmt);
    }
    avcodec_free_context(&m->enc);
    swr_free(&m->swr);
    av_frame_free(&m->frame);
    av_packet_free(&m->pkt);
    free(m->mb.data);
    memset(m, 0, sizeof *m);
}

static int s_averr(char *err, size_t errlen, const char *where, int code)
{
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(code, msg, sizeof msg);
    snprintf(err, errlen, "mp3 encode: %s: %s", where, msg);
    return -1;
}

/* Moves every packet the encoder has ready into the muxer. 0, or -1 with err set. */
static int s_mp3_drain(s_mp3_t *m, char *err, size_t errlen)
{
    for (;;) {
        int r = avcodec_receive_packet(m->enc, m->pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
        if (r < 0) return s_averr(err, errlen, "receiving a packet from libmp3lame", r);
        av_packet_rescale_ts(m->pkt, m->enc->time_base, m->st->time_base);
        m->pkt->stream_index = m->st->index;
        r = av_interleaved_write_frame(m->fmt, m->pkt); /* takes the packet's reference */
        if (r < 0) return s_averr(err, errlen, "writing a packet to the mp3 muxer", r);
    }
}

int mg_encode_mp3(const float *pcm, size_t frames, int rate, int channels, int bitrate_kbps,
                  const mg_kv_t *tags, unsigned char **data, size_t *len, char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    if (!pcm || frames == 0) {
        snprintf(err, errlen, "mp3 encode: no samples to encode");
        return -1;
    }
    if (channels < 1 || channels > 2) {
        snprintf(err, errlen, "mp3 encode: %d channels not supported (1 or 2)", channels);
        return -1;
    }
    if (bitrate_kbps < 8 || bitrate_kbps > 320) {
        snprintf(err, errlen, "mp3 encode: bitrate %d kbps out of range (8..320)", bitrate_kbps);
        return -1;
    }
    const AVCodec *codec = avcodec_find_encoder_by_name("libmp3lame");
    if (!codec) {
        snprintf(err, errlen, "mp3 encode: libavcodec was built without libmp3lame "
                              "(install an FFmpeg build with --enable-libmp3lame)");
        return -1;
    }
    int rate_ok = codec->supported_samplerates == NULL;
    for (const int *r = codec->supported_samplerates; r && *r; r++)
        if (*r == rate) rate_ok = 1;
    if (!rate_ok) {
        snprintf(err, errlen, "mp3 encode: %d Hz is not an MPEG audio rate (8000..48000 family); "
                              "resample first", rate);
        return -1;
    }

    s_mp3_t m = {0};
    int r;
    m.enc = avcodec_alloc_context3(codec);
    m.frame = av_frame_alloc();
    m.pkt = av_packet_alloc();
    if (!m.enc || !m.frame || !m.pkt) goto oom;
    m.enc->bit_rate = (int64_t)bitrate_kbps * 1000;
    m.enc->sample_rate = rate;
    av_channel_layout_default(&m.enc->ch_layout, channels);
    m.enc->sample_fmt = codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
    m.enc->time_base = (AVRational){1, rate};

    r = avformat_alloc_output_context2(&m.fmt, NULL, "mp3", NULL);
    if (r < 0 || !m.fmt) {
        s_averr(err, errlen, "creating the mp3 muxer", r < 0 ? r : AVERROR(ENOMEM));
        goto fail;
    }
    if (m.fmt->oformat->flags & AVFMT_GLOBALHEADER) m.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((r = avcodec_open2(m.enc, codec, NULL)) < 0) {
        s_averr(err, errlen, "opening libmp3lame", r);
        goto fail;
    }
    m.st = avformat_new_stream(m.fmt, NULL);
    if (!m.st) goto oom;
    if ((r = avcodec_parameters_from_context(m.st->codecpar, m.enc)) < 0) {
        s_averr(err, errlen, "copying encoder parameters", r);
        goto fail;
    }
    m.st->time_base = m.enc->time_base;
    for (size_t i = 0; tags && i < tags->n; i++)
        if (av_dict_set(&m.fmt->metadata, tags->pairs[i].key, tags->pairs[i].value, 0) < 0)
            goto oom;

    /* A seekable custom AVIOContext (not a dyn_buf) so the muxer can go back at the end
     * and fill in the Xing/LAME frame: exact length, encoder delay and padding. */
    unsigned char *iobuf = av_malloc(32768);
    if (!iobuf) goto oom;
    m.pb = avio_alloc_context(iobuf, 32768, 1, &m.mb, NULL, s_avio_write, s_avio_seek);
    if (!m.pb) {
        av_free(iobuf);
        goto oom;
    }
    m.fmt->pb = m.pb;

    AVDictionary *opts = NULL;
    av_dict_set(&opts, "id3v2_version", "4", 0);
    r = avformat_write_header(m.fmt, &opts);
    av_dict_free(&opts);
    if (r < 0) {
        s_averr(err, errlen, "writing the ID3v2 header", r);
        goto fail;
    }

    r = swr_alloc_set_opts2(&m.swr, &m.enc->ch_layout, m.enc->sample_fmt, rate,
                            &m.enc->ch_layout, AV_SAMPLE_FMT_FLT, rate, 0, NULL);
    if (r < 0 || (r = swr_init(m.swr)) < 0) {
        s_averr(err, errlen, "setting up the float -> encoder sample format conversion", r);
        goto fail;
    }

    int fs = m.enc->frame_size > 0 ? m.enc->frame_size : 1152;
    int small_last = (codec->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME) != 0;
    m.frame->nb_samples = fs;
    m.frame->format = m.enc->sample_fmt;
    m.frame->sample_rate = rate;
    if ((r = av_channel_layout_copy(&m.frame->ch_layout, &m.enc->ch_layout)) < 0 ||
        (r = av_frame_get_buffer(m.frame, 0)) < 0) {
        s_averr(err, errlen, "allocating an audio frame", r);
        goto fail;
    }
    for (size_t off = 0; off < frames;) {
        int n = frames - off < (size_t)fs ? (int)(frames - off) : fs;
        if ((r = av_frame_make_writable(m.frame)) < 0) {
            s_averr(err, errlen, "making the frame writable", r);
            goto fail;
        }
        const uint8_t *in[1] = {(const uint8_t *)(pcm + off * (size_t)channels)};
        int got = swr_convert(m.swr, m.frame->data, fs, in, n);
        if (got != n) {
            s_averr(err, errlen, "converting samples", got < 0 ? got : AVERROR_BUG);
            goto fail;
        }
        m.frame->nb_samples = n;
        if (n < fs && !small_last) {
            av_samples_set_silence(m.frame->data, n, fs - n, channels, m.enc->sample_fmt);
            m.frame->nb_samples = fs;
        }
        m.frame->pts = (int64_t)off;
        if ((r = avcodec_send_frame(m.enc, m.frame)) < 0) {
            s_averr(err, errlen, "sending a frame to libmp3lame", r);
            goto fail;
        }
        if (s_mp3_drain(&m, err, errlen) != 0) goto fail;
        off += (size_t)n;
    }
    if ((r = avcodec_send_frame(m.enc, NULL)) < 0) {
        s_averr(err, errlen, "flushing libmp3lame", r);
        goto fail;
    }
    if (s_mp3_drain(&m, err, errlen) != 0) goto fail;
    if ((r = av_write_trailer(m.fmt)) < 0) {
        s_averr(err, errlen, "writing the mp3 trailer", r);
        goto fail;
    }
    avio_flush(m.pb);
    if (m.mb.oom || m.pb->error < 0) goto oom;

    *data = m.mb.data;
    *len = m.mb.len;
    m.mb.data = NULL;
    s_mp3_free(&m);
    return 0;

oom:
    snprintf(err, errlen, "mp3 encode: out of memory");
fail:
    s_mp3_free(&m);
    return -1;
}
