"""The one place where errors become a line for people: :func:`entry_point`.

Every ``python -m tf_usaug.<job>`` front end wraps its ``main`` with it:

* a :class:`~tf_usaug.errors.TfUsaugError` (anything the user can fix) prints
  ``error: <message>`` on one line of stderr (prefixed ``[rank r]`` on ranks other than 0) and
  exits with code 2;
* an ``OSError`` about a path (permission denied, disk full, not a folder ...) is also the
  user's to fix: one line naming the path, exit 2;
* Ctrl-C (``KeyboardInterrupt``) prints ``interrupted`` and exits with 130, the shell's code
  for SIGINT; jobs write what they finished before re-raising it;
* with ``--verbose`` among the arguments the traceback is printed as well;
* anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import traceback
from typing import Callable, Sequence

from .errors import TfUsaugError, UsageError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_RANK_VARS = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are :class:`UsageError` (one line and exit 2 via :func:`entry_point`)
    instead of a usage block; ``--help`` is unchanged."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def non_empty_path(text: str):
    """argparse type: a path that is not the empty string (``Path("")`` would mean ``.``)."""
    from pathlib import Path

    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


def rank_from_env() -> int:
    """This process's rank as a launcher set it (0 when not launched by one)."""
    for var in _RANK_VARS[:3]:
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                return 0
    return 0


def error_line(message: str) -> str:
    """``error: message`` on one line, with the rank prefix on ranks other than 0."""
    rank = rank_from_env()
    prefix = f"[rank {rank}] " if rank else ""
    one_line = " ".join(str(message).split())
    return f"{prefix}error: {one_line}"


def describe_os_error(exc: OSError) -> str:
    """``<path>: <reason>`` for an OSError (permission, disk full, missing folder ...)."""
    reason = exc.strerror or exc.__class__.__name__
    names = [n for n in (exc.filename, exc.filename2) if n]
    if names:
        return f"{os.fsdecode(names[0])}: {reason}"
    return f"{reason} ({exc})"


def entry_point(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a CLI ``main(argv) -> int`` so user errors end in one line and exit code 2."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        verbose = "--verbose" in args
        try:
            return main(args)
        except TfUsaugError as exc:
            if verbose:
                traceback.print_exc()
            print(error_line(str(exc)), file=sys.stderr)
            for line in getattr(exc, "details", ()):  # e.g. one line per bad input file
                print(line, file=sys.stderr)
            return exc.exit_code
        except OSError as exc:
            if verbose:
                traceback.print_exc()
            print(error_line(describe_os_error(exc)), file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            if verbose:
                traceback.print_exc()
            print(error_line("interrupted (Ctrl-C); finished work is kept, rerun to resume"),
                  file=sys.stderr)
            return EXIT_INTERRUPTED

    return wrapper
