#!/usr/bin/python3
# golden.py - writes the golden fixture of tests/test_model.c from the PyTorch reference: a small
# random-weights model (tests/data/model/tiny.mgnn) and golden.mgnn holding a score, its features,
# the teacher-forced GRU states and logits, and a sequence sampled with the shared Philox stream.
#   /usr/bin/python3 models/train/golden.py     (deterministic; rewrites both files)
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export as X    # noqa: E402
import features as F  # noqa: E402
import model as M     # noqa: E402
import philox as P    # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "model")
T = 960                      # fixture length in samples (8 frames)
STRIDE = 8                   # h and logits are stored every STRIDE samples
SEED = 0x1234567890ABCDEF    # exercises both key words
STREAM = (7 << 8) | 3        # render 7, stem 3
CLS = 0                      # piano
TEMPERATURE = 1.0
# more notes than voices (slot eviction), a note starting mid-frame, one ending in the window
NOTES = np.array([[0, 500, 60, 100], [130, 900, 67, 64], [250, 300, 72, 127],
                  [400, 960, 48, 30], [610, 700, 76, 90], [610, 2000, 79, 90]], np.int64)


def main():
    torch.manual_seed(1234)
    net = M.WaveRNN(hidden=32, embed=16, frame_hidden=16, out_hidden=32, voice_hidden=16,
                    voice_embed=4)
    with torch.no_grad():       # peakier distributions than the default init, so sampling matters
        net.out2.weight.mul_(6.0)
        net.out2.bias.uniform_(-1.0, 1.0)
        net.voice3.weight.normal_(0.0, 0.5)    # a predictor of audible size (log amplitudes)
        net.voice3.bias.uniform_(-4.0, -2.0)
    net.eval()
    rng = np.random.default_rng(99)
    tuning = rng.uniform(-30, 30, (F.N_CLASSES, 128)).astype(np.float32)
    os.makedirs(OUT, exist_ok=True)
    ct = np.array([0.8, 1, 1, 1, 1, 1, 1], np.float32)       # class 0 (the fixture's) at 0.8
    X.export_model(net, os.path.join(OUT, "tiny.mgnn"), "mg-wavernn-golden-tiny", "0.0.1", "MIT",
                   tuning, "random weights (torch.manual_seed(1234)); test fixture only", ct)

    n_frames = T // F.FRAME
    tab = F.slot_table(NOTES, n_frames)
    cond = F.frame_cond(NOTES, CLS, tab)
    exc = F.excitation(NOTES, CLS, tab, 0, T, tuning)
    basis = F.pred_basis(NOTES, CLS, tab, 0, T, tuning)
    vin, emb = F.voice_inputs(NOTES, CLS, tab, 0, n_frames)
    u = P.draw_u32(SEED, STREAM, np.arange(T))

    # free-running generation, one step at a time, exactly as the C runtime steps
    q_prev = int(F.mulaw_encode(np.zeros(1))[0])
    q_in = np.zeros(T, np.int32)
    sampled = np.zeros(T, np.int32)
    svals = np.zeros(T, np.float32)
    hs, logits_s = [], []
    h = None
    with torch.no_grad():
        pr, _, coef = net.predict(torch.from_numpy(vin)[None], torch.from_numpy(emb.astype(np.int64))[None],
                                  torch.from_numpy(basis)[None])
        pred = pr[0].numpy()
        pfeat = F.mulaw_compand(pred)
        fv = net.frame_net(torch.from_numpy(cond)[None])            # (1, F, FH)
        for t in range(T):
            q_in[t] = q_prev
            x = torch.cat([net.embed(torch.tensor([[q_prev]])), torch.from_numpy(exc[t])[None, None],
                           torch.tensor([[[float(pfeat[t])]]]), fv[:, t // F.FRAME][:, None]], dim=-1)
            y, h = net.gru(x, h)
            lg = net.head(y)[0, 0].numpy()
            if t % STRIDE == 0:
                hs.append(h[0, 0].numpy().copy())
                logits_s.append(lg.copy())
            q = P.sample(lg, int(u[t]), TEMPERATURE * float(ct[CLS]))
            sampled[t] = q
            svals[t] = np.float32(pred[t]) + F.mulaw_decode(np.array([q]))[0]
            q_prev = int(F.mulaw_encode(np.array([svals[t]], np.float64))[0])
        # the same sequence teacher-forced in one call must give the same logits
        tf, _ = net(torch.from_numpy(q_in.astype(np.int64))[None], torch.from_numpy(exc)[None],
                    torch.from_numpy(pfeat)[None], torch.from_numpy(cond)[None])
        err = float((tf[0, ::STRIDE] - torch.from_numpy(np.stack(logits_s))).abs().max())
        assert err < 1e-4, err
    s = svals.astype(np.float64)
    audio = np.zeros(T)
    y = 0.0
    for t in range(T):
        y = s[t] + F.PREEMPH * y
        audio[t] = y
    hp = [("class", CLS), ("stride", STRIDE), ("temperature", TEMPERATURE)]
    meta = {"seed": str(SEED), "stream": str(STREAM), "model": "tiny.mgnn",
            "note": "written by models/train/golden.py; teacher-forced vs stepped max |diff| %.2e" % err}
    tens = [("notes", NOTES.astype(np.int32)), ("cond", cond), ("exc", exc), ("q_in", q_in),
            ("h", np.stack(hs).astype(np.float32)), ("logits", np.stack(logits_s).astype(np.float32)),
            ("sampled", sampled), ("audio", audio.astype(np.float32)),
            ("vin", vin), ("emb", emb.astype(np.int32)), ("coef", coef[0].numpy().astype(np.float32)),
            ("basis", basis[::STRIDE, :, :F.PRED_HARMONICS].copy()), ("pred", pred.astype(np.float32))]
    n = X.write_mgnn(os.path.join(OUT, "golden.mgnn"), hp, meta, tens)
    print(f"golden.mgnn: {n} bytes; distinct sampled levels {len(set(sampled.tolist()))}; "
          f"teacher-forced vs stepped {err:.2e}")


if __name__ == "__main__":
    main()
