"""Whether the fusion reranker's image attention falls on the lungs (issue 15: attention that means something).

For an image query the fusion module returns, per evidence item, a grid map over the model's letterboxed
input (``SearchResult.fusion.image_attention``). Each labelled frontal covid case searches with its
de-identified note and its radiograph; for each of the top-k evidence items the share of the map's mass inside
a classical lung mask (:mod:`medrag.imaging.lungs`) is compared with the share a uniform map would put there,
the mask's area share of the grid. A model whose attention means something puts clearly more than that
baseline on the lungs; the paired difference per case comes with a bootstrap interval.

Reference masks (``reference_masks``: a zip or folder of mask images named like the radiographs, e.g. the V7 Labs
lung masks that the torchxrayvision package ships for 174 covid-chestxray-dataset images) replace the
segmentation where they exist: only cases with a reference mask are then evaluated, and the classical
segmentation's Dice against each reference is reported beside the attention figures.

Cases are skipped, and counted, when the view is lateral (the segmentation is for frontal views), when no
plausible lung mask (or no reference mask) is found, or when the search returns no attention map.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from medrag.assistant import Assistant
from medrag.datasets.covid import CovidCase, covid_cases
from medrag.datasets.splits import Split
from medrag.imaging.lungs import attention_in_mask, mask_on_grid, segment_lungs
from medrag.imaging.radiograph import load_image_file
from medrag.metrics import bootstrap_interval, peak_ratio
from medrag.reporting import pyplot, save_figure, write_json_and_markdown

LATERAL_VIEWS = frozenset({"L", "LL", "RL", "LATERAL"})
"""``view`` values of lateral radiographs (the covid-chestxray-dataset writes ``L``)."""
EXAMPLES = 6


class ReferenceMasks:
    """Lung masks drawn by people, read from a zip or a folder of images whose file names are the radiographs'
    (any folder inside the zip; PNG/JPEG, lung = brighter than mid-grey)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if zipfile.is_zipfile(self.path):
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self.path)
            self.files = {Path(name).name: name for name in self._zip.namelist() if not name.endswith("/")}
        elif self.path.is_dir():
            self._zip = None
            self.files = {item.name: str(item) for item in self.path.rglob("*") if item.is_file()}
        else:
            raise FileNotFoundError(f"lung masks {self.path}: not a zip file or a folder; give the V7 Labs zip "
                                    "(torchxrayvision/data/semantic_masks_v7labs_lungs.zip) or a folder of masks")

    def __contains__(self, image_file: str) -> bool:
        return image_file in self.files

    def mask(self, image_file: str, shape: tuple[int, int]) -> np.ndarray | None:
        """The boolean mask of ``image_file`` at ``shape`` (nearest-neighbour resize), or None without one."""
        name = self.files.get(image_file)
        if name is None:
            return None
        data = self._zip.read(name) if self._zip is not None else Path(name).read_bytes()
        grey = Image.open(io.BytesIO(data)).convert("L").resize(shape[::-1], Image.Resampling.NEAREST)
        return np.asarray(grey) > 127


def dice(mask: np.ndarray, reference: np.ndarray) -> float:
    """Overlap of two boolean masks (1 = identical, 0 = disjoint or ``mask`` empty)."""
    total = int(mask.sum() + reference.sum())
    return 2 * float((mask & reference).sum()) / total if total else 1.0


def case_views(metadata_csv: Path) -> dict[str, str]:
    """Each image file's ``view`` column (upper case; empty when the file has no such column)."""
    with Path(metadata_csv).open(newline="", encoding="utf-8") as handle:
        return {row["filename"].strip(): (row.get("view") or "").strip().upper() for row in csv.DictReader(handle)}


def case_shares(attention: Sequence[np.ndarray], cell_fraction: np.ndarray) -> list[float]:
    """The lung share of each evidence item's attention map, in evidence order."""
    return [attention_in_mask(grid, cell_fraction) for grid in attention]


def case_row(case: CovidCase, view: str, lung_area: float, cell_fraction: np.ndarray,
             attention: Sequence[np.ndarray]) -> dict[str, Any]:
    """One evaluated case: the mean lung share of its top-k items' maps and that of the top item, against the
    uniform baseline (the mean lung fraction of the grid's cells), and how peaked the maps are."""
    shares = case_shares(attention, cell_fraction)
    return {"source_id": case.source_id, "image": str(case.image_path), "finding_class": case.finding_class,
            "view": view, "lung_area": round(lung_area, 4), "baseline": float(cell_fraction.mean()),
            "share": float(np.mean(shares)), "share_top1": float(shares[0]), "items": len(shares),
            "peak_ratio": float(np.mean([peak_ratio(grid) for grid in attention]))}


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Means of the shares and the baseline, and the paired differences with 95% bootstrap intervals."""
    if not rows:
        return {"cases": 0}
    share, top1, baseline = (np.array([row[key] for row in rows]) for key in ("share", "share_top1", "baseline"))
    return {
        "cases": len(rows), "share": float(share.mean()), "share_top1": float(top1.mean()),
        "baseline": float(baseline.mean()),
        "difference": float((share - baseline).mean()), "difference_interval": bootstrap_interval(share - baseline),
        "difference_top1": float((top1 - baseline).mean()),
        "difference_top1_interval": bootstrap_interval(top1 - baseline),
        "above_baseline": float((share - baseline > 1e-9).mean()),  # a flat map's rounding is not "above"
        "peak_ratio": float(np.mean([row["peak_ratio"] for row in rows])),
    }


def pick_examples(rows: Sequence[Mapping[str, Any]], count: int = EXAMPLES) -> list[Mapping[str, Any]]:
    """``count`` cases spread evenly from the largest to the smallest gain over the baseline, so the figure
    shows the spread and not only the cases that flatter the model."""
    ordered = sorted(rows, key=lambda row: row["share_top1"] - row["baseline"], reverse=True)
    if len(ordered) <= count:
        return ordered
    return [ordered[round(i)] for i in np.linspace(0, len(ordered) - 1, count)]


def evaluate_lung_attention(assistant: Assistant, metadata_csv: Path, *, tenant: str, split: Split | None,
                            k: int = 5, reference_masks: ReferenceMasks | None = None,
                            progress: bool = True) -> dict[str, Any]:
    """The lung share of the fusion attention for the labelled frontal covid cases of ``metadata_csv``.

    With ``split``, only the cases whose patient group is in its test part (the patients the joint and
    fusion models never trained on); without it (a file medrag did not train on), every labelled case.
    Each case searches ``tenant`` with its note and radiograph; the top ``k`` evidence items' maps count.
    """
    views = case_views(metadata_csv)
    cases = [case for case in covid_cases(metadata_csv) if case.finding_class and case.image_path.is_file()
             and (split is None or split.part(case.group) == "test")]
    size = assistant.joint_encoder.image_size
    rows: list[dict[str, Any]] = []
    examples: dict[str, list[list[float]]] = {}
    skipped = {"lateral": 0, "no_reference_mask": 0, "no_lung_mask": 0, "no_attention": 0}
    for case in tqdm(cases, desc="lung attention", unit="case", disable=not progress):
        view = views.get(case.source_id, "")
        if view in LATERAL_VIEWS:
            skipped["lateral"] += 1
            continue
        if reference_masks is not None and case.source_id not in reference_masks:
            skipped["no_reference_mask"] += 1
            continue
        radiograph = load_image_file(case.image_path)
        segmented = segment_lungs(radiograph.pixels)
        mask = segmented if reference_masks is None else reference_masks.mask(case.source_id, segmented.shape)
        if not mask.any():
            skipped["no_lung_mask"] += 1
            continue
        result = assistant.search(note=case.note or None, image=radiograph, tenant=tenant, k=k)
        attention = result.fusion.image_attention if result.fusion is not None else None
        if not attention:
            skipped["no_attention"] += 1
            continue
        cell_fraction = mask_on_grid(mask, grid=attention[0].shape, size=size)
        rows.append(case_row(case, view, float(mask.mean()), cell_fraction, attention[:k]))
        if reference_masks is not None:
            rows[-1]["segmentation_dice"] = dice(segmented, mask)
        examples[case.source_id] = np.round(attention[0], 5).tolist()
    classes = sorted({row["finding_class"] for row in rows})
    return {
        "file": str(metadata_csv), "tenant": tenant, "k": k, "split": split.name if split is not None else None,
        "labelled_cases": len(cases), "skipped": skipped, "model_input": size,
        "masks": str(reference_masks.path) if reference_masks is not None else "segmentation",
        "segmentation_dice": _dice_summary(rows) if reference_masks is not None else None,
        "overall": summarise(rows),
        "by_class": {name: summarise([row for row in rows if row["finding_class"] == name]) for name in classes},
        "cases": rows,
        "examples": [{"source_id": row["source_id"], "attention_top1": examples[row["source_id"]]}
                     for row in pick_examples(rows)],
    }


def _dice_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How well the classical segmentation matches the reference masks (an empty segmentation counts as 0)."""
    values = np.array([row["segmentation_dice"] for row in rows])
    if not len(values):
        return {"cases": 0}
    return {"cases": len(values), "mean": float(values.mean()), "median": float(np.median(values)),
            "p10": float(np.percentile(values, 10)), "empty": int((values == 0).sum())}


# --- report files ----------------------------------------------------------------------------------------------------

def _interval(low_high: Sequence[float]) -> str:
    return f"[{low_high[0]:+.3f}, {low_high[1]:+.3f}]"


def _summary_row(name: str, summary: Mapping[str, Any]) -> str:
    if not summary["cases"]:
        return f"| {name} | 0 | - | - | - | - | - | - | - | - |"
    return (f"| {name} | {summary['cases']} | {summary['share']:.3f} | {summary['share_top1']:.3f} | "
            f"{summary['baseline']:.3f} | {summary['difference']:+.3f} | {_interval(summary['difference_interval'])} "
            f"| {summary['difference_top1']:+.3f} | {summary['above_baseline']:.2f} | {summary['peak_ratio']:.2f} |")


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: overall and per finding class, the baseline beside every share."""
    skipped = report["skipped"]
    scope = (f"patients in the test part of split `{report['split']}`" if report["split"]
             else "every labelled case (no split: a file medrag did not train on)")
    lines = [
        "# Does the fusion attention fall on the lungs?", "",
        f"`{report['file']}`, {scope}: {report['labelled_cases']} labelled cases; {report['overall']['cases']} "
        f"evaluated, {skipped['lateral']} lateral views skipped, {skipped['no_reference_mask']} without a "
        f"reference mask, {skipped['no_lung_mask']} without a plausible lung "
        f"mask, {skipped['no_attention']} without an attention map. Each case searched tenant `{report['tenant']}` "
        f"with its de-identified note and radiograph; the top {report['k']} evidence items' maps count.", "",
        "| cases | n | lung share (top-k mean) | lung share (top 1) | uniform baseline | difference | 95% CI "
        "| difference (top 1) | share > baseline | peak / uniform |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        _summary_row("all", report["overall"]),
        *(_summary_row(name, summary) for name, summary in report["by_class"].items()),
        "",
        *_dice_lines(report),
        f"Lung share: the share of a map's mass on the lung mask ({_mask_source(report)}), with the mask "
        f"letterboxed like the model's input ({report['model_input']} px square) and averaged per grid cell. "
        "Uniform baseline: the share a flat map would give, the mean lung fraction of the cells. "
        "Difference: lung share minus baseline per case (paired), with a percentile-bootstrap 95% interval over "
        "cases. Share > baseline: the fraction of cases above it. Peak / uniform: the hottest cell's weight over "
        "a flat map's (1 = flat), mean over the top-k maps.",
    ]
    return "\n".join(lines) + "\n"


def _mask_source(report: Mapping[str, Any]) -> str:
    if report["masks"] == "segmentation":
        return "a classical segmentation, `medrag.imaging.lungs`"
    return f"reference masks from `{Path(report['masks']).name}`"


def _dice_lines(report: Mapping[str, Any]) -> list[str]:
    dice_summary = report.get("segmentation_dice")
    if not dice_summary or not dice_summary["cases"]:
        return []
    return [f"The classical segmentation (`medrag.imaging.lungs`) against the reference masks on these "
            f"{dice_summary['cases']} radiographs: Dice mean {dice_summary['mean']:.3f}, median "
            f"{dice_summary['median']:.3f}, 10th percentile {dice_summary['p10']:.3f}; {dice_summary['empty']} "
            "found no plausible lungs (Dice 0).", ""]


def plot_examples(report: Mapping[str, Any], path: Path) -> Path:
    """The example radiographs with the lung mask's outline and the top item's attention on top.

    The grid is drawn over the letterboxed square the model saw (side = the image's longer side, centred),
    then the view is cut to the image, as the viewer does.
    """
    examples = report["examples"]
    columns = min(3, max(len(examples), 1))
    rows = max(1, -(-len(examples) // columns))
    figure, axes = pyplot().subplots(rows, columns, figsize=(3.6 * columns, 4.0 * rows), squeeze=False)
    by_id = {row["source_id"]: row for row in report["cases"]}
    for axis, example in zip(axes.flat, examples, strict=False):
        row, grid = by_id[example["source_id"]], np.asarray(example["attention_top1"])
        pixels = load_image_file(row["image"]).pixels
        height, width = pixels.shape
        side = max(height, width)
        left, top = (width - side) / 2, (height - side) / 2
        axis.imshow(pixels, cmap="gray", vmin=0, vmax=1)
        axis.imshow(grid, cmap="inferno", alpha=0.45, interpolation="bilinear",
                    extent=(left, left + side, top + side, top))
        mask = (segment_lungs(pixels) if report["masks"] == "segmentation"
                else ReferenceMasks(Path(report["masks"])).mask(row["source_id"], pixels.shape))
        axis.contour(mask, levels=[0.5], colors="cyan", linewidths=1.2)
        axis.set(xlim=(0, width), ylim=(height, 0), xticks=[], yticks=[])
        axis.set_title(f"{row['finding_class']}: lung share {row['share_top1']:.2f} (uniform {row['baseline']:.2f})\n"
                       f"heat min-max scaled; peak / uniform {peak_ratio(grid):.2f}", fontsize=9)
    for axis in list(axes.flat)[len(examples):]:
        axis.axis("off")
    figure.suptitle("Top-1 evidence attention (heat) and lung mask (cyan)")
    return save_figure(figure, path)


def write_report(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """``attention.json``, ``attention.md`` and ``attention_examples.png`` in ``out_dir``."""
    return [*write_json_and_markdown(report, render_markdown(report), out_dir, "attention"),
            plot_examples(report, out_dir / "attention_examples.png")]
