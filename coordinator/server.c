/* server.c - the coordinator's ROUTER loop: workers, leases, results, client requests.
 *
 * One thread owns the socket and the store (libzmq sockets are not thread-safe; SQLite's
 * connection is used from this thread only). Each loop turn:
 *
 *   poll(router, timeout <= heartbeat/4)
 *     -> handle every waiting message (worker or client, told apart by the header frame)
 *   housekeeping (at most every 100 ms):
 *     -> workers silent for heartbeat x liveness: dead, their leases end ('lost')
 *     -> leases past their deadline end ('expired')
 *     -> HEARTBEAT to every worker once per heartbeat interval
 *     -> due schedule runs become jobs (once per second)
 *   dispatch: every worker with free capacity gets LEASEs for queued renders.
 *
 * Worker messages are accepted on the lease token alone (CHUNK / RESULT / FAIL / PROGRESS), so
 * a worker that reconnects after a coordinator restart can still deliver; any other
 * command from an unknown peer is answered with DISCONNECT, and the worker sends READY.
 * A result's files arrive first, as CHUNKs written to temporary files (transfer.c); its RESULT
 * then carries their metadata only, and the store renames the files into place.
 */
#include "server.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "../common/jobspec.h"
#include "../common/protocol.h"
#include "../common/util.h"
#include "db.h"
#include "fetch.h"
#include "provenance.h"
#include "schedule.h"
#include "transfer.h"

#define S_MAX_WORKERS 1024
#define S_MAX_RID 256
#define S_MAX_PENDING 64 /* results recorded per commit at most */

typedef struct {
    unsigned char rid[S_MAX_RID]; /* ZeroMQ routing id of the worker's DEALER */
    size_t rid_len;
    char name[160];
    int capacity;
    int64_t last_seen;            /* monotonic ms */
    int live;
} s_worker_t;

typedef struct {
    mg_store_t *store;
    const mg_server_config_t *cfg;
    void *router;
    s_worker_t workers[S_MAX_WORKERS];
    int n_workers;
    int64_t started_mono;
    int dispatch_needed;
    struct s_pending *pending; /* S_MAX_PENDING results awaiting their group commit */
    int n_pending;
    mg_transfer_t *transfers;  /* owned: result files arriving in chunks */
} s_server_t;

/* ---- sending ---------------------------------------------------------------------------- */

static int s_send(s_server_t *srv, const unsigned char *rid, size_t rid_len, const char *proto, const char *command,
                  mg_msg_t *body)
{
    mg_msg_t m;
    mg_msg_init(&m);
    int rc = mg_msg_add(&m, rid, rid_len) | mg_msg_add_str(&m, proto) | mg_msg_add_str(&m, command);
    for (size_t i = 0; body && i < body->n && rc == 0; i++) rc = mg_msg_add(&m, body->data[i], body->size[i]);
    if (rc == 0) rc = mg_msg_send(&m, srv->router, 0);
    mg_msg_clear(&m);
    return rc;
}

static int s_send_kv(s_server_t *srv, const unsigned char *rid, size_t rid_len, const char *proto,
                     const char *command, const mg_kv_t *kv)
{
    mg_msg_t body;
    mg_msg_init(&body);
    if (kv) mg_msg_add_kv(&body, kv);
    int rc = s_send(srv, rid, rid_len, proto, command, &body);
    mg_msg_clear(&body);
    return rc;
}

/* ---- workers ---------------------------------------------------------------------------- */

static s_worker_t *s_worker_by_rid(s_server_t *srv, const void *rid, size_t len)
{
    for (int i = 0; i < srv->n_workers; i++)
        if (srv->workers[i].live && srv->workers[i].rid_len == len && memcmp(srv->workers[i].rid, rid, len) == 0)
            return &srv->workers[i];
    return NULL;
}

static s_worker_t *s_worker_by_name(s_server_t *srv, const char *name)
{
    for (int i = 0; i < srv->n_workers; i++)
        if (srv->workers[i].live && strcmp(srv->workers[i].name, name) == 0) return &srv->workers[i];
    return NULL;
}

static void s_worker_dead(s_server_t *srv, s_worker_t *w, const char *why)
{
    int n = 0;
    mg_store_worker_lost(srv->store, w->name, why, mg_now_ms(), &n);
    mg_warn("worker %s %s: %d lease(s) released", w->name, why, n);
    mg_db_event(srv->store->db, "worker_lost", 0, 0, w->name, "%s; %d lease(s) released", why, n);
    w->live = 0;
    srv->dispatch_needed = 1;
}

static void s_handle_ready(s_server_t *srv, const mg_msg_t *m, const mg_kv_t *kv)
{
    const char *name = mg_kv_get(kv, "name");
    if (!name || !*name || strlen(name) >= sizeof srv->workers[0].name || m->size[0] > S_MAX_RID) {
        mg_warn("READY without a valid worker name: ignored");
        return;
    }
    s_worker_t *w = s_worker_by_name(srv, name);
    if (!w) w = s_worker_by_rid(srv, m->data[0], m->size[0]);
    if (!w) {
        for (int i = 0; i < srv->n_workers; i++)
            if (!srv->workers[i].live) { w = &srv->workers[i]; break; }
        if (!w && srv->n_workers < S_MAX_WORKERS) w = &srv->workers[srv->n_workers++];
        if (!w) {
            mg_err("too many workers (%d): READY from %s refused", S_MAX_WORKERS, name);
            return;
        }
    }
    memset(w, 0, sizeof *w);
    memcpy(w->rid, m->data[0], m->size[0]);
    w->rid_len = m->size[0];
    mg_strlcpy(w->name, name, sizeof w->name);
    w->capacity = (int)mg_kv_get_i64(kv, "capacity", 1); /* 0: draining, no new leases */
    if (w->capacity < 0) w->capacity = 0;
    if (w->capacity > 256) w->capacity = 256;
    w->last_seen = mg_mono_ms();
    w->live = 1;
    int64_t now = mg_now_ms();
    mg_store_worker_seen(srv->store, name, mg_kv_get_or(kv, "host", "?"), mg_kv_get_i64(kv, "pid", 0),
                         mg_kv_get_or(kv, "backend", "?"), mg_kv_get_or(kv, "device", "?"), w->capacity,
                         mg_kv_get_or(kv, "models", ""), now);
    /* Leases the worker still holds (it reconnected): renew them so they are not lost. */
    const char *held = mg_kv_get(kv, "held");
    if (held && *held) {
        char *copy = strdup(held), *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
            char *colon = strchr(t, ':');
            if (!colon) continue;
            *colon = 0;
            if (mg_store_renew(srv->store, strtoll(t, NULL, 10), colon + 1, now) == MG_STORE_OK)
                mg_db_run(srv->store->db, "UPDATE renders SET lease_worker = ? WHERE id = ?", "si", name,
                          (int64_t)strtoll(t, NULL, 10));
        }
        free(copy);
    }
    mg_info("worker %s ready (%s, %s, capacity %d)", name, mg_kv_get_or(kv, "backend", "?"),
            mg_kv_get_or(kv, "device", "?"), w->capacity);
    mg_db_event(srv->store->db, "worker_ready", 0, 0, name, "%s %s capacity %d", mg_kv_get_or(kv, "backend", "?"),
                mg_kv_get_or(kv, "device", "?"), w->capacity);
    srv->dispatch_needed = 1;
}

static void s_ack(s_server_t *srv, const mg_msg_t *m, int64_t render_id, const char *token, int accepted,
                  const char *reason)
{
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set_i64(&kv, "render_id", render_id);
    mg_kv_set(&kv, "lease_token", token);
    mg_kv_set_i64(&kv, "accepted", accepted);
    mg_kv_set(&kv, "reason", reason);
    if (s_send_kv(srv, m->data[0], m->size[0], MG_PROTO_WORKER, "ACK", &kv) != 0)
        mg_warn("cannot send ACK for render %" PRId64 ": %s", render_id, zmq_strerror(errno));
    mg_kv_clear(&kv);
}

/* CHUNK: [rid, hdr, "CHUNK", kv, bytes], one piece of a result file (transfer.c). The
 * answers other than CHUNK_ACK are ACKs, as for a RESULT. */
static void s_handle_chunk(s_server_t *srv, const mg_msg_t *m, const mg_kv_t *kv, const s_worker_t *w)
{
    char why[512] = "";
    int64_t now = mg_now_ms();
    int64_t render_id = mg_kv_get_i64(kv, "render_id", 0);
    const char *token = mg_kv_get_or(kv, "lease_token", "");
    const char *worker = w ? w->name : mg_kv_get_or(kv, "worker", "?");
    switch (mg_transfer_chunk(srv->transfers, srv->store, srv->router, m, kv, now, why, sizeof why)) {
    case MG_TRANSFER_OK: break;
    case MG_TRANSFER_STALE:
        mg_warn("render %" PRId64 ": chunk from %s refused: %s", render_id, worker, why);
        mg_store_reject_result(srv->store, render_id, token, worker, now);
        s_ack(srv, m, render_id, token, 0, why);
        break;
    case MG_TRANSFER_STALE_AGAIN: s_ack(srv, m, render_id, token, 0, why); break;
    case MG_TRANSFER_RECORDED: s_ack(srv, m, render_id, token, 1, "recorded"); break;
    case MG_TRANSFER_BAD:
        mg_err("render %" PRId64 ": %s", render_id, why);
        mg_store_fail(srv->store, render_id, token, worker, 1, why, now);
        mg_transfer_done(srv->transfers, render_id, token);
        s_ack(srv, m, render_id, token, 0, why);
        srv->dispatch_needed = 1;
        break;
    default: mg_err("render %" PRId64 ": chunk not taken: %s", render_id, why); break; /* the worker resends */
    }
}

/* RESULT: [rid, hdr, "RESULT", meta, file meta * meta.files], after the files' CHUNKs.
 * Results are queued while the socket is drained and recorded together (s_flush_results):
 * one commit, one WAL sync, for the whole batch; ACKs go out only after that commit. */
typedef struct s_pending {
    mg_msg_t msg;        /* owned: the frames r points into */
    mg_kv_t meta, fkv[MG_MAX_RESULT_FILES];
    mg_result_t r;
    int64_t seq;         /* the worker's chunk sequence when it sent the RESULT */
    const char *bad;     /* malformed: not recorded */
    int transfer;        /* MG_TRANSFER_* from attaching the files */
    char why[512];
} s_pending_t;

static void s_parse_result(s_pending_t *p)
{
    mg_result_t *r = &p->r;
    const mg_kv_t *meta = &p->meta;
    const mg_msg_t *m = &p->msg;
    memset(r, 0, sizeof *r);
    p->bad = NULL;
    if (mg_msg_kv(m, 3, &p->meta) != 0) { p->bad = "malformed meta"; return; }
    r->render_id = mg_kv_get_i64(meta, "render_id", 0);
    r->lease_token = mg_kv_get_or(meta, "lease_token", "");
    r->worker = mg_kv_get_or(meta, "worker", "?");
    r->backend = mg_kv_get_or(meta, "backend", "?");
    r->device = mg_kv_get_or(meta, "device", "?");
    r->model_name = mg_kv_get_or(meta, "model_name", "?");
    r->model_version = mg_kv_get_or(meta, "model_version", "?");
    r->model_sha256 = mg_kv_get_or(meta, "model_sha256", "?");
    r->model_license = mg_kv_get_or(meta, "model_license", "");
    r->attribution = mg_kv_get(meta, "attribution");
    r->decision_json = mg_kv_get(meta, "decision_json");
    r->started_ms = mg_kv_get_i64(meta, "started_ms", 0);
    r->finished_ms = mg_kv_get_i64(meta, "finished_ms", 0);
    r->integrated_lufs = mg_kv_get_double(meta, "integrated_lufs", 0);
    r->peak_dbfs = mg_kv_get_double(meta, "peak_dbfs", 0);
    p->seq = mg_kv_get_i64(meta, "seq", 0);
    if ((int64_t)m->n - 4 != mg_kv_get_i64(meta, "files", -1)) { p->bad = "file count does not match 'files'"; return; }
    if (m->n - 4 > MG_MAX_RESULT_FILES) { p->bad = "too many files"; return; }
    for (size_t f = 4; f < m->n; f++) {
        mg_kv_t *k = &p->fkv[r->n_files];
        if (mg_msg_kv(m, f, k) != 0) { p->bad = "malformed file header"; return; }
        mg_result_file_t *rf = &r->files[r->n_files++];
        rf->format = mg_kv_get_or(k, "format", "");
        /* Workers before stems sent no kind: their files are the mix. */
        rf->kind = mg_kv_get_or(k, "kind", "mix");
        rf->part = mg_kv_get_or(k, "part", "");
        if (mg_result_file_check(rf, &p->bad) != 0) return;
        rf->sha256 = mg_kv_get_or(k, "sha256", "");
        rf->duration_s = mg_kv_get_double(k, "duration_s", 0);
        rf->sample_rate = (int)mg_kv_get_i64(k, "sample_rate", 0);
        rf->channels = (int)mg_kv_get_i64(k, "channels", 0);
        uint64_t bytes = mg_kv_get_u64(k, "bytes", UINT64_MAX);
        if (bytes > (uint64_t)MG_MAX_RESULT_FILE_BYTES) { p->bad = "file size missing or too large"; return; }
        rf->len = (size_t)bytes; /* the bytes arrived as CHUNKs */
    }
    if (r->n_files == 0) p->bad = "no files";
}

/* A RESULT whose files are not all here (transfer.h): the worker was asked for the rest, or
 * the lease is over. */
static void s_answer_untransferred(s_server_t *srv, s_pending_t *p)
{
    const mg_result_t *r = &p->r;
    switch (p->transfer) {
    case MG_TRANSFER_RESEND:
        mg_info("render %" PRId64 " from %s: %s", r->render_id, r->worker, p->why);
        break;
    case MG_TRANSFER_RECORDED: s_ack(srv, &p->msg, r->render_id, r->lease_token, 1, "recorded"); break;
    case MG_TRANSFER_STALE:
        mg_warn("render %" PRId64 ": result from %s rejected: %s", r->render_id, r->worker, p->why);
        mg_store_reject_result(srv->store, r->render_id, r->lease_token, r->worker, mg_now_ms());
        s_ack(srv, &p->msg, r->render_id, r->lease_token, 0, p->why);
        break;
    case MG_TRANSFER_STALE_AGAIN: s_ack(srv, &p->msg, r->render_id, r->lease_token, 0, p->why); break;
    default: mg_err("render %" PRId64 ": %s", r->render_id, p->why); break; /* the worker resends */
    }
}

static void s_flush_results(s_server_t *srv)
{
    int n = srv->n_pending;
    if (n == 0) return;
    srv->n_pending = 0;
    enum { ERRLEN = 512 };
    mg_result_t rs[S_MAX_PENDING];
    int rcs[S_MAX_PENDING], idx[S_MAX_PENDING], good = 0;
    static char errs[S_MAX_PENDING * ERRLEN];
    for (int i = 0; i < n; i++) {
        s_pending_t *p = &srv->pending[i];
        s_parse_result(p);
        p->transfer = MG_TRANSFER_OK;
        if (!p->bad) {
            p->transfer = mg_transfer_attach(srv->transfers, srv->store, srv->router, &p->msg, p->seq, &p->r, p->why,
                                             sizeof p->why);
            if (p->transfer == MG_TRANSFER_BAD) p->bad = p->why;
        }
        if (!p->bad && p->transfer == MG_TRANSFER_OK) {
            idx[good] = i;
            rs[good++] = p->r;
        }
    }
    mg_store_complete_many(srv->store, rs, good, mg_now_ms(), rcs, errs, ERRLEN);
    for (int i = 0, g = 0; i < n; i++) {
        s_pending_t *p = &srv->pending[i];
        const mg_result_t *r = &p->r;
        char bad_err[ERRLEN];
        int rc;
        const char *err;
        if (!p->bad && p->transfer != MG_TRANSFER_OK) {
            s_answer_untransferred(srv, p);
            goto next;
        }
        if (g < good && idx[g] == i) {
            rc = rcs[g];
            err = errs + (size_t)g * ERRLEN;
            g++;
        } else {
            if (p->transfer == MG_TRANSFER_BAD) snprintf(bad_err, sizeof bad_err, "%s", p->bad);
            else snprintf(bad_err, sizeof bad_err, "malformed RESULT: %s", p->bad);
            rc = MG_STORE_ERR;
            err = bad_err;
        }
        mg_transfer_done(srv->transfers, r->render_id, r->lease_token); /* before the ACK: nothing left behind */
        if (rc == MG_STORE_OK) {
            mg_info("render %" PRId64 " done by %s", r->render_id, r->worker);
            s_ack(srv, &p->msg, r->render_id, r->lease_token, 1, "recorded");
        } else if (rc == MG_STORE_STALE) {
            mg_warn("render %" PRId64 ": result from %s rejected: %s", r->render_id, r->worker, err);
            s_ack(srv, &p->msg, r->render_id, r->lease_token, 0, err);
        } else {
            /* Not recorded. Corrupt or malformed: a failed attempt, and the ACK stops the
             * resends. Otherwise (disk, database) the lease stays: the worker resends, or the
             * lease expires and the render is leased again. */
            mg_err("render %" PRId64 ": %s", r->render_id, err);
            if (p->bad || strstr(err, "sha256")) {
                mg_store_fail(srv->store, r->render_id, r->lease_token, r->worker, 1, err, mg_now_ms());
                s_ack(srv, &p->msg, r->render_id, r->lease_token, 0, err);
            }
        }
    next:
        mg_msg_clear(&p->msg);
        mg_kv_clear(&p->meta);
        for (int k = 0; k < MG_MAX_RESULT_FILES; k++) mg_kv_clear(&p->fkv[k]);
    }
    srv->dispatch_needed = 1;
}

/* Takes the message (moves its frames) into the pending batch. */
static void s_queue_result(s_server_t *srv, mg_msg_t *m)
{
    if (srv->n_pending == S_MAX_PENDING) s_flush_results(srv);
    s_pending_t *p = &srv->pending[srv->n_pending++];
    p->msg = *m;
    mg_msg_init(m);
    mg_kv_init(&p->meta);
    for (int k = 0; k < MG_MAX_RESULT_FILES; k++) mg_kv_init(&p->fkv[k]);
}

static void s_handle_fail(s_server_t *srv, const mg_msg_t *m, const mg_kv_t *kv)
{
    int64_t render_id = mg_kv_get_i64(kv, "render_id", 0);
    const char *token = mg_kv_get_or(kv, "lease_token", "");
    const char *worker = mg_kv_get_or(kv, "worker", "?");
    int retryable = (int)mg_kv_get_i64(kv, "retryable", 1);
    const char *message = mg_kv_get_or(kv, "message", "(no message)");
    if (mg_kv_get_i64(kv, "handback", 0) == 1) {
        /* Handed back unstarted (worker draining): queued again, no attempt counted. */
        int rc = mg_store_unlease(srv->store, render_id, token, mg_now_ms());
        mg_info("render %" PRId64 " handed back by %s", render_id, worker);
        s_ack(srv, m, render_id, token, rc == MG_STORE_OK, rc == MG_STORE_OK ? "handed back" : "stale lease token");
        srv->dispatch_needed = 1;
        return;
    }
    int rc = mg_store_fail(srv->store, render_id, token, worker, retryable, message, mg_now_ms());
    mg_warn("render %" PRId64 " failed on %s (%s): %s%s", render_id, worker, retryable ? "retryable" : "permanent",
            message, rc == MG_STORE_STALE ? " [stale lease, ignored]" : "");
    s_ack(srv, m, render_id, token, rc == MG_STORE_OK, rc == MG_STORE_OK ? "recorded" : "stale lease token");
    srv->dispatch_needed = 1;
}

static void s_handle_worker(s_server_t *srv, mg_msg_t *m)
{
    char cmd[32];
    mg_msg_str(m, 2, cmd, sizeof cmd);
    s_worker_t *w = s_worker_by_rid(srv, m->data[0], m->size[0]);
    if (w) w->last_seen = mg_mono_ms(); /* any message counts as a heartbeat */
    mg_kv_t kv;
    mg_kv_init(&kv);
    if (m->n > 3 && mg_msg_kv(m, 3, &kv) != 0) {
        mg_warn("worker message %s with a malformed body: ignored", cmd);
        return;
    }
    if (strcmp(cmd, "READY") == 0) {
        s_handle_ready(srv, m, &kv);
    } else if (strcmp(cmd, "CHUNK") == 0) {
        s_handle_chunk(srv, m, &kv, w);
    } else if (strcmp(cmd, "RESULT") == 0) {
        s_queue_result(srv, m);
    } else if (strcmp(cmd, "FAIL") == 0) {
        s_handle_fail(srv, m, &kv);
    } else if (strcmp(cmd, "PROGRESS") == 0) {
        int64_t render_id = mg_kv_get_i64(&kv, "render_id", 0);
        const char *token = mg_kv_get_or(&kv, "lease_token", "");
        if (mg_store_renew(srv->store, render_id, token, mg_now_ms()) == MG_STORE_STALE) {
            mg_kv_t c;
            mg_kv_init(&c);
            mg_kv_set_i64(&c, "render_id", render_id);
            mg_kv_set(&c, "lease_token", token);
            mg_kv_set(&c, "reason", "lease no longer valid");
            s_send_kv(srv, m->data[0], m->size[0], MG_PROTO_WORKER, "CANCEL", &c);
            mg_kv_clear(&c);
        }
        if (!w) {
            mg_kv_t d;
            mg_kv_init(&d);
            mg_kv_set(&d, "reason", "unknown worker: send READY");
            s_send_kv(srv, m->data[0], m->size[0], MG_PROTO_WORKER, "DISCONNECT", &d);
            mg_kv_clear(&d);
        }
    } else if (strcmp(cmd, "DISCONNECT") == 0) {
        if (w) {
            mg_info("worker %s disconnected: %s", w->name, mg_kv_get_or(&kv, "reason", ""));
            s_worker_dead(srv, w, "disconnected");
        }
    } else if (strcmp(cmd, "HEARTBEAT") == 0) {
        if (!w) {
            mg_kv_t d;
            mg_kv_init(&d);
            mg_kv_set(&d, "reason", "unknown worker: send READY");
            s_send_kv(srv, m->data[0], m->size[0], MG_PROTO_WORKER, "DISCONNECT", &d);
            mg_kv_clear(&d);
        }
    } else {
        mg_warn("unknown worker command '%s': answered with DISCONNECT", cmd);
        mg_kv_t d;
        mg_kv_init(&d);
        mg_kv_setf(&d, "reason", "unknown command '%s'", cmd);
        s_send_kv(srv, m->data[0], m->size[0], MG_PROTO_WORKER, "DISCONNECT", &d);
        mg_kv_clear(&d);
    }
    mg_kv_clear(&kv);
}

static void s_dispatch(s_server_t *srv)
{
    srv->dispatch_needed = 0;
    int64_t now = mg_now_ms();
    for (int i = 0; i < srv->n_workers; i++) {
        s_worker_t *w = &srv->workers[i];
        if (!w->live) continue;
        int in_flight = (int)mg_db_int(srv->store->db, 0,
                                       "SELECT count(*) FROM renders WHERE state = 'leased' AND lease_worker = ?", "s",
                                       w->name);
        int free_slots = w->capacity - in_flight;
        if (free_slots <= 0) continue;
        mg_lease_t leases[16];
        if (free_slots > 16) free_slots = 16;
        int n = 0;
        if (mg_store_lease(srv->store, w->name, free_slots, now, leases, &n) != MG_STORE_OK || n == 0) continue;
        mg_msg_t body;
        mg_msg_init(&body);
        for (int k = 0; k < n; k++) {
            mg_kv_t lk, sk;
            mg_kv_init(&lk);
            mg_kv_init(&sk);
            mg_kv_set_i64(&lk, "render_id", leases[k].render_id);
            mg_kv_set(&lk, "lease_token", leases[k].lease_token);
            mg_kv_set_i64(&lk, "attempt", leases[k].attempt);
            mg_kv_set_i64(&lk, "deadline_ms", leases[k].deadline_ms);
            mg_kv_set_i64(&lk, "lease_ms", srv->store->policy.lease_ms);
            mg_render_spec_to_kv(&leases[k].spec, &sk);
            mg_msg_add_kv(&body, &lk);
            mg_msg_add_kv(&body, &sk);
            mg_kv_clear(&lk);
            mg_kv_clear(&sk);
        }
        if (s_send(srv, w->rid, w->rid_len, MG_PROTO_WORKER, "LEASE", &body) != 0) {
            mg_warn("cannot send LEASE to %s (%s): leases returned", w->name, zmq_strerror(errno));
            for (int k = 0; k < n; k++) mg_store_unlease(srv->store, leases[k].render_id, leases[k].lease_token, now);
            if (errno == EHOSTUNREACH) s_worker_dead(srv, w, "unreachable");
        } else {
            for (int k = 0; k < n; k++)
                mg_debug("render %" PRId64 " leased to %s (attempt %d)", leases[k].render_id, w->name,
                         leases[k].attempt);
        }
        mg_msg_clear(&body);
    }
}

/* ---- clients ---------------------------------------------------------------------------- */

typedef struct {
    s_server_t *srv;
    const mg_msg_t *req;
    mg_kv_t info;
    mg_msg_t rows;
    int error;
} s_reply_t;

static void s_reply_err(s_reply_t *r, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_reply_err(s_reply_t *r, const char *code, const char *fmt, ...)
{
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mg_kv_clear(&r->info);
    mg_kv_set(&r->info, "code", code);
    mg_kv_set(&r->info, "message", msg);
    mg_msg_clear(&r->rows);
    r->error = 1;
}

/* Appends one row frame per result row of st (column names as keys); finalizes st. */
static int s_rows(s_reply_t *r, sqlite3_stmt *st)
{
    if (!st) {
        s_reply_err(r, "internal", "query failed: %s", sqlite3_errmsg(r->srv->store->db));
        return -1;
    }
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        mg_kv_t row;
        mg_kv_init(&row);
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            mg_kv_set(&row, sqlite3_column_name(st, c), t ? (const char *)t : "");
        }
        mg_msg_add_kv(&r->rows, &row);
        mg_kv_clear(&row);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s_reply_err(r, "internal", "query failed: %s", sqlite3_errmsg(r->srv->store->db));
        return -1;
    }
    return n;
}

/* Copies the first row of st into info (column names as keys). 1 found, 0 none. */
static int s_info_row(s_reply_t *r, sqlite3_stmt *st)
{
    if (!st) return 0;
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            mg_kv_set(&r->info, sqlite3_column_name(st, c), t ? (const char *)t : "");
        }
        found = 1;
    }
    sqlite3_finalize(st);
    return found;
}

static int64_t s_limit(const mg_kv_t *args, int64_t dflt)
{
    int64_t l = mg_kv_get_i64(args, "limit", dflt);
    return l <= 0 || l > 100000 ? dflt : l;
}

static void s_cmd_submit(s_reply_t *r, const mg_kv_t *args)
{
    if (r->req->n < 5) { s_reply_err(r, "bad_request", "SUBMIT needs the job file as payload"); return; }
    const char *name = mg_kv_get_or(args, "name", "job.yaml");
    size_t len = r->req->size[4];
    char *text = malloc(len + 1);
    if (!text) { s_reply_err(r, "internal", "out of memory"); return; }
    memcpy(text, r->req->data[4], len);
    text[len] = 0;
    if (strlen(text) != len) {
        s_reply_err(r, "invalid_job", "%s: the file contains NUL bytes", name);
        free(text);
        return;
    }
    char err[8192] = "";
    mg_job_t *job = NULL;
    if (mg_job_parse_buffer(name, text, len, &job, err, sizeof err) != 0) {
        s_reply_err(r, "invalid_job", "%s", err);
        free(text);
        return;
    }
    int64_t job_id = 0;
    size_t renders = 0;
    int dup = 0;
    int rc = mg_store_submit(r->srv->store, job, name, text, 0, &job_id, &renders, &dup, err, sizeof err);
    if (rc == MG_STORE_CONFLICT) s_reply_err(r, "conflict", "%s", err);
    else if (rc != MG_STORE_OK) s_reply_err(r, "internal", "%s", err);
    else {
        mg_kv_set_i64(&r->info, "job_id", job_id);
        mg_kv_set_i64(&r->info, "renders", (int64_t)renders);
        mg_kv_set_i64(&r->info, "duplicate", dup);
        mg_kv_set(&r->info, "idempotency_key", job->idempotency_key);
        mg_info("job %" PRId64 " %s: %zu renders (%s)", job_id, dup ? "resubmitted" : "submitted", renders, name);
        r->srv->dispatch_needed = 1;
    }
    mg_job_destroy(&job);
    free(text);
}

static void s_cmd_status(s_reply_t *r, const mg_kv_t *args)
{
    sqlite3 *db = r->srv->store->db;
    int64_t job_id = mg_kv_get_i64(args, "job_id", 0);
    if (!s_info_row(r, mg_db_prepare(db, "SELECT * FROM job_progress WHERE job_id = ?", "i", job_id))) {
        s_reply_err(r, "not_found", "no job %" PRId64, job_id);
        return;
    }
    if (mg_kv_get_i64(args, "rows", 1) == 0) return;
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s/", r->srv->store->outputs_dir);
    s_rows(r, mg_db_prepare(db,
        "SELECT r.id AS render_id, c.name AS cue, r.variation + 1 AS variation, r.seed, r.state, r.attempts, "
        "coalesce(r.lease_worker, (SELECT worker FROM attempts a WHERE a.render_id = r.id ORDER BY attempt_no DESC "
        "LIMIT 1), '') AS worker, coalesce(r.last_error, '') AS error, "
        "coalesce((SELECT group_concat(? || path, ',') FROM outputs o WHERE o.render_id = r.id), '') AS outputs "
        "FROM renders r JOIN cues c ON c.id = r.cue_id WHERE r.job_id = ? ORDER BY r.id LIMIT ?",
        "sii", prefix, job_id, s_limit(args, 100000)));
}

static void s_cmd_jobs(s_reply_t *r, const mg_kv_t *args)
{
    const char *state = mg_kv_get(args, "state");
    s_rows(r, mg_db_prepare(r->srv->store->db,
        "SELECT job_id, campaign, client, state, priority, total, queued, leased, done, failed, cancelled, "
        "created_ms, finished_ms FROM job_progress WHERE (?1 IS NULL OR state = ?1) ORDER BY job_id DESC LIMIT ?2",
        "si", state, s_limit(args, 50)));
}

static void s_cmd_renders(s_reply_t *r, const mg_kv_t *args)
{
    sqlite3_stmt *st = mg_db_prepare(r->srv->store->db,
        "SELECT r.id AS render_id, r.job_id, c.name AS cue, r.variation + 1 AS variation, r.seed, r.state, "
        "r.attempts, coalesce(r.lease_worker, '') AS worker, coalesce(r.last_error, '') AS error "
        "FROM renders r JOIN cues c ON c.id = r.cue_id "
        "WHERE (?1 IS NULL OR r.job_id = ?1) AND (?2 IS NULL OR r.state = ?2) AND (?3 IS NULL OR c.name = ?3) "
        "ORDER BY r.id LIMIT ?4", "nssi", mg_kv_get(args, "state"), mg_kv_get(args, "cue"), s_limit(args, 200));
    if (st && mg_kv_get(args, "job_id")) sqlite3_bind_int64(st, 1, mg_kv_get_i64(args, "job_id", 0));
    s_rows(r, st);
}

static void s_cmd_cancel(s_reply_t *r, const mg_kv_t *args)
{
    int64_t job_id = mg_kv_get_i64(args, "job_id", 0);
    int n = 0;
    int rc = mg_store_cancel_job(r->srv->store, job_id, mg_now_ms(), &n);
    if (rc == MG_STORE_NOT_FOUND) { s_reply_err(r, "not_found", "no job %" PRId64, job_id); return; }
    if (rc != MG_STORE_OK) { s_reply_err(r, "internal", "cannot cancel job %" PRId64, job_id); return; }
    mg_kv_set_i64(&r->info, "cancelled", n);
    /* Tell every worker; those without renders of the job ignore it. */
    mg_kv_t c;
    mg_kv_init(&c);
    mg_kv_set_i64(&c, "job_id", job_id);
    for (int i = 0; i < r->srv->n_workers; i++) {
        s_worker_t *w = &r->srv->workers[i];
        if (w->live) s_send_kv(r->srv, w->rid, w->rid_len, MG_PROTO_WORKER, "CANCEL", &c);
    }
    mg_kv_clear(&c);
}

static void s_cmd_retry(s_reply_t *r, const mg_kv_t *args)
{
    int64_t job_id = mg_kv_get_i64(args, "job_id", 0);
    int n = 0;
    int rc = mg_store_retry_job(r->srv->store, job_id, mg_now_ms(), &n);
    if (rc == MG_STORE_NOT_FOUND) { s_reply_err(r, "not_found", "no job %" PRId64, job_id); return; }
    if (rc != MG_STORE_OK) { s_reply_err(r, "internal", "cannot retry job %" PRId64, job_id); return; }
    mg_kv_set_i64(&r->info, "requeued", n);
    r->srv->dispatch_needed = 1;
}

static void s_cmd_workers(s_reply_t *r, const mg_kv_t *args)
{
    s_rows(r, mg_db_prepare(r->srv->store->db,
        "SELECT name AS worker, host, backend, device, capacity, state, "
        "(SELECT count(*) FROM renders WHERE state = 'leased' AND lease_worker = w.name) AS leases, "
        "(SELECT count(*) FROM attempts WHERE worker = w.name AND outcome = 'done') AS renders_done, "
        "last_seen_ms FROM workers w WHERE (?1 IS NULL OR state = ?1) ORDER BY state DESC, last_seen_ms DESC LIMIT ?2",
        "si", mg_kv_get(args, "state"), s_limit(args, 200)));
}

static void s_cmd_sched_add(s_reply_t *r, const mg_kv_t *args)
{
    if (r->req->n < 5) { s_reply_err(r, "bad_request", "SCHED_ADD needs the job file as payload"); return; }
    size_t len = r->req->size[4];
    char *text = malloc(len + 1);
    if (!text) { s_reply_err(r, "internal", "out of memory"); return; }
    memcpy(text, r->req->data[4], len);
    text[len] = 0;
    int64_t id = 0, next = 0;
    char err[8192] = "";
    if (mg_sched_add(r->srv->store, mg_kv_get_or(args, "cron", ""), mg_kv_get(args, "name"),
                     mg_kv_get_or(args, "source_name", mg_kv_get_or(args, "name", "job.yaml")), text, mg_now_ms(), &id,
                     &next, err, sizeof err) != 0) {
        s_reply_err(r, strstr(err, "--cron") ? "bad_request" : strstr(err, "cannot store") ? "internal" : "invalid_job",
                    "%s", err);
    } else {
        char iso[40];
        mg_format_time(next, iso, sizeof iso);
        mg_kv_set_i64(&r->info, "schedule_id", id);
        mg_kv_set_i64(&r->info, "next_due_ms", next);
        mg_kv_set(&r->info, "next_due", iso);
    }
    free(text);
}

static void s_cmd_sched_list(s_reply_t *r, const mg_kv_t *args)
{
    sqlite3_stmt *st = mg_db_prepare(r->srv->store->db,
        "SELECT id, name, cron, state, last_due_ms, (SELECT count(*) FROM schedule_runs WHERE schedule_id = s.id AND "
        "outcome = 'submitted'), source_name FROM schedules s ORDER BY id", "");
    if (!st) { s_reply_err(r, "internal", "query failed"); return; }
    while (sqlite3_step(st) == SQLITE_ROW) {
        mg_kv_t row;
        mg_kv_init(&row);
        const char *cron = (const char *)sqlite3_column_text(st, 2);
        mg_kv_set(&row, "schedule_id", (const char *)sqlite3_column_text(st, 0));
        mg_kv_set(&row, "name", (const char *)sqlite3_column_text(st, 1));
        mg_kv_set(&row, "cron", cron);
        mg_kv_set(&row, "state", (const char *)sqlite3_column_text(st, 3));
        mg_kv_set_i64(&row, "next_due_ms", mg_sched_next_due(cron, sqlite3_column_int64(st, 4)));
        mg_kv_set(&row, "runs", (const char *)sqlite3_column_text(st, 5));
        mg_kv_set(&row, "file", (const char *)sqlite3_column_text(st, 6));
        mg_msg_add_kv(&r->rows, &row);
        mg_kv_clear(&row);
    }
    sqlite3_finalize(st);
}

static void s_cmd_sched_state(s_reply_t *r, const mg_kv_t *args, const char *cmd)
{
    int64_t id = mg_kv_get_i64(args, "schedule_id", 0);
    int rc = strcmp(cmd, "SCHED_RM") == 0 ? mg_sched_remove(r->srv->store, id)
             : mg_sched_set_state(r->srv->store, id, strcmp(cmd, "SCHED_PAUSE") == 0 ? "paused" : "active");
    if (rc == MG_STORE_NOT_FOUND) s_reply_err(r, "not_found", "no schedule %" PRId64, id);
    else if (rc != MG_STORE_OK) s_reply_err(r, "internal", "cannot change schedule %" PRId64, id);
    else mg_kv_set_i64(&r->info, "schedule_id", id);
}

static void s_cmd_audit(s_reply_t *r, const mg_kv_t *args)
{
    sqlite3 *db = r->srv->store->db;
    const char *q = mg_kv_get_or(args, "query", "renders");
    int64_t limit = s_limit(args, 1000);
    const char *job = mg_kv_get(args, "job_id");
    int64_t job_id = job ? mg_kv_get_i64(args, "job_id", 0) : -1;
    sqlite3_stmt *st = NULL;
    if (strcmp(q, "renders") == 0)
        st = mg_db_prepare(db, "SELECT * FROM audit_renders WHERE (?1 < 0 OR job_id = ?1) ORDER BY render_id, format "
                               "LIMIT ?2", "ii", job_id, limit);
    else if (strcmp(q, "failures") == 0)
        st = mg_db_prepare(db, "SELECT * FROM audit_failures WHERE (?1 < 0 OR job_id = ?1) ORDER BY render_id, "
                               "attempt_no LIMIT ?2", "ii", job_id, limit);
    else if (strcmp(q, "models") == 0)
        st = mg_db_prepare(db,
            "SELECT m.id AS model_id, m.name, m.version, m.sha256, m.license, "
            "coalesce((SELECT group_concat(a.source || ' (' || a.license || ')', '; ') FROM attribution a "
            "WHERE a.model_id = m.id), '') AS training_data, "
            "(SELECT count(*) FROM provenance p WHERE p.model_id = m.id) AS renders FROM models m ORDER BY m.id LIMIT ?",
            "i", limit);
    else if (strcmp(q, "workers") == 0)
        st = mg_db_prepare(db,
            "SELECT worker, count(*) AS attempts, sum(outcome = 'done') AS done, sum(outcome = 'failed') AS failed, "
            "sum(outcome IN ('expired', 'lost')) AS lost, sum(outcome = 'rejected') AS rejected FROM attempts "
            "GROUP BY worker ORDER BY worker LIMIT ?", "i", limit);
    else if (strcmp(q, "provenance") == 0)
        st = mg_db_prepare(db,
            "SELECT seq, render_id, worker, backend, device, prev_hash, record_hash, created_ms FROM provenance "
            "WHERE (?1 < 0 OR render_id IN (SELECT id FROM renders WHERE job_id = ?1)) ORDER BY seq LIMIT ?2",
            "ii", job_id, limit);
    else {
        s_reply_err(r, "bad_request", "unknown audit query '%s' (renders, models, failures, workers, provenance)", q);
        return;
    }
    s_rows(r, st);
}

static void s_cmd_verify(s_reply_t *r, const mg_kv_t *args)
{
    sqlite3 *db = r->srv->store->db;
    const char *sha = mg_kv_get_or(args, "sha256", "");
    if (s_rows(r, mg_db_prepare(db, "SELECT * FROM audit_renders WHERE output_sha256 = ? LIMIT 1", "s", sha)) > 0) {
        /* Known: also re-check the record's own link in the chain. */
        int64_t seq = mg_db_int(db, 0, "SELECT provenance_seq FROM audit_renders WHERE output_sha256 = ?", "s", sha);
        sqlite3_stmt *st = mg_db_prepare(db, "SELECT prev_hash, record_json, record_hash FROM provenance WHERE seq = ?",
                                         "i", seq);
        int intact = 0;
        if (st && sqlite3_step(st) == SQLITE_ROW) {
            char h[65];
            mg_prov_hash((const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1), h);
            intact = strcmp(h, (const char *)sqlite3_column_text(st, 2)) == 0 &&
                     strstr((const char *)sqlite3_column_text(st, 1), sha) != NULL;
        }
        sqlite3_finalize(st);
        mg_kv_set(&r->info, "status", "known");
        mg_kv_set(&r->info, "record_intact", intact ? "1" : "0");
        mg_kv_set(&r->info, "message", intact ? "the file matches a recorded output; its provenance record is intact"
                                              : "the file matches a recorded output, but its provenance record was "
                                                "altered (run mgctl audit verify)");
        return;
    }
    int64_t claimed = mg_kv_get_i64(args, "render_id", 0);
    if (claimed > 0 &&
        s_rows(r, mg_db_prepare(db, "SELECT * FROM audit_renders WHERE render_id = ? LIMIT 1", "i", claimed)) > 0) {
        mg_kv_set(&r->info, "status", "altered");
        mg_kv_setf(&r->info, "message",
                   "the file's tags say render %" PRId64 ", but its bytes match none of that render's recorded "
                   "outputs: it was modified after mg wrote it", claimed);
        return;
    }
    mg_msg_clear(&r->rows);
    mg_kv_set(&r->info, "status", "unknown");
    mg_kv_set(&r->info, "message", "no output with this sha256 was recorded by this coordinator");
}

static void s_handle_client(s_server_t *srv, const mg_msg_t *m)
{
    char cmd[32];
    mg_msg_str(m, 2, cmd, sizeof cmd);
    s_reply_t r = {.srv = srv, .req = m};
    mg_kv_init(&r.info);
    mg_msg_init(&r.rows);
    mg_kv_t args;
    mg_kv_init(&args);
    if (m->n > 3 && mg_msg_kv(m, 3, &args) != 0) {
        s_reply_err(&r, "bad_request", "malformed arguments");
    } else if (strcmp(cmd, "PING") == 0) {
        mg_kv_set(&r.info, "version", MG_VERSION);
        mg_kv_set_i64(&r.info, "uptime_s", (mg_mono_ms() - srv->started_mono) / 1000);
        int live = 0;
        for (int i = 0; i < srv->n_workers; i++) live += srv->workers[i].live;
        mg_kv_set_i64(&r.info, "workers", live);
        mg_kv_set(&r.info, "outputs", srv->store->outputs_dir);
    } else if (strcmp(cmd, "SUBMIT") == 0) s_cmd_submit(&r, &args);
    else if (strcmp(cmd, "STATUS") == 0) s_cmd_status(&r, &args);
    else if (strcmp(cmd, "JOBS") == 0) s_cmd_jobs(&r, &args);
    else if (strcmp(cmd, "RENDERS") == 0) s_cmd_renders(&r, &args);
    else if (strcmp(cmd, "CANCEL") == 0) s_cmd_cancel(&r, &args);
    else if (strcmp(cmd, "RETRY") == 0) s_cmd_retry(&r, &args);
    else if (strcmp(cmd, "WORKERS") == 0) s_cmd_workers(&r, &args);
    else if (strcmp(cmd, "SCHED_ADD") == 0) s_cmd_sched_add(&r, &args);
    else if (strcmp(cmd, "SCHED_LIST") == 0) s_cmd_sched_list(&r, &args);
    else if (strcmp(cmd, "SCHED_RM") == 0 || strcmp(cmd, "SCHED_PAUSE") == 0 || strcmp(cmd, "SCHED_RESUME") == 0)
        s_cmd_sched_state(&r, &args, cmd);
    else if (strcmp(cmd, "AUDIT") == 0) s_cmd_audit(&r, &args);
    else if (strcmp(cmd, "AUDIT_VERIFY") == 0) {
        int64_t records = 0, broken = 0;
        char msg[512];
        int ok = mg_prov_verify(srv->store->db, &records, &broken, msg, sizeof msg);
        if (ok < 0) s_reply_err(&r, "internal", "cannot read the provenance table");
        else {
            mg_kv_set_i64(&r.info, "records", records);
            mg_kv_set_i64(&r.info, "ok", ok);
            mg_kv_set_i64(&r.info, "first_broken_seq", broken);
            mg_kv_set(&r.info, "message", msg);
            char head[65];
            mg_kv_set_i64(&r.info, "head_seq", mg_prov_head(srv->store->db, head));
            mg_kv_set(&r.info, "head_hash", head);
        }
    } else if (strcmp(cmd, "VERIFY") == 0) s_cmd_verify(&r, &args);
    else if (mg_fetch_is_command(cmd)) {
        char code[32], msg[8192];
        if (mg_fetch_handle(srv->store, cmd, &args, &r.info, &r.rows, code, sizeof code, msg, sizeof msg) != 0)
            s_reply_err(&r, code, "%s", msg);
    }

    else if (strcmp(cmd, "EVENTS") == 0) {
        sqlite3_stmt *st = mg_db_prepare(srv->store->db,
            "SELECT id, at_ms, kind, coalesce(job_id, '') AS job_id, coalesce(render_id, '') AS render_id, "
            "coalesce(worker, '') AS worker, message FROM events WHERE id > ?1 AND (?2 IS NULL OR job_id = ?2) "
            "ORDER BY id LIMIT ?3", "ini", mg_kv_get_i64(&args, "since_id", 0), s_limit(&args, 200));
        if (st && mg_kv_get(&args, "job_id")) sqlite3_bind_int64(st, 2, mg_kv_get_i64(&args, "job_id", 0));
        s_rows(&r, st);
    } else {
        s_reply_err(&r, "bad_request", "unknown command '%s'", cmd);
    }
    mg_msg_t reply;
    mg_msg_init(&reply);
    mg_msg_add(&reply, m->data[0], m->size[0]);
    mg_msg_add_str(&reply, MG_PROTO_CLIENT);
    mg_msg_add_str(&reply, r.error ? "ERR" : "OK");
    mg_msg_add_kv(&reply, &r.info);
    for (size_t i = 0; i < r.rows.n; i++) mg_msg_add(&reply, r.rows.data[i], r.rows.size[i]);
    if (mg_msg_send(&reply, srv->router, 0) != 0) mg_warn("cannot answer %s: %s", cmd, zmq_strerror(errno));
    mg_msg_clear(&reply);
    mg_msg_clear(&r.rows);
    mg_kv_clear(&r.info);
    mg_kv_clear(&args);
}

/* ---- loop ------------------------------------------------------------------------------- */

static void s_housekeeping(s_server_t *srv, int64_t *last_hb, int64_t *last_sched)
{
    int64_t mono = mg_mono_ms(), now = mg_now_ms();
    int64_t dead_after = (int64_t)srv->cfg->heartbeat_ms * srv->cfg->liveness;
    for (int i = 0; i < srv->n_workers; i++) {
        s_worker_t *w = &srv->workers[i];
        if (w->live && mono - w->last_seen > dead_after) {
            char why[96];
            snprintf(why, sizeof why, "silent for %lld ms", (long long)(mono - w->last_seen));
            s_worker_dead(srv, w, why);
        }
    }
    int n = 0;
    if (mg_store_next_deadline(srv->store) < now && mg_store_expire(srv->store, now, &n) == MG_STORE_OK && n > 0) {
        mg_warn("%d lease(s) expired", n);
        srv->dispatch_needed = 1;
    }
    static int64_t last_transfer_sweep;
    if (mono - last_transfer_sweep >= 1000) {
        last_transfer_sweep = mono;
        mg_transfer_sweep(srv->transfers, srv->store, now);
    }
    if (mono - *last_hb >= srv->cfg->heartbeat_ms) {
        *last_hb = mono;
        for (int i = 0; i < srv->n_workers; i++) {
            s_worker_t *w = &srv->workers[i];
            if (w->live && s_send(srv, w->rid, w->rid_len, MG_PROTO_WORKER, "HEARTBEAT", NULL) != 0 &&
                errno == EHOSTUNREACH)
                s_worker_dead(srv, w, "unreachable");
        }
    }
    /* workers.last_seen_ms: flushed every 5 s rather than written per heartbeat. */
    static int64_t last_seen_flush;
    if (mono - last_seen_flush >= 5000) {
        last_seen_flush = mono;
        if (mg_db_begin(srv->store->db) == 0) {
            for (int i = 0; i < srv->n_workers; i++) {
                s_worker_t *w = &srv->workers[i];
                if (w->live)
                    mg_db_run(srv->store->db, "UPDATE workers SET last_seen_ms = ? WHERE name = ?", "is",
                              now - (mono - w->last_seen), w->name);
            }
            mg_db_commit(srv->store->db);
        }
    }
    if (mono - *last_sched >= 1000) {
        *last_sched = mono;
        int made = 0;
        mg_sched_tick(srv->store, now, &made);
        if (made > 0) {
            mg_info("schedules: %d job(s) created", made);
            srv->dispatch_needed = 1;
        }
    }
}

int mg_server_run(mg_store_t *store, const mg_server_config_t *cfg, volatile sig_atomic_t *stop)
{
    s_server_t *srv = calloc(1, sizeof *srv);
    if (!srv) return -1;
    srv->store = store;
    srv->cfg = cfg;
    srv->started_mono = mg_mono_ms();
    srv->pending = calloc(S_MAX_PENDING, sizeof *srv->pending);
    if (!srv->pending) { free(srv); return -1; }
    char err[512];
    srv->transfers = mg_transfer_new(store->outputs_dir, err, sizeof err);
    if (!srv->transfers) {
        mg_err("%s", err);
        free(srv->pending);
        free(srv);
        return -1;
    }
    void *ctx = zmq_ctx_new();
    srv->router = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1;
    if (!srv->router || mg_socket_setup(srv->router, cfg->send_timeout_ms) != 0 ||
        zmq_setsockopt(srv->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
        zmq_bind(srv->router, cfg->endpoint) != 0) {
        mg_err("cannot bind %s: %s", cfg->endpoint, zmq_strerror(errno));
        if (srv->router) zmq_close(srv->router);
        zmq_ctx_term(ctx);
        mg_transfer_destroy(&srv->transfers);
        free(srv->pending);
        free(srv);
        return -1;
    }
    int recovered = 0;
    mg_store_recover(store, mg_now_ms(), &recovered);
    mg_info("coordinator listening on %s (%d live lease(s) kept from before)", cfg->endpoint, recovered);
    int64_t last_hb = 0, last_sched = 0, last_house = 0;
    mg_msg_t m;
    mg_msg_init(&m);
    while (!*stop) {
        zmq_pollitem_t item = {srv->router, 0, ZMQ_POLLIN, 0};
        int timeout = cfg->heartbeat_ms / 4 < 100 ? cfg->heartbeat_ms / 4 : 100;
        int rc = zmq_poll(&item, 1, timeout > 0 ? timeout : 1);
        if (rc < 0 && errno != EINTR) {
            mg_err("poll: %s", zmq_strerror(errno));
            break;
        }
        /* Drain what is waiting, but no more than a bounded batch between housekeeping. */
        for (int k = 0; rc > 0 && k < 1000 && !*stop; k++) {
            if (mg_msg_recv(&m, srv->router, ZMQ_DONTWAIT) != 0) break;
            if (m.n < 3) continue;
            if (mg_msg_is(&m, 1, MG_PROTO_WORKER)) s_handle_worker(srv, &m);
            else if (mg_msg_is(&m, 1, MG_PROTO_CLIENT)) s_handle_client(srv, &m);
            else if (m.n >= 2 && m.size[1] >= 3 && memcmp(m.data[1], "MGW", 3) == 0) {
                mg_kv_t d;
                mg_kv_init(&d);
                mg_kv_set(&d, "reason", "protocol version not supported (coordinator speaks " MG_PROTO_WORKER ")");
                s_send_kv(srv, m.data[0], m.size[0], MG_PROTO_WORKER, "DISCONNECT", &d);
                mg_kv_clear(&d);
            } else if (m.n >= 2 && m.size[1] >= 3 && memcmp(m.data[1], "MGC", 3) == 0) {
                mg_kv_t e;
                mg_kv_init(&e);
                mg_kv_set(&e, "code", "bad_request");
                mg_kv_set(&e, "message", "protocol version not supported (coordinator speaks " MG_PROTO_CLIENT ")");
                mg_msg_t reply;
                mg_msg_init(&reply);
                mg_msg_add(&reply, m.data[0], m.size[0]);
                mg_msg_add(&reply, m.data[1], m.size[1]); /* in the client's own header, so it reads the error */
                mg_msg_add_str(&reply, "ERR");
                mg_msg_add_kv(&reply, &e);
                mg_msg_send(&reply, srv->router, 0);
                mg_msg_clear(&reply);
                mg_kv_clear(&e);
            } else mg_warn("message with an unknown header: ignored");
        }
        s_flush_results(srv);
        int64_t mono = mg_mono_ms();
        if (mono - last_house >= 100) {
            last_house = mono;
            s_housekeeping(srv, &last_hb, &last_sched);
        }
        if (srv->dispatch_needed) s_dispatch(srv);
    }
    mg_msg_clear(&m);
    mg_kv_t d;
    mg_kv_init(&d);
    mg_kv_set(&d, "reason", "coordinator shutting down");
    for (int i = 0; i < srv->n_workers; i++)
        if (srv->workers[i].live)
            s_send_kv(srv, srv->workers[i].rid, srv->workers[i].rid_len, MG_PROTO_WORKER, "DISCONNECT", &d);
    mg_kv_clear(&d);
    s_flush_results(srv);
    mg_transfer_destroy(&srv->transfers);
    zmq_close(srv->router);
    zmq_ctx_term(ctx);
    free(srv->pending);
    free(srv);
    mg_info("coordinator stopped");
    return 0;
}
