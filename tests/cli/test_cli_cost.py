"""`sepconv cost`: tables, JSON, and one-line errors."""

import json
import subprocess
import sys

import pytest

from sepconv.cli.main import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
  try:
    code = main(list(argv))
  except SystemExit as e:  # argparse exits on its own errors
    code = e.code
  out, err = capsys.readouterr()
  return code, out, err


def test_cost_seed_json(capsys):
  code, out, _ = run_cli(capsys, "cost", "seed", "--json")
  assert code == 0
  rows = json.loads(out)
  assert [r["params"] for r in rows[:5]] == [153_600, 350_208, 10_944, 43_776, 25_344]
  assert rows[0]["mult_adds"] == 120_422_400
  assert all({"name", "params", "mult_adds"} <= set(r) for r in rows)
  assert len(rows) == 6


def test_cost_seed_table(capsys):
  code, out, _ = run_cli(capsys, "cost", "seed")
  assert code == 0 and "120,422,400" in out and "19,200 + 6,144" in out


def test_cost_layer_json(capsys):
  code, out, _ = run_cli(capsys, "cost", "layer", "--input-size", "28", "--in-channels", "192",
                         "--out-channels", "32", "--kernel", "5", "--group-size", "4", "--pointwise")
  assert code == 0
  code, out, _ = run_cli(capsys, "cost", "layer", "--input-size", "28", "--in-channels", "192",
                         "--out-channels", "32", "--kernel", "5", "--group-size", "4", "--pointwise",
                         "--json")
  obj = json.loads(out)
  assert obj["params"] == 25_344 and obj["mult_adds"] == 25_344 * 784
  assert obj["flops"] == 2 * obj["mult_adds"] and obj["bytes"] > 0
  assert [s["name"] for s in obj["stages"]] == ["spatial", "pointwise"]


@pytest.mark.parametrize("argv,message", [
    (["cost", "layer", "--in-channels", "30", "--out-channels", "32", "--group-size", "4"],
     "spatial input channels (=30) must be divisible by group_size (=4)"),
    (["cost", "layer", "--in-channels", "x", "--out-channels", "3"], "invalid int value: 'x'"),
    (["cost", "layer", "--in-channels", "8", "--out-channels", "8", "--padding", "FULL"], "--padding (='FULL')"),
    (["cost", "layer", "--in-channels", "8", "--out-channels", "8", "--input-size", "2", "--kernel", "5",
      "--padding", "VALID"], "input size (=2)"),
    (["cost", "seed", "--dtype", "float7"], "--dtype (='float7')"),
    (["cost", "nothing"], "invalid choice: 'nothing'"),
])
def test_bad_arguments_exit_nonzero_with_one_line(capsys, argv, message):
  code, out, err = run_cli(capsys, *argv)
  assert code != 0
  assert message in err
  assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_module_runs():
  proc = subprocess.run([sys.executable, "-m", "sepconv.cli", "cost", "layer", "--in-channels", "8",
                         "--out-channels", "9", "--group-size", "2"], capture_output=True, text=True)
  assert proc.returncode == 2
  assert proc.stderr.strip() == (
      "sepconv cost: error: spatial output channels (=9) must be divisible by the number of groups "
      "(=4 = 8 channels / group_size 2)")
