"""What users run on their photos: the browser demo, the HTTP API and the demo model.

* :mod:`.serve`   the Starlette app (painting page in ``static/``, ``/api/inpaint``) and its server;
* :mod:`.demo`    ``inpaintssl demo``: find or make a model, then serve it.

May import every lower part (``data``, ``gan``, ``evaluation``); the web stack is imported lazily
(the ``[demo]`` extra). Never the CLI.
"""
