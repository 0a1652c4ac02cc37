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

HERE = os.path.dirname(os.path.abspath(__file__))


class Clip:
    def __init__(self, path, cache_exc=False):
        z = np.load(path)
        self.name = os.path.basename(path)
        self.audio = z["audio"].astype(np.float32)
        self.notes = z["notes"].astype(np.int64).reshape(-1, 4)
        self.cls = int(z["cls"])
        self.n_frames = len(self.audio) // F.FRAME
        self.q = F.mulaw_encode(F.preemphasis(self.audio))
        self.tab = F.slot_table(self.notes, self.n_frames)
        self.cond = F.frame_cond(self.notes, self.cls, self.tab)
        # the whole clip's excitation, float16 (2 bytes x 28 per sample): for a GPU, where the
        # per-batch numpy excitation would otherwise bound the step rate
        self.exc = F.excitation(self.notes, self.cls, self.tab, 0, self.n_frames * F.FRAME) \
            .astype(np.float16) if cache_exc else None

    def segment(self, f0, nf):
        """Frames [f0, f0+nf): (q_prev (T,), target q (T,), exc (T, X), cond (nf, C))."""
        t0, t1 = f0 * F.FRAME, (f0 + nf) * F.FRAME
        q_prev = np.empty(t1 - t0, np.int64)
        q_prev[1:] = self.q[t0:t1 - 1]
        q_prev[0] = self.q[t0 - 1] if t0 > 0 else F.mulaw_encode(np.zeros(1))[0]
        exc = self.exc[t0:t1].astype(np.float32) if self.exc is not None else \
            F.excitation(self.notes, self.cls, self.tab, t0, t1)
        return q_prev, self.q[t0:t1], exc, self.cond[f0:f0 + nf]


def load_split(data, split, cache_exc=False):
    paths = sorted(glob.glob(os.path.join(data, split, "*.npz")))
    if not paths:
        sys.exit(f"{data}/{split}: no clips; run models/data/make_dataset.py first")
    return [Clip(p, cache_exc) for p in paths]


def batch(segs, device):
    q_prev, tgt, exc, cond = (np.stack(x) for x in zip(*segs))
    return (torch.from_numpy(q_prev).to(device), torch.from_numpy(tgt).to(device),
            torch.from_numpy(exc).to(device), torch.from_numpy(cond).to(device))


def sample_batch(clips, by_cls, bsz, nf, rng):
    """Class-balanced random segments; mostly-silent segments are kept with probability 0.3."""
    segs = []
    while len(segs) < bsz:
        cls = rng.choice(sorted(by_cls))
        c = clips[rng.choice(by_cls[cls])]
        f0 = int(rng.integers(0, c.n_frames - nf))
        a = c.audio[f0 * F.FRAME:(f0 + nf) * F.FRAME]
        if np.sqrt(np.mean(a * a)) < 1e-3 and rng.random() > 0.3:
            continue
        segs.append(c.segment(f0, nf))
    return segs


def val_segments(clips, nf, per_clip=8):
    """Fixed held-out segments: per_clip evenly spaced per validation clip."""
    out = []
    for c in clips:
        for k in range(per_clip):
            f0 = int((k + 0.5) * (c.n_frames - nf) / per_clip)
            out.append((c.cls, c.segment(f0, nf)))
    return out


@torch.no_grad()
def evaluate(net, vsegs, device, chunk=32):
    net.eval()
    tot, per = 0.0, {}
    for i in range(0, len(vsegs), chunk):
        part = vsegs[i:i + chunk]
        q_prev, tgt, exc, cond = batch([s for _, s in part], device)
        logits, _ = net(q_prev, exc, cond)
        ce = TF.cross_entropy(logits.transpose(1, 2), tgt, reduction="none").mean(dim=1)
        for (cls, _), v in zip(part, ce.tolist()):
            per.setdefault(F.CLASSES[cls], []).append(v)
            tot += v
    net.train()
    return tot / len(vsegs), {k: float(np.mean(v)) for k, v in per.items()}


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
    ax.axhline(math.log(256), color="grey", ls=":", label="uniform over 256 levels")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / sample)")
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
    ap.add_argument("--hidden", type=int, default=128)
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
    vsegs = val_segments(val, a.frames)
    say(f"data: {len(train)} train clips ({sum(len(c.audio) for c in train) / F.SR:.0f} s), "
        f"{len(val)} val clips, {len(vsegs)} val segments; loaded in {time.time() - t_load:.1f} s")

    ck = os.path.join(a.run, "ckpt.pt")
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    hp = dict(M.DEFAULT_HP, hidden=a.hidden)
    net = M.WaveRNN(**hp).to(a.device)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    step, hist = 0, dict(train=[], val=[], wall_s=0.0, samples=0)
    if a.resume:
        st = torch.load(ck, map_location=a.device)
        net = M.WaveRNN(**st["hp"]).to(a.device)
        net.load_state_dict(st["model"])
        opt = torch.optim.Adam(net.parameters(), lr=a.lr)
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
        q_prev, tgt, exc, cond = batch(sample_batch(train, by_cls, a.batch, a.frames, rng), a.device)
        if a.prev_noise > 0:
            # the network must not lean on an exact previous sample it will not have when it
            # runs free; noise pushes it towards the excitation and frame inputs
            sigma = torch.rand(q_prev.shape[0], 1) * a.prev_noise
            noise = (torch.randn(q_prev.shape) * sigma).round().long().to(a.device)
            q_prev = (q_prev + noise).clamp(0, F.MU)
        logits, _ = net(q_prev, exc, cond)
        loss = TF.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        hist["samples"] += tgt.numel()
        run_loss += loss.item()
        run_n += 1
        if step % 20 == 0:
            hist["train"].append((step, run_loss / run_n))
            el = time.time() - t_start
            hist["wall_s"] = wall0 + el
            say(f"step {step} loss {run_loss / run_n:.4f} "
                f"{hist['samples'] / max(hist['wall_s'], 1e-9):.0f} samples/s (run mean)")
            run_loss, run_n = 0.0, 0
        if step % a.val_every == 0:
            hist["wall_s"] = wall0 + time.time() - t_start
            v, per = evaluate(net, vsegs, a.device)
            hist["val"].append((step, v, per))
            say(f"step {step} val {v:.4f} " + " ".join(f"{k}={x:.3f}" for k, x in per.items()))
            save()
            plot(hist, os.path.join(a.run, "loss.png"))
    hist["wall_s"] = wall0 + time.time() - t_start
    v, per = evaluate(net, vsegs, a.device)
    hist["val"].append((step, v, per))
    save()
    plot(hist, os.path.join(a.run, "loss.png"))
    say(f"stopped at step {step}: val {v:.4f}; {hist['samples']} samples in {hist['wall_s']:.0f} s "
        f"({hist['samples'] / hist['wall_s']:.0f} samples/s)")


if __name__ == "__main__":
    main()
