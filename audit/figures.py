"""The audit report's figures, as embedded PNGs: privacy-utility, ROC, bias.

Each function draws with matplotlib's Agg backend (no display) into memory and returns
the report's figure entry ``{name, title, caption, png_base64}``; nothing touches disk.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from attacks.base import AttackReport
from attacks.membership_game import CONTROL

__all__ = ["bias_figure", "figures", "privacy_utility_figure", "roc_figure"]

logger = logging.getLogger(__name__)

DPI = 110
MIA_ATTACK = "membership_inference"
ROC_VARIANTS = ("lira online", "lira offline", "loss threshold", CONTROL)
_FLOOR = 1e-5


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def privacy_utility_figure(utility: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Strongest inversion F1 against SciFact nDCG@10, one point per protection."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for row in utility:
        marker = "*" if row.get("deployed") else "o"
        ax.scatter(row["ndcg10"], row["inversion_f1"], marker=marker, s=90 if marker == "*" else 40)
        ax.annotate(
            str(row["protection"]),
            (row["ndcg10"], row["inversion_f1"]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    ax.set(
        xlabel="SciFact test nDCG@10 (utility)",
        ylabel="strongest inversion F1 (leakage)",
        ylim=(0, max(1.0, max((r["inversion_f1"] for r in utility), default=1.0))),
    )
    ax.grid(alpha=0.3)
    return {
        "name": "privacy_utility",
        "title": "Privacy against utility, per protection",
        "caption": "Each point is one protection: x = retrieval quality it leaves, "
        "y = content-word F1 of the strongest inversion attack against it (lower is "
        "better); a star marks the deployed protection.",
        "png_base64": _png(fig),
    }


def roc_figure(reports: Sequence[AttackReport]) -> dict[str, str] | None:
    """Membership-inference ROC curves on log-log axes, per target recipe."""
    mia = [
        r for r in reports if r.attack == MIA_ATTACK and r.details.get("variant") in ROC_VARIANTS
    ]
    if not mia:
        return None
    plt = _pyplot()
    panels = list(dict.fromkeys(r.target for r in mia))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 4.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        lowest = 1.0
        for r in (r for r in mia if r.target == panel):
            fpr, tpr = np.asarray(r.details["roc_fpr"]), np.asarray(r.details["roc_tpr"])
            shown = fpr > 0
            lowest = min(lowest, float(r.metrics["lowest_fpr"]))
            ax.step(
                fpr[shown],
                np.maximum(tpr[shown], _FLOOR),
                where="post",
                label=f"{r.details['variant']} (AUC {r.metrics['auc']:.3f})",
            )
        ax.plot([_FLOOR, 1], [_FLOOR, 1], "k:", linewidth=0.8, label="chance")
        ax.set(
            xscale="log",
            yscale="log",
            xlim=(lowest / 2, 1),
            ylim=(1e-4, 1.05),
            xlabel="false-positive rate",
            ylabel="true-positive rate",
            title=panel,
        )
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7, loc="lower right")
    return {
        "name": "membership_roc",
        "title": "Membership inference ROC (log-log)",
        "caption": "True- against false-positive rate of each membership attack; the low-FPR "
        "end is what matters (Carlini et al. 2022). The dotted diagonal is guessing; the "
        "no-signal control (confidences shuffled across models) should lie on it.",
        "png_base64": _png(fig),
    }


def bias_figure(rows: Sequence[dict[str, Any]]) -> dict[str, str] | None:
    """WEAT/SEAT effect sizes: base model, fine-tuned model, GloVe reference."""
    if not rows:
        return None
    plt = _pyplot()
    names = [str(r["test"]) for r in rows]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 2), 4.2))
    series = [
        ("all-MiniLM-L6-v2", "effect_size"),
        ("+ adapter", "adapter_effect_size"),
        ("GloVe (Caliskan 2017)", "glove_reference"),
    ]
    width = 0.8 / len(series)
    for i, (label, key) in enumerate(series):
        values = [np.nan if r.get(key) is None else float(r[key]) for r in rows]
        if not np.all(np.isnan(values)):
            ax.bar(x + (i - 1) * width, values, width, label=label)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="effect size d")
    ax.legend(fontsize=7)
    return {
        "name": "bias_effect_sizes",
        "title": "Bias audit effect sizes (WEAT/SEAT)",
        "caption": "Cohen's-d-style effect sizes (sample standard deviation); 0.8 and above is "
        "conventionally large. GloVe values are Caliskan et al.'s published WEAT 1-10.",
        "png_base64": _png(fig),
    }


def figures(
    reports: Sequence[AttackReport],
    utility: Sequence[dict[str, Any]],
    bias: Sequence[dict[str, Any]],
) -> list[dict[str, str]]:
    """Every figure the report shows (those with data)."""
    drawn = [privacy_utility_figure(utility), roc_figure(reports), bias_figure(bias)]
    result = [f for f in drawn if f is not None]
    logger.info("figures: drew %d", len(result))
    return result
