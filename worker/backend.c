/* backend.c - backend selection for the neural renderer (backend.h): parses the setting and
 * loads the CUDA plugin with dlopen. Nothing here links CUDA: a machine without it gets a reason,
 * never a loader error at start.
 */
#include "backend.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"

int mg_backend_parse(const char *s, mg_backend_kind_t *out)
{
    static const char *const names[] = {"auto", "cpu", "cuda"};
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (mg_backend_kind_t)i;
            return 0;
        }
    return -1;
}

const char *mg_backend_kind_name(mg_backend_kind_t k)
{
    return k == MG_BACKEND_CPU ? "cpu" : k == MG_BACKEND_CUDA ? "cuda" : "auto";
}

/* dlopens path and checks the table. 0 and *b filled (device not asked yet), or -1 with why. */
static int s_load(const char *path, mg_backend_cuda_t *b, char *why, size_t whylen)
{
    /* NODELETE: cudart registers exit handlers inside the plugin; it must outlive them. */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!dl) {
        const char *e = dlerror();
        snprintf(why, whylen, "CUDA plugin %s cannot be loaded: %s", path, e ? e : "unknown dlopen error");
        return -1;
    }
    mg_wavernn_cuda_plugin_fn fn = (mg_wavernn_cuda_plugin_fn)dlsym(dl, MG_WR_CUDA_PLUGIN_SYMBOL);
    const mg_wavernn_cuda_plugin_t *api = fn ? fn(MG_WR_CUDA_PLUGIN_ABI) : NULL;
    if (!fn || !api || api->abi_version != MG_WR_CUDA_PLUGIN_ABI || api->model_size != sizeof(mg_wavernn_model_t) ||
        api->stem_size != sizeof(mg_wavernn_stem_t) || !api->available || !api->open || !api->render ||
        !api->close || api->max_batch < 1) {
        snprintf(why, whylen, "CUDA plugin %s is not a plugin of this mg-worker (%s; ABI %d wanted): rebuild it "
                 "with `make` from the same tree", path, !fn ? "no " MG_WR_CUDA_PLUGIN_SYMBOL " symbol"
                 : !api ? "it refused the ABI version" : "struct layouts differ", MG_WR_CUDA_PLUGIN_ABI);
        dlclose(dl);
        return -1;
    }
    b->dl = dl;
    b->api = api;
    mg_strlcpy(b->path, path, sizeof b->path);
    return 0;
}

int mg_backend_cuda_open(mg_backend_cuda_t **out, char *why, size_t whylen)
{
    *out = NULL;
    mg_backend_cuda_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    const char *env = getenv("MG_CUDA_PLUGIN");
    int rc = -1;
    if (env && *env) {
        struct stat sb;
        if (stat(env, &sb) != 0 || !S_ISREG(sb.st_mode))
            snprintf(why, whylen, "CUDA plugin not found: MG_CUDA_PLUGIN=%s is not a file", env);
        else
            rc = s_load(env, b, why, whylen);
    } else {
        static const char *const rel[] = {"/", "/../lib/", "/../build/cuda/"};
        char exe[PATH_MAX], cand[PATH_MAX + 64], searched[3 * (PATH_MAX + 64)] = "";
        ssize_t got = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (got <= 0) {
            snprintf(why, whylen, "CUDA plugin not found: cannot read /proc/self/exe to search beside the binary "
                     "(set MG_CUDA_PLUGIN to the path of %s)", MG_WR_CUDA_PLUGIN_FILE);
        } else {
            exe[got] = 0;
            char *slash = strrchr(exe, '/');
            if (slash) *slash = 0;
            size_t used = 0;
            int found = 0;
            for (int i = 0; i < 3 && !found; i++) {
                snprintf(cand, sizeof cand, "%s%s%s", exe, rel[i], MG_WR_CUDA_PLUGIN_FILE);
                struct stat sb;
                if (stat(cand, &sb) == 0 && S_ISREG(sb.st_mode)) {
                    char real[PATH_MAX];
                    found = 1;
                    rc = s_load(realpath(cand, real) ? real : cand, b, why, whylen);
                } else {
                    int k = snprintf(searched + used, sizeof searched - used, "%s%s", i ? ", " : "", cand);
                    if (k > 0 && (size_t)k < sizeof searched - used) used += (size_t)k;
                }
            }
            if (!found)
                snprintf(why, whylen, "CUDA plugin not found: %s is in none of %s (build it with `make` on a "
                         "machine with nvcc, or set MG_CUDA_PLUGIN)", MG_WR_CUDA_PLUGIN_FILE, searched);
        }
    }
    if (rc == 0) {
        char reason[512] = "";
        if (!b->api->available(b->device, sizeof b->device, reason, sizeof reason)) {
            snprintf(why, whylen, "CUDA plugin %s loaded, but %s", b->path, reason[0] ? reason : "it reports no device");
            rc = -1;
        } else {
            snprintf(why, whylen, "%s", reason);
        }
    }
    if (rc != 0) {
        mg_backend_cuda_close(&b);
        return -1;
    }
    *out = b;
    return 0;
}

void mg_backend_cuda_close(mg_backend_cuda_t **b_p)
{
    if (!b_p || !*b_p) return;
    if ((*b_p)->dl) dlclose((*b_p)->dl);
    free(*b_p);
    *b_p = NULL;
}

int mg_backend_select(mg_backend_kind_t kind, mg_backend_cuda_t **out, char *why, size_t whylen)
{
    *out = NULL;
    if (whylen) why[0] = 0;
    if (kind == MG_BACKEND_CPU) {
        snprintf(why, whylen, "backend cpu requested");
        return 0;
    }
    int rc = mg_backend_cuda_open(out, why, whylen);
    return kind == MG_BACKEND_CUDA ? rc : 0;
}
