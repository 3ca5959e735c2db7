/* The byte streams ringbench sends and expects back.
 *
 * Echo: connection `stream` sends byte `off` = a hash of (stream, off / 8),
 * taken byte `off % 8`. Every byte therefore depends on the connection and on
 * its exact position, so what comes back proves more than "some bytes came
 * back": a flipped byte differs from the hash; a lost or duplicated chunk
 * shifts everything after it onto the wrong offsets; reordered chunks sit at
 * the wrong offsets; another connection's bytes come from a different stream.
 * Nothing is stored: any offset can be generated or checked on its own, so a
 * partial send or a short read costs nothing to resume.
 *
 * Chargen (RFC 864): lines of 72 printable ASCII characters followed by
 * "\r\n"; line n starts one character further along the 95-character set
 * than line n-1, wrapping around. Servers differ on where line 0 starts ('!'
 * in the RFC's example, ' ' in BSD inetd), so the checker takes the phase from
 * the first byte and holds every later byte to it. */
#ifndef RINGBENCH_PATTERN_H
#define RINGBENCH_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64's finaliser: a bijection on 64 bits with full avalanche, so
 * neighbouring inputs give unrelated outputs. The pattern's hash, and
 * ringbench's pick of message sizes. */
static inline uint64_t bench_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* The eight bytes of stream `stream` at offsets [8*word, 8*word + 8). */
uint64_t bench_pattern_word(uint64_t stream, uint64_t word);
uint8_t bench_pattern_byte(uint64_t stream, uint64_t off);
void bench_pattern_fill(uint64_t stream, uint64_t off, uint8_t *buf, size_t len);
/* Index of the first byte of buf that differs from the stream at `off`, or
 * len when all match. */
size_t bench_pattern_check(uint64_t stream, uint64_t off, const uint8_t *buf, size_t len);

#define BENCH_CHARGEN_LINE   72u /* printable characters per line */
#define BENCH_CHARGEN_SET    95u /* ' ' .. '~' */
#define BENCH_CHARGEN_STRIDE (BENCH_CHARGEN_LINE + 2u)

/* The byte at `off` of a chargen stream whose line 0 starts with the character
 * ' ' + phase (phase < 95). */
uint8_t bench_chargen_byte(unsigned phase, uint64_t off);
void bench_chargen_fill(unsigned phase, uint64_t off, uint8_t *buf, size_t len);
size_t bench_chargen_check(unsigned phase, uint64_t off, const uint8_t *buf, size_t len);

#endif
