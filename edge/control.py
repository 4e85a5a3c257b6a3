"""Control messages: what central asks of one box, over MQTT (the contract, like the events;
`shelfwatch schema control` prints it).

Central publishes them retained on `shelfwatch/v1/<store>/<box>/control/<name>`, QoS 1: a box that was offline
finds the latest of each when it connects. Only central may publish there (the provisioned ACL lets a box read
its own control topics and write none); a box reads only its own.

- `desired`: the bundle (and config) the box should run, named by the file central serves it as, with its size
  and SHA-256: the box downloads it over HTTPS (`edge.uplink`), checks both, and reports what it did as a
  `control` event.
- `snapshot`: send a picture of the camera's view now (a JPEG, uploaded over HTTPS).

Versions: a message carries `v`. A box refuses a version it does not know with one line in its status (never a
traceback, never a guess); within a version, fields are only ever added as optional ones, and central is
upgraded before the boxes (see the README's upgrade order).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from edge.events import TOPIC_ROOT, Text, Timestamp
from edge.schema import Strict, describe

CONTROL_VERSION = 1
MAX_CONTROL_BYTES = 1024  # like an event: the broker's message limit leaves room for it
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="a file name, no path")]


class _Control(Strict):
    model_config = ConfigDict(allow_inf_nan=False)

    v: Literal[1] = CONTROL_VERSION
    issued: Timestamp = Field(description="when central issued it (UTC)")


class FileRef(Strict):
    """A file central addresses to this box: GET /boxes/<store>/<box>/files/<kind>/<name> (ranges supported)."""

    name: FileName
    size: int = Field(ge=1, le=2**40)
    sha256: Sha256


class Desired(_Control):
    name: Literal["desired"] = "desired"
    bundle: FileRef | None = Field(default=None, description="a bundle as one tar file (kind `bundle`)")
    bundle_id: Text | None = Field(default=None, description="the manifest's bundle id, for the status")
    config: FileRef | None = Field(default=None, description="a box config (kind `config`)")


class SnapshotRequest(_Control):
    name: Literal["snapshot"] = "snapshot"
    request_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]


Control = Annotated[Desired | SnapshotRequest, Field(discriminator="name")]
CONTROL_ADAPTER: TypeAdapter[Control] = TypeAdapter(Control)
CONTROL_NAMES = ("desired", "snapshot")


class UnknownControl(ValueError):
    """A control message this box cannot take: a newer version, an unknown name, or not valid."""


def control_topic(store: str, box: str, name: str) -> str:
    return f"{TOPIC_ROOT}/{store}/{box}/control/{name}"


def encode_control(message: Desired | SnapshotRequest) -> bytes:
    payload = message.model_dump_json(exclude_none=True).encode()
    if len(payload) > MAX_CONTROL_BYTES:
        raise ValueError(f"a {message.name} control message is {len(payload)} bytes, over {MAX_CONTROL_BYTES}")
    return payload


def decode_control(payload: bytes) -> Desired | SnapshotRequest:
    """The message, or UnknownControl with one line saying why (its version is read before anything else)."""
    if len(payload) > MAX_CONTROL_BYTES:
        raise UnknownControl(f"{len(payload)} bytes, over {MAX_CONTROL_BYTES}")
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise UnknownControl("not JSON") from None
    version = raw.get("v") if isinstance(raw, dict) else None
    if version != CONTROL_VERSION:
        raise UnknownControl(f"control version {str(version)[:16]!r}; this agent knows version {CONTROL_VERSION}: "
                             "upgrade the agent")  # fmt: skip
    try:
        return CONTROL_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise UnknownControl(describe(exc)) from None


def control_schema() -> dict:
    schema = CONTROL_ADAPTER.json_schema()
    schema["$id"] = f"https://shelfwatch.dev/schemas/control/v{CONTROL_VERSION}.json"
    schema["title"] = "ShelfWatch control messages (central to one box)"
    return schema
