#!/usr/bin/python3
# ablate.py - how much a trained WaveRNN uses each input: the validation cross-entropy with the
# per-sample excitation zeroed and with the frame conditioning zeroed, against the intact value.
# A network that ignores the note phases shows a near-zero excitation figure (models/README.md).
#   /usr/bin/python3 models/train/ablate.py models/train/runs/r1/ckpt.pt
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402
import train as T  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: ablate.py CKPT [DATA]")
    data = sys.argv[2] if len(sys.argv) > 2 else os.path.join(T.HERE, "..", "data", "out")
    torch.set_num_threads(1)
    st = torch.load(sys.argv[1], map_location="cpu")
    net = M.WaveRNN(**st["hp"])
    net.load_state_dict(st["model"])
    vs = T.val_segments(T.load_split(data, "val"), 10)
    base, _ = T.evaluate(net, vs, "cpu")
    no_exc, _ = T.evaluate(net, [(c, (q, t, np.zeros_like(e), co)) for c, (q, t, e, co) in vs], "cpu")
    no_cond, _ = T.evaluate(net, [(c, (q, t, e, np.zeros_like(co))) for c, (q, t, e, co) in vs], "cpu")
    print(f"step {st['step']}: validation {base:.4f} nats/sample; excitation zeroed {no_exc - base:+.4f}; "
          f"frame conditioning zeroed {no_cond - base:+.4f}")


if __name__ == "__main__":
    main()
