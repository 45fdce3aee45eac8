"""The `irt-pipeline` console script: a thin shell over storage and the Dagster layer.

Subcommands:
  migrate       apply the SQL migrations to IRT_DATABASE_URL (or the embedded database)
  seed-demo     fill the database with a simulated demo bank
  calibrate     materialize the five assets for one item bank and print the run summary
  parameters    print the latest parameters of one item as JSON (exit 1 with ITEM_NOT_FOUND)
  ability       print a student's latest ability on a bank as JSON (exit 1 with STUDENT_NOT_FOUND)
"""

from __future__ import annotations

import argparse
import sys


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irt-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply the SQL migrations, idempotently")

    seed = sub.add_parser("seed-demo", help="simulate a demo item bank from known 3PL parameters")
    seed.add_argument("--bank", default="demo", help="item bank to fill (default: demo)")
    seed.add_argument("--items", type=int, default=1000, help="number of items (default 1000)")
    seed.add_argument("--students", type=int, default=5000, help="number of students (default 5000)")
    seed.add_argument("--seed", type=int, default=20261125, help="random seed")

    cal = sub.add_parser("calibrate", help="calibrate one item bank (materializes every asset)")
    cal.add_argument("--bank", required=True, help="item bank (the partition key)")
    cal.add_argument("--min-responses", type=int, default=None)
    cal.add_argument("--max-iterations", type=int, default=None)
    cal.add_argument("--convergence-threshold", type=float, default=None)
    cal.add_argument("--item-id", action="append", dest="item_ids", default=None,
                     help="restrict to this item (repeatable)")
    cal.add_argument("--linking", choices=("stocking_lord", "none"), default=None,
                     help="stocking_lord (default): link the run to the bank's scale; none: start a new "
                          "scale for the bank from this run")
    cal.add_argument("--json", action="store_true", dest="json_output",
                     help='print the brief\'s envelope {"data": ..., "error": ...} instead of the summary')

    params = sub.add_parser("parameters", help='latest parameters of one item: {"data": ..., "error": ...}')
    params.add_argument("item_id")

    ability = sub.add_parser("ability", help='latest ability of one student on a bank: {"data": ..., "error": ...}')
    ability.add_argument("student_id")
    ability.add_argument("--bank", required=True, help="item bank (the scale the ability is on)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from irt_pipeline.signals import restore_default_interrupts

    restore_default_interrupts()
    args = _build_parser().parse_args(argv)
    if args.command == "migrate":
        from irt_pipeline.storage.commands import migrate_command

        return migrate_command()
    if args.command == "seed-demo":
        from irt_pipeline.storage.commands import seed_demo_command

        return seed_demo_command(bank=args.bank, n_items=args.items,
                                 n_students=args.students, seed=args.seed)
    if args.command == "parameters":
        from irt_pipeline.storage.commands import parameters_command

        return parameters_command(args.item_id)
    if args.command == "ability":
        from irt_pipeline.storage.commands import ability_command

        return ability_command(args.student_id, bank=args.bank)
    if args.command == "calibrate":
        from irt_pipeline.defs.operations.launch import calibrate_command

        return calibrate_command(
            bank=args.bank,
            min_responses=args.min_responses,
            max_iterations=args.max_iterations,
            convergence_threshold=args.convergence_threshold,
            item_ids=args.item_ids,
            linking=args.linking,
            json_output=args.json_output,
        )
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
