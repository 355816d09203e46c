"""Benchmarks run by ``python -m superpositional bench`` (and the scripts in ``bench/``)."""
