"""Training of a single-frame segmentation model (any registered model, any registered dataset).

Recipe: random scale / crop / flip / colour jitter, AdamW (no decay on norms, PReLU and biases),
poly learning rate with a short warm-up, class-weighted cross-entropy with void ignored (ENet's
weights 1 / ln(1.02 + p_c) lift CamVid's rare classes), mIoU on a held-out split every
``eval_every`` epochs.  With a time limit the poly schedule runs on elapsed time, so the learning
rate reaches zero when the time is up whatever the speed of the machine.

Run directory: ``last.pt`` (full training state, rewritten atomically every epoch, what
``resume`` reads), ``best.pt`` (a :mod:`bmvseg.models.checkpoint` file of the best held-out
mIoU so far, loadable by ``build_model(name, weights=path)``), ``history.json``, and at the end
``report.json`` / ``report.md`` with per-class IoU of ``best.pt``.  The held-out split is never
CamVid ``val/`` (our labelled video): ``test`` or a slice of ``train`` that is not trained on.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from bmvseg import progress as progress_report
from bmvseg.data.classes import IGNORE_INDEX
from bmvseg.data.registry import get_dataset
from bmvseg.data.transforms import TrainAugment, to_tensors
from bmvseg.errors import BmvsegError, CheckpointError
from bmvseg.models.checkpoint import atomic_save, save_checkpoint
from bmvseg.models.registry import build_model
from bmvseg.output import claim_output_dir
from bmvseg.training.evaluate import evaluate_model, iou_table

STATE_FORMAT = "bmvseg-train-state"


@dataclass
class TrainConfig:
    """Every setting of a single-frame training run (recorded in its checkpoints)."""
    dataset: str
    root: str | None
    model: str
    out: str
    epochs: int = 300
    batch_size: int = 8
    crop: tuple[int, int] = (256, 256)
    scale: tuple[float, float] = (0.5, 2.0)
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_iters: int = 100
    time_limit_min: float | None = None
    val_split: str = "test"  # "test" or "trainslice"
    trainslice_fraction: float = 0.1
    eval_every: int = 1
    max_train_images: int | None = None  # for smoke tests
    max_val_images: int | None = None
    workers: int = 1
    threads: int = 1  # on a busy shared CPU, 2 OpenMP threads ran 10x slower than 1
    seed: int = 0
    command: str = field(default_factory=lambda: " ".join(sys.argv))


class _Augmented(Dataset):
    """Cached items + augmentation with a per-(epoch, index) RNG: identical after a resume.

    Indices are ``epoch * len(items) + i`` (see :class:`_EpochSampler`), so workers can stay
    alive across epochs (re-forking a process holding the cached dataset cost ~15 s per epoch).
    """

    def __init__(self, items: list, aug: TrainAugment, seed: int) -> None:
        self.items, self.aug, self.seed = items, aug, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        epoch, i = divmod(index, len(self.items))
        rng = np.random.default_rng((self.seed, epoch, i))
        return self.aug(*self.items[i], rng)


class _EpochSampler(Sampler[int]):
    """A fresh permutation per epoch, seeded by (seed, epoch), yielding ``epoch * n + i``."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        perm = np.random.default_rng((self.seed, 1, self.epoch)).permutation(self.n)
        return iter((self.epoch * self.n + perm).tolist())


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def class_weights(items: list, num_classes: int) -> torch.Tensor:
    """ENet class weights 1 / ln(1.02 + p_c) from the label frequencies of ``items``."""
    counts = np.zeros(num_classes, np.int64)
    for _, lab in items:
        counts += np.bincount(lab.reshape(-1), minlength=256)[:num_classes]
    p = counts / max(counts.sum(), 1)
    return torch.tensor(1.0 / np.log(1.02 + p), dtype=torch.float32)


def _load_items(ds: Any, limit: int | None) -> list:
    n = len(ds) if limit is None else min(limit, len(ds))
    return [ds[i] for i in progress_report.bar(range(n), desc="loading", leave=False)]


def _splits(cfg: TrainConfig) -> tuple[Any, list, list]:
    train_ds = get_dataset(cfg.dataset, cfg.root, "train")
    if cfg.val_split == "test":
        val_ds = get_dataset(cfg.dataset, cfg.root, "test")
        train_items = _load_items(train_ds, cfg.max_train_images)
        val_items = _load_items(val_ds, cfg.max_val_images)
    elif cfg.val_split == "trainslice":
        items = _load_items(train_ds, cfg.max_train_images)
        n_val = max(1, int(round(len(items) * cfg.trainslice_fraction)))
        if n_val >= len(items):
            raise BmvsegError(f"too few training images ({len(items)}) to hold out a slice")
        train_items, val_items = items[:-n_val], items[-n_val:]
        if cfg.max_val_images is not None:
            val_items = val_items[: cfg.max_val_images]
    else:
        raise BmvsegError(f"--val-split must be 'test' or 'trainslice', not {cfg.val_split!r}")
    return train_ds, train_items, val_items


def _param_groups(model: torch.nn.Module, wd: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_factor(
    it: int, total_iters: int, elapsed: float, limit_s: float | None, warmup: int
) -> float:
    progress = it / max(total_iters, 1)
    if limit_s:
        progress = max(progress, elapsed / limit_s)
    f = max(0.0, 1.0 - min(progress, 1.0)) ** 0.9
    if it < warmup:
        f *= 0.1 + 0.9 * it / warmup
    return f


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    overrides: dict[str, Any] | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train per ``cfg`` into ``cfg.out``; returns the final report dict.

    With ``resume`` the configuration saved in ``last.pt`` is used, except the keys ``epochs``
    and ``time_limit_min`` of ``overrides`` (what the user set again on the command line).
    ``stop_after`` ends this call after that many epochs, as an interruption would (the
    schedule still spans ``cfg.epochs``); ``resume`` continues it.
    """
    overrides = overrides or {}
    torch.set_num_threads(cfg.threads)
    cv2.setNumThreads(1)
    out = Path(cfg.out)
    # The same ownership rule as every command that writes a directory (bmvseg.output).
    claim_output_dir(out, "train", {"dataset": cfg.dataset, "model": cfg.model}, resume=resume)
    state_path = out / "last.pt"
    state = None
    if resume:
        if not state_path.is_file():
            raise BmvsegError(f"--resume: no {state_path} to resume from")
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot resume from {state_path}: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{state_path} is not a bmvseg training state")
        saved = state["config"]
        saved["command"] = f"{saved['command']} && {cfg.command}"  # how the weights came about
        for key in ("epochs", "time_limit_min"):  # a resume may extend the budget
            if key in overrides:
                saved[key] = overrides[key]
        cfg = TrainConfig(**{**saved, "crop": tuple(saved["crop"]), "scale": tuple(saved["scale"])})
    torch.manual_seed(cfg.seed)

    train_ds, train_items, val_items = _splits(cfg)
    model = build_model(cfg.model, weights=None, num_classes=len(train_ds.class_names))
    model.class_names = tuple(train_ds.class_names)
    model.palette = np.asarray(train_ds.palette, np.uint8)
    # Contiguous (NCHW) for training: BatchNorm's channels_last training path was ~5x slower here.
    model = model.train()
    weights = class_weights(train_items, model.num_classes)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)

    aug_ds = _Augmented(train_items, TrainAugment(crop=cfg.crop, scale=cfg.scale), cfg.seed)
    sampler = _EpochSampler(len(aug_ds), cfg.seed)
    loader = DataLoader(
        aug_ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=len(aug_ds) >= cfg.batch_size,
        num_workers=cfg.workers,
        collate_fn=to_tensors,
        worker_init_fn=_worker_init,
        persistent_workers=cfg.workers > 0,
        generator=torch.Generator(),  # worker seeds; keeps the global RNG (dropout) untouched
    )
    iters_per_epoch = len(loader)
    total_iters = cfg.epochs * iters_per_epoch
    limit_s = cfg.time_limit_min * 60 if cfg.time_limit_min else None

    epoch, it, elapsed, best, history = 0, 0, 0.0, -1.0, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        epoch, it, elapsed = state["epoch"], state["iteration"], state["elapsed"]
        best, history = state["best_miou"], state["history"]

    meta_base = {
        "model_name": cfg.model,
        "dataset": cfg.dataset,
        "command": cfg.command,
        "config": _plain(asdict(cfg)),
    }
    mean = torch.tensor(model.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.std).view(1, 3, 1, 1)
    epoch_times: list[float] = []
    first_epoch = epoch

    def _evaluate_epoch(record: dict[str, Any], train_time_s: float) -> float:
        """Held-out mIoU of the model now into ``record``; best.pt if it beats ``best``."""
        cm = evaluate_model(model, val_items)
        record["miou"] = cm.miou()
        record["iou"] = [None if math.isnan(v) else float(v) for v in cm.iou()]
        if record["miou"] <= best:
            return best
        extra = {"epoch": record["epoch"], "training_time_s": train_time_s}
        extra.update(heldout_split=cfg.val_split, heldout_miou=record["miou"])
        save_checkpoint(
            out / "best.pt", model, {**meta_base, **extra, "heldout_iou": record["iou"]}
        )
        return record["miou"]

    def _save_state() -> None:
        """Everything ``resume`` needs, written atomically; history.json for people."""
        state = {"format": STATE_FORMAT, "config": _plain(asdict(cfg))}
        state.update(model=model.state_dict(), optimizer=opt.state_dict())
        state.update(torch_rng=torch.get_rng_state(), epoch=epoch, iteration=it)
        state.update(elapsed=elapsed, best_miou=best, history=history)
        atomic_save(state, state_path)
        (out / "history.json").write_text(json.dumps(history, indent=1))

    while epoch < cfg.epochs:
        if stop_after is not None and epoch - first_epoch >= stop_after:
            break
        if limit_s and elapsed + (np.median(epoch_times) if epoch_times else 0) > limit_s:
            break
        t0 = time.monotonic()
        sampler.epoch = epoch
        model.train()
        losses = []
        bar = progress_report.bar(
            loader, desc=f"epoch {epoch + 1}", disable=not progress, leave=False
        )
        for rgb, labels in bar:
            f = _lr_factor(
                it, total_iters, elapsed + time.monotonic() - t0, limit_s, cfg.warmup_iters
            )
            for g in opt.param_groups:
                g["lr"] = cfg.lr * f
            x = ((rgb.permute(0, 3, 1, 2).float() / 255.0 - mean) / std).contiguous()
            logits = model(x)
            loss = F.cross_entropy(logits, labels, weight=weights, ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{cfg.lr * f:.2e}")
        epoch += 1
        record: dict[str, Any] = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else None,
        }
        if epoch % cfg.eval_every == 0 or epoch >= cfg.epochs:
            best = _evaluate_epoch(record, elapsed + time.monotonic() - t0)
        dt = time.monotonic() - t0
        elapsed += dt
        epoch_times.append(dt)
        record["time_s"] = dt
        record["elapsed_s"] = elapsed
        history.append(record)
        miou_txt = f" held-out mIoU {100 * record['miou']:.1f}%" if "miou" in record else ""
        print(
            f"epoch {epoch}/{cfg.epochs} loss {record['loss']:.4f}{miou_txt} "
            f"({dt:.0f} s, {elapsed / 60:.1f} min total, {iters_per_epoch / dt:.2f} it/s)",
            flush=True,
        )
        _save_state()
    if history and "miou" not in history[-1]:
        # The time limit ended training between evaluations: the last (lowest-LR) epoch is
        # usually the best, so evaluate it now (also what ``resume`` of a finished run does).
        best = _evaluate_epoch(history[-1], elapsed)
        print(f"epoch {epoch} held-out mIoU {100 * history[-1]['miou']:.1f}%", flush=True)
        _save_state()
    return write_report(cfg, out, val_items, elapsed, history)


def write_report(
    cfg: TrainConfig, out: Path, val_items: list, elapsed: float, history: list
) -> dict:
    """Evaluate ``best.pt`` on the held-out items and write report.json / report.md."""
    best_path = out / "best.pt"
    if not best_path.is_file():
        raise BmvsegError(f"no {best_path}: training stopped before the first evaluation")
    model = build_model(cfg.model, weights=best_path)
    cm = evaluate_model(model, val_items)
    from bmvseg.models.checkpoint import read_checkpoint

    meta = read_checkpoint(best_path)["meta"]
    report = {
        "command": cfg.command,
        "model": cfg.model,
        "dataset": cfg.dataset,
        "heldout_split": cfg.val_split,
        "heldout_images": len(val_items),
        "best_epoch": meta.get("epoch"),
        "epochs_run": len(history),
        "training_time_s": elapsed,
        "class_names": list(model.class_names),
        "iou": [None if math.isnan(v) else float(v) for v in cm.iou()],
        "miou": cm.miou(),
        "pixel_accuracy": cm.pixel_accuracy(),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(
        f"# Training report: {cfg.model} on {cfg.dataset}\n\n"
        f"Command: `{cfg.command}`\n\n"
        f"Best epoch {report['best_epoch']} of {len(history)}, training time "
        f"{elapsed / 60:.1f} min. Held-out split: {cfg.val_split} ({len(val_items)} images).\n\n"
        + iou_table(model.class_names, cm)
        + "\n"
    )
    print(
        f"best held-out mIoU {100 * cm.miou():.1f}% (epoch {report['best_epoch']}); report in {out}"
    )
    return report


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
