/* db.c - SQLite connection, pragmas and forward-only migrations (see db.h, schema.sql). */
#include "db.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/emotion.h"
#include "../common/util.h"

int mg_db_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        mg_err("sqlite: %s (in: %.80s)", msg ? msg : sqlite3_errmsg(db), sql);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int mg_db_begin(sqlite3 *db) { return mg_db_exec(db, "BEGIN IMMEDIATE"); }
void mg_db_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}
int mg_db_commit(sqlite3 *db)
{
    if (mg_db_exec(db, "COMMIT") != 0) {
        mg_db_rollback(db);
        return -1;
    }
    return 0;
}

static int s_bind(sqlite3_stmt *st, const char *types, va_list ap)
{
    int i = 1;
    for (const char *t = types; t && *t; t++, i++) {
        int rc;
        switch (*t) {
        case 'i': rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t)); break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
            break;
        }
        case 'd': rc = sqlite3_bind_double(st, i, va_arg(ap, double)); break;
        case 'n': rc = sqlite3_bind_null(st, i); break;
        default: return -1;
        }
        if (rc != SQLITE_OK) return -1;
    }
    return 0;
}

static sqlite3_stmt *s_vprepare(sqlite3 *db, const char *sql, const char *types, va_list ap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        mg_err("sqlite prepare: %s (in: %.120s)", sqlite3_errmsg(db), sql);
        return NULL;
    }
    if (s_bind(st, types, ap) != 0) {
        mg_err("sqlite bind: %s (in: %.120s)", sqlite3_errmsg(db), sql);
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

sqlite3_stmt *mg_db_prepare(sqlite3 *db, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = s_vprepare(db, sql, types, ap);
    va_end(ap);
    return st;
}

int mg_db_run(sqlite3 *db, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = s_vprepare(db, sql, types, ap);
    va_end(ap);
    if (!st) return -1;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        mg_err("sqlite step: %s (in: %.120s)", sqlite3_errmsg(db), sql);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

int64_t mg_db_int(sqlite3 *db, int64_t dflt, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = s_vprepare(db, sql, types, ap);
    va_end(ap);
    if (!st) return dflt;
    int64_t v = dflt;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

void mg_db_event(sqlite3 *db, const char *kind, int64_t job_id, int64_t render_id,
                 const char *worker, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sqlite3_stmt *st = mg_db_prepare(db,
        "INSERT INTO events (at_ms, kind, job_id, render_id, worker, message) VALUES (?,?,?,?,?,?)",
        "isssss", mg_now_ms(), kind, NULL, NULL, worker, msg);
    if (!st) return;
    if (job_id) sqlite3_bind_int64(st, 3, job_id);
    if (render_id) sqlite3_bind_int64(st, 4, render_id);
    sqlite3_step(st);
    sqlite3_finalize(st);
}

int mg_db_user_version(sqlite3 *db) { return (int)mg_db_int(db, -1, "PRAGMA user_version", ""); }

int mg_db_migrate(sqlite3 *db, const char *schema_text, char *err, size_t errlen)
{
    int current = mg_db_user_version(db);
    if (current < 0) {
        mg_set_error(err, errlen, "cannot read user_version: %s", sqlite3_errmsg(db));
        return -1;
    }
    /* A block marker is a line that starts with "-- migrate: N" (searched with its
     * leading newline, so a prefix is added for a marker on the very first line). */
    const char *marker = "\n-- migrate: ";
    const char *p = strncmp(schema_text, marker + 1, strlen(marker) - 1) == 0 ? schema_text - 1
                                                                            : strstr(schema_text, marker);
    int latest = 0;
    while (p) {
        int version = atoi(p + strlen(marker));
        const char *body = strchr(p + 1, '\n');
        if (!body || version != latest + 1) {
            mg_set_error(err, errlen, "schema.sql: migration blocks must be numbered 1, 2, 3... (found %d after %d)",
                     version, latest);
            return -1;
        }
        const char *next = strstr(body, marker);
        size_t n = next ? (size_t)(next - body) : strlen(body);
        latest = version;
        if (version > current) {
            char *sql = malloc(n + 64);
            if (!sql) { mg_set_error(err, errlen, "out of memory"); return -1; }
            memcpy(sql, body, n);
            snprintf(sql + n, 64, "\nPRAGMA user_version = %d;", version);
            char *msg = NULL;
            if (mg_db_begin(db) != 0 || sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK ||
                mg_db_commit(db) != 0) {
                mg_set_error(err, errlen, "schema migration %d failed: %s", version,
                         msg ? msg : sqlite3_errmsg(db));
                sqlite3_free(msg);
                mg_db_rollback(db);
                free(sql);
                return -1;
            }
            free(sql);
            mg_info("database schema migrated to version %d", version);
        }
        p = next;
    }
    if (current > latest) {
        mg_set_error(err, errlen, "database schema version %d is newer than this coordinator's (%d): upgrade mg",
                 current, latest);
        return -1;
    }
    return latest;
}

static int s_refresh_emotions(sqlite3 *db)
{
    size_t n = 0;
    const mg_emotion_t *t = mg_emotion_table(&n);
    if (mg_db_begin(db) != 0) return -1;
    for (size_t i = 0; i < n; i++) {
        if (mg_db_run(db,
                "INSERT INTO emotion_tags (tag, valence, arousal, family) VALUES (?,?,?,?) "
                "ON CONFLICT (tag) DO UPDATE SET valence = excluded.valence, "
                "arousal = excluded.arousal, family = excluded.family",
                "sdds", t[i].tag, t[i].valence, t[i].arousal, t[i].family) != 0) {
            mg_db_rollback(db);
            return -1;
        }
    }
    return mg_db_commit(db);
}

sqlite3 *mg_db_open(const char *path, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        mg_set_error(err, errlen, "cannot open database %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    if (mg_db_exec(db, "PRAGMA journal_mode = WAL") != 0 ||
        mg_db_exec(db, "PRAGMA synchronous = FULL") != 0 ||
        mg_db_exec(db, "PRAGMA foreign_keys = ON") != 0) {
        mg_set_error(err, errlen, "cannot configure database %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    if (mg_db_migrate(db, mg_schema_sql, err, errlen) < 0 || s_refresh_emotions(db) != 0) {
        if (err && !*err) mg_set_error(err, errlen, "cannot load emotion lexicon: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

void mg_db_close(sqlite3 **db_p)
{
    if (!db_p || !*db_p) return;
    sqlite3_close(*db_p);
    *db_p = NULL;
}
