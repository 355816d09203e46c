"""The applications built on the library: the command line, ``info``, the demo, ``finetune``,
``validate`` and the benchmarks.

The library (everything outside this package) never imports it, so importing ``superpositional``
needs only the base dependencies; each application imports what it needs (tqdm, matplotlib,
transformers, Qiskit) when it runs.
"""
