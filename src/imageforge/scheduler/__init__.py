"""Who runs engine work: one worker thread owns each engine; requests wait their turn in a bounded queue.

The batching scheduler (compatible jobs merged into one ``generate`` call) is later work; :class:`EngineWorker`
is the seam it replaces.
"""
