/* render_thread.c - the worker's render threads (worker_impl.h): each takes a queued lease,
 * renders it (render.h), runs the audio pipeline with the provenance tags (pipeline.h), wraps the
 * files in an upload (upload.h) and PUSHes the outcome to the main thread of worker.c, which owns
 * the coordinator socket. Progress goes the same way, and carries the cancel flag back.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <zmq.h>

#include "../common/protocol.h"
#include "../common/util.h"
#include "pipeline.h"
#include "render.h"
#include "upload.h"
#include "worker_impl.h"

typedef struct {
    void *push;
    mg_slot_t *slot;
    mg_worker_t *w;
    int64_t last_progress;
    double from, span; /* this phase's share of the render: done reported = from + span * done */
} s_progress_ctx_t;

/* The render reports 0..S_RENDER_SHARE of a render's progress, the pipeline (mix, loudness,
 * every file's encoding, which takes minutes for a long cue with stems) the rest; both renew
 * the lease. */
#define S_RENDER_SHARE 0.9

/* PUSHes [MG_PROTO_WORKER, cmd, kv, extra's frames...] to the main thread; takes the frames of
 * *extra (NULL: none), leaving it empty. */
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

/* The renderer's and the pipeline's progress callback: a PROGRESS (which renews the lease) at
 * most once a second, and the slot's cancel flag as the answer. */
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
        mg_kv_setf(&kv, "done", "%.3f", pc->from + pc->span * done);
        s_push(pc->push, MG_WCMD_PROGRESS, &kv, NULL);
        mg_kv_clear(&kv);
    }
    return atomic_load(&pc->slot->cancel);
}

/* Called right before an outcome is pushed, so that an ACK can never arrive while the
 * slot still looks busy rendering. */
static void s_mark_delivering(mg_worker_t *w, mg_slot_t *slot)
{
    pthread_mutex_lock(&w->lock);
    if (slot->state == MG_SLOT_RENDERING) slot->state = MG_SLOT_DELIVERING;
    pthread_mutex_unlock(&w->lock);
}

void mg_worker_fail_kv(mg_kv_t *kv, const mg_worker_t *w, const mg_slot_t *slot, int retryable, int handback,
                       const char *message)
{
    mg_kv_set_i64(kv, "render_id", slot->render_id);
    mg_kv_set(kv, "lease_token", slot->token);
    mg_kv_set(kv, "worker", w->name);
    mg_kv_set_i64(kv, "retryable", retryable);
    if (handback) mg_kv_set_i64(kv, "handback", 1); /* never started: not an attempt */
    mg_kv_set(kv, "message", message);
}

static void s_fail(void *push, mg_worker_t *w, mg_slot_t *slot, int retryable, const char *message)
{
    s_mark_delivering(w, slot);
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_worker_fail_kv(&kv, w, slot, retryable, 0, message);
    s_push(push, MG_WCMD_FAIL, &kv, NULL);
    mg_kv_clear(&kv);
}

/* Renders the slot's spec and pushes its one outcome: a RESULT pointing to the upload (whose
 * ownership goes with the message), or a FAIL (cancelled, render or pipeline error). */
static void s_render_one(mg_worker_t *w, void *push, mg_slot_t *slot)
{
    const mg_renderer_t *r = w->renderer;
    const mg_render_spec_t *spec = &slot->spec;
    int64_t started = mg_now_ms();
    s_progress_ctx_t pc = {.push = push, .slot = slot, .w = w, .last_progress = mg_mono_ms(), .from = 0.0,
                           .span = S_RENDER_SHARE};
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
    pc.from = S_RENDER_SHARE;
    pc.span = 1.0 - S_RENDER_SHARE;
    rc = mg_pipeline_run_progress(spec, &audio, &tags, s_progress, &pc, &res, err, sizeof err);
    mg_kv_clear(&tags);
    if (rc != 0) {
        mg_audio_free(&audio);
        if (atomic_load(&slot->cancel)) { /* stopped between two files, not broken */
            mg_info("render %" PRId64 " cancelled while encoding", slot->render_id);
            s_fail(push, w, slot, 1, "cancelled on the worker");
            return;
        }
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
    if (w->cfg.result_hook) w->cfg.result_hook(spec, &res);
    /* The files go to the main thread as a pointer: hundreds of MiB never pass through libzmq. */
    mg_upload_t *up = mg_upload_new(slot->render_id, slot->token, &meta, &res, &w->cfg.upload);
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

void *mg_worker_render_thread(void *arg)
{
    mg_worker_t *w = arg;
    void *push = zmq_socket(w->ctx, ZMQ_PUSH);
    int linger = -1; /* inproc: deliver everything */
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(push, MG_WORKER_OUT);
    for (;;) {
        pthread_mutex_lock(&w->lock);
        mg_slot_t *slot = NULL;
        while (!w->stopping) {
            for (int i = 0; i < MG_WORKER_MAX_CAPACITY && !slot; i++)
                if (w->slots[i].state == MG_SLOT_QUEUED) slot = &w->slots[i];
            if (slot) break;
            pthread_cond_wait(&w->work, &w->lock);
        }
        if (!slot) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        slot->state = MG_SLOT_RENDERING;
        pthread_mutex_unlock(&w->lock);
        s_render_one(w, push, slot);
    }
    zmq_close(push);
    return NULL;
}
