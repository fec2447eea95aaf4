"""``imageforge generate --server`` and ``imageforge edit --server`` against a real server: the console script as a
subprocess, its progress bar drawn from the server's stream events, previews saved from them, the server's
errors in its own words."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.api.server import Server


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("imageforge")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "imageforge", *args]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=full_env)


def load(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()
        return img


def half_mask(path: Path, size: tuple[int, int]) -> Path:
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, size[0] // 2, size[1]))
    mask.save(path)
    return path


def test_generate_on_a_server_streams_its_previews_and_progress(server: Server, tmp_path: Path) -> None:
    # FORCE_COLOR makes rich draw the bar into the captured output, as it would on a terminal.
    r = cli("generate", "a green star", "--server", server.base_url, "-o", "star.png", "--quality", "low",
            "--partials", "previews", "--partial-images", "2", cwd=tmp_path, env={"FORCE_COLOR": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr
    img = load(tmp_path / "star.png")
    assert (img.format, img.size) == ("PNG", (1024, 1024))
    previews = sorted((tmp_path / "previews").iterdir())
    assert [p.name for p in previews] == ["star-partial-0.png", "star-partial-1.png"]
    assert all(load(p).size == (1024, 1024) for p in previews)
    # Two partial-image events, then the completed one: each moved the bar.
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", r.stdout)  # the terminal's escape codes
    drawn = set(re.findall(r"(\d)/3 events", out))
    assert {"1", "2", "3"} <= drawn, out[-2000:]
    assert "star.png  (1024x1024, png)" in out


def test_generate_on_a_server_without_streaming_for_n_2(server: Server, tmp_path: Path) -> None:
    r = cli("generate", "two red hearts", "--server", server.v1, "--n", "2", "--quality", "low", "-o", "h.jpg",
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [load(tmp_path / f"h-{i}.jpg").format for i in (1, 2)] == ["JPEG", "JPEG"]


def test_edit_on_a_server_with_a_mask_and_previews(server: Server, tmp_path: Path) -> None:
    Image.new("RGB", (1024, 1024), (220, 30, 30)).save(tmp_path / "red.png")
    half_mask(tmp_path / "mask.png", (1024, 1024))
    r = cli("edit", "a blue heart", "-i", "red.png", "--mask", "mask.png", "--server", server.base_url,
            "--quality", "low", "--partials", "p", "-o", "out.webp", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = load(tmp_path / "out.webp")
    assert (out.format, out.size) == ("WEBP", (1024, 1024))
    # The kept (opaque) half of the mask is still the input's red.
    kept = out.convert("RGB").crop((700, 100, 1000, 900)).resize((1, 1)).getpixel((0, 0))
    assert isinstance(kept, tuple) and kept[0] > 180 and kept[2] < 80, kept
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["out-partial-0.webp", "out-partial-1.webp"]


def test_the_servers_refusal_in_its_own_words(server: Server, tmp_path: Path) -> None:
    Image.new("RGB", (1024, 1024), (220, 30, 30)).save(tmp_path / "red.png")
    Image.new("RGB", (1024, 1024)).save(tmp_path / "opaque.png")  # a mask needs an alpha channel
    r = cli("edit", "x", "-i", "red.png", "--mask", "opaque.png", "--server", server.base_url, "-o", "o.png",
            cwd=tmp_path, env={"COLUMNS": "40"})  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    # One line for the message however narrow the terminal (the terminal wraps it), one for the parameter.
    assert lines[0].startswith("error: The mask must be a PNG with an alpha channel") and "(HTTP 400)" in lines[0]
    assert "  param: mask" in lines
    assert not (tmp_path / "o.png").exists()


def test_a_server_that_is_not_there(tmp_path: Path) -> None:
    r = cli("generate", "x", "--server", "http://127.0.0.1:9", cwd=tmp_path)
    assert r.returncode == 2
    assert "cannot reach http://127.0.0.1:9/v1" in r.stderr and "Is the server running there?" in r.stderr


@pytest.mark.parametrize(
    "args,param",
    [
        (["--seed", "3"], "seed"),
        (["--n", "2", "--partials", "p"], "partial_images"),
        (["--server", "ftp://x"], "server"),
    ],
)
def test_what_a_server_cannot_do_is_refused_before_sending(tmp_path: Path, args: list[str], param: str) -> None:
    server = [] if "--server" in args else ["--server", "http://127.0.0.1:9"]
    r = cli("generate", "x", *server, *args, cwd=tmp_path)
    assert r.returncode == 2 and f"  param: {param}" in r.stderr.splitlines(), r.stderr
