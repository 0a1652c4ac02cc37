/* record.c - the decision record: one JSON object per score saying what the composer
 * decided (tempo, key, form, harmony, instruments, cues) and why, stored with the render's
 * provenance. Numbers are printed from integers, so the text is the same in every locale
 * and on every machine. Field list: docs/composer.md.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json.h"

static void s_fixed(mg_strbuf_t *sb, int64_t milli)
{
    char b[32];
    mg_json_raw(sb, mg_milli_str(milli, b, sizeof b));
}

static void s_seconds(mg_strbuf_t *sb, int64_t us)
{
    char b[40];
    snprintf(b, sizeof b, "%lld.%06lld", (long long)(us / 1000000), (long long)(us % 1000000));
    mg_json_raw(sb, b);
}

static int64_t s_round_milli(double x) { return (int64_t)(x * 1000.0 + (x < 0 ? -0.5 : 0.5)); }

static void s_bpm(mg_strbuf_t *sb, int32_t uspq)
{
    int64_t c = (6000000000LL + uspq / 2) / uspq;
    char b[32];
    snprintf(b, sizeof b, "%lld.%02lld", (long long)(c / 100), (long long)(c % 100));
    mg_json_raw(sb, b);
}

static void s_strs(mg_strbuf_t *sb, const char *key, char **list, int n)
{
    mg_json_key(sb, key);
    mg_json_arr_open(sb);
    for (int i = 0; i < n; i++) mg_json_str(sb, list[i]);
    mg_json_arr_close(sb);
}

/* indexed by MG_DEV_* */
static const char *const s_dev_names[] = {"none", "motif stated, then sequenced", "motif inverted",
                                          "motif ornamented with passing notes", "fragments of the motif"};

char *mg_score_decision_json(const mg_score_t *sc)
{
    if (!sc || !sc->priv) return NULL;
    const mg_comp_t *c = sc->priv;
    mg_strbuf_t sb;
    mg_sb_init(&sb);
    char b[64];
    mg_json_obj_open(&sb);
    mg_json_key(&sb, "composer"); mg_json_str(&sb, "mg-composer");
    mg_json_key(&sb, "composer_version"); mg_json_str(&sb, sc->composer_version);
    mg_json_key(&sb, "campaign"); mg_json_str(&sb, c->campaign);
    mg_json_key(&sb, "cue"); mg_json_str(&sb, c->cue);
    mg_json_key(&sb, "variation"); mg_json_int(&sb, c->variation + 1); /* 1-based, as in file names */
    snprintf(b, sizeof b, "%llu", (unsigned long long)sc->seed);
    mg_json_key(&sb, "seed"); mg_json_str(&sb, b);
    mg_json_key(&sb, "prompt_sha256"); mg_json_str(&sb, c->prompt_sha256);
    mg_json_key(&sb, "duration_s"); s_seconds(&sb, sc->duration_us);
    if (sc->loop) { /* only on loops, so a record without one reads as before */
        int64_t d = sc->duration_us - c->loop_req_us;
        mg_json_key(&sb, "loop");
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "requested_s"); s_seconds(&sb, c->loop_req_us);
        mg_json_key(&sb, "bars"); mg_json_int(&sb, sc->loop_bars);
        mg_json_key(&sb, "beats_per_bar"); mg_json_int(&sb, sc->beats_per_bar);
        mg_json_key(&sb, "bpm"); s_bpm(&sb, sc->tempo[0].us_per_quarter);
        mg_json_key(&sb, "duration_s"); s_seconds(&sb, sc->duration_us);
        snprintf(b, sizeof b, "%s%lld.%06lld", d < 0 ? "-" : "", (long long)(llabs(d) / 1000000),
                 (long long)(llabs(d) % 1000000));
        mg_json_key(&sb, "change_s"); mg_json_raw(&sb, b);
        mg_json_obj_close(&sb);
    }
    mg_json_key(&sb, "tempo_bpm"); s_bpm(&sb, sc->tempo[0].us_per_quarter);
    mg_json_key(&sb, "tempo_map");
    mg_json_arr_open(&sb);
    for (int i = 0; i < sc->n_tempo; i++) {
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "beat"); mg_json_int(&sb, sc->tempo[i].tick / sc->ppq);
        mg_json_key(&sb, "bpm"); s_bpm(&sb, sc->tempo[i].us_per_quarter);
        mg_json_key(&sb, "us_per_quarter"); mg_json_int(&sb, sc->tempo[i].us_per_quarter);
        mg_json_key(&sb, "start_s"); s_seconds(&sb, sc->tempo[i].us);
        mg_json_obj_close(&sb);
    }
    mg_json_arr_close(&sb);
    snprintf(b, sizeof b, "%d/4", sc->beats_per_bar);
    mg_json_key(&sb, "time_signature"); mg_json_str(&sb, b);
    mg_json_key(&sb, "bars"); mg_json_int(&sb, sc->n_bars);
    mg_json_key(&sb, "beats"); mg_json_int(&sb, sc->n_beats);
    mg_json_key(&sb, "ppq"); mg_json_int(&sb, sc->ppq);
    mg_json_key(&sb, "key"); mg_json_str(&sb, sc->key);
    mg_json_key(&sb, "tonic"); mg_json_str(&sb, mg_pc_names[sc->tonic]);
    mg_json_key(&sb, "mode"); mg_json_str(&sb, sc->mode == MG_MODE_MINOR ? "minor" : "major");
    mg_json_key(&sb, "style"); mg_json_str(&sb, sc->style);
    mg_json_key(&sb, "valence"); s_fixed(&sb, c->v);
    mg_json_key(&sb, "arousal"); s_fixed(&sb, c->a);

    mg_json_key(&sb, "emotion");
    mg_json_obj_open(&sb);
    mg_json_key(&sb, "source");
    mg_json_str(&sb, c->emotion_source == 0 ? "tags" : c->emotion_source == 1 ? "prompt" : "default");
    mg_json_key(&sb, "tags");
    mg_json_arr_open(&sb);
    const mg_emotion_t *const *src = c->emotion_source == 1 ? c->prompt_emotions : c->tags;
    int n = c->emotion_source == 1 ? c->n_prompt_emotions : c->emotion_source == 0 ? c->n_tags : 0;
    for (int i = 0; i < n; i++) {
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "tag"); mg_json_str(&sb, src[i]->tag);
        mg_json_key(&sb, "valence"); s_fixed(&sb, s_round_milli(src[i]->valence));
        mg_json_key(&sb, "arousal"); s_fixed(&sb, s_round_milli(src[i]->arousal));
        mg_json_key(&sb, "gems_family"); mg_json_str(&sb, src[i]->family);
        mg_json_obj_close(&sb);
    }
    mg_json_arr_close(&sb);
    s_strs(&sb, "unknown_tags", c->unknown_tags, c->n_unknown_tags);
    mg_json_obj_close(&sb);

    mg_json_key(&sb, "cues");
    mg_json_obj_open(&sb);
    mg_json_key(&sb, "loudness"); s_fixed(&sb, c->loud);
    mg_json_key(&sb, "loudness_variation"); s_fixed(&sb, c->loud_var);
    mg_json_key(&sb, "articulation_gate_pct"); mg_json_int(&sb, c->gate_pct);
    mg_json_key(&sb, "register_midi"); mg_json_int(&sb, c->reg_midi);
    mg_json_key(&sb, "melody_range_steps"); mg_json_int(&sb, c->range_steps);
    mg_json_key(&sb, "melody_ascending"); s_fixed(&sb, c->up_permille);
    mg_json_key(&sb, "tension"); s_fixed(&sb, c->tension);
    mg_json_key(&sb, "tension_level"); mg_json_int(&sb, c->tension_level);
    mg_json_key(&sb, "rhythmic_density"); s_fixed(&sb, c->density);
    mg_json_key(&sb, "density_level"); mg_json_int(&sb, c->density_level);
    mg_json_key(&sb, "brightness"); s_fixed(&sb, c->bright);
    mg_json_obj_close(&sb);

    mg_json_key(&sb, "sections");
    mg_json_arr_open(&sb);
    for (int i = 0; i < sc->n_sections; i++) {
        const mg_score_section_t *s = &sc->sections[i];
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "name"); mg_json_str(&sb, s->name);
        mg_json_key(&sb, "start_beat"); mg_json_int(&sb, s->start_beat);
        mg_json_key(&sb, "n_beats"); mg_json_int(&sb, s->n_beats);
        mg_json_key(&sb, "start_bar"); mg_json_int(&sb, s->start_bar);
        mg_json_key(&sb, "n_bars"); mg_json_int(&sb, s->n_bars);
        int64_t a = mg_score_tick_us(sc, s->start_tick), e = mg_score_tick_us(sc, s->start_tick + (int64_t)s->n_beats * sc->ppq);
        mg_json_key(&sb, "start_s"); s_seconds(&sb, a);
        mg_json_key(&sb, "duration_s"); s_seconds(&sb, e - a);
        mg_json_key(&sb, "intensity"); s_fixed(&sb, s_round_milli(s->intensity));
        mg_json_key(&sb, "progression"); mg_json_str(&sb, c->secs[i].prog_text);
        /* the chords as played, one entry per change (cadences and turnarounds included) */
        mg_json_key(&sb, "chords");
        mg_json_arr_open(&sb);
        int last = -1;
        for (int k = s->start_beat; k < s->start_beat + s->n_beats; k++)
            if (c->beat_chord[k] != last) {
                last = c->beat_chord[k];
                mg_json_str(&sb, c->chords[last].name);
            }
        mg_json_arr_close(&sb);
        mg_json_key(&sb, "melody");
        mg_json_str(&sb, s_dev_names[c->secs[i].motif_op]);
        mg_json_obj_close(&sb);
    }
    mg_json_arr_close(&sb);

    mg_json_key(&sb, "cadence");
    mg_json_obj_open(&sb);
    mg_json_key(&sb, "type");
    mg_json_str(&sb, c->ending == MG_END_LOOP ? "loop" : c->ending == MG_END_BUTTON ? "button" : "held");
    if (c->arrival_beat >= 0) {
        mg_json_key(&sb, "arrival_beat"); mg_json_int(&sb, c->arrival_beat);
        mg_json_key(&sb, "arrival_s"); s_seconds(&sb, mg_score_tick_us(sc, (int64_t)c->arrival_beat * sc->ppq));
    }
    mg_json_key(&sb, "final_chord"); mg_json_str(&sb, c->chords[c->beat_chord[c->n_beats - 1]].name);
    mg_json_obj_close(&sb);

    mg_json_key(&sb, "motif"); mg_json_str(&sb, c->motif_text);

    mg_json_key(&sb, "stems");
    mg_json_arr_open(&sb);
    for (int i = 0; i < sc->n_stems; i++) {
        const mg_score_stem_t *s = &sc->stems[i];
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "name"); mg_json_str(&sb, s->name);
        mg_json_key(&sb, "instrument"); mg_json_str(&sb, s->instrument);
        mg_json_key(&sb, "family"); mg_json_str(&sb, mg_family_name(s->family));
        mg_json_key(&sb, "gm_program"); mg_json_int(&sb, s->program);
        mg_json_key(&sb, "is_drum"); mg_json_bool(&sb, s->is_drum);
        mg_json_key(&sb, "midi_channel"); mg_json_int(&sb, s->channel + 1);
        mg_json_key(&sb, "gain"); s_fixed(&sb, s_round_milli(s->gain));
        mg_json_key(&sb, "pan"); s_fixed(&sb, s_round_milli(s->pan));
        mg_json_key(&sb, "notes"); mg_json_int(&sb, s->n_notes);
        mg_json_key(&sb, "source"); mg_json_str(&sb, i < c->n_stems ? c->stems[i].source : "");
        if (i < c->n_stems && c->stems[i].instr && c->stems[i].instr->note) {
            mg_json_key(&sb, "substitution"); mg_json_str(&sb, c->stems[i].instr->note);
        }
        mg_json_obj_close(&sb);
    }
    mg_json_arr_close(&sb);

    mg_json_key(&sb, "prompt");
    mg_json_obj_open(&sb);
    mg_json_key(&sb, "recognised");
    mg_json_arr_open(&sb);
    for (int i = 0; i < c->n_words; i++) {
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "word"); mg_json_str(&sb, c->words[i].word);
        mg_json_key(&sb, "as"); mg_json_str(&sb, c->words[i].as);
        mg_json_key(&sb, "effect"); mg_json_str(&sb, c->words[i].effect);
        mg_json_obj_close(&sb);
    }
    mg_json_arr_close(&sb);
    s_strs(&sb, "ignored", c->ignored, c->n_ignored);
    mg_json_obj_close(&sb);
    s_strs(&sb, "unused_instruments", c->unused_instr, c->n_unused_instr);
    s_strs(&sb, "ignored_stems", c->ignored_stems, c->n_ignored_stems);

    mg_json_key(&sb, "overrides");
    mg_json_obj_open(&sb);
    mg_json_key(&sb, "tempo"); mg_json_bool(&sb, c->tempo_override);
    mg_json_key(&sb, "key"); mg_json_bool(&sb, c->key_override);
    mg_json_key(&sb, "instruments"); mg_json_bool(&sb, c->instr_override);
    mg_json_key(&sb, "stems"); mg_json_bool(&sb, c->stems_override);
    mg_json_obj_close(&sb);

    mg_json_key(&sb, "decisions");
    mg_json_arr_open(&sb);
    for (int i = 0; i < c->n_reasons; i++) {
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "parameter"); mg_json_str(&sb, c->reasons[i].param);
        mg_json_key(&sb, "value"); mg_json_raw(&sb, c->reasons[i].value);
        mg_json_key(&sb, "reason"); mg_json_str(&sb, c->reasons[i].reason);
        mg_json_obj_close(&sb);
    }
    mg_json_arr_close(&sb);
    mg_json_obj_close(&sb);
    if (sb.oom) {
        mg_sb_free(&sb);
        return NULL;
    }
    return mg_sb_take(&sb);
}
