/* filetag.c - one metadata lookup through libavformat (see filetag.h). Only the header is
 * read (avformat_open_input); no packet is decoded, so this is fast even on long files.
 */
#include "filetag.h"

#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/log.h>

#include "common/util.h"

int mg_filetag_read(const char *path, const char *tag, char *buf, size_t buflen)
{
    av_log_set_level(AV_LOG_QUIET); /* a non-audio file is not an error worth a log line */
    AVFormatContext *fmt = NULL;
    if (avformat_open_input(&fmt, path, NULL, NULL) < 0) return -1;
    const AVDictionaryEntry *e = av_dict_get(fmt->metadata, tag, NULL, 0);
    for (unsigned i = 0; !e && i < fmt->nb_streams; i++)
        e = av_dict_get(fmt->streams[i]->metadata, tag, NULL, 0);
    int rc = -1;
    if (e && e->value && *e->value) {
        mg_strlcpy(buf, e->value, buflen);
        rc = 0;
    }
    avformat_close_input(&fmt);
    return rc;
}
