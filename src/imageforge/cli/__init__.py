"""``imageforge`` command line: ``serve`` (the HTTP API), ``generate`` and ``edit`` (in-process, or on a
``--server``, to files), ``pull`` (a checkpoint into the cache) and ``models``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from imageforge.cli.parser import build_parser, settings_from
from imageforge.cli.remote import RemoteError
from imageforge.config import Settings
from imageforge.errors import ImageForgeError

__all__ = ["main"]


def _configure_logging(settings: Settings) -> None:
    """ImageForge's own records at the configured level; libraries keep their defaults (warnings)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("imageforge").setLevel(settings.log_level.upper())
    # The multipart parser warns once per malformed upload, which the client already got as a 400: a hostile
    # client must not be able to fill the log with them.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)


def _print_error(err: Console, message: str, param: str | None = None) -> None:
    # soft_wrap: the terminal wraps long lines itself; rich would otherwise break them at its width (80 columns
    # when stderr is not a terminal), splitting "(param: model)" across lines. escape: messages name fields
    # such as image[1], which rich would read as markup.
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    if param:
        err.print(f"  param: {escape(param)}", soft_wrap=True)


def _dispatch(ns: argparse.Namespace, out: Console) -> int:
    from imageforge.cli.local import run_local
    from imageforge.cli.remote import run_remote
    from imageforge.cli.serve import run_models, run_serve

    if ns.command in ("generate", "edit"):
        run = run_remote if ns.server else run_local
        return run(ns, out, edit=ns.command == "edit")
    if ns.command == "serve":
        return run_serve(ns, out)
    if ns.command == "pull":
        from imageforge.cli.models import run_pull

        return run_pull(ns, out)
    return run_models(ns, out)


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    out, err = Console(), Console(stderr=True)
    try:
        _configure_logging(settings_from(ns))
        return _dispatch(ns, out)
    except ImageForgeError as exc:
        _print_error(err, exc.message, exc.param)
        return 2
    except RemoteError as exc:
        status = f" (HTTP {exc.status})" if exc.status else ""
        _print_error(err, f"{exc.message}{status}", exc.param)
        return 2 if exc.status is None or exc.status < 500 else 1
    except ValidationError as exc:  # a setting from a flag or the environment is invalid
        _print_error(err, f"invalid setting: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
