"""The pretext task: the context-encoder GAN of the paper (sections 5.1-5.4) and its training.

* :mod:`.models`       U-Net generator (Table 1), global and local discriminators (Table 2);
* :mod:`.layers`       partial and gated convolutions, resize-convolution (options beyond the paper);
* :mod:`.losses`       the L2 and adversarial terms (section 5.3);
* :mod:`.masks`        hole masks, ``(B, 1, S, S)`` with 1 = hole, drawn from explicit generators;
* :mod:`.step`         one D step then one G step, the training state, precision, EMA;
* :mod:`.train`        the run loop: data, logging, samples, checkpoints, resume;
* :mod:`.distributed`  DDP under torchrun, synchronised batch norm;
* :mod:`.inpainter`    inference: fill a hole in a photo of any size with a trained generator.

May import: ``inpaintssl.config``, ``inpaintssl.errors``, ``inpaintssl.checkpoint``, ``inpaintssl.data``.
Never evaluation, transfer, the app or the CLI.
"""
