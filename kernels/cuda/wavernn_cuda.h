/* wavernn_cuda.h - the neural renderer on an NVIDIA GPU: the same model, features and
 * Philox draws as the CPU runtime (kernels/wavernn.h), for a batch of stems at once. The CPU
 * reference (wavernn_ref.c) is the oracle; tests/cuda/test_cuda.c checks this path against it.
 *
 * Flow of mg_wavernn_cuda_render(), per chunk of frames (bench/cuda/README.md has the design):
 *   CPU: slots, frame cond, voice inputs, tuned note frequencies (wavernn.c, exact) -> pinned
 *   GPU: cuBLAS frame MLP (cond -> fv -> gx = w_fv fv + b_ih) and voice network (-> harmonic
 *        amplitudes), all frames of all streams at once; a features kernel (oscillators,
 *        excitation, harmonic prediction, one thread per sample); then the persistent sampling
 *        kernel: one thread block owns a group of streams and runs their autoregressive loop
 *        (GRU, head, softmax, Philox draw, mu-law) with the recurrent weights in shared memory.
 * The kernels' bodies are __host__ __device__ code; mg_wavernn_cuda_emulate() runs the very same
 * bodies on the CPU (no GPU needed), which is how this file's logic is tested on machines
 * without a GPU.
 *
 * Link: build/cuda/wavernn_cuda.o with -lcublas -lcudart_static (Makefile target `cuda`).
 */
#ifndef MG_WAVERNN_CUDA_H
#define MG_WAVERNN_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {   /* wavernn.h has no guards of its own: C linkage for the whole CPU runtime */
#endif

#include "kernels/wavernn.h"

#define MG_WR_CUDA_MAX_BATCH 4096   /* stems per mg_wavernn_cuda_render call */

typedef struct mg_wavernn_cuda mg_wavernn_cuda_t;

/* Test and bench hooks of a render; every field may be zero/NULL. */
typedef struct {
    const int32_t *const *q_in;  /* (n stems) each (n_samples): teacher forcing: the previous
                                  * level fed to step t is q_in[stem][t] instead of the drawn one */
    float *const *logits;        /* (n stems) each (n_samples, MG_WR_LEVELS): logits of every step */
    int streams_per_block;       /* 0: chosen from the batch and the device; else 1, 2, 4, 8, 16 */
    int frames_per_chunk;        /* 0: chosen from the batch; else the chunk length in frames */
    int reverse_threads;         /* emulation only: run each phase's threads last to first (a
                                  * result that changes with the order reveals a race) */
} mg_wavernn_cuda_probe_t;

/* Time spent in the last render (filled by mg_wavernn_cuda_render), milliseconds. */
typedef struct {
    double total_ms;     /* wall clock of the whole call */
    double frame_ms;     /* GPU: uploads, cuBLAS frame MLP and voice network (device events) */
    double features_ms;  /* GPU: the features kernel */
    double sample_ms;    /* GPU: the sampling kernel */
    int64_t steps;       /* sampling-kernel steps (the longest stem's samples) */
    int chunks, streams_per_block, blocks;
} mg_wavernn_cuda_timing_t;

/* 1 when a CUDA device this build can run on is present; 0 otherwise, with the reason in why
 * ("no CUDA device: cudaGetDeviceCount: ..."). Never fails otherwise; cheap after the first call. */
int mg_wavernn_cuda_available(char *why, size_t whylen);

/* Creates a context on the current device for model m (borrowed: it must outlive the context):
 * uploads and repacks the weights. 0 and *out (owned by the caller, mg_wavernn_cuda_destroy), or
 * -1 with a message in err (no device, a model size without compiled kernels, out of memory). */
int mg_wavernn_cuda_new(const mg_wavernn_model_t *m, mg_wavernn_cuda_t **out, char *err,
                        size_t errlen);
void mg_wavernn_cuda_destroy(mg_wavernn_cuda_t **ctx_p);

/* Renders n (1..MG_WR_CUDA_MAX_BATCH) stems like mg_wavernn_render: same features, temperature
 * temperature * class_temperature[cls], draws keyed by (seed, stream, sample); fills out, q_out
 * and pred_out of every stem. A stem's output does not depend on the other stems of the batch.
 * Device buffers are allocated once per call. 0, or -1 with a message in err. */
int mg_wavernn_cuda_render(mg_wavernn_cuda_t *ctx, const mg_wavernn_stem_t *stems, int n,
                           float temperature, char *err, size_t errlen);
/* The same with test hooks (probe may be NULL). */
int mg_wavernn_cuda_render_probe(mg_wavernn_cuda_t *ctx, const mg_wavernn_stem_t *stems, int n,
                                 float temperature, const mg_wavernn_cuda_probe_t *probe,
                                 char *err, size_t errlen);
/* Timing of the context's last render. */
void mg_wavernn_cuda_last_timing(const mg_wavernn_cuda_t *ctx, mg_wavernn_cuda_timing_t *t);

/* Runs the CUDA path's kernel bodies on the CPU, one phase at a time over every thread of a
 * block (the frame MLP and voice network by wavernn_ref.c in place of cuBLAS): same buffers,
 * layouts, chunking and per-thread arithmetic as the device. Slow; for tests. Same contract as
 * mg_wavernn_cuda_render_probe. Needs no GPU. */
int mg_wavernn_cuda_emulate(const mg_wavernn_model_t *m, const mg_wavernn_stem_t *stems, int n,
                            float temperature, const mg_wavernn_cuda_probe_t *probe, char *err,
                            size_t errlen);

/* Host checks of the pieces the device computes its own way: Philox (the kernels' copy against
 * kernels/philox.c) and the mu-law encoder by threshold table (against mg_wavernn_mulaw_encode on
 * every threshold and its neighbours and on n random floats). 0, or -1 with the first mismatch. */
int mg_wavernn_cuda_selftest(int n, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
