/* cmocka_shim.h - the part of cmocka's API that tests/cuda/test_cuda.c uses, for machines
 * without libcmocka (the GPU machine has nvcc but no Debian packages: bench/cuda/Makefile builds
 * with -DMG_NO_CMOCKA). Prints cmocka's result lines, so tests/run.sh counts them the same way.
 * Tests run in one process, one after the other; a failed assertion ends its test by longjmp.
 */
#ifndef MG_CMOCKA_SHIM_H
#define MG_CMOCKA_SHIM_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*mg_shim_test_fn)(void **state);
typedef int (*mg_shim_setup_fn)(void **state);

struct CMUnitTest {
    const char *name;
    mg_shim_test_fn fn;
};

#define cmocka_unit_test(f) {#f, f}

static jmp_buf mg_shim_jmp;
static int mg_shim_result;   /* 0 pass, 1 fail, 2 skip */

static void mg_shim_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: error: %s\n", file, line, what);
    mg_shim_result = 1;
    longjmp(mg_shim_jmp, 1);
}

#define assert_true(c) do { if (!(c)) mg_shim_fail(__FILE__, __LINE__, #c " is false"); } while (0)
#define assert_false(c) assert_true(!(c))
#define assert_non_null(p) assert_true((p) != NULL)
#define assert_null(p) assert_true((p) == NULL)
#define assert_int_equal(a, b)                                                                       \
    do {                                                                                             \
        long long a_ = (long long)(a), b_ = (long long)(b);                                          \
        if (a_ != b_) {                                                                              \
            char m_[128];                                                                            \
            snprintf(m_, sizeof m_, "%lld != %lld", a_, b_);                                         \
            mg_shim_fail(__FILE__, __LINE__, m_);                                                    \
        }                                                                                            \
    } while (0)
#define assert_memory_equal(a, b, n) assert_true(memcmp((a), (b), (n)) == 0)
#define fail() mg_shim_fail(__FILE__, __LINE__, "fail()")
#define skip()                                                                                       \
    do {                                                                                             \
        mg_shim_result = 2;                                                                          \
        longjmp(mg_shim_jmp, 1);                                                                     \
    } while (0)

#define cmocka_run_group_tests(tests, setup, teardown)                                               \
    _cmocka_run_group_tests(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)

static int _cmocka_run_group_tests(const char *group, const struct CMUnitTest *t, size_t n,
                                   mg_shim_setup_fn setup, mg_shim_setup_fn teardown)
{
    (void)group;
    void *state = NULL;
    unsigned passed = 0, failed = 0, skipped = 0;
    printf("[==========] Running %zu test(s).\n", n);
    if (setup && setup(&state) != 0) {
        printf("[  ERROR   ] group setup failed\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        printf("[ RUN      ] %s\n", t[i].name);
        fflush(stdout);
        mg_shim_result = 0;
        if (setjmp(mg_shim_jmp) == 0) t[i].fn(&state);
        if (mg_shim_result == 0) {
            printf("[       OK ] %s\n", t[i].name);
            passed++;
        } else if (mg_shim_result == 2) {
            printf("[  SKIPPED ] %s\n", t[i].name);
            skipped++;
        } else {
            printf("[  FAILED  ] %s\n", t[i].name);
            failed++;
        }
        fflush(stdout);
    }
    if (teardown) teardown(&state);
    printf("[==========] %zu test(s) run.\n", n);
    printf("[  PASSED  ] %u test(s).\n", passed);
    if (skipped) printf("[  SKIPPED ] %u test(s).\n", skipped);
    if (failed) printf("[  FAILED  ] %u test(s).\n", failed);
    return (int)failed;
}

#endif
