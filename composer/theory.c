/* theory.c - the composer's small foundations: the integer PRNG every choice draws from,
 * scales, and the roman-numeral chord parser the progression tables are written in.
 * Nothing here touches floating point, so results are the same on every machine.
 */
#include "internal.h"

#include <string.h>

/* ---- PRNG: splitmix64 seeding xoshiro256** (Blackman & Vigna) --------------------------- */

static uint64_t s_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void mg_rng_seed(mg_rng_t *r, uint64_t seed, const char *stream)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a of the stream name */
    for (const unsigned char *p = (const unsigned char *)stream; *p; p++) h = (h ^ *p) * 0x100000001B3ull;
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++) r->s[i] = s_splitmix(&x);
}

static inline uint64_t s_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mg_rng_next(mg_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return out;
}

int mg_rng_below(mg_rng_t *r, int n)
{
    if (n <= 1) return 0;
    return (int)(((mg_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

int mg_rng_range(mg_rng_t *r, int lo, int hi)
{
    return hi <= lo ? lo : lo + mg_rng_below(r, hi - lo + 1);
}

int mg_rng_chance(mg_rng_t *r, int permille)
{
    return mg_rng_below(r, 1000) < permille;
}

/* ---- scales ------------------------------------------------------------------------------ */

static const int s_major[7] = {0, 2, 4, 5, 7, 9, 11};
static const int s_minor[7] = {0, 2, 3, 5, 7, 8, 10}; /* natural minor; cadences raise the 7th */

int mg_scale_pc(mg_mode_t mode, int degree)
{
    int d = ((degree % 7) + 7) % 7;
    return mode == MG_MODE_MINOR ? s_minor[d] : s_major[d];
}

const char *const mg_pc_names[12] = {"C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"};

/* ---- roman numerals ------------------------------------------------------------------------ */

static void s_add(mg_chord_t *c, int iv)
{
    for (int i = 0; i < c->n; i++)
        if (c->iv[i] == iv) return;
    if (c->n >= 6) return;
    int i = c->n++;
    while (i > 0 && c->iv[i - 1] > iv) { c->iv[i] = c->iv[i - 1]; i--; }
    c->iv[i] = iv;
}

static void s_replace(mg_chord_t *c, int from, int to)
{
    for (int i = 0; i < c->n; i++)
        if (c->iv[i] == from) {
            for (int k = i; k + 1 < c->n; k++) c->iv[k] = c->iv[k + 1];
            c->n--;
            s_add(c, to);
            return;
        }
}

int mg_chord_parse(const char *roman, mg_chord_t *out)
{
    static const struct { const char *num; int root; } nums[] = {
        {"VII", 11}, {"III", 4}, {"IV", 5}, {"VI", 9}, {"II", 2}, {"V", 7}, {"I", 0},
    };
    memset(out, 0, sizeof *out);
    if (strlen(roman) >= sizeof out->name) return -1;
    memcpy(out->name, roman, strlen(roman) + 1);
    const char *p = roman;
    int acc = 0;
    if (*p == 'b') { acc = -1; p++; }
    else if (*p == '#') { acc = 1; p++; }
    int upper = *p == 'I' || *p == 'V';
    int root = -1;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        size_t l = strlen(nums[i].num);
        int match = 1;
        for (size_t k = 0; k < l; k++) {
            char ch = p[k];
            if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
            if (ch != nums[i].num[k] || (((p[k] >= 'a') != !upper))) { match = 0; break; }
        }
        if (match) { root = nums[i].root; p += l; break; }
    }
    if (root < 0) return -1;
    out->root = (root + acc + 12) % 12;
    out->n = 0;
    s_add(out, 0);
    s_add(out, upper ? 4 : 3);
    s_add(out, 7);
    while (*p) {
        if (*p == 'o' && p[1] == '7') { s_replace(out, 7, 6); s_replace(out, 4, 3); s_add(out, 9); p += 2; }
        else if (*p == 'o') { s_replace(out, 7, 6); s_replace(out, 4, 3); p++; }
        else if (*p == 'h' && p[1] == '7') { s_replace(out, 7, 6); s_replace(out, 4, 3); s_add(out, 10); p += 2; }
        else if (*p == '+') { s_replace(out, 7, 8); p++; }
        else if (!strncmp(p, "maj7", 4)) { s_add(out, 11); p += 4; }
        else if (!strncmp(p, "add9", 4)) { s_add(out, 14); p += 4; }
        else if (!strncmp(p, "sus2", 4)) { s_replace(out, upper ? 4 : 3, 2); p += 4; }
        else if (!strncmp(p, "sus4", 4)) { s_replace(out, upper ? 4 : 3, 5); p += 4; }
        else if (!strncmp(p, "b9", 2)) { s_add(out, 13); p += 2; }
        else if (*p == '9') { s_add(out, 10); s_add(out, 14); p++; }
        else if (*p == '7') { s_add(out, 10); p++; }
        else return -1;
    }
    return 0;
}
