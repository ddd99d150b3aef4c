"""The project's own Tushare-compatible server (offline demo source and test double)."""

from .dataset import SUPPORTED_APIS, Dataset
from .server import FAULT_KINDS, LOCAL_TOKEN, FaultPlan, LocalTushareServer

__all__ = ["FAULT_KINDS", "LOCAL_TOKEN", "SUPPORTED_APIS", "Dataset", "FaultPlan", "LocalTushareServer"]
