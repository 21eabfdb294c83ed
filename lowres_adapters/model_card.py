"""Render the ``README.md`` model card of an adapter artifact.

The card has YAML front matter in the Hugging Face Hub's conventions (``language``, ``license``,
``library_name``, ``base_model``, ``tags``, ``datasets``, ``model-index``), built through
``huggingface_hub.ModelCardData`` so the Hub reads it as it reads any card, then a human section:
what the adapter is, the two-line load snippet, training settings, metrics (base vs adapted), data
provenance and licences, limitations.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from huggingface_hub import EvalResult, ModelCardData

from lowres_adapters.artifact import METRICS_FILE, NATIVE_DIR, ArtifactMetadata
from lowres_adapters.base_identity import weights_description
from lowres_adapters.evaluation.card_metrics import METRIC_NAMES, metrics_for_card
from lowres_adapters.models import is_embedded, objective_facts
from lowres_adapters.native import native_library
from lowres_adapters.registry import get_registry

LIBRARY_NAME = "lowres-adapters"
GENERATED_MARKER = "<!-- lowres-adapters:generated-card -->"
"""Present in generated cards: ``publish`` regenerates such a card and keeps a hand-written one."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LOWER_IS_BETTER = {"bits_per_char", "bits_per_byte", "perplexity", "pseudo_perplexity", "loss", "loss_per_token"}
_HIGHLIGHTS = ("max_steps", "epochs", "batch_size", "grad_accum_steps", "lr", "schedule", "max_length", "seed")
"""Recipe settings shown in the settings table; the rest go into a collapsed block."""


def metric_labels() -> dict[str, str]:
    """Return ``{metric key: display name}`` for the figures a card reports (evaluation's list)."""
    return dict(METRIC_NAMES)


def card_metrics(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the adapted figures for ``model-index`` as ``[{"name", "type", "value"}]``."""
    return metrics_for_card(metrics)


def eval_split(metrics: Mapping[str, Any]) -> str | None:
    """Return the held-out split the figures were computed on, if recorded."""
    for block in (metrics, metrics.get("adapted") or {}):
        if isinstance(block, Mapping) and isinstance(block.get("eval_split"), str):
            return block["eval_split"]
    return None


def language_codes(code: str) -> list[str]:
    """Return the Hub ``language`` list for an ISO 639-3 code: the code, plus ISO 639-1 if one exists."""
    if not code:
        return []
    codes = [code]
    try:  # lazy: pycountry costs ~60 ms, only for a language's name
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
    try:  # lazy: pycountry costs ~60 ms, only for a language's name
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


def card_data(metadata: ArtifactMetadata, *, repo_id: str | None = None, has_native: bool = False,
              metrics: Mapping[str, Any] | None = None, library: str | None = None) -> Any:
    """Build the ``huggingface_hub.ModelCardData`` (the YAML front matter) for ``metadata``.

    ``library`` is the Hub's ``library_name``: ``peft`` when PEFT can load the repo,
    ``adapter-transformers`` when AdapterHub can, else left out (the Hub knows no other adapter
    library); ``base_model_relation: adapter`` goes with a Hub ``base_model``.
    """
    metrics = metadata.metrics if metrics is None else metrics
    model_name = (repo_id or f"{metadata.adapter_type}-{metadata.language or 'adapter'}").split("/")[-1]
    dataset_name = metadata.datasets[0] if metadata.datasets else f"{metadata.language or 'held-out'} text"
    task_type = objective_facts(metadata.objective).hub_task
    eval_results = [
        EvalResult(task_type=task_type, task_name="Language modelling", dataset_type=dataset_name,
                   dataset_name=dataset_name, dataset_split=eval_split(metrics), metric_type=entry["type"],
                   metric_name=entry["name"], metric_value=entry["value"])
        for entry in card_metrics(metrics)
    ]
    return ModelCardData(
        language=language_codes(metadata.language) or None,
        license=metadata.licence or None,
        library_name=library,
        base_model=metadata.base_model if is_hub_id(metadata.base_model) else None,
        base_model_relation="adapter" if is_hub_id(metadata.base_model) else None,
        tags=card_tags(metadata, has_native),
        datasets=list(metadata.datasets) or None,
        pipeline_tag=task_type,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )


def render_model_card(metadata: ArtifactMetadata, *, repo_id: str | None = None,
                      directory: Path | None = None, has_native: bool | None = None,
                      metrics: Mapping[str, Any] | None = None, library: str | None = None) -> str:
    """Render ``README.md`` for an adapter artifact.

    Args:
        metadata: The artifact's ``lowres_adapter.json`` contents.
        repo_id: The Hub repo the card is published to (used in the load snippet).
        directory: The artifact folder; used to see whether AdapterHub files are present.
        has_native: Whether AdapterHub files are present (overrides looking in ``directory``).
        metrics: The run's ``metrics.json`` (figures and training summary); ``metadata.metrics``
            (read from ``directory/metrics.json`` when present) by default.
        library: ``library_name`` (see :func:`card_data`); by default from the native files of ``directory``.

    Returns:
        The card text: YAML front matter, then Markdown.
    """
    if has_native is None:
        has_native = directory is not None and any((Path(directory) / NATIVE_DIR).glob("*"))
    if metrics is None and directory is not None and (Path(directory) / METRICS_FILE).is_file():
        with contextlib.suppress(ValueError, OSError):
            metrics = json.loads((Path(directory) / METRICS_FILE).read_text("utf-8"))
    metrics = metrics if isinstance(metrics, Mapping) else metadata.metrics
    if library is None and has_native:
        library = {"peft": "peft", "adapters": "adapter-transformers"}.get(native_library(directory)) \
            if directory is not None else "adapter-transformers"
    data = card_data(metadata, repo_id=repo_id, has_native=has_native, metrics=metrics, library=library)
    sections = [
        f"---\n{data.to_yaml()}\n---\n",
        GENERATED_MARKER,
        _summary(metadata, repo_id),
        _load_section(metadata, repo_id, has_native, library),
        _settings_section(metadata, metrics),
        _metrics_section(metrics),
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
        f"weights, not the base model.{vocabulary}\n\n"
        f"It was trained on {_trained_on(metadata)}; with other weights of the same shapes it loads but "
        "does not give the figures below (`load` checks a fingerprint of the base and says so).\n"
    )


def _trained_on(metadata: ArtifactMetadata) -> str:
    """Return, in words, the exact base weights (file, revision, fingerprint)."""
    text = weights_description(metadata.base_model, metadata.base_model_file)
    if metadata.base_model_revision and "GGUF" not in text:
        text += f" at revision `{metadata.base_model_revision}`"
    fingerprint = metadata.base_model_fingerprint or {}
    if fingerprint.get("sha256"):
        text += f" (fingerprint `{str(fingerprint['sha256'])[:16]}`)"
    return text


def _model_link(model_id: str) -> str:
    if is_hub_id(model_id):
        return f"[`{model_id}`](https://huggingface.co/{model_id})"
    return f"`{model_id}`"


def _load_section(metadata: ArtifactMetadata, repo_id: str | None, has_native: bool,
                  library: str | None = None) -> str:
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
    if library == "peft":
        text += _peft_snippet(metadata, target)
    if has_native:
        text += (
            f"\nAdapterHub users: the `{NATIVE_DIR}/` folder holds the adapter in the `adapters` library's "
            "own format, as safetensors:\n\n```python\nimport adapters\n\nadapters.init(model)  # the base model\n"
            f'name = model.load_adapter("<downloaded repo>/{NATIVE_DIR}", use_safetensors=True)\n'
            "model.set_active_adapters(name)\n```\n"
        )
    return text


def _peft_snippet(metadata: ArtifactMetadata, target: str) -> str:
    """Return how PEFT users load the root ``adapter_config.json`` / ``adapter_model.safetensors``."""
    text = ("\nPEFT users: the repository root holds the adapter in PEFT's own format:\n\n```python\n"
            "from peft import AutoPeftModelForCausalLM, PeftModel\n\n"
            f'model = PeftModel.from_pretrained(base_model, "{target}")\n')
    if is_embedded(metadata.base_model):
        return text + ("```\n\nwith `base_model` the dequantised GGUF it was trained on "
                       "(`lowres_adapters.models.load_base_model(\"" + metadata.base_model + "\")[0]`); "
                       "`AutoPeftModelForCausalLM` would fetch the full-precision weights instead.\n")
    return text + f'model = AutoPeftModelForCausalLM.from_pretrained("{target}")  # or in one line\n```\n'


def _settings_section(metadata: ArtifactMetadata, metrics: Mapping[str, Any]) -> str:
    revision = f" (revision `{metadata.base_model_revision}`)" if metadata.base_model_revision else ""
    rows = [
        ("adapter type", f"`{metadata.adapter_type}`" + (f" from `{metadata.plugin}`" if metadata.plugin else "")),
        ("adapter config", f"`{json.dumps(metadata.adapter_config, sort_keys=True)}`"),
        ("base model", f"`{metadata.base_model}`{revision}"),
        ("objective", objective_facts(metadata.objective).description),
        ("recipe", f"`{metadata.recipe}`" if metadata.recipe else "-"),
    ]
    flat = _flatten(metadata.recipe_settings)
    rows += [(key, f"`{json.dumps(value)}`") for key, value in flat.items() if key.split(".")[-1] in _HIGHLIGHTS]
    training = metrics.get("training") if isinstance(metrics.get("training"), Mapping) else {}
    for key, label in (("steps", "steps trained"), ("trainable_parameters", "trainable parameters"),
                       ("tokens_seen", "tokens seen")):
        if isinstance(training.get(key), int):
            rows.append((label, f"{training[key]:,}"))
    if metadata.vocabulary:
        rows.append(("vocabulary", f"{metadata.vocabulary.get('original_size')} + "
                                   f"{metadata.vocabulary.get('added_tokens')} new tokens"))
    rows.append(("library", f"lowres-adapters {metadata.library_version} (artifact format {metadata.format_version})"))
    details = ""
    if metadata.recipe_settings:
        details = ("\n<details><summary>All recipe settings</summary>\n\n```json\n"
                   + json.dumps(metadata.recipe_settings, indent=2, sort_keys=True) + "\n```\n\n</details>\n")
    return "## Training settings\n\n" + _table(("setting", "value"), rows) + details


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _metrics_section(metrics: Mapping[str, Any]) -> str:
    base = numeric_metrics(metrics.get("base"))
    adapted = numeric_metrics(metrics.get("adapted"))
    rows = []
    for key, label in metric_labels().items():
        before, after = base.get(key), adapted.get(key)
        if before is None and after is None:
            continue
        change = "-"
        if before is not None and after is not None:
            better = (after < before) if key in _LOWER_IS_BETTER else (after > before)
            change = f"{after - before:+.4g}" + (" (better)" if better else " (worse)" if after != before else "")
        rows.append((label, _number(before), _number(after), change))
    if not rows:
        return "## Results\n\nNo held-out figures were recorded for this run.\n"
    split = eval_split(metrics)
    where = f" on the `{split}` split" if split else " on held-out data"
    count = (metrics.get("adapted") or {}).get("texts") if isinstance(metrics.get("adapted"), Mapping) else None
    size = f" ({count} texts)" if isinstance(count, int) else ""
    return (f"## Results\n\nThe base model alone against the base model with this adapter{where}{size}.\n\n"
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
