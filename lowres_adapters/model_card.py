"""Render the ``README.md`` model card of an adapter artifact.

The card has YAML front matter in the Hugging Face Hub's conventions (``language``, ``license``,
``library_name``, ``base_model``, ``tags``, ``datasets``, ``model-index``), built through
``huggingface_hub.ModelCardData`` so the Hub reads it as it reads any card, then a human section:
what the adapter is, the two-line load snippet, training settings, metrics (base vs adapted), data
provenance and licences, limitations.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from lowres_adapters.artifact import NATIVE_DIR, ArtifactMetadata

LIBRARY_NAME = "lowres-adapters"
GENERATED_MARKER = "<!-- lowres-adapters:generated-card -->"
"""Present in generated cards: ``publish`` regenerates such a card and keeps a hand-written one."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_METRIC_LABELS = {
    "bits_per_char": "bits/char",
    "perplexity": "perplexity",
    "pseudo_perplexity": "pseudo-perplexity",
    "loss": "loss",
    "bleu": "BLEU",
    "chrf": "chrF",
    "chrf_plus_plus": "chrF++",
    "f1": "F1",
    "exact_match": "EM",
}
_LOWER_IS_BETTER = {"bits_per_char", "perplexity", "pseudo_perplexity", "loss"}


def language_codes(code: str) -> list[str]:
    """Return the Hub ``language`` list for an ISO 639-3 code: the code, plus ISO 639-1 if one exists."""
    if not code:
        return []
    codes = [code]
    try:
        import pycountry

        found = pycountry.languages.get(alpha_3=code)
    except (ImportError, KeyError, LookupError):
        found = None
    alpha_2 = getattr(found, "alpha_2", None) if found is not None else None
    if alpha_2:
        codes.append(alpha_2)
    return codes


def language_name(code: str) -> str:
    """Return the English name of an ISO 639-3 language, or the code itself."""
    try:
        import pycountry

        found = pycountry.languages.get(alpha_3=code)
    except (ImportError, KeyError, LookupError):
        found = None
    return getattr(found, "name", None) or code or "an unspecified language"


def numeric_metrics(block: Any) -> dict[str, float]:
    """Return the numeric entries of one metrics block (``{"bits_per_char": 1.2, ...}``)."""
    if not isinstance(block, dict):
        return {}
    return {key: float(value) for key, value in block.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def is_hub_id(model_id: str) -> bool:
    """Return True when ``model_id`` looks like ``owner/name`` rather than a local path."""
    return bool(_HUB_ID.match(model_id)) and not Path(model_id).expanduser().exists()


def card_tags(metadata: ArtifactMetadata, has_native: bool) -> list[str]:
    """Return the Hub tags: library, adapter type, recipe, language, and ``adapters`` for AdapterHub files."""
    tags = [LIBRARY_NAME, "adapter", metadata.adapter_type]
    if metadata.recipe:
        tags.append(f"recipe-{metadata.recipe}")
    if has_native:
        tags.extend(["adapters", "adapter-transformers"])
    if metadata.language:
        tags.append(f"language-{metadata.language}")
    if metadata.vocabulary:
        tags.append("extended-vocabulary")
    return list(dict.fromkeys(tags))


def card_data(metadata: ArtifactMetadata, *, repo_id: str | None = None, has_native: bool = False) -> Any:
    """Build the ``huggingface_hub.ModelCardData`` (the YAML front matter) for ``metadata``."""
    from huggingface_hub import EvalResult, ModelCardData

    model_name = (repo_id or f"{metadata.adapter_type}-{metadata.language or 'adapter'}").split("/")[-1]
    adapted = numeric_metrics(metadata.metrics.get("adapted"))
    split = metadata.metrics.get("eval_split") if isinstance(metadata.metrics.get("eval_split"), str) else None
    dataset_name = metadata.datasets[0] if metadata.datasets else f"{metadata.language or 'held-out'} text"
    task_type = "fill-mask" if metadata.objective == "mlm" else "text-generation"
    eval_results = [
        EvalResult(task_type=task_type, task_name="Language modelling", dataset_type=dataset_name,
                   dataset_name=dataset_name, dataset_split=split, metric_type=key,
                   metric_name=f"{_METRIC_LABELS.get(key, key)} (adapted)", metric_value=round(value, 4))
        for key, value in sorted(adapted.items())
    ]
    return ModelCardData(
        language=language_codes(metadata.language) or None,
        license=metadata.licence or None,
        library_name=LIBRARY_NAME,
        base_model=metadata.base_model if is_hub_id(metadata.base_model) else None,
        tags=card_tags(metadata, has_native),
        datasets=list(metadata.datasets) or None,
        pipeline_tag=task_type,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )


def render_model_card(metadata: ArtifactMetadata, *, repo_id: str | None = None,
                      directory: Path | None = None, has_native: bool | None = None) -> str:
    """Render ``README.md`` for an adapter artifact.

    Args:
        metadata: The artifact's ``lowres_adapter.json`` contents.
        repo_id: The Hub repo the card is published to (used in the load snippet).
        directory: The artifact folder; used to see whether AdapterHub files are present.
        has_native: Whether AdapterHub files are present (overrides looking in ``directory``).

    Returns:
        The card text: YAML front matter, then Markdown.
    """
    if has_native is None:
        has_native = directory is not None and any((Path(directory) / NATIVE_DIR).glob("*"))
    data = card_data(metadata, repo_id=repo_id, has_native=has_native)
    sections = [
        f"---\n{data.to_yaml()}\n---\n",
        GENERATED_MARKER,
        _summary(metadata, repo_id),
        _load_section(metadata, repo_id, has_native),
        _settings_section(metadata),
        _metrics_section(metadata),
        _data_section(metadata),
        _limitations_section(metadata),
    ]
    return "\n".join(section.rstrip("\n") + "\n" for section in sections if section)


def _summary(metadata: ArtifactMetadata, repo_id: str | None) -> str:
    name = language_name(metadata.language)
    title = repo_id.split("/")[-1] if repo_id else f"{metadata.adapter_type} adapter for {name}"
    script = f", {metadata.script} script" if metadata.script else ""
    base = _model_link(metadata.base_model)
    recipe = f" with the `{metadata.recipe}` recipe" if metadata.recipe else ""
    vocabulary = ""
    if metadata.vocabulary:
        vocabulary = (f" The vocabulary was extended by {metadata.vocabulary.get('added_tokens', 0)} tokens "
                      f"(from {metadata.vocabulary.get('original_size', '?')}); the new embedding rows and "
                      "the tokenizer are part of this repository.")
    return (
        f"# {title}\n\n"
        f"A `{metadata.adapter_type}` adapter that adapts {base} to **{name}** "
        f"(`{metadata.language or '?'}`{script}), trained{recipe} by "
        f"[lowres-adapters](https://pypi.org/project/lowres-adapters/). It holds only the adapter's "
        f"weights, not the base model.{vocabulary}\n"
    )


def _model_link(model_id: str) -> str:
    if is_hub_id(model_id):
        return f"[`{model_id}`](https://huggingface.co/{model_id})"
    return f"`{model_id}`"


def _load_section(metadata: ArtifactMetadata, repo_id: str | None, has_native: bool) -> str:
    target = repo_id or "path/to/this/folder"
    install = "pip install lowres-adapters"
    if metadata.plugin and not metadata.plugin.startswith(f"{LIBRARY_NAME}=="):
        install += f" {metadata.plugin}"
    text = (
        "## Load it in two lines\n\n"
        f"```bash\n{install}\n```\n\n"
        "```python\n"
        "from lowres_adapters import load\n"
        f'model, tokenizer = load("{target}")\n'
        "```\n\n"
        "The base model is fetched from the id recorded in `lowres_adapter.json`; pass `revision=` to pin "
        "this repository's version and `model=` to use a local copy of the base model. Weights are "
        "safetensors; nothing is unpickled.\n"
    )
    if has_native:
        text += (
            f"\nAdapterHub users: the `{NATIVE_DIR}/` folder holds the adapter in the `adapters` library's "
            f"own format (`adapters.init(model); model.load_adapter(\"<download>/{NATIVE_DIR}\")`).\n"
        )
    return text


def _settings_section(metadata: ArtifactMetadata) -> str:
    revision = f" (revision `{metadata.base_model_revision}`)" if metadata.base_model_revision else ""
    rows = [
        ("adapter type", f"`{metadata.adapter_type}`" + (f" from `{metadata.plugin}`" if metadata.plugin else "")),
        ("adapter config", f"`{json.dumps(metadata.adapter_config, sort_keys=True)}`"),
        ("base model", f"`{metadata.base_model}`{revision}"),
        ("objective", "masked LM" if metadata.objective == "mlm" else "causal LM"),
        ("recipe", f"`{metadata.recipe}`" if metadata.recipe else "-"),
    ]
    rows += [(f"recipe: {key}", f"`{json.dumps(value)}`") for key, value in sorted(metadata.recipe_settings.items())]
    if metadata.vocabulary:
        rows.append(("vocabulary", f"{metadata.vocabulary.get('original_size')} + "
                                   f"{metadata.vocabulary.get('added_tokens')} new tokens"))
    rows.append(("library", f"lowres-adapters {metadata.library_version} (artifact format {metadata.format_version})"))
    return "## Training settings\n\n" + _table(("setting", "value"), rows)


def _metrics_section(metadata: ArtifactMetadata) -> str:
    base = numeric_metrics(metadata.metrics.get("base"))
    adapted = numeric_metrics(metadata.metrics.get("adapted"))
    if not base and not adapted:
        return "## Results\n\nNo held-out figures were recorded for this run.\n"
    rows = []
    for key in sorted(set(base) | set(adapted)):
        before, after = base.get(key), adapted.get(key)
        change = "-"
        if before is not None and after is not None:
            better = (after < before) if key in _LOWER_IS_BETTER else (after > before)
            change = f"{after - before:+.4g}" + (" (better)" if better else " (worse)" if after != before else "")
        rows.append((_METRIC_LABELS.get(key, key), _number(before), _number(after), change))
    split = metadata.metrics.get("eval_split")
    where = f" on the `{split}` split" if isinstance(split, str) else " on held-out data"
    return (f"## Results\n\nThe base model alone against the base model with this adapter{where}.\n\n"
            + _table(("metric", "base", "adapted", "change"), rows))


def _data_section(metadata: ArtifactMetadata) -> str:
    sources = {source.name: source for source in _pack_sources(metadata.language)}
    if not metadata.datasets:
        return "## Training data\n\nNo corpus names were recorded.\n"
    rows = []
    for name in metadata.datasets:
        source = sources.get(name)
        rows.append((f"`{name}`", source.licence if source else "see the language pack",
                     (source.route if source else "-"), (source.description if source else "-")))
    return ("## Training data\n\nCorpora as provided by the language pack, with their licences. "
            f"The adapter weights are released under `{metadata.licence}`.\n\n"
            + _table(("corpus", "licence", "obtained through", "description"), rows))


def _pack_sources(code: str) -> Iterable[Any]:
    """Return the SourceInfo list of the installed language pack for ``code`` (empty if none)."""
    if not code:
        return ()
    try:
        from lowres_adapters.registry import get_registry

        registry = get_registry()
        if code not in registry.names("language_packs"):
            return ()
        return registry.language_pack(code).sources
    except Exception:  # noqa: BLE001 - a card renders even when plugins are broken
        return ()


def _limitations_section(metadata: ArtifactMetadata) -> str:
    name = language_name(metadata.language)
    return (
        "## Limitations\n\n"
        f"- Trained on a small amount of {name} text; expect errors, and check outputs with speakers "
        "of the language before relying on them.\n"
        "- The corpora come from a few domains (see above); text from other domains, dialects or "
        "orthographies may be handled poorly, and the corpora's biases carry over.\n"
        f"- The adapter only works with `{metadata.base_model}` (the shapes are checked when loading); "
        "the base model's own limitations and licence apply.\n"
        "- The figures above are intrinsic (held-out text); they do not measure usefulness for any task.\n"
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"

    return "\n".join([line(header), line("---" for _ in header), *(line(row) for row in rows)]) + "\n"
