"""``cstake devnet up --compute-units N``: what each genesis compute NFT claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.devtools.devnet import create_devnet
from node.errors import DevnetError
from node.init import DEV_COMPUTE_UNITS


def _claims(directory: Path) -> list[int]:
    doc = json.loads((directory / "node0" / "genesis.json").read_text())
    return [nft["claimed_units"] for v in doc["validators"] for nft in v["compute"]]


def test_every_genesis_nft_claims_the_units_asked_for(tmp_path: Path) -> None:
    create_devnet(tmp_path / "one", 3, 31000, compute_units=1)
    assert _claims(tmp_path / "one") == [1, 1, 1]
    create_devnet(tmp_path / "default", 2, 31100)
    assert _claims(tmp_path / "default") == [DEV_COMPUTE_UNITS] * 2


@pytest.mark.parametrize("units", [0, -1, 1_000_001])
def test_units_out_of_range_are_refused_before_anything_is_written(tmp_path: Path, units: int) -> None:
    with pytest.raises(DevnetError, match="compute units"):
        create_devnet(tmp_path / "bad", 2, 31200, compute_units=units)
    assert not (tmp_path / "bad").exists()
