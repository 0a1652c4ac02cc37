/* mgctl.c - the user's command-line client: parses the command line, checks job files
 * locally (jobspec.h), sends one request per step to the coordinator (client.c) and shows
 * the reply (output.c). Every command, option and exit code is described in docs/cli.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/audit_head.h"
#include "cli/client.h"
#include "cli/fetch.h"
#include "cli/filetag.h"
#include "cli/keys.h"
#include "cli/output.h"
#include "cli/plan.h"
#include "common/config.h"
#include "common/jobspec.h"
#include "common/kv.h"
#include "common/protocol.h"
#include "common/util.h"

/* Exit codes: part of the interface (scripts depend on them); keep docs/cli.md in step. */
enum {
    MGCTL_EXIT_OK = 0,
    MGCTL_EXIT_ERROR = 1,        /* the coordinator answered ERR, or a local failure */
    MGCTL_EXIT_USAGE = 2,
    MGCTL_EXIT_UNREACHABLE = 3,
    MGCTL_EXIT_INVALID_JOB = 4,
    MGCTL_EXIT_JOB_FAILED = 5,   /* the job finished and at least one render failed */
    MGCTL_EXIT_JOB_CANCELLED = 6,
    MGCTL_EXIT_AUDIT_BROKEN = 7,
    MGCTL_EXIT_ALTERED = 8,
    MGCTL_EXIT_UNKNOWN = 9,
    MGCTL_EXIT_INTERRUPTED = 130, /* Ctrl-C while `submit --wait` waited (128 + SIGINT) */
};

#define S_POLL_MS 500          /* STATUS / EVENTS polling period for --wait and watch */
#define S_DEFAULT_LIMIT "50"   /* rows asked for by list and audit without --limit */
#define S_EVENTS_PAGE 500      /* events asked for per EVENTS request */
#define S_WATCH_BACKLOG 10     /* `watch` without JOB starts like tail -f: last 10 events */
#define S_ERRBUF (64 * 1024)   /* job-file error text: many "file:line:col: message" lines */

/* ---- options and commands ------------------------------------------------------------ */

typedef enum {
    O_ENDPOINT, O_TIMEOUT, O_JSON, O_HELP, /* global: accepted everywhere */
    O_VERSION,                             /* only before the command */
    O_WAIT, O_STATE, O_LIMIT, O_JOB, O_CUE, O_CRON, O_NAME, O_SINCE, O_MIDI, O_DEST, O_KIND,
    O_ROLE, O_OUT, O_CURVE_KEY, O_COORD_KEY,
    O_HEAD, O_KEY,
    O_COUNT
} s_opt_t;

#define OB(o) (1u << (o))
#define S_GLOBAL_OPTS (OB(O_ENDPOINT) | OB(O_TIMEOUT) | OB(O_JSON) | OB(O_HELP) | OB(O_CURVE_KEY) | OB(O_COORD_KEY))

static const struct {
    const char *name;
    const char *arg; /* NULL for a flag */
} s_opts[O_COUNT] = {
    [O_ENDPOINT] = {"endpoint", "E"}, [O_TIMEOUT] = {"timeout", "MS"},
    [O_JSON] = {"json", NULL},        [O_HELP] = {"help", NULL},
    [O_VERSION] = {"version", NULL},
    [O_WAIT] = {"wait", NULL},        [O_STATE] = {"state", "S"},
    [O_LIMIT] = {"limit", "N"},       [O_JOB] = {"job", "J"},
    [O_CUE] = {"cue", "C"},           [O_CRON] = {"cron", "EXPR"},
    [O_NAME] = {"name", "N"},         [O_SINCE] = {"since", "ID"},
    [O_MIDI] = {"midi", "DIR"},       [O_DEST] = {"dest", "DIR"},
    [O_KIND] = {"kind", "K,..."},
    [O_ROLE] = {"role", "ROLE"},      [O_OUT] = {"out", "DIR"},
    [O_CURVE_KEY] = {"curve-key", "FILE"}, [O_COORD_KEY] = {"coordinator-key", "FILE"},
    [O_HEAD] = {"head", "FILE"},      [O_KEY] = {"key", "FILE"},
};

typedef struct s_ctx s_ctx_t;

typedef struct {
    const char *name;
    int (*run)(s_ctx_t *ctx);
    unsigned opts;        /* OB() of the options it takes besides the global ones */
    const char *summary;  /* one line for `mgctl --help` */
    const char *usage;    /* `mgctl help CMD`: synopsis lines, then a description */
} s_cmd_t;

struct s_ctx {
    const s_cmd_t *cmd;
    const char *opt[O_COUNT]; /* value, "1" for a flag given, NULL when absent */
    char **pos;               /* positional arguments after the command */
    int npos;
    const char *endpoint;
    int timeout_ms;
    int json;
    mg_client_t *client;      /* created on the first request */
};

static volatile sig_atomic_t s_interrupted;

static void s_on_sigint(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

/* Ctrl-C ends zmq_poll / nanosleep with EINTR instead of killing the process, so watch
 * and --wait can finish the progress line and exit with their own code. */
static void s_catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: blocking calls must return */
    sigaction(SIGTERM, &sa, NULL);
}

/* Sleeps ms unless interrupted. 0, or -1 when Ctrl-C arrived. */
static int s_sleep_ms(int ms)
{
    int64_t end = mg_mono_ms() + ms;
    while (!s_interrupted) {
        int64_t left = end - mg_mono_ms();
        if (left <= 0) return 0;
        struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static const char *s_plural(int64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* ---- usage errors ---------------------------------------------------------------------- */

static int s_usage_error(const s_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_usage_error(const s_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mgctl%s%s: ", ctx && ctx->cmd ? " " : "", ctx && ctx->cmd ? ctx->cmd->name : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (ctx && ctx->cmd)
        fprintf(stderr, "\nRun 'mgctl %s --help' for its usage.\n", ctx->cmd->name);
    else
        fprintf(stderr, "\nRun 'mgctl --help' for usage.\n");
    return MGCTL_EXIT_USAGE;
}

/* Parses s as an integer in [1, max]. 0 or -1. */
static int s_parse_count(const char *s, long long max, long long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 1 || v > max || *s == '+' || *s == '-' || *s == ' ') return -1;
    *out = v;
    return 0;
}

/* Checks that s is an id (a positive integer); prints a usage error otherwise. */
static int s_check_id(const s_ctx_t *ctx, const char *s, const char *what)
{
    long long v;
    if (s_parse_count(s, INT64_MAX, &v) == 0) return 0;
    return s_usage_error(ctx, "'%s' is not a %s id (expected a number such as 12)", s, what);
}

/* The --limit value (default S_DEFAULT_LIMIT), or NULL after printing a usage error. */
static const char *s_limit(const s_ctx_t *ctx)
{
    const char *l = ctx->opt[O_LIMIT] ? ctx->opt[O_LIMIT] : S_DEFAULT_LIMIT;
    long long v;
    if (s_parse_count(l, 1000000, &v) == 0) return l;
    s_usage_error(ctx, "--limit '%s' is not a number from 1 to 1000000", l);
    return NULL;
}

/* ---- the round trip -------------------------------------------------------------------- */

/* Prints an ERR reply: "mgctl: message (code)"; a multi-line message (a job file's
 * "file:line:col: message" lines) is printed as it is, under a heading. */
static void s_print_err(const char *command, const mg_kv_t *info)
{
    const char *msg = mg_kv_get_or(info, "message", "");
    const char *code = mg_kv_get_or(info, "code", "");
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n') n--;
    if (n == 0) {
        fprintf(stderr, "mgctl: the coordinator refused %s%s%s%s with no message\n", command,
                *code ? " (" : "", code, *code ? ")" : "");
    } else if (memchr(msg, '\n', n)) {
        fprintf(stderr, "mgctl: the coordinator refused %s%s%s%s:\n%.*s\n", command,
                *code ? " (" : "", code, *code ? ")" : "", (int)n, msg);
    } else {
        fprintf(stderr, "mgctl: %.*s%s%s%s\n", (int)n, msg, *code ? " (" : "", code,
                *code ? ")" : "");
    }
}

/* Sends one request and waits for the reply. Returns 0 for an OK reply (in reply), or the
 * exit code after printing why: ERR (1, or 4 for code invalid_job), no answer (3),
 * Ctrl-C (130), a bad endpoint (2) or a malformed reply (1). */
static int s_call(s_ctx_t *ctx, const char *command, const mg_kv_t *args, const void *payload,
                  size_t len, mg_reply_t *reply)
{
    if (!ctx->client) {
        char err[512];
        ctx->client = mg_client_new(ctx->endpoint, ctx->timeout_ms, err, sizeof err);
        if (!ctx->client) {
            fprintf(stderr, "mgctl: %s\n", err);
            return MGCTL_EXIT_USAGE;
        }
    }
    switch (mg_client_request(ctx->client, command, args, payload, len, reply)) {
    case MG_CLIENT_OK:
        break;
    case MG_CLIENT_TIMEOUT:
        fprintf(stderr,
                "mgctl: no answer from the coordinator at %s after %d ms "
                "(is mg-coordinator running? %s)\n",
                ctx->endpoint, ctx->timeout_ms,
                mg_config_get(MG_CONFIG_CURVE_KEY, NULL, MG_CURVE_KEY, NULL)
                    ? "a coordinator with CURVE also stays silent to a key not in its allow-list or a wrong "
                      "coordinator_key; see docs/security.md"
                    : "a coordinator with client keys answers only CURVE clients (curve_key, coordinator_key); "
                      "see docs/cli.md");
        return MGCTL_EXIT_UNREACHABLE;
    case MG_CLIENT_INTERRUPTED:
        s_interrupted = 1;
        return MGCTL_EXIT_INTERRUPTED;
    case MG_CLIENT_PROTOCOL:
        fprintf(stderr, "mgctl: bad reply to %s from %s: %s\n", command, ctx->endpoint,
                mg_client_error(ctx->client));
        return MGCTL_EXIT_ERROR;
    case MG_CLIENT_FAILED:
        fprintf(stderr, "mgctl: %s\n", mg_client_error(ctx->client));
        return MGCTL_EXIT_ERROR;
    }
    if (reply->ok) return 0;
    s_print_err(command, &reply->info);
    return strcmp(mg_kv_get_or(&reply->info, "code", ""), "invalid_job") == 0
               ? MGCTL_EXIT_INVALID_JOB
               : MGCTL_EXIT_ERROR;
}

/* Prints a reply's rows: JSON (info + rows) with --json, else a table, or empty_note on
 * stderr when there are no rows (stdout stays empty for scripts). */
static void s_print_rows(const s_ctx_t *ctx, const mg_reply_t *reply, const char *empty_note)
{
    if (ctx->json) {
        mg_out_json_reply(stdout, &reply->info, reply->rows, reply->n_rows);
        return;
    }
    if (reply->n_rows == 0) {
        fprintf(stderr, "%s\n", empty_note);
        return;
    }
    mg_out_table(stdout, reply->rows, reply->n_rows, mg_out_terminal_width(STDOUT_FILENO));
}

/* Adds the "rows shown = limit" hint on a terminal, where a cut-off list misleads most. */
static void s_limit_hint(const mg_reply_t *reply, const char *limit)
{
    long long l = atoll(limit);
    if (l > 0 && (long long)reply->n_rows >= l && isatty(STDERR_FILENO))
        fprintf(stderr, "(%zu rows shown, the limit; ask for more with --limit N)\n", reply->n_rows);
}

/* ---- job files ------------------------------------------------------------------------- */

/* Prints a job file's error text to stderr, ending with a newline. */
static void s_print_job_errors(const char *path, const char *err)
{
    if (!*err) {
        fprintf(stderr, "%s: cannot read or parse this job file\n", path);
        return;
    }
    size_t n = strlen(err);
    fprintf(stderr, "%s%s", err, err[n - 1] == '\n' ? "" : "\n");
}

/* Parses path locally. Returns 0 with *job_out set (caller destroys), or prints the errors
 * and returns MGCTL_EXIT_INVALID_JOB. */
static int s_load_job(const char *path, mg_job_t **job_out)
{
    static char err[S_ERRBUF];
    err[0] = 0;
    *job_out = NULL;
    if (mg_job_parse_file(path, job_out, err, sizeof err) != 0 || !*job_out) {
        s_print_job_errors(path, err);
        mg_job_destroy(job_out);
        return MGCTL_EXIT_INVALID_JOB;
    }
    return 0;
}

/* Validates path locally, then reads its bytes (the payload the coordinator re-parses).
 * 0, or an exit code after printing why. */
static int s_load_job_bytes(const char *path, mg_job_t **job_out, char **bytes, size_t *len)
{
    int rc = s_load_job(path, job_out);
    if (rc) return rc;
    *bytes = mg_read_file(path, len);
    if (!*bytes) {
        fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
        mg_job_destroy(job_out);
        return MGCTL_EXIT_INVALID_JOB;
    }
    return 0;
}

/* ---- job progress (submit --wait, watch JOB) ------------------------------------------- */

typedef struct {
    int64_t total, queued, leased, done, failed, cancelled;
    const char *state; /* borrowed from the STATUS info */
} s_counts_t;

static s_counts_t s_counts(const mg_kv_t *info)
{
    s_counts_t c;
    c.total = mg_kv_get_i64(info, "total", 0);
    c.queued = mg_kv_get_i64(info, "queued", 0);
    c.leased = mg_kv_get_i64(info, "leased", 0);
    c.done = mg_kv_get_i64(info, "done", 0);
    c.failed = mg_kv_get_i64(info, "failed", 0);
    c.cancelled = mg_kv_get_i64(info, "cancelled", 0);
    c.state = mg_kv_get_or(info, "state", "");
    return c;
}

/* A job is finished once its state leaves "active"; a reply without a state falls back
 * to "nothing queued or rendering". */
static int s_finished(const s_counts_t *c)
{
    if (*c->state) return strcmp(c->state, "active") != 0;
    return c->queued == 0 && c->leased == 0;
}

/* The exit code for a finished job, and its one-line verdict in line. */
static int s_outcome(const char *job_id, const s_counts_t *c, char *line, size_t len)
{
    if (strcmp(c->state, "cancelled") == 0 || (c->failed == 0 && c->cancelled > 0)) {
        snprintf(line, len, "job %s cancelled: %" PRId64 " done, %" PRId64 " failed, %" PRId64
                 " cancelled of %" PRId64, job_id, c->done, c->failed, c->cancelled, c->total);
        return MGCTL_EXIT_JOB_CANCELLED;
    }
    if (c->failed > 0 || strcmp(c->state, "failed") == 0) {
        snprintf(line, len, "job %s finished with failures: %" PRId64 " done, %" PRId64
                 " failed of %" PRId64 " (see: mgctl list renders --job %s --state failed)",
                 job_id, c->done, c->failed, c->total, job_id);
        return MGCTL_EXIT_JOB_FAILED;
    }
    snprintf(line, len, "job %s done: %" PRId64 "/%" PRId64 " %s", job_id, c->done, c->total,
             s_plural(c->total, "render", "renders"));
    return MGCTL_EXIT_OK;
}

static void s_progress_text(const s_counts_t *c, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRId64 "/%" PRId64 " done, %" PRId64 " failed, %" PRId64 " rendering",
             c->done, c->total, c->failed, c->leased);
}

/* Polls STATUS every S_POLL_MS until the job leaves "active", showing a progress bar on a
 * terminal (stderr) or a line per change otherwise. extra (submit's duplicate and
 * idempotency_key) is merged into the --json output. Returns 0 / 5 / 6, 130 on Ctrl-C. */
static int s_wait_job(s_ctx_t *ctx, const char *job_id, const mg_kv_t *extra)
{
    int tty = isatty(STDERR_FILENO);
    mg_kv_t args;
    mg_kv_init(&args);
    mg_kv_set(&args, "job_id", job_id);
    mg_kv_set(&args, "rows", "0"); /* counts only while polling: a job may have 10^4 renders */
    mg_reply_t reply;
    mg_reply_init(&reply);
    s_counts_t last = {-1, -1, -1, -1, -1, -1, ""};
    int drawn = 0, rc;
    s_catch_sigint();
    for (;;) {
        rc = s_interrupted ? MGCTL_EXIT_INTERRUPTED : s_call(ctx, MG_CMD_STATUS, &args, NULL, 0, &reply);
        if (rc) break;
        s_counts_t c = s_counts(&reply.info);
        char text[200];
        s_progress_text(&c, text, sizeof text);
        if (tty) {
            mg_out_progress(stderr, c.done + c.failed + c.cancelled, c.total, text);
            drawn = 1;
        } else if (c.done != last.done || c.failed != last.failed || c.leased != last.leased ||
                   c.queued != last.queued || c.cancelled != last.cancelled) {
            fprintf(stderr, "job %s: %s, %" PRId64 " queued\n", job_id, text, c.queued);
        }
        last = c;
        last.state = NULL; /* points into reply, which the next request replaces */
        if (s_finished(&c)) {
            if (drawn) fputc('\n', stderr);
            drawn = 0;
            char line[512];
            rc = s_outcome(job_id, &c, line, sizeof line);
            if (ctx->json) {
                mg_kv_clear(&args);
                mg_kv_set(&args, "job_id", job_id);
                int rc2 = s_call(ctx, MG_CMD_STATUS, &args, NULL, 0, &reply); /* now with the rows */
                if (rc2) {
                    rc = rc2;
                    break;
                }
                for (size_t i = 0; extra && i < extra->n; i++)
                    mg_kv_set(&reply.info, extra->pairs[i].key, extra->pairs[i].value);
                mg_out_json_reply(stdout, &reply.info, reply.rows, reply.n_rows);
            } else {
                printf("%s\n", line);
            }
            break;
        }
        if (s_sleep_ms(S_POLL_MS) != 0) {
            rc = MGCTL_EXIT_INTERRUPTED;
            break;
        }
    }
    if (drawn) fputc('\n', stderr);
    if (rc == MGCTL_EXIT_INTERRUPTED)
        fprintf(stderr, "mgctl: stopped waiting; job %s keeps running (follow it: mgctl watch %s)\n",
                job_id, job_id);
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

/* ---- commands -------------------------------------------------------------------------- */

static int s_cmd_validate(s_ctx_t *ctx)
{
    if (ctx->npos < 1) return s_usage_error(ctx, "which job file? (mgctl validate FILE...)");
    static char err[S_ERRBUF];
    mg_kv_t info;
    mg_kv_init(&info);
    mg_kv_t *rows = calloc((size_t)ctx->npos, sizeof *rows);
    if (!rows) {
        fprintf(stderr, "mgctl: out of memory\n");
        return MGCTL_EXIT_ERROR;
    }
    int invalid = 0;
    for (int i = 0; i < ctx->npos; i++) {
        const char *path = ctx->pos[i];
        mg_job_t *job = NULL;
        err[0] = 0;
        int ok = mg_job_parse_file(path, &job, err, sizeof err) == 0 && job;
        size_t renders = ok ? mg_job_render_count(job) : 0;
        mg_job_destroy(&job);
        if (!ok) invalid++;
        mg_kv_set(&rows[i], "file", path);
        mg_kv_set(&rows[i], "valid", ok ? "1" : "0");
        mg_kv_set_u64(&rows[i], "renders", renders);
        mg_kv_set(&rows[i], "errors", ok ? "" : err);
        if (ctx->json) continue;
        if (ok) printf("%s: ok (%zu %s)\n", path, renders, s_plural((int64_t)renders, "render", "renders"));
        else s_print_job_errors(path, err);
    }
    if (ctx->json) {
        mg_kv_set_i64(&info, "files", ctx->npos);
        mg_kv_set_i64(&info, "invalid", invalid);
        mg_out_json_reply(stdout, &info, rows, (size_t)ctx->npos);
    }
    for (int i = 0; i < ctx->npos; i++) mg_kv_clear(&rows[i]);
    free(rows);
    mg_kv_clear(&info);
    return invalid ? MGCTL_EXIT_INVALID_JOB : MGCTL_EXIT_OK;
}

static int s_cmd_submit(s_ctx_t *ctx)
{
    if (ctx->npos != 1)
        return s_usage_error(ctx, ctx->npos ? "one job file at a time" : "which job file? (mgctl submit FILE)");
    const char *path = ctx->pos[0];
    mg_job_t *job = NULL;
    char *bytes = NULL;
    size_t len = 0;
    int rc = s_load_job_bytes(path, &job, &bytes, &len);
    if (rc) return rc;
    mg_job_destroy(&job);

    mg_kv_t args, extra;
    mg_kv_init(&args);
    mg_kv_init(&extra);
    mg_kv_set(&args, "name", path);
    mg_reply_t reply;
    mg_reply_init(&reply);
    rc = s_call(ctx, MG_CMD_SUBMIT, &args, bytes, len, &reply);
    free(bytes);
    if (rc) goto out;

    char job_id[32];
    mg_strlcpy(job_id, mg_kv_get_or(&reply.info, "job_id", "?"), sizeof job_id);
    int64_t renders = mg_kv_get_i64(&reply.info, "renders", 0);
    int duplicate = mg_kv_get_i64(&reply.info, "duplicate", 0) != 0;
    const char *key = mg_kv_get_or(&reply.info, "idempotency_key", "");
    if (ctx->json && !ctx->opt[O_WAIT]) {
        mg_out_json_reply(stdout, &reply.info, reply.rows, reply.n_rows);
    } else if (!ctx->json) {
        if (duplicate)
            printf("job %s already submitted (idempotency key %s): nothing duplicated\n", job_id, key);
        else
            printf("job %s: %" PRId64 " %s queued\n", job_id, renders,
                   s_plural(renders, "render", "renders"));
        fflush(stdout);
    }
    if (ctx->opt[O_WAIT]) {
        mg_kv_set(&extra, "duplicate", duplicate ? "1" : "0");
        mg_kv_set(&extra, "idempotency_key", key);
        rc = s_wait_job(ctx, job_id, &extra);
    }
out:
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    mg_kv_clear(&extra);
    return rc;
}

static int s_cmd_status(s_ctx_t *ctx)
{
    if (ctx->npos != 1) return s_usage_error(ctx, "expected one job id (mgctl status JOB)");
    int rc = s_check_id(ctx, ctx->pos[0], "job");
    if (rc) return rc;
    mg_kv_t args;
    mg_kv_init(&args);
    mg_kv_set(&args, "job_id", ctx->pos[0]);
    mg_reply_t reply;
    mg_reply_init(&reply);
    rc = s_call(ctx, MG_CMD_STATUS, &args, NULL, 0, &reply);
    if (rc == 0 && ctx->json) {
        mg_out_json_reply(stdout, &reply.info, reply.rows, reply.n_rows);
    } else if (rc == 0) {
        const mg_kv_t *in = &reply.info;
        s_counts_t c = s_counts(in);
        const char *client = mg_kv_get_or(in, "client", "");
        char created[40], finished[40];
        printf("job %s: campaign \"%s\"%s%s%s, %s\n", mg_kv_get_or(in, "job_id", ctx->pos[0]),
               mg_kv_get_or(in, "campaign", ""), *client ? " for client \"" : "", client,
               *client ? "\"" : "", *c.state ? c.state : "?");
        printf("renders: %" PRId64 " total, %" PRId64 " done, %" PRId64 " failed, %" PRId64
               " rendering, %" PRId64 " queued, %" PRId64 " cancelled\n",
               c.total, c.done, c.failed, c.leased, c.queued, c.cancelled);
        printf("created %s, finished %s\n",
               mg_out_value("created_ms", mg_kv_get(in, "created_ms"), created, sizeof created),
               mg_out_value("finished_ms", mg_kv_get(in, "finished_ms"), finished, sizeof finished));
        if (reply.n_rows) {
            putchar('\n');
            mg_out_table(stdout, reply.rows, reply.n_rows, mg_out_terminal_width(STDOUT_FILENO));
        }
    }
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

/* One event as a line: "TIME  KIND  job J  render R  worker W  message". */
static void s_print_event(const s_ctx_t *ctx, const mg_kv_t *ev)
{
    if (ctx->json) {
        mg_out_json_object(stdout, ev);
        putchar('\n');
        return;
    }
    char at[40];
    const char *job = mg_kv_get_or(ev, "job_id", ""), *render = mg_kv_get_or(ev, "render_id", "");
    const char *worker = mg_kv_get_or(ev, "worker", ""), *msg = mg_kv_get_or(ev, "message", "");
    const char *when = mg_kv_get(ev, "at_ms") ? mg_kv_get(ev, "at_ms") : mg_kv_get(ev, "at");
    printf("%s  %-16s", mg_out_value("at_ms", when, at, sizeof at),
           mg_kv_get_or(ev, "kind", "?"));
    if (*job && strcmp(job, "0") != 0) printf("  job %s", job);
    if (*render && strcmp(render, "0") != 0) printf("  render %s", render);
    if (*worker) printf("  worker %s", worker);
    if (*msg) {
        fputs("  ", stdout);
        for (const char *p = msg; *p; p++) {
            putchar(*p);
            if (*p == '\n' && p[1]) fputs("    ", stdout);
        }
    }
    putchar('\n');
}

/* Fetches every event after *since (pages of S_EVENTS_PAGE) and prints them, advancing
 * *since. keep_last > 0: print only the last keep_last of them (watch's tail start). */
static int s_drain_events(s_ctx_t *ctx, const char *job_id, int64_t *since, int keep_last)
{
    mg_kv_t args, ring[S_WATCH_BACKLOG];
    int ring_n = 0, ring_head = 0, rc = 0;
    if (keep_last > S_WATCH_BACKLOG) keep_last = S_WATCH_BACKLOG;
    for (int i = 0; i < S_WATCH_BACKLOG; i++) mg_kv_init(&ring[i]);
    mg_kv_init(&args);
    mg_reply_t reply;
    mg_reply_init(&reply);
    for (;;) {
        mg_kv_clear(&args);
        if (job_id) mg_kv_set(&args, "job_id", job_id);
        mg_kv_set_i64(&args, "since_id", *since);
        mg_kv_set_i64(&args, "limit", S_EVENTS_PAGE);
        rc = s_call(ctx, MG_CMD_EVENTS, &args, NULL, 0, &reply);
        if (rc) break;
        for (size_t i = 0; i < reply.n_rows; i++) {
            const mg_kv_t *ev = &reply.rows[i];
            int64_t id = mg_kv_get_i64(ev, "id", 0);
            if (id <= *since) continue; /* never print an event twice */
            *since = id;
            if (keep_last <= 0) {
                s_print_event(ctx, ev);
                continue;
            }
            mg_kv_t *slot = &ring[(ring_head + ring_n) % keep_last];
            if (ring_n == keep_last) ring_head = (ring_head + 1) % keep_last;
            else ring_n++;
            mg_kv_clear(slot);
            for (size_t k = 0; k < ev->n; k++) mg_kv_set(slot, ev->pairs[k].key, ev->pairs[k].value);
        }
        if (reply.n_rows < S_EVENTS_PAGE) break;
    }
    for (int i = 0; i < ring_n; i++) s_print_event(ctx, &ring[(ring_head + i) % keep_last]);
    fflush(stdout);
    for (int i = 0; i < S_WATCH_BACKLOG; i++) mg_kv_clear(&ring[i]);
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

static int s_cmd_watch(s_ctx_t *ctx)
{
    if (ctx->npos > 1) return s_usage_error(ctx, "expected at most one job id (mgctl watch [JOB])");
    const char *job_id = ctx->npos ? ctx->pos[0] : NULL;
    int rc = job_id ? s_check_id(ctx, job_id, "job") : 0;
    if (rc) return rc;
    int64_t since = 0;
    int keep_last = job_id ? 0 : S_WATCH_BACKLOG;
    if (ctx->opt[O_SINCE]) {
        long long v = 0;
        if (strcmp(ctx->opt[O_SINCE], "0") != 0 && s_parse_count(ctx->opt[O_SINCE], INT64_MAX, &v) != 0)
            return s_usage_error(ctx, "--since '%s' is not an event id (0 = from the start)", ctx->opt[O_SINCE]);
        since = v;
        keep_last = 0;
    }
    s_catch_sigint();
    mg_kv_t args;
    mg_kv_init(&args);
    if (job_id) {
        mg_kv_set(&args, "job_id", job_id);
        mg_kv_set(&args, "rows", "0");
    }
    mg_reply_t reply;
    mg_reply_init(&reply);
    if (job_id && (rc = s_call(ctx, MG_CMD_STATUS, &args, NULL, 0, &reply)) != 0) goto out;
    for (;;) {
        rc = s_drain_events(ctx, job_id, &since, keep_last);
        keep_last = 0;
        if (rc) break;
        if (job_id) {
            if ((rc = s_call(ctx, MG_CMD_STATUS, &args, NULL, 0, &reply)) != 0) break;
            s_counts_t c = s_counts(&reply.info);
            if (s_finished(&c)) {
                /* events written between the last drain and the final state */
                if ((rc = s_drain_events(ctx, job_id, &since, 0)) != 0) break;
                char line[512];
                rc = s_outcome(job_id, &c, line, sizeof line);
                if (!ctx->json) printf("%s\n", line);
                break;
            }
        }
        if (s_sleep_ms(S_POLL_MS) != 0) break;
    }
    if (s_interrupted) rc = MGCTL_EXIT_OK; /* Ctrl-C is how a user ends watch */
out:
    fflush(stdout);
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

static int s_cmd_list(s_ctx_t *ctx)
{
    const char *what = ctx->npos ? ctx->pos[0] : "jobs";
    int renders = strcmp(what, "renders") == 0;
    if (!renders && strcmp(what, "jobs") != 0)
        return s_usage_error(ctx, "list what? '%s' is neither 'jobs' nor 'renders'", what);
    if (ctx->npos > 1) return s_usage_error(ctx, "unexpected argument '%s'", ctx->pos[1]);
    if (!renders && (ctx->opt[O_JOB] || ctx->opt[O_CUE]))
        return s_usage_error(ctx, "--job and --cue apply to 'mgctl list renders' only");
    if (ctx->opt[O_JOB] && s_check_id(ctx, ctx->opt[O_JOB], "job")) return MGCTL_EXIT_USAGE;
    const char *limit = s_limit(ctx);
    if (!limit) return MGCTL_EXIT_USAGE;

    mg_kv_t args;
    mg_kv_init(&args);
    if (ctx->opt[O_JOB]) mg_kv_set(&args, "job_id", ctx->opt[O_JOB]);
    if (ctx->opt[O_STATE]) mg_kv_set(&args, "state", ctx->opt[O_STATE]);
    if (ctx->opt[O_CUE]) mg_kv_set(&args, "cue", ctx->opt[O_CUE]);
    mg_kv_set(&args, "limit", limit);
    mg_reply_t reply;
    mg_reply_init(&reply);
    int rc = s_call(ctx, renders ? MG_CMD_RENDERS : MG_CMD_JOBS, &args, NULL, 0, &reply);
    if (rc == 0) {
        s_print_rows(ctx, &reply, renders ? "(no renders match)" : "(no jobs match)");
        if (!ctx->json) s_limit_hint(&reply, limit);
    }
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

/* cancel and retry: one job id in, one count out. */
static int s_job_action(s_ctx_t *ctx, const char *command, const char *count_key, const char *verb)
{
    if (ctx->npos != 1) return s_usage_error(ctx, "expected one job id (mgctl %s JOB)", ctx->cmd->name);
    int rc = s_check_id(ctx, ctx->pos[0], "job");
    if (rc) return rc;
    mg_kv_t args;
    mg_kv_init(&args);
    mg_kv_set(&args, "job_id", ctx->pos[0]);
    mg_reply_t reply;
    mg_reply_init(&reply);
    rc = s_call(ctx, command, &args, NULL, 0, &reply);
    if (rc == 0 && ctx->json) {
        mg_out_json_reply(stdout, &reply.info, reply.rows, reply.n_rows);
    } else if (rc == 0) {
        int64_t n = mg_kv_get_i64(&reply.info, count_key, 0);
        printf("job %s: %" PRId64 " %s %s\n", ctx->pos[0], n, s_plural(n, "render", "renders"), verb);
    }
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

static int s_cmd_cancel(s_ctx_t *ctx) { return s_job_action(ctx, MG_CMD_CANCEL, "cancelled", "cancelled"); }
static int s_cmd_retry(s_ctx_t *ctx) { return s_job_action(ctx, MG_CMD_RETRY, "requeued", "requeued"); }

/* Requests that take no arguments and answer with a table. */
static int s_simple_table(s_ctx_t *ctx, const char *command, const char *empty_note)
{
    if (ctx->npos) return s_usage_error(ctx, "unexpected argument '%s'", ctx->pos[0]);
    mg_reply_t reply;
    mg_reply_init(&reply);
    int rc = s_call(ctx, command, NULL, NULL, 0, &reply);
    if (rc == 0) s_print_rows(ctx, &reply, empty_note);
    mg_reply_clear(&reply);
    return rc;
}

static int s_cmd_workers(s_ctx_t *ctx) { return s_simple_table(ctx, MG_CMD_WORKERS, "(no worker has registered yet)"); }

static int s_schedule_add(s_ctx_t *ctx)
{
    if (!ctx->opt[O_CRON]) return s_usage_error(ctx, "'schedule add' needs --cron \"MIN HOUR DOM MON DOW\"");
    if (ctx->npos != 2) return s_usage_error(ctx, "expected one job file (mgctl schedule add --cron EXPR FILE)");
    const char *path = ctx->pos[1];
    mg_job_t *job = NULL;
    char *bytes = NULL;
    size_t len = 0;
    int rc = s_load_job_bytes(path, &job, &bytes, &len);
    if (rc) return rc;
    mg_kv_t args;
    mg_kv_init(&args);
    mg_kv_set(&args, "cron", ctx->opt[O_CRON]);
    mg_kv_set(&args, "name", ctx->opt[O_NAME] ? ctx->opt[O_NAME] : job->campaign);
    mg_kv_set(&args, "source_name", path); /* names the file in the coordinator's messages */
    mg_job_destroy(&job);
    mg_reply_t reply;
    mg_reply_init(&reply);
    rc = s_call(ctx, MG_CMD_SCHED_ADD, &args, bytes, len, &reply);
    free(bytes);
    if (rc == 0 && ctx->json) {
        mg_out_json_reply(stdout, &reply.info, reply.rows, reply.n_rows);
    } else if (rc == 0) {
        char next[40];
        const char *due = mg_kv_get(&reply.info, "next_due_ms");
        due = due ? mg_out_value("next_due_ms", due, next, sizeof next)
                  : mg_out_value("at", mg_kv_get(&reply.info, "next_due"), next, sizeof next);
        printf("schedule %s added: \"%s\" at cron '%s' (UTC), next run %s\n",
               mg_kv_get_or(&reply.info, "schedule_id", "?"), mg_kv_get(&args, "name"), ctx->opt[O_CRON], due);
    }
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

static int s_cmd_schedule(s_ctx_t *ctx)
{
    if (ctx->npos < 1) return s_usage_error(ctx, "which action? add, list, remove, pause or resume");
    const char *sub = ctx->pos[0];
    static const struct { const char *name, *command, *done; } acts[] = {
        {"remove", MG_CMD_SCHED_RM, "removed"}, {"rm", MG_CMD_SCHED_RM, "removed"},
        {"pause", MG_CMD_SCHED_PAUSE, "paused"}, {"resume", MG_CMD_SCHED_RESUME, "resumed"},
    };
    if (strcmp(sub, "add") == 0) return s_schedule_add(ctx);
    if (ctx->opt[O_CRON] || ctx->opt[O_NAME])
        return s_usage_error(ctx, "--cron and --name apply to 'schedule add' only");
    if (strcmp(sub, "list") == 0) {
        if (ctx->npos > 1) return s_usage_error(ctx, "unexpected argument '%s'", ctx->pos[1]);
        ctx->npos = 0;
        return s_simple_table(ctx, MG_CMD_SCHED_LIST, "(no schedules)");
    }
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(sub, acts[i].name) != 0) continue;
        if (ctx->npos != 2) return s_usage_error(ctx, "expected one schedule id (mgctl schedule %s ID)", sub);
        int rc = s_check_id(ctx, ctx->pos[1], "schedule");
        if (rc) return rc;
        mg_kv_t args;
        mg_kv_init(&args);
        mg_kv_set(&args, "schedule_id", ctx->pos[1]);
        mg_reply_t reply;
        mg_reply_init(&reply);
        rc = s_call(ctx, acts[i].command, &args, NULL, 0, &reply);
        if (rc == 0 && ctx->json) mg_out_json_reply(stdout, &reply.info, reply.rows, reply.n_rows);
        else if (rc == 0) printf("schedule %s %s\n", ctx->pos[1], acts[i].done);
        mg_reply_clear(&reply);
        mg_kv_clear(&args);
        return rc;
    }
    return s_usage_error(ctx, "unknown action '%s' (expected add, list, remove, pause or resume)", sub);
}

/* --key FILE into args; 0, or the exit code. */
static int s_key_arg(s_ctx_t *ctx, mg_kv_t *args)
{
    char err[512];
    if (ctx->opt[O_KEY] && mg_audit_key_arg(ctx->opt[O_KEY], args, err, sizeof err) != 0) {
        fprintf(stderr, "mgctl: %s\n", err);
        return MGCTL_EXIT_USAGE;
    }
    return 0;
}

/* `audit verify` and `audit head`: the files and the verdicts are cli/audit_head.c's. */
static int s_audit_verify(s_ctx_t *ctx)
{
    if (ctx->npos > 1) return s_usage_error(ctx, "unexpected argument '%s'", ctx->pos[1]);
    if (ctx->opt[O_JOB] || ctx->opt[O_LIMIT])
        return s_usage_error(ctx, "'audit verify' checks the whole chain: no --job or --limit");
    mg_kv_t args;
    mg_kv_init(&args);
    char err[512];
    int rc = s_key_arg(ctx, &args);
    if (rc == 0 && ctx->opt[O_HEAD] && mg_audit_head_arg(ctx->opt[O_HEAD], &args, err, sizeof err) != 0) {
        fprintf(stderr, "mgctl: %s\n", err);
        rc = MGCTL_EXIT_USAGE;
    }
    mg_reply_t reply;
    mg_reply_init(&reply);
    if (rc == 0) rc = s_call(ctx, MG_CMD_AUDIT_VERIFY, &args, NULL, 0, &reply);
    if (rc == 0) {
        int ok = ctx->json ? mg_audit_verify_ok(&reply.info)
                           : mg_audit_verify_print(stdout, &reply.info, ctx->opt[O_KEY]);
        if (ctx->json) mg_out_json_reply(stdout, &reply.info, reply.rows, reply.n_rows);
        rc = ok ? MGCTL_EXIT_OK : MGCTL_EXIT_AUDIT_BROKEN;
    }
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

static int s_audit_head(s_ctx_t *ctx)
{
    if (ctx->npos > 1) return s_usage_error(ctx, "unexpected argument '%s'", ctx->pos[1]);
    if (ctx->opt[O_JOB] || ctx->opt[O_LIMIT] || ctx->opt[O_HEAD] || ctx->opt[O_KEY])
        return s_usage_error(ctx, "'audit head' takes no --job, --limit, --head or --key");
    mg_reply_t reply;
    mg_reply_init(&reply);
    int rc = s_call(ctx, MG_CMD_AUDIT_HEAD, NULL, NULL, 0, &reply);
    if (rc == 0 && ctx->json) mg_out_json_reply(stdout, &reply.info, reply.rows, reply.n_rows);
    else if (rc == 0) mg_audit_head_print(stdout, &reply.info);
    mg_reply_clear(&reply);
    return rc;
}

static int s_cmd_audit(s_ctx_t *ctx)
{
    static const char *queries[] = {"renders", "models", "failures", "workers", "provenance", "verify", "head"};
    const char *query = ctx->npos ? ctx->pos[0] : "renders";
    int known = 0;
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) known |= strcmp(query, queries[i]) == 0;
    if (!known)
        return s_usage_error(ctx, "unknown audit query '%s' (expected renders, models, failures, "
                                  "workers, provenance, verify or head)", query);
    if (strcmp(query, "verify") == 0) return s_audit_verify(ctx);
    if (strcmp(query, "head") == 0) return s_audit_head(ctx);
    if (ctx->opt[O_HEAD] || ctx->opt[O_KEY]) return s_usage_error(ctx, "--head and --key are for 'audit verify'");
    if (ctx->npos > 1) return s_usage_error(ctx, "unexpected argument '%s'", ctx->pos[1]);
    if (ctx->opt[O_JOB] && s_check_id(ctx, ctx->opt[O_JOB], "job")) return MGCTL_EXIT_USAGE;
    const char *limit = s_limit(ctx);
    if (!limit) return MGCTL_EXIT_USAGE;
    mg_kv_t args;
    mg_kv_init(&args);
    mg_kv_set(&args, "query", query);
    if (ctx->opt[O_JOB]) mg_kv_set(&args, "job_id", ctx->opt[O_JOB]);
    mg_kv_set(&args, "limit", limit);
    mg_reply_t reply;
    mg_reply_init(&reply);
    int rc = s_call(ctx, MG_CMD_AUDIT, &args, NULL, 0, &reply);
    if (rc == 0) {
        s_print_rows(ctx, &reply, "(no audit records match)");
        if (!ctx->json) s_limit_hint(&reply, limit);
    }
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

static int s_cmd_verify(s_ctx_t *ctx)
{
    if (ctx->npos != 1) return s_usage_error(ctx, "expected one audio file (mgctl verify FILE)");
    const char *path = ctx->pos[0];
    char sha[65], tag[128] = "";
    if (mg_sha256_file_hex(path, sha) != 0) {
        fprintf(stderr, "mgctl: cannot read %s: %s\n", path, strerror(errno));
        return MGCTL_EXIT_ERROR;
    }
    int tagged = mg_filetag_read(path, MG_TAG_RENDER_ID, tag, sizeof tag) == 0;
    mg_kv_t args;
    mg_kv_init(&args);
    mg_kv_set(&args, "sha256", sha);
    if (tagged) mg_kv_set(&args, "render_id", tag);
    mg_reply_t reply;
    mg_reply_init(&reply);
    int rc = s_key_arg(ctx, &args);
    if (rc == 0) rc = s_call(ctx, MG_CMD_VERIFY, &args, NULL, 0, &reply);
    if (rc) goto out;

    mg_kv_t *in = &reply.info;
    const char *status = mg_kv_get_or(in, "status", "");
    /* A known file whose record no longer matches its hash: the file is fine, the audit
     * trail is not. */
    if (strcmp(status, "known") == 0)
        rc = strcmp(mg_kv_get_or(&reply.info, "record_intact", "1"), "0") == 0 ? MGCTL_EXIT_AUDIT_BROKEN : MGCTL_EXIT_OK;
    else if (strcmp(status, "altered") == 0) rc = MGCTL_EXIT_ALTERED;
    else if (strcmp(status, "unknown") == 0) rc = MGCTL_EXIT_UNKNOWN;
    else {
        fprintf(stderr, "mgctl: bad reply to VERIFY from %s: status '%s' is none of known, "
                        "altered, unknown\n", ctx->endpoint, status);
        rc = MGCTL_EXIT_ERROR;
        goto out;
    }
    if (ctx->json) {
        if (!mg_kv_get(in, "file")) mg_kv_set(in, "file", path);
        if (!mg_kv_get(in, "sha256")) mg_kv_set(in, "sha256", sha);
        if (!mg_kv_get(in, "tag_render_id")) mg_kv_set(in, "tag_render_id", tagged ? tag : "");
        mg_out_json_reply(stdout, in, reply.rows, reply.n_rows);
        goto out;
    }
    const char *msg = mg_kv_get_or(in, "message", "");
    const mg_kv_t *prov = reply.n_rows ? &reply.rows[0] : NULL;
    if (rc == MGCTL_EXIT_OK) {
        printf("%s: made by mg%s%s\n", path, *msg ? ": " : "", msg);
        if (prov) mg_out_fields(stdout, prov, "  ");
    } else if (rc == MGCTL_EXIT_ALTERED) {
        printf("altered: %s: %s\n", path,
               *msg ? msg : "its mg tags name a render, but the bytes differ from what mg made");
        printf("  sha256 of this file  %s\n", sha);
        if (prov) {
            printf("  the render its tags name:\n");
            mg_out_fields(stdout, prov, "    ");
        }
    } else if (rc == MGCTL_EXIT_AUDIT_BROKEN) {
        printf("made by mg, but its audit trail is broken: %s: %s\n", path, msg);
        if (prov) mg_out_fields(stdout, prov, "  ");
    } else {
        printf("unknown: %s: %s\n", path, *msg ? msg : "no render made by mg has this content");
        printf("  sha256  %s\n", sha);
        if (tagged) printf("  MG_RENDER_ID tag  %s\n", tag);
    }
    if (mg_kv_get(in, "signature"))
        printf("  record signature  %s%s%s%s\n", mg_kv_get_or(in, "signature", ""),
               *mg_kv_get_or(in, "signer_key_id", "") ? " (key id " : "", mg_kv_get_or(in, "signer_key_id", ""),
               *mg_kv_get_or(in, "signer_key_id", "") ? ")" : "");
out:
    mg_reply_clear(&reply);
    mg_kv_clear(&args);
    return rc;
}

/* `plan` runs the composer locally (cli/plan.c); no coordinator is contacted. */
static int s_cmd_plan(s_ctx_t *ctx)
{
    if (ctx->npos != 1) return s_usage_error(ctx, "which job file? (mgctl plan FILE [--json] [--midi DIR])");
    int rc = mg_plan_run(ctx->pos[0], ctx->json, ctx->opt[O_MIDI], stdout, stderr);
    return rc == MG_PLAN_OK ? MGCTL_EXIT_OK : rc == MG_PLAN_INVALID_JOB ? MGCTL_EXIT_INVALID_JOB : MGCTL_EXIT_ERROR;
}

static int s_cmd_ping(s_ctx_t *ctx)
{
    if (ctx->npos) return s_usage_error(ctx, "unexpected argument '%s'", ctx->pos[0]);
    mg_reply_t reply;
    mg_reply_init(&reply);
    int64_t t0 = mg_mono_ms();
    int rc = s_call(ctx, MG_CMD_PING, NULL, NULL, 0, &reply);
    int64_t rtt = mg_mono_ms() - t0;
    if (rc == 0 && ctx->json) {
        mg_out_json_reply(stdout, &reply.info, reply.rows, reply.n_rows);
    } else if (rc == 0) {
        printf("coordinator at %s: ok (%" PRId64 " ms)\n", ctx->endpoint, rtt);
        mg_out_fields(stdout, &reply.info, "  ");
    }
    mg_reply_clear(&reply);
    return rc;
}

/* `fetch` copies a job's files here (cli/fetch.c). */
static int s_cmd_fetch(s_ctx_t *ctx)
{
    if (ctx->npos != 1) return s_usage_error(ctx, "which job? (mgctl fetch JOB [--dest DIR] [--kind mix,stem,midi])");
    if (s_check_id(ctx, ctx->pos[0], "job") != 0) return MGCTL_EXIT_USAGE;
    unsigned kinds;
    char err[256];
    if (mg_fetch_parse_kinds(ctx->opt[O_KIND], &kinds, err, sizeof err) != 0) return s_usage_error(ctx, "%s", err);
    if (ctx->opt[O_DEST] && !*ctx->opt[O_DEST]) return s_usage_error(ctx, "--dest needs a folder");
    mg_fetch_opts_t o = {ctx->endpoint, ctx->timeout_ms, ctx->pos[0], ctx->opt[O_DEST], kinds, ctx->json};
    return mg_fetch_run(&o, stdout, stderr);
}

static int s_cmd_keys(s_ctx_t *ctx)
{
    return mg_keys_run(ctx->pos, ctx->npos, ctx->opt[O_ROLE], ctx->opt[O_OUT], ctx->json, stdout, stderr);
}

/* ---- command table and help ---------------------------------------------------------- */

static const s_cmd_t s_cmds[] = {
    {"submit", s_cmd_submit, OB(O_WAIT),
     "check a job file locally, then queue its renders",
     "mgctl submit FILE [--wait] [--json]\n\n"
     "Parses FILE locally first: on errors prints them (file:line:col: message) and exits 4\n"
     "without contacting the coordinator. Then sends it; prints \"job 12: 40 renders queued\",\n"
     "or \"job 12 already submitted (idempotency key ...): nothing duplicated\" when the same\n"
     "job (same idempotency key) was submitted before.\n\n"
     "  --wait   poll the job every 500 ms until it finishes: a progress bar on a terminal,\n"
     "           a line per change otherwise (both on stderr). Exit 0 when every render is\n"
     "           done, 5 if any failed, 6 if the job was cancelled, 130 on Ctrl-C (the job\n"
     "           keeps running). With --json the final status is printed as JSON.\n"},
    {"status", s_cmd_status, 0,
     "a job's state, counts and renders",
     "mgctl status JOB [--json]\n\n"
     "Prints the job's campaign, state and counts, then one row per render: render_id, cue,\n"
     "variation, seed, state, attempts, worker, error, outputs.\n"},
    {"watch", s_cmd_watch, OB(O_SINCE),
     "follow the event log (all jobs, or one until it finishes)",
     "mgctl watch [JOB] [--since ID] [--json]\n\n"
     "Polls the event log every 500 ms and prints each new event as a line:\n"
     "  TIME  KIND  job J  render R  worker W  message\n"
     "Without JOB: every job's events, starting with the last 10 (like tail -f); runs until\n"
     "Ctrl-C (exit 0). With JOB: that job's events from its start; stops when the job is\n"
     "no longer active and exits like submit --wait (0 done, 5 failures, 6 cancelled).\n\n"
     "  --since ID  start after event ID (0 = the whole log)\n"
     "  --json      one JSON object per event per line (JSON Lines)\n"},
    {"list", s_cmd_list, OB(O_STATE) | OB(O_LIMIT) | OB(O_JOB) | OB(O_CUE),
     "list jobs, or renders across jobs",
     "mgctl list [jobs] [--state S] [--limit N] [--json]\n"
     "mgctl list renders [--job J] [--state S] [--cue C] [--limit N] [--json]\n\n"
     "  --state S   only jobs / renders in state S (jobs: active, done, failed, cancelled;\n"
     "              renders: queued, leased, done, failed, cancelled)\n"
     "  --job J     only renders of job J\n"
     "  --cue C     only renders of cue C\n"
     "  --limit N   at most N rows (default " S_DEFAULT_LIMIT ")\n"},
    {"cancel", s_cmd_cancel, 0,
     "cancel a job's queued and running renders",
     "mgctl cancel JOB [--json]\n\n"
     "Cancels the job's renders that are not finished; prints how many were cancelled.\n"},
    {"retry", s_cmd_retry, 0,
     "requeue a job's failed and cancelled renders",
     "mgctl retry JOB [--json]\n\n"
     "Puts the job's failed and cancelled renders back in the queue and makes the job active\n"
     "again; prints how many were requeued.\n"},
    {"workers", s_cmd_workers, 0,
     "the workers the coordinator knows, and their state",
     "mgctl workers [--json]\n"},
    {"schedule", s_cmd_schedule, OB(O_CRON) | OB(O_NAME),
     "submit a job file on a cron schedule",
     "mgctl schedule add --cron \"MIN HOUR DOM MON DOW\" [--name N] FILE\n"
     "mgctl schedule list [--json]\n"
     "mgctl schedule remove|pause|resume ID\n\n"
     "add checks FILE locally like submit (exit 4 on errors), then stores it; the coordinator\n"
     "submits it at every cron match (UTC). --name defaults to the job's campaign. Prints\n"
     "the schedule id and the next run.\n"},
    {"audit", s_cmd_audit, OB(O_JOB) | OB(O_LIMIT) | OB(O_HEAD) | OB(O_KEY),
     "query the audit log, verify its signed hash chain, or print a signed head",
     "mgctl audit [renders|models|failures|workers|provenance] [--job J] [--limit N] [--json]\n"
     "mgctl audit verify [--key FILE] [--head FILE] [--json]\n"
     "mgctl audit head [--json]\n\n"
     "The first form prints the audit records of that kind (default renders) in the\n"
     "coordinator's order; --job J narrows them to one job; --limit defaults to " S_DEFAULT_LIMIT ".\n"
     "verify re-hashes the whole chain and checks every record's signature: exit 0 when\n"
     "intact, 7 when a record was changed or removed or a signature fails (the first broken\n"
     "record is named). Records written before signing began are reported as unsigned.\n"
     "  --key FILE   check the signatures with this public key (a copy of provenance.pub\n"
     "               kept elsewhere) instead of the key the coordinator reports\n"
     "  --head FILE  also check a head saved by 'audit head': its signature, and that the\n"
     "               chain still holds its record with its hash (exit 7 when the tail was\n"
     "               removed or the chain rewritten before it)\n"
     "head prints the newest record's seq and hash with the time, the public key and the\n"
     "coordinator's signature over them: keep it outside mg.\n"},
    {"verify", s_cmd_verify, OB(O_KEY),
     "is this audio file one mg made, unchanged?",
     "mgctl verify FILE [--key FILE] [--json]\n\n"
     "Hashes FILE (sha256) and reads its MG_RENDER_ID tag if it has one (FLAC Vorbis comment\n"
     "or MP3 ID3 TXXX), then asks the coordinator. Prints the render's provenance when the\n"
     "file is known. Exit 0 known, 7 known but its provenance record was altered afterwards\n"
     "(run 'mgctl audit verify'), 8 altered (its tags name an mg render but the bytes\n"
     "differ), 9 unknown. The record's signature is shown: valid, unsigned (written before\n"
     "signing), invalid or other key (exit 7 for the last two); --key FILE checks it with\n"
     "that public key instead of the coordinator's.\n"},
    {"validate", s_cmd_validate, 0,
     "check job files locally (no coordinator needed)",
     "mgctl validate FILE... [--json]\n\n"
     "Prints \"FILE: ok (N renders)\" for each valid file and the errors (file:line:col:\n"
     "message, on stderr) for each invalid one. Exit 0 when all are valid, 4 otherwise.\n"},
    {"plan", s_cmd_plan, OB(O_MIDI),
     "compose a job file's renders locally: decisions and MIDI",
     "mgctl plan FILE [--json] [--midi DIR]\n\n"
     "Resolves every render of FILE as the coordinator would (same seeds), runs the composer\n"
     "on each and prints what it decided: key, tempo, form, stems. No coordinator is needed.\n"
     "Exit 4 when FILE is invalid. See docs/composer.md.\n\n"
     "  --json      one JSON object: the decision record of every render\n"
     "  --midi DIR  also write each score as DIR/<campaign>/<cue>-vNN.mid (Standard MIDI File)\n"},
    {"fetch", s_cmd_fetch, OB(O_DEST) | OB(O_KIND),
     "copy a job's files (mix, stems, MIDI) to this machine",
     "mgctl fetch JOB [--dest DIR] [--kind mix,stem,midi] [--json]\n\n"
     "Downloads the files of the job's done renders from the coordinator into DIR (default\n"
     "./<campaign>), in the outputs' folder layout, each checked against its recorded sha256\n"
     "before it gets its name; files already there are skipped, a cut transfer (NAME.part)\n"
     "resumes. Writes DIR/manifest.json. Exit 1 if any file failed, 3 if the coordinator\n"
     "stopped answering (run it again to resume). See docs/cli.md.\n\n"
     "  --dest DIR   where the files go (created if needed)\n"
     "  --kind K,... only these kinds: mix, stem (or stems), midi; default all\n"
     "  --json       one JSON object: the totals and one row per file\n"},
    {"keys", s_cmd_keys, OB(O_ROLE) | OB(O_OUT),
     "the coordinator's allow-list of CURVE keys (run on its host)",
     "mgctl keys add NAME --role reader|submitter|admin|worker [--out DIR]\n"
     "mgctl keys list [--json]\n"
     "mgctl keys revoke NAME\n\n"
     "add makes a keypair, writes NAME.key (secret, 0600) and NAME.pub to DIR (default .) and\n"
     "installs NAME.pub with its role in $MG_HOME/keys/clients/; the client then sets\n"
     "curve_key = NAME.key and coordinator_key = $MG_HOME/keys/coordinator.pub. revoke removes\n"
     "it: the coordinator drops its sessions within a second. Files only: no coordinator is\n"
     "contacted, so run it where $MG_HOME is the coordinator's (docs/security.md).\n"},
    {"ping", s_cmd_ping, 0,
     "check that the coordinator answers",
     "mgctl ping [--json]\n\n"
     "Prints the round-trip time and what the coordinator reports (version, ...).\n"},
};
#define S_NCMDS (sizeof s_cmds / sizeof s_cmds[0])

static const char s_global_help[] =
    "Global options (before or after the command):\n"
    "  --endpoint E   coordinator endpoint (default: $MG_ENDPOINT, then 'endpoint' in\n"
    "                 $MG_HOME/mg.conf, then " MG_DEFAULT_ENDPOINT ")\n"
    "  --timeout MS   how long to wait for each answer (default: $MG_TIMEOUT, then\n"
    "                 'timeout' in mg.conf, then 5000)\n"
    "  --curve-key F  this client's secret key file (MG_CURVE_KEY, 'curve_key')\n"
    "  --coordinator-key F  the coordinator's public key file (MG_COORDINATOR_KEY,\n"
    "                 'coordinator_key'); both or neither (docs/security.md)\n"
    "  --json         machine-readable output: one JSON object, every value a string\n"
    "  --help         usage (of the command when one is given)\n";

static const char s_exit_help[] =
    "Exit codes:\n"
    "  0 ok                           5 job finished with failed renders\n"
    "  1 error from the coordinator   6 job cancelled\n"
    "  2 usage                        7 audit chain broken\n"
    "  3 coordinator unreachable      8 file altered\n"
    "  4 invalid job file             9 file unknown\n"
    "  130 Ctrl-C while submit --wait was waiting\n";

static void s_help_main(FILE *f)
{
    fprintf(f, "mgctl %s - command-line client of the mg render farm\n\n", MG_VERSION);
    fprintf(f, "Usage: mgctl [--endpoint E] [--timeout MS] [--json] COMMAND [ARGS...]\n\n");
    fprintf(f, "Commands:\n");
    for (size_t i = 0; i < S_NCMDS; i++) fprintf(f, "  %-10s %s\n", s_cmds[i].name, s_cmds[i].summary);
    fprintf(f, "  %-10s %s\n\n", "help", "help CMD: a command's usage");
    fputs(s_global_help, f);
    fputc('\n', f);
    fputs(s_exit_help, f);
    fprintf(f, "\nSee docs/cli.md for details and examples.\n");
}

static void s_help_cmd(FILE *f, const s_cmd_t *cmd)
{
    fputs("Usage:\n", f);
    int bol = 1; /* synopsis lines (the first block) are indented; the description is not */
    int synopsis = 1;
    for (const char *p = cmd->usage; *p; p++) {
        if (bol && *p == '\n') synopsis = 0;
        if (bol && synopsis) fputs("  ", f);
        fputc(*p, f);
        bol = *p == '\n';
    }
    fputc('\n', f);
    fputs(s_global_help, f);
    fputc('\n', f);
    fputs(s_exit_help, f);
}

static const s_cmd_t *s_find_cmd(const char *name)
{
    for (size_t i = 0; i < S_NCMDS; i++)
        if (strcmp(s_cmds[i].name, name) == 0) return &s_cmds[i];
    return NULL;
}

static int s_unknown_cmd(const char *name)
{
    const char *best = NULL;
    int bd = 3;
    for (size_t i = 0; i < S_NCMDS; i++) {
        int d = mg_edit_distance(name, s_cmds[i].name);
        if (d < bd) {
            bd = d;
            best = s_cmds[i].name;
        }
    }
    if (best) return s_usage_error(NULL, "unknown command '%s' (did you mean '%s'?)", name, best);
    return s_usage_error(NULL, "unknown command '%s'", name);
}

/* Parses options in argv[*i..] allowed by mask into ctx->opt. Positionals are collected
 * into ctx->pos, or stop the scan when collect is 0 (the global options before the
 * command). Returns 0 or a usage exit code. */
static int s_parse_opts(s_ctx_t *ctx, int argc, char **argv, int *i, unsigned mask, int collect)
{
    int only_pos = 0;
    for (; *i < argc; (*i)++) {
        char *a = argv[*i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (!collect) return 0;
            ctx->pos[ctx->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            if (!collect) {
                (*i)++;
                return 0;
            }
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0) {
            ctx->opt[O_HELP] = "1";
            continue;
        }
        if (a[1] != '-') return s_usage_error(ctx, "unknown option '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int o = -1;
        for (int k = 0; k < O_COUNT; k++)
            if ((mask & OB(k)) && strlen(s_opts[k].name) == nlen && strncmp(s_opts[k].name, name, nlen) == 0)
                o = k;
        if (o < 0) {
            char given[64];
            snprintf(given, sizeof given, "%.*s", (int)(nlen < 60 ? nlen : 60), name);
            const char *best = NULL;
            int bd = 3;
            for (int k = 0; k < O_COUNT; k++) {
                int d = mg_edit_distance(given, s_opts[k].name);
                if ((mask & OB(k)) && d < bd) {
                    bd = d;
                    best = s_opts[k].name;
                }
            }
            if (best) return s_usage_error(ctx, "unknown option '--%s' (did you mean '--%s'?)", given, best);
            for (int k = 0; k < O_COUNT; k++)
                if (strcmp(given, s_opts[k].name) == 0)
                    return s_usage_error(ctx, "option '--%s' does not apply %s", given,
                                         ctx->cmd ? "to this command" : "before the command");
            return s_usage_error(ctx, "unknown option '--%s'", given);
        }
        if (!s_opts[o].arg) {
            if (eq) return s_usage_error(ctx, "option --%s takes no value", s_opts[o].name);
            ctx->opt[o] = "1";
        } else if (eq) {
            ctx->opt[o] = eq + 1;
        } else if (*i + 1 < argc) {
            ctx->opt[o] = argv[++(*i)];
        } else {
            return s_usage_error(ctx, "option --%s needs a value (--%s %s)", s_opts[o].name,
                                 s_opts[o].name, s_opts[o].arg);
        }
    }
    return 0;
}

/* Parses the command line into ctx and runs the command. Returns the exit code. */
static int s_main(s_ctx_t *ctx, int argc, char **argv)
{
    int i = 1;
    int rc = s_parse_opts(ctx, argc, argv, &i, S_GLOBAL_OPTS | OB(O_VERSION), 0);
    if (rc) return rc;
    if (ctx->opt[O_VERSION] || (i < argc && strcmp(argv[i], "version") == 0)) {
        printf("mgctl %s (protocol %s)\n", MG_VERSION, MG_PROTO_CLIENT);
        return MGCTL_EXIT_OK;
    }
    if (i >= argc) {
        if (!ctx->opt[O_HELP]) return s_usage_error(NULL, "no command given");
        s_help_main(stdout);
        return MGCTL_EXIT_OK;
    }
    const char *name = argv[i++];
    if (strcmp(name, "help") == 0) {
        if (i >= argc) {
            s_help_main(stdout);
            return MGCTL_EXIT_OK;
        }
        const s_cmd_t *cmd = s_find_cmd(argv[i]);
        if (!cmd) return s_unknown_cmd(argv[i]);
        s_help_cmd(stdout, cmd);
        return MGCTL_EXIT_OK;
    }
    ctx->cmd = s_find_cmd(name);
    if (!ctx->cmd) return s_unknown_cmd(name);
    if (!ctx->opt[O_HELP]) {
        rc = s_parse_opts(ctx, argc, argv, &i, S_GLOBAL_OPTS | ctx->cmd->opts, 1);
        if (rc) return rc;
    }
    if (ctx->opt[O_HELP]) {
        s_help_cmd(stdout, ctx->cmd);
        return MGCTL_EXIT_OK;
    }

    ctx->json = ctx->opt[O_JSON] != NULL;
    /* The client reads its keys from the environment or mg.conf (common/curve.h). */
    if (ctx->opt[O_CURVE_KEY]) setenv(MG_CURVE_KEY, ctx->opt[O_CURVE_KEY], 1);
    if (ctx->opt[O_COORD_KEY]) setenv(MG_COORDINATOR_KEY, ctx->opt[O_COORD_KEY], 1);
    ctx->endpoint = mg_config_get("endpoint", ctx->opt[O_ENDPOINT], "MG_ENDPOINT", MG_DEFAULT_ENDPOINT);
    const char *timeout = mg_config_get("timeout", ctx->opt[O_TIMEOUT], "MG_TIMEOUT", "5000");
    long long t;
    if (s_parse_count(timeout, 86400000, &t) != 0)
        return s_usage_error(ctx, "timeout '%s' is not a number of milliseconds from 1 to 86400000", timeout);
    ctx->timeout_ms = (int)t;
    if (!*ctx->endpoint) return s_usage_error(ctx, "the endpoint is empty (--endpoint tcp://HOST:PORT)");
    return ctx->cmd->run(ctx);
}

int main(int argc, char **argv)
{
    mg_log_init("mgctl"); /* also initialises libsodium for the sha256 helpers */
    s_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.pos = calloc((size_t)argc + 1, sizeof *ctx.pos);
    if (!ctx.pos) {
        fprintf(stderr, "mgctl: out of memory\n");
        return MGCTL_EXIT_ERROR;
    }
    int rc = s_main(&ctx, argc, argv);
    fflush(stdout);
    mg_client_destroy(&ctx.client);
    free(ctx.pos);
    return rc;
}
