#!/usr/bin/python3
# mix_check.py - checks delivered mixes (the worker's FLAC / MP3 / WAV outputs):
# per file, no clipping (sample peak and 4x-oversampled true peak), no DC offset, and integrated
# loudness (ITU-R BS.1770-4, implemented here in numpy) on the target. Exit status 1 if any FAIL.
#   /usr/bin/python3 bench/mix_check.py [--target-lufs L] [--tolerance LU] FILE...
#   /usr/bin/python3 bench/mix_check.py --self-test [FILE...]   (validation; cross-checks libebur128)
import argparse
import ctypes
import ctypes.util
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from audio_io import AudioError, read_audio  # noqa: E402

# The worker's defaults (worker/pipeline.c, common/jobspec.c, docs/jobs.md): loudness_lufs -14
# when normalisation is asked for; the limiter holds every file's true peak (4x oversampled, the
# interpolator below) at -1 dBTP, aiming 0.05 dB under; a mono file is measured as dual mono
# (libebur128 EBUR128_DUAL_MONO: it plays on both speakers).
TARGET_LUFS = -14.0
TOLERANCE_LU = 0.5     # EBU R 128's permitted deviation where exact normalisation is possible
TRUE_PEAK_MAX = -1.0   # dBTP, EBU R 128 / the worker's limiter ceiling
DC_MAX_DB = -60.0      # |mean| re full scale: 0.1 % FS, far above what the worker's 5 Hz high-pass leaves
SILENCE_DB = -200.0


def db(x):
    return 20 * math.log10(x) if x > 0 else SILENCE_DB


# ---- ITU-R BS.1770-4 ------------------------------------------------------------------------

def k_weighting(rate):
    """The two K-weighting biquads [(b, a), (b, a)] at RATE: the 'pre-filter' high shelf (+4 dB
    above ~1.7 kHz) and the RLB high-pass (~38 Hz). BS.1770 tabulates them at 48 kHz only; these
    are the analog prototypes' parameters (as libebur128 derives them), bilinear-transformed, and
    reproduce the 48 kHz table to 1e-8."""
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = ([(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0],
             [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    highpass = ([1.0, -2.0, 1.0], [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return [shelf, highpass]


def _impulse_response(biquads, n):
    """First n samples of the cascade's impulse response (a direct-form loop: n is short)."""
    h = np.zeros(n)
    h[0] = 1.0
    for b, a in biquads:
        y, x1, x2, y1, y2 = np.empty(n), 0.0, 0.0, 0.0, 0.0
        for i, x0 in enumerate(h.tolist()):
            y0 = b[0] * x0 + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
            y[i], x2, x1, y2, y1 = y0, x1, x0, y1, y0
        h = y
    return h


def _fft_filter(x, h, block=1 << 16):
    """x (frames, ch) convolved with h, cut to len(x): overlap-add, so long files stay small."""
    n = 1 << int(math.ceil(math.log2(block + len(h) - 1)))
    hf = np.fft.rfft(h, n)[:, None]
    y = np.zeros((len(x) + n, x.shape[1]))
    for s in range(0, len(x), block):
        seg = np.fft.irfft(np.fft.rfft(x[s:s + block], n, axis=0) * hf, n, axis=0)
        y[s:s + n] += seg
    return y[:len(x)]


def k_filter(x, rate):
    """x (frames, ch) through the K-weighting filters. numpy has no IIR filter, so the cascade runs
    as an FIR of its impulse response cut at 0.4 s: the slowest pole (the high-pass, radius 0.995
    at 48 kHz) has decayed by e^-96 there, far below float64 resolution."""
    return _fft_filter(x, _impulse_response(k_weighting(rate), int(0.4 * rate)))


def channel_weights(ch, mono="dual"):
    """BS.1770 channel weights G_i. Mono: 2.0 ('dual': counted as both speakers, as the worker and
    libebur128 EBUR128_DUAL_MONO measure it, +3.01 dB) or 1.0 ('single': the standard's plain
    sum). 5.1 in ITU order L R C LFE Ls Rs: LFE excluded, surrounds 1.41."""
    if ch == 1:
        return np.array([2.0 if mono == "dual" else 1.0])
    if ch == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(ch)


def integrated_loudness(x, rate, mono="dual"):
    """Integrated loudness in LUFS of x (frames, ch) per BS.1770-4: K-weighting, mean square over
    400 ms blocks every 100 ms (75 % overlap), blocks below -70 LUFS dropped (absolute gate), then
    blocks more than 10 LU below the loudness of the rest dropped (relative gate). -inf when no
    block passes (silence, or shorter than 400 ms)."""
    z = k_filter(x, rate) ** 2
    size, step = int(round(0.4 * rate)), int(round(0.1 * rate))
    if len(z) < size:
        return -math.inf
    cs = np.vstack([np.zeros((1, z.shape[1])), np.cumsum(z, axis=0)])
    starts = np.arange(0, len(z) - size + 1, step)
    ms = (cs[starts + size] - cs[starts]) / size               # (blocks, ch)
    power = ms @ channel_weights(x.shape[1], mono)             # sum_i G_i z_ij
    lk = -0.691 + 10 * np.log10(np.maximum(power, 1e-300))
    gated = power[lk > -70.0]
    if not len(gated):
        return -math.inf
    rel = -0.691 + 10 * math.log10(gated.mean()) - 10.0
    gated = power[(lk > -70.0) & (lk > rel)]
    return -0.691 + 10 * math.log10(gated.mean())


def true_peak(x, taps_per_phase=32, beta=8.0):
    """True-peak estimate (linear) of x (frames, ch): the largest |sample| after 4x oversampling
    (BS.1770-4 Annex 2). Interpolator: Kaiser-windowed sinc (beta 8), 32 taps per phase, so the
    three new phases are read at quarter-sample offsets; phase 0 is the signal itself."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    half = taps_per_phase // 2
    k = np.arange(-half, half, dtype=np.float64)
    for p in (1, 2, 3):
        t = k + p / 4.0
        w = np.i0(beta * np.sqrt(np.maximum(0.0, 1 - (t / (half + 1)) ** 2))) / np.i0(beta)
        h = np.sinc(t) * w
        for c in range(x.shape[1]):
            # y(n + p/4) = sum_k x[n - k] h(k + p/4); array index j = k + half
            y = np.convolve(x[:, c], h)[half:half + len(x)]
            peak = max(peak, float(np.max(np.abs(y))) if len(y) else 0.0)
    return peak


# ---- the check ------------------------------------------------------------------------------

def check_file(path, target, tolerance, mono):
    """Measures one file; returns a dict of figures and PASS/FAIL per check."""
    x, rate = read_audio(path)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    tp = true_peak(x)
    dc = [abs(float(np.mean(x[:, c]))) if len(x) else 0.0 for c in range(x.shape[1])]
    lufs = integrated_loudness(x, rate, mono)
    clip = peak >= 1.0 or db(tp) > TRUE_PEAK_MAX
    return {"file": path, "rate": rate, "channels": x.shape[1], "seconds": len(x) / rate,
            "peak_dbfs": db(peak), "true_peak_dbtp": db(tp), "clipped_samples": int(np.sum(np.abs(x) >= 1.0)),
            "clip": "FAIL" if clip else "PASS",
            "dc_db": max(db(d) for d in dc), "dc": "FAIL" if max(db(d) for d in dc) > DC_MAX_DB else "PASS",
            "lufs": lufs, "loudness": "PASS" if math.isfinite(lufs) and abs(lufs - target) <= tolerance else "FAIL"}


def print_table(rows, target, tolerance, mono):
    print(f"checks: clip = any |x| >= 1.0 or true peak (4x oversampled) > {TRUE_PEAK_MAX:.1f} dBTP; "
          f"DC = |mean| of any channel > {DC_MAX_DB:.0f} dB re full scale;")
    print(f"        loudness = BS.1770-4 integrated (mono as {mono} mono) within {target:.1f} "
          f"+- {tolerance:.1f} LUFS (worker default target -14, worker/pipeline.c)")
    w = max([len("file")] + [len(os.path.relpath(r["file"])) for r in rows])
    print(f"{'file':<{w}} {'Hz':>6} {'ch':>3} {'sec':>7} {'peak dBFS':>10} {'TP dBTP':>8} {'clip':>5} "
          f"{'DC dB':>7} {'DC':>5} {'LUFS':>7} {'loud':>5}")
    for r in rows:
        print(f"{os.path.relpath(r['file']):<{w}} {r['rate']:>6} {r['channels']:>3} {r['seconds']:>7.2f} "
              f"{r['peak_dbfs']:>10.2f} {r['true_peak_dbtp']:>8.2f} {r['clip']:>5} {r['dc_db']:>7.1f} "
              f"{r['dc']:>5} {r['lufs']:>7.2f} {r['loudness']:>5}")


# ---- validation -----------------------------------------------------------------------------

def _libebur128():
    name = ctypes.util.find_library("ebur128")
    try:
        lib = ctypes.CDLL(name or "libebur128.so.1")
    except OSError:
        return None
    lib.ebur128_init.restype = ctypes.c_void_p
    lib.ebur128_init.argtypes = [ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    lib.ebur128_set_channel.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    lib.ebur128_add_frames_double.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    lib.ebur128_loudness_global.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)]
    lib.ebur128_true_peak.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_double)]
    lib.ebur128_destroy.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    return lib


def ebur128_measure(lib, x, rate, mono="dual"):
    """(integrated LUFS, true peak dBTP) from libebur128 (mode I | TRUE_PEAK), the worker's meter."""
    mode_i, mode_true_peak, dual_mono = 5, 49, 6
    st = ctypes.c_void_p(lib.ebur128_init(x.shape[1], rate, mode_i | mode_true_peak))
    if x.shape[1] == 1 and mono == "dual":
        lib.ebur128_set_channel(st, 0, dual_mono)
    buf = np.ascontiguousarray(x, np.float64)
    lib.ebur128_add_frames_double(st, buf.ctypes.data, len(buf))
    out, tp = ctypes.c_double(), 0.0
    lib.ebur128_loudness_global(st, ctypes.byref(out))
    for c in range(x.shape[1]):
        v = ctypes.c_double()
        lib.ebur128_true_peak(st, c, ctypes.byref(v))
        tp = max(tp, v.value)
    lib.ebur128_destroy(ctypes.byref(st))
    return out.value, db(tp)


def self_test(files):
    """Synthetic signals with known loudness, then libebur128 on the same signals and FILES."""
    lib = _libebur128()
    print(f"BS.1770-4 validation (this numpy implementation vs libebur128 "
          f"{'via ctypes' if lib else 'not found: no cross-check'})")
    print(f"{'signal':<64} {'expected':>9} {'numpy':>8} {'libebur128':>11}")
    ok = True

    def row(name, x, rate, expect, mono="dual", what="lufs", tol=0.05):
        nonlocal ok
        got = integrated_loudness(x, rate, mono) if what == "lufs" else db(true_peak(x))
        ref = ebur128_measure(lib, x, rate, mono)[0 if what == "lufs" else 1] if lib else float("nan")
        good = abs(got - expect) <= tol and (not lib or abs(got - ref) <= tol)
        ok &= good
        print(f"{name:<64} {expect:>9.3f} {got:>8.3f} {ref:>11.3f}  {'ok' if good else 'MISMATCH'}")

    for rate in (48000, 44100):
        t = np.arange(10 * rate) / rate
        s = np.sin(2 * np.pi * 997 * t)[:, None]
        row(f"997 Hz sine, 0 dBFS peak, mono as one channel, {rate} Hz", s, rate, -3.01, "single")
        row(f"1 kHz sine, -20 dBFS peak (0.1), mono as one channel, {rate} Hz",
            0.1 * np.sin(2 * np.pi * 1000 * t)[:, None], rate, -23.0, "single")
        row(f"1 kHz sine, -20 dBFS peak, mono as dual mono, {rate} Hz",
            0.1 * np.sin(2 * np.pi * 1000 * t)[:, None], rate, -20.0, "dual")
        row(f"1 kHz sine, -20 dBFS peak, stereo (both channels), {rate} Hz",
            np.repeat(0.1 * np.sin(2 * np.pi * 1000 * t)[:, None], 2, axis=1), rate, -20.0)
    rate = 48000
    t = np.arange(20 * rate) / rate
    gate = np.where(t < 10, 0.1, 0.001) * np.sin(2 * np.pi * 1000 * t)   # -20 then -60 dBFS
    # the -63 LUFS blocks fall under the relative gate (-33); 3 of the 100 kept blocks straddle
    # the step and hold 3/4, 1/2 and 1/4 of the loud power: -23.0 + 10 log10(98.5 / 100)
    row("10 s at -20 dBFS + 10 s at -60 dBFS (relative gate)", gate[:, None], rate,
        -23.0 + 10 * math.log10(0.985), "single")
    # a sine at fs/4 sampled at +-45 degrees: every sample is 0.707 of the true peak (+3.01 dB);
    # 50 ms fades, since a hard start rings in any interpolator
    n = np.arange(2 * rate)
    fade = np.minimum(1.0, np.minimum(n, n[::-1]) / (0.05 * rate))
    row("true peak: 12 kHz sine at 45 deg, samples at -3.01 dBFS (dBTP)",
        (fade * np.sin(2 * np.pi * n / 4 + np.pi / 4))[:, None], rate, 0.0, what="tp")
    for path in files:
        try:
            x, r = read_audio(path)
        except AudioError as e:
            print(e)
            ok = False
            continue
        mine, mtp = integrated_loudness(x, r), db(true_peak(x))
        ref, rtp = ebur128_measure(lib, x, r) if lib else (float("nan"), float("nan"))
        good = not lib or (abs(mine - ref) <= 0.05 and abs(mtp - rtp) <= 0.2)
        ok &= good
        print(f"{os.path.relpath(path)}: {mine:.2f} LUFS (libebur128 {ref:.2f}), true peak "
              f"{mtp:.2f} dBTP (libebur128 {rtp:.2f})  {'ok' if good else 'MISMATCH'}")
    print("validation:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description="Clipping, DC offset and BS.1770-4 loudness of delivered mixes.")
    ap.add_argument("files", nargs="*", help="FLAC, MP3 or WAV files")
    ap.add_argument("--target-lufs", type=float, default=TARGET_LUFS,
                    help=f"integrated loudness target (default {TARGET_LUFS:g}, the worker's default)")
    ap.add_argument("--tolerance", type=float, default=TOLERANCE_LU, help="LU either side of the target")
    ap.add_argument("--mono", choices=["dual", "single"], default="dual",
                    help="measure a mono file as dual mono (the worker's convention) or as one channel")
    ap.add_argument("--self-test", action="store_true", help="validate the meter; FILES are cross-checked")
    a = ap.parse_args()
    if a.self_test:
        return self_test(a.files)
    if not a.files:
        ap.error("give at least one file (or --self-test)")
    rows, failed = [], False
    for path in a.files:
        try:
            rows.append(check_file(path, a.target_lufs, a.tolerance, a.mono))
        except AudioError as e:
            print(f"mix_check: {e}", file=sys.stderr)
            failed = True
    if rows:
        print_table(rows, a.target_lufs, a.tolerance, a.mono)
    failed |= any("FAIL" in (r["clip"], r["dc"], r["loudness"]) for r in rows)
    print("result:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
