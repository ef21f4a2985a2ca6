"""CIFAR loaders on archives fabricated in the exact on-disk format, corrupt ones rejected."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sepconv.data import download_cifar, load_cifar, load_dataset, CIFAR10, CIFAR100

PER_BATCH = 3


def _pixels(n: int, offset: int) -> np.ndarray:
  """(n, 3072) uint8 rows whose value encodes (image, channel, row, col) in closed form."""
  i, c, r, w = np.meshgrid(np.arange(n) + offset, np.arange(3), np.arange(32), np.arange(32),
                           indexing="ij")
  return ((7 * i + 50 * c + r + 3 * w) % 256).astype(np.uint8).reshape(n, 3072)


def _expected_image(i: int) -> np.ndarray:
  r, w, c = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
  return ((7 * i + 50 * c + r + 3 * w) % 256).astype(np.uint8)


def _files(spec, key_type):
  """{file name: pickled bytes} of a tiny CIFAR variant in the official layout."""
  k = (lambda s: s.encode()) if key_type is bytes else (lambda s: s)
  files, offset = {}, 0
  for name in (*spec.train_files, *spec.test_files):
    labels = [(offset + j) % spec.num_classes for j in range(PER_BATCH)]
    batch = {k("batch_label"): k(f"fabricated {name}"), k("data"): _pixels(PER_BATCH, offset),
             k(spec.label_key): labels,
             k("filenames"): [k(f"{offset + j}.png") for j in range(PER_BATCH)]}
    if spec is CIFAR100:
      batch[k("coarse_labels")] = [x % 20 for x in labels]
    data = pickle.dumps(batch, protocol=2)
    if key_type is bytes:
      # As in the official python 2 pickles, which name numpy.core, not numpy 2's numpy._core.
      data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
      assert b"cnumpy.core.multiarray\n" in data
    files[name] = data
    offset += PER_BATCH
  names = [k(f"class{j}") for j in range(spec.num_classes)]
  meta = {k(spec.names_key): names}
  if spec is CIFAR10:
    meta[k("num_cases_per_batch")] = PER_BATCH
  else:
    meta[k("coarse_label_names")] = [k(f"super{j}") for j in range(20)]
  files[spec.meta_file] = pickle.dumps(meta, protocol=2)
  return files


def make_folder(root: Path, spec, key_type=bytes, files=None) -> Path:
  folder = root / spec.folder
  folder.mkdir(parents=True)
  for name, data in (files or _files(spec, key_type)).items():
    (folder / name).write_bytes(data)
  return folder


def make_archive(root: Path, spec, key_type=bytes, files=None) -> Path:
  root.mkdir(parents=True, exist_ok=True)
  path = root / spec.archive
  with tarfile.open(path, "w:gz") as tar:
    for name, data in (files or _files(spec, key_type)).items():
      info = tarfile.TarInfo(f"{spec.folder}/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return path


def _check(ds, spec):
  n_train = PER_BATCH * len(spec.train_files)
  assert ds.name == spec.name and ds.num_classes == spec.num_classes
  assert ds.x_train.shape == (n_train, 32, 32, 3) and ds.x_test.shape == (PER_BATCH, 32, 32, 3)
  assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
  # Row-major R, G, B planes become HWC: check every pixel against the closed form.
  for i in (0, n_train - 1):
    np.testing.assert_array_equal(ds.x_train[i], _expected_image(i))
  np.testing.assert_array_equal(ds.x_test[1], _expected_image(n_train + 1))
  assert ds.y_train.tolist() == [j % spec.num_classes for j in range(n_train)]
  assert ds.class_names[:2] == ("class0", "class1") and len(ds.class_names) == spec.num_classes
  assert ds.augmentation.pad == 4 and ds.augmentation.flip


@pytest.mark.parametrize("spec", [CIFAR10, CIFAR100], ids=["cifar10", "cifar100"])
@pytest.mark.parametrize("key_type", [bytes, str])
@pytest.mark.parametrize("form", ["archive", "folder"])
def test_reads_archive_and_folder_with_bytes_or_str_keys(tmp_path, spec, key_type, form):
  make = make_archive if form == "archive" else make_folder
  made = make(tmp_path / "data", spec, key_type)
  _check(load_cifar(spec.name, made), spec)  # the archive / folder itself
  _check(load_dataset(spec.name, tmp_path / "data"), spec)  # the directory holding it


def test_folder_preferred_over_archive_and_str_paths(tmp_path):
  make_archive(tmp_path, CIFAR10)
  make_folder(tmp_path, CIFAR10)
  os.truncate(tmp_path / CIFAR10.archive, 50)  # would fail if read
  _check(load_cifar("cifar10", str(tmp_path)), CIFAR10)


def test_missing_path_names_it_and_the_expected_files(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    load_cifar("cifar10", tmp_path / "nowhere")
  assert str(tmp_path / "nowhere") in str(e.value)
  assert "cifar-10-batches-py" in str(e.value) and "cifar-10-python.tar.gz" in str(e.value)


def test_missing_batch_in_folder(tmp_path):
  folder = make_folder(tmp_path, CIFAR10)
  (folder / "data_batch_3").unlink()
  with pytest.raises(FileNotFoundError,
                     match=r"cifar-10-batches-py: CIFAR-10 folder lacks \['data_batch_3'\]"):
    load_cifar("cifar10", tmp_path)


def test_truncated_archive(tmp_path):
  path = make_archive(tmp_path, CIFAR10)
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])
  with pytest.raises(ValueError, match="corrupt or truncated CIFAR-10 archive") as e:
    load_cifar("cifar10", path)
  assert str(path) in str(e.value)


def test_archive_missing_member(tmp_path):
  files = _files(CIFAR100, bytes)
  del files["meta"]
  path = make_archive(tmp_path, CIFAR100, files=files)
  with pytest.raises(ValueError, match=r"archive lacks \['cifar-100-python/meta'\]"):
    load_cifar("cifar100", path)


@pytest.mark.parametrize("form", ["archive", "folder"])
def test_bad_pickle_names_file(tmp_path, form):
  files = _files(CIFAR10, bytes)
  files["data_batch_2"] = files["data_batch_2"][:40]
  made = (make_archive if form == "archive" else make_folder)(tmp_path, CIFAR10, files=files)
  with pytest.raises(ValueError, match="not a readable CIFAR pickle") as e:
    load_cifar("cifar10", made)
  assert f"{made}:data_batch_2" in str(e.value)


def test_pickle_with_foreign_global_is_refused(tmp_path):
  files = _files(CIFAR10, bytes)
  files["test_batch"] = pickle.dumps({b"data": os.getcwd}, protocol=2)  # a callable: refused
  make_folder(tmp_path, CIFAR10, files=files)
  with pytest.raises(ValueError, match="refusing to load global"):
    load_cifar("cifar10", tmp_path)


@pytest.mark.parametrize("batch, match", [
    ({b"data": np.zeros((3, 3000), np.uint8), b"labels": [0, 1, 2]},
     r"data shape \(=\(3, 3000\)\)"),
    ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}, "expected 3 integer labels"),
    ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 10]}, r"labels span \[0, 10\]"),
    ({b"data": np.full((3, 3072), 300, np.int32), b"labels": [0, 1, 2]}, "uint8 pixels"),
    ({b"pixels": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 2]}, "missing key 'data'"),
    ([1, 2, 3], "expected a pickled dict"),
])
def test_wrong_contents_name_the_file(tmp_path, batch, match):
  files = _files(CIFAR10, bytes)
  files["data_batch_4"] = pickle.dumps(batch, protocol=2)
  make_folder(tmp_path, CIFAR10, files=files)
  with pytest.raises(ValueError, match=match) as e:
    load_cifar("cifar10", tmp_path)
  assert "data_batch_4" in str(e.value)


def test_meta_class_count_checked(tmp_path):
  files = _files(CIFAR10, bytes)
  files["batches.meta"] = pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2)
  make_folder(tmp_path, CIFAR10, files=files)
  with pytest.raises(ValueError, match="2 class names under 'label_names', expected 10"):
    load_cifar("cifar10", tmp_path)


def test_official_urls_and_checksums():
  assert CIFAR10.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
  assert CIFAR10.md5 == "c58f30108f718f92721af3b95e74349a"
  assert CIFAR100.url == "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
  assert CIFAR100.md5 == "eb9058c3a382ffc7106e4002c42a8d85"


def test_download_checks_md5(tmp_path):
  source = make_archive(tmp_path / "server", CIFAR10)
  digest = hashlib.md5(source.read_bytes()).hexdigest()
  got = download_cifar(CIFAR10, tmp_path / "dl", url=source.as_uri(), md5=digest)
  assert got == tmp_path / "dl" / CIFAR10.archive and got.read_bytes() == source.read_bytes()
  _check(load_cifar("cifar10", tmp_path / "dl"), CIFAR10)
  with pytest.raises(ValueError, match="does not match the official cifar-10-python.tar.gz") as e:
    download_cifar(CIFAR10, tmp_path / "dl", url=source.as_uri())  # official MD5: mismatch
  assert str(got) in str(e.value)
  with pytest.raises(ValueError, match="could not download"):
    download_cifar(CIFAR10, tmp_path / "none", url=(tmp_path / "missing.tgz").as_uri())
  assert not (tmp_path / "none" / CIFAR10.archive).exists()


def test_download_flag_verifies_an_existing_archive(tmp_path):
  make_archive(tmp_path, CIFAR10)  # not the official bytes
  with pytest.raises(ValueError, match="MD5"):
    load_cifar("cifar10", tmp_path, download=True)
