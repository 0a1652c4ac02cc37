/* renderspec.h - the fully resolved description of one render, as leased to a worker.
 *
 * The coordinator builds it from the stored job and cue (with the seed of this
 * variation); the worker needs nothing else to produce the output. It travels as a kv
 * record (common/kv.h) inside a LEASE message (docs/protocol.md). Fixed-size fields keep
 * it free of ownership questions; the limits match the job-file validation limits.
 */
#ifndef MG_RENDERSPEC_H
#define MG_RENDERSPEC_H

#include <stdint.h>

#include "jobspec.h"
#include "kv.h"

typedef struct {
    int64_t render_id;
    int64_t job_id;
    char campaign[MG_NAME_MAX + 1];
    char client[MG_NAME_MAX + 1];
    char cue[MG_NAME_MAX + 1];
    int variation;                 /* 0-based; files are named -v(variation+1) */
    uint64_t seed;
    char prompt[MG_PROMPT_MAX + 1];
    char prompt_sha256[65];
    char emotions[512];            /* comma-separated tags, e.g. "joyful,energetic" */
    double duration_s;
    double tempo_bpm;              /* 0 = composer decides */
    char key[32];                  /* "" = composer decides */
    char instruments[512];         /* comma-separated, may be empty */
    char stems[256];               /* comma-separated, may be empty */
    int loop;                      /* 1: a seamless loop (composer rounds to whole bars) */
    mg_output_spec_t output;
} mg_render_spec_t;

/* Appends the spec's fields to kv. 0 or -1. */
int mg_render_spec_to_kv(const mg_render_spec_t *spec, mg_kv_t *kv);
/* Fills spec from kv. 0, or -1 if a required field is missing or a value is out of
 * range or too long (a corrupt or hostile LEASE must not overflow anything). */
int mg_render_spec_from_kv(mg_render_spec_t *spec, const mg_kv_t *kv);

/* The spec of variation v (0-based) of cue ci, built from a parsed job exactly as the
 * coordinator stores and leases it (render_id and job_id stay 0). `mgctl plan` uses it to
 * predict what the workers will render. */
void mg_render_spec_from_job(const mg_job_t *job, int ci, int v, mg_render_spec_t *spec);

#endif
