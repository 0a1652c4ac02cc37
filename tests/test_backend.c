/* test_backend.c - backend selection of mg-worker (worker/backend.c): the setting's
 * parsing, the CUDA plugin's search and load with the reason when it fails (a bogus
 * MG_CUDA_PLUGIN, a file that is no library, the real plugin on a machine without a GPU), and
 * `mg-worker --backend cuda` refusing to start, with a clear message, where no device is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testlib.h"
#include "worker/backend.h"

static void test_parse(void **state)
{
    (void)state;
    mg_backend_kind_t k = MG_BACKEND_CPU;
    assert_int_equal(mg_backend_parse("auto", &k), 0);
    assert_int_equal(k, MG_BACKEND_AUTO);
    assert_int_equal(mg_backend_parse("cpu", &k), 0);
    assert_int_equal(k, MG_BACKEND_CPU);
    assert_int_equal(mg_backend_parse("cuda", &k), 0);
    assert_int_equal(k, MG_BACKEND_CUDA);
    const char *bad[] = {"", "CUDA", "gpu", "cpu ", "autox", "cud"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        k = MG_BACKEND_CUDA;
        assert_int_equal(mg_backend_parse(bad[i], &k), -1);
        assert_int_equal(k, MG_BACKEND_CUDA); /* untouched */
    }
    assert_int_equal(mg_backend_parse(NULL, &k), -1);
    assert_string_equal(mg_backend_kind_name(MG_BACKEND_AUTO), "auto");
    assert_string_equal(mg_backend_kind_name(MG_BACKEND_CPU), "cpu");
    assert_string_equal(mg_backend_kind_name(MG_BACKEND_CUDA), "cuda");
}

/* A bogus MG_CUDA_PLUGIN: the reason names the variable and the path; auto falls back (0, no
 * plugin), cuda fails, cpu never looks. */
static void test_bogus_plugin_path(void **state)
{
    (void)state;
    char why[1024];
    mg_backend_cuda_t *b = (mg_backend_cuda_t *)1;
    setenv("MG_CUDA_PLUGIN", "/nonexistent/libmg-wavernn-cuda.so", 1);
    assert_int_equal(mg_backend_cuda_open(&b, why, sizeof why), -1);
    assert_null(b);
    printf("# %s\n", why);
    assert_non_null(strstr(why, "MG_CUDA_PLUGIN=/nonexistent/libmg-wavernn-cuda.so"));
    assert_non_null(strstr(why, "not a file"));
    assert_int_equal(mg_backend_select(MG_BACKEND_AUTO, &b, why, sizeof why), 0);
    assert_null(b);
    assert_non_null(strstr(why, "/nonexistent/libmg-wavernn-cuda.so"));
    assert_int_equal(mg_backend_select(MG_BACKEND_CUDA, &b, why, sizeof why), -1);
    assert_null(b);
    assert_non_null(strstr(why, "CUDA plugin not found"));
    assert_int_equal(mg_backend_select(MG_BACKEND_CPU, &b, why, sizeof why), 0);
    assert_null(b);
    assert_null(strstr(why, "plugin"));
    unsetenv("MG_CUDA_PLUGIN");
}

/* A file that is not a shared library: the dlopen error, with the path. */
static void test_plugin_not_a_library(void **state)
{
    (void)state;
    char path[256];
    mg_test_temp_write("backend", "", "not an ELF file\n", 16, path, sizeof path);
    setenv("MG_CUDA_PLUGIN", path, 1);
    char why[1024];
    mg_backend_cuda_t *b = NULL;
    assert_int_equal(mg_backend_cuda_open(&b, why, sizeof why), -1);
    assert_null(b);
    printf("# %s\n", why);
    assert_non_null(strstr(why, "cannot be loaded"));
    assert_non_null(strstr(why, path));
    unsetenv("MG_CUDA_PLUGIN");
    unlink(path);
}

/* The plugin `make` installed beside the binaries (only where nvcc built it): it loads and
 * passes the ABI check; without a GPU the reason says the device is missing, with one it names
 * the device. */
static void test_real_plugin(void **state)
{
    (void)state;
    char path[1024], real[4096];
    snprintf(path, sizeof path, "%s/%s", mg_test_bin(), MG_WR_CUDA_PLUGIN_FILE);
    if (access(path, R_OK) != 0 || !realpath(path, real)) {
        printf("# %s not built (no nvcc): nothing to load\n", path);
        skip();
    }
    setenv("MG_CUDA_PLUGIN", real, 1);
    char why[1024];
    mg_backend_cuda_t *b = NULL;
    int rc = mg_backend_cuda_open(&b, why, sizeof why);
    unsetenv("MG_CUDA_PLUGIN");
    printf("# %s\n", why);
    if (rc == 0) {
        assert_non_null(b);
        assert_true(strlen(b->device) > 0);
        assert_string_equal(b->path, real);
        mg_backend_cuda_close(&b);
        assert_null(b);
        return;
    }
    assert_null(b);
    assert_non_null(strstr(why, "loaded, but"));
    assert_non_null(strstr(why, "CUDA device"));
}

/* mg-worker --backend cuda where no GPU is (this machine, CI): exit 1 at startup, the message
 * naming the backend and what is missing. `timeout` guards a machine that does have a GPU
 * (the worker would start and wait for a coordinator): then the case is skipped. */
static void test_worker_backend_cuda_refuses(void **state)
{
    (void)state;
    int status;
    const char *tiny = mg_test_path("tests/data/model/tiny.mgnn");
    char *out = mg_test_run(&status, "MG_HOME=/nonexistent MG_ENDPOINT=tcp://127.0.0.1:1 timeout 20 '%s/mg-worker' "
                            "--backend cuda --model '%s' 2>&1", mg_test_bin(), tiny);
    printf("# %s", out);
    if (status == 124) {
        free(out);
        printf("# a CUDA device is present: the worker started\n");
        skip();
    }
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "mg-worker: --backend cuda: "));
    assert_true(strstr(out, "CUDA plugin not found") || strstr(out, "no CUDA device") ||
                strstr(out, "CUDA device unusable"));
    assert_non_null(strstr(out, "--backend auto or cpu"));
    free(out);
    /* A bogus plugin path is named as such. */
    out = mg_test_run(&status, "MG_HOME=/nonexistent MG_CUDA_PLUGIN=/nonexistent/p.so timeout 20 '%s/mg-worker' "
                      "--backend cuda --model '%s' 2>&1", mg_test_bin(), tiny);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "MG_CUDA_PLUGIN=/nonexistent/p.so is not a file"));
    free(out);
    /* cuda with a CPU-only renderer, and an unknown backend: setting errors (2). */
    out = mg_test_run(&status, "MG_HOME=/nonexistent '%s/mg-worker' --backend cuda --renderer synth 2>&1",
                      mg_test_bin());
    assert_int_equal(status, 2);
    assert_non_null(strstr(out, "runs on the CPU only"));
    free(out);
    out = mg_test_run(&status, "MG_HOME=/nonexistent MG_BACKEND=gpu '%s/mg-worker' 2>&1", mg_test_bin());
    assert_int_equal(status, 2);
    assert_non_null(strstr(out, "unknown backend 'gpu' (auto, cpu, cuda)"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_bogus_plugin_path),
        cmocka_unit_test(test_plugin_not_a_library),
        cmocka_unit_test(test_real_plugin),
        cmocka_unit_test(test_worker_backend_cuda_refuses),
    };
    return cmocka_run_group_tests_name("backend", tests, NULL, NULL);
}
