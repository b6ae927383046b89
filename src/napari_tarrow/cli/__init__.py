"""Command line: ``napari-tarrow train|attribute|features|demo|evaluate|segment|segment-eval``.

One module per subcommand, each with ``add_parser`` and the function it runs; job
progress goes to tqdm bars (:mod:`.progress`). Problems with input, files or
settings print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from ..errors import Cancelled, TarrowError
from . import attribute, demo, evaluate, features, segment, train

log = logging.getLogger("napari_tarrow")

#: The subcommands' modules, in the order of ``napari-tarrow --help``.
SUBCOMMANDS = (train, attribute, features, demo, evaluate, segment)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``napari-tarrow`` argument parser."""
    p = argparse.ArgumentParser(
        prog="napari-tarrow",
        description="Time arrow prediction (TAP) for live-cell time-lapses: train "
        "a model, map where time is asymmetric, export features, evaluate, segment.",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-tarrow`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        with warnings.catch_warnings():  # one "WARNING: ..." line, not a source excerpt
            warnings.showwarning = lambda message, *_: log.warning("%s", message)
            func(args)
    except TarrowError as e:
        print(f"napari-tarrow {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unwritable output, disk full, ...
        where = f": {e.filename}" if e.filename else ""
        print(
            f"napari-tarrow {args.command}: error: {e.strerror or e}{where}",
            file=sys.stderr,
        )
        return 2
    except Cancelled as e:
        print(f"napari-tarrow {args.command}: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"napari-tarrow {args.command}: aborted", file=sys.stderr)
        return 130
    return 0
