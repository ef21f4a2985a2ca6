"""The worked example of the design notes: 28x28x192 input, 32 outputs, 5x5 kernel, no bias.

Each scheme is a point of the spectrum, named in the registry (``spectrum.WORKED_EXAMPLE``);
``sepconv cost seed`` prints their costs.
"""

from __future__ import annotations

from sepconv import cost, spectrum

INPUT_SIZE = 28
IN_CHANNELS = 192
OUT_CHANNELS = 32
KERNEL_SIZE = 5


def schemes() -> dict[str, spectrum.ConvSpec]:
  """The five schemes of the notes, plus the plain grouped conv with no pointwise stage.

  One per ``spectrum.WORKED_EXAMPLE`` entry, in its order, by full name.
  """
  return {name: spectrum.parse_point(example.point).spec(IN_CHANNELS, OUT_CHANNELS, KERNEL_SIZE)
          for name, example in spectrum.WORKED_EXAMPLE.items()}


def examples() -> tuple[spectrum.Example, ...]:
  """The schemes as spectrum points with their short table labels (the ``seed_example`` grid)."""
  return tuple(spectrum.WORKED_EXAMPLE.values())


def rows(dtype_bytes: int = 4) -> list[dict]:
  """One dict per scheme: name, per-stage weights, totals in both conventions."""
  out = []
  for name, spec in schemes().items():
    layers = cost.spec_cost(spec, INPUT_SIZE, dtype_bytes=dtype_bytes)
    total = cost.summarize(layers)
    out.append({
        "name": name,
        "params": total.params,
        "stage_params": {l.name: l.weights for l in layers},
        "mult_adds": total.mult_adds,
        "flops": total.flops,
        "xla_flops": total.xla_flops,
        "bytes": total.bytes,
        "ratio_to_standard": None,
    })
  base = out[0]["mult_adds"]
  for row in out:
    row["ratio_to_standard"] = row["mult_adds"] / base
  return out
