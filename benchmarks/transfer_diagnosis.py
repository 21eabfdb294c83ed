"""Why prompt-align retrieval stayed at chance: the base model's pooled states, layer by layer.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/transfer_diagnosis.py [--vectors FILE]

On 200 held-out pairs of the nya pack's test split (New Testament, drawn with seed 0 — the same
pairs as ``benchmarks/transfer.py``), for every layer of the frozen base model: the norm of the
first position (BOS, the attention sink) against the mean norm of the other positions, and top-1
retrieval English -> Chichewa and back with three poolings (mean over every real token, mean
without the first, last token), raw and per-language standardised. Writes
``results/transfer_diagnosis.{json,md}``; ``--vectors`` keeps the pooled states between runs.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
POOLINGS = ("mean", "mean_without_first", "last")


@torch.no_grad()
def pooled_states(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Return ``{name: (layers, texts, hidden or 1)}``: the three poolings and the two norms."""
    from lowres_adapters.evaluation.retrieval import pool_content

    parts: dict[str, list[torch.Tensor]] = {name: [] for name in (*POOLINGS, "first_norm", "other_norm")}
    for start in range(0, len(texts), 16):
        encoded = [tokenizer(text, truncation=True, max_length=max_length)["input_ids"] for text in texts[start: start + 16]]
        width = max(len(ids) for ids in encoded)
        ids = torch.tensor([row + [tokenizer.eos_token_id] * (width - len(row)) for row in encoded])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in encoded])
        states = torch.stack(model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states).float()
        rest = mask.clone()
        rest[:, 0] = 0
        parts["mean"].append(torch.stack([pool_content(h, mask, "mean") for h in states]))
        parts["mean_without_first"].append(torch.stack([pool_content(h, mask, "mean", 1) for h in states]))
        parts["last"].append(torch.stack([pool_content(h, mask, "last") for h in states]))
        parts["first_norm"].append(states[:, :, 0].norm(dim=-1, keepdim=True))  # (layers, batch, 1)
        norms = states.norm(dim=-1)  # (layers, batch, seq)
        parts["other_norm"].append(((norms * rest).sum(-1) / rest.sum(-1).clamp_min(1)).unsqueeze(-1))
    return {name: torch.cat(chunks, dim=1) for name, chunks in parts.items()}


def standardised(vectors: torch.Tensor) -> torch.Tensor:
    """Return ``vectors`` standardised per dimension over their own rows (one language)."""
    return (vectors - vectors.mean(0)) / vectors.std(0).clamp_min(1e-6)


def main(arguments: list[str]) -> int:
    """Compute the table and write ``results/transfer_diagnosis.{json,md}``."""
    from lowres_adapters.data.packs import load_pack_data
    from lowres_adapters.evaluation.retrieval import top1_accuracy
    from lowres_adapters.models import load_base_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--vectors", default="")
    options = parser.parse_args(arguments)
    started = time.time()
    pairs = random.Random(0).sample(list(load_pack_data("nya").pairs["test"]), options.pairs)
    cached = Path(options.vectors) if options.vectors else None
    if cached and cached.exists():
        english, chichewa = torch.load(cached)
    else:
        model, tokenizer = load_base_model(options.model)
        model.eval()
        english = pooled_states(model, tokenizer, [pair.source for pair in pairs], options.max_length)
        chichewa = pooled_states(model, tokenizer, [pair.target for pair in pairs], options.max_length)
        if cached:
            torch.save((english, chichewa), cached)
    rows = []
    for layer in range(english["mean"].shape[0]):
        row: dict[str, Any] = {"layer": layer, "first_norm": float(english["first_norm"][layer].mean()),
                               "other_norm": float(english["other_norm"][layer].mean())}
        for pooling in POOLINGS:
            e, n = english[pooling][layer], chichewa[pooling][layer]
            row[pooling] = {"eng_to_nya": top1_accuracy(e, n), "nya_to_eng": top1_accuracy(n, e),
                            "standardised_eng_to_nya": top1_accuracy(standardised(e), standardised(n))}
        rows.append(row)
    result = {"rows": rows, "pairs": len(pairs), "chance": 1 / len(pairs), "max_length": options.max_length,
              "model": options.model, "wall_seconds": time.time() - started,
              "command": "python benchmarks/transfer_diagnosis.py " + " ".join(arguments)}
    lines = [f"Command: `{result['command']}` ({len(pairs)} held-out nya pairs, chance {100 / len(pairs):.1f}%)", "",
             "| layer | BOS norm | other tokens' norm | top-1 eng->nya: mean | mean without BOS | last token | "
             "mean without BOS, standardised |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['layer']} | {row['first_norm']:.0f} | {row['other_norm']:.0f} | "
                     f"{100 * row['mean']['eng_to_nya']:.1f} | {100 * row['mean_without_first']['eng_to_nya']:.1f} | "
                     f"{100 * row['last']['eng_to_nya']:.1f} | "
                     f"{100 * row['mean_without_first']['standardised_eng_to_nya']:.1f} |")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "transfer_diagnosis.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (results / "transfer_diagnosis.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
