"""The ``Warehouse``: one object per database, composed of one mixin per concern.

Each concern keeps its methods in its own module (engine.py: how writers take turns;
schema.py: schema upkeep; writes.py; reads.py; panels.py: research reads) and they share the instance's state:
``url``, ``engine``, ``dialect`` and ``_schema_ready``, set here. Mixins, not delegation:
the public methods are the modules' methods themselves, each signature and docstring in one
place, and a call costs no extra hop.
"""

from __future__ import annotations

from sqlalchemy import Engine

from ..redact import redact_url
from .engine import WriterTurns, open_engine
from .panels import Panels
from .reads import Reads
from .schema import SchemaUpkeep
from .urls import default_url, normalize_url
from .writes import Writes

__all__ = ["Warehouse", "default_url", "normalize_url"]


class Warehouse(Writes, Reads, Panels, SchemaUpkeep, WriterTurns):
    def __init__(self, url: str):
        self.url = normalize_url(url)
        self.engine: Engine = open_engine(self.url, url)
        self.dialect = self.engine.dialect.name
        self._schema_ready = False

    def __repr__(self) -> str:
        return f"Warehouse({redact_url(self.url)})"
