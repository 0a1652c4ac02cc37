/* emotion.h - the emotion-tag lexicon that job files draw their `emotions:` from.
 *
 * Each tag sits on Russell's circumplex (valence, arousal in [-1, 1]) and in one GEMS
 * family (Zentner et al. 2008), so the composer can blend tags and the coordinator can
 * store the lexicon (table emotion_tags). Values and sources: common/emotion.c.
 */
#ifndef MG_EMOTION_H
#define MG_EMOTION_H

#include <stddef.h>

typedef struct {
    const char *tag;    /* lower case, the canonical spelling stored with a cue */
    double valence;     /* -1 unpleasant .. +1 pleasant */
    double arousal;     /* -1 sleepy/calm .. +1 activated */
    const char *family; /* GEMS-9 factor: "joyful activation", "power", "tension", ... */
} mg_emotion_t;

/* Looks a tag up, case-insensitively. Accepted synonyms (the GEMS nouns "sadness",
 * "tension", "nostalgia", "power", ...) resolve to their canonical entry, so the
 * returned entry's tag may differ from the argument. Returns a static entry, or NULL. */
const mg_emotion_t *mg_emotion_find(const char *tag);

/* The canonical entries (synonyms excluded), in a fixed order; *n gets the count.
 * Static storage. */
const mg_emotion_t *mg_emotion_table(size_t *n);

/* For an unknown tag: the closest accepted spelling (canonical tag or synonym) by
 * mg_edit_distance, compared case-insensitively, if within 3 edits; otherwise NULL.
 * Ties go to the earlier table entry. Static string. */
const char *mg_emotion_suggest(const char *unknown);

#endif
