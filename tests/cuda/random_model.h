/* random_model.h - a WaveRNN of the default model's sizes (H = FH = O = VH = 64, E = 32, VE = 8)
 * with random weights, written as MGNN bytes (kernels/model_file.h) and loaded through the normal
 * loader. For tests/cuda/test_cuda.c (the kernels' production instantiation is tested even while
 * the committed default model is being re-exported) and bench/cuda/cuda_bench.cu (speed does not
 * depend on the weights). Header-only: both are built without a library of test helpers.
 */
#ifndef MG_TEST_RANDOM_MODEL_H
#define MG_TEST_RANDOM_MODEL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/model_file.h"
#include "kernels/wavernn.h"

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int oom;
} mg_rm_buf_t;

static void mg_rm_put(mg_rm_buf_t *b, const void *v, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        unsigned char *p = (unsigned char *)realloc(b->p, (b->n + n) * 2);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = (b->n + n) * 2;
    }
    memcpy(b->p + b->n, v, n);
    b->n += n;
}
static void mg_rm_u32(mg_rm_buf_t *b, uint32_t v) { mg_rm_put(b, &v, 4); }
static void mg_rm_str(mg_rm_buf_t *b, const char *s)
{
    mg_rm_u32(b, (uint32_t)strlen(s));
    mg_rm_put(b, s, strlen(s));
}

/* The model for seed (the same seed gives the same weights), owned by the caller; NULL with a
 * message in err on failure. Weights uniform with a scale per tensor that keeps the GRU and the
 * head out of saturation and the draws spread over many levels. */
static mg_wavernn_model_t *mg_test_random_model(uint64_t seed, char *err, size_t errlen)
{
    enum { H = 64, E = 32, FH = 64, O = 64, VH = 64, VE = 8, G = 3 * H, NT = 22 };
    static const struct { const char *name; int32_t v; } hi[] = {
        {"sample_rate", MG_WR_SR}, {"frame", MG_WR_FRAME}, {"voices", MG_WR_VOICES},
        {"harmonics", MG_WR_HARMONICS}, {"tail", MG_WR_TAIL}, {"n_classes", MG_WR_N_CLASSES},
        {"levels", MG_WR_LEVELS}, {"cond_dim", MG_WR_COND_DIM}, {"exc_dim", MG_WR_EXC_DIM},
        {"pred_harmonics", MG_WR_PRED_HARMONICS}, {"voice_dim", MG_WR_VOICE_DIM}, {"hidden", H},
        {"embed", E}, {"frame_hidden", FH}, {"out_hidden", O}, {"voice_hidden", VH}, {"voice_embed", VE}};
    static const struct { const char *name; float v; } hf[] = {
        {"preemph", (float)MG_WR_PREEMPH}, {"onset_decay", (float)MG_WR_ONSET_DECAY},
        {"att_s", (float)MG_WR_ATT_S}, {"dec_s", (float)MG_WR_DEC_S}, {"rel_s", (float)MG_WR_REL_S},
        {"pred_max_hz", (float)MG_WR_PRED_MAX_HZ}};
    /* name, rows, cols (0: 1-D), scale, offset */
    static const struct { const char *name; int d0, d1; float scale, offset; } ts[NT] = {
        {"voice_emb.weight", MG_WR_N_CLASSES * 128, VE, 1.0f, 0},
        {"voice1.weight", VH, MG_WR_VOICE_DIM + VE, 0.2f, 0}, {"voice1.bias", VH, 0, 0.1f, 0},
        {"voice2.weight", VH, VH, 0.125f, 0}, {"voice2.bias", VH, 0, 0.1f, 0},
        {"voice3.weight", MG_WR_PRED_DIM, VH, 0.125f, 0}, {"voice3.bias", MG_WR_PRED_DIM, 0, 0.5f, -3.0f},
        {"tuning", MG_WR_N_CLASSES, 128, 30.0f, 0}, {"class_temperature", MG_WR_N_CLASSES, 0, 0.3f, 0.8f},
        {"frame1.weight", FH, MG_WR_COND_DIM, 0.17f, 0}, {"frame1.bias", FH, 0, 0.1f, 0},
        {"frame2.weight", FH, FH, 0.125f, 0}, {"frame2.bias", FH, 0, 0.1f, 0},
        {"embed.weight", MG_WR_LEVELS, E, 1.0f, 0},
        {"gru.weight_ih_l0", G, E + MG_WR_IN_DIM + FH, 0.09f, 0}, {"gru.bias_ih_l0", G, 0, 0.1f, 0},
        {"gru.weight_hh_l0", G, H, 0.125f, 0}, {"gru.bias_hh_l0", G, 0, 0.1f, 0},
        {"out1.weight", O, H, 0.2f, 0}, {"out1.bias", O, 0, 0.1f, 0},
        {"out2.weight", MG_WR_LEVELS, O, 0.5f, 0}, {"out2.bias", MG_WR_LEVELS, 0, 0.5f, 0}};
    mg_rm_buf_t b = {NULL, 0, 0, 0};
    mg_rm_put(&b, "MGNN", 4);
    mg_rm_u32(&b, 1);
    mg_rm_u32(&b, (uint32_t)(sizeof hi / sizeof hi[0] + sizeof hf / sizeof hf[0]));
    for (size_t i = 0; i < sizeof hi / sizeof hi[0]; i++) {
        mg_rm_str(&b, hi[i].name);
        mg_rm_u32(&b, MG_NN_I32);
        mg_rm_put(&b, &hi[i].v, 4);
    }
    for (size_t i = 0; i < sizeof hf / sizeof hf[0]; i++) {
        mg_rm_str(&b, hf[i].name);
        mg_rm_u32(&b, MG_NN_F32);
        mg_rm_put(&b, &hf[i].v, 4);
    }
    char pm[129 * 4];
    size_t k = 0;
    for (int i = 0; i < 129; i++)   /* programs spread over the pitched classes; 128: drums */
        k += (size_t)snprintf(pm + k, sizeof pm - k, i < 128 ? "%d," : "%d", i == 128 ? 6 : (i / 8) % 6);
    const char *meta[5][2] = {{"name", "random-h64"}, {"version", "0"}, {"license", "MIT"},
                              {"attribution", "random weights (tests/cuda/random_model.h)"},
                              {"program_map", pm}};
    mg_rm_u32(&b, 5);
    for (int i = 0; i < 5; i++) {
        mg_rm_str(&b, meta[i][0]);
        mg_rm_str(&b, meta[i][1]);
    }
    mg_rm_u32(&b, NT);
    size_t at[NT];
    for (int i = 0; i < NT; i++) {
        const uint64_t zero = 0;
        mg_rm_str(&b, ts[i].name);
        mg_rm_u32(&b, MG_NN_F32);
        mg_rm_u32(&b, ts[i].d1 ? 2 : 1);
        mg_rm_u32(&b, (uint32_t)ts[i].d0);
        if (ts[i].d1) mg_rm_u32(&b, (uint32_t)ts[i].d1);
        at[i] = b.n;   /* offset and size, filled below */
        mg_rm_put(&b, &zero, 8);
        mg_rm_put(&b, &zero, 8);
    }
    uint64_t x = seed * 2654435761u + 1;
    for (int i = 0; i < NT && !b.oom; i++) {
        const uint64_t count = (uint64_t)ts[i].d0 * (ts[i].d1 ? ts[i].d1 : 1);
        const uint64_t off = (b.n + MG_NN_ALIGN - 1) / MG_NN_ALIGN * MG_NN_ALIGN, nb = count * 4;
        memcpy(b.p + at[i], &off, 8);
        memcpy(b.p + at[i] + 8, &nb, 8);
        while (b.n < off && !b.oom) mg_rm_put(&b, "", 1);
        for (uint64_t j = 0; j < count; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            float v = ts[i].offset + ts[i].scale * (float)((double)(x >> 11) / 4503599627370496.0 - 1.0);
            mg_rm_put(&b, &v, 4);
        }
    }
    if (b.oom) {
        free(b.p);
        snprintf(err, errlen, "random model: out of memory");
        return NULL;
    }
    mg_rm_u32(&b, mg_crc32(0, b.p, b.n));
    mg_nn_file_t *f = NULL;
    mg_wavernn_model_t *m = NULL;
    if (mg_nn_file_parse(b.p, b.n, "random-h64.mgnn", &f, err, errlen) == 0)
        mg_wavernn_from_file(&f, &m, err, errlen);
    free(b.p);
    return m;
}

#endif
