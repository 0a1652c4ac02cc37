/* test_model.c - the neural renderer's CPU runtime (kernels/model_file.c, philox.c, wavernn*.c)
 * against the PyTorch reference: the golden fixture tests/data/model/golden.mgnn written by
 * models/train/golden.py for the random-weights tests/data/model/tiny.mgnn (features, GRU states
 * and logits within tolerance, the sampled sequence exactly) for the scalar reference and the
 * AVX2 path (batched, threaded); Philox known answers; the committed default model; and the
 * loader's rejection of truncated, corrupt and inconsistent files.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/model_file.h"
#include "kernels/philox.h"
#include "kernels/wavernn.h"
#include "tests/testlib.h"

/* Tolerances (|c - ref| <= atol + rtol * |ref|): features are computed in double on both sides
 * and rounded to float; network outputs differ by float summation order only. */
#define FEAT_ATOL 1e-6
#define H_ATOL 1e-5
#define H_RTOL 1e-4
#define LOGIT_ATOL 1e-4
#define LOGIT_RTOL 1e-4
#define AUDIO_ATOL 1e-6

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

static int s_setup(void **state)
{
    char err[512];
    mg_test_golden_t *g = calloc(1, sizeof *g);
    if (!g || mg_test_golden_load(g, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", g ? err : "out of memory");
        free(g);
        return -1;
    }
    assert_int_equal(mg_nn_file_tensor(g->fx, "h")->dims[1], g->model->hidden);
    *state = g;
    return 0;
}

static int s_teardown(void **state)
{
    mg_test_golden_t *g = *state;
    mg_test_golden_free(g);
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
    mg_test_golden_t *g = *state;
    const mg_wavernn_model_t *m = g->model;
    const int NF = g->T / MG_WR_FRAME, VD = MG_WR_VOICE_DIM, PD = MG_WR_PRED_DIM, V = MG_WR_VOICES;
    int32_t slots[MG_WR_VOICES], emb[MG_WR_VOICES];
    double hz[MG_WR_VOICES];
    float cond[MG_WR_COND_DIM], exc[MG_WR_EXC_DIM], basis[MG_WR_VOICES * MG_WR_PRED_DIM];
    float vin[MG_WR_VOICES * 2 * MG_WR_VOICE_DIM];
    int bad = 0, rows = (g->T + g->stride - 1) / g->stride;
    float *all_exc = malloc(sizeof(float) * MG_WR_EXC_DIM * (size_t)g->T);
    float *all_cond = malloc(sizeof(float) * MG_WR_COND_DIM * (size_t)NF);
    float *all_basis = malloc(sizeof(float) * V * PD * (size_t)rows);
    float *all_vin = malloc(sizeof(float) * V * 2 * VD * (size_t)NF);
    float *all_coef = malloc(sizeof(float) * V * 2 * PD * (size_t)NF);
    float *all_pred = malloc(sizeof(float) * (size_t)g->T);
    mg_wavernn_state_t *s = mg_wavernn_state_new(m);
    assert_non_null(s);
    for (int t = 0; t < g->T; t++) {
        if (t % MG_WR_FRAME == 0) {
            int64_t f = t / MG_WR_FRAME;
            mg_wavernn_slots(g->notes, g->n_notes, f, slots);
            mg_wavernn_slot_hz(g->notes, slots, g->cls, m->tuning, hz);
            mg_wavernn_frame_cond(g->notes, slots, g->cls, f, cond);
            memcpy(all_cond + f * MG_WR_COND_DIM, cond, sizeof cond);
            mg_wavernn_voice_inputs(g->notes, slots, g->cls, f, vin, emb);
            memcpy(all_vin + f * V * 2 * VD, vin, sizeof vin);
            for (int v = 0; v < V; v++) assert_int_equal(emb[v], g->emb[f * V + v]);
            mg_wavernn_voice_ref(m, s, vin, emb);
            memcpy(all_coef + f * V * 2 * PD, s->coef, sizeof(float) * V * 2 * PD);
        }
        mg_wavernn_features(g->notes, slots, g->cls, hz, t, exc, basis);
        memcpy(all_exc + (size_t)t * MG_WR_EXC_DIM, exc, sizeof exc);
        if (t % g->stride == 0) memcpy(all_basis + (size_t)(t / g->stride) * V * PD, basis, sizeof basis);
        float h = mg_wavernn_harmonic(s, basis, t % MG_WR_FRAME);
        all_pred[t] = h - (float)MG_WR_PREEMPH * s->h_prev;
        s->h_prev = h;
    }
    bad += mg_test_compare("cond", all_cond, g->cond, (size_t)NF * MG_WR_COND_DIM, FEAT_ATOL, 0);
    bad += mg_test_compare("exc", all_exc, g->exc, (size_t)g->T * MG_WR_EXC_DIM, FEAT_ATOL, 0);
    bad += mg_test_compare("basis", all_basis, g->basis, (size_t)rows * V * PD, FEAT_ATOL, 0);
    bad += mg_test_compare("vin", all_vin, g->vin, (size_t)NF * V * 2 * VD, FEAT_ATOL, 0);
    bad += mg_test_compare("coef", all_coef, g->coef, (size_t)NF * V * 2 * PD, H_ATOL, H_RTOL);
    bad += mg_test_compare("pred", all_pred, g->pred, (size_t)g->T, H_ATOL, H_RTOL);
    mg_wavernn_state_destroy(&s);
    free(all_exc);
    free(all_cond);
    free(all_basis);
    free(all_vin);
    free(all_coef);
    free(all_pred);
    assert_int_equal(bad, 0);

    /* more notes than voices: the fixture's frame 6 holds the 4 latest onsets in order */
    mg_wavernn_slots(g->notes, g->n_notes, 6, slots);
    assert_int_equal(slots[0], 2);
    assert_int_equal(slots[3], 5);
    /* drums: no sinusoids and no predictor, only the onset pulse */
    mg_wavernn_slots(g->notes, g->n_notes, 0, slots);
    mg_wavernn_slot_hz(g->notes, slots, MG_WR_CLASS_DRUMS, m->tuning, hz);
    mg_wavernn_features(g->notes, slots, MG_WR_CLASS_DRUMS, hz, 10, exc, basis);
    for (int j = 0; j < 2 * MG_WR_HARMONICS; j++) assert_true(exc[j] == 0.0f);
    for (int j = 0; j < V * PD; j++) assert_true(basis[j] == 0.0f);
    assert_true(exc[2 * MG_WR_HARMONICS] > 0.9f);
    /* the tuning table moves the oscillator: +100 cents is a semitone up */
    float tun[MG_WR_N_CLASSES * 128] = {0};
    tun[2 * 128 + 69] = 100.0f;
    assert_true(fabs(mg_wavernn_note_hz(tun, 2, 69) - 440.0 * pow(2.0, 1.0 / 12.0)) < 1e-9);
    assert_true(mg_wavernn_note_hz(tun, 1, 69) == 440.0 && mg_wavernn_note_hz(NULL, 2, 69) == 440.0);
}

/* Teacher-forced pass over the fixture with isa; batch > 1 runs that many copies of the stream
 * in one step call (each must match the reference alone). Returns mismatches. */
static int s_teacher_forced(mg_test_golden_t *g, int isa, int batch)
{
    const mg_wavernn_model_t *m = g->model;
    mg_wavernn_state_t *s[8];
    for (int b = 0; b < batch; b++) assert_non_null(s[b] = mg_wavernn_state_new(m));
    int rows = (g->T + g->stride - 1) / g->stride, bad = 0;
    float *h = malloc(sizeof(float) * (size_t)rows * m->hidden * batch);
    float *lg = malloc(sizeof(float) * (size_t)rows * MG_WR_LEVELS * batch);
    float logits[8 * MG_WR_LEVELS], in[8 * MG_WR_IN_DIM];
    int q[8];
    for (int t = 0; t < g->T; t++) {
        for (int b = 0; b < batch; b++) {
            if (t % MG_WR_FRAME == 0)
                mg_wavernn_frame_ref(m, s[b], g->cond + (t / MG_WR_FRAME) * MG_WR_COND_DIM);
            memcpy(in + b * MG_WR_IN_DIM, g->exc + (size_t)t * MG_WR_EXC_DIM, sizeof(float) * MG_WR_EXC_DIM);
            in[b * MG_WR_IN_DIM + MG_WR_EXC_DIM] = mg_wavernn_compand(g->pred[t]);
            q[b] = g->q_in[t];
        }
        if (isa == MG_WR_ISA_AVX2)
            mg_wavernn_step_avx2(m, s, batch, q, in, logits);
        else
            mg_wavernn_step_ref(m, s[0], q[0], in, logits);
        if (t % g->stride == 0)
            for (int b = 0; b < batch; b++) {
                size_t r = (size_t)b * rows + t / g->stride;
                memcpy(h + r * m->hidden, s[b]->h, sizeof(float) * m->hidden);
                memcpy(lg + r * MG_WR_LEVELS, logits + b * MG_WR_LEVELS, sizeof(float) * MG_WR_LEVELS);
            }
    }
    for (int b = 0; b < batch; b++) {
        char what[64];
        snprintf(what, sizeof what, "h (%s, stream %d of %d)", isa ? "avx2" : "ref", b, batch);
        bad += mg_test_compare(what, h + (size_t)b * rows * m->hidden, g->h, (size_t)rows * m->hidden, H_ATOL, H_RTOL);
        snprintf(what, sizeof what, "logits (%s, stream %d of %d)", isa ? "avx2" : "ref", b, batch);
        bad += mg_test_compare(what, lg + (size_t)b * rows * MG_WR_LEVELS, g->logits, (size_t)rows * MG_WR_LEVELS,
                         LOGIT_ATOL, LOGIT_RTOL);
        mg_wavernn_state_destroy(&s[b]);
    }
    free(h);
    free(lg);
    return bad;
}

static void test_teacher_forced_matches_reference(void **state)
{
    assert_int_equal(s_teacher_forced(*state, MG_WR_ISA_REF, 1), 0);
}

static void test_avx2_matches_reference(void **state)
{
    mg_test_golden_t *g = *state;
    if (mg_wavernn_isa() != MG_WR_ISA_AVX2 || !g->model->pk_exc) {
        fprintf(stderr, "no AVX2+FMA on this CPU: the optimised path is not tested here\n");
        skip();
    }
    /* batch 1 (column-split kernel), 3 (odd remainder), 6 (a block of 4 plus 2) */
    assert_int_equal(s_teacher_forced(g, MG_WR_ISA_AVX2, 1), 0);
    assert_int_equal(s_teacher_forced(g, MG_WR_ISA_AVX2, 3), 0);
    assert_int_equal(s_teacher_forced(g, MG_WR_ISA_AVX2, 6), 0);
}

/* Renders the fixture's stem (batch copies, the last with another seed) and checks the first
 * copy's sampled sequence exactly and its audio within AUDIO_ATOL. */
static void s_sampling(mg_test_golden_t *g, int isa, int batch)
{
    mg_wavernn_stem_t stems[4] = {0};
    float *audio = malloc(sizeof(float) * (size_t)g->T * batch);
    int32_t *q = malloc(sizeof(int32_t) * (size_t)g->T * batch);
    for (int b = 0; b < batch; b++)
        stems[b] = (mg_wavernn_stem_t){g->notes, g->n_notes, g->cls, g->seed + (b == 3), g->stream,
                                       (size_t)g->T - (size_t)b * 7, audio + (size_t)b * g->T,
                                       q + (size_t)b * g->T, NULL};
    assert_int_equal(mg_wavernn_render(g->model, stems, batch, g->temperature, isa), 0);
    for (int b = 0; b < batch && b < 3; b++) {
        int first = -1;
        for (size_t t = 0; t < stems[b].n_samples && first < 0; t++)
            if (stems[b].q_out[t] != g->sampled[t]) first = (int)t;
        if (first >= 0)
            fprintf(stderr, "%s stream %d: sampled sequence differs from sample %d: got %d, reference %d\n",
                    isa ? "avx2" : "ref", b, first, stems[b].q_out[first], g->sampled[first]);
        assert_int_equal(first, -1);
        assert_int_equal(mg_test_compare("audio", stems[b].out, g->audio, stems[b].n_samples, AUDIO_ATOL, 0), 0);
    }
    if (batch == 4) {     /* another seed: another sequence */
        int same = 0;
        for (int t = 0; t < 100; t++) same += stems[3].q_out[t] == g->sampled[t];
        assert_true(same < 50);
    }
    free(audio);
    free(q);
}

static void test_sampling_reproduces_reference(void **state)
{
    s_sampling(*state, MG_WR_ISA_REF, 1);
    s_sampling(*state, MG_WR_ISA_REF, 4);
}

static void test_avx2_sampling_reproduces_reference(void **state)
{
    mg_test_golden_t *g = *state;
    if (mg_wavernn_isa() != MG_WR_ISA_AVX2 || !g->model->pk_exc) skip();
    s_sampling(g, MG_WR_ISA_AVX2, 1);
    s_sampling(g, MG_WR_ISA_AVX2, 4);
}

/* Threads over the batch: the same output whatever the grouping. */
static void test_threads_match_single_thread(void **state)
{
    mg_test_golden_t *g = *state;
    enum { B = 5 };
    mg_wavernn_stem_t a[B], b[B];
    float *audio = malloc(sizeof(float) * (size_t)g->T * 2 * B);
    for (int i = 0; i < B; i++) {
        a[i] = (mg_wavernn_stem_t){g->notes, g->n_notes, i % MG_WR_N_CLASSES, g->seed, (uint64_t)i,
                                   (size_t)g->T, audio + (size_t)i * g->T, NULL, NULL};
        b[i] = a[i];
        b[i].out = audio + (size_t)(B + i) * g->T;
    }
    assert_int_equal(mg_wavernn_render_threads(g->model, a, B, 1.0f, mg_wavernn_isa(), 1), 0);
    assert_int_equal(mg_wavernn_render_threads(g->model, b, B, 1.0f, mg_wavernn_isa(), 3), 0);
    assert_memory_equal(audio, audio + (size_t)B * g->T, sizeof(float) * (size_t)g->T * B);
    free(audio);
}

/* The AVX2 step's sums do not depend on the batch: each stream's logits from a batch of 5 equal,
 * bit for bit, those of the same stream stepped alone (so a render does not depend on how its
 * stems are grouped into batches or threads). */
static void test_avx2_batch_independent(void **state)
{
    mg_test_golden_t *g = *state;
    const mg_wavernn_model_t *m = g->model;
    if (mg_wavernn_isa() != MG_WR_ISA_AVX2 || !m->pk_exc) skip();
    enum { B = 5, STEPS = 40 };
    mg_wavernn_state_t *sb[B], *s1[1];
    float in[B * MG_WR_IN_DIM], lb[B * MG_WR_LEVELS], l1[MG_WR_LEVELS];
    int q[B];
    /* stream k reads the fixture from sample 7k on */
    for (int b = 0; b < B; b++) {
        assert_non_null(sb[b] = mg_wavernn_state_new(m));
        mg_wavernn_frame_ref(m, sb[b], g->cond);
    }
    for (int t = 0; t < STEPS; t++) {
        for (int k = 0; k < B; k++) {
            memcpy(in + k * MG_WR_IN_DIM, g->exc + (size_t)(t + 7 * k) * MG_WR_EXC_DIM,
                   sizeof(float) * MG_WR_EXC_DIM);
            in[k * MG_WR_IN_DIM + MG_WR_EXC_DIM] = mg_wavernn_compand(g->pred[t + 7 * k]);
            q[k] = g->q_in[t + 7 * k];
        }
        mg_wavernn_step_avx2(m, sb, B, q, in, lb);
    }
    for (int b = 0; b < B; b++) {
        assert_non_null(s1[0] = mg_wavernn_state_new(m));
        mg_wavernn_frame_ref(m, s1[0], g->cond);
        for (int t = 0; t < STEPS; t++) {
            memcpy(in, g->exc + (size_t)(t + 7 * b) * MG_WR_EXC_DIM, sizeof(float) * MG_WR_EXC_DIM);
            in[MG_WR_EXC_DIM] = mg_wavernn_compand(g->pred[t + 7 * b]);
            mg_wavernn_step_avx2(m, s1, 1, &g->q_in[t + 7 * b], in, l1);
        }
        mg_wavernn_state_destroy(&s1[0]);
        assert_memory_equal(l1, lb + b * MG_WR_LEVELS, sizeof l1);
    }
    for (int b = 0; b < B; b++) mg_wavernn_state_destroy(&sb[b]);
}

static void test_model_metadata(void **state)
{
    mg_test_golden_t *g = *state;
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

/* The committed default model stays loadable by this runtime and carries its metadata. */
static void test_default_model_loads(void **state)
{
    char err[512];
    mg_wavernn_model_t *m = NULL;
    if (mg_wavernn_load(mg_test_path("models/default/mg-wavernn.mgnn"), &m, err, sizeof err) != 0)
        fprintf(stderr, "%s\n", err);
    assert_non_null(m);
    assert_string_equal(m->name, "mg-wavernn-default");
    assert_int_equal(m->hidden, 64);
    assert_non_null(strstr(m->attribution, "Frank Wen"));
    assert_non_null(strstr(m->license, "MIT"));
    assert_non_null(mg_nn_file_meta(m->file, "training"));
    /* a short render through the path this CPU uses: finite and bounded */
    mg_wavernn_note_t note = {0, 2400, 60, 100};
    float out[2400];
    mg_wavernn_stem_t stem = {&note, 1, 0, 7, 0, 2400, out, NULL, NULL};
    assert_int_equal(mg_wavernn_render(m, &stem, 1, 1.0f, mg_wavernn_isa()), 0);
    for (int t = 0; t < 2400; t++) assert_true(out[t] > -8.0f && out[t] < 8.0f);
    mg_wavernn_destroy(&m);
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

/* The byte offset of tensor name's data inside the file image (b, len). */
static size_t s_tensor_offset(const unsigned char *b, size_t len, const char *name)
{
    mg_nn_file_t *f = NULL;
    char err[512];
    assert_int_equal(mg_nn_file_parse(b, len, "tiny.mgnn", &f, err, sizeof err), 0);
    size_t off = (size_t)((const unsigned char *)mg_nn_file_tensor(f, name)->data - f->buf);
    mg_nn_file_destroy(&f);
    return off;
}

static void test_loader_rejects_bad_files(void **state)
{
    size_t len;
    unsigned char *orig = s_read(mg_test_path("tests/data/model/tiny.mgnn"), &len);
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

    /* a tuning table value out of range */
    memcpy(b, orig, len);
    const float bad_cents = 250.0f, hot = 5.0f;
    memcpy(b + s_tensor_offset(orig, len, "tuning") + 4 * 130, &bad_cents, 4);
    s_fix_crc(b, len);
    s_expect_reject(b, len, "tuning[1][2] is 250 cents");

    /* a class temperature out of range */
    memcpy(b, orig, len);
    memcpy(b + s_tensor_offset(orig, len, "class_temperature") + 4 * 3, &hot, 4);
    s_fix_crc(b, len);
    s_expect_reject(b, len, "class_temperature[3] is 5");

    /* a dimension that disagrees with the byte count */
    memcpy(b, orig, len);
    p = s_find(b, len, "out2.bias") + strlen("out2.bias") + 8;
    p[0] = 255;                                    /* 256 -> 511 elements */
    s_fix_crc(b, len);
    s_expect_reject(b, len, "tensor 'out2.bias' says 1024 bytes; its shape needs 2044");

    /* dimensions whose product would wrap a 64-bit count */
    memcpy(b, orig, len);
    p = s_find(b, len, "out2.weight") + strlen("out2.weight") + 8;
    memset(p, 0xff, 8);
    s_fix_crc(b, len);
    s_expect_reject(b, len, "tensor 'out2.weight' has more than 2^40 elements");

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

/* 1,000 random header mutations with a valid checksum: every one loads or fails cleanly (run
 * under the sanitizers by `make SAN=address,undefined test`). */
static void test_loader_survives_mutations(void **state)
{
    size_t len;
    unsigned char *orig = s_read(mg_test_path("tests/data/model/tiny.mgnn"), &len);
    unsigned char *b = malloc(len);
    const mg_nn_tensor_t *first = NULL;
    mg_nn_file_t *f = NULL;
    char err[512];
    assert_int_equal(mg_nn_file_parse(orig, len, "tiny.mgnn", &f, err, sizeof err), 0);
    first = &f->tensors[0];
    size_t header_len = (size_t)((const unsigned char *)first->data - f->buf);
    mg_nn_file_destroy(&f);
    uint32_t x = 12345;
    int loaded = 0;
    for (int i = 0; i < 1000; i++) {
        memcpy(b, orig, len);
        for (int k = 0; k < 1 + i % 3; k++) {
            x = x * 1664525u + 1013904223u;
            size_t at = (x >> 8) % header_len;
            x = x * 1664525u + 1013904223u;
            b[at] = (unsigned char)(x >> 24);
        }
        s_fix_crc(b, len);
        mg_wavernn_model_t *m = NULL;
        if (mg_nn_file_parse(b, len, "tiny.mgnn", &f, err, sizeof err) == 0 &&
            mg_wavernn_from_file(&f, &m, err, sizeof err) == 0) {
            loaded++;
            mg_wavernn_destroy(&m);
        }
        assert_null(f);
    }
    fprintf(stderr, "mutations: %d of 1000 still load (padding or metadata text changed)\n", loaded);
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
        cmocka_unit_test(test_avx2_matches_reference),
        cmocka_unit_test(test_avx2_sampling_reproduces_reference),
        cmocka_unit_test(test_threads_match_single_thread),
        cmocka_unit_test(test_avx2_batch_independent),
        cmocka_unit_test(test_model_metadata),
        cmocka_unit_test(test_default_model_loads),
        cmocka_unit_test(test_loader_rejects_bad_files),
        cmocka_unit_test(test_loader_survives_mutations),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
