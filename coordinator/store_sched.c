/* store_sched.c - the store's schedule writes (see store.h, "schedules"): a schedule added,
 * paused, resumed or removed, and one due time run as one transaction.
 *
 * The cron arithmetic and the job file parsing are schedule.c's; what reaches this file is
 * already decided (which due time, how many were missed, the parsed job or why it is
 * invalid). Each due time yields exactly one job because the job and its schedule_runs row
 * (primary key schedule id + due time) commit together.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/util.h"
#include "db.h"
#include "store_internal.h"

int mg_store_sched_add(mg_store_t *s, const char *cron, const char *name, const char *source_name,
                       const char *source_text, int64_t now_ms, int64_t *id, char *err, size_t errlen)
{
    sqlite3 *db = s->db;
    if (mg_db_begin(db) != 0) {
        mg_set_error(err, errlen, "cannot store schedule: %s", sqlite3_errmsg(db));
        return MG_STORE_ERR;
    }
    if (mg_db_run(db,
            "INSERT INTO schedules (name, cron, source_name, source_text, created_ms, last_due_ms) VALUES (?,?,?,?,?,?)",
            "ssssii", name, cron, source_name, source_text, now_ms, now_ms) != 0) {
        mg_set_error(err, errlen, "cannot store schedule: %s", sqlite3_errmsg(db));
        mg_db_rollback(db);
        return MG_STORE_ERR;
    }
    *id = sqlite3_last_insert_rowid(db);
    mg_db_event(db, "schedule_added", 0, 0, NULL, "schedule %" PRId64 " '%s' (%s)", *id, name, cron);
    if (mg_db_commit(db) != 0) {
        mg_set_error(err, errlen, "cannot store schedule: %s", sqlite3_errmsg(db));
        return MG_STORE_ERR;
    }
    return MG_STORE_OK;
}

int mg_store_sched_set_state(mg_store_t *s, int64_t id, const char *state, int64_t now_ms)
{
    sqlite3 *db = s->db;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    if (mg_db_run(db, "UPDATE schedules SET state = ? WHERE id = ?", "si", state, id) != 0) goto fail;
    if (sqlite3_changes(db) != 1) {
        mg_db_rollback(db);
        return MG_STORE_NOT_FOUND;
    }
    /* Resuming does not replay the runs skipped while paused. */
    if (strcmp(state, "active") == 0 &&
        mg_db_run(db, "UPDATE schedules SET last_due_ms = max(last_due_ms, ?) WHERE id = ?", "ii", now_ms, id) != 0)
        goto fail;
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
fail:
    mg_db_rollback(db);
    return MG_STORE_ERR;
}

int mg_store_sched_remove(mg_store_t *s, int64_t id)
{
    sqlite3 *db = s->db;
    if (mg_db_begin(db) != 0) return MG_STORE_ERR;
    if (mg_db_run(db, "DELETE FROM schedules WHERE id = ?", "i", id) != 0) {
        mg_db_rollback(db);
        return MG_STORE_ERR;
    }
    if (sqlite3_changes(db) != 1) {
        mg_db_rollback(db);
        return MG_STORE_NOT_FOUND;
    }
    return mg_db_commit(db) == 0 ? MG_STORE_OK : MG_STORE_ERR;
}

int mg_store_sched_run(mg_store_t *s, const mg_sched_run_t *run, int64_t now_ms, int64_t *job_id_out)
{
    sqlite3 *db = s->db;
    *job_id_out = 0;
    if (mg_db_begin(db) != 0) return -1;
    if (mg_db_int(db, 0, "SELECT count(*) FROM schedule_runs WHERE schedule_id = ? AND due_ms = ?", "ii",
                  run->schedule_id, run->due_ms) > 0) {
        mg_db_run(db, "UPDATE schedules SET last_due_ms = max(last_due_ms, ?) WHERE id = ?", "ii", run->due_ms,
                  run->schedule_id);
        mg_db_commit(db);
        return 0;
    }
    char err[4096] = "";
    int made = 0;
    int64_t job_id = 0;
    const char *outcome = "invalid";
    if (!run->job) mg_strlcpy(err, run->invalid_why ? run->invalid_why : "", sizeof err);
    else {
        size_t renders = 0;
        int dup = 0;
        /* A submit that fails part-way must leave no half job behind: savepoint. */
        if (mg_db_exec(db, "SAVEPOINT sched_submit") != 0) {
            mg_db_rollback(db);
            return -1;
        }
        if (run->job->idempotency_key &&
            mg_store_submit_tx(s, run->job, run->source_name, run->source_text, run->schedule_id, &job_id, &renders,
                               &dup, err, sizeof err) == MG_STORE_OK) {
            outcome = "submitted";
            made = !dup;
            mg_db_exec(db, "RELEASE sched_submit");
        } else {
            job_id = 0;
            mg_db_exec(db, "ROLLBACK TO sched_submit");
            mg_db_exec(db, "RELEASE sched_submit");
        }
    }
    char due[40];
    mg_format_time(run->due_ms, due, sizeof due);
    if (mg_db_run(db, "INSERT INTO schedule_runs (schedule_id, due_ms, job_id, outcome, created_ms) VALUES (?,?,?,?,?)",
                  "iinsi", run->schedule_id, run->due_ms, outcome, now_ms) != 0 ||
        (job_id && mg_db_run(db, "UPDATE schedule_runs SET job_id = ? WHERE schedule_id = ? AND due_ms = ?", "iii",
                             job_id, run->schedule_id, run->due_ms) != 0) ||
        mg_db_run(db, "UPDATE schedules SET last_due_ms = ? WHERE id = ?", "ii", run->due_ms, run->schedule_id) != 0) {
        mg_db_rollback(db);
        return -1;
    }
    if (run->missed > 0)
        mg_db_event(db, "schedule_missed", 0, 0, NULL,
                    "schedule %" PRId64 " '%s': %" PRId64 " earlier due time(s) passed while the coordinator was down; "
                    "only the latest (%s) runs", run->schedule_id, run->name, run->missed, due);
    if (made)
        mg_db_event(db, "schedule_run", job_id, 0, NULL, "schedule %" PRId64 " '%s' due %s: job %" PRId64,
                    run->schedule_id, run->name, due, job_id);
    else if (strcmp(outcome, "invalid") == 0)
        mg_db_event(db, "schedule_invalid", 0, 0, NULL, "schedule %" PRId64 " '%s' due %s: %s", run->schedule_id,
                    run->name, due, err);
    if (mg_db_commit(db) != 0) return -1;
    *job_id_out = job_id;
    return made;
}
