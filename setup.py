"""The optional C++ extension: sepconv's CPU convolution kernels behind XLA's FFI.

Metadata lives in pyproject.toml; this file only declares the extension, which needs a
C++17 compiler and nothing else (the XLA FFI headers are vendored). It is optional: where
it cannot be built, installation goes on with a warning and ``impl='ffi'`` reports itself
unsupported ("extension not built"), every other implementation unaffected.

Build switch, read at install time (``pip install .`` or ``pip install -e .``):
  SEPCONV_BUILD_EXT=0        do not build it (pure-JAX install);
  SEPCONV_BUILD_EXT=1        build it if possible, warn if not (the default);
  SEPCONV_BUILD_EXT=require  build it or fail the install (CI for the extension).
  SEPCONV_XLA_FFI_INCLUDE    another directory holding xla/ffi/api/*.h to build against.
At run time, SEPCONV_DISABLE_EXT=1 leaves a built extension unused.
"""

import os
import platform
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_SRC = "sepconv/conv/_ext"


def _mode() -> str:
  value = os.environ.get("SEPCONV_BUILD_EXT", "1").strip().lower()
  if value in ("0", "false", "off", "no"):
    return "off"
  if value in ("1", "true", "on", "yes", ""):
    return "optional"
  if value == "require":
    return "require"
  raise ValueError(f"SEPCONV_BUILD_EXT (={value!r}) must be 0, 1 or 'require'")


def _ext_modules() -> list:
  mode = _mode()
  if mode == "off":
    return []
  sources = [f"{_SRC}/ffi.cc", f"{_SRC}/kernels_generic.cc"]
  if platform.machine().lower() in ("x86_64", "amd64"):
    # Compiled for these instruction sets by pragmas inside; chosen at run time by CPU checks.
    sources += [f"{_SRC}/kernels_avx2.cc", f"{_SRC}/kernels_avx512.cc"]
  include = os.environ.get("SEPCONV_XLA_FFI_INCLUDE", f"{_SRC}/third_party")
  return [Extension(
      "sepconv.conv._ext._sepconv_ffi", sources=sources, include_dirs=[_SRC, include],
      depends=[f"{_SRC}/geom.h", f"{_SRC}/kernels.inc"], language="c++",
      # Never -march=native: the library must run on any CPU of its architecture.
      extra_compile_args=["-std=c++17", "-O3", "-g0", "-fno-math-errno", "-Wno-attributes"],
      extra_link_args=["-pthread"], optional=(mode == "optional"))]


class _BuildExt(build_ext):
  """Compiles an extension's sources in parallel, one per CPU (the x86 build is four
  translation units). With ``-g0`` (no debug information, a tenth of the library's size)
  the extension builds in 7 s instead of 17 s on a 2-core host."""

  def build_extension(self, ext):
    compiler = self.compiler
    serial = compiler.compile
    if not all(hasattr(compiler, f) for f in ("_setup_compile", "_get_cc_args", "_compile")):
      return super().build_extension(ext)

    def compile(sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                extra_preargs=None, extra_postargs=None, depends=None):
      macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
          output_dir, macros, include_dirs, sources, depends, extra_postargs)
      cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)

      def one(obj):
        if obj in build:  # absent: up to date
          src, src_ext = build[obj]
          compiler._compile(obj, src, src_ext, cc_args, extra_postargs, pp_opts)
      with ThreadPoolExecutor(max(1, min(len(objects), os.cpu_count() or 1))) as pool:
        list(pool.map(one, objects))
      return objects

    compiler.compile = compile
    try:
      return super().build_extension(ext)
    finally:
      compiler.compile = serial


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": _BuildExt})
