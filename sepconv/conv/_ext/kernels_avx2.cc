// The kernels for x86-64 with AVX2 and FMA, chosen at run time.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstdint>

#include "geom.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace sepconv_ffi {
namespace avx2 {

static constexpr const char* kName = "avx2";

struct V8 {
  using T = __m256;
  static constexpr int L = 8, kRegs = 16;
  static inline __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static inline T zero() { return _mm256_setzero_ps(); }
  static inline T load(const float* p) { return _mm256_loadu_ps(p); }
  static inline T loadn(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static inline void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static inline void storen(float* p, T v, int n) { _mm256_maskstore_ps(p, mask(n), v); }
  static inline T set1(float x) { return _mm256_set1_ps(x); }
  static inline T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static inline T add(T a, T b) { return _mm256_add_ps(a, b); }
};

using VW = V8;
using VN = V8;

#include "kernels.inc"

}  // namespace avx2
}  // namespace sepconv_ffi

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif  // x86-64
