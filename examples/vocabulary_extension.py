"""Vocabulary extension for Tibetan script, step by step, from Python.

1. Train up to N new tokens on the Dzongkha training text (``tokenizers`` BPE with the base
   tokenizer's own pre-tokeniser) and append them to SmolLM2's tokenizer;
2. add one embedding row per new token, initialised as the mean of its old sub-tokens' rows
   (the tied LM head scores the new tokens too);
3. train only those rows for a few steps;
4. save only the new rows + the tokenizer, and rebuild the extended model from the base model.

Prints tokens per character before and after on the held-out Dzongkha text (SmolLM2 needs about
2.3 tokens per Tibetan character). The same inside a training run::

    lowres adapt dzo --adapter seq_bn --extend-vocab 1000 --max-steps 40

Run ``lowres data fetch dzo`` once first, then ``python examples/vocabulary_extension.py``, or with
your own files: ``--model DIR --text train.txt --eval-text heldout.txt``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from lowres_adapters.artifact import ArtifactMetadata, write_artifact
from lowres_adapters.models import DEFAULT_MODEL, load_base_model
from lowres_adapters.training.vocabulary import extend_vocabulary, restore_extended_vocabulary, tokens_per_character


class NewRowsOnly:
    """The smallest adapter handle: nothing of its own, so the artifact holds only the new rows."""

    name, config = "vocabulary", None

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def activate(self) -> None:
        """Nothing to select."""

    def trainable_parameters(self) -> dict:
        return {}

    def adapter_state_dict(self) -> dict:
        return {}

    def load_adapter_state_dict(self, tensors: dict) -> None:
        """Nothing to load."""

    def save_native(self, directory: Path) -> list:
        return []


def read_lines(path: str) -> list[str]:
    return [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> dict:
    """Extend, train the new rows briefly, save and restore; return the measured figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--text", help="training text file (default: the dzo pack's training text)")
    parser.add_argument("--eval-text", help="held-out text file (default: the dzo pack's test text)")
    parser.add_argument("--tokens", type=int, default=1000, help="new tokens to add at most")
    parser.add_argument("--steps", type=int, default=5, help="training steps of the new rows")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    if args.text:
        train, held_out = read_lines(args.text), read_lines(args.eval_text or args.text)
    else:
        from lowres_adapters.data.packs import load_pack_data

        data = load_pack_data("dzo")
        train = [example.text for example in data.text["train"]]
        held_out = [example.text for example in data.text["test"]][:300]

    model, tokenizer = load_base_model(args.model)
    before = tokens_per_character(tokenizer, held_out)
    extended = extend_vocabulary(model, tokenizer, train, args.tokens)
    after = tokens_per_character(extended.tokenizer, held_out)
    print(f"tokens per character on {len(held_out)} held-out texts: {before:.3f} -> {after:.3f} "
          f"(+{extended.added_tokens} tokens; vocabulary {extended.original_size} -> {len(extended.tokenizer)})")

    model.requires_grad_(False)
    extended.enable_training()  # only the new rows train
    optimizer = torch.optim.AdamW(extended.trainable_parameters().values(), lr=1e-3)
    model.train()
    for step in range(args.steps):
        batch = extended.tokenizer(train[step * 4: step * 4 + 4], return_tensors="pt", padding=True,
                                   truncation=True, max_length=64)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step + 1}: loss {loss.item():.3f}")
    model.eval()

    with tempfile.TemporaryDirectory() as folder:
        metadata = ArtifactMetadata(adapter_type="none", adapter_name="vocabulary", adapter_config={}, plugin=None,
                                    base_model=args.model, vocabulary=extended.metadata())
        write_artifact(Path(folder), NewRowsOnly(model), metadata, extra_tensors=extended.state_tensors(),
                       tokenizer=extended.tokenizer, native=False)
        size = (Path(folder) / "adapter.safetensors").stat().st_size
        fresh, _ = load_base_model(args.model)
        restored_tokenizer = restore_extended_vocabulary(fresh, Path(folder))
        sample = restored_tokenizer(held_out[:2], return_tensors="pt", padding=True)
        with torch.no_grad():
            same = torch.allclose(fresh(**sample).logits, model(**sample).logits, atol=1e-5)
    print(f"saved {size:,} bytes (new rows only); restored model gives the same logits: {same}")
    return {"before": before, "after": after, "added": extended.added_tokens, "restored_same": same,
            "bytes": size}


if __name__ == "__main__":
    main()
