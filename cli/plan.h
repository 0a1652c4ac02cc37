/* plan.h - `mgctl plan FILE [--json] [--midi DIR]`: resolves every render of a job file
 * locally (no coordinator), composes each one and prints the composer's decision records;
 * optionally writes each score as a Standard MIDI File DIR/<campaign>/<cue>-vNN.mid.
 */
#ifndef MG_CLI_PLAN_H
#define MG_CLI_PLAN_H

#include <stdio.h>

#include "common/jobspec.h"
#include "common/renderspec.h"

enum {
    MG_PLAN_OK = 0,
    MG_PLAN_ERROR = -1,       /* composing or writing a MIDI file failed */
    MG_PLAN_INVALID_JOB = -2, /* the job file did not parse or validate (errors on errf) */
};

/* Runs the command: human-readable summaries on out, or with json one JSON object
 * {"file", "campaign", "renders": [decision record, ...], "midi_files": [...]}. Errors go
 * to errf. Returns MG_PLAN_OK or an MG_PLAN_* error. */
int mg_plan_run(const char *path, int json, const char *midi_dir, FILE *out, FILE *errf);

#endif
