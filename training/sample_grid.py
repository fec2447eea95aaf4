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
    """Rows of prompts x seeds; for a retrieval-conditioned model, the retrieved concept's name under the prompt
    and its reference images (the training images it was shown, at 32 px) after a gap, to compare against."""
    label_w, gap, refs = 190, 24, 3
    width = label_w + seeds * (tile + 4) + gap + refs * (tile + 4)
    canvas = Image.new("RGB", (width, len(prompts) * (tile + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row, prompt in enumerate(prompts):
        p = GenerationParams(prompt=prompt, width=tile, height=tile, steps=steps, seed=1000, n=seeds)
        images = engine.generate([p])[0].images
        y = row * (tile + 4)
        draw.text((4, y + tile // 2 - 12), prompt, fill=(0, 0, 0))
        retrieved = engine.retrieved(prompt)
        if retrieved is not None:
            name, shown = retrieved
            draw.text((4, y + tile // 2 + 4), f"refs: {name}", fill=(110, 110, 110))
            for k, ref in enumerate(shown[:refs]):
                x = label_w + seeds * (tile + 4) + gap + k * (tile + 4)
                small = Image.alpha_composite(Image.new("RGBA", ref.size, (235, 235, 235, 255)), ref.convert("RGBA"))
                canvas.paste(small.convert("RGB").resize((tile, tile), Image.Resampling.NEAREST), (x, y))
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
