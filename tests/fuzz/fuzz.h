/* fuzz.h - what the libFuzzer targets in tests/fuzz/ share. Each fuzz_<name>.c defines the
 * entry point libFuzzer calls and names itself with MG_FUZZ_TARGET; `make fuzz` links it with
 * libFuzzer (clang, -fsanitize=fuzzer,address,undefined), `make test` with driver.c, which
 * replays tests/fuzz/corpus/<name>/ once under the normal build (docs/security.md, "Fuzzing").
 */
#ifndef MG_FUZZ_H
#define MG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MG_FUZZ_TARGET(name) const char mg_fuzz_target_name[] = name

extern const char mg_fuzz_target_name[];

/* Called once per input; data is size bytes, not NUL-terminated, never modified. Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: a failure aborts, which libFuzzer reports as a crash
 * (with the input saved) and the replay driver as a failed test. */
#define MG_FUZZ_CHECK(cond)                                                                    \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#endif
