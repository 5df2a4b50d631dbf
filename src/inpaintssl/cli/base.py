"""The ``inpaintssl`` command group and its error handling, shared by every command module."""

from __future__ import annotations

import click

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
