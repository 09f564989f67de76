"""What the audit attacks and how hard: its inputs, its budgets and their profiles.

:class:`AuditInputs` names the audited model, adapter, index keyring, data and policy;
:class:`AuditConfig` sets the sample sizes and search budgets (``AuditConfig.quick()``
is the small profile for tests and smoke runs). ``DEFAULT_EPSILON`` and
``DEFAULT_DELTA`` stand in for the adapter's DP target when no adapter records one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from attacks.inversion_vocabulary import FREQUENT_MIN_ZIPF
from attacks.optimisation_inversion import SearchConfig
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND
from policies import LoadedPolicy

__all__ = ["DEFAULT_DELTA", "DEFAULT_EPSILON", "AuditConfig", "AuditInputs"]

DEFAULT_EPSILON = 8.0
DEFAULT_DELTA = 1e-5


@dataclass(frozen=True)
class AuditConfig:
    """How much the audit attacks (sample sizes and search budgets)."""

    bank_targets: int | None = 500
    claim_targets: int | None = 300
    public_per_source: int | None = None
    corpus_documents: int | None = None
    optimisation_targets: int = 20  # 0: the optimisation attack (and its vocabulary) is skipped
    search: SearchConfig = field(
        default_factory=lambda: SearchConfig(
            candidates=128,
            beam_width=1,
            min_word_gain=0.01,
            residual_rounds=1,
            word_forms=True,
            scaffold_words=24,
            rare_word_cost=0.02,
            form_prior=0.01,
        )
    )
    vocabulary_min_zipf: float | None = FREQUENT_MIN_ZIPF  # None: the tokenizer's words only
    word_map: bool = True  # shortlist by a word relevance learned on public sentences
    noise_sigmas: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2)
    kpa_pairs: int = 1000
    mia_models: int = 8  # shadow models per recipe (online LiRA's IN/OUT fits)
    mia_targets: int = 4  # target models per recipe, trained apart from the shadows
    bias_tests: tuple[str, ...] | None = None  # the suite's tests (those it holds); None: all
    bias_mc_samples: int = 100_000
    # SciFact documents the score-reconstruction gateway holds (None: the whole audit corpus,
    # as deployed; a smaller collection returns each document more often: a larger leak)
    score_documents: int | None = None
    score_probes: int = 2000  # probes per collection kind (0: the row is skipped)
    score_probes_ckks: int = 2000  # CKKS collections score every block per query: slower
    # The CKKS checks' time on this machine (None: fixed samples). Half goes to the CKKS
    # utility (a seeded sample of the test claims, at least 30), half to the probes sent
    # to the CKKS collection (at most score_probes_ckks, at least one batch of 50).
    ckks_seconds: float | None = None
    seed: int = 0

    @classmethod
    def quick(cls, *, ckks_seconds: float | None = None) -> AuditConfig:
        """A small audit (a few minutes after caching): for tests and smoke runs.

        The score-reconstruction row holds the quick corpus (1,500 documents: a larger
        leak per document than the deployed 5,183) and keeps its 2,000 probes at rest and
        under DCPE (the default budget answers 1,000 of them) but sends 200 to the CKKS
        collection, whose every query scores every block under encryption.
        ``ckks_seconds`` sizes the CKKS checks to the machine (see the field).
        """
        return cls(
            bank_targets=150,
            claim_targets=60,
            public_per_source=3000,
            corpus_documents=1500,
            optimisation_targets=4,
            search=SearchConfig(candidates=48, beam_width=1, max_words=8, refine_sweeps=0),
            vocabulary_min_zipf=None,
            noise_sigmas=(0.05, 0.2),
            kpa_pairs=500,
            mia_models=4,
            mia_targets=2,
            bias_tests=("weat1", "weat2", "weat7"),
            bias_mc_samples=2_000,
            score_documents=1500,
            score_probes_ckks=200,
            ckks_seconds=ckks_seconds,
        )


@dataclass(frozen=True)
class AuditInputs:
    """What is audited and against which policy."""

    policy: LoadedPolicy
    model: Path | None = None
    encoder_backend: str = DEFAULT_ENCODER_BACKEND  # the nodes' and the gateway's backend
    adapter: Path | None = None
    dcpe_keyring: Path | None = None
    ckks_key: Path | None = None  # the gateway's CKKS search key (CKKS collections deployed)
    index: Path | None = None
    data_dir: Path | None = None
    cache: Path | None = None
    members: Path | None = None
    wordnet: Path | None = None  # WordNet folder: its glosses join the word map's public text
    bias_tests: tuple[Path, ...] = ()  # folders of the auditor's SEAT tests, beside the suite
    # The auditor's own material (audit.auditor_data); None: the audit's default data.
    attribute_data: Path | None = None  # labelled records: half attacker's, half targets
    attribute_label: str | None = None  # the column holding the attribute
    attribute_text: str = "text"
    target_records: Path | None = None  # texts the inversion attacks try to recover
    target_text: str = "text"
    membership_records: Path | None = None  # node-format interactions: the game's pool
    membership_documents: Path | None = None  # the documents they point at
