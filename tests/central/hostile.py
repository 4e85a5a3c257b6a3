"""What an attacker sends, and how the server is measured while it does: raw HTTP requests (a chunked body of
any size, streamed from a generator, so that the test itself holds none of it) and a process's peak memory and
bytes written, read from /proc."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

MB = 1_000_000


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the server took before it answered or closed


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        if not got:
            raise ConnectionError(f"the server closed the connection without an answer ({data[:200]!r})")
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers.setdefault(key.strip().lower(), value.strip())
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        try:
            got = sock.recv(65536)
        except ConnectionResetError:  # the answer came, then the reset of a server that stopped reading our body
            break
        if not got:
            break
        body += got
    return int(lines[0].split()[1]), headers, body


def request(url: str, method: str, path: str, headers: dict[str, str], body: Iterator[bytes] | bytes = b"",
            chunked: bool = True) -> Answer:  # fmt: skip
    """Send one request on a fresh connection, the body from another thread (so that a server that answers before
    reading it is heard), and return the answer. A body given as bytes with chunked=False gets a Content-Length."""
    where = urlparse(url)
    sock = socket.create_connection((where.hostname, where.port), timeout=60)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {where.netloc}", "Connection: close"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif isinstance(body, bytes):
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    sent = [0]

    def send() -> None:
        try:
            for piece in [body] if isinstance(body, bytes) else body:
                if not piece:
                    continue
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent[0] += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed: it wants no more
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        status, answer_headers, answer_body = _read_answer(sock)
    finally:
        sock.close()
        sender.join(60)
    return Answer(status, answer_headers, answer_body, sent[0])


def filler(total: int, head: bytes = b"", piece: int = 1 << 20) -> Iterator[bytes]:
    """`head`, then `total` bytes of 'a' in pieces: an endless-looking body that costs the sender nothing."""
    yield head
    block = b"a" * piece
    left = total
    while left > 0:
        yield block[: min(piece, left)]
        left -= piece


def multipart(boundary: str, fields: dict[str, str], file_field: str | None = None, file_bytes: int = 0,
              file_name: str = "clip.mp4", file_head: bytes = b"") -> Iterator[bytes]:  # fmt: skip
    """A multipart/form-data body, streamed: the fields, then (optionally) a file of `file_bytes` bytes."""
    for name, value in fields.items():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    if file_field is not None:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{file_name}"\r\n'
               "Content-Type: video/mp4\r\n\r\n").encode()  # fmt: skip
        yield from filler(file_bytes - len(file_head), file_head)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


class Meter:
    """A process's peak resident memory (VmHWM) and the bytes it has written through write() (wchar: files,
    pipes and sockets alike), from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def peak_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM")

    def written_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
        raise RuntimeError("no wchar")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
