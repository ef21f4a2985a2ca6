// The kernels in plain C++ (one lane): any CPU, and the reference for the vector ones.
#include <cstdint>

#include "geom.h"

namespace sepconv_ffi {
namespace generic {

static constexpr const char* kName = "generic";

struct V1 {
  using T = float;
  static constexpr int L = 1, kRegs = 16;
  static inline T zero() { return 0.f; }
  static inline T load(const float* p) { return *p; }
  static inline T loadn(const float* p, int n) { return n > 0 ? *p : 0.f; }
  static inline void store(float* p, T v) { *p = v; }
  static inline void storen(float* p, T v, int n) { if (n > 0) *p = v; }
  static inline T set1(float x) { return x; }
  static inline T fma(T a, T b, T c) { return a * b + c; }
  static inline T add(T a, T b) { return a + b; }
};

using VW = V1;
using VN = V1;

#include "kernels.inc"

}  // namespace generic
}  // namespace sepconv_ffi
