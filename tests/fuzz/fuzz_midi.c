/* fuzz_midi.c - the MIDI path. mg has no MIDI reader in C (composer/midi.c only writes), so this
 * fuzzes the writer on scores composed from fuzzed render specs: the input is a kv record whose
 * fields override a valid base spec (or, when it is not a kv record, the prompt), the spec is
 * read as a worker reads a LEASE, composed (composer/), written as a Standard MIDI File and read
 * back by a strict reader here, which checks what a DAW or fluidsynth relies on: chunk lengths,
 * track count, status and data bytes, delta times, every note ended, every track ended at the
 * score's end. Durations over 60 s are cut to 60 s to keep each run short.
 */
#include <string.h>

#include "common/kv.h"
#include "common/renderspec.h"
#include "composer/composer.h"
#include "tests/fuzz/fuzz.h"

MG_FUZZ_TARGET("midi");

#define S_MAX_SECONDS 60.0

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} s_rd_t;

static uint32_t s_be(s_rd_t *r, int n)
{
    MG_FUZZ_CHECK(r->len - r->pos >= (size_t)n);
    uint32_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | r->p[r->pos++];
    return v;
}

static uint32_t s_vlq(s_rd_t *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        MG_FUZZ_CHECK(r->pos < r->len);
        uint8_t b = r->p[r->pos++];
        v = v << 7 | (b & 0x7f);
        if (!(b & 0x80)) return v;
    }
    MG_FUZZ_CHECK(!"a variable-length quantity longer than 4 bytes");
    return 0;
}

static uint8_t s_data(s_rd_t *r)
{
    MG_FUZZ_CHECK(r->pos < r->len);
    uint8_t b = r->p[r->pos++];
    MG_FUZZ_CHECK(b < 0x80); /* a data byte; a pitch or velocity over 127 would corrupt the file */
    return b;
}

/* One MTrk body: events until end-of-track, which must be the last bytes and at end_tick. */
static void s_check_track(const uint8_t *p, size_t len, int64_t end_tick, int conductor)
{
    s_rd_t r = {p, len, 0};
    int64_t tick = 0;
    int on[16][128];
    memset(on, 0, sizeof on);
    for (;;) {
        tick += s_vlq(&r);
        MG_FUZZ_CHECK(tick <= end_tick);
        MG_FUZZ_CHECK(r.pos < r.len);
        uint8_t st = r.p[r.pos++];
        MG_FUZZ_CHECK(st >= 0x80); /* the writer never uses running status */
        if (st == 0xff) {
            uint8_t type = s_data(&r);
            uint32_t n = s_vlq(&r);
            MG_FUZZ_CHECK(r.len - r.pos >= n);
            if (type == 0x2f) {
                MG_FUZZ_CHECK(n == 0 && r.pos == r.len && tick == end_tick);
                break;
            }
            MG_FUZZ_CHECK(conductor || type == 0x03);
            if (type == 0x51) MG_FUZZ_CHECK(n == 3 && (r.p[r.pos] | r.p[r.pos + 1] | r.p[r.pos + 2]));
            if (type == 0x58) MG_FUZZ_CHECK(n == 4 && r.p[r.pos] >= 1);
            if (type == 0x59) MG_FUZZ_CHECK(n == 2 && (int8_t)r.p[r.pos] >= -7 && (int8_t)r.p[r.pos] <= 7);
            r.pos += n;
            continue;
        }
        MG_FUZZ_CHECK(!conductor);
        int ch = st & 15, kind = st & 0xf0;
        if (kind == 0x90 || kind == 0x80) {
            uint8_t key = s_data(&r), vel = s_data(&r);
            if (kind == 0x90 && vel > 0) on[ch][key]++;
            else MG_FUZZ_CHECK(--on[ch][key] >= 0); /* an end for a note that was not playing */
        } else if (kind == 0xb0) {
            s_data(&r);
            s_data(&r);
        } else if (kind == 0xc0) {
            s_data(&r);
        } else {
            MG_FUZZ_CHECK(!"a status byte the writer does not write");
        }
    }
    for (int c = 0; c < 16; c++)
        for (int k = 0; k < 128; k++) MG_FUZZ_CHECK(on[c][k] == 0); /* a hanging note */
}

static void s_check_midi(const mg_score_t *sc, const uint8_t *p, size_t len)
{
    s_rd_t r = {p, len, 0};
    MG_FUZZ_CHECK(s_be(&r, 4) == 0x4d546864); /* MThd */
    MG_FUZZ_CHECK(s_be(&r, 4) == 6);
    MG_FUZZ_CHECK(s_be(&r, 2) == 1);
    uint32_t ntrks = s_be(&r, 2), division = s_be(&r, 2);
    MG_FUZZ_CHECK(ntrks == (uint32_t)sc->n_stems + 1 && division == (uint32_t)sc->ppq && division < 0x8000);
    for (uint32_t t = 0; t < ntrks; t++) {
        MG_FUZZ_CHECK(s_be(&r, 4) == 0x4d54726b); /* MTrk */
        uint32_t n = s_be(&r, 4);
        MG_FUZZ_CHECK(r.len - r.pos >= n);
        s_check_track(r.p + r.pos, n, sc->total_ticks, t == 0);
        r.pos += n;
    }
    MG_FUZZ_CHECK(r.pos == r.len);
}

static void s_check_score(const mg_score_t *sc, const mg_render_spec_t *spec)
{
    MG_FUZZ_CHECK(sc->n_stems >= 1 && sc->n_tempo >= 1 && sc->n_sections >= 1 && sc->ppq > 0);
    MG_FUZZ_CHECK(sc->tempo[0].tick == 0 && sc->total_ticks > 0);
    if (!spec->loop) MG_FUZZ_CHECK(sc->duration_s == spec->duration_s);
    for (int k = 0; k < sc->n_stems; k++) {
        const mg_score_stem_t *st = &sc->stems[k];
        MG_FUZZ_CHECK(st->channel >= 0 && st->channel < 16 && st->program >= 0 && st->program < 128);
        for (int i = 0; i < st->n_notes; i++) {
            const mg_score_note_t *n = &st->notes[i];
            MG_FUZZ_CHECK(n->pitch >= 0 && n->pitch <= 127 && n->velocity >= 1 && n->velocity <= 127);
            MG_FUZZ_CHECK(n->duration_tick >= 1 && n->start_tick >= 0);
            MG_FUZZ_CHECK(n->start_tick + n->duration_tick <= sc->total_ticks);
            if (i) MG_FUZZ_CHECK(n->start_tick >= st->notes[i - 1].start_tick);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mg_render_spec_t base = {.job_id = 1, .render_id = 1, .seed = 42, .duration_s = 12, .variation = 0};
    strcpy(base.campaign, "fuzz");
    strcpy(base.cue, "cue");
    strcpy(base.prompt, "upbeat pop with piano and strings");
    base.output = (mg_output_spec_t){.formats = MG_FORMAT_FLAC, .sample_rate = 48000, .channels = 2,
                                     .mp3_bitrate_kbps = 192, .flac_bits = 16, .loudness_lufs = -14,
                                     .deliver = MG_DELIVER_MIX | MG_DELIVER_MIDI};
    mg_kv_t kv, in;
    mg_kv_init(&kv);
    mg_kv_init(&in);
    MG_FUZZ_CHECK(mg_render_spec_to_kv(&base, &kv) == 0);
    if (mg_kv_decode(&in, (const char *)data, size) == 0) {
        for (size_t i = 0; i < in.n; i++) mg_kv_set(&kv, in.pairs[i].key, in.pairs[i].value);
    } else { /* the bytes as the prompt (NULs made spaces) */
        char prompt[MG_PROMPT_MAX + 1];
        size_t n = size < MG_PROMPT_MAX ? size : MG_PROMPT_MAX;
        for (size_t i = 0; i < n; i++) prompt[i] = data[i] ? (char)data[i] : ' ';
        prompt[n] = 0;
        mg_kv_set(&kv, "prompt", prompt);
    }
    mg_kv_clear(&in);
    mg_render_spec_t spec;
    int ok = mg_render_spec_from_kv(&spec, &kv) == 0;
    mg_kv_clear(&kv);
    if (!ok) return 0;
    if (spec.duration_s > S_MAX_SECONDS) spec.duration_s = S_MAX_SECONDS;

    char err[512];
    mg_score_t *sc = mg_compose(&spec, err, sizeof err);
    MG_FUZZ_CHECK(sc); /* a spec the worker accepts always composes */
    s_check_score(sc, &spec);
    char *json = mg_score_decision_json(sc);
    MG_FUZZ_CHECK(json && json[0] == '{');
    free(json);
    unsigned char *midi = NULL;
    size_t len = 0;
    MG_FUZZ_CHECK(mg_score_write_midi(sc, &midi, &len) == 0);
    s_check_midi(sc, midi, len);
    free(midi);
    mg_score_free(&sc);
    return 0;
}
