"""The plugin as FiftyOne sees it: discovery, registration, forms and execution."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
import pytest
import yaml
from fiftyone.operators.executor import ExecutionContext
from fiftyone.operators.registry import OperatorRegistry

from conftest import REPO
from fiftyone_clipit import add_videos, compute_frame_embeddings, create_summary, score_frames
from fiftyone_clipit.fo.common import embedding_store

PLUGIN = "@clipit/video-summarization"
MANIFEST = yaml.safe_load((REPO / "fiftyone.yml").read_text())


def uri(name: str) -> str:
    return f"{PLUGIN}/{name}"


def test_every_manifest_operator_registers_without_errors():
    registry = OperatorRegistry()
    assert registry.list_errors() == []
    names = {op.uri for op in registry.list_operators()}
    assert MANIFEST["name"] == PLUGIN
    for name in MANIFEST["operators"]:
        assert uri(name) in names


def test_fiftyone_cli_lists_every_operator_but_the_custom_metric():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "fiftyone"), "operators", "list"],
        capture_output=True, text=True, check=True,
    ).stdout
    for name in MANIFEST["operators"]:
        assert (uri(name) in out) == (name != "frame_overlap_f1")  # the metric is unlisted


@pytest.fixture(scope="module")
def dataset(video_dir, tiny_encoder):
    ds = fo.Dataset(f"clipit-plugin-{uuid.uuid4().hex[:8]}")
    add_videos(ds, [str(video_dir)])
    compute_frame_embeddings(ds, model=tiny_encoder)
    score_frames(ds, "a person", model=tiny_encoder)
    create_summary(ds)
    ds.set_values("gt", [fo.TemporalDetections(detections=[fo.TemporalDetection(label="gt", support=[1, 10])])] * len(ds))
    return ds


@pytest.fixture
def dataset_copy(dataset):
    """A copy of the module's `dataset` for a test that writes to it (same sample ids: same embeddings)."""
    copy = dataset.clone()
    yield copy
    copy.delete()


def form(name: str, dataset: fo.Dataset, params: dict):
    operator = foo.get_operator(uri(name))
    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
    return operator.resolve_input(ctx).type.properties


def invalid(properties) -> dict[str, str]:
    return {k: p.error_message for k, p in properties.items() if getattr(p, "invalid", False)}


VALID = {
    "add_videos": {"paths": "videos/a.mp4"},
    "compute_frame_embeddings": {"model": "tiny-random", "fps": 2.0},
    "score_frames": {"query": "a person", "score_field": "clipit_score", "smoothing_seconds": 1.0},
    "create_summary": {"score_field": "clipit_score", "summary_field": "s", "budget": 0.15, "segment_seconds": 2.0},
    "evaluate_summary": {"gt_field": "gt", "pred_field": "clipit_summary", "eval_key": "e", "mode": "avg"},
    "export_summary": {"export_dir": "~/clips-out", "summary_field": "clipit_summary"},
    "frame_overlap_f1": {"mode": "avg"},
    "train_scorer": {"mode": "supervised", "gt_field": "gt", "output_dir": "~/checkpoints/scorer", "epochs": 10, "seed": 0},
    "build_frame_index": {"kind": "auto", "brain_key": "clipit_frames"},
    "search_frames": {"query": "a person", "k": 5, "clip_seconds": 2.0},
    "create_highlight_reel": {"query": "a person", "seconds": 5.0, "order": "source", "per_video_seconds": 2.0},
    "list_runs": {},
    "delete_run": {"run_key": "clipit_score_clipit_score"},
}
INVALID = {
    "add_videos": ({"paths": " "}, "paths"),
    "compute_frame_embeddings": ({"model": "tiny-random", "fps": 0}, "fps"),
    "score_frames": ({"query": "", "score_field": "clipit_score"}, "query"),
    "create_summary": ({"score_field": "clipit_score", "summary_field": "s", "budget": 1.5}, "budget"),
    "evaluate_summary": ({"gt_field": "bad name", "pred_field": "clipit_summary"}, "gt_field"),
    "export_summary": ({"export_dir": "~/clips-out", "summary_field": "no_such_field"}, "summary_field"),
    "frame_overlap_f1": ({"mode": "mean"}, "mode"),
    "train_scorer": ({"mode": "supervised", "gt_field": "nosuch", "output_dir": "checkpoints/scorer"}, "gt_field"),
    "build_frame_index": ({"brain_key": "bad key"}, "brain_key"),
    "search_frames": ({"query": " ", "k": 5}, "query"),
    "create_highlight_reel": ({"query": "a person", "seconds": -1.0}, "seconds"),
    "list_runs": None,  # no parameters to get wrong; its precondition is tested below
    "delete_run": ({"run_key": "no_such_run"}, "run_key"),
}


@pytest.mark.parametrize("name", MANIFEST["operators"])
def test_forms_accept_valid_and_reject_invalid_input(dataset, name):
    assert invalid(form(name, dataset, VALID[name])) == {}
    if INVALID[name] is None:
        return
    params, bad_field = INVALID[name]
    errors = invalid(form(name, dataset, params))
    assert bad_field in errors and errors[bad_field]


def test_field_inputs_are_dropdowns_of_the_fields_that_fit(dataset):
    """Issue 24: a field the operator reads is chosen from the dataset's fields of its type (free
    text only names a new field); nothing chosen yet disables Execute without an error shown."""
    props = form("evaluate_summary", dataset, {})
    assert props["gt_field"].type.values == ["gt"] and props["pred_field"].type.values == ["clipit_summary", "gt"]
    assert props["gt_field"].invalid and not props["gt_field"].error_message  # before any choice
    nosuch = form("evaluate_summary", dataset, {"gt_field": "nosuch"})["gt_field"]
    assert nosuch.invalid and "'nosuch'" in nosuch.error_message and "['gt']" in nosuch.error_message
    assert isinstance(form("evaluate_summary", dataset, {})["eval_key"].type, types.String)  # a new name
    shots = form("create_summary", dataset, {"segmentation": "shots"})["shots_field"]
    assert set(shots.type.values) == {"gt", "clipit_summary"}
    train = form("train_scorer", dataset, {})
    assert "gt" in train["gt_field"].type.values and "frames.clipit_score" in train["gt_field"].type.values
    assert not getattr(train["query_field"], "invalid", False)  # optional: may stay empty
    query = form("score_frames", dataset, {})["query"]
    assert query.invalid and not query.error_message  # no "must not be empty" before typing
    frames = form("score_frames", dataset, {"query": "a person"})["frames"]  # issue 24: every frame's label
    assert frames.type.values == ["steps", "every"] and frames.default == "steps" and not frames.invalid
    wrong = form("score_frames", dataset, {"query": "a person", "frames": "some"})["frames"]
    assert wrong.invalid and "'some'" in wrong.error_message and "['steps', 'every']" in wrong.error_message


def test_failures_read_as_one_sentence():
    from fiftyone_clipit.errors import ClipItError

    from operators.base import failure_text

    assert failure_text(ClipItError("Field 'x' does not exist on 'd'")) == "Field 'x' does not exist on 'd'"
    text = failure_text(KeyError("frames"))
    assert text == "'frames' (KeyError; the App server's log has the details)" and "\n" not in text


def test_forms_of_schedulable_operators_say_how_scheduled_runs_run(dataset):
    notices = {}
    for name in MANIFEST["operators"]:
        if name == "frame_overlap_f1":
            continue
        prop = form(name, dataset, VALID[name]).get("how_it_runs")
        notices[name] = prop.view.label if prop is not None else None
    heavy = {name for name, text in notices.items() if text}
    assert heavy == {
        "compute_frame_embeddings", "score_frames", "export_summary", "train_scorer", "build_frame_index",
        "create_highlight_reel",
    }
    for name in heavy:
        assert "fiftyone delegated launch" in notices[name] and "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true" in notices[name]


def test_the_custom_metric_is_not_offered_as_an_operation_of_its_own():
    """Frame-overlap F1 runs inside evaluate_detections; alone in the operator browser it would fail."""
    metric = foo.get_operator(uri("frame_overlap_f1"))
    assert isinstance(metric, foo.EvaluationMetric) and metric.config.unlisted
    listed = [op for op in MANIFEST["operators"] if op != "frame_overlap_f1"]
    assert not any(foo.get_operator(uri(name)).config.unlisted for name in listed)


def test_exports_from_the_app_go_to_a_default_folder_and_relative_ones_inside_it(dataset):
    """The App's server runs in FiftyOne's install folder: a relative folder must not land there."""
    default = os.path.join(fo.config.default_dataset_dir, "clipit-exports", dataset.name)
    shown = {k: p.view.label for k, p in form("export_summary", dataset, {}).items() if k == "where"}
    assert shown == {"where": f"Files go to {default}"}
    inside = form("export_summary", dataset, {"export_dir": "clips-out"})
    assert inside["where"].view.label == f"Files go to {os.path.join(default, 'clips-out')}"
    chosen = form("export_summary", dataset, {"export_dir": "ignored", "choose_dir": {"absolute_path": "/data/x"}})
    assert chosen["where"].view.label == "Files go to /data/x"
    assert "output_dir" in invalid(form("train_scorer", dataset, {"mode": "unsupervised", "output_dir": "ckpt"}))


def test_the_embedding_form_defaults_to_the_datasets_embedding_model_and_rate(dataset, video_dir):
    embedded = form("compute_frame_embeddings", dataset, {})
    assert embedded["model"].default == "tiny-random" and embedded["fps"].default == 2.0
    bare = fo.Dataset()
    add_videos(bare, [str(video_dir / "colors_a.mp4")])
    assert form("compute_frame_embeddings", bare, {})["model"].default == "ViT-B-32"


def test_the_export_result_shows_every_storyboard_through_the_apps_media_route(dataset):
    """Issue 24: every video's storyboard, not the first one's path as text."""
    files = ["/data/x/a b/a b_storyboard.png", "/data/x/c/c_storyboard.png"]
    results = {"clips": 3, "export_dir": "/data/x", "storyboard_files": files}
    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": {}, "results": results})
    operator = foo.get_operator(uri("export_summary"))
    for shown in (operator.resolve_output(ctx).type.properties, operator._output(results, heading=True).type.properties):
        assert {"clips", "export_dir", "storyboard_image_0", "storyboard_image_1"} <= set(shown)
        image = shown["storyboard_image_0"]
        assert isinstance(image.view, types.ImageView) and image.default == "/media?filepath=/data/x/a%20b/a%20b_storyboard.png"
        assert shown["storyboard_image_1"].default == "/media?filepath=/data/x/c/c_storyboard.png"


def test_forms_refuse_image_datasets_and_missing_embeddings(video_dir, tmp_path):
    images = fo.Dataset()
    images.add_sample(fo.Sample(filepath=str(tmp_path / "image.jpg")))
    for name in ("compute_frame_embeddings", "score_frames", "create_summary", "export_summary"):
        assert "video datasets" in invalid(form(name, images, VALID[name]))["precondition"]
    bare = fo.Dataset()
    add_videos(bare, [str(video_dir / "colors_a.mp4")])
    problem = invalid(form("score_frames", bare, VALID["score_frames"]))["precondition"]
    assert "compute frame embeddings" in problem
    assert "score_field" in invalid(form("create_summary", bare, {"budget": 0.15}))


def test_operators_are_callable_from_python(dataset_copy):
    dataset = dataset_copy
    operator = foo.get_operator(uri("score_frames"))
    result = operator(dataset.limit(1), query="a red car", score_field="python_score")
    assert result == {"scored": 1, "resumed": 0, "labelled_for_the_app": 1, "score_labels": "frames.python_score_label"}
    steps = len(embedding_store(dataset).get(dataset.first().id).frame_numbers)  # written at the sampled steps
    assert dataset.limit(1).count("frames.python_score") == dataset.limit(1).count("frames.python_score_label") == steps
    assert dataset.skip(1).count("frames.python_score") == 0


def test_the_forms_decoders_and_frames_written_reach_the_run(dataset_copy):
    """The embedding form's decoders are checked as the library checks them; the score form's
    "Frames written" reaches the run: every frame holds a score when "every" is chosen."""
    dataset = dataset_copy
    assert "decoders" in invalid(form("compute_frame_embeddings", dataset, {"model": "tiny-random", "decoders": 0}))
    assert not invalid(form("compute_frame_embeddings", dataset, {"model": "tiny-random", "decoders": 2}))
    operator = foo.get_operator(uri("score_frames"))
    operator(dataset.limit(1), query="a red car", score_field="every_score", frames="every")
    assert dataset.limit(1).count("frames.every_score") == dataset.first().metadata.total_frame_count


@pytest.mark.slow
def test_operators_execute_against_the_database(dataset_copy, tmp_path):
    dataset = dataset_copy
    ctx = {"dataset": dataset, "params": {"query": "a person", "smoothing_seconds": 1.0}}
    result = foo.execute_operator(uri("score_frames"), ctx=ctx)
    assert result.result == {"scored": 2, "resumed": 0, "labelled_for_the_app": 2,
                             "score_labels": "frames.clipit_score_label"}
    assert dataset.count("frames.clipit_score") == dataset.get_run_info("clipit_embeddings").config.n_frames
    result = foo.execute_operator(uri("create_summary"), ctx={"dataset": dataset, "params": {"budget": 0.15}})
    assert result.result["summarized"] == 2
    assert dataset.count("clipit_summary.detections") == result.result["segments"]
    result = foo.execute_operator(uri("export_summary"), ctx={"dataset": dataset, "params": {"export_dir": "run-1"}})
    out = Path(fo.config.default_dataset_dir) / "clipit-exports" / dataset.name / "run-1"
    assert result.result["clips"] > 0 and result.result["reels"] == 2 and result.result["export_dir"] == str(out)
    assert len(list(out.rglob("*.mp4"))) == result.result["clips"] + result.result["reels"]
    assert not os.path.exists(os.path.join(os.path.dirname(fo.__file__), "server", "run-1"))
    storyboards = result.result["storyboard_files"]
    assert len(storyboards) == 2 and all(p.startswith(str(out)) and p.endswith("_storyboard.png") for p in storyboards)


@pytest.mark.slow
def test_the_highlight_reel_operator_writes_the_reel_and_shows_its_storyboard(dataset_copy):
    result = foo.execute_operator(
        uri("create_highlight_reel"),
        ctx={"dataset": dataset_copy, "params": {"query": "a person", "seconds": 2.0, "output_dir": "reel-1"}},
    ).result
    out = Path(fo.config.default_dataset_dir) / "clipit-exports" / dataset_copy.name / "reel-1"
    assert result["reel"] == str(out / "highlights.mp4") and os.path.isfile(result["reel"])
    assert result["view"] == "clipit_highlights_clips" and result["storyboard"].endswith("highlights_storyboard.png")
    operator = foo.get_operator(uri("create_highlight_reel"))
    shown = operator._output(result, heading=True).type.properties["storyboard_image"]
    assert shown.default == f"/media?filepath={quote(result['storyboard'])}"


def test_generic_scores_from_the_app_read_a_captioners_captions(dataset_copy, tiny_captioner_dir):
    """Generic summary ticked: no query asked for, a captioning model instead; its captions are the text."""
    dataset = dataset_copy
    generic = form("score_frames", dataset, {"generic": True, "captioner": tiny_captioner_dir, "score_field": "generic"})
    assert invalid(generic) == {} and "query" not in generic and "captioner" in generic
    assert "query" in invalid(form("score_frames", dataset, {"generic": False, "score_field": "generic"}))
    ctx = {"dataset": dataset, "params": {"generic": True, "captioner": tiny_captioner_dir,
                                                   "score_field": "generic", "smoothing_seconds": 1.0}}
    result = foo.execute_operator(uri("score_frames"), ctx=ctx).result
    assert result == {"scored": len(dataset), "resumed": 0, "labelled_for_the_app": len(dataset),
                      "score_labels": "frames.generic_label"}
    run = dataset.get_run_info("clipit_score_generic").config
    assert run.text == f"captions by {tiny_captioner_dir}" and run.query is None
    assert dataset.first()["clipit_captions"]


@pytest.mark.slow
def test_operator_reports_a_clear_error(dataset):
    with pytest.raises(Exception, match="[Qq]uery must not be empty"):
        result = foo.execute_operator(uri("score_frames"), ctx={"dataset": dataset, "params": {"query": " "}})
        result.raise_exceptions()


def test_runs_are_listed_and_deleted_through_operators(dataset_copy, tiny_encoder):
    dataset = dataset_copy
    score_frames(dataset, "a bicycle", score_field="to_delete", model=tiny_encoder)
    listed = foo.get_operator(uri("list_runs"))(dataset)
    assert {"clipit_embeddings", "clipit_score_to_delete"} <= set(listed)
    assert "query 'a bicycle'" in listed["clipit_score_to_delete"] and "model 'tiny-random'" in listed["clipit_score_to_delete"]
    assert "budget 15%" in listed["clipit_summary_clipit_summary"]
    result = foo.get_operator(uri("delete_run"))(dataset, run_key="clipit_score_to_delete")
    assert result == {"deleted": "clipit_score_to_delete", "kind": "run"}
    assert "clipit_score_to_delete" not in dataset.list_runs()
    assert "clipit_score_to_delete" not in foo.get_operator(uri("list_runs"))(dataset)


@pytest.mark.slow
def test_the_demo_leaves_the_same_app_fields_as_the_operators(video_dir, tmp_path):
    """One front door per action: the README's main command (`fiftyone-clipit demo`) and the
    App's operators (embed, score, summarise) leave the same sample and frame fields."""
    from fiftyone_clipit.cli import main

    videos = [str(video_dir / "colors_a.mp4"), str(video_dir / "colors_b.mp4")]
    demo_name = f"clipit-demo-fields-{uuid.uuid4().hex[:6]}"
    assert main(["demo", "--model", "tiny-random", "--query", "a person", "--videos", *videos,
                 "--dataset", demo_name, "--output", str(tmp_path / "demo")]) == 0
    by_demo = fo.load_dataset(demo_name)
    by_operators = fo.Dataset(f"clipit-operator-fields-{uuid.uuid4().hex[:6]}")
    add_videos(by_operators, videos)
    for name, params in [
        ("compute_frame_embeddings", {"model": "tiny-random"}),
        ("score_frames", {"query": "a person"}),
        ("create_summary", {"budget": 0.15}),
    ]:
        foo.execute_operator(uri(name), ctx={"dataset": by_operators, "params": params}).raise_exceptions()
    for schema in ("get_field_schema", "get_frame_field_schema"):
        assert sorted(getattr(by_demo, schema)()) == sorted(getattr(by_operators, schema)()), schema
    assert by_demo.count("frames.clipit_score_label.classifications") == by_operators.count(
        "frames.clipit_score_label.classifications") > 0
