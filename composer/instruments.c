/* instruments.c - which stems a cue has and who plays each: the composer's band decisions.
 *
 * Called by mg_decide (decide.c) after style, meter and density. In order:
 *   1. candidates: the job file's `instruments:` (an entry with extra words, "arpeggiated
 *      synth", counts by its known phrase and sets the prompt flags of the others); if none,
 *      the instruments the prompt named;
 *   2. wanted stems: the job's `stems:`, else one per role the listed instruments play, else
 *      the style's usual stems plus any the prompt's instruments need ('solo' keeps melody and
 *      chords);
 *   3. roles are filled in a fixed order, each by the first unused candidate that prefers the
 *      role, then one that can play it: drums (every drum entry merges into one kit), bass,
 *      melody, chords (scored: a chords instrument that leaves a pad instrument for the pad
 *      stem), pad, melody again; leftovers open their own stem when the stems were not listed;
 *      with explicit instruments an empty melodic stem doubles one that plays;
 *   4. the stems in canonical role order, each with its GM program (the instrument's own, or
 *      one picked for the style and brightness), channel, gain and pan; roles left without an
 *      instrument take the style's;
 *   5. the chords stem's texture (mg_chord_texture_t) from its instrument, the style and the
 *      prompt's texture words.
 * Every choice leaves a reason in the decision record (mg_reason), and every listed
 * instrument or stem that could not be used is noted with why.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

#define S_MAX_CANDIDATES 32

typedef struct {
    const mg_instr_t *in;
    char name[128]; /* as written in the job file or the prompt */
    int used;
} s_candidate_t;

/* The band being assembled. */
typedef struct {
    mg_comp_t *c;
    s_candidate_t cand[S_MAX_CANDIDATES];
    int n_cand;
    const char *origin;                  /* "the job file" or "the prompt" */
    unsigned want;                       /* MG_ROLE_BIT of the stems to write */
    const char *want_why;
    const mg_instr_t *assign[MG_ROLE_COUNT];
    char source[MG_ROLE_COUNT][160];     /* why that instrument plays that role */
} s_band_t;

/* How a candidate may take a role: it prefers the role, or merely can play it. */
typedef enum { S_PREFERS, S_CAN_PLAY } s_match_t;

/* Splits a comma-joined list into lower-case trimmed entries (max n). */
static int s_split(const char *list, char out[][128], int max)
{
    int n = 0;
    const char *p = list;
    while (*p && n < max) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        size_t k = 0;
        while (*p && *p != ',') {
            if (k < 127) out[n][k++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
            p++;
        }
        while (k > 0 && out[n][k - 1] == ' ') k--;
        out[n][k] = 0;
        if (k) n++;
    }
    return n;
}

static void s_add_candidate(s_band_t *b, const mg_instr_t *in, const char *name)
{
    s_candidate_t *k = &b->cand[b->n_cand++];
    k->in = in;
    mg_strlcpy(k->name, name, sizeof k->name);
    k->used = 0;
}

/* Step 1: the job's instruments, else the prompt's. */
static void s_candidates(s_band_t *b, const mg_render_spec_t *spec)
{
    mg_comp_t *c = b->c;
    char names[S_MAX_CANDIDATES][128];
    int n = s_split(spec->instruments, names, S_MAX_CANDIDATES);
    c->instr_override = n > 0;
    for (int i = 0; i < n; i++) {
        const mg_instr_t *in = mg_instr_find(names[i]);
        if (!in) {
            /* an entry with extra words ("arpeggiated synth"): its known phrase, and flags */
            char buf[128];
            mg_strlcpy(buf, names[i], sizeof buf);
            char *save = NULL;
            for (char *t = strtok_r(buf, " -", &save); t; t = strtok_r(NULL, " -", &save)) {
                const mg_instr_t *x = mg_instr_find(t);
                if (x && !in) in = x;
                const mg_word_t *w = mg_word_find(t);
                if (w && w->kind == MG_W_STRUCT) c->flags |= (unsigned)w->arg;
            }
        }
        if (!in) {
            char why[200];
            snprintf(why, sizeof why, "%.100s: not an instrument the composer knows (docs/composer.md lists them)", names[i]);
            mg_comp_list_add(c, &c->unused_instr, &c->n_unused_instr, why);
            continue;
        }
        s_add_candidate(b, in, names[i]);
    }
    b->origin = "the job file";
    if (b->n_cand == 0) {
        for (int i = 0; i < c->n_prompt_instr && b->n_cand < S_MAX_CANDIDATES; i++)
            s_add_candidate(b, c->prompt_instr[i], c->prompt_instr[i]->word);
        if (b->n_cand > 0) b->origin = "the prompt";
    }
}

/* Step 2: which stems to write. */
static void s_wanted_stems(s_band_t *b, const mg_render_spec_t *spec, const mg_style_band_t *style)
{
    mg_comp_t *c = b->c;
    char stems[16][128];
    int ns = s_split(spec->stems, stems, 16);
    for (int i = 0; i < ns; i++) {
        int r = mg_role_find(stems[i]);
        if (r < 0) {
            mg_comp_list_add(c, &c->ignored_stems, &c->n_ignored_stems, stems[i]);
            continue;
        }
        b->want |= MG_ROLE_BIT(r);
    }
    if (b->want) {
        c->stems_override = 1;
        b->want_why = "listed in the job file";
    } else if (c->instr_override) {
        /* the listed instruments are the band: a stem for each one's preferred role, then
         * one for any role a still unused instrument can fill */
        int has_melodic = 0;
        for (int i = 0; i < b->n_cand; i++) {
            b->want |= MG_ROLE_BIT(b->cand[i].in->role);
            if (b->cand[i].in->roles & MG_ROLE_BIT(MG_ROLE_MELODY)) has_melodic = 1;
        }
        if (has_melodic) b->want |= MG_ROLE_BIT(MG_ROLE_MELODY);
        b->want_why = "the job lists instruments but no stems: one stem per role the listed instruments play";
    } else {
        int solo = (c->flags & MG_F_SOLO) != 0;
        b->want = style->default_stems;
        if (solo) b->want &= MG_ROLE_BIT(MG_ROLE_MELODY) | MG_ROLE_BIT(MG_ROLE_CHORDS);
        for (int i = 0; i < b->n_cand; i++)
            if (!solo || b->cand[i].in->role <= MG_ROLE_CHORDS) b->want |= MG_ROLE_BIT(b->cand[i].in->role);
        b->want_why = solo ? "'solo' in the prompt: melody and chords only"
                           : "the style's usual stems, plus any the prompt's instruments need";
    }
}

static int s_matches(const mg_instr_t *in, mg_role_t role, s_match_t how)
{
    return how == S_PREFERS ? in->role == role : (in->roles & MG_ROLE_BIT(role)) != 0;
}

/* Gives a wanted, still empty role to candidate i, marking it used; note is appended to the
 * reason ("" for none). */
static void s_give(s_band_t *b, mg_role_t role, int i, const char *note)
{
    char why[sizeof b->source[0]];
    b->assign[role] = b->cand[i].in;
    b->cand[i].used = 1;
    snprintf(why, sizeof why, "'%.60s' in %s%s", b->cand[i].name, b->origin, note);
    mg_strlcpy(b->source[role], why, sizeof b->source[role]);
}

/* A wanted, still empty role goes to the first unused candidate that matches. 1 if it did. */
static int s_fill_role(s_band_t *b, mg_role_t role, s_match_t how)
{
    if (!(b->want & MG_ROLE_BIT(role)) || b->assign[role]) return 0;
    for (int i = 0; i < b->n_cand; i++)
        if (!b->cand[i].used && s_matches(b->cand[i].in, role, how)) {
            s_give(b, role, i, "");
            return 1;
        }
    return 0;
}

/* Drums: every drum entry merges into one kit (the first entry that names a kit picks it;
 * entries that are only extra percussion add their instruments). */
static void s_fill_drums(s_band_t *b, const mg_style_band_t *style)
{
    mg_comp_t *c = b->c;
    if (!(b->want & MG_ROLE_BIT(MG_ROLE_DRUMS))) return;
    int kit = -1, kit_entries = 0;
    c->drum_extra = 0;
    char list[96] = "";
    for (int i = 0; i < b->n_cand; i++) {
        const mg_instr_t *in = b->cand[i].in;
        if (in->family != MG_FAMILY_DRUMS) continue;
        b->cand[i].used = 1;
        c->drum_extra |= in->drums;
        if (in->program >= 0 && kit < 0) kit = in->program;
        if (!in->drums || in->program >= 0) kit_entries++;
        if (!b->assign[MG_ROLE_DRUMS]) b->assign[MG_ROLE_DRUMS] = in;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s'%s'", l ? ", " : "", b->cand[i].name);
    }
    c->kit = kit >= 0 ? kit : style->kit;
    if (b->assign[MG_ROLE_DRUMS] && !kit_entries) c->drum_extra |= MG_DRUM_EXTRAS_ONLY;
    if (b->assign[MG_ROLE_DRUMS]) {
        char why[sizeof b->source[0]];
        snprintf(why, sizeof why, "%.70s in %s", list, b->origin);
        mg_strlcpy(b->source[MG_ROLE_DRUMS], why, sizeof b->source[0]);
    }
}

/* Chords: of the unused candidates that can play them, the one that prefers chords, is not a
 * pad instrument, and leaves a pad instrument for a wanted pad stem. */
static void s_fill_chords(s_band_t *b)
{
    if (!(b->want & MG_ROLE_BIT(MG_ROLE_CHORDS))) return;
    int best = -1, best_score = -1;
    int pad_wanted = (b->want & MG_ROLE_BIT(MG_ROLE_PAD)) != 0;
    for (int i = 0; i < b->n_cand; i++) {
        const mg_instr_t *in = b->cand[i].in;
        if (b->cand[i].used || !(in->roles & MG_ROLE_BIT(MG_ROLE_CHORDS))) continue;
        int score = (in->role == MG_ROLE_CHORDS ? 4 : 0) + (in->role != MG_ROLE_PAD ? 1 : 0) +
                    (pad_wanted && !(in->roles & MG_ROLE_BIT(MG_ROLE_PAD)) ? 2 : 0);
        if (score > best_score) {
            best = i;
            best_score = score;
        }
    }
    if (best >= 0) s_give(b, MG_ROLE_CHORDS, best, "");
}

/* Leftover instruments open their own stem when the stems were not listed; with explicit
 * instruments an empty melodic stem doubles one that plays. */
static void s_place_leftovers(s_band_t *b)
{
    mg_comp_t *c = b->c;
    if (!c->stems_override)
        for (int i = 0; i < b->n_cand; i++) {
            if (b->cand[i].used) continue;
            for (int r = 0; r < MG_ROLE_COUNT; r++)
                if (!b->assign[r] && (b->cand[i].in->roles & MG_ROLE_BIT(r)) && r != MG_ROLE_DRUMS &&
                    (c->instr_override || !(b->want & MG_ROLE_BIT(r)))) {
                    b->want |= MG_ROLE_BIT(r);
                    s_give(b, (mg_role_t)r, i, " (an instrument left over)");
                    break;
                }
        }
    if (b->n_cand > 0 && (c->instr_override || c->stems_override))
        for (int r = MG_ROLE_MELODY; r <= MG_ROLE_PAD; r++) {
            if (!(b->want & MG_ROLE_BIT(r)) || b->assign[r]) continue;
            for (int i = 0; i < b->n_cand && !b->assign[r]; i++)
                if (b->cand[i].in->roles & MG_ROLE_BIT(r)) {
                    char why[sizeof b->source[0]];
                    snprintf(why, sizeof why, "'%.60s' in %s (also plays another stem)", b->cand[i].name, b->origin);
                    b->assign[r] = b->cand[i].in;
                    mg_strlcpy(b->source[r], why, sizeof b->source[r]);
                }
        }
}

/* The GM program an instrument plays in this cue: its own, or one of its family's picked for
 * the style and brightness. */
static int s_program(const mg_comp_t *c, const mg_instr_t *in, mg_role_t role)
{
    if (in->program >= 0) return in->program;
    switch (in->family) {
    case MG_FAMILY_PIANO:
        if (c->style == MG_STYLE_LOFI || c->style == MG_STYLE_JAZZ) return MG_GM_ELECTRIC_PIANO;
        return c->bright >= 700 ? MG_GM_BRIGHT_PIANO : MG_GM_GRAND_PIANO;
    case MG_FAMILY_STRINGS:
        return (c->a < -300 || c->style == MG_STYLE_AMBIENT) ? MG_GM_STRINGS_2 : MG_GM_STRINGS_1;
    case MG_FAMILY_GUITAR:
        return (c->bright >= 550 || c->style == MG_STYLE_POP || c->style == MG_STYLE_ROCK || c->style == MG_STYLE_FOLK)
                   ? MG_GM_STEEL_GUITAR : MG_GM_NYLON_GUITAR;
    case MG_FAMILY_BASS:
        return c->style == MG_STYLE_ELECTRONIC ? MG_GM_SYNTH_BASS_1
             : c->style == MG_STYLE_AMBIENT    ? MG_GM_SYNTH_BASS_2
             : c->style == MG_STYLE_ROCK       ? MG_GM_PICK_BASS
                                               : MG_GM_FINGER_BASS;
    case MG_FAMILY_LEAD: return (c->bright >= 500 || c->style == MG_STYLE_ELECTRONIC) ? MG_GM_SAW_LEAD : MG_GM_SQUARE_LEAD;
    case MG_FAMILY_PAD:
        if (role == MG_ROLE_CHORDS && c->style == MG_STYLE_ELECTRONIC) return MG_GM_POLYSYNTH_PAD;
        return c->bright >= 650 ? MG_GM_HALO_PAD : MG_GM_WARM_PAD;
    case MG_FAMILY_DRUMS: return mg_style_band(c->style).kit;
    default: return 0;
    }
}

/* Step 4: the score's stems in canonical role order. 0, or -1 out of memory. */
static int s_build_stems(s_band_t *b, mg_score_t *sc, const mg_style_band_t *style)
{
    mg_comp_t *c = b->c;
    sc->stems = calloc(MG_ROLE_COUNT, sizeof *sc->stems);
    if (!sc->stems) return -1;
    static const double gain[MG_ROLE_COUNT] = {0.85, 0.70, 0.55, 0.80, 0.75};
    static const double pan[MG_ROLE_COUNT] = {0.10, -0.20, 0.25, 0.0, 0.0};
    int chan = 0;
    for (int r = 0; r < MG_ROLE_COUNT; r++) {
        if (!(b->want & MG_ROLE_BIT(r))) continue;
        if (r == MG_ROLE_DRUMS && (c->flags & MG_F_SOLO) && !b->assign[r]) continue;
        mg_stem_plan_t *p = &c->stems[c->n_stems];
        mg_score_stem_t *o = &sc->stems[c->n_stems];
        p->role = (mg_role_t)r;
        p->instr = b->assign[r];
        mg_family_t fam;
        int prog;
        if (r == MG_ROLE_DRUMS) {
            fam = MG_FAMILY_DRUMS;
            prog = b->assign[r] ? c->kit : style->kit;
            c->kit = prog;
            if (!b->assign[r]) snprintf(b->source[r], sizeof b->source[0], "the %s style's kit", mg_style_name(c->style));
        } else if (b->assign[r]) {
            fam = b->assign[r]->family;
            prog = s_program(c, b->assign[r], (mg_role_t)r);
        } else {
            fam = style->band[r].family;
            prog = style->band[r].program;
            snprintf(b->source[r], sizeof b->source[0], "the %s style's %s (no %s instrument given)",
                     mg_style_name(c->style), mg_role_name((mg_role_t)r), mg_role_name((mg_role_t)r));
        }
        mg_strlcpy(p->source, b->source[r], sizeof p->source);
        mg_strlcpy(o->name, mg_role_name((mg_role_t)r), sizeof o->name);
        const char *gm = mg_gm_name(fam, prog);
        mg_strlcpy(o->instrument, gm ? gm : "?", sizeof o->instrument);
        o->family = fam;
        o->program = prog;
        o->is_drum = r == MG_ROLE_DRUMS;
        o->channel = o->is_drum ? 9 : chan++;
        o->gain = gain[r];
        o->pan = pan[r];
        c->n_stems++;
    }
    sc->n_stems = c->n_stems;
    if (c->n_stems == 0) {
        /* nothing playable: a melody on the style's instrument rather than silence */
        mg_stem_plan_t *p = &c->stems[0];
        mg_score_stem_t *o = &sc->stems[0];
        p->role = MG_ROLE_MELODY;
        snprintf(p->source, sizeof p->source, "no playable stem was asked for: the style's melody instrument");
        snprintf(o->name, sizeof o->name, "melody");
        o->family = style->band[0].family;
        o->program = style->band[0].program;
        mg_strlcpy(o->instrument, mg_gm_name(o->family, o->program), sizeof o->instrument);
        o->gain = gain[0];
        o->pan = pan[0];
        c->n_stems = sc->n_stems = 1;
    }
    return 0;
}

/* Notes every candidate that plays no stem, and the stems' reason. */
static void s_record_band(s_band_t *b, const mg_score_t *sc)
{
    mg_comp_t *c = b->c;
    for (int i = 0; i < b->n_cand; i++) {
        if (b->cand[i].used) continue;
        int played = 0;
        for (int r = 0; r < MG_ROLE_COUNT; r++)
            if (b->assign[r] == b->cand[i].in) played = 1;
        if (played) continue;
        char why[200];
        snprintf(why, sizeof why, "%.100s: no %s stem in this cue", b->cand[i].name, mg_role_name(b->cand[i].in->role));
        mg_comp_list_add(c, &c->unused_instr, &c->n_unused_instr, why);
    }
    char list[128] = "[";
    for (int k = 0; k < c->n_stems; k++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s\"%s\"", k ? "," : "", sc->stems[k].name);
    }
    mg_strlcpy(list + strlen(list), "]", sizeof list - strlen(list));
    mg_reason(c, "stems", list, "%s", b->want_why);
}

static const char *s_texture_text(mg_chord_texture_t t)
{
    switch (t) {
    case MG_TEXTURE_ARPEGGIO: return "arpeggiated (broken chords)";
    case MG_TEXTURE_STRUM: return "strummed (down/up strokes, strings staggered)";
    case MG_TEXTURE_BLOCK: return "block chords";
    case MG_TEXTURE_COMP: return "jazz comping (off-beat stabs, swung)";
    case MG_TEXTURE_STABS: return "off-beat stabs";
    case MG_TEXTURE_HELD: return "sustained (held through each chord)";
    case MG_TEXTURE_WALTZ: return "waltz (chords on beats 2 and 3)";
    default: return NULL;
    }
}

/* The texture the chords instrument plays in this style and density. */
static mg_chord_texture_t s_texture_for(const mg_comp_t *c, mg_family_t family, int program)
{
    mg_chord_texture_t t;
    if (c->flags & MG_F_ARPEGGIO) t = MG_TEXTURE_ARPEGGIO;
    else if (family == MG_FAMILY_GUITAR)
        t = (c->flags & MG_F_STRUM) || c->density_level > 0 ? MG_TEXTURE_STRUM : MG_TEXTURE_ARPEGGIO;
    else if (family == MG_FAMILY_PIANO)
        t = (c->style == MG_STYLE_BALLAD || c->style == MG_STYLE_AMBIENT || c->density_level == 0) ? MG_TEXTURE_ARPEGGIO
          : (c->style == MG_STYLE_JAZZ || c->style == MG_STYLE_LOFI)                              ? MG_TEXTURE_COMP
                                                                                                  : MG_TEXTURE_BLOCK;
    else if (program == MG_GM_HARP) t = MG_TEXTURE_ARPEGGIO;
    else if (program == MG_GM_PIZZICATO_STRINGS) t = MG_TEXTURE_BLOCK;
    else if (family == MG_FAMILY_PAD && c->style == MG_STYLE_ELECTRONIC && c->density_level > 0) t = MG_TEXTURE_STABS;
    else t = MG_TEXTURE_HELD;
    /* in 3/4 only broken or held chords keep their shape; the rest become the waltz */
    if (c->bpb == 3 && t != MG_TEXTURE_ARPEGGIO && t != MG_TEXTURE_HELD) t = MG_TEXTURE_WALTZ;
    return t;
}

/* Step 5. */
static void s_chord_texture(mg_comp_t *c, const mg_score_t *sc)
{
    if (c->bpb == 3) c->chord_pattern = MG_TEXTURE_WALTZ;
    for (int k = 0; k < c->n_stems; k++) {
        if (c->stems[k].role != MG_ROLE_CHORDS) continue;
        c->chord_pattern = s_texture_for(c, sc->stems[k].family, sc->stems[k].program);
        char val[64];
        snprintf(val, sizeof val, "\"%s\"", s_texture_text(c->chord_pattern));
        mg_reason(c, "chord_texture", val, "from the chords instrument (%s), the style (%s)%s", sc->stems[k].instrument,
                  mg_style_name(c->style),
                  (c->flags & (MG_F_ARPEGGIO | MG_F_STRUM)) ? " and the prompt's texture word" : " and the rhythmic density");
    }
}

void mg_decide_instruments(mg_comp_t *c, const mg_render_spec_t *spec, mg_score_t *sc)
{
    const mg_style_band_t style = mg_style_band(c->style);
    s_band_t *b = calloc(1, sizeof *b);
    if (!b) {
        c->oom = 1;
        return;
    }
    b->c = c;
    s_candidates(b, spec);
    s_wanted_stems(b, spec, &style);
    s_fill_drums(b, &style);
    if (!s_fill_role(b, MG_ROLE_BASS, S_PREFERS)) s_fill_role(b, MG_ROLE_BASS, S_CAN_PLAY);
    s_fill_role(b, MG_ROLE_MELODY, S_PREFERS);
    s_fill_chords(b);
    if (!s_fill_role(b, MG_ROLE_PAD, S_PREFERS)) s_fill_role(b, MG_ROLE_PAD, S_CAN_PLAY);
    s_fill_role(b, MG_ROLE_MELODY, S_CAN_PLAY);
    s_place_leftovers(b);
    if (s_build_stems(b, sc, &style) != 0) c->oom = 1;
    else {
        s_record_band(b, sc);
        s_chord_texture(c, sc);
    }
    free(b);
}
