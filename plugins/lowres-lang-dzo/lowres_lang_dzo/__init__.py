"""Dzongkha (dzo) language pack for lowres-adapters."""
