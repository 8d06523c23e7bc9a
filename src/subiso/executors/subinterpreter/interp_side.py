"""Runtime that lives inside every pool subinterpreter: decode a request, call, encode the reply.

Free-standing on purpose: it is imported inside own-GIL subinterpreters, where msgspec,
pydantic-core and langgraph refuse to load, so it uses the standard library only and imports
nothing from the ``subiso`` package (whose ``__init__`` is lazy, so importing this module does
not drag anything else in). The host side lives in ``subiso.executors.subinterpreter``.

Wire contract (both directions are ``bytes``, so nothing but bytes crosses the boundary):

* request  = ``marshal.dumps((op, *fields))`` with ``op`` one of

  - ``("call", ref, payload, timeout, otel)``: ``ref`` is ``"module:qualname"`` (imported here
    and cached) or an ``int`` key of a function defined earlier with ``"define"``; ``payload``
    is ``codec.dumps((args, kwargs))``; ``timeout`` is seconds or ``None``; ``otel`` the
    caller's OpenTelemetry context as W3C headers (restored around the call when
    opentelemetry-api loads here) or ``None``.
  - ``("define", key, code, spec)``: build a function from a marshalled code object (a
    self-contained function whose own module cannot load here) and cache it under ``key``.
  - ``("configure", codec_name, log_levels)``: pick the payload codec (``"marshal"`` or
    ``"msgpack"``) and mirror the host's logger levels (``{name: level}``, ``""`` the root).

* reply = ``marshal.dumps((status, body, records))``: ``records`` are the log records the
  request emitted here (``subiso.observe.records.to_dict`` data; the host replays them on its
  own loggers), ``status`` one of ``"ok"`` (body: codec
  payload of the return value), ``"error"`` (body: ``(module, qualname, message, traceback,
  args)``, ``args`` being ``exc.args`` when marshal accepts them, else None: no pickle),
  ``"timeout"`` (body: message), ``"serialization"`` (body: message naming the key path),
  ``"missing"`` (body: unknown function key; the host resends ``define``).

Values that cross are *data*: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
``bytes``, and ``list``/``tuple``/``dict``/``set``/``frozenset`` of those, exact types only
(marshal refuses subclasses such as enums or ``NamedTuple``). The stdlib codec is marshal, not
json: it is implemented in C for exactly these types and carries tuples and bytes, which json
cannot. msgspec's msgpack is used instead once msgspec imports in a
subinterpreter (the host probes that once per process and sends ``configure``).
"""

from __future__ import annotations

import asyncio
import builtins
import importlib
import inspect
import marshal
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

#: Exact types the marshal codec accepts; used to name the key path of a value it refuses.
MARSHAL_SCALARS: tuple[type, ...] = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
)
MARSHAL_CONTAINERS: tuple[type, ...] = (list, tuple, dict, set, frozenset)


class Codec:
    """Encodes call payloads and results; ``name`` travels in ``configure`` requests."""

    name = "marshal"

    def dumps(self, value: Any) -> bytes:
        return marshal.dumps(value)

    def loads(self, data: bytes) -> Any:
        return marshal.loads(data)

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` itself (not its items) is encodable; drives key-path reporting."""
        kind = type(value)
        return kind in MARSHAL_SCALARS or kind in MARSHAL_CONTAINERS or kind is bytearray


class MsgpackCodec(Codec):
    """msgspec msgpack; only chosen where msgspec imports (host always, interpreters maybe)."""

    name = "msgpack"

    def __init__(self) -> None:
        import msgspec  # optional: refuses to load in most interpreters

        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder()

    def dumps(self, value: Any) -> bytes:
        return self._encoder.encode(value)

    def loads(self, data: bytes) -> Any:
        return self._decoder.decode(data)


def make_codec(name: str) -> Codec:
    """Codec by wire name; ``ValueError`` for an unknown one."""
    if name == "marshal":
        return Codec()
    if name == "msgpack":
        return MsgpackCodec()
    raise ValueError(f"unknown codec {name!r}")


def find_unencodable(value: Any, codec: Codec, path: str) -> str | None:
    """Key path of the first value ``codec`` cannot carry (e.g. ``args[0]["docs"][3]``)."""
    if not codec.accepts(value):
        return f"{path} ({type(value).__module__}.{type(value).__qualname__})"
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_unencodable(key, codec, f"{path} key {format_key(key)}")
            found = found or find_unencodable(item, codec, f"{path}[{format_key(key)}]")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = find_unencodable(item, codec, f"{path}[{index}]")
            if found:
                return found
    elif isinstance(value, (set, frozenset)):
        for item in value:
            found = find_unencodable(item, codec, f"{path}{{{item!r}}}")
            if found:
                return found
    return None


def format_key(key: Any) -> str:
    """``"docs"`` for string keys (reads like the JSON the data came from), repr otherwise."""
    if type(key) is str:
        return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(key)


def encode_checked(codec: Codec, value: Any, path: str) -> bytes:
    """Encode, or raise ``TypeError`` whose message names the key path that failed."""
    try:
        return codec.dumps(value)
    except (ValueError, TypeError, OverflowError) as exc:
        where = find_unencodable(value, codec, path) or path
        raise TypeError(f"cannot encode {where} with {codec.name}: {exc}") from None


# --- interpreter state: one codec, one event loop, resolved callables ----------------------

_codec: Codec = Codec()
_loop: asyncio.AbstractEventLoop | None = None
_by_ref: dict[str, Callable[..., Any]] = {}
_by_key: dict[int, Callable[..., Any]] = {}


def get_loop() -> asyncio.AbstractEventLoop:
    """The interpreter's persistent event loop, created on first use and reused by every call.

    One loop per interpreter keeps async clients (connection pools, caches) alive across
    calls and avoids the loop setup and teardown ``asyncio.run`` would pay per call.
    """
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop


def unwrap_offload(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function under ``@subiso.offload``: inside an interpreter it runs in place."""
    while getattr(fn, "__subiso_offload__", None) is not None and hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


def resolve_ref(ref: str) -> Callable[..., Any]:
    """Import ``module:qualname`` once per interpreter and cache the (unwrapped) callable."""
    fn = _by_ref.get(ref)
    if fn is None:
        module_name, _, qualname = ref.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        fn = _by_ref[ref] = unwrap_offload(obj)
    return fn


def define(key: int, code: types.CodeType, spec: tuple[Any, ...]) -> None:
    """Build a shipped self-contained function and cache it under ``key``.

    ``spec`` is ``(name, qualname, module, defaults, kwdefaults, imports, self_names)``:
    ``imports`` maps global names to modules to import here (module-level ``import x`` the
    function relies on, verified isolatable by the host), ``self_names`` are globals that
    refer to the function itself (recursion).
    """
    name, qualname, module, defaults, kwdefaults, imports, self_names = spec
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": module}
    for global_name, module_name in imports.items():
        namespace[global_name] = importlib.import_module(module_name)
    fn = types.FunctionType(code, namespace, name, defaults)
    fn.__qualname__ = qualname
    fn.__kwdefaults__ = kwdefaults
    for self_name in self_names:
        namespace[self_name] = fn
    _by_key[key] = fn


def invoke(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    """Call ``fn``; coroutine functions run on the persistent loop, cancelled at ``timeout``.

    A sync function cannot be pre-empted inside an interpreter; its ``timeout`` is checked
    when it returns (the result is discarded). The host pool also fails the caller's future at
    the deadline, so callers are not held hostage by a runaway sync call.
    """
    if inspect.iscoroutinefunction(fn):
        loop = get_loop()
        return loop.run_until_complete(asyncio.wait_for(fn(*args, **kwargs), timeout))
    if timeout is None:
        return fn(*args, **kwargs)
    started = loop_time()
    result = fn(*args, **kwargs)
    if loop_time() - started > timeout:
        raise TimeoutError(f"sync call took longer than its {timeout}s timeout")
    if inspect.isawaitable(result):  # a sync function that returned an awaitable
        return get_loop().run_until_complete(asyncio.wait_for(result, timeout))
    return result


def loop_time() -> float:
    """Monotonic clock, same as the loop's, so timeouts mean the same on both paths."""
    return time.monotonic()


Reply = tuple[str, Any]


def encode_error(exc: BaseException) -> Reply:
    """Reply for an exception: type name, message, traceback text, args when marshal takes them."""
    kind = type(exc)
    text = "".join(traceback.format_exception(kind, exc, exc.__traceback__))
    try:
        marshal.dumps(exc.args)
        args: tuple[Any, ...] | None = exc.args
    except Exception:
        args = None
    body = (kind.__module__, kind.__qualname__, str(exc), text, args)
    return ("error", body)


def do_call(
    ref: str | int, payload: bytes, timeout: float | None, otel: dict[str, str] | None = None
) -> Reply:
    """Run one call request and return its reply (never raises)."""
    if isinstance(ref, int):
        fn = _by_key.get(ref)
        if fn is None:
            return ("missing", ref)
    else:
        try:
            fn = resolve_ref(ref)
        except BaseException as exc:
            return encode_error(exc)
    undo = restore_otel(otel) if otel else None
    try:
        args, kwargs = _codec.loads(payload)
        result = invoke(fn, tuple(args), dict(kwargs), timeout)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        if timeout is not None:
            return ("timeout", f"{ref} exceeded its {timeout}s timeout")
        return encode_error(exc)
    except BaseException as exc:
        return encode_error(exc)
    finally:
        if undo is not None:
            undo()
    try:
        body = encode_checked(_codec, result, "result")
    except TypeError as exc:
        return ("serialization", str(exc))
    return ("ok", body)


# --- observability inside the interpreter ----------------------------------------------------
_records: Any = None  # the CollectingHandler on this interpreter's root logger
_otel: Any = None  # (context, propagate) once opentelemetry-api loaded here; False: it does not


def configure_logging(levels: dict[str, int]) -> None:
    """Collect this interpreter's records for the host, letting through what the host would."""
    global _records
    from subiso.observe.records import CollectingHandler, route_to

    _records = CollectingHandler()
    route_to(_records, levels)


def restore_otel(carrier: dict[str, str]) -> Callable[[], None] | None:
    """Attach the caller's OpenTelemetry context, if opentelemetry-api loads here."""
    global _otel
    if _otel is None:
        try:
            from opentelemetry import context, propagate

            _otel = (context, propagate)
        except BaseException:
            _otel = False
    if not _otel:
        return None
    context, propagate = _otel
    try:
        token = context.attach(propagate.extract(carrier))
    except Exception:
        return None
    return lambda: context.detach(token)


def handle(request: bytes) -> bytes:
    """Entry point the host calls for every request; always returns reply bytes."""
    global _codec
    try:
        op, *fields = marshal.loads(request)
        if op == "call":
            reply = do_call(*fields)
        else:
            if op == "define":
                define(*fields)
            elif op == "configure":
                _codec = make_codec(fields[0])
                configure_logging(fields[1])
            else:
                raise ValueError(f"unknown request {op!r}")
            reply = ("ok", None)
    except BaseException as exc:
        reply = encode_error(exc)
    records = _records.take() if _records is not None else ()
    try:
        return marshal.dumps((*reply, records))
    except ValueError:  # a record marshal cannot carry: the reply goes without records
        return marshal.dumps((*reply, ()))


def entry(request: bytes) -> bytes:
    """Stateless trampoline for ``Interpreter.call`` (3.14): no globals, so it is shared by
    code object instead of by pickle, and resolves ``handle`` in the target interpreter."""
    from subiso.executors.subinterpreter.interp_side import handle as _handle

    return _handle(request)
