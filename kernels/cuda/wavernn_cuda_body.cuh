/* wavernn_cuda_body.cuh - the arithmetic of the CUDA path as __host__ __device__ code: the
 * per-sample features (one call per stream and sample) and the sampling block program (one
 * thread block, a group of S streams, the whole autoregressive loop of a chunk). The device
 * kernels in wavernn_cuda.cu call these; mg_wavernn_cuda_emulate() calls the same functions on
 * the CPU, so the tests without a GPU exercise every index and every operation of the kernels.
 *
 * The block program is a sequence of phases separated by barriers. A phase is a lambda over the
 * thread index; the executor runs it (device: each thread its own index, then __syncthreads();
 * host: every index in turn, forwards or backwards). Rule that makes the emulation exact: nothing
 * survives from one phase to the next except in shared or global memory (no per-thread
 * registers carried across a barrier), and no thread reads in a phase what another writes in it.
 *
 * Per-stream arithmetic never depends on S, on the thread count or on which thread runs it (each
 * dot product is summed in one fixed order), so a stream renders the same alone or in a batch.
 */
#ifndef MG_WAVERNN_CUDA_BODY_CUH
#define MG_WAVERNN_CUDA_BODY_CUH

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define MG_HD __host__ __device__ __forceinline__
#else
#define MG_HD inline
#endif

/* unrolling: nvcc's pragma in device code (the host compiler unrolls these constant loops itself) */
#if defined(__CUDA_ARCH__)
#define MG_UNROLL _Pragma("unroll")
#else
#define MG_UNROLL
#endif

#define MG_CU_L 256          /* levels */
#define MG_CU_XP 32          /* per-sample row: 28 excitation, harmonic prediction h, 3 zeros */
#define MG_CU_HARM 28        /* index of h in the row */
#define MG_CU_GROUPS 32      /* softmax groups of 8 levels */
#define MG_CU_NT 512         /* threads per sampling block */
#define MG_CU_SLOTS 4
#define MG_CU_PD 16          /* predictor harmonics */

/* ---- arithmetic that must not be contracted (the file is compiled with --fmad=false too) ---- */
MG_HD float mg_fmul(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
MG_HD float mg_fadd(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
MG_HD float mg_fsub(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
MG_HD double mg_dmul(double a, double b)
{
#ifdef __CUDA_ARCH__
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}
MG_HD double mg_dadd(double a, double b)
{
#ifdef __CUDA_ARCH__
    return __dadd_rn(a, b);
#else
    return a + b;
#endif
}
MG_HD double mg_dsub(double a, double b)
{
#ifdef __CUDA_ARCH__
    return __dsub_rn(a, b);
#else
    return a - b;
#endif
}
template <class T> MG_HD T mg_ldg(const T *p)
{
#ifdef __CUDA_ARCH__
    return __ldg(p);
#else
    return *p;
#endif
}

/* Philox4x32-10 word 0 keyed as mg_philox_u32 (kernels/philox.h); a copy that the device can
 * call, checked against philox.c by mg_wavernn_cuda_selftest. */
MG_HD uint32_t mg_cu_philox_u32(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32), c2 = (uint32_t)stream,
             c3 = (uint32_t)(stream >> 32), k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        if (r) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    return c0;
}

/* mg_wavernn_mulaw_encode by table: thr[k] (k = 1..255) is the smallest float whose level is
 * >= k (built on the host from the CPU encoder itself), so the level is the count of thresholds
 * at or below x: the same level as the CPU for every float, with no log1p on the device. */
MG_HD int mg_cu_encode(const float *thr, float x)
{
    int lo = 0;
    for (int step = 128; step >= 1; step >>= 1)
        if (lo + step <= MG_CU_L - 1 && x >= thr[lo + step]) lo += step;
    return lo;
}

/* mg_wavernn_compand with log1pf(255) passed in (den, the host's value). */
MG_HD float mg_cu_compand(float p, float den)
{
    float a = log1pf(mg_fmul(255.0f, fabsf(p))) / den;
    return p > 0.0f ? a : p < 0.0f ? -a : 0.0f;
}

/* ---- per-sample features -------------------------------------------------------------------- */

/* A voice slot of one frame: the note's [on, end = off + TAIL) and tuned frequency (computed on
 * the host by mg_wavernn_note_hz); an empty slot has on > end. */
typedef struct {
    int64_t on, end;
    double hz;
} mg_cu_slot_t;

typedef struct {
    const mg_cu_slot_t *slots;   /* (B, CF, SLOTS) */
    const float *coef;           /* (B, CF, SLOTS, 2, PD) harmonic amplitudes at frame start/end */
    const int32_t *cls;          /* (B) */
    const int64_t *len;          /* (B) samples */
    float *feat;                 /* (B, CT, XP) out */
    int64_t t0;                  /* first sample of the chunk, a multiple of the frame */
    int CT, CF, B;
} mg_cu_feat_args_t;

/* Row tt of stream b: the excitation and the predictor's raw output h, as mg_wavernn_features +
 * mg_wavernn_harmonic compute them (same operations in the same order, double where they use
 * double, no contraction). Exact except where the device's exp/sin/cos (1-2 ulp in double) round
 * a value to another float than glibc does. */
MG_HD void mg_cu_features_one(const mg_cu_feat_args_t &a, int b, int tt)
{
    const int64_t t = a.t0 + tt;
    float *row = a.feat + ((size_t)b * a.CT + tt) * MG_CU_XP;
    if (t >= mg_ldg(&a.len[b])) return;
    const int f = tt / 120, i = tt % 120, cls = mg_ldg(&a.cls[b]);
    const float al = (float)i / (float)120;
    float exc[28];
    for (int k = 0; k < 28; k++) exc[k] = 0.0f;
    float acc = 0.0f;
    for (int v = 0; v < MG_CU_SLOTS; v++) {
        const mg_cu_slot_t *sl = &a.slots[((size_t)b * a.CF + f) * MG_CU_SLOTS + v];
        const int64_t on = mg_ldg(&sl->on), end = mg_ldg(&sl->end);
        float bas[MG_CU_PD];
        for (int k = 0; k < MG_CU_PD; k++) bas[k] = 0.0f;
        if (t >= on && t < end) {
            const double n = (double)(t - on);
            float *e = exc + v * 7;
            e[6] = (float)exp(-n / 240.0);
            if (cls != 6) {
                const double hz = mg_ldg(&sl->hz);
                double cyc = mg_dmul(hz, n) / 24000.0;
                cyc = mg_dsub(cyc, floor(cyc));
                const double x = mg_dmul(2 * M_PI, cyc);
                const double s1 = sin(x), c1 = cos(x);
                double sk = s1, ck = c1;
                for (int k = 1; k <= MG_CU_PD; k++) {
                    if (k <= 3) {
                        e[2 * (k - 1)] = (float)sk;
                        e[2 * (k - 1) + 1] = (float)ck;
                    }
                    if (mg_dmul((double)k, hz) < 10800.0) bas[k - 1] = (float)sk;
                    const double sn = mg_dadd(mg_dmul(sk, c1), mg_dmul(ck, s1));
                    const double cn = mg_dsub(mg_dmul(ck, c1), mg_dmul(sk, s1));
                    sk = sn;
                    ck = cn;
                }
            }
        }
        const float *c0 = a.coef + (((size_t)b * a.CF + f) * MG_CU_SLOTS + v) * 2 * MG_CU_PD;
        const float *c1 = c0 + MG_CU_PD;
        for (int j = 0; j < MG_CU_PD; j++) {
            const float x0 = mg_ldg(&c0[j]), x1 = mg_ldg(&c1[j]);
            acc = mg_fadd(acc, mg_fmul(mg_fadd(x0, mg_fmul(al, mg_fsub(x1, x0))), bas[j]));
        }
    }
    for (int k = 0; k < 28; k++) row[k] = exc[k];
    row[MG_CU_HARM] = acc;
    row[29] = row[30] = row[31] = 0.0f;
}

/* ---- the sampling block program ------------------------------------------------------------- */

/* Sizes and the shared-memory layout (in floats) for hidden size H and head size O. The weight
 * block is uploaded once in exactly this layout (mg_cu_pack_weights) and copied as is. Matrices
 * are stored transposed, wT[c * R + r], so that the threads of a warp, one row each, read
 * consecutive words (no bank conflicts) while the input x[c] is one broadcast. */
template <int H_, int O_> struct mg_cu_dims {
    static constexpr int H = H_, O = O_, G = 3 * H_, L = MG_CU_L, XP = MG_CU_XP;
    static constexpr int W_HH = 0;              /* (H, G)  w_hh^T */
    static constexpr int W_EX = W_HH + H * G;   /* (XP, G) w_exc^T, rows 29..31 zero */
    static constexpr int W_1 = W_EX + XP * G;   /* (H, O)  out1^T */
    static constexpr int W_2 = W_1 + H * O;     /* (O, L)  out2^T */
    static constexpr int B_HH = W_2 + O * L;    /* (G) */
    static constexpr int B_1 = B_HH + G;        /* (O) */
    static constexpr int B_2 = B_1 + O;         /* (L) */
    static constexpr int T_DEC = B_2 + L;       /* (L) mg_wavernn_mulaw_decode of each level */
    static constexpr int T_THR = T_DEC + L;     /* (L) encoder thresholds (mg_cu_encode) */
    static constexpr int NW = T_THR + L;
    /* per stream: */
    static constexpr int S_H = 0;               /* (H) GRU state */
    static constexpr int S_X = S_H + H;         /* (XP) the next step's input: exc, compand(p) */
    static constexpr int S_GH = S_X + XP;       /* (G) w_hh h + b_hh for the next step */
    static constexpr int S_GX = S_GH + G;       /* (G) w_exc x for the next step */
    static constexpr int S_O = S_GX + G;        /* (O) out1 activations */
    static constexpr int S_LG = S_O + O;        /* (L) logits, then their exponentials */
    static constexpr int S_GMAX = S_LG + L;     /* (GROUPS) */
    static constexpr int S_GSUM = S_GMAX + MG_CU_GROUPS;
    static constexpr int NS = S_GSUM + MG_CU_GROUPS;
    static_assert(NW % 4 == 0 && NS % 4 == 0, "16-byte alignment of the smem blocks");
    static_assert(H % 4 == 0 && O % 4 == 0, "dot products run 4 columns at a time");
};

/* Scalars of one stream, after the float blocks in shared memory. */
typedef struct {
    double y;          /* de-emphasis state */
    float p[2];        /* predictions p of steps t (p[t & 1]) and t + 1 */
    float invT;        /* 1 / temperature */
    uint32_t u;        /* this step's Philox draw */
    int32_t q;         /* previous level fed to the next step (mu-law of the last output) */
    int32_t pad;
    int64_t end;       /* first sample past this stream's part of the chunk (<= t0: idle) */
} mg_cu_scalars_t;

template <class D, int S> struct mg_cu_smem {
    static constexpr size_t bytes =
        sizeof(float) * ((size_t)D::NW + (size_t)S * D::NS) + sizeof(mg_cu_scalars_t) * S;
};

typedef struct {
    const float *wpack;          /* (NW) weight block and the mu-law tables */
    const float *emb;            /* (L, G) emb_gates */
    const float *gx;             /* (B, CF, G) w_fv fv + b_ih of each frame */
    const float *feat;           /* (B, CT, XP) mg_cu_features_one rows */
    const float *invT;           /* (B) */
    const uint64_t *seed, *stream;   /* (B) */
    const int64_t *len;          /* (B) */
    float *h;                    /* (B, H) state: GRU */
    float *hprev;                /* (B) state: predictor output of the last sample done */
    int32_t *q;                  /* (B) state: previous level */
    double *y;                   /* (B) state: de-emphasis */
    float *out;                  /* (B, CT) audio */
    int32_t *qout;               /* (B, CT) drawn levels */
    float *pout;                 /* (B, CT) predictions p */
    const int32_t *q_force;      /* (B, CT) teacher forcing, or NULL */
    float *logits;               /* (B, CT, L) probe, or NULL */
    int64_t t0;
    int CT, CF, B;
    float compand_den;           /* log1pf(255) */
} mg_cu_sample_args_t;

/* y_s[r] for each of the S streams: sum over c of wT[c * R + r] * x_s[c], 4 interleaved partial
 * sums combined as (a0 + a1) + (a2 + a3): one fixed order per stream, whatever S. Each weight is
 * read once for up to 8 streams (more would not fit in registers at 512 threads: 128 each);
 * x_s is at xs + s * xstride. */
template <int C, int R, int S>
MG_HD void mg_cu_dot(const float *wT, int r, const float *xs, int xstride, float out[S])
{
    constexpr int SB = S < 8 ? S : 8;
    static_assert(S % SB == 0, "S is 1, 2, 4, 8 or a multiple of 8");
    for (int s0 = 0; s0 < S; s0 += SB) {
        float a0[SB], a1[SB], a2[SB], a3[SB];
        MG_UNROLL
        for (int s = 0; s < SB; s++) a0[s] = a1[s] = a2[s] = a3[s] = 0.0f;
        MG_UNROLL
        for (int c = 0; c < C; c += 4) {
            const float w0 = wT[(c + 0) * R + r], w1 = wT[(c + 1) * R + r];
            const float w2 = wT[(c + 2) * R + r], w3 = wT[(c + 3) * R + r];
            MG_UNROLL
            for (int s = 0; s < SB; s++) {
                /* one 16-byte broadcast load: xs, xstride and c are multiples of 4 floats */
                const float4 x = *(const float4 *)(xs + (s0 + s) * xstride + c);
                a0[s] = fmaf(w0, x.x, a0[s]);
                a1[s] = fmaf(w1, x.y, a1[s]);
                a2[s] = fmaf(w2, x.z, a2[s]);
                a3[s] = fmaf(w3, x.w, a3[s]);
            }
        }
        MG_UNROLL
        for (int s = 0; s < SB; s++) out[s0 + s] = mg_fadd(mg_fadd(a0[s], a1[s]), mg_fadd(a2[s], a3[s]));
    }
}

MG_HD float mg_cu_sigmoid(float x) { return 1.0f / mg_fadd(1.0f, expf(-x)); }

/* Loads the input row of step t of stream s (global b) into x: exc, compand(p) with
 * p = h[t] - 0.85 h[t-1] (hc = h[t-1]), and keeps p for the output. */
template <class D>
MG_HD void mg_cu_load_x(const mg_cu_sample_args_t &a, float *x, mg_cu_scalars_t *sc, int b,
                        int j, int64_t t, float hc)
{
    const float *row = a.feat + ((size_t)b * a.CT + (t - a.t0)) * MG_CU_XP;
    if (j < MG_CU_HARM) {
        x[j] = mg_ldg(&row[j]);
    } else if (j == MG_CU_HARM) {
        const float p = mg_fsub(mg_ldg(&row[MG_CU_HARM]), mg_fmul(0.85f, hc));
        x[j] = mg_cu_compand(p, a.compand_den);
        sc->p[t & 1] = p;
    } else {
        x[j] = 0.0f;
    }
}

/* The whole chunk [t0, t0 + CT) for the S streams of block `group`, as one program of phases.
 * Step t, with h = h[t-1], gh = w_hh h + b_hh, gx = w_exc x[t], x = x[t] ready:
 *   P1  gates: a = gx + (frame gx + emb_gates[q]) and gh -> h[t]; load x[t+1]; Philox u[t]
 *   P2  out1 = relu(W1 h + b1); gh = w_hh h + b_hh; gx = w_exc x[t+1]   (all rows at once)
 *   P3  logits = W2 out1 + b2
 *   P4a group maxima;  P4b exponentials and group sums;  P4c draw, output, mu-law -> q
 * Six barriers per step; w_hh h and w_exc x of the next step ride along with out1. */
template <class D, int S, class Exec>
MG_HD void mg_cu_sample_block(const mg_cu_sample_args_t &a, float *sm, int group, Exec &ex)
{
    constexpr int H = D::H, O = D::O, G = D::G, L = D::L, XP = D::XP, NS = D::NS;
    float *const w = sm;
    float *const ps = sm + D::NW;
    mg_cu_scalars_t *const sc = (mg_cu_scalars_t *)(ps + (size_t)S * NS);
    const int64_t t0 = a.t0;
    int64_t tmax = t0;
    for (int s = 0; s < S; s++) {
        const int b = group * S + s;
        if (b < a.B) {
            const int64_t len = mg_ldg(&a.len[b]), e = len < t0 + a.CT ? len : t0 + a.CT;
            tmax = e > tmax ? e : tmax;
        }
    }
    if (tmax <= t0) return;   /* the whole block is idle: uniform, before any barrier */

    /* A: weights, state, x[t0] */
    ex([&](int tid) {
        const float4 *src = (const float4 *)a.wpack;
        float4 *dst = (float4 *)w;
        for (int i = tid; i < D::NW / 4; i += MG_CU_NT) dst[i] = mg_ldg(&src[i]);
        for (int u = tid; u < S * (H + XP + 1); u += MG_CU_NT) {
            const int s = u < S * (H + XP) ? (u < S * H ? u / H : (u - S * H) / XP) : u - S * (H + XP);
            const int b = group * S + s;
            const int64_t len = b < a.B ? mg_ldg(&a.len[b]) : 0;
            const int64_t end = len < t0 + a.CT ? len : t0 + a.CT;
            float *st = ps + s * NS;
            if (u < S * H) {
                const int i = u % H;
                st[D::S_H + i] = end > t0 ? mg_ldg(&a.h[(size_t)b * H + i]) : 0.0f;
            } else if (u < S * (H + XP)) {
                const int j = (u - S * H) % XP;
                if (end > t0)
                    mg_cu_load_x<D>(a, st + D::S_X, &sc[s], b, j, t0, mg_ldg(&a.hprev[b]));
                else
                    st[D::S_X + j] = 0.0f;
            } else {
                sc[s].end = end;
                sc[s].y = end > t0 ? mg_ldg(&a.y[b]) : 0.0;
                sc[s].q = end > t0 ? mg_ldg(&a.q[b]) : 128;
                sc[s].invT = end > t0 ? mg_ldg(&a.invT[b]) : 1.0f;
                sc[s].u = 0;
            }
        }
    });
    /* B: gh and gx of step t0 */
    ex([&](int tid) {
        for (int r = tid; r < 2 * G; r += MG_CU_NT) {
            float y[S];
            if (r < G) {
                mg_cu_dot<H, G, S>(w + D::W_HH, r, ps + D::S_H, NS, y);
                const float bias = w[D::B_HH + r];
                for (int s = 0; s < S; s++) ps[s * NS + D::S_GH + r] = mg_fadd(y[s], bias);
            } else {
                mg_cu_dot<XP, G, S>(w + D::W_EX, r - G, ps + D::S_X, NS, y);
                for (int s = 0; s < S; s++) ps[s * NS + D::S_GX + r - G] = y[s];
            }
        }
    });

    for (int64_t t = t0; t < tmax; t++) {
        const int tt = (int)(t - t0);
        /* P1 */
        ex([&](int tid) {
            for (int u = tid; u < S * (H + XP + 1); u += MG_CU_NT) {
                const int s = u < S * (H + XP) ? (u < S * H ? u / H : (u - S * H) / XP) : u - S * (H + XP);
                const int b = group * S + s;
                if (t >= sc[s].end) continue;
                float *st = ps + s * NS;
                if (u < S * H) {
                    const int i = u % H;
                    const int q = a.q_force ? mg_ldg(&a.q_force[(size_t)b * a.CT + tt]) : sc[s].q;
                    const float *e = a.emb + (size_t)q * G;
                    const float *gf = a.gx + ((size_t)b * a.CF + tt / 120) * G;
                    const float *gi = st + D::S_GX, *gh = st + D::S_GH;
                    const float xr = mg_fadd(gi[i], mg_fadd(mg_ldg(&gf[i]), mg_ldg(&e[i])));
                    const float xz = mg_fadd(gi[H + i], mg_fadd(mg_ldg(&gf[H + i]), mg_ldg(&e[H + i])));
                    const float xn = mg_fadd(gi[2 * H + i],
                                             mg_fadd(mg_ldg(&gf[2 * H + i]), mg_ldg(&e[2 * H + i])));
                    const float r = mg_cu_sigmoid(mg_fadd(xr, gh[i]));
                    const float z = mg_cu_sigmoid(mg_fadd(xz, gh[H + i]));
                    const float n = tanhf(mg_fadd(xn, mg_fmul(r, gh[2 * H + i])));
                    const float hv = st[D::S_H + i];
                    st[D::S_H + i] = mg_fadd(mg_fmul(mg_fsub(1.0f, z), n), mg_fmul(z, hv));
                } else if (u < S * (H + XP)) {
                    const int j = (u - S * H) % XP;
                    if (t + 1 < sc[s].end) {
                        const float hc = mg_ldg(&a.feat[((size_t)b * a.CT + tt) * XP + MG_CU_HARM]);
                        mg_cu_load_x<D>(a, st + D::S_X, &sc[s], b, j, t + 1, hc);
                    }
                } else {
                    sc[s].u = mg_cu_philox_u32(mg_ldg(&a.seed[b]), mg_ldg(&a.stream[b]), (uint64_t)t);
                }
            }
        });
        /* P2 */
        ex([&](int tid) {
            for (int r = tid; r < O + 2 * G; r += MG_CU_NT) {
                float y[S];
                if (r < O) {
                    mg_cu_dot<H, O, S>(w + D::W_1, r, ps + D::S_H, NS, y);
                    const float bias = w[D::B_1 + r];
                    for (int s = 0; s < S; s++) {
                        const float v = mg_fadd(y[s], bias);
                        ps[s * NS + D::S_O + r] = v > 0.0f ? v : 0.0f;
                    }
                } else if (r < O + G) {
                    mg_cu_dot<H, G, S>(w + D::W_HH, r - O, ps + D::S_H, NS, y);
                    const float bias = w[D::B_HH + r - O];
                    for (int s = 0; s < S; s++) ps[s * NS + D::S_GH + r - O] = mg_fadd(y[s], bias);
                } else {
                    mg_cu_dot<XP, G, S>(w + D::W_EX, r - O - G, ps + D::S_X, NS, y);
                    for (int s = 0; s < S; s++) ps[s * NS + D::S_GX + r - O - G] = y[s];
                }
            }
        });
        /* P3 */
        ex([&](int tid) {
            for (int l = tid; l < L; l += MG_CU_NT) {
                float y[S];
                mg_cu_dot<O, L, S>(w + D::W_2, l, ps + D::S_O, NS, y);
                const float bias = w[D::B_2 + l];
                for (int s = 0; s < S; s++) {
                    const float v = mg_fadd(y[s], bias);
                    ps[s * NS + D::S_LG + l] = v;
                    if (a.logits && t < sc[s].end)
                        a.logits[((size_t)(group * S + s) * a.CT + tt) * L + l] = v;
                }
            }
        });
        /* P4a */
        ex([&](int tid) {
            for (int u = tid; u < S * MG_CU_GROUPS; u += MG_CU_NT) {
                const int s = u / MG_CU_GROUPS, g = u % MG_CU_GROUPS;
                if (t >= sc[s].end) continue;
                const float *lg = ps + s * NS + D::S_LG + 8 * g;
                float m = lg[0];
                for (int k = 1; k < 8; k++) m = lg[k] > m ? lg[k] : m;
                ps[s * NS + D::S_GMAX + g] = m;
            }
        });
        /* P4b */
        ex([&](int tid) {
            for (int u = tid; u < S * MG_CU_GROUPS; u += MG_CU_NT) {
                const int s = u / MG_CU_GROUPS, g = u % MG_CU_GROUPS;
                if (t >= sc[s].end) continue;
                const float *gm = ps + s * NS + D::S_GMAX;
                float m = gm[0];
                for (int k = 1; k < MG_CU_GROUPS; k++) m = gm[k] > m ? gm[k] : m;
                const float it = sc[s].invT;
                float *lg = ps + s * NS + D::S_LG + 8 * g;
                float sum = 0.0f;
                for (int k = 0; k < 8; k++) {
                    const float e = expf(mg_fmul(mg_fsub(lg[k], m), it));
                    lg[k] = e;
                    sum = mg_fadd(sum, e);
                }
                ps[s * NS + D::S_GSUM + g] = sum;
            }
        });
        /* P4c: the draw of mg_wavernn_sample_avx2 (float exponentials, group sums in float,
         * running sums in double), then the output sample and the next level */
        ex([&](int tid) {
            for (int s = tid; s < S; s += MG_CU_NT) {
                if (t >= sc[s].end) continue;
                const int b = group * S + s;
                const float *gs = ps + s * NS + D::S_GSUM, *e = ps + s * NS + D::S_LG;
                double total = 0.0;
                for (int k = 0; k < MG_CU_GROUPS; k++) total += (double)gs[k];
                const double target = ((double)sc[s].u + 0.5) / 4294967296.0 * total;
                double cum = 0.0;
                int q = L - 1;
                for (int k = 0; k < MG_CU_GROUPS; k++) {
                    if (cum + (double)gs[k] > target) {
                        q = k * 8 + 7;
                        for (int i = k * 8; i < k * 8 + 8; i++) {
                            cum += (double)e[i];
                            if (cum > target) {
                                q = i;
                                break;
                            }
                        }
                        break;
                    }
                    cum += (double)gs[k];
                }
                const float p = sc[s].p[t & 1];
                const float sv = mg_fadd(p, w[D::T_DEC + q]);
                sc[s].y = mg_dadd((double)sv, mg_dmul(0.85, sc[s].y));
                const size_t o = (size_t)b * a.CT + tt;
                a.out[o] = (float)sc[s].y;
                a.qout[o] = q;
                a.pout[o] = p;
                sc[s].q = mg_cu_encode(w + D::T_THR, sv);
            }
        });
    }

    /* epilogue: the state for the next chunk */
    ex([&](int tid) {
        for (int u = tid; u < S * (H + 1); u += MG_CU_NT) {
            const int s = u < S * H ? u / H : u - S * H;
            const int b = group * S + s;
            if (sc[s].end <= t0) continue;
            if (u < S * H) {
                a.h[(size_t)b * H + u % H] = ps[s * NS + D::S_H + u % H];
            } else {
                a.q[b] = sc[s].q;
                a.y[b] = sc[s].y;
                a.hprev[b] = a.feat[((size_t)b * a.CT + (sc[s].end - 1 - t0)) * XP + MG_CU_HARM];
            }
        }
    });
}

#endif
