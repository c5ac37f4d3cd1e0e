"""Errors raised by the payload decoders."""

from __future__ import annotations


class DecodeError(ValueError):
    """A malformed payload: the message says what is wrong and at which byte offset.

    Not a `ConformanceError`: a bad packet is evidence, not a user mistake. Callers
    count it as an anomaly and go on.
    """

    def __init__(self, what: str, offset: int) -> None:
        self.what = what
        self.offset = offset
        super().__init__(f"{what} at offset {offset}")
