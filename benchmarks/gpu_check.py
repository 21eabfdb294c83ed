"""A GPU check anyone can run: ``make gpu-check`` or ``python benchmarks/gpu_check.py``.

On a CUDA machine it adapts SmolLM2-135M (the embedded default) to Chichewa for a few steps:

1. on the GPU in fp32 and in bf16 (fp16 where the GPU has no bf16), asserting that the model and
   every batch are on the GPU, and that the bf16/fp16 run loaded its base in that dtype;
2. on the CPU in fp32, and compares the GPU fp32 training loss with it (``--tolerance``, default
   relative 1e-3: the GPU's matmuls sum in another order, TF32 is off);
3. a PEFT LoRA (r=16, q/v) with a plain torch loop on the same GPU and text, as the baseline;

and prints one table (device, precision, loss, tokens/s). Without CUDA it says so and exits 0.

Usage::

    .venv/bin/python benchmarks/gpu_check.py [--steps 5] [--tolerance 1e-3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def cuda_available() -> bool:
    """Return whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def adapt_on(device: str, precision: str, steps: int, out: Path) -> dict[str, Any]:
    """Adapt on ``device`` in ``precision``; return the last training loss, tokens/s, where the
    model and batches were (every batch's device is recorded) and the dtype the base loaded in."""
    from lowres_adapters import adapt
    from lowres_adapters.training import adapt as adapt_module
    from lowres_adapters.training import loop

    seen: set[str] = set()
    original = loop.to_device

    def recording(batch: Any, target: Any) -> Any:
        moved = original(batch, target)
        seen.update(str(v.device.type) for v in moved.values() if hasattr(v, "device"))
        return moved

    dtypes: list[str] = []
    load = adapt_module.load_base_model

    def recording_load(*args: Any, **kwargs: Any) -> Any:
        model, tokenizer = load(*args, **kwargs)
        dtypes.append(str(next(model.parameters()).dtype).removeprefix("torch."))
        return model, tokenizer

    loop.to_device, adapt_module.load_base_model = recording, recording_load
    try:
        adapt("nya", output=str(out), max_steps=steps, progress=False,
              loop={"device": device, "precision": precision, "save_every": 0}, data={"eval_examples": 20})
    finally:
        loop.to_device, adapt_module.load_base_model = original, load
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("event") == "train"]
    return {"device": device, "precision": precision, "loss": train[-1]["loss"],
            "tokens_per_s": train[-1]["tokens_per_s"], "batch_devices": sorted(seen), "base_dtype": dtypes[0]}


def peft_plain_loop(steps: int, batch_size: int = 8, max_length: int = 128) -> dict[str, Any]:
    """PEFT LoRA r=16 on q/v with a plain fp32 torch loop on the GPU: the baseline's tokens/s."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lowres_adapters.data.packs import load_pack_data
    from lowres_adapters.models import load_base_model

    model, tokenizer = load_base_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"])).cuda()
    texts = [e.text for e in load_pack_data("nya").text["train"] if e.text.strip()][: steps * batch_size]
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    tokens, started = 0, None
    for step in range(steps):
        encoded = tokenizer(texts[step * batch_size: (step + 1) * batch_size], return_tensors="pt",
                            padding=True, truncation=True, max_length=max_length).to("cuda")
        labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
        loss = model(**encoded, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        torch.cuda.synchronize()
        if step == 0:  # the first step warms the kernels up; time the rest
            started = time.perf_counter()
        else:
            tokens += int(encoded["attention_mask"].sum())
    seconds = time.perf_counter() - started if started else float("nan")
    return {"device": "cuda", "precision": "fp32 (PEFT + plain loop)", "loss": float(loss),
            "tokens_per_s": round(tokens / seconds, 1) if steps > 1 else float("nan"), "batch_devices": ["cuda"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="optimiser steps per run")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="relative fp32 loss difference GPU vs CPU")
    args = parser.parse_args(argv)
    if not cuda_available():
        print("gpu-check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check")
        return 0
    import torch

    from lowres_adapters.devices import choose_precision

    torch.backends.cuda.matmul.allow_tf32 = False
    low = choose_precision("auto", torch.device("cuda", 0))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for device, precision in (("cuda", "fp32"), ("cuda", low), ("cpu", "fp32")):
            rows.append(adapt_on(device, precision, args.steps, Path(folder) / f"{device}-{precision}"))
    rows.append(peft_plain_loop(args.steps))
    print(f"{'device':8} {'precision':28} {'last loss':>10} {'tokens/s':>10}  {'base in':8}  batches on")
    for row in rows:
        print(f"{row['device']:8} {row['precision']:28} {row['loss']:10.4f} {row['tokens_per_s']:10.1f}  "
              f"{row.get('base_dtype', '-'):8}  {','.join(row['batch_devices'])}")
    problems = [f"{r['device']} {r['precision']}: batches on {r['batch_devices']}" for r in rows[:2]
                if r["batch_devices"] != ["cuda"]]
    expected = {"bf16": "bfloat16", "fp16": "float16"}[low]
    if rows[1].get("base_dtype", expected) != expected:
        problems.append(f"cuda {low}: the base loaded in {rows[1]['base_dtype']}, not {expected}")
    gpu, cpu = rows[0]["loss"], rows[2]["loss"]
    if abs(gpu - cpu) > args.tolerance * abs(cpu):
        problems.append(f"fp32 loss on the GPU {gpu:.6f} vs CPU {cpu:.6f}: beyond relative {args.tolerance}")
    for problem in problems:
        print(f"gpu-check FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
