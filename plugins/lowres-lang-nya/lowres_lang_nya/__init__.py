"""Chichewa (nya) language pack for lowres-adapters."""
