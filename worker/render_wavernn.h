/* render_wavernn.h - the neural renderer "wavernn" (render.h): the composer's score
 * played by the WaveRNN model of kernels/wavernn.h, one model file loaded once per worker and
 * shared by its render threads. The worker's default renderer; worker/render_wavernn.c.
 */
#ifndef MG_RENDER_WAVERNN_H
#define MG_RENDER_WAVERNN_H

#include <stddef.h>
#include <stdint.h>

#include "../composer/composer.h"
#include "../kernels/wavernn.h"
#include "backend.h"
#include "render.h"

#define MG_WAVERNN_MODEL_FILE "mg-wavernn.mgnn"
#define MG_WAVERNN_TAIL_S 1.0        /* rendered after a stem's last note-off: release tails */

typedef struct {
    const char *model_path;   /* the MGNN file (required) */
    double temperature;       /* sampling temperature, (0, 10]; 1 draws from the model as trained */
    int threads;              /* threads per render, 1..MG_WR_MAX_BATCH */
    int raw;                  /* 1: hand over the stems exactly as the model wrote them (no DC
                               * removal, fades or levels): tests and listening to the model */
    const mg_backend_cuda_t *cuda; /* borrowed, may be NULL (CPU): render on this GPU plugin; it
                                    * must outlive the renderer */
} mg_wavernn_opts_t;

/* Loads the model file opts->model_path (read once: the sha256 in the provenance is of the
 * bytes that were loaded) and returns a new "wavernn" renderer the caller owns
 * (mg_renderer_wavernn_destroy). Its identity comes from the file: model_name, model_version
 * (with " (temperature T)" appended when T is not 1), model_license, attribution (in the
 * protocol's line form, see render_wavernn.c), model_sha256 of the file, backend "cpu" with
 * device "x86-64 (avx2)" or "x86-64 (scalar)", or with opts->cuda backend "cuda" and the plugin's
 * device (the model is uploaded here). NULL with "PATH: what is wrong" in err when the file is
 * missing, unreadable or not a model this runtime can run, an option is out of range, or the
 * plugin cannot take the model (the caller may retry without opts->cuda). */
mg_renderer_t *mg_renderer_wavernn_new(const mg_wavernn_opts_t *opts, char *err, size_t errlen);
/* Frees a renderer from mg_renderer_wavernn_new (and its model) and sets *r_p to NULL.
 * NULL-safe. No render may be running. */
void mg_renderer_wavernn_destroy(mg_renderer_t **r_p);

/* The default model file, for a worker given none: the first that exists of
 *   EXE/../models/default/mg-wavernn.mgnn            the source tree (bin/mg-worker)
 *   EXE/../share/mg/models/default/mg-wavernn.mgnn   an install (PREFIX/bin, PREFIX/share/mg)
 *   ./models/default/mg-wavernn.mgnn                 the current folder
 * EXE being the folder of the running executable (/proc/self/exe). Writes it into buf and
 * returns 0; when none exists, returns -1 with the candidates, comma-separated, in buf. */
int mg_renderer_wavernn_default_model(char *buf, size_t len);

/* The notes of score stem st at MG_WR_SR (24 kHz), sample-exact: on and off are the note's
 * start and end ticks through the score's tempo map (integer microseconds), rounded to the
 * nearest sample; a note shorter than half a sample keeps one. out has room for st->n_notes.
 * Returns the last note-off (0 without notes). */
int64_t mg_renderer_wavernn_notes(const mg_score_t *score, const mg_score_stem_t *st,
                                  mg_wavernn_note_t *out);

/* The Philox stream of stem k of a render: render_id * 256 + k (models/README.md, section 3). */
uint64_t mg_renderer_wavernn_stream(const mg_render_spec_t *spec, int k);

#endif
