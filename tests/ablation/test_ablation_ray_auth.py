"""The local Ray instance the ray executor starts: on the loopback only, and token-authenticated.

Everything here talks to 127.0.0.1 alone: the instance runs in a child process with a
home folder of its own (where Ray keeps the token it generates), and clients try it with
and without that token.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one local Ray instance at a time

ROOT = Path(__file__).resolve().parents[2]

INSTANCE = """
import sys
import psutil, ray
from sepconv.ablation.ray_executor import RayExecutor
RayExecutor(num_cpus=1).connect(quiet=True)
mine = {p.pid for p in psutil.Process().children(recursive=True)} | {psutil.Process().pid}
listening = sorted({c.laddr.ip for c in psutil.net_connections("inet")
                    if c.status == psutil.CONN_LISTEN and c.pid in mine})
print(ray.get_runtime_context().gcs_address, ray.util.get_node_ip_address(), *listening,
      flush=True)
sys.stdin.read()  # until the test closes it
ray.shutdown()
"""

CLIENT = """
import sys
import ray
try:
  ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
except Exception as e:
  print("refused:", type(e).__name__, str(e).splitlines()[0])
else:
  print("connected:", ray.cluster_resources().get("CPU"))
"""


def _env(home: Path, **extra) -> dict:
  env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
  return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
          # A client resolves 127.0.0.1 to the host's address unless told it is alone.
          "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **extra}


def _client(address: str, home: Path, **extra) -> str:
  done = subprocess.run([sys.executable, "-c", CLIENT, address], env=_env(home, **extra),
                        capture_output=True, text=True, timeout=180)
  return done.stdout.strip()


@pytest.mark.slow
def test_the_local_instance_listens_on_loopback_and_refuses_clients_without_its_token(tmp_path):
  server_home, client_home = tmp_path / "server", tmp_path / "client"
  server_home.mkdir()
  client_home.mkdir()
  instance = subprocess.Popen([sys.executable, "-c", INSTANCE], env=_env(server_home),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    address, node, *listening = instance.stdout.readline().split()
    assert address.startswith("127.0.0.1:") and node == "127.0.0.1"
    assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip in listening), listening
    token = (server_home / ".ray" / "auth_token").read_text().strip()
    assert token
    refused = _client(address, client_home)
    assert refused.startswith("refused: ConnectionError"), refused
    wrong = _client(address, client_home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 32)
    assert wrong.startswith("refused:"), wrong
    allowed = _client(address, client_home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    assert allowed == "connected: 1.0"
  finally:
    instance.stdin.close()
    try:
      instance.wait(timeout=60)
    except subprocess.TimeoutExpired:
      instance.kill()
      instance.wait()
