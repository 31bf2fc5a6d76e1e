"""Spotting, while a JSON answer streams in, a list item that repeats an earlier item of its list.

A greedy decoder that repeats an item has usually started a loop it will not leave before the token
limit (``"Morishima", "Morishima", ...``). The decoder ends the list there instead: it cuts the answer
where :meth:`ListRepeats.feed` says and closes the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_SPACE = b" \t\r\n"


@dataclass
class _List:
    items: set[bytes] = field(default_factory=set)
    start: int | None = None  # of the item being read
    separator: int | None = None  # offset of the last ``,`` between items


class ListRepeats:
    """Reads an answer's bytes as they come; the byte structure of JSON is ASCII, so UTF-8 text split
    anywhere reads the same."""

    def __init__(self) -> None:
        self.text = bytearray()
        self._stack: list[_List | None] = []  # None: an object
        self._in_string = self._escaped = False

    def feed(self, data: bytes) -> int | None:
        """Reads ``data``; when it completes an item equal to an earlier one of the same list, returns the
        offset where the answer should end (just after the previous item) for ``]`` to close the list.
        Reading goes on past a repeat, for an answer that keeps it (a grammar that will not end the list)."""
        cut = None
        for byte in data:
            at = len(self.text)
            self.text.append(byte)
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif byte == 0x5C:  # backslash
                    self._escaped = True
                elif byte == 0x22:  # "
                    self._in_string = False
                continue
            top = self._stack[-1] if self._stack else None
            if top is not None and top.start is None and byte not in _SPACE and byte not in b",]":
                top.start = at
            if byte == 0x22:
                self._in_string = True
            elif byte in b"[{":
                self._stack.append(_List() if byte == 0x5B else None)
            elif byte == 0x7D and self._stack:  # }
                self._stack.pop()
            elif (byte == 0x2C or byte == 0x5D) and top is not None:  # , or ] ends an item of this list
                if top.start is not None:
                    item = bytes(self.text[top.start:at]).strip(_SPACE)
                    if item in top.items:
                        cut = top.separator if cut is None else cut
                    top.items.add(item)
                top.start, top.separator = None, at
                if byte == 0x5D:
                    self._stack.pop()
        return cut
