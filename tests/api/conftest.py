"""One shared server on the embedded model for the API tests that do not need special settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.server import Server, serve


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("serve") / "data") as s:
        yield s
