"""Diagnostic: which pooled features the recipe's refitted head should read (dzo ``help_module``).

Reads the cache of ``task_pooled_layers.py`` (mean and max over real tokens of every layer's normed
output, all training paragraphs, the whole test split) and refits the recipe's head
(``task_scoring.refit_head``: 2 layers, balanced loss, full batch) on each feature set; prints test
macro-F1, mean ± std over seeds 1-3. Usage: ``python benchmarks/diagnosis/task_head_sweep.py CACHE.pt [SPEC ...]``
where SPEC is e.g. ``mean4`` or ``mean2+mean4+max4`` (default: a fixed list), optionally followed by
``@STEPS@LR`` (refit steps and learning rate) and ``/MEMBERSxWIDTH`` (``HeadConfig.members`` and
``member_size``), e.g. ``mean4@150@0.003/3x192``.
"""
import statistics
import sys

import torch
from sklearn.metrics import f1_score

from lowres_adapters.training.heads import HeadConfig, TaskHead, balanced_class_weights
from lowres_adapters.training.task_scoring import refit_head

cache = torch.load(sys.argv[1])
SPECS = sys.argv[2:] or ["mean4", "mean3", "mean5", "mean6", "max4", "mean4+max4", "mean2+mean4",
                         "mean0+mean2+mean4", "mean1+mean2+mean3+mean4", "mean4+mean6"]


def rows(split: str, spec: str) -> torch.Tensor:
    parts = []
    for part in spec.split("+"):
        pooling = part.rstrip("0123456789")
        parts.append(cache[split][pooling][:, int(part[len(pooling):])].float())
    return torch.cat(parts, 1)


train_y, test_y = cache["train"]["labels"], cache["test"]["labels"]
labels = int(train_y.max()) + 1
weights = balanced_class_weights(train_y.tolist(), labels)


def logits(spec: str, seed: int, steps: int, lr: float, members: int, width: int | None) -> torch.Tensor:
    train_x, test_x = rows("train", spec), rows("test", spec)
    torch.manual_seed(seed)
    head = TaskHead(HeadConfig(num_labels=labels, hidden_size=train_x.shape[1], members=members, member_size=width))
    head.normalizer.set_statistics(train_x)
    refit_head(head, train_x, train_y.tolist(), weights, steps, lr=lr)
    head.eval()
    with torch.no_grad():
        return head(test_x.unsqueeze(1), torch.ones(len(test_x), 1, dtype=torch.long))


def f1(predicted: torch.Tensor) -> float:
    return 100 * f1_score(test_y.numpy(), predicted.numpy(), average="macro")


print(f"{len(train_y)} training rows, {len(test_y)} test rows, {labels} labels", flush=True)
print("| features | steps | lr | members x width | macro-F1 seeds 1-3 | mean ± std | ensemble of the 3 |\n"
      "|---|---:|---:|---|---|---|---:|")
for spec in SPECS:
    steps, lr, members, width = 150, 3e-3, 1, None
    if "/" in spec:
        spec, shape = spec.split("/")
        members, width = int(shape.split("x")[0]), int(shape.split("x")[1]) if "x" in shape else None
    if "@" in spec:
        spec, steps, lr = spec.split("@")[0], int(spec.split("@")[1]), float(spec.split("@")[2])
    outs = [logits(spec, seed, steps, lr, members, width) for seed in (1, 2, 3)]
    figures = [f1(out.argmax(-1)) for out in outs]
    ensemble = f1(torch.stack([out.softmax(-1) for out in outs]).mean(0).argmax(-1))
    shape = f"{members} x {width or rows('test', spec).shape[1]}"
    print(f"| {spec} | {steps} | {lr:g} | {shape} | {', '.join(f'{x:.1f}' for x in figures)} | "
          f"{statistics.mean(figures):.1f} ± {statistics.stdev(figures):.1f} | {ensemble:.1f} |", flush=True)
