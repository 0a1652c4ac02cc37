/* pipeline.h - from rendered stems to tagged, encoded files in memory.
 *
 *   stems --mix(gain, pan)--> interleaved float at the renderer's rate
 *         --libswresample--> spec.output.sample_rate / channels
 *         --EBU R128 (libebur128), when spec.output.normalize--> loudness target,
 *           with a look-ahead true-peak limiter (ceiling -1 dBTP, ITU-R BS.1770-4 Annex 2,
 *           4x oversampled) so nothing clips, in the file or in a DAC's reconstruction
 *         --encode--> FLAC (libsndfile, Vorbis comments), MP3 (libavcodec libmp3lame,
 *                     ID3v2.4 TXXX; limited again for MP3's overshoot and checked after a
 *                     decode), WAV (libsndfile)
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
    double true_peak_dbtp;  /* true peak (4x oversampled) of the final mix before encoding */
    double mp3_true_peak_dbtp; /* of the decoded MP3 file; -200 when no MP3 was asked for */
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

/* Decodes an MP3 file in memory (libavformat + libavcodec) to interleaved float, as a
 * player would (gapless: encoder delay and padding removed). The pipeline uses it to
 * measure the true peak of what it delivers. 0 and *pcm malloc'd (caller owns), or -1
 * with a message in err and *pcm NULL. */
int mg_decode_mp3(const unsigned char *data, size_t len, float **pcm, size_t *frames, int *rate,
                  int *channels, char *err, size_t errlen);

/* The true-peak meter and limiter the pipeline uses; exposed for the tests.
 * mg_true_peak: the largest |x| of interleaved float after 4x oversampling (ITU-R BS.1770-4
 * Annex 2; Kaiser-windowed sinc, 32 taps per phase, the interpolator of bench/mix_check.py),
 * linear; 0 for silence, -1 when out of memory.
 * mg_limit_true_peak: look-ahead limiter, in place, linked across channels, that brings the
 * true peak to at most ceiling_dbtp (it aims 0.05 dB under, for 16-bit rounding and the
 * spread between 4x meters). A signal already under that aim is left bit-for-bit alone.
 * 0, or -1 when out of memory. */
double mg_true_peak(const float *pcm, size_t frames, int channels);
int mg_limit_true_peak(float *pcm, size_t frames, int channels, int rate, double ceiling_dbtp);

#endif
