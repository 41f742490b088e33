#include "cshims.h"

// SHA-256 block compression with the x86 SHA extensions (SHA-NI), for `SHA256` of
// SettledCore: `state` the eight words, `data` `blocks` whole 64-byte blocks. Returns 0 when
// the processor has no SHA extensions (nothing done: the caller compresses them itself).
#if defined(__x86_64__)
#include <immintrin.h>

static const uint32_t settled_sha256_k[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

__attribute__((target("sha,sse4.1,ssse3")))
static void settled_sha256_ni(uint32_t state[8], const uint8_t *data, size_t blocks) {
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i state1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);             // CDAB
    state1 = _mm_shuffle_epi32(state1, 0x1B);       // EFGH
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8); // ABEF
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);    // CDGH
    while (blocks > 0) {
        const __m128i abef = state0, cdgh = state1;
        __m128i w0, w1, w2, w3, msg;
        w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 0)), mask);
        msg = _mm_add_epi32(w0, _mm_load_si128((const __m128i *)&settled_sha256_k[0]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), mask);
        msg = _mm_add_epi32(w1, _mm_load_si128((const __m128i *)&settled_sha256_k[4]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w0 = _mm_sha256msg1_epu32(w0, w1);
        w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), mask);
        msg = _mm_add_epi32(w2, _mm_load_si128((const __m128i *)&settled_sha256_k[8]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w1 = _mm_sha256msg1_epu32(w1, w2);
        w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), mask);
        msg = _mm_add_epi32(w3, _mm_load_si128((const __m128i *)&settled_sha256_k[12]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w0 = _mm_sha256msg2_epu32(_mm_add_epi32(w0, _mm_alignr_epi8(w3, w2, 4)), w3);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w2 = _mm_sha256msg1_epu32(w2, w3);
        msg = _mm_add_epi32(w0, _mm_load_si128((const __m128i *)&settled_sha256_k[16]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w1 = _mm_sha256msg2_epu32(_mm_add_epi32(w1, _mm_alignr_epi8(w0, w3, 4)), w0);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w3 = _mm_sha256msg1_epu32(w3, w0);
        msg = _mm_add_epi32(w1, _mm_load_si128((const __m128i *)&settled_sha256_k[20]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w2 = _mm_sha256msg2_epu32(_mm_add_epi32(w2, _mm_alignr_epi8(w1, w0, 4)), w1);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w0 = _mm_sha256msg1_epu32(w0, w1);
        msg = _mm_add_epi32(w2, _mm_load_si128((const __m128i *)&settled_sha256_k[24]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w3 = _mm_sha256msg2_epu32(_mm_add_epi32(w3, _mm_alignr_epi8(w2, w1, 4)), w2);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w1 = _mm_sha256msg1_epu32(w1, w2);
        msg = _mm_add_epi32(w3, _mm_load_si128((const __m128i *)&settled_sha256_k[28]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w0 = _mm_sha256msg2_epu32(_mm_add_epi32(w0, _mm_alignr_epi8(w3, w2, 4)), w3);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w2 = _mm_sha256msg1_epu32(w2, w3);
        msg = _mm_add_epi32(w0, _mm_load_si128((const __m128i *)&settled_sha256_k[32]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w1 = _mm_sha256msg2_epu32(_mm_add_epi32(w1, _mm_alignr_epi8(w0, w3, 4)), w0);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w3 = _mm_sha256msg1_epu32(w3, w0);
        msg = _mm_add_epi32(w1, _mm_load_si128((const __m128i *)&settled_sha256_k[36]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w2 = _mm_sha256msg2_epu32(_mm_add_epi32(w2, _mm_alignr_epi8(w1, w0, 4)), w1);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w0 = _mm_sha256msg1_epu32(w0, w1);
        msg = _mm_add_epi32(w2, _mm_load_si128((const __m128i *)&settled_sha256_k[40]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w3 = _mm_sha256msg2_epu32(_mm_add_epi32(w3, _mm_alignr_epi8(w2, w1, 4)), w2);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w1 = _mm_sha256msg1_epu32(w1, w2);
        msg = _mm_add_epi32(w3, _mm_load_si128((const __m128i *)&settled_sha256_k[44]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w0 = _mm_sha256msg2_epu32(_mm_add_epi32(w0, _mm_alignr_epi8(w3, w2, 4)), w3);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w2 = _mm_sha256msg1_epu32(w2, w3);
        msg = _mm_add_epi32(w0, _mm_load_si128((const __m128i *)&settled_sha256_k[48]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w1 = _mm_sha256msg2_epu32(_mm_add_epi32(w1, _mm_alignr_epi8(w0, w3, 4)), w0);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        w3 = _mm_sha256msg1_epu32(w3, w0);
        msg = _mm_add_epi32(w1, _mm_load_si128((const __m128i *)&settled_sha256_k[52]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w2 = _mm_sha256msg2_epu32(_mm_add_epi32(w2, _mm_alignr_epi8(w1, w0, 4)), w1);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        msg = _mm_add_epi32(w2, _mm_load_si128((const __m128i *)&settled_sha256_k[56]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        w3 = _mm_sha256msg2_epu32(_mm_add_epi32(w3, _mm_alignr_epi8(w2, w1, 4)), w2);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        msg = _mm_add_epi32(w3, _mm_load_si128((const __m128i *)&settled_sha256_k[60]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
        data += 64;
        blocks -= 1;
    }
    tmp = _mm_shuffle_epi32(state0, 0x1B);          // FEBA
    state1 = _mm_shuffle_epi32(state1, 0xB1);       // DCHG
    state0 = _mm_blend_epi16(tmp, state1, 0xF0);    // DCBA
    state1 = _mm_alignr_epi8(state1, tmp, 8);       // ABEF
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

int settled_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) {
    // The processor's features as the runtime read them at start (a load, no cpuid).
    if (!(__builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("ssse3"))) return 0;
    settled_sha256_ni(state, data, blocks);
    return 1;
}
#else
int settled_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) {
    (void)state; (void)data; (void)blocks;
    return 0;
}
#endif
