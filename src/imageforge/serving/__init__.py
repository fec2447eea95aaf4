"""Framework-free services behind the HTTP routes: no fastapi, torch or PIL imports here (DESIGN.md §2)."""
