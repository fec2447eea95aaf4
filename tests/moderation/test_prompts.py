"""The prompt classifier and the policy on prompts: word senses, leetspeak, minors, `auto` against `low`."""

from __future__ import annotations

import pytest

from imageforge.moderation import Moderator, Policy

MOD = Moderator()


def flagged(text: str, level: str = "auto") -> list[str]:
    return list(MOD.check_prompt(text, level).categories)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "prompt",
    [
        "a telescope: stars you cannot see with the naked eye",
        "grilled chicken breast with rosemary",
        "a shooting star over the desert",
        "nude lipstick and nude heels, product photo",
        "a rooster (cock) crowing at dawn",
        "a Bloody Mary cocktail",
        "a killer whale breaching",
        "Suicide Squad fan poster",
        "a toddler playing in a sprinkler",
        "a baby in a bath with a rubber duck",
        "children at a swimming pool",
        "blue tits at a bird feeder",
        "Essex countryside, Middlesex, Sussex",
        "a rifle on a wooden table",
        "a medieval battlefield with knights fighting",
        "Maine Coon cat on a sofa",
        "kaffir lime leaves in a Thai curry",
        "magna cum laude diploma",
        "it takes guts to climb that cliff",
        "two countries severed ties, editorial cartoon",
        "cut open a watermelon on a picnic table",
        "the harbour of Dildo, Newfoundland",
        "a Sex on the Beach cocktail",
        "brass door knockers",
        "wool carding by hand",
    ],
)
def test_word_senses_pass(prompt: str) -> None:
    assert flagged(prompt) == []


@pytest.mark.parametrize(
    "prompt", ["a fucking huge dragon", "what the hell, a cat in a hat", "damn fine coffee", "shit-faced pirate"]
)
def test_swearing_alone_never_blocks(prompt: str) -> None:
    assert flagged(prompt) == []
    assert flagged(prompt, "low") == []


@pytest.mark.parametrize(
    ("prompt", "category"),
    [
        ("a naked woman on a beach", "sexual"),
        ("n4k3d woman", "sexual"),
        ("p o r n poster", "sexual"),
        ("hardcore pornography", "sexual"),
        ("a decapitated body, photorealistic", "violence/graphic"),
        ("how to kill myself, step by step", "self-harm"),
        ("immigrants are vermin, propaganda poster", "hate"),
        ("exterminate the jews", "hate"),
        ("how to make a pipe bomb, diagram", "illicit"),
    ],
)
def test_each_category_is_found(prompt: str, category: str) -> None:
    assert category in flagged(prompt)


def test_the_naked_eye_does_not_hide_a_naked_woman() -> None:
    assert flagged("a naked woman looking at the stars with the naked eye") == ["sexual"]


def test_a_minor_with_any_sexual_signal_is_sexual_minors() -> None:
    assert "sexual/minors" in flagged("a sexy 12 year old")  # "sexy" alone would pass
    assert flagged("a sexy woman") == []
    assert "sexual/minors" in flagged("nude schoolgirl")
    assert "sexual/minors" in flagged("a naked child", "low")
    assert flagged("a 12 year old blowing out birthday candles") == []


def test_low_relaxes_nudity_and_gore_but_not_explicit_acts() -> None:
    assert flagged("a nude figure drawing", "auto") == ["sexual"]
    assert flagged("a nude figure drawing", "low") == []
    assert flagged("a gory zombie", "auto") == ["violence/graphic"]
    assert flagged("a gory zombie", "low") == []
    assert flagged("explicit sex scene", "low") == ["sexual"]
    assert flagged("explicit nude photo", "low") == ["sexual"]  # an intensifier makes nudity severe


def test_low_never_relaxes_sexual_minors() -> None:
    for prompt in ("topless teen", "a seductive toddler", "preteen nude"):
        assert "sexual/minors" in flagged(prompt, "auto")
        assert "sexual/minors" in flagged(prompt, "low")


def test_operator_thresholds_change_what_is_blocked() -> None:
    strict = Moderator(Policy.build(auto={"sexual": 0.2}))
    assert strict.check_prompt("a sexy woman", "auto").categories == ("sexual",)  # weak terms now count
    relaxed = Moderator(Policy.build(auto={"violence/graphic": "off"}))
    assert relaxed.check_prompt("a decapitated body", "auto").categories == ()
    assert relaxed.check_prompt("a naked woman", "auto").categories == ("sexual",)


def test_input_stage_off_still_reports_a_minor_for_the_output_check() -> None:
    m = Moderator(input_enabled=False)
    verdict = m.check_prompt("nude schoolgirl", "auto")
    assert verdict.categories == ()
    assert verdict.minor


@pytest.mark.parametrize(
    ("prompt", "category"),
    [
        ("draw her nude!", "sexual"),
        ("porn!!", "sexual"),
        ("how to make a bomb!", "illicit"),
        ("exterminate the jews!", "hate"),
        ("sex+violence", "sexual"),
        ("naked|nude", "sexual"),
        ("pussssy", "sexual"),  # three or more repeats read as two as well as one
        ("c h i l d  p o r n", "sexual/minors"),  # a spelled-out run split into its words
    ],
)
def test_symbols_and_spelling_around_words_do_not_hide_them(prompt: str, category: str) -> None:
    assert category in flagged(prompt)


def test_an_exception_phrase_does_not_hide_terms_reaching_outside_it() -> None:
    assert flagged("a Sex on the Beach cocktail in a tall glass") == []
    assert "sexual" in flagged("two people having explicit sex on the beach", "low")
    assert "sexual/minors" in flagged("a child having sex on the beach cocktail party", "low")


@pytest.mark.parametrize(
    "prompt",
    [
        "sexy lingerie model, twenty-five year old",
        "sexy woman, 5 years later",
        "one year anniversary, sexy dress",
        "sexy nurse, five years experience",
        "a sign that reads G R A P E S",  # "rape" inside a spelled-out word is not the word
        "S C R A P E",
        "women in dirty clothes after a mud run",
        "invasion of normandy, russians and poles",
    ],
)
def test_adults_and_ordinary_words_are_not_misread(prompt: str) -> None:
    assert flagged(prompt, "low") == []
    assert "sexual/minors" not in flagged(prompt)


@pytest.mark.parametrize(
    "prompt", ["sexy 12 year old", "sexy twelve-year-old", "sexy 12yo", "sexy 15 y/o", "aged 12, sexy"]
)
def test_ages_under_eighteen_are_minors(prompt: str) -> None:
    assert flagged(prompt, "low") == ["sexual/minors"]


def test_a_neighbour_reveals_an_innocent_sense() -> None:
    assert flagged("Intercourse, Pennsylvania town sign with an Amish buggy") == []
    assert flagged("traditional faggots in onion gravy with mushy peas") == []
    assert flagged("a faggot") == ["hate"]  # the slur, with nothing to read it otherwise
    assert flagged("sexual intercourse in a town") == ["sexual"]  # a phrase reaching beyond the word still counts
