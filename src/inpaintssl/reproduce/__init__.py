"""The paper end to end, at a chosen scale, into one report (``inpaintssl reproduce``).

    from inpaintssl.reproduce.pipeline import Settings, run_reproduce
    run_reproduce(Settings(scale="tiny", data=["train2017"], eval_data=["val2017"], voc="VOC2007"), Path("repro"))

* :mod:`.scales`      the typed scale table (tiny / cpu / paper) and the four models each scale pretrains;
* :mod:`.stages`      the stages in order (pretrain, evaluate, figures, transfer, probes hook, report);
* :mod:`.pipeline`    input checks, the skip rule, ``stages.json``, ETAs, failures;
* :mod:`.figures`     the paper's Figures 3, 5, 6 and the hole-sharpness number for "blurry";
* :mod:`.report`      ``report.md`` with the paper's claims beside ours; :mod:`.html` its self-contained HTML;
* :mod:`.provenance`  the machine and the exact commands.

May import every engine sub-package (config, data, gan, evaluation, transfer); never the app or the CLI.
Importing this package (and :mod:`.scales`, which the CLI reads for its help) does not load PyTorch.
"""

from .scales import SCALES, Scale, get_scale

__all__ = ["SCALES", "Scale", "get_scale"]
