"""Language and script codes: ISO 639-3 / ISO 15924 validation and script detection."""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import lru_cache

import pycountry

from lowres_adapters.errors import LowresError

# First word of a character's Unicode name -> ISO 15924 code. Covers the scripts of the
# languages this project works with; anything else is reported as "Zyyy" (undetermined).
UNICODE_NAME_TO_SCRIPT = {
    "LATIN": "Latn", "TIBETAN": "Tibt", "CJK": "Hani", "CYRILLIC": "Cyrl", "ARABIC": "Arab",
    "ETHIOPIC": "Ethi", "DEVANAGARI": "Deva", "KHMER": "Khmr", "GREEK": "Grek", "HEBREW": "Hebr",
    "THAI": "Thai", "HANGUL": "Hang", "HIRAGANA": "Hira", "KATAKANA": "Kana", "GEORGIAN": "Geor",
    "ARMENIAN": "Armn", "BENGALI": "Beng", "SINHALA": "Sinh", "MYANMAR": "Mymr", "TAMIL": "Taml",
    "TELUGU": "Telu", "KANNADA": "Knda", "MALAYALAM": "Mlym", "GUJARATI": "Gujr", "GURMUKHI": "Guru",
    "ORIYA": "Orya", "LAO": "Laoo", "MONGOLIAN": "Mong", "TIFINAGH": "Tfng", "CHEROKEE": "Cher",
    "CANADIAN": "Cans", "SYRIAC": "Syrc", "THAANA": "Thaa", "NKO": "Nkoo", "VAI": "Vaii",
}
# Scripts that count as one another when filtering (Chinese text mixes Hani with Hans/Hant).
SCRIPT_ALIASES = {"Hans": "Hani", "Hant": "Hani", "Jpan": "Hani", "Kore": "Hang"}


@lru_cache(maxsize=4096)
def char_script(char: str) -> str | None:
    """Return the ISO 15924 code of a letter, or None for digits, punctuation and spaces."""
    if not unicodedata.category(char).startswith(("L", "M")):
        return None
    name = unicodedata.name(char, "")
    return UNICODE_NAME_TO_SCRIPT.get(name.split(" ", 1)[0], "Zyyy") if name else "Zyyy"


def script_counts(text: str) -> Counter[str]:
    """Count the letters of ``text`` per ISO 15924 script."""
    return Counter(script for script in map(char_script, text) if script is not None)


def detect_script(text: str) -> str | None:
    """Return the ISO 15924 code of the script most letters of ``text`` are in, or None."""
    counts = script_counts(text)
    return counts.most_common(1)[0][0] if counts else None


def script_fraction(text: str, script: str) -> float:
    """Return the fraction of the letters of ``text`` that are in ``script`` (0.0 with no letters)."""
    counts = script_counts(text)
    total = sum(counts.values())
    wanted = SCRIPT_ALIASES.get(script, script)
    return counts.get(wanted, 0) / total if total else 0.0


def validate_language(code: str) -> str:
    """Return ``code`` if it is an ISO 639-3 code, else raise a one-line error.

    Raises:
        LowresError: For anything that is not a known ISO 639-3 code (two-letter codes are
            refused with the three-letter code to use instead).
    """
    if isinstance(code, str) and len(code) == 3 and pycountry.languages.get(alpha_3=code):
        return code
    hint = ""
    if isinstance(code, str) and len(code) == 2:
        language = pycountry.languages.get(alpha_2=code.lower())
        if language is not None:
            hint = f" (use {language.alpha_3!r} for {language.name})"
    raise LowresError(f"unknown language code {code!r}: expected an ISO 639-3 code like 'nya'{hint}")


def validate_script(code: str) -> str:
    """Return ``code`` if it is an ISO 15924 script code, else raise a one-line error."""
    if isinstance(code, str) and pycountry.scripts.get(alpha_4=code):
        return code
    raise LowresError(f"unknown script code {code!r}: expected an ISO 15924 code like 'Latn' or 'Tibt'")


def to_iso639_3(code: str) -> str:
    """Return the ISO 639-3 code for an ISO 639-1/639-3 code or a locale (``"ar-SA"`` -> ``"ara"``).

    Unknown codes are returned unchanged (graphs carry codes pycountry may not know).
    """
    base = code.replace("_", "-").split("-", 1)[0].lower()
    if len(base) == 2:
        language = pycountry.languages.get(alpha_2=base)
        return language.alpha_3 if language is not None else base
    return base


def language_name(code: str) -> str:
    """Return the English name of an ISO 639-3 code, or the code itself when unknown."""
    language = pycountry.languages.get(alpha_3=code)
    return language.name if language is not None else code
