"""Benchmark outputs: the paper's tables (3, 4), figures (3, 4, 5) and a stage breakdown."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # a Figure of its own: the user's pyplot backend is untouched
from matplotlib.patches import Patch

from bmvseg.data.classes import ClassSet, colorize
from bmvseg.evaluation.sweep import FUSION_TABLE_DISTANCES, AccuracySweep, Variant
from bmvseg.evaluation.throughput import Throughput
from bmvseg.schemes.registry import scheme_traits

COLUMNS = ("scheme", "fusion", "interval", "miou_avg", "miou_min", "fps", "speedup")
PHASE_COLUMNS = ("scheme", "fusion", "interval", "phase", "miou", "frames")
METRICS = (
    ("mIoU avg (%)", "miou_avg", "{:.1f}"),
    ("mIoU min (%)", "miou_min", "{:.1f}"),
    ("throughput (fps)", "fps", "{:.2f}"),
    ("speedup (x)", "speedup", "{:.2f}"),
)


def row_name(r: dict) -> str:
    """A table row's label: scheme, and fusion in brackets."""
    return r["scheme"] + (f" ({r['fusion']})" if r["fusion"] else "")


def row_names(table: list[dict]) -> list[str]:
    """Row labels in first-seen order."""
    return list(dict.fromkeys(row_name(r) for r in table))


def is_reference(r: dict) -> bool:
    """A row of the scheme with no interval (one row, at interval 1, shown at every n)."""
    return not scheme_traits(r["scheme"]).uses_interval


def rows(sweep: AccuracySweep, variants: list[Variant], intervals: list[int],
         base_fps: float | None, speed: dict[tuple[Variant, int], Throughput]
         ) -> list[dict]:  # fmt: skip
    """One row per variant and interval (per-frame once, at interval 1).  A row has ``fps``
    and ``speedup`` only where they were measured (``base_fps`` None: no timing runs)."""
    out = []
    for v in variants:
        for n in intervals if v.traits.uses_interval else [1]:
            avg, mn = sweep.miou_avg_min(v, n)
            row = {"scheme": v.scheme, "fusion": v.fusion, "interval": n,
                   "miou_avg": round(avg, 2), "miou_min": round(mn, 2)}  # fmt: skip
            t = speed.get((v, n))
            fps = (t.fps if t else None) if v.traits.uses_interval else base_fps
            if fps is not None and base_fps:
                row.update(fps=round(fps, 3), speedup=round(fps / base_fps, 3))
            out.append(row)
    return out


def csv_text(table: list[dict], columns: tuple[str, ...] = COLUMNS) -> str:
    """Rows as CSV with those of ``columns`` they have, in that order (written atomically by the
    caller); a column no row has (``fps`` without timing runs) is left out, never empty."""
    columns = tuple(c for c in columns if any(c in r for r in table)) or columns
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(table)
    return buf.getvalue()


def table_md(table: list[dict], intervals: list[int], note: str) -> str:
    """The paper's Table 4 layout: metric x scheme rows, keyframe intervals as columns."""
    head = "| metric | scheme | " + " | ".join(str(n) for n in intervals) + " |\n"
    head += "|---|---|" + "---|" * len(intervals) + "\n"
    lines = []
    by = {(row_name(r), r["interval"]): r for r in table}
    once = {row_name(r) for r in table if is_reference(r)}
    for metric, key, fmt in METRICS:
        if not any(key in r for r in table):  # not measured (no timing runs): no row
            continue
        for name in row_names(table):
            cells = []
            for n in intervals:
                r = by.get((name, n)) or (by.get((name, 1)) if name in once else None)
                cells.append(fmt.format(r[key]) if r and key in r else "")
            lines.append(f"| {metric} | {name} | " + " | ".join(cells) + " |")
    return note + "\n\n" + head + "\n".join(lines) + "\n"


def fusion_md(sweep: AccuracySweep, variants: list[Variant], note: str) -> str:
    """The paper's Table 3: mIoU at distance d from both keyframes (n = 2d, p = d): one
    keyframe's features carried alone along block motion, and each fusing variant."""
    fusing = [v for v in variants if v.traits.fuses]
    head = ("| distance to keyframe(s) | forward | backward | "
            + " | ".join(v.label for v in fusing) + " |\n")  # fmt: skip
    head += "|---|---|---|" + "---|" * len(fusing) + "\n"
    lines = []
    for d in FUSION_TABLE_DISTANCES:
        if ("forward", d) not in sweep.fusion_cms or 2 * d not in sweep.intervals:
            continue
        cells = [sweep.fusion_cms["forward", d].miou(), sweep.fusion_cms["backward", d].miou()]
        cells += [sweep.cms[v.scheme, v.fusion, 2 * d, d].miou() for v in fusing]
        lines.append(f"| {d} | " + " | ".join(f"{100 * c:.1f}" for c in cells) + " |")
    return note + "\n\n" + head + "\n".join(lines) + "\n"


def breakdown_md(base: list[Throughput], runs: list[Throughput], note: str) -> str:
    """Mean milliseconds per frame in each stage (the paper's Fig. 2), per configuration."""
    stages = [s for s in base[0].stage_ms if any(t.stage_ms.get(s, 0) > 0 for t in base + runs)]
    head = "| scheme | n | fps | " + " | ".join(stages) + " |\n|---|---|---|" + "---|" * len(stages)
    lines = []
    for t in base[:1] + runs:
        cells = " | ".join(f"{t.stage_ms.get(s, 0):.1f}" for s in stages)
        lines.append(f"| {t.variant.label} | {t.interval} | {t.fps:.2f} | {cells} |")
    return note + "\n\n" + head + "\n" + "\n".join(lines) + "\n"


def plot_tradeoff(table: list[dict], key: str, path: Path, title: str,
                  warning: str | None = None) -> None:  # fmt: skip
    """Figures 3 and 5: accuracy against throughput, one curve per scheme, points labelled n
    (against the keyframe interval where throughput was not measured).  ``warning`` (speed
    figures taken on a busy machine) is written in red across the top."""
    x = "fps" if any("fps" in r for r in table) else "interval"
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name in row_names(table):
        pts = [r for r in table if row_name(r) == name]
        xs, ys = [r[x] for r in pts], [r[key] for r in pts]
        marker = "*" if is_reference(pts[0]) else "o"
        ax.plot(xs, ys, marker=marker, label=name, ms=9 if marker == "*" else 4)
        for r in pts:
            if not is_reference(r):
                ax.annotate(str(r["interval"]), (r[x], r[key]), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))  # fmt: skip
    ax.set_xlabel("throughput (frames/s, decode included)" if x == "fps" else
                  "keyframe interval (throughput not measured)")  # fmt: skip
    ax.set_ylabel("mIoU (%)" + (" — worst offset" if key == "miou_min" else " — all offsets"))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if warning:
        fig.subplots_adjust(top=0.83)
        fig.text(0.5, 0.985, "WARNING: " + warning, color="red", fontsize=7.5, ha="center",
                 va="top", wrap=True)  # fmt: skip
    fig.savefig(path, dpi=110)


def warning_md(warning: str | None) -> str:
    """A report's warning paragraph (empty without one)."""
    return f"**Warning: {warning}.**\n\n" if warning else ""


def classes_md(record: dict) -> str:
    """What the label ids and colours mean (a :meth:`ClassSet.record`), as a Markdown table."""
    lines = ["| id | class | colour (RGB) |", "|---|---|---|"]
    for c in record["classes"]:
        r, g, b = c["color"]
        lines.append(f"| {c['id']} | {c['name']} | #{r:02x}{g:02x}{b:02x} ({r}, {g}, {b}) |")
    void = f"Void pixels (unlabelled ground truth) are id {record['void_id']}, drawn black."
    return "## Classes\n\n" + "\n".join(lines) + "\n\n" + void + "\n"


def plot_examples(examples: dict, classes: ClassSet, path: Path, title: str) -> None:
    """The paper's Fig. 4: frames k..k+n-1 and, under them, each scheme's labels; a legend of
    the classes shown."""
    rows_ = list(examples)  # images, ground truth, the reference scheme, then the others
    n = len(examples["images"])
    palette = classes.palette
    fig = Figure(figsize=(1.9 * n, 1.5 * len(rows_) + 0.9))
    axes = fig.subplots(len(rows_), n, squeeze=False)
    for i, name in enumerate(rows_):
        for p in range(n):
            ax = axes[i][p]
            ax.set_xticks([])
            ax.set_yticks([])
            img = examples[name][p]
            if img is not None:
                ax.imshow(img if name == "images" else colorize(img, palette))
            if i == 0:
                ax.set_title(f"k+{p}" if p else "k (key)", fontsize=8)
            if p == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle(title, fontsize=9)
    shown = sorted({int(i) for name in rows_[1:] for img in examples[name] if img is not None
                    for i in np.unique(img) if i < len(classes.names)})  # fmt: skip
    handles = [Patch(color=palette[i] / 255, label=classes.names[i]) for i in shown]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(shown), 8) or 1, fontsize=7,
               frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0.5 / (1.5 * len(rows_) + 0.9), 1, 1))
    fig.savefig(path, dpi=90)
