/* driver.c - the corpus replay of a fuzz target, for `make test`: links with one fuzz_<name>.c
 * under the normal build (gcc, or the SAN= sanitizers) and runs LLVMFuzzerTestOneInput once on
 * every file of tests/fuzz/corpus/<name>/ (seeds and the inputs of crashes fixed since), with no
 * mutation, so the harnesses and their regressions cannot rot. `make fuzz` is the real fuzzing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"
#include "tests/testlib.h"

static int s_cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_replay_corpus(void **state)
{
    (void)state;
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fuzz/corpus/%s", mg_fuzz_target_name);
    const char *dir = mg_test_path(rel);
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open the corpus %s", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            assert_non_null(names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, s_cmp_name);
    size_t bytes = 0;
    double t0 = mg_test_now_ms();
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) { free(names[i]); continue; }
        FILE *f = fopen(path, "rb");
        if (!f) fail_msg("cannot read %s", path);
        size_t len = (size_t)st.st_size;
        uint8_t *data = malloc(len ? len : 1);
        assert_non_null(data);
        assert_int_equal(fread(data, 1, len, f), len);
        fclose(f);
        LLVMFuzzerTestOneInput(data, len);
        bytes += len;
        free(data);
        free(names[i]);
    }
    free(names);
    printf("fuzz_%s: replayed %zu corpus files (%zu bytes) of %s in %.0f ms\n", mg_fuzz_target_name, n, bytes,
           dir, mg_test_now_ms() - t0);
    assert_true(n > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
