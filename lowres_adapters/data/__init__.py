"""Corpora, parallel text and knowledge graphs -> examples; language-pack fetching and splits.

Modules: ``examples`` (example types), ``files`` (line reading with one-line errors), ``text``,
``parallel``, ``graphs`` + ``templates`` (edges of any graph -> sentences), ``hub_dataset``,
``synthetic`` (the built-in data sources), ``dedup``, ``splits``, ``languages`` (ISO codes,
script detection), ``cache`` (manifests), ``packs`` (fetch routes,
:func:`~lowres_adapters.data.packs.load_pack_data`), ``stats``. Nothing is imported here so that
``import lowres_adapters.data.x`` stays cheap.
"""
