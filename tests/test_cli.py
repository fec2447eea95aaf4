"""The real ``imageforge`` console script, run as a subprocess on the embedded model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


def load(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()
        return img


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("imageforge") or sys.executable
    cmd = [exe, *args] if exe.endswith("imageforge") else [exe, "-m", "imageforge", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_generate_writes_a_real_image(tmp_path: Path) -> None:
    r = run("generate", "a red apple", "-o", "apple.png", "--size", "256x256", "--quality", "low", "--seed", "7",
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    img = load(tmp_path / "apple.png")
    assert img.format == "PNG" and img.size == (256, 256) and img.mode == "RGB"
    assert "seed 7" in r.stdout


def test_generate_plans_with_complexity(tmp_path: Path) -> None:
    common = ("--size", "64x64", "--quality", "low", "--seed", "7")
    for complexity in ("low", "high"):
        r = run("generate", "a red apple", "-o", f"{complexity}.png", "--complexity", complexity, *common, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    low, high = (load(tmp_path / f"{c}.png").tobytes() for c in ("low", "high"))
    assert low != high, "seed 7's plan draws from another of its 8 candidate starts than the seed's own"
    r = run("generate", "a red apple", "--complexity", "extreme", *common, cwd=tmp_path)
    assert r.returncode == 2 and "complexity" in r.stderr


def test_generate_n_formats_and_transparency(tmp_path: Path) -> None:
    r = run("generate", "a blue heart", "-o", "out/heart.webp", "--n", "2", "--background", "transparent",
            "--size", "1536x1024", "--quality", "low", "--model", "gpt-image-1", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    for i in (1, 2):
        img = load(tmp_path / "out" / f"heart-{i}.webp")
        assert img.format == "WEBP" and img.size == (1536, 1024) and img.mode == "RGBA"
        assert img.getchannel("A").getextrema()[0] == 0


def test_format_flag_names_the_default_file(tmp_path: Path) -> None:
    r = run("generate", "a sun", "--format", "jpeg", "--size", "64x64", "--quality", "low", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert load(tmp_path / "image.jpg").format == "JPEG"


@pytest.mark.parametrize(
    "args,param",
    [
        (["--size", "100x100", "--model", "gpt-image-1"], "size"),
        (["--format", "jpeg", "--background", "transparent"], "background"),
        (["--n", "2", "--model", "dall-e-3"], "n"),
        (["--model", "no-such-model"], "model"),
        (["-o", "x.gif"], "output"),
    ],
)
def test_bad_requests_exit_2_naming_the_parameter(tmp_path: Path, args: list[str], param: str) -> None:
    r = run("generate", "a cat", *args, cwd=tmp_path)
    assert r.returncode == 2
    assert f"param: {param}" in r.stderr.replace("\n", " ")
    assert not list(tmp_path.iterdir()), "nothing is written on error"


def test_generate_saves_previews_in_process(tmp_path: Path) -> None:
    r = run("generate", "a red apple", "-o", "apple.webp", "--size", "256x256", "--quality", "medium",
            "--partials", "previews", "--partial-images", "3", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "previews").iterdir())
    assert names == [f"apple-partial-{i}.webp" for i in range(3)]
    final = load(tmp_path / "apple.webp")
    previews = [load(tmp_path / "previews" / n) for n in names]
    assert all(p.size == final.size == (256, 256) and p.format == "WEBP" for p in previews)
    # Previews are the denoising's estimates on the way, not copies of the final image.
    assert previews[0].tobytes() != final.tobytes()


def test_edit_in_process_keeps_the_unmasked_half(tmp_path: Path) -> None:
    Image.new("RGB", (256, 256), (220, 30, 30)).save(tmp_path / "red.png")
    mask = Image.new("RGBA", (256, 256), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 128, 256))
    mask.save(tmp_path / "mask.png")
    r = run("edit", "a blue heart", "-i", "red.png", "--mask", "mask.png", "--seed", "5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = load(tmp_path / "edited.png").convert("RGB")
    assert out.size == (256, 256) and "seed 5" in r.stdout
    kept = out.crop((160, 20, 250, 230)).resize((1, 1)).getpixel((0, 0))
    assert isinstance(kept, tuple) and kept[0] > 180 and kept[2] < 80, kept


def test_edit_refuses_what_the_api_refuses(tmp_path: Path) -> None:
    Image.new("RGB", (256, 256), (220, 30, 30)).save(tmp_path / "red.png")
    Image.new("RGBA", (128, 128)).save(tmp_path / "small.png")
    r = run("edit", "x", "-i", "red.png", "--mask", "small.png", cwd=tmp_path)
    assert r.returncode == 2 and "  param: mask" in r.stderr.splitlines(), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["red.png", "small.png"]
    r = run("edit", "x", "-i", "missing.png", cwd=tmp_path)
    assert r.returncode == 2 and "cannot read missing.png" in r.stderr and "  param: image" in r.stderr


def test_models_lists_the_default_catalogue(tmp_path: Path) -> None:
    r = run("models", cwd=tmp_path)
    assert r.returncode == 0
    for model in ("imageforge-emoji", "gpt-image-1", "gpt-image-2", "dall-e-2", "dall-e-3"):
        assert model in r.stdout


def test_every_serve_flag_reaches_its_setting() -> None:
    """A flag that parsed but never reached Settings would be silently ignored (it happened: --max-batch)."""
    from imageforge.cli.parser import build_parser as _parser
    from imageforge.cli.parser import settings_from as _settings

    ns = _parser().parse_args([
        "serve", "--queue-limit", "3", "--max-batch", "1", "--batch-wait-ms", "2.5", "--request-timeout", "9",
        "--drain-timeout", "4", "--no-warmup", "--key-requests-per-minute", "5", "--key-images-per-minute", "6",
        "--user-requests-per-minute", "7", "--user-images-per-minute", "8", "--url-ttl", "60", "--port", "9001",
    ])  # fmt: skip
    s = _settings(ns)
    assert (s.queue_limit, s.max_batch, s.batch_wait_ms, s.request_timeout_seconds, s.drain_timeout_seconds) == (
        3,
        1,
        2.5,
        9.0,
        4.0,
    )
    assert (s.warmup, s.key_requests_per_minute, s.key_images_per_minute) == (False, 5, 6)
    assert (s.user_requests_per_minute, s.user_images_per_minute, s.url_ttl_seconds, s.port) == (7, 8, 60, 9001)
    assert _settings(_parser().parse_args(["serve"])).warmup is True  # absent flags keep the defaults


def test_shared_state_flags_reach_their_settings() -> None:
    from imageforge.cli.parser import build_parser, settings_from

    ns = build_parser().parse_args([
        "serve", "--image-store", "s3", "--s3-bucket", "images", "--s3-prefix", "a/", "--s3-endpoint-url",
        "http://127.0.0.1:9000", "--s3-region", "eu-west-1", "--responses-store", "sqlite",
        "--rate-limit-storage", "memory://", "--image-store-path", "/srv/images",
    ])  # fmt: skip
    s = settings_from(ns)
    assert (s.image_store, s.s3_bucket, s.s3_prefix, s.s3_endpoint_url, s.s3_region) == (
        "s3", "images", "a/", "http://127.0.0.1:9000", "eu-west-1"
    )  # fmt: skip
    assert (s.responses_store, s.rate_limit_storage, str(s.image_store_path)) == ("sqlite", "memory://", "/srv/images")


def test_moderation_flags_reach_their_settings() -> None:
    from imageforge.cli.parser import build_parser as _parser
    from imageforge.cli.parser import settings_from as _settings

    ns = _parser().parse_args([
        "serve", "--no-moderation-input", "--no-moderation-output", "--moderation-auto", "sexual=0.6,image=off",
        "--moderation-low", '{"hate": 0.95}', "--moderation-threads", "2", "--moderation-plugin", "a",
        "--moderation-plugin", "b",
    ])  # fmt: skip
    s = _settings(ns)
    assert (s.moderation_input, s.moderation_output, s.moderation_threads) == (False, False, 2)
    assert s.moderation_auto == {"sexual": 0.6, "image": "off"}
    assert s.moderation_low == {"hate": 0.95}
    assert s.moderation_plugins == ["a", "b"]
    default = _settings(_parser().parse_args(["serve"]))
    assert (default.moderation_input, default.moderation_output, default.moderation_auto) == (True, True, {})


def test_relaxing_sexual_minors_at_low_is_refused_at_start_up(tmp_path: Path) -> None:
    from imageforge.api.app import build_state
    from imageforge.config import Settings
    from imageforge.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="never relaxed"):
        build_state(Settings(data_dir=tmp_path, moderation_low={"sexual/minors": 0.95}))
