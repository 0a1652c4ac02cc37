#!/usr/bin/python3
# spectrogram.py - side-by-side log-magnitude spectrograms (PNG, matplotlib Agg) of a rendered
# cue's stem or mix and its reference (the FluidSynth recording of the same score), on one colour
# scale, so a reader can see pitch, harmonics, noise floor and timing at a glance. Used by
# model_quality.py --png-dir; on its own:
#   /usr/bin/python3 bench/spectrogram.py OUT.png REFERENCE RENDER [--labels A B] [--title T]
# (FLAC / MP3 / WAV / .npz data-set clips / model_bench .f32; stereo is shown as the mono sum)
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from audio_io import AudioError, read_audio  # noqa: E402

RANGE_DB = 90.0   # colour scale: the loudest bin of either panel down to this far below it


def log_spectrogram(x, rate, n_fft=2048, hop=256):
    """(dB magnitude (bins, frames), frequencies Hz, frame times s) of mono x; Hann window."""
    x = np.asarray(x, np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    n = 1 + (len(x) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(x, (n, n_fft), (x.strides[0] * hop, x.strides[0]))
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)).T / (n_fft / 4)   # 0 dBFS sine ~ 0 dB
    return (20 * np.log10(np.maximum(mag, 1e-10)), np.fft.rfftfreq(n_fft, 1 / rate),
            (np.arange(n) * hop + n_fft / 2) / rate)


def write_pair(path, panels, rate, title, notes=None, fmin=30.0):
    """Writes PATH: one spectrogram per (label, mono signal) in PANELS, side by side on a log
    frequency axis from FMIN to Nyquist and a shared colour scale. NOTES (optional, rows of
    [on, off, pitch, ...] in samples) are drawn as thin lines at each note's f0 on every panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [log_spectrogram(x, rate) for _, x in panels]
    top = max(float(s[0].max()) for s in specs)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), sharey=True,
                             constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, (label, x), (s, f, t) in zip(axes, panels, specs):
        keep = f >= fmin
        im = ax.pcolormesh(t, f[keep], s[keep], shading="nearest", cmap="magma",
                           vmin=top - RANGE_DB, vmax=top, rasterized=True)
        if notes is not None:
            for on, off, p in np.asarray(notes)[:, :3]:
                hz = 440.0 * 2 ** ((p - 69) / 12)
                ax.hlines(hz, on / rate, off / rate, colors="cyan", linewidth=0.6, alpha=0.7)
        rms = np.sqrt(np.mean(np.square(x))) if len(x) else 0.0
        ax.set_title(f"{label}  (RMS {20 * np.log10(max(rms, 1e-10)):.1f} dBFS)", fontsize=10)
        ax.set_yscale("log")
        ax.set_ylim(fmin, rate / 2)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (Hz, log)")
    fig.colorbar(im, ax=list(axes), label="dB re full-scale sine", shrink=0.9)
    fig.suptitle(title + ("  -  cyan: score f0" if notes is not None else ""), fontsize=11)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description="Side-by-side spectrograms of a reference and a render.")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("reference")
    ap.add_argument("render")
    ap.add_argument("--labels", nargs=2, default=["reference", "render"])
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    try:
        (x, rx), (y, ry) = read_audio(a.reference), read_audio(a.render)
    except AudioError as e:
        sys.exit(f"spectrogram: {e}")
    if rx != ry:
        sys.exit(f"spectrogram: {a.reference} is {rx} Hz but {a.render} is {ry} Hz; compare at one rate")
    write_pair(a.out, [(a.labels[0], x.mean(axis=1)), (a.labels[1], y.mean(axis=1))], rx,
               a.title or f"{os.path.basename(a.reference)} vs {os.path.basename(a.render)}")
    print(a.out)


if __name__ == "__main__":
    main()
