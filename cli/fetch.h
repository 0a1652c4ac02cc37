/* fetch.h - `mgctl fetch JOB`: copies a job's delivered files from the coordinator to this
 * machine over the client socket (FILES, then FETCH in ranges; docs/cli.md "fetch").
 *
 * Each file is downloaded to NAME.part, checked against its recorded sha256, fsynced and
 * renamed into place, so a file under its final name is always whole and verified. A file
 * already there with the right sha256 is skipped; a .part left by a cut transfer is resumed
 * from its length. DEST/manifest.json describes every file present.
 */
#ifndef MG_CLI_FETCH_H
#define MG_CLI_FETCH_H

#include <stdio.h>

typedef struct {
    const char *endpoint;
    int timeout_ms;      /* per request */
    const char *job_id;  /* decimal, checked by the caller */
    const char *dest;    /* NULL: ./<the job's output folder> (./<campaign>, or ./job-N) */
    const char *kinds;   /* NULL or "": all; else comma-separated mix,stem,midi */
    int json;            /* a JSON summary on out instead of the text one; no progress */
} mg_fetch_opts_t;

/* Runs the fetch. Text summary or JSON on out, progress and errors on err. Returns the mgctl
 * exit code (docs/cli.md): 0 every file present and verified; 1 an ERR from the coordinator,
 * a local I/O error, or a file that failed its sha256 check (deleted, not left under its
 * final name); 2 a bad --kind; 3 no answer within timeout_ms (a .part stays to resume). */
int mg_fetch_run(const mg_fetch_opts_t *o, FILE *out, FILE *err);

#endif
