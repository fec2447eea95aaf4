"""Two real servers sharing state as ingress replicas of a cluster do (issue 18), through the openai SDK: a
response stored by one is retrieved, and continued with ``previous_response_id``, on the other (one PostgreSQL);
their rate limits are one count (one Redis); and a Redis that goes away refuses requests with a 503 envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.api.server import serve
from tests.services import PostgresServer, run_redis

pytestmark = pytest.mark.slow

TOOLS: Any = [{"type": "image_generation", "quality": "low"}]


def test_any_replica_serves_stored_responses_and_one_rate_limit(tmp_path: Path, postgres_dsn: str) -> None:
    with run_redis() as redis:
        env = {
            "IMAGEFORGE_RESPONSES_STORE": "postgres",
            "IMAGEFORGE_POSTGRES_DSN": postgres_dsn,
            "IMAGEFORGE_RATE_LIMIT_STORAGE": redis.uri,
            "IMAGEFORGE_API_KEYS": "sk-responses,sk-limited",
            "IMAGEFORGE_KEY_REQUESTS_PER_MINUTE": "3",
        }
        with (
            serve(tmp_path / "a", env=env, api_key="sk-responses") as a,
            serve(tmp_path / "b", env=env, api_key="sk-responses") as b,
        ):
            first = a.client().responses.create(model="gpt-5", input="draw a red heart", tools=TOOLS)
            assert first.status == "completed"
            got = b.client().responses.retrieve(first.id)
            assert got.id == first.id and got.output[0].model_dump() == first.output[0].model_dump()
            second = b.client().responses.create(
                model="gpt-5", input="now make it blue", previous_response_id=first.id, tools=TOOLS
            )
            call = next(o for o in second.output if o.type == "image_generation_call")
            assert call.action == "edit" and second.previous_response_id == first.id  # B read A's image
            assert a.client().responses.retrieve(second.id).status == "completed"

            # One count across both replicas: 3 per minute in all.
            limited_a, limited_b = a.client("sk-limited"), b.client("sk-limited")
            for client in (limited_a, limited_b, limited_a):
                client.images.generate(model="gpt-image-1", prompt="a star", quality="low", size="1024x1024")
            with pytest.raises(openai.RateLimitError):
                limited_b.images.generate(model="gpt-image-1", prompt="a star", quality="low", size="1024x1024")

            redis.stop()
            with pytest.raises(openai.InternalServerError) as info:
                a.client().images.generate(model="gpt-image-1", prompt="a star", quality="low", size="1024x1024")
            assert info.value.status_code == 503
            assert info.value.body["code"] == "service_unavailable"  # type: ignore[index]


def test_an_unreachable_store_stops_start_up(tmp_path: Path, postgres_server: PostgresServer) -> None:
    env = {"IMAGEFORGE_RESPONSES_STORE": "postgres", "IMAGEFORGE_POSTGRES_DSN": postgres_server.dsn("no_such_db")}
    with pytest.raises(RuntimeError, match="postgres_dsn"), serve(tmp_path / "c", env=env):
        pass
