#!/usr/bin/python3
# tuning.py - the tuning table of the harmonic predictor (models/README.md §1): the measured f0
# offset, in cents from equal temperament, of every pitch of each class, from the isolated notes
# of the tuning sweep (models/data/make_dataset.py, split tune/). FluidR3's samples sit a few
# cents off (up to ±30, and the piano is stretched); an oscillator at the nominal frequency would
# drift against the recording by a large part of a cycle within 300 ms, which makes the harmonic
# coefficients unpredictable. The table goes into the model file (tensor `tuning`, (classes, 128)
# float32 cents); pitches outside a class's measured range take the nearest measured value.
#   /usr/bin/python3 models/train/tuning.py [--data models/data/out] [--out .../tuning.npy]
import argparse
import glob
import os

import numpy as np

import features as F


def note_cents(x, pitch):
    """f0 offset (cents) of an isolated note x (starting at its onset) from equal temperament:
    the frequency maximising the fundamental's complex demodulation over [100, 480] ms, by a
    grid of 1 cent over ±60 then 0.02 cent around the best."""
    n = np.arange(int(0.10 * F.SR), min(len(x), int(0.48 * F.SR)))
    seg = x[n].astype(np.float64) * np.hanning(len(n))
    f0 = F.midi_hz(pitch)

    def mag(c):
        return abs(np.sum(seg * np.exp(-2j * np.pi * f0 * 2 ** (c / 1200) * n / F.SR)))
    grid = np.arange(-60, 60.5, 1.0)
    best = grid[int(np.argmax([mag(c) for c in grid]))]
    fine = np.arange(best - 1, best + 1.001, 0.02)
    return float(fine[int(np.argmax([mag(c) for c in fine]))])


def build(data):
    table = np.zeros((F.N_CLASSES, 128), np.float32)
    spread = []
    for path in sorted(glob.glob(os.path.join(data, "tune", "*.npz"))):
        z = np.load(path)
        cls, a = int(z["cls"]), z["audio"]
        per_pitch = {}
        for on, off, p, v in z["notes"]:
            per_pitch.setdefault(int(p), []).append(note_cents(a[on:off], int(p)))
        ps = sorted(per_pitch)
        d = [abs(c[0] - c[1]) for c in per_pitch.values() if len(c) == 2]
        # the two velocities agree within 0.4 cents for most notes; where they do not, one
        # estimate failed (a weak fundamental): keep the one nearer its neighbours' median
        val = {}
        for p in ps:
            c = per_pitch[p]
            if max(c) - min(c) <= 3.0:
                val[p] = float(np.mean(c))
            else:
                nb = [x for q in ps if q != p and abs(q - p) <= 2 for x in per_pitch[q]]
                ref = float(np.median(nb)) if nb else 0.0
                val[p] = min(c, key=lambda x: abs(x - ref))
        for p in range(128):
            table[cls, p] = val[min(ps, key=lambda q: abs(q - p))]
        vals = [val[p] for p in ps]
        spread.append((F.CLASSES[cls], min(vals), max(vals), float(np.median(d)), float(max(d))))
    return table, spread


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=os.path.join(here, "..", "data", "out"))
    ap.add_argument("--out", default=None, help="default: DATA/tuning.npy")
    a = ap.parse_args()
    if not glob.glob(os.path.join(a.data, "tune", "*.npz")):
        raise SystemExit(f"{a.data}/tune: no clips; run models/data/make_dataset.py --splits tune")
    table, spread = build(a.data)
    for name, lo, hi, dmed, dmax in spread:
        print(f"{name:8s} offsets {lo:+6.1f} .. {hi:+6.1f} cents; velocity 50 vs 110 differ by "
              f"median {dmed:.2f}, max {dmax:.2f} cents")
    out = a.out or os.path.join(a.data, "tuning.npy")
    np.save(out, table)
    print(f"{out}: ({F.N_CLASSES}, 128) cents")


if __name__ == "__main__":
    main()
