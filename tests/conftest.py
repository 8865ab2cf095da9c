"""Shared fixtures: small worlds generated once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from finevl.world.generate import WorldConfig, generate_world


@pytest.fixture(scope="session", autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """finevl's record of the files it wrote (the output policy) kept out of the home folder."""
    os.environ["FINEVL_STATE_DIR"] = str(tmp_path_factory.mktemp("finevl-state"))


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-image world at 64 px with shards, made in one process."""
    out = tmp_path_factory.mktemp("world") / "w"
    generate_world(WorldConfig(n=60, size=64, seed=3, shards=2), out, workers=1)
    return out


@pytest.fixture()
def world_copy(world: Path, tmp_path: Path) -> Path:
    """A private copy of the small world, free to damage."""
    import shutil

    dst = tmp_path / "w"
    shutil.copytree(world, dst)
    return dst
