/* wavernn_avx2.c - the optimised CPU path of the WaveRNN step (AVX2 + FMA, chosen at run time by
 * mg_wavernn_isa()): the same arithmetic as wavernn_ref.c on a batch of streams, with weights
 * repacked at load time into 16-row panels so that each weight load feeds one FMA per stream.
 * Tested against the reference and the PyTorch fixture in tests/test_model.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "wavernn.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MG_HAVE_X86 1
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#endif

int mg_wavernn_isa(void)
{
#ifdef MG_HAVE_X86
    static int isa = -1;
    if (isa < 0) {
        const char *force = getenv("MG_WAVERNN_ISA");
        __builtin_cpu_init();
        int have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        isa = have && !(force && !strcmp(force, "ref")) ? MG_WR_ISA_AVX2 : MG_WR_ISA_REF;
    }
    return isa;
#else
    return MG_WR_ISA_REF;
#endif
}

/* Packs w (rows, cols) row-major into panels of 16 rows: dst[(r/16)*cols*16 + c*16 + r%16]. */
void mg_wavernn_pack16(float *dst, const float *w, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)(r / 16) * cols * 16 + (size_t)c * 16 + r % 16] = w[(size_t)r * cols + c];
}

#ifdef MG_HAVE_X86

/* exp(x) for x in [-87, 88] (Cephes expf polynomial; relative error ~2e-7). */
AVX2_INLINE __m256 s_exp(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AVX2_INLINE __m256 s_sigmoid(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, s_exp(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

AVX2_INLINE __m256 s_tanh(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), s_sigmoid(_mm256_add_ps(x, x))), one);
}

/* y[b] (= or +=) pk @ x[b] (+ bias) for B streams; pk packed by mg_wavernn_pack16, rows % 16 == 0.
 * One panel's two weight vectors feed 2*B accumulators; B <= 2 also splits the columns in two
 * halves (even and odd) so that at least four FMA chains are in flight. B is a constant at every
 * call site and the b loops are unrolled, so the accumulators live in registers (not on the
 * stack). s_gemv_n calls it with B = 1 or 2 only. */
AVX2_INLINE void s_gemv(const float *pk, int rows, int cols, const float *const *x, float *const *y,
                        const float *bias, int accumulate, const int B)
{
    for (int rb = 0; rb < rows / 16; rb++) {
        const float *p = pk + (size_t)rb * cols * 16;
        __m256 a0[4], a1[4], c0[4], c1[4];
#pragma GCC unroll 4
        for (int b = 0; b < B; b++) {
            a0[b] = bias ? _mm256_loadu_ps(bias + rb * 16) : _mm256_setzero_ps();
            a1[b] = bias ? _mm256_loadu_ps(bias + rb * 16 + 8) : _mm256_setzero_ps();
            c0[b] = c1[b] = _mm256_setzero_ps();
        }
        int c = 0;
        if (B <= 2) {
            for (; c + 1 < cols; c += 2) {
                __m256 w0 = _mm256_load_ps(p + c * 16), w1 = _mm256_load_ps(p + c * 16 + 8);
                __m256 v0 = _mm256_load_ps(p + c * 16 + 16), v1 = _mm256_load_ps(p + c * 16 + 24);
        #pragma GCC unroll 4
        for (int b = 0; b < B; b++) {
                    __m256 xb = _mm256_broadcast_ss(x[b] + c), xc = _mm256_broadcast_ss(x[b] + c + 1);
                    a0[b] = _mm256_fmadd_ps(w0, xb, a0[b]);
                    a1[b] = _mm256_fmadd_ps(w1, xb, a1[b]);
                    c0[b] = _mm256_fmadd_ps(v0, xc, c0[b]);
                    c1[b] = _mm256_fmadd_ps(v1, xc, c1[b]);
                }
            }
        }
        for (; c < cols; c++) {
            __m256 w0 = _mm256_load_ps(p + c * 16), w1 = _mm256_load_ps(p + c * 16 + 8);
    #pragma GCC unroll 4
        for (int b = 0; b < B; b++) {
                __m256 xb = _mm256_broadcast_ss(x[b] + c);
                a0[b] = _mm256_fmadd_ps(w0, xb, a0[b]);
                a1[b] = _mm256_fmadd_ps(w1, xb, a1[b]);
            }
        }
#pragma GCC unroll 4
        for (int b = 0; b < B; b++) {
            float *yb = y[b] + rb * 16;
            __m256 r0 = _mm256_add_ps(a0[b], c0[b]), r1 = _mm256_add_ps(a1[b], c1[b]);
            if (accumulate) {
                r0 = _mm256_add_ps(r0, _mm256_loadu_ps(yb));
                r1 = _mm256_add_ps(r1, _mm256_loadu_ps(yb + 8));
            }
            _mm256_storeu_ps(yb, r0);
            _mm256_storeu_ps(yb + 8, r1);
        }
    }
}

/* Streams in pairs: B = 1 and B = 2 both take the column-split path, so every stream's sums are
 * formed in the same order whatever the batch size and however a batch is split over threads
 * (output must not depend on the grouping: a render is reproducible from its seed alone). */
static AVX2 void s_gemv_n(const float *pk, int rows, int cols, const float *const *x,
                          float *const *y, const float *bias, int accumulate, int n)
{
    int i = 0;
    for (; i + 1 < n; i += 2) s_gemv(pk, rows, cols, x + i, y + i, bias, accumulate, 2);
    if (i < n) s_gemv(pk, rows, cols, x + i, y + i, bias, accumulate, 1);
}

AVX2 void mg_wavernn_step_avx2(const mg_wavernn_model_t *m, mg_wavernn_state_t *const *s, int n,
                               const int *q_prev, const float *in, float *logits)
{
    const int H = m->hidden, G = 3 * H, O = m->out_hidden, L = MG_WR_LEVELS;
    if (n < 1 || n > MG_WR_MAX_BATCH) return;
    const float *xs[MG_WR_MAX_BATCH], *hs[MG_WR_MAX_BATCH], *os_[MG_WR_MAX_BATCH];
    float *gi[MG_WR_MAX_BATCH], *gh[MG_WR_MAX_BATCH], *o[MG_WR_MAX_BATCH], *lg[MG_WR_MAX_BATCH];
    for (int b = 0; b < n; b++) {
        xs[b] = in + (size_t)b * MG_WR_IN_DIM;
        gi[b] = s[b]->scratch;
        gh[b] = s[b]->scratch + G;
        o[b] = s[b]->scratch + 2 * G;
        hs[b] = s[b]->h;
        os_[b] = o[b];
        lg[b] = logits + (size_t)b * L;
    }
    s_gemv_n(m->pk_exc, G, MG_WR_IN_DIM, xs, gi, NULL, 0, n);
    s_gemv_n(m->pk_hh, G, H, hs, gh, m->b_hh, 0, n);
    for (int b = 0; b < n; b++) {
        const float *emb = m->emb_gates + (size_t)q_prev[b] * G, *gx = s[b]->gx;
        float *h = s[b]->h, *a = gi[b], *r = gh[b];
        for (int i = 0; i < H; i += 8) {
            __m256 xr = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(gx + i)),
                                      _mm256_loadu_ps(emb + i));
            __m256 xz = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(a + H + i), _mm256_loadu_ps(gx + H + i)),
                                      _mm256_loadu_ps(emb + H + i));
            __m256 xn = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(a + 2 * H + i),
                                                    _mm256_loadu_ps(gx + 2 * H + i)),
                                      _mm256_loadu_ps(emb + 2 * H + i));
            __m256 rr = s_sigmoid(_mm256_add_ps(xr, _mm256_loadu_ps(r + i)));
            __m256 zz = s_sigmoid(_mm256_add_ps(xz, _mm256_loadu_ps(r + H + i)));
            __m256 nn = s_tanh(_mm256_fmadd_ps(rr, _mm256_loadu_ps(r + 2 * H + i), xn));
            __m256 hv = _mm256_loadu_ps(h + i);
            _mm256_storeu_ps(h + i, _mm256_fmadd_ps(zz, _mm256_sub_ps(hv, nn), nn));   /* (1-z)n + zh */
        }
    }
    s_gemv_n(m->pk_out1, O, H, hs, o, m->out1_b, 0, n);
    for (int b = 0; b < n; b++)
        for (int i = 0; i < O; i += 8)
            _mm256_storeu_ps(o[b] + i, _mm256_max_ps(_mm256_loadu_ps(o[b] + i), _mm256_setzero_ps()));
    s_gemv_n(m->pk_out2, L, O, os_, lg, m->out2_b, 0, n);
}

AVX2 int mg_wavernn_sample_avx2(const float *logits, float temperature, uint32_t u)
{
    const int L = MG_WR_LEVELS;
    __m256 mx = _mm256_loadu_ps(logits);
    for (int i = 8; i < L; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(logits + i));
    float t8[8];
    _mm256_storeu_ps(t8, mx);
    float m = t8[0];
    for (int i = 1; i < 8; i++) m = t8[i] > m ? t8[i] : m;
    const __m256 vm = _mm256_set1_ps(m), vt = _mm256_set1_ps(1.0f / temperature);
    float p[MG_WR_LEVELS] __attribute__((aligned(32)));
    double block[MG_WR_LEVELS / 8], total = 0.0;
    for (int i = 0; i < L; i += 8) {
        __m256 e = s_exp(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(logits + i), vm), vt));
        _mm256_store_ps(p + i, e);
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(e), _mm256_extractf128_ps(e, 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_shuffle_ps(s4, s4, 1));
        block[i / 8] = _mm_cvtss_f32(s4);
        total += block[i / 8];
    }
    const double target = ((double)u + 0.5) / 4294967296.0 * total;
    double cum = 0.0;
    for (int k = 0; k < L / 8; k++) {
        if (cum + block[k] > target) {
            for (int i = k * 8; i < k * 8 + 8; i++) {
                cum += p[i];
                if (cum > target) return i;
            }
            return k * 8 + 7;     /* float rounding inside the block: its last level */
        }
        cum += block[k];
    }
    return L - 1;
}

#else

void mg_wavernn_step_avx2(const mg_wavernn_model_t *m, mg_wavernn_state_t *const *s, int n,
                          const int *q_prev, const float *in, float *logits)
{
    for (int b = 0; b < n; b++)
        mg_wavernn_step_ref(m, s[b], q_prev[b], in + (size_t)b * MG_WR_IN_DIM,
                            logits + (size_t)b * MG_WR_LEVELS);
}

int mg_wavernn_sample_avx2(const float *logits, float temperature, uint32_t u)
{
    return mg_wavernn_sample(logits, MG_WR_LEVELS, temperature, u);
}

#endif
