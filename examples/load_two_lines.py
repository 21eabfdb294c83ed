"""Load a published adapter in two lines and continue a text with it.

The two lines are::

    from lowres_adapters import load
    model, tokenizer = load("owner/name")

Usage::

    python examples/load_two_lines.py OWNER/NAME --prompt "Pachiyambi Mulungu"
    python examples/load_two_lines.py --demo     # publishes a tiny LoRA adapter to a loopback Hub first

``--demo`` needs no network: it starts the project's loopback Hub on 127.0.0.1, publishes a LoRA
adapter on a tiny random Llama (so the output is gibberish, but real bytes went up and came back),
then loads it exactly as a downstream user would.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

DEMO_REPO = "alice/tiny-lora-demo"


def publish_demo_adapter() -> str:
    """Start a loopback Hub, publish a tiny LoRA adapter to it and return the repo id."""
    from lowres_adapters.testing.hub import start_session_hub

    workdir = Path(tempfile.mkdtemp(prefix="lowres-demo-"))
    loopback = start_session_hub(workdir / "hub")
    # huggingface_hub reads these once, when first imported: set them before anything imports it.
    os.environ.update(HF_ENDPOINT=loopback.url, HF_HOME=str(workdir / "hf-home"), HF_HUB_DISABLE_XET="1",
                      HF_HUB_OFFLINE="0", HF_TOKEN="hf_loopback_alice_token", NO_PROXY="127.0.0.1")

    import torch

    from lowres_adapters import get_registry, publish
    from lowres_adapters.artifact import ArtifactMetadata, describe_config, write_artifact
    from lowres_adapters.testing.tiny import tiny_model

    model, tokenizer = tiny_model("llama")
    base_dir = workdir / "tiny-base"
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    from huggingface_hub import HfApi

    base_repo = "alice/tiny-llama-base"  # a downloaded adapter may name a Hub id as its base, never a local path
    HfApi().create_repo(base_repo, exist_ok=True)
    HfApi().upload_folder(repo_id=base_repo, folder_path=str(base_dir))
    spec = get_registry().adapter_type("lora")
    handle = spec.attach(model, "nya", spec.config_class())
    with torch.no_grad():  # a freshly initialised LoRA is a no-op; give it weights that act
        for parameter in handle.trainable_parameters().values():
            parameter.normal_(0.0, 0.5)
    described = describe_config(spec, handle.config)
    metadata = ArtifactMetadata(adapter_type="lora", adapter_name="nya", adapter_config=described["config"],
                                plugin=described["plugin"], base_model=base_repo, language="nya",
                                script="Latn", recipe="language")
    write_artifact(workdir / "run", handle, metadata)
    info = publish(workdir / "run", DEMO_REPO)
    print(f"published {DEMO_REPO}@{info.oid[:10]} to the loopback Hub at {loopback.url}")
    return DEMO_REPO


def main() -> None:
    """Load the adapter (publishing the demo one first with --demo) and print a continuation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", nargs="?", help="OWNER/NAME on the Hub, or a run folder")
    parser.add_argument("--demo", action="store_true", help="publish a tiny adapter to a loopback Hub first")
    parser.add_argument("--prompt", default="Pachiyambi Mulungu")
    parser.add_argument("--max-new-tokens", type=int, default=12)
    args = parser.parse_args()
    if not args.demo and not args.repo:
        parser.error("give OWNER/NAME (or --demo)")
    repo = publish_demo_adapter() if args.demo else args.repo

    from lowres_adapters import load
    model, tokenizer = load(repo)

    encoded = tokenizer(args.prompt, return_tensors="pt")
    output = model.generate(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                            max_new_tokens=args.max_new_tokens, do_sample=False,
                            pad_token_id=tokenizer.pad_token_id)  # (1, prompt + new tokens)
    print(f"loaded {repo}: {type(model).__name__}")
    print(tokenizer.decode(output[0], skip_special_tokens=True))


if __name__ == "__main__":
    main()
