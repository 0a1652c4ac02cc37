/* emotion.c - the emotion-tag lexicon (see emotion.h): tags, circumplex positions, GEMS
 * families and accepted synonyms. Job validation (jobspec.c) checks cue emotions here;
 * the coordinator copies the table into emotion_tags; the composer blends positions.
 *
 * Where the numbers come from. Valence and arousal are hand-placed on Russell's circumplex
 * (Russell 1980, "A circumplex model of affect"; Posner, Russell & Peterson 2005): each word
 * goes in the quadrant and at roughly the angle where those papers put it or its nearest
 * synonym (happy high valence / mid arousal, tense negative / high, calm positive / low,
 * sad negative / low), stronger words further from the centre. They are rounded to 0.05 and
 * are meant for blending and nearest-neighbour choices, not as measurements; change them
 * freely, but keep the quadrant (tests/test_jobspec.c checks a few signs).
 *
 * Families are the nine GEMS factors (Zentner, Grandjean & Scherer 2008): wonder,
 * transcendence, tenderness, nostalgia, peacefulness (superfactor "sublimity"), power,
 * joyful activation ("vitality"), tension, sadness ("unease"). A word listed in GEMS-45
 * takes its factor from there (energetic and triumphant are "power", dreamy and melancholic
 * are "nostalgia"); the exception is happy, which GEMS-45 puts under wonder but which in
 * prompts means upbeat, so it is joyful activation. GEMS has no factor for anger or fear
 * (music rarely induces them); those go to tension, its closest factor.
 */
#include "emotion.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const mg_emotion_t s_table[] = {
    /* tag               valence arousal family */
    {"happy",            0.80,  0.50, "joyful activation"},
    {"joyful",           0.85,  0.60, "joyful activation"},
    {"cheerful",         0.75,  0.45, "joyful activation"},
    {"playful",          0.70,  0.55, "joyful activation"},
    {"uplifting",        0.80,  0.55, "joyful activation"},
    {"energetic",        0.40,  0.85, "power"},
    {"triumphant",       0.75,  0.75, "power"},
    {"motivational",     0.60,  0.70, "power"},
    {"powerful",         0.40,  0.80, "power"},
    {"epic",             0.50,  0.85, "power"},
    {"inspirational",    0.70,  0.45, "transcendence"},
    {"transcendence",    0.55,  0.25, "transcendence"},
    {"hopeful",          0.60,  0.20, "transcendence"},
    {"wonder",           0.60,  0.40, "wonder"},
    {"mysterious",      -0.10,  0.20, "wonder"},
    {"calm",             0.45, -0.65, "peacefulness"},
    {"relaxing",         0.50, -0.70, "peacefulness"},
    {"peaceful",         0.60, -0.60, "peacefulness"},
    {"serene",           0.60, -0.70, "peacefulness"},
    {"tender",           0.65, -0.35, "tenderness"},
    {"romantic",         0.70, -0.10, "tenderness"},
    {"dreamy",           0.35, -0.45, "nostalgia"},
    {"nostalgic",        0.05, -0.35, "nostalgia"},
    {"melancholic",     -0.45, -0.35, "nostalgia"},
    {"sad",             -0.70, -0.40, "sadness"},
    {"depressing",      -0.80, -0.60, "sadness"},
    {"tense",           -0.45,  0.65, "tension"},
    {"dark",            -0.55,  0.10, "tension"},
    {"scary",           -0.70,  0.75, "tension"},
    {"fearful",         -0.65,  0.70, "tension"},
    {"angry",           -0.70,  0.80, "tension"},
    {"aggressive",      -0.55,  0.90, "tension"},
};

/* Accepted synonyms: the GEMS factor nouns and common noun/adjective variants. */
static const struct { const char *word, *tag; } s_synonyms[] = {
    {"joyful activation", "joyful"},
    {"joy", "joyful"},
    {"happiness", "happy"},
    {"power", "powerful"},
    {"nostalgia", "nostalgic"},
    {"peacefulness", "peaceful"},
    {"tension", "tense"},
    {"sadness", "sad"},
    {"tenderness", "tender"},
    {"wondrous", "wonder"},
    {"transcendent", "transcendence"},
    {"relaxed", "relaxing"},
    {"melancholy", "melancholic"},
    {"anger", "angry"},
    {"fear", "fearful"},
    {"inspiring", "inspirational"},
};

#define S_N_TABLE (sizeof s_table / sizeof s_table[0])
#define S_N_SYNONYMS (sizeof s_synonyms / sizeof s_synonyms[0])

static const mg_emotion_t *s_canonical(const char *tag)
{
    for (size_t i = 0; i < S_N_TABLE; i++)
        if (strcmp(s_table[i].tag, tag) == 0) return &s_table[i];
    return NULL;
}

const mg_emotion_t *mg_emotion_find(const char *tag)
{
    if (!tag) return NULL;
    for (size_t i = 0; i < S_N_TABLE; i++)
        if (strcasecmp(s_table[i].tag, tag) == 0) return &s_table[i];
    for (size_t i = 0; i < S_N_SYNONYMS; i++)
        if (strcasecmp(s_synonyms[i].word, tag) == 0) return s_canonical(s_synonyms[i].tag);
    return NULL;
}

const mg_emotion_t *mg_emotion_table(size_t *n)
{
    if (n) *n = S_N_TABLE;
    return s_table;
}

const char *mg_emotion_suggest(const char *unknown)
{
    if (!unknown) return NULL;
    char low[65];
    size_t i = 0;
    for (; unknown[i] && i < sizeof low - 1; i++) low[i] = (char)tolower((unsigned char)unknown[i]);
    if (unknown[i]) return NULL; /* longer than any tag by far */
    low[i] = 0;
    const char *best = NULL;
    int best_d = 4;
    for (size_t k = 0; k < S_N_TABLE; k++) {
        int d = mg_edit_distance(low, s_table[k].tag);
        if (d < best_d) { best_d = d; best = s_table[k].tag; }
    }
    for (size_t k = 0; k < S_N_SYNONYMS; k++) {
        int d = mg_edit_distance(low, s_synonyms[k].word);
        if (d < best_d) { best_d = d; best = s_synonyms[k].word; }
    }
    return best;
}
