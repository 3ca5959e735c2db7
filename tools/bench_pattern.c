/* Verification streams; see bench_pattern.h. */
#include "bench_pattern.h"

#include <string.h>

/* bench_mix64 (bench_pattern.h): neighbouring (stream, word) pairs give
 * unrelated words. */

static inline uint64_t stream_key(uint64_t stream)
{
    return bench_mix64(stream * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL);
}

static inline uint64_t word_of(uint64_t key, uint64_t word)
{
    return bench_mix64(key ^ (word * 0x9e3779b97f4a7c15ULL));
}

uint64_t bench_pattern_word(uint64_t stream, uint64_t word)
{
    return word_of(stream_key(stream), word);
}

uint8_t bench_pattern_byte(uint64_t stream, uint64_t off)
{
    return (uint8_t)(bench_pattern_word(stream, off / 8) >> (8 * (off % 8)));
}

/* Little-endian byte order by construction (byte k of a word is bits 8k..8k+7),
 * so the fast paths below store words with memcpy only on little-endian hosts. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LE_HOST 1
#else
#define LE_HOST 0
#endif

void bench_pattern_fill(uint64_t stream, uint64_t off, uint8_t *buf, size_t len)
{
    uint64_t key = stream_key(stream);
    size_t i = 0;
    /* Head: up to the next word boundary. */
    while (i < len && (off + i) % 8 != 0) {
        buf[i] = (uint8_t)(word_of(key, (off + i) / 8) >> (8 * ((off + i) % 8)));
        i++;
    }
    if (LE_HOST) {
        uint64_t w = (off + i) / 8;
        for (; i + 8 <= len; i += 8, w++) {
            uint64_t v = word_of(key, w);
            memcpy(buf + i, &v, 8);
        }
    }
    for (; i < len; i++)
        buf[i] = (uint8_t)(word_of(key, (off + i) / 8) >> (8 * ((off + i) % 8)));
}

size_t bench_pattern_check(uint64_t stream, uint64_t off, const uint8_t *buf, size_t len)
{
    uint64_t key = stream_key(stream);
    size_t i = 0;
    while (i < len && (off + i) % 8 != 0) {
        if (buf[i] != (uint8_t)(word_of(key, (off + i) / 8) >> (8 * ((off + i) % 8))))
            return i;
        i++;
    }
    if (LE_HOST) {
        uint64_t w = (off + i) / 8;
        for (; i + 8 <= len; i += 8, w++) {
            uint64_t got;
            memcpy(&got, buf + i, 8);
            if (got != word_of(key, w))
                break; /* the byte loop below finds which byte */
        }
    }
    for (; i < len; i++)
        if (buf[i] != (uint8_t)(word_of(key, (off + i) / 8) >> (8 * ((off + i) % 8))))
            return i;
    return len;
}

uint8_t bench_chargen_byte(unsigned phase, uint64_t off)
{
    uint64_t line = off / BENCH_CHARGEN_STRIDE;
    unsigned col = (unsigned)(off % BENCH_CHARGEN_STRIDE);
    if (col == BENCH_CHARGEN_LINE)
        return '\r';
    if (col == BENCH_CHARGEN_LINE + 1u)
        return '\n';
    return (uint8_t)(' ' + (phase + line + col) % BENCH_CHARGEN_SET);
}

void bench_chargen_fill(unsigned phase, uint64_t off, uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = bench_chargen_byte(phase, off + i);
}

size_t bench_chargen_check(unsigned phase, uint64_t off, const uint8_t *buf, size_t len)
{
    /* Walk line by line keeping (line, col) incrementally: no division per byte. */
    uint64_t line = off / BENCH_CHARGEN_STRIDE;
    unsigned col = (unsigned)(off % BENCH_CHARGEN_STRIDE);
    unsigned c = (unsigned)((phase + line + col) % BENCH_CHARGEN_SET);
    for (size_t i = 0; i < len; i++) {
        uint8_t want;
        if (col < BENCH_CHARGEN_LINE) {
            want = (uint8_t)(' ' + c);
            if (++c == BENCH_CHARGEN_SET)
                c = 0;
        } else {
            want = col == BENCH_CHARGEN_LINE ? '\r' : '\n';
        }
        if (buf[i] != want)
            return i;
        if (++col == BENCH_CHARGEN_STRIDE) {
            col = 0;
            line++;
            c = (unsigned)((phase + line) % BENCH_CHARGEN_SET);
        }
    }
    return len;
}
