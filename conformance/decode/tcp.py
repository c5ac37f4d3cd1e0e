"""TCP header facts the observers check before trusting a segment's data offset (RFC 9293 §3.1).

The data offset says where the payload starts; everything between the fixed header and
there must be options. A sender that wants to hide a request from a monitor can point the
offset past it (the receiver it controls agrees): the "options" then do not parse, or the
offset points past the segment. Controls.md decision 10: such a length is not trusted.
"""

from __future__ import annotations

TCP_HEADER = 20
_EOL = 0
_NOP = 1


def tcp_options_end(buf: bytes, pos: int, end: int) -> int:
    """Where the options in buf[pos:end] stop parsing; `end` when every byte is accounted for.

    Options are end-of-list (the rest must be zero padding), no-operation, or kind,
    length (>= 2), data. The first byte that breaks these rules is returned.
    """
    while pos < end:
        kind = buf[pos]
        if kind == _EOL:
            padding = buf[pos + 1 : end]
            return end if not padding.strip(b"\0") else pos
        if kind == _NOP:
            pos += 1
            continue
        if pos + 1 >= end:
            return pos
        length = buf[pos + 1]
        if length < 2 or pos + length > end:
            return pos
        pos += length
    return end
