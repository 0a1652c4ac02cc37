/* decide.c - every decision the composer makes before a note is written, each with its
 * reason: prompt interpretation, the emotion blend and the musical cues derived from it,
 * style, key, meter, tempo map, form and harmony; the instrument of each stem is instruments.c's.
 * compose.c calls mg_decide, then parts.c writes the notes these decisions describe.
 *
 * Emotion -> cue mapping (docs/composer.md has the table and the sources): valence and
 * arousal in milli-units (-1000..1000) feed linear formulas whose slopes follow the
 * direction and relative weight of each cue in the literature (mode > tempo > register >
 * loudness > articulation: Eerola, Friberg & Bresin 2013); all arithmetic is integer.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

/* ---- small utilities ------------------------------------------------------------------------ */

const char *mg_milli_str(int64_t milli, char *buf, size_t len)
{
    int64_t a = milli < 0 ? -milli : milli;
    snprintf(buf, len, "%s%lld.%03lld", milli < 0 ? "-" : "", (long long)(a / 1000), (long long)(a % 1000));
    return buf;
}

static int s_clamp(int x, int lo, int hi) { return x < lo ? lo : x > hi ? hi : x; }

static char *s_strdup(mg_comp_t *c, const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) c->oom = 1;
    return d;
}

static int s_grow(mg_comp_t *c, void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) { c->oom = 1; return -1; }
    *arr = p;
    *cap = nc;
    return 0;
}

void mg_reason(mg_comp_t *c, const char *param, const char *value_json, const char *fmt, ...)
{
    if (s_grow(c, (void **)&c->reasons, &c->cap_reasons, c->n_reasons + 1, sizeof *c->reasons)) return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    mg_reason_t *r = &c->reasons[c->n_reasons++];
    memset(r, 0, sizeof *r);
    mg_strlcpy(r->param, param, sizeof r->param);
    r->value = s_strdup(c, value_json);
    r->reason = s_strdup(c, text);
}

static void s_word(mg_comp_t *c, const char *word, const char *as, const char *effect)
{
    if (s_grow(c, (void **)&c->words, &c->cap_words, c->n_words + 1, sizeof *c->words)) return;
    mg_word_use_t *w = &c->words[c->n_words++];
    mg_strlcpy(w->word, word, sizeof w->word);
    mg_strlcpy(w->as, as, sizeof w->as);
    mg_strlcpy(w->effect, effect ? effect : "", sizeof w->effect);
}

void mg_comp_list_add(mg_comp_t *c, char ***list, int *n, const char *s)
{
    for (int i = 0; i < *n; i++)
        if (strcmp((*list)[i], s) == 0) return;
    char **p = realloc(*list, (size_t)(*n + 1) * sizeof **list);
    if (!p) { c->oom = 1; return; }
    *list = p;
    char *d = s_strdup(c, s);
    if (d) (*list)[(*n)++] = d;
}

static const char *s_chord_list(const mg_comp_t *c, const int *idx, int n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && o + 1 < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%s", i ? " " : "", c->chords[idx[i]].name);
        if (w < 0) break;
        o += (size_t)w;
    }
    return buf;
}

/* ---- styles ---------------------------------------------------------------------------------- */

typedef struct {
    int bpm_lo, bpm_hi;
    int swing;              /* off-beat eighth delay in ticks */
    int humanize;           /* timing jitter, +- ticks */
    int bars_per_chord;
    unsigned default_stems; /* MG_ROLE_BIT */
    struct { mg_family_t f; int p; } dflt[MG_ROLE_COUNT]; /* style instrument per role */
    int kit;
    const char *major[6], *minor[6];
} s_style_t;

#define STEMS4 (MG_ROLE_BIT(MG_ROLE_MELODY) | MG_ROLE_BIT(MG_ROLE_CHORDS) | MG_ROLE_BIT(MG_ROLE_BASS) | MG_ROLE_BIT(MG_ROLE_DRUMS))
#define STEMS3 (MG_ROLE_BIT(MG_ROLE_MELODY) | MG_ROLE_BIT(MG_ROLE_CHORDS) | MG_ROLE_BIT(MG_ROLE_BASS))
#define P(fam, prog) {MG_FAMILY_##fam, prog}

static const s_style_t s_styles[MG_STYLE_COUNT] = {
    [MG_STYLE_POP] = {96, 132, 0, 8, 1, STEMS4,
        {P(PIANO, 1), P(GUITAR, 25), P(PAD, 89), P(BASS, 33), P(DRUMS, 0)}, 0,
        {"I V vi IV", "I vi IV V", "vi IV I V", "I IV vi V", "I V IV V", "I iii IV V"},
        {"i bVI bIII bVII", "i iv bVI V", "i bVII bVI bVII", "i bVI iv V", "i bIII bVII iv", NULL}},
    [MG_STYLE_ROCK] = {100, 150, 0, 6, 1, STEMS4,
        {P(LEAD, 81), P(GUITAR, 25), P(STRINGS, 48), P(BASS, 34), P(DRUMS, 16)}, 16,
        {"I bVII IV I", "I IV V IV", "I V vi IV", "I IV I V", "I bIII IV I", NULL},
        {"i bVII bVI bVII", "i bIII bVII iv", "i iv bVII i", "i bVI bVII i", NULL, NULL}},
    [MG_STYLE_FOLK] = {80, 126, 0, 10, 1, STEMS4,
        {P(STRINGS, 40), P(GUITAR, 25), P(STRINGS, 48), P(BASS, 33), P(DRUMS, 0)}, 0,
        {"I IV I V", "I vi IV V", "I IV vi V", "I V IV I", "I iii IV I", NULL},
        {"i bVII bVI bVII", "i iv i V", "i bIII bVII i", "i bVI bVII i", NULL, NULL}},
    [MG_STYLE_ELECTRONIC] = {110, 132, 0, 0, 1, STEMS4,
        {P(LEAD, 81), P(PAD, 90), P(PAD, 94), P(BASS, 38), P(DRUMS, 25)}, 25,
        {"vi IV I V", "I V vi IV", "IV V vi vi", "I vi IV V", NULL, NULL},
        {"i bVI bIII bVII", "i bVII bVI V", "i iv bVI bVII", "i bVI bVII i", NULL, NULL}},
    [MG_STYLE_AMBIENT] = {56, 84, 0, 12, 2, STEMS3,
        {P(PIANO, 0), P(PAD, 89), P(PAD, 94), P(BASS, 39), P(DRUMS, 0)}, 0,
        {"I IV", "I vi IV I", "I iii IV I", "IV I", "I V vi IV", NULL},
        {"i bVI", "i iv bVI bVII", "i bVI bIII bVII", "i iv", NULL, NULL}},
    [MG_STYLE_CINEMATIC] = {60, 130, 0, 8, 1, STEMS4,
        {P(LEAD, 60), P(STRINGS, 48), P(PAD, 91), P(STRINGS, 42), P(DRUMS, 48)}, 48,
        {"I V vi IV", "I bVI bVII I", "I iii IV iv", "vi IV I V", "I IV bVI I", NULL},
        {"i bVI bIII bVII", "i iv bVI V", "i bVI iv V", "i bVII bVI V", "i bIII iv bVI", NULL}},
    [MG_STYLE_JAZZ] = {70, 140, 80, 10, 1, STEMS4,
        {P(LEAD, 59), P(PIANO, 4), P(STRINGS, 49), P(BASS, 33), P(DRUMS, 40)}, 40,
        {"Imaj7 vi7 ii7 V7", "ii7 V7 Imaj7 vi7", "Imaj7 IV7 iii7 vi7", "iii7 vi7 ii7 V7", NULL, NULL},
        {"i7 iv7 iih7 V7", "i7 bVImaj7 iih7 V7", "i7 iv7 bVII7 bIIImaj7", NULL, NULL, NULL}},
    [MG_STYLE_LOFI] = {70, 92, 60, 12, 1, STEMS4,
        {P(PIANO, 0), P(PIANO, 4), P(PAD, 89), P(BASS, 33), P(DRUMS, 0)}, 0,
        {"Imaj7 vi7 ii7 V7", "IVmaj7 iii7 ii7 Imaj7", "Imaj7 iii7 IVmaj7 iv7", NULL, NULL, NULL},
        {"i7 iv7 bVImaj7 V7", "i7 bVImaj7 bIIImaj7 bVII7", "i7 iv7 i7 V7", NULL, NULL, NULL}},
    [MG_STYLE_BALLAD] = {56, 88, 0, 12, 1, STEMS3,
        {P(PIANO, 0), P(PIANO, 0), P(STRINGS, 49), P(BASS, 33), P(DRUMS, 0)}, 0,
        {"I vi IV V", "I iii vi IV", "I IV I V", "I V vi IV", "vi IV I V", NULL},
        {"i bVI bIII bVII", "i iv bVII bIII", "i bVI iv V", "i v bVI bIII", NULL, NULL}},
};

/* Tension level 3 in minor: progressions with the flat supertonic and diminished chords. */
static const char *const s_tense_minor[] = {"i bII i V", "i iv bII V", "i bVI iio V", "i #ivo iv V"};

/* Lexicon values are multiples of 0.05: rounding to milli-units is exact on every machine. */
static int s_milli(double x) { return (int)(x * 1000.0 + (x < 0 ? -0.5 : 0.5)); }

/* ---- prompt ------------------------------------------------------------------------------- */

/* Applies one recognised phrase. Returns 1 when phrase is known. */
static int s_apply_phrase(mg_comp_t *c, const char *phrase)
{
    const mg_instr_t *in = mg_instr_find(phrase);
    if (in) {
        char eff[120];
        snprintf(eff, sizeof eff, "%s instrument%s%s", mg_family_name(in->family), in->note ? ": " : "",
                 in->note ? in->note : "");
        if (c->n_prompt_instr < (int)(sizeof c->prompt_instr / sizeof c->prompt_instr[0]))
            c->prompt_instr[c->n_prompt_instr++] = in;
        s_word(c, phrase, "instrument", eff);
        return 1;
    }
    const mg_word_t *w = mg_word_find(phrase);
    if (w) {
        switch (w->kind) {
        case MG_W_STOP: return 1;
        case MG_W_STYLE:
            if (c->style_from_prompt) {
                char eff[120];
                snprintf(eff, sizeof eff, "style %s (not used: the style was already set to %s)",
                         mg_style_name(w->arg), mg_style_name(c->style));
                s_word(c, phrase, "style", eff);
            } else {
                c->style = w->arg;
                c->style_from_prompt = 1;
                char eff[64];
                snprintf(eff, sizeof eff, "style %s", mg_style_name(w->arg));
                s_word(c, phrase, "style", eff);
            }
            return 1;
        case MG_W_ENERGY:
            if (w->tempo_pct) c->tempo_pct = c->tempo_pct * w->tempo_pct / 100;
            c->d_loud += w->loud;
            c->d_bright += w->bright;
            c->d_density += w->density;
            s_word(c, phrase, "tempo/energy", w->effect);
            return 1;
        case MG_W_STRUCT:
            c->flags |= (unsigned)w->arg;
            s_word(c, phrase, "structure", w->effect);
            return 1;
        default: return 0;
        }
    }
    const mg_emotion_t *e = mg_emotion_find(phrase);
    if (e) {
        if (c->n_prompt_emotions < (int)(sizeof c->prompt_emotions / sizeof c->prompt_emotions[0]))
            c->prompt_emotions[c->n_prompt_emotions++] = e;
        char eff[120], vb[24], ab[24];
        snprintf(eff, sizeof eff, "emotion '%s' (valence %s, arousal %s)", e->tag,
                 mg_milli_str(s_milli(e->valence), vb, sizeof vb), mg_milli_str(s_milli(e->arousal), ab, sizeof ab));
        s_word(c, phrase, "emotion", eff);
        return 1;
    }
    return 0;
}

static int s_is_number(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* Tokenises the prompt (lower case; runs of [a-z0-9'/-]), matches the longest known phrase
 * of up to three tokens, splits unknown hyphenated words into their parts, and lists what
 * stays unknown. */
static void s_prompt(mg_comp_t *c, const char *prompt)
{
    enum { MAXTOK = 512 };
    static const int maxlen = 48;
    char (*tok)[48] = calloc(MAXTOK, sizeof *tok);
    if (!tok) { c->oom = 1; return; }
    int n = 0;
    const char *p = prompt;
    while (*p && n < MAXTOK) {
        while (*p && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) p++;
        if (!*p) break;
        int l = 0;
        char t[48];
        while (*p && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-' || *p == '\'' || *p == '/')) {
            if (l < maxlen - 1) t[l++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
            p++;
        }
        while (l > 0 && (t[l - 1] == '-' || t[l - 1] == '\'' || t[l - 1] == '/')) l--;
        t[l] = 0;
        if (l > 2 && t[l - 2] == '\'' && t[l - 1] == 's') t[l - 2] = 0; /* possessive */
        if (*t) memcpy(tok[n++], t, sizeof t);
    }
    for (int i = 0; i < n; i++) {
        /* tempo: "120 bpm" or "120bpm" */
        size_t tl = strlen(tok[i]);
        if (s_is_number(tok[i]) && i + 1 < n && !strcmp(tok[i + 1], "bpm")) {
            c->prompt_bpm = atoi(tok[i]);
            char w[64];
            snprintf(w, sizeof w, "%s bpm", tok[i]);
            s_word(c, w, "tempo/energy", "tempo asked for in the prompt");
            i++;
            continue;
        }
        if (tl > 3 && !strcmp(tok[i] + tl - 3, "bpm")) {
            char num[48];
            memcpy(num, tok[i], tl - 3);
            num[tl - 3] = 0;
            if (s_is_number(num)) {
                c->prompt_bpm = atoi(num);
                s_word(c, tok[i], "tempo/energy", "tempo asked for in the prompt");
                continue;
            }
        }
        if (!strcmp(tok[i], "3/4")) {
            c->flags |= MG_F_WALTZ;
            s_word(c, tok[i], "structure", "3/4 time");
            continue;
        }
        int used = 0;
        for (int len = 3; len >= 2 && !used; len--) {
            if (i + len > n) continue;
            char ph[160];
            ph[0] = 0;
            for (int k = 0; k < len; k++) {
                strcat(ph, k ? " " : "");
                strcat(ph, tok[i + k]);
            }
            if (s_apply_phrase(c, ph)) { i += len - 1; used = 1; }
        }
        if (used || s_apply_phrase(c, tok[i])) continue;
        /* plural */
        if (tl > 3 && tok[i][tl - 1] == 's') {
            char sing[48];
            memcpy(sing, tok[i], tl - 1);
            sing[tl - 1] = 0;
            if (mg_instr_find(sing) && s_apply_phrase(c, sing)) continue;
        }
        /* hyphenated: its parts */
        if (strchr(tok[i], '-') || strchr(tok[i], '/')) {
            char buf[48];
            memcpy(buf, tok[i], sizeof buf);
            char *save = NULL;
            for (char *part = strtok_r(buf, "-/", &save); part; part = strtok_r(NULL, "-/", &save)) {
                if (!*part || s_apply_phrase(c, part)) continue;
                mg_comp_list_add(c, &c->ignored, &c->n_ignored, part);
            }
            continue;
        }
        mg_comp_list_add(c, &c->ignored, &c->n_ignored, tok[i]);
    }
    free(tok);
}

/* ---- emotion ------------------------------------------------------------------------------ */

static void s_emotion(mg_comp_t *c, const mg_render_spec_t *spec)
{
    char buf[sizeof spec->emotions];
    mg_strlcpy(buf, spec->emotions, sizeof buf);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        char *e = t + strlen(t);
        while (e > t && e[-1] == ' ') *--e = 0;
        if (!*t) continue;
        const mg_emotion_t *em = mg_emotion_find(t);
        if (!em) {
            mg_comp_list_add(c, &c->unknown_tags, &c->n_unknown_tags, t);
            continue;
        }
        if (c->n_tags < (int)(sizeof c->tags / sizeof c->tags[0])) c->tags[c->n_tags++] = em;
    }
    const mg_emotion_t *const *src = c->tags;
    int n = c->n_tags;
    c->emotion_source = 0;
    if (n == 0 && c->n_prompt_emotions) {
        src = c->prompt_emotions;
        n = c->n_prompt_emotions;
        c->emotion_source = 1;
    }
    char names[512] = "", vbuf[24], abuf[24];
    size_t o = 0;
    int sv = 0, sa = 0;
    for (int i = 0; i < n; i++) {
        int v = s_milli(src[i]->valence), a = s_milli(src[i]->arousal);
        sv += v;
        sa += a;
        int w = snprintf(names + o, sizeof names - o, "%s%s (%s, %s)", i ? ", " : "", src[i]->tag,
                         mg_milli_str(v, vbuf, sizeof vbuf), mg_milli_str(a, abuf, sizeof abuf));
        if (w > 0 && (size_t)w < sizeof names - o) o += (size_t)w;
    }
    if (n == 0) {
        /* No emotion at all: a gentle, mildly positive centre, so the cue is neither sad nor
         * frantic (the interim synth renderer used the same default). */
        c->emotion_source = 2;
        c->v = 300;
        c->a = 0;
        mg_reason(c, "valence_arousal", "[0.300,0.000]",
                  "no emotion tags and no emotion words in the prompt: a mildly pleasant, moderate "
                  "default (valence +0.30, arousal 0.00)");
        return;
    }
    /* Round half away from zero so the mean is the same on every machine. */
    c->v = sv >= 0 ? (sv + n / 2) / n : -((-sv + n / 2) / n);
    c->a = sa >= 0 ? (sa + n / 2) / n : -((-sa + n / 2) / n);
    char val[64];
    snprintf(val, sizeof val, "[%s,%s]", mg_milli_str(c->v, vbuf, sizeof vbuf), mg_milli_str(c->a, abuf, sizeof abuf));
    const char *quad = c->a >= 0 ? (c->v >= 0 ? "activated-pleasant (happy, excited)" : "activated-unpleasant (tense, angry, afraid)")
                                 : (c->v >= 0 ? "calm-pleasant (serene, tender)" : "calm-unpleasant (sad, depressed)");
    mg_reason(c, "valence_arousal", val,
              "mean circumplex position (Russell 1980) of %s %s: %s; cues combine additively "
              "(Eerola, Friberg & Bresin 2013). Quadrant: %s",
              c->emotion_source == 0 ? "the emotion tags" : "the prompt's emotion words (the cue has no tags)",
              n == 1 ? "" : "(equal weights)", names, quad);
}

/* ---- style --------------------------------------------------------------------------------- */

static void s_style(mg_comp_t *c, const mg_render_spec_t *spec)
{
    char val[32];
    if (c->style_from_prompt) {
        snprintf(val, sizeof val, "\"%s\"", mg_style_name(c->style));
        mg_reason(c, "style", val, "named in the prompt (see prompt.recognised)");
        return;
    }
    /* Instruments hint at a style: explicit ones first, then the prompt's. */
    const mg_instr_t *list[32];
    int n = 0;
    char buf[sizeof spec->instruments];
    mg_strlcpy(buf, spec->instruments, sizeof buf);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save)) {
        char low[128];
        size_t k = 0;
        while (*t == ' ') t++;
        for (; t[k] && k < sizeof low - 1; k++) low[k] = (char)((t[k] >= 'A' && t[k] <= 'Z') ? t[k] - 'A' + 'a' : t[k]);
        low[k] = 0;
        const mg_instr_t *in = mg_instr_find(low);
        if (in) list[n++] = in;
    }
    for (int i = 0; i < c->n_prompt_instr && n < 32; i++) list[n++] = c->prompt_instr[i];
    int synth = 0, jazz = 0, orch = 0, guitar = 0;
    for (int i = 0; i < n; i++) {
        const mg_instr_t *in = list[i];
        if (in->program == 25 && in->family == MG_FAMILY_DRUMS) synth++;
        if (in->family == MG_FAMILY_LEAD && (in->program == -1 || in->program == 80 || in->program == 81)) synth++;
        if (in->family == MG_FAMILY_BASS && (in->program == 38 || in->program == 39)) synth++;
        if (in->program == 59 || (in->family == MG_FAMILY_DRUMS && in->program == 40)) jazz++;
        if (in->program == 60 || in->program == 61 || in->program == 48 || in->program == 91 ||
            (in->family == MG_FAMILY_DRUMS && in->program == 48))
            orch++;
        if (in->family == MG_FAMILY_GUITAR) guitar++;
    }
    const char *why;
    if (synth >= 2 || (synth && c->a > 200)) { c->style = MG_STYLE_ELECTRONIC; why = "synth instruments"; }
    else if (jazz) { c->style = MG_STYLE_JAZZ; why = "muted trumpet or brushes"; }
    else if (orch >= 2) { c->style = MG_STYLE_CINEMATIC; why = "orchestral instruments"; }
    else if (c->a >= 300) {
        if (c->v >= 0) { c->style = MG_STYLE_POP; why = "activated and pleasant"; }
        else if (guitar) { c->style = MG_STYLE_ROCK; why = "activated, unpleasant, with guitar"; }
        else { c->style = MG_STYLE_CINEMATIC; why = "activated and unpleasant"; }
    } else if (c->a >= -200) {
        if (c->v < 0) { c->style = c->a < 0 ? MG_STYLE_BALLAD : MG_STYLE_CINEMATIC; why = "moderate arousal, unpleasant"; }
        else if (guitar) { c->style = MG_STYLE_FOLK; why = "moderate arousal, pleasant, with guitar"; }
        else if (c->a >= 100) { c->style = MG_STYLE_POP; why = "moderate arousal, pleasant"; }
        else { c->style = MG_STYLE_BALLAD; why = "calm-ish and pleasant"; }
    } else if (c->v >= 200 && c->a <= -400) { c->style = MG_STYLE_AMBIENT; why = "very calm and pleasant"; }
    else if (guitar && c->v >= 0) { c->style = MG_STYLE_FOLK; why = "calm, pleasant, with guitar"; }
    else { c->style = MG_STYLE_BALLAD; why = "calm"; }
    snprintf(val, sizeof val, "\"%s\"", mg_style_name(c->style));
    mg_reason(c, "style", val, "no style word in the prompt; chosen from %s", why);
}

/* ---- cues ------------------------------------------------------------------------------------ */

static void s_cues(mg_comp_t *c)
{
    const int v = c->v, a = c->a;
    char b1[24], b2[24], val[32];
    /* Loudness: arousal is the main driver; valence adds a little (Gabrielsson & Lindstrom
     * 2010: loud -> power, excitement, anger; soft -> tenderness, sadness). */
    c->loud = s_clamp(500 + a * 38 / 100 + v * 6 / 100 + c->d_loud, 50, 1000);
    mg_reason(c, "loudness", mg_milli_str(c->loud, val, sizeof val),
              "0.50 + 0.38 x arousal + 0.06 x valence%s = %s (loud <-> activated: Gabrielsson & Lindstrom 2010; "
              "Juslin & Laukka 2003)", c->d_loud ? " + prompt words" : "", mg_milli_str(c->loud, b1, sizeof b1));
    /* Loudness variation: large for fear/anger (unpleasant and activated), small for calm. */
    int neg = v < 0 ? -v : 0, act = a > 0 ? a : 0;
    c->loud_var = s_clamp(150 + neg * act / 1000 * 8 / 10 + act / 5, 0, 1000);
    mg_reason(c, "loudness_variation", mg_milli_str(c->loud_var, val, sizeof val),
              "0.15 + 0.8 x (unpleasantness x activation) + 0.2 x activation = %s (large loudness "
              "variation -> fear: Gabrielsson & Lindstrom 2010)", mg_milli_str(c->loud_var, b1, sizeof b1));
    /* Articulation (note length / inter-onset interval): legato for sad and tender, staccato
     * for happy and active (Juslin 2001; Gabrielsson & Lindstrom 2010). */
    c->gate_pct = s_clamp(84 - a * 20 / 1000 - (a > 0 ? v * 8 / 1000 : 0), 55, 97);
    snprintf(val, sizeof val, "%d", c->gate_pct);
    mg_reason(c, "articulation_gate_pct", val,
              "notes sound for %d%% of their slot: 84 - 20 x arousal%s (legato when calm or sad, "
              "staccato when happy and active: Juslin 2001)", c->gate_pct, a > 0 ? " - 8 x valence" : "");
    /* Register: higher for happy and active, lower for sad (Hevner 1937; Huron 2008). */
    c->reg_midi = s_clamp(67 + v * 4 / 1000 + a * 3 / 1000 + c->d_bright * 4 / 1000, 58, 79);
    snprintf(val, sizeof val, "%d", c->reg_midi);
    mg_reason(c, "register_midi", val,
              "melody centred on MIDI %d: 67 + 4 x valence + 3 x arousal%s (high pitch -> happy and "
              "active, low -> sad: Hevner 1937; Gabrielsson & Lindstrom 2010)", c->reg_midi,
              c->d_bright ? " + brightness words" : "");
    /* Range (ambitus) in scale steps: wide for happy, narrow for sad. */
    c->range_steps = s_clamp(9 + (v + a) * 3 / 1000, 7, 12);
    snprintf(val, sizeof val, "%d", c->range_steps);
    mg_reason(c, "melody_range_steps", val,
              "melody spans about %d scale steps: 9 + 3 x (valence + arousal), within 7..12 (wide range -> joy, narrow -> "
              "sadness: Gabrielsson & Lindstrom 2010)", c->range_steps);
    /* Direction: happy melodies rise, sad ones fall. */
    c->up_permille = s_clamp(500 + v / 5, 300, 700);
    mg_strlcpy(val, mg_milli_str(c->up_permille, b1, sizeof b1), sizeof val);
    mg_reason(c, "melody_ascending", val,
              "probability a melodic step goes up: 0.5 + 0.2 x valence (ascending -> happy, descending -> "
              "sad: Gabrielsson & Lindstrom 2010)");
    /* Harmonic tension: unpleasant-activated is most dissonant (fear, anger), pleasant-calm
     * least (Gabrielsson & Lindstrom 2010: dissonance -> tension, fear, anger; Lerdahl &
     * Krumhansl 2007 on tonal tension). */
    c->tension = s_clamp(-v * 6 / 10 + a * 4 / 10 + 100, 0, 1000);
    c->tension_level = c->tension < 150 ? 0 : c->tension < 350 ? 1 : c->tension < 550 ? 2 : 3;
    static const char *const tl[] = {"consonant triads (added 9ths for colour when calm)",
                                     "dominant sevenths at cadences",
                                     "sevenths on minor and dominant chords",
                                     "flat-2 and diminished chords, b9 on dominants, clustered pad"};
    mg_reason(c, "tension", mg_milli_str(c->tension, val, sizeof val),
              "0.1 - 0.6 x valence + 0.4 x arousal = %s -> level %d of 3: %s (dissonance -> tension, fear, "
              "anger; consonance -> calm, happy: Gabrielsson & Lindstrom 2010)",
              mg_milli_str(c->tension, b1, sizeof b1), c->tension_level, tl[c->tension_level]);
    /* Rhythmic density: arousal (Gabrielsson & Lindstrom: fast, busy -> activity). */
    c->density = s_clamp(a + c->d_density, -1000, 1000);
    c->density_level = c->density < -250 ? 0 : c->density < 350 ? 1 : 2;
    static const char *const dl[] = {"sparse (half and quarter notes)", "moderate (quarters and eighths)",
                                     "busy (eighths and sixteenths)"};
    mg_reason(c, "rhythmic_density", mg_milli_str(c->density, val, sizeof val),
              "arousal%s = %s -> %s", c->d_density ? " + prompt words" : "", mg_milli_str(c->density, b1, sizeof b1),
              dl[c->density_level]);
    /* Brightness (timbre: spectral centroid): bright for happy/active, dark for sad. */
    c->bright = s_clamp(500 + v * 3 / 10 + a * 2 / 10 + c->d_bright, 0, 1000);
    mg_reason(c, "brightness", mg_milli_str(c->bright, val, sizeof val),
              "0.5 + 0.3 x valence + 0.2 x arousal%s = %s (bright timbre -> happiness, potency; dark/soft -> "
              "sadness, tenderness: Juslin & Laukka 2003; Eerola et al. 2013)", c->d_bright ? " + prompt words" : "",
              mg_milli_str(c->bright, b2, sizeof b2));
}

/* ---- key, meter, tempo --------------------------------------------------------------------- */

static int s_parse_key(const char *key, int *tonic, mg_mode_t *mode)
{
    static const int base[7] = {9, 11, 0, 2, 4, 5, 7}; /* A..G */
    while (*key == ' ') key++;
    int l = *key >= 'a' && *key <= 'g' ? *key - 'a' + 'A' : *key;
    if (l < 'A' || l > 'G') return -1;
    int pc = base[l - 'A'];
    key++;
    if (*key == '#') { pc++; key++; }
    else if (*key == 'b') { pc--; key++; }
    while (*key == ' ') key++;
    *tonic = (pc + 12) % 12;
    if (!strncmp(key, "min", 3) || !strncmp(key, "Min", 3) || !strcmp(key, "m")) *mode = MG_MODE_MINOR;
    else *mode = MG_MODE_MAJOR;
    return 0;
}

static void s_key(mg_comp_t *c, const mg_render_spec_t *spec, mg_rng_t *rng)
{
    /* Draws happen whether or not the key is overridden, so overriding the key does not
     * change any other choice. */
    int coin = mg_rng_below(rng, 2);
    int pick = mg_rng_below(rng, 1000);
    char val[48];
    mg_mode_t emo_mode = c->v < -50 ? MG_MODE_MINOR : c->v > 50 ? MG_MODE_MAJOR : (coin ? MG_MODE_MINOR : MG_MODE_MAJOR);
    char vb[24], mode_why[200];
    snprintf(mode_why, sizeof mode_why, "%s: valence %s is %s", emo_mode ? "minor" : "major",
             mg_milli_str(c->v, vb, sizeof vb),
             c->v < -50 ? "below -0.05 (minor -> sad, tense: Hevner 1935; Gabrielsson & Lindstrom 2010)"
             : c->v > 50 ? "above +0.05 (major -> happy, serene: Hevner 1935; Gabrielsson & Lindstrom 2010)"
                         : "within 0.05 of neutral, so the seed chose");
    if (spec->key[0] && s_parse_key(spec->key, &c->tonic, &c->mode) == 0) {
        c->key_override = 1;
        snprintf(val, sizeof val, "\"%s %s\"", mg_pc_names[c->tonic], c->mode ? "minor" : "major");
        mg_reason(c, "key", val, "set in the job file (override); the emotion model alone would choose %s", mode_why);
        return;
    }
    c->mode = emo_mode;
    /* Tonic: keys that sit well on the lead instruments; guitar-friendly when a guitar plays. */
    static const int any_major[] = {0, 2, 3, 4, 5, 7, 9, 10}, any_minor[] = {9, 4, 2, 7, 0, 5, 11};
    static const int gtr_major[] = {4, 9, 2, 7, 0}, gtr_minor[] = {4, 9, 2, 11};
    int guitar = c->style == MG_STYLE_FOLK || c->style == MG_STYLE_ROCK;
    const int *set;
    int n;
    if (guitar) { set = c->mode ? gtr_minor : gtr_major; n = c->mode ? 4 : 5; }
    else { set = c->mode ? any_minor : any_major; n = c->mode ? 7 : 8; }
    c->tonic = set[pick * n / 1000];
    snprintf(val, sizeof val, "\"%s %s\"", mg_pc_names[c->tonic], c->mode ? "minor" : "major");
    mg_reason(c, "key", val, "mode %s; tonic %s: the seed's choice among %s keys", mode_why, mg_pc_names[c->tonic],
              guitar ? "guitar-friendly" : "common");
}

static void s_meter(mg_comp_t *c)
{
    c->bpb = (c->flags & MG_F_WALTZ) ? 3 : 4;
    mg_reason(c, "time_signature", c->bpb == 3 ? "\"3/4\"" : "\"4/4\"",
              c->bpb == 3 ? "'waltz' or '3/4' in the prompt" : "common time (no meter word in the prompt)");
}

static void s_tempo_target(mg_comp_t *c, const mg_render_spec_t *spec, mg_rng_t *rng)
{
    const s_style_t *st = &s_styles[c->style];
    int jitter = mg_rng_range(rng, -3000, 3000);
    /* 96 BPM at the centre; arousal dominates, valence adds a little (Gabrielsson &
     * Lindstrom 2010: fast -> activity, happiness; slow -> calm, sadness, tenderness). */
    int64_t t = 96000 + (int64_t)c->a * 36 + (int64_t)c->v * 6;
    int64_t emo = t;
    t = t * c->tempo_pct / 100;
    int64_t lo = st->bpm_lo * 1000, hi = st->bpm_hi * 1000;
    if (t < lo) t = lo;
    if (t > hi) t = hi;
    t += jitter;
    if (t < lo) t = lo;
    if (t > hi) t = hi;
    char b1[24], b2[24], val[32];
    if (spec->tempo_bpm > 0) {
        c->tempo_override = 1;
        c->target_bpm_milli = (int)(spec->tempo_bpm * 1000.0 + 0.5);
        mg_strlcpy(val, mg_milli_str(c->target_bpm_milli, b1, sizeof b1), sizeof val);
        mg_reason(c, "tempo_target_bpm", val,
                  "set in the job file (override); the emotion model alone would choose %s BPM "
                  "(96 + 36 x arousal + 6 x valence = %s, %s range %d-%d, seed jitter)",
                  mg_milli_str(t, b1, sizeof b1), mg_milli_str(emo, b2, sizeof b2), mg_style_name(c->style),
                  st->bpm_lo, st->bpm_hi);
        return;
    }
    if (c->prompt_bpm >= 20 && c->prompt_bpm <= 300) {
        c->target_bpm_milli = c->prompt_bpm * 1000;
        snprintf(val, sizeof val, "%d", c->prompt_bpm);
        mg_reason(c, "tempo_target_bpm", val, "asked for in the prompt");
        return;
    }
    c->target_bpm_milli = (int)t;
    mg_reason(c, "tempo_target_bpm", mg_milli_str(t, b1, sizeof b1),
              "96 + 36 x arousal + 6 x valence = %s BPM (fast -> activity, happiness, anger; slow -> calm, "
              "sadness, tenderness: Gabrielsson & Lindstrom 2010)%s%s, kept within the %s range %d-%d, "
              "plus the seed's jitter of %+d.%03d",
              mg_milli_str(emo, b2, sizeof b2), c->tempo_pct != 100 ? "; prompt tempo words x" : "",
              c->tempo_pct != 100 ? mg_milli_str(c->tempo_pct * 10, val, sizeof val) : "", mg_style_name(c->style),
              st->bpm_lo, st->bpm_hi, jitter / 1000, abs(jitter % 1000));
}

/* The tempo map: an integer number of beats, each with its microseconds per quarter,
 * summing exactly to the duration (to the microsecond). */
static int s_time(mg_comp_t *c, const mg_render_spec_t *spec)
{
    int64_t dur_us = (int64_t)(spec->duration_s * 1e6 + 0.5);
    if (dur_us < 1) dur_us = 1;
    int64_t T = c->target_bpm_milli;
    int bpb = c->bpb;
    int64_t mb = dur_us * T / 60000000; /* milli-beats */
    int n;
    int64_t base = 0, rem = 0;
    int tiny = 0;
    char why[400];
    if (c->loop) {
        /* A seamless loop: whole bars at one tempo, so it repeats in time with itself and a
         * DAW's grid. Without a job tempo the target is rounded to a whole BPM (loop libraries
         * and DAWs name loops by integer BPM); the length follows the bars, not the reverse. */
        if (!c->tempo_override) T = (T + 500) / 1000 * 1000;
        if (T < 20000) T = 20000;
        int64_t uspq0 = (60000000000LL + T / 2) / T, bar_us = uspq0 * bpb;
        int64_t bars = (dur_us + bar_us / 2) / bar_us;
        if (bars < 1) bars = 1;
        while (bars > 1 && bars * bar_us > (int64_t)(MG_MAX_DURATION_S * 1e6)) bars--;
        n = (int)bars * bpb;
        base = uspq0;
        c->loop_req_us = dur_us;
        c->loop_bars = (int)bars;
        snprintf(why, sizeof why,
                 "a loop (loop: true): %lld us asked for, rounded to the nearest whole number of bars, %lld "
                 "bars of %d beats at %s BPM%s (%lld us per quarter) = %lld us; every beat the same, so the "
                 "loop keeps one tempo", (long long)dur_us, (long long)bars, bpb,
                 mg_milli_str(T, (char[24]){0}, 24), c->tempo_override ? " (the job's tempo)" : " (the target, to a whole BPM)",
                 (long long)uspq0, (long long)((int64_t)n * uspq0));
    } else if (c->tempo_override) {
        int64_t uspq0 = (60000000000LL + T / 2) / T;
        n = (int)(dur_us / uspq0);
        rem = dur_us - (int64_t)n * uspq0;
        if (n == 0) { n = 1; rem = dur_us - uspq0; }
        if (c->ending == MG_END_LOOP) {
            if (rem * 2 > uspq0) { n++; rem -= uspq0; }
        } else if (rem * 4 > uspq0 * 3) { n++; rem -= uspq0; }
        base = uspq0;
        tiny = (rem < 0 ? -rem : rem) * 1000 < uspq0; /* under 0.1% of a beat: rounding */
        snprintf(why, sizeof why,
                 "%d beats at the job's %s BPM; the remaining %lld us (%s of a beat) %s", n,
                 mg_milli_str(T, (char[24]){0}, 24), (long long)rem, mg_milli_str(rem * 1000 / uspq0, (char[24]){0}, 24),
                 rem == 0 ? "is zero: no easing needed"
                 : tiny ? "go to the last beat (microsecond rounding, inaudible)"
                 : c->ending == MG_END_LOOP ? "are spread evenly over every beat, so the loop keeps one tempo"
                 : rem > 0 ? "broaden the last beats (a ritardando into the final cadence)"
                           : "are taken from the last beats (a slight push into the final cadence)");
    } else {
        int bars = (int)((mb + bpb * 500) / (bpb * 1000));
        if (bars < 1) bars = 1;
        n = bars * bpb;
        int64_t t2 = (int64_t)n * 60000000000LL / dur_us;
        int whole = 1;
        if ((t2 > T ? t2 - T : T - t2) * 1000 > 80 * T) {
            n = (int)((mb + 500) / 1000);
            if (n < 1) n = 1;
            whole = 0;
        }
        snprintf(why, sizeof why, "%d beats (%s) fill %lld us exactly; the tempo moves from the target "
                 "to fit them", n, whole ? "whole bars" : "whole beats; whole bars would move the tempo more than 8%",
                 (long long)dur_us);
    }
    c->n_beats = n;
    c->beat_uspq = calloc((size_t)n, sizeof *c->beat_uspq);
    c->beat_us = calloc((size_t)n + 1, sizeof *c->beat_us);
    if (!c->beat_uspq || !c->beat_us) { c->oom = 1; return -1; }
    /* ritardando weights (permille slower) on the last beats */
    int m = n < 4 ? n : 4;
    int64_t rit[4] = {0, 0, 0, 0};
    if (c->loop) {
        for (int i = 0; i < n; i++) c->beat_uspq[i] = (int32_t)base;
    } else if (c->tempo_override) {
        for (int i = 0; i < n; i++) c->beat_uspq[i] = (int32_t)base;
        if (tiny) {
            c->beat_uspq[n - 1] += (int32_t)rem;
        } else if (c->ending == MG_END_LOOP) {
            int64_t each = rem / n;
            for (int i = 0; i < n; i++) c->beat_uspq[i] = (int32_t)(base + each);
            c->beat_uspq[n - 1] += (int32_t)(rem - each * n);
        } else {
            int64_t w = (int64_t)m * (m + 1) / 2, given = 0;
            for (int k = 1; k <= m; k++) {
                int64_t add = rem * k / w;
                c->beat_uspq[n - m + k - 1] += (int32_t)add;
                given += add;
            }
            c->beat_uspq[n - 1] += (int32_t)(rem - given);
        }
    } else {
        int rit_beats = (c->ending == MG_END_HELD && n >= 2 * bpb) ? bpb : 0;
        int64_t rsum = 0;
        for (int k = 0; k < rit_beats; k++) { rit[k] = 40 * (k + 1); rsum += rit[k]; }
        base = dur_us * 1000 / ((int64_t)n * 1000 + rsum);
        int64_t total = 0;
        for (int i = 0; i < n; i++) {
            int k = i - (n - rit_beats);
            int64_t u = k >= 0 ? base * (1000 + rit[k]) / 1000 : base;
            c->beat_uspq[i] = (int32_t)u;
            total += u;
        }
        c->beat_uspq[n - 1] += (int32_t)(dur_us - total);
        if (rit_beats) {
            size_t l = strlen(why);
            snprintf(why + l, sizeof why - l, "; the last %d beats broaden by 4%% steps (ritardando) into the held "
                     "final chord", rit_beats);
        }
    }
    for (int i = 0; i < n; i++) c->beat_us[i + 1] = c->beat_us[i] + c->beat_uspq[i];
    /* main tempo */
    int64_t cbpm = (6000000000LL + base / 2) / base; /* centi-BPM */
    char val[32];
    snprintf(val, sizeof val, "%lld.%02lld", (long long)(cbpm / 100), (long long)(cbpm % 100));
    mg_reason(c, "tempo_bpm", val, "%s", why);
    c->n_bars = (n + bpb - 1) / bpb;
    c->last_bar_beats = n - (c->n_bars - 1) * bpb;
    if (c->last_bar_beats != bpb) {
        snprintf(val, sizeof val, "\"%d/4\"", c->last_bar_beats);
        mg_reason(c, "final_bar", val, "the beats do not divide into whole bars, so the last bar is shorter "
                  "(%d/4); it holds the cadence", c->last_bar_beats);
    }
    return 0;
}

/* ---- form ------------------------------------------------------------------------------------ */

static void s_sec(mg_comp_t *c, int kind, int bars, int intensity, int intensity_end, int op)
{
    if (bars <= 0 || c->n_secs >= MG_MAX_SECTIONS) return;
    mg_sec_plan_t *s = &c->secs[c->n_secs++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->n_bars = bars;
    s->intensity_start = intensity;
    s->intensity_end = intensity_end;
    s->motif_op = op;
    s->bars_per_chord = 1;
}

static const char *const s_sec_names[] = {"intro", "build", "main", "bridge", "outro", "sting", "loop"};

static int s_form(mg_comp_t *c, mg_score_t *sc)
{
    int B = c->n_bars;
    int hook = (c->flags & MG_F_HOOK) != 0;
    int late_op = hook ? MG_DEV_STATE : MG_DEV_ORNAMENT;
    const char *why;
    if (c->ending == MG_END_LOOP) {
        if (B >= 8) {
            int a = (B / 2 + 3) / 4 * 4;
            if (a >= B) a = B / 2;
            s_sec(c, MG_SEC_LOOP, a, 800, 800, MG_DEV_STATE);
            s_sec(c, MG_SEC_LOOP, B - a, 800, 800, late_op);
        } else {
            s_sec(c, MG_SEC_LOOP, B, 800, 800, MG_DEV_STATE);
        }
        why = "loopable: full texture from the first bar to the last, even intensity, no intro or outro";
    } else if ((c->flags & MG_F_STING) || B <= 3) {
        s_sec(c, MG_SEC_STING, B, 850, 900, MG_DEV_STATE);
        why = (c->flags & MG_F_STING) ? "'sting' in the prompt: motif straight into the cadence"
                                      : "at most three bars: a sting (motif straight into the cadence)";
    } else if (B <= 7) {
        int intro = (B >= 6 || (c->flags & MG_F_INTRO)) ? 1 : 0;
        s_sec(c, MG_SEC_INTRO, intro, 450, 450, MG_DEV_NONE);
        s_sec(c, MG_SEC_MAIN, B - intro - 1, 850, 850, MG_DEV_STATE);
        s_sec(c, MG_SEC_OUTRO, 1, 800, 800, MG_DEV_FRAGMENT);
        why = "a short cue: main section and a one-bar cadence";
    } else {
        int intro = B >= 24 ? (c->a < 0 ? 4 : 2) : B >= 12 ? 2 : 1;
        int outro = B >= 24 ? 4 : B >= 12 ? 2 : 1;
        int M = B - intro - outro;
        int build = 0;
        if ((c->flags & MG_F_BUILD) || (c->a >= 200 && M >= 10)) {
            build = M >= 20 ? 8 : M >= 14 ? 4 : M - 8;
            if (build < 2) build = (c->flags & MG_F_BUILD) && M >= 4 ? M / 3 : 0;
        }
        int R = M - build;
        int fade = (c->flags & MG_F_FADE) != 0;
        int big_end = c->ending == MG_END_BUTTON || (c->flags & MG_F_CLIMAX);
        int out_int = fade ? 300 : big_end ? 850 : 550;
        s_sec(c, MG_SEC_INTRO, intro, 350, 350, MG_DEV_NONE);
        if (build) s_sec(c, MG_SEC_BUILD, build, 500, 750, MG_DEV_FRAGMENT);
        if (R < 12) {
            s_sec(c, MG_SEC_MAIN, R, 850, 850, MG_DEV_STATE);
        } else {
            int k = R / 8;
            if (k > MG_MAX_SECTIONS - 4) k = MG_MAX_SECTIONS - 4;
            int each = R / k, extra = R - each * k;
            for (int i = 0; i < k; i++) {
                int last = i == k - 1;
                int bridge = (i % 2 == 1) && !last;
                int len = each + (last ? extra : 0);
                int inten = bridge ? 650 : i == 0 ? 800 : 850;
                if (last && k > 1) inten = (c->flags & MG_F_CLIMAX) || (B >= 16 && c->a >= 0) ? 1000 : 900;
                s_sec(c, bridge ? MG_SEC_BRIDGE : MG_SEC_MAIN, len, inten, inten,
                      bridge ? MG_DEV_INVERT : i == 0 ? MG_DEV_STATE : late_op);
            }
        }
        s_sec(c, MG_SEC_OUTRO, outro, out_int, out_int, MG_DEV_FRAGMENT);
        why = "intro, optional build, main sections (alternating with a contrasting bridge when long, the "
              "last one the climax), outro with the final cadence";
    }
    /* Lay the sections out on bars and beats. */
    c->bar_sec = calloc((size_t)B, sizeof *c->bar_sec);
    c->bar_start = calloc((size_t)B + 1, sizeof *c->bar_start);
    c->bar_int = calloc((size_t)B, sizeof *c->bar_int);
    sc->sections = calloc((size_t)c->n_secs, sizeof *sc->sections);
    if (!c->bar_sec || !c->bar_start || !c->bar_int || !sc->sections) { c->oom = 1; return -1; }
    for (int b = 0; b <= B; b++) c->bar_start[b] = b * c->bpb < c->n_beats ? b * c->bpb : c->n_beats;
    int bar = 0;
    for (int i = 0; i < c->n_secs; i++) {
        mg_sec_plan_t *s = &c->secs[i];
        int bars = s->n_bars, i0 = s->intensity_start, i1 = s->intensity_end;
        mg_score_section_t *o = &sc->sections[i];
        mg_strlcpy(o->name, s_sec_names[s->kind], sizeof o->name);
        o->start_bar = bar;
        o->n_bars = bars;
        o->start_beat = c->bar_start[bar];
        o->n_beats = c->bar_start[bar + bars] - o->start_beat;
        o->start_tick = (int64_t)o->start_beat * MG_SCORE_PPQ;
        o->intensity = (i0 + i1) / 2 / 1000.0;
        for (int k = 0; k < bars; k++) {
            c->bar_sec[bar + k] = i;
            c->bar_int[bar + k] = bars > 1 ? i0 + (i1 - i0) * k / (bars - 1) : i1;
        }
        bar += bars;
    }
    sc->n_sections = c->n_secs;
    char val[32], list[400] = "";
    snprintf(val, sizeof val, "%d", c->n_secs);
    for (int i = 0; i < c->n_secs; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s %d", i ? ", " : "", sc->sections[i].name, sc->sections[i].n_bars);
    }
    mg_reason(c, "form", val, "%d bars (%s): %s", B, list, why);
    return 0;
}

/* ---- harmony --------------------------------------------------------------------------------- */

static int s_chord_intern(mg_comp_t *c, const mg_chord_t *ch)
{
    for (int i = 0; i < c->n_chords; i++)
        if (!strcmp(c->chords[i].name, ch->name) && c->chords[i].root == ch->root && c->chords[i].n == ch->n &&
            !memcmp(c->chords[i].iv, ch->iv, sizeof ch->iv))
            return i;
    if (c->n_chords >= MG_MAX_CHORDS) return 0;
    c->chords[c->n_chords] = *ch;
    return c->n_chords++;
}

static int s_has(const mg_chord_t *ch, int iv)
{
    for (int i = 0; i < ch->n; i++)
        if (ch->iv[i] == iv) return 1;
    return 0;
}

static void s_extend(mg_chord_t *ch, int iv, const char *suffix)
{
    if (s_has(ch, iv) || ch->n >= 6) return;
    int i = ch->n++;
    while (i > 0 && ch->iv[i - 1] > iv) { ch->iv[i] = ch->iv[i - 1]; i--; }
    ch->iv[i] = iv;
    size_t l = strlen(ch->name);
    mg_strlcpy(ch->name + l, suffix, sizeof ch->name - l);
}

/* Colours a parsed chord for the tension level (see s_cues). */
static void s_colour(const mg_comp_t *c, mg_chord_t *ch)
{
    int major = s_has(ch, 4) && s_has(ch, 7), minor = s_has(ch, 3) && s_has(ch, 7);
    int dominant = ch->root == 7 && major;
    if (c->tension_level >= 1 && dominant) s_extend(ch, 10, "7");
    if (c->tension_level >= 2 && minor && !s_has(ch, 10) && !s_has(ch, 11)) s_extend(ch, 10, "7");
    if (c->tension_level >= 3 && dominant && c->mode == MG_MODE_MINOR) s_extend(ch, 13, "b9");
    if (c->tension_level == 0 && c->v > 200 && c->a < 200 && (ch->root == 0 || ch->root == 5) && major &&
        !s_has(ch, 10) && !s_has(ch, 11))
        s_extend(ch, 14, "add9");
}

static int s_named(mg_comp_t *c, const char *roman, int colour)
{
    mg_chord_t ch;
    if (mg_chord_parse(roman, &ch) != 0) mg_chord_parse("I", &ch);
    if (colour) s_colour(c, &ch);
    return s_chord_intern(c, &ch);
}

static void s_parse_prog(mg_comp_t *c, const char *text, mg_sec_plan_t *s)
{
    char buf[64];
    mg_strlcpy(buf, text, sizeof buf);
    s->n_prog = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && s->n_prog < 8; t = strtok_r(NULL, " ", &save))
        s->prog[s->n_prog++] = s_named(c, t, 1);
}

static int s_is_dominant(const mg_chord_t *ch) { return ch->root == 7 || ch->root == 10 || ch->root == 11; }

/* Substitutes of the same harmonic function (tonic, subdominant, dominant families), which
 * the seed may swap into a progression so variations differ in harmony too. */
static const struct { const char *from, *to; } s_subs[] = {
    {"IV", "ii"}, {"ii", "IV"}, {"vi", "IV"}, {"I", "vi"}, {"iii", "I"}, {"V", "V7sus4"},
    {"iv", "iio"}, {"bVI", "iv"}, {"bVII", "v"}, {"bIII", "i"}, {"i", "bVI"}, {"v", "bVII"},
    {"IVmaj7", "ii7"}, {"ii7", "IVmaj7"}, {"vi7", "IVmaj7"}, {"i7", "bVImaj7"}, {"iv7", "iih7"},
};

/* Copies progression text into out, swapping the chord at position pos (1-based from the
 * second chord) for its substitute. Returns 1 when a swap happened. */
static int s_substitute(const char *text, int pos, char *out, size_t len, char *what, size_t wlen)
{
    char buf[64];
    mg_strlcpy(buf, text, sizeof buf);
    out[0] = 0;
    int done = 0, i = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save), i++) {
        const char *w = t;
        if (i == pos)
            for (size_t k = 0; k < sizeof s_subs / sizeof s_subs[0]; k++)
                if (!strcmp(t, s_subs[k].from)) {
                    w = s_subs[k].to;
                    snprintf(what, wlen, "%s -> %s (chord %d)", t, w, i + 1);
                    done = 1;
                    break;
                }
        size_t l = strlen(out);
        snprintf(out + l, len - l, "%s%s", l ? " " : "", w);
    }
    return done;
}

static void s_harmony(mg_comp_t *c, mg_rng_t *rng)
{
    const s_style_t *st = &s_styles[c->style];
    const char *const *pool = c->mode == MG_MODE_MINOR ? st->minor : st->major;
    int np = 0;
    while (np < 6 && pool[np]) np++;
    int main_pick = mg_rng_below(rng, np), bridge_pick = (main_pick + 1 + mg_rng_below(rng, np - 1 > 0 ? np - 1 : 1)) % np;
    int tense = c->mode == MG_MODE_MINOR && c->tension_level >= 3;
    int tense_pick = mg_rng_below(rng, 4), tense_main = mg_rng_chance(rng, 600);
    const char *main_text = tense && tense_main ? s_tense_minor[tense_pick] : pool[main_pick];
    const char *bridge_text = tense && !tense_main ? s_tense_minor[tense_pick] : pool[bridge_pick];
    /* the seed's harmonic variation: a substitute chord, and a dominant pushing into the
     * next cycle in the second half of its last bar */
    int sub_pos = mg_rng_below(rng, 5), push = mg_rng_chance(rng, 350);
    char main_sub[64], what[64] = "";
    if (sub_pos >= 1 && sub_pos <= 3 && s_substitute(main_text, sub_pos, main_sub, sizeof main_sub, what, sizeof what))
        main_text = main_sub;
    int bpc = st->bars_per_chord;
    if (c->density_level == 0 && bpc == 1 && c->n_bars >= 16 && c->style != MG_STYLE_JAZZ) bpc = 2;
    for (int i = 0; i < c->n_secs; i++) {
        mg_sec_plan_t *s = &c->secs[i];
        s_parse_prog(c, s->kind == MG_SEC_BRIDGE ? bridge_text : main_text, s);
        s->bars_per_chord = s->kind == MG_SEC_STING ? 1 : bpc;
    }
    c->beat_chord = calloc((size_t)c->n_beats, sizeof *c->beat_chord);
    if (!c->beat_chord) { c->oom = 1; return; }
    /* bar -> chord from each section's progression */
    for (int b = 0; b < c->n_bars; b++) {
        const mg_sec_plan_t *s = &c->secs[c->bar_sec[b]];
        int first = b;
        while (first > 0 && c->bar_sec[first - 1] == c->bar_sec[b]) first--;
        int step = ((b - first) / s->bars_per_chord) % s->n_prog;
        for (int k = c->bar_start[b]; k < c->bar_start[b + 1]; k++) c->beat_chord[k] = s->prog[step];
    }
    int dom = s_named(c, "V", 1);
    if (push) {
        for (int b = 0; b < c->n_bars; b++) {
            const mg_sec_plan_t *s = &c->secs[c->bar_sec[b]];
            int first = b;
            while (first > 0 && c->bar_sec[first - 1] == c->bar_sec[b]) first--;
            int k0 = c->bar_start[b], k1 = c->bar_start[b + 1];
            int last_of_cycle = ((b - first) / s->bars_per_chord) % s->n_prog == s->n_prog - 1 &&
                                (b - first + 1) % s->bars_per_chord == 0;
            if (!last_of_cycle || k1 - k0 < 4 || s->kind == MG_SEC_INTRO || s_is_dominant(&c->chords[c->beat_chord[k0]]))
                continue;
            for (int k = k0 + (k1 - k0) / 2; k < k1; k++) c->beat_chord[k] = dom;
        }
    }
    /* Turnarounds: a section that hands over to one starting on the tonic ends on V. */
    for (int i = 0; i + 1 < c->n_secs; i++) {
        int last_bar = -1, first_next = -1;
        for (int b = 0; b < c->n_bars; b++) {
            if (c->bar_sec[b] == i) last_bar = b;
            if (c->bar_sec[b] == i + 1 && first_next < 0) first_next = b;
        }
        if (last_bar < 3 || first_next < 0 || c->bar_sec[last_bar - 3] != i) continue;
        const mg_chord_t *next = &c->chords[c->beat_chord[c->bar_start[first_next]]];
        const mg_chord_t *cur = &c->chords[c->beat_chord[c->bar_start[last_bar]]];
        if (next->root == 0 && !s_is_dominant(cur))
            for (int k = c->bar_start[last_bar]; k < c->bar_start[last_bar + 1]; k++) c->beat_chord[k] = dom;
    }
    /* Cadence. */
    int N = c->n_beats, L = c->n_bars - 1;
    int ton_final;
    {
        mg_chord_t t;
        mg_chord_parse(c->mode == MG_MODE_MINOR ? "i" : "I", &t);
        if (c->style == MG_STYLE_AMBIENT || c->style == MG_STYLE_JAZZ || c->style == MG_STYLE_LOFI)
            s_extend(&t, 14, "add9");
        ton_final = s_chord_intern(c, &t);
    }
    int pre = s_named(c, c->style == MG_STYLE_JAZZ || c->style == MG_STYLE_LOFI ? (c->mode ? "iih7" : "ii7")
                         : c->mode ? "iv" : "IV", 1);
    char cad[200];
    if (c->ending == MG_END_LOOP) {
        const mg_chord_t *cur = &c->chords[c->beat_chord[c->bar_start[L]]];
        if (!s_is_dominant(cur))
            for (int k = c->bar_start[L]; k < N; k++) c->beat_chord[k] = dom;
        c->arrival_beat = -1;
        snprintf(cad, sizeof cad, "loop: the last bar is on the dominant (%s), which resolves into bar 1 (%s)",
                 c->chords[c->beat_chord[N - 1]].name, c->chords[c->beat_chord[0]].name);
    } else {
        /* Held: V fills the bar before the last, the tonic arrives on the last downbeat.
         * Button (or a one-bar cue): V leads up to a tonic hit on the very last beat. */
        int button = c->ending == MG_END_BUTTON || L == 0;
        int arrival = button ? N - 1 : c->bar_start[L];
        int dom_from;
        if (!button) dom_from = c->bar_start[L - 1];
        else if (N - c->bar_start[L] >= 2) dom_from = L > 0 ? c->bar_start[L] : (N - 1) / 2;
        else dom_from = L > 0 ? c->bar_start[L - 1] : 0;
        c->arrival_beat = arrival;
        /* the pre-dominant takes the bar before V, leaving an opening tonic of half a bar */
        int pre_from = dom_from - c->bpb;
        if (pre_from <= 0) pre_from = dom_from >= 2 ? (dom_from + 1) / 2 : dom_from;
        if (c->bpb == 3 && pre_from < dom_from && pre_from == 1 && dom_from == 3) pre_from = 2;
        int pre_bar = pre_from / c->bpb;
        if (pre_bar < c->n_bars && c->secs[c->bar_sec[pre_bar]].kind != MG_SEC_INTRO)
            for (int k = pre_from; k < dom_from; k++) c->beat_chord[k] = pre;
        for (int k = dom_from; k < arrival; k++) c->beat_chord[k] = dom;
        for (int k = arrival; k < N; k++) c->beat_chord[k] = ton_final;
        if (N == 1) c->beat_chord[0] = ton_final;
        snprintf(cad, sizeof cad, "authentic cadence %s - %s - %s; the tonic arrives on beat %d of %d (%s)",
                 c->chords[pre].name, c->chords[dom].name, c->chords[ton_final].name, arrival + 1, N,
                 c->ending == MG_END_BUTTON ? "a 'button' hit on the final beat" : "the final bar's downbeat, held to the end");
    }
    /* The record: each section's progression (its cycle, as coloured). */
    for (int i = 0; i < c->n_secs; i++) {
        mg_sec_plan_t *s = &c->secs[i];
        char text[sizeof s->prog_text];
        s_chord_list(c, s->prog, s->n_prog, text, sizeof text);
        mg_strlcpy(s->prog_text, text, sizeof s->prog_text);
    }
    char val[96];
    snprintf(val, sizeof val, "\"%s\"", main_text);
    mg_reason(c, "progression", val, "the seed's pick from the %s %s progressions%s%s%s%s; chords coloured for tension "
              "level %d; %d bar%s per chord%s", mg_style_name(c->style), c->mode ? "minor" : "major",
              tense && tense_main ? " (tension 3: from the flat-2/diminished set)" : "",
              what[0] ? ", with the seed's substitution " : "", what,
              push ? ", V pushing into each new cycle" : "", c->tension_level, bpc,
              bpc == 1 ? "" : "s", c->n_secs > 2 ? "; a section that hands over to the tonic ends on V" : "");
    int has_bridge = 0;
    for (int i = 0; i < c->n_secs; i++) has_bridge |= c->secs[i].kind == MG_SEC_BRIDGE;
    if (has_bridge && strcmp(bridge_text, main_text)) {
        snprintf(val, sizeof val, "\"%s\"", bridge_text);
        mg_reason(c, "bridge_progression", val, "a different progression for contrast in bridge sections");
    }
    mg_reason(c, "cadence", c->ending == MG_END_LOOP ? "\"loop\"" : c->ending == MG_END_BUTTON ? "\"button\"" : "\"held\"",
              "%s", cad);
}

/* ---- the style's band (instruments.c decides the instruments) ---------------------------------- */

mg_style_band_t mg_style_band(mg_style_t style)
{
    const s_style_t *st = &s_styles[style];
    mg_style_band_t b;
    b.default_stems = st->default_stems;
    for (int r = 0; r < MG_ROLE_COUNT; r++) {
        b.band[r].family = st->dflt[r].f;
        b.band[r].program = st->dflt[r].p;
    }
    b.kit = st->kit;
    return b;
}

/* ---- entry --------------------------------------------------------------------------------- */

int mg_decide(mg_comp_t *c, mg_score_t *sc, const mg_render_spec_t *spec)
{
    mg_rng_t rng_key, rng_tempo, rng_harm;
    mg_rng_seed(&rng_key, spec->seed, "key");
    mg_rng_seed(&rng_tempo, spec->seed, "tempo");
    mg_rng_seed(&rng_harm, spec->seed, "harmony");
    mg_strlcpy(c->campaign, spec->campaign, sizeof c->campaign);
    mg_strlcpy(c->cue, spec->cue, sizeof c->cue);
    mg_strlcpy(c->prompt_sha256, spec->prompt_sha256, sizeof c->prompt_sha256);
    c->variation = spec->variation;
    c->tempo_pct = 100;
    c->style = -1;
    s_prompt(c, spec->prompt);
    if (spec->loop) { /* loop: true in the job file: the loopable form, in whole bars (s_time) */
        c->loop = 1;
        c->flags |= MG_F_LOOP;
        mg_reason(c, "form_loop", "true", "loop: true in the job file: the loopable form (no intro or outro; the "
                  "last bar leads back into the first), whole bars at one tempo, and a renderer that folds the "
                  "tails ringing past the end into the start, with no fade at either end");
    }
    s_emotion(c, spec);
    s_style(c, spec);
    s_cues(c);
    s_key(c, spec, &rng_key);
    s_meter(c);
    s_tempo_target(c, spec, &rng_tempo);
    c->ending = (c->flags & MG_F_LOOP) ? MG_END_LOOP
              : ((c->flags & (MG_F_ENDING | MG_F_STING)) ||
                 (c->a >= 300 && c->style != MG_STYLE_AMBIENT && c->style != MG_STYLE_BALLAD && c->style != MG_STYLE_CINEMATIC))
                  ? MG_END_BUTTON : MG_END_HELD;
    if (s_time(c, spec) != 0) return -1;
    if (s_form(c, sc) != 0) return -1;
    s_harmony(c, &rng_harm);
    mg_decide_instruments(c, spec, sc);
    const s_style_t *st = &s_styles[c->style];
    c->swing = st->swing;
    c->humanize = st->humanize;
    if (c->swing) {
        char val[16];
        snprintf(val, sizeof val, "%d", c->swing);
        mg_reason(c, "swing_ticks", val, "the %s style swings its off-beat eighths (delayed %d of %d ticks)",
                  mg_style_name(c->style), c->swing, MG_SCORE_PPQ);
    }
    /* Score header fields. */
    sc->n_beats = c->n_beats;
    sc->n_bars = c->n_bars;
    sc->beats_per_bar = c->bpb;
    sc->tonic = c->tonic;
    sc->mode = c->mode;
    snprintf(sc->key, sizeof sc->key, "%s %s", mg_pc_names[c->tonic], c->mode ? "minor" : "major");
    mg_strlcpy(sc->style, mg_style_name(c->style), sizeof sc->style);
    sc->valence = c->v / 1000.0;
    sc->arousal = c->a / 1000.0;
    sc->cues.loudness = c->loud / 1000.0;
    sc->cues.loudness_variation = c->loud_var / 1000.0;
    sc->cues.articulation = (c->gate_pct - 55) / 42.0;
    sc->cues.register_ = (c->reg_midi - 58) / 21.0;
    sc->cues.tension = c->tension / 1000.0;
    sc->cues.density = (c->density + 1000) / 2000.0;
    sc->cues.brightness = c->bright / 1000.0;
    return c->oom ? -1 : 0;
}
