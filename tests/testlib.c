/* testlib.c - the shared test scaffolding declared in tests/testlib.h: linked into every test
 * binary of tests/ (Makefile) and into the GPU machine's test_cuda (bench/cuda/Makefile, with
 * -DMG_TEST_KERNELS_ONLY). A helper that cannot do its part fails the running cmocka test.
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MG_NO_CMOCKA
#include <cmocka.h>
#endif

#include "tests/testlib.h"

#ifndef MG_TEST_KERNELS_ONLY
#include "common/util.h"
#endif

/* Ends the running test with the message. The cmocka shim of the GPU machine
 * (tests/cuda/cmocka_shim.h) keeps its state in the test's own file, out of reach here:
 * there the process aborts, which tests/run.sh counts as a failure. */
static void s_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void s_fail(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
#ifndef MG_NO_CMOCKA
    print_error("ERROR: %s\n", msg);
    fail();
#else
    fprintf(stderr, "error: %s\n", msg);
#endif
    abort();
}

/* ---- the repository ------------------------------------------------------------------ */

const char *mg_test_root(void)
{
    static const char *const roots[] = {".", "..", NULL};
    for (int i = 0; roots[i]; i++) {
        char p[64];
        snprintf(p, sizeof p, "%s/tests/testlib.h", roots[i]);
        if (access(p, R_OK) == 0) return roots[i];
    }
    return ".";
}

const char *mg_test_path(const char *rel)
{
    static char buf[8][1024];
    static int k;
    static const char *const roots[] = {".", "..", NULL};
    k = (k + 1) % 8;
    for (int i = 0; roots[i]; i++) {
        snprintf(buf[k], sizeof buf[k], "%s/%s", roots[i], rel);
        if (access(buf[k], R_OK) == 0) return buf[k];
    }
    snprintf(buf[k], sizeof buf[k], "%s/%s", mg_test_root(), rel);
    return buf[k];
}

const char *mg_test_bin(void)
{
    const char *bin = getenv("MG_BIN");
    return bin && *bin ? bin : "bin";
}

/* ---- floats against a reference ------------------------------------------------------ */

#define S_WORST 5

int mg_test_compare(const char *what, const float *got, const float *want, size_t n, double atol, double rtol)
{
    /* the S_WORST largest excesses over the tolerance, largest first (a NaN is the largest) */
    size_t worst_i[S_WORST];
    double worst_x[S_WORST];
    int n_worst = 0, bad = 0;
    double maxd = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double tol = atol + rtol * fabs((double)want[i]);
        if (d > maxd || d != d) maxd = d;
        if (d <= tol) continue;
        bad++;
        double x = d != d ? INFINITY : d - tol;
        int at = n_worst < S_WORST ? n_worst++ : S_WORST;
        if (at == S_WORST && !(x > worst_x[S_WORST - 1])) continue;
        if (at == S_WORST) at = S_WORST - 1;
        while (at > 0 && x > worst_x[at - 1]) {
            worst_x[at] = worst_x[at - 1];
            worst_i[at] = worst_i[at - 1];
            at--;
        }
        worst_x[at] = x;
        worst_i[at] = i;
    }
    /* printed in index order */
    for (int a = 1; a < n_worst; a++)
        for (int b = a; b > 0 && worst_i[b] < worst_i[b - 1]; b--) {
            size_t ti = worst_i[b];
            worst_i[b] = worst_i[b - 1];
            worst_i[b - 1] = ti;
        }
    for (int a = 0; a < n_worst; a++) {
        size_t i = worst_i[a];
        fprintf(stderr, "%s[%zu]: got %.9g, reference %.9g, |diff| %.3g\n", what, i, got[i], want[i],
                fabs((double)got[i] - (double)want[i]));
    }
    fprintf(stderr, "%s: %zu values, max |diff| %.3g, %d outside tolerance\n", what, n, maxd, bad);
    return bad;
}

/* A tensor of the fixture that must be there. */
static const void *s_tensor(const mg_nn_file_t *f, const char *name, int *missing, char *err, size_t errlen)
{
    const mg_nn_tensor_t *t = mg_nn_file_tensor(f, name);
    if (!t && !*missing) {
        snprintf(err, errlen, "%s: no tensor '%s' (written by models/train/golden.py)", f->path, name);
        *missing = 1;
    }
    return t ? t->data : NULL;
}

int mg_test_golden_load(mg_test_golden_t *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof *g);
    if (mg_nn_file_load(mg_test_path("tests/data/model/golden.mgnn"), &g->fx, err, errlen) != 0 ||
        mg_wavernn_load(mg_test_path("tests/data/model/tiny.mgnn"), &g->model, err, errlen) != 0) {
        mg_test_golden_free(g);
        return -1;
    }
    const mg_nn_file_t *f = g->fx;
    const mg_nn_tensor_t *notes = mg_nn_file_tensor(f, "notes"), *sampled = mg_nn_file_tensor(f, "sampled");
    const mg_nn_hparam_t *cls = mg_nn_file_hparam(f, "class"), *stride = mg_nn_file_hparam(f, "stride"),
                         *temperature = mg_nn_file_hparam(f, "temperature");
    const char *seed = mg_nn_file_meta(f, "seed"), *stream = mg_nn_file_meta(f, "stream");
    if (!notes || !sampled || !cls || !stride || !temperature || !seed || !stream) {
        snprintf(err, errlen, "%s: notes, sampled, class, stride, temperature, seed or stream missing", f->path);
        mg_test_golden_free(g);
        return -1;
    }
    g->n_notes = (size_t)notes->dims[0];
    for (size_t i = 0; i < g->n_notes && i < 16; i++) {
        const int32_t *r = (const int32_t *)notes->data + 4 * i;
        g->notes[i] = (mg_wavernn_note_t){r[0], r[1], r[2], r[3]};
    }
    g->cls = cls->value.i;
    g->stride = stride->value.i;
    g->temperature = temperature->value.f;
    g->seed = strtoull(seed, NULL, 10);
    g->stream = strtoull(stream, NULL, 10);
    g->T = (int)sampled->dims[0];
    int missing = 0;
    g->cond = s_tensor(f, "cond", &missing, err, errlen);
    g->exc = s_tensor(f, "exc", &missing, err, errlen);
    g->h = s_tensor(f, "h", &missing, err, errlen);
    g->logits = s_tensor(f, "logits", &missing, err, errlen);
    g->audio = s_tensor(f, "audio", &missing, err, errlen);
    g->q_in = s_tensor(f, "q_in", &missing, err, errlen);
    g->sampled = sampled->data;
    g->vin = s_tensor(f, "vin", &missing, err, errlen);
    g->emb = s_tensor(f, "emb", &missing, err, errlen);
    g->coef = s_tensor(f, "coef", &missing, err, errlen);
    g->basis = s_tensor(f, "basis", &missing, err, errlen);
    g->pred = s_tensor(f, "pred", &missing, err, errlen);
    if (missing) {
        mg_test_golden_free(g);
        return -1;
    }
    return 0;
}

void mg_test_golden_free(mg_test_golden_t *g)
{
    mg_nn_file_destroy(&g->fx);
    mg_wavernn_destroy(&g->model);
    memset(g, 0, sizeof *g);
}

/* ---- time ---------------------------------------------------------------------------- */

double mg_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void mg_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- temp folders and files ---------------------------------------------------------- */

static const char *s_tmp(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

char *mg_test_tmpdir_make(char *dir, size_t len, const char *name)
{
    if ((size_t)snprintf(dir, len, "%s/mg-test-%s-XXXXXX", s_tmp(), name) >= len)
        s_fail("temp folder name for '%s' longer than %zu bytes (TMPDIR=%s)", name, len, s_tmp());
    if (!mkdtemp(dir)) s_fail("cannot make the temp folder %s: %s", dir, strerror(errno));
    return dir;
}

static int s_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0) fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

void mg_test_tmpdir_remove(const char *dir)
{
    if (!dir || !*dir) return;
    if (getenv("MG_KEEP_TEST_HOME")) {
        fprintf(stderr, "MG_KEEP_TEST_HOME: kept %s\n", dir);
        return;
    }
    nftw(dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void s_write_all(int fd, const void *data, size_t len, const char *path)
{
    const unsigned char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) s_fail("cannot write %s: %s", path, strerror(errno));
        off += (size_t)w;
    }
    if (close(fd) != 0) s_fail("cannot close %s: %s", path, strerror(errno));
}

void mg_test_temp_write(const char *name, const char *suffix, const void *data, size_t len, char *path,
                        size_t pathlen)
{
    if ((size_t)snprintf(path, pathlen, "%s/mg-test-%s-XXXXXX%s", s_tmp(), name, suffix) >= pathlen)
        s_fail("temp file name for '%s' longer than %zu bytes (TMPDIR=%s)", name, pathlen, s_tmp());
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) s_fail("cannot make the temp file %s: %s", path, strerror(errno));
    s_write_all(fd, data, len, path);
}

void mg_test_file_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) s_fail("cannot create %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    if (fwrite(text, 1, len, f) != len || fclose(f) != 0) s_fail("cannot write %s", path);
}

/* ---- shell commands ------------------------------------------------------------------ */

static void s_vformat(char *cmd, size_t len, const char *fmt, va_list ap)
{
    if ((size_t)vsnprintf(cmd, len, fmt, ap) >= len) s_fail("command longer than %zu bytes: %.200s...", len, cmd);
}

static int s_status(int st) { return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1; }

int mg_test_sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    s_vformat(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return s_status(system(cmd));
}

char *mg_test_run(int *status, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    s_vformat(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p) s_fail("cannot run %s: %s", cmd, strerror(errno));
    size_t cap = 1 << 16, len = 0, got;
    char *out = malloc(cap);
    if (!out) s_fail("out of memory reading the output of %s", cmd);
    while ((got = fread(out + len, 1, cap - 1 - len, p)) > 0) {
        len += got;
        if (cap - 1 - len == 0) {
            char *bigger = realloc(out, cap * 2);
            if (!bigger) s_fail("out of memory reading the output of %s", cmd);
            out = bigger;
            cap *= 2;
        }
    }
    out[len] = 0;
    *status = s_status(pclose(p));
    return out;
}

#ifndef MG_TEST_KERNELS_ONLY
/* ---- SQLite -------------------------------------------------------------------------- */

sqlite3 *mg_test_db_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        s_fail("cannot open the database %s: %s", path, why);
    }
    sqlite3_busy_timeout(db, MG_TEST_BUSY_TIMEOUT_MS);
    char *msg = NULL;
    if (sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, &msg) != SQLITE_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        sqlite3_close(db);
        s_fail("cannot configure the database %s: %s", path, why);
    }
    return db;
}

void mg_test_db_close(sqlite3 **db_p)
{
    if (!db_p || !*db_p) return;
    sqlite3_close(*db_p);
    *db_p = NULL;
}

/* Prepares fmt formatted with ap; steps it once. Returns the statement (the caller finalizes
 * it) and in *row whether it gave a row. */
static sqlite3_stmt *s_query(sqlite3 *db, int *row, const char *fmt, va_list ap)
{
    char sql[8192];
    if ((size_t)vsnprintf(sql, sizeof sql, fmt, ap) >= sizeof sql)
        s_fail("SQL longer than %zu bytes: %.200s", sizeof sql, sql);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) s_fail("%s: %s", sql, sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        char why[512];
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        s_fail("%s: %s", sql, why);
    }
    *row = rc == SQLITE_ROW;
    return st;
}

int64_t mg_test_sql_int(sqlite3 *db, const char *fmt, ...)
{
    int row;
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = s_query(db, &row, fmt, ap);
    va_end(ap);
    int64_t v = row && sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_int64(st, 0) : MG_TEST_SQL_NONE;
    sqlite3_finalize(st);
    return v;
}

const char *mg_test_sql_text(sqlite3 *db, const char *fmt, ...)
{
    static char bufs[8][4096];
    static int k;
    k = (k + 1) % 8;
    int row;
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = s_query(db, &row, fmt, ap);
    va_end(ap);
    if (!row) snprintf(bufs[k], sizeof bufs[k], "<none>");
    else if (sqlite3_column_type(st, 0) == SQLITE_NULL) snprintf(bufs[k], sizeof bufs[k], "<null>");
    else snprintf(bufs[k], sizeof bufs[k], "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return bufs[k];
}

void mg_test_sql_exec(sqlite3 *db, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    if ((size_t)n >= sizeof sql) s_fail("SQL longer than %zu bytes: %.200s", sizeof sql, sql);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        s_fail("%s: %s", sql, why);
    }
}

/* ---- job files and a store ----------------------------------------------------------- */

void mg_test_log_quiet(const char *program)
{
    if (!getenv("MG_LOG_LEVEL")) setenv("MG_LOG_LEVEL", "1", 1);
    mg_log_init(program);
}

mg_job_t *mg_test_job_parse(const char *yaml)
{
    char err[4096] = "";
    mg_job_t *job = NULL;
    if (mg_job_parse_buffer("t.yaml", yaml, strlen(yaml), &job, err, sizeof err) != 0 || !job)
        s_fail("the job did not parse:\n%s", err);
    return job;
}

void mg_test_store_open(mg_test_store_t *t)
{
    char err[512] = "";
    t->s = mg_store_open(t->db_path, t->out_path, &t->policy, err, sizeof err);
    if (!t->s) s_fail("mg_store_open: %s", err);
}

mg_test_store_t *mg_test_store_new(const char *name, const mg_store_policy_t *policy)
{
    mg_test_store_t *t = calloc(1, sizeof *t);
    if (!t) s_fail("out of memory");
    mg_test_tmpdir_make(t->dir, sizeof t->dir, name);
    snprintf(t->db_path, sizeof t->db_path, "%s/mg.db", t->dir);
    snprintf(t->out_path, sizeof t->out_path, "%s/outputs", t->dir);
    t->policy = *policy;
    mg_test_store_open(t);
    t->db = mg_test_db_open(t->db_path);
    return t;
}

void mg_test_store_destroy(mg_test_store_t **t_p)
{
    if (!t_p || !*t_p) return;
    mg_test_store_t *t = *t_p;
    mg_test_db_close(&t->db);
    mg_store_close(&t->s);
    mg_test_tmpdir_remove(t->dir);
    free(t);
    *t_p = NULL;
}
#endif

#ifndef MG_TEST_KERNELS_ONLY
/* ---- a farm ---------------------------------------------------------------------------- */

/* dst = src made absolute against the current folder: mgctl may run in another one. */
static void s_abs_path(char *dst, size_t len, const char *src)
{
    char cwd[256];
    if (src[0] == '/' || !getcwd(cwd, sizeof cwd)) snprintf(dst, len, "%s", src);
    else snprintf(dst, len, "%s/%s", cwd, src);
}

/* A TCP port of 127.0.0.1 that nothing is bound to now, as the kernel picks one for bind(0);
 * -1 when there is none. */
static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

mg_test_farm_t *mg_test_farm_new(const char *name)
{
    mg_test_farm_t *f = calloc(1, sizeof *f);
    if (!f) s_fail("out of memory");
    mg_test_tmpdir_make(f->home, sizeof f->home, name);
    /* A port free when the farm is made, so that neither test binaries run side by side nor
     * other checkouts' tests on the machine collide with it (a port computed from the pid can);
     * the coordinator binds it soon after. */
    static int n;
    int port = s_free_port();
    if (port <= 0) port = 20000 + (getpid() * 7 + n++ * 13) % 20000;
    snprintf(f->endpoint, sizeof f->endpoint, "tcp://127.0.0.1:%d", port);
    const char *build = getenv("MG_BUILD");
    s_abs_path(f->bin, sizeof f->bin, mg_test_bin());
    s_abs_path(f->build, sizeof f->build, build && *build ? build : "build");
    return f;
}

void mg_test_farm_destroy(mg_test_farm_t **f_p)
{
    if (!f_p || !*f_p) return;
    mg_test_farm_t *f = *f_p;
    for (int i = 0; i < f->n_workers; i++) mg_test_farm_reap(&f->workers[i]);
    mg_test_farm_reap(&f->coordinator);
    mg_test_tmpdir_remove(f->home);
    free(f);
    *f_p = NULL;
}

int mg_test_farm_teardown(void **state)
{
    mg_test_farm_t *f = *state;
    mg_test_farm_destroy(&f);
    *state = NULL;
    return 0;
}

pid_t mg_test_farm_spawn(const mg_test_farm_t *f, char *const argv[], const char *const *env, const char *log_name)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        char log[512];
        snprintf(log, sizeof log, "%s/%s.log", f->home, log_name);
        if (!freopen(log, "a", stderr)) _exit(127);
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        setenv("MG_HOME", f->home, 1);
        setenv("MG_ENDPOINT", f->endpoint, 1);
        if (f->log_level) setenv("MG_LOG_LEVEL", f->log_level, 1);
        for (int i = 0; env && env[i]; i++) putenv(strdup(env[i]));
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Starts program with the options args (NULL-terminated, at most 30). */
static pid_t s_farm_start(const mg_test_farm_t *f, const char *program, const char *const *pre,
                          const char *const *args, const char *const *env, const char *log_name)
{
    char *argv[48];
    int n = 0;
    argv[n++] = (char *)program;
    for (int i = 0; pre && pre[i]; i++) argv[n++] = (char *)pre[i];
    for (int i = 0; args && args[i]; i++) {
        if (n >= 46) s_fail("more than %d options for %s", 44, program);
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    pid_t pid = mg_test_farm_spawn(f, argv, env, log_name);
    if (pid <= 0) s_fail("cannot start %s: %s", program, strerror(errno));
    return pid;
}

void mg_test_farm_start_coordinator(mg_test_farm_t *f, const char *const *args, const char *const *env)
{
    char path[600];
    snprintf(path, sizeof path, "%s/mg-coordinator", f->bin);
    f->coordinator = s_farm_start(f, path, NULL, args, env, "coordinator");
}

int mg_test_farm_start_worker(mg_test_farm_t *f, const char *log_name, const char *const *args,
                              const char *const *env)
{
    if (f->n_workers >= MG_TEST_FARM_MAX_WORKERS) s_fail("more than %d workers", MG_TEST_FARM_MAX_WORKERS);
    char path[600];
    snprintf(path, sizeof path, "%s/tests/mg-worker-test", f->build);
    static const char *const pre[] = {"--renderer", "test", NULL};
    f->workers[f->n_workers] = s_farm_start(f, path, pre, args, env, log_name);
    return f->n_workers++;
}

void mg_test_farm_reap(pid_t *pid)
{
    if (*pid <= 0) return;
    kill(*pid, SIGCONT);
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

int mg_test_farm_mgctl(mg_test_farm_t *f, char *out, size_t outlen, const char *dir, const char *fmt, ...)
{
    char args[2048], cmd[8192], errpath[300];
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)vsnprintf(args, sizeof args, fmt, ap) >= sizeof args) s_fail("mgctl arguments too long: %.200s", args);
    va_end(ap);
    snprintf(errpath, sizeof errpath, "%s/mgctl.err", f->home);
    int n = snprintf(cmd, sizeof cmd, "cd '%s' && MG_HOME='%s' MG_ENDPOINT='%s' '%s/mgctl' %s ", dir ? dir : f->home,
                     f->home, f->endpoint, f->bin, args);
    if (!out) snprintf(cmd + n, sizeof cmd - (size_t)n, ">>'%s/mgctl.log' 2>&1", f->home);
    else snprintf(cmd + n, sizeof cmd - (size_t)n, "2>'%s'", errpath);
    f->err[0] = 0;
    if (!out) {
        int st = mg_test_sh("%s", cmd);
        if (getenv("MG_TEST_VERBOSE"))
            fprintf(stderr, "$ mgctl %s (exit %d, output in %s/mgctl.log)\n", args, st, f->home);
        return st;
    }
    int st;
    char *o = mg_test_run(&st, "%s", cmd);
    snprintf(out, outlen, "%s", o);
    free(o);
    size_t elen = 0;
    char *e = mg_read_file(errpath, &elen);
    snprintf(f->err, sizeof f->err, "%s", e ? e : "");
    free(e);
    if (f->mgctl_err_in_out) {
        size_t used = strlen(out);
        if (used + 1 < outlen) snprintf(out + used, outlen - used, "%s", f->err);
    }
    if (getenv("MG_TEST_VERBOSE")) fprintf(stderr, "$ mgctl %s (exit %d)\n%s%s", args, st, out, f->err);
    return st;
}

void mg_test_farm_write(const mg_test_farm_t *f, const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", f->home, name);
    mg_test_file_write(path, text);
}

sqlite3 *mg_test_farm_db(const mg_test_farm_t *f)
{
    char path[300];
    snprintf(path, sizeof path, "%s/mg.db", f->home);
    return mg_test_db_open(path);
}

enum { S_SQL_INT, S_SQL_TEXT, S_SQL_EXEC };

/* The query fmt on a connection opened for it alone: its integer (S_SQL_INT), its text into
 * *text (S_SQL_TEXT), or run as statements (S_SQL_EXEC). */
static int64_t s_farm_sql(const mg_test_farm_t *f, int kind, const char **text, const char *fmt, va_list ap)
{
    char sql[4096];
    if ((size_t)vsnprintf(sql, sizeof sql, fmt, ap) >= sizeof sql)
        s_fail("SQL longer than %zu bytes: %.200s", sizeof sql, sql);
    sqlite3 *db = mg_test_farm_db(f);
    int64_t v = 0;
    if (kind == S_SQL_INT) v = mg_test_sql_int(db, "%s", sql);
    else if (kind == S_SQL_TEXT) *text = mg_test_sql_text(db, "%s", sql);
    else mg_test_sql_exec(db, "%s", sql);
    mg_test_db_close(&db);
    return v;
}

int64_t mg_test_farm_sql_int(const mg_test_farm_t *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int64_t v = s_farm_sql(f, S_SQL_INT, NULL, fmt, ap);
    va_end(ap);
    return v;
}

const char *mg_test_farm_sql_text(const mg_test_farm_t *f, const char *fmt, ...)
{
    const char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    s_farm_sql(f, S_SQL_TEXT, &text, fmt, ap);
    va_end(ap);
    return text;
}

void mg_test_farm_sql_exec(const mg_test_farm_t *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_farm_sql(f, S_SQL_EXEC, NULL, fmt, ap);
    va_end(ap);
}

/* The first value of the query sql into *v (MG_TEST_SQL_NONE for NULL or no row): 0, or -1 with
 * SQLite's message in why when the database cannot be read yet (not made, schema not there). */
static int s_farm_try_int(const mg_test_farm_t *f, const char *sql, int64_t *v, char *why, size_t whylen)
{
    char path[300];
    snprintf(path, sizeof path, "%s/mg.db", f->home);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, MG_TEST_BUSY_TIMEOUT_MS);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
            int step = sqlite3_step(st);
            if (step == SQLITE_ROW || step == SQLITE_DONE) {
                *v = step == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_int64(st, 0)
                                                                                     : MG_TEST_SQL_NONE;
                rc = 0;
            }
        }
    }
    if (rc != 0) snprintf(why, whylen, "%s", db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

void mg_test_farm_wait_log(const mg_test_farm_t *f, const char *name, const char *text, int timeout_ms)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.log", f->home, name);
    for (int t = 0; t < timeout_ms; t += 20) {
        size_t len = 0;
        char *log = mg_read_file(path, &len);
        int found = log && strstr(log, text);
        free(log);
        if (found) return;
        mg_test_sleep_ms(20);
    }
    fail_msg("no '%s' in %s within %d ms", text, path, timeout_ms);
}

void mg_test_farm_wait_sql(const mg_test_farm_t *f, int64_t want, int timeout_ms, const char *sql)
{
    int64_t got = -2;
    char why[512] = "";
    for (int t = 0; t < timeout_ms; t += 20) {
        if (s_farm_try_int(f, sql, &got, why, sizeof why) == 0) {
            if (got == want) return;
            why[0] = 0;
        }
        mg_test_sleep_ms(20);
    }
    s_fail("timed out after %d ms waiting for [%s] = %lld (last %lld%s%s); logs in %s", timeout_ms, sql,
           (long long)want, (long long)got, *why ? ", last error: " : "", why, f->home);
}
#endif
