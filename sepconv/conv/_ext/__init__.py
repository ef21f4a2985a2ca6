"""C++ sources of sepconv's CPU convolution kernels; the built library lands here.

Nothing here is imported: ``sepconv.conv.ffi`` loads the shared library with ctypes and
hands its XLA FFI handlers to ``jax.ffi``.
"""
