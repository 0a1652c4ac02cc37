/* render.h - the render interface: a render spec in, stems of raw audio out.
 *
 * The worker calls a renderer for each leased render, then hands the stems to the
 * audio pipeline (pipeline.h: mix, resample, loudness, encode, tag). A renderer is a struct
 * of identity fields (what the provenance record names) and a render function that gets the
 * struct itself, so a renderer can carry state (a loaded model) in ctx. Renderers:
 *   "wavernn" - worker/render_wavernn.c (render_wavernn.h), the default: plays the composer's
 *               score with the neural model of kernels/wavernn.h; needs its model
 *               file, loaded once at start;
 *   "synth"   - worker/render_synth.c, the procedural CPU renderer: plays the same score with
 *               procedural voices; needs nothing, so it is the fallback (`--renderer synth`);
 *   "test"    - worker/render_test.c, compiled into test builds only (instant, scriptable
 *               failures); never linked into bin/mg-worker.
 * The two score renderers share the stem post-processing of stems.h.
 */
#ifndef MG_RENDER_H
#define MG_RENDER_H

#include <stddef.h>

#include "../common/renderspec.h"

enum {
    MG_RENDER_OK = 0,
    MG_RENDER_ERR_RETRYABLE = -1, /* try again, maybe elsewhere */
    MG_RENDER_ERR_PERMANENT = -2, /* this spec can never render; do not retry */
    MG_RENDER_ERR_CANCELLED = -3, /* *cancel became non-zero */
};

typedef struct {
    char name[32];     /* "melody", "bass", "drums", ... */
    float *samples;    /* owned: frames mono samples at the audio's sample_rate */
    float gain;        /* linear, applied at mixdown */
    float pan;         /* -1 left .. +1 right */
} mg_stem_t;

typedef struct {
    int sample_rate;       /* the renderer's native rate */
    size_t frames;         /* every stem has this many samples */
    mg_stem_t *stems;      /* owned array */
    int n_stems;
    char *decision_json;   /* owned, may be NULL: the composer's decision record */
    size_t loop_frames;    /* 0, or a seamless loop: frames == loop_frames, and the renderer
                            * has already put every tail that rang past the loop's end into its
                            * start (folded it in: render_synth.c; rendered the start after a
                            * pre-roll of the end: render_wavernn.c), with no fade at either
                            * end, so sample frames-1 runs on into sample 0 */
    unsigned char *midi;   /* owned, may be NULL: the score as a Standard MIDI File */
    size_t midi_len;
    const char *backend;   /* borrowed from the renderer, may be NULL: where this render really
                            * ran when not on the renderer's own backend/device (a CUDA renderer
                            * that fell back to the CPU); the provenance names these */
    const char *device;
} mg_audio_t;

/* Frees everything the audio owns and zeroes it. NULL-safe. */
void mg_audio_free(mg_audio_t *audio);

/* Folds a loop rendered past its end: x holds len >= period samples, one period and then what
 * rang on after it; every sample from period on is added onto x[i % period] (a tail longer
 * than the period wraps more than once) and zeroed. Afterwards x[0 .. period) is one period of
 * the steady state of the loop played over and over, for any renderer that is linear in its
 * notes. Renderers that fold set mg_audio_t.loop_frames (render_synth.c defines this). */
void mg_audio_fold_loop(float *x, size_t period, size_t len);

/* Called now and then with done in [0,1]; returns non-zero to ask for cancellation. */
typedef int (*mg_progress_fn)(void *ctx, double done);

typedef struct mg_renderer mg_renderer_t;

struct mg_renderer {
    const char *name;           /* "wavernn", "synth", "test" */
    const char *backend;        /* "cpu", "cuda" */
    const char *device;         /* "x86-64 (avx2)", "NVIDIA H100", ... */
    const char *model_name;
    const char *model_version;
    const char *model_license;
    const char *attribution;    /* training-data sources, authors, licences (free text) */
    char model_sha256[65];      /* of the model file, or of the renderer's code version */
    void *ctx;                  /* the renderer's own state (a loaded model), or NULL */
    /* Renders spec into *out (zeroed on entry, owned by the caller after success); self is
     * this renderer. May be called from several threads at once. Returns MG_RENDER_OK or an
     * MG_RENDER_ERR_* code with a message in err. */
    int (*render)(const mg_renderer_t *self, const mg_render_spec_t *spec, mg_progress_fn progress,
                  void *progress_ctx, mg_audio_t *out, char *err, size_t errlen);
};

/* The procedural synth renderer (always built; static, not to be freed). The neural
 * renderer is created from its model file: render_wavernn.h. */
const mg_renderer_t *mg_renderer_synth(void);
#ifdef MG_TEST_RENDERER
/* The test renderer (test builds only): see render_test.c for its MG_TEST_* knobs. */
const mg_renderer_t *mg_renderer_test(void);
#endif

#endif
