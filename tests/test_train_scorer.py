"""train_scorer and score_frames with a checkpoint, in FiftyOne's real database, on real decoded videos.

Five generated videos (10 s each, lossless) are embedded with the tiny random CLIP; four get
users' summaries, a per-frame importance and a query; the fifth is added after embedding, so it
has none and must be named as a failure while the others are used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from types import SimpleNamespace

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from fiftyone import ViewField as F

from conftest import write_video
from fiftyone_clipit import add_videos, compute_frame_embeddings, create_summary, score_frames
from fiftyone_clipit.benchmark import load_features
from fiftyone_clipit.cli import main
from fiftyone_clipit.errors import BatchError, ClipItError
from fiftyone_clipit.fo.common import embedding_store, root_dataset, write_in_chunks
from fiftyone_clipit.fo.training import train_scorer
from fiftyone_clipit.checkpoints import CONFIG_FILE, load_checkpoint
from fiftyone_clipit.scorer import predict_scores
from fiftyone_clipit.summary import upsample_scores

pytestmark = pytest.mark.slow

QUERIES = ["a red frame", "a green frame", "a blue frame", "a grey frame"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_encoder):
    folder = tmp_path_factory.mktemp("train-videos")
    paths = [str(write_video(folder / f"clip_{i}.mp4", 300, fps=30)) for i in range(5)]
    ds = fo.Dataset(f"clipit-train-{uuid.uuid4().hex[:8]}")
    add_videos(ds, paths[:4])
    compute_frame_embeddings(ds, model=tiny_encoder)
    ids = ds.values("id")
    summaries, importance = {}, {}
    for index, sample_id in enumerate(ids):
        first = 31 + 60 * index
        summaries[sample_id] = fo.TemporalDetections(detections=[
            fo.TemporalDetection(label="user 1", support=[first, first + 44], user=1),
            fo.TemporalDetection(label="user 2", support=[first + 15, first + 59], user=2),
        ])
        importance[sample_id] = {n: float(first <= n <= first + 44) for n in range(1, 301)}
    write_in_chunks(ds, "gt_summary", summaries)
    write_in_chunks(ds, "frames.importance", importance)
    ds.set_values("query", QUERIES)
    add_videos(ds, paths[4:])  # no embeddings, no labels
    return ds


@pytest.fixture(scope="module")
def labelled(dataset):
    return dataset.match(F("query") != None)  # noqa: E711


@pytest.fixture(scope="module")
def checkpoint(labelled, tiny_encoder, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("ckpt") / "scorer")
    report = train_scorer(
        labelled, path, gt_field="gt_summary", query_field="query", preset="tiny", model=tiny_encoder,
        epochs=3, validation_fraction=0.25, learning_rate=1e-2,
    )
    return report


def test_train_scorer_writes_a_checkpoint_and_records_the_run(dataset, checkpoint):
    assert sorted(os.listdir(checkpoint.checkpoint)) == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    assert (checkpoint.n_train, checkpoint.n_validation, checkpoint.criterion) == (3, 1, "validation_f1")
    assert 1 <= checkpoint.best_epoch <= 3 and 0.0 <= checkpoint.validation_value <= 1.0
    info = dataset.get_run_info("clipit_train").config
    assert info.checkpoint == checkpoint.checkpoint and info.mode == "supervised" and info.gt_fields == ["gt_summary"]
    loaded = load_checkpoint(checkpoint.checkpoint)
    assert loaded.config.name == "tiny" and loaded.config.feature_dim == 32
    data = loaded.metadata["data"]
    assert data["clip_model"] == "tiny-random" and data["dataset"] == dataset.name and data["videos"] == 4
    card = open(os.path.join(checkpoint.checkpoint, "MODEL_CARD.md")).read()
    assert dataset.name in card and "validation_f1" in card and "query field 'query'" in card
    # zero-shot and the query-blind twin on the same validation video, in the report, the card, config.json, the run
    figures = checkpoint.baselines
    assert figures["n_videos"] == 1 and all(0 <= figures[k] <= 1 for k in ("f1_trained", "f1_zero_shot", "f1_query_blind"))
    assert figures["f1_trained"] == pytest.approx(checkpoint.validation_value)  # the kept epoch's own figure
    assert loaded.metadata["baselines"] == figures and info.baselines == figures
    assert f"| zero-shot (CLIP similarity, the default scorer) | {figures['f1_zero_shot']:.4f} |" in card
    assert (checkpoint.warning is not None) == (figures["f1_trained"] <= figures["f1_zero_shot"])
    assert (f"**Warning: {checkpoint.warning}.**" in card) == (checkpoint.warning is not None)


def test_score_frames_with_a_checkpoint_writes_the_scorers_scores(labelled, checkpoint, tiny_encoder):
    report = score_frames(labelled, "a red frame", model=tiny_encoder, scorer=checkpoint.checkpoint, batch_size=4)
    assert report.n_scored == 4 and not report.failures
    run = root_dataset(labelled).get_run_info("clipit_score_clipit_score").config
    assert (run.scorer, run.checkpoint, run.scorer_preset) == ("checkpoint", checkpoint.checkpoint, "tiny")
    # the same four videos in one batch through the checkpoint loaded here: bit-identical scores
    model = load_checkpoint(checkpoint.checkpoint).model
    text = tiny_encoder.encode_text(["a red frame"])
    ids, numbers, stored = labelled.values(["id", "frames.frame_number", "frames.clipit_score"])
    items = [embedding_store(labelled).get(sample_id) for sample_id in ids]
    steps = predict_scores(model, [item.embeddings for item in items], [text] * 4)
    for item, frame_numbers, values, step_scores in zip(items, numbers, stored, steps):
        expected = upsample_scores(step_scores, item.frame_numbers - 1, 300)
        written = [(n, v) for n, v in zip(frame_numbers, values) if v is not None]
        assert [n for n, _ in written] == item.frame_numbers.tolist()  # written at the sampled steps
        assert np.array_equal(np.array([v for _, v in written]), expected[item.frame_numbers - 1])
        assert np.all((expected > 0) & (expected < 1))
    one_by_one = score_frames(labelled, "a red frame", scorer=checkpoint.checkpoint, batch_size=1, score_field="single")
    assert one_by_one.n_scored == 4
    np.testing.assert_allclose(np.concatenate(labelled.values("frames.single")).astype(float),
                               np.concatenate(stored).astype(float), atol=1e-6)  # None (NaN) off the steps
    # 300 frames at 2 fps are 20 steps, within one window: windowed attention gives the same scores
    windowed = score_frames(labelled, "a red frame", scorer=checkpoint.checkpoint, attention="windowed",
                            score_field="windowed")
    assert windowed.n_scored == 4
    assert root_dataset(labelled).get_run_info("clipit_score_windowed").config.attention == "windowed"
    np.testing.assert_allclose(np.concatenate(labelled.values("frames.windowed")).astype(float),
                               np.concatenate(stored).astype(float), atol=1e-6)
    with pytest.raises(ClipItError, match=r"Unknown attention 'sliding'"):
        score_frames(labelled, "a red frame", scorer=checkpoint.checkpoint, attention="sliding", score_field="never")
    assert labelled.get_field("frames.never") is None


def test_a_checkpoint_of_another_clip_model_or_an_unknown_scorer_is_refused(labelled, checkpoint, tmp_path):
    copy = str(tmp_path / "other")
    shutil.copytree(checkpoint.checkpoint, copy)
    document = json.load(open(os.path.join(copy, CONFIG_FILE)))
    document["metadata"]["data"]["clip_model"] = "ViT-B-32"
    json.dump(document, open(os.path.join(copy, CONFIG_FILE), "w"))
    with pytest.raises(ClipItError, match="trained on embeddings of 'ViT-B-32'.*'tiny-random'"):
        score_frames(labelled, "a red frame", scorer=copy)
    with pytest.raises(ClipItError, match="Unknown scorer 'best-model'"):
        score_frames(labelled, "a red frame", scorer="best-model")


def test_generic_training_and_scoring_read_the_same_captions(labelled, tiny_encoder, tiny_captioner_dir, tmp_path):
    """A real transformers image-to-text model (tiny, random) captions the videos; training and
    scoring read the same cached captions, and the run records and model card name them."""
    dataset = root_dataset(labelled)
    report = train_scorer(
        labelled, str(tmp_path / "generic"), gt_field="gt_summary", preset="tiny", model=tiny_encoder,
        captioner=tiny_captioner_dir, n_captions=3, epochs=2, validation_fraction=0.25,
    )
    source = f"captions by {tiny_captioner_dir}"
    assert dataset.get_run_info("clipit_train").config.text_source == source
    card = open(os.path.join(report.checkpoint, "MODEL_CARD.md")).read()
    assert f"- text_source: {source}" in card and "- n_captions: 3" in card
    store = embedding_store(labelled)
    cached = {i: store.get_captions(i) for i in labelled.values("id")}
    assert all(c["captioner"] == tiny_captioner_dir and c["n_captions"] == 3 and c["sentences"] for c in cached.values())
    stamps = {i: os.stat(os.path.join(store.root, f"{i}.captions.json")).st_mtime_ns for i in cached}

    scored = score_frames(labelled, model=tiny_encoder, scorer=report.checkpoint, captioner=tiny_captioner_dir,
                          n_captions=3, score_field="generic_score")
    assert scored.n_scored == 4
    run = dataset.get_run_info("clipit_score_generic_score").config
    assert run.text == source and run.n_captions == 3
    assert labelled.values("clipit_captions") == [cached[i]["sentences"] for i in labelled.values("id")]
    # the captions were read from the store, not made again
    assert stamps == {i: os.stat(os.path.join(store.root, f"{i}.captions.json")).st_mtime_ns for i in cached}

    # the benchmark files carry the same captions, embedded by the same CLIP model
    folder = tmp_path / "features"
    assert main(["features", dataset.name, "--output", str(folder), "--captioner", tiny_captioner_dir,
                 "--n-captions", "3", "--skip-failures"]) == 0
    first = labelled.first()
    stem = os.path.splitext(os.path.basename(first.filepath))[0]
    video = SimpleNamespace(name=stem, n_frames=first.metadata.total_frame_count)
    features, picks, text = load_features(folder, video, "video_1", captions=True)
    assert np.allclose(text, tiny_encoder.encode_text(cached[first.id]["sentences"]), atol=1e-6)
    assert np.array_equal(picks + 1, store.get(first.id).frame_numbers)
    assert main(["features", dataset.name, "--output", str(tmp_path / "free"), "--skip-failures"]) == 0
    with pytest.raises(ClipItError, match=r"holds no 'captions' \(caption embeddings\); write the features with a captioner"):
        load_features(tmp_path / "free", video, "video_1", captions=True)

    with pytest.raises(ClipItError, match=r"trained on text from 'captions by .*', not 'caption-free'; score without a query with captioner"):
        score_frames(labelled, model=tiny_encoder, scorer=report.checkpoint, score_field="never")
    with pytest.raises(ClipItError, match=r"not 'query'"):
        score_frames(labelled, "a red frame", model=tiny_encoder, scorer=report.checkpoint, score_field="never")
    assert labelled.get_field("frames.never") is None


def test_a_query_scorer_is_not_used_for_generic_summaries(labelled, checkpoint, tiny_encoder, tiny_captioner_dir):
    with pytest.raises(ClipItError, match=r"trained on text from 'query', not 'caption-free'; give a query"):
        score_frames(labelled, model=tiny_encoder, scorer=checkpoint.checkpoint, score_field="never")
    with pytest.raises(ClipItError, match=r"not 'captions by"):
        score_frames(labelled, model=tiny_encoder, scorer=checkpoint.checkpoint, captioner=tiny_captioner_dir,
                     score_field="never")
    with pytest.raises(ClipItError, match=r"No weights for captioning model '.*absent'"):
        score_frames(labelled, model=tiny_encoder, captioner=str(os.path.join(tiny_captioner_dir, "absent")),
                     score_field="never")
    free = score_frames(labelled, score_field="free_score")
    assert free.n_scored == 4
    assert root_dataset(labelled).get_run_info("clipit_score_free_score").config.text == "caption-free"
    summary = create_summary(labelled, score_field="free_score", summary_field="free_summary", segmentation="uniform")
    assert summary.n_summarized == 4 and summary.n_segments >= 4


def test_unsupervised_training_on_a_per_frame_importance_field(labelled, tmp_path):
    report = train_scorer(
        labelled, str(tmp_path / "unsup"), gt_field="importance", mode="unsupervised", preset="tiny",
        epochs=2, validation_fraction=0.25, run_key="clipit_train_unsup",
    )
    assert report.criterion == "validation_loss" and report.n_train == 3  # labels never choose the epoch
    metadata = load_checkpoint(report.checkpoint).metadata
    assert metadata["training"]["losses"] == {"reconstruction": 1.0, "diversity": 1.0}
    assert metadata["data"]["text"] == "caption-free" and metadata["data"]["ground_truth"] == "importance: ['importance']"


def test_videos_that_cannot_be_used_are_named_before_training_or_left_out_when_asked(dataset, tiny_encoder, tmp_path):
    path = str(tmp_path / "partial")
    with pytest.raises(BatchError, match=r"clip_4\.mp4: no frame embeddings"):
        train_scorer(dataset, path, gt_field="gt_summary", query="a red frame", model=tiny_encoder,
                     preset="tiny", epochs=1, validation_fraction=0.25, run_key="clipit_train_partial")
    assert not os.path.exists(path) and not dataset.has_run("clipit_train_partial")
    report = train_scorer(dataset, path, gt_field="gt_summary", query="a red frame", model=tiny_encoder,
                          preset="tiny", epochs=1, validation_fraction=0.25, run_key="clipit_train_partial",
                          skip_failures=True)
    assert os.path.isfile(os.path.join(path, "model.safetensors"))
    assert report.failures and all(f.item.endswith("clip_4.mp4") for f in report.failures)
    dataset.set_values("partial_query", ["a red frame", "", "a blue frame", "a grey frame", None])
    empty_query = str(tmp_path / "empty-query")
    with pytest.raises(BatchError, match=r"clip_1\.mp4: no query in field 'partial_query'"):
        train_scorer(dataset.match(F("query") != None), empty_query, gt_field="gt_summary",  # noqa: E711
                     query_field="partial_query", model=tiny_encoder, preset="tiny", epochs=1)
    assert not os.path.exists(empty_query)
    with pytest.raises(ClipItError, match=r"Unknown training option\(s\) \['epoch'\]"):
        train_scorer(dataset, path, gt_field="gt_summary", epoch=3)
    with pytest.raises(ClipItError, match="Supervised training needs gt_field"):
        train_scorer(dataset, path, query="a red frame")


def test_train_scorer_operator_and_cli(labelled, tmp_path, capsys):
    operator = foo.get_operator("@clipit/video-summarization/train_scorer")
    assert operator.config.allow_delegated_execution and operator.config.default_choice_to_delegated
    out = operator(labelled, gt_field="gt_summary", query="a red frame", output_dir=str(tmp_path / "op"),
                   preset="tiny", epochs=2, validation_fraction=0.25)
    assert out["checkpoint"] == str(tmp_path / "op") and "validation_f1" in out
    assert ("warning" in out) == (out["f1_trained"] <= out["f1_zero_shot"])  # one query for all: no twin
    assert "f1_query_blind" not in out
    cli_path = str(tmp_path / "cli")
    capsys.readouterr()
    assert main(["train", labelled.dataset_name, "--skip-failures", "--output", cli_path, "--gt-field", "gt_summary",
                 "--query", "a red frame", "--preset", "tiny", "--epochs", "2", "--validation-fraction", "0.25"]) == 0
    printed = capsys.readouterr().out
    figures = json.load(open(os.path.join(cli_path, CONFIG_FILE)))["metadata"]["baselines"]
    assert f"Validation F1: this scorer {figures['f1_trained']:.4f}, zero-shot {figures['f1_zero_shot']:.4f}" in printed
    assert ("WARNING: the trained scorer's validation F1" in printed) == (figures["f1_trained"] <= figures["f1_zero_shot"])
    assert main(["score", labelled.dataset_name, "--skip-failures", "--query", "a blue frame", "--scorer", cli_path,
                 "--score-field", "cli_score"]) == 0
    assert labelled.count("frames.cli_score") == 4 * 20  # 300 frames at 30 fps: 20 steps at 2 fps



@pytest.mark.reliability("bad_input")
def test_training_into_an_existing_folder_is_refused_before_any_work(labelled, tiny_encoder, tmp_path, capsys):
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    labels = []
    arguments = dict(gt_field="gt_summary", query_field="query", model=tiny_encoder, preset="tiny", epochs=1,
                     validation_fraction=0.25, run_key="clipit_train_taken", progress=lambda _, label: labels.append(label))
    with pytest.raises(ClipItError, match=re.escape(f"Checkpoint folder '{folder}' already exists; choose another "
                                                    f"path or pass overwrite=True")):
        train_scorer(labelled, str(folder), **arguments)
    assert labels == []  # not one video prepared, not one epoch run
    assert os.listdir(folder) == ["notes.txt"] and (folder / "notes.txt").read_text() == "keep me"
    assert not root_dataset(labelled).has_run("clipit_train_taken")
    assert main(["train", labelled.dataset_name, "--output", str(folder), "--gt-field", "gt_summary",
                 "--query", "a red frame", "--preset", "tiny", "--epochs", "1"]) == 1
    assert capsys.readouterr().err == f"error: Checkpoint folder '{folder}' already exists; choose another path or pass --overwrite\n"
    train_scorer(labelled, str(folder), overwrite=True, **arguments)
    assert sorted(os.listdir(folder)) == ["MODEL_CARD.md", "config.json", "model.safetensors"] and labels


@pytest.mark.reliability("bad_input")
def test_the_cli_refuses_a_damaged_scorer_in_one_line(labelled, checkpoint, tmp_path):
    flipped, huge = str(tmp_path / "flipped"), str(tmp_path / "huge")
    shutil.copytree(checkpoint.checkpoint, flipped)
    shutil.copytree(checkpoint.checkpoint, huge)
    weights = os.path.join(flipped, "model.safetensors")
    data = bytearray(open(weights, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(weights, "wb").write(data)
    document = json.load(open(os.path.join(huge, CONFIG_FILE)))
    document["config"]["model_dim"] = 2_000_000
    json.dump(document, open(os.path.join(huge, CONFIG_FILE), "w"))
    for scorer, reason in [(flipped, "model.safetensors does not match the SHA-256 recorded in config.json"),
                           (huge, "model_dim must be an integer from 1 to 16,384, got 2000000")]:
        result = subprocess.run(
            [sys.executable, "-m", "fiftyone_clipit.cli", "score", labelled.dataset_name, "--skip-failures",
             "--query", "a red frame", "--scorer", scorer, "--score-field", "never"], capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"error: Scorer checkpoint '{scorer}': ") and reason in result.stderr
        assert result.stderr.endswith("restore the checkpoint folder from a copy\n") and result.stderr.count("\n") == 1
    assert labelled.get_field("frames.never") is None

def test_train_scorer_form_checks_its_inputs(labelled):
    from fiftyone.operators.executor import ExecutionContext

    operator = foo.get_operator("@clipit/video-summarization/train_scorer")

    def errors(params: dict) -> dict[str, str]:
        ctx = ExecutionContext(request_params={"dataset_name": labelled.dataset_name, "params": params})
        properties = operator.resolve_input(ctx).type.properties
        return {k: p.error_message for k, p in properties.items() if getattr(p, "invalid", False)}

    assert errors({"mode": "unsupervised", "output_dir": "~/checkpoints/scorer"}) == {}
    assert "gt_field" in errors({"mode": "supervised", "output_dir": "~/checkpoints/scorer"})
    assert "text_choice" in errors({"mode": "unsupervised", "output_dir": "~/checkpoints/scorer", "query": "a", "query_field": "query"})
    assert "epochs" in errors({"mode": "unsupervised", "output_dir": "~/checkpoints/scorer", "epochs": 0})
    assert "output_dir" in errors({"mode": "unsupervised", "output_dir": " "})
