"""The Colab notebook, executed headless in a real Jupyter kernel on CPU (papermill).

Three ways in: the source already importable with explicit parameters (as CI has it); a
first-time user's kernel without sepconv and without any source, which must stop at the
install cell with one line saying what to do; and a first-time user's ``QUICK`` run, which
installs sepconv from an uploaded archive into a fresh environment holding only the
runtime's packages and ends with every table and plot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill", reason="the notebook runs through papermill")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "experiments" / "granularity_colab.ipynb"


def _outputs(cell, kind):
  return [o for o in cell.get("outputs", []) if o.get("output_type") == kind]


def _code(notebook):
  return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def _text(cells) -> str:
  return "".join(o.get("text", "") for c in cells for o in _outputs(c, "stream"))


def _cpu_only(monkeypatch, tmp_path):
  monkeypatch.setenv("SEPCONV_AUTOTUNE", "0")  # the heuristic: measuring would dominate
  monkeypatch.setenv("SEPCONV_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("XLA_FLAGS", "")  # one CPU device, as a user has


def _assert_tables_and_plots_shown(code, out_dir: Path):
  text = _text(code)
  shown = [o for c in code for o in _outputs(c, "display_data")]
  markdown = [o["data"]["text/markdown"] for o in shown if "text/markdown" in o["data"]]
  tables = sorted((out_dir / "tables").glob("*.md"))
  assert tables and sorted(markdown) == sorted(t.read_text() for t in tables)  # as rendered
  images = [o for o in shown if "image/png" in o["data"]]
  pngs = sorted((out_dir / "plots").glob("*.png"))
  assert pngs and len(images) == len(pngs)
  for png in pngs:
    assert png.name in text  # each plot is named before it is shown


@pytest.mark.slow
def test_notebook_runs_every_cell_and_shows_every_table_and_plot(tmp_path, monkeypatch):
  _cpu_only(monkeypatch, tmp_path)
  executed = tmp_path / "executed.ipynb"
  notebook = papermill.execute_notebook(
      str(NOTEBOOK), str(executed), cwd=str(ROOT), kernel_name="python3", progress_bar=False,
      parameters={"SEPCONV_SOURCE": "", "DATASET": "digits", "SEEDS": "0", "EPOCHS": 1,
                  "VARIANTS": ["standard", "dws"], "RESULTS": str(tmp_path / "sepconv"),
                  "MOUNT_DRIVE": False})
  code = _code(notebook)
  assert all(c.get("execution_count") for c in code), "every code cell ran"
  assert not any(_outputs(c, "error") for c in code)
  out_dir = tmp_path / "sepconv" / "results" / "granularity_digits"
  records = (out_dir / "records.jsonl").read_text().splitlines()
  assert len(records) == 2 * 5 + 2 + 5 + 3  # train (5 folds), bench, cka layers, decomposition
  text = _text(code)
  assert "backend cpu" in text and "versions pip kept" in text and "WARNING" not in text
  # The estimate, before the sweep: one row per variant, 1 seed x 5 folds, 1 epoch of 44 steps.
  assert "| standard | 3,030,016 |" in text and "| 5 x 44 |" in text and "estimated" in text
  _assert_tables_and_plots_shown(code, out_dir)


# What a first-time user's kernel has: the runtime's packages, sepconv not among them.
def _importable_without_repo(python: str, cwd: Path) -> bool:
  probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('sepconv') is None)"
  return subprocess.run([python, "-c", probe], cwd=cwd, env=_env_without_repo()).returncode == 0


def _env_without_repo() -> dict:
  import os
  return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.parametrize("source, says", [
    ("", "sepconv is not installed and no source was found: upload the repository as an "
         "archive named sepconv*.zip or sepconv*.tar.gz to /content or MyDrive"),
    ("git+https://<your clone's URL>", "is the README's placeholder: put your clone's URL there"),
    ("/nonexistent/sepconv-main.zip", "SEPCONV_SOURCE (=/nonexistent/sepconv-main.zip) does not "
                                      "exist: upload the repository as an archive"),
])
def test_without_a_source_the_notebook_stops_with_one_line_saying_what_to_do(
    tmp_path, monkeypatch, source, says):
  _cpu_only(monkeypatch, tmp_path)
  monkeypatch.delenv("PYTHONPATH", raising=False)  # the repository is not on the kernel's path
  fresh = tmp_path / "content"
  fresh.mkdir()
  if _importable_without_repo(sys.executable, fresh):
    pytest.skip("sepconv is installed in this environment: a fresh kernel would find it")
  executed = tmp_path / "executed.ipynb"
  params = {"SEPCONV_SOURCE": source} if source else {}  # "" is the notebook's default
  with pytest.raises(papermill.PapermillExecutionError) as raised:
    papermill.execute_notebook(str(NOTEBOOK), str(executed), cwd=str(fresh),
                               kernel_name="python3", progress_bar=False, parameters=params)
  assert raised.value.ename == "SetupError" and says in raised.value.evalue
  notebook = nbformat.read(executed, as_version=4)
  code = _code(notebook)
  errors = [o for c in code for o in _outputs(c, "error")]
  assert len(errors) == 1 and errors[0]["traceback"] == [errors[0]["evalue"]]  # one line
  assert "Traceback" not in _text(code) and "CalledProcessError" not in _text(code)
  stopped = next(i for i, c in enumerate(code) if _outputs(c, "error"))
  assert "SetupError" in "".join(code[stopped]["source"])  # the install cell
  assert not any(c.get("execution_count") for c in code[stopped + 1:])  # nothing ran after it


def _fresh_environment(tmp_path: Path) -> tuple[str, Path]:
  """A virtual environment holding only this interpreter's packages (no sepconv), as a kernel."""
  import site
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
  purelib = subprocess.run([python, "-c", where], check=True, capture_output=True,
                           text=True).stdout.strip()
  # The runtime's preinstalled packages (Colab's jax, flax, ...): this environment's.
  Path(purelib, "runtime_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
  spec = tmp_path / "jupyter" / "kernels" / "fresh"
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "fresh", "language": "python"}))
  return python, tmp_path / "jupyter"


def _source_archive(path: Path) -> None:
  """The repository's files as GitHub's 'Download ZIP' lays them out, as a .tar.gz."""
  listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                          capture_output=True, text=True)
  if listed.returncode:
    pytest.skip("the source archive is made from a git checkout")
  with tarfile.open(path, "w:gz") as tar:
    for name in listed.stdout.splitlines():
      if (ROOT / name).is_file():
        tar.add(ROOT / name, arcname=f"sepconv-main/{name}")


@pytest.mark.slow
def test_quick_first_look_installs_from_an_uploaded_archive_and_renders_tables_and_plots(
    tmp_path, monkeypatch):
  import jax
  _cpu_only(monkeypatch, tmp_path)
  monkeypatch.delenv("PYTHONPATH", raising=False)
  python, jupyter = _fresh_environment(tmp_path)
  content = tmp_path / "content"  # the working folder, where a user's upload lands
  content.mkdir()
  if _importable_without_repo(python, content):
    pytest.skip("sepconv is installed in this environment: a fresh kernel would find it")
  _source_archive(content / "sepconv-main.tar.gz")
  monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
  # Offline and quick: the build uses the environment's setuptools; every requirement is met.
  monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")
  monkeypatch.setenv("PIP_NO_INDEX", "1")
  results = tmp_path / "sepconv"
  notebook = papermill.execute_notebook(
      str(NOTEBOOK), str(tmp_path / "executed.ipynb"), cwd=str(content), kernel_name="fresh",
      progress_bar=False, parameters={"QUICK": True, "RESULTS": str(results)})
  code = _code(notebook)
  assert all(c.get("execution_count") for c in code), "every code cell ran"
  assert not any(_outputs(c, "error") for c in code)
  text = _text(code)
  assert f"installing sepconv from {content / 'sepconv-main.tar.gz'}" in text
  assert f"from {tmp_path / 'venv'}" in text  # the installed copy, not the repository
  assert f"'jax': '{jax.__version__}'" in text and "WARNING" not in text
  assert "| standard | 3,030,016 |" in text and "| g=1 +pw | 394,880 |" in text
  assert "| 5 x 88 |" in text  # 5 folds x (2 epochs x 44 steps of 32 digits)
  out_dir = results / "results" / "granularity_digits_quick"
  records = [json.loads(line) for line in (out_dir / "records.jsonl").read_text().splitlines()]
  train = [r for r in records if r["kind"] == "train"]
  assert sorted((r["config"]["label"], r["seed"], r["config"]["fold"]) for r in train) == [
      (label, 0, fold) for label in ("g=1 +pw", "standard") for fold in range(5)]
  assert {r["config"]["epochs"] for r in train} == {2}
  _assert_tables_and_plots_shown(code, out_dir)
