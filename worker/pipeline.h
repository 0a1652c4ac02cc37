/* pipeline.h - from rendered stems to tagged, encoded files in memory.
 *
 *   stems --mix(gain, pan)--> interleaved float at the renderer's rate
 *         --libswresample--> spec.output.sample_rate / channels
 *         --EBU R128 (libebur128), when spec.output.normalize--> loudness target,
 *           with a look-ahead limiter on sample peaks (ceiling -1 dBFS) so nothing clips
 *         --encode--> FLAC (libsndfile, Vorbis comments), MP3 (libavcodec libmp3lame,
 *                     ID3v2.4 TXXX), WAV (libsndfile)
 * The bytes travel to the coordinator in a RESULT message; nothing touches disk here.
 */
#ifndef MG_PIPELINE_H
#define MG_PIPELINE_H

#include <stddef.h>

#include "../common/kv.h"
#include "render.h"

typedef struct {
    unsigned format;        /* one MG_FORMAT_* bit */
    unsigned char *data;    /* owned encoded file bytes */
    size_t len;
    char sha256[65];        /* of data */
    double duration_s;
    int sample_rate, channels;
} mg_encoded_t;

typedef struct {
    mg_encoded_t files[3];  /* one per requested format, in flac, mp3, wav order */
    int n_files;
    double integrated_lufs; /* measured after normalisation (or as rendered) */
    double peak_dbfs;       /* sample peak of the final mix */
} mg_pipeline_result_t;

/* Runs the pipeline. tags are written into every file (FLAC Vorbis comments with the
 * key as field name; MP3 ID3v2.4: TITLE/ALBUM/ARTIST as their standard frames TIT2/TALB/TPE1,
 * every other key as a TXXX frame with the key as description). On success
 * returns 0 and *out owns its buffers (free with mg_pipeline_result_free); on failure -1
 * with a message in err and nothing allocated. */
int mg_pipeline_run(const mg_render_spec_t *spec, const mg_audio_t *audio, const mg_kv_t *tags,
                    mg_pipeline_result_t *out, char *err, size_t errlen);
void mg_pipeline_result_free(mg_pipeline_result_t *res);

/* Encoders over interleaved float samples in [-1, 1]; exposed for the tests. Each returns
 * 0 and a malloc'd buffer the caller owns in *data / *len, or -1 with a message in err. */
int mg_encode_flac(const float *pcm, size_t frames, int rate, int channels, int bits,
                   const mg_kv_t *tags, unsigned char **data, size_t *len, char *err, size_t errlen);
int mg_encode_mp3(const float *pcm, size_t frames, int rate, int channels, int bitrate_kbps,
                  const mg_kv_t *tags, unsigned char **data, size_t *len, char *err, size_t errlen);
int mg_encode_wav(const float *pcm, size_t frames, int rate, int channels,
                  unsigned char **data, size_t *len, char *err, size_t errlen);

#endif
