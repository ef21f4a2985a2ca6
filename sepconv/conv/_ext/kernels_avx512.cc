// The kernels for x86-64 with AVX-512 (F, VL, BW, DQ) and FMA, chosen at run time.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstdint>

#include "geom.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), apply_to = function)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#endif

namespace sepconv_ffi {
namespace avx512 {

static constexpr const char* kName = "avx512";

struct V16 {
  using T = __m512;
  static constexpr int L = 16, kRegs = 32;
  static inline T zero() { return _mm512_setzero_ps(); }
  static inline T load(const float* p) { return _mm512_loadu_ps(p); }
  static inline T loadn(const float* p, int n) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p);
  }
  static inline void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static inline void storen(float* p, T v, int n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), v);
  }
  static inline T set1(float x) { return _mm512_set1_ps(x); }
  static inline T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static inline T add(T a, T b) { return _mm512_add_ps(a, b); }
};

// 256-bit vectors with AVX-512VL masks and 32 registers: groups of up to 8 outputs.
struct V8 {
  using T = __m256;
  static constexpr int L = 8, kRegs = 32;
  static inline T zero() { return _mm256_setzero_ps(); }
  static inline T load(const float* p) { return _mm256_loadu_ps(p); }
  static inline T loadn(const float* p, int n) {
    return _mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << n) - 1), p);
  }
  static inline void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static inline void storen(float* p, T v, int n) {
    _mm256_mask_storeu_ps(p, static_cast<__mmask8>((1u << n) - 1), v);
  }
  static inline T set1(float x) { return _mm256_set1_ps(x); }
  static inline T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static inline T add(T a, T b) { return _mm256_add_ps(a, b); }
};

using VW = V16;
using VN = V8;

#include "kernels.inc"

}  // namespace avx512
}  // namespace sepconv_ffi

#if defined(__clang__)
#pragma clang attribute pop
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif  // x86-64
