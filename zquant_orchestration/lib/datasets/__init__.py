"""The dataset catalog: one declaration per Tushare dataset (declarations.py)."""

from .declarations import DATASETS, DECLARATIONS, DEFAULT_ENABLED, DEFAULT_INDEX_CODES, OPTIONAL
from .spec import DAY_GROUPS, DatasetSpec, Fetch, Published

__all__ = ["DATASETS", "DAY_GROUPS", "DECLARATIONS", "DEFAULT_ENABLED", "DEFAULT_INDEX_CODES", "OPTIONAL",
           "DatasetSpec", "Fetch", "Published"]
