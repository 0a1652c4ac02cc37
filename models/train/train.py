#!/usr/bin/python3
# train.py - teacher-forced training of the mg WaveRNN (model.py) on the fluidsynth data set
# (models/data/make_dataset.py). Resumable: RUN/ckpt.pt holds model, optimiser, step, RNG state
# and the loss history; RUN/loss.png and RUN/train.log are rewritten at each validation.
#   nice -n 19 /usr/bin/python3 models/train/train.py --run models/train/runs/r1 --minutes 55
#   ... --resume      continues the same run (its own --minutes budget)
# Runs on CUDA when available (--device), on the CPU otherwise.
import argparse
import glob
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as TF

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features as F  # noqa: E402
import model as M     # noqa: E402
import analysis as A  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


TUNING = None   # (N_CLASSES, 128) cents, models/train/tuning.py; loaded by load_split


class Clip:
    def __init__(self, path, cache_exc=False):
        z = np.load(path)
        ap = os.path.join(os.path.dirname(os.path.dirname(path)), "analysis",
                          os.path.basename(os.path.dirname(path)), os.path.basename(path))
        if not os.path.exists(ap):
            sys.exit(f"{ap}: missing; run models/train/analysis.py")
        self.bcoef = np.load(ap)["bcoef"]      # (n_frames, V, 2, 2K) analysed coefficients
        self.name = os.path.basename(path)
        self.audio = z["audio"].astype(np.float32)
        self.notes = z["notes"].astype(np.int64).reshape(-1, 4)
        self.cls = int(z["cls"])
        self.n_frames = len(self.audio) // F.FRAME
        self.s = F.preemphasis(self.audio)
        self.q = F.mulaw_encode(self.s)
        self.tab = F.slot_table(self.notes, self.n_frames)
        self.cond = F.frame_cond(self.notes, self.cls, self.tab)
        # the whole clip's excitation, float16 (2 bytes x 28 per sample): for a GPU, where the
        # per-batch numpy excitation would otherwise bound the step rate
        self.exc = F.excitation(self.notes, self.cls, self.tab, 0, self.n_frames * F.FRAME, TUNING) \
            .astype(np.float16) if cache_exc else None

    def segment(self, f0, nf):
        """Frames [f0, f0+nf), f0 >= 1: a dict of q_prev (T,) levels of the previous samples,
        s (T,) pre-emphasised target samples, exc (T, X), cond (nf, C), and the analysed
        prediction's coefficients and oscillators for frames [f0-1, f0+nf): bcoef, basis."""
        assert f0 >= 1
        t0, t1 = f0 * F.FRAME, (f0 + nf) * F.FRAME
        exc = self.exc[t0:t1].astype(np.float32) if self.exc is not None else \
            F.excitation(self.notes, self.cls, self.tab, t0, t1, TUNING)
        return dict(q_prev=self.q[t0 - 1:t1 - 1], s=self.s[t0:t1], exc=exc,
                    cond=self.cond[f0:f0 + nf], bcoef=self.bcoef[f0 - 1:f0 + nf],
                    basis=F.pred_basis(self.notes, self.cls, self.tab, t0 - F.FRAME, t1, TUNING))

    def voice_frames(self):
        """The voice network's training rows of this clip: vin (n_frames, V, 2, VD), emb, and
        the analysed magnitudes (n_frames, V, 2, K)."""
        vin, emb = F.voice_inputs(self.notes, self.cls, self.tab, 0, self.n_frames)
        return vin, emb.astype(np.int64), A.magnitudes(self.bcoef).astype(np.float32)


def load_split(data, split, cache_exc=False):
    global TUNING
    tp = os.path.join(data, "tuning.npy")
    if not os.path.exists(tp):
        sys.exit(f"{tp}: missing; run models/data/make_dataset.py --splits tune && models/train/tuning.py")
    TUNING = np.load(tp)
    paths = sorted(glob.glob(os.path.join(data, split, "*.npz")))
    if not paths:
        sys.exit(f"{data}/{split}: no clips; run models/data/make_dataset.py first")
    return [Clip(p, cache_exc) for p in paths]


def batch(segs, device):
    return {k: torch.from_numpy(np.stack([s[k] for s in segs])).to(device) for k in segs[0]}


def sample_batch(clips, by_cls, bsz, nf, rng):
    """Class-balanced random segments; mostly-silent segments are kept with probability 0.3."""
    segs = []
    while len(segs) < bsz:
        cls = rng.choice(sorted(by_cls))
        c = clips[rng.choice(by_cls[cls])]
        f0 = int(rng.integers(1, c.n_frames - nf))
        a = c.audio[f0 * F.FRAME:(f0 + nf) * F.FRAME]
        if np.sqrt(np.mean(a * a)) < 1e-3 and rng.random() > 0.3:
            continue
        segs.append(c.segment(f0, nf))
    return segs


def voice_table(clips):
    """All frames of clips with at least one sounding note, for the voice stage: a dict of
    vin, emb, mag tensors and the class of each row."""
    parts = [(c.cls,) + c.voice_frames() for c in clips if c.cls != F.CLASSES.index("drums")]
    keep = [(e >= 0).any(axis=1) for _, _, e, _ in parts]
    return dict(vin=torch.from_numpy(np.concatenate([v[k] for (_, v, _, _), k in zip(parts, keep)])),
                emb=torch.from_numpy(np.concatenate([e[k] for (_, _, e, _), k in zip(parts, keep)])),
                mag=torch.from_numpy(np.concatenate([m[k] for (_, _, _, m), k in zip(parts, keep)])),
                cls=np.concatenate([np.full(int(k.sum()), c) for (c, _, _, _), k in zip(parts, keep)]))


def voice_loss(net, vt, rows):
    """Relative squared error of the predicted harmonic amplitudes: sum (a - a_ref)^2 over the
    sounding slots of rows / sum a_ref^2 (energy-weighted: loud frames count most, as they do
    for the ear and the pitch). Returns (loss, err sums, reference energy sums) per row."""
    amp = net.voice_coef(vt["vin"][rows][:, None], vt["emb"][rows][:, None])[:, 0]   # (R, V, 2, K)
    ref = vt["mag"][rows]
    live = (vt["emb"][rows] >= 0).to(amp.dtype)[..., None]                           # (R, V, 1)
    err = ((amp - ref) ** 2).sum(-1)
    en = (ref ** 2).sum(-1)
    err, en = (err * live).sum(dim=(1, 2)), (en * live).sum(dim=(1, 2))
    return err.sum() / en.sum(), err, en


def losses(net, b):
    """The GRU stage: per-segment mean cross-entropy (nats/sample) of the residual's level after
    the analysed prediction."""
    h = net.harmonic(b["bcoef"], b["basis"])                 # (B, (nf + 1) * FRAME)
    p = h[:, F.FRAME:] - F.PREEMPH * h[:, F.FRAME - 1:-1]
    tgt = M.mulaw_encode(b["s"] - p)
    logits, _ = net(b["q_prev"], b["exc"], M.compand(p), b["cond"])
    return TF.cross_entropy(logits.transpose(1, 2), tgt, reduction="none").mean(dim=1)


def val_segments(clips, nf, per_clip=8):
    """Fixed held-out segments: per_clip evenly spaced per validation clip."""
    out = []
    for c in clips:
        for k in range(per_clip):
            f0 = 1 + int((k + 0.5) * (c.n_frames - nf - 1) / per_clip)
            out.append((c.cls, c.segment(f0, nf)))
    return out


@torch.no_grad()
def evaluate(net, vsegs, device, stage, vt_val=None, chunk=32):
    """Validation: stage voice -> mean relative amplitude error (overall, and the gain
    10 log10(energy / error) in dB per class); stage gru -> mean cross-entropy (overall, per
    class)."""
    net.eval()
    per = {}
    if stage == "voice":
        loss, err, en = voice_loss(net, vt_val, torch.arange(len(vt_val["cls"])))
        for c in sorted(set(vt_val["cls"].tolist())):
            k = torch.from_numpy(vt_val["cls"] == c)
            per[F.CLASSES[c]] = 10 * math.log10(float(en[k].sum()) / max(float(err[k].sum()), 1e-20))
        net.train()
        return float(loss), per
    for i in range(0, len(vsegs), chunk):
        part = vsegs[i:i + chunk]
        for (cls, _), v in zip(part, losses(net, batch([s for _, s in part], device)).tolist()):
            per.setdefault(F.CLASSES[cls], []).append(v)
    net.train()
    ce = {k: float(np.mean(v)) for k, v in per.items()}
    return float(np.mean([x for v in per.values() for x in v])), ce


def plot(hist, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    if hist["train"]:
        s, v = zip(*hist["train"])
        ax.plot(s, v, label="train (mean over 20 steps)", lw=1)
    if hist["val"]:
        s, v = zip(*[(h[0], h[1]) for h in hist["val"]])
        ax.plot(s, v, "o-", label="validation (held-out scores)")
    ax.set_xlabel("step")
    if hist.get("stage", "gru") == "gru":
        ax.axhline(math.log(256), color="grey", ls=":", label="uniform over 256 levels")
        ax.set_ylabel("residual cross-entropy (nats / sample)")
    else:
        ax.set_ylabel("voice network: relative amplitude error")
    ax.set_title("mg WaveRNN training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=100)
    os.replace(path + ".tmp.png", path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "data", "out"))
    ap.add_argument("--run", default=os.path.join(HERE, "runs", "r1"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--minutes", type=float, default=55.0, help="wall-time budget of this invocation")
    ap.add_argument("--max-steps", type=int, default=10 ** 9)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--frames", type=int, default=10, help="segment length in frames")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=M.DEFAULT_HP["hidden"])
    ap.add_argument("--stage", choices=["voice", "gru"], required=True,
                    help="voice: train the voice network on the analysed harmonic amplitudes; "
                         "gru: train the rest on the residual after the analysed prediction. "
                         "The stages train disjoint weights: run both (either order), the second "
                         "with --init pointing at the first's checkpoint")
    ap.add_argument("--init", default=None, help="checkpoint whose weights start this run")
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--prev-noise", type=float, default=0.0,
                    help="teacher-forcing noise: the previous-sample levels fed to the network get "
                         "Gaussian noise of std U(0, this) levels per segment (0: off)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cache-exc", type=int, default=-1,
                    help="precompute each clip's excitation (1/0; default: on for CUDA, off for CPU)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.run, exist_ok=True)
    log = open(os.path.join(a.run, "train.log"), "a")

    def say(msg):
        line = time.strftime("%H:%M:%S ") + msg
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    t_load = time.time()
    cache = a.cache_exc == 1 or (a.cache_exc < 0 and a.device.startswith("cuda"))
    train = load_split(a.data, "train", cache)
    val = load_split(a.data, "val")
    by_cls = {}
    for i, c in enumerate(train):
        by_cls.setdefault(c.cls, []).append(i)
    vsegs = val_segments(val, a.frames) if a.stage == "gru" else None
    vt = vt_val = None
    if a.stage == "voice":
        vt, vt_val = voice_table(train), voice_table(val)
        vt = {k: (v.to(a.device) if torch.is_tensor(v) else v) for k, v in vt.items()}
        vt_val = {k: (v.to(a.device) if torch.is_tensor(v) else v) for k, v in vt_val.items()}
        vt_by_cls = {c: np.nonzero(vt["cls"] == c)[0] for c in sorted(set(vt["cls"].tolist()))}
    say(f"data: {len(train)} train clips ({sum(len(c.audio) for c in train) / F.SR:.0f} s), "
        f"{len(val)} val clips; loaded in {time.time() - t_load:.1f} s")

    ck = os.path.join(a.run, "ckpt.pt")
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    hp = dict(M.DEFAULT_HP, hidden=a.hidden)
    net = M.WaveRNN(**hp).to(a.device)
    if a.init and not a.resume:
        st = torch.load(a.init, map_location=a.device)
        net = M.WaveRNN(**st["hp"]).to(a.device)
        net.load_state_dict(st["model"])
    vp = set(id(p) for p in net.voice_params())
    params = lambda: [p for p in net.parameters() if (id(p) in vp) == (a.stage == "voice")]  # noqa: E731
    for p in net.parameters():
        p.requires_grad_((id(p) in vp) == (a.stage == "voice"))
    opt = torch.optim.Adam(params(), lr=a.lr)
    step, hist = 0, dict(train=[], val=[], wall_s=0.0, samples=0, stage=a.stage)
    if a.resume:
        st = torch.load(ck, map_location=a.device)
        net = M.WaveRNN(**st["hp"]).to(a.device)
        net.load_state_dict(st["model"])
        vp = set(id(p) for p in net.voice_params())
        for p in net.parameters():
            p.requires_grad_((id(p) in vp) == (a.stage == "voice"))
        opt = torch.optim.Adam(params(), lr=a.lr)
        opt.load_state_dict(st["opt"])
        step, hist = st["step"], st["hist"]
        rng.bit_generator.state = st["np_rng"]
        torch.set_rng_state(st["torch_rng"])
        say(f"resumed {ck} at step {step}")
    elif os.path.exists(ck):
        sys.exit(f"{ck} exists: pass --resume to continue it, or choose another --run")
    say(f"hp {json.dumps(net.hp)}; {sum(p.numel() for p in net.parameters())} parameters; "
        f"batch {a.batch} x {a.frames * F.FRAME} samples; device {a.device}, {a.threads} threads")

    def save():
        st = dict(model=net.state_dict(), opt=opt.state_dict(), step=step, hist=hist, hp=net.hp,
                  np_rng=rng.bit_generator.state, torch_rng=torch.get_rng_state(), args=vars(a))
        torch.save(st, ck + ".tmp")
        os.replace(ck + ".tmp", ck)

    t_start = time.time()
    wall0 = hist["wall_s"]
    run_loss, run_n = 0.0, 0
    while step < a.max_steps and time.time() - t_start < a.minutes * 60:
        if a.stage == "voice":
            # class-balanced frames: batch x frames rows, as many as a GRU batch has frames
            rows = np.concatenate([rng.choice(vt_by_cls[c], a.batch * a.frames // len(vt_by_cls))
                                   for c in vt_by_cls])
            loss = voice_loss(net, vt, torch.from_numpy(rows))[0]
            n_rows = len(rows)
        else:
            b = batch(sample_batch(train, by_cls, a.batch, a.frames, rng), a.device)
            if a.prev_noise > 0:
                # the network must not lean on an exact previous sample it will not have when
                # it runs free; noise pushes it towards the excitation and frame inputs
                sigma = torch.rand(b["q_prev"].shape[0], 1) * a.prev_noise
                noise = (torch.randn(b["q_prev"].shape) * sigma).round().long().to(a.device)
                b["q_prev"] = (b["q_prev"] + noise).clamp(0, F.MU)
            loss = losses(net, b).mean()
            n_rows = b["s"].numel()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params(), 1.0)
        opt.step()
        step += 1
        hist["samples"] += n_rows
        run_loss += loss.item()
        run_n += 1
        if step % 20 == 0:
            hist["train"].append((step, run_loss / run_n))
            el = time.time() - t_start
            hist["wall_s"] = wall0 + el
            unit = "frames" if a.stage == "voice" else "samples"
            say(f"step {step} loss {run_loss / run_n:.4f} "
                f"{hist['samples'] / max(hist['wall_s'], 1e-9):.0f} {unit}/s (run mean)")
            run_loss, run_n = 0.0, 0
        if step % a.val_every == 0:
            hist["wall_s"] = wall0 + time.time() - t_start
            v, per = evaluate(net, vsegs, a.device, a.stage, vt_val)
            hist["val"].append((step, v, per))
            say(f"step {step} val {v:.4f} " + " ".join(f"{k}={x:.3f}" for k, x in per.items()))
            save()
            plot(hist, os.path.join(a.run, "loss.png"))
    hist["wall_s"] = wall0 + time.time() - t_start
    v, per = evaluate(net, vsegs, a.device, a.stage, vt_val)
    hist["val"].append((step, v, per))
    save()
    plot(hist, os.path.join(a.run, "loss.png"))
    say(f"stopped at step {step}: val {v:.4f}; {hist['samples']} samples in {hist['wall_s']:.0f} s "
        f"({hist['samples'] / hist['wall_s']:.0f} samples/s)")


if __name__ == "__main__":
    main()
