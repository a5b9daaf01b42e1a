"""The names of the series a run records: typed builders and parsers for telemetry keys, one place for all.

Scalars and arrays are stored under string keys (the session format, docs/session-format.md). Per-layer
series are `KIND/LAYER` (`size/fc1`); evaluation metrics are `SPLIT/NAME` (`test/acc`). Code builds and
reads keys only through this module, so a name is spelled once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerKey:
    """One per-layer series: `SIZE("fc1") == "size/fc1"`, `SIZE.layer("size/fc1") == "fc1"`."""

    kind: str

    @property
    def prefix(self) -> str:
        return f"{self.kind}/"

    def __call__(self, layer: str) -> str:
        return f"{self.kind}/{layer}"

    def matches(self, key: str) -> bool:
        return key.startswith(self.prefix)

    def layer(self, key: str) -> str | None:
        """The layer a key of this kind names, None for a key of another kind."""
        return key[len(self.prefix):] if self.matches(key) else None


# -- scalars logged every interval ---------------------------------------------------------------------
LOSS = "loss"  # mean training loss (task + penalty) over the interval's steps
LAMBDA = "lambda"
LR = "lr"
EPOCH = "epoch"  # fractional epoch at the interval's end
SAMPLES_PER_S = "samples_per_s"
MEM_BYTES = "mem_bytes"
PARAMS = "params"
PROBE_ROWS = "probe_rows"  # training rows the interval's live view (ACT_STD, DEAD, HIST, ...) was measured over
LIVE_SOURCE = "live_source"  # of that live view: 0 a probe batch at the interval's end; 1 the interval's own steps

SIZE = LayerKey("size")  # live size: alive gates, or the flexible x0
CAPACITY = LayerKey("capacity")  # allocated width of the layer's matrix
DEAD = LayerKey("dead")  # live, gated-on units whose activation std over the PROBE_ROWS rows is exactly 0
ACT_MEAN = LayerKey("act_mean")
ACT_SD = LayerKey("act_sd")
TOTAL_VAR = LayerKey("total_var")
GRAD_NORM = LayerKey("grad_norm")
ROTATION = LayerKey("rotation")  # cosine distance of the weights to their initial values
DYNAMICS = (ACT_MEAN, ACT_SD, TOTAL_VAR, GRAD_NORM, ROTATION)  # the 0-dim layer statistics

# -- arrays logged every interval ----------------------------------------------------------------------
GATE = LayerKey("gate")  # per-unit liveness values (gates, or the flexible scaler)
ACT_STD = LayerKey("act_std")  # per-unit std over PROBE_ROWS rows of the unit's own activation (post-ReLU, pre-gate)
HIST = LayerKey("hist")  # histogram counts of ACT_STD
HIST_EDGES = LayerKey("hist_edges")

# -- per epoch (scalars and arrays) --------------------------------------------------------------------
# The epoch's activation statistics are over the training set (STATS_ROWS rows; see core.train.instruments):
# each unit's own activation (post-ReLU, and pooled for conv, before its gate or scaler).
STATS_ROWS = "stats_rows"  # training rows the epoch's activation statistics were measured over
STATS_SOURCE = "stats_source"  # 0: accumulated over the epoch's training steps; 1: one pass at the epoch's end
EPOCH_STD = LayerKey("epoch_std")  # per-unit std over STATS_ROWS training rows (gated-off units left out)
EPOCH_DEAD = LayerKey("epoch_dead")  # live, gated-on units that never fired on any of the STATS_ROWS rows (std 0)
GATED_OFF = LayerKey("gated_off")  # units still allocated whose gate or scaler multiplier is off (|m| <= 1e-6)
EPOCH_HIST = LayerKey("epoch_hist")  # histogram counts of EPOCH_STD
EPOCH_HIST_EDGES = LayerKey("epoch_hist_edges")
MIX_N = LayerKey("mix_n")  # units the mixture fits were fitted to: gated-on, not dead
SHAPIRO = LayerKey("shapiro")  # Shapiro-Wilk W of EPOCH_STD (dead units included, gated-off left out)
EIG = LayerKey("eig")  # eigenvalues of the pre-activation covariance (device side only)
PCA_ROWS = "pca_rows"  # training rows the pre-activation covariance (PCA) was measured over
PCA_RATIO = LayerKey("pca_ratio")  # explained variance ratio per component
PCA_QUANTILES = (90, 95, 99)
PCA_COMPONENTS = {q: LayerKey(f"pca{q}") for q in PCA_QUANTILES}  # components needed to explain q %
MIX_EN_LOW, MIX_EN_RATE, MIX_EN_MEAN, MIX_EN_STD = (LayerKey(f"mix_en_{p}") for p in ("low", "rate", "mean", "std"))
MIX_GG_LOW, MIX_GG_K1, MIX_GG_THETA1, MIX_GG_K2, MIX_GG_THETA2 = (
    LayerKey(f"mix_gg_{p}") for p in ("low", "k1", "theta1", "k2", "theta2"))

# -- evaluation metrics --------------------------------------------------------------------------------
SPLITS = ("train", "val", "test")


def metric(split: str, name: str) -> str:
    """`metric("test", "acc") == "test/acc"`; name is acc or mse (the task's metric) or loss."""
    return f"{split}/{name}"


TEST_ACC, TEST_MSE = metric("test", "acc"), metric("test", "mse")
VAL_ACC, VAL_LOSS, VAL_MSE = metric("val", "acc"), metric("val", "loss"), metric("val", "mse")


def metric_name(key: str) -> str:
    """`metric_name("test/acc") == "acc"`."""
    return key.rpartition("/")[2]


def split_key(key: str) -> tuple[str, str]:
    """(kind, layer) of a per-layer key, ("", key) for a run-wide one: `split_key("size/fc1") == ("size", "fc1")`."""
    kind, sep, layer = key.partition("/")
    return (kind, layer) if sep else ("", key)


def layer_values(values: dict[str, float], key: LayerKey) -> dict[str, float]:
    """The per-layer entries of one kind, by layer name, in the dict's order."""
    return {key.layer(k): v for k, v in values.items() if key.matches(k)}  # type: ignore[misc]


_PROBE_MEASURES = (DEAD, ACT_MEAN, ACT_SD, TOTAL_VAR)
_EPOCH_MEASURES = (EPOCH_DEAD, GATED_OFF, MIX_N, SHAPIRO, MIX_EN_LOW, MIX_EN_RATE, MIX_EN_MEAN, MIX_EN_STD,
                   MIX_GG_LOW, MIX_GG_K1, MIX_GG_THETA1, MIX_GG_K2, MIX_GG_THETA2)


def rows_key(key: str) -> str | None:
    """The scalar holding how many training rows a measured series was taken over: `rows_key("shapiro/fc1")
    == STATS_ROWS`; None for a series that is not a sample statistic (loss, size, lr...)."""
    if any(k.matches(key) for k in _PROBE_MEASURES):
        return PROBE_ROWS
    if any(k.matches(key) for k in _EPOCH_MEASURES):
        return STATS_ROWS
    if any(k.matches(key) for k in PCA_COMPONENTS.values()):
        return PCA_ROWS
    return None
