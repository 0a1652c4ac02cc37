/* test_loop.c - seamless loops end to end: the demo campaign's loop cue (jobs/ad-campaign.yaml,
 * store-loop) composed in whole bars, played by the synth renderer with its tails folded into
 * the start, through the worker's pipeline into FLAC, decoded again here and measured at the
 * seam against the rest of the file (sample step, spectral flux, level at the end); its stems,
 * tags and MIDI; the neural renderer's loop; and a cue without loop: true, which must still end
 * with its fade. Each seam measure is also shown to fail on a file with a fade or a click.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ebur128.h>
#include <sndfile.h>

#include "common/jobspec.h"
#include "common/renderspec.h"
#include "common/util.h"
#include "composer/composer.h"
#include "tests/testlib.h"
#include "worker/pipeline.h"
#include "worker/render.h"
#include "worker/render_wavernn.h"

#define S_JOB "jobs/ad-campaign.yaml"
#define S_MODEL "models/default/" MG_WAVERNN_MODEL_FILE
#define S_FFT 1024 /* flux window: 21 ms at 48 kHz */
#define S_HOP 256

/* The spec of variation v of cue `name` in the demo job, as the coordinator would lease it. */
static void s_job_spec(const char *name, int v, mg_render_spec_t *spec)
{
    char err[4096] = "";
    mg_job_t *job = NULL;
    if (mg_job_parse_file(mg_test_path(S_JOB), &job, err, sizeof err) != 0) fail_msg("%s: %s", S_JOB, err);
    int ci = -1;
    for (int i = 0; i < job->n_cues; i++)
        if (strcmp(job->cues[i].name, name) == 0) ci = i;
    if (ci < 0) fail_msg("%s has no cue '%s'", S_JOB, name);
    mg_render_spec_from_job(job, ci, v, spec);
    spec->render_id = 100 + v;
    spec->job_id = 1;
    mg_job_destroy(&job);
}

static void s_render(const mg_renderer_t *r, const mg_render_spec_t *spec, mg_audio_t *a)
{
    char err[512] = "";
    int rc = r->render(r, spec, NULL, NULL, a, err, sizeof err);
    if (rc != MG_RENDER_OK) fail_msg("%s render: %d %s", r->name, rc, err);
}

static void s_pipeline(const mg_render_spec_t *spec, const mg_audio_t *a, mg_pipeline_result_t *res)
{
    char err[512] = "";
    mg_kv_t tags;
    mg_kv_init(&tags);
    assert_int_equal(mg_kv_set(&tags, "TITLE", "store-loop v01"), 0);
    if (mg_pipeline_run(spec, a, &tags, res, err, sizeof err) != 0) fail_msg("pipeline: %s", err);
    mg_kv_clear(&tags);
}

/* Decodes a FLAC or WAV file of the result (written to a temp file, read with libsndfile). */
static float *s_decode(const mg_encoded_t *f, size_t *frames, int *ch)
{
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/mg-test-loop-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, f->data, f->len), (ssize_t)f->len);
    close(fd);
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    assert_non_null(sf);
    float *x = malloc((size_t)info.frames * (size_t)info.channels * sizeof *x);
    assert_non_null(x);
    assert_int_equal(sf_readf_float(sf, x, info.frames), info.frames);
    sf_close(sf);
    unlink(path);
    assert_int_equal(info.samplerate, f->sample_rate);
    *frames = (size_t)info.frames;
    *ch = info.channels;
    return x;
}

/* The value of Vorbis comment `key` in FLAC bytes into val, or -1 when there is none. */
static int s_flac_tag(const mg_encoded_t *f, const char *key, char *val, size_t vlen)
{
    const unsigned char *d = f->data;
    size_t pos = 4, klen = strlen(key);
    assert_memory_equal(d, "fLaC", 4);
    for (int last = 0; !last && pos + 4 <= f->len;) {
        int type = d[pos] & 0x7F;
        last = d[pos] & 0x80;
        size_t bl = ((size_t)d[pos + 1] << 16) | ((size_t)d[pos + 2] << 8) | d[pos + 3];
        size_t p = pos + 4;
        pos += 4 + bl;
        if (type != 4) continue;
#define LE32(q) ((size_t)d[q] | (size_t)d[(q) + 1] << 8 | (size_t)d[(q) + 2] << 16 | (size_t)d[(q) + 3] << 24)
        p += 4 + LE32(p); /* vendor */
        size_t n = LE32(p);
        p += 4;
        for (size_t i = 0; i < n; i++) {
            size_t l = LE32(p);
            const char *c = (const char *)d + p + 4;
            if (l > klen && c[klen] == '=' && strncasecmp(c, key, klen) == 0) {
                snprintf(val, vlen, "%.*s", (int)(l - klen - 1), c + klen + 1);
                return 0;
            }
            p += 4 + l;
        }
#undef LE32
    }
    return -1;
}

/* ---- the seam measures ------------------------------------------------------------------- */

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of v[0..n), sorting v. */
static double s_quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, s_cmp_double);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

/* Channel c of interleaved x: the step across the seam |x[0] - x[n-1]| and the 99th
 * percentile of |x[i+1] - x[i]| inside the file. */
static void s_steps(const float *x, size_t n, int ch, int c, double *seam, double *p99)
{
    double *d = malloc((n - 1) * sizeof *d);
    assert_non_null(d);
    for (size_t i = 0; i + 1 < n; i++) d[i] = fabs((double)x[(i + 1) * ch + c] - x[i * ch + c]);
    *seam = fabs((double)x[c] - x[(n - 1) * ch + c]);
    *p99 = s_quantile(d, n - 1, 0.99);
    free(d);
}

static void s_fft(double complex *a, int n)
{
    for (int i = 1, j = 0; i < n; i++) {
        int bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double complex t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }
    for (int len = 2; len <= n; len <<= 1) {
        double complex w = cexp(-2.0 * I * M_PI / len);
        for (int i = 0; i < n; i += len) {
            double complex u = 1.0;
            for (int k = 0; k < len / 2; k++, u *= w) {
                double complex p = a[i + k], q = a[i + k + len / 2] * u;
                a[i + k] = p + q;
                a[i + k + len / 2] = p - q;
            }
        }
    }
}

/* Log magnitude spectrum (dB, floored at -100 dBFS) of the Hann-windowed S_FFT samples of the
 * mono downmix of x centred on frame `at`, read around the loop (indices modulo n). */
static void s_spectrum(const float *x, size_t n, int ch, size_t at, double *db)
{
    static double complex a[S_FFT];
    for (int i = 0; i < S_FFT; i++) {
        size_t k = (at + n + (size_t)i - S_FFT / 2) % n;
        double m = 0.0;
        for (int c = 0; c < ch; c++) m += x[k * ch + c];
        double w = 0.5 - 0.5 * cos(2.0 * M_PI * (i + 0.5) / S_FFT);
        a[i] = w * m / ch;
    }
    s_fft(a, S_FFT);
    for (int k = 0; k < S_FFT / 2; k++) {
        double mag = cabs(a[k]) / (S_FFT / 4.0); /* a full-scale sine reads about 0 dB */
        db[k] = 20.0 * log10(mag > 1e-5 ? mag : 1e-5);
    }
}

/* Spectral flux around the loop: frames every S_HOP samples, flux(t) = the RMS over bins of
 * the rise in log magnitude (dB) from frame t-1 to frame t (positive changes only: a note or a
 * click coming in, or a fade's silence followed by the music). *seam: the largest flux of the
 * pairs whose frames reach across the wrap point; *p99 the 99th percentile of all the others,
 * *worst the largest of the others. */
static void s_flux(const float *x, size_t n, int ch, double *seam, double *p99, double *worst)
{
    size_t T = n / S_HOP;
    double *flux = malloc(T * sizeof *flux), *in = malloc(T * sizeof *in);
    double *prev = malloc(S_FFT / 2 * sizeof *prev), *cur = malloc(S_FFT / 2 * sizeof *cur);
    assert_true(flux && in && prev && cur);
    s_spectrum(x, n, ch, (T - 1) * n / T, prev);
    for (size_t t = 0; t < T; t++) {
        s_spectrum(x, n, ch, t * n / T, cur);
        double s = 0.0;
        for (int k = 0; k < S_FFT / 2; k++) {
            double r = cur[k] - prev[k];
            if (r > 0) s += r * r;
        }
        flux[t] = sqrt(s / (S_FFT / 2));
        memcpy(prev, cur, S_FFT / 2 * sizeof *cur);
    }
    /* frame t (centre t n / T) reaches across 0 when its centre is within S_FFT / 2 of it;
     * the pair (t-1, t) does when either frame does */
    size_t reach = S_FFT / 2 / S_HOP + 1, ni = 0;
    *seam = 0.0;
    *worst = 0.0;
    for (size_t t = 0; t < T; t++) {
        int across = t <= reach || t + reach >= T;
        if (across) {
            if (flux[t] > *seam) *seam = flux[t];
        } else {
            in[ni++] = flux[t];
            if (flux[t] > *worst) *worst = flux[t];
        }
    }
    *p99 = s_quantile(in, ni, 0.99);
    free(flux);
    free(in);
    free(prev);
    free(cur);
}

/* RMS (dBFS) of frames [a, b) of interleaved x, every channel. */
static double s_rms_db(const float *x, size_t a, size_t b, int ch)
{
    double s = 0.0;
    for (size_t i = a * ch; i < b * ch; i++) s += (double)x[i] * x[i];
    s /= (double)((b - a) * ch);
    return 10.0 * log10(s > 1e-20 ? s : 1e-20);
}

typedef struct {
    double step_seam, step_p99;   /* the channel where the seam's step is largest against its p99 */
    double step_max;              /* the largest step inside, that channel */
    double flux_seam, flux_p99, flux_max;
    double flux_bars;             /* the largest flux at the other bar lines */
    double end_db, file_db;       /* RMS of the last 50 ms, of the whole file */
    double bars_end_db;           /* mean RMS of the 50 ms before each other bar line */
    double end10_db, bars_end10_db; /* the same for the last 10 ms */
} s_seam_t;

/* x rotated left by k frames (caller frees): frame k becomes the first. */
static float *s_rotate(const float *x, size_t n, int ch, size_t k)
{
    float *y = malloc(n * ch * sizeof *y);
    assert_non_null(y);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < ch; c++) y[i * ch + c] = x[((i + k) % n) * ch + c];
    return y;
}

/* Every measure of the seam of x (n frames at rate, bars of bar frames; bar 0 for none). */
static s_seam_t s_measure(const float *x, size_t n, int ch, int rate, size_t bar)
{
    s_seam_t m = {0};
    for (int c = 0; c < ch; c++) {
        double s, p;
        s_steps(x, n, ch, c, &s, &p);
        if (c == 0 || s / p > m.step_seam / m.step_p99) {
            m.step_seam = s;
            m.step_p99 = p;
            m.step_max = 0.0;
            for (size_t i = 0; i + 1 < n; i++) {
                double d = fabs((double)x[(i + 1) * ch + c] - x[i * ch + c]);
                if (d > m.step_max) m.step_max = d;
            }
        }
    }
    s_flux(x, n, ch, &m.flux_seam, &m.flux_p99, &m.flux_max);
    const size_t b50 = (size_t)(0.05 * rate), b10 = (size_t)(0.01 * rate);
    m.end_db = s_rms_db(x, n - b50, n, ch);
    m.end10_db = s_rms_db(x, n - b10, n, ch);
    m.file_db = s_rms_db(x, 0, n, ch);
    size_t nb = bar ? n / bar : 0;
    for (size_t b = 1; b < nb; b++) { /* the same measures where the music crosses its other bar lines */
        float *y = s_rotate(x, n, ch, b * bar);
        double fs, fp, fm;
        s_flux(y, n, ch, &fs, &fp, &fm);
        if (fs > m.flux_bars) m.flux_bars = fs;
        free(y);
        m.bars_end_db += s_rms_db(x, b * bar - b50, b * bar, ch) / (double)(nb - 1);
        m.bars_end10_db += s_rms_db(x, b * bar - b10, b * bar, ch) / (double)(nb - 1);
    }
    return m;
}

static void s_print(const char *what, const s_seam_t *m)
{
    printf("%s:\n  seam step %.5f (inside: p99 %.5f, max %.5f)\n"
           "  seam flux %.2f dB (inside: p99 %.2f, max %.2f; other bar lines max %.2f)\n"
           "  last 50 ms %.1f dBFS: %+.1f dB against the file (%.1f), %+.1f against the 50 ms before the "
           "other bar lines; last 10 ms %+.1f against theirs\n",
           what, m->step_seam, m->step_p99, m->step_max, m->flux_seam, m->flux_p99, m->flux_max, m->flux_bars,
           m->end_db, m->end_db - m->file_db, m->file_db, m->end_db - m->bars_end_db, m->end10_db - m->bars_end10_db);
}

/* The seam is no worse than the music's own inside:
 *  - the sample step across it at most the 99th percentile of the steps inside (no click);
 *  - its spectral flux at most the 99th percentile inside, or, the seam being a bar line, at
 *    most 1.25 times the largest at the file's other bar lines: a downbeat outdoes 99% of a
 *    file's frames, and a loop's first bar may simply be its strongest (the neural demo loop's
 *    v01: 9.6 dB at the seam, 8.0 to 8.7 at the other bar lines; with the seam moved to another
 *    bar line, by rotating the notes before the render, its first downbeat still reads 8.3 to
 *    9.1 and the seam 8.0 to 8.6);
 *  - the last 50 ms within 6 dB of the 50 ms before the other bar lines, and the last 10 ms
 *    within 6 dB of theirs (no fade, no gap), and the last 50 ms within 10 dB of the file's RMS.
 * (The level is held to the same place in the other bars, not only to the whole file's RMS: the
 * 50 ms before a downbeat is among a groove's quietest, 6 to 8 dB under its RMS in the demo
 * loop, where every bar's end is alike.) */
static int s_seamless(const s_seam_t *m)
{
    return m->step_seam <= m->step_p99 &&
           (m->flux_seam <= m->flux_p99 || m->flux_seam <= 1.25 * m->flux_bars) &&
           fabs(m->end_db - m->bars_end_db) <= 6.0 && fabs(m->end10_db - m->bars_end10_db) <= 6.0 &&
           fabs(m->end_db - m->file_db) <= 10.0;
}

/* ---- the demo cue through synth and pipeline ---------------------------------------------- */

typedef struct {
    mg_render_spec_t spec;
    mg_audio_t audio;
    mg_pipeline_result_t res;
    mg_score_t *score;
} s_fixture_t;

static int s_setup(void **state)
{
    s_fixture_t *f = calloc(1, sizeof *f);
    s_job_spec("store-loop", 0, &f->spec);
    f->spec.output.formats = MG_FORMAT_FLAC; /* 16-bit stereo 48 kHz, -14 LUFS, mix + stems + midi */
    char err[256];
    f->score = mg_compose(&f->spec, err, sizeof err);
    assert_non_null(f->score);
    s_render(mg_renderer_synth(), &f->spec, &f->audio);
    s_pipeline(&f->spec, &f->audio, &f->res);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fixture_t *f = *state;
    mg_pipeline_result_free(&f->res);
    mg_audio_free(&f->audio);
    mg_score_free(&f->score);
    free(f);
    return 0;
}

static const mg_encoded_t *s_file(const mg_pipeline_result_t *res, const char *kind, const char *part)
{
    for (int i = 0; i < res->n_files; i++)
        if (strcmp(res->files[i].kind, kind) == 0 && strcmp(res->files[i].part, part) == 0) return &res->files[i];
    fail_msg("no %s %s file in the result", kind, part);
    return NULL;
}

/* 10 s asked at 100 BPM in 4/4: 4 bars of 2.4 s, 9.6 s, 230,400 frames at 24 kHz, 460,800 at
 * 48 kHz, folded and marked as a loop by the renderer. */
static void test_length_whole_bars(void **state)
{
    s_fixture_t *f = *state;
    const mg_score_t *sc = f->score;
    assert_int_equal(sc->loop, 1);
    assert_int_equal(sc->loop_bars, 4);
    assert_int_equal(sc->n_bars, 4);
    assert_int_equal(sc->beats_per_bar, 4);
    assert_int_equal(sc->n_tempo, 1);
    assert_int_equal(sc->duration_us, 4LL * 4 * 600000);
    assert_true(fabs(sc->loop_requested_s - 10.0) < 1e-9);
    assert_int_equal(f->audio.sample_rate, 24000);
    assert_int_equal(f->audio.frames, 230400);
    assert_int_equal(f->audio.loop_frames, f->audio.frames);
    const mg_encoded_t *mix = s_file(&f->res, "mix", "");
    assert_int_equal(mix->sample_rate, 48000);
    assert_int_equal(mix->loop_length, 460800);
    size_t n;
    int ch;
    float *x = s_decode(mix, &n, &ch);
    assert_int_equal(n, 460800);
    assert_int_equal(ch, 2);
    free(x);
    /* the record says so */
    assert_non_null(strstr(f->audio.decision_json, "\"loop\":{\"requested_s\":10.000000,\"bars\":4,"
                                                    "\"beats_per_bar\":4,\"bpm\":100.00,\"duration_s\":9.600000,"
                                                    "\"change_s\":-0.400000}"));
    assert_non_null(strstr(f->audio.decision_json, "\"parameter\":\"form_loop\""));
}

#define S_BAR48 115200 /* a bar at 100 BPM, 48 kHz */

/* The mix's seam, measured on the decoded FLAC, is no worse than its inside; the same measures
 * fail on the same file with a fade, a gap or cut short. */
static void test_mix_seam(void **state)
{
    s_fixture_t *f = *state;
    size_t n;
    int ch;
    float *x = s_decode(s_file(&f->res, "mix", ""), &n, &ch);
    s_seam_t m = s_measure(x, n, ch, 48000, S_BAR48);
    s_print("synth loop, mix FLAC", &m);
    assert_true(m.step_seam <= m.step_p99);
    assert_true(m.flux_seam <= m.flux_p99); /* here even the stricter of the two holds */
    assert_true(fabs(m.end_db - m.bars_end_db) <= 6.0);
    assert_true(fabs(m.end10_db - m.bars_end10_db) <= 6.0);
    assert_true(fabs(m.end_db - m.file_db) <= 10.0);
    assert_true(s_seamless(&m));
    assert_true(m.file_db > -30.0); /* music, not silence */
    /* on the loudness target, measured on the period delivered (not on its wrap-around) */
    ebur128_state *st = ebur128_init((unsigned)ch, 48000, EBUR128_MODE_I);
    assert_non_null(st);
    double lufs;
    ebur128_add_frames_float(st, x, n);
    assert_int_equal(ebur128_loudness_global(st, &lufs), EBUR128_SUCCESS);
    ebur128_destroy(&st);
    printf("mix loudness %.2f LUFS (pipeline: %.2f), target %.1f\n", lufs, f->res.integrated_lufs,
           f->spec.output.loudness_lufs);
    assert_true(fabs(lufs - f->spec.output.loudness_lufs) < 0.25);
    assert_true(fabs(lufs - f->res.integrated_lufs) < 0.05);

    float *y = malloc(n * ch * sizeof *y);
    assert_non_null(y);
    /* a 20 ms fade-out at the end */
    memcpy(y, x, n * ch * sizeof *y);
    for (size_t i = n - 960; i < n; i++)
        for (int c = 0; c < ch; c++) y[i * ch + c] *= (float)(n - 1 - i) / 960.0f;
    s_seam_t bad = s_measure(y, n, ch, 48000, S_BAR48);
    s_print("the same with a 20 ms fade-out", &bad);
    assert_false(s_seamless(&bad));
    /* 5 ms of silence at the end: a gap */
    memcpy(y, x, n * ch * sizeof *y);
    memset(y + (n - 240) * ch, 0, 240 * ch * sizeof *y);
    bad = s_measure(y, n, ch, 48000, S_BAR48);
    s_print("the same with a 5 ms gap", &bad);
    assert_false(s_seamless(&bad));
    /* cut 1 ms short: the sample-exact length matters */
    bad = s_measure(x, n - 48, ch, 48000, S_BAR48);
    s_print("the same cut 1 ms short", &bad);
    assert_false(s_seamless(&bad));
    free(y);
    free(x);
}

/* Each stem folds too, and the stems add up to the mix before its limiter. Rendered again
 * without loudness normalisation, at 24 bits, so that the mix's limiter (at -1 dBTP) barely
 * works: the stems then carry gain 1 and their sum must be the mix but for the limiter and the
 * rounding. A stem's seam step is held to its inside's 99th percentile where the stem sounds
 * across the seam (a stem silent at the end may start with a plucked note, a step by design). */
static void test_stems_fold(void **state)
{
    s_fixture_t *f = *state;
    mg_render_spec_t spec = f->spec;
    spec.output.normalize = 0;
    spec.output.flac_bits = 24;
    spec.output.deliver = MG_DELIVER_MIX | MG_DELIVER_STEMS;
    mg_pipeline_result_t res;
    s_pipeline(&spec, &f->audio, &res);
    size_t n;
    int ch;
    float *mix = s_decode(s_file(&res, "mix", ""), &n, &ch);
    double *sum = calloc(n * ch, sizeof *sum);
    assert_non_null(sum);
    int checked = 0;
    for (int s = 0; s < f->audio.n_stems; s++) {
        const mg_encoded_t *fs = s_file(&res, "stem", f->audio.stems[s].name);
        char v[32];
        assert_int_equal(s_flac_tag(fs, "LOOPLENGTH", v, sizeof v), 0);
        assert_string_equal(v, "460800");
        assert_int_equal(s_flac_tag(fs, "LOOPSTART", v, sizeof v), 0);
        size_t m;
        int c2;
        float *x = s_decode(fs, &m, &c2);
        assert_int_equal(m, n);
        s_seam_t q = s_measure(x, n, ch, 48000, S_BAR48);
        double first10 = s_rms_db(x, 0, 480, ch);
        int across = q.end10_db > -60.0 && first10 > -60.0;
        printf("stem %-7s seam step %.5f (inside p99 %.5f, max %.5f), last/first 10 ms %.1f / %.1f dBFS%s\n",
               f->audio.stems[s].name, q.step_seam, q.step_p99, q.step_max, q.end10_db, first10,
               across ? "" : " (silent on one side: step not held to p99)");
        assert_true(q.step_seam <= q.step_max);
        if (across) {
            assert_true(q.step_seam <= q.step_p99);
            checked++;
        }
        for (size_t i = 0; i < n * ch; i++) sum[i] += x[i];
        free(x);
    }
    assert_true(checked >= 2);
    double e2 = 0.0, m2 = 0.0, emax = 0.0;
    size_t differ = 0;
    for (size_t i = 0; i < n * ch; i++) {
        double e = sum[i] - mix[i];
        e2 += e * e;
        m2 += (double)mix[i] * mix[i];
        if (fabs(e) > emax) emax = fabs(e);
        if (fabs(e) > 1e-4) differ++;
    }
    double rel_db = 10.0 * log10(e2 / m2);
    printf("stems sum - mix: %.1f dB under the mix (RMS), largest difference %.5f, %.3f%% of samples off by "
           "more than 1e-4\n", rel_db, emax, 100.0 * differ / (n * ch));
    assert_true(rel_db < -60.0);
    free(sum);
    free(mix);
    mg_pipeline_result_free(&res);
}

/* LOOPSTART / LOOPLENGTH in the FLAC, the mix's length in frames. */
static void test_loop_tags(void **state)
{
    s_fixture_t *f = *state;
    const mg_encoded_t *mix = s_file(&f->res, "mix", "");
    char v[64];
    assert_int_equal(s_flac_tag(mix, "LOOPSTART", v, sizeof v), 0);
    assert_string_equal(v, "0");
    assert_int_equal(s_flac_tag(mix, "LOOPLENGTH", v, sizeof v), 0);
    assert_string_equal(v, "460800");
    assert_int_equal(s_flac_tag(mix, "MG_KIND", v, sizeof v), 0);
    assert_string_equal(v, "mix");
}

/* A WAV of a loop carries a smpl chunk: one forward loop over the whole file, frame 0 to the
 * last frame inclusive, repeating for ever; a WAV that is not a loop has none. */
static const unsigned char *s_riff_chunk(const mg_encoded_t *f, const char *id, uint32_t *size)
{
    for (size_t at = 12; at + 8 <= f->len;) {
        uint32_t n = (uint32_t)f->data[at + 4] | (uint32_t)f->data[at + 5] << 8 | (uint32_t)f->data[at + 6] << 16 |
                     (uint32_t)f->data[at + 7] << 24;
        if (memcmp(f->data + at, id, 4) == 0 && at + 8 + n <= f->len) {
            *size = n;
            return f->data + at + 8;
        }
        at += 8 + n + (n & 1);
    }
    return NULL;
}

static uint32_t s_le32_at(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void test_wav_loop_points(void **state)
{
    s_fixture_t *f = *state;
    mg_render_spec_t spec = f->spec;
    spec.output.formats = MG_FORMAT_WAV;
    spec.output.deliver = MG_DELIVER_MIX;
    mg_pipeline_result_t res;
    s_pipeline(&spec, &f->audio, &res);
    const mg_encoded_t *w = s_file(&res, "mix", "");
    uint32_t n = 0;
    const unsigned char *smpl = s_riff_chunk(w, "smpl", &n);
    assert_non_null(smpl);
    assert_true(n >= 60);
    assert_int_equal(s_le32_at(smpl + 28), 1);          /* one loop */
    assert_int_equal(s_le32_at(smpl + 36 + 4), 0);      /* forward */
    assert_int_equal(s_le32_at(smpl + 36 + 8), 0);      /* from frame 0 */
    assert_int_equal(s_le32_at(smpl + 36 + 12), 460799); /* to the last frame, inclusive */
    assert_int_equal(s_le32_at(smpl + 36 + 20), 0);     /* for ever */
    mg_pipeline_result_free(&res);

    /* the same audio delivered as a plain cue: no loop points */
    unsigned char *data;
    size_t len;
    char err[256];
    size_t frames = 4800;
    float *x = calloc(frames * 2, sizeof *x);
    assert_non_null(x);
    assert_int_equal(mg_encode_wav(x, frames, 48000, 2, &data, &len, err, sizeof err), 0);
    mg_encoded_t plain = {.data = data, .len = len};
    assert_null(s_riff_chunk(&plain, "smpl", &n));
    free(data);
    free(x);
}

/* The MIDI loops too: markers loopStart at 0 and loopEnd at the last tick, every track ends
 * there, and every note is off by then. */
static void test_midi_loops(void **state)
{
    s_fixture_t *f = *state;
    const mg_encoded_t *mf = s_file(&f->res, "midi", "");
    const unsigned char *d = mf->data;
    size_t len = mf->len, pos = 14;
    assert_memory_equal(d, "MThd", 4);
    int ntrk = d[10] << 8 | d[11], ppq = d[12] << 8 | d[13];
    assert_int_equal(ppq, MG_SCORE_PPQ);
    assert_int_equal(ntrk, 1 + f->score->n_stems);
    const int64_t end = f->score->total_ticks;
    assert_int_equal(end, 16 * MG_SCORE_PPQ);
    int64_t loop_start = -1, loop_end = -1;
    int notes = 0;
    for (int t = 0; t < ntrk; t++) {
        assert_memory_equal(d + pos, "MTrk", 4);
        size_t tl = (size_t)d[pos + 4] << 24 | (size_t)d[pos + 5] << 16 | (size_t)d[pos + 6] << 8 | d[pos + 7];
        size_t p = pos + 8, e = p + tl;
        assert_true(e <= len);
        int64_t tick = 0, eot = -1;
        int on[16][128] = {{0}};
        unsigned char status = 0;
        while (p < e) {
            uint32_t dt = 0;
            do dt = dt << 7 | (d[p] & 0x7F); while (d[p++] & 0x80);
            tick += dt;
            if (d[p] == 0xFF) {
                int type = d[p + 1], l = d[p + 2];
                if (type == 0x06 && l == 9 && memcmp(d + p + 3, "loopStart", 9) == 0) loop_start = tick;
                if (type == 0x06 && l == 7 && memcmp(d + p + 3, "loopEnd", 7) == 0) loop_end = tick;
                if (type == 0x2F) eot = tick;
                p += 3 + (size_t)l;
                continue;
            }
            if (d[p] & 0x80) status = d[p++];
            int kind = status & 0xF0, chn = status & 15;
            if (kind == 0xC0 || kind == 0xD0) { p += 1; continue; }
            int a = d[p], b = d[p + 1];
            p += 2;
            if (kind == 0x90 && b > 0) { on[chn][a]++; notes++; assert_true(tick < end); }
            if (kind == 0x80 || (kind == 0x90 && b == 0)) { on[chn][a]--; assert_true(tick <= end); }
        }
        assert_int_equal(eot, end);
        for (int c = 0; c < 16; c++)
            for (int k = 0; k < 128; k++) assert_int_equal(on[c][k], 0);
        pos = e;
    }
    assert_int_equal(loop_start, 0);
    assert_int_equal(loop_end, end);
    assert_true(notes > 50);
}

/* ---- whole bars at other lengths and meters ------------------------------------------------ */

static void test_bar_rounding(void **state)
{
    (void)state;
    static const struct { double asked, bpm; const char *prompt; int bars, bpb; int64_t us; } cases[] = {
        {10.0, 100, "groove", 4, 4, 9600000},        /* 4.17 bars -> 4 */
        {8.0, 120, "groove", 4, 4, 8000000},         /* exact */
        {7.0, 120, "groove", 4, 4, 8000000},         /* 3.5 bars: half up */
        {6.9, 120, "groove", 3, 4, 6000000},
        {0.5, 120, "groove", 1, 4, 2000000},         /* at least one bar */
        {30.0, 97, "groove", 12, 4, 29690736},       /* 618,557 us per quarter */
        {20.0, 90, "a slow waltz", 10, 3, 20000010}, /* 3/4: 666,667 us per quarter */
        {600.0, 37, "groove", 92, 4, 596756896},     /* 92.49999 bars: 92 */
        {599.0, 90, "groove", 224, 4, 597333632},    /* 224.6 bars, but 225 would pass 600 s */
        {12.0, 0, "groove", 0, 4, 0},                /* the composer's tempo, to a whole BPM */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mg_render_spec_t spec;
        memset(&spec, 0, sizeof spec);
        mg_strlcpy(spec.cue, "loop", sizeof spec.cue);
        mg_strlcpy(spec.prompt, cases[i].prompt, sizeof spec.prompt);
        spec.seed = 7 + i;
        spec.duration_s = cases[i].asked;
        spec.tempo_bpm = cases[i].bpm;
        spec.loop = 1;
        char err[256];
        mg_score_t *sc = mg_compose(&spec, err, sizeof err);
        assert_non_null(sc);
        int32_t uspq = sc->tempo[0].us_per_quarter;
        printf("loop %.3f s at %s%.2f BPM -> %d bars of %d/4 = %.6f s\n", cases[i].asked, cases[i].bpm ? "" : "~",
               sc->tempo_bpm, sc->loop_bars, sc->beats_per_bar, sc->duration_s);
        assert_int_equal(sc->n_tempo, 1);
        assert_int_equal(sc->n_timesig, 1);
        assert_int_equal(sc->loop_bars, sc->n_bars);
        assert_int_equal(sc->beats_per_bar, cases[i].bpb);
        assert_int_equal(sc->duration_us, (int64_t)sc->loop_bars * sc->beats_per_bar * uspq);
        assert_true(fabs(sc->duration_s - sc->duration_us / 1e6) < 1e-9);
        if (cases[i].bars) {
            assert_int_equal(sc->loop_bars, cases[i].bars);
            assert_int_equal(sc->duration_us, cases[i].us);
        } else { /* a whole BPM, and the nearest whole number of bars to the length asked */
            assert_true(fabs(sc->tempo_bpm - floor(sc->tempo_bpm + 0.5)) < 1e-3);
            double bar = 4 * uspq / 1e6;
            assert_true(fabs(sc->duration_s - cases[i].asked) <= bar / 2 + 1e-6);
        }
        mg_score_free(&sc);
    }
}

/* ---- the neural renderer ------------------------------------------------------------------ */

/* The default model plays both variations of the loop cue (rendered with a pre-roll, the seam
 * a 50 ms crossfade of two takes): the seam measured on the renderer's own 24 kHz mixdown (mono,
 * the score's gains) and on the delivered FLAC. */
static void test_wavernn_loop(void **state)
{
    (void)state;
    const char *model = mg_test_path(S_MODEL);
    if (access(model, R_OK) != 0) {
        printf("no %s: skipped\n", S_MODEL);
        skip();
    }
    mg_wavernn_opts_t o = {.model_path = model, .temperature = 1.0, .threads = 4};
    char err[512] = "";
    mg_renderer_t *r = mg_renderer_wavernn_new(&o, err, sizeof err);
    if (!r) fail_msg("%s", err);
    for (int v = 0; v < 2; v++) {
        mg_render_spec_t spec;
        s_job_spec("store-loop", v, &spec);
        spec.output.formats = MG_FORMAT_FLAC;
        spec.output.deliver = MG_DELIVER_MIX;
        mg_audio_t a;
        s_render(r, &spec, &a);
        assert_int_equal(a.frames, 230400);
        assert_int_equal(a.loop_frames, a.frames);
        float *m = calloc(a.frames, sizeof *m);
        for (int s = 0; s < a.n_stems; s++)
            for (size_t i = 0; i < a.frames; i++) m[i] += a.stems[s].gain * a.stems[s].samples[i];
        s_seam_t raw = s_measure(m, a.frames, 1, 24000, S_BAR48 / 2);
        printf("variation %d\n", v + 1);
        s_print("wavernn loop, renderer mixdown 24 kHz", &raw);
        assert_true(s_seamless(&raw));
        mg_pipeline_result_t res;
        s_pipeline(&spec, &a, &res);
        size_t n;
        int ch;
        float *x = s_decode(&res.files[0], &n, &ch);
        assert_int_equal(n, 460800);
        s_seam_t fm = s_measure(x, n, ch, 48000, S_BAR48);
        s_print("wavernn loop, mix FLAC", &fm);
        assert_true(s_seamless(&fm));
        free(x);
        free(m);
        mg_pipeline_result_free(&res);
        mg_audio_free(&a);
    }
    mg_renderer_wavernn_destroy(&r);
}

/* ---- a cue without loop: true is as before ------------------------------------------------- */

/* The same cue with loop: false keeps the length asked for (not whole bars), is not marked as a
 * loop, has no loop tags, and still fades out: its seam fails the measures a loop passes. */
static void test_not_a_loop(void **state)
{
    (void)state;
    mg_render_spec_t spec;
    s_job_spec("store-loop", 0, &spec);
    spec.loop = 0;
    spec.output.formats = MG_FORMAT_FLAC;
    spec.output.deliver = MG_DELIVER_MIX;
    mg_audio_t a;
    s_render(mg_renderer_synth(), &spec, &a);
    assert_int_equal(a.frames, 240000); /* 10 s, as asked */
    assert_int_equal(a.loop_frames, 0);
    assert_null(strstr(a.decision_json, "\"loop\":"));
    /* the cue's fade: the last sample of every stem is silent, the last 50 ms far down */
    for (int s = 0; s < a.n_stems; s++) assert_true(fabsf(a.stems[s].samples[a.frames - 1]) < 1e-6f);
    mg_pipeline_result_t res;
    s_pipeline(&spec, &a, &res);
    char v[32];
    assert_int_equal(s_flac_tag(&res.files[0], "LOOPLENGTH", v, sizeof v), -1);
    assert_int_equal(s_flac_tag(&res.files[0], "LOOPSTART", v, sizeof v), -1);
    size_t n;
    int ch;
    float *x = s_decode(&res.files[0], &n, &ch);
    assert_int_equal(n, 480000);
    s_seam_t m = s_measure(x, n, ch, 48000, S_BAR48);
    s_print("not a loop (fades out)", &m);
    assert_false(s_seamless(&m));
    assert_true(m.end_db - m.file_db < -20.0);
    free(x);
    mg_pipeline_result_free(&res);
    mg_audio_free(&a);
}

/* ---- the pipeline's circle at every output rate ------------------------------------------------ */

/* The energy of x (n frames, channel 0 of ch) off the given whole-cycle frequencies (cycles per
 * n frames), against its total, in dB: for a loop that repeats cleanly, three tones at whole
 * multiples of the loop's frequency leave nothing but rounding noise off them; a jump at the
 * seam (a period a fraction of a sample short) spreads energy around each. */
static double s_off_harmonics_db(const float *x, size_t n, int ch, const int *cycles, int nc)
{
    double total = 0.0, on = 0.0;
    for (size_t i = 0; i < n; i++) total += (double)x[i * ch] * x[i * ch];
    for (int k = 0; k < nc; k++) {
        double re = 0.0, im = 0.0;
        for (size_t i = 0; i < n; i++) {
            double ph = 2.0 * M_PI * (double)((uint64_t)cycles[k] * i % n) / (double)n;
            re += x[i * ch] * cos(ph);
            im += x[i * ch] * sin(ph);
        }
        on += 2.0 * (re * re + im * im) / (double)n;
    }
    return 10.0 * log10(fabs(total - on) / total);
}

/* A loop of 96,040 frames at 24 kHz (4.0017 s: at 44.1 kHz 176,473.5 frames, so the plain
 * resampling ratio would make each period half a sample short) of three tones at 440, 3,000 and
 * 7,000 Hz (whole cycles per loop), through the pipeline at 48, 44.1, 32 and 22.05 kHz: the
 * delivered length is round(frames x rate / 24000) and nothing leaks off the tones but 16-bit
 * rounding (about -89 dB here); the same audio not marked as a loop leaks at its ends. */
static void test_pipeline_circle(void **state)
{
    (void)state;
    const size_t n_in = 96040;
    const int hz[3] = {440, 3000, 7000};
    int cycles[3];
    mg_audio_t a;
    memset(&a, 0, sizeof a);
    a.sample_rate = 24000;
    a.frames = n_in;
    a.n_stems = 1;
    a.stems = calloc(1, sizeof *a.stems);
    a.stems[0].samples = malloc(n_in * sizeof(float));
    a.stems[0].gain = 1.0f;
    mg_strlcpy(a.stems[0].name, "tones", sizeof a.stems[0].name);
    for (int k = 0; k < 3; k++) cycles[k] = (int)((double)hz[k] * n_in / 24000.0 + 0.5);
    for (size_t i = 0; i < n_in; i++) {
        double v = 0.0;
        for (int k = 0; k < 3; k++) v += 0.2 * sin(2.0 * M_PI * (double)((uint64_t)cycles[k] * i % n_in) / n_in + k);
        a.stems[0].samples[i] = (float)v;
    }
    static const int rates[] = {48000, 44100, 32000, 22050};
    for (int loop = 1; loop >= 0; loop--) {
        a.loop_frames = loop ? n_in : 0;
        for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
            if (!loop && r > 1) break;
            mg_render_spec_t spec;
            memset(&spec, 0, sizeof spec);
            spec.output.formats = MG_FORMAT_FLAC;
            spec.output.sample_rate = rates[r];
            spec.output.channels = 1;
            spec.output.flac_bits = 16;
            spec.output.deliver = MG_DELIVER_MIX;
            mg_pipeline_result_t res;
            s_pipeline(&spec, &a, &res);
            size_t n;
            int ch;
            float *x = s_decode(&res.files[0], &n, &ch);
            size_t want = (size_t)(((uint64_t)n_in * rates[r] + 12000) / 24000);
            assert_int_equal(n, want);
            double leak = s_off_harmonics_db(x, n, ch, cycles, 3);
            printf("%s 96,040 frames at 24 kHz -> %d Hz: %zu frames (%.2f exact), off the tones %.1f dB\n",
                   loop ? "loop" : "not a loop", rates[r], n, (double)n_in * rates[r] / 24000.0, leak);
            if (loop) {
                assert_int_equal(res.files[0].loop_length, want);
                assert_true(leak < -80.0);
            } else {
                assert_true(leak > -70.0); /* the ends of a one-shot: the DC blocker and resampler start cold */
            }
            free(x);
            mg_pipeline_result_free(&res);
        }
    }
    mg_audio_free(&a);
}

/* ---- the fold itself ----------------------------------------------------------------------- */

static void test_fold(void **state)
{
    (void)state;
    /* a tail longer than the period wraps more than once */
    float x[11] = {1, 2, 3, 10, 20, 30, 100, 200, 300, 1000, 2000};
    mg_audio_fold_loop(x, 3, 11);
    assert_true(x[0] == 1111 && x[1] == 2222 && x[2] == 333);
    for (int i = 3; i < 11; i++) assert_true(x[i] == 0.0f);
    float y[4] = {1, 2, 3, 4};
    mg_audio_fold_loop(y, 4, 4); /* nothing past the end: unchanged */
    assert_true(y[0] == 1 && y[3] == 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_whole_bars),
        cmocka_unit_test(test_mix_seam),
        cmocka_unit_test(test_stems_fold),
        cmocka_unit_test(test_loop_tags),
        cmocka_unit_test(test_wav_loop_points),
        cmocka_unit_test(test_midi_loops),
    };
    const struct CMUnitTest others[] = {
        cmocka_unit_test(test_bar_rounding),
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_pipeline_circle),
        cmocka_unit_test(test_not_a_loop),
        cmocka_unit_test(test_wavernn_loop),
    };
    int rc = cmocka_run_group_tests_name("store-loop through synth and pipeline", tests, s_setup, s_teardown);
    return rc | cmocka_run_group_tests_name("loops", others, NULL, NULL);
}
