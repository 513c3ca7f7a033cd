"""Weights the way users have them: the local Hugging Face cache (real snapshots/refs/blobs layout, offline),
per-user default folders, and downloads only when asked (never against the network here)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from pathpt_engine.backbones import load_backbone, locate, resolve_weights
from pathpt_engine.cli import main
from pathpt_engine.errors import BackboneError
from pathpt_engine.testing.backbones import make_tiny_clip_folder, make_tiny_keep_folder

torch.set_num_threads(1)
ENV_VARS = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "XDG_DATA_HOME", "PATHPT_DATA_DIR",
            *(f"PATHPT_{n.upper()}_WEIGHTS" for n in ("keep", "plip", "conch", "musk", "quiltnet", "clip")))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: nothing here may reach the network
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def hf_cache_snapshot(cache: Path, repo: str, src: Path, commit: str = "a" * 40, ref: str = "main") -> Path:
    """Lay `src`'s files out as huggingface_hub does: blobs by content hash, snapshot symlinks, refs/<ref>."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / commit
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        blob = root / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, blob)
        link = snap / f.relative_to(src)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / ref).write_text(commit)
    return snap


def test_hf_reference_loads_from_the_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_tiny_keep_folder(tmp_path / "src")
    snap = hf_cache_snapshot(tmp_path / "hfhome" / "hub", "Astaxanthin/KEEP", src)
    assert (snap / "config.json").is_symlink()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    model = load_backbone("keep", "hf:Astaxanthin/KEEP")
    assert model.weights_hash == load_backbone("keep", src).weights_hash
    assert resolve_weights("keep", "hf:Astaxanthin/KEEP@main") == snap
    assert resolve_weights("keep", f"hf:Astaxanthin/KEEP@{'a' * 40}") == snap
    assert resolve_weights("keep") == snap  # found by repository id with no folder given
    monkeypatch.setenv("PATHPT_KEEP_WEIGHTS", "hf:Astaxanthin/KEEP")
    assert resolve_weights("keep") == snap
    with pytest.raises(BackboneError, match=r"hf:Astaxanthin/KEEP@v9: not in the local Hugging Face cache"):
        resolve_weights("keep", "hf:Astaxanthin/KEEP@v9")
    with pytest.raises(BackboneError, match="expected hf:OWNER/NAME"):
        resolve_weights("keep", "hf:KEEP")


def test_hf_hub_cache_wins_over_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_tiny_keep_folder(tmp_path / "src")
    in_home = hf_cache_snapshot(tmp_path / "hfhome" / "hub", "Astaxanthin/KEEP", src, commit="b" * 40)
    in_cache = hf_cache_snapshot(tmp_path / "hubcache", "Astaxanthin/KEEP", src, commit="c" * 40)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert resolve_weights("keep") == in_home
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hubcache"))
    assert resolve_weights("keep") == in_cache
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.delenv("HF_HOME")
    default = hf_cache_snapshot(tmp_path / "home" / ".cache" / "huggingface" / "hub", "Astaxanthin/KEEP", src)
    assert resolve_weights("keep") == default  # ~/.cache/huggingface/hub when nothing is set


def test_every_published_backbone_is_found_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathpt_engine.testing.conch import make_tiny_conch_folder
    from pathpt_engine.testing.musk import make_tiny_musk_folder
    from pathpt_engine.testing.quiltnet import make_tiny_quiltnet_folder

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    makers = {"keep": ("Astaxanthin/KEEP", make_tiny_keep_folder), "plip": ("vinid/plip", make_tiny_clip_folder),
              "conch": ("MahmoodLab/conch", make_tiny_conch_folder), "musk": ("xiangjx/musk", make_tiny_musk_folder),
              "quiltnet": ("wisdomik/QuiltNet-B-32", make_tiny_quiltnet_folder)}
    for name, (repo, make) in makers.items():
        snap = hf_cache_snapshot(cache, repo, make(tmp_path / "src" / name))
        assert resolve_weights(name) == snap
        assert load_backbone(name).name == name


def test_default_folder_is_per_user_not_the_working_directory(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    if sys.platform == "linux":
        assert resolve_weights("plip") == tmp_path / "home" / ".local" / "share" / "pathpt" / "weights" / "plip"
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert resolve_weights("plip") == tmp_path / "xdg" / "pathpt" / "weights" / "plip"
    monkeypatch.setenv("PATHPT_DATA_DIR", str(tmp_path / "data"))
    user = tmp_path / "data" / "weights" / "plip"
    assert resolve_weights("plip") == user and user.is_absolute()
    with pytest.raises(BackboneError, match=r"plip weights folder not found: .*data/weights/plip .*pathpt weights "
                                            r"get plip"):
        load_backbone("plip")
    make_tiny_clip_folder(tmp_path / "base_models" / "plip")  # the reference layout is still found when present
    assert resolve_weights("plip") == Path("base_models/plip")
    make_tiny_clip_folder(user)  # the per-user folder comes first
    assert resolve_weights("plip") == user and load_backbone("plip").name == "plip"


class _FakeHub:
    """Stands in for huggingface_hub.snapshot_download: records calls, raises what it is told."""

    def __init__(self, error: Exception | None = None, folder: Path | None = None) -> None:
        self.calls: list[tuple[str, object]] = []
        self.error, self.folder = error, folder

    def __call__(self, repo_id: str, local_dir: object = None, **_: object) -> str:
        self.calls.append((repo_id, local_dir))
        if self.error is not None:
            raise self.error
        return str(self.folder)


def test_weights_get_only_when_asked_with_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError

    never = _FakeHub(AssertionError("nothing may download without being asked"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", never)
    with pytest.raises(BackboneError):
        load_backbone("keep")  # not found: an error, not a download
    assert main(["backbones"]) == 0 and not never.calls
    capsys.readouterr()

    offline = _FakeHub(LocalEntryNotFoundError("cannot reach"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    assert main(["weights", "get", "keep"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pathpt: error: keep: offline: cannot reach huggingface.co")
    assert offline.calls == [("Astaxanthin/KEEP", None)]

    refused = GatedRepoError.__new__(GatedRepoError)  # the real class, without an HTTP response object
    refused.args = ("401 Client Error: access to model MahmoodLab/conch is restricted",)
    gated = _FakeHub(refused)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    assert main(["weights", "get", "conch"]) == 2
    assert "huggingface.co/MahmoodLab/conch is gated: accept its licence" in capsys.readouterr().err

    done = _FakeHub(folder=tmp_path / "got")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", done)
    assert main(["weights", "get", "musk", "--to", str(tmp_path / "got")]) == 0
    out = capsys.readouterr().out
    assert f"musk: weights in {tmp_path / 'got'}" in out and "tokenizer.spm" in out
    assert done.calls == [("xiangjx/musk", str(tmp_path / "got"))]
    assert main(["weights", "get", "demo"]) == 2
    assert "nothing to download" in capsys.readouterr().err


def test_locate_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert locate.parse_hf("/some/folder") is None
    assert locate.parse_hf("hf:a/b@v2") == ("a/b", "v2")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xc"))
    assert locate.hf_cache_dir() == tmp_path / "xc" / "huggingface" / "hub"
    assert locate.hf_snapshot("nobody/none") is None


def test_download_job_reports_files_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    from pathpt_engine.backbones.download import download_job
    from pathpt_engine.jobs import collect

    def fake(repo_id: str, local_dir: object = None, tqdm_class: object = None, **_: object) -> str:
        bar = tqdm_class(total=3, disable=True)  # as huggingface_hub does for the files of a snapshot
        for _i in range(3):
            bar.update(1)
        bar.close()
        return str(tmp_path / "snap")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    folder, events = collect(download_job("keep"))
    assert folder == tmp_path / "snap"
    assert events[-1].stage == "download" and (events[-1].done, events[-1].total) == (3, 3)
