"""``ChatCompletion`` and ``Client``: how a provider is chosen, arguments checked before
any I/O (at construction for the client), the ``@overload`` typing, and g4f's own
parameters (``ignored``, ``ignore_working``, ``ignore_stream``, ``auth``)."""

import ast
import asyncio
import inspect
import json
import math
import pathlib
import typing

import pytest
import responses

import llmproviders
from llmproviders import (
    ChatCompletion,
    Chatgpt4Online,
    Client,
    FlowGpt,
    GPROChat,
    InvalidArgumentError,
    ModelNotSupportedError,
    OpenAICompatible,
    Provider,
    ProviderNotFoundError,
    RetryProvider,
    Stream,
    UnsupportedOptionError,
    Ylokh,
)
from llmproviders._completion import check_provider, resolve_provider

MESSAGES = [{"role": "user", "content": "Hello"}]
BASE = "http://127.0.0.1:9/v1"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch):
    monkeypatch.delenv("LLMPROVIDERS_BASE_URL", raising=False)
    monkeypatch.delenv("LLMPROVIDERS_API_KEY", raising=False)


class NotAProvider:
    create_completion = FlowGpt.create_completion


NOT_PROVIDERS = [
    (5, "not int 5"),
    (object(), "not object <object object at"),
    (NotAProvider, "not the class tests.unit.test_completion.NotAProvider, which is not a Provider subclass"),
    (dict, "not the class builtins.dict"),
    (Provider, "not the base class Provider itself"),
    (["FlowGpt"], "not list ['FlowGpt']"),
]


# -- item 17: provider=<not a provider> --------------------------------------------


@pytest.mark.parametrize("provider, fragment", NOT_PROVIDERS)
@responses.activate
def test_chat_completion_with_something_that_is_not_a_provider_is_a_typed_error(provider, fragment):
    for stream in (False, True):
        with pytest.raises(InvalidArgumentError) as info:
            ChatCompletion.create(model="gpt-4", messages=MESSAGES, provider=provider, stream=stream)
        assert "provider must be a provider class (such as FlowGpt), its registered name" in str(info.value)
        assert fragment in str(info.value)
    with pytest.raises(InvalidArgumentError, match="provider must be"):
        asyncio.run(ChatCompletion.create_async(model="gpt-4", messages=MESSAGES, provider=provider))
    assert len(responses.calls) == 0


def test_check_provider_accepts_what_is_a_provider():
    retry = RetryProvider([FlowGpt, Ylokh])
    assert check_provider(None) is None
    assert check_provider(FlowGpt) is FlowGpt and check_provider("gprochat") is GPROChat
    assert check_provider(retry) is retry

    class Mine(Provider):  # a user's own provider, registered or not
        default_model = "m"

    assert check_provider(Mine) is Mine
    with pytest.raises(ProviderNotFoundError, match="no provider named 'Bing'"):
        check_provider("Bing")


# -- item 17: Client checks its arguments when it is made ----------------------------


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"provider": "Bing"}, ProviderNotFoundError, "no provider named 'Bing'"),
        ({"provider": 5}, InvalidArgumentError, "not int 5"),
        ({"provider": NotAProvider}, InvalidArgumentError, "NotAProvider, which is not a Provider subclass"),
        ({"timeout": math.nan}, InvalidArgumentError, "timeout"),
        ({"timeout": math.inf}, InvalidArgumentError, "timeout"),
        ({"timeout": -1}, InvalidArgumentError, "timeout"),
        ({"timeout": 0}, InvalidArgumentError, "timeout"),
        ({"timeout": (1, 2, 3)}, InvalidArgumentError, "timeout"),
        ({"timeout": (1, math.nan)}, InvalidArgumentError, "timeout"),
        ({"timeout": "10"}, InvalidArgumentError, "timeout"),
        ({"timeout": True}, InvalidArgumentError, "timeout"),
        ({"base_url": "ftp://h/x"}, InvalidArgumentError, "base_url must look like"),
        ({"base_url": "localhost:8080"}, InvalidArgumentError, "base_url must look like"),
        ({"base_url": "http://h:99999"}, InvalidArgumentError, "base_url must look like"),
        ({"base_url": 8080}, InvalidArgumentError, "base_url must look like"),
        ({"proxy": "localhost:3128"}, InvalidArgumentError, "proxy must be a URL"),
        ({"proxy": "ftp://h:21"}, InvalidArgumentError, "proxy must be a URL"),
        ({"proxy": 3128}, InvalidArgumentError, "proxy must be a URL"),
        ({"api_key": ""}, InvalidArgumentError, "api_key must be a non-empty string"),
        ({"api_key": 12345}, InvalidArgumentError, "api_key must be a non-empty string, not int"),
    ],
)
def test_client_checks_its_arguments_when_constructed(kwargs, error, fragment):
    with pytest.raises(error) as info:
        Client(**kwargs)
    assert fragment in str(info.value)


def test_client_errors_do_not_echo_secrets():
    with pytest.raises(InvalidArgumentError) as info:
        Client(proxy="ftp://user:S3CRET@proxy:21")
    assert "S3CRET" not in str(info.value)
    with pytest.raises(InvalidArgumentError) as info:
        Client(base_url="ftp://user:S3CRET@h/?key=S3CRET")
    assert "S3CRET" not in str(info.value)


def test_client_accepts_good_arguments():
    retry = RetryProvider([FlowGpt, Ylokh])
    for provider in (None, FlowGpt, "gprochat", retry):
        assert Client(provider).provider is provider
    client = Client(OpenAICompatible, base_url="http://localhost:11434/v1/", api_key="sk-x", proxy="https://h:1080",
                    timeout=(3, 60))
    assert client.timeout == (3, 60) and client.proxy == "https://h:1080"
    Client(timeout=2.5, proxy="http://proxy:3128")
    import importlib.util

    if importlib.util.find_spec("socks") is None:  # the socks extra is not installed: say how to get it
        with pytest.raises(llmproviders.InvalidArgumentError, match="PySocks"):
            Client(proxy="socks5h://h:1080")
    else:
        assert Client(proxy="socks5h://h:1080").proxy == "socks5h://h:1080"


# -- item 11 (first part): repr without secrets --------------------------------------


def test_client_repr_shows_base_url_without_password_or_query():
    client = Client(OpenAICompatible, base_url="https://user:S3CRET-PASS@api.test:8443/v1?api-key=S3CRET-QUERY#frag",
                    api_key="sk-S3CRET-KEY")
    shown = repr(client)
    assert "S3CRET" not in shown and "user" not in shown
    assert shown == "<Client provider='OpenAICompatible' base_url='https://api.test:8443/v1'>"
    assert repr(Client()) == "<Client provider=None base_url=None>"


# -- item 23: GPROChat's default model finds it --------------------------------------


def test_choosing_by_model_matches_the_default_model_without_io():
    assert GPROChat.models == [] and GPROChat.default_model == "gemini-1.5-pro"
    with responses.RequestsMock():  # any request fails the test
        assert resolve_provider(None, "gemini-1.5-pro") is GPROChat
        assert resolve_provider(None, "gpt-4") is Chatgpt4Online  # in its models
        assert resolve_provider(None, "claude-v2") is FlowGpt
        assert resolve_provider(None, "gemini") is FlowGpt  # an alias


def test_client_and_chat_completion_find_gprochat_by_its_default_model(llm_emulator):
    client = Client(base_url=llm_emulator.base_url)
    completion = client.chat.completions.create(model="gemini-1.5-pro", messages=MESSAGES)
    assert completion.choices[0].message.content and completion.model == "gemini-1.5-pro"
    chunks = list(client.chat.completions.create(model="gemini-1.5-pro", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == completion.choices[0].message.content
    text = ChatCompletion.create(model="gemini-1.5-pro", messages=MESSAGES, base_url=llm_emulator.base_url)
    assert text == completion.choices[0].message.content
    paths = {request.path for request in llm_emulator.requests}
    assert paths == {"/api/generate"}, paths  # GPROChat's endpoint, nothing else


def test_choosing_by_model_errors():
    with pytest.raises(ProviderNotFoundError, match="no provider lists model 'no-such-model'; pass provider="):
        resolve_provider(None, "no-such-model")
    with pytest.raises(ProviderNotFoundError, match="no provider can be chosen without a model"):
        resolve_provider(None, None)
    with pytest.raises(ModelNotSupportedError, match="model must be a string"):
        resolve_provider(None, ["gpt-4"])  # type: ignore[arg-type]


# -- item 24: @overload --------------------------------------------------------------


def _overload_returns(function_name):
    """The return annotations of the ``@overload`` stubs of ``ChatCompletion.<name>``, read
    from the source (works on every Python version)."""
    source = pathlib.Path(inspect.getsourcefile(ChatCompletion)).read_text()
    tree = ast.parse(source)
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ChatCompletion"]
    returns = []
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function_name:
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if "overload" in decorators:
                assert decorators == ["overload", "staticmethod"]
                stream = [a for a in node.args.args + node.args.kwonlyargs if a.arg == "stream"][0]
                returns.append((ast.unparse(stream.annotation), ast.unparse(node.returns)))
    return returns


def test_chat_completion_create_is_overloaded_on_stream():
    assert _overload_returns("create") == [
        ("Literal[False]", "str"),
        ("Literal[True]", "Stream"),
        ("Literal[True]", "Stream"),
        ("bool", "Union[str, Stream]"),
    ]
    assert _overload_returns("create_async") == [
        ("Literal[False]", "str"),
        ("Literal[True]", "AsyncStream"),
        ("Literal[True]", "AsyncStream"),
        ("bool", "Union[str, AsyncStream]"),
    ]
    if hasattr(typing, "get_overloads"):  # Python 3.11+: the runtime registry agrees
        assert len(typing.get_overloads(ChatCompletion.create)) == 4
        assert len(typing.get_overloads(ChatCompletion.create_async)) == 4


@responses.activate
def test_the_overloads_describe_what_create_returns():
    responses.add(responses.POST, BASE + "/chat/completions", json={
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}]})
    assert ChatCompletion.create("m", MESSAGES, OpenAICompatible, base_url=BASE) == "whole"
    stream = ChatCompletion.create("m", MESSAGES, OpenAICompatible, True, base_url=BASE)
    assert isinstance(stream, Stream)
    stream.close()
    with pytest.raises(InvalidArgumentError, match="stream must be True or False, not 'no'"):
        ChatCompletion.create("m", MESSAGES, OpenAICompatible, "no", base_url=BASE)  # type: ignore[call-overload]


# -- item 26: g4f's parameters and llmproviders.typing ---------------------------------


def test_ignored_skips_providers_when_choosing_by_model():
    assert resolve_provider(None, "gpt-3.5-turbo") is FlowGpt
    assert resolve_provider(None, "gpt-3.5-turbo", ignored=["FlowGpt"]) is Ylokh  # Ylokh's default model
    assert resolve_provider(None, "gpt-3.5-turbo", ignored=("flowgpt", "Bing")) is Ylokh  # case, unknown names
    with pytest.raises(ProviderNotFoundError) as info:
        resolve_provider(None, "gpt-3.5-turbo", ignored={"FlowGpt", "Ylokh"})
    assert "can take this call (FlowGpt is in ignored; Ylokh is in ignored)" in str(info.value)
    assert resolve_provider(FlowGpt, "gpt-4", ignored=["FlowGpt"]) is FlowGpt  # explicit: used, as in g4f
    with pytest.raises(InvalidArgumentError, match=r"ignored must be a list of provider names, not str \(did you mean ignored=\['FlowGpt'\]\?\)"):
        resolve_provider(None, "gpt-4", ignored="FlowGpt")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="ignored must hold provider names"):
        resolve_provider(None, "gpt-4", ignored=[FlowGpt])  # type: ignore[list-item]


def test_ignored_and_ignore_working_filter_a_retry_provider_without_changing_it():
    retry = RetryProvider([FlowGpt, GPROChat, OpenAICompatible], shuffle=True)
    kept = resolve_provider(retry, None, ignored=["GPROChat"])
    assert [p.__name__ for p in kept.providers] == ["FlowGpt", "OpenAICompatible"] and kept.shuffle
    assert [p.__name__ for p in retry.providers] == ["FlowGpt", "GPROChat", "OpenAICompatible"]
    assert resolve_provider(retry, None) is retry
    working = resolve_provider(retry, None, ignore_working=False)
    assert [p.__name__ for p in working.providers] == ["OpenAICompatible"]
    with pytest.raises(InvalidArgumentError, match="every provider of the RetryProvider"):
        resolve_provider(RetryProvider([FlowGpt]), None, ignored=["FlowGpt"])


@responses.activate
def test_ignore_working_defaults_to_allowing_the_offline_seed_providers():
    assert all(p.working is False for p in (FlowGpt, GPROChat, Chatgpt4Online, Ylokh))
    assert resolve_provider(FlowGpt, None) is FlowGpt  # today's behaviour, the default
    assert resolve_provider(FlowGpt, None, ignore_working=True) is FlowGpt
    with pytest.raises(InvalidArgumentError) as info:
        ChatCompletion.create(model=None, messages=MESSAGES, provider=FlowGpt, ignore_working=False)
    assert str(info.value).startswith("FlowGpt is not working (working = False: its site is offline): pass ignore_working=True")
    assert info.value.provider == "FlowGpt"
    with pytest.raises(ProviderNotFoundError, match=r"\(Chatgpt4Online is not working \(working = False: its site is offline\)\)"):
        resolve_provider(None, "gpt-4", ignore_working=False)
    with pytest.raises(InvalidArgumentError, match="ignore_working must be True or False"):
        resolve_provider(None, "gpt-4", ignore_working="yes")  # type: ignore[arg-type]
    assert len(responses.calls) == 0


class Whole(Provider):
    """A provider that cannot stream (not registered)."""

    supports_stream = False
    default_model = "whole-1"


@responses.activate
def test_ignore_stream_allows_streaming_with_a_provider_that_cannot(monkeypatch):
    with pytest.raises(InvalidArgumentError) as info:
        ChatCompletion.create(model=None, messages=MESSAGES, provider=Whole, stream=True)
    assert str(info.value) == (
        "Whole does not stream (supports_stream = False): pass stream=False, or ignore_stream=True to call it anyway"
    )
    assert resolve_provider(Whole, None, stream=False) is Whole
    assert resolve_provider(Whole, None, stream=True, ignore_stream=True) is Whole
    monkeypatch.setattr(GPROChat, "supports_stream", False)
    assert resolve_provider(None, "gemini-1.5-pro", stream=False) is GPROChat
    with pytest.raises(ProviderNotFoundError, match=r"GPROChat does not stream \(supports_stream = False\)"):
        resolve_provider(None, "gemini-1.5-pro", stream=True)
    assert resolve_provider(None, "gemini-1.5-pro", stream=True, ignore_stream=True) is GPROChat
    with pytest.raises(InvalidArgumentError, match="ignore_stream must be True or False"):
        resolve_provider(None, "gpt-4", ignore_stream=None)  # type: ignore[arg-type]
    assert len(responses.calls) == 0


@responses.activate
def test_auth_is_the_key_for_providers_that_take_one():
    responses.add(responses.POST, BASE + "/chat/completions", json={
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})
    assert ChatCompletion.create("m", MESSAGES, OpenAICompatible, auth="sk-AUTH-KEY", base_url=BASE) == "ok"
    assert responses.calls[0].request.headers["Authorization"] == "Bearer sk-AUTH-KEY"
    same = ChatCompletion.create("m", MESSAGES, OpenAICompatible, auth="sk-AUTH-KEY", api_key="sk-AUTH-KEY", base_url=BASE)
    assert same == "ok"
    with pytest.raises(InvalidArgumentError, match="auth= and api_key= are two different keys") as info:
        ChatCompletion.create("m", MESSAGES, OpenAICompatible, auth="sk-AUTH-KEY", api_key="sk-OTHER", base_url=BASE)
    assert "sk-" not in str(info.value)
    with pytest.raises(UnsupportedOptionError) as info:
        ChatCompletion.create(None, MESSAGES, FlowGpt, auth="sk-AUTH-KEY")
    assert str(info.value).startswith("FlowGpt takes no key: auth= is passed as api_key= to providers that accept one")
    assert "sk-AUTH-KEY" not in str(info.value)
    with pytest.raises(UnsupportedOptionError, match="^FlowGpt, GPROChat take no key"):
        ChatCompletion.create(None, MESSAGES, RetryProvider([FlowGpt, GPROChat, Ylokh]), auth="sk-AUTH-KEY")
    with pytest.raises(InvalidArgumentError, match="auth must be a non-empty string"):
        ChatCompletion.create("m", MESSAGES, OpenAICompatible, auth="", base_url=BASE)
    with pytest.raises(UnsupportedOptionError):
        asyncio.run(ChatCompletion.create_async(None, MESSAGES, FlowGpt, auth="k"))
    assert len(responses.calls) == 2
    sent = json.loads(responses.calls[0].request.body)
    assert "auth" not in sent and "api_key" not in sent  # the key travels in the header only


def test_g4f_parameters_are_documented():
    doc = inspect.getdoc(ChatCompletion)
    for name in ("ignored", "ignore_working", "ignore_stream", "auth"):
        assert f"``{name}``" in doc
    readme = (pathlib.Path(llmproviders.__file__).parent.parent / "README.md").read_text()
    for name in ("ignored=", "ignore_working=", "ignore_stream=", "auth=", "llmproviders.typing"):
        assert name in readme, name


def test_llmproviders_typing_has_g4f_names():
    import llmproviders.typing as lt

    for name in ("Messages", "Message", "CreateResult", "AsyncResult", "ImageType",
                 "Any", "AsyncGenerator", "AsyncIterator", "Generator", "Iterator", "Union", "List", "Dict", "Optional",
                 "Tuple", "Type", "IO", "TypedDict"):
        assert name in lt.__all__ and hasattr(lt, name), name
    assert all(hasattr(lt, name) for name in lt.__all__)
    assert lt.Messages is llmproviders.Messages
    message: lt.Message = {"role": "user", "content": [{"type": "text", "text": "hi"}, llmproviders.image(b"GIF89a..")]}
    assert ChatCompletion.create is not None and llmproviders._messages.validate_messages([message])
    assert typing.get_type_hints(lt.Message)["role"] is str
