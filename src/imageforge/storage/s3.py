"""S3-compatible image store (AWS S3, MinIO, Cloudflare R2, Ceph RGW) through boto3, for several replicas.

Layout: ``<prefix>exp/<YYYYMMDDHH>/<name>``, the hour (UTC) in which the image expires, then the same stored name
the filesystem store uses (``images.py``). Clients see only the name; the key is derived from it here, after it
has parsed, so a malformed or tampered name never becomes a key, let alone one outside the prefix.

Why hour prefixes: S3 lifecycle rules work in whole days and cannot enforce a 60-minute URL, and listing every
live object to find the expired ones costs a request per 1000 images. The sweeper instead lists the hour
prefixes (names only, no objects), and deletes every prefix whose hour has wholly passed: each object under it is
expired. Images that expired earlier in the current hour wait for the next sweep after the hour ends (``get``
refuses them meanwhile). A day-level lifecycle rule on ``<prefix>exp/`` is the documented backstop for a
deployment whose sweeper is off (docs/operations.md, "Shared image store").

boto3 is an optional extra (``pip install imageforge[s3]``), imported when this store is built.
"""

from __future__ import annotations

import logging
import time
from calendar import timegm
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from imageforge.errors import ConfigurationError
from imageforge.storage.images import MEDIA_TYPES, ImageStoreError, StoredImage, new_name, parse_name

__all__ = ["S3ImageStore"]

log = logging.getLogger(__name__)
_HOUR = "%Y%m%d%H"
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys per call


def _hour(expires_at: int) -> str:
    return time.strftime(_HOUR, time.gmtime(expires_at))


def _hour_end(hour: str) -> int | None:
    """Unix seconds at which the expiry hour ``YYYYMMDDHH`` ends; None for anything else under ``exp/``."""
    if len(hour) != 10 or not hour.isdigit():
        return None
    try:
        return timegm(time.strptime(hour, _HOUR)) + 3600
    except ValueError:
        return None


class S3ImageStore:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        """Connect and check the bucket is there and reachable, so a misconfiguration fails at start-up.

        Credentials come from boto3's usual chain (environment, shared files, instance or pod roles)."""
        if not bucket:
            raise ConfigurationError("image_store=s3 needs a bucket: set s3_bucket (IMAGEFORGE_S3_BUCKET)")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._client = _client(endpoint_url, region)
        self._check(endpoint_url)

    @property
    def client(self) -> Any:
        """The boto3 client (tests watch its calls through its event hooks)."""
        return self._client

    def _check(self, endpoint_url: str | None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3_bucket {self.bucket!r} at s3_endpoint_url {endpoint_url or '(AWS default)'}"
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise ConfigurationError(f"the image store's bucket is not usable ({where}): {code} {exc}") from exc
        except BotoCoreError as exc:  # unreachable endpoint, no credentials, bad URL
            raise ConfigurationError(f"cannot reach the image store ({where}): {exc}") from exc

    def key(self, name: str) -> str | None:
        """The object key of a stored name; None unless the name parses (so nothing else becomes a key)."""
        parsed = parse_name(name)
        if parsed is None:
            return None
        return self._key(parsed.expires_at, parsed.name)

    def _key(self, expires_at: int, name: str) -> str:
        return f"{self.prefix}exp/{_hour(expires_at)}/{name}"

    def put(self, data: bytes, extension: str, expires_at: int) -> str:
        """One PutObject: S3 makes the object visible whole or not at all, so no temp object is needed."""
        name = new_name(extension, expires_at).name
        key = self._key(expires_at, name)
        with _errors("storing an image"):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=MEDIA_TYPES[extension])
        return name

    def get(self, name: str, now: float) -> StoredImage | None:
        parsed = parse_name(name)
        if parsed is None or parsed.expires_at <= now:
            return None  # no request is made for a name that is malformed or already expired
        from botocore.exceptions import ClientError

        key = self._key(parsed.expires_at, parsed.name)
        with _errors("reading an image"):
            try:
                got = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            with got["Body"] as body:
                data = body.read()
        return StoredImage(parsed.name, parsed.expires_at, parsed.extension, data)

    def sweep(self, now: float) -> int:
        """Delete every object under the expiry-hour prefixes that have wholly passed; returns how many."""
        deleted = 0
        with _errors("sweeping expired images"):
            for hour_prefix in self._past_hours(now):
                deleted += self._delete_prefix(hour_prefix)
        if deleted:
            log.info("swept %d expired images from s3://%s/%sexp/", deleted, self.bucket, self.prefix)
        return deleted

    def _past_hours(self, now: float) -> list[str]:
        """The ``exp/<hour>/`` prefixes whose hour has ended, oldest first; live objects are not listed."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}exp/", Delimiter="/"
        )
        past: list[str] = []
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                hour_prefix = common["Prefix"]
                end = _hour_end(hour_prefix[len(self.prefix) + len("exp/") :].rstrip("/"))
                if end is None:
                    continue
                if end > now:  # prefixes come sorted, and hours sort as their names do: the rest are live
                    return past
                past.append(hour_prefix)
        return past

    def _delete_prefix(self, hour_prefix: str) -> int:
        deleted = 0
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=hour_prefix, PaginationConfig={"PageSize": _DELETE_BATCH}
        )
        for page in pages:
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            for i in range(0, len(keys), _DELETE_BATCH):
                batch = keys[i : i + _DELETE_BATCH]
                answer = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                errors = answer.get("Errors", [])
                for err in errors[:3]:
                    log.warning("could not delete %s: %s %s", err.get("Key"), err.get("Code"), err.get("Message"))
                deleted += len(batch) - len(errors)
        return deleted


@contextmanager
def _errors(doing: str) -> Iterator[None]:
    """Turn boto3's failures into :class:`ImageStoreError` (an ``OSError``, as a disk's failures are)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise ImageStoreError(f"the S3 image store failed {doing}: {exc}") from exc


def _client(endpoint_url: str | None, region: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ConfigurationError(
            "image_store=s3 needs boto3: pip install 'imageforge[s3]'", param="image_store"
        ) from exc
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        # MinIO and Ceph serve buckets under the path; AWS itself answers both styles.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    try:
        return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    except ValueError as exc:  # a malformed endpoint URL
        raise ConfigurationError(f"s3_endpoint_url {endpoint_url!r} is not usable: {exc}") from exc
