"""PEFT methods as lowres-adapters adapter types.

Registers ``peft_lora``, ``peft_ia3``, ``peft_vera``, ``peft_loha`` and ``peft_lokr`` through the
``lowres_adapters`` entry point (see :mod:`lowres_adapter_peft.plugin`).
"""

__version__ = "0.1.0"
