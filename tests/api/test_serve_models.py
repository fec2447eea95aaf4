"""``imageforge serve --model org/name``: a real server on a hub-cached checkpoint (a toy SD-Turbo built here),
offline, reached with the official SDK under the model's own id and under an OpenAI name."""

from __future__ import annotations

from pathlib import Path

from tests.api.images import decode_b64
from tests.api.server import serve
from tests.engines.toy_families import build_server_sd, hub_cache, save_to_hub_cache

REPO = "toy/sd-turbo"


def test_serve_a_cached_hub_model_under_its_id_and_the_openai_names(tmp_path: Path) -> None:
    home = tmp_path / "hf-home"
    with hub_cache(home) as hub:
        save_to_hub_cache(build_server_sd(tmp_path / "work"), hub, REPO)
    with serve(tmp_path / "data", "--model", REPO, "--no-moderation-output", env={"HF_HOME": str(home)}) as server:
        client = server.client()
        models = {m.id for m in client.models.list().data}
        assert {"sd-turbo", "gpt-image-1", "dall-e-3", "imageforge-emoji"} <= models

        r = client.images.generate(model="gpt-image-1", prompt="a lighthouse", size="1024x1024", quality="low")
        image = decode_b64(str(r.data[0].b64_json))[0]
        assert image.size == (1024, 1024) and r.size == "1024x1024" and r.usage is not None

        own = client.images.generate(model="sd-turbo", prompt="a lighthouse", size="512x512", quality="low", n=2)
        assert [decode_b64(str(d.b64_json))[0].size for d in own.data] == [(512, 512)] * 2
        log = server.log()
    assert "sd-turbo" in log and "toy/sd-turbo" in log, "the server says which model it prepared"
