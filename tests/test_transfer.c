/* test_transfer.c - results in chunks through a real mg-coordinator: a result over 200 MiB from
 * a real worker (build/tests/mg-worker-test with MG_TEST_RESULT_BYTES) lands byte for byte with
 * the coordinator's peak memory bounded; a coordinator killed mid-transfer loses nothing; and,
 * with a zmq DEALER in this process playing the worker, the protocol's edges: chunks of a stale
 * lease refused, a lease that ends mid-transfer cleaned up, duplicate and overlapping chunks,
 * a gap answered resend=1, a corrupted chunk failing the attempt with nothing at the final name;
 * and the worker's upload state machine alone (window, go-back, sequence numbers, RESULT resends).
 * Checks read the coordinator's SQLite database and its outputs folder directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/jobspec.h"
#include "common/protocol.h"
#include "common/util.h"
#include "tests/testlib.h"
#include "worker/upload.h"

#define S_BIG_BYTES (210u << 20)     /* the >200 MiB result */
#define S_RESTART_BYTES (128u << 20) /* big enough to kill the coordinator mid-transfer */
#define S_MAX_HWM_KIB (150 * 1024)   /* the coordinator's peak RSS bound */
#define S_SEED 42u

static double s_now_s(void) { return (double)mg_mono_ms() / 1000.0; }

static void s_start_coordinator(mg_test_farm_t *f, const char *lease_ms)
{
    const char *args[] = {"--heartbeat-ms", "100", "--liveness", "3", "--lease-ms", lease_ms,
                          "--max-attempts", "3",   NULL};
    /* Under AddressSanitizer (make SAN=...) freed blocks wait in a quarantine of 256 MiB by
     * default, which alone would pass the memory bound: keep it small. Other builds ignore it. */
    static char asan[512];
    const char *prev = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%squarantine_size_mb=8", prev ? prev : "", prev && *prev ? ":" : "");
    const char *env[] = {asan, NULL};
    mg_test_farm_start_coordinator(f, args, env);
}

static void s_start_worker(mg_test_farm_t *f, const char *const *env)
{
    static const char *const args[] = {"--capacity", "1",      "--heartbeat-ms", "100", "--liveness",
                                       "3",          "--name", "worker-0",       NULL};
    mg_test_farm_start_worker(f, "worker-0", args, env);
}

/* Peak resident set (VmHWM) of a live process, KiB; -1 if unreadable. */
static long s_vmhwm_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    fclose(fp);
    return kib;
}

static void s_submit(mg_test_farm_t *f, const char *yaml)
{
    char path[512];
    mg_test_farm_write(f, "job.yaml", yaml);
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, NULL, 0, NULL, "submit '%s'", path), 0);
}

/* Regular files under dir (recursively), the names' count; skips the transfers folder when
 * skip_transfers. Used to prove that nothing landed. */
static int s_count_files(const char *dir, int skip_transfers)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (skip_transfers && strcmp(e->d_name, ".transfers") == 0) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) n += s_count_files(p, 0);
        else n++;
    }
    closedir(d);
    return n;
}

static int s_transfer_files(const mg_test_farm_t *f)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/outputs/.transfers", f->home);
    return s_count_files(dir, 0);
}

/* Size of the one file in .transfers, or -1 when there is none. */
static long long s_transfer_size(const mg_test_farm_t *f)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/outputs/.transfers", f->home);
    DIR *d = opendir(dir);
    if (!d) return -1;
    long long size = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0) size = (long long)st.st_size;
    }
    closedir(d);
    return size;
}

/* The bytes the test renderer puts in place of the mix (render_test.c, MG_TEST_RESULT_BYTES):
 * xorshift64* from seed ^ salt, 8 little-endian bytes per step. Hashed, never held whole. */
static void s_expected_sha(uint64_t seed, size_t n, char hex[65])
{
    uint64_t x = seed ^ 0x9e3779b97f4a7c15ull;
    if (x == 0) x = 0x9e3779b97f4a7c15ull;
    mg_sha256_t h;
    mg_sha256_init(&h);
    static unsigned char buf[1 << 20];
    size_t fill = 0;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t w = x * 2685821657736338717ull;
        size_t k = n - i < 8 ? n - i : 8;
        for (size_t b = 0; b < k; b++) buf[fill++] = (unsigned char)(w >> (8 * b));
        if (fill + 8 > sizeof buf) {
            mg_sha256_update(&h, buf, fill);
            fill = 0;
        }
    }
    mg_sha256_update(&h, buf, fill);
    mg_sha256_final_hex(&h, hex);
}

static int s_setup(void **state)
{
    mg_test_farm_t *f = mg_test_farm_new("transfer");
    f->log_level = "2";
    *state = f;
    return 0;
}

static const char *s_big_job =
    "campaign: big\n"
    "output:\n  formats: [flac, mp3]\n  sample_rate: 8000\n  channels: 1\n"
    "cues:\n  - name: huge\n    prompt: \"a long cue with stems\"\n    duration: 1\n    seeds: [42]\n";

/* The render's first output is the test renderer's n pseudo-random bytes, on disk byte for
 * byte (size and sha256 of the file, independently rebuilt), and nothing is left in transit. */
static void s_assert_big_output(const mg_test_farm_t *f, size_t n)
{
    char want[65], rel[600], path[1024], got[65];
    s_expected_sha(S_SEED, n, want);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT bytes FROM outputs WHERE format = 'flac'"), (int64_t)n);
    snprintf(got, sizeof got, "%s", mg_test_farm_sql_text(f, "SELECT sha256 FROM outputs WHERE format = 'flac'"));
    assert_string_equal(got, want);
    snprintf(rel, sizeof rel, "%s", mg_test_farm_sql_text(f, "SELECT path FROM outputs WHERE format = 'flac'"));
    snprintf(path, sizeof path, "%s/outputs/%s", f->home, rel);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((long long)st.st_size, (long long)n);
    assert_int_equal(mg_sha256_file_hex(path, got), 0);
    assert_string_equal(got, want);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM outputs"), 2); /* and the mp3 */
    assert_int_equal(s_transfer_files(f), 0);
}

static void test_big_result_chunked(void **state)
{
    mg_test_farm_t *f = *state;
    s_start_coordinator(f, "5000"); /* making and hashing 210 MiB is part of the render: no progress calls */
    char bytes[64];
    snprintf(bytes, sizeof bytes, "MG_TEST_RESULT_BYTES=%u", S_BIG_BYTES);
    const char *env[] = {bytes, NULL};
    s_start_worker(f, env);
    s_submit(f, s_big_job);
    double t0 = s_now_s();
    mg_test_farm_wait_sql(f, 1, 120000, "SELECT count(*) FROM renders WHERE state = 'done'");
    double secs = s_now_s() - t0;
    long coord_kib = s_vmhwm_kib(f->coordinator), worker_kib = s_vmhwm_kib(f->workers[0]);
    printf("# %u MiB result: submit to recorded %.2f s (%.0f MB/s including the render); VmHWM coordinator "
           "%.1f MiB, worker %.1f MiB\n",
           S_BIG_BYTES >> 20, secs, S_BIG_BYTES / 1e6 / secs, coord_kib / 1024.0, worker_kib / 1024.0);
    assert_true(coord_kib > 0);
    assert_true(coord_kib < S_MAX_HWM_KIB);
    s_assert_big_output(f, S_BIG_BYTES);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM attempts WHERE outcome = 'done'"), 1);
}

static void test_coordinator_restart_mid_transfer(void **state)
{
    mg_test_farm_t *f = *state;
    s_start_coordinator(f, "5000");
    char bytes[64];
    snprintf(bytes, sizeof bytes, "MG_TEST_RESULT_BYTES=%u", S_RESTART_BYTES);
    const char *env[] = {bytes, NULL};
    s_start_worker(f, env);
    s_submit(f, s_big_job);
    /* Kill the coordinator once the first 8 MiB have landed. */
    long long at = -1;
    for (int t = 0; t < 30000 && at < (8 << 20); t++) {
        at = s_transfer_size(f);
        if (at < (8 << 20)) usleep(1000);
    }
    kill(f->coordinator, SIGKILL);
    waitpid(f->coordinator, NULL, 0);
    f->coordinator = 0;
    long long left = s_transfer_size(f);
    printf("# coordinator killed with %lld of %u bytes of the file received\n", left, S_RESTART_BYTES);
    assert_true(left >= (8 << 20));
    assert_true(left < (long long)S_RESTART_BYTES);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'done'"), 0);
    /* An orphan of some older transfer: the restarted coordinator removes it too. */
    char orphan[600];
    snprintf(orphan, sizeof orphan, "%s/outputs/.transfers/999-0123456789abcdef-00.part", f->home);
    FILE *fp = fopen(orphan, "w");
    assert_non_null(fp);
    fputs("left behind", fp);
    fclose(fp);
    s_start_coordinator(f, "5000");
    mg_test_farm_wait_sql(f, 1, 60000, "SELECT count(*) FROM renders WHERE state = 'done'");
    assert_int_equal(access(orphan, F_OK), -1);
    s_assert_big_output(f, S_RESTART_BYTES);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM attempts"), 1); /* the same lease, finished */
}

/* ---- a worker played by this test ---------------------------------------------------------- */

typedef struct {
    void *ctx, *sock;
    int64_t last_hb;
} s_fake_t;

static void s_fake_send(s_fake_t *w, const char *cmd, const mg_kv_t *kv, const void *bytes, size_t len,
                        const mg_msg_t *more)
{
    mg_msg_t m;
    mg_msg_init(&m);
    mg_msg_add_str(&m, MG_PROTO_WORKER);
    mg_msg_add_str(&m, cmd);
    if (kv) mg_msg_add_kv(&m, kv);
    if (bytes) mg_msg_add(&m, bytes, len);
    for (size_t i = 0; more && i < more->n; i++) mg_msg_add(&m, more->data[i], more->size[i]);
    assert_int_equal(mg_msg_send(&m, w->sock, 0), 0);
    mg_msg_clear(&m);
}

static void s_fake_ready(s_fake_t *w)
{
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set(&kv, "name", "fake");
    mg_kv_set(&kv, "capacity", "1");
    mg_kv_set(&kv, "held", "");
    s_fake_send(w, "READY", &kv, NULL, 0, NULL);
    mg_kv_clear(&kv);
}

static void s_fake_start(s_fake_t *w, const mg_test_farm_t *f)
{
    w->ctx = zmq_ctx_new();
    w->sock = zmq_socket(w->ctx, ZMQ_DEALER);
    assert_int_equal(mg_socket_setup(w->sock, 1000), 0);
    assert_int_equal(zmq_connect(w->sock, f->endpoint), 0);
    w->last_hb = mg_mono_ms();
    s_fake_ready(w);
}

static void s_fake_stop(s_fake_t *w)
{
    zmq_close(w->sock);
    zmq_ctx_term(w->ctx);
}

/* Waits for command cmd (heartbeating; a DISCONNECT is answered with READY) into out. */
static void s_fake_expect(s_fake_t *w, const char *cmd, int timeout_ms, mg_msg_t *out)
{
    int64_t end = mg_mono_ms() + timeout_ms;
    while (mg_mono_ms() < end) {
        zmq_pollitem_t it = {w->sock, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 20);
        if (mg_mono_ms() - w->last_hb >= 50) {
            s_fake_send(w, "HEARTBEAT", NULL, NULL, 0, NULL);
            w->last_hb = mg_mono_ms();
        }
        while (mg_msg_recv(out, w->sock, ZMQ_DONTWAIT) == 0) {
            if (mg_msg_is(out, 1, cmd)) return;
            if (mg_msg_is(out, 1, "DISCONNECT")) s_fake_ready(w);
        }
    }
    fprintf(stderr, "no %s within %d ms\n", cmd, timeout_ms);
    fail();
}

/* A LEASE: the render id and token. */
static void s_fake_lease(s_fake_t *w, int64_t *render_id, char token[40])
{
    mg_msg_t m;
    mg_msg_init(&m);
    s_fake_expect(w, "LEASE", 10000, &m);
    mg_kv_t kv;
    mg_kv_init(&kv);
    assert_int_equal(mg_msg_kv(&m, 2, &kv), 0);
    *render_id = mg_kv_get_i64(&kv, "render_id", 0);
    snprintf(token, 40, "%s", mg_kv_get_or(&kv, "lease_token", ""));
    mg_kv_clear(&kv);
    mg_msg_clear(&m);
}

static void s_fake_chunk(s_fake_t *w, int64_t render_id, const char *token, int file, uint64_t offset,
                         uint64_t size, int64_t seq, const unsigned char *data, size_t len)
{
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set_i64(&kv, "render_id", render_id);
    mg_kv_set(&kv, "lease_token", token);
    mg_kv_set_i64(&kv, "file", file);
    mg_kv_set_u64(&kv, "offset", offset);
    mg_kv_set_u64(&kv, "size", size);
    mg_kv_set_i64(&kv, "seq", seq);
    s_fake_send(w, "CHUNK", &kv, data, len, NULL);
    mg_kv_clear(&kv);
}

/* Waits for the answer to a chunk or RESULT: CHUNK_ACK (*have, *resend) or ACK (*accepted,
 * reason). Returns 1 for a CHUNK_ACK, 0 for an ACK. */
static int s_fake_answer(s_fake_t *w, uint64_t *have, int *resend, int *accepted, char *reason, size_t rlen)
{
    mg_msg_t m;
    mg_msg_init(&m);
    int64_t end = mg_mono_ms() + 5000;
    int kind = -1;
    while (kind < 0 && mg_mono_ms() < end) {
        zmq_pollitem_t it = {w->sock, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 20);
        if (mg_mono_ms() - w->last_hb >= 50) {
            s_fake_send(w, "HEARTBEAT", NULL, NULL, 0, NULL);
            w->last_hb = mg_mono_ms();
        }
        while (kind < 0 && mg_msg_recv(&m, w->sock, ZMQ_DONTWAIT) == 0) {
            mg_kv_t kv;
            mg_kv_init(&kv);
            if (mg_msg_is(&m, 1, "CHUNK_ACK") || mg_msg_is(&m, 1, "ACK")) {
                assert_int_equal(mg_msg_kv(&m, 2, &kv), 0);
                kind = mg_msg_is(&m, 1, "CHUNK_ACK");
                if (have) *have = mg_kv_get_u64(&kv, "have", UINT64_MAX);
                if (resend) *resend = (int)mg_kv_get_i64(&kv, "resend", 0);
                if (accepted) *accepted = (int)mg_kv_get_i64(&kv, "accepted", -1);
                if (reason) snprintf(reason, rlen, "%s", mg_kv_get_or(&kv, "reason", ""));
            } else if (mg_msg_is(&m, 1, "DISCONNECT")) s_fake_ready(w);
            mg_kv_clear(&kv);
        }
    }
    mg_msg_clear(&m);
    if (kind < 0) {
        fprintf(stderr, "no answer within 5 s\n");
        fail();
    }
    return kind;
}

static void s_expect_chunk_ack(s_fake_t *w, uint64_t want_have, int want_resend)
{
    uint64_t have = 0;
    int resend = -1;
    char reason[512] = "";
    if (s_fake_answer(w, &have, &resend, NULL, reason, sizeof reason) != 1) {
        fprintf(stderr, "expected CHUNK_ACK, got ACK: %s\n", reason);
        fail();
    }
    assert_int_equal(have, want_have);
    assert_int_equal(resend, want_resend);
}

static void s_expect_ack(s_fake_t *w, int want_accepted, const char *reason_part)
{
    int accepted = -1;
    char reason[512] = "";
    assert_int_equal(s_fake_answer(w, NULL, NULL, &accepted, reason, sizeof reason), 0);
    if (accepted != want_accepted || (reason_part && !strstr(reason, reason_part))) {
        fprintf(stderr, "ACK accepted=%d reason '%s', expected accepted=%d and '%s'\n", accepted, reason,
                want_accepted, reason_part ? reason_part : "");
        fail();
    }
}

static void s_fill(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (unsigned char)(x >> 24);
    }
}

/* RESULT for two files (flac: a, mp3: b) claiming the given sha256s. */
static void s_fake_result(s_fake_t *w, int64_t render_id, const char *token, size_t alen, const char *asha,
                          size_t blen, const char *bsha)
{
    mg_kv_t meta;
    mg_kv_init(&meta);
    mg_kv_set_i64(&meta, "render_id", render_id);
    mg_kv_set(&meta, "lease_token", token);
    mg_kv_set(&meta, "worker", "fake");
    mg_kv_set(&meta, "backend", "cpu");
    mg_kv_set(&meta, "device", "test");
    mg_kv_set(&meta, "model_name", "fake");
    mg_kv_set(&meta, "model_version", "0");
    mg_kv_set(&meta, "model_sha256", "0");
    mg_kv_set(&meta, "model_license", "none");
    mg_kv_set(&meta, "attribution", "none");
    mg_kv_set_i64(&meta, "started_ms", mg_now_ms());
    mg_kv_set_i64(&meta, "finished_ms", mg_now_ms());
    mg_kv_set_i64(&meta, "files", 2);
    mg_kv_set_i64(&meta, "seq", 1000);
    mg_msg_t files;
    mg_msg_init(&files);
    const char *fmt[2] = {"flac", "mp3"}, *sha[2] = {asha, bsha};
    size_t len[2] = {alen, blen};
    for (int i = 0; i < 2; i++) {
        mg_kv_t fk;
        mg_kv_init(&fk);
        mg_kv_set(&fk, "format", fmt[i]);
        mg_kv_set(&fk, "kind", "mix");
        mg_kv_set(&fk, "part", "");
        mg_kv_set(&fk, "sha256", sha[i]);
        mg_kv_set_u64(&fk, "bytes", len[i]);
        mg_kv_set_double(&fk, "duration_s", 1.0);
        mg_kv_set_i64(&fk, "sample_rate", 8000);
        mg_kv_set_i64(&fk, "channels", 1);
        mg_msg_add_kv(&files, &fk);
        mg_kv_clear(&fk);
    }
    s_fake_send(w, "RESULT", &meta, NULL, 0, &files);
    mg_msg_clear(&files);
    mg_kv_clear(&meta);
}

static const char *s_small_job =
    "campaign: small\n"
    "output:\n  formats: [flac, mp3]\n  sample_rate: 8000\n  channels: 1\n"
    "cues:\n  - name: c\n    prompt: \"p\"\n    duration: 1\n    seeds: [7]\n";

static void test_stale_lease_chunks_refused(void **state)
{
    mg_test_farm_t *f = *state;
    s_start_coordinator(f, "1500");
    s_fake_t w;
    s_fake_start(&w, f);
    s_submit(f, s_small_job);
    int64_t rid;
    char t1[40], t2[40];
    s_fake_lease(&w, &rid, t1);
    enum { A = 3 << 20, B = 1000, MIB = 1 << 20 };
    unsigned char *a = malloc(A), b[B];
    s_fill(a, A, 1);
    s_fill(b, B, 2);
    char asha[65], bsha[65];
    mg_sha256_hex(a, A, asha);
    mg_sha256_hex(b, B, bsha);

    /* Lease 1: one chunk lands in .transfers, then the worker goes silent and is declared lost;
     * the lease ends and the sweep removes what arrived. */
    s_fake_chunk(&w, rid, t1, 0, 0, A, 1, a, MIB);
    s_expect_chunk_ack(&w, MIB, 0);
    assert_int_equal(s_transfer_size(f), MIB);
    mg_test_sleep_ms(500);
    mg_test_farm_wait_sql(f, 1, 3000, "SELECT count(*) FROM attempts WHERE outcome = 'lost'");
    for (int t = 0; t < 3000 && s_transfer_files(f) > 0; t += 20)
        mg_test_sleep_ms(20);
    assert_int_equal(s_transfer_files(f), 0);

    /* The render is leased again (the fake worker re-registers); lease 1's chunks are refused. */
    s_fake_lease(&w, &rid, t2);
    assert_string_not_equal(t1, t2);
    s_fake_chunk(&w, rid, t1, 0, MIB, A, 2, a + MIB, MIB);
    s_expect_ack(&w, 0, "stale lease token");
    s_fake_chunk(&w, rid, t1, 0, 2 * MIB, A, 3, a + 2 * MIB, MIB);
    s_expect_ack(&w, 0, "stale lease token");
    assert_int_equal(s_transfer_files(f), 0);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM events WHERE kind = 'result_rejected'"), 1);

    /* Lease 2: duplicates and overlaps are idempotent, a gap is answered resend=1. */
    s_fake_chunk(&w, rid, t2, 0, 0, A, 1, a, MIB);
    s_expect_chunk_ack(&w, MIB, 0);
    s_fake_chunk(&w, rid, t2, 0, 0, A, 2, a, MIB);
    s_expect_chunk_ack(&w, MIB, 0);
    s_fake_chunk(&w, rid, t2, 0, MIB / 2, A, 3, a + MIB / 2, MIB);
    s_expect_chunk_ack(&w, MIB + MIB / 2, 0);
    s_fake_chunk(&w, rid, t2, 0, 5 * MIB / 2, A, 4, a + 5 * MIB / 2, MIB / 2);
    s_expect_chunk_ack(&w, MIB + MIB / 2, 1);
    /* A RESULT before everything arrived: the coordinator asks for what it lacks. */
    s_fake_result(&w, rid, t2, A, asha, B, bsha);
    s_expect_chunk_ack(&w, MIB + MIB / 2, 1);
    s_expect_chunk_ack(&w, 0, 1);
    s_fake_chunk(&w, rid, t2, 0, MIB + MIB / 2, A, 5, a + MIB + MIB / 2, A - (MIB + MIB / 2));
    s_expect_chunk_ack(&w, A, 0);
    s_fake_chunk(&w, rid, t2, 1, 0, B, 6, b, B);
    s_expect_chunk_ack(&w, B, 0);
    s_fake_result(&w, rid, t2, A, asha, B, bsha);
    s_expect_ack(&w, 1, "recorded");
    /* The ACK was lost: the same RESULT again is answered the same, nothing written twice. */
    s_fake_result(&w, rid, t2, A, asha, B, bsha);
    s_expect_ack(&w, 1, "recorded");

    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'done'"), 1);
    char rel[600], path[1024], got[65];
    snprintf(rel, sizeof rel, "%s", mg_test_farm_sql_text(f, "SELECT path FROM outputs WHERE format = 'flac'"));
    snprintf(path, sizeof path, "%s/outputs/%s", f->home, rel);
    assert_int_equal(mg_sha256_file_hex(path, got), 0);
    assert_string_equal(got, asha);
    assert_int_equal(s_transfer_files(f), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/outputs", f->home);
    assert_int_equal(s_count_files(dir, 1), 2);
    free(a);
    s_fake_stop(&w);
}

static void test_corrupt_chunk_not_recorded(void **state)
{
    mg_test_farm_t *f = *state;
    s_start_coordinator(f, "1500");
    s_fake_t w;
    s_fake_start(&w, f);
    s_submit(f, s_small_job);
    int64_t rid;
    char tok[40];
    s_fake_lease(&w, &rid, tok);
    enum { A = 2 << 20, B = 500, MIB = 1 << 20 };
    unsigned char *a = malloc(A), b[B];
    s_fill(a, A, 3);
    s_fill(b, B, 4);
    char asha[65], bsha[65];
    mg_sha256_hex(a, A, asha);
    mg_sha256_hex(b, B, bsha);
    s_fake_chunk(&w, rid, tok, 0, 0, A, 1, a, MIB);
    s_expect_chunk_ack(&w, MIB, 0);
    a[MIB + 12345] ^= 0x40; /* one bit flipped in transit */
    s_fake_chunk(&w, rid, tok, 0, MIB, A, 2, a + MIB, MIB);
    s_expect_chunk_ack(&w, A, 0);
    s_fake_chunk(&w, rid, tok, 1, 0, B, 3, b, B);
    s_expect_chunk_ack(&w, B, 0);
    s_fake_result(&w, rid, tok, A, asha, B, bsha);
    s_expect_ack(&w, 0, "sha256");
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'done'"), 0);
    assert_int_equal(
        mg_test_farm_sql_int(f, "SELECT count(*) FROM attempts WHERE outcome = 'failed' AND error LIKE '%%sha256%%'"),
        1);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM outputs"), 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/outputs", f->home);
    assert_int_equal(s_count_files(dir, 1), 0); /* nothing under a final name */
    assert_int_equal(s_transfer_files(f), 0);
    free(a);
    s_fake_stop(&w);
}

/* ---- the worker's upload alone, against a ROUTER in this process ---------------------------- */

typedef struct {
    void *ctx, *router, *dealer;
} s_pair_t;

static void s_pair_open(s_pair_t *p)
{
    p->ctx = zmq_ctx_new();
    p->router = zmq_socket(p->ctx, ZMQ_ROUTER);
    p->dealer = zmq_socket(p->ctx, ZMQ_DEALER);
    assert_int_equal(zmq_bind(p->router, "inproc://upload-test"), 0);
    assert_int_equal(zmq_connect(p->dealer, "inproc://upload-test"), 0);
}

static void s_pair_close(s_pair_t *p)
{
    int linger = 0;
    zmq_setsockopt(p->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(p->router);
    zmq_close(p->dealer);
    zmq_ctx_term(p->ctx);
}

/* What the upload sent, one message: "CHUNK" (file, offset, len, seq) or "RESULT" (files, seq).
 * Returns 0 when nothing is waiting. */
static int s_sent(s_pair_t *p, mg_msg_t *m, char *cmd, int64_t *file, uint64_t *offset, size_t *len, int64_t *seq)
{
    if (mg_msg_recv(m, p->router, ZMQ_DONTWAIT) != 0) return 0;
    mg_msg_str(m, 2, cmd, 16);
    mg_kv_t kv;
    mg_kv_init(&kv);
    assert_int_equal(mg_msg_kv(m, 3, &kv), 0);
    *file = mg_kv_get_i64(&kv, strcmp(cmd, "RESULT") == 0 ? "files" : "file", -1);
    *offset = mg_kv_get_u64(&kv, "offset", 0);
    *seq = mg_kv_get_i64(&kv, "seq", -1);
    *len = strcmp(cmd, "CHUNK") == 0 ? m->size[4] : 0;
    mg_kv_clear(&kv);
    return 1;
}

static void s_expect_sent(s_pair_t *p, const char *want_cmd, int64_t want_file, uint64_t want_offset,
                          size_t want_len, int64_t *seq)
{
    mg_msg_t m;
    mg_msg_init(&m);
    char cmd[16];
    int64_t file, sq;
    uint64_t offset;
    size_t len;
    for (int t = 0; t < 100 && !s_sent(p, &m, cmd, &file, &offset, &len, &sq); t++)
        mg_test_sleep_ms(2);
    assert_string_equal(cmd, want_cmd);
    assert_int_equal(file, want_file);
    if (strcmp(want_cmd, "CHUNK") == 0) {
        assert_int_equal(offset, want_offset);
        assert_int_equal(len, want_len);
    }
    if (seq) *seq = sq;
    mg_msg_clear(&m);
}

static void s_expect_nothing_sent(s_pair_t *p)
{
    mg_msg_t m;
    mg_msg_init(&m);
    char cmd[16] = "";
    int64_t file, sq;
    uint64_t offset;
    size_t len;
    mg_test_sleep_ms(5);
    if (s_sent(p, &m, cmd, &file, &offset, &len, &sq)) {
        fprintf(stderr, "unexpected %s file %lld offset %llu\n", cmd, (long long)file, (unsigned long long)offset);
        fail();
    }
    mg_msg_clear(&m);
}

static void s_ack_upload(mg_upload_t *up, int file, uint64_t have, int64_t seq, int resend, int64_t now)
{
    mg_kv_t kv;
    mg_kv_init(&kv);
    mg_kv_set_i64(&kv, "file", file);
    mg_kv_set_u64(&kv, "have", have);
    mg_kv_set_i64(&kv, "seq", seq);
    if (resend) mg_kv_set_i64(&kv, "resend", 1);
    mg_upload_on_chunk_ack(up, &kv, now);
    mg_kv_clear(&kv);
}

static void test_upload_window_and_go_back(void **state)
{
    (void)state;
    enum { KIB = 64 << 10, A = 3 * KIB, B = 100 };
    mg_pipeline_result_t res;
    memset(&res, 0, sizeof res);
    res.n_files = 2;
    for (int i = 0; i < 2; i++) {
        mg_encoded_t *f = &res.files[i];
        f->len = i == 0 ? A : B;
        f->data = malloc(f->len);
        s_fill(f->data, f->len, (unsigned)i);
        mg_sha256_hex(f->data, f->len, f->sha256);
        f->format = MG_FORMAT_FLAC;
        f->kind = "mix";
    }
    res.files[1].format = MG_FORMAT_MP3;
    mg_kv_t meta;
    mg_kv_init(&meta);
    mg_kv_set_i64(&meta, "render_id", 5);
    mg_upload_opts_t o = {.chunk_bytes = KIB, .window = 2, .resend_ms = 1000};
    mg_upload_t *up = mg_upload_new(5, "t0k3n", &meta, &res, &o);
    assert_non_null(up);
    mg_pipeline_result_free(&res);
    assert_int_equal(mg_upload_total(up), A + B);
    s_pair_t p;
    s_pair_open(&p);
    int64_t seq0, seq1, seq2, seq3, now = 1000;

    /* The window: two chunks, then nothing until an acknowledgement. */
    assert_int_equal(mg_upload_pump(up, p.dealer, now), 2);
    s_expect_sent(&p, "CHUNK", 0, 0, KIB, &seq0);
    s_expect_sent(&p, "CHUNK", 0, KIB, KIB, &seq1);
    assert_int_equal(mg_upload_pump(up, p.dealer, now), 0);
    s_ack_upload(up, 0, KIB, seq0, 0, now);
    assert_int_equal(mg_upload_pump(up, p.dealer, now), 1);
    s_expect_sent(&p, "CHUNK", 0, 2 * KIB, A - 2 * KIB, &seq2);

    /* The coordinator lost everything (restarted): its first resend=1 counts, the answers to
     * the other chunks that were in flight do not. */
    s_ack_upload(up, 0, 0, seq1, 1, now);
    s_ack_upload(up, 0, 0, seq2, 1, now);
    assert_int_equal(mg_upload_acked(up), 0);
    assert_int_equal(mg_upload_pump(up, p.dealer, now), 2);
    s_expect_sent(&p, "CHUNK", 0, 0, KIB, &seq3);
    assert_true(seq3 > seq2);
    s_expect_sent(&p, "CHUNK", 0, KIB, KIB, NULL);
    s_ack_upload(up, 0, 2 * KIB, seq3 + 1, 0, now);

    /* The window counts bytes: a small last chunk fits beside a whole one. No answer for
     * resend_ms: go back to what was acknowledged. */
    assert_int_equal(mg_upload_pump(up, p.dealer, now), 2);
    s_expect_sent(&p, "CHUNK", 0, 2 * KIB, A - 2 * KIB, NULL);
    s_expect_sent(&p, "CHUNK", 1, 0, B, NULL);
    assert_int_equal(mg_upload_pump(up, p.dealer, now + 999), 0);
    assert_int_equal(mg_upload_pump(up, p.dealer, now + 1000), 2);
    s_expect_sent(&p, "CHUNK", 0, 2 * KIB, A - 2 * KIB, NULL);
    s_expect_sent(&p, "CHUNK", 1, 0, B, NULL);
    now += 1000;

    /* Everything acknowledged: the RESULT, once, then again after resend_ms or a reconnect;
     * a resend=1 answering the RESULT reopens that file. */
    s_ack_upload(up, 0, A, 100, 0, now);
    s_ack_upload(up, 1, B, 101, 0, now);
    assert_int_equal(mg_upload_acked(up), A + B);
    assert_int_equal(mg_upload_pump(up, p.dealer, now), 1);
    int64_t rseq;
    s_expect_sent(&p, "RESULT", 2, 0, 0, &rseq);
    assert_int_equal(mg_upload_pump(up, p.dealer, now + 10), 0);
    s_expect_nothing_sent(&p);
    mg_upload_reconnected(up);
    assert_int_equal(mg_upload_pump(up, p.dealer, now + 20), 1);
    s_expect_sent(&p, "RESULT", 2, 0, 0, NULL);
    s_ack_upload(up, 1, 0, rseq, 1, now + 30);
    assert_int_equal(mg_upload_pump(up, p.dealer, now + 30), 1);
    s_expect_sent(&p, "CHUNK", 1, 0, B, NULL);
    s_ack_upload(up, 1, B, rseq + 1, 0, now + 40);
    assert_int_equal(mg_upload_pump(up, p.dealer, now + 40), 1);
    s_expect_sent(&p, "RESULT", 2, 0, 0, NULL);
    assert_int_equal(mg_upload_pump(up, p.dealer, now + 1040), 1);
    s_expect_sent(&p, "RESULT", 2, 0, 0, NULL);

    mg_upload_destroy(&up);
    assert_null(up);
    s_pair_close(&p);
}

int main(void)
{
    mg_log_init("test_transfer");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_big_result_chunked, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_coordinator_restart_mid_transfer, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_stale_lease_chunks_refused, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_chunk_not_recorded, s_setup, mg_test_farm_teardown),
        cmocka_unit_test(test_upload_window_and_go_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
