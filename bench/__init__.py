"""coldchain's benchmark suite: ingest, latency, queries and growth (run: python -m bench)."""
