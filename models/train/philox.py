# philox.py - Philox4x32-10 (Salmon et al., SC'11; Random123), the counter-based RNG that the
# PyTorch reference, the C runtime (kernels/philox.c) and later the GPU use to draw the same
# numbers. Sample index n of stream s under seed k draws word 0 of
#   philox4x32_10(ctr = (n lo, n hi, s lo, s hi), key = (k lo, k hi)).
import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    """ctr: uint64 array (..., 4) of 32-bit words, key: (2,) ints -> uint64 array (..., 4)."""
    c = [np.asarray(ctr, np.uint64)[..., i] & MASK for i in range(4)]
    k0, k1 = np.uint64(key[0] & MASK), np.uint64(key[1] & MASK)
    m0, m1 = np.uint64(M0), np.uint64(M1)
    for r in range(10):
        if r:
            k0 = np.uint64((int(k0) + W0) & MASK)
            k1 = np.uint64((int(k1) + W1) & MASK)
        p0 = c[0] * m0          # < 2^64: exact in uint64
        p1 = c[2] * m1
        hi0, lo0 = p0 >> np.uint64(32), p0 & np.uint64(MASK)
        hi1, lo1 = p1 >> np.uint64(32), p1 & np.uint64(MASK)
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
    return np.stack(c, axis=-1)


def draw_u32(seed, stream, index):
    """uint32 draws for the sample indices in `index` (array) of (seed, stream)."""
    n = np.asarray(index, np.uint64)
    ctr = np.stack([n & np.uint64(MASK), n >> np.uint64(32),
                    np.full_like(n, stream & MASK), np.full_like(n, (stream >> 32) & MASK)], -1)
    return philox4x32_10(ctr, (seed & MASK, (seed >> 32) & MASK))[..., 0]


def sample(logits, u32, temperature=1.0):
    """Inverse-CDF draw from softmax(logits / temperature), in float64, exactly as
    mg_wavernn_sample() does: the first i whose running sum exceeds (u + 0.5) / 2^32 * total."""
    lg = np.asarray(logits, np.float64)
    p = np.exp((lg - lg.max()) / temperature)
    cdf = np.cumsum(p)
    target = (float(u32) + 0.5) / 4294967296.0 * cdf[-1]
    i = int(np.searchsorted(cdf, target, side="right"))
    return min(i, len(lg) - 1)


if __name__ == "__main__":
    # Random123 known-answer vectors (kat_vectors: philox4x32_10)
    kat = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
           ((MASK,) * 4, (MASK, MASK), (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
           ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
            (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]
    for ctr, key, want in kat:
        got = tuple(int(x) for x in philox4x32_10(np.array([ctr], np.uint64), key)[0])
        print("ok " if got == want else "BAD", [hex(x) for x in got])
