"""Translation by generation, scored with sacrebleu: BLEU, chrF and chrF++ with their signatures.

chrF++ is ``CHRF(word_order=2)``; prefer it (and chrF) over BLEU for scripts without spaces between
words (e.g. Tibetan), where BLEU's 13a tokenisation sees whole phrases as single words.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Sequence

from lowres_adapters.errors import LowresError

DEFAULT_PROMPT = "Translate from {source_name} to {target_name}.\n{source_name}: {source}\n{target_name}:"
"""Plain prompt used when the caller gives no prompt builder (fields: source, source_name, target_name)."""


@dataclass(frozen=True)
class TranslationScores:
    """Corpus-level scores of hypotheses against references (0-100 scale).

    Attributes:
        bleu: sacrebleu BLEU.
        chrf: chrF (character n-grams, ``word_order=0``).
        chrf_pp: chrF++ (``word_order=2``).
        bleu_signature: sacrebleu's signature of the BLEU settings.
        chrf_signature: Signature of chrF.
        chrf_pp_signature: Signature of chrF++.
        examples: Number of segments scored.
    """

    bleu: float
    chrf: float
    chrf_pp: float
    bleu_signature: str
    chrf_signature: str
    chrf_pp_signature: str
    examples: int

    def to_dict(self) -> dict[str, Any]:
        """Return the scores and signatures as a JSON-ready dict."""
        return asdict(self)


def score_translations(hypotheses: Sequence[str], references: Sequence[str], *,
                       bleu_tokenize: str | None = None) -> TranslationScores:
    """Score ``hypotheses`` against one reference each with sacrebleu's corpus BLEU, chrF and chrF++.

    Args:
        hypotheses: System outputs, one per segment.
        references: Gold translations, one per segment.
        bleu_tokenize: sacrebleu tokenizer for BLEU (default ``13a``; e.g. ``char`` or
            ``flores200`` for scripts without spaces).
    """
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise LowresError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise LowresError("nothing to score: no references")
    bleu = BLEU(tokenize=bleu_tokenize) if bleu_tokenize else BLEU()
    chrf = CHRF()
    chrf_pp = CHRF(word_order=2)
    hypotheses, reference_streams = list(hypotheses), [list(references)]
    return TranslationScores(
        bleu=bleu.corpus_score(hypotheses, reference_streams).score,
        chrf=chrf.corpus_score(hypotheses, reference_streams).score,
        chrf_pp=chrf_pp.corpus_score(hypotheses, reference_streams).score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        chrf_pp_signature=str(chrf_pp.get_signature()),
        examples=len(references),
    )


def plain_prompt(source_name: str, target_name: str) -> Callable[[str], str]:
    """Return a prompt builder filling :data:`DEFAULT_PROMPT` for one translation direction."""
    def build(source: str) -> str:
        return DEFAULT_PROMPT.format(source=source, source_name=source_name, target_name=target_name)
    return build


def length_ratio_of(tokenizer: Any, sources: Sequence[str], references: Sequence[str]) -> float:
    """Return the largest target/source length ratio in tokens over the pairs (at least 1).

    A corpus-level calibration of the generation cap: how much longer than its source a
    translation gets in this direction with this tokenizer (about 3 for English -> Chichewa with
    SmolLM2's tokenizer; far more for scripts the tokenizer splits into bytes).
    """
    ratios = [len(tokenizer(reference, add_special_tokens=False)["input_ids"])
              / max(1, len(tokenizer(source, add_special_tokens=False)["input_ids"]))
              for source, reference in zip(sources, references)]
    return max([1.0, *ratios])


@contextmanager
def cache_compatible(model: Any) -> Iterator[int]:
    """Let ``adapters`` attention layers fill the key/value cache while generating; yield how many were patched.

    ``adapters`` 1.3 replaces Llama's attention with a version whose ``forward`` takes
    ``past_key_value`` while transformers 4.57 passes ``past_key_values``: the cache stays empty and
    cached decoding sees only the newest token. Inside this block such layers get the cache under
    the name they read; the original methods are put back afterwards.
    """
    patched = []
    for module in model.modules():
        if not type(module).__module__.startswith("adapters."):
            continue
        parameters = inspect.signature(type(module).forward).parameters
        if "past_key_value" in parameters and "past_key_values" not in parameters:
            module.forward = _renaming_cache_argument(module.forward)
            patched.append(module)
    try:
        yield len(patched)
    finally:
        for module in patched:
            del module.forward  # back to the class's method


def _renaming_cache_argument(forward: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("past_key_value") is None and "past_key_values" in kwargs:
            kwargs["past_key_value"] = kwargs.pop("past_key_values")
        return forward(*args, **kwargs)
    return wrapped


def cache_is_filled(model: Any, input_ids: Any, attention_mask: Any) -> bool:
    """Return True when a forward pass with ``use_cache=True`` really fills the key/value cache.

    When it does not (see :func:`cache_compatible`), cached decoding would produce garbage, so
    generation falls back to ``use_cache=False`` (correct, but slow).
    """
    import torch

    with torch.no_grad():
        output = model(input_ids=input_ids[:1, -2:], attention_mask=attention_mask[:1, -2:], use_cache=True)
    cache = getattr(output, "past_key_values", None)
    if cache is None:
        return False
    length = cache.get_seq_length() if hasattr(cache, "get_seq_length") else len(cache)
    return bool(length)


def _stop_token_ids(tokenizer: Any, stop_at_newline: bool) -> list[int]:
    """Return the token ids that end a generated translation."""
    stops = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|endoftext|>", "</s>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            stops.add(token_id)
    if stop_at_newline:
        newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
        if len(newline) == 1:
            stops.add(newline[0])
    return sorted(token_id for token_id in stops if token_id is not None)


def generate_translations(model: Any, tokenizer: Any, sources: Sequence[str], *,
                          prompt: Callable[[str], str], num_beams: int = 4, max_new_tokens: int = 256,
                          batch_size: int = 4, stop_at_newline: bool = True,
                          length_ratio: float | None = 3.0) -> list[str]:
    """Translate ``sources`` by generation from a causal LM and return the decoded continuations.

    Args:
        model: A causal LM with ``generate`` (a PEFT wrapper works; a soft-prompt wrapper needs one).
        tokenizer: Its tokenizer.
        sources: Source-side texts.
        prompt: Builds the model input for one source text (see :func:`plain_prompt`).
        num_beams: Beam size (methods.md B uses 4).
        max_new_tokens: Longest continuation (methods.md B uses 256).
        batch_size: Prompts per ``generate`` call (left-padded).
        stop_at_newline: End a translation at its first newline (for one-line segments).
        length_ratio: Also cap each batch's continuation at ``length_ratio`` times its longest
            source in tokens, plus 8 (a degenerate repetition otherwise runs to ``max_new_tokens``,
            which costs minutes per batch on a CPU); None for no such cap.

    Returns:
        One stripped hypothesis per source, in order.
    """
    import torch

    from lowres_adapters.evaluation.language_modeling import model_device

    if not hasattr(model, "generate"):
        raise LowresError(f"{type(model).__name__} cannot generate: translation needs a model with generate()")
    stop_ids = _stop_token_ids(tokenizer, stop_at_newline)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    device = model_device(model)
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    hypotheses: list[str] = []
    use_cache: bool | None = None
    with cache_compatible(model):
        try:
            for offset in range(0, len(sources), batch_size):
                batch_sources = sources[offset:offset + batch_size]
                prompts = [prompt(source) for source in batch_sources]
                encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=True)
                input_ids, attention_mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
                if use_cache is None:
                    use_cache = cache_is_filled(model, input_ids, attention_mask)
                with torch.no_grad():
                    output = model.generate(
                        input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams,
                        max_new_tokens=_budget(tokenizer, batch_sources, max_new_tokens, length_ratio), do_sample=False,
                        eos_token_id=stop_ids, pad_token_id=pad_id, use_cache=use_cache,
                    )
                continuations = output[:, encoded["input_ids"].shape[1]:]  # (batch, new tokens)
                for row in continuations.tolist():
                    text = tokenizer.decode(row, skip_special_tokens=True)
                    hypotheses.append(text.split("\n")[0].strip() if stop_at_newline else text.strip())
        finally:
            tokenizer.padding_side = previous_side
            model.train(was_training)
    return hypotheses


def _budget(tokenizer: Any, sources: Sequence[str], max_new_tokens: int, length_ratio: float | None) -> int:
    """Return the continuation cap of a batch: ``length_ratio`` x its longest source + 8, at most ``max_new_tokens``."""
    if length_ratio is None:
        return max_new_tokens
    longest = max(len(tokenizer(source, add_special_tokens=False)["input_ids"]) for source in sources)
    return min(max_new_tokens, int(length_ratio * longest) + 8)


def evaluate_translation(model: Any, tokenizer: Any, sources: Sequence[str], references: Sequence[str], *,
                         prompt: Callable[[str], str], num_beams: int = 4, max_new_tokens: int = 256,
                         batch_size: int = 4, bleu_tokenize: str | None = None,
                         length_ratio: float | None = 3.0) -> tuple[TranslationScores, list[str]]:
    """Generate translations of ``sources`` and score them; return the scores and the hypotheses."""
    hypotheses = generate_translations(model, tokenizer, sources, prompt=prompt, num_beams=num_beams,
                                       max_new_tokens=max_new_tokens, batch_size=batch_size,
                                       length_ratio=length_ratio)
    return score_translations(hypotheses, references, bleu_tokenize=bleu_tokenize), hypotheses
