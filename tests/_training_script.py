"""A small training run for the subprocess tests (SIGKILL + resume, several processes).

Usage: python _training_script.py RUN_DIR [--steps N] [--save-every N] [--hang-at N] [--resume]
[--accum N] [--objective clm|mlm]. Writes RUN_DIR/weights.safetensors (first process) when done.
With --hang-at N it writes RUN_DIR/hanging after step N and sleeps, waiting to be killed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from safetensors.torch import save_file  # noqa: E402

from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model  # noqa: E402
from lowres_adapters.training.batching import collator_for_objective, tokenize_for_objective  # noqa: E402
from lowres_adapters.training.distributed import current_process  # noqa: E402
from lowres_adapters.training.loop import TrainingJob, select_parameters, train  # noqa: E402
from lowres_adapters.training.objectives import loss_for_objective  # noqa: E402
from lowres_adapters.training.settings import LoopSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--save-every", type=int, default=0)
    parser.add_argument("--hang-at", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--objective", default="clm")
    args = parser.parse_args()

    process = current_process()
    model, tokenizer = tiny_model("llama" if args.objective == "clm" else "xlmr")
    features = tokenize_for_objective(args.objective, tokenizer, list(TINY_CORPUS) * 4, 64)
    parameters = select_parameters(model, ["*q_proj*", "*down_proj*"] if args.objective == "clm"
                                   else ["*attention.self.query*", "*output.dense*"])
    job = TrainingJob(model=model, parameters=parameters, train_features=features,
                      collate=collator_for_objective(args.objective, tokenizer),
                      loss_fn=loss_for_objective(args.objective), eval_features=features[:6])
    settings = LoopSettings(max_steps=args.steps, lr=1e-2, batch_size=8, grad_accum_steps=args.accum,
                            save_every=args.save_every, keep_checkpoints=2, eval_every=4, progress=False,
                            warmup_steps=2)

    def hang(report) -> None:
        if args.hang_at and report.step == args.hang_at:
            (args.run_dir / "hanging").write_text(str(report.step))
            time.sleep(300)

    train(job, settings, args.run_dir, resume=args.resume, callbacks=[hang], process=process)
    if process.is_main:
        save_file({name: p.detach().contiguous() for name, p in parameters.items()},
                  str(args.run_dir / "weights.safetensors"))


if __name__ == "__main__":
    main()
