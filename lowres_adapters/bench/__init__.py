"""``lowres bench``: adaptation speed against the ``adapters`` + Trainer and PEFT baselines.

Each setup runs in a child process (one after another, repeated), on the same model, data and
number of optimiser steps; the parent reads the child's peak RSS from ``wait4``. See
:mod:`lowres_adapters.bench.harness` and ``docs/bench.md``.
"""
