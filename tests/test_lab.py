"""`make lab` serves the notebooks: JupyterLab from the project's environment lists every
notebook and opens it with the `python3` kernel (checked through its REST API)."""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from dario_utils.core import paths


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def lab_server(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={paths.NOTEBOOKS_DIR}",
         "--ServerApp.open_browser=False", "--allow-root"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ,
                                                                     "JUPYTER_RUNTIME_DIR": str(tmp_path)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{base}/api/status", token)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start") from None
                time.sleep(0.5)
        yield base, token
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_lab_lists_every_notebook_with_the_python3_kernel(lab_server):
    base, token = lab_server
    listed = {item["name"] for item in _get(f"{base}/api/contents/", token)["content"]}
    expected = {nb.name for nb in paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")}
    assert len(expected) == 7 and expected <= listed
    assert "python3" in _get(f"{base}/api/kernelspecs", token)["kernelspecs"]
    for name in sorted(expected):
        model = _get(f"{base}/api/contents/{name}", token)
        assert model["type"] == "notebook"
        assert model["content"]["metadata"]["kernelspec"]["name"] == "python3"
