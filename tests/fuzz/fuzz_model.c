/* fuzz_model.c - MGNN model files (kernels/model_file.c) from memory, because a model file is
 * untrusted input (a worker loads what it is pointed at). Each input is parsed twice: as given,
 * and with its last 4 bytes replaced by the right CRC-32, so mutations reach the checks behind
 * the checksum. A file that also passes as a WaveRNN (kernels/wavernn.c, mg_wavernn_from_file)
 * renders one frame with the scalar reference and the path this CPU runs, whatever its weights hold (NaN, inf, huge).
 */
#include <string.h>

#include "kernels/model_file.h"
#include "kernels/wavernn.h"
#include "tests/fuzz/fuzz.h"

MG_FUZZ_TARGET("model");

static void s_render_one_frame(const mg_wavernn_model_t *m)
{
    mg_wavernn_note_t note = {.on = 10, .off = MG_WR_FRAME + 10, .pitch = 60, .velocity = 100};
    float out[MG_WR_FRAME];
    int32_t q[MG_WR_FRAME];
    mg_wavernn_stem_t st = {.notes = &note, .n_notes = 1, .cls = 0, .seed = 1, .stream = 2,
                            .n_samples = MG_WR_FRAME, .out = out, .q_out = q};
    int isas[2] = {MG_WR_ISA_REF, mg_wavernn_isa()};
    for (int k = 0; k < (isas[1] == MG_WR_ISA_REF ? 1 : 2); k++) {
        MG_FUZZ_CHECK(mg_wavernn_render(m, &st, 1, 1.0f, isas[k]) == 0);
        for (int i = 0; i < MG_WR_FRAME; i++) MG_FUZZ_CHECK(q[i] >= 0 && q[i] < MG_WR_LEVELS);
    }
}

static void s_one(const uint8_t *data, size_t size)
{
    static char err[1024];
    mg_nn_file_t *f = NULL;
    if (mg_nn_file_parse(data, size, "fuzz.mgnn", &f, err, sizeof err) != 0) {
        MG_FUZZ_CHECK(!f && strncmp(err, "fuzz.mgnn: ", 11) == 0);
        return;
    }
    for (int i = 0; i < f->n_tensors; i++) {
        const mg_nn_tensor_t *t = &f->tensors[i];
        MG_FUZZ_CHECK(mg_nn_file_tensor(f, t->name) == t);
        MG_FUZZ_CHECK((const unsigned char *)t->data >= f->buf &&
                      (const unsigned char *)t->data + 4 * t->count <= f->buf + f->size - 4);
        volatile float sum = 0; /* every element is readable (ASan checks the bounds) */
        const unsigned char *p = t->data;
        for (int64_t k = 0; k < t->count; k += 97) sum += (float)p[4 * k];
        (void)sum;
        int64_t dims[4] = {-1, -1, -1, -1};
        MG_FUZZ_CHECK(mg_nn_file_expect(f, t->name, t->dtype, t->ndim, dims, err, sizeof err) == t);
        dims[0] = 3;
        (void)mg_nn_file_expect(f, t->name, t->dtype, t->ndim, dims, err, sizeof err);
        (void)mg_nn_file_expect(f, t->name, MG_NN_I32, 4, dims, err, sizeof err);
    }
    for (int i = 0; i < f->n_hparams; i++) MG_FUZZ_CHECK(mg_nn_file_hparam(f, f->hparams[i].name) == &f->hparams[i]);
    for (int i = 0; i < f->n_meta; i++) MG_FUZZ_CHECK(mg_nn_file_meta(f, f->meta[i].key) == f->meta[i].value);
    MG_FUZZ_CHECK(!mg_nn_file_expect(f, "no such tensor", MG_NN_F32, 1, (int64_t[]){1}, err, sizeof err));

    mg_wavernn_model_t *m = NULL;
    if (mg_wavernn_from_file(&f, &m, err, sizeof err) == 0) {
        s_render_one_frame(m);
        mg_wavernn_destroy(&m);
    }
    MG_FUZZ_CHECK(!f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_one(data, size);
    if (size < 8) return 0;
    uint8_t *fixed = malloc(size);
    MG_FUZZ_CHECK(fixed);
    memcpy(fixed, data, size);
    uint32_t crc = mg_crc32(0, fixed, size - 4);
    for (int i = 0; i < 4; i++) fixed[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    if (memcmp(fixed, data, size) != 0) s_one(fixed, size);
    free(fixed);
    return 0;
}
