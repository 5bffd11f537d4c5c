"""What every CLIP-It operator shares: the config, the target view, validation and progress."""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import quote

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone.operators.message import GeneratedMessage, MessageType

from fiftyone_clipit.errors import OVERWRITE_HINT

logger = logging.getLogger(__name__)

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


#: the plugin's icon (the App loads it from the plugin's folder), in the operator browser and tabs
ICON = "/assets/icon.svg"

# Shown in the forms of the operators that can be scheduled (FiftyOne 1.22 offers "Schedule" only
# with legacy orchestrators allowed, and then runs nothing until a worker is up).
HOW_IT_RUNS = (
    "Execute runs this now, in the App. Schedule queues it for a worker: start one with "
    "`fiftyone delegated launch`, with FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true set where the App and "
    "the worker run (without it the App shows scheduling as not available); the CLIP-It panel's "
    "runs table (or `fiftyone delegated list` in a terminal) shows queued and running operations."
)


class ClipItOperator(foo.Operator):
    """A thin operator: a form (`build_inputs`), one library call (`run`), a short output.

    Subclasses set `name`, `label`, `description`; `heavy` operators offer delegated execution
    and choose it by default; `needs_embeddings` ones refuse datasets without frame embeddings.
    A `sharded_run` operator (the key of the run it makes) implements `run_on` instead of `run`:
    scheduled on a target of more than 'videos per shard' videos, it queues one delegated
    operation per shard (`fiftyone_clipit.fo.shards`), which any number of workers share.
    """

    name = ""
    label = ""
    description = ""
    heavy = True
    needs_target = True
    needs_embeddings = False
    sharded_run: str | None = None

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name=self.name,
            label=self.label,
            description=self.description,
            icon=ICON,
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=self.heavy,
            default_choice_to_delegated=self.heavy,
            # the App then streams what `execute` yields: progress while a heavy run works, and
            # for every operator a failure as one sentence (a raised error shows its traceback)
            execute_as_generator=True,
        )

    def build_inputs(self, ctx, inputs: types.Object) -> None:
        raise NotImplementedError

    def run(self, ctx, progress: Callable[[float, str], None]) -> dict[str, Any]:
        return self.run_on(ctx, self.target(ctx), progress)

    def run_on(self, ctx, samples, progress: Callable[[float, str], None]) -> dict[str, Any]:
        """The work of a `sharded_run` operator on some videos: the target, or one shard of it."""
        raise NotImplementedError

    def __call__(self, samples, delegate: bool = False, **params: Any) -> dict[str, Any]:
        """Runs the operator from Python on a dataset or view, e.g.
        `foo.get_operator("@clipit/video-summarization/score_frames")(dataset, query="a dog")`.

        Returns the operator's output (or the queued operation when `delegate` is True).
        """
        params.setdefault("view_target", "CURRENT_VIEW")
        ctx = {"view": samples.view(), "params": params, "request_delegation": delegate}
        result = foo.execute_operator(self.uri, ctx=ctx)
        result.raise_exceptions()
        return result.result

    def target(self, ctx):
        """The dataset, current view or selected samples, as chosen in the form (a shard's
        operation: the shard's videos)."""
        if ctx.params.get("shard_ids"):
            return ctx.dataset.select(ctx.params["shard_ids"], ordered=True)
        return ctx.target_view()

    def shard_run_key(self, ctx) -> str | None:
        """The key of the dataset-level run the shards make together (None: not sharded)."""
        return self.sharded_run

    def videos_per_shard(self, ctx) -> int:
        """The shard size asked for when scheduled (0: one operation): the form's, else the
        default; always 0 for an operator that is not sharded."""
        from fiftyone_clipit.shards import DEFAULT_VIDEOS_PER_SHARD

        if not self.sharded_run:
            return 0
        value = ctx.params.get("videos_per_shard")
        if value is None:
            return DEFAULT_VIDEOS_PER_SHARD
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            from fiftyone_clipit.errors import ClipItError

            raise ClipItError(f"videos_per_shard must be a whole number >= 0 (0: one operation), got {value!r}")
        return value

    def precondition(self, ctx) -> str | None:
        """Why this operator cannot run on the current dataset, or None when it can."""
        if not self.needs_target:
            return None
        if ctx.dataset is None:
            return "Open a dataset first"
        if ctx.dataset.media_type != fo.core.media.VIDEO:
            return f"'{ctx.dataset.name}' holds {ctx.dataset.media_type}s; CLIP-It works on video datasets"
        if len(ctx.target_view()) == 0:
            return "The chosen target has no videos"
        if self.needs_embeddings and not ctx.dataset.has_run("clipit_embeddings"):
            return f"'{ctx.dataset.name}' has no frame embeddings yet: run 'CLIP-It: compute frame embeddings' first"
        return None

    def resolve_input(self, ctx):
        inputs = types.Object()
        if self.needs_target:
            ctx.target_view()
        problem = self.precondition(ctx)
        if problem:
            prop = inputs.view("precondition", types.Error(label="Cannot run", description=problem))
            prop.invalid = True
            prop.error_message = problem
        else:
            self.build_inputs(ctx, inputs)
            if self.heavy:
                inputs.view("how_it_runs", types.Notice(label=HOW_IT_RUNS))
        return types.Property(inputs, view=types.View(label=self.label))

    def execute(self, ctx):
        """Runs the operator. Run immediately from the App, its execution is a generator that
        streams its progress to the App and ends in its output or in one sentence saying why it
        failed (see `_stream`); from Python and in a worker it returns the output, its progress
        going to `ctx.set_progress`."""
        if not ctx.delegated and from_the_app(ctx):
            return self._stream(ctx)

        def progress(fraction: float, label: str) -> None:
            ctx.set_progress(progress=fraction, label=label)

        result = self._work(ctx, progress)
        view = result.pop(VIEW_RESULT, None)
        if not ctx.delegated:
            view = view if view is not None else self.view_after(ctx, result)
            if view is not None:  # before the reload: see _stream
                ctx.ops.set_view(view)
            ctx.ops.reload_dataset()
        return result

    def view_after(self, ctx, result: dict[str, Any]):
        """The view to show in the App once a run from it is done (None: the App's view stays);
        a run may instead hand its view over in its result under VIEW_RESULT. A run never calls
        `ctx.ops.set_view` itself: streamed from the App, only what `_stream` yields reaches it."""
        return None

    def _work(self, ctx, progress: Callable[[float, str], None]) -> dict[str, Any]:
        """The operator's work: one shard's, the queueing of shards, or the whole run."""
        shard = ctx.params.get("shard")
        per_shard = self.videos_per_shard(ctx) if ctx.delegated and not shard else 0
        if shard:
            from fiftyone_clipit.fo.shards import run_shard

            work = lambda samples, report: self.run_on(ctx, samples, report)  # noqa: E731
            return run_shard(ctx.dataset, shard["plan"], int(shard["index"]), work, progress)
        if per_shard and len(self.target(ctx)) > per_shard:
            from fiftyone_clipit.fo.shards import queue_shards

            params = {k: v for k, v in ctx.params.items() if k not in ("videos_per_shard", "view_target")}
            status = queue_shards(
                self.target(ctx), self.uri, params, self.shard_run_key(ctx), per_shard,
                delegation_target=ctx.delegation_target, label=self.label,
            )
            return {"shards_queued": status.n_shards, "shard_plan": status.plan, "run": status.run_key}
        return self.run(ctx, progress)

    def _stream(self, ctx) -> Iterator:
        """Runs the work in a thread and yields the App's `set_progress` as it reports (at most
        one every PROGRESS_INTERVAL_S seconds, the latest), then reloads the dataset and shows
        the output as `resolve_output` describes it; an error in the work ends in the App's error
        dialog with its message (`_Failure`)."""
        updates: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = self._work(ctx, lambda fraction, label: updates.put((fraction, label)))
            except BaseException as e:  # noqa: BLE001 - raised again below, in the App's request
                outcome["error"] = e
            finally:
                updates.put(None)

        yield ctx.ops.set_progress(label=f"{self.label}: starting", progress=0.0)
        worker = threading.Thread(target=work, name=f"clipit-{self.name}", daemon=True)
        worker.start()
        while True:
            latest = updates.get()
            while latest is not None and not updates.empty():
                latest = updates.get()
            if latest is None:
                break
            fraction, label = latest
            yield ctx.ops.set_progress(label=f"{label} ({fraction:.0%})", progress=float(fraction))
            time.sleep(PROGRESS_INTERVAL_S)
        worker.join()
        if "error" in outcome:  # shown in place of the progress, and as the run's error
            failed = types.Object()
            failed.view("failure", types.Error(label=f"{self.label}: failed", description=failure_text(outcome["error"])))
            yield ctx.ops.show_output(types.Property(failed).to_json(), {})
            yield _Failure(outcome["error"])
            return
        view = outcome["result"].pop(VIEW_RESULT, None)
        view = view if view is not None else self.view_after(ctx, outcome["result"])
        if view is not None:
            # the view first: the App's set_view reads its router's current entry, which a
            # reload just before leaves loading (the App's "entry is loading" error)
            yield ctx.ops.set_view(view)
        yield ctx.ops.reload_dataset()
        # the App shows this output without its view's label: "<label>: done" is its first line
        done = self._output(outcome["result"], heading=True)
        yield ctx.ops.show_output(done.to_json(), outcome["result"])

    def resolve_output(self, ctx):
        return self._output(ctx.results or {})

    def summary(self, results: dict[str, Any]) -> str | None:
        """What the run did, in a sentence above its figures (None: the figures say it)."""
        return None

    def _output(self, results: dict[str, Any], heading: bool = False) -> types.Property:
        """The output view: each result as a line of text, under "<label>: done" (the view's
        label, or for `heading` a first line); storyboard files (`IMAGE_RESULTS`) as images."""
        outputs = types.Object()
        if heading:
            outputs.md(f"**{self.label}: done**", name="done_heading")
        sentence = self.summary(results)
        if sentence:
            outputs.md(sentence, name="summary_sentence")
        images = []
        for key, value in results.items():
            if key in IMAGE_RESULTS:
                images += [value] if isinstance(value, str) else list(value or [])
            else:
                outputs.str(key, label=key.replace("_", " "), default=str(value))
        for i, path in enumerate(images):
            outputs.define_property(
                "storyboard_image" if len(images) == 1 else f"storyboard_image_{i}", types.String(),
                label=os.path.basename(path), default=f"/media?filepath={quote(path)}", view=types.ImageView(width="100%"),
            )
        return types.Property(outputs, view=types.View(label=f"{self.label}: done"))


#: the key under which a run's result may carry the view to show after it (taken out of the result)
VIEW_RESULT = "_view"

#: results that are image files, shown as images (through the App's media route), not as text
IMAGE_RESULTS = ("storyboard", "storyboard_files")


def failure_text(error: BaseException) -> str:
    """What the App shows of a failed run: one sentence. The library's own errors (ClipItError)
    already name the input and the remedy; anything else gives its message and its kind, and
    points to the server's log, where `_Failure` writes the traceback."""
    from fiftyone_clipit.errors import ClipItError

    message = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, ClipItError) and message:
        return message
    kind = type(error).__name__
    return f"{message or kind} ({kind}; the App server's log has the details)"


class _Failure(GeneratedMessage):
    """The line that ends a failed streamed run: the App reads `error` from each line of the
    stream and shows it in its error dialog (an exception raised mid-stream would only cut the
    stream, leaving the dialog at its last progress)."""

    def __init__(self, error: BaseException):
        super().__init__(MessageType.ERROR)
        self.error = error
        logger.error("%s", error, exc_info=error)

    def to_json(self) -> dict[str, Any]:
        message = failure_text(self.error)
        return {"type": str(self.type), "cls": None, "body": None, "error": message, "error_message": message}


# How often at most an immediate run sends its progress to the App.
PROGRESS_INTERVAL_S = 0.25


def from_the_app(ctx) -> bool:
    """Whether the App sent this execution: its requests name the operator (`operator_uri`);
    `foo.execute_operator` and the operator's `__call__` from Python do not."""
    return bool(ctx.request_params.get("operator_uri"))


def text_input(
    ctx,
    inputs: types.Object,
    name: str,
    label: str,
    default: str | None = None,
    required: bool = False,
    field_name: bool = False,
    folder: bool = False,
) -> types.Property:
    """A text box that is invalid (and blocks Execute) when empty, not a field name, or (for
    `folder`) not an absolute path; returns it."""
    prop = inputs.str(name, label=label, default=default, required=required)
    value = ctx.params.get(name, default)
    if required and value is None:
        prop.invalid = True  # nothing typed yet: Execute disabled, no red "must not be empty" yet
    elif required and not str(value).strip():
        prop.invalid = True
        prop.error_message = f"{label} must not be empty"
    elif field_name and value and not _FIELD_NAME.match(str(value)):
        prop.invalid = True
        prop.error_message = f"'{value}' is not a valid field name (letters, digits, '_')"
    elif folder and value and not os.path.isabs(os.path.expanduser(str(value).strip())):
        prop.invalid = True
        prop.error_message = _RELATIVE_FOLDER.format(value=value)
    return prop


def output_field_input(
    ctx, inputs: types.Object, name: str, label: str, default: str, owner_run: Callable[[str], str],
    ftype: type, embedded_doc_type: type | None = None, frames: bool = False,
) -> None:
    """A text box naming the field an operator writes, and an 'overwrite' box: invalid for a
    built-in field, a field of another type, or one CLIP-It did not write unless 'overwrite'."""
    from fiftyone_clipit.fo.common import output_field_problem

    inputs.bool("overwrite", default=False, label="Overwrite a field CLIP-It did not write (e.g. ground truth)")
    prop = text_input(ctx, inputs, name, label, default=default, field_name=True)
    value = ctx.params.get(name, default)
    if getattr(prop, "invalid", False) or not value or ctx.dataset is None:
        return
    path = f"frames.{value}" if frames else value
    problem = output_field_problem(
        ctx.dataset, path, owner_run(value), ftype, embedded_doc_type, bool(ctx.params.get("overwrite"))
    )
    if problem:
        prop.invalid = True
        prop.error_message = problem.replace(OVERWRITE_HINT, "tick 'Overwrite'")


_RELATIVE_FOLDER = (
    "'{value}' is a relative path, which the App's server would resolve inside its own install "
    "folder; give an absolute folder such as /data/clips or ~/clips"
)


def absolute_folder(value: str) -> str:
    """A folder typed in a form, with ~ expanded; a relative one is refused (see `text_input`)."""
    from fiftyone_clipit.errors import ClipItError

    path = os.path.expanduser(str(value).strip())
    if not os.path.isabs(path):
        raise ClipItError(_RELATIVE_FOLDER.format(value=value))
    return path


def field_choice(
    ctx,
    inputs: types.Object,
    name: str,
    label: str,
    choices: list[str],
    default: str | None,
    missing_hint: str,
    required: bool = True,
) -> None:
    """A dropdown of existing fields of the right type; invalid (Execute disabled) when none fits
    or the value is not one of them; an optional one may stay empty."""
    value = ctx.params.get(name, default if default in choices else None)
    prop = inputs.enum(
        name, choices, label=label, default=default if default in choices else None,
        view=types.AutocompleteView(),
    )
    if not required and not value:
        return
    if not choices:
        prop.invalid = True
        prop.error_message = f"No suitable field yet: {missing_hint}"
    elif not value:
        prop.invalid = True  # nothing chosen yet: Execute disabled, no error before a choice
    elif value not in choices:
        prop.invalid = True
        prop.error_message = f"'{value}' is not one of this dataset's fields that fit: choose one of {choices}"


def fields_of_type(ctx, ftype: type | tuple[type, ...], embedded_doc_type: type | None = None, frames: bool = False) -> list[str]:
    """Names of the dataset's (frame) fields of a type, e.g. frame FloatFields or TemporalDetections."""
    if ctx.dataset is None:
        return []
    schema = ctx.dataset.get_frame_field_schema() if frames else ctx.dataset.get_field_schema()
    names = []
    for name, field in (schema or {}).items():
        if embedded_doc_type is not None:
            if getattr(field, "document_type", None) is embedded_doc_type:
                names.append(name)
        elif isinstance(field, ftype):
            names.append(name)
    return sorted(names)


def float_input(
    ctx, inputs: types.Object, name: str, label: str, default: float, low: float, high: float
) -> None:
    """A number box that is invalid outside [low, high]."""
    prop = inputs.float(name, label=label, default=default, min=low, max=high)
    value = ctx.params.get(name, default)
    try:
        ok = value is not None and low <= float(value) <= high
    except (TypeError, ValueError):
        ok = False
    if not ok:
        prop.invalid = True
        prop.error_message = f"{label} must be between {low} and {high}"


def option_input(ctx, inputs: types.Object, options: type, name: str, default: Any = None) -> None:
    """A number box, or a dropdown for a choice, for one of the library's options
    (`fiftyone_clipit.options`): its label, help, default and range or choices written there
    once; invalid, with the library's own message, outside them. `default` replaces the
    option's (e.g. the value a run recorded)."""
    spec = options.spec(name)
    default = options.default(name) if default is None else default
    if spec.choices is not None:
        choices = [choice for choice in spec.choices if choice is not None]
        prop = inputs.enum(
            name, choices, label=spec.label or name, description=spec.help, default=default, view=types.DropdownView()
        )
    else:
        make = inputs.int if spec.integer else inputs.float
        prop = make(name, label=spec.label or name, description=spec.help, default=default, min=spec.low, max=spec.high)
    try:
        spec.check(spec.label or name, ctx.params.get(name, default))
    except ValueError as e:
        prop.invalid = True
        prop.error_message = str(e)


def shard_input(ctx, inputs: types.Object, target_size: int) -> None:
    """'Videos per shard' for a target of more than SHARD_FORM_MIN videos: when scheduled, one
    delegated operation per shard, which several workers run at once (0: one operation)."""
    from fiftyone_clipit.shards import DEFAULT_VIDEOS_PER_SHARD, SHARD_FORM_MIN

    if target_size <= SHARD_FORM_MIN:
        return
    prop = inputs.int(
        "videos_per_shard", default=DEFAULT_VIDEOS_PER_SHARD, min=0,
        label="Videos per shard when scheduled (0: one operation)",
        description="Each shard is its own delegated operation, so several workers share the target",
    )
    value = ctx.params.get("videos_per_shard", DEFAULT_VIDEOS_PER_SHARD)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        prop.invalid = True
        prop.error_message = f"Videos per shard must be a whole number >= 0, got {value!r}"
