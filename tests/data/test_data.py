"""Digits, synthetic data, the Dataset record and on-device augmentation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from sepconv.data import (augment, Augmentation, channel_stats, Dataset, load_dataset, load_digits,
                          load_synthetic)


@pytest.fixture(scope="module")
def digits():
  return load_digits()


def test_digits_fixed_stratified_split(digits):
  assert digits.name == "digits" and digits.num_classes == 10
  assert digits.x_train.shape == (1437, 8, 8, 1) and digits.x_test.shape == (360, 8, 8, 1)
  assert digits.input_shape == (8, 8, 1)
  assert digits.x_train.dtype == np.uint8 and digits.x_train.max() == 16
  # Stratified: every class holds 35-37 of the 360 test images (sklearn has 174-183 per class).
  assert set(np.bincount(digits.y_test, minlength=10)) <= {35, 36, 37}
  again = load_digits()
  np.testing.assert_array_equal(again.x_test, digits.x_test)
  np.testing.assert_array_equal(again.y_train, digits.y_train)
  assert not digits.augmentation.enabled


def test_normalize_gives_zero_mean_unit_std_on_train(digits):
  x = np.asarray(jax.jit(digits.normalize)(digits.x_train))
  assert x.dtype == np.float32
  assert abs(x.mean()) < 1e-5 and abs(x.std() - 1) < 1e-5


def test_channel_stats_closed_form():
  x = np.zeros((2, 1, 2, 2), np.uint8)
  x[..., 0] = [[[0, 2]], [[4, 6]]]
  x[..., 1] = 5
  mean, std = channel_stats(x, chunk=1)
  assert mean == (3.0, 5.0)
  assert std[0] == pytest.approx(np.sqrt(5.0)) and std[1] == 1.0  # constant channel: std 1


def test_synthetic_seeded_any_shape():
  a = load_synthetic(num_train=40, num_test=10, image_shape=(6, 5, 2), num_classes=4, seed=3)
  b = load_synthetic(num_train=40, num_test=10, image_shape=(6, 5, 2), num_classes=4, seed=3)
  c = load_synthetic(num_train=40, num_test=10, image_shape=(6, 5, 2), num_classes=4, seed=4)
  assert a.x_train.shape == (40, 6, 5, 2) and a.input_shape == (6, 5, 2) and a.num_classes == 4
  np.testing.assert_array_equal(a.x_train, b.x_train)
  np.testing.assert_array_equal(a.y_test, b.y_test)
  assert not np.array_equal(a.x_train, c.x_train)
  assert np.bincount(a.y_train).tolist() == [10, 10, 10, 10]
  default = load_dataset("synthetic")
  assert default.input_shape == (32, 32, 3) and default.num_train == 2048


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_shape=(8, 8)), "image_shape"),
    (dict(num_classes=1), "num_classes"),
])
def test_synthetic_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    load_synthetic(**kwargs)


def test_load_dataset_rejects_unknown_and_missing_dir():
  with pytest.raises(ValueError, match=r"dataset \(='mnist'\) must be one of"):
    load_dataset("mnist")
  with pytest.raises(ValueError, match="needs a data_dir"):
    load_dataset("cifar10")


def test_dataset_validates_shapes_and_labels():
  x = np.zeros((4, 2, 2, 1), np.uint8)
  ok = dict(name="t", x_train=x, y_train=np.zeros(4, np.int32), x_test=x,
            y_test=np.zeros(4, np.int32), num_classes=2, mean=(0.0,), std=(1.0,))
  Dataset(**ok)
  with pytest.raises(ValueError, match=r"y_train labels span \[0, 5\]"):
    Dataset(**{**ok, "y_train": np.array([0, 1, 5, 0], np.int32)})
  with pytest.raises(ValueError, match=r"y_test shape \(=\(3,\)\) must be \(4,\)"):
    Dataset(**{**ok, "y_test": np.zeros(3, np.int32)})
  with pytest.raises(ValueError, match="one per channel"):
    Dataset(**{**ok, "mean": (0.0, 0.0)})


def _batch(n=16, h=6, w=5, c=2):
  return jnp.arange(n * h * w * c, dtype=jnp.float32).reshape(n, h, w, c)


def test_augment_identity_when_off():
  x = _batch()
  assert augment(jax.random.key(0), x, pad=0, flip=False) is x
  assert not Augmentation().enabled and Augmentation(pad=1).enabled


def test_flip_mirrors_some_images_and_keeps_others():
  x = _batch(n=64)
  y = np.asarray(augment(jax.random.key(1), x, pad=0, flip=True))
  flipped = [bool(np.array_equal(y[i], np.asarray(x)[i, :, ::-1])) for i in range(64)]
  kept = [bool(np.array_equal(y[i], np.asarray(x)[i])) for i in range(64)]
  assert all(f != k for f, k in zip(flipped, kept))
  assert 16 < sum(flipped) < 48


def test_crop_is_a_window_of_the_zero_padded_image():
  pad = 2
  x = np.asarray(_batch(n=32)) + 1  # no zeros in the image, so padding is recognisable
  y = np.asarray(jax.jit(lambda k, v: augment(k, v, pad=pad, flip=False))(jax.random.key(2), x))
  padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  offsets = set()
  for i in range(len(x)):
    matches = [(a, b) for a in range(2 * pad + 1) for b in range(2 * pad + 1)
               if np.array_equal(y[i], padded[i, a:a + 6, b:b + 5])]
    assert matches, f"image {i} is not a crop"
    offsets.update(matches)
  assert len(offsets) > 5  # offsets vary across the batch


def test_augment_seeded_and_independent_of_sharding():
  x = _batch(n=16)
  aug = Augmentation(pad=2, flip=True)
  a = jax.jit(aug)(jax.random.key(5), x)
  np.testing.assert_array_equal(a, jax.jit(aug)(jax.random.key(5), x))
  assert not np.array_equal(a, jax.jit(aug)(jax.random.key(6), x))
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
  b = jax.jit(aug, out_shardings=NamedSharding(mesh, P("data")))(jax.random.key(5), sharded)
  np.testing.assert_array_equal(a, b)
