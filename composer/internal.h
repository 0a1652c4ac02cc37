/* internal.h - what the composer's files share and nobody else sees: the integer PRNG, the
 * decision state (struct mg_comp), the prompt vocabulary, the instrument and style tables,
 * chords, and the per-part generators. Flow: compose.c calls decide.c (interpretation,
 * emotion cues, form, tempo map, harmony, instruments), then parts.c (notes), then
 * record.c / midi.c serialise. All values are integers; "milli" means 1000 = 1.0.
 */
#ifndef MG_COMPOSER_INTERNAL_H
#define MG_COMPOSER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "../common/emotion.h"
#include "composer.h"

/* ---- deterministic randomness ----------------------------------------------------------- */

typedef struct { uint64_t s[4]; } mg_rng_t;

/* xoshiro256** seeded by splitmix64 from seed and a stream name, so each part of the score
 * draws from its own stream and a change in one part does not shift the others. */
void mg_rng_seed(mg_rng_t *r, uint64_t seed, const char *stream);
uint64_t mg_rng_next(mg_rng_t *r);
/* Uniform in [0, n) for n >= 1 (multiply-shift on the top 32 bits; n < 2^31). */
int mg_rng_below(mg_rng_t *r, int n);
/* Uniform in [lo, hi]. */
int mg_rng_range(mg_rng_t *r, int lo, int hi);
/* 1 with probability permille / 1000. */
int mg_rng_chance(mg_rng_t *r, int permille);

/* ---- vocabulary ---------------------------------------------------------------------------- */

typedef enum {
    MG_STYLE_POP, MG_STYLE_ROCK, MG_STYLE_FOLK, MG_STYLE_ELECTRONIC, MG_STYLE_AMBIENT,
    MG_STYLE_CINEMATIC, MG_STYLE_JAZZ, MG_STYLE_LOFI, MG_STYLE_BALLAD, MG_STYLE_COUNT
} mg_style_t;

typedef enum { MG_ROLE_MELODY, MG_ROLE_CHORDS, MG_ROLE_PAD, MG_ROLE_BASS, MG_ROLE_DRUMS, MG_ROLE_COUNT } mg_role_t;
#define MG_ROLE_BIT(r) (1u << (r))

/* Structure and texture flags from the prompt. */
enum {
    MG_F_BUILD = 1u << 0, MG_F_LOOP = 1u << 1, MG_F_STING = 1u << 2, MG_F_ENDING = 1u << 3,
    MG_F_FADE = 1u << 4, MG_F_INTRO = 1u << 5, MG_F_HOOK = 1u << 6, MG_F_CLIMAX = 1u << 7,
    MG_F_ARPEGGIO = 1u << 8, MG_F_STRUM = 1u << 9, MG_F_SOLO = 1u << 10, MG_F_WALTZ = 1u << 11,
};

/* Extra drum sounds an instrument asks for. */
enum {
    MG_DRUM_CLAPS = 1u << 0, MG_DRUM_SHAKER = 1u << 1, MG_DRUM_TAMBOURINE = 1u << 2, MG_DRUM_TOMS = 1u << 3,
    MG_DRUM_EXTRAS_ONLY = 1u << 8, /* only claps/shaker/... were asked for: no kit pattern */
};

typedef struct {
    const char *word;       /* as written in prompts and `instruments:` (lower case) */
    mg_family_t family;
    int program;            /* GM program, or -1: chosen from style and brightness */
    mg_role_t role;         /* the stem it prefers */
    unsigned roles;         /* MG_ROLE_BIT of the stems it can play */
    int octave;             /* melody register shift, octaves */
    unsigned drums;         /* MG_DRUM_* (drum entries) */
    const char *note;       /* substitution note when the renderer lacks the real thing */
} mg_instr_t;

/* Looks a (lower-case) phrase up; NULL when unknown. */
const mg_instr_t *mg_instr_find(const char *phrase);

typedef enum { MG_W_STYLE, MG_W_INSTR, MG_W_ENERGY, MG_W_STRUCT, MG_W_STOP } mg_wkind_t;

typedef struct {
    const char *word;
    mg_wkind_t kind;
    int arg;                /* style (MG_W_STYLE) or flags (MG_W_STRUCT) */
    int tempo_pct;          /* 0 = none, else a tempo multiplier in percent */
    int loud, bright, density; /* additive adjustments, milli */
    const char *effect;     /* for the record */
} mg_word_t;

/* Looks a phrase up in the prompt vocabulary (instruments are looked up separately). */
const mg_word_t *mg_word_find(const char *phrase);
const char *mg_style_name(mg_style_t s);
/* Stem names: canonical and aliases ("lead" -> melody). -1 when unknown. */
int mg_role_find(const char *name);
const char *mg_role_name(mg_role_t r);
/* GM name of a program in the supported list (drums: kit names), or NULL if unsupported. */
const char *mg_gm_name(mg_family_t family, int program);

/* The General MIDI programs the composer picks by name (numbers as GM counts them from 0);
 * vocab.c's table names every supported one. Drum kits are programs on channel 10. */
enum {
    MG_GM_GRAND_PIANO = 0, MG_GM_BRIGHT_PIANO = 1, MG_GM_ELECTRIC_PIANO = 4,
    MG_GM_NYLON_GUITAR = 24, MG_GM_STEEL_GUITAR = 25,
    MG_GM_FINGER_BASS = 33, MG_GM_PICK_BASS = 34, MG_GM_SYNTH_BASS_1 = 38, MG_GM_SYNTH_BASS_2 = 39,
    MG_GM_PIZZICATO_STRINGS = 45, MG_GM_HARP = 46, MG_GM_STRINGS_1 = 48, MG_GM_STRINGS_2 = 49,
    MG_GM_SQUARE_LEAD = 80, MG_GM_SAW_LEAD = 81,
    MG_GM_WARM_PAD = 89, MG_GM_POLYSYNTH_PAD = 90, MG_GM_HALO_PAD = 94,
};

/* How the chords stem plays each chord (instruments.c picks it, parts.c plays it). The values
 * are the letters the decision code was first written with; nothing depends on them. */
typedef enum {
    MG_TEXTURE_DEFAULT = 0,     /* not chosen (no chords stem): played as MG_TEXTURE_HELD */
    MG_TEXTURE_ARPEGGIO = 'a',  /* broken chords */
    MG_TEXTURE_STRUM = 's',     /* down/up strokes, strings staggered */
    MG_TEXTURE_BLOCK = 'b',     /* block chords */
    MG_TEXTURE_COMP = 'j',      /* jazz comping: off-beat stabs, swung */
    MG_TEXTURE_STABS = 't',     /* off-beat stabs */
    MG_TEXTURE_HELD = 'h',      /* sustained through each chord */
    MG_TEXTURE_WALTZ = 'w',     /* chords on beats 2 and 3 */
} mg_chord_texture_t;

/* ---- harmony ------------------------------------------------------------------------------ */

typedef struct {
    int root;               /* semitones above the tonic, 0..11 */
    int iv[6];              /* intervals above the root, iv[0] == 0, ascending */
    int n;
    char name[16];          /* roman numeral as written ("bVII", "V7", "ii7") */
} mg_chord_t;

/* Parses a roman numeral ("I", "vi", "bVII", "V7", "ii7", "Imaj7", "iio", "viih7", "Iadd9",
 * "Vsus4", "V7b9", "bII"). 0 or -1. */
int mg_chord_parse(const char *roman, mg_chord_t *out);

/* ---- decision state ----------------------------------------------------------------------- */

typedef struct {
    char word[48];
    char as[24];            /* "style", "instrument", "energy", "structure", "emotion" */
    char effect[120];
} mg_word_use_t;

typedef struct {
    char param[32];
    char *value;            /* JSON value text */
    char *reason;
} mg_reason_t;

typedef struct {
    mg_role_t role;
    const mg_instr_t *instr; /* NULL: style default */
    char source[160];       /* why this instrument */
} mg_stem_plan_t;

typedef struct {
    int kind;               /* MG_SEC_* */
    int prog[8];            /* chord indices (into c->chords), one per harmonic step */
    int n_prog;
    int bars_per_chord;
    int motif_op;           /* MG_DEV_*: how the melody develops the motif here */
    int n_bars;
    int intensity_start, intensity_end; /* permille (a build ramps from start to end) */
    char prog_text[96];     /* the progression cycle, as coloured */
} mg_sec_plan_t;

enum { MG_SEC_INTRO, MG_SEC_BUILD, MG_SEC_MAIN, MG_SEC_BRIDGE, MG_SEC_OUTRO, MG_SEC_STING, MG_SEC_LOOP };
enum { MG_DEV_NONE, MG_DEV_STATE, MG_DEV_INVERT, MG_DEV_ORNAMENT, MG_DEV_FRAGMENT };
enum { MG_END_HELD, MG_END_BUTTON, MG_END_LOOP };

#define MG_MAX_CHORDS 64
#define MG_MAX_SECTIONS 48
#define MG_MOTIF_MAX 24

typedef struct {
    int onset, len;         /* ticks within the 2-bar motif */
    int step;               /* scale steps from the previous note (first: offset from anchor) */
} mg_motif_note_t;

struct mg_comp {
    /* what was asked */
    char campaign[MG_NAME_MAX + 1], cue[MG_NAME_MAX + 1];
    int variation;
    char prompt_sha256[65];
    int tempo_override, key_override, instr_override, stems_override;

    /* prompt interpretation */
    mg_word_use_t *words; int n_words, cap_words;
    char **ignored; int n_ignored;
    unsigned flags;
    int style, style_from_prompt;
    int tempo_pct, d_loud, d_bright, d_density, prompt_bpm;
    const mg_instr_t *prompt_instr[16]; int n_prompt_instr;
    const mg_emotion_t *prompt_emotions[16]; int n_prompt_emotions;

    /* emotion */
    const mg_emotion_t *tags[32]; int n_tags;
    char **unknown_tags; int n_unknown_tags;
    int emotion_source;     /* 0 tags, 1 prompt words, 2 default */
    int v, a;               /* milli, -1000..1000 */

    /* cues, milli unless stated */
    int loud, loud_var, gate_pct, reg_midi, range_steps, tension, tension_level, density,
        density_level, bright, up_permille;

    /* time */
    int bpb, n_beats, n_bars, last_bar_beats;
    int target_bpm_milli;
    int32_t *beat_uspq;     /* n_beats */
    int64_t *beat_us;       /* n_beats + 1 */
    int ending, arrival_beat;
    /* a seamless loop (spec->loop): the length asked for and the whole bars it became */
    int loop;
    int64_t loop_req_us;
    int loop_bars;

    /* form and harmony */
    mg_sec_plan_t secs[MG_MAX_SECTIONS]; int n_secs;
    int *bar_sec;           /* n_bars: section of each bar */
    int *bar_start;         /* n_bars + 1: first beat of each bar */
    int *bar_int;           /* n_bars: intensity permille */
    mg_chord_t chords[MG_MAX_CHORDS]; int n_chords;
    int *beat_chord;        /* n_beats: index into chords */
    int tonic; mg_mode_t mode;
    int swing;              /* ticks the off-beat eighth is delayed by */
    int humanize;           /* +- ticks of timing jitter */

    /* melody */
    mg_motif_note_t motif[MG_MOTIF_MAX]; int n_motif;
    char motif_text[160];

    /* instruments */
    mg_stem_plan_t stems[MG_ROLE_COUNT]; int n_stems;
    char **unused_instr; int n_unused_instr;
    char **ignored_stems; int n_ignored_stems;
    int kit;                /* drum kit program */
    unsigned drum_extra;    /* MG_DRUM_* */
    int bass_pattern, drum_variant;
    mg_chord_texture_t chord_pattern;

    mg_reason_t *reasons; int n_reasons, cap_reasons;
    int oom;
};

/* decide.c */
int mg_decide(mg_comp_t *c, mg_score_t *score, const mg_render_spec_t *spec);

/* instruments.c: the stems of the cue and the instrument, GM program, channel, gain and pan of
 * each (from the job's instruments and stems lists, else the prompt's instruments and the
 * style's band), then the chords stem's texture; every choice is a reason in the record.
 * Called by mg_decide once style, meter and density are known. Sets c->oom on failure. */
void mg_decide_instruments(mg_comp_t *c, const mg_render_spec_t *spec, mg_score_t *sc);

/* decide.c helpers shared with instruments.c. */
typedef struct {
    unsigned default_stems;                                /* MG_ROLE_BIT */
    struct { mg_family_t family; int program; } band[MG_ROLE_COUNT]; /* the style's instrument per role */
    int kit;                                               /* its drum kit program */
} mg_style_band_t;
/* The style's usual band (a copy). */
mg_style_band_t mg_style_band(mg_style_t style);
/* Adds a copy of s to a list of notes for the record, once (sets c->oom on failure). */
void mg_comp_list_add(mg_comp_t *c, char ***list, int *n, const char *s);
/* Adds a decision: param, a JSON value, and a printf reason. */
void mg_reason(mg_comp_t *c, const char *param, const char *value_json, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Fixed-point text for milli values ("-0.725"), locale-independent. buf >= 24. */
const char *mg_milli_str(int64_t milli, char *buf, size_t len);

/* parts.c: writes every stem's notes into score (before timing is resolved). */
int mg_parts(mg_comp_t *c, mg_score_t *score, uint64_t seed);

/* compose.c: appends a note to a stem (growing its array). Clips to the score end. */
int mg_stem_add(mg_score_t *score, int stem, int64_t start_tick, int64_t dur_tick, int pitch, int velocity);

/* Pitch-class helpers (decide.c). */
int mg_scale_pc(mg_mode_t mode, int degree);  /* 0..6 -> semitones above tonic */
extern const char *const mg_pc_names[12];

#endif
