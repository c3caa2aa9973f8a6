"""Exercises with a checker the learner calls and a solution hidden until asked for.

Each chapter module defines its exercises as :class:`Exercise` objects; a notebook shows the task,
the learner writes a function, and ``exercise.check(their_function)`` says whether it is right and,
if not, on which input it went wrong. ``exercise.solution()`` prints one answer.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import os
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

__all__ = ["Exercise", "Verdict", "ForbiddenCall", "close", "type_problem", "forbidding", "imported_forbidden",
           "predicted", "filling_in", "FILL_PREDICTIONS"]

FILL_PREDICTIONS = "LLMCOURSE_FILL_PREDICTIONS"  # set to 1 by notebooks/conftest.py: the tests measure every experiment


def _written(prediction: Any) -> bool:
    if isinstance(prediction, dict):
        return any(_written(v) for v in prediction.values())
    if isinstance(prediction, (list, tuple)):
        return any(_written(v) for v in prediction)
    return prediction is not None and prediction != ""


def filling_in(blank: Sequence = ()) -> bool:
    """Whether the notebook tests are filling in blank predictions (``LLMCOURSE_FILL_PREDICTIONS=1``); if so,
    and ``blank`` names any, says so."""
    if os.environ.get(FILL_PREDICTIONS, "") != "1":
        return False
    if blank:
        print(f"(no prediction written for {list(blank)}: a stand-in is measured against, as the notebook tests do)")
    return True


def predicted(prediction: Any, *, what: str = "your prediction in my_prediction", then: str = "measures") -> bool:
    """Whether a "predict, then measure" exercise may measure: True once ``prediction`` holds an answer (a value,
    or a dict or list with at least one value that is not None).

    While it is blank, it says what to write and returns False, so the cell measures nothing and a committed
    notebook shows the question, not the answer. The notebook tests set ``LLMCOURSE_FILL_PREDICTIONS=1``
    (notebooks/conftest.py) so that every measurement still runs in CI; the cell then says so."""
    if _written(prediction):
        return True
    if filling_in():
        print(f"(no prediction written: this run {then} anyway, as the notebook tests do)")
        return True
    print(f"❌ Not yet — predict first: write {what}, then run the cell again; it {then} once you have.")
    return False


class ForbiddenCall(RuntimeError):
    """The learner's answer called a library function the exercise asks them to write themselves."""


def _owner(dotted: str) -> tuple[Any, str]:
    """``"torch.nn.functional.softmax"`` -> (the module ``torch.nn.functional``, ``"softmax"``);
    ``"torch.Tensor.softmax"`` -> (the class ``torch.Tensor``, ``"softmax"``)."""
    path, _, attr = dotted.rpartition(".")
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj, attr
    raise ValueError(f"cannot find {dotted!r}")


def _names_used(code) -> set[str]:
    """Every global name a function's code (and the code nested in it) reads."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _names_used(const)
    return names


def imported_forbidden(answer: Callable, names: Sequence[str]) -> str | None:
    """The forbidden function ``answer`` reaches through a name imported before the check (``from torch import
    softmax``), which patching the library cannot catch; None if it reaches none."""
    code, scope = getattr(answer, "__code__", None), getattr(answer, "__globals__", {})
    if code is None:
        return None
    for dotted in names:
        owner, attr = _owner(dotted)
        target = getattr(owner, attr)
        if any(scope.get(n) is target for n in _names_used(code)):
            return dotted
    return None


@contextlib.contextmanager
def forbidding(names: Sequence[str]):
    """Inside the block, calling any of ``names`` (dotted: ``"torch.softmax"``, ``"torch.Tensor.softmax"``)
    raises :class:`ForbiddenCall`; they are put back afterwards, whatever happens."""
    saved = []
    try:
        for dotted in names:
            owner, attr = _owner(dotted)
            original = getattr(owner, attr)

            def refuse(*args, _name=dotted, **kwargs):
                raise ForbiddenCall(_name)

            saved.append((owner, attr, original))
            setattr(owner, attr, refuse)
        yield
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


def close(a: Any, b: Any, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    """Equality for answers: numbers and tensors within a tolerance, containers element-wise."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rel, atol=abs_, equal_nan=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_) or (math.isinf(a) and a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel, abs_) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, rel, abs_) for x, y in zip(a, b))
    return a == b


class Verdict:
    """What :meth:`Exercise.check` returns: true when the answer passed. It prints nothing of its own in a
    notebook (the check has said everything), so a cell ending in ``exercise.check(...)`` shows no ``False``."""

    __slots__ = ("passed",)

    def __init__(self, passed: bool):
        self.passed = bool(passed)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"Verdict(passed={self.passed})"

    def _ipython_display_(self) -> None:  # IPython calls this instead of showing the repr
        pass


def type_problem(got: Any, expected: Any) -> str | None:
    """Why ``got`` cannot stand for ``expected`` whatever its values (a float mask for a boolean one), or None."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"it returned a {type(got).__name__}; return a torch.Tensor."
        kinds = [("bool" if t.dtype == torch.bool else "floating-point" if t.dtype.is_floating_point
                  else "complex" if t.dtype.is_complex else "integer") for t in (got, expected)]
        if kinds[0] != kinds[1]:
            return (f"it returned a {kinds[0]} tensor ({got.dtype}); a {kinds[1]} tensor ({expected.dtype}) is asked "
                    "for (convert with .to(dtype) or build it with that dtype).")
        if got.shape != expected.shape:
            return f"it returned shape {tuple(got.shape)}, expected shape {tuple(expected.shape)}."
    elif isinstance(expected, tuple) and isinstance(got, (tuple, list)) and len(got) == len(expected):
        for g, e in zip(got, expected):
            problem = type_problem(g, e)
            if problem:
                return problem
    return None


@dataclass
class Exercise:
    """A task, the reference ``solution`` and the inputs the checker tries (each a tuple of args)."""

    title: str
    task: str
    solution_fn: Callable
    cases: Sequence[tuple] = field(default_factory=list)
    hint_text: str = ""
    forbidden: Sequence[str] = ()  # library functions the answer must not call (it is asked to write them)

    def __repr__(self) -> str:
        return f"Exercise: {self.title}\n\n{textwrap.dedent(self.task).strip()}"

    def _repr_markdown_(self) -> str:
        return f"**Exercise — {self.title}**\n\n{textwrap.dedent(self.task).strip()}"

    def check(self, answer: Callable, verbose: bool = True) -> Verdict:
        """Run ``answer`` on every case and compare with the solution; print what went wrong, if anything."""
        imported = imported_forbidden(answer, self.forbidden)
        if imported:
            return self._say(False, verbose, f"it calls {imported}, which this exercise asks you to write yourself "
                             f"(not allowed here: {', '.join(self.forbidden)}).")
        for args in self.cases:
            expected = self.solution_fn(*args)
            try:
                with forbidding(self.forbidden):
                    got = answer(*args)
            except ForbiddenCall as exc:
                return self._say(False, verbose, f"it calls {exc}, which this exercise asks you to write yourself "
                                 f"(not allowed here: {', '.join(self.forbidden)}).")
            except NotImplementedError:
                return self._say(False, verbose, "not written yet: fill in the function, then run this cell again.")
            except Exception as exc:  # the learner's code failing is an answer to report, not a crash
                return self._say(False, verbose, f"raised {type(exc).__name__}: {exc} on input {_short(args)}.")
            problem = type_problem(got, expected)
            if problem:
                return self._say(False, verbose, f"on input {_short(args)}: {problem}")
            if not close(got, expected):
                return self._say(False, verbose, f"on input {_short(args)} it returned {_short(got)}, "
                                 f"expected {_short(expected)}.")
        return self._say(True, verbose, f"all {len(self.cases)} checks passed.")

    def hint(self) -> None:
        print(self.hint_text or "No hint for this one: re-read the cell above the exercise.")

    def solution(self) -> None:
        """Print the reference solution's source."""
        print(inspect.getsource(self.solution_fn))

    def _say_predictions(self, wrong: list, total: int, label: str, verbose: bool) -> "Verdict":
        """The verdict of an experiment: the predictions its measurement contradicted (``label``: "D =", ...)."""
        if wrong:
            return self._say(False, verbose, f"the measurement disagrees with you at {label} {wrong}. Why? "
                             "(.hint() gives a clue; .solution() explains.)")
        return self._say(True, verbose, f"all {total} predictions held.")

    def _say(self, ok: bool, verbose: bool, message: str) -> "Verdict":
        if verbose:
            print(("✅ Correct — " if ok else "❌ Not yet — ") + message)
        return Verdict(ok)


def _short(value: Any, width: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
