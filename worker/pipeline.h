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

/* Most stems one render delivers as files (the composer writes at most five roles). */
#define MG_PIPELINE_MAX_STEMS 8
#define MG_PIPELINE_MAX_FILES (3 * (1 + MG_PIPELINE_MAX_STEMS) + 1)

typedef struct {
    unsigned format;        /* one MG_FORMAT_* bit; 0 for the MIDI file */
    const char *kind;       /* static: "mix", "stem" or "midi" */
    char part[32];          /* the stem's name; "" for the mix and the MIDI file */
    unsigned char *data;    /* owned encoded file bytes */
    size_t len;
    char sha256[65];        /* of data */
    double duration_s;
    int sample_rate, channels;
    size_t loop_length;     /* a loop: its length in this file's frames (LOOPLENGTH); else 0 */
} mg_encoded_t;

typedef struct {
    /* What spec.output.deliver asks for, in this order: the mix in flac, mp3, wav order; then
     * each stem in the renderer's order, in the same formats; then the MIDI file. A spec with
     * deliver 0 is taken as the mix alone. */
    mg_encoded_t files[MG_PIPELINE_MAX_FILES];
    int n_files;
    double integrated_lufs; /* measured after normalisation (or as rendered) */
    double peak_dbfs;       /* sample peak of the final mix */
    double true_peak_dbtp;  /* true peak (4x oversampled) of the final mix before encoding */
    double mp3_true_peak_dbtp; /* of the decoded MP3 file; -200 when no MP3 was asked for */
} mg_pipeline_result_t;

/* The extension of a file: "flac", "mp3", "wav" or "mid". Static. */
const char *mg_encoded_ext(const mg_encoded_t *f);

/* Runs the pipeline. Stems go through the mix's chain one at a time (DC removal, resampling,
 * the mix's loudness gain) so that, before the limiter, they add up to the mix; each is then
 * limited on its own only where it would pass the ceiling. A loop (audio->loop_frames) is
 * processed as a circle: the filters, the resampler and the limiter see the loop's end before
 * its start and its start after its end, so the delivered file repeats without a seam; its
 * files carry LOOPSTART=0 and LOOPLENGTH (frames, Vorbis comments / ID3 TXXX, as game
 * engines read them). Stem files carry MG_KIND=stem and MG_STEM=<name>, the mix MG_KIND=mix.
 * tags are written into every file (FLAC Vorbis comments with the
 * key as field name; MP3 ID3v2.4: TITLE/ALBUM/ARTIST as their standard frames TIT2/TALB/TPE1,
 * every other key as a TXXX frame with the key as description). On success
 * returns 0 and *out owns its buffers (free with mg_pipeline_result_free); on failure -1
 * with a message in err and nothing allocated. */
int mg_pipeline_run(const mg_render_spec_t *spec, const mg_audio_t *audio, const mg_kv_t *tags,
                    mg_pipeline_result_t *out, char *err, size_t errlen);
/* The same, calling progress (may be NULL) with the fraction of the pipeline's work done after
 * the mix's loudness pass and after every file it encodes, so that a worker can keep its lease
 * alive through the minutes a long cue with stems takes to encode. A non-zero return from
 * progress cancels: -1 with "cancelled" in err. */
int mg_pipeline_run_progress(const mg_render_spec_t *spec, const mg_audio_t *audio, const mg_kv_t *tags,
                             mg_progress_fn progress, void *progress_ctx, mg_pipeline_result_t *out,
                             char *err, size_t errlen);
void mg_pipeline_result_free(mg_pipeline_result_t *res);

/* Encoders over interleaved float samples in [-1, 1]; exposed for the tests. Each returns
 * 0 and a malloc'd buffer the caller owns in *data / *len, or -1 with a message in err. */
int mg_encode_flac(const float *pcm, size_t frames, int rate, int channels, int bits,
                   const mg_kv_t *tags, unsigned char **data, size_t *len, char *err, size_t errlen);
int mg_encode_mp3(const float *pcm, size_t frames, int rate, int channels, int bitrate_kbps,
                  const mg_kv_t *tags, unsigned char **data, size_t *len, char *err, size_t errlen);
int mg_encode_wav(const float *pcm, size_t frames, int rate, int channels,
                  unsigned char **data, size_t *len, char *err, size_t errlen);
/* WAV of one period of a seamless loop (loop_frames == frames): a smpl chunk with one forward
 * loop over the whole file (frame 0 to frame loop_frames - 1, inclusive as the chunk counts),
 * the loop points samplers and game engines read from WAV. loop_frames 0 is mg_encode_wav. */
int mg_encode_wav_loop(const float *pcm, size_t frames, int rate, int channels, size_t loop_frames,
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
