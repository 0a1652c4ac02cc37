/* test_cuda.c - the GPU renderer (kernels/cuda/) against the CPU reference and the golden fixture
 * (tests/data/model/{tiny,golden}.mgnn, written by models/train/golden.py). Two groups:
 *   emulation: the kernels' bodies run on the CPU (mg_wavernn_cuda_emulate): every index, layout,
 *     chunk boundary and per-thread operation of the device code, checked without a GPU;
 *   device: the same checks on the GPU (cuBLAS frame parts, real kernels); SKIPPED, with the
 *     reason, where no CUDA device is present. Run them under compute-sanitizer on the GPU
 *     machine (bench/cuda/README.md).
 * Built only where nvcc exists (Makefile target `cuda`); cmocka, or tests/cuda/cmocka_shim.h
 * where it is not installed (the GPU machine).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MG_NO_CMOCKA
#include "tests/cuda/cmocka_shim.h"
#else
#include <cmocka.h>
#endif

#include "kernels/cuda/wavernn_cuda.h"
#include "kernels/model_file.h"
#include "kernels/wavernn.h"
#include "tests/cuda/random_model.h"
/* the GPU machine has no SQLite nor libmg: only the helpers that need neither */
#define MG_TEST_KERNELS_ONLY
#include "tests/testlib.h"

/* Teacher-forced logits: per element |d| <= atol + rtol |ref| (as tests/test_model.c), and the
 * normalised error sum (a - ref)^2 / sum ref^2 over all compared logits at most LOGIT_NMSE. The
 * fixture is PyTorch's float32; the paths differ by summation order and libm ulps only, which
 * puts the normalised error near 1e-13; 1e-9 leaves room and still catches any real defect. */
#define LOGIT_ATOL 1e-4
#define LOGIT_RTOL 1e-4
#define LOGIT_NMSE 1e-9
#define AUDIO_ATOL 1e-6
/* The device's prediction comes from cuBLAS sums (another order than wavernn_ref.c). */
#define PRED_ATOL 1e-5

/* The fixture (tests/testlib.h) and the device, for every test of the group. */
static mg_test_golden_t s_gold;
static mg_wavernn_cuda_t *s_gpu;     /* NULL without a device */
static char s_why[512];              /* why there is no device */

static int s_setup(void **state)
{
    char err[512];
    if (mg_test_golden_load(&s_gold, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    if (mg_wavernn_cuda_available(s_why, sizeof s_why) &&
        mg_wavernn_cuda_new(s_gold.model, &s_gpu, err, sizeof err) != 0) {
        fprintf(stderr, "a CUDA device is present but the context failed: %s\n", err);
        return -1;
    }
    fprintf(stderr, "%s\n", s_why);
    return 0;
}

static int s_teardown(void **state)
{
    mg_wavernn_cuda_destroy(&s_gpu);
    mg_test_golden_free(&s_gold);
    return 0;
}

/* The backend under test: the device, or the emulation of its kernels. */
typedef enum { S_EMU = 0, S_GPU = 1 } s_backend_t;

static int s_render(s_backend_t be, const mg_wavernn_model_t *m, mg_wavernn_cuda_t *gpu,
                    const mg_wavernn_stem_t *stems, int n, float temperature,
                    const mg_wavernn_cuda_probe_t *probe)
{
    char err[512] = "";
    int rc = be == S_GPU ? mg_wavernn_cuda_render_probe(gpu, stems, n, temperature, probe, err, sizeof err)
                         : mg_wavernn_cuda_emulate(m, stems, n, temperature, probe, err, sizeof err);
    if (rc != 0) fprintf(stderr, "%s render failed: %s\n", be == S_GPU ? "device" : "emulated", err);
    return rc;
}

static void s_need_gpu(void)
{
    if (!s_gpu) {
        fprintf(stderr, "SKIPPED (no GPU): %s\n", s_why);
        skip();
    }
}

/* First index where the level sequences differ, -1 if none. */
static int s_first_diff(const int32_t *a, const int32_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return (int)i;
    return -1;
}

/* ---- host pieces ---- */

static void test_selftest(void **state)
{
    char err[512];
    int rc = mg_wavernn_cuda_selftest(200000, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
}

/* ---- teacher forcing ---- */

static void s_teacher_forced(s_backend_t be)
{
    const mg_test_golden_t *g = &s_gold;
    const int T = g->T, L = MG_WR_LEVELS;
    float *lg = malloc(sizeof(float) * (size_t)T * L), *out = malloc(sizeof(float) * T);
    assert_non_null(lg);
    assert_non_null(out);
    for (size_t i = 0; i < (size_t)T * L; i++) lg[i] = NAN;
    mg_wavernn_stem_t stem = {g->notes, g->n_notes, g->cls, g->seed, g->stream, (size_t)T, out, NULL, NULL};
    const int32_t *qin[1] = {g->q_in};
    float *lgs[1] = {lg};
    /* chunks of 3 frames: the state crosses two chunk boundaries */
    mg_wavernn_cuda_probe_t probe = {qin, lgs, 0, 3, 0};
    assert_int_equal(s_render(be, g->model, s_gpu, &stem, 1, g->temperature, &probe), 0);
    int rows = (T + g->stride - 1) / g->stride, bad = 0;
    float *sel = malloc(sizeof(float) * (size_t)rows * L);
    double num = 0.0, den = 0.0;
    for (int r = 0; r < rows; r++) {
        memcpy(sel + (size_t)r * L, lg + (size_t)r * g->stride * L, sizeof(float) * L);
        for (int l = 0; l < L; l++) {
            double d = (double)sel[(size_t)r * L + l] - g->logits[(size_t)r * L + l];
            num += d * d;
            den += (double)g->logits[(size_t)r * L + l] * g->logits[(size_t)r * L + l];
        }
    }
    bad += mg_test_compare(be == S_GPU ? "logits (device)" : "logits (emulated)", sel, g->logits,
                     (size_t)rows * L, LOGIT_ATOL, LOGIT_RTOL);
    fprintf(stderr, "normalised error of the teacher-forced logits: %.3g (bound %g)\n", num / den, LOGIT_NMSE);
    for (size_t i = 0; i < (size_t)T * L; i++)
        if (lg[i] != lg[i]) bad++;   /* every step's logits written */
    assert_int_equal(bad, 0);
    assert_true(num / den <= LOGIT_NMSE);
    free(sel);
    free(lg);
    free(out);
}

static void test_emulated_teacher_forced(void **state) { s_teacher_forced(S_EMU); }
static void test_device_teacher_forced(void **state)
{
    s_need_gpu();
    s_teacher_forced(S_GPU);
}

/* ---- the fixture's sampled sequence ---- */

static void s_fixture_sampling(s_backend_t be)
{
    const mg_test_golden_t *g = &s_gold;
    float *out = malloc(sizeof(float) * g->T);
    int32_t *q = malloc(sizeof(int32_t) * g->T);
    mg_wavernn_stem_t stem = {g->notes, g->n_notes, g->cls, g->seed, g->stream, (size_t)g->T, out, q, NULL};
    assert_int_equal(s_render(be, g->model, s_gpu, &stem, 1, g->temperature, NULL), 0);
    int first = s_first_diff(q, g->sampled, g->T);
    if (first >= 0)
        fprintf(stderr, "sampled sequence differs from sample %d: got %d, reference %d\n", first, q[first],
                g->sampled[first]);
    assert_int_equal(first, -1);
    assert_int_equal(mg_test_compare("audio", out, g->audio, g->T, AUDIO_ATOL, 0), 0);
    free(out);
    free(q);
}

static void test_emulated_sampling_reproduces_fixture(void **state) { s_fixture_sampling(S_EMU); }
static void test_device_sampling_reproduces_fixture(void **state)
{
    s_need_gpu();
    s_fixture_sampling(S_GPU);
}

/* ---- a batch against mg_wavernn_render on the CPU reference ---- */

enum { NB = 6 };

typedef struct {
    mg_wavernn_stem_t st[NB];
    float *out;
    int32_t *q;
    float *pred;
} s_batch_t;

/* Stems of the fixture's score with other seeds, streams, classes (the drum kit included) and
 * lengths (one shorter than a frame, one ending mid-chunk); len is the longest. */
static void s_batch_init(s_batch_t *bt, const mg_test_golden_t *g, size_t len)
{
    static const int cls[NB] = {0, 3, 6, 5, 1, 2};
    const size_t lens[NB] = {len, len - 7, 100, len - 130, len, len - 121};
    bt->out = calloc(NB * len, sizeof(float));
    bt->q = calloc(NB * len, sizeof(int32_t));
    bt->pred = calloc(NB * len, sizeof(float));
    assert_non_null(bt->out);
    assert_non_null(bt->q);
    assert_non_null(bt->pred);
    for (int b = 0; b < NB; b++)
        bt->st[b] = (mg_wavernn_stem_t){g->notes, g->n_notes, cls[b], g->seed + 1000 * b, g->stream + b,
                                        lens[b], bt->out + b * len, bt->q + b * len, bt->pred + b * len};
}

static void s_batch_free(s_batch_t *bt)
{
    free(bt->out);
    free(bt->q);
    free(bt->pred);
}

/* Checks batch `got` against the CPU reference `ref`: levels identical, predictions and audio
 * bit-identical (exact = 1) or within tolerance. Returns mismatches. */
static int s_batch_compare(const s_batch_t *got, const s_batch_t *ref, int exact, const char *what)
{
    int bad = 0;
    for (int b = 0; b < NB; b++) {
        const mg_wavernn_stem_t *x = &got->st[b], *r = &ref->st[b];
        int first = s_first_diff(x->q_out, r->q_out, r->n_samples);
        if (first >= 0) {
            fprintf(stderr, "%s stem %d (class %d): levels differ from sample %d of %zu: %d, reference %d\n",
                    what, b, r->cls, first, r->n_samples, x->q_out[first], r->q_out[first]);
            bad++;
            continue;
        }
        char name[96];
        snprintf(name, sizeof name, "%s stem %d pred", what, b);
        bad += mg_test_compare(name, x->pred_out, r->pred_out, r->n_samples, exact ? 0 : PRED_ATOL, 0);
        snprintf(name, sizeof name, "%s stem %d audio", what, b);
        bad += mg_test_compare(name, x->out, r->out, r->n_samples, exact ? 0 : PRED_ATOL * 8, 0);
    }
    return bad;
}

static int s_batch_identical(const s_batch_t *a, const s_batch_t *b, size_t len)
{
    return !memcmp(a->out, b->out, sizeof(float) * NB * len) && !memcmp(a->q, b->q, sizeof(int32_t) * NB * len) &&
           !memcmp(a->pred, b->pred, sizeof(float) * NB * len);
}

static void s_batch_vs_cpu(s_backend_t be)
{
    const mg_test_golden_t *g = &s_gold;
    const size_t len = (size_t)g->T;
    s_batch_t ref, x, y;
    s_batch_init(&ref, g, len);
    s_batch_init(&x, g, len);
    s_batch_init(&y, g, len);
    assert_int_equal(mg_wavernn_render(g->model, ref.st, NB, g->temperature, MG_WR_ISA_REF), 0);
    assert_int_equal(s_render(be, g->model, s_gpu, x.st, NB, g->temperature, NULL), 0);
    /* the emulation's features and frame parts are the CPU's own: bit-identical outputs */
    assert_int_equal(s_batch_compare(&x, &ref, be == S_EMU, be == S_GPU ? "device" : "emulated"), 0);

    /* the same output with 4 streams per block (a full and a partial group), other chunks, and
     * (emulation) every phase's threads in reverse order: no race, no dependence on grouping */
    mg_wavernn_cuda_probe_t probe = {NULL, NULL, 4, 2, 1};
    assert_int_equal(s_render(be, g->model, s_gpu, y.st, NB, g->temperature, &probe), 0);
    assert_true(s_batch_identical(&x, &y, len));
    /* and a stem alone equals the same stem in the batch */
    memset(y.out, 0, sizeof(float) * NB * len);
    assert_int_equal(s_render(be, g->model, s_gpu, &y.st[3], 1, g->temperature, NULL), 0);
    assert_memory_equal(y.st[3].out, x.st[3].out, sizeof(float) * x.st[3].n_samples);
    s_batch_free(&ref);
    s_batch_free(&x);
    s_batch_free(&y);
}

static void test_emulated_batch_matches_cpu(void **state) { s_batch_vs_cpu(S_EMU); }
static void test_device_batch_matches_cpu(void **state)
{
    s_need_gpu();
    s_batch_vs_cpu(S_GPU);
}

/* ---- the production size (H = O = 64) ---- */

/* A model of the default sizes with random weights (tests/cuda/random_model.h). */
static mg_wavernn_model_t *s_random_model(uint64_t seed)
{
    char err[512];
    mg_wavernn_model_t *m = mg_test_random_model(seed, err, sizeof err);
    if (!m) fprintf(stderr, "%s\n", err);
    assert_non_null(m);
    return m;
}

/* Renders 8 stems of 0.1 s (one shorter) with model m on the backend and on the CPU reference:
 * levels identical, predictions bit-identical (emulation) or within PRED_ATOL (device); then the
 * same with 16 streams per block (a partial group of 8) bit-identical to the first. */
static void s_h64(s_backend_t be, mg_wavernn_model_t *m)
{
    char err[512];
    mg_wavernn_cuda_t *gpu = NULL;
    if (be == S_GPU && mg_wavernn_cuda_new(m, &gpu, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        fail();
    }
    enum { B = 8, N = 2400 };
    static const mg_wavernn_note_t notes[] = {{0, 900, 60, 100}, {700, 1800, 64, 80}, {700, 2000, 67, 60},
                                              {1300, 2300, 48, 110}, {1500, 1700, 72, 30}};
    float *out = calloc(3 * B * N, sizeof(float)), *pred = calloc(3 * B * N, sizeof(float));
    int32_t *q = calloc(3 * B * N, sizeof(int32_t));
    mg_wavernn_stem_t st[3][B];
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)k * B + b) * N;
            st[k][b] = (mg_wavernn_stem_t){notes, 5, b % MG_WR_N_CLASSES, 42 + b, (uint64_t)b, N - 60 * b,
                                           out + o, q + o, pred + o};
        }
    assert_int_equal(mg_wavernn_render(m, st[0], B, 1.0f, MG_WR_ISA_REF), 0);
    assert_int_equal(s_render(be, m, gpu, st[1], B, 1.0f, NULL), 0);
    mg_wavernn_cuda_probe_t probe = {NULL, NULL, 16, 0, 1};
    assert_int_equal(s_render(be, m, gpu, st[2], B, 1.0f, &probe), 0);
    int bad = 0;
    for (int b = 0; b < B; b++) {
        int first = s_first_diff(st[1][b].q_out, st[0][b].q_out, st[0][b].n_samples);
        if (first >= 0) {
            fprintf(stderr, "%s, stem %d: levels differ from sample %d of %zu\n", m->name, b, first,
                    st[0][b].n_samples);
            bad++;
        }
        bad += mg_test_compare("pred", st[1][b].pred_out, st[0][b].pred_out, st[0][b].n_samples,
                         be == S_EMU ? 0 : PRED_ATOL, 0);
    }
    assert_int_equal(bad, 0);
    /* not a vacuous comparison: the draws spread over many levels */
    int seen[MG_WR_LEVELS] = {0}, distinct = 0;
    for (size_t i = 0; i < (size_t)B * N; i++) distinct += !seen[q[i]]++;
    fprintf(stderr, "%s: %d distinct levels drawn\n", m->name, distinct);
    assert_true(distinct >= 32);
    assert_memory_equal(out + B * N, out + 2 * B * N, sizeof(float) * B * N);
    assert_memory_equal(q + B * N, q + 2 * B * N, sizeof(int32_t) * B * N);
    free(out);
    free(pred);
    free(q);
    mg_wavernn_cuda_destroy(&gpu);
}

static void test_emulated_h64_matches_cpu(void **state)
{
    mg_wavernn_model_t *m = s_random_model(7);
    s_h64(S_EMU, m);
    mg_wavernn_destroy(&m);
}

static void test_device_h64_matches_cpu(void **state)
{
    s_need_gpu();
    mg_wavernn_model_t *m = s_random_model(7);
    s_h64(S_GPU, m);
    mg_wavernn_destroy(&m);
}

/* The committed default model, where it loads with this runtime. */
static void test_device_default_model_matches_cpu(void **state)
{
    s_need_gpu();
    char err[512];
    mg_wavernn_model_t *m = NULL;
    if (mg_wavernn_load(mg_test_path("models/default/mg-wavernn.mgnn"), &m, err, sizeof err) != 0) {
        fprintf(stderr, "SKIPPED: the default model does not load: %s\n", err);
        skip();
    }
    s_h64(S_GPU, m);
    mg_wavernn_destroy(&m);
}

/* ---- device only: a batch larger than the SM count ---- */

/* 300 stems (more groups than SMs: several streams per block, several waves); every 37th is
 * checked against the same stem rendered alone on the CPU reference. */
static void test_device_large_batch(void **state)
{
    s_need_gpu();
    const mg_test_golden_t *g = &s_gold;
    enum { B = 300 };
    const size_t len = (size_t)g->T;
    float *out = calloc(B * len, sizeof(float)), *ref = calloc(len, sizeof(float));
    int32_t *q = calloc(B * len, sizeof(int32_t)), *rq = calloc(len, sizeof(int32_t));
    mg_wavernn_stem_t *st = calloc(B, sizeof *st);
    for (int b = 0; b < B; b++)
        st[b] = (mg_wavernn_stem_t){g->notes, g->n_notes, b % MG_WR_N_CLASSES, g->seed + b, (uint64_t)b,
                                    len - (size_t)(b % 5) * 50, out + b * len, q + b * len, NULL};
    assert_int_equal(s_render(S_GPU, g->model, s_gpu, st, B, g->temperature, NULL), 0);
    mg_wavernn_cuda_timing_t tm;
    mg_wavernn_cuda_last_timing(s_gpu, &tm);
    fprintf(stderr, "300 stems: %d streams per block, %d blocks, %d chunks\n", tm.streams_per_block, tm.blocks,
            tm.chunks);
    int bad = 0;
    for (int b = 0; b < B; b += 37) {
        mg_wavernn_stem_t one = st[b];
        one.out = ref;
        one.q_out = rq;
        assert_int_equal(mg_wavernn_render(g->model, &one, 1, g->temperature, MG_WR_ISA_REF), 0);
        int first = s_first_diff(st[b].q_out, rq, one.n_samples);
        if (first >= 0) {
            fprintf(stderr, "stem %d: levels differ from sample %d\n", b, first);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    free(out);
    free(ref);
    free(q);
    free(rq);
    free(st);
}

/* Errors are reported, not crashed on. */
static void test_bad_arguments(void **state)
{
    const mg_test_golden_t *g = &s_gold;
    char err[512] = "";
    float out[4];
    mg_wavernn_stem_t stem = {g->notes, g->n_notes, 9, 1, 0, 4, out, NULL, NULL};
    assert_int_equal(mg_wavernn_cuda_emulate(g->model, &stem, 1, 1.0f, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "class 9"));
    assert_int_equal(mg_wavernn_cuda_emulate(g->model, &stem, 0, 1.0f, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "batch of 0"));
    if (!s_gpu) {
        mg_wavernn_cuda_t *c = NULL;
        assert_int_equal(mg_wavernn_cuda_new(g->model, &c, err, sizeof err), -1);
        assert_null(c);
        assert_non_null(strstr(err, "CUDA"));
    }
}

/* MG_TEST_FILTER=substring runs only the tests whose name contains it (compute-sanitizer runs
 * on the GPU machine pick the device tests this way). */
int main(void)
{
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_selftest),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_emulated_teacher_forced),
        cmocka_unit_test(test_emulated_sampling_reproduces_fixture),
        cmocka_unit_test(test_emulated_batch_matches_cpu),
        cmocka_unit_test(test_emulated_h64_matches_cpu),
        cmocka_unit_test(test_device_teacher_forced),
        cmocka_unit_test(test_device_sampling_reproduces_fixture),
        cmocka_unit_test(test_device_batch_matches_cpu),
        cmocka_unit_test(test_device_h64_matches_cpu),
        cmocka_unit_test(test_device_default_model_matches_cpu),
        cmocka_unit_test(test_device_large_batch),
    };
    struct CMUnitTest tests[sizeof all / sizeof all[0]];
    const char *filter = getenv("MG_TEST_FILTER");
    size_t n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!filter || strstr(all[i].name, filter)) tests[n++] = all[i];
    return _cmocka_run_group_tests("test_cuda", tests, n, s_setup, s_teardown);
}
