"""Grouped kernel layouts: a grouped HWIO kernel and its dense block-diagonal equivalent.

A grouped kernel (kh, kw, C_in / G, C_out) in ``lax.conv_general_dilated``'s layout gives
output channel o to group o // (C_out / G), which reads input channels
[g * C_in / G, (g + 1) * C_in / G). Its dense equivalent (kh, kw, C_in, C_out) holds
those blocks on the diagonal and zeros elsewhere: one dense convolution with it equals
the grouped convolution. Numpy arrays stay numpy (float64 stays float64, for the
analyses); anything else is computed with ``jax.numpy``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def block_diagonal(kernel, groups: int):
  """(kh, kw, ci, G*co) grouped kernel -> (kh, kw, G*ci, G*co) dense kernel, zeros off-group."""
  xp = np if isinstance(kernel, np.ndarray) else jnp
  kh, kw, ci, cout = kernel.shape
  if groups < 1 or cout % groups:
    raise ValueError(f"out_channels (={cout}) must be divisible by feature_group_count (={groups})")
  co = cout // groups
  k = kernel.reshape(kh, kw, ci, groups, co)
  eye = xp.eye(groups, dtype=kernel.dtype)
  dense = k[:, :, None, :, :, :] * eye.reshape(1, 1, groups, 1, groups, 1)  # (kh,kw,G,ci,G,co)
  return dense.reshape(kh, kw, groups * ci, cout)
