/* result_transfer.c - a big result's trip from a real worker to a real coordinator on loopback
 * (CHUNKs into outputs/.transfers, checked, renamed, committed). Prints the transfer's
 * throughput, the coordinator's and the worker's peak memory (VmHWM) and the coordinator's CPU
 * per byte, next to the machine's sha256 speed (the coordinator hashes every byte once).
 *
 *   build/bench/result_transfer [MiB]             one transfer (210 MiB by default)
 *   build/bench/result_transfer --sweep [MiB]     chunk size x window, 64 MiB each by default
 *
 * The worker is build/tests/mg-worker-test with MG_TEST_RESULT_BYTES (the test renderer replaces
 * the mix's FLAC by that many pseudo-random bytes: incompressible, no encoding cost). The clock
 * runs from the first byte in .transfers to the render's row turning 'done' (polled every
 * millisecond), so it covers the chunks, the checks, the fsync, the rename and the commit but
 * not the render. MG_BIN / MG_BUILD name the binaries' folders (bin, build).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/protocol.h"
#include "common/util.h"

typedef struct {
    double seconds;       /* first byte at the coordinator -> render recorded */
    long coord_idle_kib;  /* coordinator VmHWM before the transfer */
    long coord_kib, worker_kib;
    double coord_cpu_s;   /* coordinator user + system time over the whole run */
    int ok;
} s_run_t;

static const char *s_bin, *s_build;

static long s_status_kib(pid_t pid, const char *key)
{
    char path[64], line[256], fmt[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    snprintf(fmt, sizeof fmt, "%s: %%ld kB", key);
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    long v = -1;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, fmt, &v) == 1) break;
    fclose(fp);
    return v;
}

static double s_cpu_s(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static pid_t s_spawn(const char *home, const char *endpoint, char *const argv[], const char *const *env,
                     const char *log)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", home, log);
        if (!freopen(path, "a", stderr) || !freopen("/dev/null", "w", stdout)) _exit(127);
        setenv("MG_HOME", home, 1);
        setenv("MG_ENDPOINT", endpoint, 1);
        setenv("MG_LOG_LEVEL", "1", 1);
        for (int i = 0; env && env[i]; i++) putenv(strdup(env[i]));
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int64_t s_q(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int s_transfer_started(const char *home)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/outputs/.transfers", home);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) found = e->d_name[0] != '.';
    closedir(d);
    return found;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static s_run_t s_run(size_t bytes, size_t chunk, int window)
{
    s_run_t r = {0};
    char home[] = "/tmp/mg-xfer-bench-XXXXXX";
    if (!mkdtemp(home)) return r;
    char endpoint[64], coord[600], worker[600], job[700], env_bytes[64], env_chunk[64], env_window[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", 40000 + (int)(getpid() % 10000));
    snprintf(coord, sizeof coord, "%s/mg-coordinator", s_bin);
    snprintf(worker, sizeof worker, "%s/tests/mg-worker-test", s_build);
    snprintf(env_bytes, sizeof env_bytes, "MG_TEST_RESULT_BYTES=%zu", bytes);
    snprintf(env_chunk, sizeof env_chunk, "MG_CHUNK_BYTES=%zu", chunk);
    snprintf(env_window, sizeof env_window, "MG_CHUNK_WINDOW=%d", window);
    char *cargv[] = {coord, "--lease-ms", "60000", NULL};
    char *wargv[] = {worker, "--renderer", "test", "--capacity", "1", NULL};
    const char *wenv[] = {env_bytes, env_chunk, env_window, NULL};
    pid_t c = s_spawn(home, endpoint, cargv, NULL, "coordinator.log");
    s_sleep_ms(300);
    r.coord_idle_kib = s_status_kib(c, "VmHWM");
    pid_t w = s_spawn(home, endpoint, wargv, wenv, "worker.log");
    snprintf(job, sizeof job, "%s/job.yaml", home);
    FILE *fp = fopen(job, "w");
    if (fp) {
        fputs("campaign: bench\noutput:\n  formats: [flac, mp3]\n  sample_rate: 8000\n  channels: 1\n"
              "cues:\n  - name: big\n    prompt: \"p\"\n    duration: 1\n    seeds: [42]\n", fp);
        fclose(fp);
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "MG_HOME='%s' MG_ENDPOINT='%s' '%s/mgctl' submit '%s' >/dev/null 2>&1", home, endpoint,
             s_bin, job);
    sqlite3 *db = NULL;
    char dbpath[700];
    snprintf(dbpath, sizeof dbpath, "%s/mg.db", home);
    if (system(cmd) == 0 && sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        int64_t deadline = mg_mono_ms() + 120000, t0 = 0;
        while (mg_mono_ms() < deadline && !s_transfer_started(home)) usleep(500);
        t0 = mg_mono_ms();
        while (mg_mono_ms() < deadline && s_q(db, "SELECT count(*) FROM renders WHERE state = 'done'") != 1)
            usleep(1000);
        int64_t t1 = mg_mono_ms();
        r.ok = s_q(db, "SELECT count(*) FROM renders WHERE state = 'done'") == 1 &&
               s_q(db, "SELECT max(bytes) FROM outputs") == (int64_t)bytes;
        r.seconds = (double)(t1 - t0) / 1000.0;
        r.coord_kib = s_status_kib(c, "VmHWM");
        r.worker_kib = s_status_kib(w, "VmHWM");
        r.coord_cpu_s = s_cpu_s(c);
    }
    sqlite3_close(db);
    kill(w, SIGKILL);
    kill(c, SIGKILL);
    waitpid(w, NULL, 0);
    waitpid(c, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", home);
    return r;
}

/* libsodium's sha256 on this machine, MB/s: the coordinator's per-byte floor. */
static double s_sha_mb_s(void)
{
    size_t n = 64u << 20;
    unsigned char *b = malloc(n);
    if (!b) return 0;
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(i * 2654435761u >> 13);
    char hex[65];
    int64_t t0 = mg_mono_ms();
    mg_sha256_hex(b, n, hex);
    int64_t t1 = mg_mono_ms();
    free(b);
    return (double)n / 1e6 / ((double)(t1 - t0 > 0 ? t1 - t0 : 1) / 1000.0);
}

int main(int argc, char **argv)
{
    mg_log_init("result_transfer");
    s_bin = getenv("MG_BIN") ? getenv("MG_BIN") : "bin";
    s_build = getenv("MG_BUILD") ? getenv("MG_BUILD") : "build";
    int sweep = argc > 1 && strcmp(argv[1], "--sweep") == 0;
    const char *mib_arg = argc > 1 + sweep ? argv[1 + sweep] : NULL;
    size_t mib = mib_arg ? (size_t)atol(mib_arg) : sweep ? 64 : 210;
    char cpu[256] = "?";
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (fp) {
        char line[512];
        while (fgets(line, sizeof line, fp))
            if (sscanf(line, "model name : %255[^\n]", cpu) == 1) break;
        fclose(fp);
    }
    printf("machine: %ld cores, %s\n", sysconf(_SC_NPROCESSORS_ONLN), cpu);
    printf("reference: libsodium sha256 here: %.0f MB/s (every byte is hashed once by the coordinator)\n",
           s_sha_mb_s());
    if (sweep) {
        static const size_t chunks[] = {256 << 10, 1 << 20, 4 << 20};
        static const int windows[] = {1, 4, 16};
        printf("%zu MiB result; MB/s from the first byte at the coordinator to the commit; coordinator VmHWM\n", mib);
        printf("%-10s %8s %8s %8s\n", "chunk", "window 1", "4", "16");
        for (int c = 0; c < 3; c++) {
            printf("%6zu KiB", chunks[c] >> 10);
            for (int w = 0; w < 3; w++) {
                s_run_t r = s_run(mib << 20, chunks[c], windows[w]);
                if (!r.ok) printf(" %8s", "FAILED");
                else printf(" %4.0f/%3.0fM", (double)(mib << 20) / 1e6 / r.seconds, r.coord_kib / 1024.0);
                fflush(stdout);
            }
            printf("\n");
        }
        return 0;
    }
    s_run_t r = s_run(mib << 20, MG_CHUNK_DEFAULT_BYTES, MG_CHUNK_DEFAULT_WINDOW);
    if (!r.ok) {
        fprintf(stderr, "result_transfer: the %zu MiB result was not recorded (see the logs it left)\n", mib);
        return 1;
    }
    printf("result: %zu MiB (one file; plus a small mp3), chunks of %d KiB, window %d\n", mib,
           MG_CHUNK_DEFAULT_BYTES >> 10, MG_CHUNK_DEFAULT_WINDOW);
    printf("transfer: %.2f s = %.0f MB/s (first byte at the coordinator -> render recorded: chunks, sha256, fsync, "
           "rename, commit)\n", r.seconds, (double)(mib << 20) / 1e6 / r.seconds);
    printf("coordinator: VmHWM %.1f MiB (%.1f MiB before the transfer); CPU %.2f s = %.1f ns/byte\n",
           r.coord_kib / 1024.0, r.coord_idle_kib / 1024.0, r.coord_cpu_s, r.coord_cpu_s * 1e9 / (double)(mib << 20));
    printf("worker: VmHWM %.1f MiB (it holds the whole result until the ACK: %zu MiB)\n", r.worker_kib / 1024.0, mib);
    return 0;
}
