/* test_worker.c - the worker's connection loop (worker/worker.h) in a thread of this process,
 * rendering with the test renderer (worker/render_test.c), against a coordinator played by the
 * test: a ROUTER bound here that speaks the worker protocol (common/protocol.h) message by
 * message. Covered: READY and heartbeats, a render delivered in CHUNKs and a RESULT, the
 * reconnect backoff measured on the wire (doubling, capped, reset by an answer), the drain on
 * mg_worker_stop, an unacknowledged RESULT sent again on each new connection until its ACK,
 * and ACKs of another lease ignored. Heartbeats, backoffs and resend times are tens of ms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/jobspec.h"
#include "common/kv.h"
#include "common/protocol.h"
#include "common/renderspec.h"
#include "common/util.h"
#include "tests/testlib.h"
#include "worker/render.h"
#include "worker/worker.h"

#define S_MAX_FILES 8
#define S_MAX_FILE_BYTES (1 << 20)

/* The test's coordinator and the worker it serves. */
typedef struct {
    void *ctx, *router;
    char endpoint[64];
    unsigned char peer[256];           /* routing id of the last message: the worker's current socket */
    size_t peer_len;
    int alive;                         /* heartbeat the worker and acknowledge its chunks */
    int64_t last_hb;
    unsigned char *files[S_MAX_FILES]; /* the bytes the chunks brought, by file index */
    uint64_t have[S_MAX_FILES];
    int chunks;                        /* CHUNKs received */
    mg_worker_config_t cfg;
    mg_worker_t *w;
    pthread_t thread;
    int started;
    atomic_int done;                   /* mg_worker_run returned */
    int rc;                            /* what it returned */
    mg_msg_t m;                        /* the last message s_expect returned */
} s_fix_t;

/* ---- the coordinator side ------------------------------------------------------------------ */

/* Sends [peer, MG_PROTO_WORKER, cmd, (kv)] to the worker's current socket. */
static void s_send(s_fix_t *f, const char *cmd, const mg_kv_t *kv)
{
    mg_msg_t m;
    mg_msg_init(&m);
    mg_msg_add(&m, f->peer, f->peer_len);
    mg_msg_add_str(&m, MG_PROTO_WORKER);
    mg_msg_add_str(&m, cmd);
    if (kv) mg_msg_add_kv(&m, kv);
    assert_int_equal(mg_msg_send(&m, f->router, 0), 0);
    mg_msg_clear(&m);
}

static void s_ack(s_fix_t *f, int64_t render_id, const char *token)
{
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set_i64(&kv, "render_id", render_id);
    mg_kv_set(&kv, "lease_token", token);
    mg_kv_set_i64(&kv, "accepted", 1);
    mg_kv_set(&kv, "reason", "recorded");
    s_send(f, "ACK", &kv);
    mg_kv_clear(&kv);
}

/* A CHUNK: its bytes kept, and (when alive) a CHUNK_ACK with what is held from 0. */
static void s_on_chunk(s_fix_t *f, const mg_msg_t *m)
{
    mg_kv_t kv;
    mg_kv_init(&kv);
    assert_int_equal(m->n, 5);
    assert_int_equal(mg_msg_kv(m, 3, &kv), 0);
    int64_t file = mg_kv_get_i64(&kv, "file", -1);
    uint64_t offset = mg_kv_get_u64(&kv, "offset", 0), size = mg_kv_get_u64(&kv, "size", 0), len = m->size[4];
    assert_true(file >= 0 && file < S_MAX_FILES);
    assert_true(offset + len <= size && size <= S_MAX_FILE_BYTES);
    if (!f->files[file]) f->files[file] = calloc(1, S_MAX_FILE_BYTES);
    memcpy(f->files[file] + offset, m->data[4], len);
    if (offset <= f->have[file] && offset + len > f->have[file]) f->have[file] = offset + len;
    f->chunks++;
    if (f->alive) {
        mg_kv_t ack;
        mg_kv_init(&ack);
        mg_kv_set_i64(&ack, "render_id", mg_kv_get_i64(&kv, "render_id", 0));
        mg_kv_set(&ack, "lease_token", mg_kv_get_or(&kv, "lease_token", ""));
        mg_kv_set_i64(&ack, "file", file);
        mg_kv_set_u64(&ack, "have", f->have[file]);
        mg_kv_set_i64(&ack, "seq", mg_kv_get_i64(&kv, "seq", 0));
        s_send(f, "CHUNK_ACK", &ack);
        mg_kv_clear(&ack);
    }
    mg_kv_clear(&kv);
}

/* One turn of the coordinator: a HEARTBEAT when one is due (while alive), then the next message
 * from the worker into *out, waiting up to 2 ms. A CHUNK is taken in (s_on_chunk); the sender
 * becomes the peer answers go to. Returns 1 with a message, 0 without. */
static int s_serve(s_fix_t *f, mg_msg_t *out)
{
    if (f->alive && f->peer_len && mg_mono_ms() - f->last_hb >= f->cfg.heartbeat_ms) {
        s_send(f, "HEARTBEAT", NULL);
        f->last_hb = mg_mono_ms();
    }
    if (mg_msg_recv(out, f->router, ZMQ_DONTWAIT) != 0) {
        zmq_pollitem_t it = {f->router, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 2);
        if (mg_msg_recv(out, f->router, ZMQ_DONTWAIT) != 0) return 0;
    }
    assert_true(out->n >= 3);
    assert_true(mg_msg_is(out, 1, MG_PROTO_WORKER));
    assert_true(out->size[0] <= sizeof f->peer);
    memcpy(f->peer, out->data[0], out->size[0]);
    f->peer_len = out->size[0];
    if (mg_msg_is(out, 2, "CHUNK")) s_on_chunk(f, out);
    return 1;
}

/* Serves the worker until it sends cmd (into *out, [peer, header, cmd, ...]), or fails the test
 * after timeout_ms. Other commands are passed over, except that want_none (NULL: none) fails
 * the test when it comes first. Returns the time cmd arrived (mg_test_now_ms). */
static double s_expect_but(s_fix_t *f, const char *cmd, const char *want_none, int timeout_ms, mg_msg_t *out)
{
    double end = mg_test_now_ms() + timeout_ms;
    while (mg_test_now_ms() < end) {
        if (!s_serve(f, out)) continue;
        if (want_none && mg_msg_is(out, 2, want_none)) {
            char got[32];
            fail_msg("%s while waiting for %s", mg_msg_str(out, 2, got, sizeof got), cmd);
        }
        if (mg_msg_is(out, 2, cmd)) return mg_test_now_ms();
    }
    fail_msg("no %s from the worker within %d ms", cmd, timeout_ms);
    return 0;
}

static double s_expect(s_fix_t *f, const char *cmd, int timeout_ms, mg_msg_t *out)
{
    return s_expect_but(f, cmd, NULL, timeout_ms, out);
}

/* Serves the worker for ms, failing the test if it sends cmd. */
static void s_expect_no(s_fix_t *f, const char *cmd, int ms)
{
    double end = mg_test_now_ms() + ms;
    mg_msg_t m;
    mg_msg_init(&m);
    while (mg_test_now_ms() < end)
        if (s_serve(f, &m) && mg_msg_is(&m, 2, cmd)) fail_msg("unexpected %s from the worker", cmd);
    mg_msg_clear(&m);
}

/* The message's kv frame (frame 3) into kv (initialised here; the caller clears it). */
static void s_body(const mg_msg_t *m, mg_kv_t *kv)
{
    mg_kv_init(kv);
    assert_true(m->n >= 4);
    assert_int_equal(mg_msg_kv(m, 3, kv), 0);
}

static const char *s_job =
    "campaign: wtest\n"
    "output:\n  formats: [wav]\n  sample_rate: 8000\n  channels: 1\n"
    "cues:\n"
    "  - name: c\n    prompt: \"calm piano\"\n    duration: 1\n    variations: 4\n"
    "  - name: bad\n    prompt: \"fails\"\n    duration: 1\n    variations: 1\n";

/* One LEASE for n renders: render ids ids[i], tokens tokens[i], of cue ci's variations. */
static void s_lease(s_fix_t *f, int ci, int n, const int64_t *ids, const char *const *tokens)
{
    mg_job_t *job = mg_test_job_parse(s_job);
    mg_msg_t m;
    mg_msg_init(&m);
    mg_msg_add(&m, f->peer, f->peer_len);
    mg_msg_add_str(&m, MG_PROTO_WORKER);
    mg_msg_add_str(&m, "LEASE");
    for (int i = 0; i < n; i++) {
        mg_render_spec_t spec;
        mg_render_spec_from_job(job, ci, i, &spec);
        spec.render_id = ids[i];
        spec.job_id = 1;
        mg_kv_t lk, sk;
        mg_kv_init(&lk);
        mg_kv_init(&sk);
        mg_kv_set_i64(&lk, "render_id", ids[i]);
        mg_kv_set(&lk, "lease_token", tokens[i]);
        mg_kv_set_i64(&lk, "attempt", 1);
        mg_kv_set_i64(&lk, "deadline_ms", mg_now_ms() + 30000);
        mg_kv_set_i64(&lk, "lease_ms", 30000);
        assert_int_equal(mg_render_spec_to_kv(&spec, &sk), 0);
        mg_msg_add_kv(&m, &lk);
        mg_msg_add_kv(&m, &sk);
        mg_kv_clear(&lk);
        mg_kv_clear(&sk);
    }
    assert_int_equal(mg_msg_send(&m, f->router, 0), 0);
    mg_msg_clear(&m);
    mg_job_destroy(&job);
}

/* A RESULT for this lease: one file kv per file, each file's bytes as the chunks brought them
 * with the size and sha256 the RESULT claims. */
static void s_check_result(s_fix_t *f, const mg_msg_t *m, int64_t render_id, const char *token)
{
    mg_kv_t meta;
    s_body(m, &meta);
    assert_int_equal(mg_kv_get_i64(&meta, "render_id", 0), render_id);
    assert_string_equal(mg_kv_get_or(&meta, "lease_token", ""), token);
    assert_string_equal(mg_kv_get_or(&meta, "worker", ""), f->cfg.name);
    assert_string_equal(mg_kv_get_or(&meta, "model_name", ""), "mg-test-renderer");
    int64_t files = mg_kv_get_i64(&meta, "files", 0);
    assert_true(files >= 1 && files <= S_MAX_FILES);
    assert_int_equal(m->n, 4 + (size_t)files);
    for (int64_t i = 0; i < files; i++) {
        mg_kv_t fk;
        mg_kv_init(&fk);
        assert_int_equal(mg_msg_kv(m, 4 + (size_t)i, &fk), 0);
        uint64_t bytes = mg_kv_get_u64(&fk, "bytes", 0);
        assert_true(bytes > 0);
        assert_int_equal(f->have[i], bytes);
        char hex[65];
        mg_sha256_hex(f->files[i], bytes, hex);
        assert_string_equal(hex, mg_kv_get_or(&fk, "sha256", ""));
        mg_kv_clear(&fk);
    }
    mg_kv_clear(&meta);
}

/* Forgets the bytes of the last upload. */
static void s_files_reset(s_fix_t *f)
{
    for (int i = 0; i < S_MAX_FILES; i++) {
        free(f->files[i]);
        f->files[i] = NULL;
        f->have[i] = 0;
    }
    f->chunks = 0;
}

/* ---- the worker side ---------------------------------------------------------------------- */

static void *s_run(void *arg)
{
    s_fix_t *f = arg;
    f->rc = mg_worker_run(f->w);
    atomic_store(&f->done, 1);
    return NULL;
}

/* Starts the worker with f->cfg in a thread of its own; returns when its first READY arrived
 * (in f->m), and the time it did. */
static double s_start(s_fix_t *f)
{
    char err[512] = "";
    f->w = mg_worker_new(&f->cfg, mg_renderer_test(), err, sizeof err);
    if (!f->w) fail_msg("mg_worker_new: %s", err);
    assert_int_equal(pthread_create(&f->thread, NULL, s_run, f), 0);
    f->started = 1;
    return s_expect(f, "READY", 2000, &f->m);
}

/* mg_worker_stop, then (when disconnect) the worker's DISCONNECT, failing the test if command
 * but (NULL: none) comes first; and mg_worker_run must return 0 within a second. */
static void s_stop(s_fix_t *f, int disconnect, const char *but)
{
    mg_worker_stop(f->w);
    if (disconnect) s_expect_but(f, "DISCONNECT", but, 1000, &f->m);
    for (int t = 0; t < 1000 && !atomic_load(&f->done); t += 5) mg_test_sleep_ms(5);
    if (!atomic_load(&f->done)) fail_msg("mg_worker_run still running 1 s after the stop");
    pthread_join(f->thread, NULL);
    f->started = 0;
    mg_worker_destroy(&f->w);
    assert_int_equal(f->rc, 0);
}

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof *f);
    f->ctx = zmq_ctx_new();
    f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(f->router, "tcp://127.0.0.1:*") != 0) return -1;
    size_t len = sizeof f->endpoint;
    zmq_getsockopt(f->router, ZMQ_LAST_ENDPOINT, f->endpoint, &len);
    f->alive = 1;
    mg_worker_config_default(&f->cfg);
    f->cfg.endpoint = f->endpoint;
    f->cfg.name = "tw-0";
    f->cfg.capacity = 1;
    f->cfg.heartbeat_ms = 50;
    f->cfg.liveness = 3;
    f->cfg.drain_ms = 3000;
    f->cfg.backoff_ms = 50;
    f->cfg.backoff_max_ms = 400;
    f->cfg.outbox_resend_ms = 300;
    f->cfg.upload.chunk_bytes = 4096;
    f->cfg.upload.window = 2;
    f->cfg.upload.resend_ms = 300;
    mg_msg_init(&f->m);
    setenv("MG_TEST_RENDER_MS", "0", 1);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    if (f->started) { /* a test that failed half-way: its worker drains within drain_ms */
        mg_worker_stop(f->w);
        pthread_join(f->thread, NULL);
        mg_worker_destroy(&f->w);
    }
    s_files_reset(f);
    mg_msg_clear(&f->m);
    zmq_close(f->router);
    zmq_ctx_term(f->ctx);
    free(f);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_new_refuses_bad_settings(void **state)
{
    s_fix_t *f = *state;
    char err[256] = "";
    mg_worker_config_t cfg = f->cfg;
    cfg.capacity = 0;
    assert_null(mg_worker_new(&cfg, mg_renderer_test(), err, sizeof err));
    assert_non_null(strstr(err, "capacity"));
    cfg = f->cfg;
    cfg.backoff_max_ms = cfg.backoff_ms - 1;
    assert_null(mg_worker_new(&cfg, mg_renderer_test(), err, sizeof err));
    assert_non_null(strstr(err, "backoff"));
    /* Not run: destroyed as it is, and a name is made up when none is given. */
    cfg = f->cfg;
    cfg.name = NULL;
    mg_worker_t *w = mg_worker_new(&cfg, mg_renderer_test(), err, sizeof err);
    assert_non_null(w);
    assert_true(strlen(mg_worker_name(w)) > 0);
    mg_worker_destroy(&w);
    assert_null(w);
    mg_worker_destroy(&w);
}

/* READY with what the coordinator needs, heartbeats when idle, one render delivered. */
static void test_ready_heartbeat_and_a_render(void **state)
{
    s_fix_t *f = *state;
    f->cfg.capacity = 3;
    s_start(f);
    mg_kv_t kv;
    s_body(&f->m, &kv);
    assert_int_equal(mg_kv_get_i64(&kv, "capacity", -1), 3);
    assert_string_equal(mg_kv_get_or(&kv, "name", ""), "tw-0");
    assert_string_equal(mg_kv_get_or(&kv, "protocol", ""), MG_PROTO_WORKER);
    assert_string_equal(mg_kv_get_or(&kv, "held", "?"), "");
    assert_string_equal(mg_kv_get_or(&kv, "backend", ""), "cpu");
    assert_non_null(strstr(mg_kv_get_or(&kv, "models", ""), "mg-test-renderer:0:"));
    mg_kv_clear(&kv);
    /* Nothing to say: a HEARTBEAT every heartbeat_ms. */
    double t0 = s_expect(f, "HEARTBEAT", 500, &f->m);
    double t1 = s_expect(f, "HEARTBEAT", 500, &f->m);
    assert_true(t1 - t0 < 3 * f->cfg.heartbeat_ms);

    int64_t id = 7;
    const char *tok = "tok-7";
    s_lease(f, 0, 1, &id, &tok);
    s_expect_but(f, "RESULT", "FAIL", 5000, &f->m);
    assert_true(f->chunks >= 2); /* a WAV of 1 s at 8 kHz is over one 4 KiB chunk */
    s_check_result(f, &f->m, id, tok);
    s_ack(f, id, tok);
    s_expect_no(f, "RESULT", 2 * (int)f->cfg.upload.resend_ms);

    mg_worker_stop(f->w);
    s_expect(f, "READY", 1000, &f->m);
    s_body(&f->m, &kv);
    assert_int_equal(mg_kv_get_i64(&kv, "capacity", -1), 0);
    mg_kv_clear(&kv);
    s_stop(f, 1, NULL);
}

/* Silent coordinator: the gaps between READYs are liveness + backoff, the backoff doubling
 * from backoff_ms to backoff_max_ms; an answer puts it back to backoff_ms. */
static void test_reconnect_backoff(void **state)
{
    s_fix_t *f = *state;
    f->cfg.heartbeat_ms = 20;
    f->cfg.liveness = 2;
    f->cfg.backoff_ms = 50;
    f->cfg.backoff_max_ms = 400;
    f->alive = 0;
    const double silent = f->cfg.heartbeat_ms * f->cfg.liveness;
    /* Detection runs every heartbeat_ms / 2; the rest is scheduling, and the connection each
     * READY waits for (TCP and ZMTP handshakes) can make a READY late, so the gap before it
     * look longer and the one after it shorter by that much. */
    const double slack = f->cfg.heartbeat_ms / 2.0 + 90;
    enum { N = 6 };
    double at[N + 1], gap[N];
    const int backoff[N] = {50, 100, 200, 400, 400, 400};
    at[0] = s_start(f);
    for (int i = 0; i < N; i++) {
        at[i + 1] = s_expect(f, "READY", 2000, &f->m);
        gap[i] = at[i + 1] - at[i];
    }
    /* Answered once: the backoff starts again at backoff_ms, then doubles again. */
    s_send(f, "HEARTBEAT", NULL);
    double answered = mg_test_now_ms();
    double after = s_expect(f, "READY", 2000, &f->m) - answered;
    double next = s_expect(f, "READY", 2000, &f->m);
    double after2 = next - (after + answered);
    printf("# READY gaps with a silent coordinator (heartbeat %d ms x liveness %d = %.0f ms, backoff %d..%d ms):",
           f->cfg.heartbeat_ms, f->cfg.liveness, silent, f->cfg.backoff_ms, f->cfg.backoff_max_ms);
    for (int i = 0; i < N; i++) printf(" %.0f", gap[i]);
    printf(" ms; after an answer: %.0f, %.0f ms\n", after, after2);
    for (int i = 0; i < N; i++) {
        if (gap[i] < silent + backoff[i] - 20 || gap[i] > silent + backoff[i] + slack)
            fail_msg("gap %d: %.0f ms, expected %.0f + %d ms (+ up to %.0f)", i, gap[i], silent, backoff[i], slack);
    }
    if (after < silent + 50 - 20 || after > silent + 50 + slack)
        fail_msg("after the answer: %.0f ms, expected %.0f + 50 ms", after, silent);
    if (after2 < silent + 100 - 20 || after2 > silent + 100 + slack)
        fail_msg("the gap after that: %.0f ms, expected %.0f + 100 ms", after2, silent);
    s_stop(f, 0, NULL);
}

/* Stop with one render running and one queued: the queued one is handed back at once, the
 * running one finished and delivered, then DISCONNECT and mg_worker_run returns 0. */
static void test_drain_on_stop(void **state)
{
    s_fix_t *f = *state;
    setenv("MG_TEST_RENDER_MS", "300", 1);
    f->cfg.capacity = 1;
    s_start(f);
    const int64_t ids[2] = {11, 12};
    const char *toks[2] = {"tok-11", "tok-12"};
    s_lease(f, 0, 2, ids, toks);
    s_expect_no(f, "FAIL", 100); /* render 11 starts, 12 waits for the one thread */
    mg_worker_stop(f->w);
    double stopped = mg_test_now_ms();

    s_expect_but(f, "FAIL", "RESULT", 500, &f->m);
    mg_kv_t kv;
    s_body(&f->m, &kv);
    assert_int_equal(mg_kv_get_i64(&kv, "render_id", 0), 12);
    assert_string_equal(mg_kv_get_or(&kv, "lease_token", ""), "tok-12");
    assert_int_equal(mg_kv_get_i64(&kv, "handback", 0), 1);
    assert_int_equal(mg_kv_get_i64(&kv, "retryable", 0), 1);
    mg_kv_clear(&kv);
    s_ack(f, 12, "tok-12");
    s_expect_but(f, "READY", "RESULT", 500, &f->m);
    s_body(&f->m, &kv);
    assert_int_equal(mg_kv_get_i64(&kv, "capacity", -1), 0);
    assert_string_equal(mg_kv_get_or(&kv, "held", ""), "11:tok-11");
    mg_kv_clear(&kv);

    s_expect_but(f, "RESULT", "DISCONNECT", 3000, &f->m);
    assert_true(mg_test_now_ms() - stopped >= 150); /* it did finish rendering */
    s_check_result(f, &f->m, 11, "tok-11");
    assert_false(atomic_load(&f->done)); /* still waiting for the ACK */
    s_ack(f, 11, "tok-11");
    s_stop(f, 1, "RESULT");
}

/* A RESULT without its ACK is sent again on every new connection (the upload's own resend
 * timer is out of the way at 10 s), its chunks not again, until the ACK comes. */
static void test_result_resent_after_reconnect(void **state)
{
    s_fix_t *f = *state;
    f->cfg.heartbeat_ms = 20;
    f->cfg.liveness = 3;
    f->cfg.upload.resend_ms = 10000;
    s_start(f);
    int64_t id = 21;
    const char *tok = "tok-21";
    s_lease(f, 0, 1, &id, &tok);
    s_expect(f, "RESULT", 5000, &f->m);
    s_check_result(f, &f->m, id, tok);
    int chunks = f->chunks;

    for (int round = 0; round < 2; round++) {
        f->alive = 0; /* no ACK, and silence: the worker reconnects */
        s_expect_but(f, "READY", "RESULT", 1000, &f->m);
        mg_kv_t kv;
        s_body(&f->m, &kv);
        assert_string_equal(mg_kv_get_or(&kv, "held", "?"), ""); /* rendered: only delivering */
        mg_kv_clear(&kv);
        double ready = mg_test_now_ms();
        s_expect(f, "RESULT", 200, &f->m);
        assert_true(mg_test_now_ms() - ready < 100);
        s_check_result(f, &f->m, id, tok);
        assert_int_equal(f->chunks, chunks);
    }
    f->alive = 1;
    s_ack(f, id, tok);
    /* Acknowledged: neither another connection nor time brings it back. */
    f->alive = 0;
    s_expect_but(f, "READY", "RESULT", 1000, &f->m);
    f->alive = 1;
    s_expect_no(f, "RESULT", 200);
    s_stop(f, 1, "RESULT");
}

/* ACKs that name another lease of the render, or another render, leave the RESULT and the FAIL
 * waiting: both are sent again after their resend times until the right ACK. */
static void test_stale_ack_ignored(void **state)
{
    s_fix_t *f = *state;
    setenv("MG_TEST_FAIL_CUE", "bad", 1);
    f->cfg.capacity = 2;
    s_start(f);
    int64_t rid = 31, fid = 32;
    const char *rtok = "tok-31-new", *ftok = "tok-32-new";
    s_lease(f, 0, 1, &rid, &rtok);
    s_expect(f, "RESULT", 5000, &f->m);
    s_lease(f, 1, 1, &fid, &ftok);
    s_expect(f, "FAIL", 5000, &f->m);
    mg_kv_t kv;
    s_body(&f->m, &kv);
    assert_int_equal(mg_kv_get_i64(&kv, "render_id", 0), fid);
    assert_int_equal(mg_kv_get_i64(&kv, "handback", 0), 0);
    mg_kv_clear(&kv);

    s_ack(f, rid, "tok-31-old");
    s_ack(f, fid, "tok-32-old");
    s_ack(f, 99, rtok);
    double t = mg_test_now_ms();
    /* Twice: the first could have left before the ACKs arrived. */
    s_expect(f, "RESULT", 1000, &f->m);
    s_expect(f, "RESULT", 1000, &f->m);
    s_check_result(f, &f->m, rid, rtok);
    s_expect(f, "FAIL", 1000, &f->m);
    assert_true(mg_test_now_ms() - t >= 250); /* by the resend timers, not by the ACKs */

    s_ack(f, rid, rtok);
    s_ack(f, fid, ftok);
    s_expect_no(f, "RESULT", 700);
    s_expect_no(f, "FAIL", 1);
    s_stop(f, 1, "FAIL");
    unsetenv("MG_TEST_FAIL_CUE");
}

int main(void)
{
    mg_test_log_quiet("test_worker");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_refuses_bad_settings, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ready_heartbeat_and_a_render, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_backoff, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_drain_on_stop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_result_resent_after_reconnect, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stale_ack_ignored, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
