"""Each stage's settings as data: frozen dataclasses that check themselves and hold each default once.

The library's functions take them (keyword arguments build them: ``create_summary(ds,
budget=0.2)`` is ``create_summary(ds, SummaryOptions(budget=0.2))``), runs record them
(`Options.to_dict`) and read them back (`Options.from_dict`, which also reads records written
before the options existed), and the command line and the operators' forms read each option's
default, range and help text from here (`Options.spec`, `add_option_arguments`). Importable
without torch, FiftyOne or open_clip.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TypeVar

from fiftyone_clipit.budget import Budget
from fiftyone_clipit.defaults import (
    ATTENTION_MODES,
    DEFAULT_BUDGET,
    DEFAULT_CAPTIONS,
    DEFAULT_CAPTIONS_FIELD,
    DEFAULT_CONCEPTS_FIELD,
    DEFAULT_FPS,
    DEFAULT_SCORE_FRAMES,
    DEFAULT_SCORER_PRESET,
    SCORE_FRAMES,
    ZERO_SHOT,
    check_attention,
)
from fiftyone_clipit.errors import ClipItError, OptionError
from fiftyone_clipit.index_layout import KINDS

if TYPE_CHECKING:
    from fiftyone_clipit.scorer import ScorerConfig

T = TypeVar("T", bound="Options")

SEGMENTATIONS = ("kts", "uniform", "shots")
#: how a fractional budget becomes frames: `summary.ROUNDING_MODES` less the h5 route's own
SUMMARY_ROUNDINGS = ("floor", "round")
PRECISIONS = ("fp32", "fp16", "int8")
#: how a benchmark scores test videos: a scorer trained per split, or the annotation's consensus
BENCHMARK_METHODS = ("train", "gtscore")
#: the published evaluation protocols `evaluate_summary` reproduces (docs/evaluation.md)
PROTOCOLS = ("tvsum", "summe", "qfvs", "qvhighlights")
#: how per-user figures combine: the mean over users, or the best user
F1_MODES = ("avg", "max")
#: where a frame index lives
BACKENDS = ("faiss", "milvus")
ON_BROKEN = ("fail", "keep")


@dataclass(frozen=True)
class Spec:
    """What the command line and the forms show of one option, and the values it takes.

    Attributes:
        help: one line for a flag's help and a form's description.
        label: the form's short label.
        low, high: bounds of a number (None: unbounded); `closed` includes `low`.
        integer: whole numbers only.
        choices: the values it takes, for a choice.
        optional: None is a value (meaning what `help` says).
    """

    help: str
    label: str = ""
    low: float | None = None
    high: float | None = None
    closed: bool = False
    integer: bool = False
    choices: tuple | None = None
    optional: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raises OptionError naming `name`, `value` and what it must be, unless `value` fits."""
        if value is None and self.optional:
            return
        if self.choices is not None:
            if value not in self.choices:
                raise OptionError(f"Unknown {name} {value!r}. Valid ones are {list(self.choices)}")
            return
        if self.low is None and self.high is None and not self.integer:
            return
        kind = numbers.Integral if self.integer else numbers.Real
        number = isinstance(value, kind) and not isinstance(value, bool)
        wanted = f"{'an integer' if self.integer else 'a finite number'} {self.bounds()}".rstrip()
        if not number or not math.isfinite(value) or not self._inside(value):
            raise OptionError(f"{name} must be {wanted}, got {value!r}")

    def _inside(self, value: float) -> bool:
        above = self.low is None or (value >= self.low if self.closed else value > self.low)
        return above and (self.high is None or value <= self.high)

    def bounds(self) -> str:
        """The range in words, e.g. "> 0" or "in [0, 1]"."""
        if self.low is not None and self.high is not None:
            return f"in {'[' if self.closed else '('}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{'>=' if self.closed else '>'} {self.low:g}"
        return f"<= {self.high:g}" if self.high is not None else ""


def option(default: Any, help: str, **rules: Any) -> Any:
    """A dataclass field with its `Spec` (help, label, range) beside its default."""
    return field(default=default, metadata={"spec": Spec(help, **rules)})


@dataclass(frozen=True)
class Options:
    """The base of each stage's options: checks every field against its `Spec` on creation."""

    def __post_init__(self) -> None:
        for item in fields(self):
            self.spec(item.name).check(item.name, getattr(self, item.name))
        self.check()

    def check(self) -> None:
        """Rules between fields; a subclass raises OptionError naming them."""

    @classmethod
    def spec(cls, name: str) -> Spec:
        """The `Spec` of the option `name`."""
        for item in fields(cls):
            if item.name == name:
                return item.metadata.get("spec") or Spec(name)
        raise KeyError(name)

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of the option `name`, as written once in its dataclass."""
        for item in fields(cls):
            if item.name == name:
                return item.default if item.default is not MISSING else item.default_factory()
        raise KeyError(name)

    @classmethod
    def of(cls: type[T], options: T | None = None, **settings: Any) -> T:
        """`options` (or the defaults) with `settings` replacing some of them.

        Raises:
            OptionError: a setting that is not an option of this stage (naming the options), or a
                value out of range.
        """
        names = {item.name for item in fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise OptionError(f"{cls.__name__} has no option {unknown[0]!r}; the options are {sorted(names)}")
        if options is not None and not isinstance(options, cls):
            raise OptionError(f"options must be a {cls.__name__}, got {type(options).__name__}")
        return replace(options, **settings) if options is not None else cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        """The options as a run records them (plain values)."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @classmethod
    def from_dict(cls: type[T], record: Mapping[str, Any]) -> T:
        """The options a run recorded: keys that are not options are ignored, missing ones take
        their defaults (records written before an option existed)."""
        names = {item.name for item in fields(cls)}
        return cls(**{name: value for name, value in record.items() if name in names})


def add_option_arguments(
    parser: argparse.ArgumentParser, options: type[Options], names: Sequence[str], flags: Mapping[str, str] | None = None
) -> None:
    """Adds a flag per option in `names` with the option's default, choices and help.

    `flags` renames a flag (option name -> flag); the default flag is ``--name-with-dashes``.
    The parsed value lands under the option's own name.
    """
    for name in names:
        spec, default = options.spec(name), options.default(name)
        flag = (flags or {}).get(name) or "--" + name.replace("_", "-")
        kind = int if spec.integer else float if spec.low is not None or spec.high is not None else str
        kwargs: dict[str, Any] = dict(dest=name, default=default, help=spec.help)
        if spec.choices is not None:
            kwargs["choices"] = [choice for choice in spec.choices if choice is not None]
        elif isinstance(default, bool):
            kwargs["action"] = "store_false" if default else "store_true"
        else:
            kwargs["type"] = kind
        parser.add_argument(flag, **kwargs)


@dataclass(frozen=True)
class EmbeddingOptions(Options):
    """How frames are sampled and embedded (`compute_frame_embeddings`)."""

    fps: float = option(DEFAULT_FPS, "frames sampled per second of video", label="Frames per second", low=0)
    batch_size: int = option(32, "frames per model call", label="Batch size", low=1, closed=True, integer=True)
    precision: str | None = option(
        None, "fp16 on cuda, fp32 elsewhere when not given; int8: a faster CPU path",
        label="Precision", choices=(None, *PRECISIONS),
    )
    on_broken: str = option(
        "fail", "a video that breaks off mid-stream: fail it, or keep the frames that decoded",
        label="Broken videos", choices=ON_BROKEN,
    )
    decoders: int | None = option(
        None, "decoder processes decoding videos at once (none: the cores the model leaves)",
        label="Decoders", low=1, closed=True, integer=True, optional=True,
    )


@dataclass(frozen=True)
class ShotOptions(Options):
    """How a video is cut into the shots a summary chooses from (`fiftyone_clipit.shots`)."""

    segmentation: str = option(
        "kts", "shots by KTS on the embeddings, of equal length, or from a shots field",
        label="Segmentation", choices=SEGMENTATIONS,
    )
    min_segment: float | None = option(
        None, "kts: the shortest shot in seconds (none: one sampled step)", label="Shortest shot (seconds)",
        low=0, optional=True,
    )
    max_segment: float = option(
        60.0, "kts: the longest shot in seconds (bounds KTS's memory)", label="Longest shot (seconds)", low=0
    )
    segment_seconds: float = option(2.0, "uniform: the shot length in seconds", label="Segment length (seconds)", low=0)
    shots_field: str | None = option(
        None, "shots: a TemporalDetections field holding each video's shots", label="Shots field", optional=True
    )
    vmax: float = option(1.0, "kts: the penalty's scale (see fiftyone_clipit.segmentation)", low=0)

    def check(self) -> None:
        if self.min_segment is not None and self.segmentation != "kts":
            other = "segment_seconds" if self.segmentation == "uniform" else "the shots you give"
            raise OptionError(f"min_segment applies to segmentation='kts'; for {self.segmentation!r} use {other}")
        if self.min_segment is not None and self.max_segment < 2 * self.min_segment:
            raise OptionError(
                f"max_segment must be at least twice min_segment, got {self.max_segment!r} (min_segment {self.min_segment!r})"
            )
        if self.segmentation == "shots" and not self.shots_field:
            raise OptionError("segmentation='shots' needs shots_field, a TemporalDetections field")
        if self.segmentation != "shots" and self.shots_field:
            raise OptionError(f"shots_field is only used with segmentation='shots', not {self.segmentation!r}")


@dataclass(frozen=True)
class SummaryOptions(ShotOptions):
    """How a summary is planned (`create_summary`): the shots, the budget, the storyboard.

    `budget` is a `Budget` or a number (a fraction of each video); it
    is recorded as ``budget`` and ``budget_unit``.
    """

    budget: Any = option(DEFAULT_BUDGET, "the share of each video the summary keeps", label="Budget")
    rounding: str = option(
        "floor", "how a fractional budget becomes frames", label="Rounding", choices=SUMMARY_ROUNDINGS
    )
    n_keyframes: int = option(
        8, "keyframes per video in the storyboard (0: none)", label="Keyframes", low=0, closed=True, integer=True
    )

    def check(self) -> None:
        object.__setattr__(self, "budget", Budget.of(self.budget))
        super().check()

    def to_dict(self) -> dict[str, Any]:
        record = super().to_dict()
        record["budget"], record["budget_unit"] = self.budget.record()
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> SummaryOptions:
        record = dict(record)
        if "budget" in record:
            record["budget"] = Budget.from_record(record["budget"], record.get("budget_unit") or "fraction")
        return super().from_dict(record)


@dataclass(frozen=True)
class ScoringOptions(Options):
    """How frames are scored for a query (`score_frames`)."""

    scorer: str = option(ZERO_SHOT, f"'{ZERO_SHOT}' or a checkpoint folder from `train`", label="Scorer")
    smoothing_seconds: float = option(
        1.0, "zero-shot: Gaussian smoothing over time in seconds (0: none)", label="Smoothing (seconds)",
        low=0, closed=True,
    )
    attention: str = option(
        "auto", "a trained scorer's temporal attention (auto: whole video up to 2,048 steps, then windows)",
        label="Attention", choices=ATTENTION_MODES,
    )
    n_captions: int = option(
        DEFAULT_CAPTIONS, "frames captioned per video for a generic summary's text", label="Captions",
        low=1, closed=True, integer=True,
    )
    batch_size: int = option(8, "videos per scorer call", label="Batch size", low=1, closed=True, integer=True)
    frames: str = option(
        DEFAULT_SCORE_FRAMES, "write the scores at the sampled steps (each holds until the next) or at every frame "
        "(15 times the frame documents at 2 fps of 30 fps video: docs/scale.md)", label="Frames written",
        choices=SCORE_FRAMES,
    )
    captioner: Any = option(
        None, "generic summaries: the captioner (a transformers image-to-text folder or hub id, or a callable "
        "frames -> sentences); none: caption-free text", label="Captioning model", optional=True,
    )
    captions_field: str = option(DEFAULT_CAPTIONS_FIELD, "the sample field a video's captions are written to")
    pretrained: str | None = option(
        None, "weights of the embeddings' model for the text (none: those the embeddings run recorded)",
        optional=True,
    )
    device: str | None = option(None, "torch device (none: cuda, then mps, then cpu)", optional=True)


@dataclass(frozen=True)
class SearchOptions(Options):
    """What a frame search returns (`search_frames`)."""

    k: int = option(10, "frames to return (at most one moment per video and second)", label="Frames to return",
                    low=1, closed=True, integer=True)
    clip_seconds: float = option(2.0, "length of the moment around each hit frame, in seconds",
                                 label="Moment length (seconds)", low=0)


@dataclass(frozen=True)
class EvaluationOptions(Options):
    """How `evaluate_summary` evaluates: the protocol, how users combine, and the fields and
    lengths it reads besides the summary and the ground truth."""

    protocol: str = option("tvsum", "the published protocol (docs/evaluation.md)", label="Protocol",
                           choices=PROTOCOLS)
    mode: str | None = option(None, "over users: avg or max (none: the protocol's, max for summe, else avg)",
                              label="Users", choices=(None, *F1_MODES))
    score_field: str | None = option(
        None, "frame field of predicted scores: rank correlation, highlights (none: clipit_score where needed)",
        optional=True,
    )
    gt_score_field: str | None = option(
        None, "frame field of users' per-frame scores: adds Kendall tau and Spearman rho", optional=True
    )
    concepts_field: str = option(DEFAULT_CONCEPTS_FIELD, "qfvs: the sample field of each shot's concepts")
    shot_seconds: float = option(5.0, "qfvs: the shot length in seconds", low=0)
    clip_seconds: float = option(2.0, "qvhighlights: the clip length in seconds", low=0)


@dataclass(frozen=True)
class BenchmarkOptions(Options):
    """How `fiftyone_clipit.benchmark.run_benchmark` scores each split's test videos."""

    preset: str = option(DEFAULT_SCORER_PRESET, "the scorer's shapes (a preset of models/scorer-*.json)", label="Scorer preset")
    method: str = option("train", "train a scorer per split, or score the test videos with their annotation's "
                                  "consensus (gtscore: checks the protocol and the files)", choices=BENCHMARK_METHODS)
    captions: bool = option(False, "read each features file's caption embeddings as the text (else caption-free)")
    h5_features: bool = option(False, "with h5 files: train on the files' own GoogLeNet features")


@dataclass(frozen=True)
class IndexOptions(Options):
    """How the frame index is built and where it lives (`build_frame_index`)."""

    kind: str = option("auto", "auto: flat to 20,000 frames, IVF to 1M, compressed IVF-PQ past that",
                       label="Index kind", choices=KINDS)
    target_recall: float = option(0.95, "recall@10 the IVF search settings must reach", label="Target recall",
                                  low=0, high=1)
    backend: str = option("faiss", "where the index lives: a FAISS file, or a Milvus collection",
                          label="Backend", choices=BACKENDS)
    uri: str | None = option(None, "Milvus: the server (http://host:19530) or a Milvus Lite file; "
                                   "none: a Lite file beside the store", optional=True)
    collection: str | None = option(None, "Milvus: the collection (none: clipit_frames_<dataset>)", optional=True)


@dataclass(frozen=True)
class EncodeOptions(Options):
    """How outputs are encoded (`fiftyone_clipit.reels`)."""

    crf: int = option(20, "x264 constant rate factor: lower is better and larger (18-23 looks good)",
                      label="Quality (CRF)", low=0, high=51, closed=True, integer=True)
    preset: str = option("veryfast", "x264 speed preset", label="Encoder speed",
                         choices=("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                                  "slower", "veryslow"))
    audio_bitrate: int = option(128_000, "AAC bit rate in bits per second", low=8_000, closed=True, integer=True)

    @property
    def encoding(self) -> EncodeOptions:
        """Only the encoding options (an `ExportOptions` holds more)."""
        return EncodeOptions(**{item.name: getattr(self, item.name) for item in fields(EncodeOptions)})


@dataclass(frozen=True)
class ExportOptions(EncodeOptions):
    """What `export_summary` writes per video, and how it encodes."""

    clips: bool = option(True, "one mp4 per summary segment")
    reel: bool = option(True, "one mp4 of the whole summary")
    storyboard: bool = option(True, "one storyboard PNG of the keyframes")
    name_field: str | None = option(
        None, "a sample field naming each video's files (none: the file name)", optional=True
    )

    def check(self) -> None:
        if not (self.clips or self.reel or self.storyboard):
            raise OptionError("Nothing to export: clips, reel and storyboard are all False")


MODES = ("supervised", "unsupervised")
#: the default peak learning rate times the scorer's model_dim (see TrainingOptions.learning_rate)
LEARNING_RATE_TIMES_WIDTH = 0.1


@dataclass(frozen=True)
class TrainingOptions:
    """How to train.

    Attributes:
        mode: "supervised" (BCE + reconstruction + diversity) or "unsupervised" (the last two).
        epochs: most passes over the training videos.
        batch_size: videos per optimiser step.
        learning_rate: AdamW's peak learning rate; None scales it with the scorer's width,
            `LEARNING_RATE_TIMES_WIDTH / model_dim` (3.1e-3 for the tiny preset, 2e-4 for paper),
            as Adam's stable step shrinks with width.
        warmup_epochs: epochs of linear warm-up to the peak; a cosine decay to zero follows.
        weight_decay: AdamW's.
        bce_weight, reconstruction_weight, diversity_weight: the losses' weights.
        validation_fraction: share of the training videos held out for model selection.
        patience: stop after this many epochs without a better validation figure (None: never).
        seed: seeds the split, the initial weights, the batch order and dropout.
        proportion: summary budget for the validation F1.
        f1_mode: "avg" over users (TVSum) or "max" (SumMe).
        attention: the scorer's temporal attention, "auto", "full" or "windowed".
        max_segment: the longest KTS shot (seconds) of the validation summaries, cut as
            `create_summary` cuts them.
    """

    mode: str = "supervised"
    epochs: int = 60
    batch_size: int = 4
    learning_rate: float | None = None
    warmup_epochs: int = 5
    weight_decay: float = 1e-2
    bce_weight: float = 1.0
    reconstruction_weight: float = 1.0
    diversity_weight: float = 1.0
    validation_fraction: float = 0.2
    patience: int | None = 20
    seed: int = 0
    proportion: float = DEFAULT_BUDGET
    f1_mode: str = "avg"
    attention: str = "auto"
    max_segment: float = ShotOptions.max_segment

    def __post_init__(self) -> None:
        check_attention(self.attention)
        if self.warmup_epochs < 0:
            raise ClipItError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.mode not in MODES:
            raise ClipItError(f"Unknown training mode '{self.mode}'; the available modes are {list(MODES)}")
        if self.f1_mode not in ("avg", "max"):
            raise ClipItError(f"Unknown F1 mode '{self.f1_mode}'; the available modes are ['avg', 'max']")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise ClipItError(f"learning_rate must be in (0, 1) or None (scaled with width), got {self.learning_rate!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ClipItError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not 0 <= self.validation_fraction < 1:
            raise ClipItError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if min(self.bce_weight, self.reconstruction_weight, self.diversity_weight) < 0:
            raise ClipItError("Loss weights must be >= 0")

    def peak_learning_rate(self, config: ScorerConfig) -> float:
        """The learning rate after warm-up: the one given, or the width-scaled default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return LEARNING_RATE_TIMES_WIDTH / config.model_dim

    def loss_weights(self) -> dict[str, float]:
        """The weight of each loss this mode uses."""
        weights = {"reconstruction": self.reconstruction_weight, "diversity": self.diversity_weight}
        return {"bce": self.bce_weight, **weights} if self.mode == "supervised" else weights
