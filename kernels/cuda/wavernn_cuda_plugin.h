/* wavernn_cuda_plugin.h - the C ABI of build/cuda/libmg-wavernn-cuda.so: the GPU
 * renderer of wavernn_cuda.h behind one exported symbol, so that mg-worker can dlopen it when a
 * GPU is there and never link CUDA itself (worker/backend.c loads it; docs/architecture.md).
 *
 * The worker calls mg_wavernn_cuda_plugin(MG_WR_CUDA_PLUGIN_ABI); a plugin of another ABI, or
 * built against other layouts of the model and stem structs, returns NULL or a table whose
 * sizes do not match, and the worker refuses it. Pure C: no CUDA header is needed to use it.
 */
#ifndef MG_WAVERNN_CUDA_PLUGIN_H
#define MG_WAVERNN_CUDA_PLUGIN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/wavernn.h"

#define MG_WR_CUDA_PLUGIN_ABI 1
#define MG_WR_CUDA_PLUGIN_SYMBOL "mg_wavernn_cuda_plugin"
#define MG_WR_CUDA_PLUGIN_FILE "libmg-wavernn-cuda.so"

typedef struct mg_wavernn_cuda_plugin_ctx mg_wavernn_cuda_plugin_ctx_t;

typedef struct {
    int abi_version;     /* MG_WR_CUDA_PLUGIN_ABI */
    size_t model_size;   /* sizeof(mg_wavernn_model_t) the plugin was compiled with */
    size_t stem_size;    /* sizeof(mg_wavernn_stem_t) */
    int max_batch;       /* stems per render call (MG_WR_CUDA_MAX_BATCH) */
    /* 1 with the device in device ("NVIDIA H100 80GB HBM3 (sm_90)"), or 0 with the reason in
     * why ("no CUDA device: cudaGetDeviceCount: ..."). device and why may be NULL. */
    int (*available)(char *device, size_t devlen, char *why, size_t whylen);
    /* Uploads model m (borrowed: it must outlive the context). The context (owned by the caller,
     * close) serialises its renders: it may be called from several threads. NULL with err. */
    mg_wavernn_cuda_plugin_ctx_t *(*open)(const mg_wavernn_model_t *m, char *err, size_t errlen);
    /* mg_wavernn_cuda_render: n (1..max_batch) stems, same features and keyed draws as the CPU
     * runtime. 0, or -1 with err. */
    int (*render)(mg_wavernn_cuda_plugin_ctx_t *ctx, const mg_wavernn_stem_t *stems, int n,
                  float temperature, char *err, size_t errlen);
    /* Frees the context and sets *ctx_p to NULL. NULL-safe. */
    void (*close)(mg_wavernn_cuda_plugin_ctx_t **ctx_p);
} mg_wavernn_cuda_plugin_t;

/* The table (static, never freed) when abi_version is MG_WR_CUDA_PLUGIN_ABI; NULL otherwise. */
typedef const mg_wavernn_cuda_plugin_t *(*mg_wavernn_cuda_plugin_fn)(int abi_version);
const mg_wavernn_cuda_plugin_t *mg_wavernn_cuda_plugin(int abi_version);

#ifdef __cplusplus
}
#endif

#endif
