"""Tibetan (bod) language pack for lowres-adapters."""
