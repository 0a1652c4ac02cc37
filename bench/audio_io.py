# audio_io.py - reads audio for the quality benches (mix_check.py, spectrogram.py,
# model_quality.py) with nothing but numpy: the worker's deliverables (FLAC, MP3, WAV) through
# libsndfile via ctypes (the library the worker itself links), the data set's .npz clips and
# model_bench's raw .f32 renders. Without libsndfile: WAV parsed here, FLAC through `flac -d -c`.
import ctypes
import ctypes.util
import os
import shutil
import struct
import subprocess

import numpy as np

F32_RATE = 24000   # model_bench render writes raw float32 mono at the renderer's rate


class AudioError(Exception):
    pass


class _SfInfo(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int), ("channels", ctypes.c_int),
                ("format", ctypes.c_int), ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


_SFM_READ = 0x10
_sndfile = None


def _libsndfile():
    """The libsndfile handle, loaded once; None where the library is not installed."""
    global _sndfile
    if _sndfile is None:
        name = ctypes.util.find_library("sndfile")
        try:
            lib = ctypes.CDLL(name or "libsndfile.so.1")
        except OSError:
            _sndfile = False
            return None
        lib.sf_open.restype = ctypes.c_void_p
        lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_SfInfo)]
        lib.sf_readf_double.restype = ctypes.c_int64
        lib.sf_readf_double.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        lib.sf_strerror.restype = ctypes.c_char_p
        lib.sf_strerror.argtypes = [ctypes.c_void_p]
        lib.sf_close.argtypes = [ctypes.c_void_p]
        _sndfile = lib
    return _sndfile or None


def _read_sndfile(lib, path):
    info = _SfInfo()
    sf = lib.sf_open(path.encode(), _SFM_READ, ctypes.byref(info))
    if not sf:
        raise AudioError(f"{path}: libsndfile cannot open it: {lib.sf_strerror(None).decode()}")
    chunks, block = [], 1 << 16
    try:
        while True:   # read to the end: an MP3's frame count is an estimate
            buf = np.empty((block, info.channels), np.float64)
            got = lib.sf_readf_double(sf, buf.ctypes.data, block)
            if got <= 0:
                break
            chunks.append(buf[:got])
    finally:
        lib.sf_close(sf)
    x = np.concatenate(chunks) if chunks else np.zeros((0, info.channels))
    return x, info.samplerate


def _parse_wav(data, path):
    """RIFF/WAVE bytes -> (frames, channels) float64, rate. PCM 8/16/24/32 bit and float 32/64,
    plain or WAVE_FORMAT_EXTENSIBLE; a data chunk of unknown size (streamed) runs to the end."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{path}: not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", data[body:body + 16])
            if tag == 0xFFFE:   # extensible: the real tag opens the sub-format GUID
                tag = struct.unpack("<H", data[body + 24:body + 26])[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise AudioError(f"{path}: data chunk before fmt chunk")
            tag, ch, rate, bits = fmt
            raw = data[body:] if size in (0, 0xFFFFFFFF) or body + size > len(data) else data[body:body + size]
            width = bits // 8
            raw = raw[:len(raw) // (width * ch) * width * ch]
            if tag == 3 and bits in (32, 64):
                x = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float64)
            elif tag == 1 and bits == 8:
                x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128) / 128
            elif tag == 1 and bits in (16, 32):
                x = np.frombuffer(raw, f"<i{width}").astype(np.float64) / 2.0 ** (bits - 1)
            elif tag == 1 and bits == 24:
                b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
                v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
                x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / 2.0 ** 23
            else:
                raise AudioError(f"{path}: WAV format tag {tag} with {bits} bits is not supported")
            return x.reshape(-1, ch), rate
        pos = body + size + (size & 1)
    raise AudioError(f"{path}: no data chunk")


def read_audio(path):
    """Reads PATH -> (x, rate): x float64 of shape (frames, channels), full scale = 1.0.
    .npz: a clip of models/data/make_dataset.py (key 'audio', 24 kHz); .f32: raw float32 mono
    at 24 kHz (model_bench render). Raises AudioError saying what is missing."""
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such file")
    if ext == ".npz":
        return np.load(path)["audio"].astype(np.float64).reshape(-1, 1), F32_RATE
    if ext == ".f32":
        return np.fromfile(path, "<f4").astype(np.float64).reshape(-1, 1), F32_RATE
    lib = _libsndfile()
    if lib is not None:
        return _read_sndfile(lib, path)
    if ext == ".wav":
        with open(path, "rb") as f:
            return _parse_wav(f.read(), path)
    if ext == ".flac" and shutil.which("flac"):
        r = subprocess.run(["flac", "-d", "-c", "-s", path], capture_output=True)
        if r.returncode != 0:
            raise AudioError(f"{path}: flac -d failed: {r.stderr.decode(errors='replace').strip()}")
        return _parse_wav(r.stdout, path)
    raise AudioError(f"{path}: cannot decode {ext or 'this file'} without libsndfile "
                     f"(apt-get install libsndfile1; FLAC also works with the flac tool)")
