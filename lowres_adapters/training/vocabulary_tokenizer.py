"""Train new vocabulary pieces for a target script and append them to a base fast tokenizer.

``extend_tokenizer`` trains a small tokenizer of the base's kind (``tokenizers``) on the target
text, with the base tokenizer's own normaliser and pre-tokeniser, and appends what the base lacks:

- BPE (byte-level or not): the side model's merges, in the order they were learned, and the
  pieces they make, up to ``num_tokens`` new pieces. The base merges keep their priority, so text
  without the new pieces tokenises exactly as before.
- WordPiece: new pieces of a side vocabulary (greedy longest match picks them up).
- Unigram (SentencePiece): the best-scoring new pieces of a side Unigram model, with their scores.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from lowres_adapters.errors import LowresError

SUPPORTED_MODELS = ("BPE", "WordPiece", "Unigram")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
"""The regex byte-level BPE pre-tokenisers (GPT-2, SmolLM2) split text with."""


@dataclass
class TokenizerExtension:
    """An extended tokenizer and what was added.

    Attributes:
        tokenizer: The extended ``PreTrainedTokenizerFast``.
        original_size: Vocabulary size before (``len(base_tokenizer)``).
        added_pieces: The new vocabulary pieces, in id order (``original_size ...``), as the
            tokenizer model spells them (byte-level BPE pieces are in its byte alphabet).
    """

    tokenizer: Any
    original_size: int
    added_pieces: list[str]


def _tokenizer_json(tokenizer: Any) -> dict[str, Any]:
    if not getattr(tokenizer, "is_fast", False):
        raise LowresError("vocabulary extension needs a fast tokenizer (tokenizer.json)")
    return json.loads(tokenizer.backend_tokenizer.to_str())


def _merge_pair(merge: Any) -> tuple[str, str]:
    return tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ", 1))  # type: ignore[return-value]


def _mostly_non_ascii(texts: Sequence[str]) -> bool:
    letters = [character for text in texts[:2000] for character in text if character.isalpha()]
    return bool(letters) and sum(ord(c) > 127 for c in letters) > len(letters) / 2


def dominant_script_range(texts: Sequence[str]) -> tuple[int, int] | None:
    """Return the (first, last) code points seen of the most frequent non-Latin script of ``texts``.

    The script is the first word of the Unicode character name (``TIBETAN``, ``ETHIOPIC``, ...); the
    range spans every character of that script in the text (letters, vowel signs, punctuation).
    None when the text is mostly Latin or ASCII.
    """
    scripts: Counter[str] = Counter()
    points: dict[str, list[int]] = {}
    for text in texts[:5000]:
        for character in text:
            if ord(character) < 128:
                continue
            script = unicodedata.name(character, "UNKNOWN").split(" ")[0]
            scripts[script] += character.isalpha()
            bounds = points.setdefault(script, [ord(character), ord(character)])
            bounds[0], bounds[1] = min(bounds[0], ord(character)), max(bounds[1], ord(character))
    if not scripts:
        return None
    script, _ = scripts.most_common(1)[0]
    if script in ("LATIN", "UNKNOWN"):
        return None
    return points[script][0], points[script][1]


def _chunk_script_runs(base: dict[str, Any], script_range: tuple[int, int]) -> bool:
    """Make a byte-level BPE pre-tokeniser keep runs of the target script whole (in place).

    GPT-2's regex splits a letter from its vowel signs (``\\p{M}`` is not ``\\p{L}``), which caps
    what merges can learn for abugidas such as Tibetan. A ``Split`` on ``script run | GPT-2 regex``
    before a regex-free ``ByteLevel`` leaves every text without that script pre-tokenised exactly
    as before. Returns whether the pre-tokeniser was changed.
    """
    pre_tokenizer = base.get("pre_tokenizer") or {}
    if pre_tokenizer.get("type") != "ByteLevel" or not pre_tokenizer.get("use_regex", True):
        return False
    first, last = script_range
    pattern = f" ?[\\x{{{first:04X}}}-\\x{{{last:04X}}}]+|" + GPT2_PATTERN
    base["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
            {**pre_tokenizer, "use_regex": False},
        ],
    }
    return True


def _piece_bytes_non_ascii(piece: str, byte_level: bool) -> bool:
    if byte_level:
        decoded = decoders.ByteLevel().decode([piece])
        return any(ord(character) > 127 for character in decoded) or "\ufffd" in decoded
    return any(ord(character) > 127 for character in piece)


def _train_side_tokenizer(base: dict[str, Any], texts: Sequence[str], kind: str, size: int,
                          min_frequency: int) -> dict[str, Any]:
    """Train a small tokenizer of ``kind`` on ``texts`` with the base's normaliser and pre-tokeniser."""
    shell = {key: base.get(key) for key in ("normalizer", "pre_tokenizer")}
    if kind == "BPE":
        side = Tokenizer(models.BPE(unk_token=base["model"].get("unk_token")))
        byte_level = "ByteLevel" in json.dumps(base.get("pre_tokenizer"))
        alphabet = pre_tokenizers.ByteLevel.alphabet() if byte_level else []
        trainer = trainers.BpeTrainer(vocab_size=len(alphabet) + size, min_frequency=min_frequency,
                                      initial_alphabet=alphabet, show_progress=False)
    elif kind == "Unigram":
        side = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=size, show_progress=False, unk_token="<unk>",
                                          special_tokens=["<unk>"])
    else:
        side = Tokenizer(models.WordPiece(unk_token=base["model"].get("unk_token", "[UNK]")))
        trainer = trainers.WordPieceTrainer(vocab_size=size, min_frequency=min_frequency, show_progress=False,
                                            special_tokens=[base["model"].get("unk_token", "[UNK]")])
    side_json = json.loads(side.to_str())
    side_json.update({key: value for key, value in shell.items() if value is not None})
    side = Tokenizer.from_str(json.dumps(side_json))
    side.train_from_iterator(texts, trainer)
    return json.loads(side.to_str())


def extend_tokenizer(tokenizer: Any, texts: Iterable[str], num_tokens: int, *, min_frequency: int = 2,
                     script_only: bool | None = None, script_runs: bool = True) -> TokenizerExtension:
    """Return ``tokenizer`` extended with up to ``num_tokens`` pieces learned from ``texts``.

    Args:
        tokenizer: The base fast tokenizer (left unchanged).
        texts: Target-language training text.
        num_tokens: How many new pieces to add at most (fewer when the text does not support more).
        min_frequency: Minimum count of a merge in ``texts``.
        script_only: Keep only pieces with non-ASCII characters (so English and digits tokenise as
            before). None turns it on when most letters of ``texts`` are non-ASCII.
        script_runs: With ``script_only``, let a byte-level BPE pre-tokeniser keep runs of the
            target script whole, so pieces can span a letter and its vowel signs.
    """
    if not (isinstance(num_tokens, int) and num_tokens > 0):
        raise LowresError(f"the number of tokens to add must be a positive integer, got {num_tokens!r}")
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise LowresError("vocabulary extension needs training text; got none")
    base = _tokenizer_json(tokenizer)
    kind = base["model"]["type"]
    if kind not in SUPPORTED_MODELS:
        raise LowresError(f"vocabulary extension supports {', '.join(SUPPORTED_MODELS)} tokenizers, not {kind}")
    if script_only is None:
        script_only = _mostly_non_ascii(texts)
    byte_level = "ByteLevel" in json.dumps(base.get("pre_tokenizer"))
    if script_only and script_runs:
        script_range = dominant_script_range(texts)
        if script_range is not None:
            _chunk_script_runs(base, script_range)
    original_size = len(tokenizer)
    if len(base["model"]["vocab"]) != original_size:
        raise LowresError(f"this tokenizer has {original_size - len(base['model']['vocab'])} tokens outside its "
                          "model vocabulary; vocabulary extension needs every token inside it")
    if kind == "BPE":
        added = _extend_bpe(base, texts, num_tokens, min_frequency, script_only, byte_level)
    elif kind == "WordPiece":
        added = _extend_wordpiece(base, texts, num_tokens, min_frequency, script_only)
    else:
        added = _extend_unigram(base, texts, num_tokens, script_only)
    if not added:
        raise LowresError("the training text yields no new tokens (is it in the base tokenizer's script already?)")
    extended = PreTrainedTokenizerFast(tokenizer_object=_tokenizer_from_json(base, original_size + len(added)),
                                       **_special_tokens_of(tokenizer))
    extended.model_max_length = tokenizer.model_max_length
    extended.padding_side = tokenizer.padding_side
    if extended.pad_token is None and extended.eos_token is not None:
        extended.pad_token = extended.eos_token
    return TokenizerExtension(extended, original_size, added)


def _special_tokens_of(tokenizer: Any) -> dict[str, Any]:
    return {key: value for key, value in tokenizer.special_tokens_map.items() if key != "additional_special_tokens"}


def _tokenizer_from_json(base: dict[str, Any], expected_size: int) -> Any:
    """Build the extended backend tokenizer, checking the new ids follow the original ones."""
    backend = Tokenizer.from_str(json.dumps(base))
    if backend.get_vocab_size(with_added_tokens=True) != expected_size:
        raise LowresError("the extended tokenizer's size is inconsistent; please report this")
    return backend


def _extend_bpe(base: dict[str, Any], texts: Sequence[str], num_tokens: int, min_frequency: int,
                script_only: bool, byte_level: bool) -> list[str]:
    """Append the side BPE's merges (in order) that the base lacks; return the new pieces."""
    side = _train_side_tokenizer(base, texts, "BPE", 3 * num_tokens, min_frequency)
    vocab: dict[str, int] = base["model"]["vocab"]
    merges = [_merge_pair(merge) for merge in base["model"]["merges"]]
    known_merges = set(merges)
    next_id = len(vocab)
    added: list[str] = []
    for left, right in (_merge_pair(merge) for merge in side["model"]["merges"]):
        if len(added) >= num_tokens:
            break
        piece = left + right
        if left not in vocab or right not in vocab:
            continue  # built on a piece that was skipped
        if piece not in vocab:
            if script_only and not _piece_bytes_non_ascii(piece, byte_level):
                continue
            vocab[piece] = next_id
            next_id += 1
            added.append(piece)
        if (left, right) not in known_merges:
            merges.append((left, right))
            known_merges.add((left, right))
    base["model"]["merges"] = [list(pair) for pair in merges]
    return added


def _extend_wordpiece(base: dict[str, Any], texts: Sequence[str], num_tokens: int, min_frequency: int,
                      script_only: bool) -> list[str]:
    """Append WordPiece pieces of a side vocabulary trained on ``texts``, most frequent merges first."""
    side = _train_side_tokenizer(base, texts, "WordPiece", len(base["model"]["vocab"]) // 8 + 4 * num_tokens,
                                 min_frequency)
    vocab: dict[str, int] = base["model"]["vocab"]
    next_id = len(vocab)
    added = []
    for piece, _ in sorted(side["model"]["vocab"].items(), key=lambda item: item[1]):
        if len(added) >= num_tokens:
            break
        if piece in vocab or (script_only and not _piece_bytes_non_ascii(piece, False)):
            continue
        vocab[piece] = next_id
        next_id += 1
        added.append(piece)
    return added


def _extend_unigram(base: dict[str, Any], texts: Sequence[str], num_tokens: int, script_only: bool) -> list[str]:
    """Append the best-scoring pieces of a Unigram model trained on ``texts``, with their scores."""
    side = _train_side_tokenizer(base, texts, "Unigram", 4 * num_tokens + 100, 0)
    pieces: list[list[Any]] = base["model"]["vocab"]
    known = {piece for piece, _ in pieces}
    candidates = sorted((item for item in side["model"]["vocab"] if item[0] not in known and item[0] != "<unk>"),
                        key=lambda item: -item[1])
    added = []
    for piece, score in candidates:
        if len(added) >= num_tokens:
            break
        if script_only and not _piece_bytes_non_ascii(piece, False):
            continue
        pieces.append([piece, score])
        added.append(piece)
    return added


def tokens_per_character(tokenizer: Any, texts: Sequence[str]) -> float:
    """Return tokens per character of ``texts`` (no special tokens): the tokenizer's cost on a script."""
    characters = sum(len(text) for text in texts)
    if characters == 0:
        raise LowresError("no text to measure tokens per character on")
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return sum(len(ids) for ids in encoded) / characters


def old_subtoken_ids(base_tokenizer: Any, pieces: Sequence[str]) -> list[list[int]]:
    """Return, for each new piece, the base tokenizer's ids of its sub-tokens (through the BPE /
    WordPiece / Unigram model itself, so byte-level pieces need no decoding)."""
    backend = base_tokenizer.backend_tokenizer
    unk_id = base_tokenizer.unk_token_id
    result = []
    for piece in pieces:
        if piece.startswith("##"):  # a WordPiece continuation: its characters are continuations too
            ids = [backend.token_to_id(token.value) for token in backend.model.tokenize(piece[2:])]
        else:
            ids = [token.id for token in backend.model.tokenize(piece)]
        ids = [i for i in ids if i is not None and i != unk_id] or ([unk_id] if unk_id is not None else [])
        result.append(ids)
    return result


