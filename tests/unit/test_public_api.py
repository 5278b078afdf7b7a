"""The curated public surface: __all__ is honest, logging is quiet, types ship."""

import logging
import pathlib
import re
import subprocess
import sys

import llmproviders


def test_all_lists_exactly_the_public_names():
    public = {name for name in vars(llmproviders) if not name.startswith("_")} | set(llmproviders._LAZY)
    modules = {name for name in public if type(getattr(llmproviders, name)).__name__ == "module"}
    assert set(llmproviders.__all__) - {"__version__"} == public - modules
    for name in llmproviders.__all__:
        assert hasattr(llmproviders, name), name


def test_every_error_derives_from_the_root():
    for name in llmproviders.__all__:
        obj = getattr(llmproviders, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, llmproviders.LLMProvidersError), name


def test_input_errors_are_builtin_kinds_too():
    assert issubclass(llmproviders.InvalidMessagesError, ValueError)
    assert issubclass(llmproviders.ModelNotSupportedError, ValueError)
    assert issubclass(llmproviders.UnsupportedOptionError, TypeError)
    assert issubclass(llmproviders.ProviderNotFoundError, LookupError)


def test_library_logger_has_a_null_handler_and_root_is_untouched():
    handlers = logging.getLogger("llmproviders").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    # In a fresh interpreter (pytest configures logging itself): importing the
    # library and using it leaves the root logger exactly as it was.
    script = (
        "import logging; root = logging.getLogger(); before = list(root.handlers), root.level\n"
        "import llmproviders, llmproviders.testing\n"
        "llmproviders.FlowGpt.get_model('gemini')\n"
        "assert (list(root.handlers), root.level) == before, root.handlers\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    root = pathlib.Path(llmproviders.__file__).parent
    for source in root.rglob("*.py"):
        assert not re.search(r"\blogging\.(debug|info|warning|error|exception|basicConfig)\(", source.read_text()), source


def test_version_is_defined_once_and_read_by_setup_cfg():
    root = pathlib.Path(llmproviders.__file__).parent
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", llmproviders.__version__)
    setup_cfg = (root.parent / "setup.cfg").read_text()
    assert "version = attr: llmproviders.__version__.__version__" in setup_cfg
    assert (root / "py.typed").exists()


def test_seed_metadata():
    from llmproviders import Chatgpt4Online, FlowGpt, GPROChat, Ylokh

    assert FlowGpt.url == "https://flowgpt.com/chat"
    assert FlowGpt.supports_message_history and FlowGpt.supports_system_message
    assert FlowGpt.default_model == "gpt-3.5-turbo" and len(FlowGpt.models) == 13
    assert FlowGpt.model_aliases == {"gemini": "google-gemini", "gemini-pro": "google-gemini"}
    assert GPROChat.url == "https://gprochat.com"
    assert GPROChat.api_endpoint == "https://gprochat.com/api/generate"
    assert GPROChat.supports_stream and GPROChat.supports_message_history
    assert GPROChat.default_model == "gemini-1.5-pro" and GPROChat.models == []
    assert Chatgpt4Online.url == "https://chatgpt4online.org"
    assert Chatgpt4Online.api_endpoint == "/wp-json/mwai-ui/v1/chats/submit"
    assert Chatgpt4Online.default_model == "gpt-4" and Chatgpt4Online.models == ["gpt-4"]
    assert Ylokh.url == "https://chat.ylokh.xyz"
    assert Ylokh.supports_message_history and Ylokh.supports_gpt_35_turbo
    for provider in (FlowGpt, GPROChat, Chatgpt4Online, Ylokh):
        assert provider.working is False


def test_importing_the_package_does_not_import_asyncio():
    """The core is synchronous: the asyncio facade loads when first used."""
    script = (
        "import sys, llmproviders\n"
        "from llmproviders import FlowGpt, Stream, Client, ChatCompletion, RetryProvider, events\n"
        "assert 'asyncio' not in sys.modules, sorted(m for m in sys.modules if 'asyncio' in m)\n"
        "llmproviders.AsyncStream  # the facade, on first use\n"
        "assert 'asyncio' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_the_providers_load_when_first_named_or_looked_up():
    """``import llmproviders`` leaves the provider modules (and sqlite3) for later; naming
    one, ``get_provider`` and ``list_providers`` load them, the seeds first."""
    script = (
        "import sys, llmproviders\n"
        "assert 'llmproviders.providers' not in sys.modules\n"
        "assert 'sqlite3' not in sys.modules\n"
        "assert llmproviders.get_provider('ylokh').__name__ == 'Ylokh'\n"
        "assert [p.__name__ for p in llmproviders.list_providers()] == "
        "['FlowGpt', 'GPROChat', 'Chatgpt4Online', 'Ylokh', 'OpenAICompatible']\n"
        "assert llmproviders.FlowGpt is llmproviders.get_provider('FlowGpt')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    registering_first = (
        "import llmproviders\n"
        "@llmproviders.register_provider\n"
        "class Mine(llmproviders.Provider):\n"
        "    pass\n"
        "assert [p.__name__ for p in llmproviders.list_providers()][0] == 'FlowGpt'\n"
        "assert [p.__name__ for p in llmproviders.list_providers()][-1] == 'Mine'\n"
    )
    subprocess.run([sys.executable, "-c", registering_first], check=True, timeout=60)


def test_threads_that_first_use_the_providers_together_all_find_them():
    """Review: the providers' entry in sys.modules exists before they are registered, so a
    thread that took it as "loaded" found an empty registry (ProviderNotFoundError in 30
    of 40 runs). Each run is a fresh interpreter: the race is in the first use."""
    script = (
        "import sys, threading, llmproviders\n"
        "sys.setswitchinterval(1e-5)\n"
        "out = []\n"
        "go = threading.Barrier(4)\n"
        "def worker(i):\n"
        "    go.wait()\n"
        "    try:\n"
        "        out.append(llmproviders.get_provider('Ylokh').__name__ if i % 2 else\n"
        "                   [p.__name__ for p in llmproviders.list_providers()][3])\n"
        "    except Exception as e:\n"
        "        out.append(repr(e))\n"
        "threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "assert out == ['Ylokh'] * 4, out\n"
    )
    for _ in range(8):
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
