"""Build the embedded model's training set from pinned, permissively licensed emoji art.

Inputs (installed by ``npm ci`` from ``training/package-lock.json``; licences in NOTICE):
  * @iconify-json/fluent-emoji-flat 1.2.6 (MIT), @iconify-json/noto 1.2.9 (Apache-2.0),
    @iconify-json/twemoji 1.2.5 (CC-BY-4.0): SVG bodies keyed by icon name, ``chars.json`` maps code points to names.
  * emojibase-data 17.0.0 (MIT; CLDR-derived text): English labels and tags per code point.
  * emojilib 4.0.3 (MIT): English keywords per emoji ("hamburger": meat, fast food, beef, cheeseburger, ...), the
    everyday words people use for them; two extra captions per concept unless ``--no-keywords`` (issue 5: prompts
    worded unlike any label). The v1/v2 weights were trained without them.

Output: one ``.npz`` holding, for every (concept, art style) pair, the image as *premultiplied* RGBA uint8 at each
requested size, the concept index and style, plus the caption table. Premultiplied alpha is what the model learns
(transparent pixels are exactly zero in every channel), and downsampling in premultiplied space avoids the dark
fringes that averaging straight-alpha colours produces.

    python training/build_dataset.py --out data/emoji_v3.npz --sizes 32 64       # v3
    python training/build_dataset.py --out data/emoji.npz --sizes 32 64 --no-keywords --no-descriptions  # v1, v2
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import unicodedata
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import resvg_py
from PIL import Image

from imageforge.engines.embedded.colours import COLOUR_WORDS

HERE = Path(__file__).resolve().parent
STYLES = ("fluent-emoji-flat", "noto", "twemoji")
# Groups left out: 2 = components (skin-tone swatches, hair parts), 9 = flags (mostly rectangles of stripes,
# which drown the shapes the model should learn). Keycaps are digits in a box: left out for the same reason.
_SKIP_GROUPS = {2, 9}
_SKIP_SUBGROUPS = {94}
RENDER_PX = 256
DESCRIPTIONS = HERE / "captions" / "descriptions.json"


@dataclass(frozen=True)
class Concept:
    label: str
    hexcode: str
    tags: tuple[str, ...]
    unicode_name: str | None
    keywords: tuple[str, ...] = ()  # emojilib's, without the label's own words
    descriptions: tuple[str, ...] = ()  # captions/descriptions.json

    def captions(self) -> list[str]:
        """Caption variants; training picks one at random each time the image is seen."""
        caps = [self.label, f"{self.label} emoji", f"{_article(self.label)} {self.label}"]
        if self.unicode_name and self.unicode_name != self.label:
            caps.append(self.unicode_name)
        extra = [t for t in self.tags if t not in self.label.split()][:3]
        if extra:
            caps.append(", ".join([self.label, *extra]))
        if self.keywords:
            # The label with its everyday keywords, and the keywords alone: a caption that never names the
            # concept, as a prompt worded unlike its label does not.
            caps.append(", ".join([self.label, *self.keywords[:8]]))
            if len(self.keywords) >= 2:
                caps.append(", ".join(self.keywords[:5]))
        caps.extend(self.descriptions)
        return list(dict.fromkeys(caps))


def _article(label: str) -> str:
    return "an" if label[:1] in "aeiou" else "a"


def _unicode_name(emoji: str) -> str | None:
    chars = [c for c in emoji if c not in "\ufe0f\u200d"]
    if len(chars) != 1:
        return None
    try:
        return unicodedata.name(chars[0]).lower()
    except ValueError:
        return None


def ensure_npm_packages() -> Path:
    modules = HERE / "node_modules"
    if not (modules / "emojibase-data").is_dir() or not (modules / "emojilib").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    return modules


def _keywords(library: dict[str, list[str]], emoji: str, label: str) -> tuple[str, ...]:
    """emojilib's keywords of an emoji (looked up with and without the emoji presentation selector), minus the
    label's own words and colour words (a "black" among a red heart's keywords would teach colours wrong); its
    slug-style entries ("fast_food") read as words."""
    found = library.get(emoji) or library.get(emoji.replace("\ufe0f", "")) or library.get(emoji + "\ufe0f") or []
    own = set(label.lower().split()) | {label.lower()} | COLOUR_WORDS
    words = (k.replace("_", " ").strip() for k in found)
    return tuple(dict.fromkeys(w for w in words if w and w.lower() not in own))


def load_concepts(modules: Path, keywords: bool = True, descriptions: bool = True) -> list[Concept]:
    data = json.loads((modules / "emojibase-data/en/data.json").read_text())
    library = json.loads((modules / "emojilib/dist/emoji-en-US.json").read_text()) if keywords else {}
    described = json.loads(DESCRIPTIONS.read_text()) if descriptions else {}
    out = []
    for row in data:
        if row.get("group") in _SKIP_GROUPS or row.get("subgroup") in _SKIP_SUBGROUPS:
            continue
        out.append(
            Concept(
                label=row["label"],
                hexcode=row["hexcode"].lower(),
                tags=tuple(row.get("tags", ())),
                unicode_name=_unicode_name(row["emoji"]),
                keywords=_keywords(library, row["emoji"], row["label"]),
                descriptions=tuple(described.get(row["label"], ())),
            )
        )
    return out


def _svg_for(icon_set: dict, name: str) -> str | None:
    icons, aliases = icon_set["icons"], icon_set.get("aliases", {})
    while name in aliases and name not in icons:
        name = aliases[name]["parent"]
    icon = icons.get(name)
    if icon is None:
        return None
    w = icon.get("width", icon_set.get("width", 16))
    h = icon.get("height", icon_set.get("height", 16))
    left, top = icon.get("left", 0), icon.get("top", 0)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="{left} {top} {w} {h}" width="{RENDER_PX}" height="{RENDER_PX}">{icon["body"]}</svg>'
    )


def _render(args: tuple[str, tuple[int, ...]]) -> list[np.ndarray]:
    svg, sizes = args
    png = resvg_py.svg_to_bytes(svg_string=svg, width=RENDER_PX, height=RENDER_PX, skip_system_fonts=True)
    rgba = np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGBA"), dtype=np.float32) / 255.0
    rgba[..., :3] *= rgba[..., 3:4]  # premultiply before any resampling
    out = []
    for s in sizes:
        f = RENDER_PX // s  # box filter = exact area average; RENDER_PX is a multiple of every size
        small = rgba.reshape(s, f, s, f, 4).mean(axis=(1, 3))
        out.append(np.round(small * 255.0).astype(np.uint8))
    return out


def build(out: Path, sizes: tuple[int, ...], workers: int, keywords: bool = True, descriptions: bool = True) -> dict:
    modules = ensure_npm_packages()
    concepts = load_concepts(modules, keywords, descriptions)
    jobs: list[tuple[int, int, str]] = []  # (concept index, style index, svg)
    source_hashes = {}
    for si, style in enumerate(STYLES):
        path = modules / "@iconify-json" / style / "icons.json"
        source_hashes[style] = hashlib.sha256(path.read_bytes()).hexdigest()
        icon_set = json.loads(path.read_text())
        chars = json.loads((modules / "@iconify-json" / style / "chars.json").read_text())
        for ci, c in enumerate(concepts):
            name = chars.get(c.hexcode) or chars.get(c.hexcode.replace("-fe0f", ""))
            svg = _svg_for(icon_set, name) if name else None
            if svg is not None:
                jobs.append((ci, si, svg))
    for text in ("emojibase-data/en/data.json", "emojilib/dist/emoji-en-US.json")[: 2 if keywords else 1]:
        source_hashes[text] = hashlib.sha256((modules / text).read_bytes()).hexdigest()
    if descriptions:
        source_hashes["training/captions/descriptions.json"] = hashlib.sha256(DESCRIPTIONS.read_bytes()).hexdigest()

    with ProcessPoolExecutor(workers) as pool:
        rendered = list(pool.map(_render, [(svg, sizes) for _, _, svg in jobs], chunksize=32))

    used = sorted({ci for ci, _, _ in jobs})
    remap = {ci: i for i, ci in enumerate(used)}
    concepts = [concepts[ci] for ci in used]
    captions: list[str] = []
    cap_offsets = [0]
    for c in concepts:
        captions.extend(c.captions())
        cap_offsets.append(len(captions))
    arrays = {f"images_{s}": np.stack([r[k] for r in rendered]) for k, s in enumerate(sizes)}
    arrays["concept"] = np.array([remap[ci] for ci, _, _ in jobs], dtype=np.int32)
    arrays["style"] = np.array([si for _, si, _ in jobs], dtype=np.int8)
    arrays["caption_offsets"] = np.array(cap_offsets, dtype=np.int32)
    meta = {
        "styles": list(STYLES),
        "labels": [c.label for c in concepts],
        "captions": captions,
        "sources_sha256": source_hashes,
        "render_px": RENDER_PX,
    }
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    summary = {
        "images": len(jobs),
        "concepts": len(concepts),
        "captions": len(captions),
        "per_style": {s: int((arrays["style"] == i).sum()) for i, s in enumerate(STYLES)},
        "dataset_sha256": digest,
        "sources_sha256": source_hashes,
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data/emoji.npz"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keywords", action=argparse.BooleanOptionalAction, default=True, help="emojilib captions")
    ap.add_argument("--descriptions", action=argparse.BooleanOptionalAction, default=True, help="our own captions")
    args = ap.parse_args()
    summary = build(args.out, tuple(args.sizes), args.workers, args.keywords, args.descriptions)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
