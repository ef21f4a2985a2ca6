"""The git revision in every record: '+dirty' for changed code, not for regenerated results."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sepconv import provenance
from sepconv.records import RECORDS_FILE

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(cwd, *args):
  subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_results_changes_keep_the_revision_clean_code_changes_do_not(tmp_path):
  (tmp_path / "results" / "x").mkdir(parents=True)
  (tmp_path / "results" / "x" / RECORDS_FILE).write_text("{}\n")
  (tmp_path / "code.py").write_text("a = 1\n")
  _git(tmp_path, "init", "-q")
  _git(tmp_path, "add", "-A")
  _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                        text=True, check=True).stdout.strip()
  (tmp_path / "results" / "x" / RECORDS_FILE).unlink()  # the refresh procedure's first step
  assert provenance.git_revision.__wrapped__(str(tmp_path)) == head
  (tmp_path / "code.py").write_text("a = 2\n")
  assert provenance.git_revision.__wrapped__(str(tmp_path)) == head + "+dirty"
