/* wavernn_ref.c - the scalar reference of the WaveRNN network (model.py): the frame MLP, the
 * harmonic predictor's voice network, and one GRU + softmax-head step. Plain C, no processor-specific code: it is what the optimised paths
 * (wavernn_avx2.c, kernels/cuda/) are tested against, and it is tested against PyTorch.
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

void mg_wavernn_voice_ref(const mg_wavernn_model_t *m, mg_wavernn_state_t *s, const float *vin,
                          const int32_t emb[MG_WR_VOICES])
{
    const int VH = m->voice_hidden, VE = m->voice_embed, VD = MG_WR_VOICE_DIM, PD = MG_WR_PRED_DIM;
    float *x = s->vscratch, *a = x + VD + VE, *b = a + VH;
    for (int v = 0; v < MG_WR_VOICES; v++)
        for (int e = 0; e < 2; e++) {
            float *c = s->coef + (v * 2 + e) * PD;
            if (emb[v] < 0) {
                for (int j = 0; j < PD; j++) c[j] = 0.0f;
                continue;
            }
            for (int i = 0; i < VD; i++) x[i] = vin[(v * 2 + e) * VD + i];
            for (int i = 0; i < VE; i++) x[VD + i] = m->voice_emb[(size_t)emb[v] * VE + i];
            s_matvec(a, m->voice1_w, m->voice1_b, x, VH, VD + VE);
            for (int i = 0; i < VH; i++) a[i] = tanhf(a[i]);
            s_matvec(b, m->voice2_w, m->voice2_b, a, VH, VH);
            for (int i = 0; i < VH; i++) b[i] = tanhf(b[i]);
            s_matvec(c, m->voice3_w, m->voice3_b, b, PD, VH);
            for (int j = 0; j < PD; j++) c[j] = expf(c[j] < 20.0f ? c[j] : 20.0f);   /* log amplitudes */
        }
}

void mg_wavernn_step_ref(const mg_wavernn_model_t *m, mg_wavernn_state_t *s, int q_prev,
                         const float *in, float *logits)
{
    const int H = m->hidden, G = 3 * H, O = m->out_hidden;
    float *gi = s->scratch;          /* (3H) input part of the gates */
    float *gh = s->scratch + G;      /* (3H) recurrent part */
    float *o = s->scratch + 2 * G;   /* (O) */
    const float *emb = m->emb_gates + (size_t)q_prev * G;
    s_matvec(gi, m->w_exc, NULL, in, G, MG_WR_IN_DIM);
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
