"""Where ``response_format=url`` images live until they expire: a filesystem store and URL signing."""
