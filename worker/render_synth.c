/* render_synth.c - the procedural CPU renderer (render.h, `--renderer synth`): plays the
 * composer's score (composer/composer.h) with small procedural voices; the fallback when the
 * neural renderer (render_wavernn.c) is not wanted or its model is not available. It makes no
 * musical decisions: every note, velocity, instrument, gain and pan comes from the score; the
 * renderer only chooses how a family sounds.
 *
 * Flow: mg_compose -> per score stem, every note through its family's voice into a mono
 * buffer at 24 kHz (piano: a filtered struck-string spectrum; electric piano: FM; guitar,
 * harp, pizzicato: Karplus-Strong; lead: additive; strings: a bowed ensemble; pad: a
 * detuned pair; bass: FM; drums: GM percussion keys onto synthesised kit pieces) -> room
 * reverb (amount by family) -> fade in 5 ms, fade out after the last onset -> stem level
 * -> mix peak guard (the last three in stems.c, shared with render_wavernn.c).
 * A loop (score->loop) is played into its period plus S_LOOP_TAIL_S, so that releases and the
 * room ring on past the end as they would on a repeat; that tail is then added onto the start
 * (mg_audio_fold_loop), there are no fades, and the audio is marked as one period of a loop.
 * Deterministic in the spec: noise comes from a generator seeded by spec->seed per stem.
 */
#include "render.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../composer/composer.h"
#include "stems.h"

#define S_RATE 24000
#define S_TAB_BITS 12
#define S_TAB (1 << S_TAB_BITS) /* wavetable length; phases are 32-bit fixed point */
#define S_MIPS 7               /* band-limited tables per timbre: 64, 32, ... 1 harmonics */
#define S_KS_MAX 4096           /* longest Karplus-Strong loop: 24000 / 4096 = 5.9 Hz */

#define S_ID "mg-sketch-synth 0.2 composer " MG_COMPOSER_VERSION

/* What a loop renders past its end before folding it into the start. The longest sound after
 * a note-off is a crash cymbal (2.2 s) or a harp's release (5 x 0.35 s); the room's combs
 * (feedback 0.8 every 25-31 ms) fall 60 dB in about 0.9 s. 4 s leaves them more than 60 dB
 * down, and the kit and the voices stop their own sounds well before. */
#define S_LOOP_TAIL_S 4.0

/* ---- voices ------------------------------------------------------------------------- */

typedef enum {
    S_V_PIANO, S_V_EPIANO, S_V_PLUCK, S_V_LEAD, S_V_STRINGS, S_V_PAD, S_V_BASS, S_V_DRUMS
} s_voice_t;

/* Room reverb per voice: sustained families sit further back, bass stays dry. */
static const float s_voice_wet[] = {
    [S_V_PIANO] = 0.25f, [S_V_EPIANO] = 0.25f, [S_V_PLUCK] = 0.22f, [S_V_LEAD] = 0.28f,
    [S_V_STRINGS] = 0.38f, [S_V_PAD] = 0.40f, [S_V_BASS] = 0.0f, [S_V_DRUMS] = 0.10f,
};

/* The voice for a score stem: its family, refined by GM program where one family holds
 * instruments that are played differently (pizzicato and harp are plucked, GM 4 is an
 * electric piano). */
static s_voice_t s_voice_for(const mg_score_stem_t *st)
{
    if (st->is_drum) return S_V_DRUMS;
    switch (st->family) {
    case MG_FAMILY_PIANO: return st->program == 4 ? S_V_EPIANO : S_V_PIANO;
    case MG_FAMILY_GUITAR: return S_V_PLUCK;
    case MG_FAMILY_STRINGS: return st->program == 45 || st->program == 46 ? S_V_PLUCK : S_V_STRINGS;
    case MG_FAMILY_BASS: return S_V_BASS;
    case MG_FAMILY_LEAD: return S_V_LEAD;
    case MG_FAMILY_PAD: return S_V_PAD;
    case MG_FAMILY_DRUMS: return S_V_DRUMS;
    default: return S_V_LEAD;
    }
}

typedef struct {
    size_t frames;
    uint32_t noise;            /* xorshift32: drum noise and pluck excitation */
    float sine[S_TAB + 1];
    float pad[S_TAB + 1];      /* six harmonics rolling off as k^-1.4: soft */
    float saw[S_MIPS][S_TAB + 1];   /* 1/k: strings, bright pads */
    float piano[S_MIPS][S_TAB + 1]; /* sin(pi k b)/k, b = 0.12: a string struck near its end */
    float ks[S_KS_MAX];        /* the Karplus-Strong loop, reused note after note */
} s_synth_t;

static inline float s_noise(s_synth_t *s)
{
    uint32_t x = s->noise;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->noise = x;
    return (float)(int32_t)x * (1.0f / 2147483648.0f);
}

/* Table lookup at a 32-bit phase (one cycle = 2^32), linearly interpolated. */
static inline float s_osc(const float *t, uint32_t ph)
{
    uint32_t i = ph >> (32 - S_TAB_BITS);
    float f = (float)(ph & ((1u << (32 - S_TAB_BITS)) - 1)) * (1.0f / (float)(1u << (32 - S_TAB_BITS)));
    return t[i] + f * (t[i + 1] - t[i]);
}

/* The table of a band-limited set whose harmonics all stay under 0.46 x the rate at hz. */
static const float *s_mip(const float (*set)[S_TAB + 1], double hz)
{
    int j = 0;
    while (j < S_MIPS - 1 && hz * (64 >> j) > 0.46 * S_RATE) j++;
    return set[j];
}

static inline uint32_t s_inc(double hz) { return (uint32_t)(hz / S_RATE * 4294967296.0); }

/* A phase offset of x cycles (phase modulation), wrapping like the accumulator. */
static inline uint32_t s_cycles(float x) { return (uint32_t)(int64_t)(x * 4294967296.0f); }

static double s_midi_hz(double m) { return 440.0 * pow(2.0, (m - 69.0) / 12.0); }

/* Velocity to amplitude: (v/127)^1.5, about 26 dB from velocity 17 to 127. */
static float s_vel_amp(int vel) { return powf((float)vel / 127.0f, 1.5f); }

/* Per-sample factor of an exponential decay with time constant tau seconds. */
static float s_decay(double tau) { return (float)exp(-1.0 / (tau * S_RATE)); }

/* Sample range [a, b) of a sound starting at t0 seconds and lasting len seconds, clipped
 * to the stem. Returns 0 when nothing of it is inside. */
static int s_span(const s_synth_t *s, double t0, double len, size_t *a, size_t *b)
{
    double st = floor(t0 * S_RATE + 0.5), en = st + ceil(len * S_RATE);
    if (st < 0.0) st = 0.0;
    if (st >= (double)s->frames) return 0;
    *a = (size_t)st;
    *b = en > (double)s->frames ? s->frames : (size_t)en;
    return *b > *a;
}

typedef struct { float a, d, s, r; } s_adsr_t; /* seconds, seconds, level, seconds */

/* Envelope at t seconds after note-on for a note held gate seconds. */
static inline float s_adsr(const s_adsr_t *e, float t, float gate)
{
    float lv, tt = t < gate ? t : gate;
    if (tt < e->a) lv = tt / e->a;
    else if (tt < e->a + e->d) lv = 1.0f - (1.0f - e->s) * (tt - e->a) / e->d;
    else lv = e->s;
    if (t >= gate) {
        float k = 1.0f - (t - gate) / e->r;
        lv *= k > 0.0f ? k * k : 0.0f;
    }
    return lv;
}

/* Piano (GM 0, 1 and the mallets the composer maps there): the spectrum of a string
 * struck near its end through two one-pole low-passes whose cutoff falls after the hammer
 * (harder notes start brighter), a prompt then a long decay (lower strings ring longer),
 * a slightly sharp second partial for a piano's stretched overtones, a hammer tick; the
 * damper stops the note at its end. */
static void s_piano(s_synth_t *s, float *out, double t0, double gate, int midi, int vel, int program)
{
    const double rel = 0.10;
    size_t a, b;
    if (!s_span(s, t0, gate + 5.0 * rel, &a, &b)) return;
    double f = s_midi_hz(midi);
    double tau2 = 2.2 * pow(2.0, (60.0 - midi) / 20.0);
    if (tau2 < 0.5) tau2 = 0.5;
    if (tau2 > 6.0) tau2 = 6.0;
    float v = (float)vel / 127.0f, amp = 0.5f * s_vel_amp(vel);
    const float *tab = s_mip(s->piano, f);
    /* cutoff above the fundamental: (1 + bw) f falling to f, plus 300 Hz */
    float bw = 3.0f + 14.0f * v + (program == 1 ? 5.0f : 0.0f), ebw = 1.0f, dbw = s_decay(0.30);
    float e1 = 0.5f, e2 = 0.5f, eh = 0.12f, d1 = s_decay(0.18), d2 = s_decay(tau2);
    float dh = s_decay(0.4), dr = s_decay(rel), dk = s_decay(0.0015), ek = 0.25f * v;
    uint32_t ph = 0, ph2 = 0, inc = s_inc(f), inc2 = s_inc(2.0023 * f);
    size_t gate_i = a + (size_t)(gate * S_RATE), att = (size_t)(0.002 * S_RATE);
    float rl = 1.0f, lp1 = 0.0f, lp2 = 0.0f, c = 1.0f;
    for (size_t i = a; i < b; i++) {
        size_t k = i - a;
        if ((k & 15) == 0) { /* the filter coefficient, every 16 samples */
            double fc = f * (1.0 + bw * ebw) + 300.0;
            c = fc >= 0.45 * S_RATE ? 1.0f : (float)(1.0 - exp(-2.0 * M_PI * fc / S_RATE));
        }
        float x = s_osc(tab, ph) + ek * s_noise(s);
        lp1 += c * (x - lp1);
        lp2 += c * (lp1 - lp2);
        float y = lp2 + eh * s_osc(s->sine, ph2);
        float env = (e1 + e2) * rl * (k < att ? (float)k / (float)att : 1.0f);
        out[i] += amp * env * y;
        ph += inc;
        ph2 += inc2;
        e1 *= d1;
        e2 *= d2;
        eh *= dh;
        ek *= dk;
        ebw *= dbw;
        if (i >= gate_i) rl *= dr;
    }
}

/* Electric piano (GM 4): FM 1:1 whose index falls after the strike, a bell-like tine at
 * four times the pitch in the first 50 ms, a long decay; velocity brightens the strike. */
static void s_epiano(s_synth_t *s, float *out, double t0, double gate, int midi, int vel)
{
    const double rel = 0.15;
    size_t a, b;
    if (!s_span(s, t0, gate + 5.0 * rel, &a, &b)) return;
    double tau2 = 2.8 * pow(2.0, (60.0 - midi) / 20.0);
    if (tau2 < 0.5) tau2 = 0.5;
    if (tau2 > 6.0) tau2 = 6.0;
    float v = (float)vel / 127.0f, amp = 0.5f * s_vel_amp(vel);
    float e1 = 0.5f, e2 = 0.5f, ei = 1.0f + 1.4f * v, eh = 0.14f;
    float d1 = s_decay(0.25), d2 = s_decay(tau2), di = s_decay(0.30), dh = s_decay(0.05), dr = s_decay(rel);
    uint32_t ph = 0, inc = s_inc(s_midi_hz(midi));
    size_t gate_i = a + (size_t)(gate * S_RATE), att = (size_t)(0.002 * S_RATE);
    float rl = 1.0f;
    for (size_t i = a; i < b; i++) {
        size_t k = i - a;
        float y = s_osc(s->sine, ph + s_cycles((ei + 0.25f) * 0.15915494f * s_osc(s->sine, ph)));
        y += eh * s_osc(s->sine, 4u * ph);
        float env = (e1 + e2) * rl * (k < att ? (float)k / (float)att : 1.0f);
        out[i] += amp * env * y;
        ph += inc;
        e1 *= d1;
        e2 *= d2;
        ei *= di;
        eh *= dh;
        if (i >= gate_i) rl *= dr;
    }
}

/* Plucked strings (guitar, GM 24/25; pizzicato 45; harp 46): Karplus-Strong. A burst of
 * filtered noise (brighter with velocity, comb-filtered at the plucking point) circulates
 * in a loop of one period with a two-point average and a first-order allpass for the
 * fractional part of the period; the loop gain sets the ring time. Released notes are
 * damped in 40 ms (the harp rings on longer). */
static void s_pluck(s_synth_t *s, float *out, double t0, double gate, int midi, int vel, int program)
{
    double f = s_midi_hz(midi), period = S_RATE / f;
    while (period > S_KS_MAX - 2) period *= 0.5;
    double d = period - 0.5; /* the average delays half a sample */
    int n = (int)(d - 0.1);
    if (n < 2) n = 2;
    double frac = d - n;
    float c = (float)((1.0 - frac) / (1.0 + frac));
    double tau, rel;
    float lp, pick;
    float v = (float)vel / 127.0f;
    switch (program) {
    case 45: tau = 0.22; rel = 0.05; lp = 0.15f + 0.30f * v; pick = 0.5f; break;  /* pizzicato */
    case 46: tau = 2.4; rel = 0.35; lp = 0.12f + 0.30f * v; pick = 0.0f; break;   /* harp */
    case 24: tau = 1.6; rel = 0.04; lp = 0.15f + 0.45f * v; pick = 0.20f; break;  /* nylon */
    default: tau = 2.0; rel = 0.04; lp = 0.20f + 0.45f * v; pick = 0.12f; break;  /* steel */
    }
    tau *= pow(2.0, (48.0 - midi) / 24.0); /* higher strings ring shorter */
    if (tau < 0.12) tau = 0.12;
    size_t a, b;
    if (!s_span(s, t0, gate + 5.0 * rel, &a, &b)) return;
    float rho = (float)exp(-1.0 / (f * tau));
    float *ks = s->ks, y = 0.0f, mean = 0.0f;
    for (int k = 0; k < n; k++) {
        y += lp * (s_noise(s) - y);
        ks[k] = y;
    }
    int back = (int)(pick * n + 0.5f);
    if (back > 0)
        for (int k = n - 1; k >= back; k--) ks[k] -= ks[k - back];
    double ss = 0.0;
    for (int k = 0; k < n; k++) mean += ks[k];
    mean /= (float)n;
    for (int k = 0; k < n; k++) {
        ks[k] -= mean;
        ss += (double)ks[k] * ks[k];
    }
    float norm = ss > 0.0 ? (float)(0.7 / sqrt(ss / n)) : 0.0f;
    float amp = 0.5f * s_vel_amp(vel) * norm, last = 0.0f, apx = 0.0f, apy = 0.0f, rl = 1.0f;
    float dr = s_decay(rel);
    size_t gate_i = a + (size_t)(gate * S_RATE);
    int k = 0;
    for (size_t i = a; i < b; i++) {
        float o = ks[k];
        float avg = 0.5f * (o + last);
        last = o;
        float ap = c * avg + apx - c * apy;
        apx = avg;
        apy = ap;
        ks[k] = ap * rho;
        if (++k == n) k = 0;
        out[i] += amp * rl * o;
        if (i >= gate_i) rl *= dr;
    }
}

/* Leads (GM 80 square, 81 saw, 82 calliope/flute, 56 trumpet, 59 muted trumpet, 60 horn,
 * 61 brass; anything else the soft lead): a few harmonics with delayed vibrato. Velocity
 * brightens the upper harmonics; brass also brightens as its envelope opens. */
typedef struct { int program; float h[6]; s_adsr_t env; float vib, breath; int brass; } s_lead_t;
static const s_lead_t s_leads[] = {
    {80, {1.0f, 0.0f, 0.33f, 0.0f, 0.20f, 0.0f}, {0.010f, 0.20f, 0.85f, 0.08f}, 0.004f, 0.0f, 0},
    {81, {1.0f, 0.50f, 0.33f, 0.25f, 0.20f, 0.16f}, {0.010f, 0.20f, 0.85f, 0.10f}, 0.004f, 0.0f, 0},
    {82, {1.0f, 0.12f, 0.05f, 0.0f, 0.0f, 0.0f}, {0.060f, 0.20f, 0.90f, 0.12f}, 0.005f, 0.05f, 0},
    {56, {1.0f, 0.70f, 0.50f, 0.35f, 0.25f, 0.15f}, {0.030f, 0.15f, 0.85f, 0.08f}, 0.003f, 0.0f, 1},
    {59, {1.0f, 0.45f, 0.20f, 0.10f, 0.05f, 0.0f}, {0.030f, 0.15f, 0.80f, 0.08f}, 0.003f, 0.0f, 1},
    {60, {1.0f, 0.40f, 0.15f, 0.06f, 0.02f, 0.0f}, {0.060f, 0.20f, 0.85f, 0.15f}, 0.002f, 0.0f, 1},
    {61, {1.0f, 0.60f, 0.40f, 0.25f, 0.15f, 0.10f}, {0.040f, 0.20f, 0.85f, 0.12f}, 0.002f, 0.0f, 1},
    {-1, {1.0f, 0.28f, 0.10f, 0.0f, 0.0f, 0.0f}, {0.045f, 0.20f, 0.80f, 0.18f}, 0.0045f, 0.0f, 0},
};

static void s_lead(s_synth_t *s, float *out, double t0, double gate, int midi, int vel, int program)
{
    const s_lead_t *L = &s_leads[sizeof s_leads / sizeof s_leads[0] - 1];
    for (size_t k = 0; k + 1 < sizeof s_leads / sizeof s_leads[0]; k++)
        if (s_leads[k].program == program) L = &s_leads[k];
    size_t a, b;
    if (!s_span(s, t0, gate + L->env.r, &a, &b)) return;
    double f = s_midi_hz(midi);
    int kmax = 6;
    while (kmax > 1 && kmax * f > 0.45 * S_RATE) kmax--;
    float v = (float)vel / 127.0f, bright = 0.55f + 0.45f * v, amp = 0.30f * s_vel_amp(vel);
    float w[6];
    for (int k = 0; k < 6; k++) w[k] = k < kmax ? L->h[k] * powf(bright, (float)k) : 0.0f;
    uint32_t ph = 0, vph = 0, inc = s_inc(f), vinc = s_inc(5.3);
    float dt = 1.0f / S_RATE, gt = (float)gate;
    float prev = 0.0f;
    for (size_t i = a; i < b; i++) {
        float t = (float)(i - a) * dt;
        float env = s_adsr(&L->env, t, gt);
        float y = 0.0f;
        if (L->brass) { /* the upper harmonics follow the envelope: a brassy opening */
            float o = 0.35f + 0.65f * env;
            float ok = 1.0f;
            for (int k = 0; k < kmax; k++, ok *= o) y += w[k] * ok * s_osc(s->sine, (uint32_t)(k + 1) * ph);
        } else {
            for (int k = 0; k < kmax; k++)
                if (w[k] != 0.0f) y += w[k] * s_osc(s->sine, (uint32_t)(k + 1) * ph);
        }
        if (L->breath > 0.0f) { /* a little air on a flute: differenced noise */
            float nz = s_noise(s);
            y += L->breath * (nz - prev);
            prev = nz;
        }
        out[i] += amp * env * y;
        float vib = 1.0f + L->vib * s_osc(s->sine, vph) * (t < 0.35f ? t / 0.35f : 1.0f);
        ph += (uint32_t)(inc * vib);
        vph += vinc;
    }
}

/* Bowed strings (violin 40, cello 42, ensembles 48/49): a band-limited saw through a
 * one-pole low-pass opened by velocity; solos are one oscillator with delayed vibrato, an
 * ensemble three, 7 cents apart, each with its own vibrato phase. The bow's attack is
 * slower for the slow ensemble (49) and quicker when played harder. */
static void s_strings(s_synth_t *s, float *out, double t0, double gate, int midi, int vel, int program)
{
    int solo = program == 40 || program == 42;
    float v = (float)vel / 127.0f;
    float att = (solo ? 0.08f : program == 49 ? 0.30f : 0.15f) * (1.3f - 0.6f * v);
    s_adsr_t e = {att, 0.3f, 0.9f, solo ? 0.15f : 0.30f};
    size_t a, b;
    if (!s_span(s, t0, gate + e.r, &a, &b)) return;
    double f = s_midi_hz(midi);
    const float *tab = s_mip(s->saw, f * 1.01);
    double fc = 3.0 * f + 1200.0 + 2500.0 * v;
    float c = fc >= 0.45 * S_RATE ? 1.0f : (float)(1.0 - exp(-2.0 * M_PI * fc / S_RATE));
    float amp = 0.30f * s_vel_amp(vel), lp = 0.0f;
    int nosc = solo ? 1 : 3;
    static const double detune[3] = {1.0, 1.0040514, 0.9959650}; /* 0, +7, -7 cents */
    uint32_t ph[3], inc[3], vph[3], vinc = s_inc(5.5);
    for (int k = 0; k < 3; k++) {
        ph[k] = (uint32_t)k * 0x55555555u;
        vph[k] = (uint32_t)k * 0x4F1BBCDCu;
        inc[k] = s_inc(f * detune[k]);
    }
    float dt = 1.0f / S_RATE, gt = (float)gate, depth = solo ? 0.0035f : 0.0025f;
    float norm = amp / sqrtf((float)nosc);
    for (size_t i = a; i < b; i++) {
        float t = (float)(i - a) * dt;
        float y = 0.0f, ramp = t < 0.25f ? t / 0.25f : 1.0f;
        for (int k = 0; k < nosc; k++) {
            y += s_osc(tab, ph[k]);
            ph[k] += (uint32_t)(inc[k] * (1.0f + depth * ramp * s_osc(s->sine, vph[k])));
            vph[k] += vinc;
        }
        lp += c * (y - lp);
        out[i] += norm * s_adsr(&e, t, gt) * lp;
    }
}

/* Pads (GM 88-95, organ and choir included): two oscillators 5 cents apart, a slow swell
 * (polysynth 90 speaks faster); the halo pad (94) is brighter, the choir (91) breathes
 * with a slow vibrato. */
static void s_pad(s_synth_t *s, float *out, double t0, double gate, int midi, int vel, int program)
{
    float v = (float)vel / 127.0f;
    s_adsr_t e = {program == 90 ? 0.06f : 0.45f * (1.2f - 0.4f * v), 0.6f, 0.8f, 0.6f};
    size_t a, b;
    if (!s_span(s, t0, gate + e.r, &a, &b)) return;
    double f = s_midi_hz(midi);
    float bright = program == 94 || program == 90 ? 0.3f : 0.0f;
    const float *saw = s_mip(s->saw, f * 1.003);
    float depth = program == 91 ? 0.004f : 0.0f, amp = 0.22f * s_vel_amp(vel);
    uint32_t p1 = 0, p2 = 0x6A09E667u, vph = 0, vinc = s_inc(4.8);
    uint32_t i1 = s_inc(f * 1.0028922), i2 = s_inc(f / 1.0028922);
    float dt = 1.0f / S_RATE, gt = (float)gate;
    for (size_t i = a; i < b; i++) {
        float t = (float)(i - a) * dt;
        float y = (1.0f - bright) * (s_osc(s->pad, p1) + s_osc(s->pad, p2)) +
                  bright * (s_osc(saw, p1) + s_osc(saw, p2));
        out[i] += amp * s_adsr(&e, t, gt) * y;
        float vib = depth != 0.0f ? 1.0f + depth * s_osc(s->sine, vph) : 1.0f;
        p1 += (uint32_t)(i1 * vib);
        p2 += (uint32_t)(i2 * vib);
        vph += vinc;
    }
}

/* Bass (GM 32-39): FM 1:1 with a quick index fall (the finger or pick on the string) and
 * a slow decay under the sustain; pick (34) and synth bass (38) are brighter, sub bass
 * (39) nearly a sine. */
static void s_bass(s_synth_t *s, float *out, double t0, double gate, int midi, int vel, int program)
{
    const double rel = 0.08;
    size_t a, b;
    if (!s_span(s, t0, gate + 4.0 * rel, &a, &b)) return;
    float v = (float)vel / 127.0f;
    float idx0 = program == 34 ? 1.6f : program == 38 ? 1.4f : program == 39 ? 0.15f : 0.9f;
    float idx_floor = program == 38 ? 0.6f : program == 39 ? 0.05f : 0.15f;
    idx0 *= 0.6f + 0.6f * v;
    float amp = 0.55f * s_vel_amp(vel), ei = idx0, e1 = 0.35f, e2 = 0.65f, rl = 1.0f;
    float di = s_decay(program == 34 ? 0.05 : 0.08), d1 = s_decay(0.12), d2 = s_decay(2.5);
    float dr = s_decay(rel), h2 = program == 39 ? 0.1f : 0.25f;
    uint32_t ph = 0, inc = s_inc(s_midi_hz(midi));
    size_t gate_i = a + (size_t)(gate * S_RATE), att = (size_t)(0.005 * S_RATE);
    for (size_t i = a; i < b; i++) {
        size_t k = i - a;
        float y = s_osc(s->sine, ph + s_cycles((ei + idx_floor) * 0.15915494f * s_osc(s->sine, ph))) +
                  h2 * s_osc(s->sine, 2u * ph);
        out[i] += amp * (e1 + e2) * rl * (k < att ? (float)k / (float)att : 1.0f) * y;
        ph += inc;
        ei *= di;
        e1 *= d1;
        e2 *= d2;
        if (i >= gate_i) rl *= dr;
    }
}

/* ---- drums -------------------------------------------------------------------------- */

typedef enum {
    S_KICK, S_SNARE, S_RIM, S_CLAP, S_HAT, S_PEDAL_HAT, S_OPEN_HAT, S_CRASH, S_RIDE, S_TOM,
    S_TAMB, S_SHAKER, S_NOISE
} s_drum_t;

/* GM percussion key -> kit piece (tom pitch in *hz). */
static s_drum_t s_drum_kind(int key, double *hz)
{
    switch (key) {
    case 35: case 36: return S_KICK;
    case 38: case 40: return S_SNARE;
    case 37: return S_RIM;
    case 39: return S_CLAP;
    case 42: return S_HAT;
    case 44: return S_PEDAL_HAT;
    case 46: return S_OPEN_HAT;
    case 49: case 52: case 55: case 57: return S_CRASH;
    case 51: case 53: case 59: return S_RIDE;
    case 41: case 43: case 45: case 47: case 48: case 50:
        *hz = 75.0 * pow(2.0, (key - 41) / 6.6); /* low floor tom 75 Hz .. high tom 190 Hz */
        return S_TOM;
    case 54: return S_TAMB;
    case 69: case 70: return S_SHAKER;
    default: return S_NOISE;
    }
}

/* Six square waves at the TR-808 cymbal ratios: the metallic part of hats and cymbals. */
typedef struct { uint32_t ph[6], inc[6]; } s_metal_t;

static void s_metal_init(s_metal_t *m, double scale)
{
    static const double hz[6] = {205.3, 304.4, 369.6, 522.7, 540.0, 800.0};
    for (int k = 0; k < 6; k++) {
        m->ph[k] = (uint32_t)k * 0x9E3779B9u;
        m->inc[k] = s_inc(hz[k] * scale);
    }
}

static inline float s_metal(s_metal_t *m)
{
    float y = 0.0f;
    for (int k = 0; k < 6; k++) {
        y += (m->ph[k] & 0x80000000u) ? 1.0f : -1.0f;
        m->ph[k] += m->inc[k];
    }
    return y * (1.0f / 6.0f);
}

/* One hit of key at t0 with velocity vel, on kit program (25 is the TR-808: long kick;
 * 40 brushes: a swishing snare). max_s cuts the sound (an open hat choked by the next
 * closed one). */
static void s_drum(s_synth_t *s, float *out, double t0, int key, int vel, int program, double max_s)
{
    double tom_hz = 100.0;
    s_drum_t kind = s_drum_kind(key, &tom_hz);
    int is808 = program == 25, brush = program == 40;
    static const float len_s[] = {
        [S_KICK] = 0.5f, [S_SNARE] = 0.35f, [S_RIM] = 0.08f, [S_CLAP] = 0.3f, [S_HAT] = 0.12f,
        [S_PEDAL_HAT] = 0.10f, [S_OPEN_HAT] = 0.7f, [S_CRASH] = 2.2f, [S_RIDE] = 1.2f,
        [S_TOM] = 0.6f, [S_TAMB] = 0.3f, [S_SHAKER] = 0.12f, [S_NOISE] = 0.12f,
    };
    double len = len_s[kind];
    if (kind == S_KICK && is808) len = 1.0;
    if (kind == S_SNARE && brush) len = 0.45;
    if (len > max_s) len = max_s;
    size_t a, b;
    if (!s_span(s, t0, len, &a, &b)) return;
    float v = (float)vel / 127.0f, amp = s_vel_amp(vel);
    s_metal_t m;
    s_metal_init(&m, kind == S_RIDE ? 1.25 : 1.8);
    float dt = 1.0f / S_RATE;
    float p1 = 0.0f, p2 = 0.0f, bp = 0.0f, lo = 0.0f; /* filter states */
    uint32_t ph = 0, ph2 = 0;
    float e1 = 1.0f, e2 = 1.0f, d1 = 1.0f, d2 = 1.0f;
    switch (kind) {
    case S_KICK: d1 = s_decay(is808 ? 0.45 : 0.20); break;
    case S_SNARE: d1 = s_decay(brush ? 0.16 : 0.09); d2 = s_decay(0.05); break;
    case S_RIM: d1 = s_decay(0.010); d2 = s_decay(0.006); break;
    case S_CLAP: d1 = s_decay(0.07); break;
    case S_HAT: d1 = s_decay(0.022); break;
    case S_PEDAL_HAT: d1 = s_decay(0.016); break;
    case S_OPEN_HAT: d1 = s_decay(0.16); break;
    case S_CRASH: d1 = s_decay(0.60); break;
    case S_RIDE: d1 = s_decay(0.45); d2 = s_decay(0.15); break;
    case S_TOM: d1 = s_decay(fmin(0.35, 30.0 / tom_hz)); break; /* low toms ring longer */
    case S_TAMB: d1 = s_decay(0.06); break;
    case S_SHAKER: d1 = s_decay(0.035); break;
    default: d1 = s_decay(0.03); break;
    }
    for (size_t i = a; i < b; i++) {
        float t = (float)(i - a) * dt, y;
        switch (kind) {
        case S_KICK: { /* a sine falling in pitch, a click on top */
            double f = is808 ? 45.0 + 60.0 * exp(-t / 0.05) : 48.0 + 110.0 * exp(-t / 0.03);
            y = 1.0f * e1 * s_osc(s->sine, ph);
            if (t < 0.003f) y += 0.3f * v * s_noise(s) * (1.0f - t / 0.003f);
            ph += s_inc(f);
            break;
        }
        case S_SNARE: { /* noise (differenced: bright) and a two-mode drum head */
            float n = s_noise(s), hp = n - p1;
            p1 = n;
            if (brush) {
                lo += 0.35f * (hp - lo);
                float sw = t < 0.02f ? t / 0.02f : 1.0f;
                y = 0.45f * lo * e1 * sw;
            } else {
                y = (0.30f + 0.25f * v) * hp * e1 +
                    0.40f * e2 * (s_osc(s->sine, ph) + 0.6f * s_osc(s->sine, ph2));
            }
            ph += s_inc(185.0);
            ph2 += s_inc(330.0);
            break;
        }
        case S_RIM: { /* a woody click: two short modes and a tick of noise */
            y = 0.9f * e1 * (s_osc(s->sine, ph) + 0.7f * s_osc(s->sine, ph2)) + 0.6f * e2 * s_noise(s);
            ph += s_inc(520.0);
            ph2 += s_inc(1240.0);
            break;
        }
        case S_CLAP: { /* band-passed noise: three quick bursts, then the room */
            float n = s_noise(s);
            /* state-variable band-pass around 1.1 kHz */
            const float fc = 0.2870f, q = 0.6f; /* 2 sin(pi 1100 / 24000) */
            lo += fc * bp;
            float hi = n - lo - q * bp;
            bp += fc * hi;
            float g;
            if (t < 0.03f) {
                float tb = fmodf(t, 0.01f);
                g = expf(-tb / 0.004f);
            } else {
                g = e1 * 1.5f;
            }
            y = 1.3f * bp * g;
            break;
        }
        case S_HAT: case S_PEDAL_HAT: case S_OPEN_HAT: case S_CRASH: case S_TAMB: case S_SHAKER: {
            /* noise and metal, high-passed twice by differencing */
            float mw = kind == S_CRASH ? 0.3f : kind == S_SHAKER ? 0.0f : kind == S_TAMB ? 0.25f : 0.5f;
            float x = (1.0f - mw) * s_noise(s) + mw * s_metal(&m);
            float h1 = x - p1;
            p1 = x;
            float h2 = h1 - p2;
            p2 = h1;
            /* levels against the kick (first 100 ms at equal velocity): a closed hat
             * about 18 dB under it, the crash about 11 dB */
            float g = kind == S_CRASH ? 0.20f : kind == S_PEDAL_HAT ? 0.26f : kind == S_SHAKER ? 0.22f
                    : kind == S_TAMB ? 0.30f : kind == S_OPEN_HAT ? 0.24f : 0.34f;
            float att = kind == S_SHAKER ? 0.008f : kind == S_CRASH ? 0.002f : 0.0005f;
            y = g * (0.6f + 0.4f * v) * h2 * e1 * (t < att ? t / att : 1.0f);
            if (kind == S_TAMB) y *= 0.7f + 0.3f * s_osc(s->sine, ph); /* the jingles' shimmer */
            ph += s_inc(23.0);
            break;
        }
        case S_RIDE: { /* metal ringing, a short wash of noise */
            float x = 0.8f * s_metal(&m) * e1 + 0.5f * s_noise(s) * e2;
            float h1 = x - p1;
            p1 = x;
            y = 0.42f * h1;
            break;
        }
        case S_TOM: {
            double f = tom_hz * (1.0 + 0.5 * exp(-t / 0.04));
            y = 0.85f * e1 * s_osc(s->sine, ph);
            if (t < 0.005f) y += 0.25f * s_noise(s) * (1.0f - t / 0.005f);
            ph += s_inc(f);
            break;
        }
        default: { /* any other percussion: a short, bright noise hit */
            float n = s_noise(s);
            y = 0.30f * (n - p1) * e1;
            p1 = n;
            break;
        }
        }
        e1 *= d1;
        e2 *= d2;
        /* 1 ms fade at the cut so a truncated tail does not click */
        float cut = (float)(b - i) / (0.001f * S_RATE);
        out[i] += amp * y * (cut < 1.0f ? cut : 1.0f);
    }
}

/* ---- the room, the ends, the levels ---------------------------------------------------- */

/* Small Schroeder reverb (4 combs, 2 allpasses), mixed in place: it glues the dry notes
 * into a room. Delay lengths are Freeverb's, scaled to 24 kHz. 0, or -1 on OOM. */
static int s_reverb(float *x, size_t n, float wet)
{
    static const int comb_len[4] = {607, 647, 695, 738}, ap_len[2] = {303, 240};
    float *mem = calloc(607 + 647 + 695 + 738 + 303 + 240, sizeof *mem);
    if (!mem) return -1;
    float *comb[4], *ap[2], lp[4] = {0};
    int ci[4] = {0}, ai[2] = {0};
    float *m = mem;
    for (int k = 0; k < 4; k++) { comb[k] = m; m += comb_len[k]; }
    for (int k = 0; k < 2; k++) { ap[k] = m; m += ap_len[k]; }
    const float fb = 0.80f, damp = 0.30f;
    for (size_t i = 0; i < n; i++) {
        float in = x[i] * 0.25f, y = 0.0f;
        for (int k = 0; k < 4; k++) {
            float o = comb[k][ci[k]];
            lp[k] = o * (1.0f - damp) + lp[k] * damp;
            comb[k][ci[k]] = in + lp[k] * fb;
            if (++ci[k] == comb_len[k]) ci[k] = 0;
            y += o;
        }
        for (int k = 0; k < 2; k++) {
            float b = ap[k][ai[k]];
            ap[k][ai[k]] = y + b * 0.5f;
            y = b - y;
            if (++ai[k] == ap_len[k]) ai[k] = 0;
        }
        x[i] = x[i] * (1.0f - 0.5f * wet) + y * wet;
    }
    free(mem);
    return 0;
}

static void s_wavetables(s_synth_t *s)
{
    for (int i = 0; i <= S_TAB; i++) s->sine[i] = (float)sin(2.0 * M_PI * i / S_TAB);
    float peak = 0.0f;
    for (int i = 0; i <= S_TAB; i++) {
        double v = 0.0;
        for (int k = 1; k <= 6; k++) v += pow(k, -1.4) * sin(2.0 * M_PI * k * i / S_TAB);
        s->pad[i] = (float)v;
        if (fabsf(s->pad[i]) > peak) peak = fabsf(s->pad[i]);
    }
    for (int i = 0; i <= S_TAB; i++) s->pad[i] /= peak;
    /* The band-limited sets: table j holds 64 >> j harmonics; sin(kx) by the Chebyshev
     * recurrence. All tables of a set share the richest one's normalisation, so that
     * switching tables with pitch does not change the level. */
    for (int set = 0; set < 2; set++) {
        float (*t)[S_TAB + 1] = set ? s->piano : s->saw;
        double amp[65];
        for (int k = 1; k <= 64; k++) amp[k] = (set ? fabs(sin(M_PI * k * 0.12)) : 1.0) / k;
        for (int i = 0; i <= S_TAB; i++) {
            double x = 2.0 * M_PI * i / S_TAB, c2 = 2.0 * cos(x), s0 = 0.0, s1 = sin(x), acc = 0.0;
            int next = 64 >> (S_MIPS - 1); /* harmonics in the poorest table */
            int j = S_MIPS - 1;
            for (int k = 1; k <= 64; k++) {
                acc += amp[k] * s1;
                double s2 = c2 * s1 - s0;
                s0 = s1;
                s1 = s2;
                while (j >= 0 && k == next) { /* tables j.. hold harmonics 1..k */
                    t[j][i] = (float)acc;
                    j--;
                    next = j >= 0 ? 64 >> j : 0;
                }
            }
        }
        float pk = 0.0f;
        for (int i = 0; i <= S_TAB; i++) pk = fmaxf(pk, fabsf(t[0][i]));
        for (int j = 0; j < S_MIPS; j++)
            for (int i = 0; i <= S_TAB; i++) t[j][i] /= pk;
    }
}

/* ---- the render ------------------------------------------------------------------------ */

void mg_audio_fold_loop(float *x, size_t period, size_t len)
{
    if (period == 0) return;
    for (size_t i = period; i < len; i++) x[i % period] += x[i];
    for (size_t i = period; i < len; i++) x[i] = 0.0f;
}

/* Plays every note of a score stem into out (s->frames samples, zeroed) with the stem's
 * voice. loop_s > 0: the stem repeats after loop_s seconds (an open hat can be choked by a
 * closed one of the next round). Counts notes in *done and calls progress every step notes of
 * total; returns 0, or -1 when progress asked for cancellation. */
static int s_play_stem(s_synth_t *s, const mg_score_stem_t *st, double loop_s, float *out, int *done,
                       int total, int step, mg_progress_fn progress, void *progress_ctx)
{
    s_voice_t voice = s_voice_for(st);
    for (int j = 0; j < st->n_notes; j++) {
        const mg_score_note_t *n = &st->notes[j];
        switch (voice) {
        case S_V_PIANO: s_piano(s, out, n->start_s, n->duration_s, n->pitch, n->velocity, st->program); break;
        case S_V_EPIANO: s_epiano(s, out, n->start_s, n->duration_s, n->pitch, n->velocity); break;
        case S_V_PLUCK: s_pluck(s, out, n->start_s, n->duration_s, n->pitch, n->velocity, st->program); break;
        case S_V_LEAD: s_lead(s, out, n->start_s, n->duration_s, n->pitch, n->velocity, st->program); break;
        case S_V_STRINGS: s_strings(s, out, n->start_s, n->duration_s, n->pitch, n->velocity, st->program); break;
        case S_V_PAD: s_pad(s, out, n->start_s, n->duration_s, n->pitch, n->velocity, st->program); break;
        case S_V_BASS: s_bass(s, out, n->start_s, n->duration_s, n->pitch, n->velocity, st->program); break;
        case S_V_DRUMS: {
            double max_s = 1e9;
            if (n->pitch == 46) { /* the next closed or pedal hat chokes an open one */
                int q = j + 1;
                for (; q < st->n_notes; q++)
                    if (st->notes[q].pitch == 42 || st->notes[q].pitch == 44) {
                        max_s = st->notes[q].start_s - n->start_s;
                        break;
                    }
                /* a loop: the next one may be in the next round, from the start again */
                for (int r = 0; q == st->n_notes && loop_s > 0.0 && r < j; r++)
                    if (st->notes[r].pitch == 42 || st->notes[r].pitch == 44) {
                        max_s = st->notes[r].start_s + loop_s - n->start_s;
                        break;
                    }
            }
            s_drum(s, out, n->start_s, n->pitch, n->velocity, st->program, max_s);
            break;
        }
        }
        if (++*done % step == 0 && progress && progress(progress_ctx, 0.9 * *done / total) != 0) return -1;
    }
    return 0;
}

static int s_render(const mg_renderer_t *self, const mg_render_spec_t *spec, mg_progress_fn progress,
                    void *progress_ctx, mg_audio_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char cerr[256] = "";
    mg_score_t *score = mg_compose(spec, cerr, sizeof cerr);
    if (!score) {
        mg_set_error(err, errlen, "synth: %s", cerr);
        return MG_RENDER_ERR_PERMANENT;
    }
    int rc = MG_RENDER_ERR_RETRYABLE, ns = score->n_stems;
    /* frames: what is delivered. A loop's is its whole bars, from the score's integer
     * microseconds to the nearest sample; it is rendered with a tail of len - frames. */
    size_t frames = score->loop ? (size_t)((score->duration_us * S_RATE + 500000) / 1000000)
                                : (size_t)llround(spec->duration_s * S_RATE);
    if (frames == 0) frames = 1;
    size_t len = frames + (score->loop ? (size_t)(S_LOOP_TAIL_S * S_RATE) : 0);
    double loop_s = score->loop ? (double)frames / S_RATE : 0.0;
    s_synth_t *s = calloc(1, sizeof *s);
    mg_stem_t *stems = calloc((size_t)ns, sizeof *stems);
    if (!s || !stems) {
        mg_set_error(err, errlen, "synth: out of memory");
        goto done;
    }
    s->frames = len;
    s_wavetables(s);
    int total = 0, done_notes = 0;
    double last_onset = 0.0;
    for (int k = 0; k < ns; k++) {
        const mg_score_stem_t *st = &score->stems[k];
        total += st->n_notes;
        for (int j = 0; j < st->n_notes; j++)
            if (st->notes[j].start_s > last_onset) last_onset = st->notes[j].start_s;
        stems[k].samples = calloc(len, sizeof(float));
        if (!stems[k].samples) {
            mg_set_error(err, errlen, "synth: out of memory for %d stems of %zu samples", ns, len);
            goto done;
        }
        mg_strlcpy(stems[k].name, st->name, sizeof stems[k].name);
        stems[k].gain = (float)st->gain;
        stems[k].pan = (float)st->pan;
    }
    int step = total / 20 > 0 ? total / 20 : 1; /* progress every 5 % of the notes */
    double fade = mg_stem_fade_s(spec->duration_s, last_onset);
    for (int k = 0; k < ns; k++) {
        const mg_score_stem_t *st = &score->stems[k];
        /* Noise differs per stem and per seed, reproducibly (xorshift32 must not be 0). */
        uint64_t z = spec->seed ^ (0x6D672D6E6F697365ull + 0x9E3779B97F4A7C15ull * (uint64_t)(k + 1));
        z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
        s->noise = (uint32_t)(z ^ (z >> 32)) | 1u;
        if (s_play_stem(s, st, loop_s, stems[k].samples, &done_notes, total, step, progress, progress_ctx) != 0) {
            mg_set_error(err, errlen, "synth: cancelled at note %d of %d", done_notes, total);
            rc = MG_RENDER_ERR_CANCELLED;
            goto done;
        }
        float wet = s_voice_wet[s_voice_for(st)];
        if (wet > 0.0f && s_reverb(stems[k].samples, len, wet) != 0) {
            mg_set_error(err, errlen, "synth: out of memory in the reverb");
            goto done;
        }
        /* A loop: every voice and the room are linear in the notes, so the tail added onto the
         * start is exactly what the end leaves ringing on a repeat; no fades. */
        if (score->loop) mg_audio_fold_loop(stems[k].samples, frames, len);
        else mg_stem_fades(stems[k].samples, frames, S_RATE, fade);
        double vsum = 0.0;
        for (int j = 0; j < st->n_notes; j++) vsum += st->notes[j].velocity;
        mg_stem_level(stems[k].samples, frames, S_RATE, st->n_notes ? vsum / st->n_notes : 100.0, HUGE_VAL);
    }
    if (mg_stems_mix_guard(stems, ns, frames) != 0) {
        mg_set_error(err, errlen, "synth: out of memory in the mix guard");
        goto done;
    }
    if (progress && progress(progress_ctx, 1.0) != 0) {
        mg_set_error(err, errlen, "synth: cancelled after the last note");
        rc = MG_RENDER_ERR_CANCELLED;
        goto done;
    }
    out->decision_json = mg_score_decision_json(score);
    if (!out->decision_json) {
        mg_set_error(err, errlen, "synth: out of memory for the decision record");
        goto done;
    }
    /* The score as MIDI, when the job delivers it: the notes the audio plays. */
    if ((spec->output.deliver & MG_DELIVER_MIDI) &&
        mg_score_write_midi(score, &out->midi, &out->midi_len) != 0) {
        mg_set_error(err, errlen, "synth: out of memory for the MIDI file");
        goto done;
    }
    out->sample_rate = S_RATE;
    out->frames = frames;
    out->loop_frames = score->loop ? frames : 0;
    out->stems = stems;
    out->n_stems = ns;
    stems = NULL;
    rc = MG_RENDER_OK;
done:
    if (stems)
        for (int k = 0; k < ns; k++) free(stems[k].samples);
    free(stems);
    free(s);
    mg_score_free(&score);
    return rc;
}

static mg_renderer_t s_synth = {
    .name = "synth",
    .backend = "cpu",
    .device = "cpu",
    .model_name = "mg-sketch-synth",
    .model_version = "0.2 (composer " MG_COMPOSER_VERSION ")",
    .model_license = "Apache-2.0",
    .attribution = "no training data: procedural synthesis playing the mg composer's score "
                   "(interim renderer until the neural model)",
    .render = s_render,
};
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_init(void)
{
    static const char id[] = S_ID;
    mg_sha256_hex(id, sizeof id - 1, s_synth.model_sha256);
}

const mg_renderer_t *mg_renderer_synth(void)
{
    pthread_once(&s_once, s_init);
    return &s_synth;
}
