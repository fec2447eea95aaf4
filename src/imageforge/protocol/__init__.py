"""Wire models: OpenAI's JSON shapes, field for field (no fastapi, torch or PIL here; DESIGN.md §2)."""
