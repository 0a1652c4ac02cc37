/* main.c - mg-worker: resolves its settings (flags > environment > mg.conf > defaults,
 * common/config.h), chooses the renderer and its backend, then runs the worker of worker.h
 * until SIGTERM has drained it. The connection loop, render threads and uploads are worker.c.
 *
 * The renderer (render.h) is chosen at start: "wavernn" by default, whose model file is
 * loaded once here and shared read-only by every render thread (a worker that cannot load
 * it exits, naming the path), or "synth". So is wavernn's backend (backend.h): auto renders on
 * the GPU when the CUDA plugin loads and finds a device, else on the CPU with the reason
 * logged; cuda makes a missing plugin or device a startup error; cpu never loads the plugin.
 * READY and every RESULT name the backend and device that rendered.
 *
 * SIGTERM (or SIGINT): mg_worker_stop, so the worker stops accepting leases (READY with
 * capacity 0), finishes what is rendering and delivering (up to --drain-s), hands back what
 * has not started (FAIL retryable), then DISCONNECTs. A second signal exits at once.
 * A bad setting exits 2 with its value and where it came from; a model or backend that
 * cannot be loaded exits 1.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/curve.h"
#include "../common/protocol.h"
#include "../common/util.h"
#include "backend.h"
#include "render.h"
#include "render_wavernn.h"
#include "upload.h"
#include "worker.h"

static mg_worker_t *volatile s_worker;
static volatile sig_atomic_t s_signals;

static void s_on_signal(int sig)
{
    (void)sig;
    if (s_signals) _exit(130); /* second signal: leave now */
    s_signals = 1;
    if (s_worker) mg_worker_stop(s_worker);
}

/* An integer setting in lo..hi into *out; or, on stderr, what was wrong with it, the value
 * and where it came from (mg_config_int), and -1. */
static int s_int(const char *key, const char *flag, const char *env, const char *dflt, long lo, long hi, int *out)
{
    long v;
    char err[4600];
    if (mg_config_int(key, flag, env, dflt, lo, hi, &v, err, sizeof err) != 0) {
        fprintf(stderr, "mg-worker: %s\n", err);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Where the setting's value came from, for messages ("--backend", "MG_BACKEND", "FILE:LINE",
 * "the default"). The string is static, valid until the next call. */
static const char *s_from(const char *key, const char *flag, const char *env)
{
    static char buf[4300];
    return mg_config_source(key, flag, env, buf, sizeof buf);
}

static void s_usage(FILE *f)
{
    fprintf(f,
        "usage: mg-worker [options]\n"
        "\n"
        "Renders music for an mg coordinator: takes leases, renders, encodes, delivers.\n"
        "\n"
        "options (flag / environment / mg.conf key, default):\n"
        "  --endpoint E       MG_ENDPOINT        endpoint (" MG_DEFAULT_ENDPOINT ")\n"
        "  --capacity N       MG_CAPACITY        capacity: renders at once (number of CPUs)\n"
        "  --backend B        MG_BACKEND         backend: auto | cpu | cuda (auto)\n"
        "                                        where wavernn renders: cuda needs the plugin\n"
        "                                        " MG_WR_CUDA_PLUGIN_FILE " (MG_CUDA_PLUGIN, else beside\n"
        "                                        the binary, EXE/../lib, EXE/../build/cuda) and a GPU\n"
        "  --renderer R       MG_RENDERER        renderer: wavernn | synth%s (wavernn)\n"
        "  --model PATH       MG_MODEL           model: the wavernn model file (EXE/../models/default/\n"
        "                                        " MG_WAVERNN_MODEL_FILE ", EXE/../share/mg/models/default/...,\n"
        "                                        ./models/default/...: the first that exists)\n"
        "  --temperature T    MG_TEMPERATURE     temperature: wavernn sampling temperature, (0, 10] (1)\n"
        "  --render-threads N MG_RENDER_THREADS  render_threads: wavernn threads per render (1)\n"
        "  --heartbeat-ms N   MG_HEARTBEAT_MS    heartbeat_ms (%d)\n"
        "  --liveness N       MG_LIVENESS        liveness (%d)\n"
        "  --drain-s N        MG_DRAIN_S         on SIGTERM, seconds to finish renders (60)\n"
        "  --name NAME        MG_WORKER_NAME     name (host:pid:random)\n"
        "  --curve-key F      MG_CURVE_KEY       curve_key: this worker's secret key file (NAME.key)\n"
        "  --coordinator-key F MG_COORDINATOR_KEY coordinator_key: the coordinator's public key file\n"
        "                                        (both or neither: plaintext; docs/security.md)\n"
        "                     MG_CHUNK_BYTES     chunk_bytes: result bytes per CHUNK, 4096..%d (%d)\n"
        "                     MG_CHUNK_WINDOW    chunk_window: CHUNKs' worth of bytes unacknowledged (%d)\n"
        "  -h, --help\n"
        "\n"
        "The wavernn renderer needs its model file: without one mg-worker stops with an error\n"
        "naming the path, unless --renderer synth (the procedural renderer) is given.\n",
#ifdef MG_TEST_RENDERER
        " | test",
#else
        "",
#endif
        MG_DEFAULT_HEARTBEAT_MS, MG_DEFAULT_LIVENESS, MG_CHUNK_MAX_BYTES, MG_CHUNK_DEFAULT_BYTES,
        MG_CHUNK_DEFAULT_WINDOW);
}

/* Loads the neural renderer from the model setting (flag > MG_MODEL > mg.conf `model` > the
 * default search of mg_renderer_wavernn_default_model) with its temperature and threads per
 * render. 0 with *out owned by the caller, or the exit status after a message on stderr: 1 when
 * the model cannot be loaded, 2 for a bad setting. */
static int s_open_wavernn(const char *f_model, const char *f_temp, const char *f_rthreads, int capacity,
                          int cpus, mg_backend_kind_t backend, mg_backend_cuda_t **cuda, mg_renderer_t **out)
{
    const char *temp = mg_config_get("temperature", f_temp, "MG_TEMPERATURE", "1");
    char *end = NULL;
    mg_wavernn_opts_t o = {.temperature = strtod(temp, &end)};
    if (end == temp || *end || !(o.temperature > 0.0 && o.temperature <= 10.0)) {
        fprintf(stderr, "mg-worker: temperature must be a number in (0, 10], got '%s' (from %s)\n", temp,
                s_from("temperature", f_temp, "MG_TEMPERATURE"));
        return 2;
    }
    if (s_int("render_threads", f_rthreads, "MG_RENDER_THREADS", "1", 1, MG_WR_MAX_BATCH, &o.threads) != 0) return 2;
    char dflt[3 * PATH_MAX];
    o.model_path = mg_config_get("model", f_model, "MG_MODEL", NULL);
    if (!o.model_path || !*o.model_path) {
        if (mg_renderer_wavernn_default_model(dflt, sizeof dflt) != 0) {
            fprintf(stderr,
                    "mg-worker: no model file for the wavernn renderer: none of %s exists; give one with "
                    "--model PATH (MG_MODEL, mg.conf model), or use --renderer synth\n",
                    dflt);
            return 1;
        }
        o.model_path = dflt;
    }
    char err[1024] = "";
    if (mg_backend_select(backend, cuda, err, sizeof err) != 0) {
        fprintf(stderr, "mg-worker: --backend cuda: %s (use --backend auto or cpu to render on the CPU)\n", err);
        return 1;
    }
    if (*cuda) mg_info("backend %s: CUDA plugin %s: %s", mg_backend_kind_name(backend), (*cuda)->path, err);
    else if (backend == MG_BACKEND_AUTO) mg_info("backend auto: rendering on the CPU: %s", err);
    o.cuda = *cuda;
    *out = mg_renderer_wavernn_new(&o, err, sizeof err);
    if (!*out && *cuda) {
        if (backend == MG_BACKEND_CUDA) {
            fprintf(stderr, "mg-worker: --backend cuda: %s (use --backend auto or cpu to render on the CPU)\n", err);
            return 1;
        }
        mg_warn("backend auto: rendering on the CPU: %s", err);
        mg_backend_cuda_close(cuda);
        o.cuda = NULL;
        *out = mg_renderer_wavernn_new(&o, err, sizeof err);
    }
    if (!*out) {
        fprintf(stderr, "mg-worker: cannot load the wavernn model: %s (give another with --model PATH, or use "
                "--renderer synth)\n", err);
        return 1;
    }
    mg_info("model %s %s (%s, sha256 %.16s...) from %s, temperature %g, backend %s on %s, %d thread(s) per "
            "render", (*out)->model_name, (*out)->model_version, (*out)->model_license, (*out)->model_sha256,
            o.model_path, o.temperature, (*out)->backend, (*out)->device, o.threads);
    if (!*cuda && capacity * o.threads > cpus)
        mg_warn("capacity %d x render_threads %d = %d threads on %d CPUs: renders will compete for cores",
                capacity, o.threads, capacity * o.threads, cpus);
    return 0;
}

int main(int argc, char **argv)
{
    mg_log_init("mg-worker");
    const char *f_endpoint = NULL, *f_cap = NULL, *f_backend = NULL, *f_renderer = NULL, *f_hb = NULL,
               *f_live = NULL, *f_drain = NULL, *f_name = NULL, *f_model = NULL, *f_temp = NULL,
               *f_rthreads = NULL, *f_ckey = NULL, *f_skey = NULL;
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, 'e'}, {"capacity", required_argument, 0, 'c'},
        {"backend", required_argument, 0, 'b'},  {"renderer", required_argument, 0, 'r'},
        {"heartbeat-ms", required_argument, 0, 'H'}, {"liveness", required_argument, 0, 'l'},
        {"drain-s", required_argument, 0, 'd'},  {"name", required_argument, 0, 'n'},
        {"model", required_argument, 0, 'm'},    {"temperature", required_argument, 0, 'T'},
        {"render-threads", required_argument, 0, 't'},
        {"curve-key", required_argument, 0, 'K'}, {"coordinator-key", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'e': f_endpoint = optarg; break;
        case 'c': f_cap = optarg; break;
        case 'b': f_backend = optarg; break;
        case 'r': f_renderer = optarg; break;
        case 'H': f_hb = optarg; break;
        case 'l': f_live = optarg; break;
        case 'd': f_drain = optarg; break;
        case 'n': f_name = optarg; break;
        case 'm': f_model = optarg; break;
        case 'T': f_temp = optarg; break;
        case 't': f_rthreads = optarg; break;
        case 'K': f_ckey = optarg; break;
        case 'S': f_skey = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mg-worker: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    mg_worker_config_t cfg;
    mg_worker_config_default(&cfg);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    char dflt_cap[24], dflt_chunk[24], dflt_window[24], dflt_hb[24], dflt_live[24];
    snprintf(dflt_cap, sizeof dflt_cap, "%ld", cpus < MG_WORKER_MAX_CAPACITY ? cpus : MG_WORKER_MAX_CAPACITY);
    snprintf(dflt_chunk, sizeof dflt_chunk, "%d", MG_CHUNK_DEFAULT_BYTES);
    snprintf(dflt_window, sizeof dflt_window, "%d", MG_CHUNK_DEFAULT_WINDOW);
    snprintf(dflt_hb, sizeof dflt_hb, "%d", MG_DEFAULT_HEARTBEAT_MS);
    snprintf(dflt_live, sizeof dflt_live, "%d", MG_DEFAULT_LIVENESS);
    int drain_s, chunk, window;
    if (s_int("capacity", f_cap, "MG_CAPACITY", dflt_cap, 1, MG_WORKER_MAX_CAPACITY, &cfg.capacity) ||
        s_int("heartbeat_ms", f_hb, "MG_HEARTBEAT_MS", dflt_hb, 10, 600000, &cfg.heartbeat_ms) ||
        s_int("liveness", f_live, "MG_LIVENESS", dflt_live, 1, 1000, &cfg.liveness) ||
        s_int("drain_s", f_drain, "MG_DRAIN_S", "60", 0, 86400, &drain_s) ||
        s_int("chunk_bytes", NULL, "MG_CHUNK_BYTES", dflt_chunk, 4096, MG_CHUNK_MAX_BYTES, &chunk) ||
        s_int("chunk_window", NULL, "MG_CHUNK_WINDOW", dflt_window, 1, 1024, &window))
        return 2;
    cfg.drain_ms = drain_s * 1000;
    cfg.upload.chunk_bytes = (size_t)chunk;
    cfg.upload.window = window;
    cfg.endpoint = mg_config_get("endpoint", f_endpoint, "MG_ENDPOINT", MG_DEFAULT_ENDPOINT);
    cfg.name = mg_config_get("name", f_name, "MG_WORKER_NAME", NULL);
    /* The keys are read at each connect (worker.c: mg_curve_client_setup, from the
     * environment or mg.conf): flags become those variables; a bad key file stops us now. */
    if (f_ckey) setenv(MG_CURVE_KEY, f_ckey, 1);
    if (f_skey) setenv(MG_COORDINATOR_KEY, f_skey, 1);
    {
        void *ctx = zmq_ctx_new(), *probe = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
        char kerr[9000] = "";
        int bad = !probe || mg_curve_client_setup(probe, NULL, kerr, sizeof kerr) != 0;
        if (probe) zmq_close(probe);
        if (ctx) zmq_ctx_term(ctx);
        if (bad) {
            fprintf(stderr, "mg-worker: %s\n", *kerr ? kerr : "cannot make a ZeroMQ socket");
            return 2;
        }
    }
#ifdef MG_TEST_RENDERER
    cfg.result_hook = mg_render_test_result; /* acts only with MG_TEST_RESULT_BYTES set */
#endif

    const char *backend_s = mg_config_get("backend", f_backend, "MG_BACKEND", "auto");
    mg_backend_kind_t backend;
    if (mg_backend_parse(backend_s, &backend) != 0) {
        fprintf(stderr, "mg-worker: unknown backend '%s' (auto, cpu, cuda), from %s\n", backend_s,
                s_from("backend", f_backend, "MG_BACKEND"));
        return 2;
    }
    const char *renderer_s = mg_config_get("renderer", f_renderer, "MG_RENDERER", "wavernn");
    const mg_renderer_t *renderer = NULL;
    mg_renderer_t *neural = NULL;
    mg_backend_cuda_t *cuda = NULL;
    if (strcmp(renderer_s, "wavernn") != 0 && backend == MG_BACKEND_CUDA) {
        fprintf(stderr, "mg-worker: --backend cuda: the %s renderer runs on the CPU only (use --renderer wavernn, "
                "or --backend auto or cpu)\n", renderer_s);
        return 2;
    }
    if (strcmp(renderer_s, "wavernn") == 0) {
        int rc = s_open_wavernn(f_model, f_temp, f_rthreads, cfg.capacity, (int)cpus, backend, &cuda, &neural);
        if (rc != 0) {
            mg_backend_cuda_close(&cuda);
            return rc;
        }
        renderer = neural;
    } else if (strcmp(renderer_s, "synth") == 0) renderer = mg_renderer_synth();
#ifdef MG_TEST_RENDERER
    else if (strcmp(renderer_s, "test") == 0) renderer = mg_renderer_test();
#endif
    else {
        fprintf(stderr, "mg-worker: unknown renderer '%s' (wavernn, synth), from %s\n", renderer_s,
                s_from("renderer", f_renderer, "MG_RENDERER"));
        return 2;
    }

    char err[1024] = "";
    mg_worker_t *w = mg_worker_new(&cfg, renderer, err, sizeof err);
    if (!w) {
        mg_err("%s", err);
        mg_renderer_wavernn_destroy(&neural);
        mg_backend_cuda_close(&cuda);
        return 1;
    }
    s_worker = w;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = mg_worker_run(w);
    s_worker = NULL; /* a signal from here on has nothing to stop */
    mg_worker_destroy(&w);
    mg_renderer_wavernn_destroy(&neural);
    mg_backend_cuda_close(&cuda);
    return rc == 0 ? 0 : 1;
}
