"""Shared fixtures. The official reference fixtures are found through AWARE3D_REFERENCE
(default: ../shared/reference beside the repository); absent, their tests skip, except under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (``-n 2``) each worker gets one core: two workers with two torch threads each would
    # oversubscribe a 2-core machine and run slower than one process.
    torch.set_num_threads(1)


def reference_root() -> Path:
    return Path(os.environ.get("AWARE3D_REFERENCE", REPO.parent / "shared" / "reference"))


def require_reference(*parts: str) -> Path:
    """The path of a reference file/folder; skip (or fail under CI=true) when it is missing."""
    path = reference_root().joinpath(*parts)
    if not path.exists():
        msg = f"reference fixture {path} not found (set AWARE3D_REFERENCE to the folder holding pigan/ and eg3d/)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def reference_dir() -> Path:
    """Root of the official reference fixtures (pigan/, eg3d/)."""
    return require_reference()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: its tensors are small, so one thread is faster and immune to
    oversubscription on a busy machine (modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
