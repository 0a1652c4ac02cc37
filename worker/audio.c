/* audio.c - ownership of mg_audio_t, the renderer -> pipeline hand-off (render.h).
 * Every renderer fills one; the worker frees it with mg_audio_free after the pipeline.
 */
#include "render.h"

#include <stdlib.h>
#include <string.h>

void mg_audio_free(mg_audio_t *audio)
{
    if (!audio) return;
    if (audio->stems) {
        for (int i = 0; i < audio->n_stems; i++) free(audio->stems[i].samples);
        free(audio->stems);
    }
    free(audio->decision_json);
    free(audio->midi);
    memset(audio, 0, sizeof *audio);
}
