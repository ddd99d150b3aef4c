"""The warehouse layer: the only code that knows SQL dialects."""

from .tables import TABLES
from .warehouse import Warehouse, default_url, normalize_url

__all__ = ["TABLES", "Warehouse", "default_url", "normalize_url"]
