#!/usr/bin/python3
# export.py - the only writer of MGNN files (the model-file layout documented at the top of
# kernels/model_file.h, loaded by kernels/model_file.c): a training checkpoint -> a model file
# with hyper-parameters, metadata (name, version, licence, attribution) and named tensors.
#   /usr/bin/python3 models/train/export.py --ckpt models/train/runs/r1/ckpt.pt --out models/default/mg-wavernn.mgnn
import argparse
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features as F  # noqa: E402

MAGIC = b"MGNN"
VERSION = 1
ALIGN = 64
DT_I32, DT_F32 = 1, 2

# The training-data attribution in the provenance protocol's form (docs/protocol.md): one source
# per line, "source; author; licence; url"; the worker copies it into every render's record.
ATTRIBUTION = "\n".join([
    "FluidR3_GM SoundFont (the recorded instrument samples all training audio is rendered from); "
    "Frank Wen, with samples from the contributors named in its README and public-domain sources; "
    "MIT; https://packages.debian.org/bookworm/fluid-soundfont-gm",
    "FluidSynth 2.3 (renders the training scores, a tool: no part of it is in the model); "
    "FluidSynth developers; LGPL-2.1-or-later; https://www.fluidsynth.org",
    "mg training scores (random note sequences, models/data/make_dataset.py); mg authors; MIT; "
    "models/data/make_dataset.py in the mg source tree",
])


def _name(b, s):
    e = s.encode("utf-8")
    b += struct.pack("<I", len(e)) + e


def write_mgnn(path, hparams, meta, tensors):
    """hparams: [(name, int|float)] (python int -> i32, float -> f32); meta: {key: str};
    tensors: [(name, np.ndarray float32|int32)]. Writes atomically."""
    hdr = bytearray(MAGIC + struct.pack("<I", VERSION))
    hdr += struct.pack("<I", len(hparams))
    for k, v in hparams:
        _name(hdr, k)
        hdr += struct.pack("<Ii", DT_I32, v) if isinstance(v, (int, np.integer)) else \
            struct.pack("<If", DT_F32, float(v))
    hdr += struct.pack("<I", len(meta))
    for k, v in meta.items():
        _name(hdr, k)
        _name(hdr, v)
    hdr += struct.pack("<I", len(tensors))
    arrs = []
    # header size first (offsets depend on it): each tensor header is fixed given its name/ndim
    hsize = len(hdr) + sum(4 + len(n.encode()) + 8 + 4 * np.asarray(a).ndim + 16 for n, a in tensors)
    off = (hsize + ALIGN - 1) // ALIGN * ALIGN
    for n, a in tensors:
        a = np.ascontiguousarray(a)
        if a.dtype == np.float32:
            dt = DT_F32
        elif a.dtype == np.int32:
            dt = DT_I32
        else:
            raise TypeError(f"tensor {n}: dtype {a.dtype}; only float32 and int32")
        if not 1 <= a.ndim <= 4:
            raise ValueError(f"tensor {n}: {a.ndim} dimensions; 1..4 allowed")
        _name(hdr, n)
        hdr += struct.pack("<II", dt, a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
        hdr += struct.pack("<QQ", off, a.nbytes)
        arrs.append((off, a))
        off = (off + a.nbytes + ALIGN - 1) // ALIGN * ALIGN
    assert len(hdr) == hsize
    body = bytearray(hdr)
    for o, a in arrs:
        body += b"\0" * (o - len(body))
        body += a.astype(a.dtype.newbyteorder("<")).tobytes()
    body += struct.pack("<I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)
    with open(path + ".tmp", "wb") as f:
        f.write(body)
    os.replace(path + ".tmp", path)
    return len(body)


def model_hparams(hp):
    return [("sample_rate", F.SR), ("frame", F.FRAME), ("voices", F.VOICES),
            ("harmonics", F.HARMONICS), ("tail", F.TAIL), ("n_classes", F.N_CLASSES),
            ("levels", hp["levels"]), ("cond_dim", hp["cond_dim"]), ("exc_dim", hp["exc_dim"]),
            ("hidden", hp["hidden"]), ("embed", hp["embed"]), ("frame_hidden", hp["frame_hidden"]),
            ("out_hidden", hp["out_hidden"]), ("voice_hidden", hp["voice_hidden"]),
            ("voice_embed", hp["voice_embed"]), ("pred_harmonics", hp["pred_harmonics"]),
            ("voice_dim", hp["voice_dim"]), ("pred_max_hz", F.PRED_MAX_HZ),
            ("preemph", F.PREEMPH), ("onset_decay", F.ONSET_DECAY), ("att_s", F.ATT_S),
            ("dec_s", F.DEC_S), ("rel_s", F.REL_S)]


TENSORS = ["voice_emb.weight", "voice1.weight", "voice1.bias", "voice2.weight", "voice2.bias",
           "voice3.weight", "voice3.bias", "frame1.weight", "frame1.bias", "frame2.weight", "frame2.bias", "embed.weight",
           "gru.weight_ih_l0", "gru.bias_ih_l0", "gru.weight_hh_l0", "gru.bias_hh_l0",
           "out1.weight", "out1.bias", "out2.weight", "out2.bias"]


def export_model(net, path, name, version, license_, tuning, training_note="", class_temperature=None):
    """tuning: (N_CLASSES, 128) float32 cents (models/train/tuning.py), stored as tensor `tuning`;
    class_temperature: (N_CLASSES,) sampling temperature factors (default 1)."""
    sd = {k: v.detach().cpu().float().numpy() for k, v in net.state_dict().items()}
    sd["tuning"] = np.asarray(tuning, np.float32).reshape(F.N_CLASSES, 128)
    ct = np.ones(F.N_CLASSES, np.float32) if class_temperature is None else class_temperature
    sd["class_temperature"] = np.asarray(ct, np.float32).reshape(F.N_CLASSES)
    meta = {"name": name, "version": version, "license": license_, "attribution": ATTRIBUTION,
            "classes": ",".join(F.CLASSES),
            "program_map": ",".join(str(c) for c in F.program_map()),
            "training": training_note}
    return write_mgnn(path, model_hparams(net.hp), meta, [(k, sd[k]) for k in TENSORS + ["tuning", "class_temperature"]])


def main():
    import torch
    import model as M
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="mg-wavernn-default")
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--license", default="MIT")
    ap.add_argument("--class-temperature", default="",
                    help="sampling temperature factors per class, e.g. piano=0.6,drums=1 (others 1)")
    ap.add_argument("--tuning", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                     "data", "out", "tuning.npy"))
    a = ap.parse_args()
    st = torch.load(a.ckpt, map_location="cpu")
    net = M.WaveRNN(**st["hp"])
    net.load_state_dict(st["model"])

    def summary(st):
        h, stage = st["hist"], st.get("args", {}).get("stage", "gru")
        val = h["val"][-1][1] if h["val"] else float("nan")
        what = ("relative amplitude error %.4f" % val) if stage == "voice" else \
            ("validation cross-entropy %.4f nats/sample" % val)
        return f"{stage} stage: {st['step']} steps, {h['samples']} rows, {h['wall_s']:.0f} s wall, {what}"
    parts = [summary(st)]
    init = st.get("args", {}).get("init")
    if init and not os.path.isabs(init) and not os.path.exists(init):
        init = os.path.join(os.path.dirname(os.path.abspath(__file__)), init)   # as train.py ran
    if init and os.path.exists(init):
        parts.insert(0, summary(torch.load(init, map_location="cpu")))
    note = "; ".join(parts)
    ct = np.ones(F.N_CLASSES, np.float32)
    for item in filter(None, a.class_temperature.split(",")):
        k, v = item.split("=")
        ct[F.CLASSES.index(k.strip())] = float(v)
    note += "; class temperatures " + ",".join(f"{c}={t:g}" for c, t in zip(F.CLASSES, ct))
    n = export_model(net, a.out, a.name, a.version, a.license, np.load(a.tuning), note, ct)
    print(f"{a.out}: {n} bytes; {note}")


if __name__ == "__main__":
    main()
