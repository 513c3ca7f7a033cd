"""Training and prediction for the MIL baselines (mil-baselines.md §1-§3, §6).

Selection: ``last`` (paper protocol: fixed budget, last epoch) or ``val`` (clean protocol: the epoch with the
lowest validation bag CE on held-out pool slides, ties to the earlier epoch). The test set is never seen here.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ..jobs import Job, Progress, check_cancel
from ..ops.denormals import flush_denormals
from ..ops.gpu import cuda_numerics
from .models import CLAMSB, MODELS, build_mil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MILConfig:
    """Hyper-parameters (defaults from each method's published commands; epochs is a budget)."""

    model: str = "abmil"
    epochs: int = 50
    lr: float = 2e-4
    weight_decay: float = 1e-5
    selection: str = "last"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"MILConfig: unknown model {self.model!r}; known: {', '.join(MODELS)}")
        if self.epochs < 1:
            raise ValueError("MILConfig: epochs must be >= 1")
        if self.selection not in ("last", "val"):
            raise ValueError("MILConfig: selection must be 'last' or 'val'")


class Lookahead(torch.optim.Optimizer):
    """Lookahead wrapper (alpha 0.5, k 6): every k steps slow += alpha (fast - slow); fast = slow."""

    def __init__(self, base: torch.optim.Optimizer, alpha: float = 0.5, k: int = 6) -> None:
        self.base = base
        self.alpha, self.k, self._steps = alpha, k, 0
        self.param_groups = base.param_groups
        self.defaults = base.defaults
        self.state = base.state
        self._slow = [[p.detach().clone() for p in g["params"]] for g in base.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = self.base.step(closure)
        self._steps += 1
        if self._steps % self.k == 0:
            for group, slows in zip(self.base.param_groups, self._slow, strict=True):
                for p, slow in zip(group["params"], slows, strict=True):
                    slow.add_(p - slow, alpha=self.alpha)
                    p.copy_(slow)
        return loss


def _optimizer(model: nn.Module, cfg: MILConfig) -> torch.optim.Optimizer:
    if cfg.model == "transmil":
        decay = [p for n, p in model.named_parameters() if p.ndim > 1 and not n.endswith(".bias")]
        no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or n.endswith(".bias")]
        base = torch.optim.RAdam([{"params": decay, "weight_decay": cfg.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        return Lookahead(base)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _bag_loss(model: nn.Module, out: dict[str, torch.Tensor], label: int, target: torch.Tensor) -> torch.Tensor:
    if isinstance(model, CLAMSB):
        return model.loss(out, label, target)
    return F.cross_entropy(out["logits"], target)


@torch.no_grad()
def val_ce(model: nn.Module, bags: list[tuple[torch.Tensor, int]]) -> float:
    """Mean validation bag cross-entropy of `model` (eval mode) over (features, label) bags already on its device."""
    model.eval()
    losses = [F.cross_entropy(model(x)["logits"], torch.full((1,), y, device=x.device)) for x, y in bags]
    return float(torch.stack(losses).double().mean())  # one read for all bags


def bags_on(bags: list[tuple[np.ndarray, int]], dev: torch.device) -> list[tuple[torch.Tensor, int]]:
    """(features, label) bags as float32 tensors on `dev`, moved once before training."""
    return [(torch.as_tensor(x, dtype=torch.float32, device=dev), int(y)) for x, y in bags]


def run_epochs(model: nn.Module, epochs: int, one_epoch: Callable[[int], dict[str, float]],
               vbags: list[tuple[torch.Tensor, int]], select_val: bool, stage: str) -> Job[nn.Module]:
    """The baselines' epoch loop and selection rule: `one_epoch(epoch)` (1-based) trains and returns its metrics.

    With `select_val` the epoch with the lowest validation bag CE on `vbags` is kept (ties to the earlier epoch);
    otherwise the last. One progress event per epoch; returns the selected model in eval mode.
    """
    best_state, best_val = None, float("inf")
    for epoch in range(1, epochs + 1):
        metrics = one_epoch(epoch)
        if select_val:
            metrics["val_ce"] = val_ce(model, vbags)
            if metrics["val_ce"] < best_val:
                best_val, best_state = metrics["val_ce"], copy.deepcopy(model.state_dict())
        yield Progress(stage, epoch, epochs, message=f"epoch {epoch}", metrics=metrics)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model


def train_mil(
    cfg: MILConfig,
    n_classes: int,
    train: list[tuple[np.ndarray, int]],
    val: list[tuple[np.ndarray, int]] | None = None,
    cancel: threading.Event | None = None,
) -> Job[nn.Module]:
    """Train one MIL model on bags (features [N, D], 0-based subtype label); returns the selected model (eval).

    On CUDA under strict fp32 numerics (`ops.gpu.cuda_numerics`: no TF32, deterministic algorithms); on the CPU with
    denormals flushed to zero (`ops.denormals`: they made late epochs ten times slower). Bags and
    their targets go to the device once; the epoch loss is summed on the device and read once per epoch.
    """
    if not train:
        raise ValueError("train_mil: no training bags")
    dev = torch.device(cfg.device)
    with cuda_numerics(dev), flush_denormals(dev):
        torch.manual_seed(cfg.seed)
        bags = bags_on(train, dev)
        targets = [torch.full((1,), y, dtype=torch.long, device=dev) for _, y in bags]
        vbags = bags_on(val or [], dev)
        model = build_mil(cfg.model, bags[0][0].shape[1], n_classes).to(dev)
        opt = _optimizer(model, cfg)
        rng = np.random.default_rng(cfg.seed)

        def one_epoch(epoch: int) -> dict[str, float]:
            order = rng.permutation(len(bags))
            return {"loss": _mil_epoch(model, opt, [bags[j] for j in order], [targets[j] for j in order],
                                       2 if cfg.model == "transmil" else 1, cancel) / len(bags)}

        return (yield from run_epochs(model, cfg.epochs, one_epoch, vbags, cfg.selection == "val" and bool(vbags),
                                      f"train-{cfg.model}"))


def _mil_epoch(model: nn.Module, opt: torch.optim.Optimizer, bags: list[tuple[torch.Tensor, int]],
               targets: list[torch.Tensor], accum: int, cancel: threading.Event | None) -> float:
    """One pass over `bags` in the given order, a step every `accum` bags; returns the summed loss (one read)."""
    model.train()
    total = torch.zeros((), device=targets[0].device)
    opt.zero_grad()
    for i, ((x, y), target) in enumerate(zip(bags, targets, strict=True)):
        check_cancel(cancel)
        loss = _bag_loss(model, model(x), y, target)
        (loss / accum).backward()
        if (i + 1) % accum == 0 or i + 1 == len(bags):
            opt.step()
            opt.zero_grad()
        total += loss.detach()
    return float(total)


@torch.no_grad()
def predict_mil(model: nn.Module, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probabilities [C], tile heat-map scores [N]) for one slide."""
    model.eval()
    dev = next(model.parameters()).device
    with cuda_numerics(dev), flush_denormals(dev):
        out = model(torch.as_tensor(features, dtype=torch.float32, device=dev))
    probs = out["logits"].softmax(dim=-1)[0].cpu().numpy()
    return probs, out["tile_scores"].float().cpu().numpy()
