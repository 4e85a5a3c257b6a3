"""An upload, streamed from the request into its analysis's folder as it arrives: the form's few small fields in
memory, the video written straight to the folder and refused the moment it passes the limit. Nothing is spooled
to /tmp, and nothing is read before the route has checked the caller and made room (`JobQueue.reserve`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from central.web.video import VIDEO_SUFFIXES

FIELDS = ("bundle", "box_config")  # what the analysis page sends beside the file
FIELD_BYTES = 256
MAX_PARTS = 10
FORM_OVERHEAD = 64 * 1024  # a multipart body's boundaries, part headers and fields, beyond the file itself


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    name: str = ""  # the file's name as the browser gave it (shown, never used as a path)
    path: Path | None = None  # where it was written
    size: int = 0


class _Form:
    """The parser's callbacks: one part at a time, headers, then data."""

    def __init__(self, folder: Path, limit: int, limit_text: str) -> None:
        self.folder, self.limit, self.limit_text = folder, limit, limit_text
        self.upload = Upload()
        self.parts = 0
        self.header = [b"", b""]
        self.headers: dict[bytes, bytes] = {}
        self.target: str | None = None  # the field being read, or "" for the file
        self.value = bytearray()
        self.pending: list[bytes] = []  # file data parsed, to be written (off the event loop)
        self.file = None

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise HTTPException(400, f"the form has more than {MAX_PARTS} parts")
        self.headers, self.target, self.value = {}, None, bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header[0] += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self.header[1] += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header[0].strip().lower()] = self.header[1].strip()
        self.header = [b"", b""]

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if name not in FIELDS:
                raise HTTPException(400, f"unexpected form field {name[:64]!r}")
            self.target = name
            return
        if name != "file" or self.file is not None:
            raise HTTPException(400, "send one video, in the form field 'file'")
        given = options[b"filename"].decode("utf-8", "replace")
        self.upload.name = Path(given.replace("\\", "/")).name[:200] or "upload"
        suffix = Path(self.upload.name).suffix.lower()
        self.upload.path = self.folder / f"upload{suffix if suffix in VIDEO_SUFFIXES else '.video'}"
        self.file = self.upload.path.open("wb")
        self.target = ""

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.target == "":
            self.upload.size += end - start
            if self.upload.size > self.limit:
                raise HTTPException(413, f"the file is larger than the limit of {self.limit_text}")
            self.pending.append(data[start:end])
        elif self.target is not None:
            self.value += data[start:end]
            if len(self.value) > FIELD_BYTES:
                raise HTTPException(400, f"the form field {self.target!r} is over {FIELD_BYTES} bytes")

    def part_end(self) -> None:
        if self.target:
            self.upload.fields[self.target] = self.value.decode("utf-8", "replace")

    def write_pending(self) -> None:
        if self.pending and self.file is not None:
            self.file.writelines(self.pending)
        self.pending = []


async def receive_upload(request: Request, folder: Path, limit: int, limit_text: str) -> Upload:
    """Read the request's multipart form: the video into `folder`, at most `limit` bytes of it (413 past that)."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise HTTPException(400, "send the video as multipart/form-data")
    form = _Form(folder, limit, limit_text)
    callbacks = {f"on_{name}": getattr(form, name) for name in ("part_begin", "header_field", "header_value",
                 "header_end", "headers_finished", "part_data", "part_end")}  # fmt: skip
    parser = MultipartParser(options[b"boundary"], callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if form.pending:
                await run_in_threadpool(form.write_pending)
        parser.finalize()
        form.write_pending()
    except HTTPException:
        raise
    except ValueError as exc:  # the parser's word on a malformed body
        raise HTTPException(400, f"not a multipart form ({exc})") from None
    finally:
        if form.file is not None:
            form.file.close()
    if form.upload.path is None:
        raise HTTPException(400, "choose a video file to upload")
    return form.upload
