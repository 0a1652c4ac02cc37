/* db.h - the coordinator's SQLite connection: open, pragmas, schema migrations, and the
 * few statement helpers the store uses. One connection, used from the coordinator's
 * single thread. Every write goes through mg_db_begin (BEGIN IMMEDIATE) / mg_db_commit.
 */
#ifndef MG_DB_H
#define MG_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Opens (creating if needed) the database at path, sets WAL, synchronous=FULL (an
 * acknowledged commit survives power loss), foreign_keys, busy_timeout, and applies the
 * migrations of schema.sql above the file's user_version. Returns a connection the caller
 * owns (mg_db_close), or NULL with a message in err. */
sqlite3 *mg_db_open(const char *path, char *err, size_t errlen);
void mg_db_close(sqlite3 **db_p);

/* Applies pending "-- migrate: N" blocks of schema_text. Exposed for the migration tests.
 * Returns the resulting user_version, or -1 with a message in err. */
int mg_db_migrate(sqlite3 *db, const char *schema_text, char *err, size_t errlen);
int mg_db_user_version(sqlite3 *db);
/* The schema text compiled in from schema.sql. */
extern const char mg_schema_sql[];

int mg_db_begin(sqlite3 *db);    /* BEGIN IMMEDIATE; 0 or -1 */
int mg_db_commit(sqlite3 *db);   /* 0 or -1 (then the transaction is rolled back) */
void mg_db_rollback(sqlite3 *db);
int mg_db_exec(sqlite3 *db, const char *sql); /* 0 or -1, logs the error */

/* Prepares sql, binds args by the letters of types ('i' int64, 's' text or NULL, 'd'
 * double, 'n' null), steps once. For statements without rows; returns 0 or -1. */
int mg_db_run(sqlite3 *db, const char *sql, const char *types, ...);
/* Same, for a query returning one int64 in its first column (dflt when no row). */
int64_t mg_db_int(sqlite3 *db, int64_t dflt, const char *sql, const char *types, ...);
/* Prepares and binds; the caller steps and finalizes. NULL on error (logged). */
sqlite3_stmt *mg_db_prepare(sqlite3 *db, const char *sql, const char *types, ...);

/* Appends an event row (the log `mgctl watch` follows). job_id/render_id 0 = none. */
void mg_db_event(sqlite3 *db, const char *kind, int64_t job_id, int64_t render_id,
                 const char *worker, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
