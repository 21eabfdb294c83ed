"""Language-modelling scores: perplexity, bits per character and bits per byte.

Bits per character divides the total negative log-likelihood (in bits) by the number of characters
scored, so it is comparable across tokenizers (an extended vocabulary changes the token count, not
the character count) and does not depend on the batch size.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.fast_attention import grouped_query_attention
from lowres_adapters.models import objective_facts
from lowres_adapters.evaluation.lm_scores import LanguageModelScores, model_device, window_spans
from lowres_adapters.evaluation.pseudo_perplexity import score_texts_mlm
from lowres_adapters.evaluation.work_pool import Piece, WorkPool

OBJECTIVES = ("clm", "mlm")


def score_texts(model: Any, tokenizer: Any, texts: Sequence[str], *, objective: str = "clm",
                batch_size: int = 8, max_length: int = 512, progress: str | None = None,
                pool: WorkPool | None = None) -> LanguageModelScores:
    """Score ``texts`` with ``model`` and return the summed negative log-likelihood and counts.

    For ``clm`` every token of each text is predicted: a BOS (or, without one, EOS) token is
    prepended as context, and texts longer than ``max_length`` are scored in overlapping windows
    where each token is scored exactly once with at least half a window of left context. For
    ``mlm`` the pseudo-log-likelihood is used (see :mod:`.pseudo_perplexity`).

    Args:
        model: A causal (or masked) LM, or a wrapper whose forward takes ``input_ids`` and
            ``attention_mask`` and returns ``.logits`` aligned with the input.
        tokenizer: The model's tokenizer.
        texts: Texts to score; empty ones are skipped.
        objective: ``"clm"`` or ``"mlm"``.
        batch_size: Number of windows (``clm``) or masked copies (``mlm``) per forward pass.
        max_length: Longest sequence fed to the model, in tokens (special tokens included).
        progress: Label of a progress bar on stderr; None (the default) shows none.
        pool: ``clm``: runs the batches side by side on its workers (:class:`~.work_pool.WorkPool`;
            the same figures); None: one after another.

    Returns:
        The totals; derived figures are properties of the result.
    """
    if objective not in OBJECTIVES:
        raise LowresError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if batch_size < 1 or max_length < 4:
        raise LowresError("batch_size must be >= 1 and max_length >= 4")
    if objective_facts(objective).masked:
        return score_texts_mlm(model, tokenizer, texts, batch_size=batch_size, max_length=max_length)
    return _score_texts_clm(model, tokenizer, texts, batch_size=batch_size, max_length=max_length, progress=progress,
                            pool=pool)


def _context_token_id(tokenizer: Any) -> int:
    """Return the token prepended so that a text's first token is predicted too."""
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise LowresError("the tokenizer has neither a BOS nor an EOS token to start a text with")


def _pad_id(tokenizer: Any) -> int:
    """Return a token id to pad with (its value never matters: padding is masked)."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id):
        if token_id is not None:
            return int(token_id)
    return 0


def _score_texts_clm(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int,
                     max_length: int, progress: str | None = None, pool: WorkPool | None = None) -> LanguageModelScores:
    """Score texts with a causal LM; see :func:`score_texts`."""
    context_id = _context_token_id(tokenizer)
    rows: list[tuple[list[int], int]] = []  # (window ids, first scored position within the window)
    chars = n_bytes = n_texts = 0
    for text in texts:
        text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not text_ids:
            continue
        ids = [context_id, *text_ids]
        n_texts += 1
        chars += len(text)
        n_bytes += len(text.encode("utf-8"))
        for start, end, first_scored in window_spans(len(ids), max_length):
            rows.append((ids[start:end], first_scored - start))
    if not rows:
        raise LowresError("nothing to score: every text is empty")
    nll_nats, tokens = score_token_rows(model, rows, pad_id=_pad_id(tokenizer), batch_size=batch_size,
                                        progress=progress, pool=pool)
    return LanguageModelScores(nll_nats=nll_nats, tokens=tokens, chars=chars, bytes=n_bytes,
                               texts=n_texts, objective="clm")


def score_token_rows(model: Any, rows: Sequence[tuple[Sequence[int], int]], *, pad_id: int, batch_size: int = 8,
                     progress: str | None = None, pool: WorkPool | None = None) -> tuple[float, int]:
    """Return the summed negative log-likelihood (nats) and the count of the scored tokens of ``rows``.

    Each row is ``(ids, first_scored)``: tokens ``ids[first_scored:]`` are predicted from the
    ones before them (``first_scored >= 1``). Rows are sorted by length and right-padded into
    batches of ``batch_size``, one forward pass per batch; the result does not depend on the batch
    size or the order of the rows (up to float rounding), nor on the pool's workers (the batches
    and the order they are added up in stay the same).

    Args:
        model: A causal LM (or a wrapper taking ``input_ids`` and ``attention_mask``, returning ``.logits``).
        rows: Token rows to score.
        pad_id: Token id used for padding (masked, so its value does not matter).
        batch_size: Rows per forward pass.
        progress: Label of a progress bar on stderr (counted in tokens); None shows none.
        pool: Runs the batches side by side on its workers (:class:`~.work_pool.WorkPool`); None:
            one after another in this thread.
    """
    device = model_device(model)
    order = sorted(range(len(rows)), key=lambda index: len(rows[index][0]))
    batches = [[rows[index] for index in order[offset:offset + batch_size]]
               for offset in range(0, len(order), batch_size)]
    was_training = model.training
    model.eval()
    bar = tqdm(total=sum(len(ids) for ids, _ in rows), desc=progress, unit="tok", disable=progress is None,
               dynamic_ncols=True, leave=False)

    def score_batch(batch: list[tuple[Sequence[int], int]]) -> tuple[float, int]:
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (batch, seq)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)  # (batch, seq)
        targets = torch.full((len(batch), width), -100, dtype=torch.long)  # (batch, seq); -100: not scored
        for row, (ids, first_scored) in enumerate(batch):
            input_ids[row, :len(ids)] = torch.as_tensor(list(ids))
            attention_mask[row, :len(ids)] = 1
            targets[row, first_scored:len(ids)] = input_ids[row, first_scored:len(ids)]
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        shifted = targets[:, 1:].to(device)  # (batch, seq-1)
        losses = torch.nn.functional.cross_entropy(  # (batch * (seq-1),): 0 where not scored
            logits[:, :-1].float().flatten(0, 1), shifted.flatten(), ignore_index=-100, reduction="none")
        bar.update(sum(len(ids) for ids, _ in batch))
        return float(losses.double().sum()), int((shifted != -100).sum())

    pieces = [Piece(cost=len(batch) * max(len(ids) for ids, _ in batch), run=partial(score_batch, batch))
              for batch in batches]
    try:
        with torch.no_grad(), grouped_query_attention(model):
            results = (pool or WorkPool()).run(pieces)
    finally:
        bar.close()
        model.train(was_training)
    nll_nats, tokens = 0.0, 0
    for batch_nll, batch_tokens in results:  # in batch order, as one thread adds them up
        nll_nats += batch_nll
        tokens += batch_tokens
    return nll_nats, tokens
