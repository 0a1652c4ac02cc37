#!/usr/bin/python3
# model_torch.py - the PyTorch-eager baseline of the speed bench (the C runtime must
# be >= 50x faster; the same on the GPU beside build/bench/cuda_bench): free-running
# generation with models/train/model.py one sample at a time, exactly as golden.py steps it, on
# the CPU with one thread (or on a CUDA device with --device cuda): per frame the frame MLP and
# the voice network, per sample the harmonic predictor's sum, the GRU step, the head, the softmax
# draw and the prediction + residual. Generous to PyTorch: the per-sample oscillator basis and
# excitation are precomputed outside the timed loop (the C and CUDA runtimes compute them
# inside). Random weights (speed does not depend on them). Prints samples/s per batch size.
#   /usr/bin/python3 bench/model_torch.py [--hidden 64] [--samples 2400] [--device cuda]
#                                         [--batches 1,8,64,256,1024]
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
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU comparison")
    ap.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    net = M.WaveRNN(**dict(M.DEFAULT_HP, hidden=a.hidden)).eval().to(dev)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{a.threads} CPU thread(s)"
    print(f"PyTorch {torch.__version__} eager on {where}, H={a.hidden}")
    V, K, N = F.VOICES, F.PRED_HARMONICS, F.FRAME   # render-time basis: sines of K harmonics
    for batch in [int(b) for b in a.batches.split(",")]:
        nf = a.samples // N + 1
        exc = torch.randn(batch, nf * N, F.EXC_DIM, device=dev)
        basis = torch.randn(batch, nf * N, V, K, device=dev)
        cond = torch.randn(batch, nf, F.COND_DIM, device=dev)
        vin = torch.randn(batch, nf, V, 2, F.VOICE_DIM, device=dev)
        emb = torch.randint(0, 128, (batch, nf, V), device=dev)
        alpha = torch.arange(N, dtype=torch.float32, device=dev) / N
        levels = torch.from_numpy(F.mulaw_decode(torch.arange(256).numpy())).to(dev)
        q = torch.full((batch, 1), 128, dtype=torch.long, device=dev)
        h, h_prev = None, torch.zeros(batch, device=dev)
        with torch.no_grad():
            for warm in (True, False):    # the first pass (one frame) loads kernels and handles
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                steps = N if warm else a.samples
                for t in range(steps):
                    f, i = divmod(t, N)
                    if i == 0:
                        fv = net.frame_net(cond[:, f:f + 1])
                        coef = net.voice_coef(vin[:, f:f + 1], emb[:, f:f + 1])[:, 0]   # (B, V, 2, K)
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
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
        sps = a.samples / dt
        print(f"batch {batch}: {sps:.0f} samples/s per stream, {sps * batch:.0f} in total "
              f"({sps * batch / F.SR:.3f}x real time at 24 kHz)")


if __name__ == "__main__":
    main()
