"""Register the ``conceptnet`` and ``conceptnet_edges`` data sources."""

from __future__ import annotations

from typing import Callable

from lowres_adapters.plugin import DataSource, hookimpl
from lowres_kg_conceptnet.assertions import ConceptNetConfig, open_conceptnet, open_conceptnet_edges


@hookimpl
def register_data_sources(register: Callable[[DataSource], None]) -> None:
    """Register the two ConceptNet sources (sentences and edges)."""
    register(DataSource(
        name="conceptnet", config_class=ConceptNetConfig, open=open_conceptnet, yields="text",
        description="ConceptNet 5.x assertions CSV(.gz) as sentences from the relation templates"))
    register(DataSource(
        name="conceptnet_edges", config_class=ConceptNetConfig, open=open_conceptnet_edges, yields="edges",
        description="ConceptNet 5.x assertions CSV(.gz) as edges (4th URI component, no self-loops or URLs)"))
