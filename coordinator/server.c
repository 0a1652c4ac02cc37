/* server.c - the coordinator's protocol side: one ROUTER socket, one thread, two command
 * tables. It parses what workers and mgctl send, keeps who is connected, and answers; every
 * durable change is one store function (store.h) and every client query one query.c function,
 * so this file holds no SQL and no database handle.
 *
 * One thread owns the socket and the store (libzmq sockets are not thread-safe; SQLite's
 * connection is used from this thread only). Each loop turn:
 *
 *   poll(router, timeout <= heartbeat/4)
 *     -> handle every waiting message (worker or client, told apart by the header frame):
 *        the command names an entry of s_worker_cmds[] or s_client_cmds[]
 *   results queued while draining are recorded in one commit (s_flush_results)
 *   housekeeping (at most every 100 ms):
 *     -> workers silent for heartbeat x liveness: dead, their leases end ('lost')
 *     -> leases past their deadline end ('expired')
 *     -> chunked transfers of ended leases are dropped (once per second)
 *     -> HEARTBEAT to every worker once per heartbeat interval
 *     -> workers.last_seen_ms flushed (every 5 s)
 *     -> due schedule runs become jobs (once per second)
 *   dispatch: every worker with free capacity gets LEASEs for queued renders.
 *
 * A worker peer, as this file tracks it (s_worker_t; the store keeps the durable row):
 *
 *     unknown --READY (s_handle_ready: mg_store_worker_ready)--> live
 *     live --READY again (reconnected, new routing id)--> live
 *     live --silent for heartbeat x liveness, unreachable, or DISCONNECT
 *            (s_worker_dead: mg_store_worker_lost)--> dead (slot reused by the next READY)
 *
 * Worker messages are accepted on the lease token alone (CHUNK / RESULT / FAIL / PROGRESS), so
 * a worker that reconnects after a coordinator restart can still deliver; any other
 * command from an unknown peer is answered with DISCONNECT, and the worker sends READY.
 * A result's files arrive first, as CHUNKs written to temporary files (transfer.c); its RESULT
 * then carries their metadata only, and the store renames the files into place.
 */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "../common/curve.h"
#include "../common/jobspec.h"
#include "../common/protocol.h"
#include "../common/util.h"
#include "auth.h"
#include "fetch.h"
#include "query.h"
#include "schedule.h"
#include "transfer.h"

#define S_MAX_WORKERS 1024
#define S_MAX_RID 256
#define S_MAX_PENDING 64   /* results recorded per commit at most */
#define S_RESULT_ERRLEN 512

typedef struct {
    unsigned char rid[S_MAX_RID]; /* ZeroMQ routing id of the worker's DEALER */
    size_t rid_len;
    char name[160];
    int capacity;
    int64_t last_seen;            /* monotonic ms */
    int live;
    char user[80];                /* the key it registered with (ZAP User-Id; "" in plaintext) */
    char key[48];
} s_worker_t;

typedef struct {
    mg_store_t *store;            /* borrowed */
    const mg_server_config_t *cfg;
    void *router;
    s_worker_t workers[S_MAX_WORKERS];
    int n_workers;
    int64_t started_mono;
    int dispatch_needed;
    struct s_pending *pending;    /* owned: S_MAX_PENDING results awaiting their group commit */
    int n_pending;
    char result_errs[S_MAX_PENDING * S_RESULT_ERRLEN]; /* each pending result's error, per flush */
    mg_transfer_t *transfers;     /* owned: result files arriving in chunks */
    mg_auth_t *auth;              /* owned: ZAP handler and allow-list; NULL in plaintext mode */
    /* When housekeeping last did each of its periodic jobs (monotonic ms). */
    int64_t last_house, last_heartbeat, last_sched, last_transfer_sweep, last_seen_flush, last_auth;
} s_server_t;

/* The roles that may send a command (mg_role_t bits, auth.h); admin may send every one.
 * Checked in s_handle_client / s_handle_worker against the role of the sender's key, which
 * the ZAP handler vouched for (auth.c); in plaintext mode (no allow-list, loopback only:
 * main.c) every peer has every role.
 *   reader     reads: status, lists, the event log, audits, verify, fetching delivered files
 *   submitter  changes jobs (submit, cancel, retry) and follows them: status, lists, the event
 *              log, fetching; not the audit log
 *   admin      runs the farm: schedules (listing them too), the worker list (host names,
 *              pids, devices), and everything else
 *   worker     the worker protocol (MGW): leases, chunks, results */
#define S_RS (MG_ROLE_READER | MG_ROLE_SUBMITTER)
#define S_ALL_ROLES (MG_ROLE_ANY_CLIENT | MG_ROLE_WORKER)

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

/* DISCONNECT with a reason to the peer at rid. */
static void s_disconnect(s_server_t *srv, const unsigned char *rid, size_t rid_len, const char *reason)
{
    mg_kv_t d;
    mg_kv_init(&d);
    mg_kv_set(&d, "reason", reason);
    s_send_kv(srv, rid, rid_len, MG_PROTO_WORKER, MG_WCMD_DISCONNECT, &d);
    mg_kv_clear(&d);
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
    if (mg_store_worker_lost(srv->store, w->name, why, mg_now_ms(), &n) != MG_STORE_OK)
        mg_err("worker %s %s: cannot release its leases now (they expire instead)", w->name, why);
    mg_warn("worker %s %s: %d lease(s) released", w->name, why, n);
    w->live = 0;
    srv->dispatch_needed = 1;
}

/* READY's held = "render_id:token,...": the leases a reconnecting worker still owns. Fills
 * *out (owned by the caller, free) pointing into *copy (owned, free); returns how many. */
static int s_parse_held(const char *held, char **copy, mg_held_lease_t **out)
{
    *copy = NULL;
    *out = NULL;
    if (!held || !*held) return 0;
    size_t max = 1;
    for (const char *p = held; *p; p++) max += *p == ',';
    *copy = strdup(held);
    *out = calloc(max, sizeof **out);
    if (!*copy || !*out) {
        free(*copy);
        free(*out);
        *copy = NULL;
        *out = NULL;
        return 0;
    }
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(*copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(t, ':');
        if (!colon) continue;
        *colon = 0;
        (*out)[n].render_id = strtoll(t, NULL, 10);
        (*out)[n].lease_token = colon + 1;
        n++;
    }
    return n;
}

static void s_handle_ready(s_server_t *srv, mg_msg_t *m, const mg_kv_t *kv, s_worker_t *from)
{
    const char *name = mg_kv_get(kv, "name");
    if (!name || !*name || strlen(name) >= sizeof srv->workers[0].name || m->size[0] > S_MAX_RID) {
        mg_warn("READY without a valid worker name: ignored");
        return;
    }
    s_worker_t *w = s_worker_by_name(srv, name);
    if (!w) w = from;
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
    const mg_worker_info_t info = {
        .name = name, .host = mg_kv_get_or(kv, "host", "?"), .pid = mg_kv_get_i64(kv, "pid", 0),
        .backend = mg_kv_get_or(kv, "backend", "?"), .device = mg_kv_get_or(kv, "device", "?"),
        .capacity = w->capacity, .models = mg_kv_get_or(kv, "models", ""),
    };
    /* Leases the worker still holds (it reconnected): renewed and made its own, so they are
     * not lost. */
    char *copy;
    mg_held_lease_t *held;
    int n_held = s_parse_held(mg_kv_get(kv, "held"), &copy, &held);
    if (mg_store_worker_ready(srv->store, &info, held, n_held, mg_now_ms(), NULL) != MG_STORE_OK)
        mg_err("worker %s: cannot record its READY (its held leases may expire)", name);
    free(held);
    free(copy);
    mg_info("worker %s ready (%s, %s, capacity %d)", name, info.backend, info.device, w->capacity);
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
    if (s_send_kv(srv, m->data[0], m->size[0], MG_PROTO_WORKER, MG_WCMD_ACK, &kv) != 0)
        mg_warn("cannot send ACK for render %" PRId64 ": %s", render_id, zmq_strerror(errno));
    mg_kv_clear(&kv);
}

/* CHUNK: [rid, hdr, "CHUNK", kv, bytes], one piece of a result file (transfer.c). The
 * answers other than CHUNK_ACK are ACKs, as for a RESULT. */
static void s_handle_chunk(s_server_t *srv, mg_msg_t *m, const mg_kv_t *kv, s_worker_t *w)
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
    enum { ERRLEN = S_RESULT_ERRLEN };
    mg_result_t rs[S_MAX_PENDING];
    int rcs[S_MAX_PENDING], idx[S_MAX_PENDING], good = 0;
    char *errs = srv->result_errs;
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

/* RESULT: takes the message (moves its frames) into the pending batch. */
static void s_handle_result(s_server_t *srv, mg_msg_t *m, const mg_kv_t *kv, s_worker_t *w)
{
    if (srv->n_pending == S_MAX_PENDING) s_flush_results(srv);
    s_pending_t *p = &srv->pending[srv->n_pending++];
    p->msg = *m;
    mg_msg_init(m);
    mg_kv_init(&p->meta);
    for (int k = 0; k < MG_MAX_RESULT_FILES; k++) mg_kv_init(&p->fkv[k]);
}

static void s_handle_fail(s_server_t *srv, mg_msg_t *m, const mg_kv_t *kv, s_worker_t *w)
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

static void s_handle_progress(s_server_t *srv, mg_msg_t *m, const mg_kv_t *kv, s_worker_t *w)
{
    int64_t render_id = mg_kv_get_i64(kv, "render_id", 0);
    const char *token = mg_kv_get_or(kv, "lease_token", "");
    if (mg_store_renew(srv->store, render_id, token, mg_now_ms()) == MG_STORE_STALE) {
        mg_kv_t c;
        mg_kv_init(&c);
        mg_kv_set_i64(&c, "render_id", render_id);
        mg_kv_set(&c, "lease_token", token);
        mg_kv_set(&c, "reason", "lease no longer valid");
        s_send_kv(srv, m->data[0], m->size[0], MG_PROTO_WORKER, MG_WCMD_CANCEL, &c);
        mg_kv_clear(&c);
    }
    if (!w) s_disconnect(srv, m->data[0], m->size[0], "unknown worker: send READY");
}

static void s_handle_disconnect(s_server_t *srv, mg_msg_t *m, const mg_kv_t *kv, s_worker_t *w)
{
    if (!w) return;
    mg_info("worker %s disconnected: %s", w->name, mg_kv_get_or(kv, "reason", ""));
    s_worker_dead(srv, w, "disconnected");
}

/* Any message counts as a heartbeat (s_handle_worker); this one only has to be known. */
static void s_handle_heartbeat(s_server_t *srv, mg_msg_t *m, const mg_kv_t *kv, s_worker_t *w)
{
    if (!w) s_disconnect(srv, m->data[0], m->size[0], "unknown worker: send READY");
}

/* A worker command. m is the whole message ([routing id, header, command, kv, ...]; the
 * handler may take its frames), kv its decoded frame 3, w the sender if it is a live
 * worker (NULL: unknown peer). */
typedef struct {
    const char *name;
    unsigned roles;
    void (*handle)(s_server_t *srv, mg_msg_t *m, const mg_kv_t *kv, s_worker_t *w);
} s_worker_cmd_t;

static const s_worker_cmd_t s_worker_cmds[] = {
    {MG_WCMD_READY, MG_ROLE_WORKER, s_handle_ready},
    {MG_WCMD_CHUNK, MG_ROLE_WORKER, s_handle_chunk},
    {MG_WCMD_RESULT, MG_ROLE_WORKER, s_handle_result},
    {MG_WCMD_FAIL, MG_ROLE_WORKER, s_handle_fail},
    {MG_WCMD_PROGRESS, MG_ROLE_WORKER, s_handle_progress},
    {MG_WCMD_DISCONNECT, MG_ROLE_WORKER, s_handle_disconnect},
    {MG_WCMD_HEARTBEAT, MG_ROLE_WORKER, s_handle_heartbeat},
};

/* A worker command from a peer whose key has the roles `role`. */
static void s_handle_worker(s_server_t *srv, mg_msg_t *m, unsigned role)
{
    char cmd[32];
    mg_msg_str(m, 2, cmd, sizeof cmd);
    s_worker_t *w = s_worker_by_rid(srv, m->data[0], m->size[0]);
    if (w && strcmp(w->user, m->user_id) != 0) {
        /* Another key on this routing id (the worker went away and a peer took its id). */
        mg_warn("worker %s: routing id now used by key '%s', not '%s': dropped", w->name, m->user_id, w->user);
        s_worker_dead(srv, w, "routing id taken by another key");
        w = NULL;
    }
    if (!(role & (MG_ROLE_WORKER | MG_ROLE_ADMIN))) {
        /* Nothing is leased to, or accepted from, a key that is not a worker's. */
        mg_warn("worker command %s from key '%s' (role %s): forbidden, needs role worker", cmd, m->user_id,
                mg_role_name(role));
        s_disconnect(srv, m->data[0], m->size[0], "forbidden: worker commands need a key with role worker");
        return;
    }
    if (w) w->last_seen = mg_mono_ms(); /* any message counts as a heartbeat */
    mg_kv_t kv;
    mg_kv_init(&kv);
    if (m->n > 3 && mg_msg_kv(m, 3, &kv) != 0) {
        mg_warn("worker message %s with a malformed body: ignored", cmd);
        mg_kv_clear(&kv);
        return;
    }
    const s_worker_cmd_t *c = NULL;
    for (size_t i = 0; i < sizeof s_worker_cmds / sizeof s_worker_cmds[0] && !c; i++)
        if (strcmp(cmd, s_worker_cmds[i].name) == 0) c = &s_worker_cmds[i];
    const char *name = mg_kv_get(&kv, "name");
    s_worker_t *named = c && c->handle == s_handle_ready && name ? s_worker_by_name(srv, name) : NULL;
    if (named && strcmp(named->user, m->user_id) != 0) {
        mg_warn("READY as worker %s from key '%s': that worker is registered with key '%s': refused", name,
                m->user_id, named->user);
        s_disconnect(srv, m->data[0], m->size[0], "forbidden: a live worker of that name has another key");
    } else if (c) {
        c->handle(srv, m, &kv, w);
        if (c->handle == s_handle_ready && (w = s_worker_by_rid(srv, m->data[0], m->size[0]))) {
            mg_strlcpy(w->user, m->user_id, sizeof w->user);
            mg_strlcpy(w->key, m->peer_key, sizeof w->key);
        }
    } else {
        mg_warn("unknown worker command '%s': answered with DISCONNECT", cmd);
        char reason[64];
        snprintf(reason, sizeof reason, "unknown command '%s'", cmd);
        s_disconnect(srv, m->data[0], m->size[0], reason);
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
        int in_flight = mg_store_worker_leases(srv->store, w->name);
        if (in_flight < 0) continue; /* database error: try again at the next dispatch */
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
            mg_kv_set_i64(&lk, "lease_ms", mg_store_policy(srv->store)->lease_ms);
            mg_render_spec_to_kv(&leases[k].spec, &sk);
            mg_msg_add_kv(&body, &lk);
            mg_msg_add_kv(&body, &sk);
            mg_kv_clear(&lk);
            mg_kv_clear(&sk);
        }
        if (s_send(srv, w->rid, w->rid_len, MG_PROTO_WORKER, MG_WCMD_LEASE, &body) != 0) {
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

/* A client command: req is the whole request ([routing id, header, command, args, (payload)]),
 * args its decoded frame 3; the handler fills r, which s_handle_client sends back. */
typedef void (*s_client_fn)(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r);

static void s_cmd_ping(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    mg_kv_set(&r->info, "version", MG_VERSION);
    mg_kv_set_i64(&r->info, "uptime_s", (mg_mono_ms() - srv->started_mono) / 1000);
    int live = 0;
    for (int i = 0; i < srv->n_workers; i++) live += srv->workers[i].live;
    mg_kv_set_i64(&r->info, "workers", live);
    mg_kv_set(&r->info, "outputs", mg_store_outputs_dir(srv->store));
}

static void s_cmd_submit(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    if (req->n < 5) { mg_reply_fail(r, "bad_request", "SUBMIT needs the job file as payload"); return; }
    const char *name = mg_kv_get_or(args, "name", "job.yaml");
    size_t len = req->size[4];
    char *text = malloc(len + 1);
    if (!text) { mg_reply_fail(r, "internal", "out of memory"); return; }
    memcpy(text, req->data[4], len);
    text[len] = 0;
    if (strlen(text) != len) {
        mg_reply_fail(r, "invalid_job", "%s: the file contains NUL bytes", name);
        free(text);
        return;
    }
    char err[8192] = "";
    mg_job_t *job = NULL;
    if (mg_job_parse_buffer(name, text, len, &job, err, sizeof err) != 0) {
        mg_reply_fail(r, "invalid_job", "%s", err);
        free(text);
        return;
    }
    int64_t job_id = 0;
    size_t renders = 0;
    int dup = 0;
    int rc = mg_store_submit(srv->store, job, name, text, 0, &job_id, &renders, &dup, err, sizeof err);
    if (rc == MG_STORE_CONFLICT) mg_reply_fail(r, "conflict", "%s", err);
    else if (rc != MG_STORE_OK) mg_reply_fail(r, "internal", "%s", err);
    else {
        mg_kv_set_i64(&r->info, "job_id", job_id);
        mg_kv_set_i64(&r->info, "renders", (int64_t)renders);
        mg_kv_set_i64(&r->info, "duplicate", dup);
        mg_kv_set(&r->info, "idempotency_key", job->idempotency_key);
        mg_info("job %" PRId64 " %s: %zu renders (%s)", job_id, dup ? "resubmitted" : "submitted", renders, name);
        srv->dispatch_needed = 1;
    }
    mg_job_destroy(&job);
    free(text);
}

static void s_cmd_cancel(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    int64_t job_id = mg_kv_get_i64(args, "job_id", 0);
    int n = 0;
    int rc = mg_store_cancel_job(srv->store, job_id, mg_now_ms(), &n);
    if (rc == MG_STORE_NOT_FOUND) { mg_reply_fail(r, "not_found", "no job %" PRId64, job_id); return; }
    if (rc != MG_STORE_OK) { mg_reply_fail(r, "internal", "cannot cancel job %" PRId64, job_id); return; }
    mg_kv_set_i64(&r->info, "cancelled", n);
    /* Tell every worker; those without renders of the job ignore it. */
    mg_kv_t c;
    mg_kv_init(&c);
    mg_kv_set_i64(&c, "job_id", job_id);
    for (int i = 0; i < srv->n_workers; i++) {
        s_worker_t *w = &srv->workers[i];
        if (w->live) s_send_kv(srv, w->rid, w->rid_len, MG_PROTO_WORKER, MG_WCMD_CANCEL, &c);
    }
    mg_kv_clear(&c);
}

static void s_cmd_retry(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    int64_t job_id = mg_kv_get_i64(args, "job_id", 0);
    int n = 0;
    int rc = mg_store_retry_job(srv->store, job_id, mg_now_ms(), &n);
    if (rc == MG_STORE_NOT_FOUND) { mg_reply_fail(r, "not_found", "no job %" PRId64, job_id); return; }
    if (rc != MG_STORE_OK) { mg_reply_fail(r, "internal", "cannot retry job %" PRId64, job_id); return; }
    mg_kv_set_i64(&r->info, "requeued", n);
    srv->dispatch_needed = 1;
}

static void s_cmd_sched_add(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    if (req->n < 5) { mg_reply_fail(r, "bad_request", "SCHED_ADD needs the job file as payload"); return; }
    size_t len = req->size[4];
    char *text = malloc(len + 1);
    if (!text) { mg_reply_fail(r, "internal", "out of memory"); return; }
    memcpy(text, req->data[4], len);
    text[len] = 0;
    int64_t id = 0, next = 0;
    char err[8192] = "";
    if (mg_sched_add(srv->store, mg_kv_get_or(args, "cron", ""), mg_kv_get(args, "name"),
                     mg_kv_get_or(args, "source_name", mg_kv_get_or(args, "name", "job.yaml")), text, mg_now_ms(), &id,
                     &next, err, sizeof err) != 0) {
        mg_reply_fail(r, strstr(err, "--cron") ? "bad_request" : strstr(err, "cannot store") ? "internal" : "invalid_job",
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

/* SCHED_RM / SCHED_PAUSE / SCHED_RESUME */
static void s_sched_state(s_server_t *srv, const mg_kv_t *args, mg_reply_t *r, const char *state)
{
    int64_t id = mg_kv_get_i64(args, "schedule_id", 0);
    int rc = state ? mg_sched_set_state(srv->store, id, state) : mg_sched_remove(srv->store, id);
    if (rc == MG_STORE_NOT_FOUND) mg_reply_fail(r, "not_found", "no schedule %" PRId64, id);
    else if (rc != MG_STORE_OK) mg_reply_fail(r, "internal", "cannot change schedule %" PRId64, id);
    else mg_kv_set_i64(&r->info, "schedule_id", id);
}

static void s_cmd_sched_rm(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    s_sched_state(srv, args, r, NULL);
}

static void s_cmd_sched_pause(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    s_sched_state(srv, args, r, "paused");
}

static void s_cmd_sched_resume(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    s_sched_state(srv, args, r, "active");
}

static void s_cmd_files(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    mg_fetch_handle(srv->store, MG_CMD_FILES, args, r);
}

static void s_cmd_fetch(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r)
{
    mg_fetch_handle(srv->store, MG_CMD_FETCH, args, r);
}

/* The read-only queries are query.c's; these adapt them to s_client_fn. */
#define S_QUERY(fn, query) \
    static void fn(s_server_t *srv, const mg_msg_t *req, const mg_kv_t *args, mg_reply_t *r) \
    { \
        query(srv->store, args, r); \
    }
S_QUERY(s_cmd_status, mg_query_status)
S_QUERY(s_cmd_jobs, mg_query_jobs)
S_QUERY(s_cmd_renders, mg_query_renders)
S_QUERY(s_cmd_workers, mg_query_workers)
S_QUERY(s_cmd_sched_list, mg_query_schedules)
S_QUERY(s_cmd_audit, mg_query_audit)
S_QUERY(s_cmd_audit_verify, mg_query_audit_verify)
S_QUERY(s_cmd_audit_head, mg_query_audit_head)
S_QUERY(s_cmd_verify, mg_query_verify)
S_QUERY(s_cmd_events, mg_query_events)
#undef S_QUERY

/* Every client command (docs/protocol.md), with the roles that may send it (admin: all). */
static const struct {
    const char *name;
    unsigned roles;
    s_client_fn handle;
} s_client_cmds[] = {
    {MG_CMD_PING, S_RS, s_cmd_ping},
    {MG_CMD_SUBMIT, MG_ROLE_SUBMITTER, s_cmd_submit},
    {MG_CMD_STATUS, S_RS, s_cmd_status},
    {MG_CMD_JOBS, S_RS, s_cmd_jobs},
    {MG_CMD_RENDERS, S_RS, s_cmd_renders},
    {MG_CMD_CANCEL, MG_ROLE_SUBMITTER, s_cmd_cancel},
    {MG_CMD_RETRY, MG_ROLE_SUBMITTER, s_cmd_retry},
    {MG_CMD_WORKERS, MG_ROLE_ADMIN, s_cmd_workers},
    {MG_CMD_SCHED_ADD, MG_ROLE_ADMIN, s_cmd_sched_add},
    {MG_CMD_SCHED_LIST, MG_ROLE_ADMIN, s_cmd_sched_list},
    {MG_CMD_SCHED_RM, MG_ROLE_ADMIN, s_cmd_sched_rm},
    {MG_CMD_SCHED_PAUSE, MG_ROLE_ADMIN, s_cmd_sched_pause},
    {MG_CMD_SCHED_RESUME, MG_ROLE_ADMIN, s_cmd_sched_resume},
    {MG_CMD_AUDIT, MG_ROLE_READER, s_cmd_audit},
    {MG_CMD_AUDIT_VERIFY, MG_ROLE_READER, s_cmd_audit_verify},
    {MG_CMD_AUDIT_HEAD, MG_ROLE_READER, s_cmd_audit_head},
    {MG_CMD_VERIFY, MG_ROLE_READER, s_cmd_verify},
    {MG_CMD_EVENTS, S_RS, s_cmd_events},
    {MG_CMD_FILES, S_RS, s_cmd_files},
    {MG_CMD_FETCH, S_RS, s_cmd_fetch},
};

/* A client command from a peer whose key has the roles `role`. */
static void s_handle_client(s_server_t *srv, const mg_msg_t *m, unsigned role)
{
    char cmd[32];
    mg_msg_str(m, 2, cmd, sizeof cmd);
    mg_reply_t r;
    mg_reply_init(&r);
    mg_kv_t args;
    mg_kv_init(&args);
    s_client_fn handle = NULL;
    unsigned may = 0;
    for (size_t i = 0; i < sizeof s_client_cmds / sizeof s_client_cmds[0] && !handle; i++)
        if (strcmp(cmd, s_client_cmds[i].name) == 0) {
            handle = s_client_cmds[i].handle;
            may = s_client_cmds[i].roles | MG_ROLE_ADMIN;
        }
    char need[64];
    if (m->n > 3 && mg_msg_kv(m, 3, &args) != 0) mg_reply_fail(&r, "bad_request", "malformed arguments");
    else if (!handle) mg_reply_fail(&r, "bad_request", "unknown command '%s'", cmd);
    else if (!(role & may)) {
        mg_warn("%s from key '%s' (role %s): forbidden", cmd, m->user_id, mg_role_name(role));
        mg_reply_fail(&r, "forbidden", "%s needs role %s; key '%s' has role %s", cmd,
                      mg_role_list(may, need, sizeof need), m->user_id, mg_role_name(role));
    } else handle(srv, m, &args, &r);
    mg_msg_t reply;
    mg_msg_init(&reply);
    mg_msg_add(&reply, m->data[0], m->size[0]);
    mg_msg_add_str(&reply, MG_PROTO_CLIENT);
    mg_msg_add_str(&reply, r.failed ? MG_REPLY_ERR : MG_REPLY_OK);
    mg_msg_add_kv(&reply, &r.info);
    for (size_t i = 0; i < r.rows.n; i++) mg_msg_add(&reply, r.rows.data[i], r.rows.size[i]);
    if (mg_msg_send(&reply, srv->router, 0) != 0) mg_warn("cannot answer %s: %s", cmd, zmq_strerror(errno));
    mg_msg_clear(&reply);
    mg_reply_clear(&r);
    mg_kv_clear(&args);
}

/* ---- loop ------------------------------------------------------------------------------- */

/* Re-reads the allow-list when it changed; a live worker whose key is gone or no longer a
 * worker's is told DISCONNECT and dead (its leases return to the queue). */
static void s_auth_tick(s_server_t *srv)
{
    if (!mg_auth_reload(srv->auth, 0)) return;
    for (int i = 0; i < srv->n_workers; i++) {
        s_worker_t *w = &srv->workers[i];
        if (w->live && !(mg_auth_role(srv->auth, w->user, w->key) & (MG_ROLE_WORKER | MG_ROLE_ADMIN))) {
            s_disconnect(srv, w->rid, w->rid_len, "key revoked");
            s_worker_dead(srv, w, "key revoked");
        }
    }
}

static void s_housekeeping(s_server_t *srv)
{
    int64_t mono = mg_mono_ms(), now = mg_now_ms();
    /* 250 ms: a revoked key loses its sessions within a second, for a stat per key file. */
    if (srv->auth && mono - srv->last_auth >= 250) {
        srv->last_auth = mono;
        s_auth_tick(srv);
    }
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
    if (mono - srv->last_transfer_sweep >= 1000) {
        srv->last_transfer_sweep = mono;
        mg_transfer_sweep(srv->transfers, srv->store, now);
    }
    if (mono - srv->last_heartbeat >= srv->cfg->heartbeat_ms) {
        srv->last_heartbeat = mono;
        for (int i = 0; i < srv->n_workers; i++) {
            s_worker_t *w = &srv->workers[i];
            if (w->live && s_send(srv, w->rid, w->rid_len, MG_PROTO_WORKER, MG_WCMD_HEARTBEAT, NULL) != 0 &&
                errno == EHOSTUNREACH)
                s_worker_dead(srv, w, "unreachable");
        }
    }
    /* workers.last_seen_ms: flushed every 5 s rather than written per heartbeat. */
    if (mono - srv->last_seen_flush >= 5000) {
        srv->last_seen_flush = mono;
        mg_worker_seen_t seen[S_MAX_WORKERS];
        int n_seen = 0;
        for (int i = 0; i < srv->n_workers; i++) {
            const s_worker_t *w = &srv->workers[i];
            if (w->live) seen[n_seen++] = (mg_worker_seen_t){w->name, now - (mono - w->last_seen)};
        }
        if (mg_store_workers_last_seen(srv->store, seen, n_seen) != MG_STORE_OK)
            mg_warn("cannot record when %d worker(s) were last seen (tried again in 5 s)", n_seen);
    }
    if (mono - srv->last_sched >= 1000) {
        srv->last_sched = mono;
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
    srv->transfers = mg_transfer_new(mg_store_outputs_dir(store), err, sizeof err);
    if (!srv->transfers) {
        mg_err("%s", err);
        free(srv->pending);
        free(srv);
        return -1;
    }
    void *ctx = zmq_ctx_new();
    if (cfg->curve_key) {
        /* The handler first: libzmq asks it about every CURVE handshake on this context. */
        srv->auth = mg_auth_new(ctx, cfg->clients_dir, err, sizeof err);
        if (!srv->auth) {
            mg_err("%s", err);
            zmq_ctx_term(ctx);
            mg_transfer_destroy(&srv->transfers);
            free(srv->pending);
            free(srv);
            return -1;
        }
    }
    srv->router = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1;
    if (!srv->router || mg_socket_setup(srv->router, cfg->send_timeout_ms) != 0 ||
        (cfg->curve_key && mg_curve_apply_server(srv->router, cfg->curve_key) != 0) ||
        zmq_setsockopt(srv->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
        zmq_bind(srv->router, cfg->endpoint) != 0) {
        mg_err("cannot bind %s: %s", cfg->endpoint, zmq_strerror(errno));
        if (srv->router) zmq_close(srv->router);
        mg_auth_destroy(&srv->auth);
        zmq_ctx_term(ctx);
        mg_transfer_destroy(&srv->transfers);
        free(srv->pending);
        free(srv);
        return -1;
    }
    int recovered = 0;
    mg_store_recover(store, mg_now_ms(), &recovered);
    mg_info("coordinator listening on %s (%d live lease(s) kept from before); %s", cfg->endpoint, recovered,
            srv->auth ? "CURVE, keys in the allow-list only" : "plaintext (no client keys: loopback only)");
    mg_msg_t m;
    mg_msg_init(&m);
    while (!*stop) {
        zmq_pollitem_t items[2] = {{srv->router, 0, ZMQ_POLLIN, 0}, {srv->auth ? mg_auth_socket(srv->auth) : NULL, 0, ZMQ_POLLIN, 0}};
        int timeout = cfg->heartbeat_ms / 4 < 100 ? cfg->heartbeat_ms / 4 : 100;
        int rc = zmq_poll(items, srv->auth ? 2 : 1, timeout > 0 ? timeout : 1);
        if (rc < 0 && errno != EINTR) {
            mg_err("poll: %s", zmq_strerror(errno));
            break;
        }
        if (srv->auth && (items[1].revents & ZMQ_POLLIN)) mg_auth_handle(srv->auth);
        if (rc > 0 && !(items[0].revents & ZMQ_POLLIN)) rc = 0;
        /* Drain what is waiting, but no more than a bounded batch between housekeeping. */
        for (int k = 0; rc > 0 && k < 1000 && !*stop; k++) {
            if (mg_msg_recv(&m, srv->router, ZMQ_DONTWAIT) != 0) break;
            if (m.n < 3) continue;
            /* The sender's roles, as the allow-list stands now: a key revoked since its
             * handshake gets nothing, as if it had never connected. */
            unsigned role = srv->auth ? mg_auth_role(srv->auth, m.user_id, m.peer_key) : S_ALL_ROLES;
            if (!role) {
                mg_debug("message from revoked key '%s': ignored", m.user_id);
                continue;
            }
            if (mg_msg_is(&m, 1, MG_PROTO_WORKER)) s_handle_worker(srv, &m, role);
            else if (mg_msg_is(&m, 1, MG_PROTO_CLIENT)) s_handle_client(srv, &m, role);
            else if (m.n >= 2 && m.size[1] >= 3 && memcmp(m.data[1], "MGW", 3) == 0) {
                s_disconnect(srv, m.data[0], m.size[0],
                             "protocol version not supported (coordinator speaks " MG_PROTO_WORKER ")");
            } else if (m.n >= 2 && m.size[1] >= 3 && memcmp(m.data[1], "MGC", 3) == 0) {
                mg_kv_t e;
                mg_kv_init(&e);
                mg_kv_set(&e, "code", "bad_request");
                mg_kv_set(&e, "message", "protocol version not supported (coordinator speaks " MG_PROTO_CLIENT ")");
                mg_msg_t reply;
                mg_msg_init(&reply);
                mg_msg_add(&reply, m.data[0], m.size[0]);
                mg_msg_add(&reply, m.data[1], m.size[1]); /* in the client's own header, so it reads the error */
                mg_msg_add_str(&reply, MG_REPLY_ERR);
                mg_msg_add_kv(&reply, &e);
                mg_msg_send(&reply, srv->router, 0);
                mg_msg_clear(&reply);
                mg_kv_clear(&e);
            } else mg_warn("message with an unknown header: ignored");
        }
        s_flush_results(srv);
        int64_t mono = mg_mono_ms();
        if (mono - srv->last_house >= 100) {
            srv->last_house = mono;
            s_housekeeping(srv);
        }
        if (srv->dispatch_needed) s_dispatch(srv);
    }
    mg_msg_clear(&m);
    for (int i = 0; i < srv->n_workers; i++)
        if (srv->workers[i].live)
            s_disconnect(srv, srv->workers[i].rid, srv->workers[i].rid_len, "coordinator shutting down");
    s_flush_results(srv);
    mg_transfer_destroy(&srv->transfers);
    zmq_close(srv->router);
    mg_auth_destroy(&srv->auth);
    zmq_ctx_term(ctx);
    free(srv->pending);
    free(srv);
    mg_info("coordinator stopped");
    return 0;
}
