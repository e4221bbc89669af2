"""``tlstudio runs|compare|report|map``: every kept run, side by side, one report file, and
a map of one run's images as its model sees them."""

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


def _add_map(sub) -> None:
    p = sub.add_parser("map", help="a 2-D map of a run's images as its model sees them "
                                   "(t-SNE or PCA of its features), with its mistakes and "
                                   "near-duplicate images (leakage when split apart)")
    p.add_argument("--run", required=True, help="a finished run folder")
    p.add_argument("--method", choices=["tsne", "pca"], default="tsne")
    p.add_argument("--out", help="write the points as CSV (path,label,part,predicted,"
                                 "correct,x,y) to this new file")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_map)


def cmd_map(args) -> int:
    import csv
    import sys

    from ..core.runs.history import require_finished
    from ..core.studies.embedding_map import embedding_map

    require_finished(args.run)
    out = Path(args.out).expanduser() if args.out else None
    if out is not None and out.exists():
        raise UserError(f"--out: '{out}' exists; name a new file")
    if out is not None and not out.parent.is_dir():
        raise UserError(f"--out: the folder '{out.parent}' does not exist")
    result = embedding_map(args.run, args.method, args.device)
    if out is not None:
        tmp = out.with_name(f".{out.name}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label", "part", "predicted", "correct", "x", "y"])
            for p in result["points"]:
                writer.writerow([p["path"], p["label"], p["part"], p["predicted"],
                                 int(p["correct"]), f"{p['x']:.4f}", f"{p['y']:.4f}"])
        tmp.replace(out)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    points = result["points"]
    wrong = [p for p in points if not p["correct"]]
    print(f"{len(points)} images mapped ({result['method']}); {len(wrong)} the model gets "
          "wrong" + (f"; {result['left_out']} could not be read" if result["left_out"] else ""))
    for p in wrong:
        print(f"  wrong: {p['path']} ({p['part']}): {p['label']}, called {p['predicted']}")
    for d in result["duplicates"]:
        where = "LEAK across " + " and ".join(d["parts"]) if d["leak"] else "both " + \
            d["parts"][0]
        print(f"  near-duplicates ({d['similarity']:.4f}, {where}): {d['a']}  {d['b']}")
    if out is not None:
        print(f"points written to {out}", file=sys.stderr)
    return 0
