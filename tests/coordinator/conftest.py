from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def as_a_server_app(server_app_process: None) -> None:
    """Each strategy test starts its round with ``configure_train``, as a ServerApp does."""
