"""Browser demo and HTTP API: paint a hole on a photo, get it filled by a trained generator.

    from inpaintssl.gan.inpainter import Inpainter
    from inpaintssl.app.serve import ServerThread, create_app, run_server
    inpainter = Inpainter.from_checkpoint("runs/m1")
    run_server(inpainter, "127.0.0.1", 7860)         # what `inpaintssl serve` runs; blocks until Ctrl-C
    with ServerThread(create_app(inpainter)) as url: # or in a background thread (tests, notebooks)
        ...                                          # url == "http://127.0.0.1:<free port>/"

    curl -F image=@photo.jpg -F mask=@hole.png http://127.0.0.1:7860/api/inpaint -o filled.png

Routes (a small Starlette app; needs the ``demo`` extra: starlette, uvicorn, python-multipart):

* ``GET /``                      the painting page (``static/index.html`` + ``app.js`` + ``style.css``,
                                 no build step, no CDN: it works offline)
* ``GET /api/info``              the model's name, preset, training size, and the server's limits
* ``GET /api/samples``           ``[{"name", "file", "width", "height"}]``: the bundled sample photos
* ``GET /api/samples/{name}``    one sample photo, as shipped (PNG or JPEG)
* ``POST /api/inpaint``          multipart fields ``image`` (any photo Pillow reads) and ``mask``
                                 (same size, white = hole, gray >= 128 counts as hole) -> ``image/png``
                                 of the photo at full resolution: the hole filled by the model through
                                 its context window (see :mod:`inpaintssl.gan.inpainter`), every pixel outside
                                 the hole bit-identical to the decoded input.

Every error is JSON ``{"error": "..."}`` with a 4xx status (400 bad field or image, 404 unknown route
or sample, 413 upload over the size cap, 503 queue full) or 500 for a bug. Limits: the request body is
read at most ``max_upload_bytes`` (Content-Length is checked first, and streamed bodies are cut off);
decoding goes through :func:`inpaintssl.data.images.open_image_bytes` (decompression-bomb guard, EXIF
orientation, any mode -> RGB); inference runs one request at a time in a worker thread behind a lock,
with at most ``max_waiting`` requests queued behind it (the rest get 503, never a crash).
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InpaintsslError
from ..data.images import mask_to_hole, open_image_bytes

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 20.0
# Requests admitted behind the running one. 64: a lab of ~30 people each pressing Inpaint twice in the same
# second is answered, not shed (measured: a burst of 64 with the bundled model, tests/test_serve.py); each
# admitted request holds at most the upload cap in memory, so the bound is 64 x 20 MB = 1.3 GB at worst.
DEFAULT_MAX_QUEUE = 64
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
PNG_COMPRESS_LEVEL = 3          # Pillow default 6: 2x slower (2.6 s vs 1.3 s on 5.8 MP) for 3 % smaller files


def static_dir() -> Path:
    """The folder that holds index.html, app.js and style.css (package data)."""
    return Path(str(resources.files("inpaintssl.app") / "static"))


def sample_catalog(paths: list[Path]) -> dict[str, Path]:
    """{name: path} for sample photos; the name is the file stem (``astronaut``), unique."""
    return {p.stem: Path(p) for p in paths}


def require_demo_stack():
    try:
        import python_multipart  # noqa: F401  (Starlette's form parser)
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise InpaintsslError(f"the web demo needs the 'demo' extra ({e.name} is missing); "
                              "pip install 'inpaintssl[demo]'") from None


class ApiError(Exception):
    """An error answered as JSON ``{"error": message}`` with an HTTP ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class InferenceQueue:
    """One inference at a time; at most ``max_waiting`` requests wait behind the running one.

    ``with queue.slot():`` admits a request (503 when full) for its whole life, upload and decoding
    included, so the number of photos held in memory is bounded; ``queue.run(rgb, hole)`` then takes
    the model lock, so forward passes never overlap whatever the number of HTTP requests."""

    def __init__(self, inpainter, max_waiting: int = DEFAULT_MAX_QUEUE):
        self.inpainter, self.max_waiting = inpainter, max_waiting
        self._model_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self.pending = 0                     # admitted requests: running + waiting
        self.completed = 0

    @contextlib.contextmanager
    def slot(self):
        with self._count_lock:
            if self.pending > self.max_waiting:
                raise ApiError(503, f"server busy: {self.pending} requests are already queued; retry shortly")
            self.pending += 1
        try:
            yield
        finally:
            with self._count_lock:
                self.pending -= 1

    def run(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """``inpainter(rgb, hole)`` under the model lock (blocks while another request is inferring)."""
        with self._model_lock:
            out = self.inpainter(rgb, hole)
            self.completed += 1
            return out


async def read_body_capped(request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"upload is {int(declared) / 2**20:.1f} MB; the limit is {limit / 2**20:.1f} MB "
                            "(downscale the photo, or start the server with a larger --max-upload-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"upload exceeds the {limit / 2**20:.1f} MB limit (downscale the photo, or "
                                "start the server with a larger --max-upload-mb)")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_form(request, body: bytes, limit: int) -> dict[str, tuple[str, bytes]]:
    """The multipart fields of an already-read body: {field: (filename, bytes)}."""
    from starlette.requests import Request

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "expected a multipart/form-data request with fields 'image' and 'mask' "
                            "(e.g. curl -F image=@photo.jpg -F mask=@mask.png URL)")
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, receive=replay).form(max_files=4, max_fields=16, max_part_size=limit)
    except Exception as e:               # starlette's MultiPartException / HTTPException on a broken body
        raise ApiError(400, f"cannot parse the multipart form ({getattr(e, 'detail', e)})") from None
    fields = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, str):
                fields[key] = ("", value.encode())
            else:
                fields[key] = (value.filename or "", await value.read())
    finally:
        await form.close()
    return fields


def decode_request(fields: dict[str, tuple[str, bytes]]) -> tuple[np.ndarray, np.ndarray, str]:
    """(rgb (H, W, 3) uint8, hole (H, W) bool, image filename) from the form fields, or ApiError 400."""
    missing = [k for k in ("image", "mask") if k not in fields]
    if missing:
        raise ApiError(400, f"missing form field(s) {', '.join(repr(k) for k in missing)}; send 'image' "
                            "(the photo) and 'mask' (same size, white = hole)")
    name, data = fields["image"]
    mask_name, mask_data = fields["mask"]
    try:
        rgb = np.asarray(open_image_bytes(data, f"field 'image' ({name or 'no filename'})"), dtype=np.uint8)
        mask_img = open_image_bytes(mask_data, f"field 'mask' ({mask_name or 'no filename'})")
        hole = mask_to_hole(mask_img, rgb.shape[:2], f"field 'mask' ({mask_name or 'no filename'})")
    except InpaintsslError as e:
        raise ApiError(400, str(e)) from None
    return rgb.copy(), hole, name


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def create_app(inpainter, max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2**20), max_waiting: int = DEFAULT_MAX_QUEUE,
               samples: dict[str, Path] | None = None, allowed_hosts: list[str] | None = None):
    """The Starlette app. ``inpainter``: an :class:`inpaintssl.gan.inpainter.Inpainter` (or any callable
    ``(rgb, hole) -> rgb`` with ``name``/``cfg``); ``samples``: {name: path} (default: the photos
    shipped with scikit-image); ``allowed_hosts``: Host headers accepted (None = any; the CLI passes the
    loopback names when bound to 127.0.0.1, which blocks DNS-rebinding pages)."""
    require_demo_stack()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    if samples is None:
        from ..data.folder import embedded_photos
        try:
            samples = sample_catalog(embedded_photos())
        except InpaintsslError:
            samples = {}
    queue = InferenceQueue(inpainter, max_waiting=max_waiting)
    static = static_dir()
    cfg = getattr(inpainter, "cfg", None)

    async def index(request):
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    async def info(request):
        return JSONResponse({
            "model": getattr(inpainter, "name", "model"),
            "preset": cfg.preset if cfg else None,
            "image_size": cfg.model.image_size if cfg else None,
            "predict": cfg.model.predict if cfg else None,
            "device": str(getattr(inpainter, "device", "cpu")),
            "max_upload_bytes": max_upload_bytes,
            "max_waiting": max_waiting,
            "completed": queue.completed,
        })

    async def list_samples(request):
        def describe():
            out = []
            for name, path in samples.items():
                try:
                    with Image.open(path) as im:
                        out.append({"name": name, "file": path.name, "width": im.width, "height": im.height})
                except OSError:
                    continue
            return out
        return JSONResponse(await run_in_threadpool(describe))

    async def get_sample(request):
        name = request.path_params["name"]
        if name not in samples:          # only catalogued names: no path ever comes from the URL
            raise ApiError(404, f"no sample photo named {name!r}; GET /api/samples lists them")
        return FileResponse(samples[name])

    async def inpaint(request):
        t0 = time.perf_counter()
        with queue.slot():
            body = await read_body_capped(request, max_upload_bytes)
            fields = await parse_form(request, body, max_upload_bytes)
            del body
            rgb, hole, name = await run_in_threadpool(decode_request, fields)
            del fields
            try:
                out = await run_in_threadpool(queue.run, rgb, hole)
            except InpaintsslError as e:
                raise ApiError(400, str(e)) from None
            png = await run_in_threadpool(encode_png, out)
        stem = "".join(c for c in Path(name).stem if c.isalnum() or c in "-_")[:80] or "image"
        return Response(png, media_type="image/png", headers={
            "Content-Disposition": f'inline; filename="{stem}-inpainted.png"',
            "Cache-Control": "no-store",
            "X-Hole-Pixels": str(int(hole.sum())),
            "X-Elapsed-Seconds": f"{time.perf_counter() - t0:.3f}",
        })

    async def api_error(request, exc: ApiError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    async def http_error(request, exc: HTTPException):
        return JSONResponse({"error": f"{exc.detail}: {request.method} {request.url.path}"},
                            status_code=exc.status_code)

    async def server_error(request, exc: Exception):
        return JSONResponse({"error": f"internal error ({type(exc).__name__}: {exc}); this is a bug in "
                                      "inpaintssl, please report it"}, status_code=500)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/samples", list_samples),
        Route("/api/samples/{name}", get_sample),
        Route("/api/inpaint", inpaint, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={
        ApiError: api_error, HTTPException: http_error, Exception: server_error})
    app.state.queue = queue
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one. Errors speak to the user."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise InpaintsslError(f"--host {host}: cannot resolve this address ({e.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise InpaintsslError(f"cannot listen on {host}:{port} ({e.strerror}); is another server using "
                              "it? pass another --port (or --port 0 for any free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def _uvicorn_server(app):
    import uvicorn
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))


def serve(app, sock: socket.socket) -> None:
    """Serve ``app`` on an already-bound socket until Ctrl-C / SIGTERM (blocks)."""
    _uvicorn_server(app).run(sockets=[sock])


class ServerThread:
    """Run the app in a background thread (tests, notebooks): ``with ServerThread(app) as url: ...``."""

    def __init__(self, app, host: str = DEFAULT_HOST, port: int = 0):
        self.sock = bind_socket(host, port)
        self.url = url_of(self.sock)
        self.server = _uvicorn_server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the demo server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def run_server(inpainter, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, max_waiting: int = DEFAULT_MAX_QUEUE, echo=print) -> None:
    """What ``inpaintssl serve`` does: bind, print the URL, serve until Ctrl-C."""
    if not max_upload_mb > 0:
        raise InpaintsslError(f"--max-upload-mb {max_upload_mb}: must be > 0")
    if max_waiting < 0:
        raise InpaintsslError(f"--max-queue {max_waiting}: must be >= 0")
    loopback = host in ("127.0.0.1", "localhost", "::1")
    app = create_app(inpainter, int(max_upload_mb * 2**20), max_waiting,
                     allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    sock = bind_socket(host, port)
    if not loopback:
        echo(f"warning: listening on {host}: anyone who can reach this machine can use the demo")
    cfg = getattr(inpainter, "cfg", None)
    what = f"{inpainter.name} ({cfg.preset}, {cfg.model.image_size} px)" if cfg else "model"
    try:
        echo(f"serving {what} at {url_of(sock)}  (Ctrl-C to stop)")
        serve(app, sock)
    except KeyboardInterrupt:          # Ctrl-C before uvicorn took over the signal, or re-raised after it
        pass
    finally:
        sock.close()
