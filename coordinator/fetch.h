/* fetch.h - serving a job's delivered files to `mgctl fetch` over the client socket.
 *
 *   FILES {job_id, kinds}             -> one row per outputs row of the job
 *   FETCH {output_id, offset, length} -> info {sha256, bytes, offset, length} + one payload
 *                                        frame holding that byte range of the file
 *
 * Only files recorded in the outputs table can be read, by their id, and only when the path
 * resolves (symlinks included) to a file inside the outputs folder. server.c dispatches
 * the two commands here; the protocol is in docs/protocol.md, "FILES and FETCH".
 */
#ifndef MG_FETCH_H
#define MG_FETCH_H

#include <stddef.h>

#include "../common/kv.h"
#include "../common/protocol.h"
#include "query.h"
#include "store.h"

/* Answers FILES or FETCH with args into r: its fields and row / payload frames, or (returning
 * -1) an ERR with a code of docs/protocol.md (bad_request, not_found, internal) and a message
 * saying what was wrong and what to do. 0 on success. The database lookups are query.c's. */
int mg_fetch_handle(mg_store_t *s, const char *cmd, const mg_kv_t *args, mg_reply_t *r);

#endif
