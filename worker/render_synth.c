/* render_synth.c - the interim CPU renderer (render.h): procedural music from the spec,
 * shipped until the composer (issue 3) and the neural model (issue 4) replace it.
 * Emotions pick tempo and mode, the seed picks key, progression, motif and timbres; four
 * mono stems (melody, chords, bass, drums) at 24 kHz, deterministic in the spec.
 *
 * Flow: s_plan (musical decisions) -> per bar: s_bar_melody / s_bar_chords / s_bar_bass /
 * s_bar_drums (note events rendered straight into the stems) -> reverb on melody and
 * chords -> fade in/out -> stem level guard.
 */
#include "render.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/emotion.h"
#include "../common/util.h"

#define S_RATE 24000
#define S_TAB 4096 /* wavetable length (power of two) */
#define S_STEM_RMS 0.12 /* every stem's level before its mix gain (about -18 dBFS) */

enum { S_MELODY, S_CHORDS, S_BASS, S_DRUMS, S_NSTEMS };
static const char *const s_stem_names[S_NSTEMS] = {"melody", "chords", "bass", "drums"};
/* Mix balance: the pipeline applies gain and pan; levels are set by ear. */
static const float s_stem_gain[S_NSTEMS] = {0.80f, 0.65f, 0.85f, 0.70f};
static const float s_stem_pan[S_NSTEMS] = {0.15f, -0.15f, 0.0f, 0.0f};

/* ---- deterministic randomness ------------------------------------------------------ */

typedef struct { uint64_t s; } s_rng_t;

static uint64_t s_rng_next(s_rng_t *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double s_rng_unit(s_rng_t *r) { return (double)(s_rng_next(r) >> 11) * 0x1.0p-53; }
static int s_rng_int(s_rng_t *r, int n) { return (int)(s_rng_next(r) % (uint64_t)n); }
static float s_rng_noise(s_rng_t *r) { return (float)(s_rng_unit(r) * 2.0 - 1.0); }

/* ---- music theory ------------------------------------------------------------------ */

static const int s_major[7] = {0, 2, 4, 5, 7, 9, 11};
static const int s_minor[7] = {0, 2, 3, 5, 7, 8, 10};
static const char *const s_note_names[12] = {"C", "C#", "D", "Eb", "E", "F",
                                             "F#", "G", "Ab", "A", "Bb", "B"};

/* Four-bar progressions as 0-based scale degrees. In minor, degree 4 is played as a major
 * V (raised leading tone), the usual cadence. */
static const int s_prog_major[][4] = {{0, 4, 5, 3}, {0, 5, 3, 4}, {5, 3, 0, 4},
                                      {0, 3, 5, 4}, {0, 3, 0, 4}, {0, 2, 3, 4}};
static const int s_prog_minor[][4] = {{0, 5, 2, 6}, {0, 3, 6, 2}, {0, 5, 3, 4},
                                      {0, 6, 5, 6}, {0, 3, 4, 0}, {0, 5, 6, 4}};
static const char *const s_roman_major[7] = {"I", "ii", "iii", "IV", "V", "vi", "vii°"};
static const char *const s_roman_minor[7] = {"i", "ii°", "III", "iv", "V", "VI", "VII"};

typedef struct { int onset, len; } s_hit_t; /* in eighth notes within a bar */
typedef struct { s_hit_t h[6]; int n; } s_rhythm_t;

/* One-bar melody rhythms, sparse to busy, and phrase-ending bars (a long last note). */
static const s_rhythm_t s_rhythms[] = {
    {{{0, 4}, {4, 2}, {6, 2}}, 3},
    {{{0, 2}, {2, 2}, {4, 4}}, 3},
    {{{0, 2}, {2, 2}, {4, 2}, {6, 2}}, 4},
    {{{0, 3}, {3, 1}, {4, 4}}, 3},
    {{{0, 3}, {3, 3}, {6, 2}}, 3},
    {{{1, 1}, {2, 2}, {4, 3}}, 3},
    {{{0, 2}, {2, 1}, {3, 1}, {4, 4}}, 4},
    {{{0, 1}, {1, 1}, {2, 2}, {4, 2}, {6, 2}}, 5},
};
static const s_rhythm_t s_endings[] = {
    {{{0, 2}, {2, 2}, {4, 4}}, 3},
    {{{0, 4}, {4, 4}}, 2},
    {{{0, 2}, {2, 6}}, 2},
    {{{0, 3}, {3, 5}}, 2},
};

typedef enum { S_TIMBRE_EPIANO, S_TIMBRE_BELL, S_TIMBRE_LEAD, S_TIMBRE_PLUCK } s_timbre_t;
static const char *const s_timbre_names[] = {"electric piano", "bell", "soft lead", "pluck"};

/* A two-bar motif: rhythm of each bar and one contour step (scale degrees) per note. */
typedef struct {
    s_rhythm_t bar[2];
    int step[2][6];
} s_motif_t;

/* Everything decided before the first sample. */
typedef struct {
    double valence, arousal;
    int bpm;
    int tonic;        /* pitch class 0..11 */
    int minor;
    int prog;         /* index into s_prog_major / s_prog_minor */
    s_timbre_t timbre;
    s_motif_t motif[2];
    int density;      /* 0 calm .. 2 busy: chord, bass and drum patterns */
    char key_name[32];
    char progression[48];
} s_plan_t;

/* Parses "D minor", "F# major", "bb", "Am", "C" (major). Returns 0 with the tonic and
 * *minor (-1 when the mode word is absent or unknown), or -1 when there is no tonic. */
static int s_parse_key(const char *key, int *tonic, int *minor)
{
    while (*key == ' ') key++;
    static const int base[7] = {9, 11, 0, 2, 4, 5, 7}; /* A..G */
    int c = toupper((unsigned char)*key);
    if (c < 'A' || c > 'G') return -1;
    int pc = base[c - 'A'];
    key++;
    if (*key == '#') { pc++; key++; }
    else if (*key == 'b') { pc--; key++; }
    while (*key == ' ') key++;
    *tonic = (pc + 12) % 12;
    *minor = -1;
    if (!*key) return 0;
    if (!strcasecmp(key, "minor") || !strcasecmp(key, "min") || !strcmp(key, "m") ||
        !strcasecmp(key, "aeolian"))
        *minor = 1;
    else if (!strcasecmp(key, "major") || !strcasecmp(key, "maj") || !strcasecmp(key, "ionian"))
        *minor = 0;
    return 0;
}

/* Mean valence / arousal of the spec's known emotion tags; a gentle, mildly positive
 * default when none is known. Returns how many tags were found. */
static int s_emotions(const char *list, double *valence, double *arousal)
{
    double v = 0.0, a = 0.0;
    int n = 0;
    char buf[sizeof ((mg_render_spec_t *)0)->emotions];
    mg_strlcpy(buf, list, sizeof buf);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        char *e = t + strlen(t);
        while (e > t && e[-1] == ' ') *--e = '\0';
        const mg_emotion_t *em = *t ? mg_emotion_find(t) : NULL;
        if (!em) continue;
        v += em->valence;
        a += em->arousal;
        n++;
    }
    *valence = n ? v / n : 0.3;
    *arousal = n ? a / n : 0.0;
    return n;
}

/* The instrument list may name the lead timbre; otherwise arousal and the seed do. */
static s_timbre_t s_pick_timbre(const char *instruments, double arousal, s_rng_t *rng)
{
    static const struct { const char *word; s_timbre_t t; } map[] = {
        {"piano", S_TIMBRE_EPIANO}, {"keys", S_TIMBRE_EPIANO},   {"rhodes", S_TIMBRE_EPIANO},
        {"bell", S_TIMBRE_BELL},    {"glock", S_TIMBRE_BELL},    {"celesta", S_TIMBRE_BELL},
        {"marimba", S_TIMBRE_BELL}, {"vibraphone", S_TIMBRE_BELL}, {"mallet", S_TIMBRE_BELL},
        {"flute", S_TIMBRE_LEAD},   {"lead", S_TIMBRE_LEAD},     {"synth", S_TIMBRE_LEAD},
        {"violin", S_TIMBRE_LEAD},  {"whistle", S_TIMBRE_LEAD},  {"guitar", S_TIMBRE_PLUCK},
        {"harp", S_TIMBRE_PLUCK},   {"pluck", S_TIMBRE_PLUCK},   {"koto", S_TIMBRE_PLUCK},
    };
    int pick = s_rng_int(rng, 2); /* drawn always, so the stream does not depend on the list */
    char low[512];
    size_t i = 0;
    for (; instruments[i] && i + 1 < sizeof low; i++)
        low[i] = (char)tolower((unsigned char)instruments[i]);
    low[i] = '\0';
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (strstr(low, map[k].word)) return map[k].t;
    if (arousal > 0.3) return pick ? S_TIMBRE_PLUCK : S_TIMBRE_LEAD;
    if (arousal < -0.2) return pick ? S_TIMBRE_BELL : S_TIMBRE_EPIANO;
    return pick ? S_TIMBRE_EPIANO : S_TIMBRE_PLUCK;
}

static void s_make_motif(s_motif_t *m, int density, s_rng_t *rng)
{
    /* Calm music draws from the sparse end of the rhythm table, busy music from all. */
    int nr = (int)(sizeof s_rhythms / sizeof s_rhythms[0]);
    int hi = density == 0 ? 5 : density == 1 ? 7 : nr;
    m->bar[0] = s_rhythms[s_rng_int(rng, hi)];
    m->bar[1] = s_endings[s_rng_int(rng, (int)(sizeof s_endings / sizeof s_endings[0]))];
    static const int steps[] = {-2, -1, -1, 0, 1, 1, 1, 2, 2, -3, 3};
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 6; i++) m->step[b][i] = steps[s_rng_int(rng, 11)];
}

static void s_plan(const mg_render_spec_t *spec, s_rng_t *rng, s_plan_t *p)
{
    memset(p, 0, sizeof *p);
    s_emotions(spec->emotions, &p->valence, &p->arousal);
    double jitter = s_rng_unit(rng) * 6.0 - 3.0;
    if (spec->tempo_bpm > 0)
        p->bpm = (int)lround(spec->tempo_bpm);
    else
        p->bpm = (int)lround(72.0 + (p->arousal + 1.0) * 0.5 * 60.0 + jitter);
    if (p->bpm < 20) p->bpm = 20; /* the job-file limits */
    if (p->bpm > 300) p->bpm = 300;

    static const int keys[] = {0, 2, 3, 4, 5, 7, 9, 10}; /* C D Eb E F G A Bb */
    int tonic = keys[s_rng_int(rng, 8)];
    double coin = s_rng_unit(rng);
    int minor = p->valence < -0.1 ? 1 : p->valence > 0.1 ? 0 : coin < 0.5;
    int kt, km;
    if (spec->key[0] && s_parse_key(spec->key, &kt, &km) == 0) {
        tonic = kt;
        if (km >= 0) minor = km;
    }
    p->tonic = tonic;
    p->minor = minor;
    snprintf(p->key_name, sizeof p->key_name, "%s %s", s_note_names[tonic],
             minor ? "minor" : "major");

    p->prog = s_rng_int(rng, 6);
    const int *pr = minor ? s_prog_minor[p->prog] : s_prog_major[p->prog];
    const char *const *roman = minor ? s_roman_minor : s_roman_major;
    snprintf(p->progression, sizeof p->progression, "%s-%s-%s-%s", roman[pr[0]], roman[pr[1]],
             roman[pr[2]], roman[pr[3]]);

    p->density = p->arousal < -0.25 ? 0 : p->arousal < 0.35 ? 1 : 2;
    p->timbre = s_pick_timbre(spec->instruments, p->arousal, rng);
    s_make_motif(&p->motif[0], p->density, rng);
    s_make_motif(&p->motif[1], p->density, rng);
}

/* MIDI note of scale index idx (7 per octave) above the tonic at MIDI `base`. Over the
 * major V of a minor key (chord_degree 4) the seventh is raised to match the chord. */
static int s_scale_midi(const s_plan_t *p, int base, int idx, int chord_degree)
{
    const int *sc = p->minor ? s_minor : s_major;
    int oct = idx >= 0 ? idx / 7 : -((-idx + 6) / 7);
    int deg = idx - oct * 7;
    int raise = p->minor && chord_degree == 4 && deg == 6;
    return base + 12 * oct + sc[deg] + raise;
}

static double s_midi_hz(double m) { return 440.0 * pow(2.0, (m - 69.0) / 12.0); }

/* The three MIDI pitch classes (relative to tonic, 0..11) of the chord on degree d. */
static void s_chord_pcs(const s_plan_t *p, int d, int pcs[3])
{
    const int *sc = p->minor ? s_minor : s_major;
    for (int k = 0; k < 3; k++) pcs[k] = sc[(d + 2 * k) % 7];
    if (p->minor && d == 4) pcs[1] = (pcs[1] + 1) % 12; /* major V */
}

/* ---- synthesis --------------------------------------------------------------------- */

typedef struct {
    const mg_render_spec_t *spec;
    s_plan_t plan;
    s_rng_t rng;       /* musical choices made while rendering (voicings, accents) */
    s_rng_t noise;     /* drum noise */
    float *stem[S_NSTEMS];
    size_t frames;
    double bar_s, beat_s;
    int n_bars, final_bar, intro_bars;
    int mel_idx;       /* melody scale index carried from note to note */
    int voicing[3];    /* last chord voicing (MIDI), for voice leading */
    float sine[S_TAB + 1];
    float pad[S_TAB + 1];
} s_synth_t;

static inline float s_tab(const float *t, double phase)
{
    double x = (phase - floor(phase)) * S_TAB;
    int i = (int)x;
    float f = (float)(x - i);
    return t[i] + f * (t[i + 1] - t[i]);
}

typedef struct { float a, d, s, r; } s_adsr_t; /* seconds, level, seconds */

/* Envelope at t seconds after note-on for a note held `gate` seconds. */
static inline float s_adsr(const s_adsr_t *e, float t, float gate)
{
    float lv;
    float tt = t < gate ? t : gate;
    if (tt < e->a) lv = tt / e->a;
    else if (tt < e->a + e->d) lv = 1.0f - (1.0f - e->s) * (tt - e->a) / e->d;
    else lv = e->s;
    if (t >= gate) {
        float k = 1.0f - (t - gate) / e->r;
        lv *= k > 0.0f ? k * k : 0.0f;
    }
    return lv;
}

/* Sample range [start, end) of a note starting at t0 seconds, held gate seconds, with a
 * release tail; clipped to the stem. Returns 0 when nothing is audible. */
static int s_span(const s_synth_t *s, double t0, double gate, double tail, size_t *a, size_t *b)
{
    double st = t0 * S_RATE, en = (t0 + gate + tail) * S_RATE;
    if (st >= (double)s->frames) return 0;
    *a = (size_t)st;
    *b = en > (double)s->frames ? s->frames : (size_t)en;
    return *b > *a;
}

static void s_note_melody(s_synth_t *s, double t0, double gate, int midi, float vel)
{
    static const s_adsr_t env[] = {
        {0.004f, 0.60f, 0.35f, 0.30f}, /* epiano */
        {0.002f, 0.90f, 0.15f, 0.60f}, /* bell */
        {0.045f, 0.20f, 0.80f, 0.18f}, /* lead */
        {0.002f, 0.35f, 0.25f, 0.20f}, /* pluck */
    };
    const s_adsr_t *e = &env[s->plan.timbre];
    size_t a, b;
    if (!s_span(s, t0, gate, e->r, &a, &b)) return;
    double f = s_midi_hz(midi), dt = 1.0 / S_RATE;
    double ph = 0.0, phm = 0.0;
    float *out = s->stem[S_MELODY];
    for (size_t i = a; i < b; i++) {
        float t = (float)((double)(i - a) * dt);
        float env_v = s_adsr(e, t, (float)gate) * vel, y;
        switch (s->plan.timbre) {
        case S_TIMBRE_EPIANO: { /* FM 1:1, index falling: bright attack, mellow body */
            float idx = 1.6f * expf(-t * 4.0f) + 0.25f;
            y = s_tab(s->sine, ph + idx / (2.0 * M_PI) * s_tab(s->sine, ph)) +
                0.12f * s_tab(s->sine, ph * 4.0) * expf(-t * 9.0f);
            ph += f * dt;
            break;
        }
        case S_TIMBRE_BELL: { /* FM 1:3.5, inharmonic partials fading fast */
            float idx = 2.2f * expf(-t * 5.0f) + 0.1f;
            y = s_tab(s->sine, ph + idx / (2.0 * M_PI) * s_tab(s->sine, phm));
            ph += f * dt;
            phm += 3.5 * f * dt;
            break;
        }
        case S_TIMBRE_LEAD: { /* three harmonics with delayed vibrato */
            float vib = 1.0f + 0.0045f * s_tab(s->sine, t * 5.3) * (t < 0.35f ? t / 0.35f : 1.0f);
            y = s_tab(s->sine, ph) + 0.28f * s_tab(s->sine, 2.0 * ph) + 0.10f * s_tab(s->sine, 3.0 * ph);
            ph += f * vib * dt;
            break;
        }
        default: { /* pluck: upper harmonics die first */
            y = 0.0f;
            for (int k = 1; k <= 6; k++)
                y += s_tab(s->sine, k * ph) * expf(-t * (1.5f + 2.2f * k)) / (float)k;
            ph += f * dt;
            break;
        }
        }
        out[i] += 0.45f * env_v * y;
    }
}

static void s_note_pad(s_synth_t *s, double t0, double gate, int midi, float vel, int stab)
{
    static const s_adsr_t pad = {0.25f, 0.6f, 0.75f, 0.45f};
    static const s_adsr_t stb = {0.006f, 0.25f, 0.35f, 0.15f};
    const s_adsr_t *e = stab ? &stb : &pad;
    size_t a, b;
    if (!s_span(s, t0, gate, e->r, &a, &b)) return;
    double f = s_midi_hz(midi), dt = 1.0 / S_RATE;
    /* two oscillators 5 cents apart: slow beating, a chorus-like width */
    double f1 = f * 1.0028922, f2 = f / 1.0028922;
    double p1 = s_rng_unit(&s->rng), p2 = s_rng_unit(&s->rng);
    float *out = s->stem[S_CHORDS];
    for (size_t i = a; i < b; i++) {
        float t = (float)((double)(i - a) * dt);
        float y = s_tab(s->pad, p1) + s_tab(s->pad, p2);
        out[i] += 0.16f * vel * s_adsr(e, t, (float)gate) * y;
        p1 += f1 * dt;
        p2 += f2 * dt;
    }
}

static void s_note_bass(s_synth_t *s, double t0, double gate, int midi, float vel)
{
    static const s_adsr_t e = {0.005f, 0.30f, 0.65f, 0.08f};
    size_t a, b;
    if (!s_span(s, t0, gate, e.r, &a, &b)) return;
    double f = s_midi_hz(midi), dt = 1.0 / S_RATE, ph = 0.0;
    float *out = s->stem[S_BASS];
    for (size_t i = a; i < b; i++) {
        float t = (float)((double)(i - a) * dt);
        float idx = 0.9f * expf(-t * 12.0f) + 0.15f;
        float y = s_tab(s->sine, ph + idx / (2.0 * M_PI) * s_tab(s->sine, ph)) +
                  0.25f * s_tab(s->sine, 2.0 * ph);
        out[i] += 0.55f * vel * s_adsr(&e, t, (float)gate) * y;
        ph += f * dt;
    }
}

typedef enum { S_KICK, S_SNARE, S_HAT, S_OPEN_HAT, S_CRASH } s_drum_t;

static void s_drum(s_synth_t *s, double t0, s_drum_t kind, float vel)
{
    static const float len_s[] = {0.40f, 0.28f, 0.07f, 0.35f, 1.6f};
    size_t a, b;
    if (!s_span(s, t0, len_s[kind], 0.0, &a, &b)) return;
    float *out = s->stem[S_DRUMS];
    double dt = 1.0 / S_RATE, ph = 0.0;
    float prev = 0.0f;
    for (size_t i = a; i < b; i++) {
        float t = (float)((double)(i - a) * dt), y;
        switch (kind) {
        case S_KICK: { /* sine with a falling pitch, a short click on top */
            double f = 46.0 + 95.0 * exp(-t / 0.035);
            y = 0.95f * s_tab(s->sine, ph) * expf(-t / 0.16f);
            if (t < 0.002f) y += 0.2f * s_rng_noise(&s->noise);
            ph += f * dt;
            break;
        }
        case S_SNARE: {
            float n = s_rng_noise(&s->noise);
            float hp = n - prev; /* first difference: brighter noise */
            prev = n;
            y = 0.45f * hp * expf(-t / 0.07f) + 0.45f * s_tab(s->sine, ph) * expf(-t / 0.045f);
            ph += 185.0 * dt;
            break;
        }
        default: { /* hats and crash: differenced noise, different decays */
            float n = s_rng_noise(&s->noise);
            float hp = n - prev;
            prev = n;
            float tau = kind == S_HAT ? 0.022f : kind == S_OPEN_HAT ? 0.11f : 0.55f;
            float g = kind == S_CRASH ? 0.22f : 0.20f;
            y = g * hp * expf(-t / tau);
            break;
        }
        }
        /* 1 ms fade at the cut so a truncated tail does not click */
        float cut = (float)(b - i) / (0.001f * S_RATE);
        out[i] += vel * y * (cut < 1.0f ? cut : 1.0f);
    }
}

/* ---- the arrangement, bar by bar ----------------------------------------------------- */

static int s_bar_degree(const s_synth_t *s, int bar)
{
    if (bar >= s->final_bar) return 0;
    if (bar == s->final_bar - 1 && s->n_bars >= 4) return 4; /* V - I cadence */
    const int *pr = s->plan.minor ? s_prog_minor[s->plan.prog] : s_prog_major[s->plan.prog];
    return pr[bar % 4];
}

/* Seconds from t0 to the end of the piece. */
static double s_to_end(const s_synth_t *s, double t0) { return s->spec->duration_s - t0; }

/* Nearest chord tone (as a scale index) to idx. */
static int s_snap_chord(int idx, int degree)
{
    int best = idx, bd = 99;
    for (int cand = idx - 3; cand <= idx + 3; cand++) {
        int deg = ((cand % 7) + 7) % 7;
        int rel = ((deg - degree) % 7 + 7) % 7;
        if (rel != 0 && rel != 2 && rel != 4) continue;
        int d = abs(cand - idx);
        if (d < bd) { bd = d; best = cand; }
    }
    return best;
}

static void s_bar_melody(s_synth_t *s, int bar, double t0, int degree, int tonic_midi)
{
    const s_plan_t *p = &s->plan;
    const int lo = 3, hi = 13; /* scale indices above tonic_midi: roughly a tenth */
    if (bar < s->intro_bars) return;
    if (bar >= s->final_bar) { /* last note: the tonic, held to the end */
        if (bar == s->final_bar)
            s_note_melody(s, t0, s_to_end(s, t0), s_scale_midi(p, tonic_midi, 7, 0), 0.9f);
        return;
    }
    int rel = bar - s->intro_bars;
    int section = rel / 8, in_phrase = rel % 4;
    const s_motif_t *m = &p->motif[section % 2];
    int half = in_phrase % 2;              /* bar 0 or 1 of the motif */
    const s_rhythm_t *rh = &m->bar[half];
    if (in_phrase == 0) /* each phrase starts on a chord tone near the middle */
        s->mel_idx = s_snap_chord(7 + s_rng_int(&s->rng, 3) - 1, degree);
    double eighth = s->beat_s / 2.0;
    for (int k = 0; k < rh->n; k++) {
        int idx = s->mel_idx;
        if (!(in_phrase == 0 && k == 0)) idx += m->step[half][k] * (in_phrase >= 2 && half ? -1 : 1);
        if (idx > hi) idx -= 3;
        if (idx < lo) idx += 3;
        int onset = rh->h[k].onset;
        if (onset == 0 || onset == 4) idx = s_snap_chord(idx, degree);
        /* the phrase's last note resolves to the chord root */
        if (in_phrase == 3 && k == rh->n - 1) {
            int root = degree;
            while (root + 7 <= idx + 3) root += 7;
            while (root > idx + 3) root -= 7;
            idx = root < lo ? root + 7 : root;
        }
        s->mel_idx = idx;
        double st = t0 + onset * eighth;
        double gate = rh->h[k].len * eighth * 0.92;
        float vel = (onset % 4 == 0 ? 0.95f : 0.78f) + 0.08f * (float)s_rng_unit(&s->rng);
        s_note_melody(s, st, gate, s_scale_midi(p, tonic_midi, idx, degree), vel);
    }
}

/* Voices the chord near the previous voicing (smallest total movement). */
static void s_voice(s_synth_t *s, int degree, int tonic_midi, int out[3])
{
    int pcs[3];
    s_chord_pcs(&s->plan, degree, pcs);
    int best[3] = {0}, bestd = 1 << 30;
    for (int inv = 0; inv < 3; inv++) {
        for (int base = 52; base <= 64; base++) {
            int v[3], ok = 1;
            int bottom = (tonic_midi + pcs[inv]) % 12;
            if ((base % 12) != bottom) continue;
            v[0] = base;
            for (int k = 1; k < 3; k++) {
                int pc = (tonic_midi + pcs[(inv + k) % 3]) % 12;
                int n = v[k - 1] + 1;
                while (n % 12 != pc) n++;
                v[k] = n;
            }
            if (v[2] > 76) ok = 0;
            if (!ok) continue;
            int d = abs(v[0] - s->voicing[0]) + abs(v[1] - s->voicing[1]) + abs(v[2] - s->voicing[2]);
            if (d < bestd) {
                bestd = d;
                memcpy(best, v, sizeof best);
            }
        }
    }
    memcpy(out, best, sizeof best);
    memcpy(s->voicing, best, sizeof best);
}

static void s_bar_chords(s_synth_t *s, int bar, double t0, int degree, int tonic_midi)
{
    if (bar > s->final_bar) return;
    int v[3];
    s_voice(s, degree, tonic_midi, v);
    if (bar == s->final_bar) {
        for (int k = 0; k < 3; k++) s_note_pad(s, t0, s_to_end(s, t0), v[k], 0.9f, 0);
        return;
    }
    switch (s->plan.density) {
    case 0: /* one sustained pad per bar */
        for (int k = 0; k < 3; k++) s_note_pad(s, t0, s->bar_s * 0.98, v[k], 0.9f, 0);
        break;
    case 1: /* two half-note swells */
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 3; k++)
                s_note_pad(s, t0 + h * 2 * s->beat_s, 2 * s->beat_s * 0.95, v[k], h ? 0.75f : 0.9f, 0);
        break;
    default: { /* syncopated stabs: 1, 2-and, 4 */
        static const double at[] = {0.0, 1.5, 3.0};
        for (int h = 0; h < 3; h++)
            for (int k = 0; k < 3; k++)
                s_note_pad(s, t0 + at[h] * s->beat_s, 0.6 * s->beat_s, v[k], h ? 0.8f : 1.0f, 1);
        break;
    }
    }
}

static void s_bar_bass(s_synth_t *s, int bar, double t0, int degree, int tonic_midi)
{
    if (bar > s->final_bar) return;
    const s_plan_t *p = &s->plan;
    int pcs[3];
    s_chord_pcs(p, degree, pcs);
    int root = tonic_midi - 24 + pcs[0];
    if (root < 33) root += 12;
    int fifth = root + 7;
    if (bar == s->final_bar) {
        s_note_bass(s, t0, s_to_end(s, t0), root, 1.0f);
        return;
    }
    double q = s->beat_s;
    switch (p->density) {
    case 0:
        s_note_bass(s, t0, 4 * q * 0.95, root, 0.95f);
        break;
    case 1:
        s_note_bass(s, t0, 2 * q * 0.9, root, 1.0f);
        s_note_bass(s, t0 + 2 * q, 1.5 * q * 0.9, fifth, 0.85f);
        s_note_bass(s, t0 + 3.5 * q, 0.5 * q * 0.9, root + 12, 0.75f);
        break;
    default: /* eighth-note drive, a fifth and an octave for motion */
        for (int e = 0; e < 8; e++) {
            int n = e == 6 ? fifth : e == 7 ? root + 12 : root;
            s_note_bass(s, t0 + e * q / 2, q / 2 * 0.8, n, e % 2 ? 0.72f : 0.95f);
        }
        break;
    }
}

static void s_bar_drums(s_synth_t *s, int bar, double t0)
{
    if (bar > s->final_bar) return;
    double q = s->beat_s, e = q / 2;
    if (bar == s->final_bar) {
        s_drum(s, t0, S_KICK, 0.9f);
        s_drum(s, t0, S_CRASH, 0.8f);
        return;
    }
    if (bar < s->intro_bars) { /* intro: just a soft pulse */
        for (int b = 0; b < 4; b++) s_drum(s, t0 + b * q, S_HAT, 0.5f);
        return;
    }
    int fill = ((bar - s->intro_bars) % 8 == 7) && bar + 1 < s->final_bar;
    switch (s->plan.density) {
    case 0:
        s_drum(s, t0, S_KICK, 0.8f);
        s_drum(s, t0 + 2 * q, S_SNARE, 0.45f);
        for (int b = 0; b < 4; b++) s_drum(s, t0 + b * q, S_HAT, b % 2 ? 0.45f : 0.6f);
        break;
    default:
        s_drum(s, t0, S_KICK, 1.0f);
        s_drum(s, t0 + 2 * q, S_KICK, 0.9f);
        if (s->plan.density == 2) s_drum(s, t0 + 2.5 * q, S_KICK, 0.7f);
        s_drum(s, t0 + q, S_SNARE, 0.8f);
        if (!fill) s_drum(s, t0 + 3 * q, S_SNARE, 0.8f);
        for (int k = 0; k < 8; k++) {
            if (fill && k >= 6) continue;
            int open = s->plan.density == 2 && k == 7;
            float v = (k % 2 ? 0.5f : 0.75f) + 0.1f * (float)s_rng_unit(&s->rng);
            s_drum(s, t0 + k * e, open ? S_OPEN_HAT : S_HAT, v);
        }
        if (fill) {
            s_drum(s, t0 + 3 * q, S_SNARE, 0.6f);
            s_drum(s, t0 + 3 * q + e, S_SNARE, 0.75f);
            s_drum(s, t0 + 3 * q + 1.5 * e, S_SNARE, 0.9f);
        }
        break;
    }
}

/* Small Schroeder reverb (4 combs, 2 allpasses), mixed in place: it glues the dry notes
 * into a room. Delay lengths are Freeverb's, scaled to 24 kHz. 0, or -1 on OOM. */
static int s_reverb(float *x, size_t n, float wet)
{
    static const int comb_len[4] = {607, 647, 695, 738}, ap_len[2] = {303, 240};
    float *mem = calloc(607 + 647 + 695 + 738 + 303 + 240, sizeof *mem);
    if (!mem) return -1;
    float *comb[4], *ap[2], lp[4] = {0};
    int ci[4] = {0}, ai[2] = {0};
    float *m = mem;
    for (int k = 0; k < 4; k++) { comb[k] = m; m += comb_len[k]; }
    for (int k = 0; k < 2; k++) { ap[k] = m; m += ap_len[k]; }
    const float fb = 0.80f, damp = 0.30f;
    for (size_t i = 0; i < n; i++) {
        float in = x[i] * 0.25f, y = 0.0f;
        for (int k = 0; k < 4; k++) {
            float o = comb[k][ci[k]];
            lp[k] = o * (1.0f - damp) + lp[k] * damp;
            comb[k][ci[k]] = in + lp[k] * fb;
            if (++ci[k] == comb_len[k]) ci[k] = 0;
            y += o;
        }
        for (int k = 0; k < 2; k++) {
            float b = ap[k][ai[k]];
            ap[k][ai[k]] = y + b * 0.5f;
            y = b - y;
            if (++ai[k] == ap_len[k]) ai[k] = 0;
        }
        x[i] = x[i] * (1.0f - 0.5f * wet) + y * wet;
    }
    free(mem);
    return 0;
}

/* Fade in 5 ms (no click at the start), fade out over the last fade_s (raised cosine). */
static void s_fades(float *x, size_t n, double fade_s)
{
    size_t fi = (size_t)(0.005 * S_RATE), fo = (size_t)(fade_s * S_RATE);
    if (fi > n) fi = n;
    if (fo > n) fo = n;
    for (size_t i = 0; i < fi; i++) x[i] *= (float)i / (float)fi;
    for (size_t i = 0; i < fo; i++) {
        double g = 0.5 * (1.0 + cos(M_PI * (double)(i + 1) / (double)fo));
        x[n - fo + i] *= (float)g;
    }
}

static void s_wavetables(s_synth_t *s)
{
    for (int i = 0; i <= S_TAB; i++) s->sine[i] = (float)sin(2.0 * M_PI * i / S_TAB);
    /* pad: six harmonics rolling off as k^-1.4, normalised to peak 1 */
    float peak = 0.0f;
    for (int i = 0; i <= S_TAB; i++) {
        double v = 0.0;
        for (int k = 1; k <= 6; k++) v += pow(k, -1.4) * sin(2.0 * M_PI * k * i / S_TAB);
        s->pad[i] = (float)v;
        if (fabsf(s->pad[i]) > peak) peak = fabsf(s->pad[i]);
    }
    for (int i = 0; i <= S_TAB; i++) s->pad[i] /= peak;
}

static int s_render(const mg_render_spec_t *spec, mg_progress_fn progress, void *progress_ctx,
                    mg_audio_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!(spec->duration_s > 0.0) || spec->duration_s > MG_MAX_DURATION_S) {
        snprintf(err, errlen, "synth: duration %.3f s out of range (0, %.0f]", spec->duration_s,
                 MG_MAX_DURATION_S);
        return MG_RENDER_ERR_PERMANENT;
    }
    s_synth_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "synth: out of memory");
        return MG_RENDER_ERR_RETRYABLE;
    }
    int rc = MG_RENDER_ERR_RETRYABLE;
    s->spec = spec;
    s->frames = (size_t)llround(spec->duration_s * S_RATE);
    if (s->frames == 0) s->frames = 1;
    s_rng_t plan_rng = {spec->seed ^ 0x6D672D706C616E00ull}; /* "mg-plan" */
    s->rng.s = spec->seed ^ 0x6D672D706C617900ull;            /* "mg-play" */
    s->noise.s = spec->seed ^ 0x6D672D6E6F697365ull;          /* "mg-noise" */
    s_plan(spec, &plan_rng, &s->plan);
    s_wavetables(s);
    for (int k = 0; k < S_NSTEMS; k++) {
        s->stem[k] = calloc(s->frames, sizeof(float));
        if (!s->stem[k]) {
            snprintf(err, errlen, "synth: out of memory for %zu samples", s->frames);
            goto done;
        }
    }
    s->beat_s = 60.0 / s->plan.bpm;
    s->bar_s = 4.0 * s->beat_s;
    s->n_bars = (int)ceil(spec->duration_s / s->bar_s - 1e-9);
    if (s->n_bars < 1) s->n_bars = 1;
    /* The closing tonic goes on the last bar, or on the one before when the last would be
     * cut to under half a bar; it rings to the end under the fade. */
    double rem = spec->duration_s - (s->n_bars - 1) * s->bar_s;
    s->final_bar = (rem < 0.5 * s->bar_s && s->n_bars >= 2) ? s->n_bars - 2 : s->n_bars - 1;
    s->intro_bars = s->n_bars >= 8 ? 2 : 0;
    s->voicing[0] = 60;
    s->voicing[1] = 64;
    s->voicing[2] = 67;
    int tonic_midi = 60 + s->plan.tonic;
    if (tonic_midi > 66) tonic_midi -= 12;

    for (int bar = 0; bar <= s->final_bar; bar++) {
        double t0 = bar * s->bar_s;
        int degree = s_bar_degree(s, bar);
        s_bar_melody(s, bar, t0, degree, tonic_midi);
        s_bar_chords(s, bar, t0, degree, tonic_midi);
        s_bar_bass(s, bar, t0, degree, tonic_midi);
        s_bar_drums(s, bar, t0);
        if (progress && progress(progress_ctx, 0.9 * (bar + 1) / (s->final_bar + 1)) != 0) {
            snprintf(err, errlen, "synth: cancelled at bar %d of %d", bar + 1, s->final_bar + 1);
            rc = MG_RENDER_ERR_CANCELLED;
            goto done;
        }
    }
    if (s_reverb(s->stem[S_MELODY], s->frames, 0.30f) != 0 ||
        s_reverb(s->stem[S_CHORDS], s->frames, 0.35f) != 0) {
        snprintf(err, errlen, "synth: out of memory in the reverb");
        goto done;
    }
    double fade = spec->duration_s * 0.25 < 2.0 ? spec->duration_s * 0.25 : 2.0;
    for (int k = 0; k < S_NSTEMS; k++) {
        s_fades(s->stem[k], s->frames, fade);
        /* Every stem leaves at the same RMS, so the balance is the stem gains alone
         * whatever the timbre or pattern density; then a guard keeps the peak under
         * full scale (drums, being peaky, usually end up quieter than S_STEM_RMS). */
        float *x = s->stem[k];
        double ms = 0.0;
        float peak = 0.0f;
        for (size_t i = 0; i < s->frames; i++) {
            ms += (double)x[i] * x[i];
            if (fabsf(x[i]) > peak) peak = fabsf(x[i]);
        }
        if (peak == 0.0f) continue;
        double g = S_STEM_RMS / sqrt(ms / (double)s->frames);
        if (g * peak > 0.95) g = 0.95 / peak;
        for (size_t i = 0; i < s->frames; i++) x[i] *= (float)g;
    }
    if (progress && progress(progress_ctx, 1.0) != 0) {
        snprintf(err, errlen, "synth: cancelled after the last bar");
        rc = MG_RENDER_ERR_CANCELLED;
        goto done;
    }

    out->stems = calloc(S_NSTEMS, sizeof *out->stems);
    char json[512];
    int jl = snprintf(json, sizeof json,
                      "{\"tempo_bpm\":%d,\"mode\":\"%s\",\"key\":\"%s\",\"valence\":%.3f,"
                      "\"arousal\":%.3f,\"progression\":\"%s\",\"lead\":\"%s\",\"bars\":%d,"
                      "\"renderer\":\"synth\"}",
                      s->plan.bpm, s->plan.minor ? "minor" : "major", s->plan.key_name,
                      s->plan.valence, s->plan.arousal, s->plan.progression,
                      s_timbre_names[s->plan.timbre], s->final_bar + 1);
    out->decision_json = (jl > 0 && (size_t)jl < sizeof json) ? strdup(json) : NULL;
    if (!out->stems || !out->decision_json) {
        free(out->stems);
        free(out->decision_json);
        memset(out, 0, sizeof *out);
        snprintf(err, errlen, "synth: out of memory");
        goto done;
    }
    out->sample_rate = S_RATE;
    out->frames = s->frames;
    out->n_stems = S_NSTEMS;
    for (int k = 0; k < S_NSTEMS; k++) {
        mg_stem_t *st = &out->stems[k];
        mg_strlcpy(st->name, s_stem_names[k], sizeof st->name);
        st->samples = s->stem[k];
        st->gain = s_stem_gain[k];
        st->pan = s_stem_pan[k];
        s->stem[k] = NULL;
    }
    rc = MG_RENDER_OK;
done:
    for (int k = 0; k < S_NSTEMS; k++) free(s->stem[k]);
    free(s);
    return rc;
}

static mg_renderer_t s_synth = {
    .name = "synth",
    .backend = "cpu",
    .device = "cpu",
    .model_name = "mg-sketch-synth",
    .model_version = "0.1",
    .model_license = "Apache-2.0",
    .attribution = "no training data: procedural synthesis (interim renderer until the neural model)",
    .render = s_render,
};
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_init(void)
{
    static const char id[] = "mg-sketch-synth 0.1";
    mg_sha256_hex(id, sizeof id - 1, s_synth.model_sha256);
}

const mg_renderer_t *mg_renderer_synth(void)
{
    pthread_once(&s_once, s_init);
    return &s_synth;
}
