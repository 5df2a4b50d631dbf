"""The reproduction's one report: ``report.md`` (images as relative links) and ``report.html`` (self-contained).

    paths = write_reports(ctx)       # OUT/report.md, OUT/report.html, from every stage's outputs

Sections: the stages (status, wall time, errors), the paper's claims beside our numbers, pretraining (runs,
loss curves), the ablation table (M1, M2, M3, m1-plus, Telea, NS, mean on the same holes), Figures 3, 5, 6,
Table 3 and Figure 7, the linear probes (a hook), the resolved configs, the machine
and the exact commands. A stage that did not finish leaves its section saying so, with the reason.

Verdicts ("holds here?") compare directions only, at the scale that ran: a claim about blur holds when the
model said to be blurrier has the lower mean ``sharpness_hole`` (:mod:`evaluation.metrics`); "M1 better than
M3" when M1 has the higher hole PSNR and is sharper (one of the two: "partly"); Table 3's test gain when the
pretrained encoder's test accuracy is higher; its "no effect on the training set" when the two training
accuracies are within :data:`SAME_POINTS` points (the paper's differ by 0.3).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write_text
from ..config import config_to_dict
from ..evaluation.ablation import training_section
from ..evaluation.report import metrics_table
from .html import markdown_to_html
from .provenance import commands, machine_info
from .stages import FIGURES, STAGES, fmt_seconds

PAPER_TABLE3 = {"pretrained": {"train": 75.5, "test": 57.4}, "random": {"train": 75.8, "test": 55.1}}
SAME_POINTS = 1.0
SHARPNESS = "sharpness_hole"       # evaluation.metrics: fill's gradient energy / the photo's, 1 = as sharp
PAPER_TITLE = "Image inpainting: Self supervised learning (Rathinavel & Kudupudi)"


def _json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_per_image(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """evaluation/per_image.csv -> {method: {metric key: (N,) array}} in image order."""
    out: dict[str, dict[str, list]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            m = out.setdefault(row.pop("method"), {})
            row.pop("image")
            for k, v in row.items():
                m.setdefault(k, []).append(float(v))
    return {m: {k: np.array(v) for k, v in d.items()} for m, d in out.items()}


def paired_fraction(a, b) -> float:
    """Fraction of photos where ``a`` > ``b`` (ties count half)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(((a > b) + 0.5 * (a == b)).mean()) if len(a) else float("nan")


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(mean of a - b, its standard error, fraction of photos where a > b)."""
    d = a - b
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), se, paired_fraction(a, b)


def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


class Loaded:
    """The stage outputs the report reads, each None when its stage is not done."""

    def __init__(self, ctx):
        self.ctx, out = ctx, ctx.out
        self.ok = {name: ctx.records.get(name, {}).get("status") == "done" for name in ctx.records}
        self.eval = _json(out / "evaluation" / "metrics.json") if self.ok.get("evaluate") else None
        self.per_image = read_per_image(out / "evaluation" / "per_image.csv") if self.eval else None
        self.transfer = _json(out / "transfer" / "metrics.json") if self.ok.get("transfer") else None

    def missing(self, stage: str) -> str:
        rec = self.ctx.records.get(stage, {})
        why = rec.get("error") or rec.get("reason") or ""
        return f"_Not available: the {stage} stage is {rec.get('status', 'pending')}{f' ({why})' if why else ''}._"

    def sharp(self, name: str) -> np.ndarray | None:
        """Per-photo ``sharpness_hole`` of a method (None if this evaluation has no such metric)."""
        return (self.per_image or {}).get(name, {}).get(SHARPNESS)


def claims(d: Loaded) -> list[str]:
    rows = ["| claim (paper) | paper | ours | holds here? |", "|---|---|---|---|"]
    na = "n/a (stage not done)" if d.per_image is None else "n/a (no sharpness_hole metric in this evaluation)"
    pi, s = d.per_image, d.eval["methods"] if d.eval else None

    def sharp(name):
        v = d.sharp(name)
        return "n/a" if v is None else f"{v.mean():.2f}"

    ours = (f"hole PSNR {s['m1']['psnr_hole']['mean']:.2f} dB, SSIM {s['m1']['ssim_hole']['mean']:.3f}, "
            f"sharpness {sharp('m1')} (Telea {sharp('telea')}, mean fill {sharp('mean')}; 1 = as sharp as "
            "the photo)") if s else na
    rows.append("| Figure 3, section 6.1: M1 \"was able to reproduce good crisp predictions in the masked region\" "
                f"| judged by eye | {ours} | see Figure 3 |")

    text, verdict = na, "n/a"
    if d.sharp("m1") is not None and d.sharp("m2") is not None:
        m1, m2 = d.sharp("m1"), d.sharp("m2")
        dm, se, _ = paired_difference(pi["m2"]["psnr_hole"], pi["m1"]["psnr_hole"])
        text = (f"hole sharpness M2 {m2.mean():.2f} vs M1 {m1.mean():.2f}; M2 is blurrier on "
                f"{100 * paired_fraction(m1, m2):.0f}% of {len(m1)} photos; hole PSNR M2 - M1 {dm:+.2f} ± {se:.2f} dB")
        verdict = "yes" if m2.mean() < m1.mean() else "no"
    rows.append("| Figure 5, section 6.1: without the global discriminator (M2) \"the image is too blurry\" "
                f"| M2 blurrier than M1 (by eye) | {text} | {verdict} |")

    text, verdict = na, "n/a"
    if d.sharp("m1") is not None and d.sharp("m3") is not None:
        dm, se, frac = paired_difference(pi["m1"]["psnr_hole"], pi["m3"]["psnr_hole"])
        ds = float((pi["m1"]["ssim_hole"] - pi["m3"]["ssim_hole"]).mean())
        sharper = d.sharp("m1").mean() > d.sharp("m3").mean()
        text = (f"hole PSNR M1 - M3 {dm:+.2f} ± {se:.2f} dB (M1 better on {100 * frac:.0f}% of photos), "
                f"SSIM {ds:+.3f}; sharpness M1 {sharp('m1')} vs M3 {sharp('m3')}")
        verdict = "yes" if dm > 0 and sharper else "partly" if dm > 0 or sharper else "no"
    rows.append("| Figure 6, section 6.1: M1 \"generates better crisper and realistic looking patches\" than M3 "
                f"| M1 better than M3 (by eye) | {text} | {verdict} |")

    t, p = d.transfer, PAPER_TABLE3
    for split, claim, rule in (("test", "Table 3, section 6.2: the inpainting init gives \"a small increase\" in "
                                        "test accuracy", lambda x: x > 0),
                               ("train", "Table 3, section 6.2: the init \"did not have any effect\" on the training "
                                         "set", lambda x: abs(x) <= SAME_POINTS)):
        paper = (f"{p['pretrained'][split]}% vs {p['random'][split]}% "
                 f"({p['pretrained'][split] - p['random'][split]:+.1f})")
        if t:
            a, b = (100 * t[n][split]["top1"] for n in ("pretrained", "random"))
            verdict = "yes" if rule(a - b) else "no"
            rows.append(f"| {claim} | {paper} | {a:.1f}% vs {b:.1f}% ({a - b:+.1f}) | {verdict} |")
        else:
            rows.append(f"| {claim} | {paper} | n/a (stage not done) | n/a |")

    text, verdict = "n/a (stage not done)", "n/a"
    if pi:
        dm, se, frac = paired_difference(pi["m1-plus"]["psnr_hole"], pi["m1"]["psnr_hole"])
        text, verdict = f"hole PSNR m1-plus - M1 {dm:+.2f} ± {se:.2f} dB (better on {100 * frac:.0f}%)", \
            "yes" if dm > 0 else "no"
    rows.append(f"| Ours (docs/results.md), not the paper's: the improved recipe m1-plus fills holes better than M1 | - "
                f"| {text} | {verdict} |")
    return rows


def stage_table(ctx) -> list[str]:
    rows = ["| # | stage | status | this run | wall time | finished (UTC) | host | notes |",
            "|---|---|---|---|---|---|---|---|"]
    for i, st in enumerate(STAGES, 1):
        r = ctx.records.get(st.name, {})
        status = r.get("status", "pending")
        shown = f"**{status.upper()}**" if status in ("failed", "blocked", "interrupted") else status
        secs = fmt_seconds(r["seconds"]) if r.get("seconds") is not None else ""
        note = (r.get("error") or r.get("reason") or "").replace("|", "/")
        this_run, finished = r.get("this_run", ""), (r.get("finished") or "")[:16].replace("T", " ")
        if st.name == "report":
            shown, this_run, secs, note = "this page", "written", "", ""
        rows.append(f"| {i} | {st.title} | {shown} | {this_run} | {secs} | {finished} "
                    f"| {r.get('host', '')} | {note} |")
    return rows


def _section_pretrain(d: Loaded) -> list[str]:
    ctx = d.ctx
    if not d.ok.get("pretrain"):
        return [d.missing("pretrain")]
    runs = ctx.records["pretrain"].get("runs", {})
    text = training_section({n: m.cfg for n, m in ctx.models.items()}, ctx.runs(),
                            {n: runs.get(n, {}).get("seconds") for n in ctx.models}, ctx.sources, ctx.eval_sources)
    return [text.replace("## Training", "### Training runs"), "",
            "### Loss curves", "",
            "![loss curves](figures/loss_curves.png)" if d.ok.get("figures") else d.missing("figures")]


def _section_eval(d: Loaded) -> list[str]:
    if not d.eval:
        return [d.missing("evaluate")]
    p = d.eval["protocol"]
    lines = [f"{p['images']} photos of {', '.join(f'`{x}`' for x in p['data'])} (none seen in training), centre "
             f"square resized to {p['eval_size']} px, the paper's central hole ({100 * p['hole_fraction']:.0f}% of "
             "the pixels), the same for every method; scores on the composite, [0, 1] pixel scale, mean ± std "
             "over the photos. Full protocol and per-image values: [evaluation/report.md](evaluation/report.md).",
             "", metrics_table(d.eval["methods"]), "", "![comparison grid](evaluation/grid.png)", "",
             "Columns: original, corrupted, then each method: " + ", ".join(d.eval["methods"]) + "."]
    pi = d.per_image
    lines += ["", "Paired over the photos, against M1 (mean ± standard error; share of photos where the method is "
                  "better):", "",
              "| method | hole PSNR − M1 (dB) | better on | hole SSIM − M1 |", "|---|---|---|---|"]
    for name in pi:
        if name != "m1":
            dm, se, frac = paired_difference(pi[name]["psnr_hole"], pi["m1"]["psnr_hole"])
            ds, _, _ = paired_difference(pi[name]["ssim_hole"], pi["m1"]["ssim_hole"])
            lines.append(f"| {name} | {dm:+.2f} ± {se:.2f} | {100 * frac:.0f}% | {ds:+.4f} |")
    return lines


def _section_figures(d: Loaded) -> list[str]:
    if not d.ok.get("figures"):
        return [d.missing("figures")]
    quotes = {"m1": "\"our model-M1 was able to reproduce good crisp predictions in the masked region\"",
              "m2": "\"As we can see the image is too blurry\"",
              "m3": "\"our model-M1 generates better crisper and realistic looking patches\" (than M3)",
              "m1-plus": "(not in the paper)"}
    lines = [f"The first {d.ctx.scale.figure_rows} photos of the evaluation set (sorted by path), the central hole; "
             "each row: real, corrupted (hole gray), reconstructed (the model's output in the hole). The paper judged "
             "these by eye; our number for blur is the `sharpness hole` column of the evaluation table (1 = as "
             "much fine detail as the photo, lower = blurrier).", ""]
    for name, (file, caption) in FIGURES.items():
        lines += [f"### {caption}", "", f"Paper: {quotes[name]}.", "", f"![{caption}](figures/{file})", ""]
    return lines


def _section_transfer(d: Loaded) -> list[str]:
    t = d.transfer
    if not t:
        return [d.missing("transfer")]
    setup, p, tc = t["setup"], PAPER_TABLE3, t["setup"]["transfer"]
    lines = [f"Classifier = the generator's encoder + a new head, fine-tuned on `{setup['train_labels']}` "
             f"({t['pretrained']['train']['images']} images), tested on `{setup['test_labels']}` "
             f"({t['pretrained']['test']['images']} images); {t['pretrained']['epochs']} epoch(s), SGD lr "
             f"{tc['lr']}, momentum {tc['momentum']}, batch {tc['batch_size']}, seed {tc['seed']} for both. "
             "Accuracy = top-1 (the paper does not define it). The paper: "
             "VOC2012, 128 px, M1 trained 13 h on a GPU.", "",
             "| Model | Training accuracy (%) | Testing accuracy (%) | Training mAP (%) | Testing mAP (%) |",
             "|---|---:|---:|---:|---:|",
             f"| Paper: with weight initialization from pretrained model | {p['pretrained']['train']} | "
             f"{p['pretrained']['test']} | - | - |",
             f"| Paper: with random weight initialization | {p['random']['train']} | {p['random']['test']} | - | - |"]
    for name, label in (("pretrained", "Ours: from the M1 inpainting encoder"), ("random", "Ours: random init")):
        r = t[name]
        lines.append(f"| {label} | {_pct(r['train']['top1'])} | {_pct(r['test']['top1'])} | {_pct(r['train']['map'])} "
                     f"| {_pct(r['test']['map'])} |")
    ref = setup.get("reference") or {}
    lines += ["", f"Reference levels: always ranking the most frequent training class first gives test top-1 "
                  f"{_pct(ref.get('prior_top1'))}%; a random ranking gives mAP about {_pct(ref.get('chance_map'))}%. "
                  "Per-class AP: [transfer/report.md](transfer/report.md).", "",
              "### Figure 7: training history", "", "![training history](transfer/history.png)"]
    return lines


def _section_probes(d: Loaded) -> list[str]:
    rec = d.ctx.records.get("probes", {})
    if rec.get("status") != "done":
        return [d.missing("probes")]
    result = _json(d.ctx.out / "probes" / "result.json") or {}
    return [result.get("markdown") or "Results: [probes/result.json](probes/result.json)."]


def _section_configs(ctx) -> list[str]:
    lines = []
    blocks = [(f"{n} (preset {m.cfg.preset}, started from `{m.base}`)", config_to_dict(m.cfg))
              for n, m in ctx.models.items()]
    blocks += [("transfer", dataclasses.asdict(ctx.transfer_cfg)),
               (f"scale {ctx.scale.name}", dataclasses.asdict(ctx.scale))]
    for title, obj in blocks:
        lines += ["<details>", f"<summary>{title}</summary>", "", "```json", json.dumps(obj, indent=2), "```", "",
                  "</details>"]
    return lines


def build_markdown(ctx) -> str:
    d, sc = Loaded(ctx), ctx.scale
    md = [f"# Reproduction of the paper at the `{sc.name}` scale", "",
          f"_{PAPER_TITLE}_, sections 5-6, Tables 1-3, Figures 3, 5, 6, 7. Scale `{sc.name}` ({sc.budget}): "
          f"{sc.image_size} px, {sc.steps} pretraining steps per model, {sc.transfer_epochs} transfer epoch(s); "
          f"seed {ctx.seed}, device `{ctx.device}`. Everything below was made by the commands at the end.", ""]
    if sc.name != "paper":
        md += ["At this scale the numbers show that the pipeline works end to end; the paper's claims are about "
               "128 px models trained for hours on a GPU (`--scale paper`).", ""]
    md += ["## Stages", "", *stage_table(ctx), "",
           "## The paper's claims beside our numbers", "", *claims(d), "",
           "Verdicts compare directions only, at this scale; the rules are in `inpaintssl/reproduce/report.py`.", "",
           "## 1. Pretraining: M1, M2, M3 and m1-plus (sections 5, 5.4, 6.1)", "", *_section_pretrain(d), "",
           "## 2. Evaluation beside Telea, Navier-Stokes and mean fill", "", *_section_eval(d), "",
           "## 3. The paper's figures (section 6.1)", "", *_section_figures(d), "",
           "## 4. Transfer to VOC classification (section 6.2, Table 3, Figure 7)", "", *_section_transfer(d), "",
           "## 5. Linear probes", "", *_section_probes(d), "",
           "## Resolved configs", "", *_section_configs(ctx), "",
           "## Machine", "", "| what | value |", "|---|---|",
           *(f"| {k} | {v} |" for k, v in machine_info(ctx.device).items()), "",
           "## Commands", ""]
    for title, text in commands(ctx):
        md += [f"### {title}", "", "```bash", text, "```", ""]
    md += ["Stage records (status, fingerprints, times): [stages.json](stages.json).", ""]
    return "\n".join(md)


def write_reports(ctx) -> dict[str, Path]:
    md = build_markdown(ctx)
    paths = {"report.md": ctx.out / "report.md", "report.html": ctx.out / "report.html"}
    atomic_write_text(paths["report.md"], md)
    atomic_write_text(paths["report.html"], markdown_to_html(md, ctx.out, f"Reproduction ({ctx.scale.name} scale)"))
    return paths
