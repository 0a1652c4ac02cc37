/* schedule.c - recurring jobs (see schedule.h): cron arithmetic and job file checks. The
 * rows are the store's: the writes are store_sched.c, the reads query.c. */
#include "schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "cron.h"
#include "query.h"

int64_t mg_sched_next_due(const char *cron, int64_t last_due_ms)
{
    mg_cron_t c;
    char err[256];
    if (mg_cron_parse(cron, &c, err, sizeof err) != 0) return -1;
    return mg_cron_next(&c, last_due_ms);
}

int mg_sched_add(mg_store_t *s, const char *cron, const char *name, const char *source_name,
                 const char *source_text, int64_t now_ms, int64_t *id, int64_t *next_due_ms,
                 char *err, size_t errlen)
{
    mg_cron_t c;
    char cerr[256];
    if (mg_cron_parse(cron, &c, cerr, sizeof cerr) != 0) {
        mg_set_error(err, errlen, "--cron: %s", cerr);
        return -1;
    }
    *next_due_ms = mg_cron_next(&c, now_ms);
    if (*next_due_ms < 0) {
        mg_set_error(err, errlen, "--cron '%s' never fires", cron);
        return -1;
    }
    mg_job_t *job = NULL;
    if (mg_job_parse_buffer(source_name, source_text, strlen(source_text), &job, err, errlen) != 0) return -1;
    if (!name || !*name) name = job->campaign; /* borrowed from job: used before mg_job_destroy */
    int rc = mg_store_sched_add(s, cron, name, source_name, source_text, now_ms, id, err, errlen);
    mg_job_destroy(&job);
    return rc == MG_STORE_OK ? 0 : -1;
}

int mg_sched_set_state(mg_store_t *s, int64_t id, const char *state)
{
    return mg_store_sched_set_state(s, id, state, mg_now_ms());
}

int mg_sched_remove(mg_store_t *s, int64_t id) { return mg_store_sched_remove(s, id); }

/* Runs one due time of one schedule: the job file parsed again (it may have become invalid
 * with a newer mg) under the run's own idempotency key, then the store's transaction.
 * Returns 1 if a job was made. */
static int s_materialise(mg_store_t *s, const mg_sched_row_t *row, int64_t due_ms, int64_t missed, int64_t now_ms)
{
    char err[4096] = "";
    mg_job_t *job = NULL;
    if (mg_job_parse_buffer(row->source_name, row->source_text, strlen(row->source_text), &job, err, sizeof err) ==
        0) {
        /* Each run is its own job: the key names the schedule and due time. */
        char key[96];
        snprintf(key, sizeof key, "schedule-%" PRId64 "-%" PRId64, row->id, due_ms);
        free(job->idempotency_key);
        job->idempotency_key = strdup(key);
    }
    const mg_sched_run_t run = {
        .schedule_id = row->id, .name = row->name, .source_name = row->source_name,
        .source_text = row->source_text, .due_ms = due_ms, .missed = missed, .job = job, .invalid_why = err,
    };
    int64_t job_id = 0;
    int made = mg_store_sched_run(s, &run, now_ms, &job_id);
    mg_job_destroy(&job);
    return made;
}

int mg_sched_tick(mg_store_t *s, int64_t now_ms, int *jobs_created)
{
    *jobs_created = 0;
    mg_sched_row_t *rows = NULL;
    size_t n = 0;
    if (mg_query_active_schedules(s, &rows, &n) != 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        mg_sched_row_t *r = &rows[i];
        mg_cron_t c;
        char err[256];
        if (!r->cron || !r->name || !r->source_name || !r->source_text ||
            mg_cron_parse(r->cron, &c, err, sizeof err) != 0)
            continue;
        /* The latest due time at or before now; the ones between are missed (counted, up
         * to a bound, for the event only). */
        int64_t first = mg_cron_next(&c, r->last_due_ms);
        if (first < 0 || first > now_ms) continue;
        int64_t latest = mg_cron_prev(&c, now_ms), missed = 0;
        for (int64_t due = first; due >= 0 && due < latest && missed < 100000; due = mg_cron_next(&c, due)) missed++;
        int made = s_materialise(s, r, latest, missed, now_ms);
        if (made < 0) rc = -1;
        else *jobs_created += made;
    }
    mg_query_schedules_free(&rows, n);
    return rc;
}
