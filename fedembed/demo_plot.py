"""The main job's plot: SciFact test nDCG@10 per round of each federation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_rounds"]


def plot_rounds(rows: list[dict[str, Any]], path: Path) -> None:
    """Plot each row's nDCG@10 per round; base and centralised as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        per_round = row.get("per_round")
        if per_round:
            rounds = sorted(per_round, key=int)
            ax.plot(
                [int(r) for r in rounds],
                [100 * per_round[r] for r in rounds],
                marker="o",
                label=row["setting"],
            )
    for row in rows:
        if row["setting"].startswith(("base", "centralised")):
            ax.axhline(100 * row["ndcg@10"], linestyle="--", linewidth=1, color="grey")
            ax.annotate(row["setting"], (0, 100 * row["ndcg@10"]), fontsize=8)
    ax.set_xlabel("round")
    ax.set_ylabel("SciFact test nDCG@10")
    ax.set_title("Federated query adapter (3 nodes, CKKS, DP-SGD per node)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
