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
#include "store.h"

/* Is cmd FILES or FETCH? */
int mg_fetch_is_command(const char *cmd);

/* Answers FILES or FETCH with args. On success returns 0 and has added the reply's fields to
 * info and its row / payload frames to frames (both owned by the caller, as before the call).
 * On failure returns -1 with an error code of docs/protocol.md (bad_request, not_found,
 * internal) in code and a message saying what was wrong and what to do in err. */
int mg_fetch_handle(mg_store_t *s, const char *cmd, const mg_kv_t *args, mg_kv_t *info, mg_msg_t *frames,
                    char *code, size_t codelen, char *err, size_t errlen);

#endif
