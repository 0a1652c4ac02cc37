/* schedule.c - materialise due schedule runs exactly once (see schedule.h). */
#include "schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "cron.h"
#include "db.h"

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
        snprintf(err, errlen, "--cron: %s", cerr);
        return -1;
    }
    *next_due_ms = mg_cron_next(&c, now_ms);
    if (*next_due_ms < 0) {
        snprintf(err, errlen, "--cron '%s' never fires", cron);
        return -1;
    }
    mg_job_t *job = NULL;
    if (mg_job_parse_buffer(source_name, source_text, strlen(source_text), &job, err, errlen) != 0) return -1;
    if (!name || !*name) name = job->campaign; /* borrowed from job: used before mg_job_destroy */
    sqlite3 *db = s->db;
    int rc = mg_db_run(db,
        "INSERT INTO schedules (name, cron, source_name, source_text, created_ms, last_due_ms) VALUES (?,?,?,?,?,?)",
        "ssssii", name, cron, source_name, source_text, now_ms, now_ms);
    if (rc != 0) snprintf(err, errlen, "cannot store schedule: %s", sqlite3_errmsg(db));
    else {
        *id = sqlite3_last_insert_rowid(db);
        mg_db_event(db, "schedule_added", 0, 0, NULL, "schedule %" PRId64 " '%s' (%s)", *id, name, cron);
    }
    mg_job_destroy(&job);
    return rc == 0 ? 0 : -1;
}

int mg_sched_set_state(mg_store_t *s, int64_t id, const char *state)
{
    if (mg_db_run(s->db, "UPDATE schedules SET state = ? WHERE id = ?", "si", state, id) != 0) return MG_STORE_ERR;
    if (sqlite3_changes(s->db) != 1) return MG_STORE_NOT_FOUND;
    /* Resuming does not replay the runs skipped while paused. */
    if (strcmp(state, "active") == 0)
        mg_db_run(s->db, "UPDATE schedules SET last_due_ms = max(last_due_ms, ?) WHERE id = ?", "ii", mg_now_ms(), id);
    return MG_STORE_OK;
}

int mg_sched_remove(mg_store_t *s, int64_t id)
{
    if (mg_db_run(s->db, "DELETE FROM schedules WHERE id = ?", "i", id) != 0) return MG_STORE_ERR;
    return sqlite3_changes(s->db) == 1 ? MG_STORE_OK : MG_STORE_NOT_FOUND;
}

typedef struct {
    int64_t id, last_due_ms;
    char *cron, *name, *source_name, *source_text;
} s_sched_row_t;

/* Runs one due time of one schedule in one transaction. Returns 1 if a job was made. */
static int s_materialise(mg_store_t *s, const s_sched_row_t *row, int64_t due_ms, int64_t missed, int64_t now_ms)
{
    sqlite3 *db = s->db;
    if (mg_db_begin(db) != 0) return -1;
    if (mg_db_int(db, 0, "SELECT count(*) FROM schedule_runs WHERE schedule_id = ? AND due_ms = ?", "ii", row->id,
                  due_ms) > 0) {
        mg_db_run(db, "UPDATE schedules SET last_due_ms = max(last_due_ms, ?) WHERE id = ?", "ii", due_ms, row->id);
        mg_db_commit(db);
        return 0;
    }
    char err[4096] = "";
    mg_job_t *job = NULL;
    int made = 0;
    int64_t job_id = 0;
    const char *outcome = "invalid";
    if (mg_job_parse_buffer(row->source_name, row->source_text, strlen(row->source_text), &job, err, sizeof err) ==
        0) {
        /* Each run is its own job: the key names the schedule and due time. */
        char key[96];
        snprintf(key, sizeof key, "schedule-%" PRId64 "-%" PRId64, row->id, due_ms);
        free(job->idempotency_key);
        job->idempotency_key = strdup(key);
        size_t renders = 0;
        int dup = 0;
        /* A submit that fails part-way must leave no half job behind: savepoint. */
        if (mg_db_exec(db, "SAVEPOINT sched_submit") != 0) {
            mg_job_destroy(&job);
            mg_db_rollback(db);
            return -1;
        }
        if (job->idempotency_key &&
            mg_store_submit_tx(s, job, row->source_name, row->source_text, row->id, &job_id, &renders, &dup, err,
                               sizeof err) == MG_STORE_OK) {
            outcome = "submitted";
            made = !dup;
            mg_db_exec(db, "RELEASE sched_submit");
        } else {
            job_id = 0;
            mg_db_exec(db, "ROLLBACK TO sched_submit");
            mg_db_exec(db, "RELEASE sched_submit");
        }
    }
    mg_job_destroy(&job);
    char due[40];
    mg_format_time(due_ms, due, sizeof due);
    if (mg_db_run(db, "INSERT INTO schedule_runs (schedule_id, due_ms, job_id, outcome, created_ms) VALUES (?,?,?,?,?)",
                  "iinsi", row->id, due_ms, outcome, now_ms) != 0 ||
        (job_id && mg_db_run(db, "UPDATE schedule_runs SET job_id = ? WHERE schedule_id = ? AND due_ms = ?", "iii",
                             job_id, row->id, due_ms) != 0) ||
        mg_db_run(db, "UPDATE schedules SET last_due_ms = ? WHERE id = ?", "ii", due_ms, row->id) != 0) {
        mg_db_rollback(db);
        return -1;
    }
    if (missed > 0)
        mg_db_event(db, "schedule_missed", 0, 0, NULL,
                    "schedule %" PRId64 " '%s': %" PRId64 " earlier due time(s) passed while the coordinator was down; "
                    "only the latest (%s) runs", row->id, row->name, missed, due);
    if (made)
        mg_db_event(db, "schedule_run", job_id, 0, NULL, "schedule %" PRId64 " '%s' due %s: job %" PRId64, row->id,
                    row->name, due, job_id);
    else if (strcmp(outcome, "invalid") == 0)
        mg_db_event(db, "schedule_invalid", 0, 0, NULL, "schedule %" PRId64 " '%s' due %s: %s", row->id, row->name,
                    due, err);
    if (mg_db_commit(db) != 0) return -1;
    return made;
}

int mg_sched_tick(mg_store_t *s, int64_t now_ms, int *jobs_created)
{
    *jobs_created = 0;
    sqlite3_stmt *st = mg_db_prepare(s->db,
        "SELECT id, last_due_ms, cron, name, source_name, source_text FROM schedules WHERE state = 'active'", "");
    if (!st) return -1;
    s_sched_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            s_sched_row_t *nr = realloc(rows, cap * sizeof *nr);
            if (!nr) break;
            rows = nr;
        }
        s_sched_row_t *r = &rows[n++];
        r->id = sqlite3_column_int64(st, 0);
        r->last_due_ms = sqlite3_column_int64(st, 1);
        r->cron = strdup((const char *)sqlite3_column_text(st, 2));
        r->name = strdup((const char *)sqlite3_column_text(st, 3));
        r->source_name = strdup((const char *)sqlite3_column_text(st, 4));
        r->source_text = strdup((const char *)sqlite3_column_text(st, 5));
    }
    sqlite3_finalize(st);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        s_sched_row_t *r = &rows[i];
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
    for (size_t i = 0; i < n; i++) {
        free(rows[i].cron);
        free(rows[i].name);
        free(rows[i].source_name);
        free(rows[i].source_text);
    }
    free(rows);
    return rc;
}
