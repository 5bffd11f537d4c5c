"""Test set-up: a private MongoDB, a private embedding store, videos made with PyAV.

Before anything imports FiftyOne, this reserves a free port and points FIFTYONE_DATABASE_URI at
it. The mongod that ships with FiftyOne is started on that port and a temporary directory only
when a selected test is marked `db`: the core tests (`pytest -m "not db"`) run without MongoDB.
A test module that imports FiftyOne is marked `db` as a whole; others mark what needs the
database by hand. Every process of the test session (the CLI, delegated workers, the App
server) connects to that one database by URI, as processes of a multi-machine deployment do;
no test touches a user's database.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType

_SESSION_DIR = tempfile.mkdtemp(prefix="clipit-tests-")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_mongod(folder: str, port: int | None = None) -> tuple[subprocess.Popen, int]:
    """Starts FiftyOne's bundled mongod on `folder` and `port` (default: a free one); returns both."""
    fiftyone_dir = importlib.util.find_spec("fiftyone").submodule_search_locations[0]
    mongod = os.path.join(fiftyone_dir, "db", "bin", "mongod")
    os.makedirs(folder)
    port = _free_port() if port is None else port
    process = subprocess.Popen(
        [mongod, "--dbpath", folder, "--port", str(port), "--bind_ip", "127.0.0.1",
         "--nounixsocket", "--logpath", os.path.join(folder, "mongod.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mongod exited with {process.returncode}; see {folder}/mongod.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"mongod did not start within 60 s; see {folder}/mongod.log")


def _stop() -> None:
    if _MONGOD is not None:
        _MONGOD.terminate()
        try:
            _MONGOD.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _MONGOD.kill()
    _PORT_HOLDER.close()
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


# Bound but not listening: no other process takes the port, and a connection is refused at once.
_PORT_HOLDER = socket.socket()
_PORT_HOLDER.bind(("127.0.0.1", 0))
_PORT = _PORT_HOLDER.getsockname()[1]
_MONGOD: subprocess.Popen | None = None
atexit.register(_stop)


def start_database() -> subprocess.Popen:
    """Starts the session's mongod on the reserved port, once; later calls return the same process."""
    global _MONGOD
    if _MONGOD is None:
        _PORT_HOLDER.close()
        _MONGOD, _ = _start_mongod(os.path.join(_SESSION_DIR, "db"), _PORT)
    return _MONGOD


def database_started() -> bool:
    return _MONGOD is not None


# the UUID encoding said, as mongoengine asks (it warns when none is)
os.environ["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{_PORT}/?uuidRepresentation=standard"
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["FIFTYONE_DEFAULT_DATASET_DIR"] = os.path.join(_SESSION_DIR, "fiftyone")
os.environ["FIFTYONE_CLIPIT_STORE_DIR"] = os.path.join(_SESSION_DIR, "store")
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ["HF_HUB_OFFLINE"] = "1"
_PLUGINS = os.path.join(_SESSION_DIR, "plugins")
os.makedirs(_PLUGINS)
os.symlink(Path(__file__).resolve().parents[1], os.path.join(_PLUGINS, "clipit"))
os.environ["FIFTYONE_PLUGINS_DIR"] = _PLUGINS

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = Path(os.environ.get("CLIPIT_SHARED_DATA", REPO.parent / "shared" / "data")) / "videos"


def frame_color(index: int) -> tuple[int, int, int]:
    """A colour per frame index, far enough apart to survive lossy-free h264 round trips."""
    return ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256)


def write_video(
    path: Path, n_frames: int, fps: int = 30, size: tuple[int, int] = (96, 64), audio: bool = False
) -> Path:
    """Writes an h264 mp4 whose frame i is a solid frame_color(i) (lossless: qp 0, yuv444)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv444p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        audio_stream = container.add_stream("aac", rate=16000) if audio else None
        for i in range(n_frames):
            image = np.empty((size[1], size[0], 3), dtype=np.uint8)
            image[:] = frame_color(i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            write_tone(container, audio_stream, seconds=n_frames / fps)
    return path


def write_tone(container, stream, seconds: float) -> None:
    """Encodes a 440 Hz mono tone of `seconds` into an audio stream."""
    n = int(16000 * seconds)
    tone = (0.1 * np.sin(np.arange(n) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    for start in range(0, n, 1024):
        frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_audio_only(path: Path) -> Path:
    """An mp4 holding only an AAC audio stream."""
    with av.open(str(path), "w") as container:
        write_tone(container, container.add_stream("aac", rate=16000), seconds=1.0)
    return path


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    """Small generated videos: 90 frames at 30 fps, 150 frames at 25 fps with audio."""
    folder = tmp_path_factory.mktemp("videos")
    write_video(folder / "colors_a.mp4", 90, fps=30)
    write_video(folder / "colors_b.mp4", 150, fps=25, size=(80, 48), audio=True)
    return folder


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """A missing path, a zero-byte file, a text file named .mp4 and an audio-only mp4."""
    folder = tmp_path_factory.mktemp("bad")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is not a video\n" * 20)
    return {
        "missing": folder / "missing.mp4",
        "empty": folder / "empty.mp4",
        "text": folder / "notes.mp4",
        "audio_only": write_audio_only(folder / "audio_only.mp4"),
    }


@pytest.fixture(scope="session")
def real_videos() -> list[Path]:
    """The real footage in ../shared/data/videos (skipped cleanly when absent)."""
    videos = sorted(SHARED_VIDEOS.glob("*.mp4"))
    if not videos:
        pytest.skip(f"no shared sample videos under {SHARED_VIDEOS}")
    return videos


@pytest.fixture(scope="session")
def tiny_encoder():
    from fiftyone_clipit.encoders import load_clip

    return load_clip("tiny-random")


@pytest.fixture(scope="session")
def tiny_captioner_dir(tmp_path_factory) -> str:
    """A BLIP image-to-text model with random weights, built here from a tiny config (no
    download) and saved as a `from_pretrained` folder, with a BERT tokenizer over a small vocabulary."""
    pytest.importorskip("transformers")
    import torch
    from transformers import (
        BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny-blip")
    words = "a the rabbit grass car road person dog runs sits on in red blue green field street".split()
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        text_config=dict(vocab_size=len(vocabulary), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, encoder_hidden_size=32, bos_token_id=5, pad_token_id=0,
                         sep_token_id=3, eos_token_id=3, max_position_embeddings=64),
        projection_dim=32,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def one_thread():
    """Small models train faster on one torch thread, and the machine is shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _imports_fiftyone(module: ModuleType) -> bool:
    """Whether a test module holds FiftyOne itself or something of it (`fo`, `foo`, `F`, ...)."""
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and (name == "fiftyone" or name.startswith("fiftyone.")):
            return True
    return False


@pytest.fixture(scope="session", autouse=True)
def database(request) -> None:
    """Starts the session's mongod before the first test when a selected test is marked `db`."""
    if any(item.get_closest_marker("db") for item in request.session.items):
        start_database()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Says why a test that reached for the database in a run without one failed."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and not database_started() and item.get_closest_marker("db") is None:
        text = report.longreprtext
        if "ServerSelectionTimeoutError" in text or f"127.0.0.1:{_PORT}" in text:
            report.sections.append(
                ("database", "This test uses the database, which starts only for tests marked `db`: "
                 "add `pytest.mark.db` to it or to its module.")
            )


_RELIABILITY_KINDS: dict[str, str] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Marks `db` every test of a module that imports FiftyOne (before `-m` selects), and
    remembers the kind ('bad_input', 'fault') of every test marked `reliability(kind)`."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and item.get_closest_marker("db") is None and _imports_fiftyone(module):
            item.add_marker(pytest.mark.db)
        marker = item.get_closest_marker("reliability")
        if marker is not None and marker.args:
            _RELIABILITY_KINDS[item.nodeid] = marker.args[0]


def pytest_terminal_summary(terminalreporter) -> None:
    """Prints how many bad inputs were tried and how many faults were survived (passed tests)."""
    if not _RELIABILITY_KINDS:
        return
    passed = [r.nodeid for r in terminalreporter.stats.get("passed", []) if r.when == "call"]
    kinds = [_RELIABILITY_KINDS.get(nodeid) for nodeid in passed]
    terminalreporter.write_line(
        f"reliability: {kinds.count('bad_input')} bad inputs tried, {kinds.count('fault')} faults survived"
    )


def every_frame_scores(samples, sample_id: str, field: str = "clipit_score") -> np.ndarray:
    """One video's score of every frame, from scores written at the sampled steps (score_frames'
    default) or at every frame: each stored score holds until the next, as the protocol upsamples."""
    from fiftyone_clipit.summary import upsample_scores

    numbers, scores, n_frames = (v[0] for v in samples.select(sample_id).values(
        ["frames.frame_number", f"frames.{field}", "metadata.total_frame_count"]))
    pairs = sorted((n, s) for n, s in zip(numbers, scores) if s is not None)
    return upsample_scores([s for _, s in pairs], [n - 1 for n, _ in pairs], n_frames)
