"""The compliance report writer: hashed canonical JSON, escaped self-contained HTML, PDF."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from pypdf import PdfReader

from report.compliance_report import (
    REQUIRED_KEYS,
    ReportError,
    ReportFiles,
    canonical_json,
    render_html,
    write_report,
)
from report.pdf_view import to_latin1

SCRIPT = "<script>alert(1)</script>"
NON_LATIN = "naïve – 東京"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _png_base64() -> str:
    figure = Figure(figsize=(3, 2), dpi=60)
    axes = figure.subplots()
    axes.plot([0.0, 0.5, 1.0], [0.64, 0.55, 0.31], marker="o")
    axes.set_xlabel("inversion F1")
    axes.set_ylabel("nDCG@10")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    sha = hashlib.sha256(b"model").hexdigest()
    return {
        "report_version": 1,
        "title": "fedembed privacy and bias audit",
        "generated_at": "2026-11-27T22:30:00+00:00",
        "fedembed_version": "0.1.0",
        "subject": {
            "model": {"id": "sentence-transformers/all-MiniLM-L6-v2", "fingerprint": sha},
            "adapter": {
                "path": "out/federation/adapter",
                "sha256": hashlib.sha256(b"adapter").hexdigest(),
                "epsilon": 8.0,
                "delta": 1e-5,
                "rounds": 5,
            },
            "index": {
                "path": "out/index",
                "collections": [
                    {"name": "banking", "protection": "dcpe", "beta": 1.0, "count": 5183}
                ],
            },
            "data": [
                {
                    "name": "banking77-test",
                    "sha256": hashlib.sha256(b"data").hexdigest(),
                    "records": 3080,
                }
            ],
        },
        "policy": {
            "name": "default",
            "version": "1.0",
            "path": "policies/default.yaml",
            "sha256": hashlib.sha256(b"policy").hexdigest(),
            "thresholds": {"max_inversion_f1": 0.1, "max_mia_auc": 0.6, "max_epsilon": 10.0},
        },
        "attacks": [
            {
                "attack": "optimisation_inversion",
                "target": "banking77-test raw",
                "threat_model": "An honest-but-curious index operator sees raw embeddings.",
                "metrics": {"f1": 0.58, "precision": 0.5, "recall": 0.69},
                "seconds": 12.3,
                "details": {
                    "steps": 200,
                    "samples": [
                        {"original": "card arrived?", "recovered": f"{SCRIPT} {NON_LATIN}"}
                    ],
                },
            },
            {
                "attack": "optimisation_inversion",
                "target": "dcpe beta=1",
                "threat_model": "An honest-but-curious index operator sees raw embeddings.",
                "metrics": {"f1": 0.12},
                "seconds": 11.0,
                "details": {},
            },
            {
                "attack": "membership_inference",
                "target": "adapter",
                "threat_model": "A participant holding the released adapter and shadow data.",
                "metrics": {"auc": 0.55, "tpr_at_0.1pct_fpr": 0.002},
                "seconds": 40.5,
                "details": {"shadows": 8},
            },
        ],
        "evidence": {
            "inversion_f1_raw": 0.58,
            "inversion_f1_protected": 0.12,
            "mia_auc": 0.55,
            "epsilon_max_node": 7.9,
            "retrieval_ndcg10_drop": None,
        },
        "privacy_budget": [
            {"node": "node-1", "epsilon": 7.9, "delta": 1e-5, "rounds": 5, "refused": False},
            {"node": "node-2", "epsilon": 7.5, "delta": 1e-5, "rounds": 5, "refused": True},
        ],
        "bias": [
            {
                "test": "weat1",
                "effect_size": 1.2,
                "p_value": 0.001,
                "holm_p": 0.002,
                "effect_size_population": 1.23,
                "p_min": 0.0286,
                "power": "underpowered: smallest achievable p 0.0286 > alpha/m = 0.0063",
                "glove_reference": 1.5,
                "adapter_effect_size": 1.1,
            }
        ],
        "utility": [
            {"protection": "raw", "ndcg10": 0.645, "inversion_f1": 0.58},
            {"protection": "dcpe beta=1", "ndcg10": 0.61, "inversion_f1": 0.12},
        ],
        "checks": [
            {
                "id": "inversion",
                "title": "Embedding inversion",
                "metric": "inversion_f1_protected",
                "value": 0.12,
                "comparison": "<=",
                "threshold": 0.1,
                "status": "fail",
                "explanation": "Protected embeddings leak too many words.",
            },
            {
                "id": "epsilon",
                "title": "Differential privacy budget",
                "metric": "epsilon_max_node",
                "value": 7.9,
                "comparison": "<=",
                "threshold": 10.0,
                "status": "pass",
                "explanation": "Every node stayed within its budget.",
            },
            {
                "id": "retrieval",
                "title": "Retrieval utility",
                "metric": "retrieval_ndcg10_drop",
                "value": None,
                "comparison": "<=",
                "threshold": 0.1,
                "status": "not_evaluated",
                "explanation": "Retrieval was not measured.",
            },
        ],
        "regulations": [
            {
                "framework": "GDPR",
                "article": "Art. 25",
                "title": "Data protection by design and by default",
                "requirement": "Appropriate technical measures.",
                "how_addressed": "DCPE index and DP adapter.",
                "checks": ["inversion", "epsilon"],
                "status": "partial",
            },
            {
                "framework": "GDPR",
                "article": "Art. 32",
                "title": "Security of processing",
                "requirement": "Encryption of personal data.",
                "how_addressed": "Encrypted index.",
                "checks": ["inversion"],
                "status": "fail",
            },
            {
                "framework": "EU AI Act",
                "article": "Art. 10",
                "title": "Data and data governance",
                "requirement": "Examine possible biases.",
                "how_addressed": "WEAT/SEAT audit.",
                "checks": ["epsilon"],
                "status": "pass",
            },
            {
                "framework": "EU AI Act",
                "article": "Art. 15",
                "title": "Accuracy and robustness",
                "requirement": "Appropriate accuracy.",
                "how_addressed": "Retrieval benchmark.",
                "checks": ["retrieval"],
                "status": "not_evaluated",
            },
        ],
        "figures": [
            {
                "name": "privacy_utility",
                "title": "Privacy-utility trade-off",
                "caption": "nDCG@10 against inversion F1 per protection.",
                "png_base64": _png_base64(),
            }
        ],
        "limitations": ["Attacks are run on public auxiliary data only.", NON_LATIN],
        "json_sha256": None,
    }


@pytest.fixture(scope="module")
def report(results: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return write_report(results, tmp_path_factory.mktemp("report"))


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_json_hash_matches_the_written_bytes_and_sha256sum_accepts_it(
    report: ReportFiles,
) -> None:
    # Prepare
    data = report.json.read_bytes()
    # Execute
    digest = hashlib.sha256(data).hexdigest()
    checked = subprocess.run(
        ["sha256sum", "-c", report.checksum.name],
        cwd=report.json.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    # Assert
    assert report.json_sha256 == digest
    assert report.checksum.read_text(encoding="ascii") == f"{digest}  report.json\n"
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "report.json: OK"


def test_json_is_canonical_utf8_with_a_null_hash(
    results: dict[str, Any], report: ReportFiles
) -> None:
    # Execute
    data = report.json.read_bytes()
    parsed = json.loads(data.decode("utf-8"))
    # Assert
    assert data == canonical_json(results)
    assert NON_LATIN.encode("utf-8") in data  # ensure_ascii=False
    assert b", " not in data.replace(b"card arrived?", b"")  # compact separators
    assert list(parsed) == sorted(parsed)
    assert parsed == {**results, "json_sha256": None}


def test_html_and_pdf_show_the_json_hash_and_how_to_verify_it(report: ReportFiles) -> None:
    # Execute
    page = report.html.read_text(encoding="utf-8")
    pdf_text = _pdf_text(report.pdf)
    # Assert
    assert report.pdf.read_bytes().startswith(b"%PDF")
    for text in (page, pdf_text):
        assert report.json_sha256 in text
        assert "sha256sum -c report.json.sha256" in text


def test_recovered_text_appears_only_escaped(report: ReportFiles) -> None:
    # Execute
    page = report.html.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    # Assert
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert NON_LATIN in page
    assert "script" not in {tag for tag, _ in parser.tags}


def test_html_is_self_contained_under_a_strict_csp(report: ReportFiles) -> None:
    # Prepare
    page = report.html.read_text(encoding="utf-8")
    parser = _Tags()
    # Execute
    parser.feed(page)
    # Assert
    metas = [attrs for tag, attrs in parser.tags if tag == "meta"]
    assert {"http-equiv": "Content-Security-Policy", "content": CSP} in metas
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == 1
    for attrs in images:
        assert (attrs.get("src") or "").startswith("data:image/png;base64,")
        assert attrs.get("alt")
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "a", "base", "form"}
    for _, attrs in parser.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), name
            assert not re.match(r"\s*(https?:|//)", value or ""), (name, value)
    assert "url(" not in page
    assert "@import" not in page
    assert "@media print" in page


def test_html_has_every_section_the_verdict_and_status_badges(report: ReportFiles) -> None:
    # Execute
    page = report.html.read_text(encoding="utf-8")
    # Assert
    assert '<p id="verdict" class="verdict verdict-FAIL" role="status">FAIL</p>' in page
    for number, title in enumerate(
        (
            "Scope",
            "Summary of policy checks",
            "Threat models and method",
            "Results",
            "Bias audit",
            "Privacy budget per node",
            "Regulatory mapping",
            "Limitations",
        ),
        start=1,
    ):
        assert f">{number} {title}</h2>" in page
    for badge in ("pass", "fail", "not_evaluated", "partial"):
        assert f'class="badge badge-{badge}"' in page
    assert "engineering evidence, not legal advice" in page
    assert '<th scope="col">Holm p (two-sided)</th>' in page
    assert '<th scope="col">d (population sd, WEFE)</th>' in page
    assert "underpowered: smallest achievable p 0.0286 &gt; alpha/m = 0.0063" in page
    assert page.count("An honest-but-curious index operator") == 1  # grouped per attack
    assert "f1=0.58, precision=0.5, recall=0.69" in page


def test_pdf_has_every_section_and_renders_non_latin_text(report: ReportFiles) -> None:
    # Execute
    text = _pdf_text(report.pdf)
    reader = PdfReader(report.pdf)
    # Assert
    assert "Overall verdict: FAIL" in text
    for heading in ("1 Scope", "2 Summary of policy checks", "7 Regulatory mapping"):
        assert heading in text
    assert "naïve - ??" in text
    assert "NOT EVALUATED" in text
    assert "engineering evidence, not legal advice" in text.replace("\n", " ")
    assert any(page.images for page in reader.pages)


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        (["pass", "pass"], "PASS"),
        (["pass", "not_evaluated"], "INCOMPLETE"),
        (["not_evaluated", "fail", "pass"], "FAIL"),
        ([], "INCOMPLETE"),
    ],
)
def test_verdict_follows_the_check_statuses(
    results: dict[str, Any], statuses: list[str], verdict: str
) -> None:
    # Prepare
    checks = [{**results["checks"][0], "status": status} for status in statuses]
    # Execute
    page = render_html({**results, "checks": checks}, json_sha256="0" * 64)
    # Assert
    assert f'class="verdict verdict-{verdict}" role="status">{verdict}</p>' in page


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_missing_required_key_names_it(results: dict[str, Any], key: str, tmp_path: Path) -> None:
    # Prepare
    broken = {k: v for k, v in results.items() if k != key}
    # Execute
    with pytest.raises(ReportError) as raised:
        write_report(broken, tmp_path)
    # Assert
    assert repr(key) in str(raised.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("checks", 0, "status"), "passed", "checks[0]"),
        (("regulations", 1, "status"), None, "regulations[1]"),
        (("figures", 0, "png_base64"), base64.b64encode(b"GIF89a....").decode(), "figures[0]"),
        (("evidence", "mia_auc"), float("nan"), "results.evidence.mia_auc"),
        (("attacks", 0, "metrics"), {1: 0.5}, "results.attacks[0].metrics"),
        (("attacks",), {"not": "a list"}, "'attacks'"),
    ],
)
def test_malformed_field_is_named(
    results: dict[str, Any], path: tuple[Any, ...], value: Any, named: str, tmp_path: Path
) -> None:
    # Prepare
    broken = copy.deepcopy(results)
    target: Any = broken
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    # Execute
    with pytest.raises(ReportError) as raised:
        write_report(broken, tmp_path)
    # Assert
    assert named in str(raised.value)


def test_to_latin1_keeps_latin1_and_replaces_the_rest() -> None:
    # Execute
    text = to_latin1("naïve – “ε” 東京 ő\x07")
    # Assert
    assert text == 'naïve - "epsilon" ?? o '
    text.encode("latin-1")


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_small_results = st.fixed_dictionaries(
    {
        "report_version": st.integers(min_value=1, max_value=3),
        "title": st.text(max_size=30),
        "generated_at": st.text(max_size=25),
        "fedembed_version": st.text(max_size=10),
        "subject": st.fixed_dictionaries(
            {"model": st.dictionaries(st.text(max_size=8), _json_scalars, max_size=3)}
        ),
        "policy": st.dictionaries(st.text(max_size=8), _json_values, max_size=3),
        "attacks": st.lists(
            st.fixed_dictionaries(
                {
                    "attack": st.text(max_size=12),
                    "target": st.text(max_size=12),
                    "threat_model": st.text(max_size=20),
                    "metrics": st.dictionaries(st.text(max_size=6), _json_scalars, max_size=3),
                    "seconds": st.floats(min_value=0, max_value=1e4),
                    "details": st.dictionaries(st.text(max_size=6), _json_values, max_size=3),
                }
            ),
            max_size=3,
        ),
        "checks": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.text(max_size=8),
                    "value": _json_scalars,
                    "status": st.sampled_from(["pass", "fail", "not_evaluated"]),
                }
            ),
            max_size=3,
        ),
        "regulations": st.lists(
            st.fixed_dictionaries(
                {
                    "framework": st.text(max_size=8),
                    "status": st.sampled_from(["pass", "fail", "partial", "not_evaluated"]),
                }
            ),
            max_size=2,
        ),
        "limitations": st.lists(st.text(max_size=30), max_size=2),
    },
    optional={"evidence": st.dictionaries(st.text(max_size=8), _json_scalars, max_size=3)},
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_small_results)
def test_written_json_parses_back_to_the_input(generated: dict[str, Any]) -> None:
    # Prepare
    with tempfile.TemporaryDirectory() as folder:
        # Execute
        files = write_report(generated, Path(folder))
        parsed = json.loads(files.json.read_bytes())
        # Assert
        assert parsed == {**generated, "json_sha256": None}
        assert hashlib.sha256(files.json.read_bytes()).hexdigest() == files.json_sha256
        assert files.json_sha256 in files.html.read_text(encoding="utf-8")
        assert files.pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CI"),
    reason="chromium is not installed (CI installs it and then requires this test)",
)
@pytest.mark.timeout(120)
def test_report_renders_offline_in_headless_chromium(report: ReportFiles) -> None:
    # Prepare
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        # Execute
        driver.set_page_load_timeout(60)
        driver.get(report.html.resolve().as_uri())
        title = driver.title
        images = driver.execute_script(
            "return Array.from(document.images).map(img => {"
            "  const box = img.getBoundingClientRect();"
            "  return {complete: img.complete, naturalWidth: img.naturalWidth,"
            "          width: box.width, height: box.height, alt: img.alt}; });"
        )
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(entry => entry.name);"
        )
        csp = driver.execute_script(
            "return document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]').content;"
        )
        verdict = driver.find_element(By.ID, "verdict").text
        log = driver.get_log("browser")
    finally:
        driver.quit()
    # Assert
    assert title == "fedembed privacy and bias audit"
    assert len(images) == 1
    for image in images:
        assert image["complete"], image
        assert image["naturalWidth"] > 0, image
        assert image["width"] > 0, image
        assert image["height"] > 0, image
        assert image["alt"]
    assert not [name for name in resources if name.startswith("http")]
    assert csp == CSP
    assert verdict == "FAIL"
    assert not [entry for entry in log if entry.get("level") == "SEVERE"], log
