"""Built-in adapter types (filled in by its module owner)."""
