"""The ImageStore contract, run against both backends: a directory, and S3 through a real moto server over HTTP.

Every store here is opened twice over the same place (directory or bucket), as two replicas would be: what one
instance writes, the other reads and sweeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from imageforge.config import Settings
from imageforge.errors import ConfigurationError
from imageforge.imaging.encode import MEDIA_TYPES as ENCODER_MEDIA_TYPES
from imageforge.storage.files import FileImageStore
from imageforge.storage.images import MEDIA_TYPES, ImageStore, ImageStoreError, open_image_store
from imageforge.storage.s3 import S3ImageStore
from tests.api.server import free_port
from tests.moto_s3 import AWS_ENV, S3Endpoint, moto_endpoint, new_bucket

HOUR = 3600
NOW = 1_800_000_000 + HOUR // 2  # half past an hour: the current expiry hour holds both past and future instants
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

Open = Callable[[], ImageStore]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with moto_endpoint() as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(params=["filesystem", "s3"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Open:
    """Opens another instance of one store (a new replica's view of the same directory or bucket)."""
    if request.param == "filesystem":
        return lambda: FileImageStore(tmp_path / "images")
    endpoint: S3Endpoint = request.getfixturevalue("s3")
    bucket = new_bucket(endpoint)
    return lambda: S3ImageStore(bucket, prefix="imageforge/", endpoint_url=endpoint.url, region="us-east-1")


class TestImageStoreContract:
    def test_round_trip_through_another_instance(self, open_store: Open) -> None:
        """A URL minted by one replica is fetched through another: same bytes, type and expiry."""
        writer, reader = open_store(), open_store()
        name = writer.put(PNG, "png", expires_at=NOW + 60)
        got = reader.get(name, NOW)
        assert got is not None
        assert (got.name, got.data, got.expires_at, got.media_type) == (name, PNG, NOW + 60, "image/png")
        webp = writer.put(b"RIFF....WEBP", "webp", expires_at=NOW + 60)
        assert (reader.get(webp, NOW) or pytest.fail("missing")).media_type == "image/webp"

    def test_expired_and_missing_images_are_none(self, open_store: Open) -> None:
        store = open_store()
        name = store.put(PNG, "png", expires_at=NOW + 10)
        assert store.get(name, NOW + 9.5) is not None
        assert store.get(name, NOW + 10) is None, "expired at its expiry second"
        absent = f"{NOW + 10}-{'0' * 32}.png"
        assert store.get(absent, NOW) is None

    @pytest.mark.parametrize(
        "bad",
        [
            "secret.txt",
            "../secret.txt",
            "..%2Fsecret.txt",
            f"{NOW + 60}-{'g' * 32}.png",  # not hex
            f"{NOW + 60}-{'a' * 32}.exe",
            f"{NOW + 60}-{'a' * 31}.png",
            f"../{NOW + 60}-{'a' * 32}.png",
            f"exp/2027011515/{NOW + 60}-{'a' * 32}.png",  # a key, not a name
            f"{NOW + 60}-{'a' * 32}.png/../../secret.txt",
            f"{NOW + 60}-{'a' * 32}.png\n",
            "",
        ],
    )
    def test_malformed_and_traversal_names_are_none(self, open_store: Open, bad: str) -> None:
        store = open_store()
        store.put(PNG, "png", expires_at=NOW + 60)
        assert store.get(bad, NOW) is None

    def test_sweep_deletes_the_expired_only(self, open_store: Open) -> None:
        writer, sweeper = open_store(), open_store()
        old = [writer.put(PNG, "png", expires_at=NOW - 2 * HOUR - i) for i in range(3)]
        live = [writer.put(PNG, "jpeg", expires_at=NOW + t) for t in (HOUR, 2 * HOUR, 30 * 24 * HOUR)]
        assert sweeper.sweep(NOW) == 3
        for name in old:  # asked as of before its expiry: None only because it is gone
            assert writer.get(name, NOW - 3 * HOUR) is None
        for name in live:
            assert (writer.get(name, NOW) or pytest.fail(name)).data == PNG
        assert sweeper.sweep(NOW) == 0, "idempotent"

    def test_concurrent_puts_never_collide(self, open_store: Open) -> None:
        stores = [open_store(), open_store()]

        def put(i: int) -> tuple[str, bytes]:
            data = PNG + i.to_bytes(4, "big")
            return stores[i % 2].put(data, "png", expires_at=NOW + 60), data

        with ThreadPoolExecutor(8) as pool:
            written = list(pool.map(put, range(64)))
        assert len({name for name, _ in written}) == 64
        reader = open_store()
        for name, data in written:
            assert (reader.get(name, NOW) or pytest.fail(name)).data == data


def test_the_stores_media_types_are_the_encoders() -> None:
    assert MEDIA_TYPES == ENCODER_MEDIA_TYPES


def test_filesystem_names_stay_inside_the_directory(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_bytes(b"secret")
    store = FileImageStore(tmp_path / "images")
    assert store.get("../secret.txt", NOW) is None
    (tmp_path / "images" / f"{NOW + 60}-{'b' * 32}.png").mkdir()  # a directory under an image's name
    assert store.get(f"{NOW + 60}-{'b' * 32}.png", NOW) is None


class _Calls:
    """Records the S3 operations a boto3 client sends, with their parameters (boto3's own event hooks)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("provide-client-params.s3.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [p for name, p in self.calls if name == operation]


def _s3_store(s3: S3Endpoint, bucket: str) -> S3ImageStore:
    return S3ImageStore(bucket, prefix="/imageforge/", endpoint_url=s3.url, region="us-east-1")


def test_s3_keys_sit_under_the_prefix_and_expiry_hour(s3: S3Endpoint) -> None:
    bucket = new_bucket(s3)
    store = _s3_store(s3, bucket)
    name = store.put(PNG, "png", expires_at=1_800_000_000)  # 2027-01-15 08:00:00 UTC
    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"imageforge/exp/2027011508/{name}"] and "/" not in name and bucket not in name
    got = client.get_object(Bucket=bucket, Key=keys[0])
    assert got["ContentType"] == "image/png" and got["Body"].read() == PNG
    client.close()


def test_s3_never_asks_for_a_key_outside_the_prefix(s3: S3Endpoint) -> None:
    bucket = new_bucket(s3)
    client = s3.client()
    client.put_object(Bucket=bucket, Key="secret.txt", Body=b"secret")
    client.put_object(Bucket=bucket, Key=f"{NOW + 60}-{'c' * 32}.png", Body=b"outside the prefix")
    client.close()
    store = _s3_store(s3, bucket)
    calls = _Calls(store.client)
    for bad in ("secret.txt", "../secret.txt", f"../../{NOW + 60}-{'c' * 32}.png", f"{NOW + 60}-{'c' * 32}.png"):
        assert store.get(bad, NOW) is None
    keys = [p["Key"] for p in calls.of("GetObject")]
    assert keys == [f"imageforge/exp/2027011508/{NOW + 60}-{'c' * 32}.png"], "only the parsed name became a key"


def test_s3_sweep_lists_only_past_hours_and_deletes_in_batches_of_1000(s3: S3Endpoint) -> None:
    bucket = new_bucket(s3)
    store = _s3_store(s3, bucket)
    many = [store.put(b"x", "png", expires_at=NOW - 3 * HOUR) for _ in range(1001)]  # one past hour, 1001 keys
    earlier = store.put(PNG, "webp", expires_at=NOW - 5 * HOUR)
    this_hour = store.put(PNG, "png", expires_at=NOW - 60)  # expired, but its hour has not ended
    live = [store.put(PNG, "png", expires_at=NOW + t) for t in (60, HOUR, 5 * HOUR)]
    calls = _Calls(store.client)
    assert store.sweep(NOW) == 1002
    listed = [(p["Prefix"], p.get("Delimiter")) for p in calls.of("ListObjectsV2")]
    hours = {p for p, d in listed if d is None}
    assert hours == {"imageforge/exp/2027011505/", "imageforge/exp/2027011503/"}, "past hours only"
    assert all(p == "imageforge/exp/" for p, d in listed if d is not None), "the hour list names prefixes only"
    batches = [len(p["Delete"]["Objects"]) for p in calls.of("DeleteObjects")]
    assert sorted(batches) == [1, 1, 1000], "1001 keys in two calls, the earlier hour's one in a third"
    for name in (many[0], many[-1], earlier):
        assert store.get(name, NOW - 10 * HOUR) is None
    assert store.get(this_hour, NOW - HOUR) is not None, "kept until its hour ends (get refuses it meanwhile)"
    assert store.get(this_hour, NOW) is None
    assert all(store.get(name, NOW) is not None for name in live)
    # An hour later the current hour has ended: its two images (expired 60 s before NOW, and 60 s after) go.
    assert store.sweep(NOW + HOUR) == 2 and store.get(this_hour, NOW - HOUR) is None
    assert store.get(live[0], NOW) is None and store.get(live[1], NOW) is not None


def test_s3_misconfiguration_fails_at_start_up(s3: S3Endpoint, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="s3_bucket"):
        open_image_store(Settings(data_dir=tmp_path, image_store="s3"))
    with pytest.raises(ConfigurationError, match="s3_bucket 'absent-bucket'"):
        open_image_store(
            Settings(data_dir=tmp_path, image_store="s3", s3_bucket="absent-bucket", s3_endpoint_url=s3.url)
        )
    unreachable = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigurationError, match=r"cannot reach the image store.*s3_endpoint_url"):
        open_image_store(Settings(data_dir=tmp_path, image_store="s3", s3_bucket="b", s3_endpoint_url=unreachable))


def test_settings_open_either_store(s3: S3Endpoint, tmp_path: Path) -> None:
    shared = tmp_path / "shared-images"
    fs = open_image_store(Settings(data_dir=tmp_path / "data", image_store_path=shared))
    assert isinstance(fs, FileImageStore) and fs.root == shared
    assert isinstance(open_image_store(Settings(data_dir=tmp_path)), FileImageStore)
    bucket = new_bucket(s3)
    store = open_image_store(
        Settings(data_dir=tmp_path, image_store="s3", s3_bucket=bucket, s3_endpoint_url=s3.url, s3_prefix="p")
    )
    assert isinstance(store, S3ImageStore) and store.prefix == "p/"


def test_s3_lost_after_start_up_is_a_503_store_error(tmp_path: Path) -> None:
    """Requests then get OpenAI's 503 envelope (service_unavailable); the sweeper's OSError handling applies."""
    with moto_endpoint() as gone:
        bucket = new_bucket(gone)
        store = _s3_store(gone, bucket)
        name = store.put(PNG, "png", expires_at=NOW + 60)
    for call in (lambda: store.get(name, NOW), lambda: store.put(PNG, "png", NOW + 60), lambda: store.sweep(NOW)):
        with pytest.raises(ImageStoreError) as info:
            call()
        assert isinstance(info.value, OSError) and info.value.status == 503
        assert info.value.code == "service_unavailable"
