"""Build the embedded model's training set from pinned, permissively licensed emoji art.

Inputs (installed by ``npm ci`` from ``training/package-lock.json``; licences in NOTICE):
  * @iconify-json/fluent-emoji-flat 1.2.6 (MIT), @iconify-json/noto 1.2.9 (Apache-2.0),
    @iconify-json/twemoji 1.2.5 (CC-BY-4.0): SVG bodies keyed by icon name, ``chars.json`` maps code points to names.
  * emojibase-data 17.0.0 (MIT; CLDR-derived text): English labels and tags per code point.

Output: one ``.npz`` holding, for every (concept, art style) pair, the image as *premultiplied* RGBA uint8 at each
requested size, the concept index and style, plus the caption table. Premultiplied alpha is what the model learns
(transparent pixels are exactly zero in every channel), and downsampling in premultiplied space avoids the dark
fringes that averaging straight-alpha colours produces.

    python training/build_dataset.py --out data/emoji.npz --sizes 32 64
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

HERE = Path(__file__).resolve().parent
STYLES = ("fluent-emoji-flat", "noto", "twemoji")
# Groups left out: 2 = components (skin-tone swatches, hair parts), 9 = flags (mostly rectangles of stripes,
# which drown the shapes the model should learn). Keycaps are digits in a box: left out for the same reason.
_SKIP_GROUPS = {2, 9}
_SKIP_SUBGROUPS = {94}
RENDER_PX = 256


@dataclass(frozen=True)
class Concept:
    label: str
    hexcode: str
    tags: tuple[str, ...]
    unicode_name: str | None

    def captions(self) -> list[str]:
        """Caption variants; training picks one at random each time the image is seen."""
        caps = [self.label, f"{self.label} emoji", f"{_article(self.label)} {self.label}"]
        if self.unicode_name and self.unicode_name != self.label:
            caps.append(self.unicode_name)
        extra = [t for t in self.tags if t not in self.label.split()][:3]
        if extra:
            caps.append(", ".join([self.label, *extra]))
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
    if not (modules / "emojibase-data").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    return modules


def load_concepts(modules: Path) -> list[Concept]:
    data = json.loads((modules / "emojibase-data/en/data.json").read_text())
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


def build(out: Path, sizes: tuple[int, ...], workers: int) -> dict:
    modules = ensure_npm_packages()
    concepts = load_concepts(modules)
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
    source_hashes["emojibase-data/en/data.json"] = hashlib.sha256(
        (modules / "emojibase-data/en/data.json").read_bytes()
    ).hexdigest()

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
    args = ap.parse_args()
    print(json.dumps(build(args.out, tuple(args.sizes), args.workers), indent=2))


if __name__ == "__main__":
    main()
