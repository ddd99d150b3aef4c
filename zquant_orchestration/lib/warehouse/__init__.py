"""The warehouse layer: the only code that knows SQL dialects."""

from .panels import wide
from .tables import TABLES, day_columns
from .warehouse import Warehouse, default_url, normalize_url

__all__ = ["TABLES", "Warehouse", "day_columns", "default_url", "normalize_url", "wide"]
