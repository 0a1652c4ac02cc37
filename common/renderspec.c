/* renderspec.c - a render spec to and from its kv record (the second frame of each LEASE
 * entry, docs/protocol.md). The coordinator writes it; the worker reads it and must not
 * trust it: every field is parsed strictly and bounds-checked against the job-file limits.
 *
 * Fields (all written by mg_render_spec_to_kv, in this order):
 *   render_id job_id campaign client cue variation seed prompt prompt_sha256 emotions
 *   duration_s tempo_bpm key instruments stems formats sample_rate channels mp3_bitrate
 *   flac_bits normalize loudness_lufs deliver loop
 * formats and deliver are a comma-separated list of names ("flac,mp3"); emotions, instruments and stems
 * are comma-separated as in the struct. Optional when reading (with the struct's "nothing"
 * value): client, prompt_sha256, emotions, tempo_bpm, key, instruments, stems,
 * mp3_bitrate (192), flac_bits (16), normalize (0), loudness_lufs (-14), deliver ("mix"),
 * loop (0): a coordinator from before stems and loops sends neither.
 */
#include "renderspec.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int mg_render_spec_to_kv(const mg_render_spec_t *spec, mg_kv_t *kv)
{
    char formats[32] = "";
    for (unsigned bit = MG_FORMAT_FLAC; bit <= MG_FORMAT_WAV; bit <<= 1) {
        if (!(spec->output.formats & bit)) continue;
        if (*formats) strcat(formats, ",");
        strcat(formats, mg_format_name(bit));
    }
    int rc = 0;
    rc |= mg_kv_set_i64(kv, "render_id", spec->render_id);
    rc |= mg_kv_set_i64(kv, "job_id", spec->job_id);
    rc |= mg_kv_set(kv, "campaign", spec->campaign);
    rc |= mg_kv_set(kv, "client", spec->client);
    rc |= mg_kv_set(kv, "cue", spec->cue);
    rc |= mg_kv_set_i64(kv, "variation", spec->variation);
    rc |= mg_kv_set_u64(kv, "seed", spec->seed);
    rc |= mg_kv_set(kv, "prompt", spec->prompt);
    rc |= mg_kv_set(kv, "prompt_sha256", spec->prompt_sha256);
    rc |= mg_kv_set(kv, "emotions", spec->emotions);
    rc |= mg_kv_set_double(kv, "duration_s", spec->duration_s);
    rc |= mg_kv_set_double(kv, "tempo_bpm", spec->tempo_bpm);
    rc |= mg_kv_set(kv, "key", spec->key);
    rc |= mg_kv_set(kv, "instruments", spec->instruments);
    rc |= mg_kv_set(kv, "stems", spec->stems);
    rc |= mg_kv_set(kv, "formats", formats);
    rc |= mg_kv_set_i64(kv, "sample_rate", spec->output.sample_rate);
    rc |= mg_kv_set_i64(kv, "channels", spec->output.channels);
    rc |= mg_kv_set_i64(kv, "mp3_bitrate", spec->output.mp3_bitrate_kbps);
    rc |= mg_kv_set_i64(kv, "flac_bits", spec->output.flac_bits);
    rc |= mg_kv_set_i64(kv, "normalize", spec->output.normalize ? 1 : 0);
    rc |= mg_kv_set_double(kv, "loudness_lufs", spec->output.loudness_lufs);
    char deliver[32];
    mg_deliver_csv(spec->output.deliver, deliver, sizeof deliver);
    rc |= mg_kv_set(kv, "deliver", deliver);
    rc |= mg_kv_set_i64(kv, "loop", spec->loop ? 1 : 0);
    return rc ? -1 : 0;
}

/* String field: copied if present and shorter than dstlen; a missing optional field
 * leaves "" (dst was zeroed). 0 or -1. */
static int s_str(const mg_kv_t *kv, const char *key, char *dst, size_t dstlen, int required,
                 size_t minlen)
{
    const char *v = mg_kv_get(kv, key);
    if (!v) return required ? -1 : 0;
    size_t n = strlen(v);
    if (n >= dstlen || n < minlen) return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

/* Integer field in [lo, hi]: the whole value must be a decimal integer. */
static int s_i64(const mg_kv_t *kv, const char *key, int64_t lo, int64_t hi, int required,
                 int64_t dflt, int64_t *out)
{
    const char *v = mg_kv_get(kv, key);
    if (!v) {
        if (required) return -1;
        *out = dflt;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno == ERANGE || x < lo || x > hi) return -1;
    *out = (int64_t)x;
    return 0;
}

static int s_int(const mg_kv_t *kv, const char *key, int lo, int hi, int required, int dflt, int *out)
{
    int64_t x;
    if (s_i64(kv, key, lo, hi, required, dflt, &x) != 0) return -1;
    *out = (int)x;
    return 0;
}

/* Finite double in [lo, hi]. */
static int s_num(const mg_kv_t *kv, const char *key, double lo, double hi, int required,
                 double dflt, double *out)
{
    const char *v = mg_kv_get(kv, key);
    if (!v) {
        if (required) return -1;
        *out = dflt;
        return 0;
    }
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !isfinite(x) || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static int s_hex64_or_empty(const char *s)
{
    size_t n = strlen(s);
    if (n == 0) return 1;
    if (n != 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static int s_formats(const char *v, unsigned *out)
{
    unsigned mask = 0;
    char name[8];
    if (!v) return -1;
    while (v) { /* "flac,,mp3" and "flac," have an empty name: rejected */
        const char *comma = strchr(v, ',');
        size_t n = comma ? (size_t)(comma - v) : strlen(v);
        if (n == 0 || n >= sizeof name) return -1;
        memcpy(name, v, n);
        name[n] = 0;
        unsigned bit = mg_format_from_name(name);
        if (!bit || (mask & bit)) return -1;
        mask |= bit;
        v = comma ? comma + 1 : NULL;
    }
    if (!mask) return -1;
    *out = mask;
    return 0;
}

static int s_fill(mg_render_spec_t *s, const mg_kv_t *kv)
{
    int64_t i64;
    if (s_i64(kv, "render_id", 0, INT64_MAX, 1, 0, &s->render_id)) return -1;
    if (s_i64(kv, "job_id", 0, INT64_MAX, 1, 0, &s->job_id)) return -1;
    if (s_str(kv, "campaign", s->campaign, sizeof s->campaign, 1, 1)) return -1;
    if (s_str(kv, "client", s->client, sizeof s->client, 0, 0)) return -1;
    if (s_str(kv, "cue", s->cue, sizeof s->cue, 1, 1)) return -1;
    if (s_i64(kv, "variation", 0, MG_MAX_VARIATIONS - 1, 1, 0, &i64)) return -1;
    s->variation = (int)i64;
    const char *seed = mg_kv_get(kv, "seed");
    if (!seed || !*seed) return -1;
    for (const char *p = seed; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    errno = 0;
    unsigned long long sv = strtoull(seed, NULL, 10);
    if (errno == ERANGE) return -1;
    s->seed = (uint64_t)sv;
    if (s_str(kv, "prompt", s->prompt, sizeof s->prompt, 1, 1)) return -1;
    if (s_str(kv, "prompt_sha256", s->prompt_sha256, sizeof s->prompt_sha256, 0, 0)) return -1;
    if (!s_hex64_or_empty(s->prompt_sha256)) return -1;
    if (s_str(kv, "emotions", s->emotions, sizeof s->emotions, 0, 0)) return -1;
    if (s_num(kv, "duration_s", 0, MG_MAX_DURATION_S, 1, 0, &s->duration_s) || s->duration_s <= 0) return -1;
    if (s_num(kv, "tempo_bpm", 0, 300, 0, 0, &s->tempo_bpm)) return -1;
    if (s->tempo_bpm != 0 && s->tempo_bpm < 20) return -1;
    if (s_str(kv, "key", s->key, sizeof s->key, 0, 0)) return -1;
    if (s_str(kv, "instruments", s->instruments, sizeof s->instruments, 0, 0)) return -1;
    if (s_str(kv, "stems", s->stems, sizeof s->stems, 0, 0)) return -1;
    mg_output_spec_t *o = &s->output;
    if (s_formats(mg_kv_get(kv, "formats"), &o->formats)) return -1;
    if (s_int(kv, "sample_rate", 8000, 192000, 1, 0, &o->sample_rate)) return -1;
    if (s_int(kv, "channels", 1, 2, 1, 0, &o->channels)) return -1;
    if (s_int(kv, "mp3_bitrate", 32, 320, 0, 192, &o->mp3_bitrate_kbps)) return -1;
    if (s_int(kv, "flac_bits", 16, 24, 0, 16, &o->flac_bits)) return -1;
    if (o->flac_bits != 16 && o->flac_bits != 24) return -1;
    if (s_int(kv, "normalize", 0, 1, 0, 0, &o->normalize)) return -1;
    if (s_num(kv, "loudness_lufs", -70, 0, 0, -14, &o->loudness_lufs)) return -1;
    const char *deliver = mg_kv_get(kv, "deliver");
    if (!deliver) o->deliver = MG_DELIVER_MIX;
    else if (!(o->deliver = mg_deliver_from_csv(deliver))) return -1;
    if (s_int(kv, "loop", 0, 1, 0, 0, &s->loop)) return -1;
    return 0;
}

int mg_render_spec_from_kv(mg_render_spec_t *spec, const mg_kv_t *kv)
{
    memset(spec, 0, sizeof *spec);
    if (s_fill(spec, kv) == 0) return 0;
    memset(spec, 0, sizeof *spec); /* nothing half-filled reaches a renderer */
    return -1;
}

void mg_render_spec_from_job(const mg_job_t *job, int ci, int v, mg_render_spec_t *spec)
{
    const mg_cue_t *cue = &job->cues[ci];
    memset(spec, 0, sizeof *spec);
    mg_strlcpy(spec->campaign, job->campaign, sizeof spec->campaign);
    mg_strlcpy(spec->client, job->client ? job->client : "", sizeof spec->client);
    mg_strlcpy(spec->cue, cue->name, sizeof spec->cue);
    spec->variation = v;
    spec->seed = cue->seeds[v];
    mg_strlcpy(spec->prompt, cue->prompt, sizeof spec->prompt);
    mg_sha256_hex(cue->prompt, strlen(cue->prompt), spec->prompt_sha256);
    mg_join_csv(spec->emotions, sizeof spec->emotions, cue->emotions, cue->n_emotions);
    spec->duration_s = cue->duration_s;
    spec->tempo_bpm = cue->tempo_bpm;
    mg_strlcpy(spec->key, cue->key ? cue->key : "", sizeof spec->key);
    mg_join_csv(spec->instruments, sizeof spec->instruments, cue->instruments, cue->n_instruments);
    mg_join_csv(spec->stems, sizeof spec->stems, cue->stems, cue->n_stems);
    spec->loop = cue->loop;
    spec->output = job->output;
}
