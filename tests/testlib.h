/* testlib.h - the scaffolding every test in tests/ shares, linked into each test binary by the
 * Makefile: files of the repository found from the root or from tests/, the tolerance check of
 * float arrays (CPU and CUDA tests alike) and the golden model fixture, time, temp folders and
 * files, shell commands, and (not on the GPU machine) SQL on a connection of the test's own,
 * job files, a store in a temp folder, and a farm of real coordinator and worker processes.
 *
 * A helper that cannot do its part (a folder that cannot be made, SQL that does not prepare)
 * fails the running test with the reason, as the cmocka assertion in the test would; the
 * callers check only what they test. With MG_TEST_KERNELS_ONLY defined (tests/cuda/test_cuda.c
 * defines it; bench/cuda/Makefile builds testlib.c with it for the GPU machine, which has libc,
 * kernels/ and CUDA but no SQLite nor libmg) the helpers below the marked line are left out;
 * without cmocka (-DMG_NO_CMOCKA) a failing helper aborts.
 */
#ifndef MG_TESTLIB_H
#define MG_TESTLIB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kernels/model_file.h"
#include "kernels/wavernn.h"

/* ---- the repository ------------------------------------------------------------------ */

/* The repository root as seen from the current folder: "." where `make test` runs, ".." from
 * tests/. The string is static. */
const char *mg_test_root(void);

/* "<root>/rel" for a file of the repository (rel relative to its root, e.g.
 * "tests/data/model/tiny.mgnn"), found from "." or ".."; where neither has it, the path from
 * mg_test_root(). The string is owned by testlib and stays valid for the next 7 calls. */
const char *mg_test_path(const char *rel);

/* The folder of the binaries under test: $MG_BIN (the Makefile exports it), else "bin". */
const char *mg_test_bin(void);

/* ---- floats against a reference ------------------------------------------------------ */

/* Compares got[0..n) with want[0..n): each value must satisfy
 * |got - want| <= atol + rtol * |want| (a NaN never does). Prints, to stderr, the worst
 * mismatches (at most 5, in index order) and a line with the count, the max |diff| and the
 * number outside tolerance, all labelled `what`. Returns the number of mismatches. */
int mg_test_compare(const char *what, const float *got, const float *want, size_t n, double atol, double rtol);

/* The golden fixture tests/data/model/golden.mgnn, written by models/train/golden.py from the
 * random-weights model tests/data/model/tiny.mgnn: one stem's notes and keying, and what
 * PyTorch computed for it. Every array points into fx. */
typedef struct {
    mg_nn_file_t *fx;                /* owned: the fixture file */
    mg_wavernn_model_t *model;       /* owned: tiny.mgnn */
    mg_wavernn_note_t notes[16];
    size_t n_notes;
    int cls, stride, T;              /* class, h/logits stored every stride samples, samples */
    uint64_t seed, stream;
    float temperature;
    const float *cond;               /* (T / MG_WR_FRAME, MG_WR_COND_DIM) */
    const float *exc;                /* (T, MG_WR_EXC_DIM) */
    const float *h;                  /* (ceil(T / stride), hidden) GRU state */
    const float *logits;             /* (ceil(T / stride), MG_WR_LEVELS) */
    const float *audio;              /* (T) */
    const float *vin;                /* (T / MG_WR_FRAME, MG_WR_VOICES, 2 * MG_WR_VOICE_DIM) */
    const float *coef;               /* (T / MG_WR_FRAME, MG_WR_VOICES, 2 * MG_WR_PRED_DIM) */
    const float *basis;              /* (ceil(T / stride), MG_WR_VOICES, MG_WR_PRED_DIM) */
    const float *pred;               /* (T) harmonic prediction */
    const int32_t *q_in;             /* (T) teacher-forced input levels */
    const int32_t *sampled;          /* (T) levels drawn */
    const int32_t *emb;              /* (T / MG_WR_FRAME, MG_WR_VOICES) */
} mg_test_golden_t;

/* Loads the fixture and its model into *g (found with mg_test_path). Returns 0, or -1 with
 * the reason in err (a file missing, a tensor or parameter missing); then *g holds nothing.
 * The caller frees what *g holds with mg_test_golden_free. */
int mg_test_golden_load(mg_test_golden_t *g, char *err, size_t errlen);
/* Frees the file and the model *g holds and clears *g; the struct stays the caller's. */
void mg_test_golden_free(mg_test_golden_t *g);

/* ---- time ---------------------------------------------------------------------------- */

/* Milliseconds on the monotonic clock (for durations only). */
double mg_test_now_ms(void);
/* Sleeps ms milliseconds, resumed after signals. */
void mg_test_sleep_ms(int ms);

/* ---- temp folders and files ---------------------------------------------------------- */

/* Makes a new folder "$TMPDIR/mg-test-<name>-XXXXXX" (/tmp without TMPDIR) and writes its
 * path into dir[0..len); returns dir. Fails the test if it cannot. The folder is the
 * caller's, to remove with mg_test_tmpdir_remove. */
char *mg_test_tmpdir_make(char *dir, size_t len, const char *name);
/* Removes dir and everything below it (links are removed, not followed). With
 * MG_KEEP_TEST_HOME set, keeps it and says where it is, for a look after a failure. */
void mg_test_tmpdir_remove(const char *dir);

/* Writes len bytes to a new file "$TMPDIR/mg-test-<name>-XXXXXX<suffix>" and its path into
 * path[0..pathlen). Fails the test if it cannot. The caller unlinks the file. */
void mg_test_temp_write(const char *name, const char *suffix, const void *data, size_t len, char *path,
                        size_t pathlen);
/* Writes text to path (created or truncated). Fails the test if it cannot. */
void mg_test_file_write(const char *path, const char *text);

/* ---- shell commands ------------------------------------------------------------------ */

/* Runs the command line fmt (printf-style, at most 8 KiB) with sh. Returns its exit status,
 * -1 if it did not exit (a signal). */
int mg_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, capturing its standard output: returns it NUL-terminated (the caller frees it)
 * and the exit status in *status (-1 if it did not exit). Fails the test if the command
 * cannot be started. */
char *mg_test_run(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifndef MG_TEST_KERNELS_ONLY
/* ---- below: SQLite, libmg and the coordinator (not on the GPU machine) ---------------- */

#include <sqlite3.h>

#include "common/jobspec.h"
#include "coordinator/store.h"

/* A first-column value that is NULL, or a query without a row. */
#define MG_TEST_SQL_NONE INT64_MIN
/* How long the test's connection waits for another's lock: the store's (coordinator/db.c). */
#define MG_TEST_BUSY_TIMEOUT_MS 5000

/* Opens a second read-write connection to the existing database file at path, next to the
 * one a store or a coordinator holds (WAL lets both work; the test's reads see what the
 * other side committed). The busy timeout is MG_TEST_BUSY_TIMEOUT_MS, so a write waits for
 * the other side's transaction to end; foreign keys are enforced as on the store's connection.
 * Fails the test if the file cannot be opened. The caller closes it (mg_test_db_close). */
sqlite3 *mg_test_db_open(const char *path);
/* Closes *db_p (NULL is fine) and sets it to NULL. */
void mg_test_db_close(sqlite3 **db_p);

/* The query fmt (printf-style) on db: its first row's first column as an integer;
 * MG_TEST_SQL_NONE when NULL or there is no row. Fails the test on an SQL error. */
int64_t mg_test_sql_int(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same as text: "<null>" for NULL, "<none>" without a row; at most 4095 bytes. The
 * string is owned by testlib and stays valid for the next 7 calls. */
const char *mg_test_sql_text(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs the statements fmt (printf-style) on db. Fails the test on an SQL error. */
void mg_test_sql_exec(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The log of the code under test (common/util.h), for a test binary named program: errors
 * and warnings only (MG_LOG_LEVEL=1) unless MG_LOG_LEVEL is set, so that the failures the tests
 * provoke do not fill the output. */
void mg_test_log_quiet(const char *program);

/* Parses a job file's text (named "t.yaml" in messages). Fails the test, printing the errors,
 * if it does not parse. Returns a job the caller owns (mg_job_destroy). */
mg_job_t *mg_test_job_parse(const char *yaml);

/* A store in a new temp folder (mg_test_tmpdir_make): the database dir/mg.db, the outputs
 * dir/outputs, and the test's own connection to the same database (mg_test_db_open), which
 * is what the tests query and alter: the store's handle is its own. */
typedef struct {
    char dir[256];
    char db_path[320];
    char out_path[320];
    mg_store_policy_t policy;
    mg_store_t *s;                   /* owned */
    sqlite3 *db;                     /* owned: the test's connection */
} mg_test_store_t;

/* Makes the folder "mg-test-<name>-XXXXXX" and opens the store in it with *policy. Fails the
 * test if it cannot. Returns a fixture the caller owns (mg_test_store_destroy). */
mg_test_store_t *mg_test_store_new(const char *name, const mg_store_policy_t *policy);
/* Opens t->s again with t->policy, after the test closed it (mg_store_close(&t->s)). Fails
 * the test if it cannot. */
void mg_test_store_open(mg_test_store_t *t);
/* Closes the store and the connection, removes the folder (mg_test_tmpdir_remove), frees *t_p
 * and sets it to NULL. NULL is fine. */
void mg_test_store_destroy(mg_test_store_t **t_p);

/* ---- a farm: real processes on loopback ----------------------------------------------- */

/* A coordinator (bin/mg-coordinator) and test workers ($MG_BUILD/tests/mg-worker-test, the
 * product worker with the test renderer) as child processes sharing one MG_HOME in a temp
 * folder, each writing its log to HOME/<log name>.log; the test drives them with mgctl and
 * reads the coordinator's database with a connection of its own (WAL). */
#define MG_TEST_FARM_MAX_WORKERS 8

typedef struct {
    char home[256];                  /* MG_HOME of every process: a temp folder */
    char endpoint[64];               /* tcp://127.0.0.1:PORT, a port free when the farm was made */
    char bin[512], build[512];       /* $MG_BIN and $MG_BUILD (bin, build), made absolute */
    const char *log_level;           /* MG_LOG_LEVEL of the processes; NULL: not set */
    int mgctl_err_in_out;            /* mg_test_farm_mgctl also appends standard error to out */
    pid_t coordinator;               /* 0: none running */
    pid_t workers[MG_TEST_FARM_MAX_WORKERS];
    int n_workers;                   /* started so far (a reaped one stays counted, as 0) */
    char err[65536];                 /* standard error of the last mg_test_farm_mgctl */
} mg_test_farm_t;

/* A farm in the new folder "mg-test-<name>-XXXXXX" (mg_test_tmpdir_make), nothing started.
 * Fails the test if it cannot. The caller owns it (mg_test_farm_destroy). */
mg_test_farm_t *mg_test_farm_new(const char *name);
/* Kills what still runs (mg_test_farm_reap), removes the folder (mg_test_tmpdir_remove),
 * frees *f_p and sets it to NULL. NULL is fine. */
void mg_test_farm_destroy(mg_test_farm_t **f_p);
/* The cmocka teardown of a test or group whose setup left a farm in *state: destroys it. */
int mg_test_farm_teardown(void **state);

/* Starts argv[0] (argv NULL-terminated) with MG_HOME, MG_ENDPOINT, MG_LOG_LEVEL (when
 * f->log_level) and the "NAME=value" entries of env (NULL-terminated, or NULL), its standard
 * error into HOME/<log_name>.log, its standard output to /dev/null. Returns its pid. */
pid_t mg_test_farm_spawn(const mg_test_farm_t *f, char *const argv[], const char *const *env,
                         const char *log_name);
/* Starts bin/mg-coordinator with the options args (NULL-terminated, or NULL) and env as above,
 * logging to coordinator.log; sets f->coordinator. Fails the test if it cannot. */
void mg_test_farm_start_coordinator(mg_test_farm_t *f, const char *const *args, const char *const *env);
/* Starts the test worker with "--renderer test" and the options args, logging to
 * <log_name>.log; returns its index in f->workers. Fails the test if it cannot. */
int mg_test_farm_start_worker(mg_test_farm_t *f, const char *log_name, const char *const *args,
                              const char *const *env);
/* Ends the process *pid (SIGCONT, for a stopped one, then SIGKILL), waits for it and sets
 * *pid to 0. Nothing when *pid <= 0. */
void mg_test_farm_reap(pid_t *pid);

/* Runs bin/mgctl with the farm's MG_HOME and MG_ENDPOINT in folder dir (NULL: the home) with
 * the arguments fmt (printf-style; the caller quotes paths). Its standard output goes into
 * out[0..outlen) (NUL-terminated, truncated), followed by its standard error when
 * f->mgctl_err_in_out; its standard error always into f->err. With out NULL both are appended
 * to HOME/mgctl.log instead. MG_TEST_VERBOSE set: every call is echoed on stderr. Returns the
 * exit status, -1 if mgctl did not exit. */
int mg_test_farm_mgctl(mg_test_farm_t *f, char *out, size_t outlen, const char *dir, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Writes text to HOME/name (created or truncated). Fails the test if it cannot. */
void mg_test_farm_write(const mg_test_farm_t *f, const char *name, const char *text);

/* The test's own connection to HOME/mg.db (mg_test_db_open: the file must exist). */
sqlite3 *mg_test_farm_db(const mg_test_farm_t *f);
/* mg_test_sql_int, mg_test_sql_text and mg_test_sql_exec on a connection opened for the one
 * query (so each sees what the coordinator committed last). */
int64_t mg_test_farm_sql_int(const mg_test_farm_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *mg_test_farm_sql_text(const mg_test_farm_t *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mg_test_farm_sql_exec(const mg_test_farm_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Polls the query sql every 20 ms until its first value is want, a database not made yet or
 * without its schema counting as not yet; after timeout_ms fails the test, naming the query, the
 * last value or error and where the logs are. */
void mg_test_farm_wait_sql(const mg_test_farm_t *f, int64_t want, int timeout_ms, const char *sql);
/* Waits until HOME/<name>.log holds text, or fails the running test after timeout_ms. The
 * database shows a lease once the coordinator has committed it, which can be before the worker
 * has read the LEASE: a signal meant for a worker that is rendering waits for its log line. */
void mg_test_farm_wait_log(const mg_test_farm_t *f, const char *name, const char *text, int timeout_ms);
#endif

#endif
