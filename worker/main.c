/* main.c - mg-worker: connects to the coordinator, takes leases, renders, delivers.
 *
 * Threads and sockets (a libzmq socket never crosses threads):
 *
 *   main thread:  DEALER -> coordinator      PULL <- inproc://mg-worker-out
 *                 heartbeats, leases, ACKs   results / failures / progress from renderers
 *   render threads (capacity of them): take leases from the queue (mutex + condvar),
 *                 render (render.h) + pipeline (pipeline.h), PUSH the outcome to main.
 *
 * Connection state machine of the main thread (Paranoid Pirate):
 *
 *    CONNECTING --send READY--> READY --any message--> READY (liveness reset)
 *        ^                        |
 *        |  silent for heartbeat x liveness, or DISCONNECT from the coordinator:
 *        +-- close socket, wait backoff (1 s, doubling to 32 s), new socket, READY
 *            listing the leases still held ("held"), resend undelivered RESULT / FAIL
 *
 * The renderer (render.h) is chosen at start: "wavernn" by default, whose model file is
 * loaded once here and shared read-only by every render thread (a worker that cannot load
 * it exits, naming the path), or "synth". So is wavernn's backend (backend.h): auto renders on
 * the GPU when the CUDA plugin loads and finds a device, else on the CPU with the reason
 * logged; cuda makes a missing plugin or device a startup error; cpu never loads the plugin.
 * READY and every RESULT name the backend and device that rendered.
 *
 * A result travels as an upload (upload.c): its files in CHUNKs under a window of
 * unacknowledged bytes, then the RESULT with their metadata. The upload, like a FAIL in the
 * outbox, stays until the coordinator ACKs it, so a coordinator restart loses nothing the
 * worker finished: the coordinator says which bytes it lacks and the upload sends them again.
 * SIGTERM: stop accepting leases (READY with capacity 0), finish what is rendering and
 * delivering (up to --drain-s), hand back what has not started (FAIL retryable), then
 * DISCONNECT. A second SIGTERM exits at once.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "../common/config.h"
#include "../common/protocol.h"
#include "../common/renderspec.h"
#include "../common/util.h"
#include "backend.h"
#include "pipeline.h"
#include "render.h"
#include "render_wavernn.h"
#include "upload.h"

#define S_MAX_SLOTS 64

typedef enum { SLOT_FREE, SLOT_QUEUED, SLOT_RENDERING, SLOT_DELIVERING } s_slot_state_t;

typedef struct {
    s_slot_state_t state;         /* guarded by worker.lock */
    int64_t render_id;
    char token[40];
    mg_render_spec_t spec;
    atomic_int cancel;            /* set by main (CANCEL), read by the progress callback */
    mg_msg_t outbox;              /* FAIL frames [hdr, cmd, ...] awaiting ACK (main only) */
    mg_upload_t *upload;          /* owned: the RESULT being delivered, until its ACK (main only) */
    int64_t sent_mono;            /* when the outbox was last sent (main only) */
} s_slot_t;

typedef struct {
    void *ctx;
    const mg_renderer_t *renderer;
    char name[160], host[128];
    int capacity;
    mg_upload_opts_t upload_opts;
    s_slot_t slots[S_MAX_SLOTS];
    pthread_mutex_t lock;
    pthread_cond_t work;
    int stopping;                 /* guarded by lock: render threads exit */
} s_worker_t;

static volatile sig_atomic_t s_term;

static void s_on_signal(int sig)
{
    (void)sig;
    if (s_term) _exit(130); /* second signal: leave now */
    s_term = 1;
}

/* ---- render threads ------------------------------------------------------------------ */

typedef struct {
    void *push;
    s_slot_t *slot;
    s_worker_t *w;
    int64_t last_progress;
} s_progress_ctx_t;

static void s_push(void *push, const char *cmd, const mg_kv_t *kv, mg_msg_t *extra)
{
    mg_msg_t m;
    mg_msg_init(&m);
    mg_msg_add_str(&m, MG_PROTO_WORKER);
    mg_msg_add_str(&m, cmd);
    mg_msg_add_kv(&m, kv);
    for (size_t i = 0; extra && i < extra->n; i++) {
        void *p = extra->data[i];
        mg_msg_add_owned(&m, &p, extra->size[i]);
        extra->data[i] = NULL;
    }
    if (extra) extra->n = 0;
    mg_msg_send(&m, push, 0);
    mg_msg_clear(&m);
}

static int s_progress(void *vctx, double done)
{
    s_progress_ctx_t *pc = vctx;
    int64_t now = mg_mono_ms();
    if (now - pc->last_progress >= 1000) {
        pc->last_progress = now;
        mg_kv_t kv;
        mg_kv_init(&kv);
        mg_kv_set_i64(&kv, "render_id", pc->slot->render_id);
        mg_kv_set(&kv, "lease_token", pc->slot->token);
        mg_kv_setf(&kv, "done", "%.3f", done);
        s_push(pc->push, MG_WCMD_PROGRESS, &kv, NULL);
        mg_kv_clear(&kv);
    }
    return atomic_load(&pc->slot->cancel);
}

/* Called right before an outcome is pushed, so that an ACK can never arrive while the
 * slot still looks busy rendering. */
static void s_mark_delivering(s_worker_t *w, s_slot_t *slot)
{
    pthread_mutex_lock(&w->lock);
    if (slot->state == SLOT_RENDERING) slot->state = SLOT_DELIVERING;
    pthread_mutex_unlock(&w->lock);
}

/* The body of a FAIL for this slot's lease (docs/protocol.md). */
static void s_fail_kv(mg_kv_t *kv, const s_worker_t *w, const s_slot_t *slot, int retryable, int handback,
                      const char *message)
{
    mg_kv_set_i64(kv, "render_id", slot->render_id);
    mg_kv_set(kv, "lease_token", slot->token);
    mg_kv_set(kv, "worker", w->name);
    mg_kv_set_i64(kv, "retryable", retryable);
    if (handback) mg_kv_set_i64(kv, "handback", 1); /* never started: not an attempt */
    mg_kv_set(kv, "message", message);
}

static void s_fail(void *push, s_worker_t *w, s_slot_t *slot, int retryable, const char *message)
{
    s_mark_delivering(w, slot);
    mg_kv_t kv;
    mg_kv_init(&kv);
    s_fail_kv(&kv, w, slot, retryable, 0, message);
    s_push(push, MG_WCMD_FAIL, &kv, NULL);
    mg_kv_clear(&kv);
}

static void s_render_one(s_worker_t *w, void *push, s_slot_t *slot)
{
    const mg_renderer_t *r = w->renderer;
    const mg_render_spec_t *spec = &slot->spec;
    int64_t started = mg_now_ms();
    s_progress_ctx_t pc = {.push = push, .slot = slot, .w = w, .last_progress = mg_mono_ms()};
    mg_audio_t audio;
    memset(&audio, 0, sizeof audio);
    char err[1024] = "";
    int rc = r->render(r, spec, s_progress, &pc, &audio, err, sizeof err);
    if (rc == MG_RENDER_ERR_CANCELLED) {
        mg_audio_free(&audio);
        mg_info("render %" PRId64 " cancelled", slot->render_id);
        s_fail(push, w, slot, 1, "cancelled on the worker");
        return;
    }
    if (rc != MG_RENDER_OK) {
        mg_audio_free(&audio);
        mg_warn("render %" PRId64 " failed: %s", slot->render_id, err);
        s_fail(push, w, slot, rc != MG_RENDER_ERR_PERMANENT, err[0] ? err : "render failed");
        return;
    }
    /* Provenance tags embedded in every file (FLAC Vorbis comments, MP3 ID3v2 TXXX). */
    mg_kv_t tags;
    mg_kv_init(&tags);
    mg_kv_setf(&tags, "TITLE", "%s v%02d", spec->cue, spec->variation + 1);
    mg_kv_set(&tags, "ALBUM", spec->campaign);
    mg_kv_set(&tags, "ARTIST", "mg (AI-generated music)");
    mg_kv_set(&tags, "COMMENT", "Generated by mg " MG_VERSION "; provenance: mgctl verify FILE");
    mg_kv_set_i64(&tags, "MG_RENDER_ID", spec->render_id);
    mg_kv_set_i64(&tags, "MG_JOB_ID", spec->job_id);
    mg_kv_set(&tags, "MG_CAMPAIGN", spec->campaign);
    mg_kv_set(&tags, "MG_CUE", spec->cue);
    mg_kv_set_i64(&tags, "MG_VARIATION", spec->variation + 1);
    mg_kv_set_u64(&tags, "MG_SEED", spec->seed);
    mg_kv_set(&tags, "MG_EMOTIONS", spec->emotions);
    mg_kv_set(&tags, "MG_PROMPT_SHA256", spec->prompt_sha256);
    mg_kv_set(&tags, "MG_MODEL", r->model_name);
    mg_kv_set(&tags, "MG_MODEL_VERSION", r->model_version);
    mg_kv_set(&tags, "MG_MODEL_SHA256", r->model_sha256);
    mg_kv_set(&tags, "MG_MODEL_LICENSE", r->model_license);
    mg_kv_set(&tags, "MG_ATTRIBUTION", r->attribution);
    mg_kv_set(&tags, "MG_GENERATOR", "mg " MG_VERSION);
    mg_kv_set(&tags, "DIGITAL_SOURCE_TYPE",
              "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia");
    mg_pipeline_result_t res;
    memset(&res, 0, sizeof res);
    rc = mg_pipeline_run(spec, &audio, &tags, &res, err, sizeof err);
    mg_kv_clear(&tags);
    if (rc != 0) {
        mg_audio_free(&audio);
        mg_warn("render %" PRId64 ": pipeline failed: %s", slot->render_id, err);
        s_fail(push, w, slot, 0, err);
        return;
    }
    mg_kv_t meta;
    mg_kv_init(&meta);
    mg_kv_set_i64(&meta, "render_id", slot->render_id);
    mg_kv_set(&meta, "lease_token", slot->token);
    mg_kv_set(&meta, "worker", w->name);
    mg_kv_set(&meta, "backend", audio.backend ? audio.backend : r->backend);
    mg_kv_set(&meta, "device", audio.device ? audio.device : r->device);
    mg_kv_set(&meta, "model_name", r->model_name);
    mg_kv_set(&meta, "model_version", r->model_version);
    mg_kv_set(&meta, "model_sha256", r->model_sha256);
    mg_kv_set(&meta, "model_license", r->model_license);
    mg_kv_set(&meta, "attribution", r->attribution);
    if (audio.decision_json) mg_kv_set(&meta, "decision_json", audio.decision_json);
    mg_kv_set_i64(&meta, "started_ms", started);
    mg_kv_set_i64(&meta, "finished_ms", mg_now_ms());
    mg_kv_set_double(&meta, "integrated_lufs", res.integrated_lufs);
    mg_kv_set_double(&meta, "peak_dbfs", res.peak_dbfs);
    mg_audio_free(&audio);
#ifdef MG_TEST_RENDERER
    mg_render_test_result(spec, &res);
#endif
    /* The files go to the main thread as a pointer: hundreds of MiB never pass through libzmq. */
    mg_upload_t *up = mg_upload_new(slot->render_id, slot->token, &meta, &res, &w->upload_opts);
    mg_pipeline_result_free(&res);
    mg_kv_clear(&meta);
    if (!up) {
        s_fail(push, w, slot, 1, "worker out of memory for the upload");
        return;
    }
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set_i64(&kv, "render_id", slot->render_id);
    mg_kv_set(&kv, "lease_token", slot->token);
    mg_msg_t ptr;
    mg_msg_init(&ptr);
    mg_msg_add(&ptr, &up, sizeof up);
    s_mark_delivering(w, slot);
    s_push(push, MG_WCMD_RESULT, &kv, &ptr);
    mg_msg_clear(&ptr);
    mg_kv_clear(&kv);
}

static void *s_render_thread(void *arg)
{
    s_worker_t *w = arg;
    void *push = zmq_socket(w->ctx, ZMQ_PUSH);
    int linger = -1; /* inproc: deliver everything */
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(push, "inproc://mg-worker-out");
    for (;;) {
        pthread_mutex_lock(&w->lock);
        s_slot_t *slot = NULL;
        while (!w->stopping) {
            for (int i = 0; i < S_MAX_SLOTS && !slot; i++)
                if (w->slots[i].state == SLOT_QUEUED) slot = &w->slots[i];
            if (slot) break;
            pthread_cond_wait(&w->work, &w->lock);
        }
        if (!slot) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        slot->state = SLOT_RENDERING;
        pthread_mutex_unlock(&w->lock);
        s_render_one(w, push, slot);
    }
    zmq_close(push);
    return NULL;
}

/* ---- main thread ----------------------------------------------------------------------- */

typedef struct {
    s_worker_t *w;
    void *dealer;
    const char *endpoint;
    int heartbeat_ms, liveness;
    int64_t last_recv, last_send;
    int heard;                    /* a message came from the coordinator since connecting */
    int draining;
    const char *backend, *device;
} s_conn_t;

static int s_send(s_conn_t *c, const char *cmd, const mg_kv_t *kv)
{
    mg_msg_t m;
    mg_msg_init(&m);
    mg_msg_add_str(&m, MG_PROTO_WORKER);
    mg_msg_add_str(&m, cmd);
    if (kv) mg_msg_add_kv(&m, kv);
    int rc = mg_msg_send(&m, c->dealer, ZMQ_DONTWAIT);
    mg_msg_clear(&m);
    if (rc == 0) c->last_send = mg_mono_ms();
    return rc;
}

static void s_send_ready(s_conn_t *c)
{
    s_worker_t *w = c->w;
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set(&kv, "name", w->name);
    mg_kv_set(&kv, "host", w->host);
    mg_kv_set_i64(&kv, "pid", getpid());
    mg_kv_set(&kv, "backend", c->backend);
    mg_kv_set(&kv, "device", c->device);
    mg_kv_set_i64(&kv, "capacity", c->draining ? 0 : w->capacity);
    mg_kv_setf(&kv, "models", "%s:%s:%s", w->renderer->model_name, w->renderer->model_version,
               w->renderer->model_sha256);
    mg_kv_set(&kv, "protocol", MG_PROTO_WORKER);
    char held[S_MAX_SLOTS * 64] = "";
    size_t used = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < S_MAX_SLOTS; i++) {
        s_slot_t *s = &w->slots[i];
        if (s->state == SLOT_QUEUED || s->state == SLOT_RENDERING) {
            int n = snprintf(held + used, sizeof held - used, "%s%" PRId64 ":%s", used ? "," : "", s->render_id,
                             s->token);
            if (n > 0 && (size_t)n < sizeof held - used) used += (size_t)n;
        }
    }
    pthread_mutex_unlock(&w->lock);
    mg_kv_set(&kv, "held", held);
    s_send(c, MG_WCMD_READY, &kv);
    mg_kv_clear(&kv);
}

static int s_connect(s_conn_t *c)
{
    c->dealer = zmq_socket(c->w->ctx, ZMQ_DEALER);
    if (!c->dealer || mg_socket_setup(c->dealer, 1000) != 0 || zmq_connect(c->dealer, c->endpoint) != 0) {
        mg_err("cannot connect to %s: %s", c->endpoint, zmq_strerror(errno));
        if (c->dealer) zmq_close(c->dealer);
        c->dealer = NULL;
        return -1;
    }
    c->last_recv = mg_mono_ms();
    c->heard = 0;
    s_send_ready(c);
    /* Resend what the coordinator has not acknowledged yet. */
    for (int i = 0; i < S_MAX_SLOTS; i++) {
        s_slot_t *s = &c->w->slots[i];
        if (s->outbox.n > 0 && mg_msg_send(&s->outbox, c->dealer, ZMQ_DONTWAIT) == 0) s->sent_mono = mg_mono_ms();
        if (s->upload) {
            mg_upload_reconnected(s->upload);
            mg_upload_pump(s->upload, c->dealer, mg_mono_ms());
        }
    }
    return 0;
}

static s_slot_t *s_slot_by_render(s_worker_t *w, int64_t render_id, const char *token)
{
    for (int i = 0; i < S_MAX_SLOTS; i++) {
        s_slot_t *s = &w->slots[i];
        if (s->state != SLOT_FREE && s->render_id == render_id && (!token || strcmp(s->token, token) == 0)) return s;
    }
    return NULL;
}

static void s_slot_release(s_worker_t *w, s_slot_t *s)
{
    pthread_mutex_lock(&w->lock);
    if (s->state == SLOT_DELIVERING || s->state == SLOT_QUEUED) {
        s->state = SLOT_FREE;
        mg_msg_clear(&s->outbox);
        mg_upload_destroy(&s->upload);
    }
    pthread_mutex_unlock(&w->lock);
}

static void s_on_lease(s_conn_t *c, const mg_msg_t *m)
{
    s_worker_t *w = c->w;
    for (size_t f = 2; f + 1 < m->n; f += 2) {
        mg_kv_t lk, sk;
        mg_kv_init(&lk);
        mg_kv_init(&sk);
        mg_render_spec_t spec;
        int ok = mg_msg_kv(m, f, &lk) == 0 && mg_msg_kv(m, f + 1, &sk) == 0 && mg_render_spec_from_kv(&spec, &sk) == 0;
        int64_t render_id = mg_kv_get_i64(&lk, "render_id", 0);
        const char *token = mg_kv_get_or(&lk, "lease_token", "");
        if (!ok || render_id <= 0 || strlen(token) >= sizeof w->slots[0].token) {
            mg_err("malformed LEASE for render %" PRId64 ": refused", render_id);
            mg_kv_t kv;
            mg_kv_init(&kv);
            mg_kv_set_i64(&kv, "render_id", render_id);
            mg_kv_set(&kv, "lease_token", token);
            mg_kv_set(&kv, "worker", w->name);
            mg_kv_set_i64(&kv, "retryable", 0);
            mg_kv_set(&kv, "message", "worker could not decode the render spec");
            s_send(c, MG_WCMD_FAIL, &kv);
            mg_kv_clear(&kv);
        } else if (!s_slot_by_render(w, render_id, token)) {
            pthread_mutex_lock(&w->lock);
            s_slot_t *slot = NULL;
            for (int i = 0; i < S_MAX_SLOTS && !slot; i++)
                if (w->slots[i].state == SLOT_FREE) slot = &w->slots[i];
            if (slot) {
                slot->render_id = render_id;
                mg_strlcpy(slot->token, token, sizeof slot->token);
                slot->spec = spec;
                atomic_store(&slot->cancel, 0);
                slot->state = SLOT_QUEUED;
                pthread_cond_signal(&w->work);
            }
            pthread_mutex_unlock(&w->lock);
            if (slot) mg_info("leased render %" PRId64 " (%s v%02d, %.1f s)", render_id, spec.cue, spec.variation + 1,
                              spec.duration_s);
            else mg_warn("no free slot for render %" PRId64 ": the lease will expire", render_id);
        }
        mg_kv_clear(&lk);
        mg_kv_clear(&sk);
    }
}

static void s_on_cancel(s_conn_t *c, const mg_kv_t *kv)
{
    s_worker_t *w = c->w;
    int64_t job_id = mg_kv_get_i64(kv, "job_id", 0), render_id = mg_kv_get_i64(kv, "render_id", 0);
    const char *token = mg_kv_get(kv, "lease_token"); /* a render CANCEL names the lease it ends */
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < S_MAX_SLOTS; i++) {
        s_slot_t *s = &w->slots[i];
        if (s->state == SLOT_FREE) continue;
        if ((job_id && s->spec.job_id == job_id) ||
            (render_id && s->render_id == render_id && (!token || strcmp(token, s->token) == 0))) {
            atomic_store(&s->cancel, 1);
            if (s->state == SLOT_QUEUED) s->state = SLOT_FREE; /* never started */
            else if (s->state == SLOT_DELIVERING) {
                s->state = SLOT_FREE;
                mg_msg_clear(&s->outbox);
                mg_upload_destroy(&s->upload);
            }
            mg_info("render %" PRId64 " dropped (cancelled by the coordinator)", s->render_id);
        }
    }
    pthread_mutex_unlock(&w->lock);
}

static void s_on_coordinator(s_conn_t *c, const mg_msg_t *m, int *reconnect)
{
    c->last_recv = mg_mono_ms();
    c->heard = 1;
    if (m->n < 2 || !mg_msg_is(m, 0, MG_PROTO_WORKER)) {
        mg_warn("message with an unknown header from the coordinator: ignored");
        return;
    }
    char cmd[32];
    mg_msg_str(m, 1, cmd, sizeof cmd);
    mg_kv_t kv;
    mg_kv_init(&kv);
    if (m->n > 2) mg_msg_kv(m, 2, &kv);
    if (strcmp(cmd, MG_WCMD_LEASE) == 0) s_on_lease(c, m);
    else if (strcmp(cmd, MG_WCMD_ACK) == 0) {
        s_slot_t *s = s_slot_by_render(c->w, mg_kv_get_i64(&kv, "render_id", 0), mg_kv_get_or(&kv, "lease_token", ""));
        if (s) {
            if (!mg_kv_get_i64(&kv, "accepted", 0))
                mg_warn("render %" PRId64 ": coordinator did not accept the outcome: %s", s->render_id,
                        mg_kv_get_or(&kv, "reason", ""));
            s_slot_release(c->w, s);
        }
    } else if (strcmp(cmd, MG_WCMD_CHUNK_ACK) == 0) {
        s_slot_t *s = s_slot_by_render(c->w, mg_kv_get_i64(&kv, "render_id", 0), mg_kv_get_or(&kv, "lease_token", ""));
        if (s && s->upload) {
            int64_t now = mg_mono_ms();
            mg_upload_on_chunk_ack(s->upload, &kv, now);
            if (mg_upload_pump(s->upload, c->dealer, now) > 0) c->last_send = now;
        }
    } else if (strcmp(cmd, MG_WCMD_CANCEL) == 0) s_on_cancel(c, &kv);
    else if (strcmp(cmd, MG_WCMD_DISCONNECT) == 0) {
        mg_warn("coordinator says DISCONNECT: %s", mg_kv_get_or(&kv, "reason", ""));
        *reconnect = 1;
    } else if (strcmp(cmd, MG_WCMD_HEARTBEAT) != 0) mg_warn("unknown command '%s' from the coordinator: ignored", cmd);
    mg_kv_clear(&kv);
}

/* The upload a RESULT from a render thread points to (frame 3), or NULL. */
static mg_upload_t *s_outcome_upload(const mg_msg_t *m)
{
    mg_upload_t *up = NULL;
    if (m->n == 4 && m->size[3] == sizeof up) memcpy(&up, m->data[3], sizeof up);
    return up;
}

/* A render thread's outcome: keep an upload / a FAIL until ACKed, forward PROGRESS. */
static void s_on_outcome(s_conn_t *c, mg_msg_t *m)
{
    char cmd[32];
    mg_msg_str(m, 1, cmd, sizeof cmd);
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_msg_kv(m, 2, &kv);
    s_slot_t *s = s_slot_by_render(c->w, mg_kv_get_i64(&kv, "render_id", 0), mg_kv_get_or(&kv, "lease_token", ""));
    mg_kv_clear(&kv);
    if (strcmp(cmd, MG_WCMD_PROGRESS) == 0) {
        if (c->dealer && mg_msg_send(m, c->dealer, ZMQ_DONTWAIT) == 0) c->last_send = mg_mono_ms();
        return;
    }
    if (strcmp(cmd, MG_WCMD_RESULT) == 0) {
        mg_upload_t *up = s_outcome_upload(m);
        if (!s) {
            mg_upload_destroy(&up); /* cancelled meanwhile */
            return;
        }
        mg_upload_destroy(&s->upload);
        s->upload = up;
        if (up)
            mg_info("render %" PRId64 ": uploading %.1f MiB", s->render_id, (double)mg_upload_total(up) / (1 << 20));
        int64_t now = mg_mono_ms();
        if (up && mg_upload_pump(up, c->dealer, now) > 0) c->last_send = now;
        return;
    }
    if (!s) return; /* cancelled meanwhile */
    mg_msg_clear(&s->outbox);
    s->outbox = *m;
    mg_msg_init(m);
    if (c->dealer && mg_msg_send(&s->outbox, c->dealer, ZMQ_DONTWAIT) == 0) {
        s->sent_mono = mg_mono_ms();
        c->last_send = s->sent_mono;
    }
}

static int s_busy(s_worker_t *w, int include_queued)
{
    int n = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < S_MAX_SLOTS; i++) {
        s_slot_state_t st = w->slots[i].state;
        if (st == SLOT_RENDERING || st == SLOT_DELIVERING || (include_queued && st == SLOT_QUEUED)) n++;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
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
    const char *rthreads = mg_config_get("render_threads", f_rthreads, "MG_RENDER_THREADS", "1");
    char *end = NULL;
    mg_wavernn_opts_t o = {.temperature = strtod(temp, &end)};
    if (end == temp || *end || !(o.temperature > 0.0 && o.temperature <= 10.0)) {
        fprintf(stderr, "mg-worker: temperature must be a number in (0, 10], got '%s'\n", temp);
        return 2;
    }
    long nt = strtol(rthreads, &end, 10);
    if (end == rthreads || *end || nt < 1 || nt > MG_WR_MAX_BATCH) {
        fprintf(stderr, "mg-worker: render_threads must be an integer in 1..%d, got '%s'\n", MG_WR_MAX_BATCH,
                rthreads);
        return 2;
    }
    o.threads = (int)nt;
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
               *f_rthreads = NULL;
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, 'e'}, {"capacity", required_argument, 0, 'c'},
        {"backend", required_argument, 0, 'b'},  {"renderer", required_argument, 0, 'r'},
        {"heartbeat-ms", required_argument, 0, 'H'}, {"liveness", required_argument, 0, 'l'},
        {"drain-s", required_argument, 0, 'd'},  {"name", required_argument, 0, 'n'},
        {"model", required_argument, 0, 'm'},    {"temperature", required_argument, 0, 'T'},
        {"render-threads", required_argument, 0, 't'},
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
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mg-worker: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    static s_worker_t w;
    char ncpu[24];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(ncpu, sizeof ncpu, "%ld", cpus > 0 ? cpus : 1);
    w.capacity = atoi(mg_config_get("capacity", f_cap, "MG_CAPACITY", ncpu));
    if (w.capacity < 1 || w.capacity > S_MAX_SLOTS) {
        fprintf(stderr, "mg-worker: capacity must be 1..%d\n", S_MAX_SLOTS);
        return 2;
    }
    const char *backend_s = mg_config_get("backend", f_backend, "MG_BACKEND", "auto");
    mg_backend_kind_t backend;
    if (mg_backend_parse(backend_s, &backend) != 0) {
        fprintf(stderr, "mg-worker: unknown backend '%s' (auto, cpu, cuda)\n", backend_s);
        return 2;
    }
    const char *renderer = mg_config_get("renderer", f_renderer, "MG_RENDERER", "wavernn");
    mg_renderer_t *neural = NULL;
    mg_backend_cuda_t *cuda = NULL;
    if (strcmp(renderer, "wavernn") != 0 && backend == MG_BACKEND_CUDA) {
        fprintf(stderr, "mg-worker: --backend cuda: the %s renderer runs on the CPU only (use --renderer wavernn, "
                "or --backend auto or cpu)\n", renderer);
        return 2;
    }
    if (strcmp(renderer, "wavernn") == 0) {
        int rc = s_open_wavernn(f_model, f_temp, f_rthreads, w.capacity, cpus > 0 ? (int)cpus : 1, backend, &cuda,
                                &neural);
        if (rc != 0) {
            mg_backend_cuda_close(&cuda);
            return rc;
        }
        w.renderer = neural;
    } else if (strcmp(renderer, "synth") == 0) w.renderer = mg_renderer_synth();
#ifdef MG_TEST_RENDERER
    else if (strcmp(renderer, "test") == 0) w.renderer = mg_renderer_test();
#endif
    else {
        fprintf(stderr, "mg-worker: unknown renderer '%s' (wavernn, synth)\n", renderer);
        return 2;
    }
    s_conn_t c = {.w = &w};
    c.endpoint = mg_config_get("endpoint", f_endpoint, "MG_ENDPOINT", MG_DEFAULT_ENDPOINT);
    c.heartbeat_ms = atoi(mg_config_get("heartbeat_ms", f_hb, "MG_HEARTBEAT_MS", "1000"));
    c.liveness = atoi(mg_config_get("liveness", f_live, "MG_LIVENESS", "3"));
    int drain_s = atoi(mg_config_get("drain_s", f_drain, "MG_DRAIN_S", "60"));
    if (c.heartbeat_ms < 10 || c.liveness < 1) {
        fprintf(stderr, "mg-worker: heartbeat_ms must be >= 10 and liveness >= 1\n");
        return 2;
    }
    mg_upload_opts_default(&w.upload_opts);
    char dflt_chunk[24], dflt_window[24];
    snprintf(dflt_chunk, sizeof dflt_chunk, "%d", MG_CHUNK_DEFAULT_BYTES);
    snprintf(dflt_window, sizeof dflt_window, "%d", MG_CHUNK_DEFAULT_WINDOW);
    long chunk = atol(mg_config_get("chunk_bytes", NULL, "MG_CHUNK_BYTES", dflt_chunk));
    long window = atol(mg_config_get("chunk_window", NULL, "MG_CHUNK_WINDOW", dflt_window));
    if (chunk < 4096 || chunk > MG_CHUNK_MAX_BYTES || window < 1 || window > 1024) {
        fprintf(stderr, "mg-worker: chunk_bytes (MG_CHUNK_BYTES) must be 4096..%d and chunk_window (MG_CHUNK_WINDOW) "
                "1..1024\n", MG_CHUNK_MAX_BYTES);
        return 2;
    }
    w.upload_opts.chunk_bytes = (size_t)chunk;
    w.upload_opts.window = (int)window;
    c.backend = w.renderer->backend;
    c.device = w.renderer->device;
    gethostname(w.host, sizeof w.host - 1);
    unsigned char rnd[2];
    FILE *ur = fopen("/dev/urandom", "rb");
    if (!ur || fread(rnd, 1, 2, ur) != 2) rnd[0] = rnd[1] = (unsigned char)getpid();
    if (ur) fclose(ur);
    const char *name = mg_config_get("name", f_name, "MG_WORKER_NAME", NULL);
    if (name && *name) mg_strlcpy(w.name, name, sizeof w.name);
    else snprintf(w.name, sizeof w.name, "%s:%d:%02x%02x", w.host, (int)getpid(), rnd[0], rnd[1]);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    w.ctx = zmq_ctx_new();
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.work, NULL);
    void *pull = zmq_socket(w.ctx, ZMQ_PULL);
    if (!pull || zmq_bind(pull, "inproc://mg-worker-out") != 0) {
        mg_err("cannot set up the inproc socket: %s", zmq_strerror(errno));
        return 1;
    }
    pthread_t threads[S_MAX_SLOTS];
    for (int i = 0; i < w.capacity; i++) pthread_create(&threads[i], NULL, s_render_thread, &w);
    mg_info("worker %s: renderer %s (%s, %s), capacity %d, coordinator %s", w.name, w.renderer->name,
            w.renderer->backend, w.renderer->device, w.capacity, c.endpoint);

    int backoff_ms = 1000;
    int64_t reconnect_at = 0, drain_deadline = 0;
    if (s_connect(&c) != 0) reconnect_at = mg_mono_ms() + backoff_ms;
    mg_msg_t m;
    mg_msg_init(&m);
    int exit_code = 0;
    for (;;) {
        int64_t now = mg_mono_ms();
        if (s_term && !c.draining) {
            c.draining = 1;
            drain_deadline = now + (int64_t)drain_s * 1000;
            mg_info("SIGTERM: finishing %d render(s) (up to %d s), accepting no new leases", s_busy(&w, 0), drain_s);
            /* Hand back what has not started. */
            pthread_mutex_lock(&w.lock);
            for (int i = 0; i < S_MAX_SLOTS; i++) {
                s_slot_t *s = &w.slots[i];
                if (s->state != SLOT_QUEUED) continue;
                s->state = SLOT_DELIVERING;
                mg_kv_t kv;
                mg_kv_init(&kv);
                s_fail_kv(&kv, &w, s, 1, 1, "worker shutting down before starting this render");
                mg_msg_add_str(&s->outbox, MG_PROTO_WORKER);
                mg_msg_add_str(&s->outbox, MG_WCMD_FAIL);
                mg_msg_add_kv(&s->outbox, &kv);
                mg_kv_clear(&kv);
                if (c.dealer) mg_msg_send(&s->outbox, c.dealer, ZMQ_DONTWAIT);
            }
            pthread_mutex_unlock(&w.lock);
            if (c.dealer) s_send_ready(&c); /* capacity 0 */
        }
        if (c.draining && (s_busy(&w, 1) == 0 || now > drain_deadline)) {
            if (s_busy(&w, 1) > 0) {
                mg_warn("drain time over with %d render(s) unfinished: their leases will expire", s_busy(&w, 1));
                exit_code = 1;
            }
            break;
        }
        if (!c.dealer && now >= reconnect_at) {
            if (s_connect(&c) != 0) {
                reconnect_at = now + backoff_ms;
                backoff_ms = backoff_ms * 2 > 32000 ? 32000 : backoff_ms * 2;
            }
        }
        zmq_pollitem_t items[2] = {{pull, 0, ZMQ_POLLIN, 0}, {c.dealer, 0, ZMQ_POLLIN, 0}};
        int nitems = c.dealer ? 2 : 1;
        int timeout = c.heartbeat_ms / 2;
        if (!c.dealer && reconnect_at - now < timeout) timeout = (int)(reconnect_at > now ? reconnect_at - now : 1);
        if (zmq_poll(items, nitems, timeout) < 0 && errno != EINTR) {
            mg_err("poll: %s", zmq_strerror(errno));
            exit_code = 1;
            break;
        }
        while (mg_msg_recv(&m, pull, ZMQ_DONTWAIT) == 0) s_on_outcome(&c, &m);
        int reconnect = 0;
        while (c.dealer && mg_msg_recv(&m, c.dealer, ZMQ_DONTWAIT) == 0) {
            s_on_coordinator(&c, &m, &reconnect);
            if (reconnect) break;
        }
        now = mg_mono_ms();
        if (c.dealer && !reconnect && now - c.last_recv > (int64_t)c.heartbeat_ms * c.liveness) {
            mg_warn("coordinator silent for %lld ms: reconnecting in %d ms", (long long)(now - c.last_recv),
                    backoff_ms);
            reconnect = 1;
        }
        if (reconnect) {
            zmq_close(c.dealer);
            c.dealer = NULL;
            reconnect_at = now + backoff_ms;
            backoff_ms = backoff_ms * 2 > 32000 ? 32000 : backoff_ms * 2;
            continue;
        }
        if (c.dealer && c.heard) backoff_ms = 1000; /* the coordinator answered: healthy again */
        if (c.dealer && now - c.last_send >= c.heartbeat_ms) s_send(&c, MG_WCMD_HEARTBEAT, NULL);
        /* An outcome without an ACK for a while (lost in a reconnect): send it again; uploads
         * send what their window and their timers allow. */
        for (int i = 0; c.dealer && i < S_MAX_SLOTS; i++) {
            s_slot_t *s = &w.slots[i];
            if (s->outbox.n > 0 && now - s->sent_mono > 10000 &&
                mg_msg_send(&s->outbox, c.dealer, ZMQ_DONTWAIT) == 0)
                s->sent_mono = now;
            if (s->upload && mg_upload_pump(s->upload, c.dealer, now) > 0) c.last_send = now;
        }
    }
    mg_msg_clear(&m);
    if (c.dealer) {
        mg_kv_t kv;
        mg_kv_init(&kv);
        mg_kv_set(&kv, "reason", "worker stopping");
        s_send(&c, MG_WCMD_DISCONNECT, &kv);
        mg_kv_clear(&kv);
        usleep(100 * 1000); /* let the DISCONNECT leave (linger is 0) */
        zmq_close(c.dealer);
    }
    pthread_mutex_lock(&w.lock);
    w.stopping = 1;
    for (int i = 0; i < S_MAX_SLOTS; i++) atomic_store(&w.slots[i].cancel, 1);
    pthread_cond_broadcast(&w.work);
    pthread_mutex_unlock(&w.lock);
    for (int i = 0; i < w.capacity; i++) pthread_join(threads[i], NULL);
    while (mg_msg_recv(&m, pull, ZMQ_DONTWAIT) == 0) {
        if (mg_msg_is(&m, 1, MG_WCMD_RESULT)) {
            mg_upload_t *up = s_outcome_upload(&m);
            mg_upload_destroy(&up);
        }
        mg_msg_clear(&m);
    }
    zmq_close(pull);
    for (int i = 0; i < S_MAX_SLOTS; i++) {
        mg_msg_clear(&w.slots[i].outbox);
        mg_upload_destroy(&w.slots[i].upload);
    }
    zmq_ctx_term(w.ctx);
    mg_renderer_wavernn_destroy(&neural);
    mg_backend_cuda_close(&cuda);
    mg_info("worker stopped");
    return exit_code;
}
