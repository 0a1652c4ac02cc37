#!/usr/bin/python3
# model_torch.py - the PyTorch-eager baseline of the speed bench (issue 4, §8: the C runtime must
# be >= 50x faster): free-running generation with models/train/model.py one sample at a time,
# exactly as golden.py steps it, on the CPU with one thread: per frame the frame MLP and the voice
# network, per sample the harmonic predictor's sum, the GRU step, the head, the softmax draw and
# the prediction + residual. Generous to PyTorch: the per-sample oscillator basis and excitation
# are precomputed outside the timed loop (the C runtime computes them inside). Random weights
# (speed does not depend on them). Prints samples/s at batch 1 and 8.
#   /usr/bin/python3 bench/model_torch.py [--hidden 64] [--samples 2400]
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "train"))
import features as F  # noqa: E402
import model as M     # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hidden", type=int, default=M.DEFAULT_HP["hidden"])
    ap.add_argument("--samples", type=int, default=2400)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net = M.WaveRNN(**dict(M.DEFAULT_HP, hidden=a.hidden)).eval()
    print(f"PyTorch {torch.__version__} eager, {a.threads} thread(s), H={a.hidden}")
    V, K2, N = F.VOICES, 2 * F.PRED_HARMONICS, F.FRAME
    for batch in (1, 8):
        nf = a.samples // N + 1
        exc = torch.randn(batch, nf * N, F.EXC_DIM)
        basis = torch.randn(batch, nf * N, V, K2)
        cond = torch.randn(batch, nf, F.COND_DIM)
        vin = torch.randn(batch, nf, V, 2, F.VOICE_DIM)
        emb = torch.randint(0, 128, (batch, nf, V))
        alpha = torch.arange(N, dtype=torch.float32) / N
        levels = torch.from_numpy(F.mulaw_decode(torch.arange(256).numpy()))
        q = torch.full((batch, 1), 128, dtype=torch.long)
        h, h_prev = None, torch.zeros(batch)
        with torch.no_grad():
            t0 = time.perf_counter()
            for t in range(a.samples):
                f, i = divmod(t, N)
                if i == 0:
                    fv = net.frame_net(cond[:, f:f + 1])
                    coef = net.voice_coef(vin[:, f:f + 1], emb[:, f:f + 1])[:, 0]   # (B, V, 2, 2K)
                c = coef[:, :, 0] + alpha[i] * (coef[:, :, 1] - coef[:, :, 0])
                hh = (c * basis[:, t]).sum(dim=(1, 2))
                p = hh - F.PREEMPH * h_prev
                h_prev = hh
                x = torch.cat([net.embed(q), exc[:, t:t + 1], M.compand(p)[:, None, None], fv], -1)
                y, h = net.gru(x, h)
                pr = torch.softmax(net.head(y)[:, 0], -1)
                lvl = torch.multinomial(pr, 1)
                s = p + levels[lvl[:, 0]]
                q = M.mulaw_encode(s)[:, None]
        dt = time.perf_counter() - t0
        sps = a.samples / dt
        print(f"batch {batch}: {sps:.0f} samples/s per stream, {sps * batch:.0f} in total "
              f"({sps * batch / F.SR:.3f}x real time at 24 kHz)")


if __name__ == "__main__":
    main()
