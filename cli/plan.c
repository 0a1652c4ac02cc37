/* plan.c - `mgctl plan`: the composer run locally over a job file (plan.h). Each render's
 * spec is built like the coordinator builds it, composed (composer/composer.h), printed
 * as a summary or a decision record, and optionally exported to MIDI.
 */
#include "cli/plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/renderspec.h"
#include "common/util.h"
#include "composer/composer.h"

#define S_ERRBUF (64 * 1024)

static void s_summary(FILE *out, const mg_render_spec_t *spec, const mg_score_t *sc, const char *midi)
{
    fprintf(out, "%s/%s v%02d (seed %llu): %s, %.2f BPM, %d/4, %d bars, %s\n", spec->campaign, spec->cue,
            spec->variation + 1, (unsigned long long)spec->seed, sc->key, sc->tempo_bpm, sc->beats_per_bar,
            sc->n_bars, sc->style);
    fprintf(out, "  emotion   %s -> valence %+.3f, arousal %+.3f\n", spec->emotions[0] ? spec->emotions : "(none)",
            sc->valence, sc->arousal);
    fprintf(out, "  form     ");
    for (int i = 0; i < sc->n_sections; i++)
        fprintf(out, "%s %s %d (%.1f)", i ? " |" : "", sc->sections[i].name, sc->sections[i].n_bars,
                sc->sections[i].intensity);
    fprintf(out, "  [bars (intensity)]\n  stems    ");
    for (int i = 0; i < sc->n_stems; i++)
        fprintf(out, "%s %s=%s (GM %d, %d notes)", i ? "," : "", sc->stems[i].name, sc->stems[i].instrument,
                sc->stems[i].program, sc->stems[i].n_notes);
    fprintf(out, "\n");
    if (sc->loop)
        fprintf(out, "  loop      %.3f s asked -> %d bars of %d/4 at %.2f BPM = %.6f s (%+.3f s), seamless\n",
                sc->loop_requested_s, sc->loop_bars, sc->beats_per_bar, sc->tempo_bpm, sc->duration_s,
                sc->duration_s - sc->loop_requested_s);
    if (midi) fprintf(out, "  midi      %s\n", midi);
}

int mg_plan_run(const char *path, int json, const char *midi_dir, FILE *out, FILE *errf)
{
    char *err = malloc(S_ERRBUF);
    if (!err) {
        fprintf(errf, "mgctl plan: out of memory\n");
        return MG_PLAN_ERROR;
    }
    err[0] = 0;
    mg_job_t *job = NULL;
    if (mg_job_parse_file(path, &job, err, S_ERRBUF) != 0 || !job) {
        if (!err[0]) fprintf(errf, "%s: cannot read or parse this job file\n", path);
        else fprintf(errf, "%s%s", err, err[strlen(err) - 1] == '\n' ? "" : "\n");
        free(err);
        return MG_PLAN_INVALID_JOB;
    }
    int rc = MG_PLAN_OK;
    char camp[MG_NAME_MAX + 1], dir[4096];
    mg_slugify(job->campaign, camp, sizeof camp);
    if (midi_dir) {
        snprintf(dir, sizeof dir, "%s/%s", midi_dir, camp);
        if (mg_mkdir_p(dir, 0755) != 0) {
            fprintf(errf, "mgctl plan: cannot create %s: %s (check --midi DIR)\n", dir, strerror(errno));
            mg_job_destroy(&job);
            free(err);
            return MG_PLAN_ERROR;
        }
    }
    mg_strbuf_t sb, files;
    mg_sb_init(&sb);
    mg_sb_init(&files);
    if (json) {
        mg_json_obj_open(&sb);
        mg_json_key(&sb, "file"); mg_json_str(&sb, path);
        mg_json_key(&sb, "campaign"); mg_json_str(&sb, job->campaign);
        mg_json_key(&sb, "composer_version"); mg_json_str(&sb, MG_COMPOSER_VERSION);
        mg_json_key(&sb, "renders");
        mg_json_arr_open(&sb);
        mg_json_arr_open(&files);
    }
    mg_render_spec_t *spec = malloc(sizeof *spec);
    for (int ci = 0; spec && ci < job->n_cues && rc == MG_PLAN_OK; ci++) {
        for (int v = 0; v < job->cues[ci].variations && rc == MG_PLAN_OK; v++) {
            mg_render_spec_from_job(job, ci, v, spec);
            char cerr[256];
            mg_score_t *sc = mg_compose(spec, cerr, sizeof cerr);
            if (!sc) {
                fprintf(errf, "mgctl plan: %s v%02d: %s\n", spec->cue, v + 1, cerr);
                rc = MG_PLAN_ERROR;
                break;
            }
            char file[4096 + 2 * MG_NAME_MAX], cue_slug[MG_NAME_MAX + 1];
            const char *written = NULL;
            if (midi_dir) {
                mg_slugify(spec->cue, cue_slug, sizeof cue_slug);
                snprintf(file, sizeof file, "%s/%s-v%02d.mid", dir, cue_slug, v + 1);
                unsigned char *mid = NULL;
                size_t len = 0;
                if (mg_score_write_midi(sc, &mid, &len) != 0 || mg_write_file_atomic(file, mid, len) != 0) {
                    fprintf(errf, "mgctl plan: cannot write %s: %s\n", file, strerror(errno));
                    rc = MG_PLAN_ERROR;
                } else {
                    written = file;
                }
                free(mid);
            }
            if (json) {
                char *rec = mg_score_decision_json(sc);
                mg_json_raw(&sb, rec);
                free(rec);
                mg_json_str(&files, written);
            } else {
                s_summary(out, spec, sc, written);
            }
            mg_score_free(&sc);
        }
    }
    if (!spec) {
        fprintf(errf, "mgctl plan: out of memory\n");
        rc = MG_PLAN_ERROR;
    }
    if (json && rc == MG_PLAN_OK) {
        mg_json_arr_close(&sb);
        mg_json_arr_close(&files);
        char *f = mg_sb_take(&files);
        mg_json_key(&sb, "midi_files");
        mg_json_raw(&sb, f);
        free(f);
        mg_json_obj_close(&sb);
        if (sb.oom) {
            fprintf(errf, "mgctl plan: out of memory\n");
            rc = MG_PLAN_ERROR;
        } else {
            fputs(sb.buf, out);
            fputc('\n', out);
        }
    }
    mg_sb_free(&sb);
    mg_sb_free(&files);
    free(spec);
    mg_job_destroy(&job);
    free(err);
    return rc;
}
