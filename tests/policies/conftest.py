from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from policies import Policy, default_policy_path, load_default_policy

WritePolicy = Callable[..., Path]


@pytest.fixture
def default_policy() -> Policy:
    return load_default_policy().policy


@pytest.fixture
def write_policy(tmp_path: Path) -> WritePolicy:
    """Write the default policy with text replacements applied; return the file."""

    def write(*replacements: tuple[str, str], name: str = "policy.toml") -> Path:
        text = default_policy_path().read_text(encoding="utf-8")
        for old, new in replacements:
            assert old in text, f"{old!r} not in the default policy"
            text = text.replace(old, new, 1)
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
