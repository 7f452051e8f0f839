"""One error hierarchy: everything a user can fix is a :class:`TfUsaugError`.

Library code raises these with a message that names the file, folder or option at fault and
says what to do. The command-line front ends catch them in one place
(:func:`tf_usaug.cli.entry_point`), print one line on stderr and exit with code 2; anything else
is a bug and keeps its traceback.

    TfUsaugError
    ├── UsageError        a bad argument or argument combination
    ├── InputError        input data that cannot be used (the message starts with the path)
    │   ├── ImageError    a file that cannot be read as an image
    │   ├── DatasetError  a dataset layout, CSV or split that cannot be used
    │   └── BadInputsError  several unusable files, listed one per line
    ├── OutputError       an output folder that cannot be written, locked, or from another run
    ├── BackboneError     a feature extractor that cannot be built as configured
    ├── RelevanceError    relevance configuration or classifier problems
    └── ScalingError      a scaling CSV or summary that cannot be used
"""
from __future__ import annotations

import os
from pathlib import Path


class TfUsaugError(ValueError):
    """Base class: a problem the user can fix; its message is one line for people.

    Subclasses ``ValueError`` so that callers written against the earlier per-module errors
    (all ``ValueError``) keep working.
    """

    exit_code = 2


class UsageError(TfUsaugError):
    """A bad argument or argument combination."""


class InputError(TfUsaugError):
    """Input that cannot be used; ``InputError(path, reason)`` formats ``"<path>: <reason>"``.

    Both parts stay available as attributes (``path`` is None when the error was built from one
    ready-made message).
    """

    def __init__(self, path_or_message: str | os.PathLike, reason: str | None = None):
        self.path = None if reason is None else Path(path_or_message)
        self.reason = str(path_or_message) if reason is None else reason
        super().__init__(self.reason if reason is None else f"{path_or_message}: {reason}")


class ImageError(InputError):
    """A file that cannot be read as an image; the message starts with the file path."""


class DatasetError(InputError):
    """A dataset that cannot be used; the message starts with the folder or file at fault."""


class OutputError(TfUsaugError):
    """An output folder that cannot be used (not writable, locked, or holding another run)."""


class BackboneError(TfUsaugError):
    """A backbone cannot be built as configured (bad name, layer or weights file)."""


class RelevanceError(TfUsaugError):
    """Bad relevance configuration or unavailable classifier (message says what to do)."""


class ScalingError(TfUsaugError):
    """Bad scaling input (CSV or summary.json); the message starts with the file path."""


class BadInputsError(InputError):
    """Several input files cannot be used: one error listing every file with its problem.

    ``problems`` is a list of ``(path, reason)``; :attr:`details` gives one line per file,
    printed by the CLI under the error line.
    """

    def __init__(self, problems, total: int):
        self.problems = [(str(p), str(r)) for p, r in problems]
        n = len(self.problems)
        super().__init__(f"{n} of {total} input file{'s' if total != 1 else ''} cannot be used "
                         "(fix or remove them, or pass --skip-bad to go on without them); "
                         "nothing was written")

    @property
    def details(self) -> list[str]:
        return [f"  {p}: {r}" for p, r in self.problems]


def require_whole(name: str, value, minimum: int = 1) -> None:
    """:class:`UsageError` naming option ``--name`` unless ``value`` is an int >= ``minimum``
    (a bool is not a whole number here). The one check every config dataclass shares."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"--{name.replace('_', '-')} must be a whole number >= {minimum}, "
                         f"got {value!r}")
