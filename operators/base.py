"""What every CLIP-It operator shares: the config, the target view, validation and progress."""

from __future__ import annotations

import re
from typing import Any, Callable

import fiftyone.operators as foo
import fiftyone.operators.types as types

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClipItOperator(foo.Operator):
    """A thin operator: a form (`build_inputs`), one library call (`run`), a short output.

    Subclasses set `name`, `label`, `description`; `heavy` operators offer delegated execution
    and choose it by default.
    """

    name = ""
    label = ""
    description = ""
    heavy = True
    needs_target = True

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name=self.name,
            label=self.label,
            description=self.description,
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=self.heavy,
            default_choice_to_delegated=self.heavy,
        )

    def build_inputs(self, ctx, inputs: types.Object) -> None:
        raise NotImplementedError

    def run(self, ctx, progress: Callable[[float, str], None]) -> dict[str, Any]:
        raise NotImplementedError

    def target(self, ctx):
        """The dataset, current view or selected samples, as chosen in the form."""
        return ctx.target_view()

    def resolve_input(self, ctx):
        inputs = types.Object()
        if self.needs_target:
            ctx.target_view()
        self.build_inputs(ctx, inputs)
        return types.Property(inputs, view=types.View(label=self.label))

    def execute(self, ctx):
        def progress(fraction: float, label: str) -> None:
            ctx.set_progress(progress=fraction, label=label)

        result = self.run(ctx, progress)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return result

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key, value in (ctx.results or {}).items():
            outputs.str(key, label=key.replace("_", " "), default=str(value))
        return types.Property(outputs, view=types.View(label=f"{self.label}: done"))


def text_input(
    ctx,
    inputs: types.Object,
    name: str,
    label: str,
    default: str | None = None,
    required: bool = False,
    field_name: bool = False,
) -> None:
    """A text box that is invalid (and blocks Execute) when empty or not a field name."""
    prop = inputs.str(name, label=label, default=default, required=required)
    value = ctx.params.get(name, default)
    if required and (value is None or not str(value).strip()):
        prop.invalid = True
        prop.error_message = f"{label} must not be empty"
    elif field_name and value and not _FIELD_NAME.match(str(value)):
        prop.invalid = True
        prop.error_message = f"'{value}' is not a valid field name (letters, digits, '_')"


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
