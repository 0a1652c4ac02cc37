/* render_test.c - the instant, scriptable renderer of test builds (render.h); compiled
 * with -DMG_TEST_RENDERER into build/tests/mg-worker-test only, never into bin/.
 * A render is a short sine (frequency from the seed) at 8 kHz; knobs, read from the
 * environment at every render so one worker can be steered between renders:
 *   MG_TEST_RENDER_MS=N               take N ms in all, calling progress every ~50 ms
 *                                     (leases stay alive, cancellation is honoured)
 *   MG_TEST_FAIL_CUE=name             that cue fails with MG_RENDER_ERR_RETRYABLE
 *   MG_TEST_FAIL_PERMANENT_CUE=name   that cue fails with MG_RENDER_ERR_PERMANENT
 *   MG_TEST_CRASH_CUE=name            that cue calls abort(): a worker crash mid-render
 *   MG_TEST_RESULT_BYTES=N            the first delivered file (the mix in its first format) is
 *                                     replaced, after the pipeline, by N pseudo-random bytes: a
 *                                     big incompressible result for the transfer tests that
 *                                     costs no encoding (mg_render_test_result; the stream is
 *                                     xorshift64* seeded with seed ^ S_RESULT_SALT, 8 bytes per
 *                                     step, little-endian, so a test can rebuild it)
 * The wait comes first, then the failure, so a failing render also holds its lease.
 */
#ifdef MG_TEST_RENDERER

#include "render.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/util.h"
#include "upload.h"

#define S_RATE 8000

/* True when the environment variable `name` is set to this cue. */
static int s_cue_is(const char *name, const char *cue)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, cue) == 0;
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int s_render(const mg_renderer_t *self, const mg_render_spec_t *spec, mg_progress_fn progress,
                    void *progress_ctx, mg_audio_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *ms_env = getenv("MG_TEST_RENDER_MS");
    long total = ms_env ? strtol(ms_env, NULL, 10) : 0;
    if (total < 0) total = 0;
    for (long spent = 0; spent < total;) {
        long step = total - spent < 50 ? total - spent : 50;
        s_sleep_ms(step);
        spent += step;
        if (progress && progress(progress_ctx, 0.9 * (double)spent / (double)total) != 0) {
            snprintf(err, errlen, "test renderer: cancelled after %ld of %ld ms", spent, total);
            return MG_RENDER_ERR_CANCELLED;
        }
    }
    if (s_cue_is("MG_TEST_CRASH_CUE", spec->cue)) {
        fprintf(stderr, "test renderer: cue %s crashes the worker (MG_TEST_CRASH_CUE)\n",
                spec->cue);
        abort();
    }
    if (s_cue_is("MG_TEST_FAIL_PERMANENT_CUE", spec->cue)) {
        snprintf(err, errlen, "test renderer: cue %s always fails permanently", spec->cue);
        return MG_RENDER_ERR_PERMANENT;
    }
    if (s_cue_is("MG_TEST_FAIL_CUE", spec->cue)) {
        snprintf(err, errlen, "test renderer: cue %s always fails", spec->cue);
        return MG_RENDER_ERR_RETRYABLE;
    }
    if (!(spec->duration_s > 0.0) || spec->duration_s > MG_MAX_DURATION_S) {
        snprintf(err, errlen, "test renderer: duration %.3f s out of range", spec->duration_s);
        return MG_RENDER_ERR_PERMANENT;
    }

    size_t frames = (size_t)llround(spec->duration_s * S_RATE);
    if (frames == 0) frames = 1;
    double hz = 220.0 + (double)(spec->seed % 661); /* 220..880 Hz */
    out->stems = calloc(1, sizeof *out->stems);
    float *x = malloc(frames * sizeof *x);
    char json[160];
    snprintf(json, sizeof json, "{\"renderer\":\"test\",\"freq_hz\":%.0f}", hz);
    out->decision_json = strdup(json);
    if (!out->stems || !x || !out->decision_json) {
        free(x);
        free(out->stems);
        free(out->decision_json);
        memset(out, 0, sizeof *out);
        snprintf(err, errlen, "test renderer: out of memory (%zu frames)", frames);
        return MG_RENDER_ERR_RETRYABLE;
    }
    for (size_t i = 0; i < frames; i++) x[i] = 0.5f * (float)sin(2.0 * M_PI * hz * (double)i / S_RATE);
    mg_strlcpy(out->stems[0].name, "tone", sizeof out->stems[0].name);
    out->stems[0].samples = x;
    out->stems[0].gain = 1.0f;
    out->stems[0].pan = 0.0f;
    out->n_stems = 1;
    out->frames = frames;
    out->sample_rate = S_RATE;
    if (progress && progress(progress_ctx, 1.0) != 0) {
        mg_audio_free(out);
        snprintf(err, errlen, "test renderer: cancelled");
        return MG_RENDER_ERR_CANCELLED;
    }
    return MG_RENDER_OK;
}

#define S_RESULT_SALT 0x9e3779b97f4a7c15ull

void mg_render_test_result(const mg_render_spec_t *spec, mg_pipeline_result_t *res)
{
    const char *v = getenv("MG_TEST_RESULT_BYTES");
    if (!v || !*v || res->n_files == 0) return;
    size_t n = (size_t)strtoull(v, NULL, 10);
    unsigned char *data = malloc(n ? n : 1);
    if (!data) {
        fprintf(stderr, "test renderer: cannot allocate MG_TEST_RESULT_BYTES=%zu\n", n);
        return;
    }
    uint64_t x = spec->seed ^ S_RESULT_SALT;
    if (x == 0) x = S_RESULT_SALT;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t w = x * 2685821657736338717ull;
        if (n - i >= 8 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
            memcpy(data + i, &w, 8);
            continue;
        }
        for (size_t k = 0; k < 8 && i + k < n; k++) data[i + k] = (unsigned char)(w >> (8 * k));
    }
    mg_encoded_t *f = &res->files[0];
    free(f->data);
    f->data = data;
    f->len = n;
    mg_sha256_hex(data, n, f->sha256);
}

static mg_renderer_t s_test = {
    .name = "test",
    .backend = "cpu",
    .device = "cpu",
    .model_name = "mg-test-renderer",
    .model_version = "0",
    .model_license = "Apache-2.0",
    .attribution = "no training data: a sine tone for integration tests",
    .render = s_render,
};
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_init(void)
{
    static const char id[] = "mg-test-renderer 0";
    mg_sha256_hex(id, sizeof id - 1, s_test.model_sha256);
}

const mg_renderer_t *mg_renderer_test(void)
{
    pthread_once(&s_once, s_init);
    return &s_test;
}

#endif /* MG_TEST_RENDERER */
