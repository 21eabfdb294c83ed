"""Prompt + alignment transfer to Chichewa in the few-label regime, from Python.

A soft prompt (10 vectors) on the frozen SmolLM2-135M learns from N English-Chichewa verse pairs
with ``loss = CLM on the Chichewa verse + lambda * (1 - cos(student, teacher))``, where the teacher
is the same model without the prompt reading the English verse. Prints, before and after, the
held-out New Testament bits per character and the held-out alignment (mean cosine and top-1
retrieval of the English verse among the held-out pairs). Equivalent command::

    lowres adapt nya --recipe prompt-align --max-examples 100 --set recipe_options.align_weight=1.0

Run ``lowres data fetch nya`` once first, then::

    python examples/prompt_align.py                          # 40 steps on the real model
    python examples/prompt_align.py --align-loss infonce --max-examples 10 --seeds 1,2,3

Your own data (any ISO 639-3 code, TSV ``english<TAB>target``)::

    python examples/prompt_align.py --language tum --pairs train.tsv --eval-pairs test.tsv
"""

from __future__ import annotations

import argparse

from lowres_adapters import adapt


def main(argv: list[str] | None = None) -> dict:
    """Run the prompt + alignment recipe and print base vs adapted figures; return the metrics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", default="nya", help="ISO 639-3 code of the target language")
    parser.add_argument("--model", default=None, help="base model id or folder (default: the pack's)")
    parser.add_argument("--pairs", default=None, help="training pairs TSV (default: the pack's)")
    parser.add_argument("--eval-pairs", default=None, help="held-out pairs TSV (default: the pack's)")
    parser.add_argument("--align-loss", default="cosine", help="mse, cosine, kl, infonce or a plugin's loss")
    parser.add_argument("--align-weight", type=float, default=1.0, help="lambda")
    parser.add_argument("--max-examples", type=int, default=100, help="labelled pairs used (few-label regime)")
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--eval-examples", type=int, default=100, help="held-out texts and pairs scored")
    parser.add_argument("--seeds", default="", help="e.g. 1,2,3: one run per seed, mean ± std (stability)")
    parser.add_argument("--output", default="runs/prompt-align-nya")
    args = parser.parse_args(argv)

    settings = dict(recipe="prompt_align", model=args.model, pairs=args.pairs, eval_pairs=args.eval_pairs,
                    max_train_examples=args.max_examples, max_steps=args.max_steps,
                    eval_examples=args.eval_examples, output=args.output,
                    recipe_options={"align_loss": args.align_loss, "align_weight": args.align_weight,
                                    "eval_pairs": args.eval_examples})
    figures = ("bits_per_char", "align_cosine", "align_retrieval_top1", f"align_loss_{args.align_loss}")
    if args.seeds:
        from lowres_adapters.training.stability import adapt_seeds

        summary = adapt_seeds(args.language, [int(seed) for seed in args.seeds.split(",")], **settings).to_json()
        for key in figures:
            if key in summary["adapted"]:
                stats = summary["adapted"][key]
                print(f"{key:>22}: {summary['base'][key]:.4f} -> {stats['mean']:.4f} ± {stats['std']:.4f} "
                      f"(n={stats['n']})")
        return summary
    result = adapt(args.language, **settings)
    base, adapted = result.metrics["base"], result.metrics["adapted"]
    for key in figures:
        if key in base and key in adapted:
            print(f"{key:>22}: {base[key]:.4f} -> {adapted[key]:.4f}")
    print(f"run folder: {result.run_dir}")
    return result.metrics


if __name__ == "__main__":
    main()
