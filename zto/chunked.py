"""HTTP/1.1's chunked transfer coding, decoded incrementally: bytes in, body bytes out.

Pure code, no I/O. ``ChunkedDecoder.feed`` takes what one network read returned, cut
anywhere (inside a size line, a chunk or its CRLF), and returns all the body bytes it
completes, however many chunks that spans; ``done`` turns true after the last chunk
(size 0) and its trailer section. Chunk extensions (``;name=value``) and trailer
fields are skipped. Malformed framing raises ``ValueError``.

``http.StreamedBody`` reads an upstream answer with it: one read of whatever arrived
yields every event that arrived, where urllib3's reader yields one chunk per call
(a Z.ai answer sends each event as a chunk of its own).
"""

from __future__ import annotations

MAX_LINE = 4096  # a size line or trailer field longer than this is not HTTP

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    def __init__(self) -> None:
        self._state = _SIZE
        self._left = 0  # bytes of the current chunk still to come
        self._pending = b""  # an incomplete line

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        if self._pending:
            data, self._pending = self._pending + data, b""
        out = []
        pos, end = 0, len(data)
        state, left = self._state, self._left
        while pos < end and state != _DONE:
            if state == _DATA:
                take = min(left, end - pos)
                out.append(data[pos:pos + take])
                pos += take
                left -= take
                if not left:
                    state = _DATA_END
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                if end - pos > MAX_LINE:
                    raise ValueError("chunked body: a line too long")
                self._pending = data[pos:]
                break
            line = data[pos:newline].rstrip(b"\r")
            pos = newline + 1
            if state == _SIZE:
                left = _chunk_size(line)
                if not left:
                    state = _TRAILER
                    continue
                stop = pos + left
                if data[stop:stop + 2] == b"\r\n":  # the whole chunk is here: one turn, not three
                    out.append(data[pos:stop])
                    pos, left = stop + 2, 0
                else:
                    state = _DATA
            elif state == _DATA_END:
                if line:
                    raise ValueError("chunked body: a chunk longer than its size")
                state = _SIZE
            elif not line:  # _TRAILER: the blank line ends the body
                state = _DONE
        self._state, self._left = state, left
        return out[0] if len(out) == 1 else b"".join(out)


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 16 or digits.lstrip(b"0123456789abcdefABCDEF"):
        raise ValueError(f"chunked body: a bad chunk size {line[:40]!r}")
    return int(digits, 16)
