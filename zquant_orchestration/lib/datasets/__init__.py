"""The dataset catalog: one declaration per Tushare dataset (declarations.py)."""

from .declarations import DATASETS, DECLARATIONS, DEFAULT_ENABLED, DEFAULT_INDEX_CODES, OPTIONAL
from .spec import DatasetSpec, Fetch, Published

__all__ = ["DATASETS", "DECLARATIONS", "DEFAULT_ENABLED", "DEFAULT_INDEX_CODES", "OPTIONAL", "DatasetSpec", "Fetch",
           "Published"]
