"""Write a run folder (= artifact folder): adapter, metadata, metrics, settings, model card.

See docs/architecture.md ("Run folder"). ``train_log.jsonl`` and ``checkpoints/`` are written by
the loop; everything here is written through a temporary name and a rename.

A finished run is never lost or mixed with a new one (:func:`prepare_output`): ``lowres adapt``
refuses an output folder holding a finished run unless ``--overwrite``, and marks the folder with
``run_in_progress.json`` (:data:`~lowres_adapters.artifact.UNFINISHED_FILE`) from before its first
write until after its last, so ``evaluate``, ``load`` and ``publish`` refuse a folder a killed run
left behind. The marker records the settings, so ``--resume`` refuses changed ones by name.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from lowres_adapters.artifact import (
    BASE_TENSOR_PREFIX,
    METADATA_FILE,
    METRICS_FILE,
    NATIVE_DIR,
    TOKENIZER_DIR,
    UNFINISHED_FILE,
    WEIGHTS_FILE,
    ArtifactMetadata,
    write_artifact,
)
from lowres_adapters.base_identity import base_identity
from lowres_adapters.configs import config_to_dict
from lowres_adapters.errors import LowresError
from lowres_adapters.io import atomic_write_text
from lowres_adapters.model_card import render_model_card
from lowres_adapters.registry import get_registry

RUN_CONFIG_FILE = "run_config.json"
CARD_FILE = "README.md"
RUN_ENTRIES = (METADATA_FILE, WEIGHTS_FILE, METRICS_FILE, RUN_CONFIG_FILE, CARD_FILE, "train_log.jsonl",
               TOKENIZER_DIR, NATIVE_DIR, "stages", "checkpoints")
"""What ``lowres adapt`` writes into a run folder (and ``--overwrite`` removes; other files stay)."""
UNCOMPARED_SETTINGS = ("resume", "overwrite", "publish", "output", "loop.progress", "loop.save_every",
                       "loop.save_every_seconds", "loop.keep_checkpoints", "loop.keep_checkpoints_at_end",
                       "loop.device")
"""Settings a resume may change: they do not change what is trained."""


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def build_metadata(*, handle: Any, adapter_type: str, model_id: str, objective: str, language: str, script: str,
                   recipe: str, recipe_settings: Mapping[str, Any], metrics: Mapping[str, Any],
                   datasets: list[str], vocabulary: Mapping[str, int] | None = None) -> ArtifactMetadata:
    """Return the artifact metadata of a trained adapter, naming its base exactly (id, revision, weights
    file, fingerprint: :func:`lowres_adapters.base_identity.base_identity`)."""
    provider = get_registry().provider("adapter_types", adapter_type)
    return ArtifactMetadata(
        adapter_type=adapter_type, adapter_name=handle.name, adapter_config=config_to_dict(handle.config),
        plugin=provider.requirement, base_model=model_id, **base_identity(model_id),
        objective=objective, language=language, script=script, recipe=recipe,
        recipe_settings=dict(recipe_settings), metrics=dict(metrics), datasets=list(datasets),
        vocabulary=dict(vocabulary) if vocabulary else None,
    )


def write_run_folder(directory: Path, *, handle: Any, metadata: ArtifactMetadata, metrics: Mapping[str, Any],
                     run_config: Mapping[str, Any], extra_tensors: Mapping[str, Any] | None = None,
                     base_parameters: Mapping[str, Any] | None = None, tokenizer: Any = None) -> None:
    """Write the artifact, ``metrics.json``, ``run_config.json`` and the model card into ``directory``.

    Args:
        directory: The run (or stage) folder.
        handle: The trained adapter.
        metadata: ``lowres_adapter.json`` contents.
        metrics: ``{"base": {...}, "adapted": {...}, ...}``.
        run_config: The resolved settings.
        extra_tensors: More tensors for ``adapter.safetensors`` (e.g. new embedding rows).
        base_parameters: Base-model parameters trained through ``train_also``, saved under
            ``lowres.base.<name>``.
        tokenizer: An extended tokenizer to save (only when the vocabulary was extended).
    """
    directory = Path(directory)
    tensors = dict(extra_tensors or {})
    for name, parameter in (base_parameters or {}).items():
        tensors[BASE_TENSOR_PREFIX + name] = parameter.detach()
    write_artifact(directory, handle, metadata, extra_tensors=tensors, tokenizer=tokenizer)
    write_json(directory / METRICS_FILE, dict(metrics))
    write_json(directory / RUN_CONFIG_FILE, dict(run_config))
    atomic_write_text(directory / CARD_FILE, render_card(metadata, directory))


def render_card(metadata: ArtifactMetadata, directory: Path) -> str:
    """Return the model card (:mod:`lowres_adapters.model_card`)."""
    return render_model_card(metadata, directory=directory)


def merge_logs(stage_dirs: Mapping[str, Path], target: Path) -> None:
    """Write ``target`` (the top-level ``train_log.jsonl``) as the stage logs one after another,
    each record tagged with its stage."""
    lines = []
    for stage, folder in stage_dirs.items():
        log = Path(folder) / "train_log.jsonl"
        if not log.exists():
            continue
        for line in log.read_text("utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            record.setdefault("stage", stage)
            lines.append(json.dumps(record))
    atomic_write_text(target, "".join(line + "\n" for line in lines))


def comparable_settings(settings: Any) -> dict[str, Any]:
    """Return ``settings`` (:class:`RunSettings`) as flat ``{"section.key": value}`` JSON values, minus
    :data:`UNCOMPARED_SETTINGS`: what a resumed run must share with the run it continues."""
    values = json.loads(json.dumps(settings.to_json(), default=str))
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{name}": item for name, item in value.items()})
        else:
            flat[key] = value
    return {key: value for key, value in flat.items() if key not in UNCOMPARED_SETTINGS}


def setting_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Return ``"key: old -> new"`` for each setting that differs (``(unset)`` when absent on one side)."""
    def shown(values: Mapping[str, Any], key: str) -> str:
        return json.dumps(values[key]) if key in values else "(unset)"

    return [f"{key}: {shown(recorded, key)} -> {shown(current, key)}"
            for key in sorted(set(recorded) | set(current)) if recorded.get(key, ...) != current.get(key, ...)]


def check_output_path(run_dir: Path) -> None:
    """Refuse, in one line, an output that is a file or lies under a file (checked before any data loads)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise LowresError(f"--output {run_dir}: exists and is not a folder; choose another --output")
    for parent in run_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise LowresError(f"--output {run_dir}: {parent} is a file, not a folder; choose another --output")
            break


def prepare_output(run_dir: Path, settings: Any, is_main: bool, echo: Callable[[str], None],
                   has_checkpoints: bool, has_finished_stage: bool) -> bool:
    """Check the output folder before anything loads, then mark it unfinished (first process only).

    Rerunning the command of an unfinished run (checkpoints or finished stages, same settings)
    resumes it and says so; with other settings it is refused, naming each.

    Args:
        run_dir: The run folder.
        settings: The run's :class:`~lowres_adapters.training.settings.RunSettings`.
        is_main: Whether this is the first process (the only one that writes).
        echo: Where the "resuming" and "nothing to resume" lines go.
        has_checkpoints: Whether ``run_dir`` (or one of its stages) holds checkpoints.
        has_finished_stage: Whether a stage of a multi-stage run in ``run_dir`` is finished.

    Returns:
        Whether the run resumes (``--resume``, or an unfinished run of the same settings).

    Raises:
        LowresError: The output is a file or cannot be created; it holds a finished run and
            neither ``--overwrite`` nor ``--resume`` is given; or the run it would continue has
            other settings (each named).
    """
    run_dir = Path(run_dir)
    check_output_path(run_dir)
    marker = run_dir / UNFINISHED_FILE
    unfinished = marker.exists()
    finished = (run_dir / METADATA_FILE).exists() and not unfinished
    resume = bool(settings.resume)
    if not resume and not settings.overwrite and (has_checkpoints or has_finished_stage) and unfinished:
        recorded = _recorded_settings(marker)
        differences = setting_differences(recorded, comparable_settings(settings)) if recorded is not None else None
        if differences is None:
            raise LowresError(f"{run_dir} holds checkpoints of an unfinished run: pass --resume to continue it, "
                              "--overwrite to start over, or choose another --output")
        if differences:
            raise LowresError(f"{run_dir} holds an unfinished run with other settings: {'; '.join(differences)}; "
                              "rerun with its settings to resume, pass --overwrite to start over, "
                              "or choose another --output")
        echo(f"resuming the unfinished run in {run_dir} from its last checkpoint (--overwrite starts over)")
        resume = True
    if resume:
        recorded = _recorded_settings(marker) if unfinished else None
        if recorded is not None:
            differences = setting_differences(recorded, comparable_settings(settings))
            if differences:
                raise LowresError(f"--resume with other settings than the run in {run_dir}: "
                                  f"{'; '.join(differences)}; resume with the same settings or choose another --output")
        if not has_checkpoints and not has_finished_stage and not finished:
            echo(f"--resume: no checkpoint in {run_dir}; starting from step 0")
    elif not settings.overwrite:
        if finished:
            raise LowresError(f"{run_dir} holds a finished run: pass --overwrite to replace it, or choose another --output")
        if has_checkpoints:
            raise LowresError(f"{run_dir} holds checkpoints of an unfinished run: pass --resume to continue it, "
                              "--overwrite to start over, or choose another --output")
    if not is_main:
        return resume
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LowresError(f"--output {run_dir}: cannot create the folder ({error.strerror or error})") from None
    if not (resume and unfinished):
        atomic_write_text(marker, json.dumps({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                              "settings": comparable_settings(settings)}, indent=2) + "\n")
    if not resume and (finished or settings.overwrite or unfinished):
        for name in RUN_ENTRIES:  # after the marker: a kill from here on leaves a refused folder
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    return resume


def finish_output(run_dir: Path) -> None:
    """Remove the unfinished-run marker: the last write of a run."""
    (Path(run_dir) / UNFINISHED_FILE).unlink(missing_ok=True)


def _recorded_settings(marker: Path) -> dict[str, Any] | None:
    try:
        values = json.loads(marker.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    settings = values.get("settings") if isinstance(values, dict) else None
    return settings if isinstance(settings, dict) else None
