"""``tlstudio runs|compare|report``: every kept run, side by side, and one report file."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError


def _add_runs(sub) -> None:
    p = sub.add_parser("runs", help="list every run in tlstudio's runs folder (or --root): "
                                    "date, dataset, backbone, mode, status, headline metric")
    p.add_argument("--root", help="a folder of run folders (default: tlstudio's own)")
    p.add_argument("--delete", metavar="RUN_DIR", help="delete one run folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)


def cmd_runs(args) -> int:
    from ..core.runs.catalog import delete_run, list_overviews

    if args.delete:
        delete_run(args.delete)
        print(f"deleted {args.delete}")
        return 0
    root = Path(args.root).expanduser() if args.root else None
    if root is not None and not root.is_dir():
        raise UserError(f"--root: '{root}' is not a folder")
    rows = list_overviews(root)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return 0
    if not rows:
        print("no runs yet")
        return 0
    for r in rows:
        s = r.summary
        print(f"{s.created[:16]:<17} {s.dir.name}\n    {s.backbone}, {s.mode}, {s.status} "
              f"(epoch {s.epochs_done} of {s.epochs}) · {Path(r.dataset).name} · {r.headline}")
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="put two or more runs side by side: held-out metrics "
                                       "with their 95 %% intervals")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    from ..core.runs.catalog import comparison, comparison_text

    if len(args.runs) < 2:
        raise UserError("compare needs at least two run folders")
    rows = comparison(args.runs)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "curves"} for r in rows],
                         indent=2))
        return 0
    print("\n".join(comparison_text(rows)))
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML report of a run: data, "
                                      "settings, curves, held-out metrics with intervals, ROC, "
                                      "calibration, confusion matrix, heatmaps, model card")
    p.add_argument("--run", required=True, metavar="RUN_DIR")
    p.add_argument("--out", help="file or folder to write (default: RUN_DIR/report.html)")
    p.add_argument("--no-images", action="store_true",
                   help="leave out the example images and their heatmaps")
    p.set_defaults(func=cmd_report)


def cmd_report(args) -> int:
    from ..core.runs.history import read_config
    from ..core.runs.report import write_report

    read_config(args.run)  # not a run: exit 2 before any work
    if args.out:
        out = Path(args.out).expanduser().resolve()
        data = Path(str(read_config(args.run).get("dataset", {}).get("root", ""))).resolve()
        folder = data if data.is_dir() else data.parent
        if str(folder) not in ("", "/") and (out == folder or folder in out.parents):
            raise UserError(f"--out '{args.out}' is inside the run's dataset folder; tlstudio "
                            "never writes into your data")
    path = write_report(args.run, args.out, images=not args.no_images)
    print(f"report: {path}")
    return 0
