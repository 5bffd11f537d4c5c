"""Names and defaults the library, the command line and the operators share, with no heavy imports.

Importing this module loads neither torch nor open_clip, so the plugin's operators load and
`fiftyone-clipit --help` prints without them; the modules that do the work import it too, so a
default is written once.
"""

from __future__ import annotations

import argparse
import json
from importlib import resources
from typing import Callable, Union

from fiftyone_clipit.errors import ClipItError

PRESETS_PACKAGE = "fiftyone_clipit.presets"

#: how long work reports progress: False/None silent, True a tqdm bar, or a callable(fraction, label)
#: (e.g. an operator's progress)
Progress = Union[bool, None, Callable[[float, str], None]]

#: the CLIP model used when none is named
DEFAULT_MODEL = "ViT-B-32"
#: the random-weight model the demo falls back to, with a banner, when DEFAULT_MODEL's weights are missing
FALLBACK_MODEL = "tiny-random"
#: the scorer preset used when none is named
DEFAULT_SCORER_PRESET = "paper"
#: the scorer that needs no training: CLIP frame-query similarity, smoothed over time
ZERO_SHOT = "zero-shot"
#: which frames `score_frames` writes: the sampled steps (each score holds until the next step,
#: as the protocol upsamples; readers rebuild every frame exactly) or every frame of the video
SCORE_FRAMES = ("steps", "every")
DEFAULT_SCORE_FRAMES = "steps"
#: the scorer's temporal attention: whole video, windows, or whole up to a length then windows
ATTENTION_MODES = ("auto", "full", "windowed")

#: the fields and run keys CLIP-It writes unless told otherwise
DEFAULT_SCORE_FIELD = "clipit_score"
DEFAULT_SUMMARY_FIELD = "clipit_summary"
DEFAULT_CAPTIONS_FIELD = "clipit_captions"
DEFAULT_EVAL_KEY = "clipit_eval"
DEFAULT_BRAIN_KEY = "clipit_frames"
DEFAULT_MATCHES_FIELD = "clipit_matches"
DEFAULT_RELEVANCE_FIELD = "clipit_relevance"
DEFAULT_HIGHLIGHTS_FIELD = "clipit_highlights"
#: the sample field holding each QFVS shot's concepts (`add_qfvs_annotations`)
DEFAULT_CONCEPTS_FIELD = "gt_shot_concepts"
#: how a highlight reel orders its moments: best first, or by video and time
HIGHLIGHT_ORDERS = ("relevance", "source")

#: frames sampled per second of video for embeddings
DEFAULT_FPS = 2.0
#: the share of each video a summary keeps
DEFAULT_BUDGET = 0.15
#: the budget the App's form offers when a length in seconds is chosen
DEFAULT_BUDGET_SECONDS = 30.0
#: the frame rate assumed for a video whose metadata has none
FALLBACK_FRAME_RATE = 30.0
#: frames captioned per video for the text of generic summaries
DEFAULT_CAPTIONS = 7
DEMO_DATASET = "clipit-demo"
DEMO_QUERY = "a rabbit in the grass"

_SCORER_PREFIX = "scorer-"


def clip_model_presets() -> dict[str, dict]:
    """The named CLIP models of `models/clip_models.json`: name -> {architecture, pretrained, description}."""
    return json.loads(resources.files(PRESETS_PACKAGE).joinpath("clip_models.json").read_text())


def scorer_preset_files() -> dict:
    """The scorer presets shipped under `models/`: name -> its `scorer-<name>.json` resource."""
    return {
        entry.name[len(_SCORER_PREFIX) : -len(".json")]: entry
        for entry in resources.files(PRESETS_PACKAGE).iterdir()
        if entry.name.startswith(_SCORER_PREFIX) and entry.name.endswith(".json")
    }


def list_scorer_presets() -> list[str]:
    """Names of the scorer presets shipped under `models/` (`scorer-<name>.json`)."""
    return sorted(scorer_preset_files())


def check_attention(attention: str) -> str:
    """`attention` if it is a known mode, else a ClipItError naming the modes."""
    if attention not in ATTENTION_MODES:
        raise ClipItError(f"Unknown attention '{attention}'; choose one of {list(ATTENTION_MODES)}")
    return attention


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default (the CLI's and the benchmarks'), unless its text
    already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, []) or not action.option_strings:
            return text
        return super()._get_help_string(action)

