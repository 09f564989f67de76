"""Loading policy files: the shipped default and every way a file can be wrong."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from embedding_core.errors import FedembedError
from policies import AuditThresholds, PolicyError, default_policy_path, load_policy
from policies.model import OBSERVERS
from privacy import Observer

WritePolicy = Callable[..., Path]


def test_default_policy_loads_with_documented_thresholds() -> None:
    # Execute
    loaded = load_policy(default_policy_path())
    # Assert
    audit = loaded.policy.audit
    assert (audit.max_inversion_f1, audit.min_attack_strength_f1) == (0.1, 0.5)
    assert (audit.max_mia_auc, audit.min_mia_control_auc) == (0.55, 0.6)
    assert (audit.max_abs_effect_size, audit.max_epsilon, audit.max_delta) == (0.8, 8.0, 1e-5)
    assert loaded.policy.access.max_top_k == 100
    assert loaded.policy.privacy.allowed_aggregation_modes == ["secagg+", "ckks"]
    assert loaded.sha256 == hashlib.sha256(default_policy_path().read_bytes()).hexdigest()
    assert loaded.to_dict()["thresholds"]["max_ndcg10_drop"] == 2.0


def test_default_policy_documents_every_threshold_with_a_comment() -> None:
    # Prepare
    lines = default_policy_path().read_text(encoding="utf-8").splitlines()
    # Assert: each key of [audit] is preceded by a comment line (or a documented sibling)
    start = lines.index("[audit]")
    keys = [
        i for i, line in enumerate(lines) if i > start and " = " in line[:40] and line[0] != "#"
    ]
    assert [lines[i].split(" = ")[0] for i in keys] == list(AuditThresholds.model_fields)
    assert all(lines[i - 1].startswith("#") or " = " in lines[i - 1] for i in keys)


@pytest.mark.parametrize(
    ("replacement", "key", "fragment"),
    [
        (("max_mia_auc = 0.55", "max_mia_aux = 0.55"), "audit.max_mia_aux", "did you mean"),
        (("max_top_k = 100", 'max_top_k = "100"'), "access.max_top_k", "integer"),
        (("max_top_k = 100", "max_top_k = true"), "access.max_top_k", "integer"),
        (("target_delta = 1e-5", "target_delta = 1.5"), "privacy.target_delta", "less than 1"),
        (("max_ndcg10_drop = 2.0", "max_ndcg10_drop = -1.0"), "audit.max_ndcg10_drop",
         "greater than or equal to 0"),
        (
            ('allowed_query_kinds = ["text", "vector"]', 'allowed_query_kinds = ["text", "sql"]'),
            "access.allowed_query_kinds[1]",
            "'text' or 'vector'",
        ),
        (
            ('allowed_aggregation_modes = ["secagg+", "ckks"]',
             'allowed_aggregation_modes = ["secagg+", "plaintext"]'),
            "privacy.allowed_aggregation_modes",
            "contradicts",
        ),
        (
            ("max_inversion_f1 = 0.1", "max_inversion_f1 = 0.5"),
            "audit.min_attack_strength_f1",
            "greater than max_inversion_f1",
        ),
        (("node_level_dp = false\n", ""), "privacy.node_level_dp", "missing"),
    ],
)  # fmt: skip
def test_invalid_value_names_the_key_and_what_was_expected(
    write_policy: WritePolicy, replacement: tuple[str, str], key: str, fragment: str
) -> None:
    # Prepare
    path = write_policy(replacement)
    # Execute
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    # Assert
    error = caught.value
    assert isinstance(error, FedembedError)
    assert key in error.keys
    assert f"`{key}`" in str(error)
    assert fragment in str(error)
    assert str(path) in str(error)
    assert "Fix:" in str(error)
    assert "pydantic" not in str(error).lower()


def test_unknown_key_lists_the_allowed_keys(write_policy: WritePolicy) -> None:
    path = write_policy(("[access]\n", "[access]\nmax_top_kk = 5\n"))

    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    assert caught.value.key == "access.max_top_kk"
    assert caught.value.expected.startswith("only the keys max_top_k,")


def test_missing_table_is_named(write_policy: WritePolicy) -> None:
    text = default_policy_path().read_text(encoding="utf-8")
    path = write_policy((text[text.index("\n[audit]\n") :], "\n"))

    with pytest.raises(PolicyError, match=r"required table `audit` is missing") as caught:
        load_policy(path)

    assert caught.value.key == "audit"


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"

    with pytest.raises(PolicyError, match="does not exist") as caught:
        load_policy(missing)

    assert caught.value.path == missing
    assert "fedembed policy init" in caught.value.fix


def test_bad_toml_syntax_reports_the_line(write_policy: WritePolicy) -> None:
    # Prepare: break the value of max_delta
    path = write_policy(("max_delta = 1e-5", "max_delta = "))
    line = 1 + path.read_text(encoding="utf-8").splitlines().index("max_delta = ")
    # Execute
    with pytest.raises(PolicyError, match="invalid TOML syntax") as caught:
        load_policy(path)
    # Assert
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_integer_is_accepted_where_a_number_is_expected(write_policy: WritePolicy) -> None:
    path = write_policy(("max_epsilon = 8.0", "max_epsilon = 8"))

    loaded = load_policy(path)

    assert loaded.policy.audit.max_epsilon == 8.0
    assert loaded.sha256 != hashlib.sha256(default_policy_path().read_bytes()).hexdigest()


def test_observers_default_to_every_observer_and_match_the_privacy_enum(
    write_policy: WritePolicy,
) -> None:
    # Prepare
    line = 'observers = ["outsider", "partner", "coordinator", "fellow-member"]\n'
    named = write_policy((line, 'observers = ["fellow-member"]\n'))
    unknown = write_policy((line, 'observers = ["neighbour"]\n'), name="unknown.toml")
    silent = write_policy((line, ""), name="silent.toml")

    # Execute
    default = load_policy(silent).policy.privacy.observers

    # Assert: a policy without the key names every observer.
    assert tuple(default) == OBSERVERS == tuple(o.value for o in Observer)
    assert load_policy(named).policy.privacy.observers == ["fellow-member"]
    with pytest.raises(PolicyError, match=r"privacy\.observers"):
        load_policy(unknown)
