"""The playground at ``/``, in a real browser against real servers: a streamed generation with live previews, the
gallery (kept, downloaded, deleted), the server's own error messages, a painted-mask edit, and a wrong key's 401.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.api.server import Server
from tests.web.conftest import API_KEY, unavailable

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails in CI) with the reason
    expect = None

pytestmark = pytest.mark.slow
GENERATION_TIMEOUT_MS = 300_000  # a streamed 1024² image takes seconds; the suite's other tests share 2 cores


def _decode_data_url(url: str, mime: str = "image/png") -> Image.Image:
    head, _, data = url.partition(",")
    assert head == f"data:{mime};base64", head[:80]
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def _card_bytes(page: Any, card: Any) -> tuple[bytes, str]:
    """The bytes of a gallery card's image and their file name, by its Download link (the page's CSP lets no
    script read a blob: URL, and the download is what a user gets)."""
    src = card.locator("img").get_attribute("src")
    assert src and src.startswith("blob:"), src
    assert card.get_by_role("link", name="Download").get_attribute("href") == src
    with page.expect_download() as info:
        card.get_by_role("link", name="Download").click()
    path = info.value.path()
    return Path(path).read_bytes(), info.value.suggested_filename


def _open(page: Any, server: Server) -> None:
    if expect is None:
        unavailable("the playwright package is missing")
    page.goto(server.base_url + "/")
    expect(page.get_by_role("heading", name="Generate")).to_be_visible()


def _fill_generation(page: Any, prompt: str, *, size: str = "1024x1024", partials: int = 2) -> None:
    expect(page.get_by_label("Model")).to_have_value("gpt-image-1")  # the list came from GET /v1/models
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Size", exact=True).fill(size)
    page.get_by_label("Quality").select_option("low")
    page.get_by_label("Output format").select_option("png")
    page.get_by_label("Images (n)").fill("1")
    page.get_by_label("Partial images").fill(str(partials))


def _previews(page: Any, element_id: str) -> list[dict[str, Any]]:
    return [p for p in page.evaluate("window.__previews") if p["id"] == element_id]


def _api_error(server: Server, path: str, key: str | None = None, **body: Any) -> dict[str, Any]:
    """What the API itself answers to a request (the page must show these words)."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if body:
        r = httpx.post(f"{server.v1}{path}", json=body, headers=headers, timeout=60)
    else:
        r = httpx.get(f"{server.v1}{path}", headers=headers, timeout=60)
    assert r.status_code in (400, 401), r.text
    error: dict[str, Any] = r.json()["error"]
    return error


def _generate_one(page: Any, prompt: str, partials: int = 2) -> Any:
    _fill_generation(page, prompt, partials=partials)
    page.get_by_role("button", name="Generate").click()
    cards = page.get_by_role("list", name="Gallery").get_by_role("listitem")
    expect(cards.filter(has_text=prompt)).to_have_count(1, timeout=GENERATION_TIMEOUT_MS)
    return cards.filter(has_text=prompt)


def test_the_page_and_its_assets_need_no_key_and_stay_out_of_the_schema(keyed: Server) -> None:
    page = httpx.get(keyed.base_url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="/playground/app.js">' in page.text
    # Nothing from the internet: every script, style and image the page names is this server's.
    assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text
    for name, media in [("app.js", "text/javascript"), ("api.js", "text/javascript"), ("style.css", "text/css"),
                        ("icon.svg", "image/svg+xml")]:  # fmt: skip
        r = httpx.get(f"{keyed.base_url}/playground/{name}", timeout=10)
        assert r.status_code == 200, name
        assert r.headers["content-type"].split(";")[0] == media
        again = httpx.get(f"{keyed.base_url}/playground/{name}", headers={"if-none-match": r.headers["etag"]})
        assert again.status_code == 304  # revalidated, not downloaded again
    missing = httpx.get(f"{keyed.base_url}/playground/nothing.js", timeout=10)
    assert missing.status_code == 404 and "message" in missing.json()["error"]
    assert httpx.get(f"{keyed.base_url}/playground/..%2Fapp.py", timeout=10).status_code == 404
    paths = httpx.get(f"{keyed.base_url}/openapi.json", timeout=10).json()["paths"]
    assert "/" not in paths and not any(p.startswith("/playground") for p in paths)
    assert "/v1/images/generations" in paths


def test_a_streamed_generation_shows_previews_then_the_gallery_keeps_downloads_and_deletes_it(
    page: Any, served: Server, artifacts: Path, tmp_path: Path
) -> None:
    _open(page, served)
    card = _generate_one(page, "a yellow star", partials=2)
    expect(page.locator("#generate-status")).to_contain_text("1 image added to the gallery")

    # 1. Live previews: each partial image was shown while the request still ran, a decodable PNG of the size.
    shown = _previews(page, "generate-preview")
    partials = [p for p in shown if p["index"] != "final"]
    assert partials, f"no preview was shown: {shown}"
    assert all(p["running"] for p in partials)
    assert [p["index"] for p in partials] == sorted({p["index"] for p in partials})
    assert {p["index"] for p in partials} <= {"0", "1"}
    for p in partials:
        assert _decode_data_url(p["src"]).size == (1024, 1024)
    assert shown[-1]["index"] == "final"
    page.screenshot(path=str(artifacts / "01-generated.png"), full_page=True)

    # 2. The final image in the gallery, with its prompt and resolved parameters.
    expect(card).to_contain_text("size: 1024x1024")
    expect(card).to_contain_text("quality: low")
    expect(card).to_contain_text("model: gpt-image-1")
    final, name = _card_bytes(page, card)
    image = Image.open(io.BytesIO(final))
    assert (image.format, image.size) == ("PNG", (1024, 1024))

    # 3. Downloaded under a name with the format's extension; saved, it is that PNG.
    assert name.startswith("a-yellow-star-") and name.endswith(".png"), name
    with page.expect_download() as info:
        card.get_by_role("link", name="Download").click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.read_bytes() == final
    with Image.open(saved) as downloaded:
        assert (downloaded.format, downloaded.size) == ("PNG", (1024, 1024))

    # 4. Kept in this browser across a reload; the narrow layout stacks the columns.
    page.reload()
    cards = page.get_by_role("list", name="Gallery").get_by_role("listitem")
    expect(cards).to_have_count(1)
    assert _card_bytes(page, cards.first)[0] == final
    page.set_viewport_size({"width": 390, "height": 844})
    form_box = page.get_by_role("heading", name="Generate").bounding_box()
    gallery_box = page.get_by_role("heading", name="Gallery").bounding_box()
    assert form_box and gallery_box and gallery_box["y"] > form_box["y"] + 200
    page.screenshot(path=str(artifacts / "02-narrow.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # 5. Deleted, also after a reload.
    cards.first.get_by_role("button", name="Delete").click()
    expect(cards).to_have_count(0)
    expect(page.get_by_text("No images yet.")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Gallery")).to_be_visible()
    expect(page.get_by_text("No images yet.")).to_be_visible()
    expect(cards).to_have_count(0)


def test_several_images_and_dall_e_models_are_answered_without_streaming(
    page: Any, served: Server, artifacts: Path
) -> None:
    _open(page, served)
    cards = page.get_by_role("list", name="Gallery").get_by_role("listitem")

    # 1. n=2 on a GPT model: one JSON request (a stream returns one image), webp files named .webp.
    _fill_generation(page, "a green tree")
    page.get_by_label("Images (n)").fill("2")
    page.get_by_label("Output format").select_option("webp")
    expect(page.locator("#mode-hint")).to_contain_text("without streaming")
    with page.expect_request(lambda r: r.url.endswith("/v1/images/generations")) as sent:
        page.get_by_role("button", name="Generate").click()
    body = sent.value.post_data_json
    assert body["n"] == 2 and body["output_format"] == "webp"
    assert "stream" not in body and "partial_images" not in body and "response_format" not in body
    expect(cards.filter(has_text="a green tree")).to_have_count(2, timeout=GENERATION_TIMEOUT_MS)
    for i in range(2):
        data, name = _card_bytes(page, cards.filter(has_text="a green tree").nth(i))
        assert name.endswith(".webp"), name
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size) == ("WEBP", (1024, 1024))
    assert not [p for p in _previews(page, "generate-preview") if p["index"] != "final"]

    # 2. dall-e-3: b64_json asked for (its default is url), its revised_prompt shown with the image.
    page.get_by_label("Model").select_option("dall-e-3")
    expect(page.get_by_label("Output format")).to_be_disabled()
    page.get_by_label("Prompt", exact=True).fill("a red heart")
    page.get_by_label("Quality").select_option("auto")
    page.get_by_label("Images (n)").fill("1")
    with page.expect_request(lambda r: r.url.endswith("/v1/images/generations")) as sent:
        page.get_by_role("button", name="Generate").click()
    body = sent.value.post_data_json
    assert body["response_format"] == "b64_json" and body["model"] == "dall-e-3"
    assert not {"stream", "output_format", "background", "partial_images"} & set(body)
    card = cards.filter(has_text="a red heart")
    expect(card).to_have_count(1, timeout=GENERATION_TIMEOUT_MS)
    expect(card).to_contain_text("Revised prompt: a red heart, vivid saturated colours")
    data, name = _card_bytes(page, card)
    assert name.endswith(".png")
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("PNG", (1024, 1024))
    page.screenshot(path=str(artifacts / "07-several-and-dall-e.png"), full_page=True)


def test_the_servers_error_message_is_shown_as_it_words_it(page: Any, served: Server, artifacts: Path) -> None:
    _open(page, served)
    alert = page.locator("#generate-error")

    # A streamed request refused before its first byte: a size gpt-image-1 does not take.
    expected = _api_error(served, "/images/generations", model="gpt-image-1", prompt="a star", size="123x45")
    _fill_generation(page, "a star", size="123x45")
    page.get_by_role("button", name="Generate").click()
    expect(alert).to_be_visible()
    expect(alert.locator(".error-message")).to_have_text(expected["message"])
    expect(alert).to_contain_text(f"param: {expected['param']}")
    expect(alert).to_contain_text(f"code: {expected['code']}")
    expect(alert).to_contain_text("HTTP 400")
    page.screenshot(path=str(artifacts / "03-error.png"), full_page=True)

    # A request without streaming (dall-e-2, several images) with a prompt over the model's limit.
    prompt = "a star " * 150  # 1050 characters; dall-e-2 takes 1000
    expected = _api_error(served, "/images/generations", model="dall-e-2", prompt=prompt, n=2,
                          response_format="b64_json")  # fmt: skip
    assert expected["param"] == "prompt"
    page.get_by_label("Model").select_option("dall-e-2")
    expect(page.get_by_label("Partial images")).to_be_disabled()
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_label("Size", exact=True).fill("256x256")
    page.get_by_label("Quality").select_option("auto")
    page.get_by_label("Images (n)").fill("2")
    page.get_by_role("button", name="Generate").click()
    expect(alert.locator(".error-message")).to_have_text(expected["message"])
    expect(alert).to_contain_text("param: prompt")
    expect(page.get_by_role("list", name="Gallery").get_by_role("listitem")).to_have_count(0)


def test_a_painted_mask_redraws_only_the_painted_area(page: Any, served: Server, artifacts: Path) -> None:
    _open(page, served)
    source_card = _generate_one(page, "a red heart", partials=1)
    source = np.asarray(Image.open(io.BytesIO(_card_bytes(page, source_card)[0])).convert("RGB"))

    # 1. Paint a horizontal band across the middle of the image.
    source_card.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog", name="Edit image")
    expect(dialog).to_be_visible()
    canvas = dialog.get_by_label("Mask: paint the area to redraw")
    box = canvas.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=12)
    page.mouse.up()
    dialog.get_by_label("Edit prompt").fill("a blue heart")
    page.screenshot(path=str(artifacts / "04-mask-painted.png"))
    dialog.get_by_role("button", name="Edit", exact=True).click()

    cards = page.get_by_role("list", name="Gallery").get_by_role("listitem")
    expect(cards).to_have_count(2, timeout=GENERATION_TIMEOUT_MS)
    expect(dialog.get_by_role("status")).to_contain_text("1 image added to the gallery")
    page.screenshot(path=str(artifacts / "05-edited.png"))
    dialog.get_by_role("button", name="Close the editor").click()
    expect(dialog).to_be_hidden()

    # 2. What was sent: multipart with the image, a mask of its size whose painted pixels are transparent.
    forms = [f for f in page.evaluate("window.__sentForms") if f["url"].endswith("/v1/images/edits")]
    assert len(forms) == 1
    fields = forms[0]["fields"]
    assert fields["prompt"] == "a blue heart"
    assert fields["model"] == "gpt-image-1"
    assert fields["stream"] == "true"
    assert fields["partial_images"] == "1"
    mask = np.asarray(_decode_data_url(fields["mask"]["dataUrl"]).convert("RGBA"))
    assert mask.shape == (1024, 1024, 4)
    alpha = mask[..., 3]
    assert alpha[512, 512] == 0 and alpha[512, 300] == 0 and alpha[512, 720] == 0  # on the stroke
    assert alpha[0, 0] == 255 and alpha[200, 512] == 255 and alpha[900, 512] == 255  # away from it
    assert 0.005 < (alpha == 0).mean() < 0.2

    # 3. The edit streamed its previews too, while it ran.
    partials = [p for p in _previews(page, "edit-preview") if p["index"] != "final"]
    assert partials and all(p["running"] for p in partials)
    assert _decode_data_url(partials[0]["src"]).size == (1024, 1024)

    # 4. The result is in the gallery (newest first): the painted band redrawn, the rest the source's own pixels.
    edited_card = cards.first
    expect(edited_card).to_contain_text("masked edit")
    expect(edited_card).to_contain_text("a blue heart")
    edited_bytes, edited_name = _card_bytes(page, edited_card)
    assert edited_name.startswith("a-blue-heart-") and edited_name.endswith(".png")
    edited = np.asarray(Image.open(io.BytesIO(edited_bytes)).convert("RGB"))
    assert edited.shape == source.shape
    kept = alpha == 255
    changed = np.abs(edited.astype(int) - source.astype(int)).max(axis=2) > 8
    assert changed[kept].mean() < 0.001, "pixels outside the painted area changed"
    assert changed[alpha == 0].mean() > 0.1, "the painted area was not redrawn"


def test_a_wrong_key_shows_the_servers_401_message(page: Any, keyed: Server, artifacts: Path) -> None:
    _open(page, keyed)
    alert = page.locator("#generate-error")

    # 1. No key yet: the model list is refused with the server's words.
    missing = _api_error(keyed, "/models")
    expect(alert.locator(".error-message")).to_have_text(missing["message"])
    expect(alert).to_contain_text("HTTP 401")

    # 2. A wrong key: the models and a generation are refused (401, invalid_api_key) as the server words it.
    wrong = "sk-wrong-key-0000"
    expected = _api_error(keyed, "/models", key=wrong)
    assert expected["code"] == "invalid_api_key"
    page.get_by_label("API key").fill(wrong)
    expect(alert.locator(".error-message")).to_have_text(expected["message"])
    expect(alert).to_contain_text("code: invalid_api_key")
    page.get_by_label("Prompt", exact=True).fill("a yellow star")
    with page.expect_response(lambda r: r.url.endswith("/v1/images/generations")) as answer:
        page.get_by_role("button", name="Generate").click()
    assert answer.value.status == 401
    expect(alert.locator(".error-message")).to_have_text(expected["message"])
    page.screenshot(path=str(artifacts / "06-wrong-key.png"), full_page=True)

    # 3. The right key: the models load, the error goes, and the key is kept in this browser.
    page.get_by_label("API key").fill(API_KEY)
    expect(page.get_by_label("Model")).to_have_value("gpt-image-1")
    expect(alert).to_be_hidden()
    page.reload()
    expect(page.get_by_label("API key")).to_have_value(API_KEY)
    expect(page.get_by_label("Model")).to_have_value("gpt-image-1")
