"""The filesystem image store and URL signing: atomic names, expiry in the name, sweeping, a persistent key."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from imageforge.config import Settings
from imageforge.errors import ConfigurationError
from imageforge.storage.files import FileImageStore
from imageforge.storage.signing import UrlSigner, load_or_create_key, signing_key


def test_put_get_and_expiry(tmp_path: Path) -> None:
    store = FileImageStore(tmp_path / "images")
    name = store.put(b"\x89PNG...", "png", expires_at=1000)
    assert (tmp_path / "images" / name).read_bytes() == b"\x89PNG..." and name.startswith("1000-")
    got = store.get(name, now=999)
    assert got is not None and (got.name, got.data, got.expires_at, got.media_type) == (
        name, b"\x89PNG...", 1000, "image/png"
    )  # fmt: skip
    assert store.get(name, now=1000) is None, "expired at its expiry second"
    assert not list((tmp_path / "images").glob(".*.tmp")), "no temp file is left behind"


def test_names_are_random_and_foreign_names_are_refused(tmp_path: Path) -> None:
    store = FileImageStore(tmp_path)
    a, b = store.put(b"a", "png", 10**9), store.put(b"a", "png", 10**9)
    assert a != b and len(a.split("-")[1].split(".")[0]) == 32
    (tmp_path / "secret.txt").write_text("x")
    for name in ("secret.txt", "../secret.txt", f"{10**9}-{'g' * 32}.png", f"{10**9}-{'a' * 32}.exe"):
        assert store.get(name, now=0) is None


def test_sweep_deletes_only_expired_files(tmp_path: Path) -> None:
    store = FileImageStore(tmp_path)
    now = 1_800_000_000
    old = store.put(b"old", "webp", expires_at=now - 100)
    new = store.put(b"new", "jpeg", expires_at=now + 100)
    stale_tmp, fresh_tmp = tmp_path / ".crashed.tmp", tmp_path / ".writing.tmp"
    stale_tmp.write_bytes(b"half")
    fresh_tmp.write_bytes(b"half")
    os.utime(stale_tmp, (now - 7200, now - 7200))
    os.utime(fresh_tmp, (now - 10, now - 10))
    assert store.sweep(now=now) == 2
    assert not (tmp_path / old).exists() and (tmp_path / new).exists()
    assert not stale_tmp.exists() and fresh_tmp.exists()


def test_signing_key_persists_and_signatures_detect_tampering(tmp_path: Path) -> None:
    key_path = tmp_path / "state" / "url-signing.key"
    key = load_or_create_key(key_path)
    assert len(key) == 32 and load_or_create_key(key_path) == key, "the same key after a restart"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    signer = UrlSigner(key)
    sig = signer.sign("100-abc.png")
    assert signer.verify("100-abc.png", sig)
    # Flip the last hex digit so the tampered signature always differs from the real one.
    tampered = sig[:-1] + ("1" if sig[-1] == "0" else "0")
    assert not signer.verify("200-abc.png", sig) and not signer.verify("100-abc.png", tampered)
    assert not UrlSigner(b"k" * 32).verify("100-abc.png", sig)


def test_a_configured_signing_key_is_used_instead_of_the_key_file(tmp_path: Path) -> None:
    """Every replica given the same ``url_signing_key`` signs alike; no key file is written."""
    hex_key = "ab" * 32
    a = Settings(data_dir=tmp_path / "a", url_signing_key=hex_key)
    b = Settings(data_dir=tmp_path / "b", url_signing_key=base64.b64encode(bytes.fromhex(hex_key)).decode())
    assert signing_key(a) == signing_key(b) == bytes.fromhex(hex_key)
    assert not (tmp_path / "a" / "url-signing.key").exists()
    assert signing_key(Settings(data_dir=tmp_path / "c")) == (tmp_path / "c" / "url-signing.key").read_bytes()


@pytest.mark.parametrize("bad", ["ab" * 31, "not a key!", "c2hvcnQ=", ""])
def test_a_bad_signing_key_is_a_configuration_error_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="url_signing_key") as info:
        Settings(url_signing_key=bad)
    assert info.value.param == "url_signing_key"


def test_the_signing_key_is_a_secret_in_the_settings_repr() -> None:
    assert "ab" * 32 not in repr(Settings(url_signing_key="ab" * 32))
