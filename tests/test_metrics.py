"""/metrics' own rules: end-user labels are pseudonyms by default, bounded in number, and never able to break the
page for everyone (issue 15)."""

from __future__ import annotations

import hashlib

from imageforge.metrics import Metrics, hashed_user


def _usage(m: Metrics, user: str | None) -> None:
    m.record_usage("key_x", user, images=1, pixels=1, steps=1, text_tokens=1, image_tokens=1)


def test_end_users_are_labelled_by_a_pseudonym_by_default() -> None:
    m = Metrics()
    _usage(m, "zoe@example.com")
    page = m.render().decode()
    expected = "u_" + hashlib.sha256(b"zoe@example.com").hexdigest()[:12]
    assert hashed_user("zoe@example.com") == expected
    assert f'user="{expected}"' in page and "zoe@example.com" not in page


def test_plain_labels_on_request_and_any_text_still_renders() -> None:
    m = Metrics(user_labels="plain")
    for user in ("zoe@example.com", "Zoë 🙂", "a\ud800b", 'quote" and \\ backslash'):
        _usage(m, user)
    page = m.render().decode()
    assert 'user="zoe@example.com"' in page and 'user="Zoë 🙂"' in page and "a\\\\ud800b" in page
    hashed = Metrics()
    _usage(hashed, "a\ud800b")
    assert hashed.render()


def test_the_number_of_user_labels_is_bounded() -> None:
    m = Metrics(max_users=2)
    for user in ("a", "b", "c", "d"):
        _usage(m, user)
    page = m.render().decode()
    assert page.count("imageforge_usage_requests_total{") == 3 and 'user="other"' in page
