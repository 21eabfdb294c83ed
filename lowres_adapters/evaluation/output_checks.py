"""Checks of generated text: is it in the target language, and does it loop?

- :func:`target_language_share`: the share of outputs whose letters are mostly in the target's
  script and whose character-trigram profile is closer to target-language text than to
  source-language text (a transparent language check that needs no language-ID model).
- :func:`repeated_ngram_rate`: the share of an output's n-grams that repeat an earlier n-gram of
  the same output (0 for text that never repeats itself; a loop like "ndipo ndipo ndipo" drives it
  towards 1). Words for spaced scripts, characters for scripts without spaces.
- :func:`distinct_output_share`: distinct outputs / outputs (1 when every source gets its own
  answer; a model that answers every source with the same phrase drives it towards 1/N).
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from typing import Sequence


def main_script(text: str) -> str | None:
    """Return the Unicode script word (``LATIN``, ``TIBETAN``, ``CJK`` ...) of most letters, None without letters."""
    scripts = Counter(unicodedata.name(char, "UNKNOWN").split()[0] for char in text if char.isalpha())
    return scripts.most_common(1)[0][0] if scripts else None


def trigram_profile(texts: Sequence[str]) -> Counter[str]:
    """Return the counts of lower-cased character trigrams (word-padded with spaces) of ``texts``."""
    profile: Counter[str] = Counter()
    for text in texts:
        padded = f" {' '.join(text.lower().split())} "
        profile.update(padded[index:index + 3] for index in range(len(padded) - 2))
    return profile


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    dot = sum(count * b[gram] for gram, count in a.items() if gram in b)
    norms = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))
    return dot / norms if norms else 0.0


def is_target_language(text: str, target: Counter[str], source: Counter[str], target_script: str | None) -> bool:
    """Return True when ``text`` is in the target's script and closer to its trigram profile than to the source's."""
    if not text.strip() or main_script(text) != target_script:
        return False
    profile = trigram_profile([text])
    return _cosine(profile, target) > _cosine(profile, source)


def target_language_share(outputs: Sequence[str], target_texts: Sequence[str], source_texts: Sequence[str]) -> float:
    """Return the share (0-1) of ``outputs`` judged to be in the language of ``target_texts``.

    Args:
        outputs: Generated texts.
        target_texts: Text in the target language (builds its script and trigram profile).
        source_texts: Text in the source language (the profile an output must be further from).
    """
    if not outputs:
        return 0.0
    target, source = trigram_profile(target_texts), trigram_profile(source_texts)
    script = main_script(" ".join(target_texts))
    return sum(is_target_language(text, target, source, script) for text in outputs) / len(outputs)


def repeated_ngram_rate(outputs: Sequence[str], n: int | None = None) -> float:
    """Return repeated n-grams / all n-grams over ``outputs`` (each output counted on its own).

    Units are words when the outputs have spaces between words, else characters; ``n`` defaults to
    3 for words and 6 for characters. Outputs shorter than ``n`` units add nothing.
    """
    spaced = sum(text.count(" ") for text in outputs) * 10 >= sum(len(text) for text in outputs)
    size = n or (3 if spaced else 6)
    total = repeated = 0
    for text in outputs:
        units: Sequence[str] = text.split() if spaced else list(text.replace(" ", ""))
        grams = [tuple(units[index:index + size]) for index in range(len(units) - size + 1)]
        total += len(grams)
        repeated += len(grams) - len(set(grams))
    return repeated / total if total else 0.0


def distinct_output_share(outputs: Sequence[str]) -> float:
    """Return the number of distinct outputs (stripped) over the number of outputs (0.0 for none).

    A collapsed model answers different sources with the same few phrases: chrF can still be above
    the base (the phrases are in the right script) while the answers ignore the source.
    """
    if not outputs:
        return 0.0
    return len({text.strip() for text in outputs}) / len(outputs)
