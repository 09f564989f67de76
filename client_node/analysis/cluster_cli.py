"""``fedembed node analyse cluster``: group the node's records and say what each group is.

    fedembed node analyse cluster --input FILE [--k K | --k-range 2:30] \
        [--method kmeans|density] [--label-column COL] [--text-column COL] \
        [--id-column COL] [--out DIR] [--adapter DIR] [--seed N] [--json]

``--method kmeans`` (default) runs k-means with ``--k`` clusters, or picks k in
``--k-range`` (default 2:30) by the silhouette of a seeded sample; ``--method density``
runs HDBSCAN, which finds k itself and reports records in no dense region as noise.
Each cluster is printed with its size and top terms; ``--label-column`` adds NMI and ARI
against the labels. ``--out`` writes ``clusters.json`` (sizes, descriptions with the
representative records, quality), ``assignments.jsonl`` and ``map.png``. Nothing leaves
the node; texts are never logged (they go only to the node's own ``clusters.json``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import click
import typer

from client_node.analysis.options import (
    IdColumnOpt,
    InputOpt,
    LabelColumnOpt,
    OutOpt,
    SeedOpt,
    TextColumnOpt,
    emit,
    record_encoder,
)
from embedding_core.cli import (
    AdapterOpt,
    CacheOpt,
    EncoderBackendOpt,
    JsonOpt,
    ModelOpt,
    in_cli_words,
)
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND
from embedding_core.errors import DataFormatError, FedembedError

__all__ = ["cluster_cmd", "parse_k_range"]

METHOD_CHOICES = ("kmeans", "density")  # client_node.analysis.cluster.CLUSTER_METHODS
CLUSTERS_SHOWN = 10
TERMS_SHOWN = 5
CLI_WORDS = {
    "both k and k_range": "both --k and --k-range",
    "k or k_range": "--k or --k-range",
    "k and k_range": "--k and --k-range",
    "k (a fixed number": "--k (a fixed number",
    "k_range (k chosen": "--k-range (k chosen",
    "k of at least 2": "--k of at least 2",
    "a smaller k (": "a smaller --k (",
    "low end of k_range": "low end of --k-range",
    "k_range=": "--k-range ",
    "k=": "--k ",
    "min_cluster_size=": "--min-cluster-size ",
    "min_cluster_size": "--min-cluster-size",
    "method=": "--method ",
}
_RANGE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_k_range(value: str | None) -> tuple[int, int] | None:
    """``--k-range``: ``LOW:HIGH``, two whole numbers with ``2 <= LOW <= HIGH``."""
    if value is None:
        return None
    match = _RANGE.match(value)
    if match is None:
        raise typer.BadParameter(
            f"{value!r} is not a range: expected LOW:HIGH, two whole numbers such as 2:30 "
            "(k is chosen by silhouette between them, both included)"
        )
    low, high = int(match.group(1)), int(match.group(2))
    if low < 2 or high < low:
        raise typer.BadParameter(
            f"{value!r} is not a range of cluster counts: expected LOW:HIGH with "
            "2 <= LOW <= HIGH, such as 2:30"
        )
    return low, high


def _k_range_valid(value: str | None) -> str | None:
    parse_k_range(value)
    return value


def _k_at_least_two(value: int | None) -> int | None:
    if value is not None and value < 2:
        raise typer.BadParameter(
            f"{value} is fewer than 2 clusters: expected a number of clusters of at least 2 "
            "(or leave --k out to choose k by silhouette over --k-range)"
        )
    return value


KOpt = Annotated[
    int | None,
    typer.Option(
        "--k",
        callback=_k_at_least_two,
        help="Number of k-means clusters (at least 2); leave out to choose k by "
        "silhouette over --k-range.",
    ),
]
KRangeOpt = Annotated[
    str | None,
    typer.Option(
        "--k-range",
        metavar="LOW:HIGH",
        callback=_k_range_valid,
        help="Range of k tried when --k is left out (both ends included): the k with the "
        "best silhouette on a seeded sample wins. Default 2:30.",
    ),
]
MethodOpt = Annotated[
    str,
    typer.Option(
        "--method",
        click_type=click.Choice(METHOD_CHOICES),
        help="kmeans: k-means++ and Lloyd (k from --k or --k-range); density: HDBSCAN, "
        "which finds k itself and reports noise.",
        show_default=True,
    ),
]
MinClusterSizeOpt = Annotated[
    int,
    typer.Option(
        "--min-cluster-size",
        min=2,
        help="--method density: fewest records a cluster may have.",
        show_default=True,
    ),
]


def _lines(result: dict[str, Any], clusters: list[Any], out: str | None) -> list[str]:
    how = {
        "given": "--k",
        "silhouette": "chosen by silhouette",
        "density": "found by density",
    }[result["k_chosen_by"]]
    head = (
        f"cluster: {result['records']} records in {result['k']} clusters "
        f"({result['method']}, k {how}"
    )
    if result["method"] == "density":
        head += f"; {result['noise']} noise records ({100 * result['noise_fraction']:.1f}%)"
    lines = [head + ")"]
    quality = [
        f"silhouette {result['silhouette']:.4f}"
        if result["silhouette"] is not None
        else "silhouette n/a (fewer than 2 clusters)"
    ]
    if result["nmi"] is not None:
        quality.append(f"NMI {result['nmi']:.4f}, ARI {result['ari']:.4f} against --label-column")
    if result.get("nmi_clustered") is not None:
        quality.append(
            f"on clustered records NMI {result['nmi_clustered']:.4f}, "
            f"ARI {result['ari_clustered']:.4f}"
        )
    lines.append("; ".join(quality))
    biggest = sorted(clusters, key=lambda c: (-c.size, c.cluster))[:CLUSTERS_SHOWN]
    for description in biggest:
        terms = ", ".join(t for t, _ in description.top_terms[:TERMS_SHOWN]) or "-"
        label = (
            f", mostly {description.majority_label} ({100 * description.purity:.0f}%)"
            if description.majority_label is not None and description.purity is not None
            else ""
        )
        lines.append(
            f"  cluster {description.cluster}: {description.size} records [{terms}]{label}"
        )
    if len(clusters) > CLUSTERS_SHOWN:
        lines.append(f"  ... and {len(clusters) - CLUSTERS_SHOWN} smaller clusters")
    if out is not None:
        lines.append(f"wrote {out}: clusters.json, assignments.jsonl, map.png")
    return lines


def cluster_cmd(
    input_path: InputOpt,
    k: KOpt = None,
    k_range: KRangeOpt = None,
    method: MethodOpt = "kmeans",
    min_cluster_size: MinClusterSizeOpt = 15,
    label_column: LabelColumnOpt = None,
    text_column: TextColumnOpt = "text",
    id_column: IdColumnOpt = None,
    out: OutOpt = None,
    adapter: AdapterOpt = None,
    model: ModelOpt = None,
    encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND,
    cache_dir: CacheOpt = None,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Group the records by meaning: k-means or density; describe and map the groups.

    Prints each cluster's size and top terms, the silhouette, and NMI/ARI against
    --label-column when given. --out writes clusters.json (sizes, representative records,
    top terms, quality), assignments.jsonl (each record's cluster, -1 for noise) and
    map.png (a 2-D PCA map). Nothing leaves the node.
    """
    from analytics import load_labelled_texts
    from client_node.analysis.cluster import cluster_records

    span = parse_k_range(k_range)
    records = load_labelled_texts(
        input_path, text_column=text_column, label_column=label_column, id_column=id_column
    )
    encoder = record_encoder(model, encoder_backend, adapter, cache_dir)
    try:
        report = cluster_records(
            records,
            encoder,
            k=k,
            k_range=span,
            method=method,
            out=out,
            seed=seed,
            min_cluster_size=min_cluster_size,
        )
    except FedembedError as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise in_cli_words(exc, CLI_WORDS) from exc
    result = {**report.summary(), "out": str(out) if out is not None else None}
    emit(_lines(result, report.clusters, result["out"]), result, as_json=as_json)
