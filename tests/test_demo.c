/* test_demo.c - `make demo` as a new user meets it: ops/demo.sh renders a small job with the
 * synth renderer (mix + stems + MIDI), stops the coordinator and worker it started, and
 * prints closing hints; every hint line must then work when pasted as is (the first starts
 * a coordinator again with ops/up.sh, the last stops it with ops/down.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testlib.h"

typedef struct {
    char home[128], endpoint[64], bin[256], job[256];
} s_demo_t;

static int s_ping(const s_demo_t *d)
{
    return mg_test_sh("%s/mgctl --endpoint %s --timeout 300 ping >/dev/null 2>&1", d->bin, d->endpoint);
}

static int s_setup(void **state)
{
    s_demo_t *d = calloc(1, sizeof *d);
    mg_test_tmpdir_make(d->home, sizeof d->home, "demo");
    snprintf(d->endpoint, sizeof d->endpoint, "tcp://127.0.0.1:%d", 20000 + (getpid() * 11) % 20000);
    snprintf(d->bin, sizeof d->bin, "%s", mg_test_bin());
    snprintf(d->job, sizeof d->job, "%s/job.yaml", d->home);
    mg_test_file_write(d->job, "campaign: demo-test\n"
                               "output:\n"
                               "  formats: [flac]\n"
                               "  deliver: [mix, stems, midi]\n"
                               "cues:\n"
                               "  - name: sting\n"
                               "    prompt: \"bright pop jingle\"\n"
                               "    emotions: [joyful]\n"
                               "    duration: 4\n");
    *state = d;
    return 0;
}

static int s_teardown(void **state)
{
    s_demo_t *d = *state;
    /* whatever a failed test left running */
    mg_test_sh("MG_HOME=%s sh ops/down.sh >/dev/null 2>&1", d->home);
    mg_test_tmpdir_remove(d->home);
    free(d);
    return 0;
}

static void test_demo_hints_work_after_it_stopped(void **state)
{
    s_demo_t *d = *state;
    char out[512];
    snprintf(out, sizeof out, "%s/demo.out", d->home);
    int rc = mg_test_sh("MG_HOME=%s MG_ENDPOINT=%s MG_RENDERER=synth MG_BIN=%s sh ops/demo.sh %s >%s 2>&1",
                        d->home, d->endpoint, d->bin, d->job, out);
    if (rc != 0) mg_test_sh("cat %s >&2", out);
    assert_int_equal(rc, 0);
    assert_int_not_equal(s_ping(d), 0); /* the demo stopped its coordinator */

    FILE *fp = fopen(out, "r");
    assert_non_null(fp);
    char line[2048], hints[8][2048];
    int in_hints = 0, n = 0, stems = 0, midi = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strstr(line, ".melody.flac") || strstr(line, ".bass.flac") || strstr(line, ".drums.flac")) stems++;
        if (strstr(line, "outputs/") && strstr(line, ".mid\n")) midi++;
        if (strncmp(line, "Try it yourself", 15) == 0) { in_hints = 1; continue; }
        if (in_hints && strncmp(line, "  ", 2) == 0 && n < 8) {
            line[strcspn(line, "\n")] = 0;
            snprintf(hints[n++], sizeof hints[0], "%s", line + 2);
        }
    }
    fclose(fp);
    assert_true(stems >= 1); /* the files list names the stems */
    assert_int_equal(midi, 1);
    assert_true(n >= 4);
    assert_non_null(strstr(hints[0], "ops/up.sh"));
    int verifies_midi = 0;
    for (int i = 0; i < n; i++) verifies_midi |= strstr(hints[i], "verify") && strstr(hints[i], ".mid");
    assert_true(verifies_midi);
    assert_non_null(strstr(hints[n - 1], "ops/down.sh"));
    for (int i = 0; i < n; i++) {
        rc = mg_test_sh("%s >>%s/hints.out 2>&1", hints[i], d->home);
        if (rc != 0) {
            fprintf(stderr, "hint '%s' exited %d:\n", hints[i], rc);
            mg_test_sh("cat %s/hints.out >&2", d->home);
        }
        assert_int_equal(rc, 0);
        if (i == 0) assert_int_equal(s_ping(d), 0); /* up.sh started one */
    }
    assert_int_not_equal(s_ping(d), 0); /* down.sh stopped it */
    char pid[256];
    snprintf(pid, sizeof pid, "%s/coordinator.pid", d->home);
    assert_int_not_equal(access(pid, F_OK), 0);
    /* the fetch hint brought the job's files with their manifest: mix, four stems and MIDI */
    char manifest[300];
    snprintf(manifest, sizeof manifest, "%s/fetched/manifest.json", d->home);
    assert_int_equal(access(manifest, R_OK), 0);
    assert_int_equal(mg_test_sh("test $(grep -o '\"kind\": *\"stem\"' '%s' | wc -l) -ge 3", manifest), 0);
    assert_int_equal(mg_test_sh("grep -q '\"kind\": *\"midi\"' '%s'", manifest), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_demo_hints_work_after_it_stopped, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
