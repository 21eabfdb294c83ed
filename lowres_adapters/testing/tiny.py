"""Tiny randomly initialised models and a tiny tokenizer, for fast CPU unit tests.

Real-model behaviour is proven on SmolLM2-135M in integration tests; these exist so that unit
tests of every adapter type, loss and loop feature take seconds.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BertConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
)

TINY_CORPUS = (
    "Pachiyambi Mulungu adalenga kumwamba ndi dziko lapansi.",
    "In the beginning God created the heaven and the earth.",
    "Ndipo dziko lapansi linali lopanda maonekedwe, ndi lopanda kanthu.",
    "And the earth was without form, and void.",
    "Mulungu ndiye kuwala, ndipo mwa iye mulibe mdima konse.",
    "God is light, and in him is no darkness at all.",
)

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<mask>")


@functools.lru_cache(maxsize=8)
def _trained_tokenizer_json(vocab_size: int, corpus: tuple[str, ...]) -> str:
    """Train the byte-level BPE once per (size, corpus) and return it serialised."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    return tokenizer.to_str()


def tiny_tokenizer(vocab_size: int = 256, corpus: tuple[str, ...] = TINY_CORPUS) -> Any:
    """Return a byte-level BPE ``PreTrainedTokenizerFast`` trained on ``corpus``.

    Special tokens: ``<pad>`` (0), ``<unk>`` (1), ``<s>`` (2), ``</s>`` (3), ``<mask>`` (4).
    Every string can be encoded (byte fallback through the byte-level alphabet). Training runs
    once per process; each call returns a new, independent tokenizer object.
    """
    tokenizer = Tokenizer.from_str(_trained_tokenizer_json(vocab_size, tuple(corpus)))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>", mask_token="<mask>",
        cls_token="<s>", sep_token="</s>",
    )


def tiny_llama_config(vocab_size: int = 256, **overrides: Any) -> Any:
    """Return a 2-layer ``LlamaConfig`` (SmolLM2's architecture) with hidden size 32."""
    values = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  tie_word_embeddings=True, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    values.update(overrides)
    return LlamaConfig(**values)


def tiny_xlmr_config(vocab_size: int = 256, **overrides: Any) -> Any:
    """Return a 2-layer ``XLMRobertaConfig`` with hidden size 32."""
    values = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=260, pad_token_id=0,
                  bos_token_id=2, eos_token_id=3, type_vocab_size=1)
    values.update(overrides)
    return XLMRobertaConfig(**values)


def tiny_bert_config(vocab_size: int = 256, **overrides: Any) -> Any:
    """Return a 2-layer ``BertConfig`` with hidden size 32."""
    values = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=256, pad_token_id=0)
    values.update(overrides)
    return BertConfig(**values)


def tiny_model(kind: str = "llama", seed: int = 0, **overrides: Any) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)``: a tiny LM-headed model and a tokenizer of matching size.

    Args:
        kind: ``"llama"`` (causal LM), ``"xlmr"`` or ``"bert"`` (masked LM).
        seed: Seed for the random initialisation.
        overrides: Config fields to change.
    """
    tokenizer = tiny_tokenizer()
    vocab_size = len(tokenizer)
    builders = {"llama": tiny_llama_config, "xlmr": tiny_xlmr_config, "bert": tiny_bert_config}
    if kind not in builders:
        raise ValueError(f"kind must be one of {sorted(builders)}, got {kind!r}")
    config = builders[kind](vocab_size=vocab_size, **overrides)
    torch.manual_seed(seed)
    auto = AutoModelForCausalLM if kind == "llama" else AutoModelForMaskedLM
    model = auto.from_config(config)
    model.eval()
    return model, tokenizer


def base_shape_config(kind: str = "xlmr") -> Any:
    """Return an XLM-R/mBERT base-shaped config (hidden 768, 12 layers) with a small vocabulary.

    For exact parameter-count tests: adapter sizes do not depend on the vocabulary.
    """
    if kind == "xlmr":
        return tiny_xlmr_config(vocab_size=1000, hidden_size=768, intermediate_size=3072,
                                num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=514)
    if kind == "bert":
        return tiny_bert_config(vocab_size=1000, hidden_size=768, intermediate_size=3072,
                                num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=512)
    raise ValueError(f"kind must be 'xlmr' or 'bert', got {kind!r}")
