/* pipeline.c - the worker's audio pipeline (pipeline.h): rendered stems in, tagged
 * FLAC / MP3 / WAV bytes out. Runs after the renderer, before the RESULT message:
 *
 *   mixdown (gain, constant-power pan) -> DC removal -> libswresample to the output rate
 *   -> EBU R128 gain to the target (when asked) -> look-ahead true-peak limiter (-1 dBTP)
 *   -> measure loudness and peaks -> encode flac, wav; mp3 from a copy limited 0.5 dB lower,
 *   decoded and measured again -> sha256 of each file.
 *
 * DC removal comes first (not last) so that nothing after the limiter can move the peak.
 * Peaks are true peaks (ITU-R BS.1770-4 Annex 2, 4x oversampled): a mix whose samples stop
 * at -1 dBFS can still reconstruct to -0.4 dBTP between them, which is what a DAC, a
 * sample-rate converter or a lossy encoder sees.
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
#include <libavutil/rational.h>
#include <libswresample/swresample.h>

#include "../common/util.h"

/* The limiter's true-peak ceiling (dBTP; EBU R 128 and the streaming services ask for
 * -1). Fixed, not a job setting. The limiter aims S_TP_MARGIN_DB under it so that 16-bit
 * rounding and the spread between 4x meters (libebur128's 49-tap filter, mix_check.py's
 * 128-tap one) cannot carry a file over. */
#define S_CEILING_DB (-1.0)
#define S_TP_MARGIN_DB 0.05
/* MP3 coding overshoots: the filter bank and quantisation noise add true peak, a few tenths
 * of a dB on music, up to 3 dB on broadband noise at 128 kbps. The MP3 copy is limited this
 * far under the ceiling, then decoded and measured; while over, limited lower and encoded
 * again. */
#define S_MP3_MARGIN_DB 0.5
#define S_MP3_TRIES 6
#define S_MP3_STEP_DB 0.2     /* past the excess: MP3 peaks move ~0.2 dB from encode to encode */
/* The MP3 decodes 0.3..0.4 LU quieter than its input at 192 kbps, more at lower rates
 * (the encoder's low-pass and masking take top-octave energy that K-weighting counts
 * +4 dB). Within this of the target it is kept; past it, it is encoded again with the
 * gain made up (an encode is the pipeline's most expensive step). */
#define S_MP3_LU_TOLERANCE 0.3
#define S_TP_TAPS 32          /* taps per phase of the 4x interpolator (a 128-tap prototype) */
#define S_TP_BLOCK 256        /* frames the meter interpolates at a time */
#define S_TP_BETA 8.0         /* Kaiser window: stop band ~ -80 dB, as bench/mix_check.py */
#define S_TP_HOLD (S_TP_TAPS / 2) /* frames the gain holds flat either side of a peak: the
                                   * interpolator's reach, so it sees one gain, not a slope */
#define S_TP_PASSES 3         /* limiter passes, each verified on the output, before the fallback */
#define S_LOOKAHEAD_S 0.005   /* gain starts falling 5 ms before a peak: no audible click */
#define S_RELEASE_S 0.120     /* recovery time constant after a peak */
#define S_DC_HZ 5.0           /* one-pole high-pass corner: below any musical content */
#define S_SILENCE_DB (-200.0) /* reported loudness / peak of digital silence (not -inf) */
#define S_LU_TOLERANCE 0.2    /* the normalisation loop stops once this close */
#define S_NORM_ITERS 6        /* ... or after this many gain settings */
#define S_LU_SHORT_WARN 0.5   /* a limited mix this far under the target is logged */

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

/* Mixes the stems (all of them, or only stem `only` when it is >= 0) into interleaved
 * float with out_ch channels at the renderer's rate. Stereo uses the constant-power pan law
 * (centre = -3 dB per side, so the mix has the same loudness as the mono sum). wrap > 0 is a
 * loop: the result has wrap frames of the loop's end before frame 0 and wrap frames of its
 * start after its end (read modulo the length), frames + 2 wrap in all. Returns a malloc'd
 * buffer (caller owns) or NULL. */
static float *s_mixdown(const mg_audio_t *audio, int out_ch, int only, size_t wrap)
{
    size_t n = audio->frames, total = n + 2 * wrap;
    float *mix = calloc(total * (size_t)out_ch, sizeof *mix);
    if (!mix) return NULL;
    for (int s = 0; s < audio->n_stems; s++) {
        const mg_stem_t *st = &audio->stems[s];
        if (!st->samples || (only >= 0 && s != only)) continue;
        float g = st->gain;
        float gl = g, gr = g;
        if (out_ch == 2) {
            double pan = st->pan < -1.0f ? -1.0 : st->pan > 1.0f ? 1.0 : st->pan;
            double th = (pan + 1.0) * M_PI / 4.0;
            gl = (float)(g * cos(th));
            gr = (float)(g * sin(th));
        }
        for (size_t i = 0; i < total; i++) {
            /* i - wrap, modulo n, without going negative */
            size_t k = wrap ? (i + n - wrap % n) % n : i;
            float x = st->samples[k];
            if (out_ch == 1) {
                mix[i] += g * x;
            } else {
                mix[2 * i] += gl * x;
                mix[2 * i + 1] += gr * x;
            }
        }
    }
    return mix;
}

static uint64_t s_gcd(uint64_t a, uint64_t b)
{
    while (b) { uint64_t t = a % b; a = b; b = t; }
    return a;
}

/* How a loop goes through the chain. It is processed as a circle: wrap frames of its end
 * before its first frame and wrap of its start after its last (about a second, at the
 * renderer's rate: the DC blocker's and the limiter's memory are far shorter), cut off again at
 * the output rate from frame wrap_out on, frames_out = round(frames x out / in) frames.
 * When frames x out / in is a whole number the resampler runs at in -> out and wrap is a
 * multiple of in / gcd(in, out), so the cut lands exactly on the loop's first frame. When it is
 * not (24 kHz into 44.1 kHz with a length that is not a multiple of 80 frames, say), a period of
 * frames_out would be up to half a sample short or long of the loop, a jump in phase at every
 * repeat (measured: -21 dB of energy off the loop's harmonics on a 3-tone loop). The loop is
 * then resampled at exactly frames -> frames_out instead: its tempo and pitch move by at most
 * half a sample per period (1 ppm for a 10 s loop at 44.1 kHz), and the cut lands within half
 * an output sample of the first frame (a period may start anywhere; the stems are cut at the
 * same place as the mix). libswresample takes such rates only up to about a million (loops of
 * up to 41 s at 24 kHz, every output rate); past that the nearest ratio of smaller numbers is
 * used when it keeps the period within 0.01 sample, else the plain rates, and the half-sample
 * jump stays (s_loop_plan's exact == 0). */
typedef struct {
    size_t wrap, wrap_out, frames_out;
    int rate_in, rate_out;   /* what the resampler is told */
    int exact;               /* 1: the period is frames_out to within 0.01 output sample */
} s_loop_plan_t;

/* Whether libswresample sets up a resampler for in -> out. */
static int s_swr_takes(int in, int out)
{
    SwrContext *swr = NULL;
    AVChannelLayout lay;
    av_channel_layout_default(&lay, 1);
    int r = swr_alloc_set_opts2(&swr, &lay, AV_SAMPLE_FMT_FLT, out, &lay, AV_SAMPLE_FMT_FLT, in, 0, NULL);
    if (r >= 0) r = swr_init(swr);
    swr_free(&swr);
    av_channel_layout_uninit(&lay);
    return r >= 0;
}

static s_loop_plan_t s_loop_plan(size_t frames, int in_rate, int out_rate)
{
    s_loop_plan_t p = {0};
    uint64_t num = (uint64_t)frames * (uint64_t)out_rate;
    p.frames_out = (size_t)((num + (uint64_t)in_rate / 2) / (uint64_t)in_rate);
    p.rate_in = in_rate;
    p.rate_out = out_rate;
    p.exact = num % (uint64_t)in_rate == 0;
    if (!p.exact) {
        uint64_t g = s_gcd(frames, p.frames_out);
        int a = 0, b = 0;
        if (frames / g <= 1000000 && p.frames_out / g <= 1000000 &&
            s_swr_takes((int)(frames / g), (int)(p.frames_out / g))) {
            a = (int)(frames / g);
            b = (int)(p.frames_out / g);
        } else if (av_reduce(&b, &a, (int64_t)p.frames_out, (int64_t)frames, 1000000) >= 0 && a > 0 &&
                   fabs((double)frames * b / a - (double)p.frames_out) <= 0.01 && s_swr_takes(a, b)) {
            /* the nearest ratio in smaller numbers */
        } else {
            a = 0;
        }
        if (a) {
            p.exact = 1;
            p.rate_in = a;
            p.rate_out = b;
            p.wrap = (size_t)in_rate;
            p.wrap_out = (size_t)(((uint64_t)p.wrap * (uint64_t)b + (uint64_t)a / 2) / (uint64_t)a);
            return p;
        }
    }
    size_t step = (size_t)((uint64_t)in_rate / s_gcd((uint64_t)in_rate, (uint64_t)out_rate));
    p.wrap = ((size_t)in_rate + step - 1) / step * step;
    p.wrap_out = (size_t)((uint64_t)p.wrap * (uint64_t)out_rate / (uint64_t)in_rate);
    return p;
}

/* A copy of the loop pcm (frames, interleaved) with wrap frames of its end before it and
 * wrap of its start after it, read around the loop; malloc'd (caller owns) or NULL. */
static float *s_loop_copy(const float *pcm, size_t frames, int ch, size_t wrap)
{
    size_t total = frames + 2 * wrap;
    float *x = malloc(total * (size_t)ch * sizeof *x);
    if (!x) return NULL;
    for (size_t i = 0; i < total; i++) {
        size_t k = (i + frames - wrap % frames) % frames;
        memcpy(x + i * (size_t)ch, pcm + k * (size_t)ch, (size_t)ch * sizeof *x);
    }
    return x;
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
        mg_set_error(err, errlen, "pipeline: %zu frames is too long to resample", frames);
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
        mg_set_error(err, errlen, "pipeline: libswresample cannot convert %d Hz to %d Hz (%d channels)",
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
        mg_set_error(err, errlen, "pipeline: resampling %d Hz to %d Hz failed", in_rate, out_rate);
        return -1;
    }
    if (have < want)
        memset(buf + have * (size_t)ch, 0, (want - have) * (size_t)ch * sizeof *buf);
    *out = buf;
    *out_frames = want;
    return 0;
oom:
    mg_set_error(err, errlen, "pipeline: out of memory resampling %zu frames", frames);
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
        mg_set_error(err, errlen, "pipeline: libebur128 cannot measure %d Hz x %d", rate, ch);
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
        mg_set_error(err, errlen, "pipeline: libebur128 failed to measure loudness");
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

/* ---- true peak ------------------------------------------------------------------ */

/* The 4x true-peak meter: three fractional-delay FIRs (phases 1/4, 2/4, 3/4; phase 0 is
 * the sample itself) and its buffers, allocated once per render (s_tp_init / s_tp_free). */
typedef struct {
    float fir[3][S_TP_TAPS]; /* y(n + p/4) = sum_q x[n - S_TP_TAPS/2 + 1 + q] fir[p-1][q] */
    float *pad;              /* (frames rounded up to S_TP_BLOCK, + S_TP_TAPS - 1) one channel,
                              * zeros either side */
    float *env;              /* (frames) true-peak level at each frame, max over channels */
    size_t frames;
} s_tp_meter_t;

static double s_bessel_i0(double x)
{
    double sum = 1.0, term = 1.0;
    for (int k = 1; k < 200 && term > 1e-12 * sum; k++) {
        term *= (x / (2.0 * k)) * (x / (2.0 * k));
        sum += term;
    }
    return sum;
}

/* Sizes m for signals of up to frames frames and designs the interpolator: a sinc
 * read at quarter-sample offsets under a Kaiser window reaching S_TP_TAPS/2 + 1 samples
 * out (bench/mix_check.py's true_peak, so the worker measures what the check measures).
 * 0, or -1 when out of memory (m then needs no s_tp_free). */
static int s_tp_init(s_tp_meter_t *m, size_t frames)
{
    const int half = S_TP_TAPS / 2;
    for (int p = 1; p <= 3; p++) {
        for (int q = 0; q < S_TP_TAPS; q++) {
            double t = (half - 1 - q) + p / 4.0; /* distance from the tap to the output point */
            double u = t / (half + 1);
            double w = s_bessel_i0(S_TP_BETA * sqrt(fmax(0.0, 1.0 - u * u))) /
                       s_bessel_i0(S_TP_BETA);
            m->fir[p - 1][q] = (float)(sin(M_PI * t) / (M_PI * t) * w);
        }
    }
    m->frames = frames;
    size_t blocks = (frames + S_TP_BLOCK - 1) / S_TP_BLOCK;
    m->pad = malloc((blocks * S_TP_BLOCK + S_TP_TAPS - 1) * sizeof *m->pad);
    m->env = malloc((frames ? frames : 1) * sizeof *m->env);
    if (!m->pad || !m->env) {
        free(m->pad);
        free(m->env);
        memset(m, 0, sizeof *m);
        return -1;
    }
    return 0;
}

static void s_tp_free(s_tp_meter_t *m)
{
    free(m->pad);
    free(m->env);
    memset(m, 0, sizeof *m);
}

/* The three interpolated phases of S_TP_BLOCK frames from x (the padded channel at the
 * block's first frame): a[p][i] = y(n0 + i + (p+1)/4). A fixed trip count and restrict
 * pointers let the compiler vectorise the inner loop at -O2; at about 8 ns per sample
 * (96 multiply-adds) it is compute-bound. */
static void s_tp_block(const float (*fir)[S_TP_TAPS], const float *restrict x,
                       float *restrict a0, float *restrict a1, float *restrict a2)
{
    for (int i = 0; i < S_TP_BLOCK; i++) {
        a0[i] = 0.0f;
        a1[i] = 0.0f;
        a2[i] = 0.0f;
    }
    for (int q = 0; q < S_TP_TAPS; q++) {
        const float h0 = fir[0][q], h1 = fir[1][q], h2 = fir[2][q];
        const float *restrict xq = x + q;
        for (int i = 0; i < S_TP_BLOCK; i++) {
            a0[i] += h0 * xq[i];
            a1[i] += h1 * xq[i];
            a2[i] += h2 * xq[i];
        }
    }
}

/* Fills m->env[0 .. frames) with the true-peak level at each frame of interleaved pcm:
 * the largest of |x[n]| and the interpolated values on either side of it (n - 3/4 ..
 * n + 3/4), over all channels; returns the largest of them all, the true peak (linear).
 * frames <= m->frames. */
static float s_tp_envelope(s_tp_meter_t *m, const float *pcm, size_t frames, int ch)
{
    enum { H = S_TP_TAPS / 2 };
    float *env = m->env, *pad = m->pad;
    float a0[S_TP_BLOCK], a1[S_TP_BLOCK], a2[S_TP_BLOCK];
    size_t blocks = (frames + S_TP_BLOCK - 1) / S_TP_BLOCK;
    memset(env, 0, frames * sizeof *env);
    memset(pad, 0, (H - 1) * sizeof *pad);
    memset(pad + H - 1 + frames, 0, (blocks * S_TP_BLOCK - frames + H) * sizeof *pad);
    for (int c = 0; c < ch; c++) {
        for (size_t i = 0; i < frames; i++) pad[H - 1 + i] = pcm[i * (size_t)ch + (size_t)c];
        for (size_t n0 = 0; n0 < frames; n0 += S_TP_BLOCK) {
            size_t nb = frames - n0 < S_TP_BLOCK ? frames - n0 : S_TP_BLOCK;
            s_tp_block(m->fir, pad + n0, a0, a1, a2);
            for (size_t i = 0; i < nb; i++) { /* plain compares: fmaxf is a call at -O2 */
                size_t n = n0 + i;
                float v = fabsf(a0[i]), v1 = fabsf(a1[i]), v2 = fabsf(a2[i]);
                float x = fabsf(pad[H - 1 + n]);
                v = v1 > v ? v1 : v;
                v = v2 > v ? v2 : v;
                float e = env[n] > x ? env[n] : x;
                env[n] = v > e ? v : e;
                if (n + 1 < frames && v > env[n + 1]) env[n + 1] = v;
            }
        }
    }
    float peak = 0.0f;
    for (size_t n = 0; n < frames; n++)
        if (env[n] > peak) peak = env[n];
    return peak;
}

/* Look-ahead limiter, in place, linked across channels, streaming with O(L) memory.
 * env[n] * scale is the true-peak level around frame n (s_tp_envelope of pcm, or of the
 * signal pcm is scale times). The gain that would put frame n at aim is g_req; applied is
 *   m[n] = min(g_req[n-W .. n+L+W])    (look-ahead, plus a hold of W = S_TP_HOLD frames)
 *   r[n] = min(m[n], release(r[n-1]))  (exponential recovery towards 1)
 *   s[n] = mean(r[n-L .. n])           (smooth attack: no clicks)
 * Every r[k] with k in [n-L, n] is <= g_req[n] (the window of k covers n), so s[n] <=
 * g_req[n]: the sample and the interpolated points next to it stay under aim as long as
 * the gain is the same over the interpolator's reach; the hold makes it so around an
 * isolated peak (s is exactly flat on [P-W, P+W]), and the caller measures the output
 * for the rest. r runs from frame -L (before the start, where nothing is scaled), so a
 * peak in the first L frames is met by a full attack too. pcm is scaled at step n+L+W,
 * from env alone, so working in place is safe. A final clamp absorbs float rounding of
 * sample peaks. 0, or -1 (out of memory; pcm unchanged). */
static int s_limit(float *pcm, size_t frames, int ch, int rate, const float *env, float scale,
                   float aim)
{
    size_t L = (size_t)(S_LOOKAHEAD_S * rate);
    if (L < 1) L = 1;
    const size_t W = S_TP_HOLD;
    typedef struct { size_t idx; float v; } s_slot_t;
    size_t qcap = L + 2 * W + 2, qh = 0, qn = 0;
    s_slot_t *dq = malloc(qcap * sizeof *dq);      /* monotonic deque: increasing v */
    double *ring = malloc((L + 1) * sizeof *ring); /* last L+1 values of r */
    if (!dq || !ring) {
        free(dq);
        free(ring);
        return -1;
    }
    for (size_t k = 0; k <= L; k++) ring[k] = 1.0;
    double sum = (double)(L + 1), r = 1.0;
    const double keep = exp(-1.0 / (S_RELEASE_S * rate));
    for (size_t i = 0; i < frames + L + W; i++) {
        if (i < frames) {
            float e = env[i] * scale;
            float v = e > aim ? aim / e : 1.0f;
            while (qn > 0 && dq[(qh + qn - 1) % qcap].v >= v) qn--;
            dq[(qh + qn) % qcap] = (s_slot_t){i, v};
            qn++;
        }
        if (i < W) continue;
        size_t j = i - W; /* = n + L: frame n = j - L, from -L on */
        while (dq[qh].idx + W + L < j) { /* idx < n - W: out of the window */
            qh = (qh + 1) % qcap;
            qn--;
        }
        double mv = dq[qh].v;
        r = 1.0 - (1.0 - r) * keep;
        if (mv < r) r = mv;
        size_t slot = j % (L + 1);
        sum += r - ring[slot];
        ring[slot] = r;
        if (j < L) continue; /* a frame before the start: only primes the ring */
        size_t n = j - L;
        float s = (float)(sum / (double)(L + 1));
        for (int c = 0; c < ch; c++) {
            float *x = &pcm[n * (size_t)ch + (size_t)c];
            float y = *x * s;
            *x = y > aim ? aim : y < -aim ? -aim : y;
        }
    }
    free(dq);
    free(ring);
    return 0;
}

/* Brings pcm's true peak to at most ceiling_db - S_TP_MARGIN_DB, in place. env, scale and
 * level describe pcm on entry (its envelope is env * scale, its true peak level * scale);
 * env may be m->env. Under the aim already, pcm is not touched. Otherwise s_limit runs,
 * its output is measured, and limited again from its own envelope while over (limited
 * passages side by side can bend the gain inside the interpolator's reach); should
 * S_TP_PASSES not do, the whole signal is scaled down, which holds exactly. *tp gets the
 * true peak of the result (linear). 0, or -1 when out of memory. */
static int s_limit_true_peak(s_tp_meter_t *m, float *pcm, size_t frames, int ch, int rate,
                             const float *env, float scale, float level, double ceiling_db,
                             float *tp)
{
    const float aim = (float)s_db_to_lin(ceiling_db - S_TP_MARGIN_DB);
    const float slack = aim * 1.001f; /* 0.01 dB: what one more pass would not improve */
    level *= scale;
    for (int pass = 0; pass < S_TP_PASSES && level > slack; pass++) {
        if (s_limit(pcm, frames, ch, rate, pass == 0 ? env : m->env, pass == 0 ? scale : 1.0f,
                    aim) != 0)
            return -1;
        level = s_tp_envelope(m, pcm, frames, ch);
    }
    if (level > slack) {
        float g = aim / level;
        for (size_t i = 0; i < frames * (size_t)ch; i++) pcm[i] *= g;
        level = s_tp_envelope(m, pcm, frames, ch);
    }
    *tp = level;
    return 0;
}

double mg_true_peak(const float *pcm, size_t frames, int channels)
{
    if (frames == 0 || channels < 1) return 0.0;
    s_tp_meter_t m;
    if (s_tp_init(&m, frames) != 0) return -1.0;
    double tp = s_tp_envelope(&m, pcm, frames, channels);
    s_tp_free(&m);
    return tp;
}

int mg_limit_true_peak(float *pcm, size_t frames, int channels, int rate, double ceiling_dbtp)
{
    if (frames == 0 || channels < 1) return 0;
    s_tp_meter_t m;
    if (s_tp_init(&m, frames) != 0) return -1;
    float level = s_tp_envelope(&m, pcm, frames, channels), tp;
    int rc = s_limit_true_peak(&m, pcm, frames, channels, rate, m.env, 1.0f, level, ceiling_dbtp,
                               &tp);
    s_tp_free(&m);
    return rc;
}

/* ---- loudness --------------------------------------------------------------------- */

/* Gain to the loudness target, then the true-peak limiter; repeated (from the unlimited
 * signal) while the limiter's gain reduction leaves the result short of the target, since
 * heavy limiting lowers loudness. src is the mix before gain; dst receives the result;
 * *tp its true peak (linear). The envelope of src is measured once: the gain is linear,
 * so dst's is the same times the gain. m is sized for frames. Loudness is measured on frames
 * [off, off + meas) only: a loop's delivered period, not its wrap-around (which would count a
 * second of its end and of its start twice). */
static int s_normalise(s_tp_meter_t *m, const float *src, float *dst, size_t frames, size_t off,
                       size_t meas, int ch, int rate, const mg_output_spec_t *o, double ceiling_db,
                       double *lufs, float *tp, float *gain, char *err, size_t errlen)
{
    size_t ns = frames * (size_t)ch;
    double l0;
    if (s_loudness(src + off * (size_t)ch, meas, ch, rate, &l0, err, errlen) != 0) return -1;
    float *src_env = malloc(frames * sizeof *src_env);
    if (!src_env) {
        mg_set_error(err, errlen, "pipeline: out of memory in the limiter");
        return -1;
    }
    float src_level = s_tp_envelope(m, src, frames, ch);
    memcpy(src_env, m->env, frames * sizeof *src_env);
    /* Near-silent renders (below the R128 absolute gate) are left alone rather than
     * amplified by tens of dB. */
    int normalise = o->normalize && l0 > -70.0;
    double gain_db = normalise ? o->loudness_lufs - l0 : 0.0;
    int rc = -1;
    double prev_gain = 0.0, prev_lufs = 0.0;
    for (int iter = 0; iter < S_NORM_ITERS; iter++) {
        float g = (float)s_db_to_lin(gain_db);
        *gain = g;
        for (size_t i = 0; i < ns; i++) dst[i] = src[i] * g;
        if (s_limit_true_peak(m, dst, frames, ch, rate, src_env, g, src_level, ceiling_db, tp) !=
            0) {
            mg_set_error(err, errlen, "pipeline: out of memory in the limiter");
            goto done;
        }
        if (s_loudness(dst + off * (size_t)ch, meas, ch, rate, lufs, err, errlen) != 0) goto done;
        if (!normalise) break;
        double miss = o->loudness_lufs - *lufs;
        if (fabs(miss) < S_LU_TOLERANCE) break;
        /* Secant step: once the limiter works, a dB of gain buys less than a LU. */
        double slope = 1.0;
        if (iter > 0 && fabs(gain_db - prev_gain) > 1e-6)
            slope = fmin(1.0, fmax(0.25, (*lufs - prev_lufs) / (gain_db - prev_gain)));
        prev_gain = gain_db;
        prev_lufs = *lufs;
        gain_db += miss / slope;
    }
    rc = 0;
done:
    free(src_env);
    return rc;
}

/* Encodes the MP3 (pcm at rate, already an MPEG rate) so that the decoded file's true
 * peak is at most ceiling_db - S_TP_MARGIN_DB and, when normalise, its loudness within
 * S_MP3_LU_TOLERANCE of target_lufs. A copy is limited S_MP3_MARGIN_DB under the ceiling,
 * encoded, decoded and measured. While the decode is over, the aim drops under the copy's
 * true peak by the excess plus S_MP3_STEP_DB; while it misses the target, the copy's gain
 * moves by the miss (secant step, at most 3 dB in all); up to S_MP3_TRIES encodes. The
 * file kept is the best one: under the ceiling before all, then nearest the target (or,
 * none under, the lowest peak); *tp_db and *lufs (of its decode) tell the caller whether
 * it made it. What is encoded is frames [off, off + frames) of pcm, which holds total; the
 * limiter works on all of it (a loop: its wrap-around on either side, so that the copy's gain
 * is the same on both sides of the seam). 0 and *data malloc'd (caller owns), or -1 with err
 * set and nothing kept. */
static int s_encode_mp3_tp(const float *pcm, size_t total, size_t off, size_t frames, int rate,
                           int ch, int kbps, const mg_kv_t *tags, double ceiling_db, int normalise,
                           double target_lufs, unsigned char **data, size_t *len, double *tp_db,
                           double *lufs, char *err, size_t errlen)
{
    *data = NULL;
    *len = 0;
    size_t ns = total * (size_t)ch;
    float *work = malloc(ns * sizeof *work), *penv = malloc(total * sizeof *penv), *dec = NULL;
    unsigned char *cur = NULL;
    s_tp_meter_t m = {0};
    int rc = -1;
    if (!work || !penv || s_tp_init(&m, total) != 0) goto oom;
    float plevel = s_tp_envelope(&m, pcm, total, ch);
    memcpy(penv, m.env, total * sizeof *penv);
    double aim_db = ceiling_db - S_MP3_MARGIN_DB, gain_db = 0.0;
    double prev_gain = 0.0, prev_lufs = 0.0, prev_aim = aim_db;
    for (int t = 0; t < S_MP3_TRIES; t++) {
        /* One limiter pass, unverified: the decode below is the check that counts. */
        float g = (float)s_db_to_lin(gain_db), aim = (float)s_db_to_lin(aim_db);
        float tp = plevel * g < aim ? plevel * g : aim; /* the copy's true peak, near enough */
        for (size_t i = 0; i < ns; i++) work[i] = pcm[i] * g;
        if (plevel * g > aim && s_limit(work, total, ch, rate, penv, g, aim) != 0) goto oom;
        size_t clen, dframes;
        int drate, dch;
        if (mg_encode_mp3(work + off * (size_t)ch, frames, rate, ch, kbps, tags, &cur, &clen, err,
                          errlen) != 0)
            goto done;
        free(dec);
        dec = NULL;
        if (mg_decode_mp3(cur, clen, &dec, &dframes, &drate, &dch, err, errlen) != 0) goto done;
        double dtp = dframes <= total && dch == ch ? s_tp_envelope(&m, dec, dframes, dch)
                                                    : mg_true_peak(dec, dframes, dch), l;
        if (dtp < 0) goto oom;
        double tdb = dtp > 0.0 ? 20.0 * log10(dtp) : S_SILENCE_DB;
        if (s_loudness(dec, dframes, dch, drate, &l, err, errlen) != 0) goto done;
        /* the same margin as the mix: another decoder or meter may read a little higher */
        const double accept_db = ceiling_db - S_TP_MARGIN_DB;
        double over = tdb - accept_db, miss = normalise ? target_lufs - l : 0.0;
        int ok = over <= 0.0, best_ok = *data && *tp_db <= accept_db;
        int better = !*data || ok > best_ok ||
                     (ok && best_ok && fabs(miss) < fabs(normalise ? target_lufs - *lufs : 0.0)) ||
                     (!ok && !best_ok && tdb < *tp_db);
        if (better) {
            free(*data);
            *data = cur;
            *len = clen;
            *tp_db = tdb;
            *lufs = l;
        } else {
            free(cur);
        }
        cur = NULL;
        if (ok && fabs(miss) < S_MP3_LU_TOLERANCE) break;
        /* LU per dB of gain, as in s_normalise; measured only while the aim held still */
        double slope = 1.0;
        if (t > 0 && prev_aim == aim_db && fabs(gain_db - prev_gain) > 1e-6)
            slope = fmin(1.0, fmax(0.25, (l - prev_lufs) / (gain_db - prev_gain)));
        prev_gain = gain_db;
        prev_lufs = l;
        prev_aim = aim_db;
        if (over > 0.0) /* from the copy's true peak: the aim may not have been reached */
            aim_db = fmin(aim_db, 20.0 * log10(tp)) - over - S_MP3_STEP_DB;
        gain_db = fmin(3.0, fmax(-3.0, gain_db + miss / slope));
    }
    rc = 0;
    goto done;
oom:
    mg_set_error(err, errlen, "out of memory for the mp3 true-peak check (%zu frames)", frames);
done:
    if (rc != 0) {
        free(*data);
        *data = NULL;
        *len = 0;
    }
    free(cur);
    free(dec);
    free(penv);
    free(work);
    s_tp_free(&m);
    return rc;
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

const char *mg_encoded_ext(const mg_encoded_t *f)
{
    return f->format == 0 ? "mid" : s_format_name(f->format);
}

void mg_pipeline_result_free(mg_pipeline_result_t *res)
{
    if (!res) return;
    for (int i = 0; i < res->n_files && i < MG_PIPELINE_MAX_FILES; i++) free(res->files[i].data);
    memset(res, 0, sizeof *res);
}

/* The tags of one file: the render's, plus what this file is (mix or which stem) and, for a
 * loop, where it loops. *out is a new record the caller clears. 0 or -1 (out of memory). */
static int s_file_tags(const mg_kv_t *tags, const char *kind, const char *part, size_t loop_length,
                       mg_kv_t *out)
{
    mg_kv_init(out);
    int rc = 0;
    if (tags && tags->n) {
        size_t len;
        char *enc = mg_kv_encode(tags, &len);
        rc = !enc || mg_kv_decode(out, enc, len) != 0 ? -1 : 0;
        free(enc);
    }
    rc |= mg_kv_set(out, "MG_KIND", kind);
    if (*part) {
        rc |= mg_kv_set(out, "MG_STEM", part);
        const char *title = tags ? mg_kv_get(tags, "TITLE") : NULL;
        if (title) rc |= mg_kv_setf(out, "TITLE", "%s (%s)", title, part);
    }
    if (loop_length) {
        rc |= mg_kv_set(out, "LOOPSTART", "0");
        rc |= mg_kv_set_u64(out, "LOOPLENGTH", loop_length);
    }
    return rc ? -1 : 0;
}

/* Encodes pcm (the final signal, frames at rate) in every format the spec asks for, appending
 * one file each to out. normalise: the MP3 copy is brought back to the loudness target after
 * coding (the mix); stems keep the mix's gain instead. 0, or -1 with err set. */
/* Progress through the pipeline: steps done of steps in all (the loudness pass counts one,
 * each encoded audio file one). Returns non-zero when the caller asks to cancel. */
typedef struct {
    mg_progress_fn fn;
    void *ctx;
    int done, total;
} s_steps_t;

static int s_step(s_steps_t *st, char *err, size_t errlen)
{
    st->done++;
    if (!st->fn) return 0;
    if (st->fn(st->ctx, st->total > 0 ? (double)st->done / st->total : 1.0)) {
        mg_set_error(err, errlen, "cancelled");
        return -1;
    }
    return 0;
}

static int s_encode_formats(const mg_render_spec_t *spec, const float *pcm, size_t frames, int rate,
                            int ch, const mg_kv_t *tags, const char *kind, const char *part,
                            int loop, int normalise, s_steps_t *steps, mg_pipeline_result_t *out, char *err,
                            size_t errlen)
{
    const mg_output_spec_t *o = &spec->output;
    static const unsigned order[3] = {MG_FORMAT_FLAC, MG_FORMAT_MP3, MG_FORMAT_WAV};
    for (int k = 0; k < 3; k++) {
        if (!(o->formats & order[k])) continue;
        if (out->n_files >= MG_PIPELINE_MAX_FILES) {
            mg_set_error(err, errlen, "pipeline: render %lld would deliver more than %d files",
                     (long long)spec->render_id, MG_PIPELINE_MAX_FILES);
            return -1;
        }
        mg_encoded_t *f = &out->files[out->n_files];
        memset(f, 0, sizeof *f);
        f->format = order[k];
        f->kind = kind;
        mg_strlcpy(f->part, part, sizeof f->part);
        f->channels = ch;
        f->sample_rate = rate;
        f->duration_s = (double)frames / rate;
        char ferr[256] = "";
        int r;
        mg_kv_t ft;
        float *mp3pcm = NULL;
        if (order[k] == MG_FORMAT_FLAC) {
            int bits = o->flac_bits ? o->flac_bits : 16;
            f->loop_length = loop ? frames : 0;
            if (s_file_tags(tags, kind, part, f->loop_length, &ft) != 0) goto oom;
            r = mg_encode_flac(pcm, frames, rate, ch, bits, &ft, &f->data, &f->len, ferr,
                               sizeof ferr);
        } else if (order[k] == MG_FORMAT_MP3) {
            int mrate = s_mp3_rate(rate), kbps = o->mp3_bitrate_kbps ? o->mp3_bitrate_kbps : 192;
            const float *mp = pcm;
            size_t mframes = frames, mtotal = frames, moff = 0;
            if (loop) { /* the copy's resampler and limiter see the loop as a circle too */
                s_loop_plan_t lp = s_loop_plan(frames, rate, mrate);
                float *wrapped = s_loop_copy(pcm, frames, ch, lp.wrap);
                if (!wrapped) goto oom;
                int rr = s_resample(wrapped, frames + 2 * lp.wrap, ch, lp.rate_in, lp.rate_out, &mp3pcm,
                                    &mtotal, ferr, sizeof ferr);
                free(wrapped);
                if (rr != 0) {
                    mg_set_error(err, errlen, "pipeline: render %lld: mp3: %s", (long long)spec->render_id, ferr);
                    return -1;
                }
                mp = mp3pcm;
                moff = lp.wrap_out;
                mframes = lp.frames_out;
                if (moff + mframes > mtotal) {
                    free(mp3pcm);
                    mg_set_error(err, errlen, "pipeline: render %lld: the mp3's loop wrap-around came out short; "
                             "this is a pipeline bug", (long long)spec->render_id);
                    return -1;
                }
            } else if (mrate != rate) {
                if (s_resample(pcm, frames, ch, rate, mrate, &mp3pcm, &mframes, ferr,
                               sizeof ferr) != 0) {
                    mg_set_error(err, errlen, "pipeline: render %lld: mp3: %s",
                             (long long)spec->render_id, ferr);
                    return -1;
                }
                mp = mp3pcm;
                mtotal = mframes;
            }
            f->sample_rate = mrate;
            f->duration_s = (double)mframes / mrate;
            f->loop_length = loop ? mframes : 0;
            if (s_file_tags(tags, kind, part, f->loop_length, &ft) != 0) {
                free(mp3pcm);
                goto oom;
            }
            double mlufs = S_SILENCE_DB, mtp = S_SILENCE_DB;
            int mnorm = normalise && o->normalize && out->integrated_lufs > -70.0;
            r = s_encode_mp3_tp(mp, mtotal, moff, mframes, mrate, ch, kbps, &ft, S_CEILING_DB, mnorm,
                                o->loudness_lufs, &f->data, &f->len, &mtp, &mlufs, ferr,
                                sizeof ferr);
            free(mp3pcm);
            if (r == 0 && !*part) out->mp3_true_peak_dbtp = mtp;
            if (r == 0 && mtp > S_CEILING_DB)
                mg_warn("render %lld: the %s%s%s mp3 decodes to %.2f dBTP, over the %.1f dBTP "
                        "ceiling after %d encodes",
                        (long long)spec->render_id, kind, *part ? " " : "", part, mtp,
                        S_CEILING_DB, S_MP3_TRIES);
            if (r == 0 && mnorm && mlufs < o->loudness_lufs - S_LU_SHORT_WARN)
                mg_warn("render %lld: the mp3 decodes to %.2f LUFS, %.2f LU under the %.1f "
                        "LUFS target",
                        (long long)spec->render_id, mlufs, o->loudness_lufs - mlufs,
                        o->loudness_lufs);
        } else {
            f->loop_length = loop ? frames : 0;
            if (s_file_tags(tags, kind, part, f->loop_length, &ft) != 0) goto oom;
            r = mg_encode_wav_loop(pcm, frames, rate, ch, f->loop_length, &f->data, &f->len, ferr, sizeof ferr);
        }
        mg_kv_clear(&ft);
        if (r != 0) {
            mg_set_error(err, errlen, "pipeline: render %lld: %s%s%s %s output failed: %s",
                     (long long)spec->render_id, kind, *part ? " " : "", part,
                     s_format_name(order[k]), ferr);
            return -1;
        }
        mg_sha256_hex(f->data, f->len, f->sha256);
        out->n_files++;
        if (s_step(steps, err, errlen) != 0) return -1;
    }
    return 0;
oom:
    mg_set_error(err, errlen, "pipeline: render %lld: out of memory for the tags", (long long)spec->render_id);
    return -1;
}

/* The chain up to the output rate for the stems in `only` (-1: all of them): mixdown with
 * the loop's wrap-around (lp; NULL: not a loop), DC removal, resampling. *out (caller owns)
 * has the wrap still on it: *out_frames in all. 0, or -1 with err set. */
static int s_to_output_rate(const mg_audio_t *audio, int only, const s_loop_plan_t *lp, int ch,
                            int rate, float **out, size_t *out_frames, char *err, size_t errlen)
{
    size_t wrap = lp ? lp->wrap : 0;
    float *mix = s_mixdown(audio, ch, only, wrap);
    if (!mix) {
        mg_set_error(err, errlen, "pipeline: out of memory mixing %zu frames", audio->frames);
        return -1;
    }
    s_remove_dc(mix, audio->frames + 2 * wrap, ch, audio->sample_rate);
    int rc = s_resample(mix, audio->frames + 2 * wrap, ch, lp ? lp->rate_in : audio->sample_rate,
                        lp ? lp->rate_out : rate, out, out_frames, err, errlen);
    free(mix);
    return rc;
}

/* One stem: the mix's chain and gain, its own limiter only where it passes the ceiling,
 * the wrap cut off, then encoded. 0, or -1 with err set. */
static int s_stem_files(const mg_render_spec_t *spec, const mg_audio_t *audio, int s,
                        const s_loop_plan_t *lp, size_t frames, float gain, const mg_kv_t *tags,
                        s_steps_t *steps, mg_pipeline_result_t *out, char *err, size_t errlen)
{
    const mg_output_spec_t *o = &spec->output;
    int ch = o->channels, rate = o->sample_rate;
    float *x = NULL;
    size_t xf = 0;
    s_tp_meter_t m = {0};
    int rc = -1;
    if (s_to_output_rate(audio, s, lp, ch, rate, &x, &xf, err, errlen) != 0) return -1;
    for (size_t i = 0; i < xf * (size_t)ch; i++) x[i] *= gain;
    if (s_tp_init(&m, xf) != 0) {
        mg_set_error(err, errlen, "pipeline: out of memory (%zu frames)", xf);
        goto done;
    }
    float level = s_tp_envelope(&m, x, xf, ch), tp;
    if (s_limit_true_peak(&m, x, xf, ch, rate, m.env, 1.0f, level, S_CEILING_DB, &tp) != 0) {
        mg_set_error(err, errlen, "pipeline: out of memory in the limiter");
        goto done;
    }
    s_tp_free(&m);
    char part[32];
    mg_strlcpy(part, audio->stems[s].name, sizeof part);
    if (!*part) snprintf(part, sizeof part, "stem%d", s + 1);
    rc = s_encode_formats(spec, x + (lp ? lp->wrap_out : 0) * (size_t)ch, frames, rate, ch, tags,
                          "stem", part, lp != NULL, 0, steps, out, err, errlen);
done:
    s_tp_free(&m);
    free(x);
    return rc;
}

int mg_pipeline_run(const mg_render_spec_t *spec, const mg_audio_t *audio, const mg_kv_t *tags,
                    mg_pipeline_result_t *out, char *err, size_t errlen)
{
    return mg_pipeline_run_progress(spec, audio, tags, NULL, NULL, out, err, errlen);
}

int mg_pipeline_run_progress(const mg_render_spec_t *spec, const mg_audio_t *audio, const mg_kv_t *tags,
                             mg_progress_fn progress, void *progress_ctx, mg_pipeline_result_t *out,
                             char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const mg_output_spec_t *o = &spec->output;
    int ch = o->channels, rate = o->sample_rate;
    unsigned deliver = o->deliver ? o->deliver : MG_DELIVER_MIX;
    if (!audio || audio->n_stems < 1 || !audio->stems || audio->frames == 0 ||
        audio->sample_rate < 1000) {
        mg_set_error(err, errlen, "pipeline: render %lld produced no audio (stems %d, frames %zu, "
                 "rate %d); this is a renderer bug",
                 (long long)spec->render_id, audio ? audio->n_stems : 0,
                 audio ? audio->frames : (size_t)0, audio ? audio->sample_rate : 0);
        return -1;
    }
    if (ch < 1 || ch > 2 || rate < 8000 || rate > 192000) {
        mg_set_error(err, errlen, "pipeline: render %lld asks for %d Hz x %d channels; supported are "
                 "8000..192000 Hz, 1 or 2 channels",
                 (long long)spec->render_id, rate, ch);
        return -1;
    }
    if ((o->formats & (MG_FORMAT_FLAC | MG_FORMAT_MP3 | MG_FORMAT_WAV)) == 0) {
        mg_set_error(err, errlen, "pipeline: render %lld requests no known output format (mask 0x%x)",
                 (long long)spec->render_id, o->formats);
        return -1;
    }
    if ((deliver & MG_DELIVER_STEMS) && audio->n_stems > MG_PIPELINE_MAX_STEMS) {
        mg_set_error(err, errlen, "pipeline: render %lld has %d stems; at most %d can be delivered",
                 (long long)spec->render_id, audio->n_stems, MG_PIPELINE_MAX_STEMS);
        return -1;
    }
    if ((deliver & MG_DELIVER_MIDI) && (!audio->midi || audio->midi_len == 0)) {
        mg_set_error(err, errlen, "pipeline: render %lld asks for MIDI (output.deliver) but its "
                 "renderer wrote no score; render it with 'wavernn' or 'synth'",
                 (long long)spec->render_id);
        return -1;
    }
    int loop = audio->loop_frames > 0 && audio->loop_frames == audio->frames;
    s_loop_plan_t plan = loop ? s_loop_plan(audio->frames, audio->sample_rate, rate) : (s_loop_plan_t){0};
    const s_loop_plan_t *lp = loop ? &plan : NULL;
    size_t wrap_out = plan.wrap_out;
    int rc = -1;
    float *src = NULL, *pcm = NULL;
    size_t xframes = 0;
    s_tp_meter_t meter = {0};
    out->mp3_true_peak_dbtp = S_SILENCE_DB;
    int n_formats = !!(o->formats & MG_FORMAT_FLAC) + !!(o->formats & MG_FORMAT_MP3) + !!(o->formats & MG_FORMAT_WAV);
    s_steps_t steps = {progress, progress_ctx, 0,
                       1 + n_formats * (((deliver & MG_DELIVER_MIX) ? 1 : 0) +
                                        ((deliver & MG_DELIVER_STEMS) ? audio->n_stems : 0))};

    if (s_to_output_rate(audio, -1, lp, ch, rate, &src, &xframes, err, errlen) != 0) goto done;
    size_t frames = loop ? plan.frames_out : xframes; /* the delivered length, wrap cut off */
    if (loop && wrap_out + frames > xframes) {
        mg_set_error(err, errlen, "pipeline: render %lld: the loop's wrap-around came out %zu frames short; "
                 "this is a pipeline bug", (long long)spec->render_id, wrap_out + frames - xframes);
        goto done;
    }
    pcm = malloc(xframes * (size_t)ch * sizeof *pcm);
    if (!pcm || s_tp_init(&meter, xframes) != 0) {
        mg_set_error(err, errlen, "pipeline: out of memory (%zu frames)", xframes);
        goto done;
    }
    float tp, gain = 1.0f;
    if (s_normalise(&meter, src, pcm, xframes, wrap_out, frames, ch, rate, o, S_CEILING_DB,
                    &out->integrated_lufs, &tp, &gain, err, errlen) != 0)
        goto done;
    s_tp_free(&meter);
    free(src);
    src = NULL;
    if (s_step(&steps, err, errlen) != 0) goto done;
    const float *final = pcm + wrap_out * (size_t)ch;
    if (loop) { /* the peak measured on what is delivered, not on the wrap */
        double t = mg_true_peak(final, frames, ch);
        tp = t > 0 ? (float)t : 0.0f;
    }
    float peak = s_peak(final, frames * (size_t)ch);
    out->peak_dbfs = peak > 0.0f ? 20.0 * log10(peak) : S_SILENCE_DB;
    out->true_peak_dbtp = tp > 0.0f ? 20.0 * log10(tp) : S_SILENCE_DB;
    if (o->normalize && out->integrated_lufs > -70.0 &&
        out->integrated_lufs < o->loudness_lufs - S_LU_SHORT_WARN)
        mg_warn("render %lld: the %.1f dBTP limiter holds the mix at %.2f LUFS, %.2f LU under "
                "the %.1f LUFS target (material with a high peak-to-loudness ratio)",
                (long long)spec->render_id, S_CEILING_DB, out->integrated_lufs,
                o->loudness_lufs - out->integrated_lufs, o->loudness_lufs);

    if ((deliver & MG_DELIVER_MIX) &&
        s_encode_formats(spec, final, frames, rate, ch, tags, "mix", "", loop, 1, &steps, out, err,
                         errlen) != 0)
        goto done;
    free(pcm);
    pcm = NULL;
    if (deliver & MG_DELIVER_STEMS)
        for (int s = 0; s < audio->n_stems; s++)
            if (s_stem_files(spec, audio, s, lp, frames, gain, tags, &steps, out, err, errlen) != 0)
                goto done;
    if (deliver & MG_DELIVER_MIDI) {
        mg_encoded_t *f = &out->files[out->n_files];
        memset(f, 0, sizeof *f);
        f->kind = "midi";
        f->data = malloc(audio->midi_len);
        if (!f->data) {
            mg_set_error(err, errlen, "pipeline: out of memory for the MIDI file");
            goto done;
        }
        memcpy(f->data, audio->midi, audio->midi_len);
        f->len = audio->midi_len;
        f->duration_s = (double)frames / rate;
        mg_sha256_hex(f->data, f->len, f->sha256);
        out->n_files++;
    }
    rc = 0;
done:
    s_tp_free(&meter);
    free(src);
    free(pcm);
    if (rc != 0) mg_pipeline_result_free(out);
    return rc;
}
