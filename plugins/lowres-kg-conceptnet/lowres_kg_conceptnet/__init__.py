"""ConceptNet 5.x assertions as lowres-adapters data sources (``conceptnet_edges``, ``conceptnet``)."""
