"""Conversations: a chat history that grows with each reply, for any provider.

A :class:`Conversation` holds the messages of a chat and sends them with every new
question, so the model sees the whole exchange. Each reply is the provider's
:class:`~llmproviders.Stream`, read as usual; the history follows what happens to it:

- the user message joins the history when it is sent;
- the assistant message (:attr:`Stream.message`: text, tool calls, reasoning) joins
  it when the reply finishes cleanly;
- a reply that fails or is closed early rolls its turn back, so the history stays
  as it was before the question. With ``keep_partial=True`` the error still
  propagates, but the question stays, followed by what arrived of the answer as an
  assistant message marked ``"partial": True`` (that key is never sent to a server).

Each provider gets the history through its own protocol. OpenAI-compatible servers
(:class:`OpenAICompatible`, :class:`Ylokh`) get the full message list, tool calls,
tool results and ``reasoning_content`` included; the seed providers (FlowGpt,
GPROChat, Chatgpt4Online), which take plain text, get each message's role and
content only (FlowGpt as its ``history``, GPROChat and Chatgpt4Online as the
flattened prompt).

Example usage::

    from llmproviders import Conversation, FlowGpt

    chat = Conversation(FlowGpt, system="Answer in one sentence.")
    for delta in chat.send("What is streaming?"):
        print(delta, end="", flush=True)
    answer = "".join(chat.send("And why does it matter?"))
    chat.undo()                                        # forget that last exchange
    saved = json.dumps(chat.to_dict())                 # never holds the api_key
    chat = Conversation.from_dict(json.loads(saved))
"""

from __future__ import annotations

import copy
import json
import threading
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Type, Union

from ._exceptions import ConversationBusyError, InvalidArgumentError, InvalidMessagesError
from ._fallback import RetryProvider
from ._messages import validate_messages
from ._provider import Provider, get_provider
from ._secrets import url_secrets
from ._stream import ReplyView, Stream

if TYPE_CHECKING:  # pragma: no cover
    from ._async import AsyncStream

__all__ = ["Conversation", "saved_provider", "FORMAT", "VERSION", "SECRET_OPTIONS"]

#: What ``to_dict()["format"]`` says, so a saved conversation can be recognised.
FORMAT = "llmproviders.Conversation"
VERSION = 1
#: Options that are never written by :meth:`Conversation.to_dict` (``base_url`` and
#: ``proxy`` are left out too when they carry a password or query values).
SECRET_OPTIONS = frozenset({"api_key", "extra_headers"})
_URL_OPTIONS = ("base_url", "proxy")
#: The keys a seed (plain-text) provider is sent of each message: role and content,
#: and what makes it refuse a message it cannot carry (a tool result, tool calls).
_TEXT_KEYS = ("role", "content", "tool_call_id", "tool_calls")

ProviderArg = Union[str, Type[Provider], RetryProvider]


class _Turn:
    """The reply being streamed: where its turn starts in the history, and the stream."""

    __slots__ = ("start", "keep_partial", "stream", "view")

    def __init__(self, start: int, keep_partial: bool, stream: Stream) -> None:
        self.start = start
        self.keep_partial = keep_partial
        self.stream = weakref.ref(stream)  # a dropped stream must be freed (and closed) at once
        self.view: ReplyView = stream._view


class Conversation:
    """A chat history and the provider it is sent to.

    ``provider`` is a provider class, its name, or a :class:`RetryProvider`;
    ``model=None`` is the provider's default. ``system`` is a system message sent first
    with every request. ``options`` are any keyword arguments
    :meth:`Provider.create_completion` takes (``base_url``, ``api_key``, ``proxy``,
    ``timeout``, ``deadline``, ``max_retries``, ``stream`` and the provider's own, such
    as ``temperature`` or ``tools``); they apply to every call, and :meth:`send`'s
    keyword arguments override them for one call. Everything is checked here, before
    any network I/O.

    Only one reply streams at a time: :meth:`send` (and any change to the history)
    while the last reply is still open raises :class:`ConversationBusyError`. A reply
    that is dropped unread counts as closed early. The history may be changed from
    another thread than the one reading the reply (the async facade's worker does):
    it is guarded by a lock.
    """

    def __init__(
        self,
        provider: ProviderArg,
        model: Optional[str] = None,
        *,
        system: Optional[str] = None,
        keep_partial: bool = False,
        **options: Any,
    ) -> None:
        self.provider: Union[Type[Provider], RetryProvider] = _resolve_provider(provider)
        if model is not None and not isinstance(model, str):
            raise InvalidArgumentError(f"model must be a string (or None for the provider's default), not {type(model).__name__}")
        if system is not None and not isinstance(system, str):
            raise InvalidArgumentError(f"system must be a string, not {type(system).__name__}")
        self.model = model
        self.system = system
        self.keep_partial = _flag("keep_partial", keep_partial)
        self._options = _call_options(options)
        self._history: List[Dict[str, Any]] = []
        self._turn: Optional[_Turn] = None
        self._lock = threading.RLock()
        # Check the provider, the model and the options now, before any I/O: an
        # unstarted stream sends nothing, and closing it costs nothing.
        self.provider.create_completion(model, [{"role": "user", "content": "?"}], **self._options).close()

    # -- the history --------------------------------------------------------------------

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """A copy of the history: the system message (if any), then every message of
        the conversation so far (while a reply streams, its question is in it, its
        answer not yet)."""
        with self._lock:
            self._settle()
            return copy.deepcopy(self._system_messages() + self._history)

    def add_tool_result(self, tool_call_id: str, content: Any) -> None:
        """Add the result of a tool call the model made, as a ``tool`` message; then
        :meth:`send` with no content asks the model to go on. ``content`` is a string,
        sent as is, or any JSON value, sent as its JSON text."""
        with self._lock:
            self._check_idle()
            if not isinstance(tool_call_id, str) or not tool_call_id:
                raise InvalidArgumentError(
                    f"tool_call_id must be the non-empty string id of a tool call, not {tool_call_id!r}"
                )
            known = [call for message in self._history for call in (message.get("tool_calls") or ())]
            if not any(isinstance(call, Mapping) and call.get("id") == tool_call_id for call in known):
                listed = ", ".join(f"{call.get('id')} ({call.get('function', {}).get('name')})" for call in known[-5:])
                raise InvalidArgumentError(
                    f"{self._name}: no tool call with id {tool_call_id!r} in this conversation"
                    + (f"; the latest calls: {listed}" if listed else "; the model has called no tool")
                )
            if not isinstance(content, str):
                try:
                    content = json.dumps(content, ensure_ascii=False, allow_nan=False)
                except (TypeError, ValueError, RecursionError) as exc:
                    raise InvalidArgumentError(f"a tool result must be a string or a JSON value: {exc}") from None
            self._history.append({"role": "tool", "tool_call_id": tool_call_id, "content": content})

    def undo(self) -> List[Dict[str, Any]]:
        """Remove the last exchange: the last user message and everything after it (the
        reply, tool calls and their results); with no user message, the last message.
        Returns the removed messages ([] when the history is empty)."""
        with self._lock:
            self._check_idle()
            history = self._history
            starts = [index for index, message in enumerate(history) if message.get("role") == "user"]
            start = starts[-1] if starts else max(len(history) - 1, 0)
            removed = history[start:]
            del history[start:]
            return removed

    def reset(self) -> None:
        """Forget every message; the system message, provider, model and options stay."""
        with self._lock:
            self._check_idle()
            self._history.clear()

    # -- sending ------------------------------------------------------------------------

    def send(self, content: Any = None, *, keep_partial: Optional[bool] = None, **overrides: Any) -> Stream:
        """Send ``content`` (a string, or a list of content parts such as
        ``[{"type": "text", "text": ...}, llmproviders.image(...)]``) as the next user
        message, with the history; return the reply's :class:`Stream`.

        ``send()`` with no content asks again without a new user message (after
        :meth:`add_tool_result`, to let the model go on). ``overrides`` are
        :meth:`Provider.create_completion` keyword arguments (and ``model``) for this
        call only; ``keep_partial`` overrides the conversation's for this reply.
        Everything is checked before any network I/O; on an error nothing changes.
        """
        keep = self.keep_partial if keep_partial is None else _flag("keep_partial", keep_partial)
        model = overrides.pop("model", self.model)
        options = {**self._options, **_call_options(overrides)}
        with self._lock:
            self._check_idle()
            start = len(self._history)
            if content is not None:
                self._history.append(_user_message(content))
            elif not self._history:
                raise InvalidArgumentError(
                    f"{self._name}: nothing to send: send(content) starts a conversation "
                    "(send() with no content asks again after add_tool_result())"
                )
            try:
                stream = self.provider.create_completion(model, self._outgoing(), **options)
            except BaseException:
                del self._history[start:]
                raise
            turn = self._turn = _Turn(start, keep, stream)
        stream.add_done_callback(lambda outcome, error: self._finish(turn, outcome))
        return stream

    def send_async(self, content: Any = None, *, keep_partial: Optional[bool] = None, **overrides: Any) -> "AsyncStream":
        """:meth:`send`, for asyncio code: the reply as an :class:`AsyncStream`
        (``async for delta in chat.send_async("Hi")``). The history follows it in the
        same way."""
        from ._async import AsyncStream  # the asyncio facade is loaded when first used

        return AsyncStream(self.send(content, keep_partial=keep_partial, **overrides))

    def _outgoing(self) -> List[Dict[str, Any]]:
        """The messages of the next request, in the form the provider takes."""
        messages = self._system_messages() + self._history
        if _full_history(self.provider):
            return [{k: v for k, v in m.items() if k != "partial"} for m in messages]
        return [{k: m[k] for k in _TEXT_KEYS if k in m} for m in messages]

    def _finish(self, turn: _Turn, outcome: str) -> None:
        """The reply of ``turn`` has ended (called once, in the thread that ended it)."""
        with self._lock:
            if self._turn is not turn:
                return
            self._turn = None
            reply = turn.view.reply
            if outcome == "complete" and reply is not None:
                self._history.append(_assistant_message(reply))
            elif turn.keep_partial and reply is not None and (len(reply.record) or reply.reasoning_parts or reply.refusal_parts):
                message = _assistant_message(reply, partial=True)
                self._history.append(message)
            else:
                del self._history[turn.start :]

    def _settle(self) -> None:
        """A reply that was dropped before it was read never ends: roll its turn back."""
        turn = self._turn
        if turn is not None and turn.stream() is None and turn.view.outcome is None:
            self._turn = None
            del self._history[turn.start :]

    def _check_idle(self) -> None:
        self._settle()
        if self._turn is not None:
            raise ConversationBusyError(
                f"{self._name}: the last reply is still streaming: read it to its end (or close() it) "
                "before sending again or changing the history",
                provider=self._name,
            )

    def _system_messages(self) -> List[Dict[str, Any]]:
        return [{"role": "system", "content": self.system}] if self.system is not None else []

    @property
    def _name(self) -> str:
        return str(getattr(self.provider, "__name__", "Conversation"))

    # -- saving ---------------------------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        """The conversation as a JSON-ready dict: provider, model, system message,
        options and messages (:meth:`from_dict` makes it a conversation again).

        It never holds secrets: the ``api_key`` and ``extra_headers`` options are left
        out, and so are ``base_url`` and ``proxy`` when they carry a password or query
        values. Pass them again to :meth:`from_dict`.
        """
        with self._lock:
            self._settle()
            options = {}
            for name, value in self._options.items():
                if name in SECRET_OPTIONS or (name in _URL_OPTIONS and url_secrets(value)):
                    continue
                options[name] = list(value) if isinstance(value, tuple) else value
            provider = self.provider
            saved_provider: Any = (
                {"providers": [p.__name__ for p in provider.providers], "shuffle": provider.shuffle}
                if isinstance(provider, RetryProvider)
                else provider.__name__
            )
            return copy.deepcopy(
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "provider": saved_provider,
                    "model": self.model,
                    "system": self.system,
                    "keep_partial": self.keep_partial,
                    "options": options,
                    "messages": self._history,
                }
            )

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        provider: Optional[ProviderArg] = None,
        model: Optional[str] = None,
        **options: Any,
    ) -> "Conversation":
        """The conversation :meth:`to_dict` saved. ``provider``, ``model`` and
        ``options`` (such as the ``api_key``, which is never saved; also ``system`` and
        ``keep_partial``) override what was saved. A dict that is not a saved conversation raises
        :class:`InvalidArgumentError` saying what is wrong with it."""
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"from_dict() takes the dict to_dict() made, not {type(data).__name__}")
        if data.get("format", FORMAT) != FORMAT or data.get("version", VERSION) != VERSION:
            raise InvalidArgumentError(
                f"not a saved conversation this version reads (format {data.get('format')!r}, "
                f"version {data.get('version')!r}; expected {FORMAT!r}, version {VERSION})"
            )
        if provider is None:
            provider = saved_provider(data)
        saved_options = data.get("options") or {}
        messages = data.get("messages") or []
        if not isinstance(saved_options, Mapping) or not all(isinstance(key, str) for key in saved_options):
            raise InvalidArgumentError("a saved conversation's 'options' must be a dict of option names and values")
        if not isinstance(messages, list):
            raise InvalidArgumentError(f"a saved conversation's 'messages' must be a list, not {type(messages).__name__}")
        keep_partial = options.pop("keep_partial", data.get("keep_partial", False))
        system = options.pop("system", data.get("system"))
        conversation = cls(
            provider,
            model if model is not None else data.get("model"),
            system=system,
            keep_partial=keep_partial,
            **{**saved_options, **options},
        )
        if messages:
            try:
                conversation._history = validate_messages(messages)
            except InvalidMessagesError as exc:
                raise InvalidMessagesError(f"a saved conversation's {exc}") from None
        return conversation

    def __repr__(self) -> str:
        model = f" model={self.model!r}" if self.model else ""
        return f"<Conversation provider={self._name}{model} messages={len(self._history)}>"


def saved_provider(data: Mapping[str, Any]) -> Union[Type[Provider], RetryProvider]:
    """The provider a saved conversation (:meth:`Conversation.to_dict`) names."""
    saved = data.get("provider")
    if isinstance(saved, Mapping) and isinstance(saved.get("providers"), list):
        return RetryProvider(saved["providers"], shuffle=bool(saved.get("shuffle")))
    if isinstance(saved, str):
        return get_provider(saved)
    raise InvalidArgumentError(f"a saved conversation names its provider; got {saved!r}")


def _resolve_provider(provider: Any) -> Union[Type[Provider], RetryProvider]:
    if isinstance(provider, str):
        return get_provider(provider)
    if isinstance(provider, RetryProvider) or (isinstance(provider, type) and issubclass(provider, Provider)):
        return provider
    raise InvalidArgumentError(
        f"Conversation needs a provider (a Provider class, its name, or a RetryProvider), not {provider!r}"
    )


def _full_history(provider: Any) -> bool:
    """Whether ``provider`` takes OpenAI's whole message list (tool calls, tool results,
    reasoning): the OpenAI-compatible ones. A RetryProvider does if all its providers do."""
    from .providers.openai_compatible import OpenAICompatible

    if isinstance(provider, RetryProvider):
        return all(_full_history(p) for p in provider.providers)
    return isinstance(provider, type) and issubclass(provider, OpenAICompatible)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be True or False, not {value!r}")
    return value


def _call_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """The keyword arguments of every call (a ``timeout`` pair read back from JSON, a
    list, becomes the tuple calls take)."""
    if "messages" in options:
        raise InvalidArgumentError(
            "messages is not an option of a Conversation: it holds the history itself "
            "(send() adds to it; Conversation.from_dict() starts from saved messages)"
        )
    timeout = options.get("timeout")
    if isinstance(timeout, list):
        options = {**options, "timeout": tuple(timeout)}
    return dict(options)


def _user_message(content: Any) -> Dict[str, Any]:
    """The user message for ``content`` (a string or a list of parts), checked."""
    if not isinstance(content, (str, list, tuple)):
        raise InvalidMessagesError(
            f"content must be a string or a list of content parts, not {type(content).__name__}"
        )
    message = {"role": "user", "content": list(content) if isinstance(content, tuple) else content}
    try:
        return validate_messages([message])[0]
    except InvalidMessagesError as exc:
        raise InvalidMessagesError(str(exc).replace("messages[0]", "the message", 1)) from None


def _assistant_message(reply: Any, *, partial: bool = False) -> Dict[str, Any]:
    """The reply as a history message (OpenAI's shape). A partial one keeps its text and
    reasoning but not tool calls: a call cut short could not be answered."""
    message: Dict[str, Any] = reply.message()
    if partial:
        message.pop("tool_calls", None)
    if message.get("content") is None and not message.get("tool_calls"):
        message["content"] = ""  # reasoning or a refusal only: content must be a string
    refusal = reply.refusal
    if refusal is not None:
        message["refusal"] = refusal
    if partial:
        message["partial"] = True
    return message
