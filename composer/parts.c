/* parts.c - writes the notes of every stem from the decisions in struct mg_comp: the motif
 * and its development into a melody, chord voicings in the chosen texture, the pad, the
 * bass line and the drum kit, all shaped by each bar's intensity and the emotion cues.
 * Called by compose.c after decide.c; positions are ticks, pitches MIDI, all integer.
 *
 * Patterns are written one character per sixteenth (16 per 4/4 bar, 12 per 3/4 bar):
 * a letter starts a note, '-' holds it, '.' is silence.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PPQ MG_SCORE_PPQ
#define STEP (PPQ / 4)

typedef struct {
    mg_comp_t *c;
    mg_score_t *sc;
    int stem;
    mg_rng_t rng;
} s_ctx_t;

/* ---- shared helpers ------------------------------------------------------------------------ */

static int s_clampi(int x, int lo, int hi) { return x < lo ? lo : x > hi ? hi : x; }

static int64_t s_bar_tick(const mg_comp_t *c, int bar) { return (int64_t)c->bar_start[bar] * PPQ; }
static int s_bar_steps(const mg_comp_t *c, int bar) { return (c->bar_start[bar + 1] - c->bar_start[bar]) * 4; }
static int64_t s_total(const mg_comp_t *c) { return (int64_t)c->n_beats * PPQ; }
static int64_t s_arrival_tick(const mg_comp_t *c) { return c->arrival_beat >= 0 ? (int64_t)c->arrival_beat * PPQ : -1; }

static const mg_chord_t *s_chord_at(const mg_comp_t *c, int64_t tick)
{
    int64_t b = tick / PPQ;
    if (b < 0) b = 0;
    if (b >= c->n_beats) b = c->n_beats - 1;
    return &c->chords[c->beat_chord[b]];
}

/* The next tick after t where the chord changes (or the end). */
static int64_t s_next_change(const mg_comp_t *c, int64_t t)
{
    int64_t b = t / PPQ;
    int cur = c->beat_chord[b < c->n_beats ? b : c->n_beats - 1];
    for (b = b + 1; b < c->n_beats; b++)
        if (c->beat_chord[b] != cur) return b * PPQ;
    return s_total(c);
}

/* Velocity for a note in bar: loudness cue, the bar's intensity, a role offset, an accent,
 * and a random spread that grows with the loudness-variation cue. */
static int s_vel(s_ctx_t *x, int bar, int offset, int accent)
{
    const mg_comp_t *c = x->c;
    int base = 40 + 70 * c->loud / 1000;
    int inten = c->bar_int[bar];
    int v = base * (600 + 400 * inten / 1000) / 1000 + offset + accent;
    int spread = 2 + c->loud_var * 12 / 1000;
    v += mg_rng_range(&x->rng, -spread, spread);
    return s_clampi(v, 1, 127);
}

static int s_add(s_ctx_t *x, int64_t start, int64_t dur, int pitch, int vel)
{
    return mg_stem_add(x->sc, x->stem, start, dur, pitch, vel);
}

/* Off-beat eighths are delayed by the swing amount (offbeat sixteenths by half of it). */
static int64_t s_swing(const mg_comp_t *c, int step)
{
    if (!c->swing) return 0;
    if (step % 4 == 2) return c->swing;
    if (step % 2 == 1) return c->swing / 2;
    return 0;
}

static int s_jitter(s_ctx_t *x)
{
    return x->c->humanize ? mg_rng_range(&x->rng, -x->c->humanize, x->c->humanize) : 0;
}

static int s_chord_pc(const mg_comp_t *c, const mg_chord_t *ch, int k)
{
    return (c->tonic + ch->root + ch->iv[k]) % 12;
}

static int s_is_chord_pc(const mg_comp_t *c, const mg_chord_t *ch, int pc)
{
    for (int k = 0; k < ch->n; k++)
        if (s_chord_pc(c, ch, k) == pc) return 1;
    return 0;
}

/* ---- melody --------------------------------------------------------------------------------- */

/* The mode's scale with the chord's tones substituted for the scale notes they alter (the
 * raised leading tone over V in minor, the flat seventh over bVII in major, ...). Each
 * chord tone replaces the degree it stands on: root degree + 2 per third. Semitones above
 * the tonic. */
static int s_pc_dist(int a, int b)
{
    int d = ((a - b) % 12 + 12) % 12;
    return d > 6 ? 12 - d : d;
}

static void s_bar_scale(const mg_comp_t *c, const mg_chord_t *ch, int sc[7])
{
    static const int deg_of_iv[15] = {0, 1, 1, 2, 2, 3, 4, 4, 4, 6, 6, 6, 0, 1, 1};
    for (int d = 0; d < 7; d++) sc[d] = mg_scale_pc(c->mode, d);
    int want = ch->name[0] == 'b' ? ch->root + 1 : ch->name[0] == '#' ? ch->root + 11 : ch->root;
    int dr = 0, best = 99;
    for (int d = 0; d < 7; d++) {
        int dist = s_pc_dist(sc[d], want % 12);
        if (dist < best) { best = dist; dr = d; }
    }
    for (int k = 0; k < ch->n; k++) {
        int iv = ch->iv[k];
        int d = (dr + deg_of_iv[iv < 15 ? iv : iv % 12]) % 7;
        int pc = (ch->root + iv) % 12;
        if (s_pc_dist(sc[d], pc) <= 2) sc[d] = pc;
    }
}

static int s_idx_midi(int tonic_midi, const int sc[7], int idx)
{
    int oct = idx >= 0 ? idx / 7 : -((-idx + 6) / 7);
    return tonic_midi + 12 * oct + sc[idx - oct * 7];
}

/* Nearest scale index to idx whose pitch is a chord tone (searching outward, ties to dir). */
static int s_snap(const mg_comp_t *c, const mg_chord_t *ch, int tonic_midi, const int sc[7], int idx, int dir)
{
    for (int d = 0; d <= 3; d++) {
        int cand[2] = {idx + (dir >= 0 ? d : -d), idx - (dir >= 0 ? d : -d)};
        for (int k = 0; k < 2; k++)
            if (s_is_chord_pc(c, ch, ((s_idx_midi(tonic_midi, sc, cand[k]) % 12) + 12) % 12)) return cand[k];
    }
    return idx;
}

/* One-bar rhythms by density (sparse, moderate, busy), and phrase-ending bars. */
static const char *const s_rh44[3][6] = {
    {"x-------x-------", "x-----x-x-------", "x-----------x---", "x-------x---x---", "x---x---x-------", "x-----x-----x---"},
    {"x---x---x-x-x---", "x-x-x---x---x---", "x--x--x-x-------", "x---x-x-x-------", "x-x-x-x-x-------", "..x-x---x-x-x---"},
    {"x-x-x-x-x-x-x---", "x-xxx-x-x-x-x---", "x--x--x-x-x-x---", "xx-xx-x-x---x---", "x-x-xxx-x-x-x---", "x.x.x.x.x-x-x---"},
};
static const char *const s_end44[3][3] = {
    {"x---x-----------", "x-------x-------", "x-----x-x-------"},
    {"x-x-x-----------", "x---x---x-------", "x--x--x---------"},
    {"x-x-x-x-x-------", "x-xxx-x-x-------", "x-x-x-x---------"},
};
static const char *const s_rh34[3][3] = {
    {"x-------x---", "x-----------", "x---x---x---"},
    {"x---x-x-x---", "x-x-x---x---", "x-----x-x-x-"},
    {"x-x-x-x-x-x-", "x-xxx-x-x---", "x-x-x-xxx---"},
};
static const char *const s_end34[3][2] = {
    {"x-----------", "x---x-------"},
    {"x---x-------", "x-x-x-------"},
    {"x-x-x-x-----", "x-xxx-x-----"},
};

static int s_parse_rhythm(const char *r, int offset_ticks, mg_motif_note_t *out, int max)
{
    int n = 0, len = (int)strlen(r);
    for (int i = 0; i < len && n < max; i++) {
        if (r[i] != 'x') continue;
        int j = i + 1;
        while (j < len && r[j] == '-') j++;
        out[n].onset = offset_ticks + i * STEP;
        out[n].len = (j - i) * STEP;
        out[n].step = 0;
        n++;
    }
    return n;
}

/* The motif: two bars of rhythm and a contour of scale steps. Its character follows the
 * cues: density picks the rhythm family, range the leap sizes, valence the direction. */
static void s_make_motif(mg_comp_t *c, uint64_t seed)
{
    mg_rng_t r;
    mg_rng_seed(&r, seed, "motif");
    int d = c->density_level, bpb = c->bpb;
    const char *a = bpb == 3 ? s_rh34[d][mg_rng_below(&r, 3)] : s_rh44[d][mg_rng_below(&r, 6)];
    const char *b = bpb == 3 ? s_end34[d][mg_rng_below(&r, 2)] : s_end44[d][mg_rng_below(&r, 3)];
    int n = s_parse_rhythm(a, 0, c->motif, MG_MOTIF_MAX);
    n += s_parse_rhythm(b, bpb * PPQ, c->motif + n, MG_MOTIF_MAX - n);
    c->n_motif = n;
    /* leap sizes: mostly steps, more leaps for a wide range */
    int wide = c->range_steps >= 9, narrow = c->range_steps <= 6;
    int pos = 0, lo = 0, hi = 0;
    for (int i = 1; i < n; i++) {
        int roll = mg_rng_below(&r, 1000);
        int mag = roll < (narrow ? 700 : 500) ? 1 : roll < (narrow ? 950 : wide ? 750 : 850) ? 2 : roll < 930 ? 3 : 4;
        if (mg_rng_below(&r, 1000) < 120) mag = 0; /* a repeated note */
        int up = mg_rng_below(&r, 1000) < c->up_permille;
        /* keep the motif inside about a sixth around its start */
        if (pos + mag > 5) up = 0;
        if (pos - mag < -5) up = 1;
        int step = up ? mag : -mag;
        c->motif[i].step = step;
        pos += step;
        if (pos < lo) lo = pos;
        if (pos > hi) hi = pos;
    }
    char *o = c->motif_text;
    size_t left = sizeof c->motif_text;
    int w = snprintf(o, left, "%d notes over 2 bars; rhythm %s | %s; steps", n, a, b);
    for (int i = 1; i < n && w > 0 && (size_t)w < left; i++) {
        o += w;
        left -= (size_t)w;
        w = snprintf(o, left, " %+d", c->motif[i].step);
    }
}

typedef struct {
    int tonic_midi, lo, hi, center;
    int first_pitch;        /* the piece's first melody note (for the loop's lead-back) */
    int last_idx;
} s_mel_t;

/* Realises part of the motif (notes with onset in [from, to) ticks of the 2-bar motif) at
 * bar_tick, transformed by op. The first note sits on scale index idx0 when anchored,
 * else one motif step from idx0 (the line continues); dir0 is the direction the first note
 * moved in (a sequence), so snapping to a chord tone does not undo it. Returns the last
 * note's index. */
static int s_mel_segment(s_ctx_t *x, s_mel_t *m, int bar, int64_t bar_tick, int from, int to, int idx0,
                         int anchored, int dir0, int op, int vel_off, int64_t stop_tick)
{
    mg_comp_t *c = x->c;
    /* Fit the whole segment in the range by moving its start (an octave, else the least
     * diatonic shift), so the motif keeps its shape instead of folding note by note. */
    int base = idx0, pos = 0, lo_rel = 0, hi_rel = 0, seen = 0;
    for (int i = 0; i < c->n_motif; i++) {
        const mg_motif_note_t *n = &c->motif[i];
        if (n->onset < from || n->onset >= to) continue;
        int step = op == MG_DEV_INVERT ? -n->step : n->step;
        if (!seen) { if (!anchored) base = idx0 + step; seen = 1; continue; }
        pos += step;
        if (pos < lo_rel) lo_rel = pos;
        if (pos > hi_rel) hi_rel = pos;
    }
    if (base + hi_rel > m->hi) {
        if (base - 7 + lo_rel >= m->lo - 1) base -= 7;
        else base = m->hi - hi_rel;
    }
    if (base + lo_rel < m->lo) {
        if (base + 7 + hi_rel <= m->hi + 1) base += 7;
        else base = m->lo - lo_rel;
    }
    int idx = base, first = 1;
    int64_t pend_start = -1, pend_dur = 0;
    int pend_pitch = 0, pend_vel = 0, pend_weak = 0;
    for (int i = 0; i < c->n_motif; i++) {
        const mg_motif_note_t *n = &c->motif[i];
        if (n->onset < from || n->onset >= to) continue;
        int step = n->step;
        if (op == MG_DEV_INVERT) step = -step;
        int first_note = first;
        if (first) idx = base;
        else idx += step;
        first = 0;
        int rel = n->onset - from;
        int64_t t = bar_tick + rel;
        if (t >= stop_tick) break;
        int64_t dur = n->len;
        if (t + dur > stop_tick) dur = stop_tick - t;
        const mg_chord_t *ch = s_chord_at(c, t);
        int sc[7];
        s_bar_scale(c, ch, sc);
        /* strong: the downbeat and the bar's middle beat (4/4), or a note of two beats or
         * more; they take chord tones, the rest may pass between them */
        int strong = (rel % PPQ == 0 && (rel / PPQ) % (c->bpb == 3 ? 3 : 2) == 0) || n->len >= 2 * PPQ;
        if (idx > m->hi + 1) idx -= 7 * ((idx - m->hi + 5) / 7);
        if (idx < m->lo - 1) idx += 7 * ((m->lo - idx + 5) / 7);
        if (strong) {
            int dir = first_note && anchored ? dir0 : step;
            int prev = idx - dir, snapped = s_snap(c, ch, m->tonic_midi, sc, idx, dir);
            /* a step of the motif must not collapse into a repeated note */
            if (snapped == prev && dir != 0) {
                int alt = s_snap(c, ch, m->tonic_midi, sc, idx + (dir > 0 ? 1 : -1), dir);
                if (alt != prev) snapped = alt;
            }
            idx = snapped;
        }
        int pitch = s_idx_midi(m->tonic_midi, sc, idx);
        int step_in_bar = (int)(rel / STEP);
        int acc = rel == 0 ? 8 : rel % PPQ == 0 ? 4 : 0;
        int vel = s_vel(x, bar, 6 + vel_off, acc);
        /* ornament: a passing note fills a third between long notes */
        if (op == MG_DEV_ORNAMENT && dur >= 2 * STEP && i + 1 < c->n_motif && abs(c->motif[i + 1].step) == 2 &&
            c->motif[i + 1].onset < to) {
            int64_t half = dur / 2;
            int pidx = idx + (c->motif[i + 1].step > 0 ? 1 : -1);
            int pp = s_idx_midi(m->tonic_midi, sc, pidx);
            if (pend_start >= 0) s_add(x, pend_start, pend_dur, pend_pitch, pend_vel);
            s_add(x, t + s_swing(c, step_in_bar), half * c->gate_pct / 100, pitch, vel);
            pend_start = t + half;
            pend_dur = (dur - half) * c->gate_pct / 100;
            pend_pitch = pp;
            pend_vel = vel - 6 > 1 ? vel - 6 : 1;
            pend_weak = 1;
            m->last_idx = pidx;
            continue;
        }
        /* tension: a weak note a step below or above the next becomes its chromatic lower
         * neighbour (an approach tone a semitone under it) */
        if (pend_start >= 0) {
            int roll = mg_rng_below(&x->rng, 1000);
            if (pend_weak && c->tension_level >= 2 && roll < 150 * (c->tension_level - 1) &&
                abs(pend_pitch - pitch) <= 2 && pitch - 1 != pend_pitch)
                pend_pitch = pitch - 1;
            s_add(x, pend_start, pend_dur, pend_pitch, pend_vel);
        }
        int64_t gate = c->gate_pct >= 95 ? dur : dur * c->gate_pct / 100;
        if (gate < STEP / 2) gate = STEP / 2;
        pend_start = t + s_swing(c, step_in_bar) + (strong ? 0 : s_jitter(x) / 2);
        if (pend_start < bar_tick) pend_start = bar_tick;
        pend_dur = gate;
        pend_pitch = pitch;
        pend_vel = vel;
        pend_weak = !strong;
        m->last_idx = idx;
        if (m->first_pitch < 0) m->first_pitch = pitch;
    }
    if (pend_start >= 0) {
        if (pend_start + pend_dur > stop_tick) pend_dur = stop_tick - pend_start;
        if (pend_dur > 0) s_add(x, pend_start, pend_dur, pend_pitch, pend_vel);
    }
    return idx;
}

/* A long phrase-ending note on a chord tone from tick t to end: the root of the chord when
 * it is the tonic chord (a full close), else the nearest chord tone (a half close). */
static void s_mel_close(s_ctx_t *x, s_mel_t *m, int bar, int64_t t, int64_t end, int near_idx, int vel_off)
{
    mg_comp_t *c = x->c;
    if (end <= t) return;
    const mg_chord_t *ch = s_chord_at(c, t);
    int sc[7];
    s_bar_scale(c, ch, sc);
    int idx = near_idx;
    if (ch->root == 0) {
        /* the nearest tonic */
        int best = idx, bd = 99;
        for (int k = idx - 7; k <= idx + 7; k++)
            if (((k % 7) + 7) % 7 == 0 && abs(k - idx) < bd && k >= m->lo - 2 && k <= m->hi + 2) { bd = abs(k - idx); best = k; }
        idx = best;
    } else {
        /* a half close: the nearest chord tone, stepping down when that would repeat */
        int snapped = s_snap(c, ch, m->tonic_midi, sc, idx, -1);
        for (int d = 1; d <= 3 && snapped == near_idx; d++) {
            if (s_is_chord_pc(c, ch, ((s_idx_midi(m->tonic_midi, sc, idx - d) % 12) + 12) % 12)) snapped = idx - d;
            else if (s_is_chord_pc(c, ch, ((s_idx_midi(m->tonic_midi, sc, idx + d) % 12) + 12) % 12)) snapped = idx + d;
        }
        idx = snapped;
    }
    int64_t gate = c->gate_pct >= 90 ? end - t : (end - t) * (c->gate_pct + 100) / 200;
    s_add(x, t, gate, s_idx_midi(m->tonic_midi, sc, idx), s_vel(x, bar, 6 + vel_off, 4));
    m->last_idx = idx;
}

static void s_melody(s_ctx_t *x, int octave)
{
    mg_comp_t *c = x->c;
    s_mel_t m;
    memset(&m, 0, sizeof m);
    int reg = c->reg_midi + 12 * octave;
    m.tonic_midi = reg - (((reg - c->tonic) % 12) + 12) % 12; /* the tonic at or below the centre */
    m.center = ((reg - m.tonic_midi) * 7 + 6) / 12;
    m.lo = m.center - c->range_steps / 2;
    m.hi = m.lo + c->range_steps;
    m.first_pitch = -1;
    int bpb_ticks = c->bpb * PPQ;
    int64_t arrival = s_arrival_tick(c), total = s_total(c);
    int64_t stop = arrival >= 0 ? arrival : total;
    int idx = m.center, phrase = 0;
    for (int s = 0; s < c->n_secs; s++) {
        const mg_sec_plan_t *sp = &c->secs[s];
        int b0 = -1, nb = 0;
        for (int b = 0; b < c->n_bars; b++)
            if (c->bar_sec[b] == s) { if (b0 < 0) b0 = b; nb++; }
        if (b0 < 0 || sp->motif_op == MG_DEV_NONE) continue;
        int seq = mg_rng_below(&x->rng, 3) == 0 ? -1 : 1 + mg_rng_below(&x->rng, 2);
        int op = sp->motif_op;
        int vel_off = sp->kind == MG_SEC_BUILD ? -12 : sp->kind == MG_SEC_OUTRO ? -4 : 0;
        for (int p0 = 0; p0 < nb; p0 += 4) {
            int plen = nb - p0 < 4 ? nb - p0 : 4;
            int anchor;
            {
                int64_t t = s_bar_tick(c, b0 + p0);
                const mg_chord_t *ch = s_chord_at(c, t);
                int sc[7];
                s_bar_scale(c, ch, sc);
                /* phrases start on chord tones that trace an arch over the section (rising
                 * first when the cue leans happy, falling first when it leans sad) */
                static const int arch_up[4] = {0, 2, 1, 3}, arch_down[4] = {2, 1, 3, 0};
                const int *arch = c->up_permille >= 500 ? arch_up : arch_down;
                int want = m.center - 1 + arch[phrase % 4];
                if (op == MG_DEV_INVERT) want += 2;
                anchor = s_snap(c, ch, m.tonic_midi, sc, want, 0);
                phrase++;
            }
            for (int p = 0; p < plen; p++) {
                int bar = b0 + p0 + p;
                int64_t bt = s_bar_tick(c, bar);
                if (bt >= stop) break;
                int last_of_phrase = p == plen - 1;
                int bar_len = (c->bar_start[bar + 1] - c->bar_start[bar]) * PPQ;
                if (op == MG_DEV_FRAGMENT) {
                    /* the motif's head, every other bar, answered by a held note */
                    if (p % 2 == 0 && !last_of_phrase)
                        idx = s_mel_segment(x, &m, bar, bt, 0, bpb_ticks / 2, anchor, 1, 0, MG_DEV_STATE, vel_off, stop);
                    else if (last_of_phrase && bt + bar_len <= stop && p > 0)
                        s_mel_close(x, &m, bar, bt, bt + bar_len / 2, idx, vel_off);
                    continue;
                }
                if (last_of_phrase && plen >= 2) {
                    /* cadence bar: the head of the motif's second bar, then a long note */
                    int half = bpb_ticks / 2 + (c->bpb == 3 ? PPQ / 2 : 0);
                    idx = s_mel_segment(x, &m, bar, bt, bpb_ticks, bpb_ticks + half, idx, 0, 0, op, vel_off, stop);
                    int64_t end = bt + bar_len < stop ? bt + bar_len : stop;
                    int64_t t = bt + half;
                    if (t < end) s_mel_close(x, &m, bar, t, end, m.last_idx, vel_off);
                    idx = m.last_idx;
                    continue;
                }
                int part = p % 2; /* motif bar A or B */
                int a = anchor + (p == 2 ? seq : 0);
                if (part == 0) idx = s_mel_segment(x, &m, bar, bt, 0, bpb_ticks, a, 1, p == 2 ? seq : 0, op, vel_off, stop);
                else idx = s_mel_segment(x, &m, bar, bt, bpb_ticks, 2 * bpb_ticks, idx, 0, 0, op, vel_off, stop);
                if (part == 0 && op == MG_DEV_STATE && (c->flags & MG_F_HOOK)) idx = anchor;
            }
        }
    }
    /* the end */
    int last_bar = c->n_bars - 1;
    if (arrival >= 0) {
        s_mel_close(x, &m, last_bar, arrival, total, m.last_idx, 4);
    } else if (m.first_pitch >= 0) {
        /* loop: the last note leads back to the first (a tone of the closing dominant) */
        int64_t t = s_bar_tick(c, last_bar) + (int64_t)(c->bar_start[last_bar + 1] - c->bar_start[last_bar]) * PPQ / 2;
        const mg_chord_t *ch = s_chord_at(c, t);
        int best = m.first_pitch, bd = 99;
        for (int p = m.first_pitch - 5; p <= m.first_pitch + 5; p++)
            if (s_is_chord_pc(c, ch, ((p % 12) + 12) % 12) && abs(p - m.first_pitch) < bd && p != m.first_pitch) {
                bd = abs(p - m.first_pitch);
                best = p;
            }
        /* clear what the motif put in this half bar, then place the lead-back note */
        mg_score_stem_t *st = &x->sc->stems[x->stem];
        for (int i = 0; i < st->n_notes; i++) {
            mg_score_note_t *n = &st->notes[i];
            if (n->start_tick >= t) n->duration_tick = 0;
            else if (n->start_tick + n->duration_tick > t) n->duration_tick = t - n->start_tick;
        }
        s_add(x, t, (total - t) * c->gate_pct / 100, best, s_vel(x, last_bar, 6, 0));
    }
}

/* ---- chords ------------------------------------------------------------------------------ */

/* Close voicing of up to four chord tones in [lo, hi], nearest to the previous voicing's
 * centre (smooth voice leading). Returns the count. */
static int s_voice_close(const mg_comp_t *c, const mg_chord_t *ch, int lo, int hi, int prev_center, int out[6])
{
    int pcs[6], n = 0;
    for (int k = 0; k < ch->n; k++) {
        if (ch->n > 4 && ch->iv[k] == 7) continue; /* drop the fifth from big chords */
        if (n < 4) pcs[n++] = s_chord_pc(c, ch, k);
    }
    int best_cost = 1 << 30, best_n = 0;
    for (int bottom = lo; bottom < lo + 12; bottom++) {
        int r = -1;
        for (int k = 0; k < n; k++)
            if (pcs[k] == bottom % 12) r = k;
        if (r < 0) continue;
        int v[6], ok = 1;
        v[0] = bottom;
        for (int k = 1; k < n; k++) {
            int pc = pcs[(r + k) % n];
            int p = v[k - 1] + 1;
            while (p % 12 != pc) p++;
            v[k] = p;
        }
        if (v[n - 1] > hi) ok = 0;
        if (!ok) continue;
        int sum = 0;
        for (int k = 0; k < n; k++) sum += v[k];
        int cost = abs(sum - prev_center * n);
        if (cost < best_cost) {
            best_cost = cost;
            best_n = n;
            memcpy(out, v, sizeof v);
        }
    }
    if (!best_n) { /* range too tight: root position from lo */
        int root = lo + ((s_chord_pc(c, ch, 0) - lo % 12) + 12) % 12;
        for (int k = 0; k < n; k++) out[k] = root + ch->iv[k] % 12 + (k && ch->iv[k] % 12 < ch->iv[k - 1] % 12 ? 12 : 0);
        best_n = n;
    }
    return best_n;
}

/* A guitar-like or broken-chord shape: root low, fifth, then the upper octave. */
static int s_voice_open(const mg_comp_t *c, const mg_chord_t *ch, int root_lo, int out[6])
{
    int root = root_lo + ((s_chord_pc(c, ch, 0) - root_lo % 12) + 12) % 12;
    int third = 4, fifth = 7, seventh = -1, ninth = -1;
    for (int k = 0; k < ch->n; k++) {
        int iv = ch->iv[k];
        if (iv == 2 || iv == 3 || iv == 4 || iv == 5) third = iv;
        if (iv == 6 || iv == 7 || iv == 8) fifth = iv;
        if (iv == 9 || iv == 10 || iv == 11) seventh = iv;
        if (iv == 13 || iv == 14) ninth = iv;
    }
    out[0] = root;
    out[1] = root + fifth;
    out[2] = seventh >= 0 ? root + seventh : root + 12;
    out[3] = root + 12 + third;
    out[4] = ninth >= 0 ? root + ninth : root + 12 + fifth;
    if (out[4] <= out[3]) out[4] += 12;
    /* the most tense music: a semitone above the fifth (b6 over minor, b9-like colour) */
    if (c->tension_level >= 3) out[2] = root + fifth + 1;
    return 5;
}

/* Texture patterns by level (0 light, 1 groove, 2 full) and the seed's variant (0..2). */
static const char *s_chord_pat(mg_chord_texture_t pat, int bpb, int level, int variant)
{
    if (bpb == 3) {
        switch (pat) {
        case MG_TEXTURE_ARPEGGIO: return level == 0 ? "0---1---2---" : variant == 2 ? "0-2-1-3-2-1-" : "0-1-2-3-2-1-";
        case MG_TEXTURE_HELD: return "x-----------";
        default: return level == 0 ? "x-----------" : level == 1 ? "....x---x---" : "x...x---x---";
        }
    }
    static const char *const b[3][3] = {{"x---------------", "x---x---x---x---", "x-x-x-x-x-x-x-x-"},
                                        {"x---------------", "x-----x---x-----", "x--x--x-x--x--x-"},
                                        {"x-------x-------", "x-------x-x-----", "x--x--x---x--x--"}};
    static const char *const st[3][3] = {{"D-------D-------", "D---D-U---U-D-U-", "D---D-U-D-U-D-U-"},
                                         {"D-------D-------", "D-----U-D-U-D---", "D---D-UD-UD-D-U-"},
                                         {"D---------------", "D---D---D-U-D-U-", "D-D-D-UD-UD-D-UD"}};
    static const char *const ar[3][3] = {{"0---1---2---1---", "0-1-2-3-4-3-2-1-", "0-1-2-3-4-3-2-1-"},
                                         {"0---2---3---2---", "0-2-1-3-2-4-3-1-", "0-2-1-3-2-4-3-1-"},
                                         {"0-------2---1---", "0-2-3-2-1-2-3-2-", "0-2-3-2-1-2-3-2-"}};
    static const char *const jz[3][3] = {{"x---------------", "x-----x-........", "x-----x-..x-...."},
                                         {"x---------------", "..x-....x-......", "x-..x-....x-x-.."},
                                         {"x-------........", "x-----x-........", "..x-..x-..x-...."}};
    static const char *const tb[3][3] = {{"x---------------", "..x-..x-..x-..x-", "x.x..x.x..x.x.x."},
                                         {"x-------x-------", "..x...x...x...x.", "..x-..x-..x-..x-"},
                                         {"x---------------", "x..x..x.x..x..x.", "x..x..x.x..x..x."}};
    int v = variant % 3, l = level < 0 ? 0 : level > 2 ? 2 : level;
    switch (pat) {
    case MG_TEXTURE_BLOCK: return b[v][l];
    case MG_TEXTURE_STRUM: return st[v][l];
    case MG_TEXTURE_ARPEGGIO: return ar[v][l];
    case MG_TEXTURE_COMP: return jz[v][l];
    case MG_TEXTURE_STABS: return tb[v][l];
    default: return l == 2 ? "x-------x-------" : "x---------------";
    }
}

static int s_level(int intensity) { return intensity >= 800 ? 2 : intensity >= 500 ? 1 : 0; }

static void s_chords(s_ctx_t *x, mg_family_t fam, int has_bass)
{
    mg_comp_t *c = x->c;
    mg_chord_texture_t pat = c->chord_pattern ? c->chord_pattern : MG_TEXTURE_HELD;
    int variant = mg_rng_below(&x->rng, 3);
    int64_t arrival = s_arrival_tick(c), total = s_total(c);
    int64_t stop = arrival >= 0 ? arrival : total;
    static const int centers[3] = {60, 64, 67}; /* the seed's voicing register */
    int center = centers[mg_rng_below(&x->rng, 3)];
    int lo = fam == MG_FAMILY_STRINGS || fam == MG_FAMILY_PAD ? 53 : 52, hi = 77;
    int root_lo = fam == MG_FAMILY_GUITAR ? 40 : 36;
    int strum_gap = 14;
    for (int bar = 0; bar < c->n_bars; bar++) {
        int64_t bt = s_bar_tick(c, bar);
        if (bt >= stop) break;
        int steps = s_bar_steps(c, bar);
        int level = s_level(c->bar_int[bar]);
        if (c->density_level == 0 && level > 1) level = 1;
        const char *ps = s_chord_pat(pat, c->bpb, level, variant);
        int plen = (int)strlen(ps);
        for (int s = 0; s < steps; s++) {
            char ch_ = ps[s % plen];
            int64_t t = bt + (int64_t)s * STEP;
            int change = t > 0 && t % PPQ == 0 && c->beat_chord[t / PPQ] != c->beat_chord[t / PPQ - 1];
            if (t >= stop) break;
            int onset = ch_ != '-' && ch_ != '.';
            if (!onset && !(change && ch_ == '-')) continue;
            if (!onset) ch_ = pat == MG_TEXTURE_STRUM ? 'D' : pat == MG_TEXTURE_ARPEGGIO ? '0' : 'x';
            /* duration: to the next onset in the pattern, a chord change or the stop */
            int e = s + 1;
            while (e < steps && ps[e % plen] == '-') e++;
            int64_t end = bt + (int64_t)e * STEP;
            int64_t chg = s_next_change(c, t);
            if (end > chg) end = chg;
            if (end > stop) end = stop;
            if (end <= t) continue;
            const mg_chord_t *ch = s_chord_at(c, t);
            int64_t sw = s_swing(c, s) + s_jitter(x);
            int64_t t0 = t + sw > 0 ? t + sw : t;
            int acc = s == 0 ? 6 : (s % 4 == 0) ? 2 : -2;
            int vel = s_vel(x, bar, fam == MG_FAMILY_PAD || fam == MG_FAMILY_STRINGS ? -14 : -8, acc);
            int v[6], n;
            if (pat == MG_TEXTURE_STRUM) {
                n = s_voice_open(c, ch, root_lo, v);
                int up = ch_ == 'U';
                int64_t ring = end - t0;
                for (int k = 0; k < n; k++) {
                    int kk = up ? n - 1 - k : k;
                    if (up && kk < 2) continue; /* an up-stroke catches the top strings */
                    s_add(x, t0 + k * strum_gap, ring - k * strum_gap, v[kk], up ? vel - 14 : vel - k);
                }
            } else if (pat == MG_TEXTURE_ARPEGGIO) {
                n = s_voice_open(c, ch, root_lo, v);
                int k = ch_ - '0';
                if (k < 0 || k >= n) k = 0;
                /* broken chords let notes ring into the next ones */
                int64_t ring = end - t0 + 2 * STEP;
                if (t0 + ring > chg) ring = chg - t0;
                if (t0 + ring > stop) ring = stop - t0;
                s_add(x, t0, ring, v[k], k == 0 ? vel + 4 : vel - 4);
            } else {
                n = s_voice_close(c, ch, lo, hi, center, v);
                int sum = 0;
                for (int k = 0; k < n; k++) sum += v[k];
                center = sum / n;
                int64_t dur = end - t0;
                if (pat != MG_TEXTURE_HELD) dur = dur * (c->gate_pct + 100) / 200;
                for (int k = 0; k < n; k++) s_add(x, t0, dur, v[k], vel);
                if (c->tension_level >= 3 && n >= 3) { /* a cluster: a semitone over the fifth */
                    int fifth_pc = (s_chord_pc(c, ch, 0) + 7) % 12, top = v[n - 1];
                    for (int k = 0; k < n; k++)
                        if (v[k] % 12 == fifth_pc) top = v[k];
                    s_add(x, t0, dur, top + 1, vel - 10);
                }
                if (!has_bass && (pat == MG_TEXTURE_HELD || s == 0)) {
                    int r = 36 + ((s_chord_pc(c, ch, 0) - 36 % 12) + 12) % 12;
                    s_add(x, t0, dur, r, vel);
                }
            }
        }
    }
    if (arrival >= 0) {
        const mg_chord_t *ch = s_chord_at(c, arrival);
        int v[6], n;
        if (pat == MG_TEXTURE_STRUM || pat == MG_TEXTURE_ARPEGGIO) {
            n = s_voice_open(c, ch, root_lo, v);
            for (int k = 0; k < n; k++)
                s_add(x, arrival + (pat == MG_TEXTURE_STRUM ? k * strum_gap : 0), total - arrival - (pat == MG_TEXTURE_STRUM ? k * strum_gap : 0),
                      v[k], s_vel(x, c->n_bars - 1, -4, 6));
        } else {
            n = s_voice_close(c, ch, lo, hi, center, v);
            for (int k = 0; k < n; k++) s_add(x, arrival, total - arrival, v[k], s_vel(x, c->n_bars - 1, -6, 6));
            if (!has_bass) s_add(x, arrival, total - arrival, 36 + ((s_chord_pc(c, ch, 0) - 36 % 12) + 12) % 12,
                                 s_vel(x, c->n_bars - 1, -6, 6));
        }
    }
}

/* ---- pad ---------------------------------------------------------------------------------- */

static void s_pad(s_ctx_t *x)
{
    mg_comp_t *c = x->c;
    int64_t total = s_total(c);
    int64_t t = 0;
    while (t < total) {
        int64_t end = s_next_change(c, t);
        /* re-articulate at section starts so the intensity curve shows */
        for (int b = 0; b < c->n_bars; b++) {
            int64_t bt = s_bar_tick(c, b);
            if (bt > t && bt < end && b > 0 && c->bar_sec[b] != c->bar_sec[b - 1]) { end = bt; break; }
        }
        int64_t arrival = s_arrival_tick(c);
        if (arrival > t && arrival < end) end = arrival;
        const mg_chord_t *ch = s_chord_at(c, t);
        int bar = (int)(t / PPQ / c->bpb);
        if (bar >= c->n_bars) bar = c->n_bars - 1;
        int root = 48 + ((s_chord_pc(c, ch, 0) - 48 % 12) + 12) % 12;
        int third = 4, fifth = 7, col = -1;
        for (int k = 0; k < ch->n; k++) {
            int iv = ch->iv[k];
            if (iv >= 2 && iv <= 5) third = iv;
            if (iv >= 6 && iv <= 8) fifth = iv;
            if (iv == 14 || iv == 13 || iv == 10 || iv == 11) col = iv;
        }
        int vel = s_vel(x, bar, -18, 0);
        s_add(x, t, end - t, root, vel);
        s_add(x, t, end - t, root + fifth, vel);
        s_add(x, t, end - t, root + 12 + third, vel);
        if (col >= 0) s_add(x, t, end - t, root + col + (col < 12 ? 12 : 0), vel - 4);
        /* the most tense music: a semitone cluster above the fifth */
        if (c->tension_level >= 3) s_add(x, t, end - t, root + fifth + 1, vel - 6);
        t = end;
    }
}

/* ---- bass ------------------------------------------------------------------------------- */

static const char *const s_bass44[MG_STYLE_COUNT][2][3] = {
    [MG_STYLE_POP] = {{"R-------R-------", "R-----R-R-------", "R-R-R-R-R-R-R-O-"},
                      {"R---------------", "R-----R---R---A-", "R-RRR-R-R-RRR-A-"}},
    [MG_STYLE_ROCK] = {{"R-------R-------", "R-R-R-R-R-R-R-R-", "R-R-R-R-R-R-R-O-"},
                       {"R---------------", "R-----R-R-----R-", "R-R-R-R-R-R-F-O-"}},
    [MG_STYLE_FOLK] = {{"R---------------", "R-------F-------", "R---F---R---F-A-"},
                       {"R-------F-------", "R-----F-R-------", "R---F---O---F---"}},
    [MG_STYLE_ELECTRONIC] = {{"R---------------", "..R-..R-..R-..R-", "R.O.R.O.R.O.R.O."},
                             {"R-------R-------", "R..R..R.R..R..R.", "R.RRR.RRR.RRR.RR"}},
    [MG_STYLE_AMBIENT] = {{"R---------------", "R---------------", "R-------F-------"},
                          {"R---------------", "R---------------", "R-------O-------"}},
    [MG_STYLE_CINEMATIC] = {{"R---------------", "R-------R-------", "R-R-R-R-R-R-R-R-"},
                            {"R---------------", "R-----R-R-------", "R.RRR.RRR.RRR.RR"}},
    [MG_STYLE_JAZZ] = {{"R-------F-------", "W---W---W---W---", "W---W---W---W---"},
                       {"R-------F-------", "W---W---W---W---", "W---W---W-W-W---"}},
    [MG_STYLE_LOFI] = {{"R---------------", "R------R..R-----", "R------R..R---A-"},
                       {"R-------R-------", "R--R------R-----", "R--R---R--R---A-"}},
    [MG_STYLE_BALLAD] = {{"R---------------", "R-------F-------", "R-------F---A---"},
                         {"R---------------", "R-----F-O-------", "R---F---O---F---"}},
};
static const char *const s_bass34[3] = {"R-----------", "R-------F---", "R---F---O---"};

/* The bass note of pitch class pc within E1..D3: near the previous one (roots move by the
 * smaller interval) but pulled toward E2, so the line does not drift out of the register. */
static int s_bass_pitch(int pc, int prev)
{
    int best = 0, bd = 1 << 30;
    for (int p = 28; p <= 50; p++) {
        if (p % 12 != pc) continue;
        int d = abs(p - prev) * 2 + abs(p - 40) * 3 / 2;
        if (d < bd) { bd = d; best = p; }
    }
    return best;
}

static void s_bass(s_ctx_t *x)
{
    mg_comp_t *c = x->c;
    int variant = mg_rng_below(&x->rng, 2);
    static const int approach_pm[3] = {0, 350, 700};
    int approach = approach_pm[mg_rng_below(&x->rng, 3)]; /* how often the line walks into a change */
    int64_t arrival = s_arrival_tick(c), total = s_total(c);
    int64_t stop = arrival >= 0 ? arrival : total;
    int prev_root = 40;
    for (int bar = 0; bar < c->n_bars; bar++) {
        int64_t bt = s_bar_tick(c, bar);
        if (bt >= stop) break;
        if (c->bar_int[bar] < 300) continue;
        int level = s_level(c->bar_int[bar]);
        if (c->density_level == 0 && level > 1) level = 1;
        const char *ps = c->bpb == 3 ? s_bass34[level] : s_bass44[c->style][variant][level];
        int plen = (int)strlen(ps), steps = s_bar_steps(c, bar);
        int64_t bar_end = bt + (int64_t)steps * STEP;
        int walk_in = level >= 1 && steps >= 8 && bar_end < stop && c->style != MG_STYLE_JAZZ &&
                      c->beat_chord[bar_end / PPQ] != c->beat_chord[bar_end / PPQ - 1] &&
                      mg_rng_below(&x->rng, 1000) < approach;
        for (int s = 0; s < steps; s++) {
            int64_t t = bt + (int64_t)s * STEP;
            if (t >= stop) break;
            if (walk_in && s >= steps - 2) {
                /* a chromatic approach into the next chord's root on the last eighth */
                const mg_chord_t *nx = s_chord_at(c, bar_end);
                int nr = s_bass_pitch(s_chord_pc(c, nx, 0), prev_root);
                int from_below = mg_rng_below(&x->rng, 2);
                s_add(x, bt + (int64_t)(steps - 2) * STEP, 2 * STEP * (c->gate_pct + 100) / 200, nr + (from_below ? -1 : 1),
                      s_vel(x, bar, -4, 0));
                break;
            }
            char ch_ = ps[s % plen];
            int change = t > 0 && t % PPQ == 0 && c->beat_chord[t / PPQ] != c->beat_chord[t / PPQ - 1];
            if ((ch_ == '-' || ch_ == '.') && !change) continue;
            if (ch_ == '-' || ch_ == '.') ch_ = 'R';
            int e = s + 1;
            while (e < steps && ps[e % plen] == '-') e++;
            int64_t end = bt + (int64_t)e * STEP;
            int64_t chg = s_next_change(c, t);
            if (end > chg) end = chg;
            if (end > stop) end = stop;
            if (end <= t) continue;
            const mg_chord_t *ch = s_chord_at(c, t);
            int root = s_bass_pitch(s_chord_pc(c, ch, 0), prev_root);
            prev_root = root;
            int fifth = 7;
            for (int k = 0; k < ch->n; k++)
                if (ch->iv[k] == 6 || ch->iv[k] == 8) fifth = ch->iv[k];
            int next_root;
            {
                const mg_chord_t *nx = s_chord_at(c, chg < total ? chg : total - 1);
                next_root = s_bass_pitch(s_chord_pc(c, nx, 0), root);
            }
            int pitch = root;
            switch (ch_) {
            case 'F': pitch = root + fifth; break;
            case 'O': pitch = root + 12; break;
            case 'A': pitch = next_root > root ? next_root - 1 : next_root + 1; break;
            case 'W': {
                int beat = s / 4;
                int beats = steps / 4;
                if (beat == 0) pitch = root;
                else if (beat == beats - 1) pitch = next_root + (mg_rng_below(&x->rng, 2) ? -1 : 1);
                else {
                    int iv = beat == 1 ? (ch->n > 1 ? ch->iv[1] : 4) : fifth;
                    pitch = root + iv;
                    if (mg_rng_below(&x->rng, 3) == 0) pitch = root + (beat == 1 ? 2 : 9);
                }
                break;
            }
            default: break;
            }
            int64_t dur = (end - t) * (c->gate_pct + 100) / 200;
            int64_t t0 = t + s_swing(c, s) + (s ? s_jitter(x) / 2 : 0);
            s_add(x, t0, dur, pitch, s_vel(x, bar, 0, s == 0 ? 8 : s % 4 == 0 ? 2 : -2));
        }
    }
    if (arrival >= 0) {
        const mg_chord_t *ch = s_chord_at(c, arrival);
        s_add(x, arrival, total - arrival, s_bass_pitch(s_chord_pc(c, ch, 0), prev_root), s_vel(x, c->n_bars - 1, 2, 8));
    }
}

/* ---- drums ------------------------------------------------------------------------------- */

enum { K = 36, SN = 38, SS = 37, CL = 39, CH = 42, PH = 44, OH = 46, CR = 49, RI = 51, TL = 41, TM = 45, TH = 48,
       TAM = 54, SHK = 70 };

typedef struct { int note; const char *p; } s_dl_t;
typedef struct { s_dl_t l[6]; } s_dp_t;

static const s_dp_t s_drums44[MG_STYLE_COUNT][3] = {
    [MG_STYLE_POP] = {{{{CH, "x.x.x.x.x.x.x.x."}, {K, "x.......x......."}}},
                      {{{K, "x.......x.x....."}, {SN, "....x.......x..."}, {CH, "x.x.x.x.x.x.x.x."}}},
                      {{{K, "x.....x.x.x....."}, {SN, "....X.......X..."}, {CH, "xoxoxoxoxoxoxoxo"}, {OH, "..............x."}}}},
    [MG_STYLE_ROCK] = {{{{CH, "x.x.x.x.x.x.x.x."}, {K, "x.......x......."}}},
                       {{{K, "x.....x.x......."}, {SN, "....X.......X..."}, {CH, "x.x.x.x.x.x.x.x."}}},
                       {{{K, "x.....x.x.x...x."}, {SN, "....X.......X..."}, {RI, "x.x.x.x.x.x.x.x."}}}},
    [MG_STYLE_FOLK] = {{{{SHK, "x.o.x.o.x.o.x.o."}}},
                       {{{K, "x.......x......."}, {SS, "....x.......x..."}, {SHK, "xoxoxoxoxoxoxoxo"}}},
                       {{{K, "x.....x.x......."}, {SN, "....x.......x..."}, {TAM, "....x.......x..."}, {CH, "x.x.x.x.x.x.x.x."}}}},
    [MG_STYLE_ELECTRONIC] = {{{{K, "x...x...x...x..."}, {CH, "..x...x...x...x."}}},
                             {{{K, "X...X...X...X..."}, {CL, "....x.......x..."}, {CH, "..x...x...x...x."}}},
                             {{{K, "X...X...X...X..."}, {CL, "....x.......x..."}, {SN, "....x.......x..."}, {CH, "xoxoxoxoxoxoxoxo"}, {OH, "..x...x...x...x."}}}},
    [MG_STYLE_AMBIENT] = {{{{RI, "x.......x......."}}},
                          {{{K, "x..............."}, {RI, "x...x...x...x..."}}},
                          {{{K, "x.......x......."}, {SS, "....x.......x..."}, {RI, "x.x.x.x.x.x.x.x."}}}},
    [MG_STYLE_CINEMATIC] = {{{{TL, "x.......x......."}}},
                            {{{K, "x.........x....."}, {TL, "x..x..x.x......."}, {TM, "........x......."}}},
                            {{{K, "x.......x.x....."}, {TL, "X..x..x.X..x..x."}, {TM, "....x.......x.xx"}, {SN, "....x.......x..."}}}},
    [MG_STYLE_JAZZ] = {{{{RI, "x...x.x.x...x.x."}, {PH, "....x.......x..."}}},
                       {{{RI, "x...x.x.x...x.x."}, {PH, "....x.......x..."}, {SN, "....o.......o..."}}},
                       {{{RI, "x...x.x.x...x.x."}, {PH, "....x.......x..."}, {K, "x...o...x...o..."}, {SN, "..o...o.o..o..o."}}}},
    [MG_STYLE_LOFI] = {{{{CH, "x.x.x.x.x.x.x.x."}, {K, "x......x........"}}},
                       {{{K, "x......x..x....."}, {SN, "....x.......x..."}, {CH, "x.x.x.x.x.x.x.x."}}},
                       {{{K, "x......x..x....."}, {SN, "....x.......x..."}, {CH, "x.xox.x.x.xox.x."}, {OH, "..............x."}}}},
    [MG_STYLE_BALLAD] = {{{{RI, "x...x...x...x..."}}},
                         {{{K, "x.......x......."}, {SS, "....x.......x..."}, {CH, "x.x.x.x.x.x.x.x."}}},
                         {{{K, "x.......x.x....."}, {SN, "....x.......x..."}, {CH, "x.x.x.x.x.x.x.x."}}}},
};
static const s_dp_t s_drums34[3] = {
    {{{CH, "x...x...x..."}}},
    {{{K, "x..........."}, {SS, "....x...x..."}, {CH, "x.x.x.x.x.x."}}},
    {{{K, "x.....x....."}, {SN, "....x...x..."}, {CH, "x.x.x.x.x.x."}}},
};
/* Variations of the main kick figure, chosen by the seed (4/4 backbeat styles). */
static const char *const s_kick_alt[4] = {"x.......x.x.....", "x.....x.x.......", "x.......x......x", "x..x....x.x....."};

static int s_drum_scale(int note)
{
    switch (note) {
    case K: return 100;
    case SN: case SS: return 92;
    case CL: return 85;
    case CH: case PH: return 68;
    case OH: return 72;
    case RI: return 74;
    case CR: return 100;
    case TAM: return 62;
    case SHK: return 55;
    default: return 90;
    }
}

/* One drum hit; scale (permille) shapes rolls and the final hit. */
static void s_hit_s(s_ctx_t *x, int bar, int64_t t, int note, char mark, int jitter, int scale)
{
    int acc = mark == 'X' ? 118 : mark == 'o' ? 55 : 100;
    int v = s_vel(x, bar, 4, 0) * s_drum_scale(note) / 100 * acc / 100 * scale / 1000;
    int64_t t0 = t + (jitter ? s_jitter(x) : 0);
    if (t0 < 0) t0 = 0;
    s_add(x, t0, STEP, note, s_clampi(v, 1, 127));
}

static void s_hit(s_ctx_t *x, int bar, int64_t t, int note, char mark, int jitter)
{
    s_hit_s(x, bar, t, note, mark, jitter, 1000);
}

static void s_drums(s_ctx_t *x)
{
    mg_comp_t *c = x->c;
    int64_t arrival = s_arrival_tick(c), total = s_total(c);
    int64_t stop = arrival >= 0 ? arrival : total;
    int extras_only = (c->drum_extra & MG_DRUM_EXTRAS_ONLY) != 0;
    int kick_alt = mg_rng_below(&x->rng, 5); /* 4 = the style's own */
    int fill_kind = mg_rng_below(&x->rng, 3);
    int hat_var = mg_rng_below(&x->rng, 3);  /* 0 the style's, 1 sixteenths, 2 quarters + open off-beats */
    static const int ghost_pm[3] = {0, 120, 250};
    int ghost = ghost_pm[mg_rng_below(&x->rng, 3)];
    int backbeat = c->style == MG_STYLE_POP || c->style == MG_STYLE_ROCK || c->style == MG_STYLE_FOLK ||
                   c->style == MG_STYLE_BALLAD || c->style == MG_STYLE_LOFI;
    for (int bar = 0; bar < c->n_bars; bar++) {
        int64_t bt = s_bar_tick(c, bar);
        if (bt >= stop) break;
        int inten = c->bar_int[bar];
        int lvl = inten >= 800 ? 3 : inten >= 600 ? 2 : inten >= 400 ? 1 : 0;
        if (c->density_level == 0 && lvl > 2) lvl = 2;
        if (lvl == 0) continue;
        int steps = s_bar_steps(c, bar);
        const s_dp_t *dp = c->bpb == 3 ? &s_drums34[lvl - 1] : &s_drums44[c->style][lvl - 1];
        int sec = c->bar_sec[bar];
        int sec_last = bar + 1 >= c->n_bars || c->bar_sec[bar + 1] != sec;
        int sec_first = bar == 0 || c->bar_sec[bar - 1] != sec;
        int kind = c->secs[sec].kind;
        int roll = kind == MG_SEC_BUILD && sec_last && bar + 1 < c->n_bars;
        int fill = !roll && sec_last && bar + 1 < c->n_bars && lvl >= 2 && steps >= 8 && c->bpb == 4 &&
                   (int64_t)c->bar_start[bar + 1] * PPQ <= stop;
        int fill_from = fill ? steps - (lvl == 3 ? 8 : 4) : steps;
        if (roll) fill_from = steps / 2;
        for (int li = 0; li < 6 && dp->l[li].note; li++) {
            int note = dp->l[li].note;
            const char *p = dp->l[li].p;
            if (extras_only) continue;
            if (note == K && backbeat && kick_alt < 4 && c->bpb == 4 && lvl >= 2) p = s_kick_alt[kick_alt];
            if (note == CH && backbeat && c->bpb == 4 && lvl >= 2 && hat_var == 1) p = "xoxoxoxoxoxoxoxo";
            if (note == CH && backbeat && c->bpb == 4 && lvl >= 2 && hat_var == 2) p = "x...x...x...x...";
            if (note == OH && hat_var == 2) continue;
            if (c->drum_extra & MG_DRUM_TOMS && note == CH && c->style == MG_STYLE_CINEMATIC) continue;
            int plen = (int)strlen(p);
            for (int s = 0; s < steps && s < fill_from; s++) {
                char m = p[s % plen];
                if (m == '.') continue;
                int64_t t = bt + (int64_t)s * STEP + s_swing(c, s);
                if (t >= stop) break;
                s_hit(x, bar, t, note, m, s != 0);
            }
        }
        if (!extras_only && backbeat && hat_var == 2 && c->bpb == 4 && lvl >= 2)
            for (int s = 2; s < steps && s < fill_from; s += 4) {
                int64_t t = bt + (int64_t)s * STEP + s_swing(c, s);
                if (t >= stop) break;
                s_hit(x, bar, t, OH, 'o', 1);
            }
        /* ghost notes on the snare between the backbeats */
        if (!extras_only && backbeat && ghost && lvl >= 2 && c->bpb == 4)
            for (int s = 1; s < steps && s < fill_from; s += 2) {
                if (mg_rng_below(&x->rng, 1000) >= ghost) continue;
                int64_t t = bt + (int64_t)s * STEP + s_swing(c, s);
                if (t >= stop) break;
                s_hit(x, bar, t, SN, 'o', 1);
            }
        /* extra sounds the job asked for */
        const char *clap = c->bpb == 3 ? "....x...x..." : "....x.......x...";
        const char *shk = c->bpb == 3 ? "xoxoxoxoxoxo" : "xoxoxoxoxoxoxoxo";
        const char *tom = c->bpb == 3 ? "x.....x....." : "x.....x.x.......";
        struct { unsigned flag; int note; const char *p; int min_lvl; } ex[] = {
            {MG_DRUM_CLAPS, CL, clap, 1}, {MG_DRUM_SHAKER, SHK, shk, 1},
            {MG_DRUM_TAMBOURINE, TAM, clap, 2}, {MG_DRUM_TOMS, TL, tom, 2},
        };
        for (size_t e = 0; e < sizeof ex / sizeof ex[0]; e++) {
            if (!(c->drum_extra & ex[e].flag) || lvl < ex[e].min_lvl) continue;
            int plen = (int)strlen(ex[e].p);
            for (int s = 0; s < steps && s < fill_from; s++) {
                char m = ex[e].p[s % plen];
                if (m == '.') continue;
                int64_t t = bt + (int64_t)s * STEP + s_swing(c, s);
                if (t >= stop) break;
                s_hit(x, bar, t, ex[e].note, m, 1);
            }
        }
        /* a crash marks a new section */
        if (sec_first && bar > 0 && lvl >= 2 && !extras_only) {
            s_hit(x, bar, bt, CR, 'x', 0);
            s_hit(x, bar, bt, K, 'x', 0);
        }
        if (extras_only) continue;
        if (roll) {
            /* snare roll into the main section: eighths, then sixteenths, rising */
            for (int s = fill_from; s < steps; s++) {
                if (s < steps * 3 / 4 && s % 2) continue;
                int64_t t = bt + (int64_t)s * STEP;
                if (t >= stop) break;
                s_hit_s(x, bar, t, SN, 'x', 0, 650 + 400 * (s - fill_from) / (steps - fill_from));
            }
        } else if (fill) {
            static const int toms[4] = {TH, 47, TM, 43};
            for (int s = fill_from; s < steps; s++) {
                int64_t t = bt + (int64_t)s * STEP;
                if (t >= stop) break;
                int k = (s - fill_from) * 4 / (steps - fill_from);
                int note = fill_kind == 0 ? SN : fill_kind == 1 ? toms[k] : (s % 2 ? toms[k] : SN);
                if (c->style == MG_STYLE_JAZZ && s % 2) continue;
                s_hit(x, bar, t, note, s == steps - 1 ? 'X' : 'x', 0);
            }
        }
    }
    if (arrival >= 0) {
        int lb = c->n_bars - 1;
        int lvl = c->bar_int[lb] >= 400 || c->ending == MG_END_BUTTON;
        if (lvl) {
            int boost = c->bar_int[lb] < 800 ? 1100 : 1000;
            if (extras_only) {
                if (c->drum_extra & MG_DRUM_CLAPS) s_hit_s(x, lb, arrival, CL, 'X', 0, boost);
            } else {
                s_hit_s(x, lb, arrival, K, 'X', 0, boost);
                s_hit_s(x, lb, arrival, CR, 'X', 0, boost);
                if (c->ending == MG_END_BUTTON) s_hit_s(x, lb, arrival, SN, 'x', 0, boost);
                if (c->drum_extra & MG_DRUM_CLAPS) s_hit_s(x, lb, arrival, CL, 'x', 0, boost);
            }
            /* the crash rings to the end */
            mg_score_stem_t *st = &x->sc->stems[x->stem];
            for (int i = 0; i < st->n_notes; i++)
                if (st->notes[i].start_tick == arrival && st->notes[i].pitch == CR)
                    st->notes[i].duration_tick = total - arrival;
        }
    } else if (c->n_bars > 0) {
        /* loop: a light fill in the last beat leads back to bar 1 */
        int lb = c->n_bars - 1;
        int steps = s_bar_steps(c, lb);
        if (!extras_only && steps >= 4 && c->bar_int[lb] >= 600)
            for (int s = steps - 4; s < steps; s++) s_hit(x, lb, s_bar_tick(c, lb) + (int64_t)s * STEP, SN, 'x', 0);
    }
}

/* ---- entry --------------------------------------------------------------------------------- */

int mg_parts(mg_comp_t *c, mg_score_t *sc, uint64_t seed)
{
    s_make_motif(c, seed);
    int has_bass = 0;
    for (int k = 0; k < c->n_stems; k++)
        if (c->stems[k].role == MG_ROLE_BASS) has_bass = 1;
    for (int k = 0; k < c->n_stems; k++) {
        s_ctx_t x = {c, sc, k, {{0}}};
        char stream[32];
        snprintf(stream, sizeof stream, "part-%s", mg_role_name(c->stems[k].role));
        mg_rng_seed(&x.rng, seed, stream);
        switch (c->stems[k].role) {
        case MG_ROLE_MELODY: s_melody(&x, c->stems[k].instr ? c->stems[k].instr->octave : 0); break;
        case MG_ROLE_CHORDS: s_chords(&x, sc->stems[k].family, has_bass); break;
        case MG_ROLE_PAD: s_pad(&x); break;
        case MG_ROLE_BASS: s_bass(&x); break;
        case MG_ROLE_DRUMS: s_drums(&x); break;
        default: break;
        }
    }
    return c->oom ? -1 : 0;
}
