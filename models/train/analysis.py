#!/usr/bin/python3
# analysis.py - the harmonic analysis behind the predictor's training targets (models/README.md
# §1): for each 5 ms frame of a recording, the complex amplitude of harmonics 1..PRED_HARMONICS of
# every note in the frame's voice slots, by a ridge-regularised least-squares fit of the raw
# signal on those oscillators (features.pred_basis phases) over a Hann window around the frame
# centre (at least 360 samples and 2.5 periods of the lowest note). This is LPCNet's split applied
# to a score: the analysis gives the coefficients the GRU is teacher-forced with (its prediction
# p is phase-aligned with the recording, so the residual it learns is small), and the voice
# network learns to predict their magnitudes from the score, which is all the renderer has.
import numpy as np

import features as F

K = F.PRED_HARMONICS


def _basis(notes, cls, idx, tuning, t0, t1):
    """Columns [sin k, cos k for k = 1..K] of each note in idx over samples [t0, t1), gated to
    the note's life and masked above PRED_MAX_HZ (as features.pred_basis). (T, 2K * len(idx))."""
    t = np.arange(t0, t1, dtype=np.int64)
    cols = []
    for i in idx:
        on, off, p, _ = notes[i]
        g = ((t >= on) & (t < off + F.TAIL)).astype(np.float64)
        hz = F.tuned_hz(np.array([p]), cls, tuning)[0]
        cyc = hz * (t - on).astype(np.float64) / F.SR
        cyc -= np.floor(cyc)
        ss, cs = F.harmonics(np.sin(2 * np.pi * cyc), np.cos(2 * np.pi * cyc), K)
        for k in range(K):
            m = g * ((k + 1) * hz < F.PRED_MAX_HZ)
            cols.append(ss[k] * m)
        for k in range(K):
            m = g * ((k + 1) * hz < F.PRED_MAX_HZ)
            cols.append(cs[k] * m)
    return np.stack(cols, axis=1)


def frame_coefficients(audio, notes, cls, tab, tuning, ridge=1e-3):
    """Per frame and slot the fitted coefficients [a_1..a_K (sin), b_1..b_K (cos)] of the note in
    that slot: float32 (n_frames, VOICES, 2K); zero for empty slots and for drums."""
    nf = tab.shape[0]
    out = np.zeros((nf, F.VOICES, 2 * K), np.float32)
    if cls == F.CLASSES.index("drums"):
        return out
    x = audio.astype(np.float64)
    for f in range(nf):
        idx = [int(i) for i in tab[f] if i >= 0]
        if not idx:
            continue
        lo_hz = min(F.tuned_hz(np.array([notes[i, 2]]), cls, tuning)[0] for i in idx)
        W = int(min(2400, max(360, 2.5 * F.SR / lo_hz)))
        c = f * F.FRAME + F.FRAME // 2
        t0, t1 = max(0, c - W // 2), min(len(x), c + W // 2)
        B = _basis(notes, cls, idx, tuning, t0, t1)
        w = np.hanning(t1 - t0 + 2)[1:-1]
        A = B * w[:, None]
        y = x[t0:t1] * w
        G = A.T @ A
        lam = ridge * (np.trace(G) / max(1, G.shape[0]) + 1e-12)
        live = np.diag(G) > 1e-9
        sol = np.zeros(G.shape[0])
        if live.any():
            Gl = G[np.ix_(live, live)] + lam * np.eye(int(live.sum()))
            sol[live] = np.linalg.solve(Gl, A[:, live].T @ y)
        for j, v in enumerate(v for v in range(F.VOICES) if tab[f, v] >= 0):
            out[f, v] = sol[j * 2 * K:(j + 1) * 2 * K]
    return out


def boundary_coefficients(coef, tab):
    """Coefficients at both ends of each frame for the note in each slot: (n_frames, VOICES, 2,
    2K), the end of frame f being the mean of the note's fits in frames f and f + 1 (and the start
    the mean of frames f - 1 and f), or its own fit where the note is not in the neighbour."""
    nf = tab.shape[0]
    out = np.zeros((nf, F.VOICES, 2, coef.shape[-1]), np.float32)
    where = [{int(i): v for v, i in enumerate(tab[f]) if i >= 0} for f in range(nf)]
    for f in range(nf):
        for v in range(F.VOICES):
            i = int(tab[f, v])
            if i < 0:
                continue
            own = coef[f, v]
            for e, g in ((0, f - 1), (1, f + 1)):
                nb = coef[g, where[g][i]] if 0 <= g < nf and i in where[g] else own
                out[f, v, e] = 0.5 * (own + nb)
    return out


def magnitudes(bcoef):
    """(..., 2K) [sin, cos] coefficients -> (..., K) magnitudes."""
    return np.sqrt(bcoef[..., :K] ** 2 + bcoef[..., K:] ** 2)


def analyse_file(args):
    """One clip -> DATA/analysis/SPLIT/NAME.npz holding bcoef (n_frames, VOICES, 2, 2K) float32."""
    path, out, tuning_path = args
    tuning = np.load(tuning_path)
    z = np.load(path)
    notes, cls = z["notes"].astype(np.int64).reshape(-1, 4), int(z["cls"])
    nf = len(z["audio"]) // F.FRAME
    tab = F.slot_table(notes, nf)
    b = boundary_coefficients(frame_coefficients(z["audio"], notes, cls, tab, tuning, RIDGE), tab)
    np.savez(out + ".tmp.npz", bcoef=b)
    import os
    os.replace(out + ".tmp.npz", out)
    return out


RIDGE = 1e-2


def main():
    import argparse
    import glob
    import multiprocessing
    import os
    import time
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="harmonic analysis of the data set (cached)")
    ap.add_argument("--data", default=os.path.join(here, "..", "data", "out"))
    ap.add_argument("--splits", default="train,val")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    tp = os.path.join(a.data, "tuning.npy")
    work = []
    for split in a.splits.split(","):
        os.makedirs(os.path.join(a.data, "analysis", split), exist_ok=True)
        for p in sorted(glob.glob(os.path.join(a.data, split, "*.npz"))):
            out = os.path.join(a.data, "analysis", split, os.path.basename(p))
            if not os.path.exists(out) or os.path.getmtime(out) < max(os.path.getmtime(p), os.path.getmtime(tp)):
                work.append((p, out, tp))
    t0 = time.time()
    with multiprocessing.Pool(a.jobs) as pool:
        for i, out in enumerate(pool.imap_unordered(analyse_file, work)):
            print(f"[{i + 1}/{len(work)}] {out} ({time.time() - t0:.0f} s)", flush=True)
    print(f"analysis: {len(work)} clips in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
