"""lowres-adapters: adapt pretrained language models to low-resource languages.

The public API is small::

    from lowres_adapters import load
    model, tokenizer = load("owner/name")

Heavy modules (torch, transformers) are imported only when a function that needs them is called.
"""

from __future__ import annotations

import sys
from typing import Any

from lowres_adapters.hookspecs import hookimpl
from lowres_adapters.registry import get_registry
from lowres_adapters.version import __version__

__all__ = ["__version__", "adapt", "evaluate", "get_registry", "hookimpl", "load", "publish"]


def load(repo_or_path: str, **kwargs: Any) -> Any:
    """Load a published adapter with its base model: ``model, tokenizer = load("owner/name")``.

    See :func:`lowres_adapters.hub.load` for the options.
    """
    # lazy: hub imports torch
    from lowres_adapters.hub import load as _load

    return _load(repo_or_path, **kwargs)


def publish(run_dir: str, repo_id: str, **kwargs: Any) -> Any:
    """Publish a run folder to the Hugging Face Hub. See :func:`lowres_adapters.hub.publish`."""
    # lazy: hub imports torch
    from lowres_adapters.hub import publish as _publish

    return _publish(run_dir, repo_id, **kwargs)


def adapt(language: str, **kwargs: Any) -> Any:
    """Adapt a model to ``language``, then publish the run folder when ``publish="OWNER/NAME"`` is set.

    See :func:`lowres_adapters.training.adapt.adapt` for the options. Publishing happens here, above
    the training layer, which never imports the Hub client.
    """
    from lowres_adapters.training.adapt import adapt as _adapt  # lazy: training imports torch
    from lowres_adapters.training.distributed import current_process  # lazy: imports torch

    result = _adapt(language, **kwargs)
    if result.settings.publish and current_process().is_main:
        from lowres_adapters.hub import publish as _publish  # lazy: the Hub client is needed only here

        echo = kwargs.get("echo") or (lambda line: print(line, file=sys.stderr))
        echo(f"publishing {result.run_dir} to {result.settings.publish}")
        _publish(str(result.run_dir), result.settings.publish)
    return result


def evaluate(run_dir: str, **kwargs: Any) -> Any:
    """Evaluate a run folder. See :func:`lowres_adapters.runs.evaluate.evaluate_run`."""
    # lazy: runs.evaluate imports torch
    from lowres_adapters.runs.evaluate import evaluate_run

    return evaluate_run(run_dir, **kwargs)
