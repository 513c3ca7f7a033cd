"""CLI: `pathpt annotations import|export|list` (QuPath GeoJSON <-> a project's regions) and the
`--annotations DIR` option of `pathpt train`.

    pathpt annotations import --project proj/ --slide s1 s1.geojson [--map Tumor=solid_carcinoma] [--replace]
    pathpt annotations export --project proj/ --slide s1 s1.geojson
    pathpt annotations list --project proj/ [--slide s1]
    pathpt train ... --annotations annots/        # annots/<slide_id>.geojson, one per slide (QuPath export)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ProjectError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `annotations` to `sub`."""
    p = sub.add_parser("annotations", help="import/export a project's annotated regions as QuPath GeoJSON")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    imp = verbs.add_parser("import", help="add the annotations of a QuPath GeoJSON file to a slide")
    _common(imp)
    imp.add_argument("file", type=Path, metavar="FILE", help="QuPath GeoJSON (.geojson/.json, may be .gz)")
    _map_arg(imp)
    imp.add_argument("--replace", action="store_true", help="delete the slide's regions first")
    imp.set_defaults(func=_cmd_import)
    exp = verbs.add_parser("export", help="write a slide's regions as QuPath GeoJSON")
    _common(exp)
    exp.add_argument("file", type=Path, metavar="FILE", help="output .geojson (or .geojson.gz)")
    exp.set_defaults(func=_cmd_export)
    lst = verbs.add_parser("list", help="list the regions of a project (class, kind, area mm2)")
    lst.add_argument("--project", type=Path, required=True, metavar="DIR")
    lst.add_argument("--slide", default=None, metavar="ID")
    lst.set_defaults(func=_cmd_list)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", type=Path, required=True, metavar="DIR", help="project folder")
    p.add_argument("--slide", required=True, metavar="ID", help="slide id in the project")


def _map_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--map", action="append", default=[], metavar="NAME=CLASS",
                   help="map a class name in the file to a project class or 'ignore' (repeatable)")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """`--annotations DIR` and `--map` for `pathpt train`."""
    p.add_argument("--annotations", type=Path, default=None, metavar="DIR",
                   help="QuPath GeoJSON per training slide (<slide_id>.geojson): tiles covered >= 50%% by a class "
                        "region train with that class, 'ignore' regions drop their tiles")
    _map_arg(p)


def add_predict_args(p: argparse.ArgumentParser) -> None:
    """`--annotations DIR` and `--map` for `pathpt predict`: 'ignore' regions drop their tiles from the heat map
    and the vote."""
    p.add_argument("--annotations", type=Path, default=None, metavar="DIR",
                   help="QuPath GeoJSON per slide (<slide_id>.geojson): tiles covered >= 50%% by an 'ignore' region "
                        "are not predicted and do not vote")
    _map_arg(p)


def apply_predict_annotations(args: argparse.Namespace, classset: Any, slides: list[Any]) -> list[Any]:
    """The slides with `--annotations` applied for prediction (unchanged without the option).

    Raises:
        ConfigError: `--annotations` with `--cluster` (not supported there).
    """
    if getattr(args, "annotations", None) is None:
        return slides
    if getattr(args, "cluster", None) is not None:
        raise ConfigError("--annotations is not supported with --cluster; predict in this process")
    return apply_train_annotations(args, classset, slides)


def apply_train_annotations(args: argparse.Namespace, classset: Any, slides: list[Any]) -> list[Any]:
    """The training slides with `--annotations` applied (unchanged without the option)."""
    if getattr(args, "annotations", None) is None:
        return slides
    from ..annotations.apply import annotate_from_folder
    from ..annotations.regions import parse_mapping

    return annotate_from_folder(args.annotations, classset, slides, parse_mapping(args.map))


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from ..project import Project

    proj = Project.open(args.project)
    try:
        cs = proj.classes.get()
        if cs is None:
            raise ProjectError(f"{proj.root}: the project has no classes yet; load a class set first")
        ids = [s.slide_id for s in proj.slides.list()]
        if getattr(args, "slide", None) is not None and args.slide not in ids:
            raise ProjectError(f"{proj.root}: no slide {args.slide!r} in this project (slides: "
                               f"{', '.join(ids[:5]) or 'none'}{', ...' if len(ids) > 5 else ''})")
    except BaseException:
        proj.close()
        raise
    return proj, cs


def _cmd_import(args: argparse.Namespace) -> int:
    from ..annotations.qupath import read_qupath
    from ..annotations.regions import parse_mapping

    if not args.file.is_file():
        raise ConfigError(f"{args.file}: file not found")
    proj, cs = _open(args)
    with proj:
        report = read_qupath(args.file, args.slide, cs, parse_mapping(args.map))
        if not report.regions:
            raise ConfigError(f"{args.file}: no classified annotation polygons to import ({report.summary()})")
        n = proj.annotations.add_many(report.regions, replace_slide=args.slide if args.replace else None)
    print(f"{args.file}: imported {n} region(s) into slide {args.slide} ({report.summary()})")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ..annotations.qupath import write_qupath

    proj, cs = _open(args)
    with proj:
        regions = proj.annotations.list(args.slide)
    try:
        out = write_qupath(args.file, regions, cs)
    except OSError as exc:
        raise ConfigError(f"{args.file}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {len(regions)} region(s) of slide {args.slide} to {out}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ..annotations.geometry import area_mm2

    proj, _ = _open(args)
    with proj:
        mpp = {s.slide_id: s.mpp or (None, None) for s in proj.slides.list()}
        for r in proj.annotations.list(args.slide):
            mm2 = area_mm2(r.geometry, *mpp.get(r.slide_id, (None, None)))
            area = f"{mm2:.4f} mm2" if mm2 is not None else f"{r.geometry.area():.0f} px2"
            print(f"{r.slide_id}\t{r.region_id}\t{r.class_name}\t{r.kind}\t{area}")
    return 0
