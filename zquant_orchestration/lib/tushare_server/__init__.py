"""The project's own Tushare-compatible server (offline demo source and test double)."""

from .dataset import SUPPORTED_APIS, Dataset
from .faults import ALL_FAULT_KINDS, DATA_FAULT_KINDS, FAULT_KINDS, FaultPlan
from .server import LOCAL_TOKEN, LocalTushareServer

__all__ = ["ALL_FAULT_KINDS", "DATA_FAULT_KINDS", "FAULT_KINDS", "LOCAL_TOKEN", "SUPPORTED_APIS", "Dataset",
           "FaultPlan", "LocalTushareServer"]
