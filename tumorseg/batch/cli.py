"""The ``--shard I/N`` option that every batch command takes (``add_shard_option``; the rule is
in :mod:`tumorseg.batch`).  ``tumorseg merge`` is :func:`tumorseg.cli.merge_main`."""

from __future__ import annotations

import argparse

from tumorseg.batch import SHARD_RULE, Shard


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_shard_option(parser: argparse.ArgumentParser, items: str = "cases") -> None:
    """``--shard I/N`` (default ``0/1``, everything): do only shard I of N of the ``items``."""
    parser.add_argument(
        "--shard",
        type=_shard,
        default=Shard(),
        metavar="I/N",
        help=f"do only shard I of N of the {items} (0 <= I < N; rule: {SHARD_RULE}); the N "
        f"shards together do exactly the work of one run (default 0/1: all)",
    )
