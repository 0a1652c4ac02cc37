/* test_integration.c - the whole system on loopback: a real mg-coordinator, two or more
 * real workers (build/tests/mg-worker-test: the product worker plus the test renderer),
 * and real mgctl calls; faults injected with SIGKILL / SIGSTOP / SIGCONT / SIGTERM.
 * Checks read the coordinator's SQLite database directly (WAL allows a second reader).
 * Timings are short (heartbeat 100 ms x 3, lease 1.5 s) so the suite runs in seconds.
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
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/testlib.h"

/* worker-N with capacity and the renderer's MG_TEST_* knobs in env; the farm's index. */
static int s_start_worker(mg_test_farm_t *f, int capacity, const char *const *env)
{
    char cap[16], name[32];
    snprintf(cap, sizeof cap, "%d", capacity);
    snprintf(name, sizeof name, "worker-%d", f->n_workers);
    const char *args[] = {"--capacity", cap,  "--heartbeat-ms", "100", "--liveness", "3",
                          "--drain-s",  "10", "--name",         name,  NULL};
    return mg_test_farm_start_worker(f, name, args, env);
}

static void s_start_coordinator(mg_test_farm_t *f)
{
    static const char *const args[] = {"--heartbeat-ms", "100", "--liveness",        "3", "--lease-ms", "1500",
                                       "--max-attempts", "3",   "--blocklist-after", "3", NULL};
    mg_test_farm_start_coordinator(f, args, NULL);
}

static int s_setup(void **state)
{
    mg_test_farm_t *f = mg_test_farm_new("integration");
    f->log_level = "3";
    f->mgctl_err_in_out = 1;
    s_start_coordinator(f);
    *state = f;
    return 0;
}


static const char *s_job4 =
    "campaign: itest\n"
    "output:\n  formats: [flac, mp3]\n  sample_rate: 16000\n  channels: 1\n"
    "cues:\n"
    "  - name: a\n    prompt: \"calm piano\"\n    emotions: [calm]\n    duration: 2\n    variations: 2\n"
    "  - name: b\n    prompt: \"happy ukulele\"\n    emotions: [happy]\n    duration: 2\n    variations: 2\n";

/* Every render of job 1 has exactly one output per format and the chain is intact. */
static void s_assert_job_complete(mg_test_farm_t *f, int64_t job, int64_t renders, int64_t formats)
{
    assert_int_equal(
        mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE job_id = %lld AND state = 'done'", (long long)job),
        renders);
    assert_int_equal(mg_test_farm_sql_int(
                         f, "SELECT count(*) FROM outputs o JOIN renders r ON r.id = o.render_id WHERE r.job_id = %lld",
                         (long long)job),
                     renders * formats);
    assert_int_equal(mg_test_farm_sql_int(f,
                                          "SELECT count(*) FROM provenance p JOIN renders r ON r.id = p.render_id "
                                          "WHERE r.job_id = %lld",
                                          (long long)job),
                     renders);
    char out[4096];
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "audit verify"), 0);
    /* Files on disk are the ones recorded (no late overwrite). */
    sqlite3 *db = mg_test_farm_db(f);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT path, sha256 FROM outputs", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char path[1024], hex[65];
        snprintf(path, sizeof path, "%s/outputs/%s", f->home, (const char *)sqlite3_column_text(st, 0));
        assert_int_equal(mg_sha256_file_hex(path, hex), 0);
        assert_string_equal(hex, (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    mg_test_db_close(&db);
}

static void test_normal_job_two_workers(void **state)
{
    mg_test_farm_t *f = *state;
    const char *env[] = {"MG_TEST_RENDER_MS=100", NULL};
    s_start_worker(f, 2, env);
    s_start_worker(f, 2, env);
    /* Both registered before the job comes, or a slow start (sanitizers) leaves it all to one. */
    mg_test_farm_wait_sql(f, 2, 10000, "SELECT count(*) FROM workers WHERE state = 'ready'");
    mg_test_farm_write(f, "job.yaml", s_job4);
    char out[8192], path[512];
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s' --wait", path), 0);
    s_assert_job_complete(f, 1, 4, 2);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM jobs WHERE id = 1 AND state = 'done'"), 1);
    /* Both workers took part. */
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(DISTINCT worker) FROM attempts WHERE outcome = 'done'"), 2);
    /* mgctl verify knows an output, and spots a modified copy. */
    char file[700], copy[700];
    snprintf(file, sizeof file, "%s/outputs/itest/a/a-v01.flac", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "verify '%s'", file), 0);
    assert_non_null(strstr(out, "itest"));
    snprintf(copy, sizeof copy, "%s/altered.flac", f->home);
    size_t len = 0;
    char *bytes = mg_read_file(file, &len);
    assert_non_null(bytes);
    assert_true(len > 1000);
    bytes[len - 100] ^= 0x55; /* flip bits in the audio frames, keep the tags */
    assert_int_equal(mg_write_file_atomic(copy, bytes, len), 0);
    free(bytes);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "verify '%s'", copy), 8);
    mg_test_farm_write(f, "stranger.flac", "not audio at all");
    snprintf(copy, sizeof copy, "%s/stranger.flac", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "verify '%s'", copy), 9);
}

static void test_worker_sigkill_mid_render(void **state)
{
    mg_test_farm_t *f = *state;
    const char *slow[] = {"MG_TEST_RENDER_MS=3000", NULL};
    int a = s_start_worker(f, 2, slow);
    mg_test_farm_write(f, "job.yaml", s_job4);
    char path[512];
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, NULL, 0, NULL, "submit '%s'", path), 0);
    mg_test_farm_wait_sql(f, 2, 5000,
                          "SELECT count(*) FROM renders WHERE state = 'leased' AND lease_worker = 'worker-0'");
    kill(f->workers[a], SIGKILL);
    waitpid(f->workers[a], NULL, 0);
    f->workers[a] = 0;
    const char *fast[] = {"MG_TEST_RENDER_MS=50", NULL};
    s_start_worker(f, 2, fast);
    s_start_worker(f, 2, fast);
    mg_test_farm_wait_sql(f, 1, 15000, "SELECT count(*) FROM jobs WHERE id = 1 AND state = 'done'");
    s_assert_job_complete(f, 1, 4, 2);
    /* The killed worker's two attempts are recorded as lost (or expired). */
    assert_int_equal(
        mg_test_farm_sql_int(
            f, "SELECT count(*) FROM attempts WHERE worker = 'worker-0' AND outcome IN ('lost', 'expired')"),
        2);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM attempts WHERE outcome = 'done'"), 4);
}

static void test_worker_sigstop_late_result_rejected(void **state)
{
    mg_test_farm_t *f = *state;
    /* Under a second, so that the render sends no PROGRESS but the one due while worker-0 is
     * disconnected after its wake-up (a PROGRESS of the stale lease would get it cancelled before
     * it could deliver): this holds as long as the stop lasts under about a second. */
    const char *slow[] = {"MG_TEST_RENDER_MS=900", NULL};
    int a = s_start_worker(f, 1, slow);
    mg_test_farm_write(f, "job.yaml",
                       "campaign: stop\noutput:\n  formats: [flac]\n  sample_rate: 16000\n  channels: 1\n"
                       "cues:\n  - name: only\n    prompt: \"tense strings\"\n    duration: 1\n    variations: 1\n");
    char path[512];
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, NULL, 0, NULL, "submit '%s'", path), 0);
    mg_test_farm_wait_sql(f, 1, 5000,
                          "SELECT count(*) FROM renders WHERE state = 'leased' AND lease_worker = 'worker-0'");
    mg_test_farm_wait_log(f, "worker-0", "leased render 1 ", 5000);
    kill(f->workers[a], SIGSTOP);
    /* Past heartbeat x liveness: the coordinator declares worker-0 lost, worker-1 renders. */
    const char *fast[] = {"MG_TEST_RENDER_MS=50", NULL};
    s_start_worker(f, 1, fast);
    mg_test_farm_wait_sql(f, 1, 10000, "SELECT count(*) FROM jobs WHERE id = 1 AND state = 'done'");
    kill(f->workers[a], SIGCONT);
    /* worker-0 wakes up, finishes the stale render and sends it: rejected. */
    mg_test_farm_wait_sql(f, 1, 10000,
                          "SELECT count(*) FROM events WHERE kind = 'result_rejected' AND worker = 'worker-0'");
    s_assert_job_complete(f, 1, 1, 1);
    assert_int_equal(
        mg_test_farm_sql_int(f, "SELECT count(*) FROM attempts WHERE worker = 'worker-0' AND outcome = 'lost'"), 1);
    assert_int_equal(
        mg_test_farm_sql_int(f, "SELECT count(*) FROM attempts WHERE worker = 'worker-1' AND outcome = 'done'"), 1);
    /* The output row still belongs to worker-1's attempt. */
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM provenance WHERE worker = 'worker-1'"), 1);
}

static void test_coordinator_sigkill_restart(void **state)
{
    mg_test_farm_t *f = *state;
    const char *env[] = {"MG_TEST_RENDER_MS=400", NULL};
    s_start_worker(f, 2, env);
    s_start_worker(f, 2, env);
    mg_test_farm_write(f, "job.yaml",
                       "campaign: crash\noutput:\n  formats: [flac]\n  sample_rate: 16000\n  channels: 1\n"
                       "cues:\n  - name: c\n    prompt: \"warm pads\"\n    duration: 1\n    variations: 12\n");
    mg_test_farm_write(f, "job2.yaml",
                       "campaign: after\noutput:\n  formats: [wav]\n  sample_rate: 8000\n  channels: 1\n"
                       "cues:\n  - name: d\n    prompt: \"drums\"\n    duration: 1\n    variations: 3\n");
    char path[512], path2[512], out[4096];
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    snprintf(path2, sizeof path2, "%s/job2.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, NULL, 0, NULL, "submit '%s'", path), 0);
    mg_test_farm_wait_sql(f, 1, 10000, "SELECT count(*) > 1 FROM renders WHERE state = 'done'");
    /* An acknowledged submission right before the crash must survive it. */
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s'", path2), 0);
    kill(f->coordinator, SIGKILL);
    waitpid(f->coordinator, NULL, 0);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM jobs"), 2);
    mg_test_sleep_ms(300);
    s_start_coordinator(f);
    mg_test_farm_wait_sql(f, 2, 20000, "SELECT count(*) FROM jobs WHERE state = 'done'");
    s_assert_job_complete(f, 1, 12, 1);
    s_assert_job_complete(f, 2, 3, 1);
}

static void test_always_failing_render(void **state)
{
    mg_test_farm_t *f = *state;
    const char *env[] = {"MG_TEST_RENDER_MS=20", "MG_TEST_FAIL_CUE=bad", NULL};
    s_start_worker(f, 2, env);
    s_start_worker(f, 2, env);
    mg_test_farm_write(f, "job.yaml",
                       "campaign: fails\noutput:\n  formats: [flac]\n  sample_rate: 16000\n  channels: 1\n"
                       "cues:\n  - name: bad\n    prompt: \"broken\"\n    duration: 1\n    variations: 1\n"
                       "  - name: good\n    prompt: \"fine\"\n    duration: 1\n    variations: 3\n");
    char path[512], out[8192];
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s' --wait", path), 5);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM jobs WHERE id = 1 AND state = 'failed'"), 1);
    assert_int_equal(
        mg_test_farm_sql_int(f, "SELECT attempts FROM renders r JOIN cues c ON c.id = r.cue_id WHERE c.name = 'bad' "
                                "AND r.state = 'failed' AND r.last_error LIKE '%%always fails%%'"),
        3);
    assert_int_equal(
        mg_test_farm_sql_int(f, "SELECT count(*) FROM renders r JOIN cues c ON c.id = r.cue_id WHERE c.name = 'good' "
                                "AND r.state = 'done'"),
        3);
    assert_int_equal(
        mg_test_farm_sql_int(f, "SELECT count(*) FROM audit_failures WHERE cue = 'bad' AND outcome = 'failed'"), 3);
}

static void test_bad_worker_blocklisted(void **state)
{
    mg_test_farm_t *f = *state;
    /* worker-0 fails every render of cue x; worker-1 is healthy and slower to start. */
    const char *bad[] = {"MG_TEST_RENDER_MS=10", "MG_TEST_FAIL_CUE=x", NULL};
    s_start_worker(f, 1, bad);
    mg_test_farm_write(f, "job.yaml",
                       "campaign: block\noutput:\n  formats: [flac]\n  sample_rate: 16000\n  channels: 1\n"
                       "cues:\n  - name: x\n    prompt: \"p\"\n    duration: 1\n    variations: 4\n");
    char path[512];
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, NULL, 0, NULL, "submit '%s'", path), 0);
    mg_test_farm_wait_sql(f, 1, 10000,
                          "SELECT count(*) FROM worker_job_failures WHERE worker = 'worker-0' AND blocked = 1");
    const char *good[] = {"MG_TEST_RENDER_MS=10", NULL};
    s_start_worker(f, 1, good);
    mg_test_farm_wait_sql(f, 1, 15000, "SELECT count(*) FROM jobs WHERE id = 1 AND state IN ('done', 'failed')");
    /* The bad node failed some renders, but none of the job's renders failed for good
     * unless it alone used up all their attempts before the blocklist. */
    assert_int_equal(
        mg_test_farm_sql_int(f, "SELECT count(*) FROM attempts WHERE worker = 'worker-0' AND outcome = 'failed'"), 3);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'done'"), 4);
    assert_int_equal(
        mg_test_farm_sql_int(f, "SELECT count(*) FROM attempts WHERE worker = 'worker-0' AND attempt_no > 0 AND "
                                "leased_ms > (SELECT min(at_ms) FROM events WHERE kind = 'worker_blocklisted')"),
        0);
}

static void test_duplicate_submission(void **state)
{
    mg_test_farm_t *f = *state;
    mg_test_farm_write(f, "job.yaml", s_job4);
    char path[512], out[4096];
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s'", path), 0);
    /* Same content, other comments and layout: same canonical form, same job. */
    char *again = malloc(strlen(s_job4) + 64);
    sprintf(again, "# resubmitted\n%s\n\n", s_job4);
    mg_test_farm_write(f, "job-again.yaml", again);
    free(again);
    snprintf(path, sizeof path, "%s/job-again.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s' --json", path), 0);
    assert_non_null(strstr(out, "\"duplicate\": \"1\""));
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM jobs"), 1);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders"), 4);
    /* Same explicit key, different content: refused, nothing stored. */
    mg_test_farm_write(
        f, "k1.yaml",
        "campaign: k\nidempotency_key: fixed-key\ncues:\n  - name: a\n    prompt: one\n    duration: 1\n");
    mg_test_farm_write(
        f, "k2.yaml",
        "campaign: k\nidempotency_key: fixed-key\ncues:\n  - name: a\n    prompt: two\n    duration: 1\n");
    snprintf(path, sizeof path, "%s/k1.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s'", path), 0);
    snprintf(path, sizeof path, "%s/k2.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s'", path), 1);
    assert_non_null(strstr(out, "fixed-key"));
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM jobs"), 2);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM cues WHERE prompt = 'two'"), 0);
}

static void test_bad_job_files(void **state)
{
    mg_test_farm_t *f = *state;
    const char *cases[][2] = {
        {"campaign: x\ncues:\n  - name: a\n    prompt: p\n    tempoo: 120\n", ":5:5: unknown key 'tempoo'"},
        {"campaign: x\ncues:\n  - name: a\n    prompt: \"\"\n", ":4:13:"},
        {"campaign: x\ncues:\n  - name: a\n    prompt: p\n    emotions: [hapy]\n", ":5:16:"},
        {"campaign: x\ncues:\n  - name: a\n    prompt: p\n    duration: abc\n", ":5:15:"},
        {"campaign: x\noutput:\n  formats: [ogg]\ncues:\n  - name: a\n    prompt: p\n", ":3:13:"},
        {"campaign: x\ncues:\n  - name: a\n    prompt: p\n  - name: a\n    prompt: q\n", ":5:11:"},
        {"campaign: [unclosed\n", ":"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32], path[512], out[4096];
        snprintf(name, sizeof name, "bad%zu.yaml", i);
        mg_test_farm_write(f, name, cases[i][0]);
        snprintf(path, sizeof path, "%s/%s", f->home, name);
        int rc = mg_test_farm_mgctl(f, out, sizeof out, NULL, "submit '%s'", path);
        if (rc != 4 || !strstr(out, cases[i][1]) || !strstr(out, name)) {
            fprintf(stderr, "case %zu: exit %d, output:\n%s\n(expected exit 4 and '%s')\n", i, rc, out, cases[i][1]);
            fail();
        }
    }
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM jobs"), 0);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders"), 0);
}

static void test_cancel_and_retry(void **state)
{
    mg_test_farm_t *f = *state;
    const char *slow[] = {"MG_TEST_RENDER_MS=2000", NULL};
    s_start_worker(f, 2, slow);
    mg_test_farm_write(f, "job.yaml", s_job4);
    char path[512], out[4096];
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, NULL, 0, NULL, "submit '%s'", path), 0);
    mg_test_farm_wait_sql(f, 2, 5000, "SELECT count(*) FROM renders WHERE state = 'leased'");
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "cancel 1"), 0);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'cancelled'"), 4);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM jobs WHERE state = 'cancelled'"), 1);
    mg_test_sleep_ms(2500); /* the workers drop their renders; nothing is written */
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM outputs"), 0);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'leased'"), 0);
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "retry 1"), 0);
    mg_test_farm_wait_sql(f, 1, 15000, "SELECT count(*) FROM jobs WHERE id = 1 AND state = 'done'");
    s_assert_job_complete(f, 1, 4, 2);
}

static void test_worker_sigterm_drains(void **state)
{
    mg_test_farm_t *f = *state;
    const char *env[] = {"MG_TEST_RENDER_MS=800", NULL};
    int a = s_start_worker(f, 1, env);
    mg_test_farm_write(f, "job.yaml",
                       "campaign: drain\noutput:\n  formats: [flac]\n  sample_rate: 16000\n  channels: 1\n"
                       "cues:\n  - name: c\n    prompt: p\n    duration: 1\n    variations: 1\n");
    char path[512];
    snprintf(path, sizeof path, "%s/job.yaml", f->home);
    assert_int_equal(mg_test_farm_mgctl(f, NULL, 0, NULL, "submit '%s'", path), 0);
    mg_test_farm_wait_sql(f, 1, 5000, "SELECT count(*) FROM renders WHERE state = 'leased'");
    mg_test_farm_wait_log(f, "worker-0", "leased render 1 ", 5000);
    kill(f->workers[a], SIGTERM);
    int st = 0;
    assert_int_equal(waitpid(f->workers[a], &st, 0), f->workers[a]);
    f->workers[a] = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* It finished the render it had before leaving. */
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'done'"), 1);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM workers WHERE name = 'worker-0' AND state = 'gone'"),
                     1);
}

int main(void)
{
    mg_log_init("test_integration");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_normal_job_two_workers, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_worker_sigkill_mid_render, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_worker_sigstop_late_result_rejected, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_coordinator_sigkill_restart, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_always_failing_render, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_bad_worker_blocklisted, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_submission, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_bad_job_files, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_retry, s_setup, mg_test_farm_teardown),
        cmocka_unit_test_setup_teardown(test_worker_sigterm_drains, s_setup, mg_test_farm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
