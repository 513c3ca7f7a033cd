"""Which files under a folder (or in a dropped selection) are slides, and which are skipped and why.

Every extension OpenSlide reads is a slide: `SLIDE_EXTENSIONS`. Two formats are more than one file:

- **MIRAX** (`X.mrxs`): its tiles live in the data folder `X/` beside it. The pair is one slide, the `.mrxs` file;
  the data folder's files are part of it, not reported as skipped.
- **DICOM** whole-slide images: one series is several instance files (`.dcm`, or DICOM files without that
  extension, recognised by their `DICM` preamble). OpenSlide opens the whole series from any of its files, so a
  folder of DICOM instances is one slide: its first instance file (sorted by name).

Everything else is skipped with a reason ("not a slide format", "hidden"), so callers can say what they left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

SLIDE_EXTENSIONS = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif",
                    ".dcm")
_DICOM_MAGIC_AT, _DICOM_MAGIC = 128, b"DICM"


def file_dialog_filter() -> str:
    """A Qt file-dialog filter for every slide extension, then "All files" (DICOM files may have none)."""
    pattern = " ".join(f"*{e}" for e in SLIDE_EXTENSIONS)
    return f"Slides ({pattern});;DICOM folders: pick any file of the series (*);;All files (*)"


def is_dicom_file(path: Path) -> bool:
    """A `.dcm` file, or any file with the DICOM preamble (`DICM` at byte 128)."""
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(_DICOM_MAGIC_AT)
            return fh.read(4) == _DICOM_MAGIC
    except OSError:
        return False


@dataclass
class Discovery:
    """Slides found (one path per slide, sorted) and (path, reason) for every file left out."""

    slides: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def discover_slides(folder: str | Path) -> Discovery:
    """Every slide under `folder` (recursive), see the module docstring. Hidden files and folders are skipped."""
    root = Path(folder)
    found = Discovery()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        mrxs_data = {Path(f).stem for f in filenames if f.lower().endswith(".mrxs")}
        for d in sorted(dirnames):
            if d.startswith("."):
                found.skipped.append((here / d, "hidden folder"))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in mrxs_data)
        _classify(here, sorted(filenames), found)
    found.slides.sort()
    return found


def _classify(here: Path, names: list[str], found: Discovery) -> None:
    dicom: list[Path] = []
    for name in names:
        path = here / name
        if name.startswith("."):
            found.skipped.append((path, "hidden file"))
        elif path.suffix.lower() == ".dcm" or (path.suffix.lower() not in SLIDE_EXTENSIONS and is_dicom_file(path)):
            dicom.append(path)
        elif path.suffix.lower() in SLIDE_EXTENSIONS:
            found.slides.append(path)
        else:
            found.skipped.append((path, f"not a slide format ({path.suffix or 'no extension'}; slides are "
                                        f"{', '.join(e[1:] for e in SLIDE_EXTENSIONS)} or DICOM)"))
    if dicom:  # one DICOM series per folder: OpenSlide opens it from any instance
        found.slides.append(dicom[0])
        found.skipped.extend((p, f"another instance of the DICOM slide {dicom[0].name}") for p in dicom[1:])


def expand_paths(paths: Iterable[str | Path]) -> Discovery:
    """Slides in a user's selection (File › Open, drag and drop): files and folders, mixed, in the given order.

    A folder is searched like `discover_slides`; several files of one DICOM folder count as one slide; a file
    that is not a slide is skipped with the reason.
    """
    found = Discovery()
    dicom_folders: dict[Path, Path] = {}
    for p in map(Path, paths):
        if p.is_dir():
            sub = discover_slides(p)
            found.slides.extend(sub.slides)
            found.skipped.extend(sub.skipped)
        elif p.suffix.lower() in SLIDE_EXTENSIONS and p.suffix.lower() != ".dcm":
            found.slides.append(p)
        elif p.is_file() and is_dicom_file(p):
            if p.parent in dicom_folders:
                found.skipped.append((p, f"another instance of the DICOM slide {dicom_folders[p.parent].name}"))
            else:
                dicom_folders[p.parent] = p
                found.slides.append(p)
        elif p.suffix.lower() == ".dcm":  # missing: let opening it say so
            found.slides.append(p)
        else:
            _classify(p.parent, [p.name], found)
    return Discovery(list(dict.fromkeys(found.slides)), found.skipped)
