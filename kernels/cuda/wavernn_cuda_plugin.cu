/* wavernn_cuda_plugin.cu - the exported face of libmg-wavernn-cuda.so (wavernn_cuda_plugin.h):
 * wraps wavernn_cuda.h in a function table and a mutex per context. Host code only; the .so also
 * carries its own PIC copy of the kernels/ C sources and cudart, and exports this one symbol.
 */
#include "kernels/cuda/wavernn_cuda_plugin.h"

#include <cuda_runtime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda/wavernn_cuda.h"

struct mg_wavernn_cuda_plugin_ctx {
    mg_wavernn_cuda_t *cu;
    pthread_mutex_t lock;   /* one render at a time: the context owns one stream and its timing */
};

static int s_available(char *device, size_t devlen, char *why, size_t whylen)
{
    char reason[512];
    int ok = mg_wavernn_cuda_available(reason, sizeof reason);
    if (why && whylen) snprintf(why, whylen, "%s", reason);
    if (ok && device && devlen) {
        int dev = 0;
        cudaDeviceProp p;
        if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&p, dev) == cudaSuccess)
            snprintf(device, devlen, "%s (sm_%d%d)", p.name, p.major, p.minor);
        else
            snprintf(device, devlen, "CUDA device %d", dev);
    }
    return ok;
}

static mg_wavernn_cuda_plugin_ctx_t *s_open(const mg_wavernn_model_t *m, char *err, size_t errlen)
{
    mg_wavernn_cuda_plugin_ctx_t *c = (mg_wavernn_cuda_plugin_ctx_t *)calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (mg_wavernn_cuda_new(m, &c->cu, err, errlen) != 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static int s_render(mg_wavernn_cuda_plugin_ctx_t *c, const mg_wavernn_stem_t *stems, int n, float temperature,
                    char *err, size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    int rc = mg_wavernn_cuda_render(c->cu, stems, n, temperature, err, errlen);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static void s_close(mg_wavernn_cuda_plugin_ctx_t **c_p)
{
    if (!c_p || !*c_p) return;
    mg_wavernn_cuda_destroy(&(*c_p)->cu);
    pthread_mutex_destroy(&(*c_p)->lock);
    free(*c_p);
    *c_p = NULL;
}

static const mg_wavernn_cuda_plugin_t s_table = {
    MG_WR_CUDA_PLUGIN_ABI, sizeof(mg_wavernn_model_t), sizeof(mg_wavernn_stem_t), MG_WR_CUDA_MAX_BATCH,
    s_available, s_open, s_render, s_close,
};

extern "C" __attribute__((visibility("default"))) const mg_wavernn_cuda_plugin_t *mg_wavernn_cuda_plugin(int abi_version)
{
    return abi_version == MG_WR_CUDA_PLUGIN_ABI ? &s_table : NULL;
}
