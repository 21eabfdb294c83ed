"""A small training run for the subprocess tests (SIGKILL + resume, several processes).

Importable (``run_training``) for the in-process reference runs, and a script for the subprocesses.
Usage: python _training_script.py RUN_DIR [--steps N] [--save-every N] [--hang-at N] [--resume]
[--accum N] [--objective clm|mlm] [--dropout P] [--crash-at N] [--hang-in-checkpoint N] [--gradients].
Writes RUN_DIR/weights.safetensors (first process) when done. With --hang-at N it writes
RUN_DIR/hanging after step N and sleeps, waiting to be killed; with --hang-in-checkpoint N it does
so in the middle of writing step N's checkpoint (after the tensors, before ``state.json`` and the
rename). With --crash-at N every process raises KeyboardInterrupt after step N. With --gradients
it only computes the first step's gradients (:func:`first_step_gradients`) and writes them and the
step's global figures to RUN_DIR/gradients.safetensors.

Dropout (``--dropout``) draws from the global torch RNG, so only a run that restores the RNG state
from its checkpoint resumes to the uninterrupted weights. 24 examples in global batches of 8 make
an epoch of 3 steps: epochs are reshuffled, and a checkpoint every 4 steps lands mid-epoch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model
from lowres_adapters.training.checkpoint import LoopState
from lowres_adapters.training.distributed import DataParallel, current_process
from lowres_adapters.training.loop import TrainingJob, _accumulate_gradients, _Order, select_parameters, train
from lowres_adapters.training.lm_objectives import objective_named
from lowres_adapters.training.settings import LoopSettings


def run_training(run_dir: Path, steps: int = 12, save_every: int = 0, hang_at: int = 0, resume: bool = False,
                 accum: int = 1, objective: str = "clm", dropout: float = 0.0, crash_at: int = 0,
                 hang_in_checkpoint: int = 0) -> dict[str, torch.Tensor]:
    """Train the tiny model's attention/MLP projections and return the trained tensors."""
    process = current_process()
    if objective == "clm":
        model, tokenizer = tiny_model("llama", attention_dropout=dropout)
    else:
        model, tokenizer = tiny_model("xlmr", hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if hang_in_checkpoint:
        _hang_while_writing_checkpoint(run_dir, hang_in_checkpoint)
    features = objective_named(objective).tokenize(tokenizer, list(TINY_CORPUS) * 4, 64)
    parameters = select_parameters(model, ["*q_proj*", "*down_proj*"] if objective == "clm"
                                   else ["*attention.self.query*", "*output.dense*"])
    job = TrainingJob(model=model, parameters=parameters, train_features=features,
                      collate=objective_named(objective).collator(tokenizer),
                      loss_fn=objective_named(objective).loss, eval_features=features[:6])
    settings = LoopSettings(max_steps=steps, lr=1e-2, batch_size=8, grad_accum_steps=accum,
                            save_every=save_every, keep_checkpoints=2, eval_every=4, progress=False,
                            warmup_steps=2)

    def hang(report) -> None:
        if hang_at and report.step == hang_at:
            (run_dir / "hanging").write_text(str(report.step))
            time.sleep(300)
        if crash_at and report.step == crash_at:
            raise KeyboardInterrupt

    train(job, settings, run_dir, resume=resume, callbacks=[hang], process=process)
    tensors = {name: p.detach().contiguous().clone() for name, p in parameters.items()}
    if process.is_main:
        save_file(tensors, str(run_dir / "weights.safetensors"))
    return tensors


def first_step_gradients(run_dir: Path, accum: int = 1) -> dict[str, torch.Tensor]:
    """Return the trained parameters' gradients after the first step's micro-batches, turned into the
    token-weighted mean of the global batch of 8, with ``totals`` (the step's global loss sum,
    predicted and input tokens) and ``ddp`` (1.0 when the model was wrapped in DDP)."""
    process = current_process()
    model, tokenizer = tiny_model("llama")
    objective = objective_named("clm")
    features = objective.tokenize(tokenizer, list(TINY_CORPUS) * 4, 64)
    parameters = select_parameters(model, ["*q_proj*", "*down_proj*"])
    job = TrainingJob(model=model, parameters=parameters, train_features=features,
                      collate=objective.collator(tokenizer), loss_fn=objective.loss)
    settings = LoopSettings(max_steps=1, batch_size=8, grad_accum_steps=accum, progress=False)
    names = sorted(parameters)
    trained = {id(p) for p in parameters.values()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in trained)
    optimizer = torch.optim.SGD([parameters[n] for n in names], lr=0.0)
    replicas = DataParallel.build(model, job.loss_fn, optimizer, [parameters[n] for n in names], process,
                                  torch.device("cpu"))
    indices = _Order(len(features), settings.seed).next_batch(LoopState(), settings.batch_size)
    micro = settings.batch_size // (accum * process.world_size)
    totals = process.total(_accumulate_gradients(job, replicas, settings, process, 0, indices, micro))
    replicas.mean_gradients_(float(totals[1]))
    tensors = {name: parameters[name].grad.detach().clone() for name in names}
    tensors["totals"] = totals
    tensors["ddp"] = torch.tensor(float(isinstance(replicas.wrapped, torch.nn.parallel.DistributedDataParallel)))
    if process.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(run_dir / "gradients.safetensors"))
    return tensors


def _hang_while_writing_checkpoint(run_dir: Path, step: int) -> None:
    """Make the checkpoint writer of step ``step`` stop for good just before ``state.json``."""
    from lowres_adapters.training import checkpoint

    write = checkpoint.atomic_write_text

    def write_or_hang(path: Path, text: str) -> None:
        if Path(path).name == "state.json" and Path(path).parent.name == f".tmp-step-{step}":
            (run_dir / "hanging").write_text(str(step))
            time.sleep(300)
        write(path, text)

    checkpoint.atomic_write_text = write_or_hang


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--save-every", type=int, default=0)
    parser.add_argument("--hang-at", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--objective", default="clm")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--crash-at", type=int, default=0)
    parser.add_argument("--hang-in-checkpoint", type=int, default=0)
    parser.add_argument("--gradients", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.gradients:
        first_step_gradients(args.run_dir, args.accum)
        return
    run_training(args.run_dir, args.steps, args.save_every, args.hang_at, args.resume, args.accum, args.objective,
                 args.dropout, args.crash_at, args.hang_in_checkpoint)


if __name__ == "__main__":
    main()
