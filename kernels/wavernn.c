/* wavernn.c - the neural renderer's model loading (with every check), score features, sampling
 * and the batched render loop over either path (wavernn.h). The network arithmetic lives in
 * wavernn_ref.c and wavernn_avx2.c; this file is the part that all paths share.
 */
#include "wavernn.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"

/* Formats an error into err; returns -1. */
static int s_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}
#define s_err(...) s_errf(err, errlen, __VA_ARGS__)

void mg_wavernn_destroy(mg_wavernn_model_t **model_p)
{
    if (!model_p || !*model_p) return;
    mg_wavernn_model_t *m = *model_p;
    free(m->emb_gates);
    free(m->w_exc);
    free(m->w_fv);
    free(m->pk_exc);
    free(m->pk_hh);
    free(m->pk_out1);
    free(m->pk_out2);
    mg_nn_file_destroy(&m->file);
    free(m);
    *model_p = NULL;
}

static int s_hp_i32(const mg_nn_file_t *f, const char *name, int lo, int hi, int *out,
                    char *err, size_t errlen)
{
    const mg_nn_hparam_t *h = mg_nn_file_hparam(f, name);
    if (!h) return s_err("%s: hyper-parameter '%s' is missing (re-export the model)", f->path, name);
    if (h->type != MG_NN_I32) return s_err("%s: hyper-parameter '%s' is not an i32", f->path, name);
    if (h->value.i < lo || h->value.i > hi) {
        if (lo == hi)
            return s_err("%s: hyper-parameter '%s' is %d; this runtime implements %d only "
                         "(models/README.md)", f->path, name, h->value.i, lo);
        return s_err("%s: hyper-parameter '%s' is %d, outside %d..%d", f->path, name,
                     h->value.i, lo, hi);
    }
    *out = h->value.i;
    return 0;
}

static int s_hp_f32(const mg_nn_file_t *f, const char *name, double want, char *err, size_t errlen)
{
    const mg_nn_hparam_t *h = mg_nn_file_hparam(f, name);
    if (!h) return s_err("%s: hyper-parameter '%s' is missing (re-export the model)", f->path, name);
    if (h->type != MG_NN_F32) return s_err("%s: hyper-parameter '%s' is not an f32", f->path, name);
    if (h->value.f != (float)want)
        return s_err("%s: hyper-parameter '%s' is %g; this runtime implements %g only",
                     f->path, name, (double)h->value.f, want);
    return 0;
}

static const float *s_tensor(const mg_nn_file_t *f, const char *name, int ndim, int64_t d0,
                             int64_t d1, char *err, size_t errlen)
{
    const int64_t dims[2] = {d0, d1};
    const mg_nn_tensor_t *t = mg_nn_file_expect(f, name, MG_NN_F32, ndim, dims, err, errlen);
    return t ? (const float *)t->data : NULL;
}

int mg_wavernn_from_file(mg_nn_file_t **file_p, mg_wavernn_model_t **out, char *err, size_t errlen)
{
    *out = NULL;
    mg_wavernn_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        mg_nn_file_destroy(file_p);
        return s_err("out of memory");
    }
    m->file = *file_p;
    *file_p = NULL;
    const mg_nn_file_t *f = m->file;
    int v;
    static const struct { const char *name; int value; } fixed[] = {
        {"sample_rate", MG_WR_SR}, {"frame", MG_WR_FRAME}, {"voices", MG_WR_VOICES},
        {"harmonics", MG_WR_HARMONICS}, {"tail", MG_WR_TAIL}, {"n_classes", MG_WR_N_CLASSES},
        {"levels", MG_WR_LEVELS}, {"cond_dim", MG_WR_COND_DIM}, {"exc_dim", MG_WR_EXC_DIM},
        {"pred_harmonics", MG_WR_PRED_HARMONICS}, {"voice_dim", MG_WR_VOICE_DIM}};
    static const struct { const char *name; double value; } fixed_f[] = {
        {"preemph", MG_WR_PREEMPH}, {"onset_decay", MG_WR_ONSET_DECAY}, {"att_s", MG_WR_ATT_S},
        {"dec_s", MG_WR_DEC_S}, {"rel_s", MG_WR_REL_S}, {"pred_max_hz", MG_WR_PRED_MAX_HZ}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (s_hp_i32(f, fixed[i].name, fixed[i].value, fixed[i].value, &v, err, errlen)) goto fail;
    for (size_t i = 0; i < sizeof fixed_f / sizeof fixed_f[0]; i++)
        if (s_hp_f32(f, fixed_f[i].name, fixed_f[i].value, err, errlen)) goto fail;
    if (s_hp_i32(f, "hidden", 1, 1024, &m->hidden, err, errlen) ||
        s_hp_i32(f, "embed", 1, 256, &m->embed, err, errlen) ||
        s_hp_i32(f, "frame_hidden", 1, 1024, &m->frame_hidden, err, errlen) ||
        s_hp_i32(f, "out_hidden", 1, 1024, &m->out_hidden, err, errlen) ||
        s_hp_i32(f, "voice_hidden", 1, 1024, &m->voice_hidden, err, errlen) ||
        s_hp_i32(f, "voice_embed", 1, 256, &m->voice_embed, err, errlen))
        goto fail;

    const int H = m->hidden, G = 3 * H, E = m->embed, FH = m->frame_hidden, O = m->out_hidden;
    const int L = MG_WR_LEVELS, C = MG_WR_COND_DIM, X = MG_WR_IN_DIM;
    const int VH = m->voice_hidden, VE = m->voice_embed, VD = MG_WR_VOICE_DIM, PD = MG_WR_PRED_DIM;
    const float *embed, *w_ih;
    if (!(m->voice_emb = s_tensor(f, "voice_emb.weight", 2, MG_WR_N_CLASSES * 128, VE, err, errlen)) ||
        !(m->voice1_w = s_tensor(f, "voice1.weight", 2, VH, VD + VE, err, errlen)) ||
        !(m->voice1_b = s_tensor(f, "voice1.bias", 1, VH, 0, err, errlen)) ||
        !(m->voice2_w = s_tensor(f, "voice2.weight", 2, VH, VH, err, errlen)) ||
        !(m->voice2_b = s_tensor(f, "voice2.bias", 1, VH, 0, err, errlen)) ||
        !(m->voice3_w = s_tensor(f, "voice3.weight", 2, PD, VH, err, errlen)) ||
        !(m->voice3_b = s_tensor(f, "voice3.bias", 1, PD, 0, err, errlen)) ||
        !(m->tuning = s_tensor(f, "tuning", 2, MG_WR_N_CLASSES, 128, err, errlen)) ||
        !(m->class_temperature = s_tensor(f, "class_temperature", 1, MG_WR_N_CLASSES, 0, err, errlen)) ||
        !(m->frame1_w = s_tensor(f, "frame1.weight", 2, FH, C, err, errlen)) ||
        !(m->frame1_b = s_tensor(f, "frame1.bias", 1, FH, 0, err, errlen)) ||
        !(m->frame2_w = s_tensor(f, "frame2.weight", 2, FH, FH, err, errlen)) ||
        !(m->frame2_b = s_tensor(f, "frame2.bias", 1, FH, 0, err, errlen)) ||
        !(embed = s_tensor(f, "embed.weight", 2, L, E, err, errlen)) ||
        !(w_ih = s_tensor(f, "gru.weight_ih_l0", 2, G, E + X + FH, err, errlen)) ||
        !(m->b_ih = s_tensor(f, "gru.bias_ih_l0", 1, G, 0, err, errlen)) ||
        !(m->w_hh = s_tensor(f, "gru.weight_hh_l0", 2, G, H, err, errlen)) ||
        !(m->b_hh = s_tensor(f, "gru.bias_hh_l0", 1, G, 0, err, errlen)) ||
        !(m->out1_w = s_tensor(f, "out1.weight", 2, O, H, err, errlen)) ||
        !(m->out1_b = s_tensor(f, "out1.bias", 1, O, 0, err, errlen)) ||
        !(m->out2_w = s_tensor(f, "out2.weight", 2, L, O, err, errlen)) ||
        !(m->out2_b = s_tensor(f, "out2.bias", 1, L, 0, err, errlen)))
        goto fail;
    if (f->n_tensors != 22) {
        s_err("%s: %d tensors; a WaveRNN model has exactly 22", f->path, f->n_tensors);
        goto fail;
    }
    for (int i = 0; i < MG_WR_N_CLASSES; i++)
        if (!(m->class_temperature[i] >= 0.05f && m->class_temperature[i] <= 2.0f)) {
            s_err("%s: class_temperature[%d] is %g; 0.05..2 expected", f->path, i,
                  (double)m->class_temperature[i]);
            goto fail;
        }
    for (int i = 0; i < MG_WR_N_CLASSES * 128; i++)
        if (!(fabsf(m->tuning[i]) <= 100.0f)) {
            s_err("%s: tuning[%d][%d] is %g cents; |value| <= 100 expected", f->path, i / 128,
                  i % 128, (double)m->tuning[i]);
            goto fail;
        }

    static const char *const required[] = {"name", "version", "license", "attribution"};
    const char **dst[] = {&m->name, &m->version, &m->license, &m->attribution};
    for (int i = 0; i < 4; i++) {
        const char *val = mg_nn_file_meta(f, required[i]);
        if (!val || !*val) {
            s_err("%s: metadata '%s' is missing or empty (the exporter writes name, version, "
                  "license and attribution)", f->path, required[i]);
            goto fail;
        }
        *dst[i] = val;
    }
    const char *pm = mg_nn_file_meta(f, "program_map");
    if (!pm) {
        s_err("%s: metadata 'program_map' is missing", f->path);
        goto fail;
    }
    for (int i = 0; i < 129; i++) {
        char *end;
        long c = strtol(pm, &end, 10);
        if (end == pm || c < 0 || c >= MG_WR_N_CLASSES || (i < 128 ? *end != ',' : *end != '\0')) {
            s_err("%s: metadata 'program_map' entry %d is not a class 0..%d (129 comma-separated "
                  "entries expected)", f->path, i, MG_WR_N_CLASSES - 1);
            goto fail;
        }
        m->program_map[i] = (int)c;
        pm = end + (i < 128);
    }

    for (int q = 0; q < MG_WR_LEVELS; q++) m->mulaw_level[q] = mg_wavernn_mulaw_decode(q);
    m->emb_gates = malloc(sizeof(float) * (size_t)L * G);
    m->w_exc = malloc(sizeof(float) * (size_t)G * X);
    m->w_fv = malloc(sizeof(float) * (size_t)G * FH);
    if (!m->emb_gates || !m->w_exc || !m->w_fv) {
        s_err("%s: out of memory", f->path);
        goto fail;
    }
    const int IN = E + X + FH;   /* X = MG_WR_IN_DIM: excitation and companded prediction */
    for (int q = 0; q < L; q++)
        for (int i = 0; i < G; i++) {
            double acc = 0.0;
            for (int e = 0; e < E; e++) acc += (double)w_ih[(size_t)i * IN + e] * embed[(size_t)q * E + e];
            m->emb_gates[(size_t)q * G + i] = (float)acc;
        }
    for (int i = 0; i < G; i++) {
        memcpy(m->w_exc + (size_t)i * X, w_ih + (size_t)i * IN + E, sizeof(float) * X);
        memcpy(m->w_fv + (size_t)i * FH, w_ih + (size_t)i * IN + E + X, sizeof(float) * FH);
    }
    if (G % 16 == 0 && O % 16 == 0) {
        m->pk_exc = aligned_alloc(64, sizeof(float) * (size_t)G * X);
        m->pk_hh = aligned_alloc(64, sizeof(float) * (size_t)G * H);
        m->pk_out1 = aligned_alloc(64, sizeof(float) * (size_t)O * H);
        m->pk_out2 = aligned_alloc(64, sizeof(float) * (size_t)L * O);
        if (!m->pk_exc || !m->pk_hh || !m->pk_out1 || !m->pk_out2) {
            s_err("%s: out of memory", f->path);
            goto fail;
        }
        mg_wavernn_pack16(m->pk_exc, m->w_exc, G, X);
        mg_wavernn_pack16(m->pk_hh, m->w_hh, G, H);
        mg_wavernn_pack16(m->pk_out1, m->out1_w, O, H);
        mg_wavernn_pack16(m->pk_out2, m->out2_w, L, O);
    }
    *out = m;
    return 0;
fail:
    mg_wavernn_destroy(&m);
    return -1;
}

int mg_wavernn_load(const char *path, mg_wavernn_model_t **out, char *err, size_t errlen)
{
    mg_nn_file_t *f = NULL;
    *out = NULL;
    if (mg_nn_file_load(path, &f, err, errlen) != 0) return -1;
    return mg_wavernn_from_file(&f, out, err, errlen);
}

int mg_wavernn_class(const mg_wavernn_model_t *m, int program)
{
    return program >= 0 && program <= MG_WR_DRUM_KIT ? m->program_map[program] : -1;
}

mg_wavernn_state_t *mg_wavernn_state_new(const mg_wavernn_model_t *m)
{
    mg_wavernn_state_t *s = calloc(1, sizeof *s);
    const int H = m->hidden, FH = m->frame_hidden, O = m->out_hidden;
    size_t n = (size_t)H + 3 * H + FH + (6 * H + O + FH) + MG_WR_VOICES * 2 * MG_WR_PRED_DIM +
               (2 * (size_t)m->voice_hidden + MG_WR_VOICE_DIM + m->voice_embed);
    float *buf = s ? calloc(n, sizeof(float)) : NULL;
    if (!buf) {
        free(s);
        return NULL;
    }
    s->h = buf;
    s->gx = s->h + H;
    s->fv = s->gx + 3 * H;
    s->scratch = s->fv + FH;
    s->coef = s->scratch + (6 * H + O + FH);
    s->vscratch = s->coef + MG_WR_VOICES * 2 * MG_WR_PRED_DIM;
    mg_wavernn_state_reset(m, s);
    return s;
}

void mg_wavernn_state_reset(const mg_wavernn_model_t *m, mg_wavernn_state_t *s)
{
    const int H = m->hidden, FH = m->frame_hidden, O = m->out_hidden;
    memset(s->h, 0, sizeof(float) * ((size_t)H + 3 * H + FH + (6 * H + O + FH) +
                                     MG_WR_VOICES * 2 * MG_WR_PRED_DIM +
                                     (2 * (size_t)m->voice_hidden + MG_WR_VOICE_DIM + m->voice_embed)));
    s->h_prev = 0.0f;
    s->y = 0.0;
    s->q_prev = mg_wavernn_mulaw_encode(0.0f);
}

void mg_wavernn_state_destroy(mg_wavernn_state_t **state_p)
{
    if (!state_p || !*state_p) return;
    free((*state_p)->h);
    free(*state_p);
    *state_p = NULL;
}

/* ---- features: a line-by-line port of models/train/features.py ---- */

/* Ordering of slot candidates: (on, pitch, index) ascending. */
static int s_before(const mg_wavernn_note_t *notes, int32_t a, int32_t b)
{
    if (notes[a].on != notes[b].on) return notes[a].on < notes[b].on;
    if (notes[a].pitch != notes[b].pitch) return notes[a].pitch < notes[b].pitch;
    return a < b;
}

void mg_wavernn_slots(const mg_wavernn_note_t *notes, size_t n, int64_t frame,
                      int32_t slots[MG_WR_VOICES])
{
    const int64_t a = frame * MG_WR_FRAME, b = a + MG_WR_FRAME;
    int cnt = 0;
    for (int v = 0; v < MG_WR_VOICES; v++) slots[v] = -1;
    for (size_t i = 0; i < n; i++) {
        if (!(notes[i].on < b && notes[i].off + MG_WR_TAIL > a)) continue;
        int32_t id = (int32_t)i;
        /* keep the VOICES latest candidates in ascending order */
        if (cnt == MG_WR_VOICES) {
            if (!s_before(notes, slots[0], id)) continue;
            memmove(slots, slots + 1, sizeof(int32_t) * (MG_WR_VOICES - 1));
            cnt--;
        }
        int k = cnt;
        while (k > 0 && s_before(notes, id, slots[k - 1])) {
            slots[k] = slots[k - 1];
            k--;
        }
        slots[k] = id;
        cnt++;
    }
}

void mg_wavernn_frame_cond(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                           int cls, int64_t frame, float cond[MG_WR_COND_DIM])
{
    const double t = (double)(frame * MG_WR_FRAME) + MG_WR_FRAME / 2;
    int filled = 0;
    memset(cond, 0, sizeof(float) * MG_WR_COND_DIM);
    if (cls >= 0 && cls < MG_WR_N_CLASSES) cond[cls] = 1.0f;
    for (int v = 0; v < MG_WR_VOICES; v++) {
        if (slots[v] < 0) continue;
        const mg_wavernn_note_t *nt = &notes[slots[v]];
        filled++;
        double tau = (t - (double)nt->on > 0.0 ? t - (double)nt->on : 0.0) / MG_WR_SR;
        int held = t < (double)nt->off;
        double rel = held ? 0.0 : exp(-((t - (double)nt->off) / MG_WR_SR) / MG_WR_REL_S);
        float *c = cond + MG_WR_N_CLASSES + 1 + v * MG_WR_SLOT_DIM;
        c[0] = 1.0f;
        c[1] = (float)((nt->pitch - 60) / 24.0);
        c[2] = (float)(nt->velocity / 127.0);
        c[3] = (float)held;
        c[4] = (float)exp(-tau / MG_WR_ATT_S);
        c[5] = (float)exp(-tau / MG_WR_DEC_S);
        c[6] = (float)rel;
    }
    cond[MG_WR_N_CLASSES] = (float)((double)filled / MG_WR_VOICES);
}

double mg_wavernn_note_hz(const float *tuning, int cls, int pitch)
{
    double hz = 440.0 * pow(2.0, (double)(pitch - 69) / 12.0);
    if (tuning && cls >= 0 && cls < MG_WR_N_CLASSES && pitch >= 0 && pitch < 128)
        hz *= pow(2.0, (double)tuning[cls * 128 + pitch] / 1200.0);
    return hz;
}

void mg_wavernn_slot_hz(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                        int cls, const float *tuning, double hz[MG_WR_VOICES])
{
    for (int v = 0; v < MG_WR_VOICES; v++)
        hz[v] = slots[v] < 0 ? 0.0 : mg_wavernn_note_hz(tuning, cls, notes[slots[v]].pitch);
}

void mg_wavernn_features(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                         int cls, const double hz_of_slot[MG_WR_VOICES], int64_t t,
                         float exc[MG_WR_EXC_DIM], float *basis)
{
    memset(exc, 0, sizeof(float) * MG_WR_EXC_DIM);
    if (basis) memset(basis, 0, sizeof(float) * MG_WR_VOICES * MG_WR_PRED_DIM);
    for (int v = 0; v < MG_WR_VOICES; v++) {
        if (slots[v] < 0) continue;
        const mg_wavernn_note_t *nt = &notes[slots[v]];
        if (!(t >= nt->on && t < nt->off + MG_WR_TAIL)) continue;
        const double n = (double)(t - nt->on);
        float *e = exc + v * MG_WR_EXC_PER_VOICE;
        e[2 * MG_WR_HARMONICS] = (float)exp(-n / MG_WR_ONSET_DECAY);
        if (cls == MG_WR_CLASS_DRUMS) continue;
        const double hz = hz_of_slot[v];
        double cyc = hz * n / MG_WR_SR;
        cyc -= floor(cyc);
        /* sin/cos of k * phase by the angle-sum recurrence (features.harmonics, same order) */
        const double s1 = sin(2 * M_PI * cyc), c1 = cos(2 * M_PI * cyc);
        double sk = s1, ck = c1;
        const int kmax = basis ? MG_WR_PRED_HARMONICS : MG_WR_HARMONICS;
        float *bv = basis ? basis + v * MG_WR_PRED_DIM : NULL;
        for (int k = 1; k <= kmax; k++) {
            if (k <= MG_WR_HARMONICS) {
                e[2 * (k - 1)] = (float)sk;
                e[2 * (k - 1) + 1] = (float)ck;
            }
            if (bv && k * hz < MG_WR_PRED_MAX_HZ) bv[k - 1] = (float)sk;
            const double sn = sk * c1 + ck * s1, cn = ck * c1 - sk * s1;
            sk = sn;
            ck = cn;
        }
    }
}

void mg_wavernn_excitation(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                           int cls, const float *tuning, int64_t t, float exc[MG_WR_EXC_DIM])
{
    double hz[MG_WR_VOICES];
    mg_wavernn_slot_hz(notes, slots, cls, tuning, hz);
    mg_wavernn_features(notes, slots, cls, hz, t, exc, NULL);
}

static const double s_voice_taus[] = {0.015, 0.05, 0.15, 0.5, 2.0};   /* features.VOICE_TAUS */
static const double s_voice_rels[] = {0.05, 0.2};                    /* features.VOICE_RELS */

void mg_wavernn_voice_inputs(const mg_wavernn_note_t *notes, const int32_t slots[MG_WR_VOICES],
                             int cls, int64_t frame, float *vin, int32_t emb[MG_WR_VOICES])
{
    memset(vin, 0, sizeof(float) * MG_WR_VOICES * 2 * MG_WR_VOICE_DIM);
    for (int v = 0; v < MG_WR_VOICES; v++) {
        emb[v] = -1;
        if (slots[v] < 0) continue;
        const mg_wavernn_note_t *nt = &notes[slots[v]];
        emb[v] = cls * 128 + nt->pitch;
        for (int e = 0; e < 2; e++) {
            const int64_t t = (frame + e) * MG_WR_FRAME;
            const double tau = (double)(t - nt->on > 0 ? t - nt->on : 0) / MG_WR_SR;
            float *x = vin + (v * 2 + e) * MG_WR_VOICE_DIM;
            int k = 0;
            if (cls >= 0 && cls < MG_WR_N_CLASSES) x[cls] = 1.0f;
            k = MG_WR_N_CLASSES;
            x[k++] = (float)((nt->pitch - 60) / 24.0);
            x[k++] = (float)(nt->velocity / 127.0);
            for (int i = 0; i < 5; i++) x[k++] = (float)exp(-tau / s_voice_taus[i]);
            for (int i = 0; i < 2; i++)
                x[k++] = t < nt->off ? 1.0f
                                     : (float)exp(-((double)(t - nt->off) / MG_WR_SR) / s_voice_rels[i]);
        }
    }
}

float mg_wavernn_compand(float p)
{
    float a = log1pf((float)(MG_WR_LEVELS - 1) * fabsf(p)) / log1pf((float)(MG_WR_LEVELS - 1));
    return p > 0.0f ? a : p < 0.0f ? -a : 0.0f;
}

float mg_wavernn_harmonic(const mg_wavernn_state_t *s, const float *basis, int i)
{
    const float a = (float)i / (float)MG_WR_FRAME;
    float acc = 0.0f;
    for (int v = 0; v < MG_WR_VOICES; v++) {
        const float *c0 = s->coef + (v * 2) * MG_WR_PRED_DIM, *c1 = c0 + MG_WR_PRED_DIM;
        const float *b = basis + v * MG_WR_PRED_DIM;
        for (int j = 0; j < MG_WR_PRED_DIM; j++) acc += (c0[j] + a * (c1[j] - c0[j])) * b[j];
    }
    return acc;
}

/* ---- sampling ---- */

int mg_wavernn_sample(const float *logits, int levels, float temperature, uint32_t u)
{
    double mx = logits[0], p[MG_WR_LEVELS], total = 0.0;
    if (levels > MG_WR_LEVELS) levels = MG_WR_LEVELS;
    for (int i = 1; i < levels; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < levels; i++) {
        p[i] = exp(((double)logits[i] - mx) / temperature);
        total += p[i];
    }
    const double target = ((double)u + 0.5) / 4294967296.0 * total;
    double cum = 0.0;
    for (int i = 0; i < levels; i++) {
        cum += p[i];
        if (cum > target) return i;
    }
    return levels - 1;
}

float mg_wavernn_mulaw_decode(int q)
{
    const double mu = MG_WR_LEVELS - 1;
    double y = 2.0 * q / mu - 1.0;
    double x = (pow(1.0 + mu, fabs(y)) - 1.0) / mu;
    return (float)(y < 0 ? -x : y > 0 ? x : 0.0);
}

int mg_wavernn_mulaw_encode(float x)
{
    const double mu = MG_WR_LEVELS - 1;
    double v = x < -1.0f ? -1.0 : x > 1.0f ? 1.0 : x;
    double y = (v < 0 ? -1.0 : v > 0 ? 1.0 : 0.0) * log1p(mu * fabs(v)) / log1p(mu);
    double q = floor((y + 1.0) / 2.0 * mu + 0.5);
    return q < 0 ? 0 : q > mu ? (int)mu : (int)q;
}

int mg_wavernn_render(const mg_wavernn_model_t *m, const mg_wavernn_stem_t *stems, int n,
                      float temperature, int isa)
{
    if (n < 1 || n > MG_WR_MAX_BATCH) return -1;
    if (isa == MG_WR_ISA_AVX2 && (!m->pk_exc || mg_wavernn_isa() != MG_WR_ISA_AVX2)) isa = MG_WR_ISA_REF;
    mg_wavernn_state_t *st[MG_WR_MAX_BATCH] = {0}, *act[MG_WR_MAX_BATCH];
    int32_t (*slots)[MG_WR_VOICES] = malloc(sizeof *slots * (size_t)n);
    double (*hz)[MG_WR_VOICES] = malloc(sizeof *hz * (size_t)n);     /* per frame, per slot */
    float *in = malloc(sizeof(float) * MG_WR_IN_DIM * (size_t)n);
    float *logits = malloc(sizeof(float) * MG_WR_LEVELS * (size_t)n);
    int rc = slots && hz && in && logits ? 0 : -1;
    size_t longest = 0;
    for (int b = 0; b < n && rc == 0; b++) {
        if (!(st[b] = mg_wavernn_state_new(m))) rc = -1;
        if (stems[b].n_samples > longest) longest = stems[b].n_samples;
    }
    float cond[MG_WR_COND_DIM], vin[MG_WR_VOICES * 2 * MG_WR_VOICE_DIM];
    float basis[MG_WR_VOICES * MG_WR_PRED_DIM], pred[MG_WR_MAX_BATCH];
    int32_t emb[MG_WR_VOICES];
    int q_prev[MG_WR_MAX_BATCH], idx[MG_WR_MAX_BATCH];
    /* the per-sample loop: no allocation below */
    for (size_t t = 0; t < longest && rc == 0; t++) {
        int na = 0;
        for (int b = 0; b < n; b++) {
            const mg_wavernn_stem_t *sb = &stems[b];
            mg_wavernn_state_t *s = st[b];
            if (t >= sb->n_samples) continue;
            if (t % MG_WR_FRAME == 0) {
                int64_t f = (int64_t)(t / MG_WR_FRAME);
                mg_wavernn_slots(sb->notes, sb->n_notes, f, slots[b]);
                mg_wavernn_slot_hz(sb->notes, slots[b], sb->cls, m->tuning, hz[b]);
                mg_wavernn_frame_cond(sb->notes, slots[b], sb->cls, f, cond);
                mg_wavernn_frame_ref(m, s, cond);
                mg_wavernn_voice_inputs(sb->notes, slots[b], sb->cls, f, vin, emb);
                mg_wavernn_voice_ref(m, s, vin, emb);
            }
            float *x = in + (size_t)na * MG_WR_IN_DIM;
            mg_wavernn_features(sb->notes, slots[b], sb->cls, hz[b], (int64_t)t, x, basis);
            float h = mg_wavernn_harmonic(s, basis, (int)(t % MG_WR_FRAME));
            float p = h - (float)MG_WR_PREEMPH * s->h_prev;
            s->h_prev = h;
            x[MG_WR_EXC_DIM] = mg_wavernn_compand(p);
            pred[na] = p;
            act[na] = s;
            q_prev[na] = s->q_prev;
            idx[na++] = b;
        }
        if (isa == MG_WR_ISA_AVX2)
            mg_wavernn_step_avx2(m, act, na, q_prev, in, logits);
        else
            for (int a = 0; a < na; a++)
                mg_wavernn_step_ref(m, act[a], q_prev[a], in + (size_t)a * MG_WR_IN_DIM,
                                    logits + (size_t)a * MG_WR_LEVELS);
        for (int a = 0; a < na; a++) {
            const mg_wavernn_stem_t *sb = &stems[idx[a]];
            mg_wavernn_state_t *s = act[a];
            uint32_t u = mg_philox_u32(sb->seed, sb->stream, t);
            const float *lg = logits + (size_t)a * MG_WR_LEVELS;
            const float temp = temperature * m->class_temperature[sb->cls];
            int q = isa == MG_WR_ISA_AVX2 ? mg_wavernn_sample_avx2(lg, temp, u)
                                          : mg_wavernn_sample(lg, MG_WR_LEVELS, temp, u);
            float sv = pred[a] + m->mulaw_level[q];     /* prediction + residual */
            s->y = (double)sv + MG_WR_PREEMPH * s->y;
            sb->out[t] = (float)s->y;
            if (sb->q_out) sb->q_out[t] = q;
            if (sb->pred_out) sb->pred_out[t] = pred[a];
            s->q_prev = mg_wavernn_mulaw_encode(sv);
        }
    }
    for (int b = 0; b < n; b++) mg_wavernn_state_destroy(&st[b]);
    free(slots);
    free(hz);
    free(in);
    free(logits);
    return rc;
}

typedef struct {
    const mg_wavernn_model_t *m;
    const mg_wavernn_stem_t *stems;
    int n, isa, rc;
    float temperature;
} s_group_t;

static void *s_group_main(void *arg)
{
    s_group_t *g = arg;
    g->rc = mg_wavernn_render(g->m, g->stems, g->n, g->temperature, g->isa);
    return NULL;
}

int mg_wavernn_render_threads(const mg_wavernn_model_t *m, const mg_wavernn_stem_t *stems, int n,
                              float temperature, int isa, int threads)
{
    if (threads > n) threads = n;
    if (threads <= 1) return mg_wavernn_render(m, stems, n, temperature, isa);
    if (n > MG_WR_MAX_BATCH) return -1;
    s_group_t g[MG_WR_MAX_BATCH];
    pthread_t tid[MG_WR_MAX_BATCH];
    int started = 0, rc = 0, first = 0;
    for (int i = 0; i < threads; i++) {
        int cnt = n / threads + (i < n % threads);
        g[i] = (s_group_t){m, stems + first, cnt, isa, -1, temperature};
        first += cnt;
        if (pthread_create(&tid[i], NULL, s_group_main, &g[i]) != 0) {
            rc = -1;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        if (g[i].rc != 0) rc = -1;
    }
    return rc;
}
