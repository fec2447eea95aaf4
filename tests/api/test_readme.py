"""The API examples of the README and docs/ work as written (only the port differs: the test server's own)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
from PIL import Image

from tests.api.server import Server
from tests.docs import code_block


def _exec(code: str) -> None:
    """Run a README snippet as a script would, then close the SDK clients it made: a script's process exit
    closes them, but here their pooled sockets would otherwise be found unclosed by a later test's GC."""
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        for value in namespace.values():
            if isinstance(value, openai.OpenAI):
                value.close()


def test_python_snippet(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = code_block("python", "from openai import OpenAI").replace("http://127.0.0.1:8000/v1", server.v1)
    monkeypatch.chdir(tmp_path)
    _exec(code)
    with Image.open(tmp_path / "heart.png") as img:
        assert img.size == (1024, 1024) and img.mode == "RGBA"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_example(server: Server) -> None:
    cmd = code_block("bash", "curl -s").replace("http://127.0.0.1:8000", server.base_url).replace("\\\n", " ")
    out = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=300, check=True).stdout
    body = json.loads(out)
    assert body["data"][0]["url"].startswith(server.v1) and "natural" in body["data"][0]["revised_prompt"]


def test_streaming_snippet(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = code_block("python", "partial_images=2").replace("http://127.0.0.1:8000/v1", server.v1)
    monkeypatch.chdir(tmp_path)
    _exec(code)
    with Image.open(tmp_path / "star.png") as img:
        assert img.size == (1024, 1024)


def test_responses_snippet(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = code_block("python", "client.responses.create").replace("http://127.0.0.1:8000/v1", server.v1)
    monkeypatch.chdir(tmp_path)
    _exec(code)
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"ig_[0-9a-f]{32} completed generate a red heart", out[0]), out
    assert out[1:] == ["preview 0", "completed"]
    with Image.open(tmp_path / "blue-heart.png") as img:
        assert img.size == (1024, 1024)


def test_edit_snippet(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code = code_block("python", "client.images.edit").replace("http://127.0.0.1:8000/v1", server.v1)
    monkeypatch.chdir(tmp_path)
    _exec(code)
    assert capsys.readouterr().out.split() == ["1024x1024", "True"]
    with Image.open(tmp_path / "edited-heart.png") as img:
        assert img.size == (1024, 1024) and img.mode == "RGBA"


def test_schemathesis_command(server: Server, tmp_path: Path) -> None:
    """The README's fuzzing command, against the test server: no 5xx, every answer as the schema says."""
    st = shutil.which("st")
    assert st is not None, "schemathesis comes with the test extras"
    cmd = code_block("bash", "st run").replace("http://127.0.0.1:8000", server.base_url).replace("\\\n", " ")
    run = subprocess.run([st, *shlex.split(cmd)[1:], "--no-color"], capture_output=True, text=True, timeout=1200,
                         cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    found = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert found is not None and found.group(1) == found.group(2), run.stdout[-3000:]
