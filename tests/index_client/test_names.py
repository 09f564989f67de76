"""One rule for every name: the rule itself, the URLs built from names, and the CLIs."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from embedding_core.errors import FedembedError
from fedembed.cli import app
from index_client import routes
from index_client.names import (
    NAME_MAX_CHARS,
    NAME_RE,
    NODE,
    InvalidNameError,
    check_name,
    is_name,
    name_problem,
)

VALID = ["a", "0", "claims", "claims-2026", "node_a", "Hospital-A", "x" * NAME_MAX_CHARS]
INVALID = {
    "": "empty",
    ".": "reserved",
    "..": "reserved",
    "x/../hospital-a": "'/'",
    "a\\b": "'\\\\'",
    "a b": "space",
    "claims\n": "control character",
    "a\x00b": "control character",
    "a\x7f": "control character",
    "-a": "starts with '-'",
    "_a": "starts with '_'",
    "a.b": "'.'",
    "a%2Fb": "'%'",
    "é": "'é'",
    "a" * (NAME_MAX_CHARS + 1): "65 characters",
    "a" * 10_000: "10000 characters",
}


@pytest.mark.parametrize("name", VALID)
def test_names_of_the_alphabet_pass(name: str) -> None:
    assert name_problem(name) is None
    assert is_name(name)
    assert check_name(name) == name


@pytest.mark.parametrize(("name", "reason"), INVALID.items())
def test_other_names_are_refused_with_the_reason(name: str, reason: str) -> None:
    # Execute
    with pytest.raises(InvalidNameError) as refused:
        check_name(name, NODE)
    # Assert: a user error (FedembedError, ValueError) naming the kind, the reason, the rule
    error = refused.value
    assert isinstance(error, FedembedError)
    assert isinstance(error, ValueError)
    assert error.problem.startswith("node name ")
    assert reason in error.problem
    assert "1 to 64 characters" in error.expected
    assert "hospital-a" in error.fix
    assert len(str(error)) < 400  # a 10,000-character name is not echoed back
    assert not is_name(name)


def test_a_name_that_is_not_a_string_is_refused() -> None:
    assert name_problem(None) == "it is not a string (got NoneType)"
    assert not is_name(3)


@settings(max_examples=300, derandomize=True, database=None)
@given(st.text(max_size=80))
def test_every_accepted_name_is_one_plain_path_segment(text: str) -> None:
    # Assert: acceptance is the rule, and an accepted name survives any URL or folder as is
    accepted = name_problem(text) is None
    assert accepted == (NAME_RE.fullmatch(text) is not None)
    if accepted:
        assert quote(text, safe="") == text
        assert text not in {".", ".."}
        assert Path(text).name == text
        assert not text.startswith("-")


@pytest.mark.parametrize(
    ("route", "values"),
    [
        (routes.STORE_CKKS_PUT_BLOCK, {"name": "sealed", "owner": "x/../hospital-a", "number": 0}),
        (routes.STORE_CKKS_DELETE_BLOCK, {"name": "sealed", "owner": "..", "number": 0}),
        (routes.STORE_DESCRIBE, {"name": ".."}),
        (routes.STORE_UPSERT, {"name": "claims/../other"}),
        (routes.QUERY, {"collection": "a/b c"}),
        (routes.SNAPSHOT, {"collection": "a" * 10_000}),
        (routes.PUT_BLOCK, {"collection": "claims", "number": -1}),
        (routes.PUT_BLOCK, {"collection": "claims", "number": True}),
        (routes.REVOKE_CREDENTIAL, {"key_id": ".."}),
        (routes.REVOKE_CREDENTIAL, {"key_id": ""}),
    ],
)
def test_no_url_is_built_from_a_name_that_would_move_it(
    route: routes.Route, values: dict[str, str | int]
) -> None:
    # The adversary: an owner name such as 'x/../hospital-a' pasted into a store URL would
    # name another node's block once the URL is normalised
    with pytest.raises(InvalidNameError):
        route.path(**values)


def test_every_other_value_is_percent_encoded_as_one_segment() -> None:
    assert routes.REVOKE_CREDENTIAL.path(key_id="a/b c?") == "/v1/admin/credentials/a%2Fb%20c%3F"
    assert (
        routes.STORE_CKKS_PUT_BLOCK.path(name="sealed", owner="hospital-a", number=3)
        == "/internal/v1/ckks/sealed/blocks/hospital-a/3"
    )


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["node", "upload", "--data-dir", ".", "--gateway", "http://127.0.0.1:9",
          "--collection", "claims", "--node-id", "x/../hospital-a"], "'--node-id'"),
        (["node", "upload", "--data-dir", ".", "--gateway", "http://127.0.0.1:9",
          "--collection", "..", "--node-id", "hospital-a"], "'--collection'"),
        (["node", "start", "--data-dir", ".", "--kit", ".", "--superlink", "127.0.0.1:9",
          "--max-epsilon", "1", "--name", "a b"], "'--name'"),
        (["coordinator", "provision", "--out", "kits", "--node", "ok", "--node", "a/b"],
         "'--node'"),
        (["index", "node-key", "create", "x/../hospital-a", "--scope", "claims",
          "--data-dir", "d"], "'NODE'"),
        (["index", "node-key", "create", "hospital-a", "--scope", "..", "--data-dir", "d"],
         "'--scope'"),
        (["partner", "create", "insurer x", "--scope", "*", "--data-dir", "d"], "'NAME'"),
        (["index", "collection", "create", ".", "--data-dir", "d"], "'NAME'"),
    ],
)  # fmt: skip
def test_the_clis_refuse_names_the_services_refuse(
    args: list[str], flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: nothing may be written anywhere
    monkeypatch.chdir(tmp_path)
    # Execute
    result = CliRunner().invoke(app, args)
    # Assert: a usage error in the words of the flag, no traceback, nothing created
    said = " ".join(re.sub("[\u2500-\u257f]", " ", result.output).split())  # no box lines
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {flag}" in said
    assert "1 to 64 characters" in said
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, ValueError)
    assert list(tmp_path.iterdir()) == []
