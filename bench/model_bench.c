/* model_bench.c - speed of the neural renderer's CPU runtime (kernels/wavernn*.c):
 * renders stems of a fixed score with the scalar reference and the AVX2 path at batch 1, 4 and 8
 * (and batch 8 over 2 threads) and prints samples/s per stream and in total, the real-time factor at 24 kHz and GFLOP/s next
 * to the napkin-math limit (models/README.md, "Sizes and cost").
 *   build/bench/model_bench [MODEL.mgnn] [SECONDS]    (default models/default/mg-wavernn.mgnn, 2 s)
 * A second mode renders a score for the quality bench (bench/model_quality.py):
 *   build/bench/model_bench render MODEL.mgnn CLASS SECONDS NOTES.txt OUT.f32 [SEED [TEMPERATURE]]
 * NOTES.txt has one note per line, "on off pitch velocity" in samples at 24 kHz; OUT.f32 receives
 * raw little-endian float32 mono samples.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/wavernn.h"

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void s_cpu(char *buf, size_t len)
{
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(buf, len, "%s", strchr(line, ':') + 2);
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    fclose(f);
}

/* The render mode; returns the exit status. */
static int s_render(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: model_bench render MODEL.mgnn CLASS SECONDS NOTES.txt OUT.f32 [SEED [TEMPERATURE]]\n");
        return 2;
    }
    char err[512];
    mg_wavernn_model_t *m = NULL;
    if (mg_wavernn_load(argv[2], &m, err, sizeof err) != 0) {
        fprintf(stderr, "model_bench: %s\n", err);
        return 1;
    }
    int cls = atoi(argv[3]);
    size_t samples = (size_t)(atof(argv[4]) * MG_WR_SR);
    uint64_t seed = argc > 7 ? strtoull(argv[7], NULL, 10) : 1;
    float temperature = argc > 8 ? (float)atof(argv[8]) : 1.0f;
    FILE *f = fopen(argv[5], "r");
    if (!f) {
        fprintf(stderr, "model_bench: %s: cannot open\n", argv[5]);
        return 1;
    }
    size_t cap = 1024, n = 0;
    mg_wavernn_note_t *notes = malloc(sizeof *notes * cap);
    long long on, off;
    int pitch, vel, line = 0;
    char buf[256];
    while (fgets(buf, sizeof buf, f)) {
        line++;
        if (sscanf(buf, "%lld %lld %d %d", &on, &off, &pitch, &vel) != 4 || on < 0 || off <= on ||
            pitch < 0 || pitch > 127 || vel < 1 || vel > 127) {
            fprintf(stderr, "model_bench: %s:%d: expected \"on off pitch velocity\" with 0 <= on < off, "
                            "pitch 0..127, velocity 1..127\n", argv[5], line);
            return 1;
        }
        if (n == cap) notes = realloc(notes, sizeof *notes * (cap *= 2));
        notes[n++] = (mg_wavernn_note_t){on, off, pitch, vel};
    }
    fclose(f);
    float *out = malloc(sizeof(float) * (samples ? samples : 1));
    mg_wavernn_stem_t stem = {notes, n, cls, seed, 0, samples, out, NULL, NULL};
    double t0 = s_now();
    int rc = mg_wavernn_render(m, &stem, 1, temperature, mg_wavernn_isa());
    double dt = s_now() - t0;
    FILE *o = fopen(argv[6], "wb");
    if (rc != 0 || !o || fwrite(out, sizeof(float), samples, o) != samples) {
        fprintf(stderr, "model_bench: %s: render or write failed\n", argv[6]);
        return 1;
    }
    fclose(o);
    fprintf(stderr, "%s: %zu samples in %.2f s (%.1fx real time)\n", argv[6], samples, dt,
            (double)samples / MG_WR_SR / dt);
    free(out);
    free(notes);
    mg_wavernn_destroy(&m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "render")) return s_render(argc, argv);
    const char *path = argc > 1 ? argv[1] : "models/default/mg-wavernn.mgnn";
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    char err[512], cpu[256];
    mg_wavernn_model_t *m = NULL;
    if (mg_wavernn_load(path, &m, err, sizeof err) != 0) {
        fprintf(stderr, "model_bench: %s\n", err);
        return 1;
    }
    /* a piano phrase with chords: every slot busy, as in a dense stem */
    mg_wavernn_note_t notes[64];
    size_t n = 0;
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < 3; k++)
            notes[n++] = (mg_wavernn_note_t){i * 3000, i * 3000 + 6000, 48 + (i * 5) % 24 + 4 * k, 90};
    size_t samples = (size_t)(seconds * MG_WR_SR);
    float *out = malloc(sizeof(float) * samples * 8);
    const double H = m->hidden, O = m->out_hidden;
    /* per sample: the GRU's input and recurrent products, the head, and the harmonic predictor's
     * interpolated dot product (2 multiply-adds per coefficient); the frame-rate networks are
     * amortised over 120 samples and left out */
    const double flop = 2.0 * (3 * H * MG_WR_IN_DIM + 3 * H * H + O * H + MG_WR_LEVELS * O) +
                        4.0 * MG_WR_VOICES * MG_WR_PRED_DIM;
    s_cpu(cpu, sizeof cpu);
    printf("machine: %s, %ld cores online; model %s (H=%d, %.0f kFLOP/sample); one thread unless "
           "stated\n", cpu, sysconf(_SC_NPROCESSORS_ONLN), path, m->hidden, flop / 1e3);
    printf("targets: 4x real time = 96,000 samples/s = %.1f GFLOP/s per core; shared/REFERENCES.md "
           "quotes ~44 GFLOP/s per core (AVX2), ~70 (AVX-512)\n", 96000 * flop / 1e9);
    static const struct { int isa, batch, threads; const char *name; } runs[] = {
        {MG_WR_ISA_REF, 1, 1, "reference (scalar C)"}, {MG_WR_ISA_AVX2, 1, 1, "avx2+fma"},
        {MG_WR_ISA_AVX2, 4, 1, "avx2+fma"}, {MG_WR_ISA_AVX2, 8, 1, "avx2+fma"},
        {MG_WR_ISA_AVX2, 8, 2, "avx2+fma, 2 threads"}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        if (runs[r].isa == MG_WR_ISA_AVX2 && (mg_wavernn_isa() != MG_WR_ISA_AVX2 || !m->pk_exc)) {
            printf("%-24s batch %d: not available on this CPU\n", runs[r].name, runs[r].batch);
            continue;
        }
        mg_wavernn_stem_t stems[8];
        for (int b = 0; b < runs[r].batch; b++)
            stems[b] = (mg_wavernn_stem_t){notes, n, 0, 1, (uint64_t)b, samples,
                                           out + (size_t)b * samples, NULL, NULL};
        double t0 = s_now();
        mg_wavernn_render_threads(m, stems, runs[r].batch, 1.0f, runs[r].isa, runs[r].threads);
        double dt = s_now() - t0;
        double sps = (double)samples / dt, tot = sps * runs[r].batch;
        printf("%-24s batch %d: %8.0f samples/s per stream (%.2fx real time), %8.0f in total "
               "(%.2fx real time), %.1f GFLOP/s\n", runs[r].name, runs[r].batch, sps,
               sps / MG_WR_SR, tot, tot / MG_WR_SR, tot * flop / 1e9);
    }
    free(out);
    mg_wavernn_destroy(&m);
    return 0;
}
