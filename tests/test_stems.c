/* test_stems.c - what a music editor receives with `deliver: [mix, stems, midi]`, checked on
 * the delivered files themselves (decoded with libsndfile / libavcodec, the MIDI file read by
 * python3-mido through tests/midi_check.py), from the synth renderer through the pipeline:
 *   - every stem file has the mix's rate, channels and length to the sample;
 *   - when the limiter has nothing to do, the decoded stems add up to the decoded mix to
 *     within the files' rounding (exact before the limiter);
 *   - at the default -14 LUFS and at -10 the mix is limited on its own, so the stems' sum
 *     matches it by a gain-fitted correlation of at least 0.97; every stem meets the -1 dBTP
 *     ceiling, in FLAC and in the decoded MP3, also when pushed to -7 LUFS;
 *   - the MIDI file is the score the audio plays: every note-on that starts out of silence in
 *     its stem's audio is heard within 1 ms of its MIDI time.
 * The figures it measures are printed as "# ..." lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jobspec.h"
#include "common/util.h"
#include "tests/testlib.h"
#include "worker/pipeline.h"
#include "worker/render.h"

#define S_RATE 48000

typedef struct {
    float *pcm; /* owned, interleaved */
    size_t frames;
    int rate, channels;
} s_pcm_t;

static mg_render_spec_t s_spec(unsigned formats, unsigned deliver, double lufs, uint64_t seed, double dur,
                               const char *prompt, const char *emotions)
{
    mg_render_spec_t spec;
    memset(&spec, 0, sizeof spec);
    spec.render_id = 11;
    mg_strlcpy(spec.cue, "stems", sizeof spec.cue);
    mg_strlcpy(spec.prompt, prompt, sizeof spec.prompt);
    mg_strlcpy(spec.emotions, emotions, sizeof spec.emotions);
    spec.seed = seed;
    spec.duration_s = dur;
    spec.output.formats = formats;
    spec.output.deliver = deliver;
    spec.output.sample_rate = S_RATE;
    spec.output.channels = 2;
    spec.output.mp3_bitrate_kbps = 192;
    spec.output.flac_bits = 24;
    spec.output.normalize = 1;
    spec.output.loudness_lufs = lufs;
    return spec;
}

static void s_render(const mg_render_spec_t *spec, mg_audio_t *a, mg_pipeline_result_t *res)
{
    char err[256] = "";
    const mg_renderer_t *r = mg_renderer_synth();
    memset(a, 0, sizeof *a);
    int rc = r->render(r, spec, NULL, NULL, a, err, sizeof err);
    if (rc != MG_RENDER_OK) fail_msg("synth render: %d %s", rc, err);
    if (mg_pipeline_run(spec, a, NULL, res, err, sizeof err) != 0) fail_msg("pipeline: %s", err);
}

/* Decodes one delivered audio file (FLAC or WAV with libsndfile, MP3 with libavcodec). */
static s_pcm_t s_decode(const mg_encoded_t *f)
{
    s_pcm_t p = {0};
    char err[256];
    if (f->format == MG_FORMAT_MP3) {
        if (mg_decode_mp3(f->data, f->len, &p.pcm, &p.frames, &p.rate, &p.channels, err, sizeof err) != 0)
            fail_msg("mp3 decode: %s", err);
        return p;
    }
    char path[256];
    mg_test_temp_write("stems", f->format == MG_FORMAT_FLAC ? ".flac" : ".wav", f->data, f->len, path, sizeof path);
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf) fail_msg("libsndfile cannot read %s file %s.%s", mg_encoded_ext(f), f->kind, f->part);
    p.frames = (size_t)info.frames;
    p.rate = info.samplerate;
    p.channels = info.channels;
    p.pcm = malloc(p.frames * (size_t)p.channels * sizeof(float));
    assert_non_null(p.pcm);
    assert_int_equal(sf_readf_float(sf, p.pcm, info.frames), info.frames);
    sf_close(sf);
    unlink(path);
    return p;
}

static const mg_encoded_t *s_file(const mg_pipeline_result_t *res, const char *kind, const char *part, unsigned format)
{
    for (int i = 0; i < res->n_files; i++)
        if (!strcmp(res->files[i].kind, kind) && !strcmp(res->files[i].part, part) && res->files[i].format == format)
            return &res->files[i];
    return NULL;
}

static double s_db(double lin) { return 20.0 * log10(lin > 1e-12 ? lin : 1e-12); }

/* Sum of the stems' decoded samples, and how it compares with the mix: largest difference,
 * and the correlation after fitting the best gain (sum * g ~ mix). */
typedef struct {
    double max_diff, fitted_corr, gain;
} s_sum_check_t;

static s_sum_check_t s_sum_vs_mix(const mg_pipeline_result_t *res, const mg_audio_t *a, unsigned format)
{
    const mg_encoded_t *mf = s_file(res, "mix", "", format);
    assert_non_null(mf);
    s_pcm_t mix = s_decode(mf);
    assert_int_equal(mix.rate, S_RATE);
    assert_int_equal(mix.channels, 2);
    size_t n = mix.frames * (size_t)mix.channels;
    double *sum = calloc(n, sizeof *sum);
    assert_non_null(sum);
    for (int k = 0; k < a->n_stems; k++) {
        const mg_encoded_t *sf = s_file(res, "stem", a->stems[k].name, format);
        if (!sf) fail_msg("no %s stem file for %s", format == MG_FORMAT_MP3 ? "mp3" : "flac", a->stems[k].name);
        s_pcm_t st = s_decode(sf);
        /* the same rate, channels and length, to the sample */
        assert_int_equal(st.rate, mix.rate);
        assert_int_equal(st.channels, mix.channels);
        if (st.frames != mix.frames)
            fail_msg("stem %s: %zu frames, the mix %zu", a->stems[k].name, st.frames, mix.frames);
        assert_int_equal(sf->sample_rate, mf->sample_rate);
        assert_true(fabs(sf->duration_s - mf->duration_s) < 1e-9);
        double tp = s_db(mg_true_peak(st.pcm, st.frames, st.channels));
        printf("# %s stem %-7s true peak %6.2f dBTP\n", mg_encoded_ext(sf), a->stems[k].name, tp);
        /* the ceiling, with the meters' spread (the limiter aims 0.05 dB under) */
        if (tp > -1.0 + 0.02) fail_msg("%s stem %s peaks at %.3f dBTP", mg_encoded_ext(sf), a->stems[k].name, tp);
        for (size_t i = 0; i < n; i++) sum[i] += st.pcm[i];
        free(st.pcm);
    }
    s_sum_check_t c = {0};
    double sm = 0, ss = 0, mm = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(sum[i] - mix.pcm[i]);
        if (d > c.max_diff) c.max_diff = d;
        sm += sum[i] * mix.pcm[i];
        ss += sum[i] * sum[i];
        mm += (double)mix.pcm[i] * mix.pcm[i];
    }
    c.gain = ss > 0 ? sm / ss : 0;
    c.fitted_corr = (ss > 0 && mm > 0) ? sm / sqrt(ss * mm) : 0;
    free(sum);
    free(mix.pcm);
    return c;
}

/* A quiet target: the mix never reaches the limiter, so the delivered stems must add up to
 * the delivered mix to within 24-bit rounding (half a step per file). */
static void test_stems_sum_exact_before_limiter(void **state)
{
    (void)state;
    mg_render_spec_t spec = s_spec(MG_FORMAT_FLAC, MG_DELIVER_MIX | MG_DELIVER_STEMS, -30.0, 21, 8.0,
                                   "upbeat pop jingle with drums", "happy,energetic");
    mg_audio_t a;
    mg_pipeline_result_t res;
    s_render(&spec, &a, &res);
    assert_true(a.n_stems >= 3);
    assert_int_equal(res.n_files, 1 + a.n_stems);
    assert_true(res.true_peak_dbtp < -1.1); /* the limiter had nothing to do */
    s_sum_check_t c = s_sum_vs_mix(&res, &a, MG_FORMAT_FLAC);
    double step = 1.0 / 8388608.0; /* one 24-bit step */
    printf("# -30 LUFS, %d stems: |sum - mix| <= %.3g (%.2f 24-bit steps), fitted gain %.6f\n", a.n_stems,
           c.max_diff, c.max_diff / step, c.gain);
    assert_true(c.max_diff <= (a.n_stems + 1) * 0.5 * step + 1e-9);
    mg_pipeline_result_free(&res);
    mg_audio_free(&a);
}

/* The default target and a loud master, loud material: the mix is limited, each stem on its
 * own only where it passes the ceiling. The sum still matches the mix, in FLAC and MP3. */
static void test_stems_sum_after_limiter(void **state)
{
    (void)state;
    const double targets[] = {-14.0, -10.0};
    for (int t = 0; t < 2; t++) {
        mg_render_spec_t spec = s_spec(MG_FORMAT_FLAC | MG_FORMAT_MP3, MG_DELIVER_MIX | MG_DELIVER_STEMS, targets[t],
                                       5, 8.0, "driving rock anthem with drums", "energetic,epic");
        mg_audio_t a;
        mg_pipeline_result_t res;
        s_render(&spec, &a, &res);
        assert_int_equal(res.n_files, 2 * (1 + a.n_stems));
        /* the files come in the documented order: the mix in each format, then each stem */
        assert_string_equal(res.files[0].kind, "mix");
        assert_int_equal(res.files[0].format, MG_FORMAT_FLAC);
        assert_int_equal(res.files[1].format, MG_FORMAT_MP3);
        for (int k = 0; k < a.n_stems; k++) {
            assert_string_equal(res.files[2 + 2 * k].kind, "stem");
            assert_string_equal(res.files[2 + 2 * k].part, a.stems[k].name);
        }
        s_sum_check_t f = s_sum_vs_mix(&res, &a, MG_FORMAT_FLAC);
        s_sum_check_t m = s_sum_vs_mix(&res, &a, MG_FORMAT_MP3);
        printf("# %.0f LUFS: mix true peak %.2f dBTP; stems' sum vs mix: flac fitted corr %.5f (gain %.4f), "
               "mp3 fitted corr %.5f\n", targets[t], res.true_peak_dbtp, f.fitted_corr, f.gain, m.fitted_corr);
        assert_true(f.fitted_corr >= 0.97);
        assert_true(m.fitted_corr >= 0.97);
        mg_pipeline_result_free(&res);
        mg_audio_free(&a);
    }
}

/* A master pushed to -7 LUFS: every stem now passes the ceiling on its own and is limited to
 * it. The ceiling holds in every file; how far the sum then is from the (harder limited) mix
 * is printed, not promised. */
static void test_stems_ceiling_when_loud(void **state)
{
    (void)state;
    mg_render_spec_t spec = s_spec(MG_FORMAT_FLAC | MG_FORMAT_MP3, MG_DELIVER_MIX | MG_DELIVER_STEMS, -7.0, 5, 8.0,
                                   "driving rock anthem with drums", "energetic,epic");
    mg_audio_t a;
    mg_pipeline_result_t res;
    s_render(&spec, &a, &res);
    int limited = 0;
    for (int k = 0; k < a.n_stems; k++) {
        s_pcm_t st = s_decode(s_file(&res, "stem", a.stems[k].name, MG_FORMAT_FLAC));
        if (s_db(mg_true_peak(st.pcm, st.frames, st.channels)) > -1.2) limited++;
        free(st.pcm);
    }
    assert_true(limited >= 1); /* the case this test is for did happen */
    s_sum_check_t f = s_sum_vs_mix(&res, &a, MG_FORMAT_FLAC); /* checks every stem's ceiling */
    s_sum_check_t m = s_sum_vs_mix(&res, &a, MG_FORMAT_MP3);
    printf("# -7 LUFS: %d of %d stems limited; stems' sum vs mix: flac fitted corr %.5f, mp3 %.5f\n", limited,
           a.n_stems, f.fitted_corr, m.fitted_corr);
    mg_pipeline_result_free(&res);
    mg_audio_free(&a);
}

/* First sample at or after from where |x| (either channel) rises above thr. */
static long s_first_above(const s_pcm_t *p, long from, long to, double thr)
{
    for (long i = from < 0 ? 0 : from; i < to && i < (long)p->frames; i++)
        for (int c = 0; c < p->channels; c++)
            if (fabs(p->pcm[(size_t)i * p->channels + c]) > thr) return i;
    return -1;
}

static double s_peak(const s_pcm_t *p, long from, long to)
{
    double m = 0;
    for (long i = from < 0 ? 0 : from; i < to && i < (long)p->frames; i++)
        for (int c = 0; c < p->channels; c++) m = fmax(m, fabs(p->pcm[(size_t)i * p->channels + c]));
    return m;
}

/* The MIDI file's note-ons against the stems' audio. A note that starts out of silence (its
 * stem quiet for the 30 ms before) must be heard from within 1 ms of its MIDI time: the first
 * sample over a threshold well above that silence. */
static void test_midi_onsets_match_audio(void **state)
{
    (void)state;
    static const struct { const char *prompt, *emotions; uint64_t seed; } cues[] = {
        {"upbeat pop jingle with drums", "happy,playful", 3},
        {"tense thriller underscore", "tense,dark", 8},
        {"gentle acoustic folk", "calm,tender", 13},
        {"funky staccato groove", "playful,energetic", 17},
        {"sparse minimal piano", "sad,calm", 19},
        {"marching percussion fanfare", "triumphant", 23},
    };
    int checked = 0, stems_seen = 0;
    double worst_ms = 0, sum_ms = 0;
    for (size_t q = 0; q < sizeof cues / sizeof cues[0]; q++) {
        mg_render_spec_t spec = s_spec(MG_FORMAT_FLAC, MG_DELIVER_MIX | MG_DELIVER_STEMS | MG_DELIVER_MIDI, -14.0,
                                       cues[q].seed, 10.0, cues[q].prompt, cues[q].emotions);
        mg_audio_t a;
        mg_pipeline_result_t res;
        s_render(&spec, &a, &res);
        const mg_encoded_t *mid = s_file(&res, "midi", "", 0);
        assert_non_null(mid);
        assert_true(mid->len > 14 && memcmp(mid->data, "MThd", 4) == 0);
        char path[256], cmd[400], name[64];
        mg_test_temp_write("stems", ".mid", mid->data, mid->len, path, sizeof path);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/midi_check.py --onsets '%s'", path);
        FILE *fp = popen(cmd, "r");
        assert_non_null(fp);
        s_pcm_t stems[MG_PIPELINE_MAX_STEMS];
        for (int k = 0; k < a.n_stems; k++) {
            const mg_encoded_t *sf = s_file(&res, "stem", a.stems[k].name, MG_FORMAT_FLAC);
            assert_non_null(sf);
            stems[k] = s_decode(sf);
        }
        double t;
        int notes = 0;
        while (fscanf(fp, "%63s %lf", name, &t) == 2) {
            notes++;
            int k = 0;
            while (k < a.n_stems && strcmp(a.stems[k].name, name) != 0) k++;
            if (k == a.n_stems) fail_msg("MIDI track %s names no stem", name);
            const s_pcm_t *p = &stems[k];
            long at = lround(t * S_RATE), ms = S_RATE / 1000;
            double before = s_peak(p, at - 30 * ms, at - 2 * ms), after = s_peak(p, at, at + 30 * ms);
            if (at - 30 * ms < 0 || after < 1e-3 || before > 0.02 * after) continue; /* not out of silence */
            long on = s_first_above(p, at - 10 * ms, at + 30 * ms, fmax(4 * before, 0.002 * after));
            assert_true(on >= 0);
            double dev_ms = fabs((double)(on - at)) * 1000.0 / S_RATE;
            if (dev_ms > 1.0)
                fail_msg("%s seed %llu: %s note-on at %.4f s (MIDI) is heard at %.4f s: %.2f ms apart", cues[q].prompt,
                         (unsigned long long)cues[q].seed, name, t, (double)on / S_RATE, dev_ms);
            worst_ms = fmax(worst_ms, dev_ms);
            sum_ms += dev_ms;
            checked++;
        }
        assert_int_equal(pclose(fp), 0);
        assert_true(notes > 10);
        stems_seen += a.n_stems;
        for (int k = 0; k < a.n_stems; k++) free(stems[k].pcm);
        unlink(path);
        mg_pipeline_result_free(&res);
        mg_audio_free(&a);
    }
    printf("# MIDI vs audio: %d note-ons out of silence over %d stems, worst %.3f ms, mean %.3f ms\n", checked,
           stems_seen, worst_ms, checked ? sum_ms / checked : 0);
    assert_true(checked >= 10); /* enough notes were actually compared */
}

/* The pipeline reports its progress after the loudness pass and after every encoded file
 * (a worker renews its lease with it through a long encode), and a cancel stops it with
 * nothing allocated. */
typedef struct {
    int calls, cancel_at;
    double last;
    int monotonic;
} s_progress_log_t;

static int s_log_progress(void *ctx, double done)
{
    s_progress_log_t *p = ctx;
    p->calls++;
    if (done < p->last || done > 1.0) p->monotonic = 0;
    p->last = done;
    return p->cancel_at > 0 && p->calls >= p->cancel_at;
}

static void test_pipeline_progress_and_cancel(void **state)
{
    (void)state;
    mg_render_spec_t spec = s_spec(MG_FORMAT_FLAC | MG_FORMAT_MP3, MG_DELIVER_MIX | MG_DELIVER_STEMS | MG_DELIVER_MIDI,
                                   -14.0, 9, 4.0, "upbeat pop jingle with drums", "happy");
    char err[256] = "";
    const mg_renderer_t *r = mg_renderer_synth();
    mg_audio_t a;
    memset(&a, 0, sizeof a);
    assert_int_equal(r->render(r, &spec, NULL, NULL, &a, err, sizeof err), MG_RENDER_OK);
    mg_pipeline_result_t res;
    s_progress_log_t log = {0, 0, 0.0, 1};
    assert_int_equal(mg_pipeline_run_progress(&spec, &a, NULL, s_log_progress, &log, &res, err, sizeof err), 0);
    assert_int_equal(log.calls, 1 + 2 * (1 + a.n_stems)); /* loudness pass + every audio file */
    assert_true(log.monotonic);
    assert_true(fabs(log.last - 1.0) < 1e-12);
    assert_int_equal(res.n_files, 2 * (1 + a.n_stems) + 1);
    mg_pipeline_result_free(&res);

    s_progress_log_t stop = {0, 3, 0.0, 1};
    assert_int_equal(mg_pipeline_run_progress(&spec, &a, NULL, s_log_progress, &stop, &res, err, sizeof err), -1);
    assert_string_equal(err, "cancelled");
    assert_int_equal(stop.calls, 3);
    assert_int_equal(res.n_files, 0);
    mg_audio_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stems_sum_exact_before_limiter),
        cmocka_unit_test(test_stems_sum_after_limiter),
        cmocka_unit_test(test_stems_ceiling_when_loud),
        cmocka_unit_test(test_midi_onsets_match_audio),
        cmocka_unit_test(test_pipeline_progress_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
