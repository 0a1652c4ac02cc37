# features.py - the score -> conditioning features of the mg WaveRNN renderer.
# This file IS the specification that kernels/wavernn_ref.c implements (models/README.md,
# "Conditioning features"): the dataset, training, golden fixtures and C runtime all agree on it.
import math

import numpy as np

SR = 24000            # output rate (Hz)
FRAME = 120           # samples per conditioning frame (5 ms)
VOICES = 4            # voice slots per frame
HARMONICS = 3         # sinusoid harmonics per voice in the per-sample excitation
PRED_HARMONICS = 16   # harmonics per voice in the harmonic predictor
PRED_MAX_HZ = 10800.0 # a predictor harmonic at or above this frequency is zero (0.45 * SR)
VOICE_TAUS = (0.015, 0.05, 0.15, 0.5, 2.0)   # onset time features exp(-tau / T), seconds
VOICE_RELS = (0.05, 0.2)                     # release time features, seconds
TAIL = 12000          # a note keeps its slot this many samples after note-off (0.5 s)
ONSET_DECAY = 240.0   # per-sample onset pulse time constant (samples, 10 ms)
ATT_S, DEC_S, REL_S = 0.05, 0.5, 0.2   # frame envelope time constants (s)
PREEMPH = 0.85        # pre-emphasis coefficient
MU = 255              # 8-bit mu-law

# Instrument classes. A GM program (or the drum kit, index 128) maps to a class by PROGRAM_MAP.
CLASSES = ["piano", "strings", "guitar", "bass", "lead", "pad", "drums"]
N_CLASSES = len(CLASSES)
SLOT_DIM = 7                                   # per voice slot in the frame vector
COND_DIM = N_CLASSES + 1 + VOICES * SLOT_DIM   # 36
EXC_PER_VOICE = 2 * HARMONICS + 1
EXC_DIM = VOICES * EXC_PER_VOICE               # 28
VOICE_DIM = N_CLASSES + 2 + len(VOICE_TAUS) + len(VOICE_RELS)   # 16 (+ the learned pitch embedding)


def program_map():
    """Class index for GM programs 0..127 and the drum kit (index 128), by GM family."""
    fam = [0, 0, 5, 2, 3, 1, 1, 4, 4, 4, 4, 5, 5, 2, 6, 5]   # 16 families of 8 programs
    m = [fam[p // 8] for p in range(128)]
    m.append(6)
    return m


def midi_hz(pitch):
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


def slot_table(notes, n_frames):
    """notes: int64 array (N, 4) of [on, off, pitch, velocity], on/off in samples, off > on.
    Returns int32 (n_frames, VOICES): note index per slot, -1 = empty.
    Candidates for frame f: on < (f+1)*FRAME and off + TAIL > f*FRAME; sorted by (on, pitch)
    ascending; the last VOICES of them (the most recent onsets) keep that order in slots 0.."""
    order = np.lexsort((notes[:, 2], notes[:, 0])) if len(notes) else np.zeros(0, np.int64)
    tab = np.full((n_frames, VOICES), -1, np.int32)
    for f in range(n_frames):
        a, b = f * FRAME, (f + 1) * FRAME
        c = [i for i in order if notes[i, 0] < b and notes[i, 1] + TAIL > a]
        c = c[-VOICES:]
        tab[f, :len(c)] = c
    return tab


def frame_cond(notes, cls, tab):
    """Frame conditioning, float32 (n_frames, COND_DIM), evaluated at the frame centre
    t = f*FRAME + FRAME/2. Layout: one-hot class (N_CLASSES), polyphony = filled slots / VOICES,
    then per slot [active, (pitch-60)/24, velocity/127, held, att, dec, rel] where
    tau_on = max(0, t-on)/SR, held = t < off, att = exp(-tau_on/ATT_S), dec = exp(-tau_on/DEC_S),
    rel = 0 if held else exp(-(t-off)/SR/REL_S). An empty slot is all zeros."""
    n = tab.shape[0]
    c = np.zeros((n, COND_DIM), np.float64)
    c[:, cls] = 1.0
    for f in range(n):
        t = f * FRAME + FRAME / 2
        filled = 0
        for v in range(VOICES):
            i = tab[f, v]
            if i < 0:
                continue
            filled += 1
            on, off, p, vel = notes[i]
            tau = max(0.0, t - on) / SR
            held = 1.0 if t < off else 0.0
            rel = 0.0 if held else math.exp(-((t - off) / SR) / REL_S)
            o = N_CLASSES + 1 + v * SLOT_DIM
            c[f, o:o + SLOT_DIM] = [1.0, (p - 60) / 24.0, vel / 127.0, held,
                                    math.exp(-tau / ATT_S), math.exp(-tau / DEC_S), rel]
        c[f, N_CLASSES] = filled / VOICES
    return c.astype(np.float32)


def tuned_hz(pitch, cls, tuning):
    """The oscillator frequency of a note: equal temperament corrected by the model's tuning
    table (cents, (N_CLASSES, 128) float32; None = no correction). float64."""
    hz = midi_hz(np.asarray(pitch, np.float64))
    if tuning is None:
        return hz
    return hz * 2.0 ** (np.asarray(tuning, np.float32)[cls, pitch].astype(np.float64) / 1200.0)


def _slot_phases(notes, cls, tab, tuning, t0, t1):
    """Per sample of [t0, t1) and slot: (gate g (float64), n = t - on, hz, sin and cos of the
    fundamental's phase 2 pi frac(hz n / SR)) in float64, from the slots of frame t // FRAME."""
    t = np.arange(t0, t1, dtype=np.int64)
    f = t // FRAME
    for v in range(VOICES):
        idx = tab[f, v]
        ok = idx >= 0
        nt = notes[np.where(ok, idx, 0)] if len(notes) else np.zeros((len(t), 4), np.int64)
        on, off, p = nt[:, 0], nt[:, 1], nt[:, 2]
        g = (ok & (t >= on) & (t < off + TAIL)).astype(np.float64)
        n = (t - on).astype(np.float64)
        hz = tuned_hz(p, cls, tuning)
        cyc = hz * n / SR
        cyc = cyc - np.floor(cyc)
        yield v, g, n, hz, np.sin(2 * np.pi * cyc), np.cos(2 * np.pi * cyc)


def harmonics(s1, c1, k_max):
    """sin and cos of k * phase for k = 1..k_max from those of the phase, by the angle-sum
    recurrence in float64 (the C runtime does the same operations in the same order):
    s[k+1] = s[k] c1 + c[k] s1, c[k+1] = c[k] c1 - s[k] s1. Returns two lists of arrays."""
    ss, cs = [s1], [c1]
    for _ in range(k_max - 1):
        s, c = ss[-1], cs[-1]
        ss.append(s * c1 + c * s1)
        cs.append(c * c1 - s * s1)
    return ss, cs


def excitation(notes, cls, tab, t0, t1, tuning=None):
    """Per-sample excitation for samples [t0, t1), float32 (t1-t0, EXC_DIM). For sample t in
    frame f = t // FRAME and slot v holding note (on, off, pitch): g = on <= t < off + TAIL,
    n = t - on, cyc = frac(tuned_hz(pitch) * n / SR) (float64); features
    [sin(2 pi k cyc), cos(2 pi k cyc) for k = 1..HARMONICS] * g (by the recurrence of
    harmonics(); zero for the drum class), then the onset pulse g * exp(-n / ONSET_DECAY)."""
    out = np.zeros((t1 - t0, EXC_DIM), np.float64)
    for v, g, n, hz, s1, c1 in _slot_phases(notes, cls, tab, tuning, t0, t1):
        o = v * EXC_PER_VOICE
        if cls != CLASSES.index("drums"):
            ss, cs = harmonics(s1, c1, HARMONICS)
            for k in range(HARMONICS):
                out[:, o + 2 * k] = ss[k] * g
                out[:, o + 2 * k + 1] = cs[k] * g
        out[:, o + 2 * HARMONICS] = g * np.exp(-np.maximum(n, 0) / ONSET_DECAY)
    return out.astype(np.float32)


def pred_basis(notes, cls, tab, t0, t1, tuning=None):
    """The harmonic oscillators of samples [t0, t1): float32 (t1-t0, VOICES, 2 * PRED_HARMONICS),
    per slot [sin(2 pi k cyc) * g * m_k for k = 1..K, then cos(2 pi k cyc) * g * m_k for
    k = 1..K], m_k = 1 if k * hz < PRED_MAX_HZ else 0; all zero for the drum class. Same phases
    as excitation(). The renderer's predictor uses the sin half ([..., :K], with the amplitudes
    the voice network predicts); training uses both halves with the analysed coefficients
    (analysis.py)."""
    out = np.zeros((t1 - t0, VOICES, 2 * PRED_HARMONICS), np.float64)
    if cls == CLASSES.index("drums"):
        return out.astype(np.float32)
    for v, g, n, hz, s1, c1 in _slot_phases(notes, cls, tab, tuning, t0, t1):
        ss, cs = harmonics(s1, c1, PRED_HARMONICS)
        for k in range(PRED_HARMONICS):
            m = g * ((k + 1) * hz < PRED_MAX_HZ)
            out[:, v, k] = ss[k] * m
            out[:, v, PRED_HARMONICS + k] = cs[k] * m
    return out.astype(np.float32)


def voice_inputs(notes, cls, tab, f0, f1):
    """The voice network's inputs at both ends of frames [f0, f1): float32 (nf, VOICES, 2,
    VOICE_DIM) evaluated at t = f * FRAME and t = (f + 1) * FRAME for the note in each slot of
    frame f, and int32 (nf, VOICES) embedding rows cls * 128 + pitch (-1 for an empty slot, whose
    inputs are zero). Inputs: one-hot class, (pitch - 60) / 24, velocity / 127, then
    exp(-tau / T) for T in VOICE_TAUS with tau = max(0, t - on) / SR, then for T in VOICE_RELS:
    1 while held (t < off), else exp(-((t - off) / SR) / T)."""
    nf = f1 - f0
    x = np.zeros((nf, VOICES, 2, VOICE_DIM), np.float64)
    emb = np.full((nf, VOICES), -1, np.int32)
    for f in range(f0, f1):
        for v in range(VOICES):
            i = tab[f, v]
            if i < 0:
                continue
            on, off, p, vel = (int(a) for a in notes[i])
            emb[f - f0, v] = cls * 128 + p
            for e, t in enumerate((f * FRAME, (f + 1) * FRAME)):
                tau = max(0, t - on) / SR
                row = [0.0] * N_CLASSES
                row[cls] = 1.0
                row += [(p - 60) / 24.0, vel / 127.0]
                row += [math.exp(-tau / T) for T in VOICE_TAUS]
                row += [1.0 if t < off else math.exp(-((t - off) / SR) / T) for T in VOICE_RELS]
                x[f - f0, v, e] = row
    return x.astype(np.float32), emb


def mulaw_compand(x):
    """The continuous mu-law curve sign(x) ln(1 + 255 |x|) / ln 256 in float32 (the GRU's view
    of the predictor's output)."""
    x = np.asarray(x, np.float32)
    return (np.sign(x) * np.log1p(np.float32(MU) * np.abs(x)) / np.float32(math.log1p(MU))).astype(np.float32)


def mulaw_encode(x):
    """float in [-1, 1] -> int 0..255."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / math.log1p(MU)
    return np.clip(np.floor((y + 1) / 2 * MU + 0.5), 0, MU).astype(np.int64)


def mulaw_decode(q):
    """int 0..255 -> float in [-1, 1]; the exact inverse curve the C runtime uses."""
    y = 2.0 * np.asarray(q, np.float64) / MU - 1.0
    return (np.sign(y) * ((1.0 + MU) ** np.abs(y) - 1.0) / MU).astype(np.float32)


def preemphasis(x):
    y = np.asarray(x, np.float64).copy()
    y[1:] -= PREEMPH * y[:-1]
    return y.astype(np.float32)
