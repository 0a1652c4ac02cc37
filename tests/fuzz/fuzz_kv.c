/* fuzz_kv.c - the wire decoder: a multipart message as a peer sends it (frames split at each
 * "\0\xff" of the input), each frame decoded as a kv record (common/kv.c through
 * common/protocol.c's mg_msg_kv) and read as a render spec (common/renderspec.c), as the worker
 * reads a LEASE. Checks: a decoded record encodes and decodes back to itself, and an accepted
 * render spec survives its own kv record unchanged.
 */
#include <string.h>

#include "common/kv.h"
#include "common/protocol.h"
#include "common/renderspec.h"
#include "tests/fuzz/fuzz.h"

MG_FUZZ_TARGET("kv");

static void s_check_same(const mg_kv_t *a, const mg_kv_t *b)
{
    MG_FUZZ_CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        MG_FUZZ_CHECK(!strcmp(a->pairs[i].key, b->pairs[i].key));
        MG_FUZZ_CHECK(!strcmp(a->pairs[i].value, b->pairs[i].value));
    }
}

static void s_check_spec(const mg_kv_t *kv)
{
    mg_render_spec_t s, t;
    if (mg_render_spec_from_kv(&s, kv) != 0) return;
    MG_FUZZ_CHECK(s.duration_s > 0 && s.duration_s <= MG_MAX_DURATION_S);
    /* every text field ends inside itself (an overflow into the next field is invisible to ASan) */
#define S_TERMINATED(field) MG_FUZZ_CHECK(memchr(s.field, 0, sizeof s.field))
    S_TERMINATED(campaign);
    S_TERMINATED(client);
    S_TERMINATED(cue);
    S_TERMINATED(prompt);
    S_TERMINATED(prompt_sha256);
    S_TERMINATED(emotions);
    S_TERMINATED(key);
    S_TERMINATED(instruments);
    S_TERMINATED(stems);
#undef S_TERMINATED
    mg_kv_t out;
    mg_kv_init(&out);
    MG_FUZZ_CHECK(mg_render_spec_to_kv(&s, &out) == 0);
    MG_FUZZ_CHECK(mg_render_spec_from_kv(&t, &out) == 0);
    MG_FUZZ_CHECK(!strcmp(s.prompt, t.prompt) && !strcmp(s.campaign, t.campaign) && s.seed == t.seed);
    MG_FUZZ_CHECK(s.output.formats == t.output.formats && s.output.deliver == t.output.deliver);
    MG_FUZZ_CHECK(s.duration_s == t.duration_s && s.tempo_bpm == t.tempo_bpm && s.loop == t.loop);
    mg_kv_clear(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mg_msg_t m;
    mg_msg_init(&m);
    size_t start = 0;
    for (size_t i = 0; i + 1 < size && m.n < 64; i++) {
        if (data[i] != 0 || data[i + 1] != 0xff) continue;
        MG_FUZZ_CHECK(mg_msg_add(&m, data + start, i - start) == 0);
        start = i + 2;
        i++;
    }
    MG_FUZZ_CHECK(mg_msg_add(&m, data + start, size - start) == 0);

    char small[8];
    for (size_t f = 0; f <= m.n; f++) { /* one past the end: a missing frame */
        mg_msg_str(&m, f, small, sizeof small);
        MG_FUZZ_CHECK(memchr(small, 0, sizeof small));
        (void)mg_msg_is(&m, f, MG_PROTO_WORKER);
        mg_kv_t kv, back;
        mg_kv_init(&kv);
        mg_kv_init(&back);
        if (mg_msg_kv(&m, f, &kv) == 0) {
            MG_FUZZ_CHECK(f < m.n);
            size_t len;
            char *text = mg_kv_encode(&kv, &len);
            MG_FUZZ_CHECK(text && strlen(text) == len);
            MG_FUZZ_CHECK(mg_kv_decode(&back, text, len) == 0);
            s_check_same(&kv, &back);
            free(text);
            for (size_t i = 0; i < kv.n && i < 32; i++) {
                const char *k = kv.pairs[i].key;
                MG_FUZZ_CHECK(mg_kv_get(&kv, k) != NULL);
                (void)mg_kv_get_i64(&kv, k, 0);
                (void)mg_kv_get_u64(&kv, k, 0);
                (void)mg_kv_get_double(&kv, k, 0);
            }
            s_check_spec(&kv);
        } else {
            MG_FUZZ_CHECK(kv.n == 0);
        }
        mg_kv_clear(&kv);
        mg_kv_clear(&back);
    }
    mg_msg_clear(&m);
    return 0;
}
