"""The training objective as a type: :data:`CAUSAL_LM` for decoders, :data:`MASKED_LM` for encoders.

The objective is chosen once per run, from the base model's config
(:func:`objective_for_config`, which reads transformers' auto-class tables), and everything that
differs between the two objectives asks it: how text is tokenised, how features are collated,
which loss trains, how held-out text is scored, whether the first token of an example is
predicted. Nothing else compares objective names.

An objective is also the ``str`` it is recorded as (``"clm"`` / ``"mlm"`` in ``run_config.json``
and ``lowres_adapter.json``), so artifacts and settings files keep their format.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import torch

from lowres_adapters import models
from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.language_modeling import LanguageModelScores, score_texts
from lowres_adapters.training import fast_lm, objectives
from lowres_adapters.training.batching import (
    CausalCollator,
    Collator,
    Feature,
    LazyFeatures,
    MaskedCollator,
    tokenize_for_clm,
    tokenize_for_mlm,
)

LossFn = Callable[[torch.nn.Module, Mapping[str, torch.Tensor]], tuple[torch.Tensor, int]]


class LMObjective(str):
    """A language-modelling objective; subclasses fill in the class attributes.

    Attributes:
        code: The name recorded in settings and artifacts (``"clm"`` or ``"mlm"``).
        masked: True when the model predicts masked tokens from both sides (encoders); this and
            ``description`` come from :func:`lowres_adapters.models.objective_facts`.
        predicts_first_token: False when an example's first token has no left context to be
            predicted from (causal LM): packing leaves it unlabelled, pooling skips it.
        description: Human name (model cards, messages).
        tokenize_function: ``(tokenizer, texts, max_length) -> features``; its qualified name
            keys the token cache, so each objective has its own entries.
    """

    code: ClassVar[str] = ""
    masked: ClassVar[bool] = False
    predicts_first_token: ClassVar[bool] = True
    description: ClassVar[str] = ""
    tokenize_function: ClassVar[Callable[[Any, Iterable[str], int], list[Feature]]]
    _plain_loss: ClassVar[LossFn]
    _full_forward_loss: ClassVar[LossFn]
    _labelled_only_loss: ClassVar[Callable[..., tuple[torch.Tensor, int]]]

    def __new__(cls, value: str | None = None) -> "LMObjective":
        return super().__new__(cls, cls.code)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), ())

    def tokenize(self, tokenizer: Any, texts: Iterable[str], max_length: int) -> list[Feature]:
        """Tokenise free text into features (empty texts skipped, each cut to ``max_length``)."""
        return type(self).tokenize_function(tokenizer, texts, max_length)

    def encode(self, tokenizer: Any, text: str, max_length: int) -> list[int]:
        """Return the token ids of one text as :meth:`tokenize` makes them (empty for blank text)."""
        features = self.tokenize(tokenizer, [text], max_length)
        return features[0]["input_ids"] if features else []

    def lazy_features(self, tokenizer: Any, texts: Iterable[str], max_length: int) -> LazyFeatures:
        """Return features tokenised on first access (see :class:`~.batching.LazyFeatures`)."""
        return LazyFeatures(list(texts), lambda chunk: self.tokenize(tokenizer, chunk, max_length))

    def collator(self, tokenizer: Any, mask_probability: float = objectives.MASK_PROBABILITY) -> Collator:
        """Return the plain (padding) collator; ``mask_probability`` only matters for masked LM."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Return ``(mean loss over predicted tokens, their number)`` from the model's logits."""
        return type(self)._plain_loss(model, batch)

    def fast_loss(self, *, masked_only_logits: bool = True, trim: fast_lm.VocabularyTrim | None = None,
                  chunk_size: int | None = None) -> LossFn:
        """Return the loop's ``loss_fn(model, batch)`` on the fast path (:mod:`~.fast_lm`).

        Args:
            masked_only_logits: Score labelled positions only; False runs the plain full forward
                (the model's own ``labels=`` loss).
            trim: Score only these token ids (needs ``masked_only_logits``).
            chunk_size: Score at most this many positions at a time.
        """
        if not masked_only_logits:
            if trim is not None:
                raise LowresError("vocabulary trimming needs masked_only_logits")
            return type(self)._full_forward_loss
        labelled_only = type(self)._labelled_only_loss

        def loss_fn(model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
            return labelled_only(model, batch, trim=trim, chunk_size=chunk_size)

        loss_fn.trim = trim  # type: ignore[attr-defined]  # what it scores, for reports
        return loss_fn

    def score(self, model: Any, tokenizer: Any, texts: Sequence[str], **options: Any) -> LanguageModelScores:
        """Score held-out ``texts`` (bits per character etc.; options as ``score_texts``)."""
        return score_texts(model, tokenizer, texts, objective=self.code, **options)


class CausalLM(LMObjective):
    """Next-token prediction (decoders): BOS + text + EOS, every token after the first predicted."""

    code = models.CAUSAL_LM
    masked = models.objective_facts(code).masked
    predicts_first_token = False
    description = models.objective_facts(code).description
    tokenize_function = staticmethod(tokenize_for_clm)
    _plain_loss = staticmethod(objectives.causal_lm_loss)
    _full_forward_loss = staticmethod(fast_lm.plain_causal_lm_loss)
    _labelled_only_loss = staticmethod(fast_lm.causal_lm_loss)

    def collator(self, tokenizer: Any, mask_probability: float = objectives.MASK_PROBABILITY) -> Collator:
        """Return the padding collator (labels = inputs, -100 on padding)."""
        return CausalCollator(tokenizer.pad_token_id)


class MaskedLM(LMObjective):
    """Masked-token prediction (encoders): 15% of tokens chosen, 80/10/10 mask/random/kept."""

    code = models.MASKED_LM
    masked = models.objective_facts(code).masked
    predicts_first_token = True
    description = models.objective_facts(code).description
    tokenize_function = staticmethod(tokenize_for_mlm)
    _plain_loss = staticmethod(objectives.masked_lm_loss)
    _full_forward_loss = staticmethod(fast_lm.plain_lm_loss)
    _labelled_only_loss = staticmethod(fast_lm.masked_lm_loss)

    def collator(self, tokenizer: Any, mask_probability: float = objectives.MASK_PROBABILITY) -> Collator:
        """Return the masking collator (needs a tokenizer with a mask token)."""
        if tokenizer.mask_token_id is None:
            raise LowresError("masked LM needs a tokenizer with a mask token")
        return MaskedCollator(tokenizer, mask_probability)


CAUSAL_LM = CausalLM()
MASKED_LM = MaskedLM()
_BY_CODE = {objective.code: objective for objective in (CAUSAL_LM, MASKED_LM)}


def objective_named(name: str | LMObjective) -> LMObjective:
    """Return the objective recorded as ``name`` (``"clm"`` or ``"mlm"``); objectives pass through.

    Raises:
        LowresError: For any other name (one line).
    """
    if isinstance(name, LMObjective):
        return name
    if name not in _BY_CODE:
        raise LowresError(f"objective must be one of {', '.join(_BY_CODE)}, got {name!r}")
    return _BY_CODE[name]


def objective_for_config(config: Any, model_id: str = "") -> LMObjective:
    """Return the objective the model's architecture trains with (see
    :func:`lowres_adapters.models.objective_name_for_config`)."""
    return _BY_CODE[models.objective_name_for_config(config, model_id)]
