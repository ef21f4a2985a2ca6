"""Every path sepconv runs lowers for TPU and GPU, checked on a CPU host.

``jax.export.export(jax.jit(f), platforms=("tpu", "cuda"))`` applies each platform's
lowering rules (no compilation) and refuses custom calls the platform cannot run. Checked:
every implementation of the table that claims the platform, forward, input gradient and
kernel gradient at the spectrum's points; and whole jitted training steps with
``impl="auto"``: the Colab notebook's CIFAR-10 step, MobileNet v1 and v2 at three
spectrum points through the data-parallel (sharded) step, the NNX model, and
``sepconv.conv_general_dilated`` inside a plain Flax model.

``CANNOT_LOWER`` is what the implementation table says cannot lower where; a new entry
that claims fewer platforms (a Pallas TPU or GPU kernel) adds itself here, and anything
else that stops lowering fails.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx
from jax import export

import sepconv
import sepconv.nnx
from sepconv.conv import conv_geometry, ffi, grouped_conv, table

PLATFORMS = ("tpu", "cuda")


@pytest.fixture(autouse=True)
def _no_measuring(monkeypatch):
  # The host's (CPU's) choices are not under test here, and measuring them at training
  # sizes costs minutes; with measuring off, CPU's auto takes the heuristic, which runs
  # the C++ kernels where they are built.
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")

# What cannot be lowered for each platform (table.cannot_lower's names).
CANNOT_LOWER = {"tpu": {"ffi", "pallas_gpu"}, "cuda": {"ffi", "pallas_tpu"}}
CPU_ONLY_TARGETS = tuple(ffi.TARGETS.values())

# (label, x shape, kernel shape, groups, strides, dtype): the spectrum's points at one layer.
POINTS = (
    ("standard", (2, 8, 8, 16), (3, 3, 16, 16), 1, 1, "float32"),
    ("grouped g=4", (2, 8, 8, 16), (3, 3, 4, 16), 4, 1, "float32"),
    ("grouped g=8 stride 2", (2, 9, 9, 16), (3, 3, 8, 16), 2, 2, "float32"),
    ("depthwise", (2, 8, 8, 16), (3, 3, 1, 16), 16, 1, "float32"),
    ("depthwise bfloat16", (2, 8, 8, 16), (3, 3, 1, 16), 16, 1, "bfloat16"),
    ("depth multiplier 2", (2, 8, 8, 16), (3, 3, 1, 32), 16, 1, "float32"),
    ("pointwise", (2, 8, 8, 16), (1, 1, 16, 32), 1, 1, "float32"),
    ("grouped pointwise", (2, 8, 8, 16), (1, 1, 4, 16), 4, 1, "float32"),
)


def _export(fn, *args, platforms=PLATFORMS):
  """The exported module text of jit(fn) for ``platforms`` (lowering only, no compile)."""
  checks = [export.DisabledSafetyCheck.custom_call(target)
            for impl in table.IMPL_TABLE.values() for target in impl.custom_call_targets]
  exported = export.export(jax.jit(fn), platforms=platforms, disabled_checks=checks)(*args)
  return exported.mlir_module()


def _assert_portable(text: str):
  found = [t for t in CPU_ONLY_TARGETS if t in text]
  assert not found, f"CPU-only custom calls in a TPU/GPU module: {found}"


def test_the_table_lists_what_cannot_lower_and_why():
  for platform in PLATFORMS:
    listed = table.cannot_lower(platform)
    assert set(listed) == CANNOT_LOWER[platform]
    assert all(reason for reason in listed.values())
  assert "ffi" not in table.cannot_lower("cpu")


def _three_computations(impl: str, groups: int, strides: int):
  def fn(x, k, dy):
    y, vjp = jax.vjp(lambda a, b: grouped_conv(a, b, feature_group_count=groups,
                                               strides=strides, impl=impl), x, k)
    dx, dk = vjp(dy)
    return y, dx, dk
  return fn


@pytest.mark.parametrize("point", POINTS, ids=[p[0] for p in POINTS])
def test_every_implementation_lowers_where_it_claims_to(point):
  _, x_shape, k_shape, groups, strides, dtype = point
  x = jax.ShapeDtypeStruct(x_shape, jnp.dtype(dtype))
  k = jax.ShapeDtypeStruct(k_shape, jnp.dtype(dtype))
  geom = conv_geometry(x, k, feature_group_count=groups, strides=strides)
  dy = jax.ShapeDtypeStruct(geom.out_shape, jnp.dtype(dtype))
  refused = {platform: set() for platform in PLATFORMS}
  for name, impl in table.IMPL_TABLE.items():
    if impl.support(geom) is not None:
      continue  # cannot run this geometry anywhere (or not built here): nothing to lower
    fn = _three_computations(name, groups, strides)
    for platform in PLATFORMS:
      if impl.runs_on(platform):
        text = _export(fn, x, k, dy, platforms=(platform,))
        _assert_portable(text)
      else:
        with pytest.raises(ValueError, match=rf"impl \(='{name}'\) can be lowered for .* not "
                                             rf"for '{platform}'"):
          _export(fn, x, k, dy, platforms=(platform,))
        refused[platform].add(name)
  for platform in PLATFORMS:
    ran = {n for n, i in table.IMPL_TABLE.items() if i.support(geom) is None}
    assert refused[platform] == CANNOT_LOWER[platform] & ran


# ------------------------------------------------------------------ training steps


def _cifar_stand_in(batch: int):
  """CIFAR-10's shapes, classes and augmentation, without its images (lowering needs none)."""
  from sepconv.data import synthetic
  from sepconv.data.cifar import CIFAR_AUGMENTATION
  return synthetic.load_synthetic(num_train=batch, num_test=8, image_shape=(32, 32, 3),
                                  augmentation=CIFAR_AUGMENTATION)


def _train_step(config, dataset):
  """(fn, args): the project's data-parallel train step for ``config`` and its arguments."""
  from sepconv.train import step as step_lib
  from sepconv.train.loop import prepare
  from sepconv.train.parallel import batch_sharded
  setup = prepare(config, dataset)
  spec = setup.spec
  state = jax.eval_shape(lambda: step_lib.init_state(spec.module, spec.tx,
                                                      dataset.input_shape, 0))
  data = batch_sharded(setup.mesh)
  images = jax.ShapeDtypeStruct((config.batch_size, *dataset.input_shape),
                                dataset.x_train.dtype, sharding=data)
  labels = jax.ShapeDtypeStruct((config.batch_size,), jnp.int32, sharding=data)
  stats = jax.ShapeDtypeStruct((2, dataset.input_shape[-1]), jnp.float32)
  return (functools.partial(step_lib.train_step.__wrapped__, spec=spec),
          (state, images, labels, stats))


def _train_step_module(config, dataset, platforms=PLATFORMS) -> str:
  """The module text of that step exported for ``platforms``."""
  fn, args = _train_step(config, dataset)
  return _export(fn, *args, platforms=platforms)


def _notebook_config(conv: str):
  """The Colab notebook's run: the granularity experiment on CIFAR-10, its preset."""
  from sepconv import experiments
  from sepconv.ablation.grid import Variant
  return experiments.get("granularity").train_config("cifar10", Variant(conv), 0)


def test_the_notebooks_training_step_exports_for_tpu_without_cpu_only_custom_calls():
  """Extension built (where it is) and ``auto`` on: the TPU module holds no C++ kernel call."""
  config = _notebook_config("standard")  # dense 3x3 layers: CPU's auto runs the C++ kernels
  assert config.impl == "auto"
  dataset = _cifar_stand_in(config.batch_size)
  _assert_portable(_train_step_module(config, dataset, platforms=("tpu",)))
  if ffi.status().reason is None:  # the same step lowered for CPU calls them: the check has teeth
    fn, args = _train_step(config, dataset)
    assert any(t in jax.jit(fn).lower(*args).as_text() for t in CPU_ONLY_TARGETS)


@pytest.mark.slow
@pytest.mark.parametrize("conv", ["dws", "grouped:g=4", "dws:g=2,m=2"])
def test_the_notebooks_grid_exports_for_tpu_and_gpu(conv):
  config = _notebook_config(conv)
  _assert_portable(_train_step_module(config, _cifar_stand_in(config.batch_size)))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mobilenet_v1", "mobilenet_v2"])
@pytest.mark.parametrize("conv", ["standard", "dws:g=4", "dws"])
def test_mobilenet_training_steps_export_for_tpu_and_gpu(model, conv):
  from sepconv.train import default_config
  config = default_config("cifar10", model=model, conv=conv, width_multiplier=0.25,
                          batch_size=16)
  _assert_portable(_train_step_module(config, _cifar_stand_in(config.batch_size)))


def test_the_nnx_model_exports_for_tpu_and_gpu():
  model = sepconv.nnx.build_model("mobilenet_v1_shallow", num_classes=10, rngs=nnx.Rngs(0),
                                  conv="dws:g=2", width_multiplier=0.25, input_size=32)
  graphdef, state = nnx.split(model)
  params = nnx.state(model, nnx.Param)
  tx = optax.sgd(0.1, momentum=0.9)

  def step(state, opt_state, x, y):
    model = nnx.merge(graphdef, state)

    def loss_fn(model):
      logits, _ = model(x, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = nnx.grad(loss_fn)(model)
    params = nnx.state(model, nnx.Param)
    updates, opt_state = tx.update(grads, opt_state, params)
    nnx.update(model, optax.apply_updates(params, updates))
    return nnx.state(model), opt_state

  x = jax.ShapeDtypeStruct((8, 32, 32, 3), jnp.float32)
  y = jax.ShapeDtypeStruct((8,), jnp.int32)
  _assert_portable(_export(step, state, tx.init(params), x, y))


class _PlainFlaxNet(nn.Module):
  """A user's own Flax model, on sepconv through ``conv_general_dilated`` alone."""

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(nn.Conv, conv_general_dilated=sepconv.conv_general_dilated,
                             use_bias=False)
    x = nn.relu(conv(32, (3, 3))(x))
    x = nn.relu(conv(32, (3, 3), feature_group_count=32)(x))  # depthwise
    x = nn.relu(conv(64, (3, 3), feature_group_count=4, strides=2)(x))
    x = conv(64, (1, 1))(x)
    return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


def test_the_dropin_inside_a_plain_flax_model_exports_for_tpu_and_gpu():
  model = _PlainFlaxNet()
  x = jax.ShapeDtypeStruct((8, 32, 32, 3), jnp.float32)
  y = jax.ShapeDtypeStruct((8,), jnp.int32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape)))
  tx = optax.adamw(1e-3)

  def step(params, opt_state, x, y):
    loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()
    grads = jax.grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  _assert_portable(_export(step, params, jax.eval_shape(tx.init, params), x, y))
