"""CIFAR-10 and CIFAR-100 from the standard python archive (Krizhevsky 2009).

Reads ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` directly (no extraction
needed) or the folder they unpack to (``cifar-10-batches-py`` / ``cifar-100-python``).
Each batch file is a pickled dict with ``data``, a uint8 (N, 3072) array whose rows are
three 32x32 planes R, G, B in row-major order, and a list of labels (``labels`` for
CIFAR-10, ``fine_labels`` for CIFAR-100). The keys are bytes in the official files
(python 2 pickles, read with ``encoding='bytes'``); str keys are accepted too. Only
numpy arrays may be unpickled: any other global in a file is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import os
import pickle
import sys
import tarfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from sepconv.data.augment import Augmentation
from sepconv.data.dataset import Dataset, channel_stats

CIFAR_AUGMENTATION = Augmentation(pad=4, flip=True)


@dataclasses.dataclass(frozen=True)
class CifarSpec:
  """Where a CIFAR variant keeps what, and the official archive's URL and MD5."""

  name: str
  title: str
  folder: str
  archive: str
  url: str
  md5: str
  train_files: tuple[str, ...]
  test_files: tuple[str, ...]
  meta_file: str
  label_key: str
  names_key: str
  num_classes: int


CIFAR10 = CifarSpec(
    name="cifar10", title="CIFAR-10", folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
    meta_file="batches.meta", label_key="labels", names_key="label_names", num_classes=10)
CIFAR100 = CifarSpec(
    name="cifar100", title="CIFAR-100", folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    train_files=("train",), test_files=("test",),
    meta_file="meta", label_key="fine_labels", names_key="fine_label_names", num_classes=100)
SPECS = {spec.name: spec for spec in (CIFAR10, CIFAR100)}

# What numpy array pickles reference, plus the bytes codec python 3 pickles use at
# protocol 2. The official files name numpy.core; numpy 2 moved it to numpy._core.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}
_NUMPY_CORE = "numpy._core" if importlib.util.find_spec("numpy._core") else "numpy.core"


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """Unpickles plain containers and numpy arrays, nothing that could run code."""

  def find_class(self, module, name):
    canonical = module.replace("numpy._core.", "numpy.core.")
    if (canonical, name) not in _ALLOWED_GLOBALS:
      raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
    return super().find_class(canonical.replace("numpy.core.", _NUMPY_CORE + "."), name)


def _unpickle(data: bytes, where: str) -> dict:
  try:
    obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
  except Exception as e:  # a corrupt pickle can raise almost anything
    raise ValueError(f"{where}: not a readable CIFAR pickle ({type(e).__name__}: {e})") from None
  if not isinstance(obj, dict):
    raise ValueError(f"{where}: expected a pickled dict, found {type(obj).__name__}")
  return obj


def _get(batch: dict, key: str, where: str):
  for k in (key.encode(), key):
    if k in batch:
      return batch[k]
  found = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch)
  raise ValueError(f"{where}: missing key {key!r} (found {found})")


def _parse_batch(batch: dict, spec: CifarSpec, where: str) -> tuple[np.ndarray, np.ndarray]:
  """(N, 32, 32, 3) uint8 images and (N,) int32 labels from one batch dict."""
  data = np.asarray(_get(batch, "data", where))
  labels = np.asarray(_get(batch, spec.label_key, where))
  if data.ndim != 2 or data.shape[1] != 3072:
    raise ValueError(f"{where}: data shape (={data.shape}) must be (N, 3072) = 3 planes of 32x32")
  if (not np.issubdtype(data.dtype, np.integer) or data.min(initial=0) < 0
      or data.max(initial=0) > 255):
    raise ValueError(f"{where}: data must be uint8 pixels 0..255, found dtype {data.dtype}")
  if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{where}: expected {data.shape[0]} integer labels under "
                     f"{spec.label_key!r}, found shape {labels.shape} dtype {labels.dtype}")
  if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
    raise ValueError(f"{where}: labels span [{labels.min()}, {labels.max()}], expected "
                     f"[0, {spec.num_classes - 1}]")
  images = data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels.astype(np.int32)


def _read_files(source: Path, spec: CifarSpec) -> dict[str, bytes]:
  """Raw bytes of every file the variant needs, from the folder or the archive."""
  names = (*spec.train_files, *spec.test_files, spec.meta_file)
  if source.is_dir():
    missing = [n for n in names if not (source / n).is_file()]
    if missing:
      raise FileNotFoundError(f"{source}: {spec.title} folder lacks {missing} "
                              f"(expected {list(names)})")
    return {n: (source / n).read_bytes() for n in names}
  try:
    with tarfile.open(source, "r:gz") as tar:
      members = {m.name: m for m in tar.getmembers()}
      missing = [n for n in names if f"{spec.folder}/{n}" not in members]
      if missing:
        raise ValueError(f"{source}: {spec.title} archive lacks "
                         f"{[f'{spec.folder}/{n}' for n in missing]}")
      out = {}
      for n in names:
        f = tar.extractfile(members[f"{spec.folder}/{n}"])
        if f is None:
          raise ValueError(f"{source}: {spec.folder}/{n} is not a regular file")
        out[n] = f.read()
      return out
  except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
    raise ValueError(f"{source}: corrupt or truncated {spec.title} archive, expected a gzipped "
                     f"tar of {spec.folder}/ ({type(e).__name__}: {e})") from None


def _locate(path: Path, spec: CifarSpec) -> Path | None:
  """The folder or archive at or directly under ``path``, folder first."""
  if path.is_file():
    return path
  if path.is_dir():
    if (path / spec.meta_file).exists() or path.name == spec.folder:
      return path
    for candidate in (path / spec.folder, path / spec.archive):
      if candidate.exists():
        return candidate
  return None


def file_md5(path: str | os.PathLike) -> str:
  """Hex MD5 of a file, read in 1 MiB chunks."""
  digest = hashlib.md5()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def download_cifar(spec: CifarSpec, data_dir: str | os.PathLike, *, url: str | None = None,
                   md5: str | None = None) -> Path:
  """Downloads the official archive into ``data_dir`` and checks its MD5.

  Args:
    spec: CIFAR10 or CIFAR100.
    data_dir: directory to write ``spec.archive`` into (created if missing).
    url: source URL; defaults to the official one.
    md5: expected hex digest; defaults to the official archive's.

  Returns:
    Path of the verified archive. An existing archive is verified, not fetched again.
  """
  url = url or spec.url
  md5 = md5 or spec.md5
  data_dir = Path(data_dir)
  target = data_dir / spec.archive
  if not target.exists():
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    print(f"downloading {url} to {target}", file=sys.stderr)
    try:
      with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
        for chunk in iter(lambda: response.read(1 << 20), b""):
          f.write(chunk)
    except OSError as e:
      raise ValueError(f"could not download {url} to {target}: {e}") from None
    partial.replace(target)
  actual = file_md5(target)
  if actual != md5:
    raise ValueError(f"{target}: MD5 {actual} does not match the official {spec.archive} "
                     f"({md5}); delete it and download again")
  return target


def load_cifar(name: str, data_dir: str | os.PathLike, *, download: bool = False,
               augmentation: Augmentation = CIFAR_AUGMENTATION) -> Dataset:
  """CIFAR-10 or CIFAR-100 as uint8 (N, 32, 32, 3) images with the official split.

  Args:
    name: 'cifar10' or 'cifar100' (fine labels).
    data_dir: the archive, the extracted folder, or a directory holding either.
    download: fetch the official archive into ``data_dir`` when neither is there,
      and check its MD5.
    augmentation: training augmentation; random crop with padding 4 and horizontal
      flip by default.

  Returns:
    A ``Dataset`` (50,000 train and 10,000 test images for the official files).
  """
  if name not in SPECS:
    raise ValueError(f"CIFAR variant (={name!r}) must be one of {sorted(SPECS)}")
  spec = SPECS[name]
  path = Path(data_dir).expanduser()
  source = _locate(path, spec)
  if download and (source is None or source.is_file()):
    source = download_cifar(spec, path.parent if path.name == spec.archive else path)
  if source is None:
    raise FileNotFoundError(
        f"no {spec.title} data at {path}: expected the folder {spec.folder}/ or the archive "
        f"{spec.archive} there (or pass download=True / --download to fetch it)")
  files = _read_files(source, spec)

  def split(names):
    parts = [_parse_batch(_unpickle(files[n], f"{source}:{n}"), spec, f"{source}:{n}")
             for n in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

  x_train, y_train = split(spec.train_files)
  x_test, y_test = split(spec.test_files)
  meta_where = f"{source}:{spec.meta_file}"
  names = _get(_unpickle(files[spec.meta_file], meta_where), spec.names_key, meta_where)
  class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
  if len(class_names) != spec.num_classes:
    raise ValueError(f"{meta_where}: {len(class_names)} class names under {spec.names_key!r}, "
                     f"expected {spec.num_classes}")
  mean, std = channel_stats(x_train)
  return Dataset(
      name=spec.name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
      num_classes=spec.num_classes, mean=mean, std=std, augmentation=augmentation,
      class_names=class_names)
