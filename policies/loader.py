"""Read a TOML policy file into a validated :class:`~policies.model.Policy`.

Every problem (missing file, TOML syntax, unknown, missing or mistyped key, value out
of range) becomes a :class:`~policies.errors.PolicyError` that names the file and the
TOML key path, never a raw pydantic traceback.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from policies.errors import PolicyError
from policies.model import Policy

__all__ = [
    "DEFAULT_POLICY_FILENAME",
    "LoadedPolicy",
    "default_policy_path",
    "load_default_policy",
    "load_policy",
]

logger = logging.getLogger(__name__)

DEFAULT_POLICY_FILENAME = "consortium_default.toml"
_TOML_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_FIX = "edit the key(s) named above; `fedembed policy init FILE` writes a documented template"


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with the file it came from.

    Attributes:
        policy: The validated policy.
        path: The file it was read from (resolved).
        sha256: Hex SHA-256 of the file bytes, to pin the exact policy in a report.
    """

    policy: Policy
    path: Path
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """The ``policy`` section of the audit results contract."""
        return {
            "name": self.policy.policy.name,
            "version": self.policy.policy.version,
            "path": str(self.path),
            "sha256": self.sha256,
            "thresholds": self.policy.audit.model_dump(),
        }


def default_policy_path() -> Path:
    """The consortium default policy shipped with fedembed (package data)."""
    return Path(__file__).resolve().with_name(DEFAULT_POLICY_FILENAME)


def load_default_policy() -> LoadedPolicy:
    """Load the shipped consortium default policy."""
    return load_policy(default_policy_path())


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read and validate a TOML policy file.

    Args:
        path: The policy file.

    Returns:
        The validated policy with its path and the SHA-256 of its bytes.

    Raises:
        PolicyError: The file is missing, unreadable, not TOML, or does not match the
            policy schema; the message names the file and every offending key.
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise PolicyError(
            "the policy file does not exist",
            path=file,
            expected="a TOML policy file",
            fix="check the path, or write a template with `fedembed policy init FILE`",
        ) from None
    except OSError as exc:
        raise PolicyError(
            f"the policy file cannot be read ({exc.strerror or exc})",
            path=file,
            expected="a readable TOML file",
            fix="check the path and its permissions",
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"the policy file is not UTF-8 text (byte {exc.start})",
            path=file,
            expected="a UTF-8 encoded TOML file",
            fix="save the file as UTF-8",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        raise PolicyError(
            f"invalid TOML syntax: {exc}",
            path=file,
            line=int(match.group(1)) if match else None,
            expected="valid TOML (https://toml.io), e.g. `max_mia_auc = 0.55`",
            fix="correct the syntax at the line shown (strings need quotes, tables [brackets])",
        ) from None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise _policy_error(file, exc) from None
    digest = hashlib.sha256(raw).hexdigest()
    logger.debug("loaded policy %s %s from %s", policy.policy.name, policy.policy.version, file)
    return LoadedPolicy(policy=policy, path=file.resolve(), sha256=digest)


def _key_path(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else part
    return key


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model whose fields hold the last element of ``loc`` (None: not a model)."""
    model: type[BaseModel] = Policy
    for part in loc:
        if isinstance(part, int):
            return None
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(error: ErrorDetails) -> tuple[str, str, str]:
    """(key path, problem, expected) for one pydantic error."""
    loc = tuple(error["loc"])
    key = _key_path(loc)
    kind = error["type"]
    named = loc
    while named and isinstance(named[-1], int):  # a list item: describe the list
        named = named[:-1]
    parent = _model_at(named[:-1]) if named else Policy
    field_name = named[-1] if named else None
    field = parent.model_fields.get(field_name) if parent and isinstance(field_name, str) else None
    expected = (field.description or "") if field else ""
    if kind == "extra_forbidden" and parent is not None:
        allowed = list(parent.model_fields)
        close = difflib.get_close_matches(str(field_name), allowed, n=1)
        hint = f" (did you mean `{_key_path((*loc[:-1], close[0]))}`?)" if close else ""
        return key, f"unknown key `{key}`{hint}", f"only the keys {', '.join(allowed)}"
    if kind == "missing":
        what = "table" if _model_at(loc) is not None else "key"
        return key, f"required {what} `{key}` is missing", expected
    if not loc:  # the whole document
        return "", error["msg"], "a TOML document with [policy], [privacy], [access], [audit]"
    if kind == "value_error":  # a cross-field rule of the model
        message = error["msg"].removeprefix("Value error, ")
        return key, f"`{key}` = {_toml(error.get('input'))}: {message}", expected
    reason = error["msg"][:1].lower() + error["msg"][1:]
    return key, f"`{key}` = {_toml(error.get('input'))} is invalid ({reason})", expected


def _toml(value: object) -> str:
    """A value as TOML would spell it, shortened."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, bool):
        shown = str(value).lower()
    elif isinstance(value, str):
        shown = f'"{value}"'
    elif isinstance(value, list):
        shown = "[" + ", ".join(_toml(v) for v in value) + "]"
    else:
        shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _policy_error(file: Path, exc: ValidationError) -> PolicyError:
    issues = [_describe(error) for error in exc.errors()]
    keys = tuple(dict.fromkeys(key for key, _, _ in issues))
    if len(issues) == 1:
        key, problem, expected = issues[0]
        return PolicyError(problem, path=file, key=key or None, expected=expected, fix=_FIX)
    listed = "; ".join(
        f"({n}) {problem}" + (f" [expected {expected}]" if expected else "")
        for n, (_, problem, expected) in enumerate(issues, start=1)
    )
    return PolicyError(
        f"{len(issues)} problems in the policy: {listed}",
        path=file,
        key=keys[0] if keys else None,
        keys=keys,
        expected="a policy matching the schema (see policies/consortium_default.toml)",
        fix=_FIX,
    )
