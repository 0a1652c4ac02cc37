/* jobspec.h - job files: parse (libyaml), validate, canonicalise, expand into renders.
 *
 * A job file (docs/jobs.md) names a campaign and its cues; each cue x variation becomes
 * one render with an explicit 64-bit seed. The parser reports every problem as
 * "file:line:col: message" and stores nothing for an invalid file (the caller only
 * gets a job on success). The canonical JSON form is what the coordinator stores and
 * what the default idempotency key hashes, so comments and layout do not change it.
 */
#ifndef MG_JOBSPEC_H
#define MG_JOBSPEC_H

#include <stddef.h>
#include <stdint.h>

enum {
    MG_FORMAT_FLAC = 1u << 0,
    MG_FORMAT_MP3 = 1u << 1,
    MG_FORMAT_WAV = 1u << 2,
};

/* What a render delivers (output.deliver): the mix, one file per stem and format, and the
 * score as a Standard MIDI File. */
enum {
    MG_DELIVER_MIX = 1u << 0,
    MG_DELIVER_STEMS = 1u << 1,
    MG_DELIVER_MIDI = 1u << 2,
};

#define MG_PROMPT_MAX 2000     /* bytes; longer prompts are a validation error */
#define MG_NAME_MAX 100        /* campaign, client, owner, cue names */
#define MG_MAX_VARIATIONS 1000 /* per cue */
#define MG_MAX_DURATION_S 600.0

typedef struct {
    unsigned formats;      /* MG_FORMAT_* bitmask, at least one */
    int sample_rate;       /* 8000..192000, default 48000 */
    int channels;          /* 1 or 2, default 2 */
    int mp3_bitrate_kbps;  /* 32..320, default 192 */
    int flac_bits;         /* 16 or 24, default 16 */
    int normalize;         /* 1 unless loudness_lufs is ~ (null): on by default */
    double loudness_lufs;  /* -70..0, default -14 (applied only when normalize) */
    unsigned deliver;      /* MG_DELIVER_* bitmask, default MG_DELIVER_MIX, never 0 */
} mg_output_spec_t;

typedef struct {
    char *name;            /* unique in the job; [A-Za-z0-9 _.-] */
    char *prompt;          /* non-empty, <= MG_PROMPT_MAX */
    char **emotions;       /* n_emotions known tags (common/emotion.h), lower case */
    int n_emotions;
    double duration_s;     /* (0, MG_MAX_DURATION_S] */
    int variations;        /* number of renders of this cue (= n_seeds when seeds given) */
    uint64_t *seeds;       /* variations seeds: explicit, or derived by mg_seed_derive */
    double tempo_bpm;      /* 0 = composer decides; else 20..300 */
    char *key;             /* NULL = composer decides; e.g. "D minor", "F# major" */
    char **instruments;    /* optional, n_instruments */
    int n_instruments;
    char **stems;          /* optional, n_stems */
    int n_stems;
    int loop;              /* 1: a seamless loop (length rounded to whole bars, no fade) */
    int line, col;         /* where the cue starts in the file (1-based) */
} mg_cue_t;

typedef struct {
    char *source_name;     /* file name used in messages */
    char *campaign;        /* required */
    char *client;          /* optional ("" if absent) */
    char *owner;           /* optional ("" if absent) */
    int priority;          /* -100..100, default 0; higher is dispatched first */
    mg_output_spec_t output;
    mg_cue_t *cues;        /* n_cues >= 1 */
    int n_cues;
    char *idempotency_key; /* explicit key, or sha256 of the canonical JSON */
    char *canonical_json;  /* deterministic JSON of the resolved job (no idempotency_key) */
    char canonical_sha256[65];
} mg_job_t;

/* Parses and validates a job file / buffer. On success returns 0 and *job_out is a new
 * job the caller owns (free with mg_job_destroy). On failure returns -1, *job_out is
 * NULL, and err holds one or more "file:line:col: message" lines (NUL-terminated,
 * truncated to errlen). name is used in messages for buffers. */
int mg_job_parse_file(const char *path, mg_job_t **job_out, char *err, size_t errlen);
int mg_job_parse_buffer(const char *name, const char *buf, size_t len, mg_job_t **job_out,
                        char *err, size_t errlen);

/* Frees a job and sets *job_p to NULL. NULL-safe. */
void mg_job_destroy(mg_job_t **job_p);

/* Total renders (sum of cue variations). */
size_t mg_job_render_count(const mg_job_t *job);

/* The seed of variation v (0-based) of a cue when none is given explicitly: the first 8
 * bytes (big-endian) of sha256("mg-seed-v1\0" campaign "\0" cue "\0" decimal(v)).
 * Stable across machines and versions; documented in docs/jobs.md. */
uint64_t mg_seed_derive(const char *campaign, const char *cue, int variation);

/* Deliverable bit <-> name ("mix", "stems", "midi"). Name: static string or NULL. */
const char *mg_deliver_name(unsigned deliver_bit);
unsigned mg_deliver_from_name(const char *name);
/* The mask as "mix,stems,midi" (in that order; "mix" for 0), as the render spec and the
 * jobs table store it. */
void mg_deliver_csv(unsigned deliver, char *out, size_t outlen);
/* The reverse, strict: every item known, none twice, none empty; 0 for anything else. */
unsigned mg_deliver_from_csv(const char *csv);

/* Format bit <-> name ("flac", "mp3", "wav"). Name: static string or NULL. */
const char *mg_format_name(unsigned format_bit);
unsigned mg_format_from_name(const char *name);

#endif
