// XLA FFI handlers for sepconv's grouped convolutions on CPU, their threads, and the
// run-time choice of instruction set.
//
// Three handlers, each a plain C symbol that Python wraps with jax.ffi.pycapsule:
//   sepconv_conv_forward      (x, kernel)  -> y
//   sepconv_conv_input_grad   (dy, kernel) -> dx   (input size from the result shape)
//   sepconv_conv_kernel_grad  (x, dy)      -> dk   (kernel size from the result shape)
// with int64 attributes groups, stride_h/w, pad_top/bottom/left/right, dilation_h/w.
// NHWC x HWIO, float32. Operands may carry the same leading batch dimensions (vmap with
// vmap_method="broadcast_all"): each batch slice is one convolution. Each handler also gets
// the thread pool XLA runs the program on, and its parallel loops run there.
#include <unistd.h>

#if defined(__linux__)
#include <sched.h>
#include <sys/mman.h>
#endif

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "geom.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace sepconv_ffi {

// ------------------------------------------------------------------ memory

void* alloc_bytes(int64_t bytes) {
  const size_t size = (static_cast<size_t>(bytes < 64 ? 64 : bytes) + 63) / 64 * 64;
  return std::aligned_alloc(64, size);
}

void free_bytes(const void* p) { std::free(const_cast<void*>(p)); }

// Results land in buffers XLA has just allocated: for large ones (glibc serves them with a
// fresh mmap) the first writes fault in one 4 KiB page at a time, which on a 2-core host
// costs about as long as a narrow-group convolution itself (51 MB: ~20 ms). Where the kernel
// gives transparent huge pages on request (THP 'madvise' mode), asking for them turns the
// 2 MiB-aligned interior into a few hundred faults. Pages already present are unaffected.
// SEPCONV_FFI_HUGEPAGES=0 turns this off.
void advise_huge_pages(void* p, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  static const bool enabled = [] {
    const char* env = std::getenv("SEPCONV_FFI_HUGEPAGES");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  if (!enabled || bytes < static_cast<int64_t>(2 * kHuge)) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes)) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

// ------------------------------------------------------------------ threads

namespace {

int default_threads() {
  if (const char* env = std::getenv("SEPCONV_FFI_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
#if defined(__linux__)
  cpu_set_t set;  // the CPUs this process may use, not all the host has
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

// A fixed set of workers that run one parallel_for at a time (further callers wait).
// Chunks are handed out through an atomic counter; the calling thread works too.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads < 1 ? 1 : (threads > 256 ? 256 : threads)) {
    for (int t = 1; t < threads_; ++t) std::thread([this, t] { Work(t); }).detach();
  }

  int threads() const { return threads_; }

  void Run(int64_t n, RangeFn fn, void* ctx) {
    if (n <= 0) return;
    if (threads_ == 1 || n == 1) {
      fn(ctx, 0, n, 0);
      return;
    }
    std::lock_guard<std::mutex> call(call_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = fn;
      ctx_ = ctx;
      n_ = n;
      grain_ = n / (threads_ * 8) > 0 ? n / (threads_ * 8) : 1;
      next_.store(0);
      busy_ = threads_ - 1;
      ++generation_;
    }
    cv_.notify_all();
    Chunks(0);
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return busy_ == 0; });
  }

 private:
  void Chunks(int thread) {
    for (;;) {
      const int64_t begin = next_.fetch_add(grain_);
      if (begin >= n_) return;
      const int64_t end = begin + grain_ < n_ ? begin + grain_ : n_;
      fn_(ctx_, begin, end, thread);
    }
  }

  void Work(int thread) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
      }
      Chunks(thread);
      std::lock_guard<std::mutex> lock(mu_);
      if (--busy_ == 0) done_cv_.notify_all();
    }
  }

  const int threads_;
  std::mutex call_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  RangeFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
  std::atomic<int64_t> next_{0};
  int busy_ = 0;
  uint64_t generation_ = 0;
};

std::mutex pool_mu;
Pool* pool = nullptr;  // leaked on purpose: detached workers outlive static destructors
pid_t pool_pid = 0;

// A forked child has none of its parent's worker threads: it builds a pool of its own.
Pool& GetPool() {
  std::lock_guard<std::mutex> lock(pool_mu);
  if (pool == nullptr || pool_pid != getpid()) {
    pool = new Pool(default_threads());
    pool_pid = getpid();
  }
  return *pool;
}

// While a handler runs: XLA's own intra-op thread pool, the one that runs every other
// operation of the program (XLA:CPU's Eigen pool). Work handed to it lands on threads that
// are already awake between operations; the fallback pool above has to wake its own
// threads, which then compete for the same cores with XLA's.
thread_local ffi::ThreadPool* xla_pool = nullptr;
std::atomic<bool> use_xla_pool{true};  // off: always the fallback pool (tests, benchmarks)

// One parallel_for on XLA's pool. The pool may run a task late, on the caller's thread, or
// never while the caller waits, so the caller claims chunks too and then waits only for
// tasks that are inside a chunk; a task that starts after every chunk is claimed touches
// nothing but this (shared, reference-counted) state.
struct Spread {
  RangeFn fn;
  void* ctx;
  int64_t n, grain;
  std::atomic<int64_t> next{0};
  std::atomic<int> active{0};

  void Chunks(int thread) {
    for (;;) {
      const int64_t begin = next.fetch_add(grain);
      if (begin >= n) return;
      fn(ctx, begin, begin + grain < n ? begin + grain : n, thread);
    }
  }
};

void parallel_for_on(ffi::ThreadPool& tp, int threads, int64_t n, RangeFn fn, void* ctx) {
  auto s = std::make_shared<Spread>();
  s->fn = fn;
  s->ctx = ctx;
  s->n = n;
  s->grain = n / (threads * 8) > 0 ? n / (threads * 8) : 1;
  for (int t = 1; t < threads; ++t)
    tp.Schedule([s, t] {
      s->active.fetch_add(1);
      s->Chunks(t);
      s->active.fetch_sub(1);
    });
  s->Chunks(0);
  while (s->active.load() != 0) std::this_thread::yield();
}

// Makes XLA's pool the one parallel_for uses for the lifetime of a handler call.
struct UsingXlaPool {
  explicit UsingXlaPool(ffi::ThreadPool& tp) { xla_pool = &tp; }
  ~UsingXlaPool() { xla_pool = nullptr; }
};

}  // namespace

void parallel_for(int64_t n, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  const int threads = num_threads();
  if (xla_pool != nullptr && use_xla_pool.load() && threads > 1 && n > 1)
    return parallel_for_on(*xla_pool, threads, n, fn, ctx);
  GetPool().Run(n, fn, ctx);
}

int num_threads() { return GetPool().threads(); }

// ------------------------------------------------------------------ instruction sets

namespace {

bool cpu_has(const char* isa) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (std::strcmp(isa, "avx512") == 0)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
  if (std::strcmp(isa, "avx2") == 0)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return std::strcmp(isa, "generic") == 0;
}

const Kernels* kernels_for(const char* isa) {
  if (!cpu_has(isa)) return nullptr;
#if defined(__x86_64__) || defined(_M_X64)
  if (std::strcmp(isa, "avx512") == 0) return &avx512::kKernels;
  if (std::strcmp(isa, "avx2") == 0) return &avx2::kKernels;
#endif
  if (std::strcmp(isa, "generic") == 0) return &generic::kKernels;
  return nullptr;
}

const Kernels* best_kernels() {
  if (const char* env = std::getenv("SEPCONV_FFI_ISA")) {
    if (const Kernels* k = kernels_for(env)) return k;
  }
  for (const char* isa : {"avx512", "avx2"})
    if (const Kernels* k = kernels_for(isa)) return k;
  return &generic::kKernels;
}

std::atomic<const Kernels*> active{nullptr};

const Kernels& Active() {
  const Kernels* k = active.load();
  if (k == nullptr) {
    k = best_kernels();
    active.store(k);
  }
  return *k;
}

// ------------------------------------------------------------------ handlers

struct Attrs {
  int64_t groups, sh, sw, pt, pb, pl, pr, dh, dw;
};

int64_t out_size(int64_t size, int64_t lo, int64_t hi, int64_t k, int64_t d, int64_t s) {
  const int64_t span = size + lo + hi - (k - 1) * d - 1;
  return span < 0 ? 0 : span / s + 1;
}

template <class Span>
std::string dims_str(const Span& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + ")";
}

// Leading (batch) dimensions shared by every operand, and their product.
template <class Span>
ffi::Error leading(const Span& dims, const char* name, std::vector<int64_t>& lead) {
  if (dims.size() < 4)
    return ffi::Error::InvalidArgument(std::string(name) + " shape " + dims_str(dims) +
                                       " must have rank >= 4");
  std::vector<int64_t> l(dims.begin(), dims.end() - 4);
  if (lead.empty() && l.size() > 0) lead = l;
  if (l != lead)
    return ffi::Error::InvalidArgument(std::string(name) + " shape " + dims_str(dims) +
                                       " must share the leading dimensions of the others");
  return ffi::Error::Success();
}

template <class Span>
const int64_t* tail4(const Span& d) { return d.begin() + d.size() - 4; }

ffi::Error MakeGeom(const int64_t* x, const int64_t* k, const int64_t* y, const Attrs& a,
                    Geom* g) {
  if (a.groups < 1 || a.sh < 1 || a.sw < 1 || a.dh < 1 || a.dw < 1)
    return ffi::Error::InvalidArgument(
        "groups (=" + std::to_string(a.groups) + "), strides and dilations must be positive");
  *g = Geom{x[0], x[1], x[2], x[3], k[0], k[1], k[2], k[3], a.groups, 0,
            y[1], y[2], a.sh, a.sw, a.pt, a.pl, a.dh, a.dw};
  if (g->cin != g->groups * g->ci || g->cout % g->groups != 0)
    return ffi::Error::InvalidArgument(
        "input channels (=" + std::to_string(g->cin) + ") must be groups (=" +
        std::to_string(g->groups) + ") x kernel input channels (=" + std::to_string(g->ci) +
        ") and output channels (=" + std::to_string(g->cout) + ") divisible by groups");
  g->co = g->cout / g->groups;
  const int64_t ho = out_size(g->h, a.pt, a.pb, g->kh, g->dh, g->sh);
  const int64_t wo = out_size(g->w, a.pl, a.pr, g->kw, g->dw, g->sw);
  if (y[0] != g->n || y[1] != ho || y[2] != wo || y[3] != g->cout)
    return ffi::Error::InvalidArgument(
        "output shape (" + std::to_string(y[0]) + ", " + std::to_string(y[1]) + ", " +
        std::to_string(y[2]) + ", " + std::to_string(y[3]) + ") must be (" +
        std::to_string(g->n) + ", " + std::to_string(ho) + ", " + std::to_string(wo) + ", " +
        std::to_string(g->cout) + ") for this geometry");
  return ffi::Error::Success();
}

int64_t prod(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}

int64_t size4(const int64_t* d) { return d[0] * d[1] * d[2] * d[3]; }

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> k,
                   ffi::ResultBuffer<ffi::F32> y, Attrs a) {
  std::vector<int64_t> lead;
  for (auto [d, name] : {std::pair{x.dimensions(), "x"}, std::pair{k.dimensions(), "kernel"},
                         std::pair{y->dimensions(), "y"}})
    if (ffi::Error e = leading(d, name, lead); e.failure()) return e;
  Geom g;
  const int64_t *xd = tail4(x.dimensions()), *kd = tail4(k.dimensions()),
                *yd = tail4(y->dimensions());
  if (ffi::Error e = MakeGeom(xd, kd, yd, a, &g); e.failure()) return e;
  const Kernels& kern = Active();
  advise_huge_pages(y->typed_data(), prod(lead) * size4(yd) * 4);
  for (int64_t b = 0; b < prod(lead); ++b)
    kern.forward(g, x.typed_data() + b * size4(xd), k.typed_data() + b * size4(kd),
                 y->typed_data() + b * size4(yd));
  return ffi::Error::Success();
}

ffi::Error InputGrad(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> k,
                     ffi::ResultBuffer<ffi::F32> dx, Attrs a) {
  std::vector<int64_t> lead;
  for (auto [d, name] : {std::pair{dy.dimensions(), "dy"}, std::pair{k.dimensions(), "kernel"},
                         std::pair{dx->dimensions(), "dx"}})
    if (ffi::Error e = leading(d, name, lead); e.failure()) return e;
  Geom g;
  const int64_t *yd = tail4(dy.dimensions()), *kd = tail4(k.dimensions()),
                *xd = tail4(dx->dimensions());
  if (ffi::Error e = MakeGeom(xd, kd, yd, a, &g); e.failure()) return e;
  const Kernels& kern = Active();
  advise_huge_pages(dx->typed_data(), prod(lead) * size4(xd) * 4);
  for (int64_t b = 0; b < prod(lead); ++b)
    kern.input_grad(g, dy.typed_data() + b * size4(yd), k.typed_data() + b * size4(kd),
                    dx->typed_data() + b * size4(xd));
  return ffi::Error::Success();
}

ffi::Error KernelGrad(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                      ffi::ResultBuffer<ffi::F32> dk, Attrs a) {
  std::vector<int64_t> lead;
  for (auto [d, name] : {std::pair{x.dimensions(), "x"}, std::pair{dy.dimensions(), "dy"},
                         std::pair{dk->dimensions(), "dkernel"}})
    if (ffi::Error e = leading(d, name, lead); e.failure()) return e;
  Geom g;
  const int64_t *xd = tail4(x.dimensions()), *yd = tail4(dy.dimensions()),
                *kd = tail4(dk->dimensions());
  if (ffi::Error e = MakeGeom(xd, kd, yd, a, &g); e.failure()) return e;
  const Kernels& kern = Active();
  for (int64_t b = 0; b < prod(lead); ++b)
    kern.kernel_grad(g, x.typed_data() + b * size4(xd), dy.typed_data() + b * size4(yd),
                     dk->typed_data() + b * size4(kd));
  return ffi::Error::Success();
}

}  // namespace
}  // namespace sepconv_ffi

// Attributes decode into one struct (a dictionary binding would do too; this is fixed).
#define SEPCONV_ATTRS(binding)                                                        \
  binding.Attr<int64_t>("groups").Attr<int64_t>("stride_h").Attr<int64_t>("stride_w") \
      .Attr<int64_t>("pad_top").Attr<int64_t>("pad_bottom").Attr<int64_t>("pad_left") \
      .Attr<int64_t>("pad_right").Attr<int64_t>("dilation_h").Attr<int64_t>("dilation_w")

namespace {
using sepconv_ffi::Attrs;
template <auto Fn, class A, class B>
ffi::Error Unpacked(ffi::ThreadPool pool, A a, B b, ffi::ResultBuffer<ffi::F32> out,
                    int64_t groups, int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl,
                    int64_t pr, int64_t dh, int64_t dw) {
  sepconv_ffi::UsingXlaPool using_pool(pool);
  return Fn(a, b, out, Attrs{groups, sh, sw, pt, pb, pl, pr, dh, dw});
}
using In = ffi::Buffer<ffi::F32>;
// XLA's thread pool, two operands, one result; the attributes follow.
auto Binding() {
  return ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<In>().Arg<In>().Ret<ffi::Buffer<ffi::F32>>();
}
}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    sepconv_conv_forward, (Unpacked<sepconv_ffi::Forward, In, In>),
    SEPCONV_ATTRS(Binding()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    sepconv_conv_input_grad, (Unpacked<sepconv_ffi::InputGrad, In, In>),
    SEPCONV_ATTRS(Binding()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    sepconv_conv_kernel_grad, (Unpacked<sepconv_ffi::KernelGrad, In, In>),
    SEPCONV_ATTRS(Binding()));

// Introspection for Python (ctypes): the FFI API version compiled in, the instruction set
// in use, and setters used by tests and benchmarks.
extern "C" {

__attribute__((visibility("default"))) int sepconv_ffi_api_version() {
  return XLA_FFI_API_MAJOR * 1000 + XLA_FFI_API_MINOR;
}

__attribute__((visibility("default"))) const char* sepconv_ffi_isa() {
  return sepconv_ffi::Active().name;
}

// 0 if ``isa`` ('avx512', 'avx2', 'generic') runs on this CPU and is now used, else -1.
__attribute__((visibility("default"))) int sepconv_ffi_set_isa(const char* isa) {
  const sepconv_ffi::Kernels* k = sepconv_ffi::kernels_for(isa);
  if (k == nullptr) return -1;
  sepconv_ffi::active.store(k);
  return 0;
}

// 1: parallel loops run on XLA's intra-op pool when XLA passes one (the default); 0: on
// the extension's own threads. Returns the previous setting.
__attribute__((visibility("default"))) int sepconv_ffi_use_xla_pool(int on) {
  return sepconv_ffi::use_xla_pool.exchange(on != 0) ? 1 : 0;
}

__attribute__((visibility("default"))) int sepconv_ffi_num_threads() {
  return sepconv_ffi::num_threads();
}

}  // extern "C"
