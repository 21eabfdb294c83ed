"""Compare two checkpoints: weight changes by type and layer, adapter norms, per-layer CKA.

``analyze(before, after)`` is what ``lowres analyze`` runs. Compare consecutive stages only
(base -> CPT, CPT -> SFT): base -> SFT would mix the CPT change into the SFT one (arXiv 2512.03976).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.language_modeling import model_device
from lowres_adapters.evaluation.layers import adapter_layer_norms, linear_cka, summarize, weight_changes
from lowres_adapters.runs.snapshots import Snapshot, base_of, is_run_folder, load_snapshot

BASE = "base"
"""``before`` value meaning: the base model recorded in ``after``'s run folder."""


def _is_second_stage(run_folder: Path, snapshot: Snapshot) -> bool:
    """Return True for a stage trained on top of an earlier stage (an SFT after CPT)."""
    recipe = snapshot.metadata.recipe if snapshot.metadata else ""
    return recipe == "sft" or (run_folder.parent.name == "stages" and run_folder.name == "sft")


def hidden_states(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int = 128,
                  batch_size: int = 8) -> tuple[list[list[int]], list[Any]]:
    """Return the token ids of each text and, per layer, the ``(tokens, hidden)`` states of all texts.

    Layer 0 is the embedding output; layer ``i`` the output of block ``i``. Positions a wrapper
    prepends (soft prompts) are dropped, so rows line up with the text's tokens.
    """
    encoded = [tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
               for text in texts if text.strip()]
    if not encoded:
        raise LowresError("no text to compute hidden states on")
    device = model_device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    per_layer: list[list[Any]] = []
    with torch.no_grad():
        for offset in range(0, len(encoded), batch_size):
            batch = encoded[offset:offset + batch_size]
            width = max(len(ids) for ids in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (batch, seq)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)  # (batch, seq)
            for row, ids in enumerate(batch):
                input_ids[row, :len(ids)] = torch.tensor(ids)
                attention_mask[row, :len(ids)] = 1
            output = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                           output_hidden_states=True)
            for layer, states in enumerate(output.hidden_states):
                states = states[:, states.shape[1] - width:]  # (batch, seq, hidden): drop prepended positions
                rows = states[attention_mask.to(device).bool()].float().cpu()  # (real tokens, hidden)
                if layer == len(per_layer):
                    per_layer.append([])
                per_layer[layer].append(rows)
    return encoded, [torch.cat(chunks) for chunks in per_layer]  # each (all tokens, hidden)


def _mean_pool(states: Any, lengths: list[int]) -> Any:
    """Average consecutive rows per text: ``(tokens, hidden)`` -> ``(texts, hidden)``."""
    return torch.stack([chunk.mean(dim=0) for chunk in torch.split(states, lengths)])  # (texts, hidden)


def layerwise_cka(before: Snapshot, after: Snapshot, texts: Sequence[str], *,
                  max_length: int = 128) -> dict[str, Any]:
    """Return per-layer linear CKA between the hidden states of two checkpoints on ``texts``.

    Token-level when both tokenizers split every text alike; otherwise (an extended vocabulary)
    sentence-level on mean-pooled states.
    """
    ids_before, states_before = hidden_states(before.model, before.tokenizer, texts, max_length=max_length)
    ids_after, states_after = hidden_states(after.model, after.tokenizer, texts, max_length=max_length)
    if len(states_before) != len(states_after):
        raise LowresError(f"the checkpoints have {len(states_before) - 1} and {len(states_after) - 1} layers")
    token_level = ids_before == ids_after
    values = []
    for first, second in zip(states_before, states_after):
        if not token_level:
            first = _mean_pool(first, [len(ids) for ids in ids_before])
            second = _mean_pool(second, [len(ids) for ids in ids_after])
        values.append(linear_cka(first, second))
    return {"level": "token" if token_level else "sentence", "texts": len(ids_before),
            "per_layer": values}


def _adapter_change_norms(before: Snapshot, after: Snapshot) -> dict[str, float] | None:
    """Return per-layer norms of the change of the adapter's own tensors, when both have the same ones."""
    shared = set(before.adapter_tensors) & set(after.adapter_tensors)
    if not shared:
        return None
    deltas = {name: after.adapter_tensors[name] - before.adapter_tensors[name] for name in sorted(shared)
              if after.adapter_tensors[name].shape == before.adapter_tensors[name].shape}
    return adapter_layer_norms(deltas) if deltas else None


def analyze(before: str | Path, after: str | Path, *, texts: Sequence[str] = (), max_length: int = 128,
            top: int = 10, allow_base_to_second_stage: bool = False) -> dict[str, Any]:
    """Compare two checkpoints and return a JSON-ready analysis.

    Args:
        before: A run folder, a base model id, or ``"base"`` (the base model of ``after``).
        after: A run folder.
        texts: Held-out texts for per-layer CKA (skipped when empty).
        max_length: Longest text in tokens for CKA.
        top: How many most-changed tensors to list.
        allow_base_to_second_stage: Allow base -> SFT (refused by default: it mixes in the CPT change).

    Returns:
        ``{"before", "after", "merged", "trains_base_weights", "by_kind", "by_kind_and_layer", "ranking",
        "top_tensors", "adapter_norms", "adapter_change_norms", "cka"}``.
    """
    after = Path(after)
    if not is_run_folder(after):
        raise LowresError(f"{after}: not a run folder (no lowres_adapter.json)")
    base_id, objective = base_of(after)
    before_is_base = str(before) in (BASE, base_id)
    after_snapshot = load_snapshot(after)
    if before_is_base and _is_second_stage(after, after_snapshot) and not allow_base_to_second_stage:
        raise LowresError(f"{after} is a second stage: compare it with the stage before it "
                          f"(e.g. stages/cpt -> stages/sft), not with the base model")
    before_snapshot = load_snapshot(base_id if before_is_base else before, objective=objective)
    changes = weight_changes(before_snapshot.weights, after_snapshot.weights)
    if not changes:
        raise LowresError(f"{before} and {after} share no parameter: different architectures?")
    result = summarize(changes)
    ranked = sorted(changes, key=lambda change: change.relative, reverse=True)[:top]
    result.update(
        before=before_snapshot.label, after=after_snapshot.label, merged=after_snapshot.merged,
        trains_base_weights=after_snapshot.trains_base_weights,
        top_tensors=[{"name": c.name, "kind": c.kind, "layer": c.layer, "delta_norm": c.delta_norm,
                      "relative": c.relative} for c in ranked],
        adapter_norms=adapter_layer_norms(after_snapshot.adapter_tensors),
        adapter_change_norms=_adapter_change_norms(before_snapshot, after_snapshot),
        cka=layerwise_cka(before_snapshot, after_snapshot, texts, max_length=max_length) if texts else None,
    )
    return result
