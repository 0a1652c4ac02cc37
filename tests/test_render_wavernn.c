/* test_render_wavernn.c - the neural renderer's wiring (worker/render_wavernn.c) with the small
 * random-weights fixture model tests/data/model/tiny.mgnn (its sound is noise; the wiring is
 * what is tested): score notes to 24 kHz samples, the (seed, stream) keying and class of every
 * stem checked against the kernel called directly, determinism, the score's stems, finite and
 * guarded output, progress and cancellation, the model's identity and provenance, load errors,
 * and one render through a real coordinator and mg-worker (record, attribution rows, FLAC tags).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "composer/composer.h"
#include "kernels/wavernn.h"
#include "worker/render.h"
#include "worker/render_wavernn.h"
#include "tests/testlib.h"

#define S_TINY "tests/data/model/tiny.mgnn"

static mg_renderer_t *s_open(double temperature, int threads, int raw)
{
    mg_wavernn_opts_t o = {
        .model_path = mg_test_path(S_TINY), .temperature = temperature, .threads = threads, .raw = raw};
    char err[512] = "";
    mg_renderer_t *r = mg_renderer_wavernn_new(&o, err, sizeof err);
    if (!r) fail_msg("cannot open the renderer: %s", err);
    return r;
}

static mg_render_spec_t s_spec(int64_t render_id, uint64_t seed, double duration_s)
{
    mg_render_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.render_id = render_id;
    spec.job_id = 1;
    mg_strlcpy(spec.cue, "jingle", sizeof spec.cue);
    spec.seed = seed;
    mg_strlcpy(spec.prompt, "joyful summer-sale jingle, acoustic guitar and claps", sizeof spec.prompt);
    mg_strlcpy(spec.emotions, "joyful,energetic", sizeof spec.emotions);
    mg_strlcpy(spec.instruments, "acoustic guitar,claps,bass,drums", sizeof spec.instruments);
    mg_strlcpy(spec.stems, "melody,chords,bass,drums", sizeof spec.stems);
    spec.tempo_bpm = 120;
    spec.duration_s = duration_s;
    spec.output.formats = MG_FORMAT_WAV;
    spec.output.sample_rate = 48000;
    spec.output.channels = 2;
    spec.output.flac_bits = 16;
    return spec;
}

static void s_render_ok(const mg_renderer_t *r, const mg_render_spec_t *spec, mg_audio_t *a)
{
    char err[512] = "";
    int rc = r->render(r, spec, NULL, NULL, a, err, sizeof err);
    if (rc != MG_RENDER_OK) fail_msg("render: %d %s", rc, err);
}

static int s_same_stem(const mg_audio_t *a, const mg_audio_t *b, int k)
{
    return a->frames == b->frames && memcmp(a->stems[k].samples, b->stems[k].samples, a->frames * sizeof(float)) == 0;
}

/* ---- notes ---------------------------------------------------------------------------- */

/* A hand-made score: 4 beats at 120 BPM (1 tick = 25 samples), then 4 at 60 (50 samples). */
static void test_notes_sample_exact(void **state)
{
    (void)state;
    mg_score_tempo_t tempo[2] = {{.tick = 0, .us = 0, .us_per_quarter = 500000, .bpm = 120},
                                 {.tick = 1920, .us = 2000000, .us_per_quarter = 1000000, .bpm = 60}};
    mg_score_note_t sn[] = {
        {.start_tick = 0, .duration_tick = 480, .pitch = 60, .velocity = 100},
        {.start_tick = 240, .duration_tick = 1, .pitch = 64, .velocity = 1},     /* 1 tick = 25 samples */
        {.start_tick = 1680, .duration_tick = 480, .pitch = 67, .velocity = 127}, /* across the change */
        {.start_tick = 1921, .duration_tick = 1, .pitch = 36, .velocity = 64},   /* 1 tick = 50 samples */
        {.start_tick = 3600, .duration_tick = 240, .pitch = 72, .velocity = 90}, /* ends at the end */
    };
    mg_score_stem_t st = {.name = "melody", .program = 25, .notes = sn, .n_notes = 5};
    mg_score_t sc = {.ppq = 480, .tempo = tempo, .n_tempo = 2, .total_ticks = 3840, .duration_us = 6000000,
                     .duration_s = 6.0, .stems = &st, .n_stems = 1};
    mg_wavernn_note_t out[5];
    memset(out, 0xff, sizeof out);
    int64_t last = mg_renderer_wavernn_notes(&sc, &st, out);
    static const int64_t want[5][2] = {{0, 12000}, {6000, 6025}, {42000, 60000}, {48050, 48100}, {132000, 144000}};
    for (int j = 0; j < 5; j++) {
        if (out[j].on != want[j][0] || out[j].off != want[j][1])
            fail_msg("note %d: [%lld, %lld), want [%lld, %lld)", j, (long long)out[j].on, (long long)out[j].off,
                     (long long)want[j][0], (long long)want[j][1]);
        assert_int_equal(out[j].pitch, sn[j].pitch);
        assert_int_equal(out[j].velocity, sn[j].velocity);
    }
    assert_int_equal(last, 144000);

    /* A composed score at a fixed 120 BPM: every note before the first tempo change starts at
     * exactly start_tick * 25, and every note lies where its seconds say. */
    mg_render_spec_t spec = s_spec(1, 5, 12.0);
    char err[256] = "";
    mg_score_t *score = mg_compose(&spec, err, sizeof err);
    if (!score) fail_msg("compose: %s", err);
    assert_int_equal(score->tempo[0].us_per_quarter, 500000);
    int64_t change = score->n_tempo > 1 ? score->tempo[1].tick : score->total_ticks;
    int checked = 0;
    for (int k = 0; k < score->n_stems; k++) {
        const mg_score_stem_t *s = &score->stems[k];
        mg_wavernn_note_t *n = calloc((size_t)s->n_notes + 1, sizeof *n);
        assert_non_null(n);
        mg_renderer_wavernn_notes(score, s, n);
        for (int j = 0; j < s->n_notes; j++) {
            if (s->notes[j].start_tick + s->notes[j].duration_tick <= change) {
                assert_int_equal(n[j].on, s->notes[j].start_tick * 25);
                assert_int_equal(n[j].off - n[j].on, s->notes[j].duration_tick * 25);
                checked++;
            }
            assert_true(llabs(n[j].on - llround(s->notes[j].start_s * 24000)) <= 1);
            assert_true(n[j].off > n[j].on && n[j].off <= (int64_t)llround(spec.duration_s * 24000));
        }
        free(n);
    }
    assert_true(checked > 20);
    mg_score_free(&score);
}

/* ---- keying, class, length: the renderer's raw stems equal the kernel's own render ---------- */

/* The stems of a render, built here from the score and rendered by the kernel directly in the
 * same batch and grouping, equal the renderer's raw output bit for bit: the notes, class, seed,
 * stream (the stem index k) and length (last note-off + 1 s, capped at the cue) it used. */
static void test_stems_match_kernel(void **state)
{
    (void)state;
    const int threads = 2;
    mg_renderer_t *r = s_open(1.0, threads, 1);
    mg_render_spec_t spec = s_spec(42, 0x1234567890abcdefull, 5.0);
    mg_audio_t a;
    s_render_ok(r, &spec, &a);

    char err[512] = "";
    mg_wavernn_model_t *m = NULL;
    if (mg_wavernn_load(mg_test_path(S_TINY), &m, err, sizeof err) != 0) fail_msg("%s", err);
    int isa = mg_wavernn_isa() == MG_WR_ISA_AVX2 && m->pk_exc ? MG_WR_ISA_AVX2 : MG_WR_ISA_REF;
    mg_score_t *score = mg_compose(&spec, err, sizeof err);
    assert_non_null(score);
    assert_int_equal(a.sample_rate, 24000);
    assert_int_equal(a.frames, 120000);
    assert_int_equal(a.n_stems, score->n_stems);
    assert_true(a.n_stems >= 3 && a.n_stems <= 8);
    mg_wavernn_stem_t ws[8];
    mg_wavernn_note_t *notes[8];
    float *ref[8];
    for (int k = 0; k < a.n_stems; k++) {
        const mg_score_stem_t *st = &score->stems[k];
        assert_true(st->n_notes > 0);
        notes[k] = calloc((size_t)st->n_notes, sizeof *notes[k]);
        ref[k] = calloc(a.frames, sizeof *ref[k]);
        assert_true(notes[k] && ref[k]);
        int64_t last = mg_renderer_wavernn_notes(score, st, notes[k]);
        size_t len = (size_t)last + 24000 < a.frames ? (size_t)last + 24000 : a.frames;
        int cls = mg_wavernn_class(m, st->is_drum ? MG_WR_DRUM_KIT : st->program);
        assert_true(cls >= 0);
        if (st->is_drum) assert_int_equal(cls, MG_WR_CLASS_DRUMS);
        assert_int_equal(mg_renderer_wavernn_stream(&spec, k), (uint64_t)k);
        ws[k] = (mg_wavernn_stem_t){.notes = notes[k], .n_notes = (size_t)st->n_notes, .cls = cls,
                                    .seed = spec.seed, .stream = (uint64_t)k,
                                    .n_samples = len, .out = ref[k]};
    }
    assert_int_equal(mg_wavernn_render_threads(m, ws, a.n_stems, 1.0f, isa, threads), 0);
    for (int k = 0; k < a.n_stems; k++) {
        const mg_score_stem_t *st = &score->stems[k];
        size_t diff = 0;
        for (size_t i = 0; i < a.frames; i++) diff += ref[k][i] != a.stems[k].samples[i];
        printf("# stem %d %-7s %-26s class %d, %3d notes, %zu samples rendered: %zu differ\n", k, st->name,
               st->instrument, ws[k].cls, st->n_notes, ws[k].n_samples, diff);
        if (diff) fail_msg("stem %s: %zu of %zu samples differ from the kernel's render", st->name, diff, a.frames);
        free(notes[k]);
        free(ref[k]);
    }
    mg_score_free(&score);
    mg_wavernn_destroy(&m);
    mg_audio_free(&a);
    mg_renderer_wavernn_destroy(&r);
}

/* Same spec: bit-identical, also from a second renderer on the same file, from another render
 * id (a fixed seed sounds the same in any job: docs/jobs.md) and over 3 threads instead of 1
 * (the kernel's sums do not depend on the grouping); another seed: every stem differs. */
static void test_determinism_and_keying(void **state)
{
    (void)state;
    mg_renderer_t *r1 = s_open(1.0, 1, 0), *r2 = s_open(1.0, 1, 0), *r3 = s_open(1.0, 3, 0);
    mg_render_spec_t spec = s_spec(7, 99, 4.0);
    mg_audio_t a, b, c, d, e, t3;
    s_render_ok(r1, &spec, &a);
    s_render_ok(r2, &spec, &b);
    s_render_ok(r3, &spec, &t3);
    spec.render_id = 8;
    s_render_ok(r1, &spec, &c);
    spec.render_id = 7;
    spec.seed = 100;
    s_render_ok(r1, &spec, &d);
    spec.seed = 99;
    s_render_ok(r1, &spec, &e);
    assert_int_equal(a.n_stems, b.n_stems);
    assert_int_equal(a.n_stems, c.n_stems);
    assert_string_equal(a.decision_json, c.decision_json);
    assert_string_not_equal(a.decision_json, d.decision_json);
    int by_threads = 0;
    for (int k = 0; k < a.n_stems; k++) {
        assert_true(s_same_stem(&a, &b, k));
        assert_true(s_same_stem(&a, &e, k));
        assert_true(s_same_stem(&a, &c, k));
        if (k < d.n_stems) assert_false(s_same_stem(&a, &d, k));
        by_threads += !s_same_stem(&a, &t3, k);
    }
    if (by_threads) fprintf(stderr, "render_threads 1 vs 3: %d of %d stems differ\n", by_threads, a.n_stems);
    assert_int_equal(by_threads, 0);
    mg_audio_t *all[] = {&a, &b, &c, &d, &e, &t3};
    for (int i = 0; i < 6; i++) mg_audio_free(all[i]);
    mg_renderer_wavernn_destroy(&r1);
    mg_renderer_wavernn_destroy(&r2);
    mg_renderer_wavernn_destroy(&r3);
}

/* ---- the stems handed to the pipeline ------------------------------------------------- */

static void test_stems_play_score(void **state)
{
    (void)state;
    mg_renderer_t *r = s_open(1.0, 2, 0);
    static const struct { const char *instruments, *stems; double dur; } cases[] = {
        {"acoustic guitar,claps,bass,drums", "melody,chords,bass,drums", 6.0},
        {"piano,strings", "", 5.5},
        {"saw lead,synth pad,synth bass,drum machine", "", 7.25},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mg_render_spec_t spec = s_spec(11 + (int64_t)c, 3 + c, cases[c].dur);
        mg_strlcpy(spec.instruments, cases[c].instruments, sizeof spec.instruments);
        mg_strlcpy(spec.stems, cases[c].stems, sizeof spec.stems);
        mg_audio_t a;
        s_render_ok(r, &spec, &a);
        char err[256] = "";
        mg_score_t *sc = mg_compose(&spec, err, sizeof err);
        assert_non_null(sc);
        assert_int_equal(a.frames, (size_t)llround(cases[c].dur * 24000));
        assert_int_equal(a.n_stems, sc->n_stems);
        double mix_peak = 0.0;
        for (size_t i = 0; i < a.frames; i++) {
            double m = 0.0;
            for (int k = 0; k < a.n_stems; k++) m += a.stems[k].gain * a.stems[k].samples[i];
            mix_peak = fmax(mix_peak, fabs(m));
        }
        for (int k = 0; k < a.n_stems; k++) {
            const mg_stem_t *st = &a.stems[k];
            assert_string_equal(st->name, sc->stems[k].name);
            assert_true(fabsf(st->gain - (float)sc->stems[k].gain) < 1e-6f);
            assert_true(fabsf(st->pan - (float)sc->stems[k].pan) < 1e-6f);
            double sum = 0.0;
            float peak = 0.0f;
            for (size_t i = 0; i < a.frames; i++) {
                if (!isfinite(st->samples[i])) fail_msg("stem %s sample %zu is %g", st->name, i, st->samples[i]);
                sum += (double)st->samples[i] * st->samples[i];
                peak = fmaxf(peak, fabsf(st->samples[i]));
            }
            double rms = sqrt(sum / (double)a.frames);
            printf("# %s: stem %-7s %-26s %3d notes, rms %.4f, peak %.3f\n", cases[c].instruments, st->name,
                   sc->stems[k].instrument, sc->stems[k].n_notes, rms, peak);
            if (sc->stems[k].n_notes > 0 && rms < 1e-3) fail_msg("stem %s has notes but is silent", st->name);
            if (sc->stems[k].n_notes == 0 && peak != 0.0f) fail_msg("stem %s has no notes but sounds", st->name);
            assert_true(peak <= 0.95f);
            assert_true(fabsf(st->samples[a.frames - 1]) < 1e-3f); /* faded out */
        }
        if (mix_peak > 0.901) fail_msg("the mixdown peaks at %g (guarded at 0.90)", mix_peak);
        char *rec = mg_score_decision_json(sc);
        assert_string_equal(a.decision_json, rec);
        free(rec);
        mg_score_free(&sc);
        mg_audio_free(&a);
    }
    mg_renderer_wavernn_destroy(&r);
}

/* ---- progress and cancellation -------------------------------------------------------- */

typedef struct {
    double last;
    int calls, cancel_at;
} s_prog_t;

static int s_progress(void *ctx, double done)
{
    s_prog_t *p = ctx;
    if (done < p->last || done > 1.0) fail_msg("progress went from %g to %g", p->last, done);
    p->last = done;
    return ++p->calls == p->cancel_at;
}

static void test_progress_and_cancel(void **state)
{
    (void)state;
    mg_renderer_t *r = s_open(1.0, 1, 0);
    mg_render_spec_t spec = s_spec(3, 4, 12.0);
    mg_audio_t a;
    char err[512] = "";
    s_prog_t p = {0};
    assert_int_equal(r->render(r, &spec, s_progress, &p, &a, err, sizeof err), MG_RENDER_OK);
    printf("# 12 s cue, tiny model, one thread: %d progress calls\n", p.calls);
    assert_true(p.last == 1.0);
    assert_true(p.calls >= 3); /* start, at least one estimate while the model runs, end */
    mg_audio_free(&a);

    p = (s_prog_t){.cancel_at = 1}; /* before the model runs */
    assert_int_equal(r->render(r, &spec, s_progress, &p, &a, err, sizeof err), MG_RENDER_ERR_CANCELLED);
    assert_null(a.stems);
    assert_null(a.decision_json);
    assert_non_null(strstr(err, "cancel"));
    p = (s_prog_t){.cancel_at = 2}; /* while it runs: takes effect after the batch */
    assert_int_equal(r->render(r, &spec, s_progress, &p, &a, err, sizeof err), MG_RENDER_ERR_CANCELLED);
    assert_null(a.stems);
    assert_int_equal(p.calls, 2);
    printf("# %s\n", err);

    spec.duration_s = 0; /* the composer refuses it: never renders */
    assert_int_equal(r->render(r, &spec, NULL, NULL, &a, err, sizeof err), MG_RENDER_ERR_PERMANENT);
    assert_non_null(strstr(err, "wavernn"));
    mg_renderer_wavernn_destroy(&r);
}

/* ---- identity, provenance, errors ------------------------------------------------------- */

static void test_identity(void **state)
{
    (void)state;
    mg_renderer_t *r = s_open(1.0, 1, 0);
    assert_string_equal(r->name, "wavernn");
    assert_string_equal(r->backend, "cpu");
    assert_string_equal(r->model_name, "mg-wavernn-golden-tiny");
    assert_string_equal(r->model_version, "0.0.1");
    assert_string_equal(r->model_license, "MIT");
    char want[65];
    assert_int_equal(mg_sha256_file_hex(mg_test_path(S_TINY), want), 0);
    assert_string_equal(r->model_sha256, want);
    const char *dev = mg_wavernn_isa() == MG_WR_ISA_AVX2 ? "(avx2)" : "(scalar)";
    assert_non_null(strstr(r->device, dev));
    printf("# device %s\n", r->device);
    /* The model's attribution is in the protocol's form (one "source; author; licence; url"
     * line per source): it passes as it is. */
    assert_non_null(strstr(r->attribution, "FluidR3_GM SoundFont (the recorded instrument samples"));
    assert_non_null(strstr(r->attribution, "; MIT; "));
    assert_non_null(strchr(r->attribution, '\n'));
    mg_renderer_wavernn_destroy(&r);
    assert_null(r);
    mg_renderer_wavernn_destroy(&r); /* NULL-safe */
    mg_renderer_wavernn_destroy(NULL);

    r = s_open(0.8, 1, 0); /* the temperature changes what a seed renders: part of the identity */
    assert_string_equal(r->model_version, "0.0.1 (temperature 0.8)");
    mg_renderer_wavernn_destroy(&r);
}

static void s_expect_error(const mg_wavernn_opts_t *o, const char *want1, const char *want2)
{
    char err[512] = "";
    mg_renderer_t *r = mg_renderer_wavernn_new(o, err, sizeof err);
    if (r) fail_msg("opened %s", o->model_path);
    printf("# %s\n", err);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("error '%s' lacks '%s' / '%s'", err, want1, want2 ? want2 : "");
}

static void test_load_errors(void **state)
{
    (void)state;
    mg_wavernn_opts_t o = {.model_path = "/nonexistent/mg-wavernn.mgnn", .temperature = 1.0, .threads = 1};
    s_expect_error(&o, "/nonexistent/mg-wavernn.mgnn", "No such file");
    o.model_path = "tests";
    s_expect_error(&o, "tests: is a folder", NULL);
    char path[] = "/tmp/mg-test-wavernn-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not a model\n", 12), 12);
    close(fd);
    o.model_path = path;
    s_expect_error(&o, path, NULL);
    unlink(path);
    o.model_path = mg_test_path(S_TINY);
    o.temperature = 0.0;
    s_expect_error(&o, "temperature", NULL);
    o.temperature = 1.0;
    o.threads = 0;
    s_expect_error(&o, "render_threads", NULL);

    /* The default search finds the committed model from the repository root, and names
     * every place it looked when run from elsewhere. */
    char buf[3 * PATH_MAX], cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    if (access("models/default/" MG_WAVERNN_MODEL_FILE, R_OK) == 0) {
        assert_int_equal(mg_renderer_wavernn_default_model(buf, sizeof buf), 0);
        assert_non_null(strstr(buf, "models/default/" MG_WAVERNN_MODEL_FILE));
    }
    assert_int_equal(chdir("/"), 0);
    int rc = mg_renderer_wavernn_default_model(buf, sizeof buf);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(buf, "./models/default/" MG_WAVERNN_MODEL_FILE));
    assert_non_null(strstr(buf, "/../share/mg/models/default/" MG_WAVERNN_MODEL_FILE));
}

/* ---- the worker ----------------------------------------------------------------------- */

/* The processes s_spawn started, so that the teardown stops them even when an assertion ended
 * the test early (no coordinator or worker outlives a failed run). */
static pid_t s_children[4];
static int s_n_children;

static int s_stop_children(void **state)
{
    (void)state;
    for (int i = 0; i < s_n_children; i++)
        if (s_children[i] > 0 && kill(s_children[i], SIGTERM) == 0) waitpid(s_children[i], NULL, 0);
    s_n_children = 0;
    return 0;
}

static pid_t s_spawn(char *const argv[], const char *home, const char *endpoint, const char *log)
{
    pid_t pid = fork();
    if (pid > 0 && s_n_children < (int)(sizeof s_children / sizeof s_children[0]))
        s_children[s_n_children++] = pid;
    if (pid == 0) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", home, log);
        if (!freopen(path, "a", stderr) || !freopen("/dev/null", "w", stdout)) _exit(127);
        setenv("MG_HOME", home, 1);
        setenv("MG_ENDPOINT", endpoint, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* A string from a query on the coordinator's database (mg_test_sql_text). */
static void s_q(const char *home, const char *sql, char *out, size_t len)
{
    char path[600];
    snprintf(path, sizeof path, "%s/mg.db", home);
    sqlite3 *db = mg_test_db_open(path);
    mg_strlcpy(out, mg_test_sql_text(db, "%s", sql), len);
    mg_test_db_close(&db);
}

/* mg-worker refuses to start without its model, naming the path and the way out. */
static void test_worker_needs_model(void **state)
{
    (void)state;
    const char *bin = mg_test_bin();
    int status;
    char *out = mg_test_run(&status, "MG_HOME=/nonexistent '%s/mg-worker' --model /nonexistent/m.mgnn 2>&1", bin);
    printf("# %s", out);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "/nonexistent/m.mgnn"));
    assert_non_null(strstr(out, "--renderer synth"));
    free(out);
    out = mg_test_run(&status, "MG_HOME=/nonexistent '%s/mg-worker' --model '%s' --render-threads 0 2>&1", bin,
                      mg_test_path(S_TINY));
    assert_int_equal(status, 2);
    assert_non_null(strstr(out, "render_threads"));
    free(out);
}

/* One job through a real coordinator and mg-worker with the tiny model: the record, the audit
 * view, the attribution rows and the FLAC tags name the neural model. */
static void test_worker_records_model(void **state)
{
    (void)state;
    const char *bin = mg_test_bin();
    char home[256], endpoint[64], coord[600], worker[600], model[PATH_MAX];
    mg_test_tmpdir_make(home, sizeof home, "wavernn-home");
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", 20000 + (getpid() * 11) % 20000);
    snprintf(coord, sizeof coord, "%s/mg-coordinator", bin);
    snprintf(worker, sizeof worker, "%s/mg-worker", bin);
    assert_non_null(realpath(mg_test_path(S_TINY), model));
    char *cargv[] = {coord, NULL};
    /* --backend auto where no GPU is (or MG_CUDA_PLUGIN points nowhere): the CPU, with the reason */
    char *wargv[] = {worker, "--model", model, "--capacity", "1", "--render-threads", "2", "--backend", "auto", NULL};
    pid_t c = s_spawn(cargv, home, endpoint, "coordinator.log");
    pid_t w = s_spawn(wargv, home, endpoint, "worker.log");
    char job[700];
    snprintf(job, sizeof job, "%s/job.yaml", home);
    mg_test_file_write(job, "campaign: wtest\noutput:\n  formats: [flac, mp3]\n  sample_rate: 48000\n  channels: 2\n"
                            "cues:\n  - name: hook\n    prompt: \"bright pop hook\"\n    emotions: [happy]\n"
                            "    duration: 3\n    instruments: [piano, bass, drums]\n    seeds: [7]\n");
    int status = -1;
    char *out = NULL;
    for (int i = 0; i < 50 && status != 0; i++) { /* until the coordinator answers */
        free(out);
        mg_test_sleep_ms(100);
        out = mg_test_run(&status, "MG_HOME='%s' MG_ENDPOINT='%s' '%s/mgctl' --timeout 500 ping 2>&1", home,
                          endpoint, bin);
    }
    free(out);
    out = mg_test_run(&status, "MG_HOME='%s' MG_ENDPOINT='%s' '%s/mgctl' --timeout 60000 submit '%s' --wait 2>&1",
                      home, endpoint, bin, job);
    printf("# %s", out);
    if (status != 0) fail_msg("submit (exit %d): %s (logs in %s)", status, out, home);
    free(out);
    char v[4096];
    s_q(home, "SELECT model_name || ' ' || model_version || ' ' || model_license || ' ' || model_sha256 "
              "FROM audit_renders LIMIT 1", v, sizeof v);
    char hex[65], want[256];
    assert_int_equal(mg_sha256_file_hex(model, hex), 0);
    snprintf(want, sizeof want, "mg-wavernn-golden-tiny 0.0.1 MIT %s", hex);
    assert_string_equal(v, want);
    s_q(home, "SELECT backend || ' ' || device FROM audit_renders LIMIT 1", v, sizeof v);
    assert_non_null(strstr(v, "cpu x86-64 ("));
    s_q(home, "SELECT backend || ' ' || device FROM workers LIMIT 1", v, sizeof v); /* from READY */
    assert_non_null(strstr(v, "cpu x86-64 ("));
    out = mg_test_run(&status, "grep -c 'backend auto: rendering on the CPU: .*CUDA' '%s/worker.log'", home);
    if (status != 0) fail_msg("worker.log in %s does not say why auto chose the CPU", home);
    free(out);
    s_q(home, "SELECT json_extract(record_json, '$.model.attribution') FROM provenance LIMIT 1", v, sizeof v);
    assert_non_null(strstr(v, "FluidR3_GM SoundFont"));
    s_q(home, "SELECT count(*) FROM attribution a JOIN models m ON m.id = a.model_id "
              "WHERE m.name = 'mg-wavernn-golden-tiny' AND a.source LIKE 'FluidR3_GM SoundFont%' "
              "AND a.author LIKE 'Frank Wen%' AND a.license = 'MIT'", v, sizeof v);
    assert_string_equal(v, "1");
    s_q(home, "SELECT count(*) FROM attribution a JOIN models m ON m.id = a.model_id "
              "WHERE m.name = 'mg-wavernn-golden-tiny'", v, sizeof v);
    assert_string_equal(v, "3");
    s_q(home, "SELECT output_path FROM audit_renders WHERE format = 'flac'", v, sizeof v);
    out = mg_test_run(&status, "metaflac --export-tags-to=- '%s/outputs/%s' 2>&1", home, v);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "MG_MODEL=mg-wavernn-golden-tiny\n"));
    assert_non_null(strstr(out, "MG_MODEL_LICENSE=MIT\n"));
    assert_non_null(strstr(out, "MG_ATTRIBUTION=FluidR3_GM SoundFont ("));
    free(out);
    s_stop_children(NULL);
    (void)w;
    (void)c;
    mg_test_tmpdir_remove(home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notes_sample_exact),
        cmocka_unit_test(test_stems_match_kernel),
        cmocka_unit_test(test_determinism_and_keying),
        cmocka_unit_test(test_stems_play_score),
        cmocka_unit_test(test_progress_and_cancel),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_worker_needs_model),
        cmocka_unit_test_teardown(test_worker_records_model, s_stop_children),
    };
    return cmocka_run_group_tests_name("render_wavernn", tests, NULL, NULL);
}
