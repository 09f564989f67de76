"""``fedembed audit bias``: the WEAT/SEAT bias audit alone, on the auditor's own tests.

Any folder of SEAT-format files (``<name>.jsonl``, one JSON object each with ``targ1``,
``targ2``, ``attr1``, ``attr2``) is a set of tests: ``--tests DIR`` (repeatable) runs
them, alone or with the sent-bias suite (``--with-default-tests``; the suite alone when
no ``--tests`` is given). All tests of a run are one Holm-Bonferroni family. It prints a
table; ``--json`` makes the last stdout line one JSON object (:func:`bias_summary`);
``--out DIR`` writes ``bias.json`` and ``bias.md`` there. A run takes seconds: the
encoder embeds each distinct text once, exact tests are counted by meet-in-the-middle.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import click
import typer

from embedding_core.cli import AdapterOpt, CacheOpt, EncoderBackendOpt, ModelOpt
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND
from embedding_core.errors import DatasetNotFoundError, FedembedError

if TYPE_CHECKING:  # the attacks load only when the command runs
    from attacks.base import AttackReport
    from attacks.bias_permutation import Alternative
    from attacks.seat_tests import BiasTest

__all__ = ["BIAS_JSON", "BIAS_MD", "bias", "bias_summary", "bias_table"]

logger = logging.getLogger(__name__)

BIAS_JSON = "bias.json"
BIAS_MD = "bias.md"
ALTERNATIVE_CHOICES = ("two-sided", "greater", "less")
TABLE_HEADERS = (
    "test",
    "targets",
    "d sample",
    "d popul.",
    "p",
    "Holm p",
    "min p",
    "method",
    "verdict",
)


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    number = float(value)
    if number != 0 and abs(number) < 10 ** -(digits - 1):
        return f"{number:.{digits - 1}e}"
    return f"{number:.{digits}f}"


def _table_rows(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (
            str(r["test"]),
            f"{r['sizes'][0]}v{r['sizes'][1]}",
            _number(r["effect_size_sample"]),
            _number(r["effect_size_population"]),
            _number(r["p_value"], 4),
            _number(r["p_holm"], 4),
            _number(r["p_min"], 4),
            "exact" if r["p_method"] == "exact" else "MC",
            str(r["verdict"]),
        )
        for r in rows
    ]


def bias_table(rows: Sequence[Mapping[str, Any]], *, markdown: bool = False) -> str:
    """The rows of a bias audit as a fixed-width (or markdown) table."""
    cells = _table_rows(rows)
    if markdown:
        lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + "---|" * len(TABLE_HEADERS)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(TABLE_HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(TABLE_HEADERS, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def bias_summary(
    report: AttackReport, *, renamed: Mapping[str, list[str]], sources: Sequence[str]
) -> dict[str, Any]:
    """The run as one JSON-ready object: settings, then one entry per test."""
    details = report.details
    keys = (
        "test",
        "file",
        "level",
        "targets",
        "attributes",
        "sizes",
        "effect_size_sample",
        "effect_size_population",
        "direction",
        "statistic",
        "p_value",
        "p_holm",
        "significant",
        "p_min",
        "reachable",
        "reachable_after_others",
        "power",
        "verdict",
        "p_method",
        "n_permutations",
        "n_partitions",
    )
    return {
        "attack": report.attack,
        "model": report.target,
        "sources": list(sources),
        "alternative": details["alternative"],
        "correction": "holm-bonferroni",
        "alpha": details["alpha"],
        "family_size": details["family_size"],
        "effect_size_conventions": details["effect_size_conventions"],
        "renamed": dict(renamed),
        "n_significant": int(report.metrics["n_significant"]),
        "n_underpowered": int(report.metrics["n_unreachable"]),
        "seconds": round(report.seconds, 3),
        "tests": [{key: row.get(key) for key in keys} for row in details["tests"]],
    }


def _footer(summary: Mapping[str, Any]) -> list[str]:
    m, alpha = summary["family_size"], summary["alpha"]
    conventions = summary["effect_size_conventions"]
    lines = [
        f"{m} tests, one Holm-Bonferroni family at alpha {alpha:g} (a test needs p <= "
        f"alpha/m = {alpha / m:.2g} to be significant whatever the others show); "
        f"{summary['alternative']} permutation p-values; "
        f"{summary['n_significant']} significant, {summary['n_underpowered']} underpowered.",
        f"d sample: {conventions['effect_size_sample']}; "
        f"d popul.: {conventions['effect_size_population']}.",
        "min p: the smallest p-value the test can give at its sizes (1/C(n1+n2, n1), doubled "
        "two-sided for equal sizes; under Monte Carlo at least 1/(samples+1)). An "
        "underpowered test shows neither bias nor its absence.",
    ]
    for name, now in summary["renamed"].items():
        lines.append(f"{name}.jsonl is in several folders: named {', '.join(now)}.")
    return lines


def _default_suite(data_dir: Path | None) -> list[BiasTest]:
    from attacks.seat_tests import load_bias_tests

    try:
        return load_bias_tests(data_dir)
    except DatasetNotFoundError as exc:
        raise FedembedError(
            "the default bias tests (the sent-bias suite, seat/tests/*.jsonl) were not found "
            f"({exc.problem})",
            expected="a --data-dir (or $FEDEMBED_DATA_DIR) whose seat/tests/ holds the suite",
            fix="give --data-dir, or run only your own tests with --tests DIR",
        ) from exc


def bias(
    tests: Annotated[
        list[Path] | None,
        typer.Option(
            "--tests",
            help="Folder of your SEAT tests (<name>.jsonl, one JSON object each with targ1, "
            "targ2, attr1, attr2: {category, examples}); repeat for several folders. "
            "Default: the sent-bias suite.",
        ),
    ] = None,
    with_default_tests: Annotated[
        bool,
        typer.Option(
            "--with-default-tests",
            help="Also run the sent-bias suite (46 tests) in the same Holm family.",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help=f"Folder to write {BIAS_JSON} and {BIAS_MD} into (created)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line: every test's statistics.")
    ] = False,
    model: ModelOpt = None,
    encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND,
    adapter: AdapterOpt = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Datasets folder holding seat/ (the default suite)."),
    ] = None,
    cache_dir: CacheOpt = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Family-wise error rate of the Holm correction.")
    ] = 0.05,
    alternative: Annotated[
        str,
        typer.Option(
            "--alternative",
            click_type=click.Choice(ALTERNATIVE_CHOICES),
            help="two-sided: |effect| at least the observed one (a reversed association "
            "counts); greater: the SEAT code's one-sided test; less: the reverse.",
        ),
    ] = "two-sided",
    mc_samples: Annotated[
        int,
        typer.Option(
            "--mc-samples",
            min=1,
            help="Random partitions per test too large to count exactly (above 21 vs 21).",
        ),
    ] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the Monte Carlo draws.")] = 0,
) -> None:
    """Run the WEAT/SEAT bias audit alone, on your own tests (seconds).

    Each test is named by its file; effect sizes with both standard-deviation
    conventions, two-sided p-values, Holm-adjusted p-values, and the smallest p-value
    each test can reach, so an underpowered test is marked rather than read as "no bias".
    """
    if not 0.0 < alpha < 1.0:
        raise FedembedError(f"--alpha {alpha:g} is outside (0, 1)", fix="give e.g. --alpha 0.05")
    from attacks.bias_audit import run_bias_audit
    from attacks.seat_tests import collect_bias_tests, load_bias_folder
    from embedding_core.cache import EmbeddingCache
    from embedding_core.encoder import Encoder
    from embedding_core.progress import Progress

    groups = [load_bias_folder(folder, option="--tests") for folder in tests or []]
    if not tests or with_default_tests:
        groups.insert(0, _default_suite(data_dir))
    family, renamed = collect_bias_tests(groups)
    sources = [str(group[0].path.parent) for group in groups if group and group[0].path]
    loaded = None
    if adapter is not None:
        from embedding_core.adapter import Adapter

        loaded = Adapter.load(adapter)
    encoder = Encoder.load(model, backend=encoder_backend)
    started = time.perf_counter()
    with Progress(len(family), what="bias tests", unit="tests") as meter:
        report = run_bias_audit(
            family,
            encoder,
            adapter=loaded,
            cache=EmbeddingCache(cache_dir),
            alternative=cast("Alternative", alternative),  # click.Choice checked it
            alpha=alpha,
            n_samples=mc_samples,
            seed=seed,
            progress=lambda done, _total: meter.advance(max(done - meter.done, 0)),
        )
    summary = bias_summary(report, renamed=renamed, sources=sources)
    summary["adapter"] = str(adapter) if adapter is not None else None
    rows = report.details["tests"]
    typer.echo(bias_table(rows))
    for line in _footer(summary):
        typer.echo(line)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / BIAS_JSON).write_text(
            json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        notes = "\n".join(f"- {line}" for line in _footer(summary))
        (out / BIAS_MD).write_text(
            f"# Bias audit: {report.target}\n\n{bias_table(rows, markdown=True)}\n\n{notes}\n",
            encoding="utf-8",
        )
        typer.echo(f"wrote {out / BIAS_JSON} and {out / BIAS_MD}")
    logger.info("audit bias: %d tests in %.1f s", len(rows), time.perf_counter() - started)
    if as_json:
        typer.echo(json.dumps(summary, allow_nan=False))
