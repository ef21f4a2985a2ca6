// Shared declarations of the sepconv CPU convolution kernels: geometry and threading.
//
// Layouts are NHWC (input, output) and HWIO (kernel), as in sepconv's ConvSpec. Every
// kernel is written once (kernels.inc) and compiled once per instruction set into its own
// namespace, so nothing compiled for AVX-512 can be linked into a path that runs elsewhere.
#ifndef SEPCONV_CONV_EXT_GEOM_H_
#define SEPCONV_CONV_EXT_GEOM_H_

#include <cstdint>

namespace sepconv_ffi {

// One grouped convolution, every size resolved (one batch slice of a possibly vmapped call).
struct Geom {
  int64_t n, h, w, cin;        // input (N, H, W, C_in)
  int64_t kh, kw, ci, cout;    // kernel (kh, kw, C_in / G, C_out)
  int64_t groups, co;          // G and C_out / G
  int64_t ho, wo;              // output spatial size
  int64_t sh, sw;              // strides
  int64_t pt, pl;              // low padding (top, left); negative crops
  int64_t dh, dw;              // kernel dilation
};

// fn(ctx, begin, end, thread) over [0, n) in chunks, on the calling thread and the pool.
using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end, int thread);
void parallel_for(int64_t n, RangeFn fn, void* ctx);
int num_threads();

// Heap memory for kernels (plain C allocation: no templates shared across instruction sets).
void* alloc_bytes(int64_t bytes);
void free_bytes(const void* p);
inline float* alloc_floats(int64_t count) {
  return static_cast<float*>(alloc_bytes(count * static_cast<int64_t>(sizeof(float))));
}
inline void free_floats(const float* p) { free_bytes(p); }

// One instruction set's kernels.
struct Kernels {
  const char* name;
  void (*forward)(const Geom& g, const float* x, const float* w, float* y);
  void (*input_grad)(const Geom& g, const float* dy, const float* w, float* dx);
  void (*kernel_grad)(const Geom& g, const float* x, const float* dy, float* dw);
};

namespace avx512 { extern const Kernels kKernels; }
namespace avx2 { extern const Kernels kKernels; }
namespace generic { extern const Kernels kKernels; }

}  // namespace sepconv_ffi

#endif  // SEPCONV_CONV_EXT_GEOM_H_
