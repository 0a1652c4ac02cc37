#!/usr/bin/python3
# make_dataset.py - the training data of the mg WaveRNN renderer: random note
# sequences per instrument class -> MIDI (mido) -> fluidsynth + FluidR3_GM (MIT) at 24 kHz mono.
# Reproducible from a fresh machine: `sh models/data/install-deps.sh && models/data/make_dataset.py`.
#
# Each clip is written as OUT/{train,val,probe,tune}/{class}_{k}.npz (probe: isolated notes across
# each class's range, for the quality bench, not used in training; tune: every pitch of the range
# in isolation, for the tuning table of models/train/tuning.py) holding
#   audio  float32 (T,)   mono, [-1, 1], aligned so a note at sample s sounds from sample s
#   notes  int64 (N, 4)   [on, off, pitch, velocity], on/off in samples at 24 kHz
#   cls    int            instrument class (features.CLASSES), program int (GM; 128 = drum kit)
# Timing: the MIDI file runs at 1 tick = 1 ms and every event sits on an 8 ms grid (192 samples
# = 3 fluidsynth periods of 64), which fluidsynth's player renders sample-exactly with a fixed
# latency of one period (64 samples) that is removed here; see models/README.md, "Data".
import argparse
import json
import os
import subprocess
import sys
import tempfile
import wave

import mido
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import features as F  # noqa: E402

SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
GRID_MS = 8
LATENCY = 64

# class -> (GM program, drum channel?, pitch range, max polyphony, durations (s) lo..hi)
INSTRUMENTS = {
    "piano":   dict(program=0,  drums=False, lo=28, hi=100, poly=3, dur=(0.08, 1.5)),
    "strings": dict(program=48, drums=False, lo=36, hi=91,  poly=3, dur=(0.2, 2.5)),
    "guitar":  dict(program=25, drums=False, lo=40, hi=84,  poly=3, dur=(0.08, 1.2)),
    "bass":    dict(program=33, drums=False, lo=28, hi=55,  poly=1, dur=(0.08, 1.0)),
    "lead":    dict(program=81, drums=False, lo=48, hi=91,  poly=1, dur=(0.06, 1.2)),
    "pad":     dict(program=89, drums=False, lo=36, hi=84,  poly=4, dur=(0.5, 3.0)),
    "drums":   dict(program=128, drums=True, lo=35, hi=51,  poly=3, dur=(0.05, 0.3)),
}
DRUM_KEYS = [35, 36, 38, 40, 42, 44, 46, 41, 45, 48, 49, 51, 39]


def q(ms):
    return int(round(ms / GRID_MS)) * GRID_MS


def random_notes(spec, seconds, rng):
    """Random phrases: rests, staccato to legato durations, chords up to spec['poly'] notes,
    velocities across the whole range with slow dynamics. Returns [(on_ms, off_ms, pitch, vel)]."""
    notes, t = [], q(rng.uniform(0, 200))
    end = seconds * 1000
    level = rng.uniform(30, 120)
    while t < end - 300:
        level = float(np.clip(level + rng.normal(0, 15), 15, 127))
        art = rng.random()
        lo_d, hi_d = spec["dur"]
        dur = lo_d + (hi_d - lo_d) * (rng.random() ** 2 if art < 0.6 else rng.random())
        dur_ms = max(GRID_MS, q(dur * 1000))
        if spec["drums"]:
            k = rng.integers(1, spec["poly"] + 1)
            pitches = list(rng.choice(DRUM_KEYS, size=k, replace=False))
        else:
            k = rng.integers(1, spec["poly"] + 1) if rng.random() < 0.6 else 1
            root = int(rng.integers(spec["lo"], spec["hi"] + 1))
            pitches = [root]
            for _ in range(k - 1):
                nxt = pitches[-1] + int(rng.choice([3, 4, 5, 7]))
                if nxt <= spec["hi"]:
                    pitches.append(nxt)
        off = min(t + dur_ms, q(end))
        for p in pitches:
            vel = int(np.clip(level + rng.normal(0, 8), 1, 127))
            notes.append((t, off, int(p), vel))
        # legato overlap, a gap, or a rest
        r = rng.random()
        gap = -min(dur_ms // 2, q(rng.uniform(0, 60))) if r < 0.2 else q(rng.uniform(0, 150) if r < 0.8 else rng.uniform(200, 800))
        t = max(t + GRID_MS, t + dur_ms + gap)
    return notes


def probe_notes(spec, n):
    """Isolated notes for the quality bench: n pitches evenly over the range (for drums: each
    key), 400 ms long, 350 ms apart, velocities alternating 50 and 110."""
    keys = DRUM_KEYS if spec["drums"] else \
        [int(round(spec["lo"] + (spec["hi"] - spec["lo"]) * i / max(1, n - 1))) for i in range(n)]
    t, out = 104, []
    for i, p in enumerate(keys):
        out.append((t, t + 400, p, 50 if i % 2 else 110))
        t += 400 + 352
    return out


def tune_notes(spec):
    """The tuning sweep: every pitch of the class's range, 500 ms at velocity 50 then at 110,
    750 ms apart; tuning.py measures each note's f0 offset from equal temperament."""
    t, out = 104, []
    for p in range(spec["lo"], spec["hi"] + 1):
        for v in (50, 110):
            out.append((t, t + 504, p, v))
            t += 752
    return out


def write_midi(notes, spec, path):
    ch = 9 if spec["drums"] else 0
    ev = []
    for on, off, p, v in notes:
        ev.append((on, 1, mido.Message("note_on", note=p, velocity=v, channel=ch)))
        ev.append((off, 0, mido.Message("note_off", note=p, velocity=0, channel=ch)))
    ev.sort(key=lambda e: (e[0], e[1]))
    mid = mido.MidiFile(ticks_per_beat=1000)       # tempo 1 s/beat: 1 tick = 1 ms
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=1000000, time=0))
    if not spec["drums"]:
        tr.append(mido.Message("program_change", program=spec["program"], channel=ch, time=0))
    now = 0
    for t, _, m in ev:
        tr.append(m.copy(time=t - now))
        now = t
    tr.append(mido.MetaMessage("end_of_track", time=1500))
    mid.save(path)


def render(mid_path, wav_path):
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(F.SR),
                    "-F", wav_path, SF2, mid_path], check=True, capture_output=True)
    with wave.open(wav_path) as w:
        assert w.getframerate() == F.SR and w.getsampwidth() == 2
        a = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, w.getnchannels())
    return (a.astype(np.float32).mean(axis=1) / 32768.0)[LATENCY:]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    ap.add_argument("--train-clips", type=int, default=24)
    ap.add_argument("--val-clips", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--splits", default="train,val,probe,tune")
    ap.add_argument("--probe-notes", type=int, default=16, help="isolated notes per class in probe/")
    a = ap.parse_args()
    if not os.path.exists(SF2):
        sys.exit(f"{SF2}: not found; install the Debian package fluid-soundfont-gm")
    manifest = []
    with tempfile.TemporaryDirectory() as tmp:
        for ci, (name, spec) in enumerate(INSTRUMENTS.items()):
            assert F.CLASSES[ci] == name
            for split, n in (("train", a.train_clips), ("val", a.val_clips), ("probe", 1), ("tune", 1)):
                if split not in a.splits.split(",") or (split == "tune" and spec["drums"]):
                    continue
                os.makedirs(os.path.join(a.out, split), exist_ok=True)
                for k in range(n):
                    # validation scores come from a disjoint seed stream: held-out scores
                    rng = np.random.default_rng([a.seed, ci, 0 if split == "train" else 1, k])
                    notes = probe_notes(spec, a.probe_notes) if split == "probe" else \
                        tune_notes(spec) if split == "tune" else random_notes(spec, a.seconds, rng)
                    mid = os.path.join(tmp, "x.mid")
                    wav = os.path.join(tmp, "x.wav")
                    write_midi(notes, spec, mid)
                    audio = render(mid, wav)
                    ns = np.array([(on * 24, off * 24, p, v) for on, off, p, v in notes], np.int64)
                    ns = ns.reshape(-1, 4)
                    n_frames = len(audio) // F.FRAME
                    audio = audio[:n_frames * F.FRAME]
                    path = os.path.join(a.out, split, f"{name}_{k}.npz")
                    np.savez(path, audio=audio, notes=ns, cls=ci, program=spec["program"])
                    peak = float(np.abs(audio).max())
                    manifest.append(dict(file=f"{split}/{name}_{k}.npz", cls=name, notes=len(ns),
                                         seconds=len(audio) / F.SR, peak=round(peak, 4)))
                    print(f"{path}: {len(ns)} notes, {len(audio) / F.SR:.1f} s, peak {peak:.3f}",
                          flush=True)
    with open(os.path.join(a.out, f"manifest-{a.splits.replace(',', '-')}.json"), "w") as f:
        json.dump(dict(sf2=SF2, sf2_license="MIT (FluidR3_GM by Frank Wen, Debian fluid-soundfont-gm)",
                       seed=a.seed, sr=F.SR, clips=manifest), f, indent=1)


if __name__ == "__main__":
    main()
