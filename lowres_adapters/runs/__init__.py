"""Finished run folders: evaluate them, load their checkpoints, compare them layer by layer.

This package sits above ``training`` (it rebuilds a run's held-out data and task model) and
``loading`` (it loads the saved adapter onto its base model); ``evaluation`` below it holds the
metrics themselves.
"""
