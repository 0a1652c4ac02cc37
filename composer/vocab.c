/* vocab.c - the composer's documented vocabulary: prompt words (styles, tempo and energy,
 * structure), instruments (job files and prompts) mapped to the General MIDI programs the
 * renderer supports, stem names, and GM names. docs/composer.md prints these tables; keep
 * them in step. Lookups are exact on lower-case phrases; decide.c does the tokenising.
 */
#include "internal.h"

#include <string.h>

/* ---- instruments ---------------------------------------------------------------------------- */

#define R(x) MG_ROLE_BIT(MG_ROLE_##x)
#define MEL R(MELODY)
#define CHD R(CHORDS)
#define PAD R(PAD)
#define BAS R(BASS)
#define DRM R(DRUMS)

static const char S_MALLET[] = "no mallet or bell family in the renderer: bright piano an octave up";
static const char S_REED[] = "no woodwind family in the renderer: calliope lead (a soft, flute-like synth)";

static const mg_instr_t s_instr[] = {
    /* word                family              prog role            roles              oct drums note */
    {"piano",              MG_FAMILY_PIANO,    -1, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"grand piano",        MG_FAMILY_PIANO,     0, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"acoustic piano",     MG_FAMILY_PIANO,     0, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"upright piano",      MG_FAMILY_PIANO,     0, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"solo piano",         MG_FAMILY_PIANO,    -1, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"prepared piano",     MG_FAMILY_PIANO,     0, MG_ROLE_CHORDS, MEL | CHD,          0, 0,
     "no prepared piano: an ordinary grand piano"},
    {"bright piano",       MG_FAMILY_PIANO,     1, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"keys",               MG_FAMILY_PIANO,    -1, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"keyboard",           MG_FAMILY_PIANO,    -1, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"electric piano",     MG_FAMILY_PIANO,     4, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"rhodes",             MG_FAMILY_PIANO,     4, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"wurlitzer",          MG_FAMILY_PIANO,     4, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"organ",              MG_FAMILY_PAD,      89, MG_ROLE_PAD,    CHD | PAD,          0, 0,
     "no organ in the renderer: warm pad"},
    {"celesta",            MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          1, 0, S_MALLET},
    {"glockenspiel",       MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          1, 0, S_MALLET},
    {"glock",              MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          1, 0, S_MALLET},
    {"music box",          MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          1, 0, S_MALLET},
    {"bells",              MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          1, 0, S_MALLET},
    {"bell",               MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          1, 0, S_MALLET},
    {"chimes",             MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          1, 0, S_MALLET},
    {"vibraphone",         MG_FAMILY_PIANO,     4, MG_ROLE_MELODY, MEL | CHD,          0, 0,
     "no mallet family in the renderer: electric piano"},
    {"vibes",              MG_FAMILY_PIANO,     4, MG_ROLE_MELODY, MEL | CHD,          0, 0,
     "no mallet family in the renderer: electric piano"},
    {"marimba",            MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          0, 0, S_MALLET},
    {"xylophone",          MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          1, 0, S_MALLET},
    {"kalimba",            MG_FAMILY_PIANO,     1, MG_ROLE_MELODY, MEL | CHD,          1, 0, S_MALLET},
    {"strings",            MG_FAMILY_STRINGS,  -1, MG_ROLE_CHORDS, MEL | CHD | PAD,    0, 0, NULL},
    {"string",             MG_FAMILY_STRINGS,  -1, MG_ROLE_CHORDS, MEL | CHD | PAD,    0, 0, NULL},
    {"string ensemble",    MG_FAMILY_STRINGS,  48, MG_ROLE_CHORDS, MEL | CHD | PAD,    0, 0, NULL},
    {"string section",     MG_FAMILY_STRINGS,  48, MG_ROLE_CHORDS, MEL | CHD | PAD,    0, 0, NULL},
    {"orchestra",          MG_FAMILY_STRINGS,  48, MG_ROLE_CHORDS, MEL | CHD | PAD,    0, 0, NULL},
    {"violin",             MG_FAMILY_STRINGS,  40, MG_ROLE_MELODY, MEL,                0, 0, NULL},
    {"fiddle",             MG_FAMILY_STRINGS,  40, MG_ROLE_MELODY, MEL,                0, 0, NULL},
    {"viola",              MG_FAMILY_STRINGS,  40, MG_ROLE_MELODY, MEL,                0, 0,
     "viola played by the violin program"},
    {"cello",              MG_FAMILY_STRINGS,  42, MG_ROLE_MELODY, MEL | BAS,          -1, 0, NULL},
    {"pizzicato",          MG_FAMILY_STRINGS,  45, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"pizzicato strings",  MG_FAMILY_STRINGS,  45, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"harp",               MG_FAMILY_STRINGS,  46, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"timpani",            MG_FAMILY_DRUMS,     0, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_TOMS,
     "timpani played as low toms on the drum kit"},
    {"guitar",             MG_FAMILY_GUITAR,   -1, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"guitars",            MG_FAMILY_GUITAR,   -1, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"acoustic guitar",    MG_FAMILY_GUITAR,   -1, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"steel guitar",       MG_FAMILY_GUITAR,   25, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"nylon guitar",       MG_FAMILY_GUITAR,   24, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"classical guitar",   MG_FAMILY_GUITAR,   24, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"spanish guitar",     MG_FAMILY_GUITAR,   24, MG_ROLE_CHORDS, MEL | CHD,          0, 0, NULL},
    {"electric guitar",    MG_FAMILY_GUITAR,   25, MG_ROLE_CHORDS, MEL | CHD,          0, 0,
     "no electric guitar in the renderer: steel-string acoustic"},
    {"ukulele",            MG_FAMILY_GUITAR,   24, MG_ROLE_CHORDS, MEL | CHD,          0, 0,
     "no ukulele in the renderer: nylon-string guitar"},
    {"banjo",              MG_FAMILY_GUITAR,   25, MG_ROLE_CHORDS, MEL | CHD,          0, 0,
     "no banjo in the renderer: steel-string acoustic"},
    {"mandolin",           MG_FAMILY_GUITAR,   25, MG_ROLE_CHORDS, MEL | CHD,          0, 0,
     "no mandolin in the renderer: steel-string acoustic"},
    {"bass",               MG_FAMILY_BASS,     -1, MG_ROLE_BASS,   BAS,                0, 0, NULL},
    {"bass guitar",        MG_FAMILY_BASS,     33, MG_ROLE_BASS,   BAS,                0, 0, NULL},
    {"electric bass",      MG_FAMILY_BASS,     33, MG_ROLE_BASS,   BAS,                0, 0, NULL},
    {"slap bass",          MG_FAMILY_BASS,     34, MG_ROLE_BASS,   BAS,                0, 0, NULL},
    {"synth bass",         MG_FAMILY_BASS,     38, MG_ROLE_BASS,   BAS,                0, 0, NULL},
    {"sub bass",           MG_FAMILY_BASS,     39, MG_ROLE_BASS,   BAS,                0, 0, NULL},
    {"upright bass",       MG_FAMILY_BASS,     33, MG_ROLE_BASS,   BAS,                0, 0,
     "no acoustic bass in the renderer: electric (finger) bass"},
    {"double bass",        MG_FAMILY_BASS,     33, MG_ROLE_BASS,   BAS,                0, 0,
     "no acoustic bass in the renderer: electric (finger) bass"},
    {"contrabass",         MG_FAMILY_BASS,     33, MG_ROLE_BASS,   BAS,                0, 0,
     "no acoustic bass in the renderer: electric (finger) bass"},
    {"acoustic bass",      MG_FAMILY_BASS,     33, MG_ROLE_BASS,   BAS,                0, 0,
     "no acoustic bass in the renderer: electric (finger) bass"},
    {"synth",              MG_FAMILY_LEAD,     -1, MG_ROLE_MELODY, MEL | CHD,          0, 0, NULL},
    {"synthesizer",        MG_FAMILY_LEAD,     -1, MG_ROLE_MELODY, MEL | CHD,          0, 0, NULL},
    {"lead",               MG_FAMILY_LEAD,     -1, MG_ROLE_MELODY, MEL,                0, 0, NULL},
    {"synth lead",         MG_FAMILY_LEAD,     -1, MG_ROLE_MELODY, MEL,                0, 0, NULL},
    {"arpeggiated synth",  MG_FAMILY_LEAD,     81, MG_ROLE_MELODY, MEL | CHD,          0, 0, NULL},
    {"saw lead",           MG_FAMILY_LEAD,     81, MG_ROLE_MELODY, MEL,                0, 0, NULL},
    {"square lead",        MG_FAMILY_LEAD,     80, MG_ROLE_MELODY, MEL,                0, 0, NULL},
    {"chiptune",           MG_FAMILY_LEAD,     80, MG_ROLE_MELODY, MEL,                0, 0, NULL},
    {"brass",              MG_FAMILY_LEAD,     61, MG_ROLE_MELODY, MEL | CHD,          0, 0, NULL},
    {"brass section",      MG_FAMILY_LEAD,     61, MG_ROLE_MELODY, MEL | CHD,          0, 0, NULL},
    {"trumpet",            MG_FAMILY_LEAD,     56, MG_ROLE_MELODY, MEL,                0, 0, NULL},
    {"muted trumpet",      MG_FAMILY_LEAD,     59, MG_ROLE_MELODY, MEL,                0, 0, NULL},
    {"horn",               MG_FAMILY_LEAD,     60, MG_ROLE_MELODY, MEL | CHD,          0, 0, NULL},
    {"horns",              MG_FAMILY_LEAD,     60, MG_ROLE_MELODY, MEL | CHD,          0, 0, NULL},
    {"french horn",        MG_FAMILY_LEAD,     60, MG_ROLE_MELODY, MEL | CHD,          0, 0, NULL},
    {"trombone",           MG_FAMILY_LEAD,     61, MG_ROLE_MELODY, MEL | CHD,          0, 0,
     "no trombone in the renderer: brass section"},
    {"saxophone",          MG_FAMILY_LEAD,     56, MG_ROLE_MELODY, MEL,                0, 0,
     "no saxophone in the renderer: trumpet"},
    {"sax",                MG_FAMILY_LEAD,     56, MG_ROLE_MELODY, MEL,                0, 0,
     "no saxophone in the renderer: trumpet"},
    {"flute",              MG_FAMILY_LEAD,     82, MG_ROLE_MELODY, MEL,                0, 0, S_REED},
    {"whistle",            MG_FAMILY_LEAD,     82, MG_ROLE_MELODY, MEL,                0, 0, S_REED},
    {"recorder",           MG_FAMILY_LEAD,     82, MG_ROLE_MELODY, MEL,                0, 0, S_REED},
    {"clarinet",           MG_FAMILY_LEAD,     82, MG_ROLE_MELODY, MEL,                0, 0, S_REED},
    {"oboe",               MG_FAMILY_LEAD,     82, MG_ROLE_MELODY, MEL,                0, 0, S_REED},
    {"pad",                MG_FAMILY_PAD,      -1, MG_ROLE_PAD,    CHD | PAD,          0, 0, NULL},
    {"pads",               MG_FAMILY_PAD,      -1, MG_ROLE_PAD,    CHD | PAD,          0, 0, NULL},
    {"synth pad",          MG_FAMILY_PAD,      -1, MG_ROLE_PAD,    CHD | PAD,          0, 0, NULL},
    {"warm pad",           MG_FAMILY_PAD,      89, MG_ROLE_PAD,    CHD | PAD,          0, 0, NULL},
    {"drone",              MG_FAMILY_PAD,      89, MG_ROLE_PAD,    PAD,                0, 0, NULL},
    {"drones",             MG_FAMILY_PAD,      89, MG_ROLE_PAD,    PAD,                0, 0, NULL},
    {"choir",              MG_FAMILY_PAD,      91, MG_ROLE_PAD,    CHD | PAD,          0, 0, NULL},
    {"voices",             MG_FAMILY_PAD,      91, MG_ROLE_PAD,    CHD | PAD,          0, 0,
     "no voice model: choir pad"},
    {"vocals",             MG_FAMILY_PAD,      91, MG_ROLE_PAD,    CHD | PAD,          0, 0,
     "no voice model: choir pad"},
    {"drums",              MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, 0, NULL},
    {"drum kit",           MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, 0, NULL},
    {"drum",               MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, 0, NULL},
    {"drum machine",       MG_FAMILY_DRUMS,    25, MG_ROLE_DRUMS,  DRM,                0, 0, NULL},
    {"808",                MG_FAMILY_DRUMS,    25, MG_ROLE_DRUMS,  DRM,                0, 0, NULL},
    {"beats",              MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, 0, NULL},
    {"brushed drums",      MG_FAMILY_DRUMS,    40, MG_ROLE_DRUMS,  DRM,                0, 0, NULL},
    {"brushes",            MG_FAMILY_DRUMS,    40, MG_ROLE_DRUMS,  DRM,                0, 0, NULL},
    {"jazz drums",         MG_FAMILY_DRUMS,    32, MG_ROLE_DRUMS,  DRM,                0, 0, NULL},
    {"percussion",         MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_SHAKER, NULL},
    {"claps",              MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_CLAPS, NULL},
    {"clap",               MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_CLAPS, NULL},
    {"handclaps",          MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_CLAPS, NULL},
    {"shaker",             MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_SHAKER, NULL},
    {"tambourine",         MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_TAMBOURINE, NULL},
    {"taiko",              MG_FAMILY_DRUMS,    48, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_TOMS,
     "taiko played as the orchestra kit's low toms"},
    {"toms",               MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_TOMS, NULL},
    {"congas",             MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_TOMS,
     "hand drums played as toms"},
    {"bongos",             MG_FAMILY_DRUMS,    -1, MG_ROLE_DRUMS,  DRM,                0, MG_DRUM_TOMS,
     "hand drums played as toms"},
};

const mg_instr_t *mg_instr_find(const char *phrase)
{
    for (size_t i = 0; i < sizeof s_instr / sizeof s_instr[0]; i++)
        if (strcmp(s_instr[i].word, phrase) == 0) return &s_instr[i];
    return NULL;
}

/* ---- prompt words ---------------------------------------------------------------------------- */

#define STYLE(w, s) {w, MG_W_STYLE, MG_STYLE_##s, 0, 0, 0, 0, "style " #s}
#define STRUCT(w, f, e) {w, MG_W_STRUCT, f, 0, 0, 0, 0, e}
#define ENERGY(w, t, l, b, d, e) {w, MG_W_ENERGY, 0, t, l, b, d, e}
#define STOP(w) {w, MG_W_STOP, 0, 0, 0, 0, 0, NULL}

static const mg_word_t s_words[] = {
    /* styles (genres) */
    STYLE("pop", POP), STYLE("jingle", POP), STYLE("corporate", POP), STYLE("commercial", POP),
    STYLE("advert", POP), STYLE("catchy", POP), STYLE("anthem", POP),
    STYLE("rock", ROCK), STYLE("indie", ROCK), STYLE("punk", ROCK), STYLE("grunge", ROCK),
    STYLE("folk", FOLK), STYLE("acoustic", FOLK), STYLE("country", FOLK), STYLE("campfire", FOLK),
    STYLE("bluegrass", FOLK), STYLE("singer-songwriter", FOLK),
    STYLE("electronic", ELECTRONIC), STYLE("edm", ELECTRONIC), STYLE("dance", ELECTRONIC),
    STYLE("techno", ELECTRONIC), STYLE("house", ELECTRONIC), STYLE("synthwave", ELECTRONIC),
    STYLE("trance", ELECTRONIC), STYLE("club", ELECTRONIC), STYLE("electro", ELECTRONIC),
    STYLE("retro", ELECTRONIC), STYLE("80s", ELECTRONIC), STYLE("synthpop", ELECTRONIC),
    STYLE("ambient", AMBIENT), STYLE("meditation", AMBIENT), STYLE("meditative", AMBIENT),
    STYLE("drone", AMBIENT), STYLE("atmospheric", AMBIENT), STYLE("soundscape", AMBIENT),
    STYLE("ambience", AMBIENT), STYLE("spa", AMBIENT), STYLE("sleep", AMBIENT),
    STYLE("new age", AMBIENT), STYLE("space", AMBIENT),
    STYLE("cinematic", CINEMATIC), STYLE("orchestral", CINEMATIC), STYLE("trailer", CINEMATIC),
    STYLE("film", CINEMATIC), STYLE("soundtrack", CINEMATIC), STYLE("score", CINEMATIC),
    STYLE("heroic", CINEMATIC), STYLE("adventure", CINEMATIC), STYLE("horror", CINEMATIC),
    STYLE("suspense", CINEMATIC), STYLE("thriller", CINEMATIC), STYLE("underscore", CINEMATIC),
    STYLE("jazz", JAZZ), STYLE("jazzy", JAZZ), STYLE("noir", JAZZ), STYLE("lounge", JAZZ),
    STYLE("swing", JAZZ), STYLE("bossa", JAZZ), STYLE("bossa nova", JAZZ), STYLE("blues", JAZZ),
    STYLE("lofi", LOFI), STYLE("lo-fi", LOFI), STYLE("hip-hop", LOFI), STYLE("hip hop", LOFI),
    STYLE("hiphop", LOFI), STYLE("chillhop", LOFI), STYLE("boom-bap", LOFI), STYLE("chill", LOFI),
    STYLE("ballad", BALLAD), STYLE("lullaby", BALLAD), STYLE("love song", BALLAD),
    {"waltz", MG_W_STRUCT, MG_F_WALTZ, 0, 0, 0, 0, "3/4 time (waltz)"},
    /* tempo and energy */
    ENERGY("slow", 85, 0, 0, -150, "tempo x0.85, sparser"),
    ENERGY("slowly", 85, 0, 0, -150, "tempo x0.85, sparser"),
    ENERGY("unhurried", 85, 0, 0, -150, "tempo x0.85, sparser"),
    ENERGY("lazy", 85, -100, 0, -150, "tempo x0.85, softer, sparser"),
    ENERGY("laid-back", 88, -100, 0, -100, "tempo x0.88, softer"),
    ENERGY("fast", 115, 0, 0, 150, "tempo x1.15, busier"),
    ENERGY("quick", 112, 0, 0, 100, "tempo x1.12"),
    ENERGY("rapid", 115, 0, 0, 150, "tempo x1.15, busier"),
    ENERGY("brisk", 112, 0, 0, 100, "tempo x1.12"),
    ENERGY("upbeat", 110, 100, 100, 150, "tempo x1.10, louder, busier"),
    ENERGY("up-tempo", 112, 0, 0, 100, "tempo x1.12"),
    ENERGY("uptempo", 112, 0, 0, 100, "tempo x1.12"),
    ENERGY("lively", 110, 100, 100, 150, "tempo x1.10, louder, busier"),
    ENERGY("bouncy", 108, 0, 100, 150, "tempo x1.08, busier"),
    ENERGY("driving", 108, 150, 0, 250, "tempo x1.08, louder, busier"),
    ENERGY("soft", 0, -250, -50, 0, "softer"),
    ENERGY("quiet", 0, -250, 0, 0, "softer"),
    ENERGY("gentle", 0, -200, -50, -100, "softer, sparser"),
    ENERGY("delicate", 0, -200, 0, -100, "softer, sparser"),
    ENERGY("intimate", 0, -200, -50, -100, "softer, sparser"),
    ENERGY("subtle", 0, -200, 0, -100, "softer, sparser"),
    ENERGY("loud", 0, 250, 50, 0, "louder"),
    ENERGY("big", 0, 200, 50, 0, "louder"),
    ENERGY("huge", 0, 250, 50, 0, "louder"),
    ENERGY("massive", 0, 250, 0, 0, "louder"),
    ENERGY("punchy", 0, 150, 100, 100, "louder, brighter"),
    ENERGY("bold", 0, 150, 50, 0, "louder"),
    ENERGY("heavy", 0, 200, -100, 100, "louder, darker"),
    ENERGY("bright", 0, 0, 250, 0, "brighter timbre, higher register"),
    ENERGY("sunny", 0, 0, 200, 0, "brighter timbre, higher register"),
    ENERGY("sparkling", 0, 0, 250, 50, "brighter"),
    ENERGY("shimmering", 0, 0, 250, 0, "brighter"),
    ENERGY("crisp", 0, 0, 150, 0, "brighter"),
    ENERGY("summer", 0, 0, 100, 0, "brighter"),
    ENERGY("party", 0, 0, 100, 0, "brighter"),
    ENERGY("warm", 0, 0, -200, 0, "warmer (darker) timbre"),
    ENERGY("mellow", 0, -100, -200, -100, "warmer, softer"),
    ENERGY("muted", 0, -100, -200, 0, "warmer, softer"),
    ENERGY("murky", 0, 0, -250, 0, "darker"),
    ENERGY("sparse", 0, 0, 0, -300, "sparser rhythm"),
    ENERGY("minimal", 0, 0, 0, -300, "sparser rhythm"),
    ENERGY("minimalist", 0, 0, 0, -300, "sparser rhythm"),
    ENERGY("simple", 0, 0, 0, -200, "sparser rhythm"),
    ENERGY("spacious", 0, 0, 0, -200, "sparser rhythm"),
    ENERGY("vast", 0, 0, 0, -200, "sparser rhythm"),
    ENERGY("busy", 0, 0, 0, 300, "busier rhythm"),
    ENERGY("dense", 0, 0, 0, 300, "busier rhythm"),
    ENERGY("groovy", 0, 0, 0, 200, "busier rhythm"),
    ENERGY("funky", 0, 0, 0, 250, "busier rhythm"),
    ENERGY("rhythmic", 0, 0, 0, 200, "busier rhythm"),
    /* structure and texture */
    STRUCT("build", MG_F_BUILD, "a build section before the main section"),
    STRUCT("builds", MG_F_BUILD, "a build section before the main section"),
    STRUCT("building", MG_F_BUILD, "a build section before the main section"),
    STRUCT("rising", MG_F_BUILD, "a build section before the main section"),
    STRUCT("crescendo", MG_F_BUILD, "a build section before the main section"),
    STRUCT("swell", MG_F_BUILD, "a build section before the main section"),
    STRUCT("drop", MG_F_BUILD, "a build section before the main section"),
    STRUCT("loop", MG_F_LOOP, "loopable: no intro or outro; the last bar leads back into the first"),
    STRUCT("loops", MG_F_LOOP, "loopable: no intro or outro; the last bar leads back into the first"),
    STRUCT("looping", MG_F_LOOP, "loopable: no intro or outro; the last bar leads back into the first"),
    STRUCT("loopable", MG_F_LOOP, "loopable: no intro or outro; the last bar leads back into the first"),
    STRUCT("seamless", MG_F_LOOP, "loopable: no intro or outro; the last bar leads back into the first"),
    STRUCT("sting", MG_F_STING, "sting form: motif and cadence, no intro"),
    STRUCT("stinger", MG_F_STING, "sting form: motif and cadence, no intro"),
    STRUCT("logo", MG_F_STING, "sting form: motif and cadence, no intro"),
    STRUCT("ident", MG_F_STING, "sting form: motif and cadence, no intro"),
    STRUCT("bumper", MG_F_STING, "sting form: motif and cadence, no intro"),
    STRUCT("ending", MG_F_ENDING, "a decisive ending: the final tonic hit on the last beat"),
    STRUCT("ends", MG_F_ENDING, "a decisive ending: the final tonic hit on the last beat"),
    STRUCT("finale", MG_F_ENDING, "a decisive ending: the final tonic hit on the last beat"),
    STRUCT("button", MG_F_ENDING, "a decisive ending: the final tonic hit on the last beat"),
    STRUCT("resolve", MG_F_ENDING, "a decisive ending: the final tonic hit on the last beat"),
    STRUCT("resolves", MG_F_ENDING, "a decisive ending: the final tonic hit on the last beat"),
    STRUCT("tonic", MG_F_ENDING, "a decisive ending: the final tonic hit on the last beat"),
    STRUCT("fade", MG_F_FADE, "the outro thins out and falls away"),
    STRUCT("fades", MG_F_FADE, "the outro thins out and falls away"),
    STRUCT("fading", MG_F_FADE, "the outro thins out and falls away"),
    STRUCT("intro", MG_F_INTRO, "an intro even in a short cue"),
    STRUCT("hook", MG_F_HOOK, "the motif returns literally (fewer variations)"),
    STRUCT("theme", MG_F_HOOK, "the motif returns literally (fewer variations)"),
    STRUCT("climax", MG_F_CLIMAX, "the last main section peaks at full intensity"),
    STRUCT("reveal", MG_F_CLIMAX, "the last main section peaks at full intensity"),
    STRUCT("peak", MG_F_CLIMAX, "the last main section peaks at full intensity"),
    STRUCT("arpeggiated", MG_F_ARPEGGIO, "chords played as arpeggios"),
    STRUCT("arpeggio", MG_F_ARPEGGIO, "chords played as arpeggios"),
    STRUCT("arpeggios", MG_F_ARPEGGIO, "chords played as arpeggios"),
    STRUCT("fingerpicked", MG_F_ARPEGGIO, "chords played as arpeggios"),
    STRUCT("fingerpicking", MG_F_ARPEGGIO, "chords played as arpeggios"),
    STRUCT("strum", MG_F_STRUM, "chords strummed"),
    STRUCT("strummed", MG_F_STRUM, "chords strummed"),
    STRUCT("strumming", MG_F_STRUM, "chords strummed"),
    STRUCT("solo", MG_F_SOLO, "one instrument: no bass or drums unless asked"),
    /* words that carry no musical meaning here */
    STOP("a"), STOP("an"), STOP("the"), STOP("and"), STOP("or"), STOP("of"), STOP("for"),
    STOP("with"), STOP("in"), STOP("on"), STOP("to"), STOP("by"), STOP("at"), STOP("from"),
    STOP("into"), STOP("over"), STOP("under"), STOP("through"), STOP("its"), STOP("it"),
    STOP("this"), STOP("that"), STOP("as"), STOP("is"), STOP("are"), STOP("be"), STOP("very"),
    STOP("some"), STOP("same"), STOP("than"), STOP("then"), STOP("but"), STOP("plus"),
    STOP("music"), STOP("track"), STOP("cue"), STOP("piece"), STOP("tune"), STOP("song"),
    STOP("never"), STOP("not"), STOP("no"),
};

const mg_word_t *mg_word_find(const char *phrase)
{
    for (size_t i = 0; i < sizeof s_words / sizeof s_words[0]; i++)
        if (strcmp(s_words[i].word, phrase) == 0) return &s_words[i];
    return NULL;
}

static const char *const s_style_names[MG_STYLE_COUNT] = {
    "pop", "rock", "folk", "electronic", "ambient", "cinematic", "jazz", "lofi", "ballad",
};

const char *mg_style_name(mg_style_t s)
{
    return (unsigned)s < MG_STYLE_COUNT ? s_style_names[s] : "?";
}

/* ---- stems ------------------------------------------------------------------------------------ */

static const char *const s_role_names[MG_ROLE_COUNT] = {"melody", "chords", "pad", "bass", "drums"};

static const struct { const char *name; mg_role_t role; } s_role_alias[] = {
    {"melody", MG_ROLE_MELODY}, {"lead", MG_ROLE_MELODY}, {"topline", MG_ROLE_MELODY},
    {"tune", MG_ROLE_MELODY}, {"chords", MG_ROLE_CHORDS}, {"harmony", MG_ROLE_CHORDS},
    {"keys", MG_ROLE_CHORDS}, {"comping", MG_ROLE_CHORDS}, {"accompaniment", MG_ROLE_CHORDS},
    {"pad", MG_ROLE_PAD}, {"pads", MG_ROLE_PAD}, {"atmosphere", MG_ROLE_PAD},
    {"texture", MG_ROLE_PAD}, {"bass", MG_ROLE_BASS}, {"bassline", MG_ROLE_BASS},
    {"drums", MG_ROLE_DRUMS}, {"percussion", MG_ROLE_DRUMS}, {"beat", MG_ROLE_DRUMS},
    {"rhythm", MG_ROLE_DRUMS},
};

int mg_role_find(const char *name)
{
    for (size_t i = 0; i < sizeof s_role_alias / sizeof s_role_alias[0]; i++)
        if (strcmp(s_role_alias[i].name, name) == 0) return (int)s_role_alias[i].role;
    return -1;
}

const char *mg_role_name(mg_role_t r)
{
    return (unsigned)r < MG_ROLE_COUNT ? s_role_names[r] : "?";
}

/* ---- General MIDI programs the renderer supports ------------------------------------------ */

static const struct { mg_family_t family; int program; const char *name; } s_gm[] = {
    {MG_FAMILY_PIANO, 0, "Acoustic Grand Piano"},
    {MG_FAMILY_PIANO, 1, "Bright Acoustic Piano"},
    {MG_FAMILY_PIANO, 4, "Electric Piano 1"},
    {MG_FAMILY_STRINGS, 40, "Violin"},
    {MG_FAMILY_STRINGS, 42, "Cello"},
    {MG_FAMILY_STRINGS, 45, "Pizzicato Strings"},
    {MG_FAMILY_STRINGS, 46, "Orchestral Harp"},
    {MG_FAMILY_STRINGS, 48, "String Ensemble 1"},
    {MG_FAMILY_STRINGS, 49, "String Ensemble 2"},
    {MG_FAMILY_GUITAR, 24, "Acoustic Guitar (nylon)"},
    {MG_FAMILY_GUITAR, 25, "Acoustic Guitar (steel)"},
    {MG_FAMILY_BASS, 33, "Electric Bass (finger)"},
    {MG_FAMILY_BASS, 34, "Electric Bass (pick)"},
    {MG_FAMILY_BASS, 38, "Synth Bass 1"},
    {MG_FAMILY_BASS, 39, "Synth Bass 2"},
    {MG_FAMILY_LEAD, 56, "Trumpet"},
    {MG_FAMILY_LEAD, 59, "Muted Trumpet"},
    {MG_FAMILY_LEAD, 60, "French Horn"},
    {MG_FAMILY_LEAD, 61, "Brass Section"},
    {MG_FAMILY_LEAD, 80, "Lead 1 (square)"},
    {MG_FAMILY_LEAD, 81, "Lead 2 (sawtooth)"},
    {MG_FAMILY_LEAD, 82, "Lead 3 (calliope)"},
    {MG_FAMILY_PAD, 88, "Pad 1 (new age)"},
    {MG_FAMILY_PAD, 89, "Pad 2 (warm)"},
    {MG_FAMILY_PAD, 90, "Pad 3 (polysynth)"},
    {MG_FAMILY_PAD, 91, "Pad 4 (choir)"},
    {MG_FAMILY_PAD, 94, "Pad 7 (halo)"},
    {MG_FAMILY_DRUMS, 0, "Standard Kit"},
    {MG_FAMILY_DRUMS, 16, "Power Kit"},
    {MG_FAMILY_DRUMS, 25, "TR-808 Kit"},
    {MG_FAMILY_DRUMS, 32, "Jazz Kit"},
    {MG_FAMILY_DRUMS, 40, "Brush Kit"},
    {MG_FAMILY_DRUMS, 48, "Orchestra Kit"},
};

const char *mg_gm_name(mg_family_t family, int program)
{
    for (size_t i = 0; i < sizeof s_gm / sizeof s_gm[0]; i++)
        if (s_gm[i].family == family && s_gm[i].program == program) return s_gm[i].name;
    return NULL;
}

static const char *const s_family_names[MG_FAMILY_COUNT] = {
    "piano", "strings", "guitar", "bass", "lead", "pad", "drums",
};

const char *mg_family_name(mg_family_t f)
{
    return (unsigned)f < MG_FAMILY_COUNT ? s_family_names[f] : "?";
}
