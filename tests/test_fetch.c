/* test_fetch.c - `mgctl fetch` end to end: a real mg-coordinator and test worker
 * (build/tests/mg-worker-test) render two jobs once for the whole group, then each test runs
 * the real bin/mgctl against them into its own folder, or speaks FILES / FETCH directly on
 * a DEALER socket for the coordinator's refusals. A test that damages the coordinator's
 * files or rows puts them back before it returns, so the tests share one farm.
 *
 * Job 1 "ftest": cue a (25 s, 48 kHz stereo: its WAV files are 4.8 MB, more than one FETCH
 * range) and cue b x 2, flac + wav, mix + stems: 12 files. Job 2 "ftest2": cue ok, and cue
 * bad whose render always fails, so it has files of one render only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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

#include "common/kv.h"
#include "common/protocol.h"
#include "common/util.h"
#include "tests/testlib.h"

#define S_OUT 65536

static const char *s_job1 =
    "campaign: ftest\n"
    "output:\n  formats: [flac, wav]\n  sample_rate: 48000\n  channels: 2\n  deliver: [mix, stems]\n"
    "cues:\n"
    "  - name: a\n    prompt: \"calm piano\"\n    duration: 25\n    variations: 1\n"
    "  - name: b\n    prompt: \"happy ukulele\"\n    duration: 2\n    variations: 2\n";

static const char *s_job2 =
    "campaign: ftest2\n"
    "output:\n  formats: [flac]\n  sample_rate: 16000\n  channels: 1\n"
    "cues:\n"
    "  - name: ok\n    prompt: \"warm pads\"\n    duration: 1\n    variations: 1\n"
    "  - name: bad\n    prompt: \"tense strings\"\n    duration: 1\n    variations: 1\n";

/* ---- the farm ---------------------------------------------------------------------------- */

static void s_write(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static int s_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* A fresh, not yet existing destination folder under the farm's home. */
static void s_new_dest(const mg_test_farm_t *f, char *dest, size_t len)
{
    static int n;
    snprintf(dest, len, "%s/dest-%d", f->home, n++);
}

static int s_group_setup(void **state)
{
    mg_test_farm_t *f = mg_test_farm_new("fetch");
    static const char *const cargs[] = {"--heartbeat-ms", "100", "--liveness", "3", "--max-attempts", "1", NULL};
    static const char *const wargs[] = {"--capacity", "2", "--heartbeat-ms", "100", "--name", "w0", NULL};
    static const char *const wenv[] = {"MG_TEST_FAIL_PERMANENT_CUE=bad", NULL};
    mg_test_farm_start_coordinator(f, cargs, NULL);
    mg_test_farm_start_worker(f, "worker", wargs, wenv);
    char path[512], out[S_OUT];
    mg_test_farm_write(f, "job1.yaml", s_job1);
    snprintf(path, sizeof path, "%s/job1.yaml", f->home);
    int rc = mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s' --wait --timeout 20000", path);
    if (rc != 0) {
        fprintf(stderr, "job 1: submit --wait exited %d: %s%s (logs in %s)\n", rc, out, f->err, f->home);
        return -1;
    }
    mg_test_farm_write(f, "job2.yaml", s_job2);
    snprintf(path, sizeof path, "%s/job2.yaml", f->home);
    rc = mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s' --wait --timeout 20000", path);
    if (rc != 5) { /* cue bad fails: "finished with failures" */
        fprintf(stderr, "job 2: submit --wait exited %d, expected 5: %s%s (logs in %s)\n", rc, out, f->err, f->home);
        return -1;
    }
    *state = f;
    return 0;
}

/* ---- JSON, read with SQLite's json functions --------------------------------------------- */

/* json_extract(json, path) as text into buf ("" for null or missing). Returns buf. */
static const char *s_json(const char *json, const char *path, char *buf, size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT json_extract(?1, ?2)", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
    buf[0] = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    else if (sqlite3_errcode(db) != SQLITE_ROW && sqlite3_errcode(db) != SQLITE_DONE)
        fail_msg("not JSON (%s): %.300s", sqlite3_errmsg(db), json);
    sqlite3_finalize(st);
    mg_test_db_close(&db);
    return buf;
}

static int64_t s_json_i64(const char *json, const char *path)
{
    char buf[64];
    s_json(json, path, buf, sizeof buf);
    assert_true(buf[0] != 0);
    return strtoll(buf, NULL, 10);
}

/* The row of `mgctl fetch --json`'s output for file rel: its field as text. */
static const char *s_json_row(const char *json, const char *rel, const char *key, char *buf, size_t len)
{
    char path[256];
    for (int i = 0; i < 64; i++) {
        char file[256];
        snprintf(path, sizeof path, "$.rows[%d].file", i);
        if (!*s_json(json, path, file, sizeof file)) break;
        if (strcmp(file, rel) != 0) continue;
        snprintf(path, sizeof path, "$.rows[%d].%s", i, key);
        return s_json(json, path, buf, len);
    }
    fail_msg("no row for %s in %.300s", rel, json);
    return NULL;
}

/* ---- helpers on the fetched files -------------------------------------------------------- */

/* Every file of job 1 of the given kinds ("" all) is in dest, byte for byte the
 * coordinator's, and only those are. Returns how many were checked. */
static int s_assert_fetched(const mg_test_farm_t *f, const char *dest, const char *kind)
{
    sqlite3 *db = mg_test_farm_db(f);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT o.path, o.sha256, o.kind, j.output_dir FROM outputs o JOIN renders r ON r.id = "
                           "o.render_id JOIN jobs j ON j.id = r.job_id WHERE r.job_id = 1",
                           -1, &st, NULL),
        SQLITE_OK);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(st, 0);
        const char *out_dir = (const char *)sqlite3_column_text(st, 3);
        char src[1024], dst[1024], hex[65];
        snprintf(src, sizeof src, "%s/outputs/%s", f->home, path);
        snprintf(dst, sizeof dst, "%s/%s", dest, path + strlen(out_dir) + 1);
        int want = !*kind || strcmp(kind, (const char *)sqlite3_column_text(st, 2)) == 0;
        if (!want) {
            if (s_exists(dst)) fail_msg("%s was not asked for (--kind %s) but is there", dst, kind);
            continue;
        }
        size_t la = 0, lb = 0;
        char *a = mg_read_file(src, &la), *b = mg_read_file(dst, &lb);
        if (!b) fail_msg("%s is missing", dst);
        assert_non_null(a);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
        assert_int_equal(mg_sha256_file_hex(dst, hex), 0);
        assert_string_equal(hex, (const char *)sqlite3_column_text(st, 1));
        char part[1100];
        snprintf(part, sizeof part, "%s.part", dst);
        assert_false(s_exists(part));
        n++;
    }
    sqlite3_finalize(st);
    mg_test_db_close(&db);
    return n;
}

/* dest/manifest.json: one entry per file present, each with every field, each matching the
 * coordinator's outputs, renders and provenance rows. Returns the number of entries. */
static int s_assert_manifest(const mg_test_farm_t *f, const char *dest)
{
    char path[600];
    snprintf(path, sizeof path, "%s/manifest.json", dest);
    size_t len = 0;
    char *doc = mg_read_file(path, &len);
    assert_non_null(doc);
    char buf[256];
    assert_int_equal(s_json_i64(doc, "$.job_id"), 1);
    assert_string_equal(s_json(doc, "$.campaign", buf, sizeof buf), "ftest");
    /* Every entry joined to its outputs row by file name; a field missing from an entry is
     * SQL NULL from json_type (a JSON null is the text 'null'). */
    sqlite3 *db = mg_test_farm_db(f);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db,
        "SELECT json_extract(m.value, '$.file'), "
        "  (SELECT count(*) FROM json_each(m.value)), "
        "  json_type(m.value, '$.kind') IS NOT NULL AND json_type(m.value, '$.part') IS NOT NULL AND "
        "  json_type(m.value, '$.format') IS NOT NULL AND json_type(m.value, '$.sha256') = 'text' AND "
        "  json_type(m.value, '$.bytes') = 'integer' AND json_type(m.value, '$.duration_s') IN ('real', 'integer') AND "
        "  json_type(m.value, '$.sample_rate') = 'integer' AND json_type(m.value, '$.channels') = 'integer' AND "
        "  json_type(m.value, '$.integrated_lufs') IS NOT NULL AND json_type(m.value, '$.render_id') = 'integer' AND "
        "  json_type(m.value, '$.seed') = 'text' AND json_type(m.value, '$.cue') = 'text' AND "
        "  json_type(m.value, '$.variation') = 'integer', "
        "  o.id IS NOT NULL, "
        "  o.sha256 = json_extract(m.value, '$.sha256') AND o.kind = json_extract(m.value, '$.kind') AND "
        "  o.part = json_extract(m.value, '$.part') AND o.format = json_extract(m.value, '$.format') AND "
        "  o.bytes = json_extract(m.value, '$.bytes') AND o.render_id = json_extract(m.value, '$.render_id') AND "
        "  abs(o.duration_s - json_extract(m.value, '$.duration_s')) < 1e-9 AND "
        "  r.seed = json_extract(m.value, '$.seed') AND r.variation + 1 = json_extract(m.value, '$.variation') AND "
        "  c.name = json_extract(m.value, '$.cue'), "
        "  CASE o.kind WHEN 'mix' THEN abs(json_extract(m.value, '$.integrated_lufs') - "
        "    json_extract(p.record_json, '$.integrated_lufs')) < 1e-6 "
        "  ELSE json_type(m.value, '$.integrated_lufs') = 'null' END "
        "FROM json_each(?1, '$.files') m "
        "LEFT JOIN outputs o ON o.path = 'ftest/' || json_extract(m.value, '$.file') "
        "LEFT JOIN renders r ON r.id = o.render_id LEFT JOIN cues c ON c.id = r.cue_id "
        "LEFT JOIN provenance p ON p.render_id = o.render_id",
        -1, &st, NULL);
    if (rc != SQLITE_OK) fail_msg("%s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, doc, -1, SQLITE_STATIC);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *file = (const char *)sqlite3_column_text(st, 0);
        if (sqlite3_column_int(st, 1) != 14) fail_msg("%s: %d fields, expected 14", file, sqlite3_column_int(st, 1));
        if (!sqlite3_column_int(st, 2)) fail_msg("%s: a field is missing or of the wrong type", file);
        if (!sqlite3_column_int(st, 3)) fail_msg("%s: no such output on the coordinator", file);
        if (!sqlite3_column_int(st, 4)) fail_msg("%s: differs from the coordinator's rows", file);
        if (!sqlite3_column_int(st, 5)) fail_msg("%s: wrong loudness", file);
        char local[800], hex[65];
        snprintf(local, sizeof local, "%s/%s", dest, file);
        assert_int_equal(mg_sha256_file_hex(local, hex), 0);
        n++;
    }
    sqlite3_finalize(st);
    mg_test_db_close(&db);
    free(doc);
    return n;
}

/* ---- raw FILES / FETCH ------------------------------------------------------------------- */

/* Sends [MGC01][cmd][args] and waits for the reply into m. Returns 1 for OK, 0 for ERR (info
 * has code and message). */
static int s_request(const mg_test_farm_t *f, const char *cmd, const mg_kv_t *args, mg_msg_t *m, mg_kv_t *info)
{
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(mg_socket_setup(sock, 5000), 0);
    assert_int_equal(zmq_connect(sock, f->endpoint), 0);
    mg_msg_t req;
    mg_msg_init(&req);
    assert_int_equal(mg_msg_add_str(&req, MG_PROTO_CLIENT) | mg_msg_add_str(&req, cmd) | mg_msg_add_kv(&req, args), 0);
    assert_int_equal(mg_msg_send(&req, sock, 0), 0);
    mg_msg_clear(&req);
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&item, 1, 5000), 1);
    assert_int_equal(mg_msg_recv(m, sock, 0), 0);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    assert_true(m->n >= 3);
    assert_true(mg_msg_is(m, 0, MG_PROTO_CLIENT));
    assert_int_equal(mg_msg_kv(m, 2, info), 0);
    return mg_msg_is(m, 1, "OK");
}

/* FETCH of output id from offset; returns 1 OK / 0 ERR, with code and message copied out. */
static int s_fetch_raw(const mg_test_farm_t *f, int64_t id, int64_t offset, int64_t length, char *code, char *msg,
                       size_t msglen, size_t *payload) {
    mg_kv_t args, info;
    mg_kv_init(&args);
    mg_kv_init(&info);
    mg_kv_set_i64(&args, "output_id", id);
    mg_kv_set_i64(&args, "offset", offset);
    mg_kv_set_i64(&args, "length", length);
    mg_msg_t m;
    mg_msg_init(&m);
    int ok = s_request(f, "FETCH", &args, &m, &info);
    snprintf(code, 32, "%s", mg_kv_get_or(&info, "code", ""));
    snprintf(msg, msglen, "%s", mg_kv_get_or(&info, "message", ""));
    if (payload) *payload = ok && m.n == 4 ? m.size[3] : (size_t)-1;
    mg_msg_clear(&m);
    mg_kv_clear(&args);
    mg_kv_clear(&info);
    return ok;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    mg_test_farm_t *f = *state;
    char dest[512], out[S_OUT], buf[128];
    s_new_dest(f, dest, sizeof dest);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.files"), 12);
    assert_int_equal(s_json_i64(out, "$.fetched"), 12);
    assert_int_equal(s_json_i64(out, "$.failed"), 0);
    assert_int_equal(
        s_json_i64(out, "$.bytes"),
        mg_test_farm_sql_int(
            f, "SELECT sum(bytes) FROM outputs o JOIN renders r ON r.id = o.render_id WHERE r.job_id = 1"));
    assert_string_equal(s_json_row(out, "a/a-v01.wav", "status", buf, sizeof buf), "fetched");
    assert_true(mg_test_farm_sql_int(f, "SELECT bytes FROM outputs WHERE path = 'ftest/a/a-v01.wav'") >
                MG_FETCH_MAX_BYTES);
    assert_int_equal(s_assert_fetched(f, dest, ""), 12);
    assert_int_equal(s_assert_manifest(f, dest), 12);
    /* The file names keep the outputs' layout: <cue>/<cue>-vNN[.<stem>].<ext>. */
    char p[700];
    snprintf(p, sizeof p, "%s/b/b-v02.tone.flac", dest);
    assert_true(s_exists(p));
}

static void test_text_output_and_default_dest(void **state)
{
    mg_test_farm_t *f = *state;
    char dir[512], out[S_OUT], p[700];
    s_new_dest(f, dir, sizeof dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    /* job 2: its render of cue bad failed, so only cue ok's file comes */
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, dir, "fetch 2"), 0);
    assert_non_null(strstr(out, "fetched  ok/ok-v01.flac"));
    assert_non_null(strstr(out, "1 fetched"));
    assert_null(strstr(out, "bad"));
    snprintf(p, sizeof p, "%s/ftest2/ok/ok-v01.flac", dir);
    assert_true(s_exists(p));
    snprintf(p, sizeof p, "%s/ftest2/manifest.json", dir);
    assert_true(s_exists(p));
    snprintf(p, sizeof p, "%s/ftest2/bad", dir);
    assert_false(s_exists(p));
}

static void test_second_run_skips(void **state)
{
    mg_test_farm_t *f = *state;
    char dest[512], out[S_OUT];
    s_new_dest(f, dest, sizeof dest);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.fetched"), 12);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.fetched"), 0);
    assert_int_equal(s_json_i64(out, "$.skipped"), 12);
    assert_int_equal(s_json_i64(out, "$.bytes"), 0);
    assert_int_equal(s_assert_manifest(f, dest), 12);
    /* A local file that no longer matches is fetched again, not skipped. */
    char p[700];
    snprintf(p, sizeof p, "%s/b/b-v01.flac", dest);
    s_write(p, "edited", 6);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.fetched"), 1);
    assert_int_equal(s_json_i64(out, "$.skipped"), 11);
    assert_int_equal(s_assert_fetched(f, dest, ""), 12);
}

static void test_resume_from_part(void **state)
{
    mg_test_farm_t *f = *state;
    char dest[512], out[S_OUT], final[700], part[710], buf[64];
    s_new_dest(f, dest, sizeof dest);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s'", dest), 0);
    snprintf(final, sizeof final, "%s/a/a-v01.wav", dest);
    snprintf(part, sizeof part, "%s.part", final);
    size_t len = 0;
    char *whole = mg_read_file(final, &len);
    assert_non_null(whole);
    assert_true(len > MG_FETCH_MAX_BYTES);
    /* a transfer cut half way: the .part holds the first half, the final name nothing */
    size_t half = len / 2;
    s_write(part, whole, half);
    assert_int_equal(unlink(final), 0);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.fetched"), 1);
    assert_int_equal(s_json_i64(out, "$.skipped"), 11);
    assert_int_equal(s_json_i64(out, "$.bytes"), (int64_t)(len - half));
    assert_int_equal(s_json_i64(out, "$.resumed_bytes"), (int64_t)half);
    s_json_row(out, "a/a-v01.wav", "fetched_bytes", buf, sizeof buf);
    assert_int_equal(strtoll(buf, NULL, 10), (int64_t)(len - half));
    s_json_row(out, "a/a-v01.wav", "resumed_bytes", buf, sizeof buf);
    assert_int_equal(strtoll(buf, NULL, 10), (int64_t)half);
    assert_int_equal(s_assert_fetched(f, dest, ""), 12);

    /* A .part whose first bytes are damaged: the whole-file check fails, and the file is
     * fetched again from the start, once. */
    snprintf(part, sizeof part, "%s.part", final);
    whole[100] ^= 0x5a;
    s_write(part, whole, half);
    whole[100] ^= 0x5a;
    assert_int_equal(unlink(final), 0);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.fetched"), 1);
    assert_int_equal(s_json_i64(out, "$.bytes"), (int64_t)(len - half + len));
    assert_non_null(strstr(f->err, "from the start"));
    assert_int_equal(s_assert_fetched(f, dest, ""), 12);
    free(whole);
}

/* Runs fetch into a fresh folder with one coordinator file damaged by damage(), then puts
 * the file back. The damaged file must fail and be nowhere under its final name. */
static void s_check_damaged(mg_test_farm_t *f, const char *rel, int keep_size)
{
    char src[700], saved[760], dest[512], out[S_OUT], p[800], buf[64];
    snprintf(src, sizeof src, "%s/outputs/ftest/%s", f->home, rel);
    size_t len = 0;
    char *orig = mg_read_file(src, &len);
    assert_non_null(orig);
    char *bad = malloc(len + 16);
    memcpy(bad, orig, len);
    if (keep_size) bad[len / 2] ^= 0x01;
    else memcpy(bad + len, "trailing bytes!!", 16);
    snprintf(saved, sizeof saved, "%s.saved", src);
    assert_int_equal(rename(src, saved), 0);
    s_write(src, bad, keep_size ? len : len + 16);
    s_new_dest(f, dest, sizeof dest);
    int rc = mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --json", dest);
    assert_int_equal(rename(saved, src), 0); /* back before any assertion can end the test */
    assert_int_equal(rc, 1);
    assert_int_equal(s_json_i64(out, "$.failed"), 1);
    assert_int_equal(s_json_i64(out, "$.fetched"), 11);
    assert_string_equal(s_json_row(out, rel, "status", buf, sizeof buf), "failed");
    snprintf(p, sizeof p, "%s/%s", dest, rel);
    assert_false(s_exists(p));
    if (keep_size) {
        snprintf(p, sizeof p, "%s/%s.part", dest, rel);
        assert_false(s_exists(p)); /* a mismatching download is deleted */
        assert_non_null(strstr(f->err, "sha256"));
    } else {
        assert_non_null(strstr(f->err, "changed after mg wrote it"));
    }
    assert_int_equal(s_assert_manifest(f, dest), 11);
    free(orig);
    free(bad);
    /* with the coordinator's file whole again, the next run brings the missing one only */
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.fetched"), 1);
    assert_int_equal(s_assert_fetched(f, dest, ""), 12);
}

static void test_corrupt_on_coordinator(void **state)
{
    mg_test_farm_t *f = *state;
    s_check_damaged(f, "b/b-v01.flac", 1);  /* same size, other bytes: the sha256 check */
    s_check_damaged(f, "a/a-v01.wav", 1);   /* the same, over two FETCH ranges */
    s_check_damaged(f, "b/b-v02.wav", 0);   /* grown: the coordinator refuses to serve it */
}

static void test_kind_filter(void **state)
{
    mg_test_farm_t *f = *state;
    char dest[512], out[S_OUT];
    s_new_dest(f, dest, sizeof dest);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --kind stem --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.files"), 6);
    assert_int_equal(s_json_i64(out, "$.fetched"), 6);
    assert_int_equal(s_assert_fetched(f, dest, "stem"), 6);
    assert_int_equal(s_assert_manifest(f, dest), 6);
    /* then the mixes: the manifest lists both, the stems as kept */
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --kind mix --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.fetched"), 6);
    assert_int_equal(s_json_i64(out, "$.kept"), 6);
    assert_int_equal(s_assert_manifest(f, dest), 12);
    /* the job file's spelling, and a list */
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --kind stems,mix --json", dest),
                     0);
    assert_int_equal(s_json_i64(out, "$.skipped"), 12);
    /* no MIDI in this job: nothing to do, and that is not an error */
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --kind midi --json", dest), 0);
    assert_int_equal(s_json_i64(out, "$.files"), 0);
    assert_int_equal(s_assert_manifest(f, dest), 12);
}

static void test_usage_and_unknown_job(void **state)
{
    mg_test_farm_t *f = *state;
    char dest[512], out[S_OUT];
    s_new_dest(f, dest, sizeof dest);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --kind mixx", dest), 2);
    assert_non_null(strstr(f->err, "unknown kind 'mixx'"));
    assert_non_null(strstr(f->err, "did you mean 'mix'"));
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --kind mix,,stem", dest), 2);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --kind wav", dest), 2);
    assert_false(s_exists(dest));
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch"), 2);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch abc"), 2);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 99 --dest '%s' --json", dest), 1);
    assert_string_equal(out, ""); /* errors are not JSON */
    assert_non_null(strstr(f->err, "no job 99"));
    assert_non_null(strstr(f->err, "not_found"));
    assert_false(s_exists(dest));
    /* nobody listening: exit 3 */
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL,
                                        "fetch 1 --dest '%s' --endpoint tcp://127.0.0.1:1 --timeout 300", dest),
                     3);
}

static void test_protocol_refusals(void **state)
{
    mg_test_farm_t *f = *state;
    char code[32], msg[4096];
    size_t payload = 0;
    int64_t wav = mg_test_farm_sql_int(f, "SELECT id FROM outputs WHERE path = 'ftest/a/a-v01.wav'");
    int64_t bytes = mg_test_farm_sql_int(f, "SELECT bytes FROM outputs WHERE id = %lld", (long long)wav);
    assert_true(wav > 0);
    /* a range is capped at MG_FETCH_MAX_BYTES, and the last one is short */
    assert_int_equal(s_fetch_raw(f, wav, 0, 100LL * 1024 * 1024, code, msg, sizeof msg, &payload), 1);
    assert_int_equal(payload, MG_FETCH_MAX_BYTES);
    assert_int_equal(s_fetch_raw(f, wav, bytes - 10, 100, code, msg, sizeof msg, &payload), 1);
    assert_int_equal(payload, 10);
    assert_int_equal(s_fetch_raw(f, wav, bytes + 1, 100, code, msg, sizeof msg, &payload), 0);
    assert_string_equal(code, "bad_request");
    assert_int_equal(s_fetch_raw(f, wav, -1, 100, code, msg, sizeof msg, &payload), 0);
    assert_string_equal(code, "bad_request");
    assert_int_equal(s_fetch_raw(f, 99999, 0, 100, code, msg, sizeof msg, &payload), 0);
    assert_string_equal(code, "not_found");

    /* FILES: kinds filter, an unknown kind, an unknown job */
    mg_kv_t args, info;
    mg_kv_init(&args);
    mg_kv_init(&info);
    mg_msg_t m;
    mg_msg_init(&m);
    mg_kv_set(&args, "job_id", "1");
    mg_kv_set(&args, "kinds", "stem,midi");
    assert_int_equal(s_request(f, "FILES", &args, &m, &info), 1);
    assert_int_equal(m.n - 3, 6);
    assert_string_equal(mg_kv_get_or(&info, "campaign", ""), "ftest");
    mg_kv_set(&args, "kinds", "wav");
    assert_int_equal(s_request(f, "FILES", &args, &m, &info), 0);
    assert_string_equal(mg_kv_get_or(&info, "code", ""), "bad_request");
    mg_kv_set(&args, "job_id", "99");
    mg_kv_set(&args, "kinds", "");
    assert_int_equal(s_request(f, "FILES", &args, &m, &info), 0);
    assert_string_equal(mg_kv_get_or(&info, "code", ""), "not_found");

    /* Only done renders: render 3 marked failed drops its 4 files from FILES and FETCH. */
    int64_t r3 = mg_test_farm_sql_int(f, "SELECT id FROM outputs WHERE render_id = 3 LIMIT 1");
    mg_test_farm_sql_exec(f, "UPDATE renders SET state = 'failed' WHERE id = 3");
    mg_kv_set(&args, "job_id", "1");
    int ok = s_request(f, "FILES", &args, &m, &info);
    size_t rows = m.n - 3;
    int fetch_ok = s_fetch_raw(f, r3, 0, 100, code, msg, sizeof msg, &payload);
    mg_test_farm_sql_exec(f, "UPDATE renders SET state = 'done' WHERE id = 3");
    assert_int_equal(ok, 1);
    assert_int_equal(rows, 8);
    assert_int_equal(fetch_ok, 0);
    assert_string_equal(code, "not_found");
    mg_msg_clear(&m);
    mg_kv_clear(&args);
    mg_kv_clear(&info);
}

static void test_path_outside_outputs_refused(void **state)
{
    mg_test_farm_t *f = *state;
    char code[32], msg[4096], dest[512], out[S_OUT], buf[64];
    int64_t id = mg_test_farm_sql_int(f, "SELECT id FROM outputs WHERE path = 'ftest/b/b-v02.flac'");
    assert_true(id > 0);

    /* 1. a row whose recorded path climbs out of the outputs folder */
    mg_test_farm_sql_exec(f, "UPDATE outputs SET path = 'ftest/../../mg.db' WHERE id = %lld", (long long)id);
    int ok = s_fetch_raw(f, id, 0, 100, code, msg, sizeof msg, NULL);
    s_new_dest(f, dest, sizeof dest);
    int rc = mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --kind mix --json", dest);
    mg_test_farm_sql_exec(f, "UPDATE outputs SET path = 'ftest/b/b-v02.flac' WHERE id = %lld", (long long)id);
    assert_int_equal(ok, 0);
    assert_string_equal(code, "not_found");
    assert_non_null(strstr(msg, "not inside the outputs folder"));
    assert_int_equal(rc, 1); /* the client refuses the name '../../mg.db' too */
    assert_int_equal(s_json_i64(out, "$.failed"), 1);
    assert_string_equal(s_json_row(out, "../../mg.db", "status", buf, sizeof buf), "failed");
    assert_non_null(strstr(f->err, "not a safe relative file name"));
    char p[800];

    /* 2. the file replaced by a symlink to a file outside, of the same size */
    char src[700], saved[760], secret[600];
    snprintf(src, sizeof src, "%s/outputs/ftest/b/b-v02.flac", f->home);
    snprintf(saved, sizeof saved, "%s.saved", src);
    snprintf(secret, sizeof secret, "%s/secret.bin", f->home);
    size_t len = 0;
    char *orig = mg_read_file(src, &len);
    assert_non_null(orig);
    s_write(secret, orig, len); /* the same bytes even: only where it lies is wrong */
    free(orig);
    assert_int_equal(rename(src, saved), 0);
    assert_int_equal(symlink(secret, src), 0);
    ok = s_fetch_raw(f, id, 0, 100, code, msg, sizeof msg, NULL);
    s_new_dest(f, dest, sizeof dest);
    rc = mg_test_farm_mgctl(f, out, sizeof out, NULL, "fetch 1 --dest '%s' --kind mix --json", dest);
    assert_int_equal(unlink(src), 0);
    assert_int_equal(rename(saved, src), 0);
    assert_int_equal(ok, 0);
    assert_string_equal(code, "not_found");
    assert_non_null(strstr(msg, "outside the outputs folder"));
    assert_int_equal(rc, 1);
    assert_string_equal(s_json_row(out, "b/b-v02.flac", "status", buf, sizeof buf), "failed");
    snprintf(p, sizeof p, "%s/b/b-v02.flac", dest);
    assert_false(s_exists(p));
    /* and whole again, it is served */
    assert_int_equal(s_fetch_raw(f, id, 0, 100, code, msg, sizeof msg, NULL), 1);
}

int main(void)
{
    mg_log_init("test_fetch");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_text_output_and_default_dest),
        cmocka_unit_test(test_second_run_skips),
        cmocka_unit_test(test_resume_from_part),
        cmocka_unit_test(test_corrupt_on_coordinator),
        cmocka_unit_test(test_kind_filter),
        cmocka_unit_test(test_usage_and_unknown_job),
        cmocka_unit_test(test_protocol_refusals),
        cmocka_unit_test(test_path_outside_outputs_refused),
    };
    return cmocka_run_group_tests(tests, s_group_setup, mg_test_farm_teardown);
}
