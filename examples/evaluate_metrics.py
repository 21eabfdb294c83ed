"""Every evaluation metric of lowres-adapters as a library call, on small fixed inputs.

Run: python examples/evaluate_metrics.py   (offline, a few seconds on CPU)
"""

from __future__ import annotations

from lowres_adapters.evaluation.classification import classification_scores, entity_scores
from lowres_adapters.evaluation.language_modeling import score_texts
from lowres_adapters.evaluation.qa import qa_scores
from lowres_adapters.evaluation.stats import mean_std
from lowres_adapters.evaluation.translation import score_translations
from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model


def main() -> dict[str, object]:
    """Compute each metric once, print it and return the figures."""
    figures: dict[str, object] = {}

    # Language modelling: bits per character do not depend on the tokenizer or the batch size.
    model, tokenizer = tiny_model("llama")
    scores = score_texts(model, tokenizer, list(TINY_CORPUS), batch_size=4)
    print(f"causal LM: {scores.bits_per_char:.3f} bits/char, perplexity {scores.perplexity:.1f} "
          f"over {scores.tokens} tokens")
    figures["bits_per_char"] = scores.bits_per_char

    # Masked LM: pseudo-perplexity (each token masked in turn, batched).
    masked_model, masked_tokenizer = tiny_model("xlmr")
    masked = score_texts(masked_model, masked_tokenizer, list(TINY_CORPUS[:2]), objective="mlm")
    print(f"masked LM: pseudo-perplexity {masked.pseudo_perplexity:.1f}")
    figures["pseudo_perplexity"] = masked.pseudo_perplexity

    # Translation: sacrebleu BLEU, chrF and chrF++ with their signatures.
    translation = score_translations(["Mulungu ndiye kuwala."], ["Mulungu ndiye kuwala, mwa iye mulibe mdima."])
    print(f"translation: BLEU {translation.bleu:.1f}, chrF {translation.chrf:.1f}, chrF++ {translation.chrf_pp:.1f}")
    print(f"  chrF++ signature: {translation.chrf_pp_signature}")
    figures["chrf_pp"] = translation.chrf_pp

    # Classification (accuracy, macro-F1) and NER (seqeval entity F1).
    classes = classification_scores(["health", "sports", "sports"], ["health", "sports", "politics"])
    entities = entity_scores([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "B-ORG"]])
    print(f"classification: accuracy {classes['accuracy']:.1f}, macro-F1 {classes['macro_f1']:.1f}; "
          f"NER entity F1 {entities['entity_f1']:.1f}")
    figures.update(macro_f1=classes["macro_f1"], entity_f1=entities["entity_f1"])

    # Extractive QA: SQuAD exact match and token F1.
    qa = qa_scores(["the Zambezi river"], [["Zambezi", "the Zambezi River"]])
    print(f"QA: exact match {qa['exact_match']:.0f}, F1 {qa['f1']:.0f}")
    figures["qa_f1"] = qa["f1"]

    # Stability over seeds: mean ± sample standard deviation.
    over_seeds = mean_std([71.2, 70.4, 72.9])
    print(f"macro-F1 over 3 seeds: {over_seeds}")
    figures["seed_std"] = over_seeds.std
    return figures


if __name__ == "__main__":
    main()
