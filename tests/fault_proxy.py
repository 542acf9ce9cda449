"""A TCP proxy on 127.0.0.1 between the service and a real redis-server that injects faults.

It reads the Redis protocol both ways: every request (an array of bulk strings, or an
inline command) is matched against the rules set at the time, and every reply is paired
with the request it answers, in order (Redis answers a connection's commands in the order
they came, so the n-th reply answers the n-th forwarded request; a pipeline of several
commands in one write is split and paired the same way). A rule can

- refuse a command with an error reply of its choosing, without forwarding it, as a
  server that is loading, read-only or failing over does (:meth:`FaultProxy.refuse`);
- forward a command, let it run, then drop its reply and close the client's connection
  (:meth:`FaultProxy.drop_reply`): the write happened and its caller cannot know;
- delay a reply (:meth:`FaultProxy.delay`), or hold replies until the test releases them
  (:meth:`FaultProxy.hold`).

Every reply leaves in the order of the requests, injected ones included: an injected
error waits behind the replies still due before it.

Transactions are kept as Redis keeps them. A command refused between ``MULTI`` and
``EXEC`` marks the transaction, and its ``EXEC`` goes to Redis as ``DISCARD`` and is
answered ``-EXECABORT``, as Redis answers a transaction with a command refused at
queueing. A command inside a transaction that a drop, delay or hold rule matches is
queued normally, and the rule applies to the reply of its ``EXEC``, the reply that
says what ran.

The proxy runs in the event loop that starts it; :meth:`FaultProxy.close` ends every
connection and task it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

# What a rule is matched against: a request's arguments, the command name first.
Matcher = Callable[[Sequence[bytes]], bool]

READ_BYTES = 64 * 1024
# More connections than the service's link and pool ever open; a guard, not a tuning.
MAX_CONNECTIONS = 256
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"

# Error replies, as Redis writes them.
LOADING = "LOADING Redis is loading the dataset in memory"
READONLY = "READONLY You can't write against a read only replica."
MASTERDOWN = "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
CLUSTERDOWN = "CLUSTERDOWN The cluster is down"
TRYAGAIN = "TRYAGAIN Multiple keys request during rehashing of slot"
BUSY = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."


class ProtocolError(Exception):
    """Bytes that are not the Redis protocol."""


def frame_end(buffer: bytes | bytearray, start: int) -> int | None:
    """The offset just past the protocol value that begins at ``start`` (RESP2 and RESP3),
    or None while it is incomplete."""
    line_end = buffer.find(b"\r\n", start)
    if line_end < 0:
        return None
    kind = buffer[start : start + 1]
    after = line_end + 2
    if kind in (b"+", b"-", b":", b"_", b",", b"#", b"("):
        return after
    try:
        length = int(buffer[start + 1 : line_end])
    except ValueError:
        raise ProtocolError(bytes(buffer[start : line_end + 2])) from None
    if kind in (b"$", b"!", b"="):
        if length < 0:
            return after
        end = after + length + 2
        return end if end <= len(buffer) else None
    if kind in (b"*", b"~", b">", b"%", b"|"):
        items = length * 2 if kind in (b"%", b"|") else length
        position: int | None = after
        for _ in range(max(items, 0)):
            assert position is not None
            position = frame_end(buffer, position)
            if position is None:
                return None
        return position
    raise ProtocolError(bytes(buffer[start : line_end + 2]))


def parse_request(buffer: bytes | bytearray, start: int) -> tuple[list[bytes], int] | None:
    """A client's request at ``start``, as its arguments and the offset past it, or None
    while it is incomplete. Clients send arrays of bulk strings; a line of words (an
    inline command, as typed into telnet) is read too."""
    line_end = buffer.find(b"\r\n", start)
    if line_end < 0:
        return None
    if buffer[start : start + 1] != b"*":
        return bytes(buffer[start:line_end]).split(), line_end + 2
    try:
        count = int(buffer[start + 1 : line_end])
    except ValueError:
        raise ProtocolError(bytes(buffer[start : line_end + 2])) from None
    arguments: list[bytes] = []
    position = line_end + 2
    for _ in range(count):
        header_end = buffer.find(b"\r\n", position)
        if header_end < 0:
            return None
        if buffer[position : position + 1] != b"$":
            raise ProtocolError(bytes(buffer[position : header_end + 2]))
        length = int(buffer[position + 1 : header_end])
        value_start = header_end + 2
        if value_start + length + 2 > len(buffer):
            return None
        arguments.append(bytes(buffer[value_start : value_start + length]))
        position = value_start + length + 2
    return arguments, position


def error_reply(message: str) -> bytes:
    """``message`` ("READONLY You can't …") as Redis sends an error."""
    return b"-" + message.encode() + b"\r\n"


def named(*names: str) -> Matcher:
    """Requests whose command is one of ``names`` (any case)."""
    wanted = {name.upper().encode() for name in names}
    return lambda arguments: bool(arguments) and arguments[0].upper() in wanted


def every(arguments: Sequence[bytes]) -> bool:
    """Every request."""
    return True


def touching(text: str) -> Matcher:
    """Requests with an argument that holds ``text`` (a key's hash tag, say ``{b}:``)."""
    needle = text.encode()
    return lambda arguments: any(needle in argument for argument in arguments[1:])


def both(first: Matcher, second: Matcher) -> Matcher:
    return lambda arguments: first(arguments) and second(arguments)


@dataclass(frozen=True)
class Refuse:
    reply: bytes


@dataclass(frozen=True)
class Drop:
    # Drop error replies too; by default only a reply that says the command ran is dropped.
    errors_too: bool = False


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class Hold:
    pass


Action = Refuse | Drop | Delay | Hold


@dataclass(eq=False)
class Rule:
    """``action`` for requests that ``match`` accepts, at most ``times`` times (None: no
    limit); ``fired`` counts the requests it acted on."""

    match: Matcher
    action: Action
    times: int | None = None
    fired: int = 0

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def take(self) -> bool:
        """Count one use, if any is left."""
        if self.spent:
            return False
        self.fired += 1
        return True


@dataclass(eq=False)
class _Due:
    """A reply owed to the client, in request order: injected at once, or Redis's."""

    reply: bytes | None = None
    # The rule whose action applies to the reply (a drop is decided when it arrives).
    rule: Rule | None = None
    replace_with: bytes | None = None
    arrived: float = 0.0


@dataclass(eq=False)
class _Pair:
    """One client connection and its own connection to Redis."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    due: deque[_Due] = field(default_factory=deque)
    out: asyncio.Queue[_Due | None] = field(default_factory=asyncio.Queue)
    in_multi: bool = False
    multi_refused: bool = False
    multi_rule: Rule | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to the Redis at ``host:port``."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.upstream_host = host
        self.upstream_port = port
        self.rules: list[Rule] = []
        # Commands seen from clients, by name (upper case), refused or forwarded.
        self.seen: Counter[str] = Counter()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()
        self._released = asyncio.Event()
        self._released.set()
        # Tasks closing a pair, kept referenced until they end.
        self._ending: set[asyncio.Task[None]] = set()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._released.set()
        for pair in list(self._pairs):
            await self._end(pair)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # --- rules -------------------------------------------------------------------------

    def refuse(self, error: str, match: Matcher = every, times: int | None = None) -> Rule:
        """Answer ``error`` (``"LOADING Redis is loading …"``) to matching commands."""
        return self._add(Rule(match, Refuse(error_reply(error)), times))

    def drop_reply(
        self, match: Matcher, times: int | None = 1, *, errors_too: bool = False
    ) -> Rule:
        """Forward matching commands, and drop the reply of the next ``times`` that ran
        (error replies pass unless ``errors_too``), closing that client's connection."""
        return self._add(Rule(match, Drop(errors_too), times))

    def delay(self, seconds: float, match: Matcher = every, times: int | None = None) -> Rule:
        """Hand on matching commands' replies ``seconds`` after they arrived."""
        return self._add(Rule(match, Delay(seconds), times))

    def hold(self, match: Matcher, times: int | None = None) -> Rule:
        """Keep matching commands' replies (and all after them on the same connection)
        until :meth:`release`."""
        self._released.clear()
        return self._add(Rule(match, Hold(), times))

    def release(self) -> None:
        """Hand on held replies; replies matched by hold rules from now on pass too."""
        self.rules = [rule for rule in self.rules if not isinstance(rule.action, Hold)]
        self._released.set()

    def clear(self) -> None:
        """No more faults: every rule removed, held replies handed on."""
        self.rules.clear()
        self._released.set()

    def _add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def _rule_for(self, arguments: Sequence[bytes]) -> Rule | None:
        for rule in self.rules:
            if not rule.spent and rule.match(arguments):
                return rule
        return None

    # --- connections ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._pairs) >= MAX_CONNECTIONS:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.close()
            return
        self.connections += 1
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        pair.tasks = [
            asyncio.create_task(self._requests(pair, reader)),
            asyncio.create_task(self._replies(pair, up_reader)),
            asyncio.create_task(self._emit(pair)),
        ]
        # Returns at once: the pair's tasks serve it until one side closes, or close().

    async def _end(self, pair: _Pair) -> None:
        if pair not in self._pairs:
            return
        self._pairs.discard(pair)
        current = asyncio.current_task()
        for task in pair.tasks:
            if task is not current:
                task.cancel()
        for writer in (pair.client, pair.upstream):
            writer.close()
        for task in pair.tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for writer in (pair.client, pair.upstream):
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _requests(self, pair: _Pair, reader: asyncio.StreamReader) -> None:
        """Client to Redis: each request forwarded, refused or marked, in order."""
        buffer = bytearray()
        try:
            while chunk := await reader.read(READ_BYTES):
                buffer += chunk
                position = 0
                forward = bytearray()
                while (parsed := parse_request(buffer, position)) is not None:
                    arguments, end = parsed
                    forward += self._request(pair, arguments, buffer[position:end])
                    position = end
                del buffer[:position]
                if forward:
                    pair.upstream.write(bytes(forward))
                    await pair.upstream.drain()
        except (ConnectionError, ProtocolError):
            pass
        finally:
            asyncio.get_running_loop().call_soon(self._spawn_end, pair)

    def _request(self, pair: _Pair, arguments: list[bytes], raw: bytes | bytearray) -> bytes:
        """What to send Redis for one request (maybe nothing), with its reply's place kept."""
        name = arguments[0].upper() if arguments else b""
        self.seen[name.decode(errors="replace")] += 1
        rule = self._rule_for(arguments)
        if name == b"EXEC" and pair.in_multi:
            return self._exec(pair, rule, raw)
        if name == b"DISCARD":
            pair.in_multi = False
        if isinstance(rule, Rule) and isinstance(rule.action, Refuse) and rule.take():
            if pair.in_multi:
                pair.multi_refused = True
            self._owe(pair, _Due(reply=rule.action.reply))
            return b""
        if name == b"MULTI":
            pair.in_multi, pair.multi_refused, pair.multi_rule = True, False, None
        elif pair.in_multi and rule is not None:
            # Queued: the rule applies to what EXEC answers.
            if not isinstance(rule.action, Drop):
                rule.take()
            pair.multi_rule = rule
            rule = None
        elif rule is not None and not isinstance(rule.action, Drop):
            rule.take()
        pair.due.append(_Due(rule=rule))
        return bytes(raw)

    def _exec(self, pair: _Pair, rule: Rule | None, raw: bytes | bytearray) -> bytes:
        pair.in_multi = False
        if pair.multi_refused or (rule is not None and isinstance(rule.action, Refuse)):
            # Redis drops a transaction with a refused command; DISCARD ends it there too.
            reply = EXECABORT
            if not pair.multi_refused and rule is not None and isinstance(rule.action, Refuse):
                rule.take()
                reply = rule.action.reply
            pair.due.append(_Due(replace_with=reply))
            return b"*1\r\n$7\r\nDISCARD\r\n"
        applies = rule or pair.multi_rule
        if applies is not None and applies is rule and not isinstance(rule.action, Drop):
            rule.take()
        pair.due.append(_Due(rule=applies))
        return bytes(raw)

    def _owe(self, pair: _Pair, due: _Due) -> None:
        pair.due.append(due)
        self._hand_on(pair)

    def _hand_on(self, pair: _Pair) -> None:
        """Replies whose turn has come go to the emitter, in order."""
        while pair.due and pair.due[0].reply is not None:
            pair.out.put_nowait(pair.due.popleft())

    async def _replies(self, pair: _Pair, reader: asyncio.StreamReader) -> None:
        """Redis to client: each reply paired with the oldest request still waiting."""
        buffer = bytearray()
        loop = asyncio.get_running_loop()
        try:
            while chunk := await reader.read(READ_BYTES):
                buffer += chunk
                position = 0
                while (end := frame_end(buffer, position)) is not None:
                    reply = bytes(buffer[position:end])
                    position = end
                    waiting = next((d for d in pair.due if d.reply is None), None)
                    if waiting is None:
                        # Nothing asked for it (a push message): it goes on as it is.
                        pair.out.put_nowait(_Due(reply=reply))
                        continue
                    waiting.reply = reply
                    waiting.arrived = loop.time()
                    self._hand_on(pair)
                del buffer[:position]
        except (ConnectionError, ProtocolError):
            pass
        finally:
            pair.out.put_nowait(None)

    async def _emit(self, pair: _Pair) -> None:
        """Writes replies to the client in order, applying each one's action."""
        loop = asyncio.get_running_loop()
        try:
            while (due := await pair.out.get()) is not None:
                assert due.reply is not None
                reply = due.replace_with or due.reply
                action = due.rule.action if due.rule is not None else None
                if isinstance(action, Drop) and (action.errors_too or reply[:1] != b"-"):
                    assert due.rule is not None
                    if due.rule.take():
                        await pair.client.drain()
                        break
                elif isinstance(action, Delay):
                    await asyncio.sleep(max(0.0, due.arrived + action.seconds - loop.time()))
                elif isinstance(action, Hold):
                    await pair.client.drain()
                    await self._released.wait()
                pair.client.write(reply)
                if pair.out.empty():
                    await pair.client.drain()
        except ConnectionError:
            pass
        finally:
            loop.call_soon(self._spawn_end, pair)

    def _spawn_end(self, pair: _Pair) -> None:
        if pair in self._pairs:
            task = asyncio.get_running_loop().create_task(self._end(pair))
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)


def replies_of(data: bytes) -> Iterable[bytes]:
    """The protocol values in ``data``, each as its bytes (for tests of the proxy)."""
    position = 0
    while position < len(data):
        end = frame_end(data, position)
        if end is None:
            raise ProtocolError(data[position:])
        yield data[position:end]
        position = end
