"""What users run on their photos: inpainting files and folders, the browser demo, the HTTP API and the demo model.

* :mod:`.inpaint` ``inpaintssl inpaint``: inputs and folders -> output paths, masks, the fill (model or
  an OpenCV baseline), the loop that writes and reports;
* :mod:`.serve`   the Starlette app (painting page in ``static/``, ``/api/inpaint``) and its server;
* :mod:`.demo`    ``inpaintssl demo``: find or make a model, then serve it;
* :mod:`.browser` the headless-Chromium helpers of the browser tests and ``scripts/demo_screenshot.py``.

May import every lower part (``data``, ``gan``, ``evaluation``); the web stack is imported lazily
(the ``[demo]`` extra). Never the CLI.
"""
