/* pipeline.c - the worker's audio pipeline (pipeline.h): rendered stems in, tagged
 * FLAC / MP3 / WAV bytes out. Runs after the renderer, before the RESULT message:
 *
 *   mixdown (gain, constant-power pan) -> DC removal -> libswresample to the output rate
 *   -> EBU R128 gain to the target (when asked) -> look-ahead peak limiter (-1 dBFS)
 *   -> measure loudness and peak -> encode flac, mp3, wav -> sha256 of each file.
 *
 * DC removal comes first (not last) so that nothing after the limiter can move the peak.
 */
#include "pipeline.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ebur128.h>
#include <libavutil/channel_layout.h>
#include <libavutil/mathematics.h>
#include <libswresample/swresample.h>

#include "../common/util.h"

/* The limiter ceiling sits a hair under -1 dBFS so that float rounding of the gain never
 * lands a sample at -0.99999 dBFS. */
#define S_CEILING_DB (-1.01)
#define S_LOOKAHEAD_S 0.005   /* gain starts falling 5 ms before a peak: no audible click */
#define S_RELEASE_S 0.120     /* recovery time constant after a peak */
#define S_DC_HZ 5.0           /* one-pole high-pass corner: below any musical content */
#define S_SILENCE_DB (-200.0) /* reported loudness / peak of digital silence (not -inf) */
#define S_LU_TOLERANCE 0.2    /* the normalisation loop stops once this close */

static double s_db_to_lin(double db) { return pow(10.0, db / 20.0); }

static const char *s_format_name(unsigned bit)
{
    switch (bit) {
    case MG_FORMAT_FLAC: return "flac";
    case MG_FORMAT_MP3: return "mp3";
    case MG_FORMAT_WAV: return "wav";
    default: return "?";
    }
}

/* Mixes the stems into interleaved float with out_ch channels at the renderer's rate.
 * Stereo uses the constant-power pan law (centre = -3 dB per side, so the mix has the
 * same loudness as the mono sum). Returns a malloc'd buffer (caller owns) or NULL. */
static float *s_mixdown(const mg_audio_t *audio, int out_ch)
{
    size_t n = audio->frames;
    float *mix = calloc(n * (size_t)out_ch, sizeof *mix);
    if (!mix) return NULL;
    for (int s = 0; s < audio->n_stems; s++) {
        const mg_stem_t *st = &audio->stems[s];
        if (!st->samples) continue;
        float g = st->gain;
        if (out_ch == 1) {
            for (size_t i = 0; i < n; i++) mix[i] += g * st->samples[i];
        } else {
            double pan = st->pan < -1.0f ? -1.0 : st->pan > 1.0f ? 1.0 : st->pan;
            double th = (pan + 1.0) * M_PI / 4.0;
            float gl = (float)(g * cos(th)), gr = (float)(g * sin(th));
            for (size_t i = 0; i < n; i++) {
                mix[2 * i] += gl * st->samples[i];
                mix[2 * i + 1] += gr * st->samples[i];
            }
        }
    }
    return mix;
}

/* One-pole DC blocker per channel, in place: y[n] = x[n] - x[n-1] + R y[n-1]. */
static void s_remove_dc(float *pcm, size_t frames, int ch, int rate)
{
    double R = exp(-2.0 * M_PI * S_DC_HZ / rate);
    for (int c = 0; c < ch; c++) {
        double x1 = 0.0, y1 = 0.0;
        for (size_t i = 0; i < frames; i++) {
            double x = pcm[i * (size_t)ch + (size_t)c];
            double y = x - x1 + R * y1;
            x1 = x;
            y1 = y;
            pcm[i * (size_t)ch + (size_t)c] = (float)y;
        }
    }
}

/* Resamples interleaved float from in_rate to out_rate with libswresample. The result
 * has exactly round(frames * out_rate / in_rate) frames: the resampler is flushed, then
 * its output trimmed or zero-padded to that length, so durations never drift by a
 * sample. *out is malloc'd (caller owns). 0, or -1 with err set. */
static int s_resample(const float *in, size_t frames, int ch, int in_rate, int out_rate,
                      float **out, size_t *out_frames, char *err, size_t errlen)
{
    *out = NULL;
    size_t want = (size_t)av_rescale_rnd((int64_t)frames, out_rate, in_rate, AV_ROUND_NEAR_INF);
    if (in_rate == out_rate) {
        float *copy = malloc(frames * (size_t)ch * sizeof *copy);
        if (!copy) goto oom;
        memcpy(copy, in, frames * (size_t)ch * sizeof *copy);
        *out = copy;
        *out_frames = frames;
        return 0;
    }
    if (frames > INT32_MAX / 4 || want > INT32_MAX / 4) {
        snprintf(err, errlen, "pipeline: %zu frames is too long to resample", frames);
        return -1;
    }
    SwrContext *swr = NULL;
    AVChannelLayout lay;
    av_channel_layout_default(&lay, ch);
    int r = swr_alloc_set_opts2(&swr, &lay, AV_SAMPLE_FMT_FLT, out_rate, &lay, AV_SAMPLE_FMT_FLT,
                                in_rate, 0, NULL);
    if (r < 0 || (r = swr_init(swr)) < 0) {
        swr_free(&swr);
        av_channel_layout_uninit(&lay);
        snprintf(err, errlen, "pipeline: libswresample cannot convert %d Hz to %d Hz (%d channels)",
                 in_rate, out_rate, ch);
        return -1;
    }
    av_channel_layout_uninit(&lay);
    int est = swr_get_out_samples(swr, (int)frames);
    size_t cap = (est > 0 && (size_t)est > want ? (size_t)est : want) + 4096;
    float *buf = malloc(cap * (size_t)ch * sizeof *buf);
    if (!buf) {
        swr_free(&swr);
        goto oom;
    }
    const uint8_t *inp[1] = {(const uint8_t *)in};
    uint8_t *outp[1] = {(uint8_t *)buf};
    int got = swr_convert(swr, outp, (int)cap, inp, (int)frames);
    size_t have = got > 0 ? (size_t)got : 0;
    while (got >= 0 && have < cap) {
        outp[0] = (uint8_t *)(buf + have * (size_t)ch);
        got = swr_convert(swr, outp, (int)(cap - have), NULL, 0);
        if (got <= 0) break;
        have += (size_t)got;
    }
    swr_free(&swr);
    if (got < 0) {
        free(buf);
        snprintf(err, errlen, "pipeline: resampling %d Hz to %d Hz failed", in_rate, out_rate);
        return -1;
    }
    if (have < want)
        memset(buf + have * (size_t)ch, 0, (want - have) * (size_t)ch * sizeof *buf);
    *out = buf;
    *out_frames = want;
    return 0;
oom:
    snprintf(err, errlen, "pipeline: out of memory resampling %zu frames", frames);
    return -1;
}

/* Integrated loudness (LUFS) of interleaved float, S_SILENCE_DB for silence. A mono
 * file is measured as dual mono: it plays on both speakers, so at the same reading it
 * sounds as loud as a stereo file. */
static int s_loudness(const float *pcm, size_t frames, int ch, int rate, double *lufs,
                      char *err, size_t errlen)
{
    ebur128_state *st = ebur128_init((unsigned)ch, (unsigned long)rate, EBUR128_MODE_I);
    if (!st) {
        snprintf(err, errlen, "pipeline: libebur128 cannot measure %d Hz x %d", rate, ch);
        return -1;
    }
    if (ch == 1) ebur128_set_channel(st, 0, EBUR128_DUAL_MONO);
    double l = -HUGE_VAL;
    int rc = ebur128_add_frames_float(st, pcm, frames) == EBUR128_SUCCESS &&
                     ebur128_loudness_global(st, &l) == EBUR128_SUCCESS
                 ? 0
                 : -1;
    ebur128_destroy(&st);
    if (rc != 0) {
        snprintf(err, errlen, "pipeline: libebur128 failed to measure loudness");
        return -1;
    }
    *lufs = isfinite(l) ? l : S_SILENCE_DB;
    return 0;
}

static float s_peak(const float *pcm, size_t n)
{
    float p = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(pcm[i]);
        if (a > p) p = a;
    }
    return p;
}

/* Look-ahead peak limiter, in place, linked across channels, streaming with O(L)
 * memory. For each frame the gain that would put it at the ceiling is g_req; applied is
 *   m[n] = min(g_req[n .. n+L])        (look-ahead: falls before the peak arrives)
 *   r[n] = min(m[n], release(r[n-1]))  (exponential recovery towards 1)
 *   s[n] = mean(r[n-L .. n])           (smooth attack: no clicks)
 * Every r[k] with k in [n-L, n] is <= g_req[n] (the look-ahead window of k covers n), so
 * s[n] <= g_req[n] and the output never exceeds the ceiling; a final clamp absorbs float
 * rounding. Frame n is scaled at step n+L, after g_req of every later frame it depends on
 * was read, so working in place is safe. 0, or -1 (out of memory). */
static int s_limit(float *pcm, size_t frames, int ch, int rate, float ceiling)
{
    if (s_peak(pcm, frames * (size_t)ch) <= ceiling) return 0;
    size_t L = (size_t)(S_LOOKAHEAD_S * rate);
    if (L < 1) L = 1;
    typedef struct { size_t idx; float v; } s_slot_t;
    size_t qcap = L + 2, qh = 0, qn = 0;
    s_slot_t *dq = malloc(qcap * sizeof *dq); /* monotonic deque: increasing v */
    double *ring = malloc((L + 1) * sizeof *ring); /* last L+1 values of r */
    if (!dq || !ring) {
        free(dq);
        free(ring);
        return -1;
    }
    for (size_t k = 0; k <= L; k++) ring[k] = 1.0f;
    double sum = (double)(L + 1), r = 1.0;
    const double keep = exp(-1.0 / (S_RELEASE_S * rate));
    for (size_t i = 0; i < frames + L; i++) {
        if (i < frames) {
            float p = 0.0f;
            for (int c = 0; c < ch; c++) {
                float a = fabsf(pcm[i * (size_t)ch + (size_t)c]);
                if (a > p) p = a;
            }
            float v = p > ceiling ? ceiling / p : 1.0f;
            while (qn > 0 && dq[(qh + qn - 1) % qcap].v >= v) qn--;
            dq[(qh + qn) % qcap] = (s_slot_t){i, v};
            qn++;
        }
        if (i < L) continue;
        size_t n = i - L;
        while (dq[qh].idx < n) {
            qh = (qh + 1) % qcap;
            qn--;
        }
        double m = dq[qh].v;
        r = 1.0 - (1.0 - r) * keep;
        if (m < r) r = m;
        size_t slot = n % (L + 1);
        sum += r - ring[slot];
        ring[slot] = r;
        float s = (float)(sum / (double)(L + 1));
        for (int c = 0; c < ch; c++) {
            float *x = &pcm[n * (size_t)ch + (size_t)c];
            float y = *x * s;
            *x = y > ceiling ? ceiling : y < -ceiling ? -ceiling : y;
        }
    }
    free(dq);
    free(ring);
    return 0;
}

/* Gain to the loudness target, then the limiter; repeated (from the unlimited signal)
 * while the limiter's gain reduction leaves the result short of the target, since heavy
 * limiting lowers loudness. src is the mix before gain; dst receives the result. */
static int s_normalise(const float *src, float *dst, size_t frames, int ch, int rate,
                       const mg_output_spec_t *o, float ceiling, double *lufs, char *err,
                       size_t errlen)
{
    size_t ns = frames * (size_t)ch;
    double l0;
    if (s_loudness(src, frames, ch, rate, &l0, err, errlen) != 0) return -1;
    /* Near-silent renders (below the R128 absolute gate) are left alone rather than
     * amplified by tens of dB. */
    int normalise = o->normalize && l0 > -70.0;
    double gain_db = normalise ? o->loudness_lufs - l0 : 0.0;
    for (int iter = 0; iter < 4; iter++) {
        float g = (float)s_db_to_lin(gain_db);
        for (size_t i = 0; i < ns; i++) dst[i] = src[i] * g;
        if (s_limit(dst, frames, ch, rate, ceiling) != 0) {
            snprintf(err, errlen, "pipeline: out of memory in the limiter");
            return -1;
        }
        if (s_loudness(dst, frames, ch, rate, lufs, err, errlen) != 0) return -1;
        if (!normalise) break;
        double miss = o->loudness_lufs - *lufs;
        if (fabs(miss) < S_LU_TOLERANCE) break;
        gain_db += miss;
    }
    return 0;
}

/* Output rate for MP3: MPEG audio stops at 48 kHz. Rates above go to 48000, or 44100
 * for the 44.1 kHz family; an odd rate in range goes up to the next MPEG rate. */
static int s_mp3_rate(int rate)
{
    static const int rates[] = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000};
    if (rate > 48000) return rate % 11025 == 0 ? 44100 : 48000;
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        if (rates[i] >= rate) return rates[i];
    return 48000;
}

void mg_pipeline_result_free(mg_pipeline_result_t *res)
{
    if (!res) return;
    for (int i = 0; i < res->n_files && i < 3; i++) free(res->files[i].data);
    memset(res, 0, sizeof *res);
}

int mg_pipeline_run(const mg_render_spec_t *spec, const mg_audio_t *audio, const mg_kv_t *tags,
                    mg_pipeline_result_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const mg_output_spec_t *o = &spec->output;
    int ch = o->channels, rate = o->sample_rate;
    if (!audio || audio->n_stems < 1 || !audio->stems || audio->frames == 0 ||
        audio->sample_rate < 1000) {
        snprintf(err, errlen, "pipeline: render %lld produced no audio (stems %d, frames %zu, "
                 "rate %d); this is a renderer bug",
                 (long long)spec->render_id, audio ? audio->n_stems : 0,
                 audio ? audio->frames : (size_t)0, audio ? audio->sample_rate : 0);
        return -1;
    }
    if (ch < 1 || ch > 2 || rate < 8000 || rate > 192000) {
        snprintf(err, errlen, "pipeline: render %lld asks for %d Hz x %d channels; supported are "
                 "8000..192000 Hz, 1 or 2 channels",
                 (long long)spec->render_id, rate, ch);
        return -1;
    }
    if ((o->formats & (MG_FORMAT_FLAC | MG_FORMAT_MP3 | MG_FORMAT_WAV)) == 0) {
        snprintf(err, errlen, "pipeline: render %lld requests no known output format (mask 0x%x)",
                 (long long)spec->render_id, o->formats);
        return -1;
    }
    const float ceiling = (float)s_db_to_lin(S_CEILING_DB);
    int rc = -1;
    float *mix = NULL, *src = NULL, *pcm = NULL, *mp3pcm = NULL;
    size_t frames = 0;

    mix = s_mixdown(audio, ch);
    if (!mix) {
        snprintf(err, errlen, "pipeline: out of memory mixing %zu frames", audio->frames);
        goto done;
    }
    s_remove_dc(mix, audio->frames, ch, audio->sample_rate);
    if (s_resample(mix, audio->frames, ch, audio->sample_rate, rate, &src, &frames, err,
                   errlen) != 0)
        goto done;
    free(mix);
    mix = NULL;
    pcm = malloc(frames * (size_t)ch * sizeof *pcm);
    if (!pcm) {
        snprintf(err, errlen, "pipeline: out of memory (%zu frames)", frames);
        goto done;
    }
    if (s_normalise(src, pcm, frames, ch, rate, o, ceiling, &out->integrated_lufs, err,
                    errlen) != 0)
        goto done;
    free(src);
    src = NULL;
    float peak = s_peak(pcm, frames * (size_t)ch);
    out->peak_dbfs = peak > 0.0f ? 20.0 * log10(peak) : S_SILENCE_DB;

    static const unsigned order[3] = {MG_FORMAT_FLAC, MG_FORMAT_MP3, MG_FORMAT_WAV};
    for (int k = 0; k < 3; k++) {
        if (!(o->formats & order[k])) continue;
        mg_encoded_t *f = &out->files[out->n_files];
        memset(f, 0, sizeof *f);
        f->format = order[k];
        f->channels = ch;
        f->sample_rate = rate;
        f->duration_s = (double)frames / rate;
        char ferr[256] = "";
        int r;
        if (order[k] == MG_FORMAT_FLAC) {
            int bits = o->flac_bits ? o->flac_bits : 16;
            r = mg_encode_flac(pcm, frames, rate, ch, bits, tags, &f->data, &f->len, ferr,
                               sizeof ferr);
        } else if (order[k] == MG_FORMAT_MP3) {
            int mrate = s_mp3_rate(rate), kbps = o->mp3_bitrate_kbps ? o->mp3_bitrate_kbps : 192;
            const float *mp = pcm;
            size_t mframes = frames;
            if (mrate != rate) {
                if (s_resample(pcm, frames, ch, rate, mrate, &mp3pcm, &mframes, ferr,
                               sizeof ferr) != 0) {
                    snprintf(err, errlen, "pipeline: render %lld: mp3: %s",
                             (long long)spec->render_id, ferr);
                    goto done;
                }
                mp = mp3pcm;
            }
            f->sample_rate = mrate;
            f->duration_s = (double)mframes / mrate;
            r = mg_encode_mp3(mp, mframes, mrate, ch, kbps, tags, &f->data, &f->len, ferr,
                              sizeof ferr);
            free(mp3pcm);
            mp3pcm = NULL;
        } else {
            r = mg_encode_wav(pcm, frames, rate, ch, &f->data, &f->len, ferr, sizeof ferr);
        }
        if (r != 0) {
            snprintf(err, errlen, "pipeline: render %lld: %s output failed: %s",
                     (long long)spec->render_id, s_format_name(order[k]), ferr);
            goto done;
        }
        mg_sha256_hex(f->data, f->len, f->sha256);
        out->n_files++;
    }
    rc = 0;
done:
    free(mix);
    free(src);
    free(pcm);
    free(mp3pcm);
    if (rc != 0) mg_pipeline_result_free(out);
    return rc;
}
