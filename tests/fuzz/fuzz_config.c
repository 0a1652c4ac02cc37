/* fuzz_config.c - mg.conf (common/config.c) from memory: any bytes through mg_config_parse_buffer,
 * the parser mg_config_reload runs on $MG_HOME/mg.conf, then the settings read back as every
 * program reads them (mg_config_get, mg_config_int, mg_config_source with short buffers).
 */
#include <string.h>

#include "common/config.h"
#include "tests/fuzz/fuzz.h"

MG_FUZZ_TARGET("config");

/* Settings the programs read (coordinator/main.c, worker/main.c, cli/mgctl.c) and some that no
 * program reads. */
static const char *const s_keys[] = {"endpoint", "heartbeat_ms", "liveness", "lease_ms", "max_attempts",
                                     "capacity", "backend", "renderer", "model", "temperature", "name",
                                     "timeout", "chunk_bytes", "a", "x.y-z", "", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char err[4096];
    int rc = mg_config_parse_buffer("fuzz.conf", (const char *)data, size, err, sizeof err);
    MG_FUZZ_CHECK(memchr(err, 0, sizeof err));
    MG_FUZZ_CHECK(rc == 0 ? err[0] == 0 : strncmp(err, "fuzz.conf:", 10) == 0);
    for (int i = 0; s_keys[i]; i++) {
        const char *v = mg_config_get(s_keys[i], NULL, NULL, NULL);
        if (v) MG_FUZZ_CHECK(!memchr(v, '\n', strlen(v)) && !memchr(v, '#', strlen(v)));
        char src[3], big[64], e[256] = "";
        mg_config_source(s_keys[i], NULL, NULL, src, sizeof src);
        MG_FUZZ_CHECK(memchr(src, 0, sizeof src));
        mg_config_source(s_keys[i], v ? NULL : "flag", NULL, big, sizeof big);
        MG_FUZZ_CHECK(memchr(big, 0, sizeof big));
        long out;
        (void)mg_config_int(s_keys[i], NULL, NULL, "5", 1, 100, &out, e, sizeof e);
        MG_FUZZ_CHECK(memchr(e, 0, sizeof e));
    }
    return 0;
}
