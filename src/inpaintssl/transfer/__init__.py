"""The downstream task (paper section 6.2): the generator's encoder initialises a classifier.

* :mod:`.voc`      PASCAL VOC and class-per-folder datasets, labels, the epoch sampler;
* :mod:`.train`    the classifier (encoder + head) and the fine-tuning of one init (``transfer_run``);
* :mod:`.metrics`  per-class AP (VOC devkit), mAP, top-1 accuracy;
* :mod:`.report`   the Table 3 report and the Figure 7 training history;
* :mod:`.probe`    linear probes at every encoder depth (cached features, L-BFGS, validation-chosen decay);
* :mod:`.probe_report` the layer x init table of `transfer probe` and its two figures;
* :mod:`.inits`    ``transfer compare``: inits (run folders, ``ssl``, ``random``) fine-tuned alike over seeds,
  and the paper's Table 3 (one checkpoint vs random init).

May import: ``inpaintssl.config`` / ``errors`` / ``checkpoint``, ``inpaintssl.data``, ``inpaintssl.gan``
and ``inpaintssl.evaluation.plots`` (the figure writer). Never the app or the CLI.
"""
