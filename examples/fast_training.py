"""Train a language adapter with the loop's speed options, and check they give the plain loss.

Runs in seconds on a tiny random Llama (SmolLM2's architecture). On the real model the same
settings are ``lowres adapt nya --set loop.packing=true ...`` or, in a config file::

    [loop]
    packing = true
    masked_only_logits = true
    vocab_trim = true
    token_cache = true

Usage: ``python examples/fast_training.py``
"""

from __future__ import annotations

import torch

from lowres_adapters.testing.tiny import TINY_CORPUS, tiny_model
from lowres_adapters.training.lm_objectives import CAUSAL_LM
from lowres_adapters.training.loop import TrainingJob, train
from lowres_adapters.training.settings import LoopSettings
from lowres_adapters.training.speed import SpeedOptions, speed_up_job


def main() -> dict[str, float]:
    """Compare the plain and the optimised job on the same data, then train the optimised one."""
    torch.manual_seed(0)
    model, tokenizer = tiny_model("llama")
    features = CAUSAL_LM.tokenize(tokenizer, list(TINY_CORPUS) * 4, 128)
    plain = TrainingJob(model=model, parameters=dict(model.named_parameters()), train_features=features,
                        collate=CAUSAL_LM.collator(tokenizer), loss_fn=CAUSAL_LM.loss)
    fast = speed_up_job(plain, SpeedOptions.fast(vocab_trim=False, token_cache=False), objective=CAUSAL_LM,
                        tokenizer=tokenizer, row_length=128)
    print(f"{len(plain.train_features)} examples packed into {len(fast.train_features)} rows of 128 tokens")

    # The same examples give the same token-weighted loss, packed or not.
    with torch.no_grad():
        plain_loss, plain_count = plain.loss_fn(model, plain.collate(plain.train_features, torch.Generator()))
        fast_loss, fast_count = fast.loss_fn(model, fast.collate(fast.train_features, torch.Generator()))
    print(f"plain loss {float(plain_loss):.5f} over {plain_count} tokens; "
          f"packed + masked-only {float(fast_loss):.5f} over {fast_count} tokens")

    trimmed = speed_up_job(plain, SpeedOptions.fast(token_cache=False), objective=CAUSAL_LM, tokenizer=tokenizer,
                           row_length=128)
    print(f"vocabulary trimmed to {trimmed.loss_fn.trim.size} of {model.config.vocab_size} ids")
    result = train(trimmed, LoopSettings(max_steps=10, batch_size=2, lr=1e-2, schedule="constant", progress=False))
    print(f"10 steps: final loss {result.final_loss:.3f}, {result.tokens_per_second:.0f} real tokens/s")
    return {"plain_loss": float(plain_loss), "fast_loss": float(fast_loss), "final_loss": result.final_loss}


if __name__ == "__main__":
    main()
