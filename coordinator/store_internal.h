/* store_internal.h - what the files of the store share and nobody else sees: the struct behind
 * mg_store_t and the helpers that work inside a transaction the store already opened.
 *
 * Included by store.c, store_*.c (the writes, split by topic) and query.c (the read-only
 * client queries, which need the connection). tests/test_layering.c fails the build when any
 * other file includes it or writes SQL.
 */
#ifndef MG_STORE_INTERNAL_H
#define MG_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Folders remembered for one fsync each before the next result commit; more and the
 * store syncs at once. */
#define MG_STORE_MAX_DIRTY 64

struct mg_store {
    sqlite3 *db;             /* owned; used from the coordinator's one thread only */
    char outputs_dir[4096];  /* $MG_HOME/outputs */
    mg_store_policy_t policy;
    char dirty[MG_STORE_MAX_DIRTY][4200]; /* folders to fsync before the next result commit */
    int n_dirty;
};

/* mg_store_submit inside a transaction the caller opened (mg_db_begin) and will commit or
 * roll back: the scheduler creates a job and its schedule_runs row in one transaction. */
int mg_store_submit_tx(mg_store_t *s, const mg_job_t *job, const char *source_name,
                       const char *source_text, int64_t schedule_id, int64_t *job_id,
                       size_t *renders, int *duplicate, char *err, size_t errlen);

/* Text column col of st copied into dst (truncated; "" for NULL). */
void mg_store_col_text(sqlite3_stmt *st, int col, char *dst, size_t dstlen);

#endif
