"""The GPU benchmark ladder: real model architectures at true size with random weights (``shapes``), timed as a
user's plain diffusers loop, as ImageForge's engine in-process, and through a real ImageForge server, then with
the engine's speed options added one at a time (``ladder``). Run ``python -m benchmarks.gpu.ladder --help``."""
