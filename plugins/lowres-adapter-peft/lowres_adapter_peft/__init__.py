"""PEFT methods as lowres-adapters adapter types: ``peft_lora``, ``peft_ia3``, ``peft_vera``, ``peft_loha``, ``peft_lokr``."""

__version__ = "0.1.0"
