"""The registry builds every adapter through `load_backbone` (tiny folders of each format)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pathpt_engine.backbones import available_backbones, get_spec, load_backbone
from pathpt_engine.errors import BackboneError


def test_conch_entry_loads_through_registry(tmp_path: Path) -> None:
    from pathpt_engine.testing.conch import make_tiny_conch_folder

    model = load_backbone("conch", make_tiny_conch_folder(tmp_path / "conch"))
    assert model.name == "conch" and model.embed_dim > 0
    x = torch.randn(1, 3, model.preprocess.crop, model.preprocess.crop)
    torch.testing.assert_close(model.encode_image(x).norm(dim=-1), torch.ones(1))


def test_specs_are_complete_and_demo_is_labelled() -> None:
    for spec in available_backbones():
        assert spec.description and spec.licence and spec.download and spec.env_var.startswith("PATHPT_")
    assert get_spec("demo").demo and "never for diagnosis" in get_spec("demo").description
    assert not get_spec("keep").demo


def test_missing_default_folder_explains_how_to_get_weights(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PATHPT_PLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("PATHPT_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(BackboneError, match=r"plip weights folder not found: .*data/weights/plip .*vinid/plip"):
        load_backbone("plip")


def test_auto_device(tmp_path: Path) -> None:
    from pathpt_engine.testing.backbones import make_tiny_keep_folder

    model = load_backbone("keep", make_tiny_keep_folder(tmp_path / "k"), device="auto")
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
