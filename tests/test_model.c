/* test_model.c - the neural renderer's CPU runtime (kernels/model_file.c, philox.c, wavernn*.c)
 * against the PyTorch reference: the golden fixture tests/data/model/golden.mgnn written by
 * models/train/golden.py for the random-weights tests/data/model/tiny.mgnn (features, GRU states,
 * logits within tolerance, the sampled sequence exactly), Philox known answers, and the loader's
 * rejection of truncated, corrupt and inconsistent files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernels/model_file.h"
#include "kernels/philox.h"
#include "kernels/wavernn.h"

/* Tolerances (|c - ref| <= atol + rtol * |ref|): features are computed in double on both sides
 * and rounded to float; network outputs differ by float summation order only. */
#define FEAT_ATOL 1e-6
#define H_ATOL 1e-5
#define H_RTOL 1e-4
#define LOGIT_ATOL 1e-4
#define LOGIT_RTOL 1e-4
#define AUDIO_ATOL 1e-6

static const char *s_path(const char *rel)
{
    static char buf[4][512];
    static int k;
    static const char *const roots[] = {".", "..", NULL};
    k = (k + 1) % 4;
    for (int i = 0; roots[i]; i++) {
        snprintf(buf[k], sizeof buf[k], "%s/%s", roots[i], rel);
        if (access(buf[k], R_OK) == 0) return buf[k];
    }
    return rel;
}

static unsigned char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* Compares n floats; prints the first mismatches and the max difference; returns mismatches. */
static int s_compare(const char *what, const float *got, const float *ref, size_t n, double atol,
                     double rtol)
{
    int bad = 0;
    double maxd = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] > ref[i] ? (double)got[i] - ref[i] : (double)ref[i] - got[i];
        if (d > maxd) maxd = d;
        if (d > atol + rtol * (ref[i] < 0 ? -ref[i] : ref[i])) {
            if (bad < 5) fprintf(stderr, "%s[%zu]: got %.9g, reference %.9g\n", what, i, got[i], ref[i]);
            bad++;
        }
    }
    fprintf(stderr, "%s: %zu values, max |diff| %.3g, %d outside tolerance\n", what, n, maxd, bad);
    return bad;
}

typedef struct {
    mg_nn_file_t *fx;
    mg_wavernn_model_t *model;
    mg_wavernn_note_t notes[16];
    size_t n_notes;
    int cls, stride, T;
    uint64_t seed, stream;
    float temperature;
    const float *cond, *exc, *h, *logits, *audio;
    const int32_t *q_in, *sampled;
} s_golden_t;

static int s_setup(void **state)
{
    char err[512];
    s_golden_t *g = calloc(1, sizeof *g);
    if (mg_nn_file_load(s_path("tests/data/model/golden.mgnn"), &g->fx, err, sizeof err) != 0 ||
        mg_wavernn_load(s_path("tests/data/model/tiny.mgnn"), &g->model, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    const mg_nn_file_t *f = g->fx;
    const mg_nn_tensor_t *notes = mg_nn_file_tensor(f, "notes");
    g->n_notes = (size_t)notes->dims[0];
    for (size_t i = 0; i < g->n_notes && i < 16; i++) {
        const int32_t *r = (const int32_t *)notes->data + 4 * i;
        g->notes[i] = (mg_wavernn_note_t){r[0], r[1], r[2], r[3]};
    }
    g->cls = mg_nn_file_hparam(f, "class")->value.i;
    g->stride = mg_nn_file_hparam(f, "stride")->value.i;
    g->temperature = mg_nn_file_hparam(f, "temperature")->value.f;
    g->seed = strtoull(mg_nn_file_meta(f, "seed"), NULL, 10);
    g->stream = strtoull(mg_nn_file_meta(f, "stream"), NULL, 10);
    g->T = (int)mg_nn_file_tensor(f, "sampled")->dims[0];
    g->cond = mg_nn_file_tensor(f, "cond")->data;
    g->exc = mg_nn_file_tensor(f, "exc")->data;
    g->h = mg_nn_file_tensor(f, "h")->data;
    g->logits = mg_nn_file_tensor(f, "logits")->data;
    g->audio = mg_nn_file_tensor(f, "audio")->data;
    g->q_in = mg_nn_file_tensor(f, "q_in")->data;
    g->sampled = mg_nn_file_tensor(f, "sampled")->data;
    assert_int_equal(mg_nn_file_tensor(f, "h")->dims[1], g->model->hidden);
    *state = g;
    return 0;
}

static int s_teardown(void **state)
{
    s_golden_t *g = *state;
    mg_nn_file_destroy(&g->fx);
    mg_wavernn_destroy(&g->model);
    free(g);
    return 0;
}

/* Random123 kat_vectors for philox4x32_10. */
static void test_philox_known_answers(void **state)
{
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {~0u, ~0u, ~0u, ~0u, ~0u, ~0u, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        mg_philox4x32_10(kat[i], kat[i] + 4, out);
        for (int j = 0; j < 4; j++) assert_int_equal(out[j], kat[i][6 + j]);
    }
    /* the keying of mg_philox_u32: ctr = (index, stream), key = seed */
    uint32_t out[4], ctr[4] = {5, 1, 3, 0}, key[2] = {0x90ABCDEF, 0x12345678};
    mg_philox4x32_10(ctr, key, out);
    assert_int_equal(mg_philox_u32(0x1234567890ABCDEFull, 3, (1ull << 32) + 5), out[0]);
}

static void test_crc32(void **state)
{
    assert_int_equal(mg_crc32(0, "123456789", 9), 0xCBF43926u);
}

static void test_features_match_reference(void **state)
{
    s_golden_t *g = *state;
    int32_t slots[MG_WR_VOICES];
    float cond[MG_WR_COND_DIM], exc[MG_WR_EXC_DIM];
    int bad = 0;
    float *all_exc = malloc(sizeof(float) * MG_WR_EXC_DIM * (size_t)g->T);
    float *all_cond = malloc(sizeof(float) * MG_WR_COND_DIM * (size_t)(g->T / MG_WR_FRAME));
    for (int t = 0; t < g->T; t++) {
        if (t % MG_WR_FRAME == 0) {
            int64_t f = t / MG_WR_FRAME;
            mg_wavernn_slots(g->notes, g->n_notes, f, slots);
            mg_wavernn_frame_cond(g->notes, slots, g->cls, f, cond);
            memcpy(all_cond + f * MG_WR_COND_DIM, cond, sizeof cond);
        }
        mg_wavernn_excitation(g->notes, slots, g->cls, t, exc);
        memcpy(all_exc + (size_t)t * MG_WR_EXC_DIM, exc, sizeof exc);
    }
    bad += s_compare("cond", all_cond, g->cond, (size_t)(g->T / MG_WR_FRAME) * MG_WR_COND_DIM, FEAT_ATOL, 0);
    bad += s_compare("exc", all_exc, g->exc, (size_t)g->T * MG_WR_EXC_DIM, FEAT_ATOL, 0);
    free(all_exc);
    free(all_cond);
    assert_int_equal(bad, 0);

    /* more notes than voices: the fixture's frame 6 holds the 4 latest onsets in order */
    mg_wavernn_slots(g->notes, g->n_notes, 6, slots);
    assert_int_equal(slots[0], 2);
    assert_int_equal(slots[3], 5);
    /* drums: no sinusoids, only the onset pulse */
    mg_wavernn_slots(g->notes, g->n_notes, 0, slots);
    mg_wavernn_excitation(g->notes, slots, MG_WR_CLASS_DRUMS, 10, exc);
    for (int j = 0; j < 2 * MG_WR_HARMONICS; j++) assert_true(exc[j] == 0.0f);
    assert_true(exc[2 * MG_WR_HARMONICS] > 0.9f);
}

static void test_teacher_forced_matches_reference(void **state)
{
    s_golden_t *g = *state;
    const mg_wavernn_model_t *m = g->model;
    mg_wavernn_state_t *s = mg_wavernn_state_new(m);
    assert_non_null(s);
    int rows = (g->T + g->stride - 1) / g->stride;
    float *h = malloc(sizeof(float) * (size_t)rows * m->hidden);
    float *lg = malloc(sizeof(float) * (size_t)rows * MG_WR_LEVELS);
    float logits[MG_WR_LEVELS];
    for (int t = 0; t < g->T; t++) {
        if (t % MG_WR_FRAME == 0) mg_wavernn_frame_ref(m, s, g->cond + (t / MG_WR_FRAME) * MG_WR_COND_DIM);
        mg_wavernn_step_ref(m, s, g->q_in[t], g->exc + (size_t)t * MG_WR_EXC_DIM, logits);
        if (t % g->stride == 0) {
            memcpy(h + (size_t)(t / g->stride) * m->hidden, s->h, sizeof(float) * m->hidden);
            memcpy(lg + (size_t)(t / g->stride) * MG_WR_LEVELS, logits, sizeof logits);
        }
    }
    int bad = s_compare("h (ref)", h, g->h, (size_t)rows * m->hidden, H_ATOL, H_RTOL);
    bad += s_compare("logits (ref)", lg, g->logits, (size_t)rows * MG_WR_LEVELS, LOGIT_ATOL, LOGIT_RTOL);
    free(h);
    free(lg);
    mg_wavernn_state_destroy(&s);
    assert_int_equal(bad, 0);
}

static void test_sampling_reproduces_reference(void **state)
{
    s_golden_t *g = *state;
    float *audio = malloc(sizeof(float) * (size_t)g->T);
    int32_t *q = malloc(sizeof(int32_t) * (size_t)g->T);
    assert_int_equal(mg_wavernn_render_ref(g->model, g->notes, g->n_notes, g->cls, g->seed,
                                           g->stream, g->temperature, (size_t)g->T, audio, q), 0);
    int first = -1;
    for (int t = 0; t < g->T && first < 0; t++)
        if (q[t] != g->sampled[t]) first = t;
    if (first >= 0)
        fprintf(stderr, "sampled sequence differs from sample %d: got %d, reference %d\n", first,
                q[first], g->sampled[first]);
    assert_int_equal(first, -1);
    assert_int_equal(s_compare("audio (ref)", audio, g->audio, (size_t)g->T, AUDIO_ATOL, 0), 0);
    free(audio);
    free(q);
}

static void test_model_metadata(void **state)
{
    s_golden_t *g = *state;
    const mg_wavernn_model_t *m = g->model;
    assert_string_equal(m->name, "mg-wavernn-golden-tiny");
    assert_string_equal(m->license, "MIT");
    assert_non_null(strstr(m->attribution, "FluidR3_GM"));
    assert_int_equal(mg_wavernn_class(m, 0), 0);              /* acoustic grand piano */
    assert_int_equal(mg_wavernn_class(m, 33), 3);             /* electric bass (finger) */
    assert_int_equal(mg_wavernn_class(m, MG_WR_DRUM_KIT), MG_WR_CLASS_DRUMS);
    assert_int_equal(mg_wavernn_class(m, 129), -1);
    assert_int_equal(mg_wavernn_mulaw_encode(0.0f), 128);
    assert_true(mg_wavernn_mulaw_decode(0) == -1.0f && mg_wavernn_mulaw_decode(255) == 1.0f);
}

/* ---- the loader's checks ---- */

static void s_fix_crc(unsigned char *b, size_t len)
{
    uint32_t c = mg_crc32(0, b, len - 4);
    for (int i = 0; i < 4; i++) b[len - 4 + i] = (unsigned char)(c >> (8 * i));
}

/* Expects the model-level load of (b, len) to fail with an error containing want. */
static void s_expect_reject(const unsigned char *b, size_t len, const char *want)
{
    char err[512] = "";
    mg_nn_file_t *f = NULL;
    mg_wavernn_model_t *m = NULL;
    int rc = mg_nn_file_parse(b, len, "tiny.mgnn", &f, err, sizeof err);
    if (rc == 0) rc = mg_wavernn_from_file(&f, &m, err, sizeof err);
    if (rc == 0 || !strstr(err, want))
        fprintf(stderr, "expected an error containing \"%s\", got rc %d: %s\n", want, rc, err);
    assert_int_equal(rc, -1);
    assert_null(m);
    assert_null(f);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "tiny.mgnn: "));
}

static unsigned char *s_find(unsigned char *b, size_t len, const char *s)
{
    unsigned char *p = memmem(b, len, s, strlen(s));
    assert_non_null(p);
    return p;
}

static void test_loader_rejects_bad_files(void **state)
{
    size_t len;
    unsigned char *orig = s_read(s_path("tests/data/model/tiny.mgnn"), &len);
    unsigned char *b = malloc(len);

    /* truncated anywhere: at the magic, inside the headers, inside the data, the checksum */
    const size_t cuts[] = {0, 3, 6, 10, 30, 200, 600, len / 2, len - 5, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char err[512] = "";
        mg_nn_file_t *f = NULL;
        assert_int_equal(mg_nn_file_parse(orig, cuts[i], "tiny.mgnn", &f, err, sizeof err), -1);
        assert_null(f);
        assert_true(strstr(err, "truncated") || strstr(err, "not an MGNN") || strstr(err, "size"));
    }
    /* trailing garbage */
    unsigned char *big = calloc(1, len + 64);
    memcpy(big, orig, len);
    s_expect_reject(big, len + 64, "trailing bytes or truncation");
    free(big);

    memcpy(b, orig, len);
    b[len - 100] ^= 0x40;                          /* a bit flip inside a tensor */
    s_expect_reject(b, len, "checksum mismatch");

    memcpy(b, orig, len);
    b[0] = 'X';
    s_expect_reject(b, len, "not an MGNN model file");

    memcpy(b, orig, len);
    b[4] = 2;
    s_fix_crc(b, len);
    s_expect_reject(b, len, "format version 2");

    /* a tensor with its dims swapped (same byte size): the model-level shape check */
    memcpy(b, orig, len);
    unsigned char *p = s_find(b, len, "gru.weight_hh_l0") + strlen("gru.weight_hh_l0") + 8;
    uint32_t d0, d1;
    memcpy(&d0, p, 4);
    memcpy(&d1, p + 4, 4);
    memcpy(p, &d1, 4);
    memcpy(p + 4, &d0, 4);
    s_fix_crc(b, len);
    s_expect_reject(b, len, "tensor 'gru.weight_hh_l0' has shape (32, 96), expected (96, 32)");

    /* a dimension that disagrees with the byte count */
    memcpy(b, orig, len);
    p = s_find(b, len, "out2.bias") + strlen("out2.bias") + 8;
    p[0] = 255;                                    /* 256 -> 511 elements */
    s_fix_crc(b, len);
    s_expect_reject(b, len, "tensor 'out2.bias' says 1024 bytes; its shape needs 2044");

    memcpy(b, orig, len);
    memcpy(s_find(b, len, "license"), "licenze", 7);
    s_fix_crc(b, len);
    s_expect_reject(b, len, "metadata 'license' is missing");

    memcpy(b, orig, len);
    p = s_find(b, len, "frame") + 5 + 4;           /* the hyper-parameter "frame": type, value */
    p[0] = 100;
    s_fix_crc(b, len);
    s_expect_reject(b, len, "hyper-parameter 'frame' is 100; this runtime implements 120 only");

    memcpy(b, orig, len);
    memcpy(s_find(b, len, "out1.weight"), "out1.weighT", 11);
    s_fix_crc(b, len);
    s_expect_reject(b, len, "tensor 'out1.weight' is missing");

    /* the untouched file still loads */
    memcpy(b, orig, len);
    char err[512];
    mg_nn_file_t *f = NULL;
    mg_wavernn_model_t *m = NULL;
    assert_int_equal(mg_nn_file_parse(b, len, "tiny.mgnn", &f, err, sizeof err), 0);
    assert_int_equal(mg_wavernn_from_file(&f, &m, err, sizeof err), 0);
    mg_wavernn_destroy(&m);
    assert_int_equal(mg_wavernn_load("/nonexistent/x.mgnn", &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    free(b);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_features_match_reference),
        cmocka_unit_test(test_teacher_forced_matches_reference),
        cmocka_unit_test(test_sampling_reproduces_reference),
        cmocka_unit_test(test_model_metadata),
        cmocka_unit_test(test_loader_rejects_bad_files),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
