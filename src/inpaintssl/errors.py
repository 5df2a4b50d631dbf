"""The one exception type for problems the user can fix (bad input, wrong flags, missing files).

The CLI turns an :class:`InpaintsslError` into a single line on stderr and a non-zero exit, with no
traceback; anything else that escapes is a bug in inpaintssl and keeps its traceback.

    raise InpaintsslError(f"{path}: not an image file (cannot identify image); pass a JPEG/PNG/WebP photo")
"""


class InpaintsslError(Exception):
    """A user-facing error: the message says which file or option is wrong and what to do."""


class NonFiniteLossError(InpaintsslError):
    """A training loss became NaN or infinite (inpainting training, or a fine-tuning learning rate too high)."""
