/* cuda_bench.cu - speed of the GPU renderer (kernels/cuda/) on the machine it runs on: samples/s
 * for one stream and in aggregate for batches 1..1024, the real-time factor, and the achieved
 * step time next to three floors measured or computed on the same device:
 *   barrier floor  6 barrier-separated phases per step x one __syncthreads round (measured here);
 *   smem floor     the weights each step reads from shared memory / 128 bytes per clock per SM;
 *   FLOP floor     the per-sample multiply-adds (models/README.md) / the SMs' fp32 FMA rate.
 * Prints the device, the model and the CPU runtime's figure at batch 1 for reference.
 *   build/bench/cuda_bench [MODEL.mgnn | --random] [--seconds S] [--batches 1,2,4,...] [--spb S]
 * (default: models/default/mg-wavernn.mgnn, else a random model of the same sizes; 1 s per
 * stem; batches 1,2,4,...,1024; streams per block chosen by the runtime, or forced to S = 1, 2,
 * 4, 8 or 16 to choose that rule by measurement). bench/cuda/README.md records the figures.
 */
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/wavernn_cuda.h"
extern "C" {
#include "tests/cuda/random_model.h"
}

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "cuda_bench: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,              \
                    cudaGetErrorString(e_));                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One __syncthreads round of 512 threads with a shared-memory dependency across threads (what
 * each phase of the sampling kernel pays): iters rounds, the time read by the caller. */
__global__ void s_k_barrier(float *out, int iters)
{
    __shared__ float v[512];
    const int t = threadIdx.x;
    v[t] = (float)t;
    __syncthreads();
    float acc = 0.0f;
    for (int i = 0; i < iters; i++) {
        acc += v[(t + i + 1) & 511];
        __syncthreads();
        v[t] = acc;
        __syncthreads();
    }
    out[t] = acc;
}

/* Dependent loads through L2 (L1 squeezed by a large dynamic shared-memory request, as in the
 * sampling kernel): the latency the emb_gates row and the frame gx add to each step. */
__global__ void s_k_chase(const int *next, int iters, int *out)
{
    extern __shared__ float pad[];
    int j = 0;
    for (int i = 0; i < iters; i++) j = __ldg(&next[j]);
    if (threadIdx.x == 0) out[0] = j + (int)pad[0];
}

static float s_time_barrier(void)
{
    float *d;
    cudaEvent_t a, b;
    CK(cudaMalloc(&d, 512 * sizeof(float)));
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    s_k_barrier<<<1, 512>>>(d, 1000);
    CK(cudaEventRecord(a));
    s_k_barrier<<<1, 512>>>(d, 100000);
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    cudaFree(d);
    return ms * 1e6f / 200000.0f;   /* ns per round (two barriers per iteration) */
}

static float s_time_l2(void)
{
    enum { N = 1 << 16 };   /* 256 KB: in L2, not in the L1 left beside 200 KB of smem */
    int *h = (int *)malloc(sizeof(int) * N), *d, *o;
    for (int i = 0; i < N; i++) h[i] = (i + 4099) % N;   /* stride of 16 KB + 12 B */
    CK(cudaMalloc(&d, sizeof(int) * N));
    CK(cudaMalloc(&o, sizeof(int)));
    CK(cudaMemcpy(d, h, sizeof(int) * N, cudaMemcpyHostToDevice));
    const int smem = 200 * 1024;
    CK(cudaFuncSetAttribute(s_k_chase, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    s_k_chase<<<1, 32, smem>>>(d, 1000, o);
    CK(cudaEventRecord(a));
    s_k_chase<<<1, 32, smem>>>(d, 100000, o);
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    cudaFree(d);
    cudaFree(o);
    free(h);
    return ms * 1e6f / 100000.0f;
}

/* A score for stem b: a phrase of 4-note chords in class b % 6 (drums every 7th stem). */
static mg_wavernn_note_t *s_score(int b, size_t samples, size_t *n)
{
    size_t cap = samples / 3000 * 4 + 8, k = 0;
    mg_wavernn_note_t *notes = (mg_wavernn_note_t *)malloc(sizeof *notes * cap);
    for (int64_t on = 0; on + 100 < (int64_t)samples && k + 4 <= cap; on += 3000)
        for (int v = 0; v < 4; v++) {
            const mg_wavernn_note_t nt = {on + 37 * v, on + 2400 + 37 * v,
                                          48 + (b * 5 + v * 4 + (int)(on / 3000)) % 36, 40 + (b * 13 + v * 17) % 80};
            notes[k++] = nt;
        }
    *n = k;
    return notes;
}

int main(int argc, char **argv)
{
    const char *path = "models/default/mg-wavernn.mgnn";
    int random = 0;
    double seconds = 1.0;
    int batches[16] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}, nb = 11, spb = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--random")) random = 1;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--spb") && i + 1 < argc) spb = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            nb = 0;
            for (char *p = strtok(argv[++i], ","); p && nb < 16; p = strtok(NULL, ",")) batches[nb++] = atoi(p);
        } else if (argv[i][0] != '-') path = argv[i];
        else {
            fprintf(stderr, "usage: cuda_bench [MODEL.mgnn | --random] [--seconds S] [--batches 1,2,4] [--spb S]\n");
            return 2;
        }
    }
    char why[512], err[512];
    if (!mg_wavernn_cuda_available(why, sizeof why)) {
        fprintf(stderr, "cuda_bench: %s\n", why);
        return 1;
    }
    mg_wavernn_model_t *m = NULL;
    if (random || mg_wavernn_load(path, &m, err, sizeof err) != 0) {
        if (!random) fprintf(stderr, "cuda_bench: %s; using a random model of the default sizes\n", err);
        if (!(m = mg_test_random_model(1, err, sizeof err))) {
            fprintf(stderr, "cuda_bench: %s\n", err);
            return 1;
        }
    }
    int dev, clock_khz;
    cudaDeviceProp p;
    CK(cudaGetDevice(&dev));
    CK(cudaGetDeviceProperties(&p, dev));
    CK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev));
    const double clock = clock_khz * 1e3;
    const int H = m->hidden, G = 3 * H, O = m->out_hidden, L = MG_WR_LEVELS, X = MG_WR_IN_DIM;
    const double mac = (double)G * X + (double)G * H + (double)O * H + (double)L * O;   /* per sample */
    const double smem_bytes = 4.0 * ((double)G * H + 32.0 * G + (double)O * H + (double)L * O);
    const float bar_ns = s_time_barrier(), l2_ns = s_time_l2();
    const double floor_bar = 6 * bar_ns * 1e-9, floor_smem = smem_bytes / (128.0 * clock);
    printf("device: %s, %d SMs, %.0f MHz peak clock, %zu KB smem/block opt-in, %d MB L2\n", p.name,
           p.multiProcessorCount, clock / 1e6, (size_t)p.sharedMemPerBlockOptin / 1024, p.l2CacheSize >> 20);
    printf("model: %s (H %d, O %d): %.0f multiply-adds per sample in the step\n", m->name, H, O, mac);
    printf("measured: __syncthreads round of 512 threads %.1f ns; dependent L2 load %.1f ns\n", bar_ns, l2_ns);
    printf("floors per step: barriers 6 x %.1f ns = %.2f us; smem weights %.0f KB at 128 B/clk = %.2f us; "
           "FLOP (one SM) %.2f us; aggregate FLOP ceiling %.3g samples/s\n",
           bar_ns, floor_bar * 1e6, smem_bytes / 1024, floor_smem * 1e6, mac / (128.0 * clock) * 1e6,
           p.multiProcessorCount * 128.0 * clock / mac);

    mg_wavernn_cuda_t *ctx = NULL;
    if (mg_wavernn_cuda_new(m, &ctx, err, sizeof err) != 0) {
        fprintf(stderr, "cuda_bench: %s\n", err);
        return 1;
    }
    const size_t N = (size_t)(seconds * MG_WR_SR);
    int maxb = 0;
    for (int i = 0; i < nb; i++) maxb = batches[i] > maxb ? batches[i] : maxb;
    if (maxb > MG_WR_CUDA_MAX_BATCH) maxb = MG_WR_CUDA_MAX_BATCH;
    mg_wavernn_stem_t *st = (mg_wavernn_stem_t *)calloc(maxb, sizeof *st);
    float *out = (float *)malloc(sizeof(float) * N * maxb);
    if (!st || !out) {
        fprintf(stderr, "cuda_bench: out of memory for %d stems of %zu samples\n", maxb, N);
        return 1;
    }
    for (int b = 0; b < maxb; b++) {
        size_t nn;
        mg_wavernn_note_t *notes = s_score(b, N, &nn);
        const mg_wavernn_stem_t one = {notes, nn, b % 7 == 6 ? 6 : b % 6, 1234, (uint64_t)b, N, out + (size_t)b * N,
                                       NULL, NULL};
        st[b] = one;
    }

    /* the CPU runtime at batch 1, for reference */
    {
        size_t nc = N < 24000 ? N : 24000;
        mg_wavernn_stem_t one = st[0];
        one.n_samples = nc;
        double t0 = s_now();
        mg_wavernn_render(m, &one, 1, 1.0f, mg_wavernn_isa());
        double dt = s_now() - t0;
        printf("CPU %s path, batch 1: %.0f samples/s\n", mg_wavernn_isa() == MG_WR_ISA_AVX2 ? "AVX2" : "scalar",
               nc / dt);
    }
    /* warm-up: module load, cuBLAS handles, first allocations */
    if (mg_wavernn_cuda_render(ctx, st, 1, 1.0f, err, sizeof err) != 0) {
        fprintf(stderr, "cuda_bench: %s\n", err);
        return 1;
    }
    printf("\n%6s %4s %6s %12s %14s %9s %10s %10s %8s %8s %8s\n", "batch", "S", "blocks", "samples/s", "aggregate",
           "RTF/str", "step us", "kernel us", "xbar", "xsmem", "frame%");
    for (int i = 0; i < nb; i++) {
        const int B = batches[i] < maxb ? batches[i] : maxb;
        mg_wavernn_cuda_probe_t probe = {NULL, NULL, spb, 0, 0};
        if (mg_wavernn_cuda_render_probe(ctx, st, B, 1.0f, &probe, err, sizeof err) != 0) {
            fprintf(stderr, "cuda_bench: batch %d: %s\n", B, err);
            return 1;
        }
        mg_wavernn_cuda_timing_t t;
        mg_wavernn_cuda_last_timing(ctx, &t);
        const double per = (double)N / (t.total_ms * 1e-3), step_us = t.sample_ms * 1e3 / (double)t.steps;
        printf("%6d %4d %6d %12.0f %14.0f %9.2f %10.3f %10.3f %8.2f %8.2f %7.1f%%\n", B, t.streams_per_block,
               t.blocks, per, per * B, per / MG_WR_SR, t.total_ms * 1e3 / (double)t.steps, step_us,
               step_us / (floor_bar * 1e6), step_us / (floor_smem * 1e6),
               100.0 * (t.frame_ms + t.features_ms) / t.total_ms);
    }
    printf("\nsamples/s: per stream, end to end (CPU frame features, uploads, cuBLAS, kernels, copies);\n"
           "aggregate = batch x per stream; RTF/str = per-stream samples/s / 24000; step us = wall time per\n"
           "sample step; kernel us = the sampling kernel alone per step (device events); xbar, xsmem = kernel\n"
           "step over the barrier and smem floors; frame%% = share of frame MLP, voice net and features.\n"
           "Targets (H100): >= 250,000 samples/s for one stream, >= 25,000,000 aggregate.\n");
    for (int b = 0; b < maxb; b++) free((void *)st[b].notes);
    free(st);
    free(out);
    mg_wavernn_cuda_destroy(&ctx);
    mg_wavernn_destroy(&m);
    return 0;
}
