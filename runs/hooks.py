"""JavaScript hooks in an embedded V8 (mini-racer): one isolate per run, limits per call.

    with V8HookRunner(scripts_of(document)) as hooks:
        report = execute(document, flow, hooks=hooks, ...)

`scripts` maps a script's lineage id to `{"name", "function", "code"}`: the code defines
`function <function>(options) {...}`. Each script is compiled once, inside its own
function scope (two scripts may both define `preSavePage`), on one line with the wrapper
so the script's line numbers are the ones V8 reports. A call passes `options` in, gets the
result back as JSON, and turns every way a script can fail into `HookError(message,
line)`: a thrown error (with its line), a syntax error (at compile, reported on every call
of that script), a missing function, the time limit (V8 terminates the script), the memory
limit (the isolate is rebuilt, so the next page starts clean).

Scripts get plain V8: no `require`, `fetch`, `process`, timers, network or files.
(`console` is V8's own and writes nowhere a user sees.)
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from runs.engine import HookError

__all__ = ["HookError", "V8HookRunner"]

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
# "ilm-script-2:3: TypeError: x is undefined\n  source line\n  ^^^\n...": each chunk is named
# by a sourceURL comment, so a line is reported only when it is the script's own.
_V8_ERROR = re.compile(r"^([\w<>.-]+):(\d+): (.*)$", re.MULTILINE)

# mini-racer adds timers to plain V8 (not deletable, but writable); a hook is called once
# and returns, so they go.
_PRELUDE = """
setTimeout = undefined; clearTimeout = undefined; __timer_manager = undefined;
var __ilm_hooks = Object.create(null);
var __ilm_page = null;
function __ilm_call(lid) {
  var json = __ilm_page;
  __ilm_page = null;
  var result = __ilm_hooks[lid](JSON.parse(json));
  return result === undefined ? null : JSON.stringify(result);
}
//# sourceURL=ilm-prelude
"""


class V8HookRunner:
    """Calls hook functions of the given scripts in one V8 isolate (a context manager)."""

    def __init__(
        self,
        scripts: Mapping[str, Mapping[str, str]],
        *,
        time_limit_ms: int = 1000,
        memory_limit_mb: int = 64,
    ) -> None:
        self.scripts = {str(k): dict(v) for k, v in scripts.items()}
        self.time_limit_ms = time_limit_ms
        self.memory_limit_mb = memory_limit_mb
        self._ctx: Any = None
        self._broken: dict[str, HookError] = {}
        self._chunks: dict[str, str] = {}
        self._calls: dict[str, str] = {}
        self._global: Any = None

    def __enter__(self) -> V8HookRunner:
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ctx is not None:
            self._global = None
            self._ctx.close()
            self._ctx = None

    def _start(self) -> None:
        from py_mini_racer import JSEvalException, MiniRacer

        self.close()
        ctx = _new_isolate(MiniRacer)
        ctx.set_hard_memory_limit(self.memory_limit_mb * 1024 * 1024)
        ctx.eval(_PRELUDE)
        self._broken = {}
        self._chunks = {lid: _chunk(n) for n, lid in enumerate(self.scripts)}
        for n, (lid, script) in enumerate(self.scripts.items()):
            name = script.get("name") or lid
            function = script.get("function") or ""
            if not _IDENTIFIER.match(function):
                self._broken[lid] = HookError(
                    f"Script {name!r}: {function!r} is not a JavaScript function name."
                )
                continue
            key = json.dumps(lid)
            # The wrapper's head shares the script's first line: line numbers stay the script's.
            source = (
                f"__ilm_hooks[{key}] = (function () {{ {script.get('code') or ''}\n"
                f";return typeof {function} === 'function' ? {function} : undefined; }})();"
                f"\n//# sourceURL={_chunk(n)}"
            )
            try:
                ctx.eval(source, timeout_sec=self.time_limit_ms / 1000)
            except JSEvalException as exc:
                # a syntax error is reported before V8 reads the chunk's sourceURL
                message, line = _describe(exc, _chunk(n), "<anonymous>")
                self._broken[lid] = HookError(f"Script {name!r} does not load: {message}", line)
                continue
            if ctx.eval(f"typeof __ilm_hooks[{key}]") != "function":
                self._broken[lid] = HookError(f"Script {name!r} has no function {function}().")
        self._calls = {lid: f"__ilm_call({json.dumps(lid)})" for lid in self.scripts}
        self._global = ctx.eval("globalThis")
        self._ctx = ctx

    def call(self, script_lineage_id: str, options: dict[str, Any]) -> Any:
        """Call the script's function with `options`; its return value as plain JSON data."""
        from py_mini_racer import JSEvalException, JSOOMException, JSTimeoutException

        lid = str(script_lineage_id)
        if lid not in self.scripts:
            raise HookError(f"Script {lid} is not in this integration.")
        if lid in self._broken:
            raise self._broken[lid]
        if self._ctx is None:
            self._start()
        name = self.scripts[lid].get("name") or lid
        try:
            payload = orjson.dumps(options).decode()
        except TypeError as exc:
            raise HookError(f"Script {name!r}: the records are not JSON ({exc}).") from None
        try:
            # The page goes in as a string that V8 parses with JSON.parse, set on a global:
            # not as JavaScript source (mini-racer's call() and an eval write it so), which
            # V8 compiles and keeps in its compilation cache, a new script per page, until a
            # long run passes the memory limit on perfectly small pages. The call is then an
            # eval of the same short source for every page of a script (compiled once):
            # mini-racer's function call costs four more round trips to V8's thread per call
            # (its argument array is built an element at a time), a quarter of a hook's time
            # on pages of 100 records (make bench, fig 8).
            self._global["__ilm_page"] = payload
            out = self._ctx.eval(self._calls[lid], timeout_sec=self.time_limit_ms / 1000)
        except JSTimeoutException:
            raise HookError(
                f"Script {name!r} ran past its time limit of {self.time_limit_ms} ms."
            ) from None
        except JSEvalException as exc:
            # a function call that V8 stops at the memory limit comes back as a plain
            # evaluation error; the isolate knows which it was
            if (
                not isinstance(exc, JSOOMException)
                and not self._ctx.was_hard_memory_limit_reached()
            ):
                message, line = _describe(exc, self._chunks[lid])
                raise HookError(message, line) from None
            # The heap may still hold what the script piled up: start the next page clean.
            self._start()
            raise HookError(
                f"Script {name!r} used more than its memory limit of {self.memory_limit_mb} MB."
            ) from None
        return None if out is None else orjson.loads(out)


def _chunk(n: int) -> str:
    return f"ilm-script-{n}"


def _describe(exc: Exception, *chunks: str) -> tuple[str, int | None]:
    """V8's message, and the line when V8 places the error in the script (`chunks`)."""
    text = str(exc).strip()
    m = _V8_ERROR.search(text)
    if m is None:
        return (text.splitlines()[0] if text else type(exc).__name__), None
    message = m.group(3).strip()
    if message.startswith("Uncaught "):
        message = message[len("Uncaught ") :]
    return message, int(m.group(2)) if m.group(1) in chunks else None


def _new_isolate(factory: Callable[[], Any]) -> Any:
    """A MiniRacer that runs on a loop thread of its own.

    mini-racer binds an isolate to the asyncio loop running where it is made, if any, and
    then refuses time limits on that loop's thread (it would have to block its own loop).
    A loop may well be running in the caller's thread (an ASGI server, Playwright's sync
    API in the browser tests): it is set aside while the isolate is made, so the isolate
    starts its own loop thread exactly as it does where no loop runs.
    """
    running = asyncio._get_running_loop()
    if running is None:
        return factory()
    asyncio._set_running_loop(None)
    try:
        return factory()
    finally:
        asyncio._set_running_loop(running)
