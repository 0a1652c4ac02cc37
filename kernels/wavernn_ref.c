/* wavernn_ref.c - the scalar reference of the WaveRNN network (model.py): the frame MLP and one
 * GRU + softmax-head step. Plain C, no processor-specific code: it is what the optimised paths
 * (wavernn_avx2.c, later CUDA) are tested against, and it is tested against PyTorch.
 */
#include <math.h>

#include "wavernn.h"

static float s_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* y[r] = b[r] + sum_c w[r][c] * x[c], w (rows, cols) row-major. */
static void s_matvec(float *y, const float *w, const float *b, const float *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (size_t)r * cols;
        float acc = b ? b[r] : 0.0f;
        for (int c = 0; c < cols; c++) acc += wr[c] * x[c];
        y[r] = acc;
    }
}

void mg_wavernn_frame_ref(const mg_wavernn_model_t *m, mg_wavernn_state_t *s, const float *cond)
{
    const int FH = m->frame_hidden, G = 3 * m->hidden;
    float *a = s->scratch;                                   /* (FH) */
    s_matvec(a, m->frame1_w, m->frame1_b, cond, FH, MG_WR_COND_DIM);
    for (int i = 0; i < FH; i++) a[i] = tanhf(a[i]);
    s_matvec(s->fv, m->frame2_w, m->frame2_b, a, FH, FH);
    for (int i = 0; i < FH; i++) s->fv[i] = tanhf(s->fv[i]);
    s_matvec(s->gx, m->w_fv, m->b_ih, s->fv, G, FH);
}

void mg_wavernn_step_ref(const mg_wavernn_model_t *m, mg_wavernn_state_t *s, int q_prev,
                         const float *exc, float *logits)
{
    const int H = m->hidden, G = 3 * H, O = m->out_hidden;
    float *gi = s->scratch;          /* (3H) input part of the gates */
    float *gh = s->scratch + G;      /* (3H) recurrent part */
    float *o = s->scratch + 2 * G;   /* (O) */
    const float *emb = m->emb_gates + (size_t)q_prev * G;
    s_matvec(gi, m->w_exc, NULL, exc, G, MG_WR_EXC_DIM);
    for (int i = 0; i < G; i++) gi[i] += s->gx[i] + emb[i];
    s_matvec(gh, m->w_hh, m->b_hh, s->h, G, H);
    for (int i = 0; i < H; i++) {
        float r = s_sigmoid(gi[i] + gh[i]);
        float z = s_sigmoid(gi[H + i] + gh[H + i]);
        float n = tanhf(gi[2 * H + i] + r * gh[2 * H + i]);
        s->h[i] = (1.0f - z) * n + z * s->h[i];
    }
    s_matvec(o, m->out1_w, m->out1_b, s->h, O, H);
    for (int i = 0; i < O; i++) o[i] = o[i] > 0.0f ? o[i] : 0.0f;
    s_matvec(logits, m->out2_w, m->out2_b, o, MG_WR_LEVELS, O);
}
