/* wavernn_cuda.cu - the GPU renderer (wavernn_cuda.h): context (weights uploaded and repacked
 * once), the chunk loop of a render (CPU frame features into pinned memory, cuBLAS frame MLP and
 * voice network, the features kernel, the persistent sampling kernel, outputs back), and the
 * host emulation that runs the same kernel bodies (wavernn_cuda_body.cuh) without a GPU.
 *
 * Chunks: a render of B stems advances CF frames (CT = 120 CF samples) at a time for all stems,
 * so the per-sample buffers stay at B * CT rows whatever the stems' length; the GRU state, the
 * last prediction, the level and the de-emphasis state stay on the device between chunks. The
 * CPU prepares chunk k+1 (slots, cond, voice inputs) while the GPU runs chunk k.
 */
#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/wavernn_cuda.h"
#include "kernels/cuda/wavernn_cuda_body.cuh"
extern "C" {
#include "kernels/philox.h"
}

#define MG_CU_GEMM_TILE 8192      /* rows per cuBLAS call (fixed shape: see s_gemm) */
#define MG_CU_CHUNK_ROWS (1 << 21) /* B * CT per chunk: 256 MB of feature rows at most */
#define MG_CU_MAX_CF 200          /* frames per chunk (1 s) */

static const int s_spb[] = {1, 2, 4, 8, 16};   /* streams per block, compiled variants */
#define MG_CU_NSPB 5

/* ---- executors of the block program (wavernn_cuda_body.cuh) ---- */
struct mg_cu_dev_exec {
    template <class F> MG_HD void operator()(F &&f) const
    {
#ifdef __CUDA_ARCH__
        f((int)threadIdx.x);
        __syncthreads();
#endif
    }
};

struct mg_cu_host_exec {
    int reverse;
    template <class F> MG_HD void operator()(F &&f) const
    {
#ifndef __CUDA_ARCH__
        if (reverse)
            for (int tid = MG_CU_NT - 1; tid >= 0; tid--) f(tid);
        else
            for (int tid = 0; tid < MG_CU_NT; tid++) f(tid);
#endif
    }
};

/* ---- kernels ---- */

template <class D, int S>
__global__ void __launch_bounds__(MG_CU_NT, 1) s_k_sample(const mg_cu_sample_args_t a)
{
    extern __shared__ float4 s_sm4[];
    mg_cu_dev_exec ex;
    mg_cu_sample_block<D, S>(a, (float *)s_sm4, (int)blockIdx.x, ex);
}

__global__ void s_k_features(const mg_cu_feat_args_t a)
{
    const size_t n = (size_t)a.B * a.CT;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        mg_cu_features_one(a, (int)(i / a.CT), (int)(i % a.CT));
}

/* y (rows, n) = act(y + bias): act 0 identity, 1 tanh */
__global__ void s_k_bias_act(float *y, const float *bias, size_t rows, int n, int act)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows * n; i += (size_t)gridDim.x * blockDim.x) {
        float v = y[i] + bias[i % n];
        y[i] = act ? tanhf(v) : v;
    }
}

/* x (rows, VD + VE): row ((bf * SLOTS + v) * 2 + e) = [vin row, voice_emb[emb of (bf, v)] or 0] */
__global__ void s_k_voice_gather(float *x, const float *vin, const int32_t *vemb, const float *voice_emb,
                                 size_t rows, int vd, int ve)
{
    const int w = vd + ve;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows * w; i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / w;
        const int c = (int)(i % w);
        const int emb = vemb[r / 2];
        x[i] = c < vd ? vin[r * vd + c] : emb >= 0 ? voice_emb[(size_t)emb * ve + (c - vd)] : 0.0f;
    }
}

/* y (rows, PD) = exp(min(y + b, 20)), 0 for empty slots: the harmonic amplitudes (voice_ref) */
__global__ void s_k_coef(float *y, const float *b, const int32_t *vemb, size_t rows)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < rows * MG_CU_PD; i += (size_t)gridDim.x * blockDim.x) {
        float v = y[i] + b[i % MG_CU_PD];
        y[i] = vemb[i / MG_CU_PD / 2] < 0 ? 0.0f : expf(v < 20.0f ? v : 20.0f);
    }
}

__global__ void s_k_fill_i32(int32_t *p, int32_t v, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) p[i] = v;
}

/* ---- kernel sets per model size ---- */

typedef struct {
    int H, O, NW;
    size_t smem[MG_CU_NSPB];
    void (*pack)(const mg_wavernn_model_t *m, float *dst);
    cudaError_t (*prepare)(int spb_index, size_t optin);
    cudaError_t (*launch)(int spb_index, const mg_cu_sample_args_t &a, int blocks, cudaStream_t st);
    void (*emulate)(int spb_index, const mg_cu_sample_args_t &a, int blocks, int reverse);
} s_kset_t;

static void s_encode_thresholds(float thr[MG_CU_L]);

/* The weight block of mg_cu_dims<H, O> from the model (transposed; w_exc padded to XP rows) and
 * the mu-law tables. */
template <class D> static void s_pack(const mg_wavernn_model_t *m, float *dst)
{
    memset(dst, 0, sizeof(float) * D::NW);
    s_encode_thresholds(dst + D::T_THR);
    for (int q = 0; q < D::L; q++) dst[D::T_DEC + q] = m->mulaw_level[q];
    for (int r = 0; r < D::G; r++) {
        for (int c = 0; c < D::H; c++) dst[D::W_HH + c * D::G + r] = m->w_hh[(size_t)r * D::H + c];
        for (int c = 0; c < MG_WR_IN_DIM; c++) dst[D::W_EX + c * D::G + r] = m->w_exc[(size_t)r * MG_WR_IN_DIM + c];
        dst[D::B_HH + r] = m->b_hh[r];
    }
    for (int r = 0; r < D::O; r++) {
        for (int c = 0; c < D::H; c++) dst[D::W_1 + c * D::O + r] = m->out1_w[(size_t)r * D::H + c];
        dst[D::B_1 + r] = m->out1_b[r];
    }
    for (int r = 0; r < D::L; r++) {
        for (int c = 0; c < D::O; c++) dst[D::W_2 + c * D::L + r] = m->out2_w[(size_t)r * D::O + c];
        dst[D::B_2 + r] = m->out2_b[r];
    }
}

template <class D, int S> static cudaError_t s_prepare1(size_t optin)
{
    if (mg_cu_smem<D, S>::bytes > optin) return cudaErrorInvalidValue;
    return cudaFuncSetAttribute(s_k_sample<D, S>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)mg_cu_smem<D, S>::bytes);
}

template <class D, int S>
static cudaError_t s_launch1(const mg_cu_sample_args_t &a, int blocks, cudaStream_t st)
{
    s_k_sample<D, S><<<blocks, MG_CU_NT, mg_cu_smem<D, S>::bytes, st>>>(a);
    return cudaGetLastError();
}

/* Device shared memory starts with unknown contents: the emulation fills it with NaN so that a
 * read of a word no phase wrote shows in the results. */
template <class D, int S> static void s_emulate1(const mg_cu_sample_args_t &a, int blocks, int reverse)
{
    const size_t bytes = mg_cu_smem<D, S>::bytes;
    float *sm = (float *)aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!sm) abort();
    mg_cu_host_exec ex = {reverse};
    for (int g = 0; g < blocks; g++) {
        memset(sm, 0xff, bytes);
        mg_cu_sample_block<D, S>(a, sm, g, ex);
    }
    free(sm);
}

template <class D> static cudaError_t s_prepare(int k, size_t optin)
{
    switch (k) {
    case 0: return s_prepare1<D, 1>(optin);
    case 1: return s_prepare1<D, 2>(optin);
    case 2: return s_prepare1<D, 4>(optin);
    case 3: return s_prepare1<D, 8>(optin);
    default: return s_prepare1<D, 16>(optin);
    }
}
template <class D> static cudaError_t s_launch(int k, const mg_cu_sample_args_t &a, int blocks, cudaStream_t st)
{
    switch (k) {
    case 0: return s_launch1<D, 1>(a, blocks, st);
    case 1: return s_launch1<D, 2>(a, blocks, st);
    case 2: return s_launch1<D, 4>(a, blocks, st);
    case 3: return s_launch1<D, 8>(a, blocks, st);
    default: return s_launch1<D, 16>(a, blocks, st);
    }
}
template <class D> static void s_emulate(int k, const mg_cu_sample_args_t &a, int blocks, int reverse)
{
    switch (k) {
    case 0: s_emulate1<D, 1>(a, blocks, reverse); break;
    case 1: s_emulate1<D, 2>(a, blocks, reverse); break;
    case 2: s_emulate1<D, 4>(a, blocks, reverse); break;
    case 3: s_emulate1<D, 8>(a, blocks, reverse); break;
    default: s_emulate1<D, 16>(a, blocks, reverse); break;
    }
}

template <class D> static s_kset_t s_kset()
{
    s_kset_t k = {D::H, D::O, D::NW,
                  {mg_cu_smem<D, 1>::bytes, mg_cu_smem<D, 2>::bytes, mg_cu_smem<D, 4>::bytes,
                   mg_cu_smem<D, 8>::bytes, mg_cu_smem<D, 16>::bytes},
                  s_pack<D>, s_prepare<D>, s_launch<D>, s_emulate<D>};
    return k;
}

/* The model sizes with compiled kernels: the default model (H = O = 64) and the test fixture's
 * (H = O = 32). Another size needs one more line here. */
static int s_find_kset(const mg_wavernn_model_t *m, s_kset_t *out)
{
    const s_kset_t sets[] = {s_kset<mg_cu_dims<64, 64> >(), s_kset<mg_cu_dims<32, 32> >()};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        if (sets[i].H == m->hidden && sets[i].O == m->out_hidden) {
            *out = sets[i];
            return 0;
        }
    return -1;
}

/* ---- host helpers ---- */

static int s_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define CK(call)                                                                                \
    do {                                                                                        \
        cudaError_t e_ = (call);                                                                \
        if (e_ != cudaSuccess) {                                                                \
            s_errf(err, errlen, "%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            goto fail;                                                                          \
        }                                                                                       \
    } while (0)
#define CKB(call)                                                                               \
    do {                                                                                        \
        cublasStatus_t e_ = (call);                                                             \
        if (e_ != CUBLAS_STATUS_SUCCESS) {                                                      \
            s_errf(err, errlen, "%s:%d: %s: cuBLAS status %d", __FILE__, __LINE__, #call, (int)e_); \
            goto fail;                                                                          \
        }                                                                                       \
    } while (0)

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Monotone integer key of a non-NaN float (both zeros -> 0), and back. */
static int32_t s_fkey(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (u & 0x80000000u) ? -(int32_t)(u & 0x7fffffffu) : (int32_t)u;
}
static float s_fval(int32_t k)
{
    uint32_t u = k >= 0 ? (uint32_t)k : ((uint32_t)(-k) | 0x80000000u);
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* thr[k] = the smallest float whose mg_wavernn_mulaw_encode is >= k (k = 1..255); thr[0] = -inf.
 * Bisection over the float order; the encoder is monotone (clamp, log1p, scaling, floor). */
static void s_encode_thresholds(float thr[MG_CU_L])
{
    thr[0] = -INFINITY;
    for (int k = 1; k < MG_CU_L; k++) {
        int64_t lo = s_fkey(-2.0f), hi = s_fkey(2.0f);   /* encode(lo) < k <= encode(hi) */
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (mg_wavernn_mulaw_encode(s_fval((int32_t)mid)) >= k) hi = mid;
            else lo = mid;
        }
        thr[k] = s_fval((int32_t)hi);
    }
}

static int s_host_encode(const float thr[MG_CU_L], float x) { return mg_cu_encode(thr, x); }

/* ---- availability ---- */

int mg_wavernn_cuda_available(char *why, size_t whylen)
{
    static int state = -1;
    static char reason[512];
    if (state < 0) {
        int n = 0, dev = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        cudaDeviceProp p;
        if (e != cudaSuccess) {
            snprintf(reason, sizeof reason, "no CUDA device: cudaGetDeviceCount: %s", cudaGetErrorString(e));
            state = 0;
        } else if (n < 1) {
            snprintf(reason, sizeof reason, "no CUDA device: cudaGetDeviceCount found none");
            state = 0;
        } else if ((e = cudaGetDevice(&dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&p, dev)) != cudaSuccess) {
            snprintf(reason, sizeof reason, "CUDA device unusable: %s", cudaGetErrorString(e));
            state = 0;
        } else if (p.major < 9) {
            snprintf(reason, sizeof reason, "CUDA device %d (%s) has compute capability %d.%d; this build "
                     "carries sm_90 code and compute_90 PTX (kernels/cuda: add a -gencode for it)",
                     dev, p.name, p.major, p.minor);
            state = 0;
        } else {
            snprintf(reason, sizeof reason, "CUDA device %d: %s, %d SMs", dev, p.name, p.multiProcessorCount);
            state = 1;
        }
    }
    if (why && whylen) snprintf(why, whylen, "%s", reason);
    return state;
}

/* ---- context ---- */

struct mg_wavernn_cuda {
    const mg_wavernn_model_t *m;        /* borrowed */
    s_kset_t ks;
    int nsm, spb_ok[MG_CU_NSPB];        /* which streams-per-block variants fit in shared memory */
    cudaStream_t st;
    cublasHandle_t blas;
    /* device copies of the weights */
    float *wpack, *emb;
    float *frame1_w, *frame1_b, *frame2_w, *frame2_b, *w_fv, *b_ih;
    float *voice_emb, *voice1_w, *voice1_b, *voice2_w, *voice2_b, *voice3_w, *voice3_b;
    float compand_den;
    mg_wavernn_cuda_timing_t timing;
};

static int s_upload(float **dst, const float *src, size_t n, char *err, size_t errlen)
{
    CK(cudaMalloc((void **)dst, sizeof(float) * n));
    CK(cudaMemcpy(*dst, src, sizeof(float) * n, cudaMemcpyHostToDevice));
    return 0;
fail:
    return -1;
}

/* The compand curve's denominator, by the host's libm (as mg_wavernn_compand). */
static float s_compand_den(void) { return log1pf((float)(MG_WR_LEVELS - 1)); }

int mg_wavernn_cuda_new(const mg_wavernn_model_t *m, mg_wavernn_cuda_t **out, char *err, size_t errlen)
{
    char why[256];
    *out = NULL;
    if (!mg_wavernn_cuda_available(why, sizeof why)) return s_errf(err, errlen, "%s", why);
    mg_wavernn_cuda_t *c = (mg_wavernn_cuda_t *)calloc(1, sizeof *c);
    if (!c) return s_errf(err, errlen, "out of memory");
    c->m = m;
    float *pack = NULL;
    int dev = 0, any = 0;
    cudaDeviceProp p;
    if (s_find_kset(m, &c->ks) != 0) {
        s_errf(err, errlen, "model '%s': no CUDA kernels for hidden %d, out_hidden %d (compiled: 64/64, "
               "32/32; add the size in kernels/cuda/wavernn_cuda.cu s_find_kset)", m->name, m->hidden,
               m->out_hidden);
        goto fail;
    }
    CK(cudaGetDevice(&dev));
    CK(cudaGetDeviceProperties(&p, dev));
    c->nsm = p.multiProcessorCount;
    for (int k = 0; k < MG_CU_NSPB; k++) {
        c->spb_ok[k] = c->ks.prepare(k, p.sharedMemPerBlockOptin) == cudaSuccess;
        any |= c->spb_ok[k];
    }
    cudaGetLastError();   /* a variant that does not fit left an error behind */
    if (!any) {
        s_errf(err, errlen, "device %s: %zu bytes of shared memory per block; the sampling kernel needs %zu",
               p.name, (size_t)p.sharedMemPerBlockOptin, c->ks.smem[0]);
        goto fail;
    }
    CK(cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking));
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        s_errf(err, errlen, "cublasCreate failed (is libcublas.so.13 on the library path?)");
        goto fail;
    }
    CKB(cublasSetStream(c->blas, c->st));
    CKB(cublasSetMathMode(c->blas, CUBLAS_PEDANTIC_MATH));   /* fp32 arithmetic, no TF32 */
    pack = (float *)malloc(sizeof(float) * c->ks.NW);
    if (!pack) {
        s_errf(err, errlen, "out of memory");
        goto fail;
    }
    c->ks.pack(m, pack);
    c->compand_den = s_compand_den();
    {
        const int G = 3 * m->hidden, FH = m->frame_hidden, VH = m->voice_hidden, VE = m->voice_embed;
        const int VD = MG_WR_VOICE_DIM, PD = MG_WR_PRED_DIM;
        if (s_upload(&c->wpack, pack, c->ks.NW, err, errlen) ||
            s_upload(&c->emb, m->emb_gates, (size_t)MG_WR_LEVELS * G, err, errlen) ||
            s_upload(&c->frame1_w, m->frame1_w, (size_t)FH * MG_WR_COND_DIM, err, errlen) ||
            s_upload(&c->frame1_b, m->frame1_b, FH, err, errlen) ||
            s_upload(&c->frame2_w, m->frame2_w, (size_t)FH * FH, err, errlen) ||
            s_upload(&c->frame2_b, m->frame2_b, FH, err, errlen) ||
            s_upload(&c->w_fv, m->w_fv, (size_t)G * FH, err, errlen) ||
            s_upload(&c->b_ih, m->b_ih, G, err, errlen) ||
            s_upload(&c->voice_emb, m->voice_emb, (size_t)MG_WR_N_CLASSES * 128 * VE, err, errlen) ||
            s_upload(&c->voice1_w, m->voice1_w, (size_t)VH * (VD + VE), err, errlen) ||
            s_upload(&c->voice1_b, m->voice1_b, VH, err, errlen) ||
            s_upload(&c->voice2_w, m->voice2_w, (size_t)VH * VH, err, errlen) ||
            s_upload(&c->voice2_b, m->voice2_b, VH, err, errlen) ||
            s_upload(&c->voice3_w, m->voice3_w, (size_t)PD * VH, err, errlen) ||
            s_upload(&c->voice3_b, m->voice3_b, PD, err, errlen))
            goto fail;
    }
    free(pack);
    *out = c;
    return 0;
fail:
    free(pack);
    mg_wavernn_cuda_destroy(&c);
    return -1;
}

void mg_wavernn_cuda_destroy(mg_wavernn_cuda_t **ctx_p)
{
    if (!ctx_p || !*ctx_p) return;
    mg_wavernn_cuda_t *c = *ctx_p;
    float *bufs[] = {c->wpack, c->emb, c->frame1_w, c->frame1_b, c->frame2_w,
                     c->frame2_b, c->w_fv, c->b_ih, c->voice_emb, c->voice1_w, c->voice1_b,
                     c->voice2_w, c->voice2_b, c->voice3_w, c->voice3_b};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    if (c->blas) cublasDestroy(c->blas);
    if (c->st) cudaStreamDestroy(c->st);
    free(c);
    *ctx_p = NULL;
}

void mg_wavernn_cuda_last_timing(const mg_wavernn_cuda_t *ctx, mg_wavernn_cuda_timing_t *t)
{
    *t = ctx->timing;
}

/* ---- the chunk plan and the CPU part of a chunk ---- */

/* Offsets (bytes) of one chunk's inputs in a host/device buffer, and of its outputs. */
typedef struct {
    int B, CF, CT, spb_index, S, blocks;
    size_t cond, vin, vemb, slots, qf, in_bytes;            /* inputs */
    size_t out, qout, pout, out_bytes;                      /* outputs */
    size_t frame_rows, voice_rows, frame_pad, voice_pad;    /* GEMM rows, padded to the tile */
} s_plan_t;

static size_t s_align(size_t x) { return (x + 255) & ~(size_t)255; }

static void s_plan(s_plan_t *p, int B, int CF, int with_qf)
{
    p->B = B;
    p->CF = CF;
    p->CT = CF * MG_WR_FRAME;
    const size_t bf = (size_t)B * CF;
    p->frame_rows = bf;
    p->voice_rows = bf * MG_CU_SLOTS * 2;
    p->frame_pad = (p->frame_rows + MG_CU_GEMM_TILE - 1) / MG_CU_GEMM_TILE * MG_CU_GEMM_TILE;
    p->voice_pad = (p->voice_rows + MG_CU_GEMM_TILE - 1) / MG_CU_GEMM_TILE * MG_CU_GEMM_TILE;
    size_t o = 0;
    /* cond is the first GEMM's input: padded to the tile (zero rows, never written by the prep) */
    p->cond = o; o = s_align(o + sizeof(float) * p->frame_pad * MG_WR_COND_DIM);
    p->vin = o; o = s_align(o + sizeof(float) * bf * MG_CU_SLOTS * 2 * MG_WR_VOICE_DIM);
    p->vemb = o; o = s_align(o + sizeof(int32_t) * bf * MG_CU_SLOTS);
    p->slots = o; o = s_align(o + sizeof(mg_cu_slot_t) * bf * MG_CU_SLOTS);
    p->qf = o; o = s_align(o + (with_qf ? sizeof(int32_t) * (size_t)B * p->CT : 0));
    p->in_bytes = o;
    o = 0;
    p->out = o; o = s_align(o + sizeof(float) * (size_t)B * p->CT);
    p->qout = o; o = s_align(o + sizeof(int32_t) * (size_t)B * p->CT);
    p->pout = o; o = s_align(o + sizeof(float) * (size_t)B * p->CT);
    p->out_bytes = o;
}

/* Streams per block: the fewest that put every group on its own SM, within what fits. */
static int s_choose_spb(const int ok[MG_CU_NSPB], int n, int nsm, int want)
{
    int best = -1;
    for (int k = 0; k < MG_CU_NSPB; k++) {
        if (!ok[k]) continue;
        if (want) {
            if (s_spb[k] == want) return k;
            continue;
        }
        best = k;
        if ((n + s_spb[k] - 1) / s_spb[k] <= nsm) return k;
    }
    return best;
}

static int s_frames_per_chunk(int B, int want)
{
    if (want > 0) return want;
    int cf = (int)(MG_CU_CHUNK_ROWS / ((size_t)B * MG_WR_FRAME));
    return cf < 1 ? 1 : cf > MG_CU_MAX_CF ? MG_CU_MAX_CF : cf;
}

/* Fills the chunk's inputs at buf (layout p) from the stems: per stream and frame the voice
 * slots, cond, voice inputs and slot oscillators (wavernn.c, so exactly the CPU's values). */
static void s_prep_chunk(const mg_wavernn_model_t *m, const mg_wavernn_stem_t *stems,
                         const s_plan_t *p, int64_t t0, const mg_wavernn_cuda_probe_t *probe,
                         unsigned char *buf)
{
    float *cond = (float *)(buf + p->cond), *vin = (float *)(buf + p->vin);
    int32_t *vemb = (int32_t *)(buf + p->vemb);
    mg_cu_slot_t *sl = (mg_cu_slot_t *)(buf + p->slots);
    const size_t VIN = MG_CU_SLOTS * 2 * MG_WR_VOICE_DIM;
    for (int b = 0; b < p->B; b++) {
        const mg_wavernn_stem_t *s = &stems[b];
        for (int f = 0; f < p->CF; f++) {
            const size_t bf = (size_t)b * p->CF + f;
            const int64_t F = t0 / MG_WR_FRAME + f;
            int32_t slots[MG_WR_VOICES];
            if (F * MG_WR_FRAME >= (int64_t)s->n_samples) {
                memset(cond + bf * MG_WR_COND_DIM, 0, sizeof(float) * MG_WR_COND_DIM);
                memset(vin + bf * VIN, 0, sizeof(float) * VIN);
                for (int v = 0; v < MG_CU_SLOTS; v++) {
                    vemb[bf * MG_CU_SLOTS + v] = -1;
                    sl[bf * MG_CU_SLOTS + v] = (mg_cu_slot_t){INT64_MAX, INT64_MIN, 0.0};
                }
                continue;
            }
            mg_wavernn_slots(s->notes, s->n_notes, F, slots);
            mg_wavernn_frame_cond(s->notes, slots, s->cls, F, cond + bf * MG_WR_COND_DIM);
            mg_wavernn_voice_inputs(s->notes, slots, s->cls, F, vin + bf * VIN, vemb + bf * MG_CU_SLOTS);
            for (int v = 0; v < MG_CU_SLOTS; v++) {
                mg_cu_slot_t *o = &sl[bf * MG_CU_SLOTS + v];
                if (slots[v] < 0) {
                    *o = (mg_cu_slot_t){INT64_MAX, INT64_MIN, 0.0};
                    continue;
                }
                const mg_wavernn_note_t *nt = &s->notes[slots[v]];
                *o = (mg_cu_slot_t){nt->on, nt->off + MG_WR_TAIL, mg_wavernn_note_hz(m->tuning, s->cls, nt->pitch)};
            }
        }
        if (probe && probe->q_in) {
            int32_t *qf = (int32_t *)(buf + p->qf) + (size_t)b * p->CT;
            for (int tt = 0; tt < p->CT; tt++)
                qf[tt] = t0 + tt < (int64_t)s->n_samples ? probe->q_in[b][t0 + tt] : 128;
        }
    }
}

/* Copies chunk outputs (layout p, at buf) into the stems; logits (B, CT, L) too when given. */
static void s_scatter(const mg_wavernn_stem_t *stems, const s_plan_t *p, int64_t t0,
                      const unsigned char *buf, const float *logits, const mg_wavernn_cuda_probe_t *probe)
{
    const float *out = (const float *)(buf + p->out), *pout = (const float *)(buf + p->pout);
    const int32_t *qout = (const int32_t *)(buf + p->qout);
    for (int b = 0; b < p->B; b++) {
        const mg_wavernn_stem_t *s = &stems[b];
        if (t0 >= (int64_t)s->n_samples) continue;
        size_t n = s->n_samples - (size_t)t0;
        if (n > (size_t)p->CT) n = p->CT;
        const size_t o = (size_t)b * p->CT;
        memcpy(s->out + t0, out + o, sizeof(float) * n);
        if (s->q_out) memcpy(s->q_out + t0, qout + o, sizeof(int32_t) * n);
        if (s->pred_out) memcpy(s->pred_out + t0, pout + o, sizeof(float) * n);
        if (logits && probe && probe->logits && probe->logits[b])
            memcpy(probe->logits[b] + (size_t)t0 * MG_CU_L, logits + o * MG_CU_L, sizeof(float) * n * MG_CU_L);
    }
}

static int s_check_stems(const mg_wavernn_model_t *m, const mg_wavernn_stem_t *stems, int n,
                         int64_t *longest, char *err, size_t errlen)
{
    if (n < 1 || n > MG_WR_CUDA_MAX_BATCH)
        return s_errf(err, errlen, "batch of %d stems; 1..%d expected", n, MG_WR_CUDA_MAX_BATCH);
    *longest = 0;
    for (int b = 0; b < n; b++) {
        if (stems[b].cls < 0 || stems[b].cls >= MG_WR_N_CLASSES)
            return s_errf(err, errlen, "stem %d: class %d; 0..%d expected", b, stems[b].cls, MG_WR_N_CLASSES - 1);
        if (stems[b].n_samples && !stems[b].out) return s_errf(err, errlen, "stem %d: no output buffer", b);
        if ((int64_t)stems[b].n_samples > *longest) *longest = (int64_t)stems[b].n_samples;
    }
    (void)m;
    return 0;
}

/* Per-stream constants of a render, host side. */
typedef struct {
    int32_t *cls;
    int64_t *len;
    uint64_t *seed, *stream;
    float *invT;
} s_consts_t;

static int s_consts_new(const mg_wavernn_model_t *m, const mg_wavernn_stem_t *stems, int n,
                        float temperature, s_consts_t *k)
{
    k->cls = (int32_t *)malloc(sizeof(int32_t) * n);
    k->len = (int64_t *)malloc(sizeof(int64_t) * n);
    k->seed = (uint64_t *)malloc(sizeof(uint64_t) * n);
    k->stream = (uint64_t *)malloc(sizeof(uint64_t) * n);
    k->invT = (float *)malloc(sizeof(float) * n);
    if (!k->cls || !k->len || !k->seed || !k->stream || !k->invT) return -1;
    for (int b = 0; b < n; b++) {
        k->cls[b] = stems[b].cls;
        k->len[b] = (int64_t)stems[b].n_samples;
        k->seed[b] = stems[b].seed;
        k->stream[b] = stems[b].stream;
        k->invT[b] = 1.0f / (temperature * m->class_temperature[stems[b].cls]);
    }
    return 0;
}

static void s_consts_free(s_consts_t *k)
{
    free(k->cls);
    free(k->len);
    free(k->seed);
    free(k->stream);
    free(k->invT);
}

/* ---- device render ---- */

/* Y (rows, N) = X (rows, K) W^T for W (N, K) row-major, rows a multiple of the tile. cuBLAS picks
 * its kernel by shape; calling it with one fixed shape (MG_CU_GEMM_TILE rows) keeps each row's
 * sums in the same order whatever the batch, so a stem renders the same alone or in a batch. */
static cublasStatus_t s_gemm(cublasHandle_t h, const float *W, const float *X, float *Y, size_t rows, int K, int N)
{
    const float one = 1.0f, zero = 0.0f;
    for (size_t r = 0; r < rows; r += MG_CU_GEMM_TILE) {
        cublasStatus_t e = cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, N, MG_CU_GEMM_TILE, K, &one, W, K,
                                       X + r * K, K, &zero, Y + r * N, N);
        if (e != CUBLAS_STATUS_SUCCESS) return e;
    }
    return CUBLAS_STATUS_SUCCESS;
}

static int s_grid(size_t n)
{
    size_t g = (n + 255) / 256;
    return (int)(g < 1 ? 1 : g > 65535 ? 65535 : g);
}

int mg_wavernn_cuda_render_probe(mg_wavernn_cuda_t *c, const mg_wavernn_stem_t *stems, int n,
                                 float temperature, const mg_wavernn_cuda_probe_t *probe,
                                 char *err, size_t errlen)
{
    const double t_start = s_now_ms();
    const mg_wavernn_model_t *m = c->m;
    const int H = m->hidden, G = 3 * H, FH = m->frame_hidden, VH = m->voice_hidden;
    const int VE = m->voice_embed, VD = MG_WR_VOICE_DIM, PD = MG_WR_PRED_DIM;
    int64_t longest;
    if (s_check_stems(m, stems, n, &longest, err, errlen)) return -1;
    memset(&c->timing, 0, sizeof c->timing);
    const int want = probe ? probe->streams_per_block : 0;
    const int k = s_choose_spb(c->spb_ok, n, c->nsm, want);
    if (k < 0) return s_errf(err, errlen, "streams_per_block %d is not available on this device", want);
    s_plan_t p;
    s_plan(&p, n, s_frames_per_chunk(n, probe ? probe->frames_per_chunk : 0), probe && probe->q_in);
    p.spb_index = k;
    p.S = s_spb[k];
    p.blocks = (n + p.S - 1) / p.S;
    const int sync_each = probe && probe->logits;
    const int nchunks = (int)((longest + p.CT - 1) / p.CT);

    int rc = -1;
    s_consts_t hk = {};
    unsigned char *hin[2] = {0}, *hout[2] = {0}, *din = NULL, *dout = NULL;
    float *hlogits = NULL, *dlogits = NULL;
    float *a1 = NULL, *fv = NULL, *gx = NULL, *vx = NULL, *va = NULL, *vb = NULL, *coef = NULL, *feat = NULL;
    float *sh = NULL, *shprev = NULL, *sinvT = NULL;
    int32_t *sq = NULL, *scls = NULL;
    double *sy = NULL;
    int64_t *slen = NULL;
    uint64_t *sseed = NULL, *sstream = NULL;
    cudaEvent_t ev[2][5] = {{0}};
    if (s_consts_new(m, stems, n, temperature, &hk)) {
        s_errf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < 2; i++) {
        CK(cudaMallocHost((void **)&hin[i], p.in_bytes));
        memset(hin[i], 0, p.in_bytes);
        CK(cudaMallocHost((void **)&hout[i], p.out_bytes));
        for (int j = 0; j < 5; j++) CK(cudaEventCreate(&ev[i][j]));
    }
    CK(cudaMalloc((void **)&din, p.in_bytes));
    CK(cudaMalloc((void **)&dout, p.out_bytes));
    CK(cudaMalloc((void **)&a1, sizeof(float) * p.frame_pad * FH));
    CK(cudaMalloc((void **)&fv, sizeof(float) * p.frame_pad * FH));
    CK(cudaMalloc((void **)&gx, sizeof(float) * p.frame_pad * G));
    CK(cudaMalloc((void **)&vx, sizeof(float) * p.voice_pad * (VD + VE)));
    CK(cudaMalloc((void **)&va, sizeof(float) * p.voice_pad * VH));
    CK(cudaMalloc((void **)&vb, sizeof(float) * p.voice_pad * VH));
    CK(cudaMalloc((void **)&coef, sizeof(float) * p.voice_pad * PD));
    CK(cudaMalloc((void **)&feat, sizeof(float) * (size_t)n * p.CT * MG_CU_XP));
    /* padded GEMM rows are read: give them defined contents once */
    CK(cudaMemsetAsync(a1, 0, sizeof(float) * p.frame_pad * FH, c->st));
    CK(cudaMemsetAsync(fv, 0, sizeof(float) * p.frame_pad * FH, c->st));
    CK(cudaMemsetAsync(vx, 0, sizeof(float) * p.voice_pad * (VD + VE), c->st));
    CK(cudaMemsetAsync(va, 0, sizeof(float) * p.voice_pad * VH, c->st));
    CK(cudaMemsetAsync(vb, 0, sizeof(float) * p.voice_pad * VH, c->st));
    CK(cudaMemsetAsync(feat, 0, sizeof(float) * (size_t)n * p.CT * MG_CU_XP, c->st));
    if (sync_each) {
        CK(cudaMalloc((void **)&dlogits, sizeof(float) * (size_t)n * p.CT * MG_CU_L));
        hlogits = (float *)malloc(sizeof(float) * (size_t)n * p.CT * MG_CU_L);
        if (!hlogits) {
            s_errf(err, errlen, "out of memory");
            goto fail;
        }
    }
    /* state and per-stream constants */
    CK(cudaMalloc((void **)&sh, sizeof(float) * (size_t)n * H));
    CK(cudaMalloc((void **)&shprev, sizeof(float) * n));
    CK(cudaMalloc((void **)&sq, sizeof(int32_t) * n));
    CK(cudaMalloc((void **)&sy, sizeof(double) * n));
    CK(cudaMalloc((void **)&scls, sizeof(int32_t) * n));
    CK(cudaMalloc((void **)&slen, sizeof(int64_t) * n));
    CK(cudaMalloc((void **)&sseed, sizeof(uint64_t) * n));
    CK(cudaMalloc((void **)&sstream, sizeof(uint64_t) * n));
    CK(cudaMalloc((void **)&sinvT, sizeof(float) * n));
    CK(cudaMemsetAsync(sh, 0, sizeof(float) * (size_t)n * H, c->st));
    CK(cudaMemsetAsync(shprev, 0, sizeof(float) * n, c->st));
    CK(cudaMemsetAsync(sy, 0, sizeof(double) * n, c->st));
    s_k_fill_i32<<<s_grid(n), 256, 0, c->st>>>(sq, mg_wavernn_mulaw_encode(0.0f), n);
    CK(cudaGetLastError());
    CK(cudaMemcpyAsync(scls, hk.cls, sizeof(int32_t) * n, cudaMemcpyHostToDevice, c->st));
    CK(cudaMemcpyAsync(slen, hk.len, sizeof(int64_t) * n, cudaMemcpyHostToDevice, c->st));
    CK(cudaMemcpyAsync(sseed, hk.seed, sizeof(uint64_t) * n, cudaMemcpyHostToDevice, c->st));
    CK(cudaMemcpyAsync(sstream, hk.stream, sizeof(uint64_t) * n, cudaMemcpyHostToDevice, c->st));
    CK(cudaMemcpyAsync(sinvT, hk.invT, sizeof(float) * n, cudaMemcpyHostToDevice, c->st));
    CK(cudaStreamSynchronize(c->st));   /* the pageable copies read hk */

    c->timing.chunks = nchunks;
    c->timing.streams_per_block = p.S;
    c->timing.blocks = p.blocks;
    c->timing.steps = longest;
    for (int ch = 0; ch <= nchunks; ch++) {
        const int cur = ch & 1, prev = cur ^ 1;
        if (ch < nchunks) {
            const int64_t t0 = (int64_t)ch * p.CT;
            unsigned char *in = hin[cur];
            s_prep_chunk(m, stems, &p, t0, probe, in);
            const size_t rowsf = p.frame_rows, rowsv = p.voice_rows;
            CK(cudaEventRecord(ev[cur][0], c->st));
            CK(cudaMemcpyAsync(din, in, p.in_bytes, cudaMemcpyHostToDevice, c->st));
            /* frame MLP: cond -> a1 -> fv -> gx */
            CKB(s_gemm(c->blas, c->frame1_w, (const float *)(din + p.cond), a1, p.frame_pad, MG_WR_COND_DIM, FH));
            s_k_bias_act<<<s_grid(rowsf * FH), 256, 0, c->st>>>(a1, c->frame1_b, rowsf, FH, 1);
            CKB(s_gemm(c->blas, c->frame2_w, a1, fv, p.frame_pad, FH, FH));
            s_k_bias_act<<<s_grid(rowsf * FH), 256, 0, c->st>>>(fv, c->frame2_b, rowsf, FH, 1);
            CKB(s_gemm(c->blas, c->w_fv, fv, gx, p.frame_pad, FH, G));
            s_k_bias_act<<<s_grid(rowsf * G), 256, 0, c->st>>>(gx, c->b_ih, rowsf, G, 0);
            /* voice network: [vin, voice_emb] -> va -> vb -> coef */
            s_k_voice_gather<<<s_grid(rowsv * (VD + VE)), 256, 0, c->st>>>(
                vx, (const float *)(din + p.vin), (const int32_t *)(din + p.vemb), c->voice_emb, rowsv, VD, VE);
            CKB(s_gemm(c->blas, c->voice1_w, vx, va, p.voice_pad, VD + VE, VH));
            s_k_bias_act<<<s_grid(rowsv * VH), 256, 0, c->st>>>(va, c->voice1_b, rowsv, VH, 1);
            CKB(s_gemm(c->blas, c->voice2_w, va, vb, p.voice_pad, VH, VH));
            s_k_bias_act<<<s_grid(rowsv * VH), 256, 0, c->st>>>(vb, c->voice2_b, rowsv, VH, 1);
            CKB(s_gemm(c->blas, c->voice3_w, vb, coef, p.voice_pad, VH, PD));
            s_k_coef<<<s_grid(rowsv * PD), 256, 0, c->st>>>(coef, c->voice3_b, (const int32_t *)(din + p.vemb), rowsv);
            CK(cudaGetLastError());
            CK(cudaEventRecord(ev[cur][1], c->st));
            /* features */
            mg_cu_feat_args_t fa = {(const mg_cu_slot_t *)(din + p.slots), coef, scls, slen, feat, t0, p.CT, p.CF, n};
            s_k_features<<<s_grid((size_t)n * p.CT), 256, 0, c->st>>>(fa);
            CK(cudaGetLastError());
            CK(cudaEventRecord(ev[cur][2], c->st));
            /* the sample loop */
            mg_cu_sample_args_t sa = {c->wpack, c->emb, gx, feat, sinvT, sseed, sstream, slen,
                                      sh, shprev, sq, sy,
                                      (float *)(dout + p.out), (int32_t *)(dout + p.qout), (float *)(dout + p.pout),
                                      probe && probe->q_in ? (const int32_t *)(din + p.qf) : NULL, dlogits,
                                      t0, p.CT, p.CF, n, c->compand_den};
            CK(c->ks.launch(k, sa, p.blocks, c->st));
            CK(cudaEventRecord(ev[cur][3], c->st));
            CK(cudaMemcpyAsync(hout[cur], dout, p.out_bytes, cudaMemcpyDeviceToHost, c->st));
            CK(cudaEventRecord(ev[cur][4], c->st));
            if (sync_each) {
                CK(cudaEventSynchronize(ev[cur][4]));
                CK(cudaMemcpy(hlogits, dlogits, sizeof(float) * (size_t)n * p.CT * MG_CU_L, cudaMemcpyDeviceToHost));
                s_scatter(stems, &p, t0, hout[cur], hlogits, probe);
            }
        }
        /* the previous chunk's results, while this one runs */
        const int done = sync_each ? ch : ch - 1;
        const int slot = sync_each ? cur : prev;
        if (done >= 0 && done < nchunks) {
            float ms;
            CK(cudaEventSynchronize(ev[slot][4]));
            if (!sync_each) s_scatter(stems, &p, (int64_t)done * p.CT, hout[slot], NULL, probe);
            CK(cudaEventElapsedTime(&ms, ev[slot][0], ev[slot][1]));
            c->timing.frame_ms += ms;
            CK(cudaEventElapsedTime(&ms, ev[slot][1], ev[slot][2]));
            c->timing.features_ms += ms;
            CK(cudaEventElapsedTime(&ms, ev[slot][2], ev[slot][3]));
            c->timing.sample_ms += ms;
        }
    }
    rc = 0;
fail:
    if (rc != 0) cudaStreamSynchronize(c->st);
    for (int i = 0; i < 2; i++) {
        cudaFreeHost(hin[i]);
        cudaFreeHost(hout[i]);
        for (int j = 0; j < 5; j++)
            if (ev[i][j]) cudaEventDestroy(ev[i][j]);
    }
    void *dbufs[] = {din, dout, dlogits, a1, fv, gx, vx, va, vb, coef, feat, sh, shprev, sq, sy, scls, slen,
                     sseed, sstream, sinvT};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++) cudaFree(dbufs[i]);
    free(hlogits);
    s_consts_free(&hk);
    c->timing.total_ms = s_now_ms() - t_start;
    return rc;
}

int mg_wavernn_cuda_render(mg_wavernn_cuda_t *c, const mg_wavernn_stem_t *stems, int n,
                           float temperature, char *err, size_t errlen)
{
    return mg_wavernn_cuda_render_probe(c, stems, n, temperature, NULL, err, errlen);
}

/* ---- host emulation ---- */

int mg_wavernn_cuda_emulate(const mg_wavernn_model_t *m, const mg_wavernn_stem_t *stems, int n,
                            float temperature, const mg_wavernn_cuda_probe_t *probe, char *err,
                            size_t errlen)
{
    s_kset_t ks;
    int64_t longest;
    if (s_find_kset(m, &ks) != 0)
        return s_errf(err, errlen, "model '%s': no CUDA kernels for hidden %d, out_hidden %d", m->name,
                      m->hidden, m->out_hidden);
    if (s_check_stems(m, stems, n, &longest, err, errlen)) return -1;
    const int H = m->hidden, G = 3 * H, PD = MG_WR_PRED_DIM;
    int ok[MG_CU_NSPB] = {1, 1, 1, 1, 1};
    const int want = probe ? probe->streams_per_block : 0;
    const int k = s_choose_spb(ok, n, 132, want);   /* as on an H100 (132 SMs) */
    if (k < 0) return s_errf(err, errlen, "streams_per_block %d is not compiled (1, 2, 4, 8, 16)", want);
    s_plan_t p;
    s_plan(&p, n, s_frames_per_chunk(n, probe ? probe->frames_per_chunk : 0), probe && probe->q_in);
    p.spb_index = k;
    p.S = s_spb[k];
    p.blocks = (n + p.S - 1) / p.S;
    const int nchunks = (int)((longest + p.CT - 1) / p.CT);
    const int with_logits = probe && probe->logits;

    int rc = -1;
    s_consts_t hk = {};
    const float den = s_compand_den();
    float *wpack = (float *)malloc(sizeof(float) * ks.NW);
    unsigned char *in = (unsigned char *)malloc(p.in_bytes), *out = (unsigned char *)malloc(p.out_bytes);
    float *gx = (float *)malloc(sizeof(float) * p.frame_rows * G);
    float *coef = (float *)malloc(sizeof(float) * p.voice_rows * PD);
    float *feat = (float *)malloc(sizeof(float) * (size_t)n * p.CT * MG_CU_XP);
    float *logits = with_logits ? (float *)malloc(sizeof(float) * (size_t)n * p.CT * MG_CU_L) : NULL;
    float *sh = (float *)calloc((size_t)n * H, sizeof(float)), *shprev = (float *)calloc(n, sizeof(float));
    int32_t *sq = (int32_t *)malloc(sizeof(int32_t) * n);
    double *sy = (double *)calloc(n, sizeof(double));
    mg_wavernn_state_t *st = mg_wavernn_state_new(m);
    if (!wpack || !in || !out || !gx || !coef || !feat || (with_logits && !logits) || !sh || !shprev ||
        !sq || !sy || !st || s_consts_new(m, stems, n, temperature, &hk)) {
        s_errf(err, errlen, "out of memory");
        goto done;
    }
    ks.pack(m, wpack);
    for (int b = 0; b < n; b++) sq[b] = mg_wavernn_mulaw_encode(0.0f);
    for (int ch = 0; ch < nchunks; ch++) {
        const int64_t t0 = (int64_t)ch * p.CT;
        s_prep_chunk(m, stems, &p, t0, probe, in);
        /* frame MLP and voice network: the CPU reference in place of cuBLAS */
        const float *cond = (const float *)(in + p.cond), *vin = (const float *)(in + p.vin);
        const int32_t *vemb = (const int32_t *)(in + p.vemb);
        for (size_t bf = 0; bf < p.frame_rows; bf++) {
            mg_wavernn_frame_ref(m, st, cond + bf * MG_WR_COND_DIM);
            memcpy(gx + bf * G, st->gx, sizeof(float) * G);
            mg_wavernn_voice_ref(m, st, vin + bf * MG_CU_SLOTS * 2 * MG_WR_VOICE_DIM, vemb + bf * MG_CU_SLOTS);
            memcpy(coef + bf * MG_CU_SLOTS * 2 * PD, st->coef, sizeof(float) * MG_CU_SLOTS * 2 * PD);
        }
        memset(feat, 0xff, sizeof(float) * (size_t)n * p.CT * MG_CU_XP);   /* NaN: unwritten rows show */
        mg_cu_feat_args_t fa = {(const mg_cu_slot_t *)(in + p.slots), coef, hk.cls, hk.len, feat, t0, p.CT, p.CF, n};
        for (int b = 0; b < n; b++)
            for (int tt = 0; tt < p.CT; tt++) mg_cu_features_one(fa, b, tt);
        mg_cu_sample_args_t sa = {wpack, m->emb_gates, gx, feat, hk.invT, hk.seed, hk.stream, hk.len,
                                  sh, shprev, sq, sy,
                                  (float *)(out + p.out), (int32_t *)(out + p.qout), (float *)(out + p.pout),
                                  probe && probe->q_in ? (const int32_t *)(in + p.qf) : NULL, logits,
                                  t0, p.CT, p.CF, n, den};
        ks.emulate(k, sa, p.blocks, probe ? probe->reverse_threads : 0);
        s_scatter(stems, &p, t0, out, logits, probe);
    }
    rc = 0;
done:
    free(wpack);
    free(in);
    free(out);
    free(gx);
    free(coef);
    free(feat);
    free(logits);
    free(sh);
    free(shprev);
    free(sq);
    free(sy);
    mg_wavernn_state_destroy(&st);
    s_consts_free(&hk);
    return rc;
}

/* ---- self-test of the host-checkable pieces ---- */

int mg_wavernn_cuda_selftest(int n, char *err, size_t errlen)
{
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t seed = x, stream = x >> 40, index = (x * 2654435761u) >> (i % 40);
        if (mg_cu_philox_u32(seed, stream, index) != mg_philox_u32(seed, stream, index))
            return s_errf(err, errlen, "philox(seed %llu, stream %llu, index %llu): kernel copy differs "
                          "from philox.c", (unsigned long long)seed, (unsigned long long)stream,
                          (unsigned long long)index);
    }
    float thr[MG_CU_L];
    s_encode_thresholds(thr);
    for (int k = 1; k < MG_CU_L; k++) {
        if (!(thr[k] > thr[k - 1]))
            return s_errf(err, errlen, "mu-law thresholds not increasing at level %d", k);
        const float probes[3] = {thr[k], nextafterf(thr[k], -INFINITY), nextafterf(thr[k], INFINITY)};
        for (int j = 0; j < 3; j++)
            if (s_host_encode(thr, probes[j]) != mg_wavernn_mulaw_encode(probes[j]))
                return s_errf(err, errlen, "mu-law encode of %.9g: table %d, wavernn.c %d", (double)probes[j],
                              s_host_encode(thr, probes[j]), mg_wavernn_mulaw_encode(probes[j]));
    }
    const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 1e-30f, -1e-30f, INFINITY, -INFINITY};
    for (size_t j = 0; j < sizeof special / sizeof special[0]; j++)
        if (s_host_encode(thr, special[j]) != mg_wavernn_mulaw_encode(special[j]))
            return s_errf(err, errlen, "mu-law encode of %g: table %d, wavernn.c %d", (double)special[j],
                          s_host_encode(thr, special[j]), mg_wavernn_mulaw_encode(special[j]));
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        float v = (float)((double)(x >> 11) / 9007199254740992.0 * 2.4 - 1.2);
        if (i & 1) v *= 1e-3f;
        if (s_host_encode(thr, v) != mg_wavernn_mulaw_encode(v))
            return s_errf(err, errlen, "mu-law encode of %.9g: table %d, wavernn.c %d", (double)v,
                          s_host_encode(thr, v), mg_wavernn_mulaw_encode(v));
    }
    return 0;
}
