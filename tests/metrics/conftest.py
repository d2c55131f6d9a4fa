from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real images (BENCHBOX_DATA, default ../shared/data); skip when absent."""
    root = Path(os.environ.get("BENCHBOX_DATA", REPO.parent / "shared" / "data"))
    if not (root / "fixtures").is_dir():
        pytest.skip(f"real data not found at {root} (set BENCHBOX_DATA)")
    return root
