"""Every format OpenSlide reads is found: DICOM folders and MRXS data folders count as one slide, and every
file left out is reported with the reason."""

from __future__ import annotations

import shutil
from pathlib import Path

from openslide_fixtures import openslide_fixture

from pathpt_engine.slides import open_slide
from pathpt_engine.slides.discover import SLIDE_EXTENSIONS, discover_slides, expand_paths, file_dialog_filter

OPENSLIDE_EXTENSIONS = ("svs", "tif", "tiff", "ndpi", "vms", "vmu", "scn", "mrxs", "svslide", "bif", "dcm")


def _tree(root: Path) -> Path:
    (root / "dicom_case").mkdir(parents=True)
    shutil.copy(openslide_fixture("boxes_0.dcm"), root / "dicom_case" / "boxes_0.dcm")
    shutil.copy(openslide_fixture("boxes_1.dcm"), root / "dicom_case" / "boxes_1.dcm")
    (root / "noext_dicom").mkdir()
    shutil.copy(openslide_fixture("boxes_0.dcm"), root / "noext_dicom" / "IM0001")  # DICOM without an extension
    shutil.copy(openslide_fixture("small.svs"), root / "small.svs")
    (root / "mirax.mrxs").write_text("[GENERAL]\n")
    (root / "mirax").mkdir()
    for name in ("Index.dat", "Slidedat.ini", "Data0000.dat"):
        (root / "mirax" / name).write_bytes(b"x")
    (root / "notes.txt").write_text("hello")
    (root / "boxes.png").write_bytes(b"\x89PNG")
    (root / ".hidden.svs").write_bytes(b"x")
    for ext in ("ndpi", "vms", "vmu", "scn", "svslide", "bif", "tif", "tiff"):
        (root / f"other.{ext}").write_bytes(b"x")
    return root


def test_every_openslide_extension_is_a_slide_and_in_the_dialog_filter() -> None:
    assert {e.lstrip(".") for e in SLIDE_EXTENSIONS} == set(OPENSLIDE_EXTENSIONS)
    slides_filter = file_dialog_filter().split(";;")[0]
    for ext in OPENSLIDE_EXTENSIONS:
        assert f"*.{ext}" in slides_filter


def test_folder_discovery(tmp_path: Path) -> None:
    root = _tree(tmp_path / "in")
    found = discover_slides(root)
    names = [p.relative_to(root).as_posix() for p in found.slides]
    assert names == ["dicom_case/boxes_0.dcm", "mirax.mrxs", "noext_dicom/IM0001", "other.bif", "other.ndpi",
                     "other.scn", "other.svslide", "other.tif", "other.tiff", "other.vms", "other.vmu", "small.svs"]
    skipped = {p.relative_to(root).as_posix(): why for p, why in found.skipped}
    assert skipped["dicom_case/boxes_1.dcm"] == "another instance of the DICOM slide boxes_0.dcm"
    assert skipped["notes.txt"].startswith("not a slide format (.txt")
    assert skipped["boxes.png"].startswith("not a slide format (.png")
    assert skipped[".hidden.svs"] == "hidden file"
    assert not any(k.startswith("mirax/") for k in skipped)  # the MRXS data folder is part of its slide
    with open_slide(found.slides[0]) as r:  # the DICOM series opens from the file that stands for it
        assert r.format == "dicom"
    with open_slide(found.slides[2]) as r:
        assert r.format == "dicom"


def test_dropped_selection_counts_a_dicom_series_once(tmp_path: Path) -> None:
    root = _tree(tmp_path / "in")
    found = expand_paths([root / "dicom_case" / "boxes_0.dcm", root / "dicom_case" / "boxes_1.dcm",
                          root / "notes.txt", root / "small.svs", root / "noext_dicom"])
    assert found.slides == [root / "dicom_case" / "boxes_0.dcm", root / "small.svs",  # the user's order
                            root / "noext_dicom" / "IM0001"]
    assert {p.name for p, _ in found.skipped} == {"boxes_1.dcm", "notes.txt"}


def test_project_add_folder_adds_dicom_once_and_reports_skipped_files(tmp_path: Path) -> None:
    from pathpt_engine.jobs import run_job
    from pathpt_engine.project import Project

    root = _tree(tmp_path / "in")
    with Project.create(tmp_path / "proj") as proj:
        report = run_job(proj.slides.add_folder(root))
        assert sorted(report.added) == ["IM0001", "boxes_0", "small"]  # the fakes fail to open: reported
        assert {p.name for p, _ in report.failed} >= {"mirax.mrxs", "other.ndpi", "other.bif"}
        skipped = {p.name: why for p, why in report.skipped}
        assert set(skipped) >= {"boxes_1.dcm", "notes.txt", "boxes.png", ".hidden.svs"}
        assert proj.slides.get("boxes_0").format == "dicom"
