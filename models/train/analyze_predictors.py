#!/usr/bin/python3
# analyze_predictors.py - the measurements behind models/README.md §1 ("What the first CPU run
# showed"): how far the rendered notes are from ideal oscillators (f0 offset, phase drift) and how
# much of each frame a predictor can take off the network (prediction gain, in dB).
#   /usr/bin/python3 models/train/analyze_predictors.py [--data models/data/out]
import argparse
import glob
import os

import numpy as np

import features as F

HERE = os.path.dirname(os.path.abspath(__file__))


def oscillator_offsets(data):
    """Probe notes: f0 offset from equal temperament (cents, by complex demodulation over the
    note after its first 100 ms) and phase drift against the ideal oscillator between the two
    halves of that span (degrees)."""
    for path in sorted(glob.glob(os.path.join(data, "probe", "*.npz"))):
        z = np.load(path)
        if F.CLASSES[int(z["cls"])] == "drums":
            continue
        a, cents, drift = z["audio"].astype(np.float64), [], []
        for on, off, p, _ in z["notes"]:
            f0 = F.midi_hz(p)
            n = np.arange(on + 2400, off) - on
            x = a[on + 2400:off]
            grid = np.linspace(-50, 50, 201)
            mags = [abs(np.sum(x * np.exp(-2j * np.pi * f0 * 2 ** (c / 1200) * n / F.SR))) for c in grid]
            cents.append(grid[int(np.argmax(mags))])
            h = len(x) // 2
            ph = [np.angle(np.sum(x[s:e] * np.exp(-2j * np.pi * f0 * n[s:e] / F.SR))) for s, e in ((0, h), (h, len(x)))]
            drift.append(abs(np.degrees(np.angle(np.exp(1j * (ph[1] - ph[0]))))))
        print(f"{F.CLASSES[int(z['cls'])]:8s} f0 offset median {np.median(cents):+5.1f} cents "
              f"(range {min(cents):+.1f}..{max(cents):+.1f}); phase drift over ~{h / F.SR * 1000:.0f} ms "
              f"median {np.median(drift):.0f} deg")


def prediction_gains(data, order=16, ridge=0.1):
    """Validation clips: each non-silent 120-sample frame of the pre-emphasised signal predicted
    from the 240 samples before it by (a) a backward-adaptive LPC of `order` (least squares on
    the past), (b) a ridge-regression map of the 28 excitation features fitted on the past."""
    for path in sorted(glob.glob(os.path.join(data, "val", "*.npz"))):
        z = np.load(path)
        cls, notes = int(z["cls"]), z["notes"]
        nf = len(z["audio"]) // F.FRAME
        s = F.preemphasis(z["audio"]).astype(np.float64)[:nf * F.FRAME]
        tab = F.slot_table(notes, nf)
        X = F.excitation(notes, cls, tab, 0, nf * F.FRAME).astype(np.float64).reshape(nf, F.FRAME, -1)
        S = s.reshape(nf, F.FRAME)
        den = lpc = exc = 0.0
        for f in range(2, nf):
            if np.mean(S[f] ** 2) < 1e-7:
                continue
            past = s[(f - 2) * F.FRAME:f * F.FRAME]
            rows = np.array([past[i - order:i][::-1] for i in range(order, len(past))])
            c, *_ = np.linalg.lstsq(rows, past[order:], rcond=None)
            ctx = s[f * F.FRAME - order:(f + 1) * F.FRAME]
            pred = np.array([ctx[i - order:i][::-1] @ c for i in range(order, len(ctx))])
            lpc += np.sum((S[f] - pred) ** 2)
            A, b = np.concatenate([X[f - 2], X[f - 1]]), past
            w = np.linalg.solve(A.T @ A + ridge * np.eye(A.shape[1]), A.T @ b)
            exc += np.sum((S[f] - X[f] @ w) ** 2)
            den += np.sum(S[f] ** 2)
        print(f"{F.CLASSES[cls]:8s} backward LPC-{order}: {10 * np.log10(den / lpc):5.1f} dB   "
              f"excitation map: {10 * np.log10(den / exc):6.1f} dB")


def main():
    ap = argparse.ArgumentParser(description="predictor and oscillator measurements")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "data", "out"))
    a = ap.parse_args()
    print("== rendered notes vs ideal oscillators (probe set)")
    oscillator_offsets(a.data)
    print("== prediction gain per frame from the past 240 samples (validation set)")
    prediction_gains(a.data)


if __name__ == "__main__":
    main()
