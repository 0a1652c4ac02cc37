/* worker.h - the worker's connection loop as a library: one coordinator connection (DEALER),
 * heartbeats and reconnects with backoff, render threads, result uploads (upload.h), the outbox
 * of unacknowledged FAILs and the drain on stop. bin/mg-worker (worker/main.c) resolves the
 * settings and the renderer, then runs one of these; tests/test_worker.c runs one in a thread
 * against a coordinator socket of its own. The state machine is drawn in worker.c.
 *
 *   mg_worker_config_t cfg;
 *   mg_worker_config_default(&cfg);
 *   cfg.endpoint = "tcp://10.0.0.5:5555";
 *   mg_worker_t *w = mg_worker_new(&cfg, renderer, err, sizeof err);
 *   int rc = mg_worker_run(w);      (until mg_worker_stop, e.g. from a SIGTERM handler)
 *   mg_worker_destroy(&w);
 */
#ifndef MG_WORKER_H
#define MG_WORKER_H

#include <stddef.h>

#include "../common/renderspec.h"
#include "pipeline.h"
#include "render.h"
#include "upload.h"

/* Leases held at once (queued, rendering or delivering) and the most render threads. */
#define MG_WORKER_MAX_CAPACITY 64

typedef struct {
    const char *endpoint;   /* the coordinator (MG_DEFAULT_ENDPOINT); copied */
    const char *name;       /* the worker's name; NULL or "": host:pid:random; copied */
    int capacity;           /* render threads, 1..MG_WORKER_MAX_CAPACITY (1) */
    int heartbeat_ms;       /* >= 2 (MG_DEFAULT_HEARTBEAT_MS); the poll wakes every half of it */
    int liveness;           /* the coordinator is gone after heartbeat_ms x liveness of silence
                               (MG_DEFAULT_LIVENESS) */
    int drain_ms;           /* after mg_worker_stop, how long renders may take to finish and be
                               delivered (60000) */
    mg_upload_opts_t upload; /* chunk size, window, resend time of a result (mg_upload_opts_default) */
    /* Test hooks, and knobs nobody sets in production: */
    int backoff_ms;         /* first wait before a reconnect (1000), doubling per failed try */
    int backoff_max_ms;     /* the doubling stops here (32000) */
    int outbox_resend_ms;   /* a FAIL without its ACK for this long is sent again (10000) */
    /* Called on a render thread with each render's finished files before they are uploaded;
     * NULL: none. The test worker replaces the files there (mg_render_test_result). */
    void (*result_hook)(const mg_render_spec_t *spec, mg_pipeline_result_t *res);
} mg_worker_config_t;

typedef struct mg_worker mg_worker_t;

/* The defaults named above (endpoint MG_DEFAULT_ENDPOINT, no name, capacity 1). */
void mg_worker_config_default(mg_worker_config_t *cfg);

/* A worker that will render with renderer (borrowed: it must outlive the worker; its render
 * function is called from capacity threads at once). Checks cfg and sets up the worker's zmq
 * context and inproc socket; connects nothing yet. Returns a worker the caller owns
 * (mg_worker_destroy), or NULL with the reason in err (a setting out of range, no resources). */
mg_worker_t *mg_worker_new(const mg_worker_config_t *cfg, const mg_renderer_t *renderer, char *err, size_t errlen);

/* Connects, registers and serves the coordinator on the calling thread until the worker has
 * drained after mg_worker_stop: what was rendering is finished and delivered (or drain_ms ran
 * out), what had not started is handed back, and DISCONNECT is sent. Returns 0 after a clean
 * drain, 1 when drain_ms ran out with renders unfinished (their leases will expire) or the
 * poll failed, -1 when called a second time. */
int mg_worker_run(mg_worker_t *w);

/* Asks a running (or not yet running) worker to drain: capacity 0, no new leases. Only sets a
 * flag and writes to a pipe, so it is async-signal-safe and may be called from any thread or a
 * signal handler, any number of times. */
void mg_worker_stop(mg_worker_t *w);

/* The worker's name as it registers (the configured one, or host:pid:random). Borrowed. */
const char *mg_worker_name(const mg_worker_t *w);

/* Frees a worker that is not running (before mg_worker_run, or after it returned) and sets
 * *w_p to NULL. NULL and *w_p == NULL are fine. */
void mg_worker_destroy(mg_worker_t **w_p);

#endif
