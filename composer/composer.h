/* composer.h - the composer: a render spec (prompt, emotion tags, overrides, seed) in, a
 * structured score out (tempo map, key, sections, stems of note events), plus its decision
 * record (JSON) and a Standard MIDI File. The worker's renderer plays the score; docs/composer.md.
 *
 * Determinism: the same (spec, seed, MG_COMPOSER_VERSION) gives the same score, record and
 * MIDI bytes on every machine. Every musical decision is made in integer arithmetic from an
 * integer PRNG (xoshiro256** seeded by splitmix64); the doubles below are derived views
 * (seconds, BPM) computed from integers by single correctly-rounded operations.
 *
 * Time: ticks at MG_SCORE_PPQ per quarter note; one "beat" is a quarter note in every time
 * signature the composer writes (4/4 and 3/4). The tempo map is per beat, so seconds come
 * from integer microseconds: total duration is spec->duration_s to the microsecond, except for
 * a loop (spec->loop), whose length is rounded to whole bars at one tempo.
 */
#ifndef MG_COMPOSER_H
#define MG_COMPOSER_H

#include <stddef.h>
#include <stdint.h>

#include "../common/renderspec.h"

/* Bump on any change that alters a score for an existing spec (provenance depends on it). */
#define MG_COMPOSER_VERSION "1.1.0" /* 1.1.0: loops are whole bars at one tempo */
#define MG_SCORE_PPQ 480

typedef enum { MG_MODE_MAJOR = 0, MG_MODE_MINOR = 1 } mg_mode_t;

/* Stem families the neural renderer supports (docs/composer.md lists the GM programs). */
typedef enum {
    MG_FAMILY_PIANO, MG_FAMILY_STRINGS, MG_FAMILY_GUITAR, MG_FAMILY_BASS,
    MG_FAMILY_LEAD, MG_FAMILY_PAD, MG_FAMILY_DRUMS, MG_FAMILY_COUNT
} mg_family_t;

typedef struct {
    int64_t start_tick, duration_tick; /* duration_tick >= 1; start + duration <= total_ticks */
    double start_s, duration_s;        /* from the tempo map (integer microseconds / 1e6) */
    int pitch;                         /* MIDI 0..127; drums: GM percussion key (36 kick, ...) */
    int velocity;                      /* 1..127 */
} mg_score_note_t;

typedef struct {
    char name[16];          /* "melody", "chords", "pad", "bass", "drums" */
    char instrument[40];    /* GM name: "Acoustic Guitar (steel)", "Standard Kit", ... */
    mg_family_t family;
    int program;            /* GM program 0..127; drums: kit number (GS bank 128 preset) */
    int is_drum;
    int channel;            /* 0-based MIDI channel; drums always 9 (channel 10) */
    double gain;            /* linear mix gain 0..1 (MIDI CC7 = gain * 127) */
    double pan;             /* -1 left .. +1 right (MIDI CC10) */
    mg_score_note_t *notes; /* n_notes, sorted by start_tick, then pitch */
    int n_notes;
} mg_score_stem_t;

typedef struct {
    int64_t tick;           /* where this tempo starts (always a beat boundary) */
    int64_t us;             /* microseconds from the start at tick */
    int32_t us_per_quarter;
    double bpm;             /* 60e6 / us_per_quarter */
} mg_score_tempo_t;

typedef struct {
    int64_t tick;
    int bar;                /* 0-based bar where it starts */
    int numerator, denominator;
} mg_score_timesig_t;

typedef struct {
    char name[16];          /* "intro", "build", "main", "bridge", "outro", "sting", "loop" */
    int start_beat, n_beats;
    int start_bar, n_bars;
    int64_t start_tick;
    double start_s, duration_s;
    double intensity;       /* 0..1: how much plays and how loud (the intensity curve) */
} mg_score_section_t;

/* The emotion-derived musical cues, normalised to 0..1, for the renderer's conditioning.
 * docs/composer.md gives each one's mapping and sources. */
typedef struct {
    double loudness;        /* soft .. loud */
    double loudness_variation;
    double articulation;    /* 0 staccato .. 1 legato */
    double register_;       /* low .. high melody register */
    double tension;         /* consonant .. dissonant harmony */
    double density;         /* sparse .. busy rhythm */
    double brightness;      /* dark/warm .. bright timbre */
} mg_score_cues_t;

typedef struct mg_comp mg_comp_t; /* private: the decisions and their reasons */

typedef struct {
    char composer_version[16];
    uint64_t seed;
    int ppq;                       /* MG_SCORE_PPQ */
    double duration_s;             /* == spec->duration_s (a loop: its whole bars, see loop) */
    int64_t duration_us;           /* llround(duration_s * 1e6) == time at total_ticks */
    int64_t total_ticks;           /* n_beats * ppq */
    int n_beats, n_bars;
    double tempo_bpm;              /* the main tempo (the tempo map may ease it at the end) */
    mg_score_tempo_t *tempo;       /* n_tempo >= 1, tempo[0].tick == 0 */
    int n_tempo;
    int beats_per_bar;             /* main time signature: beats_per_bar / 4 */
    mg_score_timesig_t *timesig;   /* n_timesig >= 1 (a short final bar adds one) */
    int n_timesig;
    int tonic;                     /* pitch class, 0 = C */
    mg_mode_t mode;
    char key[16];                  /* "D major", "Bb minor" */
    char style[16];                /* "pop", "folk", "cinematic", ... */
    double valence, arousal;       /* the blended circumplex position, -1..1 */
    mg_score_cues_t cues;
    mg_score_section_t *sections;  /* n_sections >= 1, contiguous, covering every beat */
    int n_sections;
    mg_score_stem_t *stems;        /* n_stems >= 1 */
    int n_stems;
    /* A seamless loop (spec->loop == 1): the length asked for is rounded to loop_bars whole
     * bars at one tempo (tempo_bpm), and duration_s / duration_us are that rounded length. */
    int loop;
    double loop_requested_s;       /* spec->duration_s */
    int loop_bars;                 /* == n_bars */
    mg_comp_t *priv;
} mg_score_t;

/* Composes spec into a new score the caller owns (free with mg_score_free). Unknown prompt
 * words, unknown emotion tags, instruments or stems are ignored and listed in the decision
 * record, never fatal. Returns NULL with a message in err only when the spec itself is
 * unusable (duration out of range) or memory runs out. */
mg_score_t *mg_compose(const mg_render_spec_t *spec, char *err, size_t errlen);

/* Frees the score and sets *score_p to NULL. NULL-safe. */
void mg_score_free(mg_score_t **score_p);

/* The decision record: every derived parameter with the reason for it, as one JSON object
 * (docs/composer.md). Locale-independent, deterministic. Caller frees; NULL on OOM. */
char *mg_score_decision_json(const mg_score_t *score);

/* Standard MIDI File, format 1: track 0 holds tempo, time signatures, key signature and
 * section markers; then one track per stem (name, program, volume, pan, notes); drums on
 * channel 10. *buf is malloc'd, the caller frees it. 0, or -1 on OOM. */
int mg_score_write_midi(const mg_score_t *score, unsigned char **buf, size_t *len);

/* The tick -> microseconds map of a score (exact integers). */
int64_t mg_score_tick_us(const mg_score_t *score, int64_t tick);

/* Family name ("piano", ...) or "?". Static. */
const char *mg_family_name(mg_family_t f);

#endif
