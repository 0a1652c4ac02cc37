/* render_wavernn.c - the neural renderer "wavernn" (render_wavernn.h): plays the composer's
 * score with the WaveRNN model of kernels/wavernn.h. Like render_synth.c it makes no musical
 * decision: notes, velocities, instruments, gains and pans come from the score.
 *
 * Flow of a render:
 *   mg_compose (as render_synth.c: same spec, same seed, same decision record)
 *   -> per score stem: notes at 24 kHz, sample-exact from ticks and the tempo map; class from
 *      its GM program (drums: the kit) through the model's program_map; length = last
 *      note-off + MG_WAVERNN_TAIL_S (capped at the cue), zeros after
 *   -> every stem of the render in one batch (mg_wavernn_render_threads on the CPU, or the CUDA
 *      plugin's render when the worker runs backend cuda: same stems, same keys; a failed
 *      device call is logged and the batch rerun on the CPU), draws keyed by
 *      (seed = the render's seed, stream = the stem's index: the seed already names the
 *      variation, so a fixed seed renders the same audio in any job, as docs/jobs.md promises)
 *   -> non-finite audio fails the render; per stem: DC removal, a 50 ms fade where the
 *      rendering stops early, a warning when a stem with notes came out near-silent
 *   -> the synth's cue fades, stem level (at most +40 dB) and mix peak guard (stems.h)
 *   -> 24 kHz mono stems, the score's names, gains and pans, to the pipeline.
 *
 * A loop (score->loop) is rendered with a pre-roll: each stem's notes from S_LOOP_PREROLL_S
 * before the loop's end, then the whole loop, in one run of the model; the pre-roll is cut off.
 * So the loop's first bar is played by a model that has just played its last bar, and the last
 * bar's releases ring on into the first bar as the model renders them. Folding a tail rendered
 * past the end onto a start rendered from silence (what render_synth.c does, exact for a
 * renderer linear in its notes) is not enough for an autoregressive model: begun from silence,
 * the default model plays its first hit much louder than the same hit later (the drums of the
 * demo loop: 18 dB over the other downbeats), so the loop would thump once per round.
 * The seam itself is a crossfade, and the only one: the loop's last S_LOOP_XFADE_S are blended
 * (s_loop_seam) from the main run's rendering of them into the pre-roll's rendering of the same
 * notes, which the model continued into the first sample; both are the same notes, so nothing
 * is faded in or out, but for those 50 ms two draws of the model are mixed. No cue fades.
 * Cost: S_LOOP_PREROLL_S more samples per stem. (Moving the seam to another bar line of the
 * demo loop, by rotating its notes, leaves every bar line's spectral flux where it was: the
 * seam adds nothing measurable; its first bar is the strongest downbeat wherever it lands.)
 *
 * Progress and cancellation: the kernel has no progress callback and cannot be stopped
 * mid-batch. So the batch runs on a helper thread while the calling (render) thread reports an
 * estimate of progress every S_POLL_MS (elapsed time against the expected speed), which keeps
 * the coordinator's lease alive on long cues. A cancellation is noticed at the next poll but
 * takes effect when the batch ends (a 30 s cue of four stems takes about 10 s on one core);
 * only a render of more than MG_WR_MAX_BATCH stems, which runs as several batches, skips the
 * batches after it.
 */
#include "render_wavernn.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/util.h"
#include "stems.h"

#define S_END_FADE_S 0.05      /* fade where a stem's rendering stops before the cue ends */
#define S_LOOP_PREROLL_S 2.0   /* a loop is rendered from this long before its end (wrapping as
                                * often as a short loop needs): the model's state at the start */
#define S_LOOP_XFADE_S 0.05    /* a loop's seam: the last 50 ms blend into the pre-roll's take */
#define S_MAX_GAIN 100.0       /* stem level: at most +40 dB, so model noise is not blown up */
#define S_SILENT_RMS 1e-3      /* -60 dBFS: a stem with notes whose loudest 100 ms stay under this
                                * sounds of nothing */
#define S_DC_HZ 5.0            /* DC removal corner, as the pipeline's */
#define S_POLL_MS 250          /* progress while the batch runs */
/* Samples per second per thread over a batch, for the progress estimate only (default model
 * 0.2.0, bench/RESULTS.md: ~490,000 in total at batch 4-8 with AVX2, ~60,000 for the scalar
 * reference; a little under, so progress does not run ahead). */
#define S_SPEED_AVX2 400000.0
#define S_SPEED_REF 50000.0
/* Per stem on the GPU (not yet measured: bench/cuda/README.md predicts 4-6x this per stream). */
#define S_SPEED_CUDA 100000.0

typedef struct {
    mg_renderer_t r;             /* the public face; r.ctx points back here */
    mg_wavernn_model_t *model;   /* owned */
    char path[PATH_MAX];
    char version[160];
    char device[192];            /* the backend's device: what the provenance names */
    char cpu_device[48];         /* where a render falls back to when the device fails */
    char *attribution;           /* owned: the model's attribution in the protocol's form */
    const mg_backend_cuda_t *cuda;      /* borrowed, NULL on the CPU backend */
    mg_wavernn_cuda_plugin_ctx_t *cu;   /* owned: the model on the device (cuda->api->close) */
    float temperature;
    int threads, isa, raw;
} s_wavernn_t;

/* ---- model file and identity --------------------------------------------------------- */

/* The attribution of the record (docs/protocol.md): one source per line, "source; author;
 * licence; url", which the coordinator splits into attribution rows. A model whose text is
 * in that form (every non-empty line has exactly four fields) passes as it is. Free text (the
 * default model's, for one) becomes one source line, semicolons turned into commas and line
 * breaks into spaces, so that no clause of it is filed as an author or a licence. Caller
 * frees; NULL on OOM. */
static char *s_attribution_lines(const char *text)
{
    int structured = 1, lines = 0;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int semis = 0, blank = 1;
        for (size_t i = 0; i < len; i++) {
            if (p[i] == ';') semis++;
            if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r') blank = 0;
        }
        if (!blank) {
            lines++;
            if (semis != 3) structured = 0;
        }
        p += len;
        if (*p == '\n') p++;
    }
    char *out = strdup(text);
    if (!out || (structured && lines > 0)) return out;
    for (char *p = out; *p; p++) {
        if (*p == ';') *p = ',';
        else if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return out;
}

static int s_render(const mg_renderer_t *self, const mg_render_spec_t *spec, mg_progress_fn progress,
                    void *progress_ctx, mg_audio_t *out, char *err, size_t errlen);

mg_renderer_t *mg_renderer_wavernn_new(const mg_wavernn_opts_t *opts, char *err, size_t errlen)
{
    const char *path = opts->model_path;
    if (!path || !*path) {
        mg_set_error(err, errlen, "no model file given");
        return NULL;
    }
    if (!(opts->temperature > 0.0 && opts->temperature <= 10.0)) {
        mg_set_error(err, errlen, "temperature must be in (0, 10], got %g", opts->temperature);
        return NULL;
    }
    if (opts->threads < 1 || opts->threads > MG_WR_MAX_BATCH) {
        mg_set_error(err, errlen, "render_threads must be 1..%d, got %d", MG_WR_MAX_BATCH, opts->threads);
        return NULL;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        mg_set_error(err, errlen, "%s: cannot open the model file: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(sb.st_mode)) {
        mg_set_error(err, errlen, "%s: is a folder, not a model file (%s)", path, MG_WAVERNN_MODEL_FILE);
        return NULL;
    }
    /* Read once, hash and parse the same bytes: a file replaced meanwhile cannot make the
     * recorded sha256 name other weights than the ones loaded. */
    size_t len = 0;
    char *bytes = mg_read_file(path, &len);
    if (!bytes) {
        mg_set_error(err, errlen, "%s: cannot read the model file: %s", path, strerror(errno));
        return NULL;
    }
    s_wavernn_t *w = calloc(1, sizeof *w);
    if (!w) {
        free(bytes);
        mg_set_error(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    mg_sha256_hex(bytes, len, w->r.model_sha256);
    mg_nn_file_t *file = NULL;
    int rc = mg_nn_file_parse(bytes, len, path, &file, err, errlen);
    free(bytes);
    if (rc != 0 || mg_wavernn_from_file(&file, &w->model, err, errlen) != 0) {
        mg_nn_file_destroy(&file);
        free(w);
        return NULL;
    }
    const mg_wavernn_model_t *m = w->model;
    w->attribution = s_attribution_lines(m->attribution);
    if (!w->attribution) {
        mg_wavernn_destroy(&w->model);
        free(w);
        mg_set_error(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    mg_strlcpy(w->path, path, sizeof w->path);
    w->temperature = (float)opts->temperature;
    w->threads = opts->threads;
    w->raw = opts->raw;
    /* Decided here, before any render thread exists (mg_wavernn_isa caches its answer). */
    w->isa = mg_wavernn_isa() == MG_WR_ISA_AVX2 && m->pk_exc ? MG_WR_ISA_AVX2 : MG_WR_ISA_REF;
#if defined(__x86_64__)
    const char *arch = "x86-64";
#elif defined(__aarch64__)
    const char *arch = "aarch64";
#else
    const char *arch = "cpu";
#endif
    snprintf(w->cpu_device, sizeof w->cpu_device, "%s (%s)", arch, w->isa == MG_WR_ISA_AVX2 ? "avx2" : "scalar");
    mg_strlcpy(w->device, w->cpu_device, sizeof w->device);
    w->r.backend = "cpu";
    if (opts->cuda) {
        char cerr[512] = "";
        w->cu = opts->cuda->api->open(m, cerr, sizeof cerr);
        if (!w->cu) {
            mg_set_error(err, errlen, "%s: the CUDA plugin %s cannot take the model: %s", path, opts->cuda->path, cerr);
            mg_wavernn_destroy(&w->model);
            free(w->attribution);
            free(w);
            return NULL;
        }
        w->cuda = opts->cuda;
        mg_strlcpy(w->device, opts->cuda->device, sizeof w->device);
        w->r.backend = "cuda";
    }
    /* The temperature changes what a seed renders, so a non-default one is part of the
     * model's identity in the provenance record. */
    if (w->temperature == 1.0f) mg_strlcpy(w->version, m->version, sizeof w->version);
    else snprintf(w->version, sizeof w->version, "%s (temperature %g)", m->version, (double)w->temperature);
    w->r.name = "wavernn";
    w->r.device = w->device;
    w->r.model_name = m->name;
    w->r.model_version = w->version;
    w->r.model_license = m->license;
    w->r.attribution = w->attribution;
    w->r.ctx = w;
    w->r.render = s_render;
    return &w->r;
}

void mg_renderer_wavernn_destroy(mg_renderer_t **r_p)
{
    if (!r_p || !*r_p) return;
    s_wavernn_t *w = (*r_p)->ctx;
    if (w->cu) w->cuda->api->close(&w->cu);
    mg_wavernn_destroy(&w->model);
    free(w->attribution);
    free(w);
    *r_p = NULL;
}

int mg_renderer_wavernn_default_model(char *buf, size_t len)
{
    static const char *const rel[] = {"/../models/default/", "/../share/mg/models/default/"};
    char exe[PATH_MAX], cand[3][PATH_MAX + 64];
    int n = 0;
    ssize_t got = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (got > 0) {
        exe[got] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        for (int i = 0; i < 2; i++)
            snprintf(cand[n++], sizeof cand[0], "%s%s%s", exe, rel[i], MG_WAVERNN_MODEL_FILE);
    }
    snprintf(cand[n++], sizeof cand[0], "./models/default/%s", MG_WAVERNN_MODEL_FILE);
    for (int i = 0; i < n; i++) {
        struct stat sb;
        if (stat(cand[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            /* the shortest spelling for the log: resolve the "bin/.." */
            char real[PATH_MAX];
            mg_strlcpy(buf, realpath(cand[i], real) ? real : cand[i], len);
            return 0;
        }
    }
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && used < len; i++) {
        int k = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", cand[i]);
        if (k < 0) break;
        used += (size_t)k;
    }
    return -1;
}

/* ---- score to notes ----------------------------------------------------------------- */

/* Microseconds to the nearest sample at MG_WR_SR, in integers (600 s * 24 kHz fits easily). */
static int64_t s_us_to_sample(int64_t us) { return (us * MG_WR_SR + 500000) / 1000000; }

int64_t mg_renderer_wavernn_notes(const mg_score_t *score, const mg_score_stem_t *st,
                                  mg_wavernn_note_t *out)
{
    int64_t last_off = 0;
    for (int j = 0; j < st->n_notes; j++) {
        const mg_score_note_t *n = &st->notes[j];
        int64_t on = s_us_to_sample(mg_score_tick_us(score, n->start_tick));
        int64_t off = s_us_to_sample(mg_score_tick_us(score, n->start_tick + n->duration_tick));
        if (off <= on) off = on + 1;
        out[j].on = on;
        out[j].off = off;
        out[j].pitch = n->pitch < 0 ? 0 : n->pitch > 127 ? 127 : n->pitch;
        out[j].velocity = n->velocity < 1 ? 1 : n->velocity > 127 ? 127 : n->velocity;
        if (off > last_off) last_off = off;
    }
    return last_off;
}

uint64_t mg_renderer_wavernn_stream(const mg_render_spec_t *spec, int k)
{
    (void)spec;   /* not the render id: the same seed must give the same audio in a new job */
    return (uint64_t)k;
}

/* ---- the batch, with progress ------------------------------------------------------- */

/* Runs the model over stems[0..n) on the renderer's backend. On the CUDA backend a failed
 * device call is logged and the batch rendered again on the CPU (every output is rewritten
 * whole), with *fell_back set. 0, or -1 (the CPU runtime is out of memory). */
static int s_model_run(const s_wavernn_t *w, int64_t render_id, const mg_wavernn_stem_t *stems, int n,
                       int *fell_back)
{
    if (w->cu) {
        char err[512] = "";
        int rc = 0;
        for (int first = 0; first < n && rc == 0; first += w->cuda->api->max_batch) {
            int m = n - first < w->cuda->api->max_batch ? n - first : w->cuda->api->max_batch;
            rc = w->cuda->api->render(w->cu, stems + first, m, w->temperature, err, sizeof err);
        }
        if (rc == 0) return 0;
        mg_warn("render %" PRId64 ": the CUDA device (%s) failed a batch of %d stems: %s; rendering it on the "
                "CPU (%s) instead", render_id, w->device, n, err, w->cpu_device);
        *fell_back = 1;
    }
    return mg_wavernn_render_threads(w->model, stems, n, w->temperature, w->isa, w->threads);
}

typedef struct {
    const s_wavernn_t *w;
    const mg_wavernn_stem_t *stems;
    int64_t render_id;
    int n, rc, fell_back;
    int done;                    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
} s_batch_t;

static void *s_batch_main(void *arg)
{
    s_batch_t *b = arg;
    int rc = s_model_run(b->w, b->render_id, b->stems, b->n, &b->fell_back);
    pthread_mutex_lock(&b->lock);
    b->rc = rc;
    b->done = 1;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

static double s_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Renders stems[0..n) (n <= MG_WR_MAX_BATCH). Without a progress callback it runs on the
 * calling thread; with one, on a helper thread while this one reports lo + (hi - lo) x the
 * estimated share done every S_POLL_MS, until the callback asks to cancel (then it only
 * waits). Sets *cancelled when it did, *fell_back when the device failed and the CPU rendered
 * (s_model_run). 0, or -1 (out of memory, a thread could not start). */
static int s_run_batch(const s_wavernn_t *w, int64_t render_id, const mg_wavernn_stem_t *stems, int n, double lo,
                       double hi, mg_progress_fn progress, void *progress_ctx, int *cancelled, int *fell_back)
{
    if (!progress) return s_model_run(w, render_id, stems, n, fell_back);
    s_batch_t b = {.w = w, .stems = stems, .render_id = render_id, .n = n, .rc = -1};
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t tid;
    int rc;
    if (pthread_create(&tid, NULL, s_batch_main, &b) != 0) {
        rc = -1;
    } else {
        double samples = 0.0, t0 = s_mono_s();
        for (int k = 0; k < n; k++) samples += (double)stems[k].n_samples;
        int par = w->cu ? n : w->threads < n ? w->threads : n;
        double speed = w->cu ? S_SPEED_CUDA : w->isa == MG_WR_ISA_AVX2 ? S_SPEED_AVX2 : S_SPEED_REF;
        double expected = samples / (speed * par);
        pthread_mutex_lock(&b.lock);
        while (!b.done) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += S_POLL_MS * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&b.cond, &b.lock, &ts);
            if (b.done || *cancelled) continue;
            pthread_mutex_unlock(&b.lock);
            double share = expected > 0.0 ? (s_mono_s() - t0) / expected : 1.0;
            if (progress(progress_ctx, lo + (hi - lo) * (share < 1.0 ? share : 1.0)) != 0) *cancelled = 1;
            pthread_mutex_lock(&b.lock);
        }
        pthread_mutex_unlock(&b.lock);
        pthread_join(tid, NULL);
        rc = b.rc;
        if (b.fell_back) *fell_back = 1;
    }
    pthread_cond_destroy(&b.cond);
    pthread_mutex_destroy(&b.lock);
    return rc;
}

/* ---- after the model ---------------------------------------------------------------- */

/* One-pole DC blocker, in place (the model's output can sit off zero; the level below must
 * measure the music, not the offset). */
static void s_remove_dc(float *x, size_t n)
{
    double r = exp(-2.0 * M_PI * S_DC_HZ / MG_WR_SR), x1 = 0.0, y1 = 0.0;
    for (size_t i = 0; i < n; i++) {
        double y = x[i] - x1 + r * y1;
        x1 = x[i];
        y1 = y;
        x[i] = (float)y;
    }
}

/* A loop's notes with its pre-roll (render_wavernn.c's opening comment): the notes of the loop
 * (base[0..n), loop time 0..period) from pre samples before its end, wrapped as often as needed,
 * then the loop itself, all moved on by pre; a note already sounding where the pre-roll starts
 * begins there. out has room for n * (1 + ceil(pre / period)). Returns the count. */
static size_t s_loop_notes(const mg_wavernn_note_t *base, size_t n, int64_t period, int64_t pre,
                           mg_wavernn_note_t *out)
{
    size_t m = 0;
    for (int64_t r = (pre + period - 1) / period; r >= 1; r--)
        for (size_t j = 0; j < n; j++) {
            mg_wavernn_note_t x = base[j];
            x.on += pre - r * period;
            x.off += pre - r * period;
            if (x.off <= 0) continue;
            if (x.on < 0) x.on = 0;
            out[m++] = x;
        }
    for (size_t j = 0; j < n; j++) {
        out[m] = base[j];
        out[m].on += pre;
        out[m++].off += pre;
    }
    return m;
}

/* The seam of a loop rendered with its pre-roll: y[0 .. pre + period) is the model's output.
 * The loop's last fade samples go over from the main take (y[pre + period - fade ..]) to the
 * pre-roll's take of the same notes (y[pre - fade ..]), which runs on into y[pre]; then the loop
 * moves to y[0 .. period). The crossfade is a raised cosine whose two gains are scaled so that
 * the level holds for the takes' correlation r over the fade: equal gain when they are alike
 * (r = 1: pitched stems, 0.9 to 1 in the demo loop), equal power when they are unrelated (r = 0:
 * the drums' noise, which an equal-gain fade would dip by 3 dB just before the downbeat).
 * pre >= fade. */
static void s_loop_seam(float *y, size_t period, size_t pre, size_t fade)
{
    float *end = y + pre + period - fade;
    const float *alt = y + pre - fade;
    double ee = 0.0, aa = 0.0, ea = 0.0;
    for (size_t j = 0; j < fade; j++) {
        ee += (double)end[j] * end[j];
        aa += (double)alt[j] * alt[j];
        ea += (double)end[j] * alt[j];
    }
    double r = ee > 0.0 && aa > 0.0 ? ea / sqrt(ee * aa) : 1.0;
    if (r < 0.0) r = 0.0;
    for (size_t j = 0; j < fade; j++) {
        double w = 0.5 - 0.5 * cos(M_PI * ((double)j + 0.5) / (double)fade);
        double k = 1.0 / sqrt((1.0 - w) * (1.0 - w) + w * w + 2.0 * r * w * (1.0 - w));
        end[j] = (float)(k * ((1.0 - w) * end[j] + w * alt[j]));
    }
    memmove(y, y + pre, period * sizeof *y);
    memset(y + period, 0, pre * sizeof *y);
}

/* The index of the first non-finite sample of x[0..n), or n. */
static size_t s_first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

/* The RMS of the loudest 100 ms block of x[0..n) (rests do not count against a sparse stem). */
static double s_loudest_rms(const float *x, size_t n)
{
    const size_t blk = MG_WR_SR / 10;
    double best = 0.0;
    for (size_t i = 0; i < n; i += blk) {
        size_t e = i + blk < n ? i + blk : n;
        double sum = 0.0;
        for (size_t j = i; j < e; j++) sum += (double)x[j] * x[j];
        if (sum / (double)(e - i) > best) best = sum / (double)(e - i);
    }
    return sqrt(best);
}

/* ---- the render --------------------------------------------------------------------- */

static int s_render(const mg_renderer_t *self, const mg_render_spec_t *spec, mg_progress_fn progress,
                    void *progress_ctx, mg_audio_t *out, char *err, size_t errlen)
{
    const s_wavernn_t *w = self->ctx;
    memset(out, 0, sizeof *out);
    char cerr[256] = "";
    mg_score_t *score = mg_compose(spec, cerr, sizeof cerr);
    if (!score) {
        mg_set_error(err, errlen, "wavernn: %s", cerr);
        return MG_RENDER_ERR_PERMANENT;
    }
    int rc = MG_RENDER_ERR_RETRYABLE, ns = score->n_stems, cancelled = 0, fell_back = 0;
    /* frames: what is delivered (a loop: its whole bars, to the nearest sample); a loop's stems
     * are rendered into cap = pre + frames samples, its pre-roll first */
    size_t frames = score->loop ? (size_t)s_us_to_sample(score->duration_us)
                                : (size_t)llround(spec->duration_s * MG_WR_SR);
    if (frames == 0) frames = 1;
    const size_t tail = (size_t)(MG_WAVERNN_TAIL_S * MG_WR_SR);
    const size_t pre = score->loop ? (size_t)(S_LOOP_PREROLL_S * MG_WR_SR) : 0;
    const size_t xfade = (size_t)(S_LOOP_XFADE_S * MG_WR_SR);
    size_t cap = pre + frames, reps = score->loop ? 1 + (pre + frames - 1) / frames : 0;
    mg_stem_t *stems = calloc((size_t)ns, sizeof *stems);
    mg_wavernn_stem_t *wst = calloc((size_t)ns, sizeof *wst);
    mg_wavernn_note_t **notes = calloc((size_t)ns, sizeof *notes);
    int *order = calloc((size_t)ns, sizeof *order);  /* the stems with notes: the batch */
    if (!stems || !wst || !notes || !order) {
        mg_set_error(err, errlen, "wavernn: out of memory");
        goto done;
    }
    if (ns > 256) { /* a bound on the batch; streams are the stem indices */
        mg_set_error(err, errlen, "wavernn: %d stems, the renderer keys at most 256 per render", ns);
        rc = MG_RENDER_ERR_PERMANENT;
        goto done;
    }
    double last_onset = 0.0, total = 0.0;
    int nb = 0;
    for (int k = 0; k < ns; k++) {
        const mg_score_stem_t *st = &score->stems[k];
        stems[k].samples = calloc(cap, sizeof(float));
        notes[k] = malloc(((size_t)st->n_notes * (1 + reps) + 1) * sizeof *notes[k]);
        if (!stems[k].samples || !notes[k]) {
            mg_set_error(err, errlen, "wavernn: out of memory for %d stems of %zu samples", ns, cap);
            goto done;
        }
        mg_strlcpy(stems[k].name, st->name, sizeof stems[k].name);
        stems[k].gain = (float)st->gain;
        stems[k].pan = (float)st->pan;
        for (int j = 0; j < st->n_notes; j++)
            if (st->notes[j].start_s > last_onset) last_onset = st->notes[j].start_s;
        if (st->n_notes == 0) continue; /* silent in the score: stays zeros */
        int program = st->is_drum ? MG_WR_DRUM_KIT : st->program;
        int cls = mg_wavernn_class(w->model, program);
        if (cls < 0) {
            mg_set_error(err, errlen, "wavernn: stem '%s' (%s): GM program %d has no class in model %s", st->name,
                     st->instrument, program, w->model->name);
            rc = MG_RENDER_ERR_PERMANENT;
            goto done;
        }
        int64_t last_off = mg_renderer_wavernn_notes(score, st, notes[k]);
        size_t n_notes = (size_t)st->n_notes;
        if (score->loop) { /* the loop's notes after its pre-roll, in one array */
            mg_wavernn_note_t *base = notes[k] + (size_t)st->n_notes * reps;
            memcpy(base, notes[k], (size_t)st->n_notes * sizeof *base);
            n_notes = s_loop_notes(base, (size_t)st->n_notes, (int64_t)frames, (int64_t)pre, notes[k]);
        }
        /* a loop is rendered to its end: its start already holds the end's releases */
        size_t len = score->loop ? cap : (size_t)last_off + tail;
        wst[k] = (mg_wavernn_stem_t){
            .notes = notes[k],
            .n_notes = n_notes,
            .cls = cls,
            .seed = spec->seed,
            .stream = mg_renderer_wavernn_stream(spec, k),
            .n_samples = len < cap ? len : cap,
            .out = stems[k].samples,
        };
        total += (double)wst[k].n_samples;
        order[nb++] = k;
    }
    if (progress && progress(progress_ctx, 0.05) != 0) {
        mg_set_error(err, errlen, "wavernn: cancelled before the model ran");
        rc = MG_RENDER_ERR_CANCELLED;
        goto done;
    }
    /* Batches of up to MG_WR_MAX_BATCH stems (one for every score the composer writes). */
    mg_wavernn_stem_t batch[MG_WR_MAX_BATCH];
    double done_samples = 0.0;
    for (int first = 0; first < nb; first += MG_WR_MAX_BATCH) {
        int n = nb - first < MG_WR_MAX_BATCH ? nb - first : MG_WR_MAX_BATCH;
        double samples = 0.0;
        for (int i = 0; i < n; i++) {
            batch[i] = wst[order[first + i]];
            samples += (double)batch[i].n_samples;
        }
        double lo = 0.05 + 0.85 * done_samples / total, hi = 0.05 + 0.85 * (done_samples + samples) / total;
        if (s_run_batch(w, spec->render_id, batch, n, lo, hi, progress, progress_ctx, &cancelled, &fell_back) != 0) {
            mg_set_error(err, errlen, "wavernn: the model could not run a batch of %d stems (out of memory?)", n);
            goto done;
        }
        done_samples += samples;
        if (cancelled) {
            mg_set_error(err, errlen, "wavernn: cancelled (taking effect after the model's batch of %d stems, "
                     "which cannot be interrupted)", n);
            rc = MG_RENDER_ERR_CANCELLED;
            goto done;
        }
    }
    for (int i = 0; i < nb; i++) {
        int k = order[i];
        const mg_score_stem_t *st = &score->stems[k];
        float *x = stems[k].samples;
        size_t len = wst[k].n_samples, bad = s_first_nonfinite(x, len);
        if (bad < len) {
            mg_set_error(err, errlen, "wavernn: model %s (%s) wrote %g at sample %zu of stem '%s' (%s, class %d): "
                     "the model file is broken; render with --renderer synth until it is replaced",
                     w->model->name, w->path, (double)x[bad], bad, st->name, st->instrument, wst[k].cls);
            rc = MG_RENDER_ERR_PERMANENT;
            goto done;
        }
        if (w->raw) { /* as the model wrote it, less a loop's pre-roll */
            if (score->loop) memmove(x, x + pre, frames * sizeof *x);
            continue;
        }
        s_remove_dc(x, len);
        if (score->loop) {
            s_loop_seam(x, frames, pre, xfade);
            len = frames;
        } else {
            if (len < frames) /* the release tail ends before the cue: no step to the zeros */
                mg_stem_fades(x, len, MG_WR_SR, S_END_FADE_S);
            mg_stem_fades(x, frames, MG_WR_SR, mg_stem_fade_s(spec->duration_s, last_onset));
        }
        double rms = s_loudest_rms(x, len);
        if (rms < S_SILENT_RMS) { /* suspicious, not fatal: the score may be very sparse */
            mg_warn("render %" PRId64 ": stem '%s' (%s, %d notes) came out near-silent from model %s "
                    "(loudest 100 ms at %.1f dBFS RMS); not levelled", spec->render_id, st->name,
                    st->instrument, st->n_notes, w->model->name, rms > 0.0 ? 20.0 * log10(rms) : -200.0);
            continue;
        }
        double vsum = 0.0;
        for (int j = 0; j < st->n_notes; j++) vsum += st->notes[j].velocity;
        mg_stem_level(x, frames, MG_WR_SR, vsum / st->n_notes, S_MAX_GAIN);
    }
    if (!w->raw && mg_stems_mix_guard(stems, ns, frames) != 0) {
        mg_set_error(err, errlen, "wavernn: out of memory in the mix guard");
        goto done;
    }
    if (progress && progress(progress_ctx, 1.0) != 0) {
        mg_set_error(err, errlen, "wavernn: cancelled after the model ran");
        rc = MG_RENDER_ERR_CANCELLED;
        goto done;
    }
    out->decision_json = mg_score_decision_json(score);
    if (!out->decision_json) {
        mg_set_error(err, errlen, "wavernn: out of memory for the decision record");
        goto done;
    }
    /* The score as MIDI, when the job delivers it: the notes the audio plays. */
    if ((spec->output.deliver & MG_DELIVER_MIDI) &&
        mg_score_write_midi(score, &out->midi, &out->midi_len) != 0) {
        mg_set_error(err, errlen, "wavernn: out of memory for the MIDI file");
        goto done;
    }
    if (fell_back) { /* the provenance must name where the audio was really made */
        out->backend = "cpu";
        out->device = w->cpu_device;
    }
    out->sample_rate = MG_WR_SR;
    out->frames = frames;
    out->loop_frames = score->loop ? frames : 0;
    out->stems = stems;
    out->n_stems = ns;
    stems = NULL;
    rc = MG_RENDER_OK;
done:
    if (stems)
        for (int k = 0; k < ns; k++) free(stems[k].samples);
    if (notes)
        for (int k = 0; k < ns; k++) free(notes[k]);
    free(stems);
    free(notes);
    free(wst);
    free(order);
    mg_score_free(&score);
    return rc;
}
