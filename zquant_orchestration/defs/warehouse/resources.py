"""``WarehouseResource``: where the assets land their rows (SQLite by default, Postgres in production)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from zquant_orchestration.lib.warehouse import Warehouse, default_url


class WarehouseResource(dg.ConfigurableResource):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: $ZQUANT_WAREHOUSE_URL, else SQLite at $ZQUANT_DATA_DIR/warehouse.sqlite "
        "(ZQUANT_DATA_DIR defaults to ./.zquant).",
    )

    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get(self) -> Warehouse:
        if self._warehouse is None:
            self._warehouse = Warehouse(self.url or default_url())
            self._warehouse.ensure_schema()
        return self._warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.engine.dispose()
            self._warehouse = None
