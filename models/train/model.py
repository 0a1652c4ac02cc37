# model.py - the mg WaveRNN network (issue 4) in PyTorch: a frame-rate conditioning MLP, a GRU
# stepping once per output sample, and a two-layer softmax head over 8-bit mu-law levels of the
# pre-emphasised signal. kernels/wavernn_ref.c computes exactly this (models/README.md).
import torch
import torch.nn as nn

import features as F

DEFAULT_HP = dict(hidden=128, embed=32, frame_hidden=64, out_hidden=128,
                  cond_dim=F.COND_DIM, exc_dim=F.EXC_DIM, levels=F.MU + 1)


class WaveRNN(nn.Module):
    def __init__(self, hidden=128, embed=32, frame_hidden=64, out_hidden=128,
                 cond_dim=F.COND_DIM, exc_dim=F.EXC_DIM, levels=256):
        super().__init__()
        self.hp = dict(hidden=hidden, embed=embed, frame_hidden=frame_hidden,
                       out_hidden=out_hidden, cond_dim=cond_dim, exc_dim=exc_dim, levels=levels)
        self.frame1 = nn.Linear(cond_dim, frame_hidden)         # (FH, C)
        self.frame2 = nn.Linear(frame_hidden, frame_hidden)     # (FH, FH)
        self.embed = nn.Embedding(levels, embed)                # (L, E)
        # GRU input = [embed(q[t-1]) (E), exc[t] (X), frame vector (FH)]; gates r, z, n
        self.gru = nn.GRU(embed + exc_dim + frame_hidden, hidden, batch_first=True)
        self.out1 = nn.Linear(hidden, out_hidden)               # (O, H)
        self.out2 = nn.Linear(out_hidden, levels)               # (L, O)

    def frame_net(self, cond):
        """cond (B, F, C) -> (B, F, FH)"""
        return torch.tanh(self.frame2(torch.tanh(self.frame1(cond))))

    def forward(self, q_prev, exc, cond, h0=None):
        """Teacher-forced: q_prev (B, T) int64 mu-law of the previous sample, exc (B, T, X),
        cond (B, T // FRAME, C) -> logits (B, T, L), h (1, B, H)."""
        fv = self.frame_net(cond).repeat_interleave(F.FRAME, dim=1)
        x = torch.cat([self.embed(q_prev), exc, fv], dim=-1)
        y, h = self.gru(x, h0)
        return self.head(y), h

    def head(self, y):
        return self.out2(torch.relu(self.out1(y)))
