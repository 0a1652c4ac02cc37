/* filetag.h - reads mg's own tags back from a rendered file for `mgctl verify`.
 * libavformat exposes FLAC Vorbis comments and MP3 ID3v2 TXXX frames alike as metadata
 * dictionaries, so one lookup covers every format the workers write.
 */
#ifndef MG_CLI_FILETAG_H
#define MG_CLI_FILETAG_H

#include <stddef.h>

#define MG_TAG_RENDER_ID "MG_RENDER_ID"

/* Looks up tag (case-insensitive) in the container's and then each stream's metadata and
 * copies its value into buf. Returns 0 when found, -1 when the file cannot be opened or
 * parsed, or has no such tag (a missing tag is normal for files mg did not make).
 * libavformat's own log output is silenced. */
int mg_filetag_read(const char *path, const char *tag, char *buf, size_t buflen);

#endif
