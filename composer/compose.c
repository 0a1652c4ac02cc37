/* compose.c - mg_compose, the composer's entry point: runs the decisions (decide.c) and the
 * parts (parts.c), then turns the result into the public score: sorted note events with
 * ticks and seconds, the tempo map and time signatures, sections; and frees it all.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

int mg_stem_add(mg_score_t *score, int stem, int64_t start_tick, int64_t dur_tick, int pitch, int velocity)
{
    if (start_tick < 0) { dur_tick += start_tick; start_tick = 0; }
    if (start_tick >= score->total_ticks || dur_tick <= 0) return 0;
    if (start_tick + dur_tick > score->total_ticks) dur_tick = score->total_ticks - start_tick;
    if (pitch < 0 || pitch > 127) return 0;
    mg_score_stem_t *s = &score->stems[stem];
    int n0 = s->n_notes;
    if (n0 == 0 || (n0 >= 64 && (n0 & (n0 - 1)) == 0)) { /* capacity: 64, then doubling */
        size_t cap = n0 ? (size_t)n0 * 2 : 64;
        mg_score_note_t *p = realloc(s->notes, cap * sizeof *p);
        if (!p) { score->priv->oom = 1; return -1; }
        s->notes = p;
    }
    mg_score_note_t *n = &s->notes[s->n_notes++];
    memset(n, 0, sizeof *n);
    n->start_tick = start_tick;
    n->duration_tick = dur_tick;
    n->pitch = pitch;
    n->velocity = velocity < 1 ? 1 : velocity > 127 ? 127 : velocity;
    return 0;
}

int64_t mg_score_tick_us(const mg_score_t *score, int64_t tick)
{
    if (tick <= 0 || score->n_tempo == 0) return 0;
    if (tick >= score->total_ticks) return score->duration_us;
    int i = score->n_tempo - 1;
    while (i > 0 && score->tempo[i].tick > tick) i--;
    const mg_score_tempo_t *t = &score->tempo[i];
    return t->us + ((tick - t->tick) * t->us_per_quarter + score->ppq / 2) / score->ppq;
}

/* A total order, so the result never depends on the sort algorithm. */
static int s_note_cmp(const void *a, const void *b)
{
    const mg_score_note_t *x = a, *y = b;
    if (x->start_tick != y->start_tick) return x->start_tick < y->start_tick ? -1 : 1;
    if (x->pitch != y->pitch) return x->pitch < y->pitch ? -1 : 1;
    if (x->duration_tick != y->duration_tick) return x->duration_tick > y->duration_tick ? -1 : 1;
    return (x->velocity > y->velocity) - (x->velocity < y->velocity);
}

/* Sorts a stem, drops empty notes and resolves same-pitch overlaps (a note ends where the
 * next one of its pitch starts), so every note-on has its own note-off in MIDI. */
static void s_finish_stem(mg_score_t *sc, mg_score_stem_t *st)
{
    int n = 0;
    for (int i = 0; i < st->n_notes; i++)
        if (st->notes[i].duration_tick > 0) st->notes[n++] = st->notes[i];
    st->n_notes = n;
    if (n > 1) qsort(st->notes, (size_t)n, sizeof *st->notes, s_note_cmp);
    int last_idx[128];
    for (int p = 0; p < 128; p++) last_idx[p] = -1;
    for (int i = 0; i < n; i++) {
        mg_score_note_t *x = &st->notes[i];
        int p = x->pitch;
        if (last_idx[p] >= 0) {
            mg_score_note_t *prev = &st->notes[last_idx[p]];
            if (prev->start_tick == x->start_tick) { x->duration_tick = 0; continue; } /* a duplicate */
            if (prev->start_tick + prev->duration_tick > x->start_tick)
                prev->duration_tick = x->start_tick - prev->start_tick;
        }
        last_idx[p] = i;
    }
    int m = 0;
    for (int i = 0; i < n; i++)
        if (st->notes[i].duration_tick > 0) st->notes[m++] = st->notes[i];
    st->n_notes = m;
    for (int i = 0; i < m; i++) {
        mg_score_note_t *x = &st->notes[i];
        int64_t a = mg_score_tick_us(sc, x->start_tick), b = mg_score_tick_us(sc, x->start_tick + x->duration_tick);
        x->start_s = (double)a / 1e6;
        x->duration_s = (double)(b - a) / 1e6;
    }
}

static void s_comp_free(mg_comp_t *c)
{
    if (!c) return;
    free(c->words);
    for (int i = 0; i < c->n_ignored; i++) free(c->ignored[i]);
    free(c->ignored);
    for (int i = 0; i < c->n_unknown_tags; i++) free(c->unknown_tags[i]);
    free(c->unknown_tags);
    for (int i = 0; i < c->n_unused_instr; i++) free(c->unused_instr[i]);
    free(c->unused_instr);
    for (int i = 0; i < c->n_ignored_stems; i++) free(c->ignored_stems[i]);
    free(c->ignored_stems);
    for (int i = 0; i < c->n_reasons; i++) {
        free(c->reasons[i].value);
        free(c->reasons[i].reason);
    }
    free(c->reasons);
    free(c->beat_uspq);
    free(c->beat_us);
    free(c->bar_sec);
    free(c->bar_start);
    free(c->bar_int);
    free(c->beat_chord);
    free(c);
}

void mg_score_free(mg_score_t **score_p)
{
    if (!score_p || !*score_p) return;
    mg_score_t *s = *score_p;
    for (int i = 0; i < s->n_stems; i++) free(s->stems[i].notes);
    free(s->stems);
    free(s->sections);
    free(s->tempo);
    free(s->timesig);
    s_comp_free(s->priv);
    free(s);
    *score_p = NULL;
}

mg_score_t *mg_compose(const mg_render_spec_t *spec, char *err, size_t errlen)
{
    if (!spec || !isfinite(spec->duration_s) || !(spec->duration_s > 0.0) || spec->duration_s > MG_MAX_DURATION_S) {
        mg_set_error(err, errlen, "composer: duration %.3f s is out of range (0, %.0f]; fix the cue's 'duration'",
                 spec ? spec->duration_s : 0.0, MG_MAX_DURATION_S);
        return NULL;
    }
    if (spec->tempo_bpm != 0.0 && (!isfinite(spec->tempo_bpm) || spec->tempo_bpm < 20.0 || spec->tempo_bpm > 300.0)) {
        mg_set_error(err, errlen, "composer: tempo %.3f BPM is out of range 20..300; fix the cue's 'tempo'", spec->tempo_bpm);
        return NULL;
    }
    mg_score_t *sc = calloc(1, sizeof *sc);
    mg_comp_t *c = calloc(1, sizeof *c);
    if (!sc || !c) {
        free(sc);
        free(c);
        mg_set_error(err, errlen, "composer: out of memory");
        return NULL;
    }
    sc->priv = c;
    mg_strlcpy(sc->composer_version, MG_COMPOSER_VERSION, sizeof sc->composer_version);
    sc->seed = spec->seed;
    sc->ppq = MG_SCORE_PPQ;
    sc->duration_s = spec->duration_s;
    if (mg_decide(c, sc, spec) != 0) goto oom;
    sc->total_ticks = (int64_t)c->n_beats * MG_SCORE_PPQ;
    sc->duration_us = c->beat_us[c->n_beats];
    if (c->loop) {
        sc->loop = 1;
        sc->loop_requested_s = spec->duration_s;
        sc->loop_bars = c->loop_bars;
        sc->duration_s = (double)sc->duration_us / 1e6;
    }
    /* tempo map: one event per change */
    sc->tempo = calloc((size_t)c->n_beats, sizeof *sc->tempo);
    sc->timesig = calloc(2, sizeof *sc->timesig);
    if (!sc->tempo || !sc->timesig) goto oom;
    for (int i = 0; i < c->n_beats; i++) {
        if (i > 0 && c->beat_uspq[i] == c->beat_uspq[i - 1]) continue;
        mg_score_tempo_t *t = &sc->tempo[sc->n_tempo++];
        t->tick = (int64_t)i * MG_SCORE_PPQ;
        t->us = c->beat_us[i];
        t->us_per_quarter = c->beat_uspq[i];
        t->bpm = 60e6 / (double)c->beat_uspq[i];
    }
    /* the main tempo: the one that holds for most beats (the first, unless eased) */
    sc->tempo_bpm = sc->tempo[0].bpm;
    sc->timesig[0] = (mg_score_timesig_t){0, 0, c->bpb, 4};
    sc->n_timesig = 1;
    if (c->last_bar_beats != c->bpb) {
        int lb = c->n_bars - 1;
        sc->timesig[1] = (mg_score_timesig_t){(int64_t)c->bar_start[lb] * MG_SCORE_PPQ, lb, c->last_bar_beats, 4};
        sc->n_timesig = 2;
    }
    for (int i = 0; i < sc->n_sections; i++) {
        mg_score_section_t *s = &sc->sections[i];
        int64_t a = mg_score_tick_us(sc, s->start_tick);
        int64_t b = mg_score_tick_us(sc, s->start_tick + (int64_t)s->n_beats * MG_SCORE_PPQ);
        s->start_s = (double)a / 1e6;
        s->duration_s = (double)(b - a) / 1e6;
    }
    if (mg_parts(c, sc, spec->seed) != 0) goto oom;
    for (int i = 0; i < sc->n_stems; i++) s_finish_stem(sc, &sc->stems[i]);
    if (c->oom) goto oom;
    return sc;
oom:
    mg_set_error(err, errlen, "composer: out of memory");
    mg_score_free(&sc);
    return NULL;
}
