/* backend.h - where the neural renderer runs: "cpu" (kernels/wavernn.h, always there)
 * or "cuda" (the plugin build/cuda/libmg-wavernn-cuda.so of kernels/cuda/wavernn_cuda_plugin.h,
 * loaded with dlopen, so mg-worker itself never links CUDA and runs where CUDA is absent).
 * worker/main.c picks the backend at start (--backend, MG_BACKEND, mg.conf `backend`) and hands
 * a loaded plugin to the renderer (render_wavernn.h); worker/backend.c.
 */
#ifndef MG_BACKEND_H
#define MG_BACKEND_H

#include <limits.h>
#include <stddef.h>

#include "../kernels/cuda/wavernn_cuda_plugin.h"

typedef enum {
    MG_BACKEND_AUTO = 0,  /* CUDA when the plugin loads and reports a device, else CPU */
    MG_BACKEND_CPU,       /* never touches CUDA */
    MG_BACKEND_CUDA,      /* CUDA or a startup error */
} mg_backend_kind_t;

/* A loaded plugin with a usable device. */
typedef struct {
    void *dl;                               /* dlopen handle (never unloaded: cudart's exit hooks) */
    const mg_wavernn_cuda_plugin_t *api;    /* the plugin's table, static in the plugin */
    char path[PATH_MAX];                    /* the file that was loaded */
    char device[160];                       /* "NVIDIA H100 80GB HBM3 (sm_90)" */
} mg_backend_cuda_t;

/* "auto", "cpu" or "cuda" into *out: 0, or -1 for anything else (NULL included). */
int mg_backend_parse(const char *s, mg_backend_kind_t *out);
/* "auto", "cpu", "cuda". */
const char *mg_backend_kind_name(mg_backend_kind_t k);

/* Finds and loads the plugin and asks it for a device. Search: $MG_CUDA_PLUGIN alone when set
 * (a path to the file); else MG_WR_CUDA_PLUGIN_FILE in EXE/, EXE/../lib/, EXE/../build/cuda/,
 * EXE being the folder of the running executable. 0 and *out (owned by the caller,
 * mg_backend_cuda_close); or -1 with the reason in why, naming what is missing: the file
 * (with the places searched), the dlopen error, a wrong ABI, or the device's absence. */
int mg_backend_cuda_open(mg_backend_cuda_t **out, char *why, size_t whylen);
/* Frees a plugin from mg_backend_cuda_open and sets *b_p to NULL. NULL-safe. */
void mg_backend_cuda_close(mg_backend_cuda_t **b_p);

/* Applies kind: cpu: 0 and *out NULL, nothing loaded. cuda: mg_backend_cuda_open (0 or -1 with
 * why). auto: mg_backend_cuda_open; when it fails, 0 with *out NULL and the reason in why (the
 * caller logs it). */
int mg_backend_select(mg_backend_kind_t kind, mg_backend_cuda_t **out, char *why, size_t whylen);

#endif
