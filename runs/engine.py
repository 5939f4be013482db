"""Executes one flow of a canonical document over pages of records. Pure Python, no Django.

    report = execute(document, flow_lineage_id, transport=..., hooks=..., caches=...,
                     credentials=...)

`document` is what `revisions.document.document_of` returns: `{"integration": {...},
"resources": {lineage_id: {"type", "name", ...}}}`, references written as lineage ids.
So today's flow, a snapshot and a pull's merged result all run the same way. The flow's
steps (resources of type "step" whose `flow` is the flow) run in `position` order over
pages of records; each record travels with its index in the run's input, so an error
names the record that failed:

- export (first step only): reads pages over HTTP (`paging`: `next_url`, `page`, none).
  Skipped when `records` are given (a test run, a retry).
- lookup: `mappings` with `lookup_cache` translate `source` through the cache into
  `target`; without, copy `source` to `target`; with a `path` (and a connection), one GET
  per record whose body goes to `target`.
- transform: `mappings` build each output record (no mappings: records pass unchanged).
- import: `mappings` as in transform when given, then sends in batches of `batch_size`
  (1: the body is the record; N: a JSON array). In test mode nothing is sent: what
  would be sent goes to `report.output`, and each of those records' input index to
  `report.output_indexes` (so two runs of the same records compare record by record).

Hooks (`config.hooks`: {hook name: script lineage id}) run once per page per step in the
order preMap → the step's mapping work → postMap → preSavePage → the import's send →
postSubmit; on an export, all run after the page is read. A hook gets `{data, errors,
settings}` (settings: the step's `config.settings`) and returns the records, or `{data,
errors}` where an error `{index, message}` fails that record. A hook that throws fails
the page's records at that step; one whose records change in number loses their indexes
(its later errors name record -1).

HTTP: one `httpx.Client` per run. 429, 5xx and connection errors are retried up to the
connection's `retry.max_attempts` (every attempt counted and timed into the step's
histogram) with exponential backoff and jitter, or what `Retry-After` says. Other 4xx fail
the record (or batch) with the status and a body excerpt, and the run goes on. An export
that fails, a flow that cannot run, or paging that does not end fails the whole run.

Status: succeeded (no errors), partial (some records failed), failed (nothing got through
or a whole-run problem), canceled (`should_cancel()` said so between pages).
"""

from __future__ import annotations

import copy
import email.utils
import random as _random
import re
import ssl
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import httpx
import orjson

from runs import histogram
from runs.mapping import MappingSpec, compile_mappings, json_copy
from runs.report import RunErrorReport, RunReport, StepReport

STEP_KINDS = ("export", "lookup", "transform", "import")
HOOK_NAMES = ("preMap", "postMap", "preSavePage", "postSubmit")
PAGE_SIZE = 100  # records per page when the records are given rather than read
EXCERPT_CHARS = 500
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_ATTEMPTS = 3
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 120.0  # a server asking for longer is not waited for by a worker


class BlockedURL(Exception):
    """A request target the run may not reach (raised by the `url_guard`)."""


class HookError(Exception):
    """A hook that threw, ran past its limits or is missing; `line` is the script's line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class FlowProblem(Exception):
    """Something that fails the whole run (not one record)."""

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        kind: str = "",
        http_status: int | None = None,
        excerpt: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.kind = kind
        self.http_status = http_status
        self.excerpt = excerpt


# --- dotted paths ------------------------------------------------------------------------

_MISSING: Any = object()
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@lru_cache(maxsize=4096)
def parse_path(path: str) -> tuple[str | int, ...]:
    """`a.b[0].c` → ("a", "b", 0, "c"). An empty path is the value itself."""
    if not path:
        return ()
    parts: list[str | int] = []
    pos = 0
    for m in _SEGMENT.finditer(path):
        gap = path[pos : m.start()]
        if gap not in ("", ".") or (gap == "." and pos == 0):
            raise ValueError(f"Bad path {path!r}.")
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if pos != len(path) or not parts:
        raise ValueError(f"Bad path {path!r}.")
    return tuple(parts)


def get_path(obj: Any, path: str | tuple[str | int, ...], default: Any = _MISSING) -> Any:
    """The value at `path` in `obj`, or `default` (a missing key, index or a non-container)."""
    keys = parse_path(path) if isinstance(path, str) else path
    for key in keys:
        if isinstance(key, int):
            if isinstance(obj, list) and -len(obj) <= key < len(obj):
                obj = obj[key]
                continue
            return default
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
            continue
        return default
    return obj


def set_path(obj: Any, path: str | tuple[str | int, ...], value: Any) -> Any:
    """Set `value` at `path` inside `obj` (in place), creating objects and lists on the way.

    Returns the (possibly new) root: an empty path replaces the root with `value`.
    A container of the wrong kind on the way is replaced.
    """
    keys = parse_path(path) if isinstance(path, str) else path
    if not keys:
        return value
    root = obj
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        nxt = None if last else keys[i + 1]
        if isinstance(key, int):
            while len(obj) <= key:
                obj.append(None)
            if last:
                obj[key] = value
                break
            child = obj[key]
        else:
            if last:
                obj[key] = value
                break
            child = obj.get(key)
        want_list = isinstance(nxt, int)
        if not isinstance(child, list if want_list else dict):
            child = [] if want_list else {}
            obj[key] = child
        obj = child
    return root


def missing(value: Any) -> bool:
    return value is _MISSING


# --- the plan: what the document says to run ----------------------------------------------


@dataclass
class _Step:
    lineage_id: str
    name: str
    kind: str
    config: dict[str, Any]
    connection: dict[str, Any] | None
    connection_id: str | None
    hooks: dict[str, str]
    mappings: list[MappingSpec]
    report: StepReport
    # the mappings as one function (runs.mapping): builds a record, or adds to a lookup's
    apply: Callable[[Any], Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    timeout: httpx.Timeout | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


def scripts_of(document: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The document's scripts as `V8HookRunner` takes them: {lineage: {name, function, code}}."""
    return {
        lid: {
            "name": body.get("name", ""),
            "function": body.get("function", ""),
            "code": body.get("code", ""),
        }
        for lid, body in document.get("resources", {}).items()
        if body.get("type") == "script"
    }


def _plan(
    document: Mapping[str, Any],
    flow_lineage_id: str,
    caches: Mapping[str, Mapping[str, Any]],
    credentials: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Any], list[_Step]]:
    resources = document.get("resources") or {}
    flow_id = str(flow_lineage_id)
    flow = resources.get(flow_id)
    if not flow or flow.get("type") != "flow":
        raise FlowProblem(f"The flow {flow_id} is not in this integration.")
    if not flow.get("enabled", True):
        raise FlowProblem(f"The flow {flow.get('name', flow_id)!r} is disabled.")
    rows = sorted(
        (
            (body.get("position") or 0, body.get("name") or "", lid, body)
            for lid, body in resources.items()
            if body.get("type") == "step" and str(body.get("flow")) == flow_id
        ),
        key=lambda r: r[:3],
    )
    if not rows:
        raise FlowProblem(f"The flow {flow.get('name', flow_id)!r} has no steps.")
    steps: list[_Step] = []
    for n, (_, name, lid, body) in enumerate(rows):
        kind = body.get("kind")
        config = body.get("config") or {}
        label = f"Step {name!r}"
        if kind not in STEP_KINDS:
            raise FlowProblem(f"{label} has kind {kind!r}; the runtime runs {STEP_KINDS}.")
        if kind == "export" and n != 0:
            raise FlowProblem(f"{label}: an export can only be a flow's first step.")
        if not isinstance(config, dict):
            raise FlowProblem(f"{label}: config must be an object.")
        hooks = config.get("hooks") or {}
        if not isinstance(hooks, dict) or any(h not in HOOK_NAMES for h in hooks):
            raise FlowProblem(f"{label}: hooks must be an object with keys among {HOOK_NAMES}.")
        step = _Step(
            lineage_id=lid,
            name=name,
            kind=kind,
            config=config,
            connection=None,
            connection_id=None,
            hooks={h: str(s) for h, s in hooks.items() if s},
            mappings=_mappings(label, config, resources, caches),
            report=StepReport(lineage_id=lid, name=name, kind=kind, histogram=histogram.empty()),
        )
        if step.mappings:
            step.apply = compile_mappings(step.mappings, build=kind != "lookup", missing=_MISSING)
        needs_http = kind in ("export", "import") or (kind == "lookup" and config.get("path"))
        conn_id = body.get("connection")
        if needs_http:
            if not conn_id:
                raise FlowProblem(f"{label} needs a connection.")
            _connect(step, label, str(conn_id), resources, credentials)
        steps.append(step)
    return flow, steps


def _mappings(
    label: str,
    config: dict[str, Any],
    resources: Mapping[str, Any],
    caches: Mapping[str, Mapping[str, Any]],
) -> list[MappingSpec]:
    out = []
    raw = config.get("mappings") or []
    if not isinstance(raw, list):
        raise FlowProblem(f"{label}: mappings must be a list.")
    for i, m in enumerate(raw, start=1):
        try:
            source, target = parse_path(m["source"]), parse_path(m["target"])
        except (KeyError, TypeError, ValueError):
            raise FlowProblem(f"{label}: mapping {i} needs a source and a target path.") from None
        cache_id = str(m["lookup_cache"]) if m.get("lookup_cache") else None
        cache_name = ""
        if cache_id:
            cache_name = (resources.get(cache_id) or {}).get("name") or cache_id
        out.append(
            MappingSpec(
                source=source,
                target=target,
                cache=caches.get(cache_id, {}) if cache_id else None,
                source_text=m["source"],
                cache_name=cache_name,
            )
        )
    return out


def _connect(
    step: _Step,
    label: str,
    conn_id: str,
    resources: Mapping[str, Any],
    credentials: Mapping[str, Mapping[str, Any]],
) -> None:
    conn = resources.get(conn_id)
    if not conn or conn.get("type") != "connection":
        raise FlowProblem(f"{label}: its connection is not in this integration.")
    cname = conn.get("name", conn_id)
    if conn.get("kind") != "http":
        raise FlowProblem(
            f"Connection {cname!r} is of kind {conn.get('kind')!r}; the runtime speaks http."
        )
    cfg = conn.get("config") or {}
    if not cfg.get("base_url"):
        raise FlowProblem(f"Connection {cname!r} has no base_url.")
    headers = {str(k): str(v) for k, v in (cfg.get("headers") or {}).items()}
    auth = cfg.get("auth") or {"type": "none"}
    secret = credentials.get(conn_id) or {}
    kind = auth.get("type", "none")
    basic = None
    if kind == "bearer":
        if not secret.get("token"):
            raise FlowProblem(f"Connection {cname!r} uses bearer auth but has no token.")
        headers["Authorization"] = f"Bearer {secret['token']}"
    elif kind == "basic":
        if not secret.get("username"):
            raise FlowProblem(f"Connection {cname!r} uses basic auth but has no username.")
        basic = (str(secret["username"]), str(secret.get("password", "")))
    elif kind == "header":
        if not auth.get("header") or secret.get("value") in (None, ""):
            raise FlowProblem(
                f"Connection {cname!r} uses header auth; it needs auth.header and a value."
            )
        headers[str(auth["header"])] = str(secret["value"])
    elif kind != "none":
        raise FlowProblem(f"Connection {cname!r} has unknown auth type {kind!r}.")
    try:
        timeout_s = float(cfg.get("timeout_s") or DEFAULT_TIMEOUT_S)
        attempts = int((cfg.get("retry") or {}).get("max_attempts") or DEFAULT_MAX_ATTEMPTS)
    except (TypeError, ValueError):
        raise FlowProblem(
            f"Connection {cname!r}: timeout_s and retry.max_attempts are numbers."
        ) from None
    step.connection = cfg
    step.connection_id = conn_id
    step.headers = headers
    step.auth = basic
    step.timeout = httpx.Timeout(timeout_s)
    step.max_attempts = max(1, attempts)


# --- HTTP ---------------------------------------------------------------------------------


class _CallFailed(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None, excerpt: str = ""):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.excerpt = excerpt


def _excerpt(response: httpx.Response) -> str:
    try:
        text = response.text
    except Exception:  # an undecodable body still gets reported
        text = repr(response.content[:EXCERPT_CHARS])
    return text[:EXCERPT_CHARS]


def _retry_after(response: httpx.Response | None) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def backoff_s(attempt: int, rand: Callable[[], float]) -> float:
    """Wait before attempt `attempt + 1`: exponential, with jitter of ±50 %."""
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1)) * (0.5 + rand())


def _url(step: _Step, path: str) -> str:
    if path.startswith(("http://", "https://")):
        return path
    base = step.connection["base_url"]  # type: ignore[index]
    if not path:
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


_PLACEHOLDER = re.compile(r"\{record\.([^{}]+)\}")


def _fill(path: str, record: Any) -> str:
    """`/orders/{record.id}` → `/orders/42` (values URL-quoted); KeyError when one is missing."""

    def one(m: re.Match[str]) -> str:
        value = get_path(record, m.group(1))
        if missing(value) or value is None:
            raise KeyError(m.group(1))
        return quote(str(value), safe="")

    return _PLACEHOLDER.sub(one, path)


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# --- the run ------------------------------------------------------------------------------


class _Run:
    def __init__(self, *, report: RunReport, client: httpx.Client, **kw: Any) -> None:
        self.report = report
        self.client = client
        self.mode: str = kw["mode"]
        self.hooks = kw["hooks"]
        self.clock: Callable[[], float] = kw["clock"]
        self.sleep: Callable[[float], None] = kw["sleep"]
        self.rand: Callable[[], float] = kw["rand"]
        self.url_guard = kw["url_guard"]
        self.max_errors: int = kw["max_errors"]
        self.max_pages: int = kw["max_pages"]
        self.on_passed: Callable[[str, list[Any]], None] | None = kw.get("on_passed")
        self.watch: frozenset[str] = frozenset(kw.get("watch_steps") or ())
        self.outputs: dict[str, dict[str, Any]] = {}
        # the current step's input records by index: an error's retry data
        self.step_inputs: dict[int, Any] = {}

    # errors

    def fail(
        self,
        step: _Step,
        index: int,
        record: Any,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        excerpt: str = "",
        line: int | None = None,
    ) -> None:
        self.report.error_count += 1
        step.report.errors += 1
        if len(self.report.errors) < self.max_errors:
            self.report.errors.append(
                RunErrorReport(
                    step=step.lineage_id,
                    record_index=index,
                    kind=kind,  # type: ignore[arg-type]
                    message=message,
                    http_status=status,
                    record=record,
                    response_excerpt=excerpt,
                    script_line=line,
                    retry_record=self.step_inputs.get(index) if index >= 0 else None,
                )
            )

    # HTTP

    def call(
        self,
        step: _Step,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = _MISSING,
    ) -> httpx.Response:
        """One logical request with its retries; raises _CallFailed when it does not succeed."""
        shown = f"{method} {_without_query(url)}"
        if self.url_guard is not None:
            try:
                self.url_guard(url)
            except BlockedURL as exc:
                raise _CallFailed("connection", f"{shown} refused: {exc}") from None
        headers = step.headers
        content = None
        if not missing(body):
            content = orjson.dumps(body)
            headers = {**headers, "Content-Type": "application/json"}
        rep = step.report
        split = rep.split_ms
        failure: _CallFailed | None = None
        for attempt in range(1, step.max_attempts + 1):
            if attempt > 1:
                rep.http_retries += 1
                self.report.retries += 1
            rep.http_calls += 1
            response = None
            started = self.clock()
            try:
                response = self.client.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    headers=headers,
                    auth=step.auth,
                    timeout=step.timeout,
                )
            except httpx.TimeoutException as exc:
                failure = _CallFailed("timeout", f"{shown} timed out ({type(exc).__name__}).")
            except httpx.TransportError as exc:
                failure = _CallFailed("connection", f"{shown} failed: {exc or type(exc).__name__}.")
            finally:
                ms = (self.clock() - started) * 1000
                histogram.observe(rep.histogram, ms)
                split["http"] = split.get("http", 0.0) + ms
            if response is not None:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                failure = _CallFailed(
                    "http", f"{shown} answered HTTP {status}.", status, _excerpt(response)
                )
                if status != 429 and status < 500:
                    raise failure
            if attempt < step.max_attempts:
                wait = _retry_after(response)
                self.sleep(wait if wait is not None else backoff_s(attempt, self.rand))
        assert failure is not None
        if step.max_attempts > 1:
            failure.message = f"{failure.message[:-1]}, after {step.max_attempts} attempts."
        raise failure

    # hooks

    def hook(self, step: _Step, name: str, items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        script = step.hooks.get(name)
        if not script or not items:
            return items
        if self.hooks is None:
            for index, record in items:
                self.fail(
                    step, index, record, "script", f"{name} hook: this run has no hook runner."
                )
            return []
        started = self.clock()
        try:
            result = self.hooks.call(
                script,
                {
                    "data": [r for _, r in items],
                    "errors": [],
                    "settings": step.config.get("settings") or {},
                },
            )
        except HookError as exc:
            for index, record in items:
                self.fail(
                    step, index, record, "script", f"{name} hook: {exc.message}", line=exc.line
                )
            return []
        except Exception as exc:  # the runner itself broke: still this page's failure only
            for index, record in items:
                self.fail(step, index, record, "script", f"{name} hook could not run: {exc!r}")
            return []
        finally:
            split = step.report.split_ms
            split["hooks"] = split.get("hooks", 0.0) + (self.clock() - started) * 1000
        errors: list[Any] = []
        if isinstance(result, dict) and isinstance(result.get("data"), list):
            data, errors = result["data"], result.get("errors") or []
        elif isinstance(result, list):
            data = result
        else:
            for index, record in items:
                self.fail(
                    step,
                    index,
                    record,
                    "script",
                    f"{name} hook returned {type(result).__name__}; "
                    "it must return the records or {data, errors}.",
                )
            return []
        same = len(data) == len(items)
        out = [(items[i][0] if same else -1, r) for i, r in enumerate(data)]
        failed: set[int] = set()
        for err in errors if isinstance(errors, list) else [errors]:
            message = err.get("message") if isinstance(err, dict) else str(err)
            at = err.get("index") if isinstance(err, dict) else None
            if same and isinstance(at, int) and 0 <= at < len(out):
                failed.add(at)
                self.fail(step, out[at][0], out[at][1], "script", f"{name} hook: {message}")
            else:
                self.fail(step, -1, None, "script", f"{name} hook: {message}")
        return [item for i, item in enumerate(out) if i not in failed] if failed else out

    # steps

    def map_records(self, step: _Step, items: list[tuple[int, Any]]) -> list:
        """Apply the step's mappings: build new records (transform, import) or add to copies
        of them (lookup; the records as they entered stay as they were)."""
        apply = step.apply
        assert apply is not None
        out = []
        for index, record in items:
            try:
                out.append((index, apply(record)))
            except LookupError as exc:
                self.fail(step, index, record, "mapping", str(exc))
            except (TypeError, AttributeError) as exc:
                self.fail(step, index, record, "mapping", f"Mapping failed: {exc}.")
        return out

    def lookup_http(self, step: _Step, items: list[tuple[int, Any]]) -> list:
        cfg = step.config
        target = parse_path(cfg.get("target") or "lookup")
        out = []
        for index, record in items:
            try:
                url = _url(step, _fill(cfg["path"], record))
            except KeyError as exc:
                self.fail(step, index, record, "mapping", f"The record has no {exc.args[0]!r}.")
                continue
            try:
                response = self.call(step, "GET", url, params=cfg.get("query") or None)
                value = orjson.loads(response.content) if response.content else None
            except _CallFailed as exc:
                self.fail(
                    step,
                    index,
                    record,
                    exc.kind,
                    exc.message,
                    status=exc.status,
                    excerpt=exc.excerpt,
                )
                continue
            except orjson.JSONDecodeError:
                self.fail(
                    step,
                    index,
                    record,
                    "http",
                    f"GET {_without_query(url)} did not answer JSON.",
                    status=response.status_code,
                    excerpt=_excerpt(response),
                )
                continue
            # on a copy: the record as it entered the step is an error's retry data
            out.append((index, set_path(json_copy(record), target, value)))
        return out

    def send(self, step: _Step, items: list[tuple[int, Any]]) -> list:
        cfg = step.config
        try:
            size = max(1, int(cfg.get("batch_size") or 1))
        except (TypeError, ValueError):
            size = 1
        method = str(cfg.get("method") or "POST").upper()
        path = str(cfg.get("path") or "")
        out = []
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            records = [r for _, r in chunk]
            if self.mode == "test":
                entry = self.outputs.get(step.lineage_id)
                if entry is None:
                    entry = self.outputs[step.lineage_id] = {
                        "step": step.lineage_id,
                        "records": [],
                    }
                    self.report.output.append(entry)
                entry["records"].extend(records)
                self.report.output_indexes.setdefault(step.lineage_id, []).extend(
                    i for i, _ in chunk
                )
                out.extend(chunk)
                continue
            try:
                url = _url(step, _fill(path, records[0]))
            except KeyError as exc:
                for index, record in chunk:
                    self.fail(step, index, record, "mapping", f"The record has no {exc.args[0]!r}.")
                continue
            try:
                self.call(step, method, url, body=records[0] if size == 1 else records)
            except _CallFailed as exc:
                for index, record in chunk:
                    self.fail(
                        step,
                        index,
                        record,
                        exc.kind,
                        exc.message,
                        status=exc.status,
                        excerpt=exc.excerpt,
                    )
                continue
            out.extend(chunk)
        return out

    def run_step(self, step: _Step, items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        rep = step.report
        started = self.clock()
        rep.records_in += len(items)
        # no step changes the records it is given (a lookup adds to copies of them)
        self.step_inputs = dict(items)
        items = self.hook(step, "preMap", items)
        if step.mappings or (step.kind == "lookup" and step.config.get("path")):
            mapped, http_before = self.clock(), rep.split_ms.get("http", 0.0)
            if step.kind == "lookup":
                if step.mappings:
                    items = self.map_records(step, items)
                if step.config.get("path"):
                    items = self.lookup_http(step, items)
            else:
                items = self.map_records(step, items)
            # a lookup's GETs are already counted as "http"; the rest is mapping work
            spent = (self.clock() - mapped) * 1000 - (rep.split_ms.get("http", 0.0) - http_before)
            rep.split_ms["mapping"] = rep.split_ms.get("mapping", 0.0) + max(0.0, spent)
        items = self.hook(step, "postMap", items)
        items = self.hook(step, "preSavePage", items)
        if step.kind == "import":
            items = self.send(step, items)
        items = self.hook(step, "postSubmit", items)
        if self.on_passed is not None and items and step.lineage_id in self.watch:
            # the records this step let through, as they entered it (auto-resolve)
            inputs = self.step_inputs
            self.on_passed(step.lineage_id, [inputs[i] for i, _ in items if i >= 0 and i in inputs])
        rep.records_out += len(items)
        rep.duration_ms += (self.clock() - started) * 1000
        return items

    def pages(self, step: _Step) -> Iterator[list[Any]]:
        """The export's pages of records; raises FlowProblem when reading fails."""
        cfg = step.config
        method = str(cfg.get("method") or "GET").upper()
        url = _url(step, str(cfg.get("path") or ""))
        params: dict[str, Any] | None = dict(cfg.get("query") or {})
        paging = cfg.get("paging") or {}
        kind = paging.get("type") or "none"
        if kind not in ("none", "next_url", "page"):
            raise FlowProblem(f"Step {step.name!r}: unknown paging type {kind!r}.")
        records_path = str(cfg.get("records_path") or "")
        page_param = str(paging.get("param") or "page")
        number = paging.get("start", 1)
        seen: set[str] = set()
        fetched = 0
        while True:
            if fetched >= self.max_pages:
                raise FlowProblem(
                    f"Step {step.name!r}: stopped after {self.max_pages} pages; "
                    "the export's paging does not end.",
                    step=step.lineage_id,
                    kind="http",
                )
            if kind == "page":
                params = {**(params or {}), page_param: number}
            try:
                response = self.call(step, method, url, params=params or None)
            except _CallFailed as exc:
                raise FlowProblem(
                    f"Export {step.name!r} failed: {exc.message}",
                    step=step.lineage_id,
                    kind=exc.kind,
                    http_status=exc.status,
                    excerpt=exc.excerpt,
                ) from None
            fetched += 1
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise FlowProblem(
                    f"Export {step.name!r}: {method} {_without_query(str(response.url))} "
                    "did not answer JSON.",
                    step=step.lineage_id,
                    kind="http",
                    http_status=response.status_code,
                    excerpt=_excerpt(response),
                ) from None
            records = get_path(body, records_path) if records_path else body
            if not isinstance(records, list):
                where = f"at {records_path!r}" if records_path else "as the body"
                raise FlowProblem(
                    f"Export {step.name!r}: the response has no list of records {where}.",
                    step=step.lineage_id,
                    kind="http",
                    http_status=response.status_code,
                    excerpt=_excerpt(response),
                )
            if kind == "page" and not records:
                return
            yield records
            if kind == "none":
                return
            if kind == "page":
                number += 1
                continue
            nxt = get_path(body, str(paging.get("path") or "next"), None)
            if not nxt:
                return
            seen.add(str(response.url))
            url = urljoin(str(response.url), str(nxt))
            params = None  # the next URL carries its own query
            if url in seen:
                raise FlowProblem(
                    f"Export {step.name!r}: paging loops; next points back to "
                    f"{_without_query(url)}, already read.",
                    step=step.lineage_id,
                    kind="http",
                )


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """The TLS settings of every run's client (httpx's defaults), made once per process:
    making them reads the CA bundle, 30–90 ms here, more than a small run's whole HTTP."""
    return httpx.create_ssl_context()


def execute(
    document: Mapping[str, Any],
    flow_lineage_id: str,
    *,
    mode: str = "live",
    records: list[Any] | None = None,
    transport: httpx.BaseTransport | None = None,
    hooks: Any = None,
    caches: Mapping[str, Mapping[str, Any]] | None = None,
    credentials: Mapping[str, Mapping[str, Any]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_page: Callable[[RunReport], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    url_guard: Callable[[str], None] | None = None,
    max_errors: int = 1000,
    sample_size: int = 20,
    max_pages: int = 10000,
    rand: Callable[[], float] = _random.random,
    start_at: str | None = None,
    on_passed: Callable[[str, list[Any]], None] | None = None,
    watch_steps: Collection[str] = (),
) -> RunReport:
    """Run one flow of `document` and report what happened (see the module docstring).

    `records` (a list of JSON records) replaces the export; `mode="test"` makes imports
    report instead of send. `hooks` has `.call(script_lineage_id, options)` raising
    `HookError` (runs.hooks.V8HookRunner). `caches` maps a lookup cache's lineage id to its
    {key: value} entries, `credentials` a connection's lineage id to its secrets.
    `start_at` (a step lineage id) skips the steps before it (a retry from a failing step).
    `on_passed(step lineage id, records)` is called after each page at each step of
    `watch_steps` with the records that step let through, as they entered it.
    `clock`, `sleep` and `rand` are injectable so tests do not wait.
    """
    if mode not in ("live", "test"):
        raise ValueError("mode is 'live' or 'test'.")
    report = RunReport(status="running")
    try:
        _flow, steps = _plan(document, str(flow_lineage_id), caches or {}, credentials or {})
    except FlowProblem as exc:
        report.status = "failed"
        report.message = exc.message
        return report
    report.steps = [s.report for s in steps]
    if start_at is not None:
        ids = [s.lineage_id for s in steps]
        if str(start_at) not in ids:
            report.status, report.message = "failed", f"Step {start_at} is not in this flow."
            return report
        steps = steps[ids.index(str(start_at)) :]
    source: _Step | None = None
    if records is not None:
        if not isinstance(records, list):
            raise ValueError("records must be a list.")
        steps = [s for s in steps if s.kind != "export"]
    elif steps[0].kind == "export":
        source, steps = steps[0], steps[1:]
    else:
        report.status = "failed"
        report.message = "The flow has no export step, and no records were given."
        return report

    client = httpx.Client(
        transport=transport, follow_redirects=False, verify=_tls() if transport is None else True
    )
    run = _Run(
        report=report,
        client=client,
        mode=mode,
        hooks=hooks,
        clock=clock,
        sleep=sleep,
        rand=rand,
        url_guard=url_guard,
        max_errors=max_errors,
        max_pages=max_pages,
        on_passed=on_passed,
        watch_steps=watch_steps,
    )
    if mode == "test":
        # every import step says what it would send, also when that is nothing
        for step in steps:
            if step.kind == "import":
                run.outputs[step.lineage_id] = {"step": step.lineage_id, "records": []}
                report.output.append(run.outputs[step.lineage_id])
    if source is not None:
        pages: Iterator[list[Any]] = run.pages(source)
    else:
        given = copy.deepcopy(records)
        pages = iter([given[i : i + PAGE_SIZE] for i in range(0, len(given), PAGE_SIZE)])
    whole_run_failed = False
    next_index = 0
    try:
        while True:
            if should_cancel is not None and should_cancel():
                report.status = "canceled"
                report.message = f"Canceled after {report.pages} page(s)."
                break
            fetch_started = clock()
            try:
                page = next(pages)
            except StopIteration:
                break
            except FlowProblem as exc:
                whole_run_failed = True
                report.message = exc.message
                if exc.step:
                    step = next(s for s in [source, *steps] if s and s.lineage_id == exc.step)
                    run.fail(
                        step,
                        -1,
                        None,
                        exc.kind or "http",
                        exc.message,
                        status=exc.http_status,
                        excerpt=exc.excerpt,
                    )
                break
            finally:
                if source is not None:
                    source.report.duration_ms += (clock() - fetch_started) * 1000
            if len(report.samples) < sample_size:
                report.samples.extend(copy.deepcopy(page[: sample_size - len(report.samples)]))
            items = list(enumerate(page, start=next_index))
            next_index += len(page)
            report.records_in += len(page)
            if source is not None:
                items = run.run_step(source, items)
            for step in steps:
                if not items:
                    break
                items = run.run_step(step, items)
            report.records_out += len(items)
            report.pages += 1
            if on_page is not None:
                on_page(report)
    finally:
        client.close()
    if report.status != "canceled":
        if whole_run_failed:
            report.status = "failed"
        elif report.error_count == 0:
            report.status = "succeeded"
        elif report.records_out == 0:
            report.status = "failed"
            report.message = report.message or "No record got through; see the errors."
        else:
            report.status = "partial"
    return report
