/* encode_mp3.c - the pipeline's MP3 output (pipeline.h): interleaved float PCM through
 * libswresample (to the encoder's sample format), libavcodec's libmp3lame encoder and
 * libavformat's mp3 muxer (ID3v2.4, tags as TXXX frames) into memory; and the way back
 * (mg_decode_mp3), with which the pipeline measures the true peak of the file it delivers.
 */
#include "pipeline.h"
#include "membuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>

#include "../common/util.h"

/* ---- MP3 ------------------------------------------------------------------------- */

/* The write callback takes a const buffer from FFmpeg 7 (libavformat 61) on. */
#if LIBAVFORMAT_VERSION_MAJOR >= 61
#define S_AVIO_WBUF const uint8_t *
#else
#define S_AVIO_WBUF uint8_t *
#endif

static int s_avio_write(void *opaque, S_AVIO_WBUF buf, int n)
{
    if (n < 0) return AVERROR(EINVAL);
    return mg_membuf_write(opaque, buf, (size_t)n) == 0 ? n : AVERROR(ENOMEM);
}

static int64_t s_avio_seek(void *opaque, int64_t off, int whence)
{
    mg_membuf_t *mb = opaque;
    if (whence & AVSEEK_SIZE) return (int64_t)mb->len;
    int64_t r = mg_membuf_seek(mb, off, whence & ~AVSEEK_FORCE);
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
    mg_membuf_t mb;
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
    mg_set_error(err, errlen, "mp3 encode: %s: %s", where, msg);
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
        mg_set_error(err, errlen, "mp3 encode: no samples to encode");
        return -1;
    }
    if (channels < 1 || channels > 2) {
        mg_set_error(err, errlen, "mp3 encode: %d channels not supported (1 or 2)", channels);
        return -1;
    }
    if (bitrate_kbps < 8 || bitrate_kbps > 320) {
        mg_set_error(err, errlen, "mp3 encode: bitrate %d kbps out of range (8..320)", bitrate_kbps);
        return -1;
    }
    const AVCodec *codec = avcodec_find_encoder_by_name("libmp3lame");
    if (!codec) {
        mg_set_error(err, errlen, "mp3 encode: libavcodec was built without libmp3lame "
                              "(install an FFmpeg build with --enable-libmp3lame)");
        return -1;
    }
    int rate_ok = codec->supported_samplerates == NULL;
    for (const int *r = codec->supported_samplerates; r && *r; r++)
        if (*r == rate) rate_ok = 1;
    if (!rate_ok) {
        mg_set_error(err, errlen, "mp3 encode: %d Hz is not an MPEG audio rate (8000..48000 family); "
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
    /* No "encoder=Lavf<version>" frame: the file carries our tags only, and its bytes do
     * not change with the libavformat patch level. */
    m.fmt->flags |= AVFMT_FLAG_BITEXACT;
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
    mg_set_error(err, errlen, "mp3 encode: out of memory");
fail:
    s_mp3_free(&m);
    return -1;
}

/* ---- decoding -------------------------------------------------------------------- */

/* A read-only file in memory for libavformat's custom I/O. */
typedef struct {
    const unsigned char *data;
    size_t len, pos;
} s_rbuf_t;

static int s_rbuf_read(void *opaque, uint8_t *buf, int n)
{
    s_rbuf_t *rb = opaque;
    if (n <= 0) return AVERROR(EINVAL);
    if (rb->pos >= rb->len) return AVERROR_EOF;
    size_t k = rb->len - rb->pos < (size_t)n ? rb->len - rb->pos : (size_t)n;
    memcpy(buf, rb->data + rb->pos, k);
    rb->pos += k;
    return (int)k;
}

static int64_t s_rbuf_seek(void *opaque, int64_t off, int whence)
{
    s_rbuf_t *rb = opaque;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return (int64_t)rb->len;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t)rb->pos
                 : whence == SEEK_END ? (int64_t)rb->len : -1;
    if (base < 0 || base + off < 0 || base + off > (int64_t)rb->len) return AVERROR(EINVAL);
    rb->pos = (size_t)(base + off);
    return (int64_t)rb->pos;
}

static void s_decerr(char *err, size_t errlen, const char *where, int code)
{
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(code, msg, sizeof msg);
    mg_set_error(err, errlen, "mp3 decode: %s: %s", where, msg);
}

/* Appends an FLTP or FLT frame to the interleaved buffer *pcm (capacity *cap frames).
 * 0, or -1 when out of memory. */
static int s_append_frame(const AVFrame *fr, int ch, float **pcm, size_t *n, size_t *cap)
{
    size_t want = *n + (size_t)fr->nb_samples;
    if (want > *cap) {
        size_t nc = *cap ? *cap : 65536;
        while (nc < want) nc *= 2;
        float *p = realloc(*pcm, nc * (size_t)ch * sizeof *p);
        if (!p) return -1;
        *pcm = p;
        *cap = nc;
    }
    float *dst = *pcm + *n * (size_t)ch;
    if (fr->format == AV_SAMPLE_FMT_FLT) {
        memcpy(dst, fr->extended_data[0], (size_t)fr->nb_samples * (size_t)ch * sizeof *dst);
    } else {
        for (int c = 0; c < ch; c++) {
            const float *src = (const float *)fr->extended_data[c];
            for (int i = 0; i < fr->nb_samples; i++)
                dst[(size_t)i * (size_t)ch + (size_t)c] = src[i];
        }
    }
    *n = want;
    return 0;
}

int mg_decode_mp3(const unsigned char *data, size_t len, float **pcm, size_t *frames, int *rate,
                  int *channels, char *err, size_t errlen)
{
    *pcm = NULL;
    *frames = 0;
    s_rbuf_t rb = {data, len, 0};
    AVFormatContext *ic = NULL;
    AVIOContext *pb = NULL;
    AVCodecContext *dc = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    unsigned char *iobuf = av_malloc(32768);
    float *out = NULL;
    size_t n = 0, cap = 0;
    int r, rc = -1, ch = 0;
    if (!pkt || !fr || !iobuf) goto oom;
    pb = avio_alloc_context(iobuf, 32768, 0, &rb, s_rbuf_read, NULL, s_rbuf_seek);
    if (!pb) goto oom;
    iobuf = NULL; /* pb's now */
    ic = avformat_alloc_context();
    if (!ic) goto oom;
    ic->pb = pb;
    if ((r = avformat_open_input(&ic, NULL, av_find_input_format("mp3"), NULL)) < 0) {
        ic = NULL; /* freed by avformat_open_input on failure */
        s_decerr(err, errlen, "not a readable mp3 file", r);
        goto done;
    }
    if ((r = avformat_find_stream_info(ic, NULL)) < 0) {
        s_decerr(err, errlen, "reading the stream parameters", r);
        goto done;
    }
    int si = av_find_best_stream(ic, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (si < 0) {
        s_decerr(err, errlen, "finding the audio stream", si);
        goto done;
    }
    const AVCodec *dec = avcodec_find_decoder(ic->streams[si]->codecpar->codec_id);
    if (!dec || !(dc = avcodec_alloc_context3(dec))) {
        mg_set_error(err, errlen, "mp3 decode: libavcodec has no mp3 decoder");
        goto done;
    }
    if ((r = avcodec_parameters_to_context(dc, ic->streams[si]->codecpar)) < 0) {
        s_decerr(err, errlen, "copying the stream parameters", r);
        goto done;
    }
    dc->pkt_timebase = ic->streams[si]->time_base; /* to trim encoder delay without a warning */
    if ((r = avcodec_open2(dc, dec, NULL)) < 0) {
        s_decerr(err, errlen, "opening the mp3 decoder", r);
        goto done;
    }
    ch = dc->ch_layout.nb_channels;
    for (int eof = 0; !eof;) {
        r = av_read_frame(ic, pkt);
        if (r < 0) {
            eof = 1;
            avcodec_send_packet(dc, NULL);
        } else {
            if (pkt->stream_index == si && (r = avcodec_send_packet(dc, pkt)) < 0 &&
                r != AVERROR_INVALIDDATA) {
                av_packet_unref(pkt);
                s_decerr(err, errlen, "decoding a packet", r);
                goto done;
            }
            av_packet_unref(pkt);
        }
        while (avcodec_receive_frame(dc, fr) == 0) {
            if ((fr->format != AV_SAMPLE_FMT_FLTP && fr->format != AV_SAMPLE_FMT_FLT) ||
                fr->ch_layout.nb_channels != ch) {
                const char *fmt = av_get_sample_fmt_name(fr->format);
                mg_set_error(err, errlen, "mp3 decode: the decoder gives %s x %d channels, not float "
                         "x %d", fmt ? fmt : "?", fr->ch_layout.nb_channels, ch);
                av_frame_unref(fr);
                goto done;
            }
            if (s_append_frame(fr, ch, &out, &n, &cap) != 0) {
                av_frame_unref(fr);
                goto oom;
            }
            av_frame_unref(fr);
        }
    }
    if (n == 0) {
        mg_set_error(err, errlen, "mp3 decode: the file holds no audio");
        goto done;
    }
    *pcm = out;
    out = NULL;
    *frames = n;
    *rate = dc->sample_rate;
    *channels = ch;
    rc = 0;
    goto done;
oom:
    mg_set_error(err, errlen, "mp3 decode: out of memory");
done:
    free(out);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&dc);
    avformat_close_input(&ic);
    if (pb) {
        av_freep(&pb->buffer);
        avio_context_free(&pb);
    }
    av_free(iobuf);
    return rc;
}
