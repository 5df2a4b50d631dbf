"""The ``inpaintssl`` command group, its error handling and the option types every command shares.

* :class:`SuggestChoice`  a ``click.Choice`` that adds "did you mean 'm1'?" to a near miss;
* :class:`DeviceType`     ``--device``: auto, cpu, cuda or cuda:N; CUDA asked for where there is none is
  one ``Error:`` line naming ``--device cpu`` (exit 1), a malformed name a usage error (exit 2);
* :func:`preset_option`, :func:`device_option`, :func:`progress_option`: the same flag everywhere;
* :func:`check_overrides`: a malformed ``--set`` is a usage error (exit 2) before any work starts.
"""

from __future__ import annotations

import difflib
import re

import click

from ..config import apply_overrides

from ..presets import PRESETS, get_preset
from ..errors import InpaintsslError


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InpaintsslError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            raise click.Abort() from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="inpaintssl")
def cli():
    """Self-supervised learning by image inpainting (context-encoder GAN, its ablations, transfer)."""


def echo_err(msg: str) -> None:
    click.echo(msg, err=True)


def did_you_mean(value: str, choices) -> str:
    """"; did you mean 'm1'?" for a near miss of one of ``choices``, else ''."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class SuggestChoice(click.Choice):
    """``click.Choice`` whose error for a near miss ends with "did you mean ...?" (exit 2)."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as e:
            raise click.BadParameter(e.message.rstrip(".") + did_you_mean(value, self.choices), ctx=ctx,
                                     param=param) from None


DEVICES = ("auto", "cpu", "cuda", "cuda:N")


class DeviceType(click.ParamType):
    """auto, cpu, cuda or cuda:N. A malformed name is a usage error (exit 2, with "did you mean"); a CUDA
    device where this machine has none (or fewer) is an :class:`InpaintsslError` naming ``--device cpu``."""

    name = "device"

    def get_metavar(self, param, ctx=None):
        return "[auto|cpu|cuda|cuda:N]"

    def convert(self, value, param, ctx):
        text = str(value).strip().lower()
        if text not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", text):
            gpu = re.fullmatch(r"gpu(:\d+)?", text)                  # what other tools call it
            hint = f"; did you mean 'cuda{gpu.group(1) or ''}'?" if gpu else did_you_mean(text, DEVICES[:3])
            self.fail(f"{value!r}: choose auto, cpu, cuda or cuda:N (N = GPU index){hint}", param, ctx)
        if text.startswith("cuda"):
            check_cuda(text)
        return text


def check_cuda(device: str, flag: str = "--device") -> None:
    """Raise a one-line :class:`InpaintsslError` when ``device`` (cuda or cuda:N) does not exist here."""
    import torch
    if not torch.cuda.is_available():
        raise InpaintsslError(f"{flag} {device}: CUDA is not available on this machine "
                              f"(torch {torch.__version__}); use {flag} cpu or {flag} auto")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise InpaintsslError(f"{flag} {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                              f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); use one of them or {flag} cpu")


def device_option(default: str | None = "auto", help: str = "auto (CUDA when available), cpu, cuda or cuda:N"):
    return click.option("--device", type=DeviceType(), default=default, show_default=default is not None, help=help)


def preset_option(default: str | None = None, help: str = "preset (see 'inpaintssl presets')", **kw):
    return click.option("--preset", type=SuggestChoice(list(PRESETS)), default=default,
                        show_default=default is not None, help=help, **kw)


def progress_option(help: str = "no progress bar (log lines instead, for nohup and CI)"):
    return click.option("--no-progress", is_flag=True, help=help)


def check_overrides(overrides, param_hint: str = "--set") -> None:
    """A malformed, unknown or mistyped ``--set`` is a usage error (exit 2), found before any work."""
    try:
        apply_overrides(get_preset("smoke"), overrides)       # every preset has the same sections and keys
    except InpaintsslError as e:
        raise click.BadParameter(str(e).removeprefix("--set "), param_hint=param_hint) from None
