"""``lowres publish`` and ``lowres load``: the Hub from the shell."""

from __future__ import annotations

from pathlib import Path

import click

from lowres_adapters.errors import LowresError
from lowres_adapters.models import objective_facts


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("repo_id", metavar="OWNER/NAME")
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option("--revision", metavar="BRANCH", default=None, help="Commit to this branch (created if missing).")
@click.option("--message", "commit_message", default=None, help="Commit title.")
def publish(run_dir: Path, repo_id: str, private: bool, revision: str | None, commit_message: str | None) -> None:
    """Publish a run folder's adapter to the Hugging Face Hub as one commit.

    Uses HF_TOKEN (or the token saved by `hf auth login`) and HF_ENDPOINT.
    """
    # lazy: hub imports torch
    from lowres_adapters.hub import publish as publish_run

    info = publish_run(run_dir, repo_id, private=private, revision=revision, commit_message=commit_message)
    click.echo(f"published {repo_id}@{info.oid}")
    click.echo(f"  {info.commit_url}")
    click.echo(f'  load it: from lowres_adapters import load; model, tokenizer = load("{repo_id}", revision="{info.oid}")')


@click.command()
@click.argument("repo_or_path", metavar="OWNER/NAME|FOLDER")
@click.option("--revision", default=None, help="Branch, tag or commit to load.")
@click.option("--model", "base_model", default=None, help="Base model id or folder to use instead of the recorded one.")
@click.option("--prompt", default=None, help="Text to continue with the adapted model.")
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=40, show_default=True)
@click.option("--allow-pickle", is_flag=True, help="Allow a base model stored as pickled .bin files.")
def load(repo_or_path: str, revision: str | None, base_model: str | None, prompt: str | None,
         max_new_tokens: int, allow_pickle: bool) -> None:
    """Load a published adapter onto its base model; with --prompt, continue a text with it."""
    # lazy: hub imports torch
    from lowres_adapters.hub import load_adapter

    loaded = load_adapter(repo_or_path, revision=revision, model=base_model, allow_pickle=allow_pickle)
    metadata = loaded.metadata
    if hasattr(loaded.model, "labels"):  # a task run: the model is a TaskModel
        labels = ", ".join(getattr(loaded.model, "labels", ()))
        click.echo(f"{metadata.adapter_type} task adapter '{metadata.adapter_name}' for {metadata.language or '?'} "
                   f"on {base_model or metadata.base_model} (labels: {labels})", err=prompt is not None)
    else:
        trainable = sum(tensor.numel() for tensor in loaded.handle.adapter_state_dict().values())
        click.echo(f"{metadata.adapter_type} adapter '{metadata.adapter_name}' for {metadata.language or '?'} "
                   f"on {base_model or metadata.base_model} ({trainable:,} adapter parameters)", err=prompt is not None)
    if prompt is None:
        return
    click.echo(generate(loaded.model, loaded.tokenizer, prompt, max_new_tokens, metadata.objective))


def generate(model: object, tokenizer: object, prompt: str, max_new_tokens: int, objective: str) -> str:
    """Return ``prompt`` continued greedily by ``model`` (causal LMs only)."""
    # lazy: imports torch
    import torch

    if objective_facts(objective).masked or not hasattr(model, "generate"):
        raise LowresError("--prompt needs a causal language model; this adapter is for a masked LM")
    encoded = tokenizer(prompt, return_tensors="pt")
    input_ids = encoded["input_ids"]  # (1, prompt_len)
    with torch.no_grad():
        output = model.generate(input_ids=input_ids, attention_mask=encoded["attention_mask"],
                                max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)  # (1, prompt_len + new)
    return prompt + tokenizer.decode(output[0, input_ids.shape[1]:], skip_special_tokens=True)
