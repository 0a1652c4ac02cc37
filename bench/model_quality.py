#!/usr/bin/python3
# model_quality.py - quality of a neural-renderer model: renders the held-out
# validation scores and the probe scores (isolated notes) of models/data/out with the C runtime
# (build/bench/model_bench render, fixed seed) and compares each with the FluidSynth recording of
# the same score. One table per data set, one row per instrument class:
#   pitch     share of scored frames whose YIN f0 is within 50 cents of the score's pitch. A frame
#             (40 ms, every 10 ms) is scored where exactly one note is held over its whole analysis
#             span (frame + YIN lag), no other note sounds or rings (note-off + 0.5 s, the
#             renderer's own tail, features.TAIL), the frame starts >= 30 ms after the onset, and
#             the recording is voiced there (frame RMS within 30 dB of that note's loudest frame).
#             The same measure on the recording is the metric's ceiling. Drums: none ("-").
#   MR-STFT   multi-resolution STFT distance (Parallel WaveGAN / DDSP): FFT 2048/1024/512/256, hop
#             1/4, Hann; spectral convergence + mean |log magnitude| difference, averaged over
#             resolutions; 0 = identical. Printed beside three wrong signals for scale: white noise
#             with the recording's 20 ms envelope, another clip of the same class (train set), and
#             silence (the log term is floored, so a near-silent render scores close to silence).
#   env corr  Pearson correlation of 20 ms log-RMS envelopes (dB, floor -80) of model and recording.
#   RMS       level of model and recording, dBFS.
#   nice /usr/bin/python3 bench/model_quality.py [MODEL.mgnn] [--seed N] [--json PATH] [--png-dir DIR]
import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
import features as F  # noqa: E402

DATA = os.path.join(ROOT, "models", "data", "out")
SETS = ("val", "probe")
TARGET_PITCH = 0.90           # the quality bar: pitch accuracy >= 90 % for every pitched instrument

WIN, HOP = int(0.040 * F.SR), int(0.010 * F.SR)    # pitch frames: 40 ms every 10 ms
ATTACK = int(0.030 * F.SR)                          # skip the first 30 ms after an onset
VOICED_DB = 30.0                                    # voiced: within this of the note's loudest frame
CENTS = 50.0
OCTAVE_SPAN = 2.2          # YIN searches f0 / 2.2 .. f0 * 2.2 around the score pitch: octave errors count
FFT_SIZES = (2048, 1024, 512, 256)
ENV = int(0.020 * F.SR)


# ---- pitch ------------------------------------------------------------------------------------

def yin_f0(frames, tmin, tmax, thr=0.15):
    """YIN (de Cheveigne & Kawahara, 2002) on each row of FRAMES (n, WIN + tmax): the difference
    function over a WIN-sample window at lags 0..tmax, cumulative-mean normalised; the first lag in
    [tmin, tmax) under THR, followed down to its local minimum (else the smallest value), refined
    by a parabola. Returns f0 in Hz per row, 0 for a silent row."""
    n, length = frames.shape
    nfft = 1 << int(np.ceil(np.log2(length)))
    a = frames[:, :WIN]
    # sum_j x[j] x[j + tau] for all tau at once; no wrap-around since nfft >= WIN + tmax
    r = np.fft.irfft(np.conj(np.fft.rfft(a, nfft)) * np.fft.rfft(frames, nfft), nfft)[:, :tmax + 1]
    cs = np.concatenate([np.zeros((n, 1)), np.cumsum(frames ** 2, axis=1)], axis=1)
    lags = np.arange(tmax + 1)
    d = np.maximum(cs[:, [WIN]] + cs[:, lags + WIN] - cs[:, lags] - 2 * r, 0.0)   # sum (x_j - x_j+tau)^2
    cm = np.ones_like(d)
    cm[:, 1:] = d[:, 1:] * lags[1:] / np.maximum(np.cumsum(d[:, 1:], axis=1), 1e-20)
    seg = cm[:, tmin:tmax]
    below = seg < thr
    first = np.where(below.any(axis=1), np.argmax(below, axis=1), -1)
    rising = np.concatenate([seg[:, 1:] >= seg[:, :-1], np.ones((n, 1), bool)], axis=1)
    after = rising & (np.arange(tmax - tmin) >= first[:, None])
    t = np.where(first >= 0, tmin + np.argmax(after, axis=1), tmin + np.argmin(seg, axis=1))
    t = np.clip(t, 1, tmax - 1)
    rows = np.arange(n)
    pa, pb, pc = cm[rows, t - 1], cm[rows, t], cm[rows, t + 1]
    den = pa - 2 * pb + pc
    tf = t + np.where(den > 0, 0.5 * (pa - pc) / np.where(den > 0, den, 1), 0.0)
    return np.where(cs[:, WIN] > 1e-12, F.SR / tf, 0.0)


def pitch_frames(notes, ref):
    """The scored frames of a clip: list of (note pitch, frame starts) per note; see the header."""
    tail = F.TAIL
    out = []
    for i, (on, off, p, v) in enumerate(notes):
        f0 = F.midi_hz(p)
        tmax = int(F.SR * OCTAVE_SPAN / f0) + 1
        span = WIN + tmax
        starts = np.arange(on + ATTACK, off - span + 1, HOP)
        starts = starts[starts + span <= len(ref)]
        if not len(starts):
            continue
        others = np.delete(notes, i, axis=0)
        if len(others):
            # another note sounds in [on', off' + tail): it must miss [s, s + span)
            clash = (others[None, :, 0] < starts[:, None] + span) & (others[None, :, 1] + tail > starts[:, None])
            starts = starts[~clash.any(axis=1)]
        if not len(starts):
            continue
        held = np.arange(on, off - WIN + 1, HOP)
        loud = np.max([np.sqrt(np.mean(ref[s:s + WIN] ** 2)) for s in held])
        rms = np.array([np.sqrt(np.mean(ref[s:s + WIN] ** 2)) for s in starts])
        starts = starts[rms >= loud * 10 ** (-VOICED_DB / 20)]
        if len(starts):
            out.append((p, starts))
    return out


def pitch_hits(audio, frames):
    """Number of frames (of pitch_frames) whose YIN f0 in AUDIO is within CENTS of the score."""
    hits = 0
    for p, starts in frames:
        f0 = F.midi_hz(p)
        tmin, tmax = int(F.SR / (f0 * OCTAVE_SPAN)), int(F.SR * OCTAVE_SPAN / f0) + 1
        block = np.stack([audio[s:s + WIN + tmax] for s in starts]).astype(np.float64)
        est = yin_f0(block, tmin, tmax)
        cents = 1200 * np.abs(np.log2(np.maximum(est, 1e-9) / f0))   # a silent frame (0 Hz) misses
        hits += int(np.sum(cents <= CENTS))
    return hits


# ---- spectral distance, envelope, level --------------------------------------------------------

def stft_mag(x, n):
    """|STFT| with Hann window n, hop n/4, reflect-padded by n/2 (torch.stft center=True); the
    power is floored at 1e-7 before the square root, as Parallel WaveGAN does."""
    hop = n // 4
    x = np.pad(x.astype(np.float64), n // 2, mode="reflect")
    m = 1 + (len(x) - n) // hop
    fr = np.lib.stride_tricks.as_strided(x, (m, n), (x.strides[0] * hop, x.strides[0]))
    s = np.fft.rfft(fr * np.hanning(n + 1)[:-1], axis=1)
    return np.sqrt(np.maximum(s.real ** 2 + s.imag ** 2, 1e-7))


def mr_stft(ref, y):
    """(total, spectral convergence, log-magnitude L1), each averaged over FFT_SIZES."""
    sc, lm = [], []
    for n in FFT_SIZES:
        a, b = stft_mag(ref, n), stft_mag(y, n)
        sc.append(np.linalg.norm(a - b) / np.linalg.norm(a))
        lm.append(np.mean(np.abs(np.log(a) - np.log(b))))
    return float(np.mean(sc) + np.mean(lm)), float(np.mean(sc)), float(np.mean(lm))


def rms_env(x, n=ENV):
    k = len(x) // n
    return np.sqrt(np.mean(x[:k * n].reshape(k, n).astype(np.float64) ** 2, axis=1))


def env_corr(y, ref):
    em, er = 20 * np.log10(np.maximum(rms_env(y), 1e-4)), 20 * np.log10(np.maximum(rms_env(ref), 1e-4))
    return float(np.corrcoef(em, er)[0, 1]) if em.std() > 0 and er.std() > 0 else float("nan")


def noise_like(ref, seed=0):
    """White noise carrying the recording's 20 ms RMS envelope: same level and timing, no pitch."""
    env = rms_env(ref)
    t = (np.arange(len(env)) + 0.5) * ENV
    return np.random.default_rng(seed).standard_normal(len(ref)) * np.interp(np.arange(len(ref)), t, env)


def other_clip(cls, n):
    """The first training clip of the class, cut or zero-padded to n samples; None if absent."""
    path = os.path.join(DATA, "train", f"{F.CLASSES[cls]}_0.npz")
    if not os.path.exists(path):
        return None
    a = np.load(path)["audio"].astype(np.float64)[:n]
    return np.pad(a, (0, n - len(a)))


def db(power):
    return 10 * np.log10(max(power, 1e-20))


# ---- rendering ---------------------------------------------------------------------------------

def render_all(bench, model, clips, seed, temperature, tmp, jobs):
    """Renders every clip's score with model_bench, JOBS at a time; returns {path: float32 audio}."""
    pending, running, out = list(clips), [], {}
    while pending or running:
        while pending and len(running) < jobs:
            path, (ref, notes, cls) = pending.pop(0)
            stem = os.path.join(tmp, os.path.basename(os.path.dirname(path)) + "_" + os.path.basename(path)[:-4])
            np.savetxt(stem + ".txt", notes, fmt="%d")
            cmd = [bench, "render", model, str(cls), repr(len(ref) / F.SR), stem + ".txt", stem + ".f32",
                   str(seed), repr(temperature)]
            running.append((path, stem, len(ref), subprocess.Popen(cmd, stderr=subprocess.PIPE)))
        path, stem, n, proc = running.pop(0)
        err = proc.communicate()[1].decode(errors="replace").strip()
        if proc.returncode != 0:
            sys.exit(f"model_quality: rendering {path} failed ({' '.join(proc.args)}):\n{err}")
        y = np.fromfile(stem + ".f32", np.float32).astype(np.float64)
        out[path] = np.pad(y[:n], (0, max(0, n - len(y))))
    return out


def load_clips(max_seconds):
    clips, cut = [], []
    for s in SETS:
        for path in sorted(glob.glob(os.path.join(DATA, s, "*.npz"))):
            z = np.load(path)
            ref, notes, cls = z["audio"].astype(np.float64), z["notes"].reshape(-1, 4).astype(np.int64), int(z["cls"])
            if max_seconds > 0 and len(ref) > max_seconds * F.SR:
                cut.append(f"{s}/{os.path.basename(path)} {len(ref) / F.SR:.1f} s")
                ref = ref[:int(max_seconds * F.SR)]
                notes = notes[notes[:, 0] < len(ref)]
                notes[:, 1] = np.minimum(notes[:, 1], len(ref))
            clips.append((path, (ref, notes, cls)))
    return clips, cut


# ---- report ------------------------------------------------------------------------------------

def measure(clips, renders):
    """Per set and class: pooled pitch counts, mean distances and correlations, pooled power."""
    res = {s: {} for s in SETS}
    for path, (ref, notes, cls) in clips:
        s, name, y = os.path.basename(os.path.dirname(path)), F.CLASSES[cls], renders[path]
        r = res[s].setdefault(name, {"clips": [], "frames": 0, "hits_model": 0, "hits_recording": 0,
                                     "pitched": name != "drums", "mr_stft": [], "mr_stft_sc": [],
                                     "mr_stft_logmag": [], "mr_stft_noise": [], "mr_stft_other": [],
                                     "mr_stft_silence": [],
                                     "env_corr": [], "power_model": [], "power_recording": []})
        r["clips"].append(os.path.relpath(path, ROOT))
        if r["pitched"]:
            fr = pitch_frames(notes, ref)
            r["frames"] += sum(len(st) for _, st in fr)
            r["hits_model"] += pitch_hits(y, fr)
            r["hits_recording"] += pitch_hits(ref, fr)
        tot, sc, lm = mr_stft(ref, y)
        r["mr_stft"].append(tot)
        r["mr_stft_sc"].append(sc)
        r["mr_stft_logmag"].append(lm)
        r["mr_stft_noise"].append(mr_stft(ref, noise_like(ref))[0])
        r["mr_stft_silence"].append(mr_stft(ref, np.zeros_like(ref))[0])
        other = other_clip(cls, len(ref))
        r["mr_stft_other"].append(mr_stft(ref, other)[0] if other is not None else float("nan"))
        r["env_corr"].append(env_corr(y, ref))
        r["power_model"].append((float(np.sum(y ** 2)), len(y)))
        r["power_recording"].append((float(np.sum(ref ** 2)), len(ref)))
    summary = {s: {} for s in SETS}
    for s in SETS:
        for name, r in res[s].items():
            pooled = lambda k: db(sum(e for e, _ in r[k]) / max(1, sum(n for _, n in r[k])))
            summary[s][name] = {
                "clips": r["clips"], "pitched": r["pitched"], "frames": r["frames"],
                "pitch_model": r["hits_model"] / r["frames"] if r["frames"] else None,
                "pitch_recording": r["hits_recording"] / r["frames"] if r["frames"] else None,
                **{k: float(np.mean(r[k])) for k in ("mr_stft", "mr_stft_sc", "mr_stft_logmag",
                                                      "mr_stft_noise", "mr_stft_other", "mr_stft_silence",
                                                      "env_corr")},
                "rms_model_dbfs": pooled("power_model"), "rms_recording_dbfs": pooled("power_recording")}
    return summary


def print_tables(summary):
    pct = lambda v: "-" if v is None else f"{100 * v:.0f} %"
    for s in SETS:
        if not summary[s]:
            continue
        print(f"\n{s} ({'held-out scores' if s == 'val' else 'isolated notes across each range'})")
        print(f"{'class':<9}{'frames':>7}{'pitch':>8}{'(rec.)':>8}   {'MR-STFT':>8}{'noise':>7}{'other':>7}{'silence':>8}   "
              f"{'env corr':>8}   {'RMS model':>9}{'rec.':>7}")
        order = [c for c in F.CLASSES if c in summary[s]]
        for name in order:
            r = summary[s][name]
            print(f"{name:<9}{(r['frames'] if r['pitched'] else '-'):>7}{pct(r['pitch_model']):>8}"
                  f"{pct(r['pitch_recording']):>8}   {r['mr_stft']:>8.2f}{r['mr_stft_noise']:>7.2f}"
                  f"{r['mr_stft_other']:>7.2f}{r['mr_stft_silence']:>8.2f}   {r['env_corr']:>8.2f}   {r['rms_model_dbfs']:>9.1f}"
                  f"{r['rms_recording_dbfs']:>7.1f}")
    print("\ncolumns: frames scored for pitch; pitch = model within 50 cents, (rec.) = the recording itself "
          "(ceiling);\n  MR-STFT model vs recording, then recording vs enveloped white noise, another clip of "
          "the class and silence\n  (lower is closer; a model above 'noise' or 'silence' is no nearer than "
          "they are); env corr "
          "of 20 ms log-RMS; RMS in dBFS")


def verdict(summary):
    misses = [f"{s}/{c} {100 * r['pitch_model']:.0f} %" for s in SETS for c, r in summary[s].items()
              if r["pitched"] and r["pitch_model"] is not None and r["pitch_model"] < TARGET_PITCH]
    unscored = [f"{s}/{c}" for s in SETS for c, r in summary[s].items() if r["pitched"] and r["pitch_model"] is None]
    ok = not misses and not unscored
    print(f"\ntarget: pitch >= {100 * TARGET_PITCH:.0f} % for every pitched class: "
          f"{'MET' if ok else 'NOT MET'}"
          + (f"; below: {', '.join(misses)}" if misses else "")
          + (f"; no scored frames: {', '.join(unscored)}" if unscored else ""))
    return ok


def write_pngs(png_dir, clips, renders):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import spectrogram
    os.makedirs(png_dir, exist_ok=True)
    done = set()
    for path, (ref, notes, cls) in clips:
        if os.path.basename(os.path.dirname(path)) != "val" or cls in done:
            continue
        done.add(cls)
        out = os.path.join(png_dir, f"{F.CLASSES[cls]}_val.png")
        spectrogram.write_pair(out, [("FluidSynth recording", ref), ("model render", renders[path])], F.SR,
                               f"{F.CLASSES[cls]}: {os.path.relpath(path, ROOT)}",
                               notes=None if F.CLASSES[cls] == "drums" else notes)
        print(f"wrote {os.path.relpath(out)}")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def main():
    ap = argparse.ArgumentParser(description="Quality of a neural-renderer model against FluidSynth recordings.")
    ap.add_argument("model", nargs="?", default=os.path.join(ROOT, "models", "default", "mg-wavernn.mgnn"))
    ap.add_argument("--bench", default=os.path.join(ROOT, os.environ.get("MG_BUILD", "build"), "bench", "model_bench"))
    ap.add_argument("--seed", type=int, default=1, help="sampling seed of every render (default 1)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-seconds", type=float, default=0, help="cut each clip to S seconds (0: whole clips)")
    ap.add_argument("--jobs", type=int, default=2, help="renders at a time")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--png-dir", help="write spectrograms (model vs recording) of one val clip per class here")
    a = ap.parse_args()
    if not all(glob.glob(os.path.join(DATA, s, "*.npz")) for s in SETS):
        sys.exit(f"model_quality: {os.path.relpath(DATA)}/{{val,probe}} has no clips; make them with "
                 f"`/usr/bin/python3 models/data/make_dataset.py` (needs FluidSynth and FluidR3_GM: "
                 f"models/data/install-deps.sh)")
    if not os.access(a.bench, os.X_OK):
        sys.exit(f"model_quality: {a.bench} not found; build it with `make build/bench/model_bench`")
    t0 = time.time()
    clips, cut = load_clips(a.max_seconds)
    print(f"model {os.path.relpath(a.model)}; data {os.path.relpath(DATA)}/{{val,probe}}: "
          f"{len(clips)} clips, {sum(len(c[1][0]) for c in clips) / F.SR:.0f} s; seed {a.seed}, "
          f"temperature {a.temperature:g} (same seed for every clip)")
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; reference: "
          f"FluidSynth recordings of the same scores (models/data/make_dataset.py)")
    if cut:
        print(f"subsampled: clips cut to {a.max_seconds:g} s: {', '.join(cut)}")
    with tempfile.TemporaryDirectory() as tmp:
        renders = render_all(a.bench, a.model, clips, a.seed, a.temperature, tmp, a.jobs)
    t1 = time.time()
    summary = measure(clips, renders)
    print_tables(summary)
    ok = verdict(summary)
    if a.png_dir:
        write_pngs(a.png_dir, clips, renders)
    print(f"time: render {t1 - t0:.0f} s, measure {time.time() - t1:.0f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": os.path.relpath(a.model, ROOT), "seed": a.seed, "temperature": a.temperature,
                       "max_seconds": a.max_seconds, "target_pitch": TARGET_PITCH, "target_met": ok,
                       "fft_sizes": FFT_SIZES, "sets": summary}, f, indent=1)


if __name__ == "__main__":
    main()
