/* stems.c - fades, per-stem level and the mix peak guard shared by the score-playing renderers
 * (stems.h). Moved unchanged from render_synth.c, whose output is bit-identical since.
 */
#include "stems.h"

#include <math.h>
#include <stdlib.h>

/* Velocity to amplitude: (v/127)^1.5, about 26 dB from velocity 17 to 127 (the synth's
 * voices use the same curve, so the level keeps the score's dynamics). */
static float s_vel_amp(int vel) { return powf((float)vel / 127.0f, 1.5f); }

double mg_stem_fade_s(double duration_s, double last_onset_s)
{
    double fade = 0.6 * (duration_s - last_onset_s);
    if (fade < 0.15) fade = 0.15;
    if (fade > 2.0) fade = 2.0;
    if (fade > 0.25 * duration_s) fade = 0.25 * duration_s;
    return fade;
}

void mg_stem_fades(float *x, size_t n, int rate, double fade_s)
{
    size_t fi = (size_t)(0.005 * rate), fo = (size_t)(fade_s * rate);
    if (fi > n) fi = n;
    if (fo > n) fo = n;
    for (size_t i = 0; i < fi; i++) x[i] *= (float)i / (float)fi;
    for (size_t i = 0; i < fo; i++) {
        double g = 0.5 * (1.0 + cos(M_PI * (double)(i + 1) / (double)fo));
        x[n - fo + i] *= (float)g;
    }
}

double mg_stem_level(float *x, size_t n, int rate, double mean_vel, double max_gain)
{
    const size_t blk = (size_t)rate / 10;
    double max_ms = 0.0;
    float peak = 0.0f;
    for (size_t i = 0; i < n; i += blk) {
        size_t e = i + blk < n ? i + blk : n;
        double ms = 0.0;
        for (size_t j = i; j < e; j++) {
            ms += (double)x[j] * x[j];
            if (fabsf(x[j]) > peak) peak = fabsf(x[j]);
        }
        ms /= (double)(e - i);
        if (ms > max_ms) max_ms = ms;
    }
    if (peak == 0.0f) return 1.0;
    double sum = 0.0;
    size_t nb = 0;
    for (size_t i = 0; i < n; i += blk) {
        size_t e = i + blk < n ? i + blk : n;
        double ms = 0.0;
        for (size_t j = i; j < e; j++) ms += (double)x[j] * x[j];
        ms /= (double)(e - i);
        if (ms >= max_ms * 1e-3) {
            sum += ms;
            nb++;
        }
    }
    double target = MG_STEM_RMS * s_vel_amp((int)lround(mean_vel)) / s_vel_amp(100);
    double g = target / sqrt(sum / (double)nb);
    if (g > max_gain) g = max_gain;
    if (g * peak > 0.95) g = 0.95 / peak;
    for (size_t i = 0; i < n; i++) x[i] *= (float)g;
    return g;
}

int mg_stems_mix_guard(mg_stem_t *st, int n_stems, size_t frames)
{
    float *g = malloc(3 * (size_t)n_stems * sizeof *g); /* mono, left, right per stem */
    if (!g) return -1;
    for (int k = 0; k < n_stems; k++) {
        double pan = st[k].pan < -1.0f ? -1.0 : st[k].pan > 1.0f ? 1.0 : st[k].pan;
        double th = (pan + 1.0) * M_PI / 4.0;
        g[3 * k] = st[k].gain;
        g[3 * k + 1] = (float)(st[k].gain * cos(th));
        g[3 * k + 2] = (float)(st[k].gain * sin(th));
    }
    float peak = 0.0f;
    for (size_t i = 0; i < frames; i++) {
        float m = 0.0f, l = 0.0f, r = 0.0f;
        for (int k = 0; k < n_stems; k++) {
            float x = st[k].samples[i];
            m += g[3 * k] * x;
            l += g[3 * k + 1] * x;
            r += g[3 * k + 2] * x;
        }
        m = fmaxf(fabsf(m), fmaxf(fabsf(l), fabsf(r)));
        if (m > peak) peak = m;
    }
    free(g);
    if (peak <= MG_MIX_PEAK) return 0;
    float sc = MG_MIX_PEAK / peak;
    for (int k = 0; k < n_stems; k++)
        for (size_t i = 0; i < frames; i++) st[k].samples[i] *= sc;
    return 0;
}
