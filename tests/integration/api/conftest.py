from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.api.harness import Deployment, deployment


@pytest.fixture
def dep(kafka_bootstrap: str, tmp_path) -> Iterator[Deployment]:
    yield from deployment(kafka_bootstrap, tmp_path)
