/* wavernn.h - the neural renderer's CPU runtime: loads an MGNN WaveRNN model, turns one
 * stem's notes into the conditioning features, steps the network once per output sample and
 * samples with the shared Philox stream. models/README.md specifies the network and features;
 * models/train/{model,features}.py are the PyTorch reference this code is tested against.
 *
 * Flow per stem: for each frame (120 samples) mg_wavernn_slots() + mg_wavernn_frame_cond() ->
 * mg_wavernn_frame_ref(), and mg_wavernn_voice_inputs() -> mg_wavernn_voice_ref() (the harmonic
 * predictor's coefficients of each voice at both ends of the frame); for each sample
 * mg_wavernn_features() (excitation and predictor basis) -> mg_wavernn_harmonic() -> prediction
 * p = h[t] - 0.85 h[t-1] -> mg_wavernn_step_ref() or mg_wavernn_step_avx2() (a batch of stems per
 * call) -> logits of the residual -> mg_wavernn_sample() -> level q -> s = p + decode(q) ->
 * de-emphasis. mg_wavernn_render() does all of it for a batch of stems in lockstep,
 * mg_wavernn_render_threads() splits the batch over threads. Paths: wavernn_ref.c (scalar, the
 * reference), wavernn_avx2.c (AVX2+FMA, chosen at run time by mg_wavernn_isa()).
 * Memory: everything is allocated by _load, _state_new and once per render call; the per-sample
 * path allocates nothing.
 */
#ifndef MG_WAVERNN_H
#define MG_WAVERNN_H

#include <stddef.h>
#include <stdint.h>

#include "model_file.h"

/* The feature constants of models/train/features.py; a model file must carry the same. */
#define MG_WR_SR 24000
#define MG_WR_FRAME 120
#define MG_WR_VOICES 4
#define MG_WR_HARMONICS 3
#define MG_WR_TAIL 12000
#define MG_WR_ONSET_DECAY 240.0
#define MG_WR_ATT_S 0.05
#define MG_WR_DEC_S 0.5
#define MG_WR_REL_S 0.2
#define MG_WR_PREEMPH 0.85
#define MG_WR_LEVELS 256
#define MG_WR_N_CLASSES 7
#define MG_WR_SLOT_DIM 7
#define MG_WR_COND_DIM (MG_WR_N_CLASSES + 1 + MG_WR_VOICES * MG_WR_SLOT_DIM)   /* 36 */
#define MG_WR_EXC_PER_VOICE (2 * MG_WR_HARMONICS + 1)
#define MG_WR_EXC_DIM (MG_WR_VOICES * MG_WR_EXC_PER_VOICE)                     /* 28 */
#define MG_WR_IN_DIM (MG_WR_EXC_DIM + 1)   /* per-sample GRU input: exc, compand(p) */
#define MG_WR_PRED_HARMONICS 16   /* harmonics per voice in the predictor */
#define MG_WR_PRED_DIM MG_WR_PRED_HARMONICS   /* per voice: amplitudes of sin(k phase), k = 1..K */
#define MG_WR_PRED_MAX_HZ 10800.0 /* predictor harmonics at or above this are zero */
#define MG_WR_VOICE_DIM 16        /* voice-network inputs besides the pitch embedding */
#define MG_WR_DRUM_KIT 128        /* program_map index of the GM drum kit (channel 10) */
#define MG_WR_CLASS_DRUMS 6
#define MG_WR_MAX_BATCH 64        /* streams per mg_wavernn_render / step call */

/* Instruction-set paths of the step. */
enum { MG_WR_ISA_REF = 0, MG_WR_ISA_AVX2 = 1 };

/* One note of a stem, times in samples at MG_WR_SR; off > on. */
typedef struct {
    int64_t on, off;
    int pitch;         /* MIDI 0..127 (for drums: the GM percussion key) */
    int velocity;      /* 1..127 */
} mg_wavernn_note_t;

typedef struct {
    int hidden, embed, frame_hidden, out_hidden;   /* H, E, FH, O */
    int voice_hidden, voice_embed;                 /* VH, VE */
    const float *voice_emb; /* (N_CLASSES * 128, VE): row cls * 128 + pitch */
    const float *voice1_w;  /* (VH, VOICE_DIM + VE) */
    const float *voice1_b;  /* (VH) */
    const float *voice2_w;  /* (VH, VH) */
    const float *voice2_b;  /* (VH) */
    const float *voice3_w;  /* (PRED_DIM, VH): harmonic amplitudes */
    const float *voice3_b;  /* (PRED_DIM) */
    const float *tuning;    /* (N_CLASSES, 128) cents off equal temperament per class and pitch */
    const float *class_temperature;  /* (N_CLASSES) sampling temperature factor per class */
    const float *frame1_w;  /* (FH, C) */
    const float *frame1_b;  /* (FH) */
    const float *frame2_w;  /* (FH, FH) */
    const float *frame2_b;  /* (FH) */
    const float *w_hh;      /* (3H, H), gate rows r, z, n as PyTorch */
    const float *b_hh;      /* (3H) */
    const float *b_ih;      /* (3H) */
    const float *out1_w;    /* (O, H) */
    const float *out1_b;    /* (O) */
    const float *out2_w;    /* (L, O) */
    const float *out2_b;    /* (L) */
    /* folded at load time from embed.weight (L, E) and gru.weight_ih_l0 (3H, E + X + 1 + FH): */
    float *emb_gates;       /* (L, 3H): w_ih[:, :E] @ embed[q] for each level q, owned */
    float *w_exc;           /* (3H, X + 1): w_ih[:, E:E+X+1] (excitation, companded p), owned */
    float *w_fv;            /* (3H, FH): w_ih[:, E+X+1:], owned */
    /* repacked for the AVX2 path (mg_wavernn_pack16: panels of 16 rows), owned; NULL when a
     * row count is not a multiple of 16 (then every path runs the reference): */
    float *pk_exc;          /* (3H/16, X + 1, 16) */
    float *pk_hh;           /* (3H/16, H, 16) */
    float *pk_out1;         /* (O/16, H, 16) */
    float *pk_out2;         /* (L/16, O, 16) */
    int program_map[129];   /* GM program (128 = drum kit) -> class */
    float mulaw_level[MG_WR_LEVELS];   /* mg_wavernn_mulaw_decode of each level (per-sample lookup) */
    const char *name, *version, *license, *attribution;   /* metadata, owned by file */
    mg_nn_file_t *file;     /* owned: the tensors above point into it */
} mg_wavernn_model_t;

/* Per-stream state and scratch, sized for one model at creation. */
typedef struct {
    float *h;        /* (H) GRU state */
    float *gx;       /* (3H) frame part of the input gates: w_fv @ fv + b_ih */
    float *fv;       /* (FH) frame vector */
    float *scratch;  /* (6H + O + FH) step and frame temporaries */
    float *coef;     /* (VOICES, 2, PRED_DIM) harmonic amplitudes at the frame's two ends */
    float *vscratch; /* (2 VH + VOICE_DIM + VE) voice-network temporaries */
    float h_prev;    /* the predictor's previous raw output h[t-1] */
    double y;        /* de-emphasis state */
    int q_prev;      /* mu-law level of the previous pre-emphasised output sample */
} mg_wavernn_state_t;

/* Loads and checks the model at path (hyper-parameters equal to the MG_WR_ constants, every
 * tensor's shape, metadata name/version/license/attribution/program_map). On success the caller
 * owns *out (mg_wavernn_destroy) and 0 is returned; -1 with a message in err otherwise. */
int mg_wavernn_load(const char *path, mg_wavernn_model_t **out, char *err, size_t errlen);
/* The same from a parsed file; takes ownership of *file_p (even on failure) and nulls it. */
int mg_wavernn_from_file(mg_nn_file_t **file_p, mg_wavernn_model_t **out, char *err, size_t errlen);
void mg_wavernn_destroy(mg_wavernn_model_t **model_p);

/* The class for GM program 0..127, or MG_WR_DRUM_KIT for the drum kit; -1 if out of range. */
int mg_wavernn_class(const mg_wavernn_model_t *m, int program);

/* State: new returns an owned, reset state or NULL (out of memory); reset zeroes it. */
mg_wavernn_state_t *mg_wavernn_state_new(const mg_wavernn_model_t *m);
void mg_wavernn_state_reset(const mg_wavernn_model_t *m, mg_wavernn_state_t *s);
void mg_wavernn_state_destroy(mg_wavernn_state_t **state_p);

/* ---- conditioning features (features.py) ---- */
/* The note indices (into notes[0..n)) in the voice slots of frame, -1 for empty slots. */
void mg_wavernn_slots(const mg_wavernn_note_t *notes, size_t n, int64_t frame,
                      int32_t slots[MG_WR_VOICES]);
/* The frame conditioning vector cond[MG_WR_COND_DIM] of frame for class cls. */
void mg_wavernn_frame_cond(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                           int cls, int64_t frame, float cond[MG_WR_COND_DIM]);
/* The oscillator frequency (Hz) of pitch for class cls: equal temperament corrected by the tuning
 * table (N_CLASSES, 128) in cents (NULL: no correction). */
double mg_wavernn_note_hz(const float *tuning, int cls, int pitch);
/* The oscillator frequency of the note in each slot (0 for an empty slot), tuning as above: once
 * per frame, so that the per-sample features need no pow(). */
void mg_wavernn_slot_hz(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                        int cls, const float *tuning, double hz[MG_WR_VOICES]);
/* The excitation exc[MG_WR_EXC_DIM] of sample t (slots: those of frame t / MG_WR_FRAME, hz: their
 * mg_wavernn_slot_hz) and, if basis is not NULL, the predictor basis
 * basis[MG_WR_VOICES * MG_WR_PRED_DIM]. */
void mg_wavernn_features(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                         int cls, const double hz[MG_WR_VOICES], int64_t t,
                         float exc[MG_WR_EXC_DIM], float *basis);
/* mg_wavernn_features without the basis, frequencies from tuning (a convenience; not per-sample
 * fast). */
void mg_wavernn_excitation(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                           int cls, const float *tuning, int64_t t, float exc[MG_WR_EXC_DIM]);
/* The voice network's inputs at the start (e = 0) and end (e = 1) of frame for each slot:
 * vin[(v * 2 + e) * MG_WR_VOICE_DIM ...], and its embedding rows emb[v] (-1: empty slot). */
void mg_wavernn_voice_inputs(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                             int cls, int64_t frame, float *vin, int32_t emb[MG_WR_VOICES]);
/* The continuous mu-law curve of the prediction, the GRU's last sample input. */
float mg_wavernn_compand(float p);

/* ---- network (scalar reference: wavernn_ref.c) ---- */
/* Runs the frame MLP on cond and sets s->fv and s->gx. */
void mg_wavernn_frame_ref(const mg_wavernn_model_t *m, mg_wavernn_state_t *s, const float *cond);
/* Runs the voice network on vin/emb (mg_wavernn_voice_inputs) and sets s->coef. */
void mg_wavernn_voice_ref(const mg_wavernn_model_t *m, mg_wavernn_state_t *s, const float *vin,
                          const int32_t emb[MG_WR_VOICES]);
/* The predictor's raw output h of sample i (0..FRAME-1) of the frame from s->coef and the basis. */
float mg_wavernn_harmonic(const mg_wavernn_state_t *s, const float *basis, int i);
/* One sample: GRU update of s->h from level q_prev and in[MG_WR_IN_DIM] (exc, compand(p)), then
 * logits[L] of the residual's level. */
void mg_wavernn_step_ref(const mg_wavernn_model_t *m, mg_wavernn_state_t *s, int q_prev,
                         const float *in, float *logits);

/* ---- network (optimised: wavernn_avx2.c) ---- */
/* The path this CPU runs: MG_WR_ISA_AVX2 when it has AVX2 and FMA (unless the environment sets
 * MG_WAVERNN_ISA=ref), else MG_WR_ISA_REF. */
int mg_wavernn_isa(void);
/* One step for n <= MG_WR_MAX_BATCH streams s[0..n): q_prev (n), in (n, IN) -> logits (n, L).
 * Needs m->pk_exc != NULL and an AVX2 CPU (check mg_wavernn_isa()). */
void mg_wavernn_step_avx2(const mg_wavernn_model_t *m, mg_wavernn_state_t *const *s, int n,
                          const int *q_prev, const float *in, float *logits);
/* mg_wavernn_sample with float exponentials: the same draw except within float rounding of a
 * CDF boundary. */
int mg_wavernn_sample_avx2(const float *logits, float temperature, uint32_t u);
/* Packs w (rows, cols) into dst (rows/16, cols, 16); rows % 16 == 0. */
void mg_wavernn_pack16(float *dst, const float *w, int rows, int cols);

/* ---- sampling and output ---- */
/* Inverse-CDF draw from softmax(logits / temperature) in double precision with the 32-bit
 * uniform u: the first level whose running sum exceeds (u + 0.5) / 2^32 * total. */
int mg_wavernn_sample(const float *logits, int levels, float temperature, uint32_t u);
/* The mu-law level's value in [-1, 1] (pre-emphasised domain). */
float mg_wavernn_mulaw_decode(int q);
/* The level of x (for the initial previous sample, x = 0). */
int mg_wavernn_mulaw_encode(float x);

/* One stem to render: notes of class cls (need not be sorted), draws keyed by (seed, stream). */
typedef struct {
    const mg_wavernn_note_t *notes;   /* (n_notes), borrowed */
    size_t n_notes;
    int cls;
    uint64_t seed, stream;
    size_t n_samples;
    float *out;                       /* (n_samples) audio, borrowed, written */
    int32_t *q_out;                   /* (n_samples) sampled levels, may be NULL */
    float *pred_out;                  /* (n_samples) the predictions p, may be NULL */
} mg_wavernn_stem_t;

/* Renders n <= MG_WR_MAX_BATCH stems in lockstep, one network step per sample for the whole
 * batch; each stem samples at temperature * m->class_temperature[its class] (as LPCNet lowers
 * the temperature of voiced speech, the model lowers it for pitched instruments); with isa (MG_WR_ISA_REF, or mg_wavernn_isa()); stems may differ in length. Allocates
 * the states and buffers once up front. 0, or -1 (out of memory, bad n). */
int mg_wavernn_render(const mg_wavernn_model_t *m, const mg_wavernn_stem_t *stems, int n,
                      float temperature, int isa);
/* The same with the batch split into `threads` contiguous groups, one thread each (threads <= 1:
 * the calling thread). Every draw is keyed by (seed, stream, sample), so the output does not
 * depend on the grouping. 0, or -1 (out of memory, bad n, a thread could not start). */
int mg_wavernn_render_threads(const mg_wavernn_model_t *m, const mg_wavernn_stem_t *stems, int n,
                              float temperature, int isa, int threads);

#endif
