"""lowres-adapters: adapt pretrained language models to low-resource languages.

The public API is small::

    from lowres_adapters import load
    model, tokenizer = load("owner/name")

Heavy modules (torch, transformers) are imported only when a function that needs them is called.
"""

from __future__ import annotations

from typing import Any

from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.registry import get_registry

__version__ = "0.1.0"

__all__ = ["__version__", "adapt", "evaluate", "get_registry", "hookimpl", "load", "publish"]


def load(repo_or_path: str, **kwargs: Any) -> Any:
    """Load a published adapter with its base model: ``model, tokenizer = load("owner/name")``.

    See :func:`lowres_adapters.hub.load` for the options.
    """
    from lowres_adapters.hub import load as _load

    return _load(repo_or_path, **kwargs)


def publish(run_dir: str, repo_id: str, **kwargs: Any) -> Any:
    """Publish a run folder to the Hugging Face Hub. See :func:`lowres_adapters.hub.publish`."""
    from lowres_adapters.hub import publish as _publish

    return _publish(run_dir, repo_id, **kwargs)


def adapt(language: str, **kwargs: Any) -> Any:
    """Adapt a model to ``language``. See :func:`lowres_adapters.training.adapt.adapt`."""
    from lowres_adapters.training.adapt import adapt as _adapt

    return _adapt(language, **kwargs)


def evaluate(run_dir: str, **kwargs: Any) -> Any:
    """Evaluate a run folder. See :func:`lowres_adapters.evaluation.run.evaluate_run`."""
    from lowres_adapters.evaluation.run import evaluate_run

    return evaluate_run(run_dir, **kwargs)
