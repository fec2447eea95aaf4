"""One request can never fail another's (issue 15): requests batched with a hostile or failing one get their
images, through a real server whose engine batches everything that arrives within half a second."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.server import Server, serve

CATALOGUE = """
include_defaults = false
[models."gpt-image-1"]
engine = "fake"
profile = "gpt-image-1"
options = { fail_on = "explode", step_delay = 0.02 }
"""


@pytest.fixture(scope="module")
def batching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("isolation")
    (tmp / "models.toml").write_text(CATALOGUE)
    args = (
        "--config",
        str(tmp / "models.toml"),
        "--batch-wait-ms",
        "500",
        "--batch-wait-alone",
        "--no-moderation-output",
    )
    with serve(tmp / "data", *args) as s:
        yield s


def _together(server: Server, prompts: list[str]) -> list[httpx.Response]:
    """Send the requests at once (they share one engine batch) and return their answers in order."""

    def one(prompt: str) -> httpx.Response:
        body = json.dumps({"model": "gpt-image-1", "prompt": prompt, "quality": "low", "size": "1024x1024"})
        return httpx.post(f"{server.v1}/images/generations", content=body.encode(), timeout=120,
                          headers={"content-type": "application/json"})  # fmt: skip

    with ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(one, prompts))


def test_a_hostile_prompt_is_refused_alone_and_its_batch_partners_are_served(batching: Server) -> None:
    """The issue's reproduction: a lone surrogate in one of four batched prompts once failed all four in the
    engine. It is now refused at the boundary; the rerun-one-by-one isolation is the next test's."""
    answers = _together(batching, ["a red heart", "a blue \ud800 heart", "a green heart", "a yellow heart"])
    assert [r.status_code for r in answers] == [200, 400, 200, 200], [r.text[:200] for r in answers]
    assert answers[1].json()["error"]["param"] == "prompt"
    assert all(r.json()["data"][0]["b64_json"] for r in answers if r.status_code == 200)


def test_an_engine_failure_fails_only_the_request_that_causes_it(batching: Server) -> None:
    before = batching.metric("imageforge_isolation_retries_total")
    answers = _together(batching, ["a red heart", "explode", "a green heart", "a yellow heart"])
    assert [r.status_code for r in answers] == [200, 500, 200, 200], [r.text[:200] for r in answers]
    assert answers[1].json()["error"]["type"] == "server_error"
    assert batching.metric("imageforge_isolation_retries_total") == before + 1  # they did share a batch
    assert httpx.get(f"{batching.base_url}/metrics", timeout=30).status_code == 200
