"""Batched generation of one-segment answers with the key/value cache.

Prompts are sorted by length and generated in batches (left padding), greedy or with beam search.
An answer ends at its end-of-answer token: EOS, ``<|im_end|>``, or, for one-line segments, any
token whose text holds a newline. Each prompt has its own length cap (``length_ratio`` x its
source in tokens + 8), so a model that loops stops where its own source says, whatever the batch
it is in: the hypotheses do not depend on the batch size or the order of the sources.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor, PreTrainedModel

from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.fast_attention import grouped_query_attention
from lowres_adapters.evaluation.language_modeling import model_device
from lowres_adapters.evaluation.work_pool import Piece, WorkPool

GENERATION_FIELDS = ("num_beams", "max_new_tokens", "no_repeat_ngram_size", "repetition_penalty", "length_ratio")


@dataclass(frozen=True)
class GenerationSettings:
    """How translations are decoded (recorded with every translation score).

    Attributes:
        num_beams: Beam size; 1 is greedy decoding.
        max_new_tokens: Longest continuation, in tokens.
        no_repeat_ngram_size: Never repeat an n-gram of this many tokens within an answer; 0 disables.
        repetition_penalty: Divide the scores of tokens already in the sequence (prompt included) by
            this (CTRL's penalty); 1.0 disables.
        length_ratio: Also cap each answer at ``length_ratio`` x its source in tokens + 8; None for
            no such cap (:func:`~lowres_adapters.evaluation.translation.length_ratio_of` calibrates it
            per direction).
    """

    num_beams: int = 4
    max_new_tokens: int = 256
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    length_ratio: float | None = 3.0

    def __post_init__(self) -> None:
        if self.num_beams < 1 or self.max_new_tokens < 1:
            raise LowresError("num_beams and max_new_tokens must be >= 1")
        if self.no_repeat_ngram_size < 0:
            raise LowresError("no_repeat_ngram_size must be >= 0 (0 disables)")
        if self.repetition_penalty <= 0:
            raise LowresError("repetition_penalty must be > 0 (1.0 disables)")
        if self.length_ratio is not None and self.length_ratio < 0:
            raise LowresError("length_ratio must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict."""
        return asdict(self)


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
    with torch.no_grad():
        output = model(input_ids=input_ids[:1, -2:], attention_mask=attention_mask[:1, -2:], use_cache=True)
    cache = getattr(output, "past_key_values", None)
    if cache is None:
        return False
    length = cache.get_seq_length() if hasattr(cache, "get_seq_length") else len(cache)
    return bool(length)


def prompt_cache(model: Any, input_ids: Any, attention_mask: Any, num_beams: int) -> Any:
    """Return the key/value cache of the prompts minus their last token, computed once and repeated per beam.

    ``generate`` would copy each prompt ``num_beams`` times before its first forward pass and
    compute the same keys and values on every copy; given this cache it runs only the last prompt
    token, for each beam. Positions follow the left padding as ``generate``'s own do.
    """
    position_ids = attention_mask.long().cumsum(-1) - 1  # (batch, seq)
    position_ids.masked_fill_(attention_mask == 0, 1)
    with torch.no_grad():
        output = model(input_ids=input_ids[:, :-1], attention_mask=attention_mask[:, :-1],
                       position_ids=position_ids[:, :-1], use_cache=True)
    cache = output.past_key_values
    cache.batch_repeat_interleave(num_beams)  # (batch * beams, ...): beam copies next to their prompt
    return cache


def stop_token_ids(tokenizer: Any, stop_at_newline: bool) -> list[int]:
    """Return the token ids that end an answer: EOS, chat end tokens and, with ``stop_at_newline``,
    every token whose text holds a newline (``"\\n"``, ``".\\n"``, ``"\\n\\n"`` ...)."""
    stops = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            stops.add(token_id)
    if stop_at_newline:
        stops.update(_newline_token_ids(tokenizer))
    return sorted(token_id for token_id in stops if token_id is not None)


MIN_ANSWER_TOKENS = 1
"""No answer ends before its first token: a model whose training separated texts with the end token
(a CPT stage on SmolLM2, whose end token is ``<|im_start|>``) otherwise often stops at once, empty."""
NEWLINE_MARKS = ("\n", "\u010a", "<0x0A>")
"""How a newline shows in vocabulary entries: itself, byte-level BPE's ``Ċ``, SentencePiece's byte token."""


def _newline_token_ids(tokenizer: Any) -> list[int]:
    """Return the ids of the tokens whose decoded text contains a newline.

    Only entries that show a newline mark (:data:`NEWLINE_MARKS`) are decoded to check.
    """
    special = set(tokenizer.all_special_ids)
    candidates = [token_id for token, token_id in tokenizer.get_vocab().items()
                  if token_id not in special and any(mark in token for mark in NEWLINE_MARKS)]
    texts = tokenizer.batch_decode([[token_id] for token_id in candidates])
    return [token_id for token_id, text in zip(candidates, texts) if "\n" in text]


def answer_budget(source_tokens: int, settings: GenerationSettings) -> int:
    """Return the continuation cap of one prompt: ``length_ratio`` x its source tokens + 8, at most
    ``max_new_tokens``."""
    if settings.length_ratio is None:
        return settings.max_new_tokens
    return min(settings.max_new_tokens, int(settings.length_ratio * source_tokens) + 8)


def _row_caps_processor(caps: Sequence[int], num_beams: int, prompt_width: int, stop_id: int) -> Any:
    """Return a logits processor that forces ``stop_id`` once a row has generated its own cap."""
    row_caps = torch.tensor([cap for cap in caps for _ in range(num_beams)])  # (batch * beams,)

    class RowCaps(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            done = (input_ids.shape[1] - prompt_width) >= row_caps.to(scores.device)  # (rows,)
            if bool(done.any()):
                scores = scores.clone()
                scores[done] = -float("inf")
                scores[done, stop_id] = 0.0
            return scores

    return RowCaps()


def generate_answers(model: Any, tokenizer: Any, prompts: Sequence[str], budgets: Sequence[int], *,
                     settings: GenerationSettings, batch_size: int = 16, stop_at_newline: bool = True,
                     progress: str | None = None, add_special_tokens: bool = True,
                     pool: WorkPool | None = None) -> list[str]:
    """Generate one answer per prompt, each at most ``budgets[i]`` tokens, and return them in order.

    Args:
        model: A causal LM with ``generate`` (a PEFT wrapper works).
        tokenizer: Its tokenizer.
        prompts: Full model inputs (a chat-formatted prompt already holds its special tokens: pass
            ``add_special_tokens=False``).
        budgets: Longest answer per prompt, in tokens (see :func:`answer_budget`).
        settings: Decoding settings.
        batch_size: Prompts per ``generate`` call (each carries ``num_beams`` rows).
        stop_at_newline: End an answer at its first newline.
        progress: Label of a progress bar on stderr (counted in prompts); None shows none.
        add_special_tokens: Let the tokenizer add its BOS etc. to each prompt.
        pool: Runs the ``generate`` calls side by side on its workers (:class:`~.work_pool.WorkPool`:
            the same batches, so the same answers); None: one after another in this thread.

    Returns:
        One stripped answer per prompt, cut at the first newline with ``stop_at_newline``.
    """
    if not hasattr(model, "generate"):
        raise LowresError(f"{type(model).__name__} cannot generate: translation needs a model with generate()")
    if len(budgets) != len(prompts):
        raise LowresError(f"{len(budgets)} budgets for {len(prompts)} prompts")
    stop_ids = stop_token_ids(tokenizer, stop_at_newline)
    end_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else stop_ids[0]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    device = model_device(model)
    lengths = [len(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"]) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda index: (lengths[index], budgets[index]))
    batches = [order[offset:offset + batch_size] for offset in range(0, len(order), batch_size)]
    previous_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:  # the tokenizer is used in this thread only (a fast tokenizer is not safe to share between threads)
        encoded = [tokenizer([prompts[index] for index in indices], return_tensors="pt", padding=True,
                             add_special_tokens=add_special_tokens) for indices in batches]
    finally:
        tokenizer.padding_side = previous_side
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(prompts), desc=progress, unit="seg", disable=progress is None, dynamic_ncols=True,
               leave=False)
    with cache_compatible(model), grouped_query_attention(model):
        try:
            use_cache = bool(batches) and cache_is_filled(model, encoded[0]["input_ids"].to(device),
                                                          encoded[0]["attention_mask"].to(device))

            def generate_batch(indices: list[int], batch: Any) -> list[list[int]]:
                input_ids, attention_mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
                caps = [max(1, budgets[index]) for index in indices]
                shared = ({"past_key_values": prompt_cache(model, input_ids, attention_mask, settings.num_beams)}
                          if use_cache and settings.num_beams > 1 and input_ids.shape[1] > 1
                          and isinstance(model, PreTrainedModel) else {})  # wrappers add inputs of their own
                with torch.no_grad():
                    output = model.generate(
                        input_ids=input_ids, attention_mask=attention_mask, num_beams=settings.num_beams, **shared,
                        max_new_tokens=max(caps) + 1, min_new_tokens=MIN_ANSWER_TOKENS, do_sample=False,
                        eos_token_id=stop_ids, pad_token_id=pad_id,
                        use_cache=use_cache, no_repeat_ngram_size=settings.no_repeat_ngram_size or None,
                        repetition_penalty=settings.repetition_penalty if settings.repetition_penalty != 1.0 else None,
                        logits_processor=[_row_caps_processor(caps, settings.num_beams, input_ids.shape[1], end_id)],
                        temperature=None, top_p=None, top_k=None,
                    )
                bar.update(len(indices))
                return output[:, input_ids.shape[1]:].tolist()  # (batch, new tokens)

            pieces = [Piece(cost=settings.num_beams * len(indices) * (batch["input_ids"].shape[1] + max(
                budgets[index] for index in indices)), run=partial(generate_batch, indices, batch))
                for indices, batch in zip(batches, encoded)]
            continuations = (pool or WorkPool()).run(pieces)
        finally:
            bar.close()
            model.train(was_training)
    answers: list[str] = [""] * len(prompts)
    for indices, rows in zip(batches, continuations):
        for index, row in zip(indices, rows):
            text = tokenizer.decode(row, skip_special_tokens=True)
            answers[index] = text.split("\n")[0].strip() if stop_at_newline else text.strip()
    return answers
