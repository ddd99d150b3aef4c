"""Synthetic, deterministic A-share financial statements for the local Tushare server.

Serves ``income``, ``balancesheet``, ``cashflow``, ``fina_indicator`` (and their ``*_vip``
whole-market variants) and ``disclosure_date`` with the full column lists of
``lib/tushare/schema_columns.json``.

Every figure is a pure function of (ts_code, report period, version, column), built from
counter-based hashes (``..hashing``) instead of a random generator, so a report comes out
the same whether it is built alone, for one stock across all periods or for the whole
market in one period, in any process.

- ``book``: ``FinanceBook``, which answers queries, builds rows on demand and caches them;
- ``filters``: parameter checks, Tushare's filters, visibility at ``as_of``, reply order;
- ``model``: the accounting model (per-stock traits, the figures of the four statements);
- ``disclosure``: when reports are announced and corrected, and the disclosure_date rows;
- ``fixtures``: the real fixture rows laid over the synthetic ones;
- ``quarters``: date and quarter-end arithmetic.
"""

from .book import FinanceBook
from .filters import DISCLOSURE_API, STATEMENT_APIS

__all__ = ["DISCLOSURE_API", "STATEMENT_APIS", "FinanceBook"]
