"""Compare a run's logits through `load`, its `lowres merge` folder and its `lowres export` GGUF files.

Usage (after `lowres merge RUN MERGED` and `lowres export RUN --format gguf [--dtype f32] GGUF_DIR/NAME-DTYPE.gguf`):

    python scripts/merge_export_check.py RUN MERGED GGUF_DIR NAME TEXTS.jsonl --field nya --count 8

Prints one JSON line: texts and tokens scored, max abs logit difference (merged vs `load`, each GGUF
vs merged) and the share of positions whose top-1 token agrees. docs/hub.md quotes its output.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from lowres_adapters import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("merged")
    parser.add_argument("gguf_dir")
    parser.add_argument("name", help="GGUF files are NAME-f32.gguf and NAME-f16.gguf")
    parser.add_argument("texts", help="JSONL file of texts")
    parser.add_argument("--field", default="text")
    parser.add_argument("--count", type=int, default=8, help="the last COUNT lines are scored")
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    with open(args.texts, encoding="utf-8") as stream:
        texts = [json.loads(line)[args.field] for line in stream if line.strip()][-args.count:]
    model, tokenizer = load(args.run)
    merged = AutoModelForCausalLM.from_pretrained(args.merged).eval()
    ggufs = {dtype: AutoModelForCausalLM.from_pretrained(args.gguf_dir, gguf_file=f"{args.name}-{dtype}.gguf").eval()
             for dtype in ("f32", "f16")}
    worst = dict.fromkeys(("merged", *ggufs), 0.0)
    agree = dict.fromkeys(worst, 0)
    tokens = 0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=args.max_length).input_ids
            reference = model(input_ids=ids).logits  # (1, seq, vocab)
            outputs = {"merged": (merged(input_ids=ids).logits, reference)}
            outputs.update({dtype: (gguf(input_ids=ids).logits, outputs["merged"][0]) for dtype, gguf in ggufs.items()})
            for key, (logits, against) in outputs.items():
                worst[key] = max(worst[key], (logits - against).abs().max().item())
                agree[key] += int((logits.argmax(-1) == against.argmax(-1)).sum())
            tokens += ids.shape[1]
    print(json.dumps({"texts": len(texts), "tokens": tokens, "max_abs": worst,
                      "top1_agree": {key: value / tokens for key, value in agree.items()}}))


if __name__ == "__main__":
    main()
