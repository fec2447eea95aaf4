"""The filesystem image store and URL signing: atomic names, expiry in the name, sweeping, a persistent key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from imageforge.storage.files import FileImageStore
from imageforge.storage.signing import UrlSigner, load_or_create_key


def test_put_get_and_expiry(tmp_path: Path) -> None:
    store = FileImageStore(tmp_path / "images")
    stored = store.put(b"\x89PNG...", "png", expires_at=1000)
    assert stored.path.read_bytes() == b"\x89PNG..." and stored.name.startswith("1000-")
    assert store.get(stored.name, now=999) == stored
    assert store.get(stored.name, now=1000) is None, "expired at its expiry second"
    assert not list((tmp_path / "images").glob(".*.tmp")), "no temp file is left behind"


def test_names_are_random_and_foreign_names_are_refused(tmp_path: Path) -> None:
    store = FileImageStore(tmp_path)
    a, b = store.put(b"a", "png", 10**9), store.put(b"a", "png", 10**9)
    assert a.name != b.name and len(a.name.split("-")[1].split(".")[0]) == 32
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
    assert not old.path.exists() and new.path.exists() and not stale_tmp.exists() and fresh_tmp.exists()


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
