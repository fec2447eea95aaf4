"""ApiKeys: OpenAI's two 401s, and any key when none are configured."""

from __future__ import annotations

import pytest

from imageforge.api.auth import ApiKeys
from imageforge.errors import AuthenticationError


def test_no_keys_configured_accepts_anything() -> None:
    keys = ApiKeys([])
    assert not keys.required
    for header in (None, "", "Bearer whatever", "Basic abc"):
        keys.check(header)


@pytest.mark.parametrize("header", [None, "", "Bearer ", "Basic sk-one", "sk-one"])
def test_missing_key(header: str | None) -> None:
    with pytest.raises(AuthenticationError) as info:
        ApiKeys(["sk-one"]).check(header)
    assert info.value.status == 401 and info.value.code is None and "didn't provide an API key" in info.value.message


def test_wrong_key_is_masked_in_the_message() -> None:
    with pytest.raises(AuthenticationError) as info:
        ApiKeys(["sk-one", "sk-two"]).check("Bearer sk-wrong-key-123456")
    assert info.value.code == "invalid_api_key" and "sk-wrong-key" not in info.value.message
    assert info.value.message.endswith("3456.")


def test_every_configured_key_works() -> None:
    keys = ApiKeys(["sk-one", "sk-two"])
    keys.check("Bearer sk-one")
    keys.check("bearer sk-two")
