"""TEMPORARY (helper's check, to be deleted): both transfer compare paths, outputs dumped for a before/after diff."""
import json, os, re, shutil
from pathlib import Path

from click.testing import CliRunner

from inpaintssl.cli import cli
from test_transfer import make_voc

DUMP = Path(os.environ.get("CMP_OUT", "/tmp/cmpcheck/x"))


def _norm(obj):
    if isinstance(obj, dict):
        return {k: _norm(v) for k, v in obj.items() if k not in ("seconds", "path", "checkpoint")}
    if isinstance(obj, list):
        return [_norm(v) for v in obj]
    return obj


def _dump(out: Path, name: str, res):
    d = DUMP / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out)).replace("/", "__")
        if p.suffix == ".json":
            (d / rel).write_text(json.dumps(_norm(json.loads(p.read_text())), indent=1, sort_keys=True, default=str))
        elif p.suffix in (".md", ".jsonl"):
            t = p.read_text()
            t = re.sub(r"/tmp/\S+", "TMP", t)
            t = re.sub(r"Wall time of the whole comparison: [0-9.]+", "Wall time X", t)
            t = re.sub(r'"seconds": [0-9.]+', '"seconds": X', t)
            (d / rel).write_text(t)
        elif p.is_file():
            (d / rel).write_text("exists\n")
    out_text = re.sub(r"/tmp/\S+", "TMP", res.output)
    out_text = re.sub(r"\([0-9.]+ s\)", "(X s)", out_text)
    out_text = re.sub(r"Wall time of the whole comparison: [0-9.]+", "Wall time X", out_text)
    (d / "_output.txt").write_text(out_text)


def test_table3_cli(smoke_run, tmp_path):
    voc = make_voc(tmp_path / "voc")
    for frac in ("1", "0.5"):
        out = tmp_path / f"cmp{frac}"
        args = ["transfer", "compare", "--data", str(voc), "--init", str(smoke_run), "--train-split", "train",
                "--test-split", "val", "--epochs", "2", "--batch", "4", "--workers", "0", "--out", str(out),
                "--no-progress", "--label-fraction", frac]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        _dump(out, f"table3_{frac}", res)
        report = (out / "report.md").read_text()
        assert "## Table 3" in report and "With random weight initialization" in report
        again = CliRunner().invoke(cli, args)
        assert again.exit_code == 1 and "already holds a comparison" in again.output


def test_inits_cli(smoke_run, tmp_path):
    voc = make_voc(tmp_path / "voc")
    out = tmp_path / "cmpi"
    args = ["transfer", "compare", "--data", str(voc), "--init", str(smoke_run), "--train-split", "train",
            "--test-split", "val", "--epochs", "2", "--batch", "4", "--workers", "0", "--out", str(out),
            "--no-progress", "--seeds", "2"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    _dump(out, "inits", res)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
