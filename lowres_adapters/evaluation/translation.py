"""Translation by generation, scored with sacrebleu: BLEU, chrF and chrF++ with their signatures.

chrF++ is ``CHRF(word_order=2)``; prefer it (and chrF) over BLEU for scripts without spaces between
words (e.g. Tibetan), where BLEU's 13a tokenisation sees whole phrases as single words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from sacrebleu.metrics import BLEU, CHRF

from lowres_adapters.errors import LowresError
from lowres_adapters.evaluation.generation import (  # noqa: F401 - re-exported: translation's public API
    GenerationSettings,
    answer_budget,
    cache_compatible,
    cache_is_filled,
    generate_answers,
    stop_token_ids,
)

DEFAULT_PROMPT = "Translate from {source_name} to {target_name}.\n{source_name}: {source}\n{target_name}:"
"""Plain prompt used when the caller gives no prompt builder (fields: source, source_name, target_name)."""
CHAT_INSTRUCTION = ("Translate the following {source_name} text into {target_name}. "
                    "Reply with the {target_name} translation only.\n\n{source}")
"""User message of the chat prompt (an instruction-tuned model is asked in its own chat template)."""
PROMPT_FORMATS = ("plain", "chat")
AUTO_FORMAT = "auto"
"""A run's prompt format that follows its tokenizer: ``chat`` when it has a chat template, else ``plain``."""


def resolve_prompt_format(prompt_format: str, tokenizer: Any) -> str:
    """Return the concrete format of ``prompt_format`` for ``tokenizer`` (:data:`AUTO_FORMAT` resolved)."""
    if prompt_format != AUTO_FORMAT:
        return prompt_format
    return "chat" if getattr(tokenizer, "chat_template", None) else "plain"


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


def plain_prompt(source_name: str, target_name: str, template: str = DEFAULT_PROMPT) -> Callable[[str], str]:
    """Return a prompt builder filling ``template`` (default :data:`DEFAULT_PROMPT`) for one direction."""
    def build(source: str) -> str:
        return template.format(source=source, source_name=source_name, target_name=target_name)
    return build


class ChatPrompt:
    """Prompt builder that asks in the tokenizer's chat template: one user turn, then the assistant's.

    The built string already holds the template's special tokens, so it is tokenised without
    adding any (``includes_special_tokens``).
    """

    includes_special_tokens = True

    def __init__(self, tokenizer: Any, source_name: str, target_name: str, instruction: str = CHAT_INSTRUCTION):
        if not getattr(tokenizer, "chat_template", None):
            raise LowresError("the chat prompt format needs a tokenizer with a chat template")
        self.tokenizer, self.instruction = tokenizer, instruction
        self.source_name, self.target_name = source_name, target_name

    def __call__(self, source: str) -> str:
        message = self.instruction.format(source=source, source_name=self.source_name, target_name=self.target_name)
        return self.tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                                  add_generation_prompt=True)


def make_prompt(tokenizer: Any, source_name: str, target_name: str, *, prompt_format: str = "plain",
                template: str | None = None) -> Callable[[str], str]:
    """Return the prompt builder of a direction in ``prompt_format`` (``"plain"``, ``"chat"`` or ``"auto"``).

    ``template`` replaces :data:`DEFAULT_PROMPT` (plain) or :data:`CHAT_INSTRUCTION` (chat).
    """
    prompt_format = resolve_prompt_format(prompt_format, tokenizer)
    if prompt_format == "chat":
        return ChatPrompt(tokenizer, source_name, target_name, template or CHAT_INSTRUCTION)
    if prompt_format != "plain":
        raise LowresError(f"prompt format must be one of {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")
    return plain_prompt(source_name, target_name, template or DEFAULT_PROMPT)


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


def generate_translations(model: Any, tokenizer: Any, sources: Sequence[str], *,
                          prompt: Callable[[str], str], num_beams: int = 4, max_new_tokens: int = 256,
                          batch_size: int = 16, stop_at_newline: bool = True,
                          length_ratio: float | None = 3.0, settings: GenerationSettings | None = None,
                          progress: str | None = None) -> list[str]:
    """Translate ``sources`` by generation from a causal LM and return the decoded continuations.

    Batched and sorted by length with the key/value cache (:mod:`.generation`); the result does
    not depend on ``batch_size``.

    Args:
        model: A causal LM with ``generate`` (a PEFT wrapper works; a soft-prompt wrapper needs one).
        tokenizer: Its tokenizer.
        sources: Source-side texts.
        prompt: Builds the model input for one source text (see :func:`make_prompt`).
        num_beams: Beam size (arXiv 2512.03976 uses 4); ignored when ``settings`` is given.
        max_new_tokens: Longest continuation (arXiv 2512.03976 uses 256); ignored with ``settings``.
        batch_size: Prompts per ``generate`` call (left-padded).
        stop_at_newline: End a translation at its first newline (for one-line segments).
        length_ratio: Also cap each continuation at ``length_ratio`` times its source in tokens,
            plus 8 (a degenerate repetition otherwise runs to ``max_new_tokens``, which costs
            minutes on a CPU); None for no such cap. Ignored with ``settings``.
        settings: All decoding settings at once (beam size, caps, repetition controls).
        progress: Label of a progress bar on stderr; None shows none.

    Returns:
        One stripped hypothesis per source, in order.
    """
    if settings is None:
        settings = GenerationSettings(num_beams=num_beams, max_new_tokens=max_new_tokens, length_ratio=length_ratio)
    inputs = translation_inputs(tokenizer, sources, prompt, settings)
    return generate_answers(model, tokenizer, inputs.prompts, inputs.budgets, settings=settings,
                            batch_size=batch_size, stop_at_newline=stop_at_newline, progress=progress,
                            add_special_tokens=inputs.add_special_tokens)


@dataclass(frozen=True)
class TranslationInputs:
    """What generation is given for a list of sources: everything its output depends on besides the model.

    Attributes:
        prompts: The model input of each source.
        budgets: Longest answer of each, in tokens (:func:`answer_budget`).
        add_special_tokens: Whether the tokenizer adds its own special tokens to each prompt.
    """

    prompts: list[str]
    budgets: list[int]
    add_special_tokens: bool


def translation_inputs(tokenizer: Any, sources: Sequence[str], prompt: Callable[[str], str],
                       settings: GenerationSettings) -> TranslationInputs:
    """Return the prompts and per-answer caps :func:`generate_translations` generates from."""
    budgets = [answer_budget(len(tokenizer(source, add_special_tokens=False)["input_ids"]), settings)
               for source in sources]
    return TranslationInputs(prompts=[prompt(source) for source in sources], budgets=budgets,
                             add_special_tokens=not getattr(prompt, "includes_special_tokens", False))


def evaluate_translation(model: Any, tokenizer: Any, sources: Sequence[str], references: Sequence[str], *,
                         prompt: Callable[[str], str], num_beams: int = 4, max_new_tokens: int = 256,
                         batch_size: int = 16, bleu_tokenize: str | None = None,
                         length_ratio: float | None = 3.0, settings: GenerationSettings | None = None,
                         progress: str | None = None) -> tuple[TranslationScores, list[str]]:
    """Generate translations of ``sources`` and score them; return the scores and the hypotheses."""
    hypotheses = generate_translations(model, tokenizer, sources, prompt=prompt, num_beams=num_beams,
                                       max_new_tokens=max_new_tokens, batch_size=batch_size,
                                       length_ratio=length_ratio, settings=settings, progress=progress)
    return score_translations(hypotheses, references, bleu_tokenize=bleu_tokenize), hypotheses
