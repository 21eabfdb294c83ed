"""Built-in alignment losses (filled in by its module owner)."""
