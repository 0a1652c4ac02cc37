/* stems.h - the last steps of every score-playing renderer (render_synth.c, render_wavernn.c)
 * before the stems go to the pipeline: the cue's fade-out, a level per stem that keeps the
 * score's dynamics, and a guard on the mixdown's peak. Sharing them keeps the mix of the two
 * renderers balanced the same way: the score's gain and pan act on stems of comparable level.
 */
#ifndef MG_STEMS_H
#define MG_STEMS_H

#include <stddef.h>

#include "render.h"

#define MG_STEM_RMS 0.12   /* a stem's level while it plays, at velocity 100 (about -18 dBFS) */
#define MG_MIX_PEAK 0.90   /* the pipeline's mixdown (mono or either stereo side) stays under this */

/* The length of the cue's fade-out: 0.6 x the time after the last onset (the final chord or
 * hit rings under it), at least 150 ms so the cut never clicks, at most 2 s and a quarter of
 * the cue. */
double mg_stem_fade_s(double duration_s, double last_onset_s);

/* Fades x (n samples at rate) in over 5 ms and out over its last fade_s (raised cosine). */
void mg_stem_fades(float *x, size_t n, int rate, double fade_s);

/* Brings x to MG_STEM_RMS while it plays (the mean square of its 100 ms blocks within 30 dB of
 * its loudest, so rests and a late entry do not count), scaled by its mean velocity against
 * 100. The gain is at most max_gain (linear; HUGE_VAL for none) and keeps the peak under 0.95.
 * Returns the gain applied (1 for silence, which is left alone). */
double mg_stem_level(float *x, size_t n, int rate, double mean_vel, double max_gain);

/* Scales every stem alike so that the pipeline's mixdown (mono: gain; stereo: gain and the
 * constant-power pan law) peaks under MG_MIX_PEAK. 0, or -1 on OOM. */
int mg_stems_mix_guard(mg_stem_t *st, int n_stems, size_t frames);

#endif
