/* store_bench.c - the coordinator's database ceiling, without the network: time to submit
 * a 10,000-render job, then lease + complete cycles per second through mg_store_* exactly
 * as the server calls them (BEGIN IMMEDIATE, synchronous=FULL, one small file written
 * atomically per render). Run by bench/run.sh; prints figures for bench/RESULTS.md.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jobspec.h"
#include "common/util.h"
#include "coordinator/store.h"

static char *s_job_text(int cues, int variations)
{
    size_t cap = 256 + (size_t)cues * 128;
    char *t = malloc(cap);
    size_t n = (size_t)snprintf(t, cap, "campaign: bench\noutput:\n  formats: [wav]\ncues:\n");
    for (int c = 0; c < cues; c++)
        n += (size_t)snprintf(t + n, cap - n, "  - name: cue-%d\n    prompt: \"bench cue %d\"\n    duration: 1\n"
                                              "    variations: %d\n", c, c, variations);
    return t;
}

int main(int argc, char **argv)
{
    mg_log_init("store_bench");
    int cycles = argc > 1 ? atoi(argv[1]) : 2000;
    char home[] = "/tmp/mg-store-bench-XXXXXX";
    if (!mkdtemp(home)) return 1;
    char db[300], outputs[300], err[4096];
    snprintf(db, sizeof db, "%s/mg.db", home);
    snprintf(outputs, sizeof outputs, "%s/outputs", home);
    mg_store_policy_t policy = {3, 3, 30000};
    mg_store_t *s = mg_store_open(db, outputs, &policy, err, sizeof err);
    if (!s) { fprintf(stderr, "%s\n", err); return 1; }

    char *text = s_job_text(250, 40);
    int64_t t0 = mg_mono_ms();
    mg_job_t *job = NULL;
    if (mg_job_parse_buffer("bench.yaml", text, strlen(text), &job, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int64_t t1 = mg_mono_ms();
    int64_t job_id;
    size_t renders;
    int dup;
    if (mg_store_submit(s, job, "bench.yaml", text, 0, &job_id, &renders, &dup, err, sizeof err) != MG_STORE_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int64_t t2 = mg_mono_ms();
    printf("submit 10,000 renders: parse %lld ms + store %lld ms = %lld ms (%zu renders, one transaction)\n",
           (long long)(t1 - t0), (long long)(t2 - t1), (long long)(t2 - t0), renders);

    /* Lease in batches of 8 (a worker's capacity), complete each with a 1 KiB file. */
    unsigned char payload[1024];
    memset(payload, 0x42, sizeof payload);
    char sha[65];
    mg_sha256_hex(payload, sizeof payload, sha);
    mg_lease_t leases[8];
    int done = 0;
    int64_t t3 = mg_mono_ms();
    while (done < cycles) {
        int n = 0;
        if (mg_store_lease(s, "bench-worker", 8, mg_now_ms(), leases, &n) != MG_STORE_OK || n == 0) break;
        for (int i = 0; i < n && done < cycles; i++, done++) {
            mg_result_t r = {0};
            r.render_id = leases[i].render_id;
            r.lease_token = leases[i].lease_token;
            r.worker = "bench-worker";
            r.backend = "cpu";
            r.device = "bench";
            r.model_name = "bench";
            r.model_version = "0";
            r.model_sha256 = sha;
            r.model_license = "none";
            r.started_ms = r.finished_ms = mg_now_ms();
            r.files[0] = (mg_result_file_t){"wav", payload, sizeof payload, sha, 1.0, 8000, 1, "mix", ""};
            r.n_files = 1;
            if (mg_store_complete(s, &r, mg_now_ms(), err, sizeof err) != MG_STORE_OK) {
                fprintf(stderr, "complete: %s\n", err);
                return 1;
            }
        }
    }
    int64_t t4 = mg_mono_ms();
    double secs = (double)(t4 - t3) / 1000.0;
    printf("lease + complete: %d renders in %.2f s = %.0f renders/s (batches of 8 leases, 1 commit per result, "
           "synchronous=FULL, 1 KiB file each)\n", done, secs, done / secs);
    mg_job_destroy(&job);
    free(text);
    mg_store_close(&s);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    return system(cmd) == 0 ? 0 : 1;
}
