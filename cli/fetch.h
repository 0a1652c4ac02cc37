/* fetch.h - `mgctl fetch JOB`: copies a job's delivered files from the coordinator to this
 * machine over the client socket (FILES, then FETCH in ranges; docs/cli.md "fetch").
 *
 * Each file is downloaded to NAME.part, checked against its recorded sha256, fsynced and
 * renamed into place, so a file under its final name is always whole and verified. A file
 * already there with the right sha256 is skipped; a .part left by a cut transfer is resumed
 * from its length. DEST/manifest.json describes every file of the job present in DEST.
 */
#ifndef MG_CLI_FETCH_H
#define MG_CLI_FETCH_H

#include <stddef.h>
#include <stdio.h>

/* File kinds, as the outputs table names them (mix, stem, midi). */
enum {
    MG_FETCH_KIND_MIX = 1,
    MG_FETCH_KIND_STEM = 2,
    MG_FETCH_KIND_MIDI = 4,
    MG_FETCH_KIND_ALL = 7,
};

typedef struct {
    const char *endpoint;
    int timeout_ms;      /* per request */
    const char *job_id;  /* decimal, checked by the caller */
    const char *dest;    /* NULL: ./<the job's output folder> (./<campaign>), else ./job-N */
    unsigned kinds;      /* MG_FETCH_KIND_* bits, from mg_fetch_parse_kinds */
    int json;            /* a JSON summary on out instead of the text lines */
} mg_fetch_opts_t;

/* Parses --kind: a comma-separated list of mix, stem (or stems, as in a job file's
 * deliver list), midi; NULL or "" is every kind. Returns 0 with the bits in *kinds, or -1
 * with "unknown kind 'x' (did you mean ...?)" in err. */
int mg_fetch_parse_kinds(const char *list, unsigned *kinds, char *err, size_t errlen);

/* Runs the fetch. Per-file lines and the summary (or the JSON object) on out; errors, and
 * progress on a terminal, on err. Returns the mgctl exit code (docs/cli.md): 0 every file
 * asked for is present and verified; 1 an ERR from the coordinator, a local I/O error, or a
 * file that failed (a sha256 mismatch: deleted, never left under its final name); 2 a
 * malformed endpoint; 3 no answer within timeout_ms (a .part stays, to be resumed). */
int mg_fetch_run(const mg_fetch_opts_t *o, FILE *out, FILE *err);

#endif
