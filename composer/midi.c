/* midi.c - Standard MIDI File export of a score, so a cue can be opened in a DAW or played
 * with fluidsynth. Format 1 at the score's PPQ: track 0 carries the tempo map, time and key
 * signatures, the composer's text stamp and a marker per section; then one track per stem
 * (name, bank/program, volume, pan, notes). Drums are on channel 10; their program picks
 * the kit on GS/GM2 players (GM1 players ignore it and play the standard kit).
 * A loop (score->loop) also has markers "loopStart" at tick 0 and "loopEnd" at its last tick,
 * where every track ends: the score holds no note past the end (mg_stem_add cuts a note that
 * would sound across it, so its note-off is at the loop end; its release is the renderer's
 * and rings on into the start of the audio), so the file repeats with nothing left hanging.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

typedef struct {
    unsigned char *p;
    size_t len, cap;
    int oom;
} s_buf_t;

static void s_put(s_buf_t *b, const void *data, size_t n)
{
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void s_byte(s_buf_t *b, int x) { unsigned char c = (unsigned char)x; s_put(b, &c, 1); }

static void s_be32(s_buf_t *b, uint32_t x)
{
    unsigned char c[4] = {(unsigned char)(x >> 24), (unsigned char)(x >> 16), (unsigned char)(x >> 8), (unsigned char)x};
    s_put(b, c, 4);
}

static void s_vlq(s_buf_t *b, uint32_t x)
{
    unsigned char tmp[5];
    int n = 0;
    tmp[n++] = (unsigned char)(x & 0x7F);
    while (x >>= 7) tmp[n++] = (unsigned char)(0x80 | (x & 0x7F));
    while (n) s_byte(b, tmp[--n]);
}

typedef struct {
    int64_t tick;
    int order;              /* events at one tick: meta < note-off < controller < note-on */
    int len;
    unsigned char d[72];
} s_ev_t;

static int s_ev_cmp(const void *a, const void *b)
{
    const s_ev_t *x = a, *y = b;
    if (x->tick != y->tick) return x->tick < y->tick ? -1 : 1;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    int m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->d, y->d, (size_t)m);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

typedef struct {
    s_ev_t *ev;
    int n, cap, oom;
} s_evs_t;

static s_ev_t *s_ev(s_evs_t *e, int64_t tick, int order)
{
    if (e->n == e->cap) {
        int cap = e->cap ? e->cap * 2 : 256;
        s_ev_t *p = realloc(e->ev, (size_t)cap * sizeof *p);
        if (!p) { e->oom = 1; return NULL; }
        e->ev = p;
        e->cap = cap;
    }
    s_ev_t *x = &e->ev[e->n++];
    x->tick = tick;
    x->order = order;
    x->len = 0;
    return x;
}

static void s_meta(s_evs_t *e, int64_t tick, int type, const void *data, int len, int order)
{
    if (len > 64) len = 64;
    s_ev_t *x = s_ev(e, tick, order);
    if (!x) return;
    x->d[0] = 0xFF;
    x->d[1] = (unsigned char)type;
    x->d[2] = (unsigned char)len;
    memcpy(x->d + 3, data, (size_t)len);
    x->len = 3 + len;
}

static void s_short(s_evs_t *e, int64_t tick, int order, int status, int a, int b, int n)
{
    s_ev_t *x = s_ev(e, tick, order);
    if (!x) return;
    x->d[0] = (unsigned char)status;
    x->d[1] = (unsigned char)a;
    x->d[2] = (unsigned char)b;
    x->len = n;
}

/* Writes the sorted events as one MTrk chunk ending at end_tick. */
static void s_track(s_buf_t *b, s_evs_t *e, int64_t end_tick)
{
    qsort(e->ev, (size_t)e->n, sizeof *e->ev, s_ev_cmp);
    s_buf_t t = {0};
    int64_t now = 0;
    for (int i = 0; i < e->n; i++) {
        s_vlq(&t, (uint32_t)(e->ev[i].tick - now));
        now = e->ev[i].tick;
        s_put(&t, e->ev[i].d, (size_t)e->ev[i].len);
    }
    s_vlq(&t, (uint32_t)(end_tick > now ? end_tick - now : 0));
    s_put(&t, "\xFF\x2F\x00", 3);
    s_put(b, "MTrk", 4);
    s_be32(b, (uint32_t)t.len);
    s_put(b, t.p, t.len);
    if (t.oom) b->oom = 1;
    free(t.p);
}

/* Key signature: sharps (+) or flats (-) of the major key, or of the relative major. */
static int s_key_sf(int tonic, mg_mode_t mode)
{
    static const int sf[12] = {0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5};
    int major = mode == MG_MODE_MINOR ? (tonic + 3) % 12 : tonic;
    return sf[major];
}

int mg_score_write_midi(const mg_score_t *sc, unsigned char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (!sc) return -1;
    s_buf_t b = {0};
    s_put(&b, "MThd", 4);
    s_be32(&b, 6);
    s_byte(&b, 0); s_byte(&b, 1);                          /* format 1 */
    s_byte(&b, (1 + sc->n_stems) >> 8); s_byte(&b, (1 + sc->n_stems) & 0xFF);
    s_byte(&b, sc->ppq >> 8); s_byte(&b, sc->ppq & 0xFF);
    s_evs_t e = {0};
    int64_t end = sc->total_ticks;

    /* track 0: conductor */
    char text[200];
    const mg_comp_t *c = sc->priv;
    mg_strlcpy(text, c ? c->cue : "mg", sizeof text);
    s_meta(&e, 0, 0x03, text, (int)strlen(text), 0);
    snprintf(text, sizeof text, "mg-composer %s seed %llu %s %s", sc->composer_version,
             (unsigned long long)sc->seed, sc->key, sc->style);
    s_meta(&e, 0, 0x01, text, (int)strlen(text), 0);
    for (int i = 0; i < sc->n_timesig; i++) {
        unsigned char ts[4] = {(unsigned char)sc->timesig[i].numerator, 2, 24, 8};
        s_meta(&e, sc->timesig[i].tick, 0x58, ts, 4, 0);
    }
    unsigned char ks[2] = {(unsigned char)(signed char)s_key_sf(sc->tonic, sc->mode), sc->mode == MG_MODE_MINOR};
    s_meta(&e, 0, 0x59, ks, 2, 0);
    for (int i = 0; i < sc->n_tempo; i++) {
        uint32_t u = (uint32_t)sc->tempo[i].us_per_quarter;
        unsigned char t3[3] = {(unsigned char)(u >> 16), (unsigned char)(u >> 8), (unsigned char)u};
        s_meta(&e, sc->tempo[i].tick, 0x51, t3, 3, 0);
    }
    for (int i = 0; i < sc->n_sections; i++)
        s_meta(&e, sc->sections[i].start_tick, 0x06, sc->sections[i].name, (int)strlen(sc->sections[i].name), 1);
    if (sc->loop) { /* the marker names game engines and trackers look for; the length is whole bars */
        s_meta(&e, 0, 0x06, "loopStart", 9, 2);
        s_meta(&e, end, 0x06, "loopEnd", 7, 2);
    }
    s_track(&b, &e, end);
    e.n = 0;

    for (int k = 0; k < sc->n_stems && !e.oom; k++) {
        const mg_score_stem_t *st = &sc->stems[k];
        int ch = st->channel & 15;
        snprintf(text, sizeof text, "%s: %s", st->name, st->instrument);
        s_meta(&e, 0, 0x03, text, (int)strlen(text), 0);
        if (!st->is_drum) {
            s_short(&e, 0, 1, 0xB0 | ch, 0, 0, 3);    /* bank select MSB */
            s_short(&e, 0, 2, 0xB0 | ch, 32, 0, 3);   /* bank select LSB */
        }
        s_short(&e, 0, 3, 0xC0 | ch, st->program & 127, 0, 2);
        int vol = (int)(st->gain * 127.0 + 0.5), pan = 64 + (int)(st->pan * 63.0 + (st->pan < 0 ? -0.5 : 0.5));
        s_short(&e, 0, 4, 0xB0 | ch, 7, vol < 0 ? 0 : vol > 127 ? 127 : vol, 3);
        s_short(&e, 0, 5, 0xB0 | ch, 10, pan < 0 ? 0 : pan > 127 ? 127 : pan, 3);
        for (int i = 0; i < st->n_notes; i++) {
            const mg_score_note_t *n = &st->notes[i];
            s_short(&e, n->start_tick, 10, 0x90 | ch, n->pitch, n->velocity, 3);
            s_short(&e, n->start_tick + n->duration_tick, 6, 0x80 | ch, n->pitch, 64, 3);
        }
        s_track(&b, &e, end);
        e.n = 0;
    }
    free(e.ev);
    if (b.oom || e.oom) {
        free(b.p);
        return -1;
    }
    *buf = b.p;
    *len = b.len;
    return 0;
}
