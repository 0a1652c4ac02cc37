#!/usr/bin/python3
# model_quality.py - first quality figures of a neural-renderer model: renders the held-out
# validation scores (models/data/out/val) with the C runtime (build/bench/model_bench render) and
# compares with the FluidSynth recordings of the same scores:
#   pitch accuracy  share of isolated notes (>= 350 ms, no other note sounding) whose YIN f0 over
#                   [on + 150 ms, on + 350 ms] is within 50 cents of the score's pitch (past the
#                   attack: slow pads measure 50 % on their own recording at [40, 240] ms); the same
#                   measure on the recording itself is printed as the metric's own ceiling;
#   envelope corr.  correlation of 20 ms log-RMS envelopes (dB, floor -80) of model and recording;
#   level           RMS of model and recording (dBFS).
#   /usr/bin/python3 bench/model_quality.py [MODEL.mgnn] [--seed N] [--seconds S]
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
import features as F  # noqa: E402


def yin_f0(x, fmin, fmax, thr=0.15):
    """YIN (de Cheveigne & Kawahara, 2002) f0 of x in Hz, or 0 if no period is found."""
    tmin, tmax = int(F.SR / fmax), min(int(F.SR / fmin) + 1, len(x) // 2)
    if tmax <= tmin + 2:
        return 0.0
    w = len(x) - tmax
    d = np.array([np.sum((x[:w] - x[t:t + w]) ** 2) for t in range(tmax + 1)])
    cm = np.ones_like(d)
    cs = np.cumsum(d[1:])
    cm[1:] = d[1:] * np.arange(1, tmax + 1) / np.maximum(cs, 1e-20)
    cand = np.nonzero(cm[tmin:tmax] < thr)[0]
    if len(cand):
        t = tmin + cand[0]
        while t + 1 < tmax and cm[t + 1] < cm[t]:
            t += 1
    else:
        t = tmin + int(np.argmin(cm[tmin:tmax]))
    if 1 <= t < tmax:
        a, b, c = cm[t - 1], cm[t], cm[t + 1]
        den = a - 2 * b + c
        t = t + 0.5 * (a - c) / den if den > 0 else t
    return F.SR / t


def isolated_notes(notes, min_len=int(0.35 * F.SR)):
    out = []
    for i, (on, off, p, v) in enumerate(notes):
        if off - on < min_len:
            continue
        others = np.delete(notes, i, axis=0)
        a, b = on - int(0.05 * F.SR), on + int(0.35 * F.SR)
        if len(others) and np.any((others[:, 0] < b) & (others[:, 1] + int(0.3 * F.SR) > a)):
            continue
        out.append((on, off, p, v))
    return out


def pitch_hits(audio, notes):
    hits = []
    for on, off, p, v in notes:
        seg = audio[on + int(0.15 * F.SR):on + int(0.35 * F.SR)].astype(np.float64)
        if len(seg) < int(0.2 * F.SR) - 10 or np.sqrt(np.mean(seg ** 2)) < 1e-4:
            hits.append(False)
            continue
        f0 = F.midi_hz(p)
        est = yin_f0(seg, f0 / 2.2, f0 * 2.2)
        hits.append(est > 0 and abs(1200 * np.log2(est / f0)) <= 50)
    return hits


def log_env(x, n=480):
    k = len(x) // n
    r = np.sqrt(np.mean(x[:k * n].reshape(k, n).astype(np.float64) ** 2, axis=1))
    return 20 * np.log10(np.maximum(r, 1e-4))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", nargs="?", default=os.path.join(ROOT, "models", "default", "mg-wavernn.mgnn"))
    ap.add_argument("--data", default=os.path.join(ROOT, "models", "data", "out", "val"))
    ap.add_argument("--bench", default=os.path.join(ROOT, os.environ.get("MG_BUILD", "build"), "bench", "model_bench"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=0, help="render only the first S seconds (0: all)")
    ap.add_argument("--keep", default="", help="folder to keep the rendered WAVs in")
    a = ap.parse_args()
    clips = sorted(glob.glob(os.path.join(a.data, "*.npz")))
    if not clips:
        sys.exit(f"{a.data}: no clips; run models/data/make_dataset.py")
    print(f"model {a.model}; data {a.data}; seed {a.seed}")
    print(f"{'clip':<16}{'notes':>6}{'isolated':>9}{'pitch ok (model)':>18}{'(recording)':>13}"
          f"{'env corr':>10}{'rms model':>11}{'rms rec':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for path in clips:
            z = np.load(path)
            ref, notes, cls = z["audio"], z["notes"].reshape(-1, 4), int(z["cls"])
            n = len(ref) if a.seconds <= 0 else min(len(ref), int(a.seconds * F.SR))
            ref = ref[:n]
            notes = notes[notes[:, 0] < n]
            nt = os.path.join(tmp, "notes.txt")
            np.savetxt(nt, notes, fmt="%d")
            out = os.path.join(tmp, "out.f32")
            subprocess.run([a.bench, "render", a.model, str(cls), str(n / F.SR), nt, out, str(a.seed)],
                           check=True, capture_output=True)
            y = np.fromfile(out, np.float32)[:n]
            if a.keep:
                import wave
                os.makedirs(a.keep, exist_ok=True)
                for tag, sig in (("model", y), ("recording", ref)):
                    with wave.open(os.path.join(a.keep, os.path.basename(path)[:-4] + f"_{tag}.wav"), "wb") as w:
                        w.setnchannels(1)
                        w.setsampwidth(2)
                        w.setframerate(F.SR)
                        w.writeframes((np.clip(sig, -1, 1) * 32767).astype(np.int16).tobytes())
            iso = isolated_notes(notes) if F.CLASSES[cls] != "drums" else []
            hm, hr = pitch_hits(y, iso), pitch_hits(ref, iso)
            em, er = log_env(y), log_env(ref)
            corr = float(np.corrcoef(em, er)[0, 1]) if em.std() > 0 and er.std() > 0 else float("nan")
            rms = lambda s: 20 * np.log10(max(np.sqrt(np.mean(s.astype(np.float64) ** 2)), 1e-9))
            pm = f"{100 * np.mean(hm):.0f}% ({sum(hm)}/{len(hm)})" if iso else "-"
            pr = f"{100 * np.mean(hr):.0f}%" if iso else "-"
            print(f"{os.path.basename(path):<16}{len(notes):>6}{len(iso):>9}{pm:>18}{pr:>13}"
                  f"{corr:>10.2f}{rms(y):>10.1f}{rms(ref):>9.1f}")


if __name__ == "__main__":
    main()
