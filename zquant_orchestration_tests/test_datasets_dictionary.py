"""docs/datasets.md is the catalog as it is, not as it was."""

from pathlib import Path

from zquant_orchestration.lib.datasets import DATASETS
from zquant_orchestration.lib.datasets.dictionary import render

DICTIONARY = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


def test_the_data_dictionary_is_written_from_the_catalog():
    assert DICTIONARY.read_text(encoding="utf-8") == render(), (
        "docs/datasets.md is stale: python -m zquant_orchestration.lib.datasets.dictionary > docs/datasets.md")
    for name in DATASETS:
        assert f"| `{name}` |" in render()
