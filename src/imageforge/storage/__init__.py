"""Stored state: ``response_format=url`` images until they expire (a filesystem or S3-compatible store, and URL
signing), stored Responses (SQLite or PostgreSQL)."""
