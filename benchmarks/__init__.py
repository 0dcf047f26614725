"""asrtune's benchmarks: timed runs on the shared speech sets, each writing its result as JSON.

Run one from the repository root as a module (``python -m benchmarks.bench_eval --help``); the
shared parts (data root, hardware, timing, result files) are in :mod:`benchmarks.harness`, the
results in ``benchmarks/results/``, and ``python -m benchmarks.tables`` regenerates the tables of
README.md and docs/ from them.
"""
