"""What the fault scenarios on the lab share."""

from __future__ import annotations

import pytest

from tests.conftest import LabHandle
from tests.engine.conftest import Cluster


@pytest.fixture
def cluster(lab: LabHandle) -> Cluster:
    """The lab through sitectl's eyes, starting from home (dc1 active and protected): a
    new lab when an earlier scenario rightly left it elsewhere."""
    found = Cluster(lab)
    if not found.at_home():
        lab.renew()
    return found
