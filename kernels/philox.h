/* philox.h - Philox4x32-10 (Salmon, Moraes, Dror & Shaw, SC'11), the counter-based RNG of the
 * neural renderer: every random draw is a pure function of (seed, stream, sample index), so
 * renders are reproducible, stems can run in any order or on any device, and the PyTorch
 * reference (models/train/philox.py) and the GPU path draw exactly the same numbers.
 */
#ifndef MG_PHILOX_H
#define MG_PHILOX_H

#include <stdint.h>

/* One Philox4x32 block with 10 rounds: out = philox(ctr, key). */
void mg_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The draw for sample index of stream under seed: word 0 of philox(ctr = (index lo, index hi,
 * stream lo, stream hi), key = (seed lo, seed hi)). The renderer's stream is
 * render_id * 256 + stem (models/README.md, "Sampling"). */
static inline uint32_t mg_philox_u32(uint64_t seed, uint64_t stream, uint64_t index)
{
    const uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), (uint32_t)stream,
                             (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    mg_philox4x32_10(ctr, key, out);
    return out[0];
}

#endif
