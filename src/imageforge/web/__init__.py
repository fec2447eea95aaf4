"""The playground page served at ``/`` (static files in ``playground/``; see ``api/routes/playground.py``)."""

__all__: list[str] = []
