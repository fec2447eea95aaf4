"""Sample a labelled grid of prompts x seeds from exported weights (a training check, and the README gallery).

python training/sample_grid.py --out docs/gallery.png                      # the README gallery

python training/export.py --run training/runs/v1 --dest /tmp/v1-weights   # (copy text_encoder/, tokenizer/)
python training/sample_grid.py --weights /tmp/v1-weights --out grid.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from imageforge.engines.embedded.config import WEIGHTS_DIR
from imageforge.engines.embedded.engine import EmbeddedEngine
from imageforge.params import GenerationParams

# The README gallery: training captions, paraphrases worded unlike any caption (benchmarks/quality_prompts), and
# colour/object combinations.
DEFAULT_PROMPTS = [
    "red apple",
    "cat face",
    "rocket",
    "house",
    "pizza",
    "a ripe crimson apple",
    "a spaceship blasting off",
    "flames burning",
    "a triangular cheesy pepperoni slice",
    "a beef patty in a sesame bun",
    "a blue heart",
    "a green star",
    "a purple balloon",
    "a yellow fish",
    "a pink umbrella",
]


def grid(engine: EmbeddedEngine, prompts: list[str], seeds: int, tile: int, steps: int) -> Image.Image:
    label_w = 170
    canvas = Image.new("RGB", (label_w + seeds * (tile + 4), len(prompts) * (tile + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row, prompt in enumerate(prompts):
        p = GenerationParams(prompt=prompt, width=tile, height=tile, steps=steps, seed=1000, n=seeds)
        images = engine.generate([p])[0].images
        y = row * (tile + 4)
        draw.text((4, y + tile // 2 - 6), prompt, fill=(0, 0, 0))
        for i, img in enumerate(images):
            canvas.paste(img, (label_w + i * (tile + 4), y))
    return canvas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--out", type=Path, default=Path("grid.png"))
    ap.add_argument("--prompts", nargs="+", default=DEFAULT_PROMPTS)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--tile", type=int, default=96)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    engine = EmbeddedEngine(weights_dir=args.weights, device="cpu")
    grid(engine, args.prompts, args.seeds, args.tile, args.steps).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
