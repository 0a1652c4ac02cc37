#!/usr/bin/python3
# model_torch.py - the PyTorch-eager baseline of the speed bench (issue 4, §8: the C runtime must
# be >= 50x faster): free-running generation with models/train/model.py one sample at a time,
# exactly as golden.py steps it, on the CPU with one thread. Prints samples/s at batch 1 and 8.
#   /usr/bin/python3 bench/model_torch.py [--hidden 128] [--samples 2400]
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
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--samples", type=int, default=2400)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net = M.WaveRNN(hidden=a.hidden).eval()
    print(f"PyTorch {torch.__version__} eager, {a.threads} thread(s), H={a.hidden}")
    for batch in (1, 8):
        exc = torch.randn(batch, a.samples, F.EXC_DIM)
        cond = torch.randn(batch, a.samples // F.FRAME + 1, F.COND_DIM)
        q = torch.full((batch, 1), 128, dtype=torch.long)
        h = None
        with torch.no_grad():
            fv = net.frame_net(cond)
            t0 = time.perf_counter()
            for t in range(a.samples):
                x = torch.cat([net.embed(q), exc[:, t:t + 1], fv[:, t // F.FRAME:t // F.FRAME + 1]], -1)
                y, h = net.gru(x, h)
                p = torch.softmax(net.head(y)[:, 0], -1)
                q = torch.multinomial(p, 1)
            dt = time.perf_counter() - t0
        sps = a.samples / dt
        print(f"batch {batch}: {sps:.0f} samples/s per stream, {sps * batch:.0f} in total "
              f"({sps * batch / F.SR:.3f}x real time at 24 kHz)")


if __name__ == "__main__":
    main()
