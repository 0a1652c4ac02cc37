/* worker_impl.h - the inside of an mg_worker_t (worker.h), shared by worker.c (the main
 * thread: the coordinator connection, the slots' bookkeeping, the outbox) and render_thread.c
 * (the render threads). Not for other callers.
 */
#ifndef MG_WORKER_IMPL_H
#define MG_WORKER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../common/kv.h"
#include "../common/protocol.h"
#include "../common/renderspec.h"
#include "upload.h"
#include "worker.h"

/* Where the render threads PUSH their outcomes; the main thread PULLs. inproc names belong to
 * a zmq context, and each worker has its own, so workers in one process do not meet. */
#define MG_WORKER_OUT "inproc://mg-worker-out"

/* A lease's place in the worker. QUEUED -> RENDERING is taken by a render thread,
 * RENDERING -> DELIVERING by the same thread right before it pushes the outcome, any -> FREE
 * by the main thread (the ACK, a CANCEL). State changes hold worker.lock. */
typedef enum { MG_SLOT_FREE, MG_SLOT_QUEUED, MG_SLOT_RENDERING, MG_SLOT_DELIVERING } mg_slot_state_t;

typedef struct {
    mg_slot_state_t state;        /* guarded by worker.lock */
    int64_t render_id;
    char token[40];
    mg_render_spec_t spec;
    atomic_int cancel;            /* set by main (CANCEL, stop), read by the progress callback */
    mg_msg_t outbox;              /* FAIL frames [hdr, cmd, ...] awaiting ACK (main only) */
    mg_upload_t *upload;          /* owned: the RESULT being delivered, until its ACK (main only) */
    int64_t sent_mono;            /* when the outbox was last sent (main only) */
    /* Keeping the lease alive (main only): the render thread's last PROGRESS, when it came and
     * when a PROGRESS for this lease last went to the coordinator; the lease's length. */
    char done[16];
    int64_t progress_mono, renewed_mono, lease_ms;
    int keepalive;                /* 0 after a reconnection until the thread reports again */
} mg_slot_t;

struct mg_worker {
    mg_worker_config_t cfg;       /* as given, but endpoint and name point to the arrays below */
    char endpoint[1024];
    char name[160], host[128];
    const mg_renderer_t *renderer; /* borrowed */
    void *ctx;                    /* owned zmq context */
    void *pull;                   /* main thread: outcomes from the render threads */
    mg_slot_t slots[MG_WORKER_MAX_CAPACITY];
    pthread_mutex_t lock;
    pthread_cond_t work;          /* a slot became QUEUED, or stopping */
    int stopping;                 /* guarded by lock: render threads exit */
    atomic_int stop;              /* mg_worker_stop was called (lock-free: signal-safe too) */
    int wake[2];                  /* self-pipe: mg_worker_stop writes a byte, the poll wakes */
    int ran;                      /* mg_worker_run was called */
    /* The coordinator connection (main thread only). */
    void *dealer;                 /* NULL while CONNECTING */
    int64_t last_recv, last_send;
    int heard;                    /* a message came from the coordinator since connecting */
    int draining;
};

/* The body of render thread (arg: the mg_worker_t): takes QUEUED slots until stopping,
 * renders (render.h), runs the pipeline (pipeline.h), builds the upload and PUSHes the outcome
 * (RESULT with a pointer to the upload, FAIL, PROGRESS) to MG_WORKER_OUT. */
void *mg_worker_render_thread(void *arg);

/* The body of a FAIL for this slot's lease (docs/protocol.md): handback 1 for a lease never
 * started, which the coordinator does not count as an attempt. */
void mg_worker_fail_kv(mg_kv_t *kv, const mg_worker_t *w, const mg_slot_t *slot, int retryable, int handback,
                       const char *message);

#endif
