"""``python -m mlflywheel.datasets``: bring your own dataset without code.

* ``draft data.csv --name NAME [--timestamp COL] [--target COL] [--id COL] [--out spec.yaml]``
  drafts a spec from a CSV (read once, in chunks) for you to edit;
* ``check [spec.yaml]`` loads a spec with every check and prints what it declares (without a
  file: the spec the ``FLYWHEEL_*`` settings select, as every process would load it);
* ``replay data.csv [--spec spec.yaml] [--lake URI] [--from DAY] [--to DAY]`` lands the CSV in
  the lake's landing zone, one UTC day per partition, reading the file once.

Errors go to stderr with exit status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlflywheel.datasets.spec import DatasetSpec, SpecError

if TYPE_CHECKING:  # pragma: no cover
    from mlflywheel.settings import Settings


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlflywheel.datasets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    draft = commands.add_parser("draft", help="draft a spec from a CSV file")
    draft.add_argument("csv", type=Path)
    draft.add_argument("--name", required=True, help="the dataset's name (lake folders, model name, DAG tags)")
    draft.add_argument("--timestamp", help="the timestamp column (default: the likeliest datetime column)")
    draft.add_argument("--target", help="the 0/1 label column (default: the likeliest 0/1 column)")
    draft.add_argument("--id", dest="id_column", help="the id column (default: one named like an id, if unique)")
    draft.add_argument("--out", type=Path, help="write the spec here (default: print it)")
    draft.add_argument("--max-categories", type=int, default=30, help="largest vocabulary drafted (default 30)")
    draft.add_argument("--chunk-rows", type=int, default=100_000, help="rows read at a time")

    check = commands.add_parser("check", help="load a spec with every check and summarise it")
    check.add_argument("spec", nargs="?", help="a spec file (path, file:// or s3://); default: the settings'")

    replay = commands.add_parser("replay", help="land a CSV in the landing zone, one UTC day per partition")
    replay.add_argument("csv", type=Path)
    replay.add_argument("--spec", help="the spec file (default: the one the FLYWHEEL_* settings select)")
    replay.add_argument("--lake", help="the lake URI (default: FLYWHEEL_LAKE_URI)")
    replay.add_argument("--from", dest="first_day", type=_day, help="first day to land (YYYY-MM-DD)")
    replay.add_argument("--to", dest="last_day", type=_day, help="last day to land (YYYY-MM-DD)")
    replay.add_argument("--chunk-rows", type=int, default=100_000, help="rows read at a time")
    return parser


def _settings() -> Settings:
    from mlflywheel.settings import Settings

    return Settings.from_env()


def _spec(location: str | None) -> DatasetSpec:
    from mlflywheel.datasets import load_spec, load_spec_file

    if location:
        return load_spec_file(location, s3_endpoint_url=_settings().s3_endpoint_url)
    return load_spec(_settings())


def run_draft(args: argparse.Namespace) -> int:
    from mlflywheel.datasets.draft import draft_spec, draft_yaml, profile_csv
    from mlflywheel.datasets.spec_file import parse_spec_text

    profiles = profile_csv(args.csv, chunk_rows=args.chunk_rows, max_categories=args.max_categories)
    draft = draft_spec(
        profiles, name=args.name, timestamp=args.timestamp, target=args.target, id_column=args.id_column,
        max_categories=args.max_categories, source=args.csv.name,
    )  # fmt: skip
    text = draft_yaml(draft)
    parse_spec_text(text, source="the drafted spec")  # what is written must load
    for note in draft.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(draft.spec.columns)} columns; edit it, then check it with "
          f"`python -m mlflywheel.datasets check {args.out}`", file=sys.stderr)
    return 0


def describe(spec: DatasetSpec) -> str:
    """A few lines that say what the spec declares."""
    id_text = spec.id_column or "none (derived: <day>:<row position>)"
    lines = [
        f"{spec.name}: {len(spec.columns)} columns, landing format {spec.landing_format}",
        f"  timestamp {spec.timestamp_column}, target {spec.target}, id {id_text}",
        f"  categorical features ({len(spec.categorical_features)}): {', '.join(spec.categorical_features) or '-'}",
        f"  numeric features ({len(spec.numeric_features)}): {', '.join(spec.numeric_features) or '-'}",
        f"  expectations: {len(spec.expectations())} (schema-derived and {len(spec.extra_expectations)} extra)",
        f"  drift: {spec.drift}",
        f"  performance: {spec.performance}",
    ]
    return "\n".join(lines)


def run_check(args: argparse.Namespace) -> int:
    print(describe(_spec(args.spec)))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from mlflywheel.datasets.upstreams.csv_replay import replay_csv
    from mlflywheel.lake import open_lake

    settings = _settings()
    spec = _spec(args.spec)
    lake = open_lake(args.lake or settings.lake_uri, s3_endpoint_url=settings.s3_endpoint_url)
    result = replay_csv(
        lake, spec, args.csv, first_day=args.first_day, last_day=args.last_day, chunk_rows=args.chunk_rows
    )
    days = sorted(result.rows_per_day)
    if not days:
        print(f"{args.csv}: no row with a readable {spec.timestamp_column}; nothing landed", file=sys.stderr)
        return 1
    empty = sum(1 for n in result.rows_per_day.values() if n == 0)
    print(
        f"landed {len(days)} days of {spec.name} ({days[0]} .. {days[-1]}, {empty} without rows) in "
        f"{lake.uri}: {result.rows_landed:,} of {result.rows_read:,} rows; "
        f"{result.rows_without_timestamp:,} without a readable {spec.timestamp_column}, "
        f"{result.rows_outside_range:,} outside the range"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"draft": run_draft, "check": run_check, "replay": run_replay}
    from mlflywheel.lake import LakeError

    try:
        return commands[args.command](args)
    except (SpecError, ValueError, KeyError, OSError, LakeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
