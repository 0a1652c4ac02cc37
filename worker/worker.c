/* worker.c - the worker's main thread (worker.h): one DEALER to the coordinator, heartbeats,
 * reconnects with backoff, leases into slots for the render threads (render_thread.c), uploads
 * and FAILs kept until their ACK, and the drain when asked to stop.
 *
 * Threads and sockets (a libzmq socket never crosses threads):
 *
 *   main thread (mg_worker_run):  DEALER -> coordinator      PULL <- MG_WORKER_OUT (inproc)
 *                                 heartbeats, leases, ACKs   outcomes and progress of renders
 *   render threads (capacity of them): take QUEUED slots (mutex + condvar), render + pipeline,
 *                                 PUSH the outcome to the main thread.
 *
 * The connection (Paranoid Pirate), each move with the function that makes it:
 *
 *                  s_connect: a new DEALER; READY with the leases still held ("held"); the
 *                  outbox's FAILs and the uploads sent again from what was acknowledged
 *   CONNECTING   ------------------------------------------------------------->   READY
 *   (no socket;  <-------------------------------------------------------------   |   ^
 *    waits out    s_disconnect: heartbeat_ms x liveness without a message, or a   |   |
 *    the backoff) DISCONNECT from the coordinator; the backoff doubles from       +---+ any message:
 *                 backoff_ms up to backoff_max_ms (a socket that cannot be made     liveness reset,
 *                 waits and doubles the same way)                                   backoff = backoff_ms
 *
 * Across both, from mg_worker_stop on (the loop of mg_worker_run):
 *
 *   SERVING --s_start_drain--> DRAINING: READY with capacity 0 (again on each reconnect); the
 *                   unstarted leases handed back (FAIL handback=1, in the outbox until ACKed);
 *                   running renders finish, their results are delivered until ACKed
 *   DRAINING --nothing queued, rendering or delivering, or drain_ms over: s_gone--> GONE:
 *                   DISCONNECT when connected, render threads joined, mg_worker_run returns
 *
 * A result travels as an upload (upload.c): its files in CHUNKs under a window of unacknowledged
 * bytes, then the RESULT with their metadata. The upload, like a FAIL in the outbox, stays until
 * the coordinator ACKs it (an ACK naming another lease token is not for it and is ignored), so a
 * coordinator restart loses nothing the worker finished: the coordinator says which bytes it
 * lacks and the upload sends them again.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "../common/curve.h"
#include "../common/protocol.h"
#include "../common/util.h"
#include "upload.h"
#include "worker_impl.h"

void mg_worker_config_default(mg_worker_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->endpoint = MG_DEFAULT_ENDPOINT;
    cfg->capacity = 1;
    cfg->heartbeat_ms = MG_DEFAULT_HEARTBEAT_MS;
    cfg->liveness = MG_DEFAULT_LIVENESS;
    cfg->drain_ms = 60000;
    mg_upload_opts_default(&cfg->upload);
    cfg->backoff_ms = 1000;
    cfg->backoff_max_ms = 32000;
    cfg->outbox_resend_ms = 10000;
}

/* ---- sending ----------------------------------------------------------------------------- */

static int s_send(mg_worker_t *w, const char *cmd, const mg_kv_t *kv)
{
    mg_msg_t m;
    mg_msg_init(&m);
    mg_msg_add_str(&m, MG_PROTO_WORKER);
    mg_msg_add_str(&m, cmd);
    if (kv) mg_msg_add_kv(&m, kv);
    int rc = mg_msg_send(&m, w->dealer, ZMQ_DONTWAIT);
    mg_msg_clear(&m);
    if (rc == 0) w->last_send = mg_mono_ms();
    return rc;
}

/* Sends the slot's outbox (a FAIL awaiting its ACK), if any, and notes when. */
static void s_send_outbox(mg_worker_t *w, mg_slot_t *s, int64_t now)
{
    if (w->dealer && s->outbox.n > 0 && mg_msg_send(&s->outbox, w->dealer, ZMQ_DONTWAIT) == 0) {
        s->sent_mono = now;
        w->last_send = now;
    }
}

/* Lets the slot's upload send what its window and timers allow. */
static void s_pump(mg_worker_t *w, mg_slot_t *s, int64_t now)
{
    if (w->dealer && s->upload && mg_upload_pump(s->upload, w->dealer, now) > 0) w->last_send = now;
}

static void s_send_ready(mg_worker_t *w)
{
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set(&kv, "name", w->name);
    mg_kv_set(&kv, "host", w->host);
    mg_kv_set_i64(&kv, "pid", getpid());
    mg_kv_set(&kv, "backend", w->renderer->backend);
    mg_kv_set(&kv, "device", w->renderer->device);
    mg_kv_set_i64(&kv, "capacity", w->draining ? 0 : w->cfg.capacity);
    mg_kv_setf(&kv, "models", "%s:%s:%s", w->renderer->model_name, w->renderer->model_version,
               w->renderer->model_sha256);
    mg_kv_set(&kv, "protocol", MG_PROTO_WORKER);
    char held[MG_WORKER_MAX_CAPACITY * 64] = "";
    size_t used = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) {
        mg_slot_t *s = &w->slots[i];
        if (s->state == MG_SLOT_QUEUED || s->state == MG_SLOT_RENDERING) {
            int n = snprintf(held + used, sizeof held - used, "%s%" PRId64 ":%s", used ? "," : "", s->render_id,
                             s->token);
            if (n > 0 && (size_t)n < sizeof held - used) used += (size_t)n;
        }
    }
    pthread_mutex_unlock(&w->lock);
    /* a new connection: whether the held leases survived is the coordinator's to say; no lease
     * is kept alive again until its render thread has reported through this connection */
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) w->slots[i].keepalive = 0;
    mg_kv_set(&kv, "held", held);
    s_send(w, MG_WCMD_READY, &kv);
    mg_kv_clear(&kv);
}

/* ---- the connection: CONNECTING <-> READY ------------------------------------------------- */

/* CONNECTING -> READY. 0, or -1 (logged) when no socket could be made: still CONNECTING. */
static int s_connect(mg_worker_t *w)
{
    char curve_err[9000] = "";
    w->dealer = zmq_socket(w->ctx, ZMQ_DEALER);
    if (!w->dealer || mg_socket_setup(w->dealer, 1000) != 0 ||
        mg_curve_client_setup(w->dealer, NULL, curve_err, sizeof curve_err) != 0 ||
        zmq_connect(w->dealer, w->endpoint) != 0) {
        mg_err("cannot connect to %s: %s", w->endpoint, *curve_err ? curve_err : zmq_strerror(errno));
        if (w->dealer) zmq_close(w->dealer);
        w->dealer = NULL;
        return -1;
    }
    int64_t now = mg_mono_ms();
    w->last_recv = now;
    w->heard = 0;
    s_send_ready(w);
    /* What the coordinator has not acknowledged went with the old socket: again. */
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) {
        mg_slot_t *s = &w->slots[i];
        s_send_outbox(w, s, now);
        if (s->upload) {
            mg_upload_reconnected(s->upload);
            s_pump(w, s, now);
        }
    }
    return 0;
}

/* READY -> CONNECTING: closes the socket. */
static void s_disconnect(mg_worker_t *w)
{
    zmq_close(w->dealer);
    w->dealer = NULL;
}

/* ---- slots ------------------------------------------------------------------------------- */

/* The slot holding this lease (any token when token is NULL), or NULL. */
static mg_slot_t *s_slot_by_render(mg_worker_t *w, int64_t render_id, const char *token)
{
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) {
        mg_slot_t *s = &w->slots[i];
        if (s->state != MG_SLOT_FREE && s->render_id == render_id && (!token || strcmp(s->token, token) == 0))
            return s;
    }
    return NULL;
}

/* The ACK of a delivered outcome: the slot is free again. A slot still rendering keeps going
 * (an ACK cannot be for an outcome not sent yet). */
static void s_slot_release(mg_worker_t *w, mg_slot_t *s)
{
    pthread_mutex_lock(&w->lock);
    if (s->state == MG_SLOT_DELIVERING || s->state == MG_SLOT_QUEUED) {
        s->state = MG_SLOT_FREE;
        mg_msg_clear(&s->outbox);
        mg_upload_destroy(&s->upload);
    }
    pthread_mutex_unlock(&w->lock);
}

/* Slots in use: rendering or delivering, and queued ones too when include_queued. */
static int s_busy(mg_worker_t *w, int include_queued)
{
    int n = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) {
        mg_slot_state_t st = w->slots[i].state;
        if (st == MG_SLOT_RENDERING || st == MG_SLOT_DELIVERING || (include_queued && st == MG_SLOT_QUEUED)) n++;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* ---- from the coordinator ----------------------------------------------------------------- */

static void s_on_lease(mg_worker_t *w, const mg_msg_t *m)
{
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
            s_send(w, "FAIL", &kv);
            mg_kv_clear(&kv);
        } else if (!s_slot_by_render(w, render_id, token)) {
            pthread_mutex_lock(&w->lock);
            mg_slot_t *slot = NULL;
            for (int i = 0; i < MG_WORKER_MAX_CAPACITY && !slot; i++)
                if (w->slots[i].state == MG_SLOT_FREE) slot = &w->slots[i];
            if (slot) {
                slot->render_id = render_id;
                mg_strlcpy(slot->token, token, sizeof slot->token);
                slot->spec = spec;
                atomic_store(&slot->cancel, 0);
                mg_strlcpy(slot->done, "0.000", sizeof slot->done);
                slot->progress_mono = slot->renewed_mono = mg_mono_ms();
                slot->keepalive = 1;
                slot->lease_ms = mg_kv_get_i64(&lk, "lease_ms", 30000);
                if (slot->lease_ms < 300) slot->lease_ms = 300;
                slot->state = MG_SLOT_QUEUED;
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

static void s_on_cancel(mg_worker_t *w, const mg_kv_t *kv)
{
    int64_t job_id = mg_kv_get_i64(kv, "job_id", 0), render_id = mg_kv_get_i64(kv, "render_id", 0);
    const char *token = mg_kv_get(kv, "lease_token"); /* a render CANCEL names the lease it ends */
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) {
        mg_slot_t *s = &w->slots[i];
        if (s->state == MG_SLOT_FREE) continue;
        if ((job_id && s->spec.job_id == job_id) ||
            (render_id && s->render_id == render_id && (!token || strcmp(token, s->token) == 0))) {
            atomic_store(&s->cancel, 1);
            if (s->state == MG_SLOT_QUEUED) s->state = MG_SLOT_FREE; /* never started */
            else if (s->state == MG_SLOT_DELIVERING) {
                s->state = MG_SLOT_FREE;
                mg_msg_clear(&s->outbox);
                mg_upload_destroy(&s->upload);
            }
            mg_info("render %" PRId64 " dropped (cancelled by the coordinator)", s->render_id);
        }
    }
    pthread_mutex_unlock(&w->lock);
}

/* One message from the coordinator. Sets *reconnect on DISCONNECT. */
static void s_on_coordinator(mg_worker_t *w, const mg_msg_t *m, int *reconnect)
{
    w->last_recv = mg_mono_ms();
    w->heard = 1;
    if (m->n < 2 || !mg_msg_is(m, 0, MG_PROTO_WORKER)) {
        mg_warn("message with an unknown header from the coordinator: ignored");
        return;
    }
    char cmd[32];
    mg_msg_str(m, 1, cmd, sizeof cmd);
    mg_kv_t kv;
    mg_kv_init(&kv);
    if (m->n > 2) mg_msg_kv(m, 2, &kv);
    if (strcmp(cmd, "LEASE") == 0) s_on_lease(w, m);
    else if (strcmp(cmd, "ACK") == 0) {
        /* Matched by render id and lease token: the ACK of an older lease of the same render
         * (or of one this worker no longer holds) is not for what is waiting here. */
        mg_slot_t *s = s_slot_by_render(w, mg_kv_get_i64(&kv, "render_id", 0), mg_kv_get_or(&kv, "lease_token", ""));
        if (s) {
            if (!mg_kv_get_i64(&kv, "accepted", 0))
                mg_warn("render %" PRId64 ": coordinator did not accept the outcome: %s", s->render_id,
                        mg_kv_get_or(&kv, "reason", ""));
            s_slot_release(w, s);
        }
    } else if (strcmp(cmd, "CHUNK_ACK") == 0) {
        mg_slot_t *s = s_slot_by_render(w, mg_kv_get_i64(&kv, "render_id", 0), mg_kv_get_or(&kv, "lease_token", ""));
        if (s && s->upload) {
            int64_t now = mg_mono_ms();
            mg_upload_on_chunk_ack(s->upload, &kv, now);
            s_pump(w, s, now);
        }
    } else if (strcmp(cmd, "CANCEL") == 0) s_on_cancel(w, &kv);
    else if (strcmp(cmd, "DISCONNECT") == 0) {
        mg_warn("coordinator says DISCONNECT: %s", mg_kv_get_or(&kv, "reason", ""));
        *reconnect = 1;
    } else if (strcmp(cmd, "HEARTBEAT") != 0) mg_warn("unknown command '%s' from the coordinator: ignored", cmd);
    mg_kv_clear(&kv);
}

/* ---- from the render threads -------------------------------------------------------------- */

/* The upload a RESULT from a render thread points to (frame 3), or NULL. */
static mg_upload_t *s_outcome_upload(const mg_msg_t *m)
{
    mg_upload_t *up = NULL;
    if (m->n == 4 && m->size[3] == sizeof up) memcpy(&up, m->data[3], sizeof up);
    return up;
}

/* A render thread's outcome: keep an upload / a FAIL in the slot until ACKed, forward PROGRESS.
 * May take the frames of *m (a FAIL goes into the outbox as it is), leaving it empty. */
static void s_on_outcome(mg_worker_t *w, mg_msg_t *m)
{
    char cmd[32];
    mg_msg_str(m, 1, cmd, sizeof cmd);
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_msg_kv(m, 2, &kv);
    mg_slot_t *s = s_slot_by_render(w, mg_kv_get_i64(&kv, "render_id", 0), mg_kv_get_or(&kv, "lease_token", ""));
    mg_kv_clear(&kv);
    int64_t now = mg_mono_ms();
    if (strcmp(cmd, MG_WCMD_PROGRESS) == 0) {
        if (s) {
            mg_kv_t pk;
            mg_kv_init(&pk);
            if (mg_msg_kv(m, 2, &pk) == 0) mg_strlcpy(s->done, mg_kv_get_or(&pk, "done", s->done), sizeof s->done);
            mg_kv_clear(&pk);
            s->progress_mono = s->renewed_mono = now;
            s->keepalive = w->dealer != NULL;
        }
        if (w->dealer && mg_msg_send(m, w->dealer, ZMQ_DONTWAIT) == 0) w->last_send = now;
        return;
    }
    if (strcmp(cmd, "RESULT") == 0) {
        mg_upload_t *up = s_outcome_upload(m);
        if (!s) {
            mg_upload_destroy(&up); /* cancelled meanwhile */
            return;
        }
        mg_upload_destroy(&s->upload);
        s->upload = up;
        if (up)
            mg_info("render %" PRId64 ": uploading %.1f MiB", s->render_id, (double)mg_upload_total(up) / (1 << 20));
        s_pump(w, s, now);
        return;
    }
    if (!s) return; /* cancelled meanwhile */
    mg_msg_clear(&s->outbox);
    s->outbox = *m;
    mg_msg_init(m);
    s_send_outbox(w, s, now);
}

/* ---- draining ---------------------------------------------------------------------------- */

/* SERVING -> DRAINING: hands back what has not started and says capacity 0. */
static void s_start_drain(mg_worker_t *w)
{
    w->draining = 1;
    mg_info("stopping: finishing %d render(s) (up to %d ms), accepting no new leases", s_busy(w, 0),
            w->cfg.drain_ms);
    int64_t now = mg_mono_ms();
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) {
        mg_slot_t *s = &w->slots[i];
        if (s->state != MG_SLOT_QUEUED) continue;
        s->state = MG_SLOT_DELIVERING;
        mg_kv_t kv;
        mg_kv_init(&kv);
        mg_worker_fail_kv(&kv, w, s, 1, 1, "worker shutting down before starting this render");
        mg_msg_clear(&s->outbox);
        mg_msg_add_str(&s->outbox, MG_PROTO_WORKER);
        mg_msg_add_str(&s->outbox, "FAIL");
        mg_msg_add_kv(&s->outbox, &kv);
        mg_kv_clear(&kv);
        s_send_outbox(w, s, now);
    }
    pthread_mutex_unlock(&w->lock);
    if (w->dealer) s_send_ready(w);
}

/* DRAINING -> GONE: DISCONNECT if connected, then the render threads are told to stop (what
 * still renders is cancelled) and joined, and outcomes left in the pipe are dropped. */
static void s_gone(mg_worker_t *w, pthread_t *threads)
{
    if (w->dealer) {
        mg_kv_t kv;
        mg_kv_init(&kv);
        mg_kv_set(&kv, "reason", "worker stopping");
        s_send(w, "DISCONNECT", &kv);
        mg_kv_clear(&kv);
        usleep(100 * 1000); /* let the DISCONNECT leave (linger is 0) */
        s_disconnect(w);
    }
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) atomic_store(&w->slots[i].cancel, 1);
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->cfg.capacity; i++) pthread_join(threads[i], NULL);
    mg_msg_t m;
    mg_msg_init(&m);
    while (mg_msg_recv(&m, w->pull, ZMQ_DONTWAIT) == 0) {
        if (mg_msg_is(&m, 1, "RESULT")) {
            mg_upload_t *up = s_outcome_upload(&m);
            mg_upload_destroy(&up);
        }
    }
    mg_msg_clear(&m);
}

/* ---- the loop ---------------------------------------------------------------------------- */

static int s_next_backoff(const mg_worker_t *w, int backoff_ms)
{
    return backoff_ms > w->cfg.backoff_max_ms / 2 ? w->cfg.backoff_max_ms : backoff_ms * 2;
}

/* A render thread reports progress after each step of its renderer and pipeline, but one step
 * (the loudness pass over a 10-minute mix, one stem's MP3) can outlast a lease. While the
 * thread is still working, the main thread repeats its last PROGRESS once half a lease has
 * passed without one, for at most S_KEEPALIVE_MAX_MS after the thread's last real report: a
 * render thread that is stuck for longer loses its lease, as it should. Past a whole lease
 * without a PROGRESS, or after a reconnection until the thread has reported again, it sends
 * nothing: the lease may be gone, and the render's own outcome finds out (fenced if late). */
#define S_KEEPALIVE_MAX_MS (10 * 60 * 1000)

static void s_keep_lease(mg_worker_t *w, mg_slot_t *s, int64_t now)
{
    pthread_mutex_lock(&w->lock);
    int working = s->state == MG_SLOT_RENDERING;
    pthread_mutex_unlock(&w->lock);
    int64_t since = now - s->renewed_mono;
    if (!working || !s->keepalive || since < s->lease_ms / 2 || since >= s->lease_ms ||
        now - s->progress_mono > S_KEEPALIVE_MAX_MS)
        return;
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set_i64(&kv, "render_id", s->render_id);
    mg_kv_set(&kv, "lease_token", s->token);
    mg_kv_set(&kv, "done", s->done);
    s_send(w, MG_WCMD_PROGRESS, &kv);
    mg_kv_clear(&kv);
    s->renewed_mono = now;
}

int mg_worker_run(mg_worker_t *w)
{
    if (w->ran) return -1;
    w->ran = 1;
    pthread_t threads[MG_WORKER_MAX_CAPACITY];
    for (int i = 0; i < w->cfg.capacity; i++) pthread_create(&threads[i], NULL, mg_worker_render_thread, w);
    mg_info("worker %s: renderer %s (%s, %s), capacity %d, coordinator %s", w->name, w->renderer->name,
            w->renderer->backend, w->renderer->device, w->cfg.capacity, w->endpoint);

    const int heartbeat_ms = w->cfg.heartbeat_ms;
    const int64_t silent_ms = (int64_t)heartbeat_ms * w->cfg.liveness;
    int backoff_ms = w->cfg.backoff_ms;
    int64_t reconnect_at = 0, drain_deadline = 0;
    if (s_connect(w) != 0) {
        reconnect_at = mg_mono_ms() + backoff_ms;
        backoff_ms = s_next_backoff(w, backoff_ms);
    }
    mg_msg_t m;
    mg_msg_init(&m);
    int rc = 0;
    for (;;) {
        int64_t now = mg_mono_ms();
        if (atomic_load(&w->stop) && !w->draining) {
            s_start_drain(w);
            drain_deadline = now + w->cfg.drain_ms;
        }
        if (w->draining) {
            int busy = s_busy(w, 1);
            if (busy == 0) break;
            if (now > drain_deadline) {
                mg_warn("drain time over with %d render(s) unfinished: their leases will expire", busy);
                rc = 1;
                break;
            }
        }
        if (!w->dealer && now >= reconnect_at && s_connect(w) != 0) {
            reconnect_at = now + backoff_ms;
            backoff_ms = s_next_backoff(w, backoff_ms);
        }
        zmq_pollitem_t items[3] = {{NULL, w->wake[0], ZMQ_POLLIN, 0},
                                   {w->pull, 0, ZMQ_POLLIN, 0},
                                   {w->dealer, 0, ZMQ_POLLIN, 0}};
        int nitems = w->dealer ? 3 : 2;
        int timeout = heartbeat_ms / 2;
        if (!w->dealer && reconnect_at - now < timeout) timeout = (int)(reconnect_at > now ? reconnect_at - now : 1);
        if (zmq_poll(items, nitems, timeout) < 0 && errno != EINTR) {
            mg_err("poll: %s", zmq_strerror(errno));
            rc = 1;
            break;
        }
        /* Back from a stop (SIGSTOP, a suspended VM): whatever queued meanwhile is old news, and
         * no lease is kept alive again before its render thread has reported afresh. */
        if (mg_mono_ms() - now > timeout + (heartbeat_ms > 200 ? heartbeat_ms : 200))
            for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) w->slots[i].keepalive = 0;
        if (items[0].revents & ZMQ_POLLIN) {
            char sink[64];
            while (read(w->wake[0], sink, sizeof sink) > 0) {
            }
        }
        while (mg_msg_recv(&m, w->pull, ZMQ_DONTWAIT) == 0) s_on_outcome(w, &m);
        int reconnect = 0;
        while (w->dealer && mg_msg_recv(&m, w->dealer, ZMQ_DONTWAIT) == 0) {
            s_on_coordinator(w, &m, &reconnect);
            if (reconnect) break;
        }
        now = mg_mono_ms();
        if (w->dealer && !reconnect && now - w->last_recv > silent_ms) {
            mg_warn("coordinator silent for %lld ms: reconnecting in %d ms", (long long)(now - w->last_recv),
                    backoff_ms);
            reconnect = 1;
        }
        if (reconnect) {
            s_disconnect(w);
            reconnect_at = now + backoff_ms;
            backoff_ms = s_next_backoff(w, backoff_ms);
            continue;
        }
        if (w->dealer && w->heard) backoff_ms = w->cfg.backoff_ms; /* the coordinator answered: healthy again */
        if (w->dealer && now - w->last_send >= heartbeat_ms) s_send(w, "HEARTBEAT", NULL);
        /* An outcome without an ACK for a while (lost in a reconnect): send it again; uploads
         * send what their window and their timers allow. */
        for (int i = 0; w->dealer && i < MG_WORKER_MAX_CAPACITY; i++) {
            mg_slot_t *s = &w->slots[i];
            if (s->outbox.n > 0 && now - s->sent_mono > w->cfg.outbox_resend_ms) s_send_outbox(w, s, now);
            s_pump(w, s, now);
            s_keep_lease(w, s, now);
        }
    }
    mg_msg_clear(&m);
    s_gone(w, threads);
    mg_info("worker stopped");
    return rc;
}

/* A store to a lock-free atomic and write(2) are all a signal handler may do here. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "mg_worker_stop needs a lock-free atomic_int");

void mg_worker_stop(mg_worker_t *w)
{
    atomic_store(&w->stop, 1);
    ssize_t n = write(w->wake[1], "s", 1); /* full pipe (EAGAIN): a wake-up is already waiting */
    (void)n;
}

const char *mg_worker_name(const mg_worker_t *w) { return w->name; }

/* ---- new / destroy ------------------------------------------------------------------------ */

mg_worker_t *mg_worker_new(const mg_worker_config_t *cfg, const mg_renderer_t *renderer, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (!renderer) bad = "no renderer";
    else if (!cfg->endpoint || !*cfg->endpoint || strlen(cfg->endpoint) >= sizeof ((mg_worker_t *)0)->endpoint)
        bad = "endpoint missing or too long";
    else if (cfg->capacity < 1 || cfg->capacity > MG_WORKER_MAX_CAPACITY)
        bad = "capacity out of 1..MG_WORKER_MAX_CAPACITY";
    else if (cfg->heartbeat_ms < 2 || cfg->liveness < 1) bad = "heartbeat_ms must be >= 2 and liveness >= 1";
    else if (cfg->drain_ms < 0) bad = "drain_ms must be >= 0";
    else if (cfg->backoff_ms < 1 || cfg->backoff_max_ms < cfg->backoff_ms)
        bad = "backoff_ms must be >= 1 and backoff_max_ms >= backoff_ms";
    else if (cfg->outbox_resend_ms < 1) bad = "outbox_resend_ms must be >= 1";
    else if (cfg->upload.chunk_bytes < 1 || cfg->upload.chunk_bytes > MG_CHUNK_MAX_BYTES || cfg->upload.window < 1)
        bad = "chunk_bytes must be 1..MG_CHUNK_MAX_BYTES and window >= 1";
    if (bad) {
        mg_set_error(err, errlen, "worker settings: %s", bad);
        return NULL;
    }
    mg_worker_t *w = calloc(1, sizeof *w);
    if (!w) {
        mg_set_error(err, errlen, "out of memory");
        return NULL;
    }
    w->cfg = *cfg;
    w->renderer = renderer;
    w->wake[0] = w->wake[1] = -1;
    mg_strlcpy(w->endpoint, cfg->endpoint, sizeof w->endpoint);
    w->cfg.endpoint = w->endpoint;
    gethostname(w->host, sizeof w->host - 1);
    if (cfg->name && *cfg->name) mg_strlcpy(w->name, cfg->name, sizeof w->name);
    else {
        unsigned char rnd[2];
        FILE *ur = fopen("/dev/urandom", "rb");
        if (!ur || fread(rnd, 1, 2, ur) != 2) rnd[0] = rnd[1] = (unsigned char)getpid();
        if (ur) fclose(ur);
        snprintf(w->name, sizeof w->name, "%s:%d:%02x%02x", w->host, (int)getpid(), rnd[0], rnd[1]);
    }
    w->cfg.name = w->name;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work, NULL);
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) mg_msg_init(&w->slots[i].outbox);
    if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        mg_set_error(err, errlen, "cannot make the wake-up pipe: %s", strerror(errno));
        w->wake[0] = w->wake[1] = -1;
        mg_worker_destroy(&w);
        return NULL;
    }
    w->ctx = zmq_ctx_new();
    w->pull = w->ctx ? zmq_socket(w->ctx, ZMQ_PULL) : NULL;
    if (!w->pull || zmq_bind(w->pull, MG_WORKER_OUT) != 0) {
        mg_set_error(err, errlen, "cannot set up the inproc socket: %s", zmq_strerror(errno));
        mg_worker_destroy(&w);
        return NULL;
    }
    return w;
}

void mg_worker_destroy(mg_worker_t **w_p)
{
    if (!w_p || !*w_p) return;
    mg_worker_t *w = *w_p;
    if (w->dealer) zmq_close(w->dealer);
    if (w->pull) zmq_close(w->pull);
    for (int i = 0; i < MG_WORKER_MAX_CAPACITY; i++) {
        mg_msg_clear(&w->slots[i].outbox);
        mg_upload_destroy(&w->slots[i].upload);
    }
    if (w->ctx) zmq_ctx_term(w->ctx);
    if (w->wake[0] >= 0) close(w->wake[0]);
    if (w->wake[1] >= 0) close(w->wake[1]);
    pthread_cond_destroy(&w->work);
    pthread_mutex_destroy(&w->lock);
    free(w);
    *w_p = NULL;
}
