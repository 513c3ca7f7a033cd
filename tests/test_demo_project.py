"""The demo project's labels (issue 12 §3): one training slide per subtype and, by default, no held-out labels
(with one held-out slide per subtype, the clean recipe's epoch selection picked an untrained epoch)."""

from __future__ import annotations

import pytest

from pathpt_engine.jobs import run_job
from pathpt_engine.project import Project
from pathpt_gui.demo_project import DemoProjectConfig, build_demo_project, format_report


@pytest.mark.slow
def test_demo_project_labels_training_slides_only(tmp_path):
    cfg = DemoProjectConfig(tmp_path / "demo", n_subtypes=2, slides_per_class=2, size=(1024, 768), jobs=1)
    root = run_job(build_demo_project(cfg))
    with Project.open(root) as proj:
        labels = proj.labels.all()
    assert sorted(lab.split for lab in labels.values()) == ["train", "train"]
    assert sorted(lab.label for lab in labels.values()) == ["glandular_adenocarcinoma", "solid_carcinoma"]
    meta = (tmp_path / "demo" / "cohort" / "cohort.json").read_text()
    assert '"mpp": 0.5' in meta and '"renderer": "world"' in meta


def test_demo_config_checks_label_counts(tmp_path):
    assert DemoProjectConfig(tmp_path).size is None and DemoProjectConfig(tmp_path).heldout_per_class == 0
    with pytest.raises(ValueError, match="heldout_per_class"):
        DemoProjectConfig(tmp_path, slides_per_class=2, train_per_class=2, heldout_per_class=1)


def test_format_report_lines():
    rep = {"pathpt": {"tile_auroc": 0.99312, "tile_dice": 0.9, "n_tiles": 10, "n_tumour_tiles": 4,
                      "slides_correct": 10, "n_slides": 12, "train_slides_correct": 3, "n_train_slides": 3}}
    (line,) = format_report(rep)
    assert "tile AUROC tumour vs normal 0.993" in line and "slides correct 10/12" in line and "3/3" in line
