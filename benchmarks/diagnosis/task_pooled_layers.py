"""Diagnostic: pooled frozen features of every dzo ``help_module`` paragraph, layers 0..N at once.

One pass of the base cut after N layers (64 tokens, the recipe's encoding) keeps, for every
layer's output through the body's final norm, the mean and the max over real tokens, for all
11,960 training paragraphs and the whole test split. ``task_head_sweep.py`` then compares heads on
them (which layer, concatenated layers, mean + max) without another forward pass.
Usage: ``python benchmarks/diagnosis/task_pooled_layers.py 6 runs/diagnosis/pooled-6.pt``.
"""
import sys
import time

import torch
from tqdm.auto import tqdm

from lowres_adapters.data.packs import load_pack_data
from lowres_adapters.models import DEFAULT_MODEL, load_base_model
from lowres_adapters.training.heads import keep_layers
from lowres_adapters.training.recipes.task import TaskOptions, evaluation_examples
from lowres_adapters.training.task_features import collate, encode_examples

LAYERS, OUT = int(sys.argv[1]), sys.argv[2]
task = load_pack_data("dzo").tasks["help_module"]
model, tokenizer = load_base_model(DEFAULT_MODEL)
model.eval()
keep_layers(model, LAYERS)
body = model.model


@torch.no_grad()
def pooled(examples: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    encoded = encode_examples("sequence_classification", examples, tokenizer, list(task.labels), 64)
    means, maxes = [], []
    for start in tqdm(range(0, len(encoded), 32), desc="paragraphs x32"):
        batch = collate(encoded[start: start + 32], tokenizer.pad_token_id)
        states = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      output_hidden_states=True).hidden_states
        real = batch["attention_mask"].unsqueeze(-1).bool()
        normed = [body.norm(h) if i < len(states) - 1 else h for i, h in enumerate(states)]
        means.append(torch.stack([(h * real).sum(1) / real.sum(1) for h in normed], 1).half())
        maxes.append(torch.stack([h.masked_fill(~real, -1e4).amax(1) for h in normed], 1).half())
    labels = torch.tensor([item.targets["labels"] for item in encoded])
    return torch.cat(means), torch.cat(maxes), labels


started = time.time()
result = {}
for split, examples in (("test", evaluation_examples(task, TaskOptions())), ("train", list(task.splits["train"]))):
    mean, maximum, labels = pooled(examples)
    result[split] = {"mean": mean, "max": maximum, "labels": labels}
    print(split, len(examples), f"{time.time() - started:.0f} s", flush=True)
torch.save(result, OUT)
