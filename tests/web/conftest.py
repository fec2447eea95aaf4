"""The playground's browser tests: Debian's chromium driven by Playwright (its own browser download is impossible
here), real ``imageforge serve`` processes, screenshots kept in ``test-artifacts/playground/`` (gitignored).

Without chromium (or the playwright package) the browser tests skip with the reason, except in CI (``CI=true``),
which must run them: there they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.server import Server, serve

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium's own connections (updates, sync, QUIC probes) are refused by
# the closed network and slow everything down.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "playground"
API_KEY = "sk-playground-right-key-2718"

# Records, before any script of the page runs, every image a preview element is given (the previews can come and
# go faster than a test polls) with whether the request was still running, and every multipart body the page
# sends (Chromium does not expose a FormData body with blobs to Playwright).
RECORDER = """
(() => {
  window.__previews = [];
  window.__sentForms = [];
  const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    enumerable: src.enumerable,
    get() { return src.get.call(this); },
    set(value) {
      if (this.hasAttribute("data-preview")) {
        const button = document.getElementById(this.closest("dialog") ? "edit-submit" : "generate");
        window.__previews.push({
          id: this.id, index: this.dataset.partialIndex ?? null, running: button.disabled, src: String(value),
        });
      }
      src.set.call(this, value);
    },
  });
  const dataUrl = (blob) => new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.readAsDataURL(blob);
  });
  const originalFetch = window.fetch;
  window.fetch = async function (input, init) {
    if (init && init.body instanceof FormData) {
      const fields = {};
      for (const [name, value] of init.body.entries()) {
        fields[name] = value instanceof Blob ? { type: value.type, dataUrl: await dataUrl(value) } : value;
      }
      window.__sentForms.push({ url: String(input), fields });
    }
    return originalFetch.call(this, input, init);
  };
})();
"""


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the playground's browser tests")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing (pip install '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser profile per test (its own localStorage and IndexedDB); uncaught page errors fail it."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.add_init_script(RECORDER)
    context.set_default_timeout(30_000)
    errors: list[str] = []
    pg = context.new_page()
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The embedded model with no keys (any key is accepted), as a user starts it on their own machine."""
    with serve(tmp_path_factory.mktemp("web") / "data", "--no-moderation-output") as s:
        yield s


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that has an API key."""
    data = tmp_path_factory.mktemp("web-keyed") / "data"
    with serve(data, "--api-key", API_KEY, "--no-warmup", api_key=API_KEY) as s:
        yield s


@pytest.fixture()
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
