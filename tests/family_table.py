"""docs/models.md's family table, rendered from the family data (``engines/families.py``): the test that the
document says what the code does, and the way to rewrite the table when a row changes
(``python -m tests.family_table``)."""

from __future__ import annotations

from imageforge.engines.families import FAMILIES, Family

HEADER = (
    "| family | diffusers pipeline | steps low / medium / high | guidance | scheduler | native size | own id's "
    "rules | previews | e.g. |\n|---|---|---|---|---|---|---|---|---|"
)


def row(f: Family) -> str:
    scheduler = f.scheduler or "checkpoint's"
    if f.scheduler_config:
        scheduler += " (" + ", ".join(f"{k} {v}" for k, v in f.scheduler_config) + ")"
    guidance = "pipeline's" if f.guidance_scale is None else f"{f.guidance_scale:g}"
    steps = f"{f.steps.low} / {f.steps.medium} / {f.steps.high}"
    example = f.examples[0] if f.examples else ""
    return (f"| {f.name} | {f.pipeline or 'auto'} | {steps} | {guidance} | {scheduler} | {f.native_size}² | "
            f"{f.profile} | {f.preview_vae or 'model VAE'} | {example} |")  # fmt: skip


def table() -> str:
    families = FAMILIES.values() if isinstance(FAMILIES, dict) else FAMILIES
    return "\n".join([HEADER, *(row(f) for f in families)])


if __name__ == "__main__":
    print(table())  # noqa: T201
