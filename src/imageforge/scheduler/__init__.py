"""Who runs engine work: one worker thread owns each engine (``worker.py``) and runs compatible waiting requests
as one batch (``batching.py``, a pure function); at most ``queue_limit`` requests wait, more get a 429 at once."""
