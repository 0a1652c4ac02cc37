# model.py - the mg WaveRNN network in PyTorch: a harmonic predictor (a per-voice MLP
# giving the amplitudes of 16 harmonics of each sounding note at frame boundaries, summed over
# oscillators at the notes' tuned frequencies), a frame-rate conditioning MLP, and a GRU stepping
# once per output sample that models the residual of the pre-emphasised signal after the
# prediction, as a softmax over 8-bit mu-law levels (LPCNet's structure with a score-driven
# predictor; in training the prediction comes from the analysis of the recording, analysis.py,
# as LPCNet's comes from features of the recording). kernels/wavernn_ref.c computes exactly the
# rendering path (models/README.md).
import torch
import torch.nn as nn

import features as F

DEFAULT_HP = dict(hidden=64, embed=32, frame_hidden=64, out_hidden=64, voice_hidden=64,
                  voice_embed=8, pred_harmonics=F.PRED_HARMONICS, cond_dim=F.COND_DIM,
                  exc_dim=F.EXC_DIM, voice_dim=F.VOICE_DIM, levels=F.MU + 1)


class WaveRNN(nn.Module):
    def __init__(self, hidden=64, embed=32, frame_hidden=64, out_hidden=64, voice_hidden=64,
                 voice_embed=8, pred_harmonics=F.PRED_HARMONICS, cond_dim=F.COND_DIM,
                 exc_dim=F.EXC_DIM, voice_dim=F.VOICE_DIM, levels=256):
        super().__init__()
        self.hp = dict(hidden=hidden, embed=embed, frame_hidden=frame_hidden,
                       out_hidden=out_hidden, voice_hidden=voice_hidden, voice_embed=voice_embed,
                       pred_harmonics=pred_harmonics, cond_dim=cond_dim, exc_dim=exc_dim,
                       voice_dim=voice_dim, levels=levels)
        # harmonic predictor: per voice slot, inputs at a frame boundary -> K amplitudes
        self.voice_emb = nn.Embedding(F.N_CLASSES * 128, voice_embed)    # (classes*128, VE)
        self.voice1 = nn.Linear(voice_dim + voice_embed, voice_hidden)    # (VH, VD + VE)
        self.voice2 = nn.Linear(voice_hidden, voice_hidden)               # (VH, VH)
        self.voice3 = nn.Linear(voice_hidden, pred_harmonics)             # (K, VH): log amplitudes
        nn.init.normal_(self.voice3.weight, std=1e-2)
        nn.init.constant_(self.voice3.bias, -6.0)
        # GRU
        self.frame1 = nn.Linear(cond_dim, frame_hidden)         # (FH, C)
        self.frame2 = nn.Linear(frame_hidden, frame_hidden)     # (FH, FH)
        self.embed = nn.Embedding(levels, embed)                # (L, E)
        # GRU input = [embed(q[t-1]) (E), exc[t] (X), compand(p[t]) (1), frame vector (FH)]
        self.gru = nn.GRU(embed + exc_dim + 1 + frame_hidden, hidden, batch_first=True)
        self.out1 = nn.Linear(hidden, out_hidden)               # (O, H)
        self.out2 = nn.Linear(out_hidden, levels)               # (L, O)

    def voice_params(self):
        return [p for n, p in self.named_parameters() if n.startswith("voice")]

    def voice_coef(self, vin, emb):
        """vin (B, nf, V, 2, VD) inputs at the start and end of each frame, emb (B, nf, V) int64
        rows (-1 = empty slot) -> amplitudes (B, nf, V, 2, K) = exp(network output), zero for
        empty slots (the network predicts log amplitudes: a note's loudness scales every
        harmonic, which is a sum in the log domain)."""
        e = self.voice_emb(emb.clamp(min=0)).unsqueeze(3).expand(*vin.shape[:4], -1)
        x = torch.cat([vin, e], dim=-1)
        c = torch.exp(self.voice3(torch.tanh(self.voice2(torch.tanh(self.voice1(x))))).clamp(max=20.0))
        return c * (emb >= 0).to(c.dtype)[..., None, None]

    def harmonic(self, coef, basis):
        """coef (B, nf, V, 2, D), basis (B, nf * FRAME, V, D) -> h (B, nf * FRAME): per sample,
        the coefficients interpolated linearly from the frame's start to its end,
        c0 + a (c1 - c0) with a = i / FRAME, dotted with the basis."""
        B, nf = coef.shape[:2]
        a = (torch.arange(F.FRAME, dtype=coef.dtype, device=coef.device) / F.FRAME).view(1, 1, -1, 1, 1)
        c0, c1 = coef[:, :, None, :, 0], coef[:, :, None, :, 1]
        c = c0 + a * (c1 - c0)                                   # (B, nf, FRAME, V, 2K)
        return (c * basis.view(B, nf, F.FRAME, *basis.shape[2:])).sum(dim=(-1, -2)).reshape(B, -1)

    def predict(self, vin, emb, basis):
        """The renderer's prediction for frames [0, nf) of a stem: vin (B, nf, V, 2, VD), emb,
        basis (B, nf * FRAME, V, 2K) -> p (B, T) = h[t] - PREEMPH h[t - 1] (h[-1] = 0), h (B, T),
        amplitudes (B, nf, V, 2, K); h sums the predicted amplitudes times the sin oscillators."""
        amp = self.voice_coef(vin, emb)
        h = self.harmonic(amp, basis[..., :self.hp["pred_harmonics"]])
        return preemph(h, torch.zeros_like(h[:, 0])), h, amp

    def frame_net(self, cond):
        """cond (B, F, C) -> (B, F, FH)"""
        return torch.tanh(self.frame2(torch.tanh(self.frame1(cond))))

    def forward(self, q_prev, exc, pfeat, cond, h0=None):
        """Teacher-forced: q_prev (B, T) int64 mu-law of the previous sample, exc (B, T, X),
        pfeat (B, T) companded prediction, cond (B, T // FRAME, C) -> logits (B, T, L) of the
        residual's level, h (1, B, H)."""
        fv = self.frame_net(cond).repeat_interleave(F.FRAME, dim=1)
        x = torch.cat([self.embed(q_prev), exc, pfeat.unsqueeze(-1), fv], dim=-1)
        y, h = self.gru(x, h0)
        return self.head(y), h

    def head(self, y):
        return self.out2(torch.relu(self.out1(y)))


def preemph(h, h_before):
    """p[t] = h[t] - PREEMPH h[t - 1] with h[-1] = h_before (B,)."""
    prev = torch.cat([h_before[:, None], h[:, :-1]], dim=1)
    return h - F.PREEMPH * prev


def compand(p):
    """torch version of features.mulaw_compand."""
    return torch.sign(p) * torch.log1p(F.MU * p.abs()) / torch.log1p(torch.tensor(float(F.MU)))


def mulaw_encode(x):
    """torch version of features.mulaw_encode (for training targets)."""
    x = x.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(F.MU * x.abs()) / torch.log1p(torch.tensor(float(F.MU), dtype=x.dtype))
    return torch.floor((y + 1) / 2 * F.MU + 0.5).clamp(0, F.MU).long()
