"""Built-in data sources (filled in by its module owner)."""
