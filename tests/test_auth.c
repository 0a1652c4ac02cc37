/* test_auth.c - CURVE and the ZAP allow-list end to end: a real bin/mg-coordinator with keys
 * in $MG_HOME/keys/clients/, real mgctl calls and test workers (mg-worker-test), each with
 * its own key. Checks that an unknown or absent key gets no answer at all, that every role
 * is refused where it must be and served where it may, that revoking a worker's key cuts it
 * off within ~1 s and returns its lease to the queue, and protected mode (no keys: loopback
 * only). docs/security.md describes what is tested here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/testlib.h"

static const char *s_job =
    "campaign: authtest\n"
    "output:\n  formats: [flac]\n  sample_rate: 16000\n  channels: 1\n"
    "cues:\n"
    "  - name: a\n    prompt: \"calm piano\"\n    emotions: [calm]\n    duration: 1\n    variations: 1\n";


/* `mgctl keys add NAME --role ROLE --out HOME` on the farm's MG_HOME. */
static void s_key(mg_test_farm_t *f, const char *name, const char *role)
{
    char out[2048];
    int st = mg_test_farm_mgctl(f, out, sizeof out, NULL, "keys add %s --role %s --out '%s'", name, role, f->home);
    if (st != 0) fail_msg("keys add %s: exit %d: %s", name, st, f->err);
}

/* mgctl as key NAME ("" : no key) with the arguments args; output and stderr in out. */
static int s_as(mg_test_farm_t *f, const char *name, char *out, size_t len, const char *args)
{
    if (!*name) return mg_test_farm_mgctl(f, out, len, NULL, "--timeout 800 %s", args);
    return mg_test_farm_mgctl(f, out, len, NULL, "--timeout 2000 --curve-key '%s/%s.key' --coordinator-key '%s/keys/coordinator.pub' %s",
                              f->home, name, f->home, args);
}

static int s_setup(void **state)
{
    mg_test_farm_t *f = mg_test_farm_new("auth");
    f->log_level = "3";
    f->mgctl_err_in_out = 1;
    s_key(f, "rd", "reader");
    s_key(f, "sub", "submitter");
    s_key(f, "adm", "admin");
    s_key(f, "w1", "worker");
    s_key(f, "w2", "worker");
    static const char *const args[] = {"--heartbeat-ms", "100", "--liveness", "3", "--lease-ms", "5000", NULL};
    mg_test_farm_start_coordinator(f, args, NULL);
    mg_test_farm_wait_log(f, "coordinator", "CURVE, keys in the allow-list only", 5000);
    mg_test_farm_write(f, "job.yaml", s_job);
    *state = f;
    return 0;
}

/* A peer without a key, and one whose key is not in the allow-list, get no answer: the
 * handshake never completes, so not even an ERR comes back. */
static void test_unknown_peers_get_nothing(void **state)
{
    mg_test_farm_t *f = *state;
    char out[8192];
    int st = s_as(f, "", out, sizeof out, "ping");
    assert_int_equal(st, 3);
    assert_non_null(strstr(out, "no answer"));
    /* A key made elsewhere (another MG_HOME), so not in this allow-list. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "MG_HOME='%s/other' '%s/mgctl' keys add stranger --role admin --out '%s' >/dev/null",
             f->home, f->bin, f->home);
    assert_int_equal(mg_test_sh("%s", cmd), 0);
    st = s_as(f, "stranger", out, sizeof out, "ping");
    assert_int_equal(st, 3);
    mg_test_farm_wait_log(f, "coordinator", "key not in the allow-list", 2000);
    /* The known key is served by the same coordinator. */
    assert_int_equal(s_as(f, "rd", out, sizeof out, "ping"), 0);
}

static void test_roles(void **state)
{
    mg_test_farm_t *f = *state;
    char out[16384];
    /* reader: no SUBMIT, naming the role that may; but status, list, audit. */
    assert_int_equal(s_as(f, "rd", out, sizeof out, "submit job.yaml"), 1);
    assert_non_null(strstr(out, "forbidden"));
    assert_non_null(strstr(out, "needs role submitter"));
    assert_int_equal(s_as(f, "rd", out, sizeof out, "schedule list"), 1);
    assert_non_null(strstr(out, "forbidden"));
    /* submitter: SUBMIT and STATUS, not WORKERS nor AUDIT. */
    assert_int_equal(s_as(f, "sub", out, sizeof out, "submit job.yaml"), 0);
    assert_int_equal(s_as(f, "sub", out, sizeof out, "status 1"), 0);
    assert_int_equal(s_as(f, "sub", out, sizeof out, "list"), 0);
    assert_int_equal(s_as(f, "sub", out, sizeof out, "workers"), 1);
    assert_non_null(strstr(out, "WORKERS needs role admin"));
    assert_int_equal(s_as(f, "sub", out, sizeof out, "audit renders"), 1);
    assert_non_null(strstr(out, "forbidden"));
    assert_int_equal(s_as(f, "rd", out, sizeof out, "status 1"), 0);
    assert_int_equal(s_as(f, "rd", out, sizeof out, "list"), 0);
    assert_int_equal(s_as(f, "rd", out, sizeof out, "audit renders"), 0);
    /* worker key: no client command at all. */
    assert_int_equal(s_as(f, "w1", out, sizeof out, "submit job.yaml"), 1);
    assert_non_null(strstr(out, "forbidden"));
    assert_int_equal(s_as(f, "w1", out, sizeof out, "status 1"), 1);
    /* admin: everything. */
    assert_int_equal(s_as(f, "adm", out, sizeof out, "workers"), 0);
    assert_int_equal(s_as(f, "adm", out, sizeof out, "audit renders"), 0);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'queued'"), 1);

    /* A client key speaking the worker protocol gets nothing leased. */
    char key[600], pub[600];
    snprintf(key, sizeof key, "MG_CURVE_KEY=%s/sub.key", f->home);
    snprintf(pub, sizeof pub, "MG_COORDINATOR_KEY=%s/keys/coordinator.pub", f->home);
    const char *env[] = {key, pub, NULL};
    const char *args[] = {"--heartbeat-ms", "100", "--liveness", "3", "--name", "impostor", NULL};
    int wi = mg_test_farm_start_worker(f, "impostor", args, env);
    mg_test_farm_wait_log(f, "coordinator", "from key 'sub' (role submitter): forbidden, needs role worker", 5000);
    mg_test_sleep_ms(300);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'leased'"), 0);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM workers WHERE name = 'impostor'"), 0);
    mg_test_farm_reap(&f->workers[wi]);
}

/* A worker key is served; revoking it cuts the worker off and returns its lease. */
static void test_revoke_worker(void **state)
{
    mg_test_farm_t *f = *state;
    char out[8192];
    if (mg_test_farm_sql_int(f, "SELECT count(*) FROM renders") == 0)
        assert_int_equal(s_as(f, "adm", out, sizeof out, "submit job.yaml"), 0);
    char key[600], pub[600];
    snprintf(key, sizeof key, "MG_CURVE_KEY=%s/w1.key", f->home);
    snprintf(pub, sizeof pub, "MG_COORDINATOR_KEY=%s/keys/coordinator.pub", f->home);
    const char *env[] = {key, pub, "MG_TEST_RENDER_MS=20000", NULL};
    const char *args[] = {"--heartbeat-ms", "100", "--liveness", "3", "--name", "w1", NULL};
    int wi = mg_test_farm_start_worker(f, "w1", args, env);
    mg_test_farm_wait_sql(f, 1, 5000, "SELECT count(*) FROM renders WHERE state = 'leased' AND lease_worker = 'w1'");
    double t0 = mg_test_now_ms();
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "keys revoke w1"), 0);
    mg_test_farm_wait_sql(f, 0, 2000, "SELECT count(*) FROM renders WHERE state = 'leased'");
    double took = mg_test_now_ms() - t0;
    fprintf(stderr, "revocation: lease back in the queue %.0f ms after `mgctl keys revoke`\n", took);
    assert_true(took < 2000);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'queued'"), 1);
    mg_test_farm_wait_log(f, "coordinator", "worker w1 key revoked", 1000);
    /* It stays out: nothing is leased to it again. */
    mg_test_sleep_ms(600);
    assert_int_equal(mg_test_farm_sql_int(f, "SELECT count(*) FROM renders WHERE state = 'leased'"), 0);
    mg_test_farm_reap(&f->workers[wi]);
}

/* Protected mode: no client key, no non-loopback bind; and a loose secret key is refused. */
static void test_protected_mode(void **state)
{
    (void)state;
    mg_test_farm_t *f = mg_test_farm_new("auth-open");
    int st = 0;
    char *o = mg_test_run(&st, "MG_HOME='%s' '%s/mg-coordinator' --endpoint tcp://0.0.0.0:%d 2>&1", f->home, f->bin,
                          20000 + getpid() % 20000);
    assert_int_not_equal(st, 0);
    assert_non_null(strstr(o, "refusing to listen"));
    assert_non_null(strstr(o, "mgctl keys add"));
    free(o);
    /* A secret key readable by others is refused with the chmod to run. */
    char out[4096];
    assert_int_equal(mg_test_farm_mgctl(f, out, sizeof out, NULL, "keys add loose --role reader --out '%s'", f->home), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/loose.key", f->home);
    chmod(path, 0644);
    f->mgctl_err_in_out = 1;
    st = mg_test_farm_mgctl(f, out, sizeof out, NULL, "--curve-key '%s' --coordinator-key '%s/loose.pub' ping", path,
                            f->home);
    assert_int_not_equal(st, 0);
    assert_non_null(strstr(out, "chmod 600"));
    mg_test_farm_destroy(&f);
}

int main(void)
{
    mg_test_log_quiet("test_auth");
    const struct CMUnitTest farm[] = {
        cmocka_unit_test(test_unknown_peers_get_nothing),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_revoke_worker),
    };
    const struct CMUnitTest alone[] = {cmocka_unit_test(test_protected_mode)};
    int rc = cmocka_run_group_tests_name("auth", farm, s_setup, mg_test_farm_teardown);
    return rc | cmocka_run_group_tests_name("auth_protected", alone, NULL, NULL);
}
