"""LLB built in Python: a filesystem made of inline files, as one FileOp on scratch.

What BuildKit's Go client (client/llb: `llb.Scratch().File(llb.Mkdir(…).Mkfile(…))`) marshals:
each op serialized deterministically and named by the sha256 of its bytes; the chain's actions
refer to the one before (an action's input is `number of op inputs + its index`; -1 is scratch),
only the last writes the op's output; a final op with no body names the result. The files' data
travels inside the definition, so a solve of it needs no session (no filesync upload).
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from .client import Api

SKIP_OUTPUT = -1  # pb.SkipOutput: an action whose result only the next action sees


@dataclass(frozen=True, kw_only=True)
class InlineFile:
    path: str  # absolute, inside the result
    data: bytes
    mode: int = 0o644


def inline_files(api: Api, files: tuple[InlineFile, ...], *, timestamp_ns: int = 0) -> Any:
    """A pb.Definition whose result is scratch with `files` (their parent directories made
    0755), every file and directory dated `timestamp_ns` (so the layer does not depend on when
    it was built)."""
    if not files:
        raise ConfigurationError("an inline-file LLB needs at least one file")
    file_action = api.message("pb.FileAction")
    actions: list[Any] = []
    made: set[str] = {"/"}
    for item in files:
        path = posixpath.normpath(item.path)
        if not path.startswith("/") or "\0" in path or path == "/" or path.startswith("//"):
            raise ConfigurationError(f"inline file {item.path!r}: give an absolute path below /")
        parent = posixpath.dirname(path)
        if parent not in made:
            made.update(_parents(parent))
            actions.append(file_action(mkdir=api.message("pb.FileActionMkDir")(
                path=parent, mode=0o755, makeParents=True, timestamp=timestamp_ns)))
        actions.append(file_action(mkfile=api.message("pb.FileActionMkFile")(
            path=path, mode=item.mode & 0o7777, data=item.data, timestamp=timestamp_ns)))
    for index, action in enumerate(actions):
        # no op inputs: the first starts from scratch, each next one from the action before it
        action.input = -1 if index == 0 else index - 1
        action.secondaryInput = -1
        action.output = 0 if index == len(actions) - 1 else SKIP_OUTPUT
    op = api.message("pb.Op")(file=api.message("pb.FileOp")(actions=actions))
    return definition(api, [op])


def definition(api: Api, ops: list[Any]) -> Any:
    """pb.Definition of `ops` (each one's inputs among those before it); the last is the result."""
    serialized = [op.SerializeToString(deterministic=True) for op in ops]
    result = api.message("pb.Op")(inputs=[api.message("pb.Input")(digest=digest(serialized[-1]), index=0)])
    serialized.append(result.SerializeToString(deterministic=True))
    # Every op has metadata, if empty: a definition given to a frontend as an input is refused
    # without (client/llb.DefinitionOp.Validate). `def` is a Python keyword: set by name.
    metadata = {digest(op): api.message("pb.OpMetadata")() for op in serialized}
    return api.message("pb.Definition")(**{"def": serialized, "metadata": metadata})


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _parents(directory: str) -> list[str]:
    out = []
    while directory not in ("/", ""):
        out.append(directory)
        directory = posixpath.dirname(directory)
    return out
