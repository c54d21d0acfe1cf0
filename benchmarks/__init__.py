"""Speed and quality benchmarks, each a module: ``python -m benchmarks.typing_replay`` (from the
repository's root). Shared helpers: :mod:`benchmarks.common`; results: docs/benchmarks.md."""
