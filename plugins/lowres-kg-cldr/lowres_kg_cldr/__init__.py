"""Knowledge-graph data sources: CLDR emoji annotations and the Russian part of ConceptNet 5.7."""
