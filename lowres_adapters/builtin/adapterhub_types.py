"""Adapter types wrapping AdapterHub ``adapters`` 1.3: attach, activate, save, load.

Attaching works on an already-loaded transformers model with its LM head (``LlamaForCausalLM``,
``XLMRobertaForMaskedLM``, ``BertForMaskedLM``, ...): the model gets adapter support in place
through ``adapters.init(model)``, so models from :func:`lowres_adapters.models.load_base_model` and
:func:`lowres_adapters.testing.tiny.tiny_model` both work, and several adapters can be attached to
one model. What trains is exactly the parameters the adapter added: unlike
``adapters``' ``train_adapter``, the masked-LM head stays frozen.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from lowres_adapters.adapterhub import (  # noqa: F401 - the handle and helpers, kept importable from here
    AdapterHubAdapter,
    attach_adapterhub,
    ensure_adapter_support,
    save_adapterhub_files,
    set_active_setup,
)
from lowres_adapters.builtin.adapterhub_configs import (
    DoubleSeqBnConfig,
    Ia3Config,
    LoraConfig,
    PrefixTuningConfig,
    SeqBnConfig,
    SeqBnInvConfig,
)
from lowres_adapters.models import is_encoder
from lowres_adapters.specs import AdapterType

LOGGER = logging.getLogger(__name__)


def attach_prefix_tuning(model: Any, name: str, config: PrefixTuningConfig) -> AdapterHubAdapter:
    """Add AdapterHub prefix tuning, switching decoders to eager attention so padded batches see the prefix.

    With transformers 4.57's boolean SDPA masks, ``adapters`` 1.3 masks the prefix out of every
    padded batch on Llama models (the prefix is silently ignored and gets no gradient); the
    eager attention path uses additive masks, which it handles correctly.
    """
    if not is_encoder(model.config) and getattr(model.config, "_attn_implementation", "eager") != "eager":
        LOGGER.warning("prefix_tuning: switching %s to eager attention (adapters ignores the prefix "
                       "under SDPA masks)", type(model).__name__)
        model.set_attn_implementation("eager")
    return attach_adapterhub(model, name, config)


def _spec(name: str, config_class: type, description: str,
          attach: Callable[..., AdapterHubAdapter] = attach_adapterhub) -> AdapterType:
    return AdapterType(name=name, config_class=config_class, attach=attach, description=description)


ADAPTERHUB_TYPES = (
    _spec("seq_bn", SeqBnConfig,
          "Sequential bottleneck adapter after each feed-forward block (AdapterHub seq_bn, rf 16, ReLU)"),
    _spec("double_seq_bn", DoubleSeqBnConfig,
          "Two bottleneck adapters per layer, after attention and feed-forward (AdapterHub double_seq_bn)"),
    _spec("seq_bn_inv", SeqBnInvConfig,
          "seq_bn plus an invertible NICE adapter on the embeddings (MAD-X language adapter)"),
    _spec("lora", LoraConfig, "LoRA on attention query and value (AdapterHub, r=8, alpha=8)"),
    _spec("ia3", Ia3Config, "(IA)^3 scaling vectors on keys, values and feed-forward (AdapterHub ia3)"),
    _spec("prefix_tuning", PrefixTuningConfig,
          "Prefix tuning: 30 trainable key/value positions per layer through an MLP (AdapterHub)",
          attach=attach_prefix_tuning),
)
"""The AdapterHub-backed adapter types, registered by :mod:`lowres_adapters.builtin.adapter_types`."""
