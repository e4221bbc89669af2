"""``tlstudio adapt``: carry a trained run to a new scanner, site or camera with that domain's
unlabeled images (and, if given, a few labeled ones to measure it)."""

from __future__ import annotations

import json
import sys

from ..core.engine.events import StageProgress


def _add_adapt(sub) -> None:
    from ..core.runs.adapt_request import DEFAULT_METHOD, METHODS

    p = sub.add_parser(
        "adapt", help="adapt a trained run to images of a new domain (another scanner, site "
                      "or camera); writes a new run, the source run stays as it was")
    p.add_argument("--run", required=True, help="the trained run folder to adapt")
    p.add_argument("--images", required=True,
                   help="a folder of images of the new domain (no labels needed; DICOM too)")
    p.add_argument("--out", required=True, help="the new run folder to write")
    p.add_argument("--labels", metavar="CSV",
                   help="path,label rows for some images of the new domain: accuracy before "
                        "and after is measured with intervals and the better model kept")
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS),
                   help="; ".join(f"{k}: {v}" for k, v in METHODS.items())
                        + f" (default {DEFAULT_METHOD})")
    p.add_argument("--domain", help="a name for the new domain (default: the folder's name)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the adaptation block as JSON")
    p.set_defaults(func=cmd_adapt)


def cmd_adapt(args) -> int:
    from ..core.runs.adapt import adapt
    from ..core.runs.adapt_output import describe

    # adapt() checks the request and the device first, before any slow work (exit 2)
    block = adapt(args.run, args.images, args.out, args.labels, args.method,
                  domain=args.domain, device=args.device, emit=_progress)
    if args.json:
        print(json.dumps(block, indent=2))
    else:
        for line in describe(block):
            print(line)
        print(f"new run: {args.out}")
    return 0


def _progress(event) -> None:
    if isinstance(event, StageProgress) and event.done == event.total:
        print(f"{event.stage}: {event.done}/{event.total}", file=sys.stderr)
