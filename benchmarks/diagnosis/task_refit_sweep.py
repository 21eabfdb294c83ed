"""Diagnostic: the head refit's settings on the cached frozen features of every training paragraph.

Reads the feature cache ``benchmarks/quality.py --table task --rows probe_refit`` writes (layer
``DECODER_FEATURE_LAYER``, 64 tokens, all 11,960 training paragraphs, the whole test split) and
refits the recipe's head with ``task_scoring.refit_head`` under each setting; prints test macro-F1
(mean ± std over seeds). Usage: ``python benchmarks/diagnosis/task_refit_sweep.py CACHE.pt``.
"""
import statistics
import sys

import torch
from sklearn.metrics import f1_score

from lowres_adapters.training.heads import HeadConfig, TaskHead, balanced_class_weights
from lowres_adapters.training.task_scoring import refit_head

pooled = torch.load(sys.argv[1])
(train_x, train_y), (test_x, test_y) = pooled["train"], pooled["test"]
labels = int(train_y.max()) + 1
weights = balanced_class_weights(train_y.tolist(), labels)
print(f"{len(train_y)} training rows, {len(test_y)} test rows, {labels} labels", flush=True)


def score(steps: int, lr: float, weight_decay: float, layers: int, seed: int) -> float:
    torch.manual_seed(seed)
    head = TaskHead(HeadConfig(num_labels=labels, hidden_size=train_x.shape[1], layers=layers))
    head.normalizer.set_statistics(train_x)
    refit_head(head, train_x, train_y.tolist(), weights, steps, lr=lr, weight_decay=weight_decay)
    head.eval()
    with torch.no_grad():
        predicted = head(test_x.unsqueeze(1), torch.ones(len(test_x), 1, dtype=torch.long)).argmax(-1)
    return 100 * f1_score(test_y.numpy(), predicted.numpy(), average="macro")


print("| steps | lr | weight decay | head layers | macro-F1 (seeds 1-3) |\n|---:|---:|---:|---:|---|")
SETTINGS = [(150, 3e-3, 0.01, 2), (400, 3e-3, 0.01, 2), (400, 1e-3, 0.01, 2), (1000, 1e-3, 0.01, 2),
            (400, 3e-3, 0.1, 2), (400, 3e-3, 0.01, 1)]
for steps, lr, weight_decay, layers in SETTINGS:
    figures = [score(steps, lr, weight_decay, layers, seed) for seed in (1, 2, 3)]
    print(f"| {steps} | {lr:g} | {weight_decay:g} | {layers} | {statistics.mean(figures):.1f} ± "
          f"{statistics.stdev(figures):.1f} |", flush=True)
