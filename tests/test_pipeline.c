/* test_pipeline.c - the worker's audio path: encoders (FLAC checked by `flac -t` and
 * `metaflac`, MP3 read back with libavformat/libavcodec, WAV bit-exact), the true-peak
 * meter and limiter (measured here with libebur128), the pipeline (loudness target,
 * -1 dBTP true-peak ceiling in every format, exact resampled length) and the synth renderer
 * (plays the composer's score: deterministic in the seed, exact length, the score's stems,
 * every family audible, never clipping, the score's dynamics kept).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ebur128.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <sndfile.h>

#include "common/util.h"
#include "composer/composer.h"
#include "tests/testlib.h"
#include "worker/pipeline.h"
#include "worker/render.h"

/* A stereo test signal: 440 Hz left, 660 Hz right, 0.5 peak, plus a slow sweep. */
static float *s_signal(size_t frames, int rate)
{
    float *x = malloc(frames * 2 * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < frames; i++) {
        double t = (double)i / rate;
        x[2 * i] = (float)(0.5 * sin(2 * M_PI * 440.0 * t));
        x[2 * i + 1] = (float)(0.4 * sin(2 * M_PI * 660.0 * t) + 0.1 * sin(2 * M_PI * (100 + 50 * t) * t));
    }
    return x;
}

static void s_tags(mg_kv_t *tags)
{
    mg_kv_init(tags);
    assert_int_equal(mg_kv_set(tags, "TITLE", "hero v01"), 0);
    assert_int_equal(mg_kv_set(tags, "MG_RENDER_ID", "42"), 0);
    assert_int_equal(mg_kv_set(tags, "mg_campaign", "summer sale 2026"), 0);
    assert_int_equal(mg_kv_set(tags, "mg_prompt", "warm piano, a=b; caf\xc3\xa9 \xe2\x99\xaa"), 0);
    assert_int_equal(mg_kv_set(tags, "mg_seed", "18446744073709551615"), 0);
}

/* ---- FLAC ------------------------------------------------------------------------ */

static void s_flac_roundtrip(int bits)
{
    const int rate = 44100;
    const size_t frames = 44100 + 123;
    float *x = s_signal(frames, rate);
    mg_kv_t tags;
    s_tags(&tags);
    unsigned char *data = NULL;
    size_t len = 0;
    char err[256] = "";
    int rc = mg_encode_flac(x, frames, rate, 2, bits, &tags, &data, &len, err, sizeof err);
    if (rc != 0) fail_msg("mg_encode_flac: %s", err);
    assert_true(len > 1000 && memcmp(data, "fLaC", 4) == 0);

    /* metadata chain: STREAMINFO first, exactly one VORBIS_COMMENT, one last flag */
    size_t pos = 4;
    int n_vc = 0, n_blocks = 0, last = 0;
    while (!last) {
        assert_true(pos + 4 <= len);
        int type = data[pos] & 0x7F;
        last = data[pos] & 0x80;
        size_t bl = ((size_t)data[pos + 1] << 16) | ((size_t)data[pos + 2] << 8) | data[pos + 3];
        if (n_blocks == 0) assert_int_equal(type, 0);
        if (type == 4) n_vc++;
        n_blocks++;
        pos += 4 + bl;
        assert_true(pos <= len);
    }
    assert_int_equal(n_vc, 1);
    /* audio frames start with the FLAC frame sync code 0xFFF8 */
    assert_int_equal(data[pos], 0xFF);
    assert_int_equal(data[pos + 1] & 0xFE, 0xF8);

    char path[512];
    mg_test_temp_write("pipeline", ".flac", data, len, path, sizeof path);
    int st;
    char *o = mg_test_run(&st, "flac -t -s '%s' 2>&1", path);
    if (st != 0) fail_msg("flac -t failed (%d): %s", st, o);
    free(o);

    o = mg_test_run(&st, "metaflac --export-tags-to=- '%s'", path);
    assert_int_equal(st, 0);
    char want[1024] = "";
    for (size_t i = 0; i < tags.n; i++) {
        strcat(want, tags.pairs[i].key);
        strcat(want, "=");
        strcat(want, tags.pairs[i].value);
        strcat(want, "\n");
    }
    assert_string_equal(o, want);
    free(o);
    o = mg_test_run(&st, "metaflac --show-vendor-tag '%s'", path);
    assert_int_equal(st, 0);
    assert_string_equal(o, "mg " MG_VERSION "\n");
    free(o);
    o = mg_test_run(&st, "metaflac --show-bps --show-total-samples '%s'", path);
    char want2[64];
    snprintf(want2, sizeof want2, "%d\n%zu\n", bits, frames);
    assert_string_equal(o, want2);
    free(o);

    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    assert_non_null(sf);
    assert_int_equal(info.frames, (sf_count_t)frames);
    assert_int_equal(info.channels, 2);
    assert_int_equal(info.samplerate, rate);
    float *y = malloc(frames * 2 * sizeof *y);
    assert_non_null(y);
    assert_int_equal(sf_readf_float(sf, y, (sf_count_t)frames), (sf_count_t)frames);
    sf_close(sf);
    /* rounding to the nearest step: at most half a quantisation step off */
    double lsb = 1.0 / (double)(1L << (bits - 1)), maxd = 0.0;
    for (size_t i = 0; i < frames * 2; i++) {
        double d = fabs((double)y[i] - x[i]);
        if (d > maxd) maxd = d;
    }
    if (maxd > 0.5 * lsb + 1e-7) fail_msg("flac %d-bit: max error %g > half LSB %g", bits, maxd, 0.5 * lsb);
    unlink(path);
    free(y);
    free(x);
    free(data);
    mg_kv_clear(&tags);
}

static void test_flac_16(void **state) { (void)state; s_flac_roundtrip(16); }
static void test_flac_24(void **state) { (void)state; s_flac_roundtrip(24); }

/* Field names outside ASCII 0x20..0x7D, or with '=', are sanitised to '_'. */
static void test_flac_tag_names_sanitised(void **state)
{
    (void)state;
    mg_kv_pair_t pairs[2] = {{"bad=name", "v1"}, {"tab\there", "v2"}};
    mg_kv_t tags = {pairs, 2, 2};
    float x[64] = {0};
    unsigned char *data = NULL;
    size_t len = 0;
    char err[256] = "";
    assert_int_equal(mg_encode_flac(x, 32, 8000, 2, 16, &tags, &data, &len, err, sizeof err), 0);
    char path[512];
    mg_test_temp_write("pipeline", ".flac", data, len, path, sizeof path);
    int st;
    char *o = mg_test_run(&st, "metaflac --export-tags-to=- '%s'", path);
    assert_int_equal(st, 0);
    assert_string_equal(o, "bad_name=v1\ntab_here=v2\n");
    free(o);
    unlink(path);
    free(data);

    mg_kv_pair_t empty[1] = {{"", "v"}};
    mg_kv_t bad = {empty, 1, 1};
    assert_int_equal(mg_encode_flac(x, 32, 8000, 2, 16, &bad, &data, &len, err, sizeof err), -1);
    assert_null(data);
    assert_non_null(strstr(err, "empty name"));
    assert_int_equal(mg_encode_flac(x, 32, 8000, 2, 20, NULL, &data, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "bit depth"));
}

/* ---- MP3 ------------------------------------------------------------------------- */

static void test_mp3_roundtrip(void **state)
{
    (void)state;
    const int rate = 44100;
    const size_t frames = 2 * 44100 + 500;
    float *x = s_signal(frames, rate);
    mg_kv_t tags;
    s_tags(&tags);
    unsigned char *data = NULL;
    size_t len = 0;
    char err[256] = "";
    if (mg_encode_mp3(x, frames, rate, 2, 192, &tags, &data, &len, err, sizeof err) != 0)
        fail_msg("mg_encode_mp3: %s", err);
    /* ID3v2.4 header at the start */
    assert_true(len > 10000);
    assert_memory_equal(data, "ID3\x04\x00", 5);
    assert_non_null(memmem(data, len, "TXXX", 4));
    /* 192 kbps CBR for ~2 s: 48 kB of audio, give or take the tag and the Xing frame */
    assert_true(len > 40000 && len < 60000);

    char path[512];
    mg_test_temp_write("pipeline", ".mp3", data, len, path, sizeof path);
    AVFormatContext *ic = NULL;
    assert_int_equal(avformat_open_input(&ic, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(ic, NULL) >= 0);
    double dur = (double)ic->duration / AV_TIME_BASE, want = (double)frames / rate;
    if (fabs(dur - want) > 0.05 * want) fail_msg("mp3 duration %.3f s, want %.3f s", dur, want);
    /* Names ID3v2 has a frame for (TITLE -> TIT2) come back under libavformat's generic
     * lower-case name; the rest are TXXX frames with the name as description. */
    for (size_t i = 0; i < tags.n; i++) {
        const AVDictionaryEntry *e = av_dict_get(ic->metadata, tags.pairs[i].key, NULL, 0);
        if (!e) fail_msg("mp3: tag %s missing", tags.pairs[i].key);
        assert_string_equal(e->value, tags.pairs[i].value);
    }
    assert_null(av_dict_get(ic->metadata, "encoder", NULL, 0)); /* bit-exact: no Lavf frame */
    int si = av_find_best_stream(ic, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    assert_true(si >= 0);
    AVStream *st = ic->streams[si];
    assert_int_equal(st->codecpar->sample_rate, rate);
    assert_int_equal(st->codecpar->ch_layout.nb_channels, 2);
    const AVCodec *dec = avcodec_find_decoder(st->codecpar->codec_id);
    assert_non_null(dec);
    AVCodecContext *dc = avcodec_alloc_context3(dec);
    assert_non_null(dc);
    assert_true(avcodec_parameters_to_context(dc, st->codecpar) >= 0);
    assert_int_equal(avcodec_open2(dc, dec, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    double ss[2] = {0, 0};
    size_t decoded = 0;
    int eof = 0;
    while (!eof) {
        int r = av_read_frame(ic, pkt);
        if (r < 0) {
            eof = 1;
            avcodec_send_packet(dc, NULL);
        } else {
            if (pkt->stream_index == si) assert_true(avcodec_send_packet(dc, pkt) >= 0);
            av_packet_unref(pkt);
        }
        while (avcodec_receive_frame(dc, fr) == 0) {
            assert_true(fr->format == AV_SAMPLE_FMT_FLTP);
            for (int c = 0; c < 2; c++) {
                const float *p = (const float *)fr->extended_data[c];
                for (int i = 0; i < fr->nb_samples; i++) ss[c] += (double)p[i] * p[i];
            }
            decoded += (size_t)fr->nb_samples;
        }
    }
    double rms_l = sqrt(ss[0] / decoded), rms_r = sqrt(ss[1] / decoded);
    /* 0.5-peak sine: RMS 0.354; right is 0.4 + 0.1 sines: about 0.29 */
    if (fabs(rms_l - 0.354) > 0.03 || fabs(rms_r - 0.29) > 0.03)
        fail_msg("mp3 decode: rms L %.3f R %.3f", rms_l, rms_r);
    /* encoder delay and padding are in the Xing/LAME frame the muxer went back to fill
     * in, so a gapless decoder returns exactly what was encoded */
    if (decoded != frames) fail_msg("mp3 decode: %zu samples, encoded %zu", decoded, frames);
    /* the pipeline's own decoder (from memory) agrees: same length, rate and channels */
    float *pcm = NULL;
    size_t dframes = 0;
    int drate = 0, dch = 0;
    if (mg_decode_mp3(data, len, &pcm, &dframes, &drate, &dch, err, sizeof err) != 0)
        fail_msg("mg_decode_mp3: %s", err);
    assert_int_equal(dframes, frames);
    assert_int_equal(drate, rate);
    assert_int_equal(dch, 2);
    free(pcm);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&dc);
    avformat_close_input(&ic);
    unlink(path);
    free(data);
    free(x);
    mg_kv_clear(&tags);
}

static void test_mp3_errors(void **state)
{
    (void)state;
    float x[2048] = {0};
    unsigned char *data = (unsigned char *)1;
    size_t len = 1;
    char err[256] = "";
    assert_int_equal(mg_encode_mp3(x, 1024, 96000, 2, 192, NULL, &data, &len, err, sizeof err), -1);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err, "96000"));
    assert_int_equal(mg_encode_mp3(x, 1024, 48000, 3, 192, NULL, &data, &len, err, sizeof err), -1);
    assert_int_equal(mg_encode_mp3(x, 0, 48000, 2, 192, NULL, &data, &len, err, sizeof err), -1);
    /* the decoder refuses what is not an mp3, and leaves nothing allocated */
    float *pcm = (float *)1;
    size_t pf = 1;
    int pr = 0, pc = 0;
    const unsigned char junk[64] = "not an mp3 file at all";
    assert_int_equal(mg_decode_mp3(junk, sizeof junk, &pcm, &pf, &pr, &pc, err, sizeof err), -1);
    assert_null(pcm);
    assert_non_null(strstr(err, "mp3 decode"));
    /* mono, a very short input (less than one MPEG frame) still makes a valid file */
    assert_int_equal(mg_encode_mp3(x, 100, 22050, 1, 64, NULL, &data, &len, err, sizeof err), 0);
    assert_true(len > 100);
    free(data);
}

/* ---- WAV ------------------------------------------------------------------------- */

static void test_wav_exact(void **state)
{
    (void)state;
    const size_t frames = 10007;
    short *q = malloc(frames * 2 * sizeof *q);
    float *x = malloc(frames * 2 * sizeof *x);
    assert_true(q && x);
    uint32_t r = 12345;
    for (size_t i = 0; i < frames * 2; i++) {
        r = r * 1664525u + 1013904223u;
        q[i] = (short)(r >> 16);
        x[i] = q[i] / 32768.0f;
    }
    q[0] = -32768; x[0] = -1.0f;
    q[1] = 32767; x[1] = 1.0f; /* full-scale positive clips to the largest code */
    unsigned char *data = NULL;
    size_t len = 0;
    char err[256] = "";
    assert_int_equal(mg_encode_wav(x, frames, 32000, 2, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 44 + frames * 4);
    assert_memory_equal(data, "RIFF", 4);
    char path[512];
    mg_test_temp_write("pipeline", ".wav", data, len, path, sizeof path);
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    assert_non_null(sf);
    assert_int_equal(info.frames, (sf_count_t)frames);
    assert_int_equal(info.samplerate, 32000);
    assert_int_equal(info.format, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    short *y = malloc(frames * 2 * sizeof *y);
    assert_non_null(y);
    assert_int_equal(sf_readf_short(sf, y, (sf_count_t)frames), (sf_count_t)frames);
    sf_close(sf);
    assert_memory_equal(y, q, frames * 2 * sizeof *q);
    unlink(path);
    free(y);
    free(q);
    free(x);
    free(data);
}

/* ---- pipeline -------------------------------------------------------------------- */

static mg_render_spec_t s_spec(unsigned formats, int rate, int ch, int normalize, double lufs)
{
    mg_render_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.render_id = 7;
    mg_strlcpy(spec.cue, "hero", sizeof spec.cue);
    spec.seed = 1;
    spec.duration_s = 10.0;
    spec.output.formats = formats;
    spec.output.sample_rate = rate;
    spec.output.channels = ch;
    spec.output.mp3_bitrate_kbps = 128;
    spec.output.flac_bits = 16;
    spec.output.normalize = normalize;
    spec.output.loudness_lufs = lufs;
    return spec;
}

/* Loudness and sample peak of a WAV file, measured here, not by the pipeline. */
static void s_measure_wav(const mg_encoded_t *f, double *lufs, double *peak_db, size_t *frames)
{
    char path[512];
    mg_test_temp_write("pipeline", ".wav", f->data, f->len, path, sizeof path);
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    assert_non_null(sf);
    assert_int_equal(info.channels, f->channels);
    assert_int_equal(info.samplerate, f->sample_rate);
    float *y = malloc((size_t)info.frames * info.channels * sizeof *y);
    assert_non_null(y);
    assert_int_equal(sf_readf_float(sf, y, info.frames), info.frames);
    sf_close(sf);
    unlink(path);
    ebur128_state *st = ebur128_init((unsigned)info.channels, (unsigned long)info.samplerate, EBUR128_MODE_I);
    assert_non_null(st);
    if (info.channels == 1) ebur128_set_channel(st, 0, EBUR128_DUAL_MONO);
    ebur128_add_frames_float(st, y, (size_t)info.frames);
    assert_int_equal(ebur128_loudness_global(st, lufs), EBUR128_SUCCESS);
    ebur128_destroy(&st);
    float p = 0;
    for (size_t i = 0; i < (size_t)info.frames * info.channels; i++)
        if (fabsf(y[i]) > p) p = fabsf(y[i]);
    *peak_db = 20 * log10(p);
    *frames = (size_t)info.frames;
    free(y);
}

static void s_render_synth(mg_render_spec_t *spec, uint64_t seed, const char *emotions,
                           double dur, mg_audio_t *a)
{
    spec->seed = seed;
    mg_strlcpy(spec->emotions, emotions, sizeof spec->emotions);
    spec->duration_s = dur;
    char err[256] = "";
    const mg_renderer_t *r = mg_renderer_synth();
    int rc = r->render(r, spec, NULL, NULL, a, err, sizeof err);
    if (rc != MG_RENDER_OK) fail_msg("synth render: %d %s", rc, err);
}

static void test_pipeline_loudness(void **state)
{
    (void)state;
    const double targets[] = {-14.0, -23.0, -10.0};
    const char *emotions[] = {"energetic,epic", "calm", "happy"};
    for (int t = 0; t < 3; t++) {
        mg_render_spec_t spec = s_spec(MG_FORMAT_WAV, 48000, t == 1 ? 1 : 2, 1, targets[t]);
        mg_audio_t a;
        s_render_synth(&spec, 100 + (uint64_t)t, emotions[t], 20.0, &a);
        mg_pipeline_result_t res;
        char err[256] = "";
        if (mg_pipeline_run(&spec, &a, NULL, &res, err, sizeof err) != 0)
            fail_msg("pipeline: %s", err);
        assert_int_equal(res.n_files, 1);
        double lufs, peak;
        size_t frames;
        s_measure_wav(&res.files[0], &lufs, &peak, &frames);
        if (fabs(lufs - targets[t]) > 1.0 || fabs(res.integrated_lufs - targets[t]) > 1.0)
            fail_msg("target %.1f LUFS: measured %.2f, reported %.2f", targets[t], lufs,
                     res.integrated_lufs);
        if (peak > -1.0 || res.peak_dbfs > -1.0)
            fail_msg("target %.1f LUFS: peak %.3f dBFS (reported %.3f) above -1", targets[t], peak,
                     res.peak_dbfs);
        assert_true(fabs(peak - res.peak_dbfs) < 0.01);
        assert_int_equal(frames, 20 * 48000);
        mg_pipeline_result_free(&res);
        mg_audio_free(&a);
    }
}

/* ---- true peak ------------------------------------------------------------------ */

#define S_CEILING_DBTP (-1.0) /* the pipeline's true-peak ceiling (worker/pipeline.c) */

/* True peak (dBTP) of interleaved float by libebur128 (4x oversampling below 96 kHz), the
 * reference the worker's own meter is checked against. Fails the test on a NaN. */
static double s_ebur128_tp(const float *x, size_t frames, int ch, int rate)
{
    for (size_t i = 0; i < frames * (size_t)ch; i++)
        if (!isfinite(x[i])) fail_msg("sample %zu is %g", i, x[i]);
    ebur128_state *st = ebur128_init((unsigned)ch, (unsigned long)rate, EBUR128_MODE_TRUE_PEAK);
    assert_non_null(st);
    assert_int_equal(ebur128_add_frames_float(st, x, frames), EBUR128_SUCCESS);
    double tp = 0.0;
    for (int c = 0; c < ch; c++) {
        double v;
        assert_int_equal(ebur128_true_peak(st, (unsigned)c, &v), EBUR128_SUCCESS);
        tp = fmax(tp, v);
    }
    ebur128_destroy(&st);
    return tp > 0.0 ? 20.0 * log10(tp) : -200.0;
}

/* A sine at fs/4 sampled at 45 degrees: every sample is 0.707 of the crest, so the sample
 * peak reads 3 dB under the true peak. 50 ms fades: a hard start rings in any
 * interpolator. */
static float s_isp_sine(size_t i, size_t frames, int rate, double amp)
{
    double fade = fmin(1.0, fmin((double)i, (double)(frames - 1 - i)) / (0.05 * rate));
    return (float)(amp * fade * sin(M_PI / 2.0 * (double)i + M_PI / 4.0));
}

/* A naive square wave at hz (every sample +-1): the band-limited waveform it stands for
 * overshoots between the samples at each edge (Gibbs). */
static float s_square(size_t i, int rate, double hz)
{
    return fmod((double)i * hz / rate, 1.0) < 0.5 ? 1.0f : -1.0f;
}

/* Reads an encoded file back (libsndfile: FLAC, WAV, MP3 through mpg123, not the
 * pipeline's own decoder) into a malloc'd interleaved float buffer. */
static float *s_read_encoded(const mg_encoded_t *f, size_t *frames)
{
    const char *suffix = f->format == MG_FORMAT_FLAC ? ".flac" : f->format == MG_FORMAT_MP3 ? ".mp3" : ".wav";
    char path[512];
    mg_test_temp_write("pipeline", suffix, f->data, f->len, path, sizeof path);
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf) fail_msg("%s: libsndfile cannot read it: %s", suffix, sf_strerror(NULL));
    assert_int_equal(info.channels, f->channels);
    size_t cap = 1 << 16, n = 0;
    float *y = malloc(cap * (size_t)info.channels * sizeof *y);
    assert_non_null(y);
    for (;;) { /* to the end: an MP3's frame count is an estimate */
        if (cap - n < 4096) {
            cap *= 2;
            y = realloc(y, cap * (size_t)info.channels * sizeof *y);
            assert_non_null(y);
        }
        sf_count_t got = sf_readf_float(sf, y + n * (size_t)info.channels, (sf_count_t)(cap - n));
        if (got <= 0) break;
        n += (size_t)got;
    }
    sf_close(sf);
    unlink(path);
    *frames = n;
    return y;
}

/* Every file of res: true peak (libebur128) at most the ceiling, no NaN, and when
 * target_lufs is finite, loudness within 0.5 LU of it. what names the case in messages. */
static void s_check_files(const mg_pipeline_result_t *res, double target_lufs, const char *what)
{
    for (int k = 0; k < res->n_files; k++) {
        const mg_encoded_t *f = &res->files[k];
        const char *name = f->format == MG_FORMAT_FLAC ? "flac" : f->format == MG_FORMAT_MP3 ? "mp3" : "wav";
        size_t frames;
        float *y = s_read_encoded(f, &frames);
        double tp = s_ebur128_tp(y, frames, f->channels, f->sample_rate);
        if (tp > S_CEILING_DBTP)
            fail_msg("%s, %s: true peak %.3f dBTP over the %.1f dBTP ceiling", what, name, tp, S_CEILING_DBTP);
        if (isfinite(target_lufs)) {
            ebur128_state *st = ebur128_init((unsigned)f->channels, (unsigned long)f->sample_rate, EBUR128_MODE_I);
            assert_non_null(st);
            if (f->channels == 1) ebur128_set_channel(st, 0, EBUR128_DUAL_MONO);
            ebur128_add_frames_float(st, y, frames);
            double lufs;
            assert_int_equal(ebur128_loudness_global(st, &lufs), EBUR128_SUCCESS);
            ebur128_destroy(&st);
            if (fabs(lufs - target_lufs) > 0.5)
                fail_msg("%s, %s: %.2f LUFS, want %.1f +- 0.5", what, name, lufs, target_lufs);
            printf("# %s, %s: true peak %.2f dBTP, %.2f LUFS\n", what, name, tp, lufs);
        } else {
            printf("# %s, %s: true peak %.2f dBTP\n", what, name, tp);
        }
        free(y);
    }
}

/* The worker's meter reads the fs/4 sine at 0 dBTP (its samples at -3.01 dBFS), as
 * libebur128 does, and silence as 0. */
static void test_true_peak_meter(void **state)
{
    (void)state;
    const int rate = 48000;
    const size_t frames = 2 * 48000;
    float *x = malloc(frames * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < frames; i++) x[i] = s_isp_sine(i, frames, rate, 1.0);
    double mine = 20 * log10(mg_true_peak(x, frames, 1)), ref = s_ebur128_tp(x, frames, 1, rate);
    printf("# fs/4 sine at 45 degrees: mg_true_peak %.3f dBTP, libebur128 %.3f dBTP\n", mine, ref);
    if (fabs(mine) > 0.05 || fabs(mine - ref) > 0.1)
        fail_msg("fs/4 sine: mg_true_peak %.3f dBTP, libebur128 %.3f, want 0", mine, ref);
    memset(x, 0, frames * sizeof *x);
    assert_true(mg_true_peak(x, frames, 1) == 0.0);
    assert_true(mg_true_peak(x, 0, 1) == 0.0);
    free(x);
}

/* The limiter on its own: signals whose true peak lies over the ceiling while their
 * samples may not come out at or under it (libebur128), reduced by about what is needed
 * (no more than 0.3 dB under), with a steady gain on a steady signal (no pumping). */
static void test_limiter_true_peak(void **state)
{
    (void)state;
    const int rate = 48000;
    const size_t frames = 3 * 48000;
    float *x = malloc(frames * 2 * sizeof *x);
    assert_non_null(x);
    for (int sig = 0; sig < 3; sig++) {
        int ch = sig == 0 ? 1 : 2;
        const char *name = sig == 0 ? "fs/4 sine, 0 dBTP" : sig == 1 ? "square 1.1 kHz, full scale"
                                                                      : "square 440 Hz + fs/4 sine";
        for (size_t i = 0; i < frames; i++) {
            if (sig == 0) {
                x[i] = s_isp_sine(i, frames, rate, 1.0);
            } else if (sig == 1) {
                x[2 * i] = s_square(i, rate, 1100.0);
                x[2 * i + 1] = 0.5f * s_square(i, rate, 1100.0);
            } else {
                x[2 * i] = 0.6f * s_square(i, rate, 440.0) + 0.6f * s_isp_sine(i, frames, rate, 1.0);
                x[2 * i + 1] = -x[2 * i];
            }
        }
        double before = s_ebur128_tp(x, frames, ch, rate);
        assert_true(before > S_CEILING_DBTP);
        assert_int_equal(mg_limit_true_peak(x, frames, ch, rate, S_CEILING_DBTP), 0);
        double after = s_ebur128_tp(x, frames, ch, rate), mine = 20 * log10(mg_true_peak(x, frames, ch));
        printf("# limiter, %s: %.2f -> %.2f dBTP (mg_true_peak %.2f)\n", name, before, after, mine);
        if (after > S_CEILING_DBTP || mine > S_CEILING_DBTP)
            fail_msg("%s: true peak %.3f dBTP (mg_true_peak %.3f) over the ceiling", name, after, mine);
        if (after < S_CEILING_DBTP - 0.3)
            fail_msg("%s: true peak %.3f dBTP, limited more than needed", name, after);
        /* the middle second is steady: the gain must be too */
        float lo = INFINITY, hi = 0.0f;
        for (size_t i = frames / 3; i < 2 * frames / 3; i++) {
            float a = fabsf(x[i * (size_t)ch]);
            if (a > 0.01f) {
                lo = fminf(lo, a);
                hi = fmaxf(hi, a);
            }
        }
        if (sig < 2 && 20 * log10(hi / lo) > 0.05)
            fail_msg("%s: sample level varies by %.3f dB on a steady signal", name, 20 * log10(hi / lo));
    }
    free(x);
}

/* Under the ceiling (true peak -1.2 dBTP with samples at -4.2 dBFS; a -20 dBFS square),
 * the limiter leaves the signal alone, bit for bit. */
static void test_limiter_quiet_untouched(void **state)
{
    (void)state;
    const int rate = 44100;
    const size_t frames = 44100;
    float *x = malloc(frames * 2 * sizeof *x), *y = malloc(frames * 2 * sizeof *y);
    assert_true(x && y);
    for (size_t i = 0; i < frames; i++) {
        x[2 * i] = s_isp_sine(i, frames, rate, pow(10.0, -1.2 / 20));
        x[2 * i + 1] = 0.1f * s_square(i, rate, 1100.0);
    }
    assert_true(s_ebur128_tp(x, frames, 2, rate) < S_CEILING_DBTP - 0.1);
    memcpy(y, x, frames * 2 * sizeof *y);
    assert_int_equal(mg_limit_true_peak(y, frames, 2, rate, S_CEILING_DBTP), 0);
    assert_memory_equal(x, y, frames * 2 * sizeof *x);
    free(x);
    free(y);
}

/* Through the whole pipeline: a full-scale fs/4 sine (samples at -3 dBFS, so a sample-peak
 * limiter lets it through at 0 dBTP) comes out under the ceiling in every format, and is
 * not limited much harder than needed. */
static void test_pipeline_true_peak(void **state)
{
    (void)state;
    const int rate = 48000;
    mg_audio_t a = {0};
    a.sample_rate = rate;
    a.frames = (size_t)rate * 4;
    a.n_stems = 1;
    a.stems = calloc(1, sizeof *a.stems);
    assert_non_null(a.stems);
    a.stems[0].samples = calloc(a.frames, sizeof(float));
    assert_non_null(a.stems[0].samples);
    a.stems[0].gain = 1.0f;
    for (size_t i = 0; i < a.frames; i++) a.stems[0].samples[i] = s_isp_sine(i, a.frames, rate, 1.0);
    mg_render_spec_t spec = s_spec(MG_FORMAT_WAV | MG_FORMAT_MP3 | MG_FORMAT_FLAC, rate, 1, 0, -14.0);
    spec.output.mp3_bitrate_kbps = 192;
    mg_pipeline_result_t res;
    char err[256] = "";
    if (mg_pipeline_run(&spec, &a, NULL, &res, err, sizeof err) != 0) fail_msg("pipeline: %s", err);
    assert_int_equal(res.n_files, 3);
    s_check_files(&res, NAN, "fs/4 sine");
    if (res.true_peak_dbtp > S_CEILING_DBTP || res.true_peak_dbtp < S_CEILING_DBTP - 0.3)
        fail_msg("reported true peak %.3f dBTP", res.true_peak_dbtp);
    if (res.mp3_true_peak_dbtp > S_CEILING_DBTP) fail_msg("reported mp3 true peak %.3f dBTP", res.mp3_true_peak_dbtp);
    size_t frames;
    float *y = s_read_encoded(&res.files[2], &frames);
    double tp = s_ebur128_tp(y, frames, 1, rate);
    if (tp < S_CEILING_DBTP - 0.3) fail_msg("wav: %.3f dBTP: limited more than needed", tp);
    free(y);
    mg_pipeline_result_free(&res);
    mg_audio_free(&a);
}

/* Dense broadband material (white noise) is where MP3 overshoots most: about +2.7 dB of
 * true peak at 128 kbps over a limited input, far past the pipeline's 0.5 dB MP3 margin.
 * The decoded MP3 must still come out under the ceiling (the pipeline decodes and limits
 * again), every file on the loudness target. */
static void test_pipeline_mp3_overshoot(void **state)
{
    (void)state;
    const int rate = 44100;
    mg_audio_t a = {0};
    a.sample_rate = rate;
    a.frames = (size_t)rate * 4;
    a.n_stems = 2;
    a.stems = calloc(2, sizeof *a.stems);
    assert_non_null(a.stems);
    uint32_t r = 2463534242u;
    for (int k = 0; k < 2; k++) {
        a.stems[k].samples = calloc(a.frames, sizeof(float));
        assert_non_null(a.stems[k].samples);
        a.stems[k].gain = 1.0f;
        a.stems[k].pan = k ? 1.0f : -1.0f;
        for (size_t i = 0; i < a.frames; i++) {
            r ^= r << 13;
            r ^= r >> 17;
            r ^= r << 5;
            a.stems[k].samples[i] = (float)(r / 2147483648.0 - 1.0);
        }
    }
    for (int norm = 0; norm < 2; norm++) {
        mg_render_spec_t spec = s_spec(MG_FORMAT_WAV | MG_FORMAT_MP3 | MG_FORMAT_FLAC, rate, 2, norm, -7.0);
        mg_pipeline_result_t res;
        char err[256] = "";
        if (mg_pipeline_run(&spec, &a, NULL, &res, err, sizeof err) != 0) fail_msg("pipeline: %s", err);
        assert_int_equal(res.n_files, 3);
        s_check_files(&res, norm ? -7.0 : NAN, norm ? "white noise, -7 LUFS" : "white noise, full scale");
        if (res.mp3_true_peak_dbtp > S_CEILING_DBTP)
            fail_msg("reported mp3 true peak %.3f dBTP", res.mp3_true_peak_dbtp);
        mg_pipeline_result_free(&res);
    }
    mg_audio_free(&a);
}

/* A peaky, clipping mix (a quiet bed, full-scale clicks and bursts of square wave): the
 * limiter holds -1 dBTP in every format with and without normalisation, and with it the
 * loudness stays on the target (the loop makes up what limiting takes). */
static void test_pipeline_limiter(void **state)
{
    (void)state;
    const int rate = 24000;
    mg_audio_t a = {0};
    a.sample_rate = rate;
    a.frames = (size_t)rate * 8;
    a.n_stems = 3;
    a.stems = calloc(3, sizeof *a.stems);
    assert_non_null(a.stems);
    for (int k = 0; k < 3; k++) {
        a.stems[k].samples = calloc(a.frames, sizeof(float));
        assert_non_null(a.stems[k].samples);
        a.stems[k].gain = k < 2 ? 2.0f : 0.5f;
        a.stems[k].pan = k == 0 ? -0.7f : k == 1 ? 0.7f : 0.0f;
    }
    for (size_t i = 0; i < a.frames; i++) {
        a.stems[0].samples[i] = 0.1f * sinf(2 * (float)M_PI * 330.0f * i / rate);
        a.stems[1].samples[i] = (i % (rate / 4)) < 40 ? 1.0f : 0.0f; /* clicks, 4 per second */
        a.stems[2].samples[i] = (i % (rate / 2)) < (size_t)rate / 30 ? s_square(i, rate, 1100.0) : 0.0f;
    }
    for (int norm = 0; norm < 2; norm++) {
        mg_render_spec_t spec = s_spec(MG_FORMAT_WAV | MG_FORMAT_MP3 | MG_FORMAT_FLAC, 44100, 2, norm, -12.0);
        mg_pipeline_result_t res;
        char err[256] = "";
        if (mg_pipeline_run(&spec, &a, NULL, &res, err, sizeof err) != 0) fail_msg("pipeline: %s", err);
        double lufs, peak;
        size_t frames;
        s_measure_wav(&res.files[2], &lufs, &peak, &frames);
        if (peak > -1.0) fail_msg("limiter (normalize=%d): peak %.3f dBFS", norm, peak);
        s_check_files(&res, norm ? -12.0 : NAN, norm ? "peaky mix, -12 LUFS" : "peaky mix, as rendered");
        assert_int_equal(frames, 8 * 44100);
        mg_pipeline_result_free(&res);
    }
    mg_audio_free(&a);
}

/* 24000 -> 48000 keeps the length exact to the sample, and the timing (an impulse at
 * frame k lands at frame 2k); 24000 -> 44100 rounds the length to the nearest frame. */
static void test_pipeline_resample_exact(void **state)
{
    (void)state;
    mg_audio_t a = {0};
    a.sample_rate = 24000;
    a.frames = 36007;
    a.n_stems = 1;
    a.stems = calloc(1, sizeof *a.stems);
    a.stems[0].samples = calloc(a.frames, sizeof(float));
    a.stems[0].gain = 1.0f;
    a.stems[0].samples[10000] = 0.5f;
    const int rates[] = {48000, 44100, 24000, 8000};
    for (int r = 0; r < 4; r++) {
        mg_render_spec_t spec = s_spec(MG_FORMAT_WAV | MG_FORMAT_FLAC, rates[r], 1, 0, -14);
        mg_pipeline_result_t res;
        char err[256] = "";
        if (mg_pipeline_run(&spec, &a, NULL, &res, err, sizeof err) != 0) fail_msg("%s", err);
        size_t want = (size_t)llround(36007.0 * rates[r] / 24000.0);
        double lufs, peak;
        size_t frames;
        s_measure_wav(&res.files[1], &lufs, &peak, &frames);
        if (frames != want) fail_msg("%d Hz: %zu frames, want %zu", rates[r], frames, want);
        assert_true(fabs(res.files[0].duration_s - (double)want / rates[r]) < 1e-9);
        assert_int_equal(res.files[0].sample_rate, rates[r]);
        if (rates[r] == 48000) {
            char path[512];
            mg_test_temp_write("pipeline", ".wav", res.files[1].data, res.files[1].len, path, sizeof path);
            SF_INFO info = {0};
            SNDFILE *sf = sf_open(path, SFM_READ, &info);
            float *y = malloc(frames * sizeof *y);
            sf_readf_float(sf, y, (sf_count_t)frames);
            sf_close(sf);
            unlink(path);
            size_t at = 0;
            for (size_t i = 0; i < frames; i++)
                if (fabsf(y[i]) > fabsf(y[at])) at = i;
            assert_int_equal(at, 20000);
            free(y);
        }
        mg_pipeline_result_free(&res);
    }
    mg_audio_free(&a);
}

/* All three formats: order, sha256, per-file rate (MP3 tops out at 48 kHz). */
static void test_pipeline_formats(void **state)
{
    (void)state;
    mg_render_spec_t spec = s_spec(MG_FORMAT_WAV | MG_FORMAT_MP3 | MG_FORMAT_FLAC, 96000, 2, 1, -16);
    mg_audio_t a;
    s_render_synth(&spec, 9, "romantic", 6.0, &a);
    mg_kv_t tags;
    s_tags(&tags);
    mg_pipeline_result_t res;
    char err[256] = "";
    if (mg_pipeline_run(&spec, &a, &tags, &res, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(res.n_files, 3);
    const unsigned order[3] = {MG_FORMAT_FLAC, MG_FORMAT_MP3, MG_FORMAT_WAV};
    for (int i = 0; i < 3; i++) {
        const mg_encoded_t *f = &res.files[i];
        assert_int_equal(f->format, order[i]);
        char hex[65];
        mg_sha256_hex(f->data, f->len, hex);
        assert_string_equal(hex, f->sha256);
        assert_int_equal(f->channels, 2);
        assert_int_equal(f->sample_rate, order[i] == MG_FORMAT_MP3 ? 48000 : 96000);
        assert_true(fabs(f->duration_s - 6.0) < 1e-9);
    }
    assert_memory_equal(res.files[0].data, "fLaC", 4);
    assert_memory_equal(res.files[1].data, "ID3", 3);
    assert_memory_equal(res.files[2].data, "RIFF", 4);
    /* the same input gives the same bytes */
    mg_pipeline_result_t again;
    assert_int_equal(mg_pipeline_run(&spec, &a, &tags, &again, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) assert_string_equal(res.files[i].sha256, again.files[i].sha256);
    mg_pipeline_result_free(&again);
    mg_pipeline_result_free(&res);
    assert_int_equal(res.n_files, 0);
    assert_null(res.files[0].data);

    /* failures leave nothing allocated */
    spec.output.formats = 0;
    assert_int_equal(mg_pipeline_run(&spec, &a, &tags, &res, err, sizeof err), -1);
    assert_int_equal(res.n_files, 0);
    assert_non_null(strstr(err, "format"));
    spec.output.formats = MG_FORMAT_FLAC;
    spec.output.flac_bits = 12;
    assert_int_equal(mg_pipeline_run(&spec, &a, &tags, &res, err, sizeof err), -1);
    assert_int_equal(res.n_files, 0);
    assert_null(res.files[0].data);
    mg_kv_clear(&tags);
    mg_audio_free(&a);
}

/* Encode timings for 30 s of 48 kHz stereo (figures for the report; loose bounds). */
static void test_encode_speed(void **state)
{
    (void)state;
    const size_t frames = 30 * 48000;
    float *x = s_signal(frames, 48000);
    unsigned char *data;
    size_t len;
    char err[256];
    double t0 = mg_test_now_ms();
    assert_int_equal(mg_encode_flac(x, frames, 48000, 2, 16, NULL, &data, &len, err, sizeof err), 0);
    double t1 = mg_test_now_ms();
    free(data);
    assert_int_equal(mg_encode_mp3(x, frames, 48000, 2, 192, NULL, &data, &len, err, sizeof err), 0);
    double t2 = mg_test_now_ms();
    free(data);
    assert_int_equal(mg_encode_wav(x, frames, 48000, 2, &data, &len, err, sizeof err), 0);
    double t3 = mg_test_now_ms();
    free(data);
    printf("# encode 30 s 48 kHz stereo: flac-16 %.0f ms, mp3-192 %.0f ms, wav %.0f ms\n", t1 - t0, t2 - t1,
           t3 - t2);
    free(x);
}

/* ---- synth renderer ---------------------------------------------------------------- */

static void s_audio_sha(const mg_audio_t *a, char hex[65])
{
    mg_sha256_t h;
    mg_sha256_init(&h);
    for (int k = 0; k < a->n_stems; k++)
        mg_sha256_update(&h, a->stems[k].samples, a->frames * sizeof(float));
    mg_sha256_final_hex(&h, hex);
}

/* Peak of the pipeline's mixdown of a, mono (gains) and stereo (constant-power pan). */
static double s_mix_peak(const mg_audio_t *a)
{
    double peak = 0.0;
    for (size_t i = 0; i < a->frames; i++) {
        double m = 0.0, l = 0.0, r = 0.0;
        for (int k = 0; k < a->n_stems; k++) {
            double th = (a->stems[k].pan + 1.0) * M_PI / 4.0, x = a->stems[k].samples[i];
            m += a->stems[k].gain * x;
            l += a->stems[k].gain * cos(th) * x;
            r += a->stems[k].gain * sin(th) * x;
        }
        peak = fmax(peak, fmax(fabs(m), fmax(fabs(l), fabs(r))));
    }
    return peak;
}

/* The rendered audio plays the score of the same spec: one stem per score stem, same
 * names, gains and pans, the exact length at 24 kHz, every stem with notes audible and
 * none without, nothing clipping, the end faded, the decision record the score's. */
static void s_check_plays_score(const mg_render_spec_t *spec, const mg_audio_t *a)
{
    char err[256] = "";
    mg_score_t *sc = mg_compose(spec, err, sizeof err);
    if (!sc) fail_msg("compose: %s", err);
    assert_int_equal(a->sample_rate, 24000);
    assert_int_equal(a->frames, (size_t)llround(spec->duration_s * 24000));
    assert_int_equal(a->n_stems, sc->n_stems);
    for (int k = 0; k < a->n_stems; k++) {
        const mg_stem_t *st = &a->stems[k];
        const mg_score_stem_t *ss = &sc->stems[k];
        assert_string_equal(st->name, ss->name);
        assert_true(fabs(st->gain - ss->gain) < 1e-6);
        assert_true(fabs(st->pan - ss->pan) < 1e-6);
        double sum = 0;
        float peak = 0;
        for (size_t i = 0; i < a->frames; i++) {
            float v = st->samples[i];
            if (!isfinite(v)) fail_msg("%s: stem %s sample %zu is %g", spec->cue, st->name, i, v);
            sum += (double)v * v;
            if (fabsf(v) > peak) peak = fabsf(v);
        }
        double rms = sqrt(sum / a->frames);
        if (ss->n_notes > 0 && rms < 0.005)
            fail_msg("%s: stem %s (%s, %d notes) nearly silent (rms %g)", spec->cue, st->name, ss->instrument,
                     ss->n_notes, rms);
        if (ss->n_notes == 0 && peak != 0.0f) fail_msg("%s: stem %s has no notes but sounds", spec->cue, st->name);
        if (peak > 0.95f) fail_msg("%s: stem %s peaks at %g (over 0.95)", spec->cue, st->name, peak);
        for (size_t i = a->frames - 240; i < a->frames; i++) /* faded out: the last 10 ms */
            if (fabsf(st->samples[i]) > 0.02f)
                fail_msg("%s: stem %s not faded out: %g at frame %zu", spec->cue, st->name, st->samples[i], i);
    }
    double mp = s_mix_peak(a);
    if (mp > 0.901) fail_msg("%s: the mixdown peaks at %g (the renderer keeps it under 0.90)", spec->cue, mp);
    char *rec = mg_score_decision_json(sc);
    assert_non_null(a->decision_json);
    assert_string_equal(a->decision_json, rec);
    free(rec);
    mg_score_free(&sc);
}

static void test_synth_renderer(void **state)
{
    (void)state;
    const mg_renderer_t *r = mg_renderer_synth();
    assert_string_equal(r->name, "synth");
    assert_string_equal(r->backend, "cpu");
    assert_string_equal(r->model_name, "mg-sketch-synth");
    assert_string_equal(r->model_version, "0.2 (composer " MG_COMPOSER_VERSION ")");
    assert_non_null(strstr(r->attribution, "composer"));
    char want[65];
    const char *id = "mg-sketch-synth 0.2 composer " MG_COMPOSER_VERSION;
    mg_sha256_hex(id, strlen(id), want);
    assert_string_equal(r->model_sha256, want);

    mg_render_spec_t spec = s_spec(MG_FORMAT_WAV, 48000, 2, 1, -14);
    mg_strlcpy(spec.prompt, "upbeat pop tune", sizeof spec.prompt);
    mg_audio_t a, b, c;
    s_render_synth(&spec, 1234, "happy,playful", 7.5, &a);
    s_render_synth(&spec, 1234, "happy,playful", 7.5, &b);
    s_render_synth(&spec, 1235, "happy,playful", 7.5, &c);
    char ha[65], hb[65], hc[65];
    s_audio_sha(&a, ha);
    s_audio_sha(&b, hb);
    s_audio_sha(&c, hc);
    assert_string_equal(ha, hb);
    assert_string_not_equal(ha, hc);
    assert_string_equal(a.decision_json, b.decision_json);
    assert_int_equal(a.frames, 180000);
    spec.seed = 1234;
    s_check_plays_score(&spec, &a);
    assert_non_null(strstr(a.decision_json, "\"tempo_bpm\":"));
    assert_non_null(strstr(a.decision_json, "\"composer_version\":\"" MG_COMPOSER_VERSION "\""));
    assert_non_null(strstr(a.decision_json, "\"mode\":\"major\"")); /* happy: positive valence */
    mg_audio_free(&a);
    mg_audio_free(&b);
    mg_audio_free(&c);

    /* the job's tempo and key reach the score; a length that is not a whole number of
     * frames rounds to the nearest */
    spec.tempo_bpm = 100;
    mg_strlcpy(spec.key, "D minor", sizeof spec.key);
    s_render_synth(&spec, 5, "happy", 3.0, &a);
    assert_non_null(strstr(a.decision_json, "\"tempo_bpm\":100.00"));
    assert_non_null(strstr(a.decision_json, "\"key\":\"D minor\""));
    assert_int_equal(a.frames, 72000);
    mg_audio_free(&a);
    s_render_synth(&spec, 5, "happy", 4.00002, &a);
    assert_int_equal(a.frames, 96000);
    s_check_plays_score(&spec, &a);
    mg_audio_free(&a);
}

/* Every family's voice (and the drum kits) sounds, in the job-file shapes that pick them. */
static void test_synth_families(void **state)
{
    (void)state;
    static const struct { const char *prompt, *emotions, *instruments; } cases[] = {
        {"calm piano ballad", "tender", "piano,strings"},
        {"cinematic orchestral trailer", "epic", "strings,horn,choir,timpani,cello"},
        {"electronic dance track", "energetic", "saw lead,synth pad,synth bass,drum machine"},
        {"jazz lounge", "relaxed", "electric piano,upright bass,brushed drums,trumpet"},
        {"ambient drone", "peaceful", "pad,harp,violin"},
        {"folk campfire", "happy", "nylon guitar,flute,shaker,tambourine,pizzicato"},
        {"rock anthem", "angry", "electric guitar,square lead,slap bass,drums"},
        {"lofi hip hop", "calm", "bright piano,sub bass,claps,toms"},
        {"folk song", "playful", "pizzicato,cello,drums"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mg_render_spec_t spec = s_spec(MG_FORMAT_WAV, 48000, 2, 1, -14);
        snprintf(spec.cue, sizeof spec.cue, "family-%zu", i);
        mg_strlcpy(spec.prompt, cases[i].prompt, sizeof spec.prompt);
        mg_strlcpy(spec.instruments, cases[i].instruments, sizeof spec.instruments);
        mg_audio_t a;
        s_render_synth(&spec, 40 + i, cases[i].emotions, 12.0, &a);
        s_check_plays_score(&spec, &a);
        mg_audio_free(&a);
    }
}

/* The score's dynamics reach the audio: a sad cue (soft velocities) comes out quieter
 * than an energetic one, seed for seed, before any loudness normalisation. */
static void test_synth_dynamics(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        double rms[2];
        const char *emo[2] = {"sad", "energetic"};
        for (int e = 0; e < 2; e++) {
            mg_render_spec_t spec = s_spec(MG_FORMAT_WAV, 48000, 1, 0, -14);
            mg_strlcpy(spec.prompt, "music", sizeof spec.prompt);
            mg_audio_t a;
            s_render_synth(&spec, seed, emo[e], 20.0, &a);
            double sum = 0;
            for (size_t i = 0; i < a.frames; i++) {
                double m = 0;
                for (int k = 0; k < a.n_stems; k++) m += a.stems[k].gain * a.stems[k].samples[i];
                sum += m * m;
            }
            rms[e] = sqrt(sum / a.frames);
            mg_audio_free(&a);
        }
        double db = 20 * log10(rms[1] / rms[0]);
        printf("# seed %" PRIu64 ": energetic %.1f dB louder than sad\n", seed, db);
        if (db < 3.0) fail_msg("seed %" PRIu64 ": energetic only %.2f dB louder than sad", seed, db);
    }
}

/* 30 s: the figure for the report; the bound only catches a pathological slowdown. */
static void test_synth_speed(void **state)
{
    (void)state;
    mg_render_spec_t spec = s_spec(MG_FORMAT_WAV, 48000, 2, 1, -14);
    mg_strlcpy(spec.prompt, "joyful summer-sale jingle, acoustic guitar and claps", sizeof spec.prompt);
    mg_strlcpy(spec.instruments, "acoustic guitar,claps,bass,drums", sizeof spec.instruments);
    mg_audio_t a;
    double t0 = mg_test_now_ms();
    s_render_synth(&spec, 77, "joyful,energetic", 30.0, &a);
    double dt = (mg_test_now_ms() - t0) / 1e3;
    printf("# synth render 30 s: %.0f ms on one core (%zu frames x %d stems)\n", dt * 1e3, a.frames,
           a.n_stems);
    assert_int_equal(a.frames, 720000);
    assert_true(dt < 5.0);
    mg_audio_free(&a);
}

static int s_cancel_at(void *ctx, double done)
{
    int *calls = ctx;
    assert_true(done >= 0.0 && done <= 1.0);
    return ++*calls >= 3;
}

static int s_count_progress(void *ctx, double done)
{
    double *last = ctx;
    assert_true(done >= last[0] && done <= 1.0); /* never goes back */
    last[0] = done;
    last[1] += 1;
    return 0;
}

static void test_synth_cancel(void **state)
{
    (void)state;
    mg_render_spec_t spec = s_spec(MG_FORMAT_WAV, 48000, 2, 1, -14);
    spec.duration_s = 30;
    mg_strlcpy(spec.emotions, "calm", sizeof spec.emotions);
    mg_audio_t a;
    int calls = 0;
    char err[256] = "";
    const mg_renderer_t *r = mg_renderer_synth();
    assert_int_equal(r->render(r, &spec, s_cancel_at, &calls, &a, err, sizeof err),
                     MG_RENDER_ERR_CANCELLED);
    assert_int_equal(calls, 3);
    assert_null(a.stems);
    assert_int_equal(a.n_stems, 0);
    assert_null(a.decision_json);
    assert_non_null(strstr(err, "cancel"));

    /* progress every ~5 % of the notes, ending at 1 */
    double prog[2] = {0, 0};
    assert_int_equal(r->render(r, &spec, s_count_progress, prog, &a, err, sizeof err),
                     MG_RENDER_OK);
    assert_true(prog[0] == 1.0);
    assert_true(prog[1] >= 15 && prog[1] <= 25);
    mg_audio_free(&a);

    /* what the composer refuses can never render */
    spec.duration_s = 0;
    assert_int_equal(r->render(r, &spec, NULL, NULL, &a, err, sizeof err),
                     MG_RENDER_ERR_PERMANENT);
    assert_non_null(strstr(err, "synth"));
    assert_null(a.stems);
    spec.duration_s = 10;
    spec.tempo_bpm = 500;
    assert_int_equal(r->render(r, &spec, NULL, NULL, &a, err, sizeof err),
                     MG_RENDER_ERR_PERMANENT);
    printf("# tempo 500: %s\n", err);
}

static void test_audio_free(void **state)
{
    (void)state;
    mg_audio_t a = {0};
    a.sample_rate = 24000;
    a.frames = 100;
    a.n_stems = 3;
    a.stems = calloc(3, sizeof *a.stems);
    for (int k = 0; k < 3; k++) a.stems[k].samples = calloc(100, sizeof(float));
    a.decision_json = strdup("{}");
    mg_audio_free(&a);
    assert_null(a.stems);
    assert_null(a.decision_json);
    assert_int_equal(a.n_stems, 0);
    assert_int_equal(a.frames, 0);
    mg_audio_free(&a); /* already empty */
    mg_audio_free(NULL);
}

int main(void)
{
    av_log_set_level(AV_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flac_16),
        cmocka_unit_test(test_flac_24),
        cmocka_unit_test(test_flac_tag_names_sanitised),
        cmocka_unit_test(test_mp3_roundtrip),
        cmocka_unit_test(test_mp3_errors),
        cmocka_unit_test(test_wav_exact),
        cmocka_unit_test(test_true_peak_meter),
        cmocka_unit_test(test_limiter_true_peak),
        cmocka_unit_test(test_limiter_quiet_untouched),
        cmocka_unit_test(test_pipeline_loudness),
        cmocka_unit_test(test_pipeline_true_peak),
        cmocka_unit_test(test_pipeline_limiter),
        cmocka_unit_test(test_pipeline_mp3_overshoot),
        cmocka_unit_test(test_pipeline_resample_exact),
        cmocka_unit_test(test_pipeline_formats),
        cmocka_unit_test(test_encode_speed),
        cmocka_unit_test(test_synth_renderer),
        cmocka_unit_test(test_synth_families),
        cmocka_unit_test(test_synth_dynamics),
        cmocka_unit_test(test_synth_speed),
        cmocka_unit_test(test_synth_cancel),
        cmocka_unit_test(test_audio_free),
    };
    return cmocka_run_group_tests_name("pipeline", tests, NULL, NULL);
}
