/* schedule.h - recurring jobs: `mgctl schedule add --cron ... FILE`.
 *
 * A schedule stores a snapshot of the job file and a cron expression (UTC). Every tick
 * the coordinator materialises due runs: the job and its schedule_runs row (primary key
 * schedule id + due time) commit in one transaction, so each due time yields exactly one
 * job, across crashes and restarts too. Missed-run policy (coordinator down over one or
 * more due times): only the latest missed due time is run ("catch up once"); the earlier
 * ones are counted in a 'schedule_missed' event. See docs/schedules.md.
 */
#ifndef MG_SCHEDULE_H
#define MG_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Validates cron and the job text, stores the schedule. Its first run is the first due
 * time after now_ms. 0, or -1 with a message in err (cron or job-file errors). */
int mg_sched_add(mg_store_t *s, const char *cron, const char *name, const char *source_name,
                 const char *source_text, int64_t now_ms, int64_t *id, int64_t *next_due_ms,
                 char *err, size_t errlen);
/* state: "active" | "paused"; MG_STORE_NOT_FOUND if no such schedule. */
int mg_sched_set_state(mg_store_t *s, int64_t id, const char *state);
int mg_sched_remove(mg_store_t *s, int64_t id);
/* The next due time of a schedule, -1 if none. */
int64_t mg_sched_next_due(const char *cron, int64_t last_due_ms);

/* Materialises every due run at now_ms. *jobs_created = how many jobs were submitted. */
int mg_sched_tick(mg_store_t *s, int64_t now_ms, int *jobs_created);

#endif
