/* fuzz_jobspec.c - job files (common/jobspec.c) as an attacker sends them in a SUBMIT: any bytes
 * through mg_job_parse_buffer. Beyond "no crash, no leak, no undefined behaviour", it checks what
 * the coordinator relies on: a refusal comes with "fuzz.yaml:line:col: ..." lines, a job is
 * within the documented limits, parsing is deterministic, and every render spec built from an
 * accepted job survives its kv record (the LEASE a worker reads) unchanged.
 */
#include <string.h>

#include "common/jobspec.h"
#include "common/kv.h"
#include "common/renderspec.h"
#include "tests/fuzz/fuzz.h"

MG_FUZZ_TARGET("jobspec");

/* list joined with commas equals csv (nothing was cut to fit a fixed field) */
static int s_joined_is(char *const *list, int n, const char *csv)
{
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list[i]);
        if (i && csv[o++] != ',') return 0;
        if (strncmp(csv + o, list[i], l) != 0) return 0;
        o += l;
    }
    return csv[o] == 0;
}

static void s_check_spec_roundtrip(const mg_job_t *job, int ci, int v)
{
    mg_render_spec_t a, b;
    mg_render_spec_from_job(job, ci, v, &a);
    const mg_cue_t *q = &job->cues[ci];
    /* the spec's fixed fields hold the whole job: the validator's limits fit them */
    MG_FUZZ_CHECK(!strcmp(a.campaign, job->campaign) && !strcmp(a.client, job->client));
    MG_FUZZ_CHECK(!strcmp(a.cue, q->name) && !strcmp(a.prompt, q->prompt));
    MG_FUZZ_CHECK(!strcmp(a.key, q->key ? q->key : ""));
    MG_FUZZ_CHECK(s_joined_is(q->emotions, q->n_emotions, a.emotions));
    MG_FUZZ_CHECK(s_joined_is(q->instruments, q->n_instruments, a.instruments));
    MG_FUZZ_CHECK(s_joined_is(q->stems, q->n_stems, a.stems));
    mg_kv_t kv, back;
    mg_kv_init(&kv);
    mg_kv_init(&back);
    MG_FUZZ_CHECK(mg_render_spec_to_kv(&a, &kv) == 0);
    size_t len;
    char *text = mg_kv_encode(&kv, &len);
    MG_FUZZ_CHECK(text);
    MG_FUZZ_CHECK(mg_kv_decode(&back, text, len) == 0);
    MG_FUZZ_CHECK(mg_render_spec_from_kv(&b, &back) == 0); /* what the coordinator sends, a worker takes */
    MG_FUZZ_CHECK(!strcmp(a.campaign, b.campaign) && !strcmp(a.cue, b.cue) && !strcmp(a.prompt, b.prompt));
    MG_FUZZ_CHECK(!strcmp(a.emotions, b.emotions) && !strcmp(a.key, b.key));
    MG_FUZZ_CHECK(!strcmp(a.instruments, b.instruments) && !strcmp(a.stems, b.stems));
    MG_FUZZ_CHECK(a.seed == b.seed && a.variation == b.variation && a.loop == b.loop);
    MG_FUZZ_CHECK(a.duration_s == b.duration_s && a.tempo_bpm == b.tempo_bpm);
    MG_FUZZ_CHECK(a.output.formats == b.output.formats && a.output.deliver == b.output.deliver);
    MG_FUZZ_CHECK(a.output.sample_rate == b.output.sample_rate && a.output.channels == b.output.channels);
    MG_FUZZ_CHECK(a.output.loudness_lufs == b.output.loudness_lufs && a.output.normalize == b.output.normalize);
    free(text);
    mg_kv_clear(&kv);
    mg_kv_clear(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char err[16384];
    mg_job_t *job = NULL;
    int rc = mg_job_parse_buffer("fuzz.yaml", (const char *)data, size, &job, err, sizeof err);
    MG_FUZZ_CHECK(memchr(err, 0, sizeof err));
    if (rc != 0) {
        MG_FUZZ_CHECK(rc == -1 && !job);
        MG_FUZZ_CHECK(strncmp(err, "fuzz.yaml:", 10) == 0);
        return 0;
    }
    MG_FUZZ_CHECK(job && err[0] == 0);
    size_t renders = mg_job_render_count(job);
    MG_FUZZ_CHECK(job->n_cues >= 1 && job->n_cues <= 10000 && renders >= 1 && renders <= 100000);
    MG_FUZZ_CHECK(job->canonical_json && strlen(job->canonical_sha256) == 64 && job->idempotency_key);

    mg_job_t *again = NULL;
    MG_FUZZ_CHECK(mg_job_parse_buffer("fuzz.yaml", (const char *)data, size, &again, err, sizeof err) == 0);
    MG_FUZZ_CHECK(!strcmp(again->canonical_json, job->canonical_json));
    mg_job_destroy(&again);

    for (int ci = 0; ci < job->n_cues && ci < 4; ci++) {
        const mg_cue_t *q = &job->cues[ci];
        MG_FUZZ_CHECK(q->variations >= 1 && q->duration_s > 0 && q->duration_s <= MG_MAX_DURATION_S);
        MG_FUZZ_CHECK(strlen(q->prompt) <= MG_PROMPT_MAX && strlen(q->name) <= MG_NAME_MAX);
        s_check_spec_roundtrip(job, ci, 0);
        s_check_spec_roundtrip(job, ci, q->variations - 1);
    }
    mg_job_destroy(&job);
    return 0;
}
