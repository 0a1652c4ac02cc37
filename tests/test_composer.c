/* test_composer.c - the composer (composer/): determinism and a golden hash, exact
 * durations, MIDI read back by a real parser (python3-mido via tests/midi_check.py) and
 * played by fluidsynth, `mgctl plan`, lexicon coverage, overrides, unknown words, directional
 * checks of the emotion model over many seeds, variation between seeds, and compose time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/emotion.h"
#include "common/renderspec.h"
#include "common/util.h"
#include "composer/composer.h"
#include "tests/testlib.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static void s_spec(mg_render_spec_t *s, const char *prompt, const char *emotions, double duration, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    mg_strlcpy(s->campaign, "test", sizeof s->campaign);
    mg_strlcpy(s->cue, "cue", sizeof s->cue);
    mg_strlcpy(s->prompt, prompt, sizeof s->prompt);
    mg_sha256_hex(prompt, strlen(prompt), s->prompt_sha256);
    mg_strlcpy(s->emotions, emotions, sizeof s->emotions);
    s->duration_s = duration;
    s->seed = seed;
}

/* The ad campaign's 30 s jingle as the coordinator would lease it (job-file overrides). */
static void s_jingle(mg_render_spec_t *s, uint64_t seed)
{
    s_spec(s, "joyful summer-sale jingle, acoustic guitar and claps, bright and sunny", "joyful,energetic", 30.0, seed);
    mg_strlcpy(s->campaign, "summer-sale-2026", sizeof s->campaign);
    mg_strlcpy(s->cue, "jingle-30s", sizeof s->cue);
    s->tempo_bpm = 120;
    mg_strlcpy(s->key, "D major", sizeof s->key);
    mg_strlcpy(s->instruments, "acoustic guitar,claps,bass,drums", sizeof s->instruments);
    mg_strlcpy(s->stems, "melody,chords,bass,drums", sizeof s->stems);
}

static mg_score_t *s_compose(const mg_render_spec_t *spec)
{
    char err[256] = "";
    mg_score_t *sc = mg_compose(spec, err, sizeof err);
    if (!sc) fprintf(stderr, "mg_compose: %s\n", err);
    assert_non_null(sc);
    return sc;
}

static const mg_score_stem_t *s_stem(const mg_score_t *sc, const char *name)
{
    for (int i = 0; i < sc->n_stems; i++)
        if (!strcmp(sc->stems[i].name, name)) return &sc->stems[i];
    return NULL;
}

static char *s_midi_hash(const mg_score_t *sc, char hex[65])
{
    unsigned char *buf = NULL;
    size_t len = 0;
    assert_int_equal(mg_score_write_midi(sc, &buf, &len), 0);
    mg_sha256_hex(buf, len, hex);
    free(buf);
    return hex;
}

/* Mean velocity of the pitched stems' notes. */
static double s_mean_velocity(const mg_score_t *sc)
{
    double sum = 0;
    int n = 0;
    for (int i = 0; i < sc->n_stems; i++) {
        if (sc->stems[i].is_drum) continue;
        for (int k = 0; k < sc->stems[i].n_notes; k++) sum += sc->stems[i].notes[k].velocity, n++;
    }
    return n ? sum / n : 0;
}

/* Harmonic dissonance: sampled every eighth note, the share of the sounding pitch-class
 * pairs (pitched stems) that are semitones/major sevenths (interval class 1) or tritones. */
static double s_dissonance(const mg_score_t *sc)
{
    long pairs = 0, bad = 0;
    for (int64_t t = 0; t < sc->total_ticks; t += sc->ppq / 2) {
        int on[12] = {0};
        for (int i = 0; i < sc->n_stems; i++) {
            if (sc->stems[i].is_drum) continue;
            for (int k = 0; k < sc->stems[i].n_notes; k++) {
                const mg_score_note_t *n = &sc->stems[i].notes[k];
                if (n->start_tick > t) break;
                if (n->start_tick + n->duration_tick > t) on[n->pitch % 12] = 1;
            }
        }
        for (int a = 0; a < 12; a++)
            for (int b = a + 1; b < 12; b++) {
                if (!on[a] || !on[b]) continue;
                int ic = b - a > 6 ? 12 - (b - a) : b - a;
                pairs++;
                if (ic == 1 || ic == 6) bad++;
            }
    }
    return pairs ? (double)bad / pairs : 0;
}

/* Normalised edit distance between two stems' note sequences. A token is (pitch, onset,
 * length) quantised to sixteenths, so the seed's micro-timing (humanising) does not count
 * but a changed rhythm counts as much as a changed pitch; with pitch_only, just the pitches
 * in order (the tune without its rhythm). */
static int s_tok_eq(const mg_score_note_t *x, const mg_score_note_t *y, int pitch_only)
{
    const int q = MG_SCORE_PPQ / 4;
    if (x->pitch != y->pitch) return 0;
    if (pitch_only) return 1;
    return (x->start_tick + q / 2) / q == (y->start_tick + q / 2) / q &&
           (x->duration_tick + q / 2) / q == (y->duration_tick + q / 2) / q;
}

static double s_seq_distance(const mg_score_stem_t *a, const mg_score_stem_t *b, int pitch_only)
{
    int n = a->n_notes, m = b->n_notes;
    if (n == 0 && m == 0) return 0;
    int *prev = malloc((size_t)(m + 1) * sizeof *prev), *cur = malloc((size_t)(m + 1) * sizeof *cur);
    for (int j = 0; j <= m; j++) prev[j] = j;
    for (int i = 1; i <= n; i++) {
        cur[0] = i;
        const mg_score_note_t *x = &a->notes[i - 1];
        for (int j = 1; j <= m; j++) {
            const mg_score_note_t *y = &b->notes[j - 1];
            int same = s_tok_eq(x, y, pitch_only);
            int v = prev[j - 1] + !same;
            if (prev[j] + 1 < v) v = prev[j] + 1;
            if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
            cur[j] = v;
        }
        int *t = prev; prev = cur; cur = t;
    }
    double d = (double)prev[m] / (n > m ? n : m);
    free(prev);
    free(cur);
    return d;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Checks the invariants every score must hold. */
static void s_check_score(const mg_score_t *sc, const mg_render_spec_t *spec)
{
    int64_t want_us = llround(spec->duration_s * 1e6);
    if (want_us < 1) want_us = 1;
    assert_int_equal(sc->duration_us, want_us);
    assert_true(sc->duration_s == spec->duration_s);
    assert_int_equal(sc->total_ticks, (int64_t)sc->n_beats * sc->ppq);
    assert_int_equal(mg_score_tick_us(sc, sc->total_ticks), want_us);
    /* tempo map: starts at 0, increasing, consistent */
    assert_true(sc->n_tempo >= 1);
    assert_int_equal(sc->tempo[0].tick, 0);
    for (int i = 1; i < sc->n_tempo; i++) {
        assert_true(sc->tempo[i].tick > sc->tempo[i - 1].tick);
        assert_int_equal(sc->tempo[i].us, mg_score_tick_us(sc, sc->tempo[i].tick));
    }
    /* sections: contiguous, covering every beat */
    assert_true(sc->n_sections >= 1);
    int beat = 0;
    for (int i = 0; i < sc->n_sections; i++) {
        assert_int_equal(sc->sections[i].start_beat, beat);
        assert_true(sc->sections[i].n_beats > 0);
        assert_true(sc->sections[i].intensity > 0 && sc->sections[i].intensity <= 1.0);
        beat += sc->sections[i].n_beats;
    }
    assert_int_equal(beat, sc->n_beats);
    /* notes: inside the score, sorted, valid, seconds consistent; nothing after the end */
    int64_t last_end = 0;
    int any = 0;
    for (int i = 0; i < sc->n_stems; i++) {
        const mg_score_stem_t *st = &sc->stems[i];
        assert_true(st->is_drum ? st->channel == 9 : st->channel != 9);
        assert_true(st->program >= 0 && st->program <= 127);
        for (int k = 0; k < st->n_notes; k++) {
            const mg_score_note_t *n = &st->notes[k];
            assert_true(n->start_tick >= 0);
            assert_true(n->duration_tick >= 1);
            assert_true(n->start_tick + n->duration_tick <= sc->total_ticks);
            assert_true(n->pitch >= 0 && n->pitch <= 127);
            assert_true(n->velocity >= 1 && n->velocity <= 127);
            if (k) assert_true(n->start_tick >= st->notes[k - 1].start_tick);
            assert_true(fabs(n->start_s - mg_score_tick_us(sc, n->start_tick) / 1e6) < 1e-9);
            assert_true(n->start_s + n->duration_s <= sc->duration_s + 1e-6);
            if (n->start_tick + n->duration_tick > last_end) last_end = n->start_tick + n->duration_tick;
            any = 1;
        }
    }
    assert_true(any);
    (void)last_end;
}

/* ---- determinism ------------------------------------------------------------------------------- */

static void test_determinism(void **state)
{
    (void)state;
    mg_render_spec_t spec;
    s_jingle(&spec, 42);
    mg_score_t *a = s_compose(&spec), *b = s_compose(&spec);
    char ha[65], hb[65];
    assert_string_equal(s_midi_hash(a, ha), s_midi_hash(b, hb));
    char *ja = mg_score_decision_json(a), *jb = mg_score_decision_json(b);
    assert_string_equal(ja, jb);
    /* A comma-decimal locale changes nothing (numbers are printed from integers). */
    if (setlocale(LC_ALL, "de_DE.UTF-8") || setlocale(LC_ALL, "fr_FR.UTF-8")) {
        mg_score_t *c = s_compose(&spec);
        char *jc = mg_score_decision_json(c);
        char hc[65];
        assert_string_equal(ja, jc);
        assert_string_equal(ha, s_midi_hash(c, hc));
        free(jc);
        mg_score_free(&c);
        setlocale(LC_ALL, "C");
    }
    /* a different seed: a different score */
    spec.seed = 43;
    mg_score_t *d = s_compose(&spec);
    char hd[65];
    assert_string_not_equal(ha, s_midi_hash(d, hd));
    free(ja);
    free(jb);
    mg_score_free(&a);
    mg_score_free(&b);
    mg_score_free(&d);
    assert_null(a);
}

/* The bytes of a fixed spec. They change only with MG_COMPOSER_VERSION: when a change to
 * the composer moves this hash on purpose, bump the version and update both. A mismatch on
 * another machine means the composer is not portable (float order, locale, libc sort). */
#define S_GOLDEN_VERSION "1.1.0"
#define S_GOLDEN_MIDI "75dcd4ac32f0c01a3c8b4ddb2108ec385bee81b4845e3b3423d7267da1c277b5"
#define S_GOLDEN_JSON "166e84fb0f45eb0d7a396ce882bafdc00ae17114f997431e4f080e8854c275a8"

static void test_golden(void **state)
{
    (void)state;
    mg_render_spec_t spec;
    s_jingle(&spec, 2401574254497089982ull);
    mg_score_t *sc = s_compose(&spec);
    char h[65], hj[65];
    s_midi_hash(sc, h);
    char *j = mg_score_decision_json(sc);
    mg_sha256_hex(j, strlen(j), hj);
    printf("golden: composer %s midi %s json %s\n", MG_COMPOSER_VERSION, h, hj);
    assert_string_equal(MG_COMPOSER_VERSION, S_GOLDEN_VERSION);
    assert_string_equal(h, S_GOLDEN_MIDI);
    assert_string_equal(hj, S_GOLDEN_JSON);
    free(j);
    mg_score_free(&sc);
}

/* ---- durations ------------------------------------------------------------------------------ */

static void test_exact_durations(void **state)
{
    (void)state;
    static const double durs[] = {0.3, 1.0, 2.345, 6.0, 7.77, 15.0, 29.9, 30.0, 61.3, 123.456789, 600.0};
    static const double tempos[] = {0, 37, 120, 173.5, 300};
    static const char *const prompts[] = {"calm piano", "loopable pad groove", "short logo sting, ends on the tonic",
                                          "romantic slow waltz", "epic orchestral build to a reveal"};
    int n = 0;
    for (size_t d = 0; d < sizeof durs / sizeof durs[0]; d++)
        for (size_t t = 0; t < sizeof tempos / sizeof tempos[0]; t++)
            for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
                mg_render_spec_t spec;
                s_spec(&spec, prompts[p], p % 2 ? "tense" : "joyful", durs[d], 1000 + d * 31 + t * 7 + p);
                spec.tempo_bpm = tempos[t];
                mg_score_t *sc = s_compose(&spec);
                s_check_score(sc, &spec);
                /* an override keeps its tempo for every beat but the last few; a loop keeps
                 * one tempo throughout, off by at most half a beat over the whole cue */
                if (tempos[t] > 0 && sc->n_beats > 8) {
                    if (strstr(prompts[p], "loop")) assert_true(fabs(sc->tempo_bpm / tempos[t] - 1) <= 0.5 / sc->n_beats + 1e-4);
                    else assert_true(fabs(sc->tempo_bpm - tempos[t]) < 0.01);
                }
                /* the final chord rings to the very end unless the cue loops */
                if (!strstr(prompts[p], "loop")) {
                    int ends = 0;
                    for (int i = 0; i < sc->n_stems; i++)
                        for (int k = 0; k < sc->stems[i].n_notes; k++)
                            if (sc->stems[i].notes[k].start_tick + sc->stems[i].notes[k].duration_tick == sc->total_ticks) ends = 1;
                    assert_true(ends);
                }
                mg_score_free(&sc);
                n++;
            }
    printf("exact durations: %d scores, every one %s to the microsecond\n", n, "exact");
}

/* ---- MIDI read back ------------------------------------------------------------------------ */

static char s_tmp[256];

static int s_setup_tmp(void **state)
{
    (void)state;
    mg_test_tmpdir_make(s_tmp, sizeof s_tmp, "composer");
    return 0;
}

static int s_teardown_tmp(void **state)
{
    (void)state;
    mg_test_tmpdir_remove(s_tmp);
    return 0;
}

static void test_midi_mido(void **state)
{
    (void)state;
    /* a real parser must read every file back; a missing python3-mido is a failure */
    assert_int_equal(mg_test_sh("/usr/bin/python3 -c 'import mido' 2>/dev/null"), 0);
    static const struct { const char *prompt, *emotions, *key, *stems; double dur, tempo; } cases[] = {
        {"joyful jingle, acoustic guitar and claps", "joyful,energetic", "D major", "melody,chords,bass,drums", 30, 120},
        {"slow solo piano, a letter never sent", "sad,nostalgic", "F minor", "", 60, 66},
        {"romantic slow waltz, strings and celesta", "romantic,tender", "", "", 45, 0},
        {"loopable driving electronic track", "energetic", "", "", 17.3, 0},
        {"short logo sting", "uplifting", "", "melody,chords", 2.5, 0},
        {"tense noir underscore, muted trumpet over brushed drums", "tense,mysterious", "C minor", "", 33.3, 92},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mg_render_spec_t spec;
        s_spec(&spec, cases[i].prompt, cases[i].emotions, cases[i].dur, 7 + i);
        mg_strlcpy(spec.key, cases[i].key, sizeof spec.key);
        mg_strlcpy(spec.stems, cases[i].stems, sizeof spec.stems);
        spec.tempo_bpm = cases[i].tempo;
        mg_score_t *sc = s_compose(&spec);
        unsigned char *buf;
        size_t len;
        assert_int_equal(mg_score_write_midi(sc, &buf, &len), 0);
        char path[512];
        snprintf(path, sizeof path, "%s/case%zu.mid", s_tmp, i);
        assert_int_equal(mg_write_file_atomic(path, buf, len), 0);
        free(buf);
        assert_int_equal(mg_test_sh("/usr/bin/python3 %s/tests/midi_check.py '%s' %.6f %d", mg_test_root(), path,
                                    sc->duration_us / 1e6, sc->n_stems), 0);
        mg_score_free(&sc);
    }
}

/* fluidsynth plays a file: audible, and at least as long as the cue. make test installs
 * fluidsynth and the GM SoundFont (ops/install-deps.sh), so their absence is a failure. */
static void test_midi_fluidsynth(void **state)
{
    (void)state;
    const char *sf2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2";
    if (mg_test_sh("command -v fluidsynth >/dev/null 2>&1") != 0 || access(sf2, R_OK) != 0) {
        fail_msg("fluidsynth or %s missing (run ops/install-deps.sh)", sf2);
    }
    mg_render_spec_t spec;
    s_jingle(&spec, 3);
    spec.duration_s = 8;
    mg_score_t *sc = s_compose(&spec);
    unsigned char *buf;
    size_t len;
    assert_int_equal(mg_score_write_midi(sc, &buf, &len), 0);
    char mid[512], wav[512];
    snprintf(mid, sizeof mid, "%s/play.mid", s_tmp);
    snprintf(wav, sizeof wav, "%s/play.wav", s_tmp);
    assert_int_equal(mg_write_file_atomic(mid, buf, len), 0);
    free(buf);
    assert_int_equal(mg_test_sh("fluidsynth -ni -q -r 22050 -F '%s' %s '%s' >/dev/null 2>&1", wav, sf2, mid), 0);
    assert_int_equal(mg_test_sh(
        "/usr/bin/python3 -c \"import wave,struct,sys\n"
        "w=wave.open('%s');n=w.getnframes();r=w.getframerate();d=w.readframes(n)\n"
        "s=struct.unpack('<%%dh'%%(len(d)//2),d);rms=(sum(x*x for x in s[::7])/len(s[::7]))**0.5\n"
        "print('fluidsynth: %%.2f s, rms %%.0f'%%(n/r,rms));sys.exit(0 if n/r>=8 and rms>200 else 1)\"",
        wav), 0);
    mg_score_free(&sc);
}

/* `mgctl plan` over the example job: exit 0, valid JSON with the required fields, and MIDI
 * files that mido reads. */
static void test_plan_cli(void **state)
{
    (void)state;
    char mgctl[1024], rel[600];
    snprintf(rel, sizeof rel, "%s/mgctl", mg_test_bin());
    if (!realpath(rel, mgctl)) {
        fprintf(stderr, "%s not found: build it first (make bin/mgctl, or set MG_BIN)\n", rel);
        fail();
    }
    char out[600];
    snprintf(out, sizeof out, "%s/plan.json", s_tmp);
    assert_int_equal(mg_test_sh("cd %s && '%s' plan jobs/ad-campaign.yaml --json --midi '%s/midi' > '%s'",
                                mg_test_root(), mgctl, s_tmp, out), 0);
    assert_int_equal(mg_test_sh(
        "/usr/bin/python3 -c \"import json,sys\n"
        "d=json.load(open('%s'))\n"
        "need=['tempo_bpm','key','mode','time_signature','sections','stems','valence','arousal','decisions']\n"
        "bad=[(r['cue'],k) for r in d['renders'] for k in need if k not in r]\n"
        "bad+=[(r['cue'],'gm_program') for r in d['renders'] for s in r['stems'] if 'gm_program' not in s]\n"
        "print('plan: %%d renders, %%d MIDI files'%%(len(d['renders']),len(d['midi_files'])))\n"
        "sys.exit(1 if bad or len(d['renders'])!=12 or len(d['midi_files'])!=12 else 0)\"",
        out), 0);
    assert_int_equal(mg_test_sh(
        "for f in '%s'/midi/summer-sale-2026/jingle-30s-v0[1-4].mid; do /usr/bin/python3 %s/tests/midi_check.py \"$f\" 30 4 || exit 1; done",
        s_tmp, mg_test_root()), 0);
    assert_int_equal(mg_test_sh(
        "/usr/bin/python3 %s/tests/midi_check.py '%s/midi/summer-sale-2026/sting-6s-v01.mid' 6 2",
        mg_test_root(), s_tmp), 0);
    /* an invalid job file: exit 4, nothing composed */
    assert_int_equal(mg_test_sh(
        "printf 'campaign: x\\ncues: []\\n' > '%s/bad.yaml' && '%s' plan '%s/bad.yaml' 2>/dev/null >/dev/null",
        s_tmp, mgctl, s_tmp), 4);
}

/* ---- the emotion model ------------------------------------------------------------------------ */

static void test_lexicon_coverage(void **state)
{
    (void)state;
    size_t n;
    const mg_emotion_t *t = mg_emotion_table(&n);
    for (size_t i = 0; i < n; i++) {
        mg_render_spec_t spec;
        s_spec(&spec, "music", t[i].tag, 20, i + 1);
        mg_score_t *sc = s_compose(&spec);
        s_check_score(sc, &spec);
        /* the circumplex position is the lexicon's */
        assert_true(fabs(sc->valence - t[i].valence) < 0.0006);
        assert_true(fabs(sc->arousal - t[i].arousal) < 0.0006);
        /* mode follows valence (Hevner; Gabrielsson & Lindstrom) outside the ambiguous band */
        if (t[i].valence < -0.05) assert_int_equal(sc->mode, MG_MODE_MINOR);
        if (t[i].valence > 0.05) assert_int_equal(sc->mode, MG_MODE_MAJOR);
        char *j = mg_score_decision_json(sc);
        char needle[64];
        snprintf(needle, sizeof needle, "\"tag\":\"%s\"", t[i].tag);
        assert_non_null(strstr(j, needle));
        free(j);
        mg_score_free(&sc);
    }
    /* synonyms resolve; several tags blend to their mean */
    mg_render_spec_t spec;
    s_spec(&spec, "music", "sadness,tension", 20, 5);
    mg_score_t *sc = s_compose(&spec);
    const mg_emotion_t *sad = mg_emotion_find("sad"), *tense = mg_emotion_find("tense");
    assert_true(fabs(sc->valence - (sad->valence + tense->valence) / 2) < 0.001);
    assert_true(fabs(sc->arousal - (sad->arousal + tense->arousal) / 2) < 0.001);
    mg_score_free(&sc);
    printf("lexicon: all %zu tags compose, placed at their circumplex position\n", n);
}

typedef struct {
    double tempo, vel, diss;
    int minor;
    double tempo_min, tempo_max;
} s_stats_t;

static s_stats_t s_stats(const char *emotions, int seeds)
{
    s_stats_t st = {0, 0, 0, 0, 1e9, -1e9};
    for (int s = 0; s < seeds; s++) {
        mg_render_spec_t spec;
        s_spec(&spec, "music", emotions, 30, 9000 + s * 7919);
        mg_score_t *sc = s_compose(&spec);
        st.tempo += sc->tempo_bpm / seeds;
        if (sc->tempo_bpm < st.tempo_min) st.tempo_min = sc->tempo_bpm;
        if (sc->tempo_bpm > st.tempo_max) st.tempo_max = sc->tempo_bpm;
        st.vel += s_mean_velocity(sc) / seeds;
        st.diss += s_dissonance(sc) / seeds;
        st.minor += sc->mode == MG_MODE_MINOR;
        mg_score_free(&sc);
    }
    return st;
}

static void test_directional(void **state)
{
    (void)state;
    enum { N = 40 };
    static const char *const low[] = {"sad", "tender"}, *const high[] = {"joyful", "energetic"};
    printf("directional checks over %d seeds each (30 s, prompt \"music\"):\n", N);
    printf("  %-10s %8s %8s %8s %8s %10s %6s\n", "emotion", "bpm", "bpm min", "bpm max", "velocity", "dissonance", "minor");
    s_stats_t lo[2], hi[2];
    for (int i = 0; i < 2; i++) {
        lo[i] = s_stats(low[i], N);
        hi[i] = s_stats(high[i], N);
    }
    s_stats_t tense = s_stats("tense", N), peaceful = s_stats("peaceful", N);
    const char *names[] = {low[0], low[1], high[0], high[1], "tense", "peaceful"};
    s_stats_t *all[] = {&lo[0], &lo[1], &hi[0], &hi[1], &tense, &peaceful};
    for (int i = 0; i < 6; i++)
        printf("  %-10s %8.1f %8.1f %8.1f %8.1f %10.3f %3d/%d\n", names[i], all[i]->tempo, all[i]->tempo_min,
               all[i]->tempo_max, all[i]->vel, all[i]->diss, all[i]->minor, N);
    /* sad and tender are slower and softer than joyful and energetic, for every seed */
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            assert_true(lo[i].tempo_max < hi[k].tempo_min);
            assert_true(lo[i].vel + 10 < hi[k].vel);
        }
    /* tense is always minor and more dissonant than peaceful */
    assert_int_equal(tense.minor, N);
    assert_int_equal(peaceful.minor, 0);
    assert_true(tense.diss > 3 * peaceful.diss + 0.05);
}

/* ---- overrides and vocabulary ---------------------------------------------------------------- */

static void test_overrides(void **state)
{
    (void)state;
    mg_render_spec_t spec;
    /* sad tags would pick a slow minor cue; the job's tempo, key and instruments win */
    s_spec(&spec, "sad music", "sad", 30, 11);
    spec.tempo_bpm = 140;
    mg_strlcpy(spec.key, "F# major", sizeof spec.key);
    mg_strlcpy(spec.instruments, "muted trumpet,upright bass,brushed drums", sizeof spec.instruments);
    mg_score_t *sc = s_compose(&spec);
    s_check_score(sc, &spec);
    assert_true(fabs(sc->tempo_bpm - 140) < 0.01);
    assert_int_equal(sc->tonic, 6);
    assert_int_equal(sc->mode, MG_MODE_MAJOR);
    assert_string_equal(sc->key, "F# major");
    assert_int_equal(sc->n_stems, 3);
    assert_int_equal(s_stem(sc, "melody")->program, 59);
    assert_int_equal(s_stem(sc, "bass")->program, 33);
    assert_int_equal(s_stem(sc, "drums")->program, 40);
    assert_true(s_stem(sc, "drums")->is_drum);
    char *j = mg_score_decision_json(sc);
    assert_non_null(strstr(j, "\"tempo\":true,\"key\":true,\"instruments\":true"));
    assert_non_null(strstr(j, "no acoustic bass in the renderer"));
    free(j);
    mg_score_free(&sc);

    /* explicit stems: exactly those, in canonical order */
    s_spec(&spec, "happy tune", "happy", 20, 12);
    mg_strlcpy(spec.stems, "drums,melody,harmony,noise", sizeof spec.stems);
    sc = s_compose(&spec);
    assert_int_equal(sc->n_stems, 3);
    assert_string_equal(sc->stems[0].name, "melody");
    assert_string_equal(sc->stems[1].name, "chords");
    assert_string_equal(sc->stems[2].name, "drums");
    j = mg_score_decision_json(sc);
    assert_non_null(strstr(j, "\"ignored_stems\":[\"noise\"]"));
    free(j);
    mg_score_free(&sc);

    /* 3/4 from the prompt; the key's minor mode from the job file */
    s_spec(&spec, "a slow waltz", "joyful", 20, 13);
    mg_strlcpy(spec.key, "A minor", sizeof spec.key);
    sc = s_compose(&spec);
    assert_int_equal(sc->beats_per_bar, 3);
    assert_int_equal(sc->mode, MG_MODE_MINOR);
    assert_int_equal(sc->tonic, 9);
    mg_score_free(&sc);

    /* every stem uses a GM program of the supported families */
    static const int allowed[] = {0, 1, 4, 24, 25, 33, 34, 38, 39, 40, 42, 45, 46, 48, 49, 56, 59, 60, 61, 80, 81,
                                  82, 88, 89, 90, 91, 94};
    static const char *const prompts[] = {"pop", "rock", "folk", "electronic", "ambient", "cinematic", "jazz",
                                          "lofi", "ballad", "glockenspiel and organ", "choir, harp and sax",
                                          "synth bass, flute, pizzicato"};
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        s_spec(&spec, prompts[p], p % 3 ? "calm" : "energetic", 15, p);
        sc = s_compose(&spec);
        s_check_score(sc, &spec);
        for (int i = 0; i < sc->n_stems; i++) {
            if (sc->stems[i].is_drum) continue;
            int ok = 0;
            for (size_t k = 0; k < sizeof allowed / sizeof allowed[0]; k++) ok |= allowed[k] == sc->stems[i].program;
            if (!ok) fprintf(stderr, "%s: %s program %d\n", prompts[p], sc->stems[i].name, sc->stems[i].program);
            assert_true(ok);
        }
        mg_score_free(&sc);
    }
}

static void test_unknown_words(void **state)
{
    (void)state;
    mg_render_spec_t spec;
    s_spec(&spec, "A frobnicated zyzzyva jingle with kazoo, 15-second cut-down; €uro ünïcode \"quotes\" \\ back",
           "joyful,notanemotion", 8, 99);
    mg_strlcpy(spec.instruments, "kazoo,theremin,piano", sizeof spec.instruments);
    mg_strlcpy(spec.stems, "bogus", sizeof spec.stems);
    mg_score_t *sc = s_compose(&spec);
    s_check_score(sc, &spec);
    char *j = mg_score_decision_json(sc);
    assert_non_null(strstr(j, "\"frobnicated\""));
    assert_non_null(strstr(j, "\"zyzzyva\""));
    assert_non_null(strstr(j, "\"unknown_tags\":[\"notanemotion\"]"));
    assert_non_null(strstr(j, "kazoo: not an instrument"));
    assert_non_null(strstr(j, "\"ignored_stems\":[\"bogus\"]"));
    /* the recognised words say what they did */
    assert_non_null(strstr(j, "\"word\":\"jingle\",\"as\":\"style\""));
    free(j);
    mg_score_free(&sc);

    /* an empty or all-punctuation prompt and no tags still give a cue */
    s_spec(&spec, "", "", 5, 1);
    sc = s_compose(&spec);
    s_check_score(sc, &spec);
    mg_score_free(&sc);
    s_spec(&spec, "!!! ... ---", "", 0.2, 1);
    sc = s_compose(&spec);
    s_check_score(sc, &spec);
    mg_score_free(&sc);

    /* bad durations are refused with a message */
    char err[200] = "";
    s_spec(&spec, "x", "", 0, 1);
    assert_null(mg_compose(&spec, err, sizeof err));
    assert_non_null(strstr(err, "duration"));
    s_spec(&spec, "x", "", 601, 1);
    assert_null(mg_compose(&spec, err, sizeof err));
}

/* Form words: sting, loop, build; the loop's last bar is on the dominant. */
static void test_form(void **state)
{
    (void)state;
    mg_render_spec_t spec;
    s_spec(&spec, "loopable groove", "happy", 32, 3);
    mg_score_t *sc = s_compose(&spec);
    for (int i = 0; i < sc->n_sections; i++) {
        assert_string_not_equal(sc->sections[i].name, "intro");
        assert_string_not_equal(sc->sections[i].name, "outro");
    }
    char *j = mg_score_decision_json(sc);
    assert_non_null(strstr(j, "\"type\":\"loop\""));
    free(j);
    mg_score_free(&sc);

    s_spec(&spec, "a long cinematic build", "epic", 90, 3);
    sc = s_compose(&spec);
    int build = 0, main_ = 0;
    for (int i = 0; i < sc->n_sections; i++) {
        build |= !strcmp(sc->sections[i].name, "build");
        main_ |= !strcmp(sc->sections[i].name, "main");
    }
    assert_true(build && main_);
    assert_string_equal(sc->sections[0].name, "intro");
    assert_string_equal(sc->sections[sc->n_sections - 1].name, "outro");
    mg_score_free(&sc);

    s_spec(&spec, "logo sting", "uplifting", 4, 3);
    sc = s_compose(&spec);
    assert_int_equal(sc->n_sections, 1);
    assert_string_equal(sc->sections[0].name, "sting");
    mg_score_free(&sc);
}

/* ---- variation between seeds ------------------------------------------------------------------ */

static void s_variation(const char *label, void (*make)(mg_render_spec_t *, uint64_t), int pitch_only, double *min_out,
                        double *mean_out)
{
    enum { N = 40 };
    mg_score_t *sc[N];
    for (int i = 0; i < N; i++) {
        mg_render_spec_t spec;
        make(&spec, 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1));
        sc[i] = s_compose(&spec);
    }
    static const char *const stems[] = {"melody", "chords", "bass", "drums"};
    for (int k = 0; k < 4; k++) {
        double d[N * (N - 1) / 2];
        int n = 0, identical = 0;
        for (int a = 0; a < N; a++)
            for (int b = a + 1; b < N; b++) {
                const mg_score_stem_t *x = s_stem(sc[a], stems[k]), *y = s_stem(sc[b], stems[k]);
                if (!x || !y) continue;
                d[n] = s_seq_distance(x, y, pitch_only);
                identical += d[n] == 0;
                n++;
            }
        if (!n) continue;
        qsort(d, (size_t)n, sizeof d[0], s_cmp_double);
        double mean = 0;
        for (int i = 0; i < n; i++) mean += d[i] / n;
        printf("  %-7s %-12s %-7s pairs %3d  min %.3f  p5 %.3f  median %.3f  mean %.3f  max %.3f  identical %d\n",
               label, pitch_only ? "pitches" : "notes", stems[k], n, d[0], d[n / 20], d[n / 2], mean, d[n - 1], identical);
        if (k == 0) {
            *min_out = d[0];
            *mean_out = mean;
        }
    }
    for (int i = 0; i < N; i++) mg_score_free(&sc[i]);
}

static void s_free_spec(mg_render_spec_t *s, uint64_t seed)
{
    s_spec(s, "upbeat pop tune", "happy", 30, seed);
}

static void test_variation(void **state)
{
    (void)state;
    double min1, mean1, min2, mean2, min3, mean3;
    printf("variation across 40 seeds: normalised edit distance between note sequences, 780 pairs per stem\n"
           "  (notes: pitch + onset + length in sixteenths; pitches: the pitch sequence alone)\n");
    s_variation("jingle", s_jingle, 0, &min1, &mean1);
    s_variation("jingle", s_jingle, 1, &min3, &mean3);
    s_variation("free", s_free_spec, 0, &min2, &mean2);
    /* clearly different: no two melodies alike, most of each differs, and not only in
     * rhythm (the jingle fixes key, tempo and instruments: only the seed varies) */
    assert_true(min1 > 0.25);
    assert_true(mean1 > 0.6);
    assert_true(min3 > 0.2);
    assert_true(mean3 > 0.5);
    assert_true(min2 > 0.25);
    assert_true(mean2 > 0.6);
}

/* ---- speed -------------------------------------------------------------------------------------- */

static void test_speed(void **state)
{
    (void)state;
    enum { N = 200 };
    mg_render_spec_t spec;
    double best = 1e9, total = 0;
    for (int i = 0; i < N; i++) {
        s_jingle(&spec, (uint64_t)i);
        double t0 = mg_test_now_ms();
        mg_score_t *sc = s_compose(&spec);
        char *j = mg_score_decision_json(sc);
        unsigned char *buf;
        size_t len;
        mg_score_write_midi(sc, &buf, &len);
        double dt = mg_test_now_ms() - t0;
        free(buf);
        free(j);
        mg_score_free(&sc);
        total += dt;
        if (dt < best) best = dt;
    }
    printf("compose + record + MIDI, 30 s jingle: mean %.3f ms, best %.3f ms over %d runs (limit 10 ms)\n",
           total / N, best, N);
    assert_true(total / N < 10.0);
    /* the longest cue too */
    s_spec(&spec, "epic orchestral build", "epic", 600, 1);
    double t0 = mg_test_now_ms();
    mg_score_t *sc = s_compose(&spec);
    printf("compose, 600 s cue: %.3f ms\n", mg_test_now_ms() - t0);
    mg_score_free(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_exact_durations),
        cmocka_unit_test(test_midi_mido),
        cmocka_unit_test(test_midi_fluidsynth),
        cmocka_unit_test(test_plan_cli),
        cmocka_unit_test(test_lexicon_coverage),
        cmocka_unit_test(test_directional),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_unknown_words),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_variation),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, s_setup_tmp, s_teardown_tmp);
}
