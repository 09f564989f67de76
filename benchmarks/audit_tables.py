"""Markdown tables for benchmarks/RESULTS.md from an audit's report.json.

    .venv/bin/python benchmarks/audit_tables.py out/demo/audit/report.json

Prints: attack success per protection and target (with run times), membership inference,
the policy checks, and the total run time. Reads only the report (no attack is re-run).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

INVERSIONS = ("optimisation_inversion", "nearest_neighbour_inversion")


def _f(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def inversion_table(report: dict[str, Any]) -> list[str]:
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    seconds: dict[str, float] = defaultdict(float)
    for row in report["attacks"]:
        protection = row["details"].get("protection")
        if protection is None:
            continue
        seconds[row["attack"]] += row["seconds"]
        if row["attack"] in INVERSIONS:
            target = row["target"].split(" ")[0]
            key = f"{row['attack'].split('_')[0]} {target}"
            targets = int(row["metrics"].get("texts", 0))
            cells[protection][key] = f"{_f(row['metrics']['f1'])} (n={targets})"
        elif row["attack"] == "attribute_inference":
            # target: "<set> <attribute> <protection>", e.g. "scifact-docs owning-node raw"
            attribute = row["target"].split(" ")[1]
            if row["details"].get("attacker") == "adaptive":  # probe trained on protected text
                attribute += " adaptive"
            cells[protection][attribute] = _f(row["metrics"]["accuracy"])
    utility = {u["protection"]: u for u in report["utility"]}
    columns = [
        "optimisation banking77-test",
        "nearest banking77-test",
        "optimisation scifact-claims",
        "nearest scifact-claims",
        "intent",
        "intent adaptive",
        "owning-node",
    ]
    lines = [
        "| protection | " + " | ".join(columns) + " | SciFact nDCG@10 | deployed |",
        "|---" * (len(columns) + 3) + "|",
    ]
    for protection, row in cells.items():
        u = utility.get(protection, {})
        values = " | ".join(row.get(c, "-") for c in columns)
        lines.append(
            f"| {protection} | {values} | {_f(u.get('ndcg10'), 4)} | "
            f"{'yes' if u.get('deployed') else ''} |"
        )
    lines.append("")
    lines.append(
        "Run time per attack (s): "
        + ", ".join(f"{name} {value:.0f}" for name, value in seconds.items())
    )
    return lines


def membership_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| target | attack | AUC | TPR@0.1% FPR | TPR@1% FPR | GDP AUC bound |",
        "|---" * 6 + "|",
    ]
    for row in report["attacks"]:
        if row["attack"] != "membership_inference":
            continue
        m, d = row["metrics"], row["details"]
        lines.append(
            f"| {row['target']} | {d.get('variant')} | {_f(m['auc'])} | "
            f"{_f(m['tpr@0.1%fpr'], 4)} | {_f(m['tpr@1%fpr'], 4)} | {_f(d.get('auc_bound_gdp'))} |"
        )
    return lines


def checks_table(report: dict[str, Any]) -> list[str]:
    lines = ["| check | metric | value | limit | status |", "|---" * 5 + "|"]
    for c in report["checks"]:
        lines.append(
            f"| {c['id']} | {c['metric']} | {_f(c['value'])} | {c['comparison']} "
            f"{c['threshold']:g} | {c['status']} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    report = json.loads(parser.parse_args().report.read_text(encoding="utf-8"))
    for block in (inversion_table(report), membership_table(report), checks_table(report)):
        print("\n".join(block), end="\n\n")
    print(f"audit run time: {report.get('seconds')} s; JSON SHA-256 in report.json.sha256")


if __name__ == "__main__":
    main()
