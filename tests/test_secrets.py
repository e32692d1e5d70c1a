"""The API key never leaves the request header: a recognisable key is sent by every magic, every error
path and the teaching notebooks, and searched for in outputs, saved notebooks, reprs, exceptions,
panel widget state and DEBUG logs of httpx, httpcore and qwen_magics; a key typed into ``%qwen
login``'s form or read from a .env file is searched for in the same places and in the history. The
outputs' metadata holds each answer's record (replayed answers' too), and it is searched as well.
(The browser test of ``%qwen login`` searches the notebook JupyterLab saves.)"""

from __future__ import annotations

import json
import logging
import secrets
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from qwen_magics import config
from qwen_magics.api.client import AsyncClient, Client, ask
from qwen_magics.api.record import answers
from qwen_magics.emulator import Emulator

from .kernels import kernel_env

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LOGGERS = ("httpx", "httpcore", "qwen_magics", "asyncio")


def new_key() -> str:
    return "sk-SECRET-canary-" + secrets.token_hex(10)


class Haystack:
    """Everything a user or a log reader could see; ``find(key)`` says where the key shows."""

    def __init__(self) -> None:
        self.pieces: list[tuple[str, str]] = []

    def add(self, where: str, value: Any) -> None:
        self.pieces.append((where, value if isinstance(value, str) else json.dumps(value, default=repr)))

    def add_exception(self, where: str, exc: BaseException) -> None:
        self.add(where, "".join(traceback.format_exception(exc)) + repr(exc) + repr(vars(exc)))

    def records(self) -> list[dict[str, Any]]:
        """The answers' records the outputs carry in their metadata (``qwen_magics``)."""
        found = []
        for _, text in self.pieces:
            if '"qwen_magics"' in text:
                found.extend(answers(json.loads(text)))
        return found

    def find(self, key: str) -> list[str]:
        """Where the key shows: whole, or the part a masked key (sk-…abcd) never shows."""
        hidden = key[3:-4]
        return [where for where, text in self.pieces if key in text or hidden in text]


class LogCapture(logging.Handler):
    """Every record of the HTTP stack and ours at DEBUG, formatted as a log file would hold it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    handler = LogCapture()
    saved = {name: logging.getLogger(name).level for name in LOGGERS}
    root = logging.getLogger()
    root.addHandler(handler)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def canary(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Emulator, str]]:
    """The emulator accepting only a recognisable key, which the environment holds."""
    key = new_key()
    with Emulator(generator="simple", api_key=key) as emu:
        monkeypatch.setenv("DASHSCOPE_BASE_URL", emu.base_url)
        monkeypatch.setenv("DASHSCOPE_API_KEY", key)
        yield emu, key


# Every magic, with the options that take other paths (conversation, JSON, grid, panel, commands).
CELLS = [
    ("", "Say hi."),
    ("-c", "And once more."),
    ("--no-stream --no-thinking", "Without streaming."),
    ("--raw -o answer -s 'Be terse.'", "Plain text."),
    ("--json", "Give one planet as JSON."),
    ("--schema 'name, moons int'", "A planet."),
    ("--multi", "List two planets."),
    ("--compare 'temperature=0.2,0.8' --samples 2", "Name a colour."),
    ("--panel -t 0.3 -o p", "Name a sea."),
]
LINES = [
    "config",
    "config temperature=0.3",
    "models",
    "history",
    "help",
    "login",
    "-t 0.2 what is 2+2?",
    "panel What is 3+3?",
    "reset",
    "config temperature=none",
]


def run_magic(ip: Any, hay: Haystack, where: str, line: str, cell: str | None = None) -> Any:
    result = None
    with capture_output() as cap:
        try:
            if cell is None:
                result = ip.run_line_magic("qwen", line)
            else:
                result = ip.run_cell_magic("qwen", line, cell)
        except UsageError as exc:
            hay.add_exception(where, exc)
    hay.add(f"{where} stdout", cap.stdout)
    hay.add(f"{where} stderr", cap.stderr)
    for i, out in enumerate(cap.outputs):
        hay.add(f"{where} output {i}", {"data": out.data, "metadata": out.metadata})
    return result


def widget_states(hay: Haystack, where: str) -> int:
    """Every live widget's state, as the front end would receive (and a notebook save) it."""
    from ipywidgets.widgets.widget import _instances

    for model_id, widget in list(_instances.items()):
        hay.add(f"{where} widget {type(widget).__name__} {model_id}", widget.get_state())
    return len(_instances)


def test_every_magic_and_error_path_keeps_the_key_out_of_sight(
    canary: tuple[Emulator, str], logs: LogCapture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    import qwen_magics
    from qwen_magics import historydb

    emu, key = canary
    history = tmp_path / "history" / "history.db"
    monkeypatch.setenv("QWEN_HISTORY", str(history))  # every answer below is recorded
    hay = Haystack()
    ip = InteractiveShell.instance()
    ip.user_ns.pop("_qwen", None)
    with capture_output() as cap:
        ip.run_line_magic("load_ext", "qwen_magics")
    hay.add("load_ext", cap.stdout + cap.stderr)
    try:
        for line, cell in CELLS:
            run_magic(ip, hay, f"%%qwen {line}", line, cell)
        for line in LINES:
            run_magic(ip, hay, f"%qwen {line}", line)
        panel = ip.user_ns["p"]
        # the outputs carry their answers' records (what a saved notebook replays), replayed ones too
        recorded = hay.records()
        assert len(recorded) >= 6 and all(r["text"] for r in recorded)
        run_magic(ip, hay, "%qwen replay on", "replay on")
        for line, cell in CELLS[:-1]:
            run_magic(ip, hay, f"replayed %%qwen {line}", line, cell)
        assert len(hay.records()) > len(recorded)
        run_magic(ip, hay, "%qwen replay off", "replay off")
        # the key typed into a magic is refused without being repeated
        run_magic(ip, hay, "%qwen config api_key=", f"config api_key={key}")

        # error paths: refused key, server errors, broken streams, unknown model, no connection
        emu.api_key = "sk-another-key-entirely"
        run_magic(ip, hay, "refused key", "--no-thinking", "hi")
        emu.api_key = key
        for kind, options, line in (
            ("status", {"status": 500, "times": 1}, "--no-thinking"),  # retried, logged
            ("status", {"status": 429, "times": None}, "--no-thinking"),  # retries run out
            ("cut", {"after": 2}, "--no-thinking"),
            ("cut", {"after": 2}, "--json"),
            ("error_chunk", {"after": 2}, "--no-thinking"),
            ("error_chunk", {"after": 2, "times": None}, "--json"),
        ):
            emu.reset()
            emu.add_fault(kind, **options)
            run_magic(ip, hay, f"fault {kind} {options} {line}", line, "a planet as JSON")
        emu.reset()
        run_magic(ip, hay, "unknown model", "-m no-such-model", "hi")
        for bad in (key + "\n", key + "\x00x", " " + key + "’"):  # pasted with a stray character
            config.configure(api_key=bad)
            run_magic(ip, hay, f"key with {bad[-1]!r}", "--no-thinking", "hi")
            run_magic(ip, hay, f"models, key with {bad[-1]!r}", "models")
        config.configure(api_key=None)
        run_magic(ip, hay, "%qwen config base_url", "config base_url=http://127.0.0.1:9")
        run_magic(ip, hay, "no connection", "--no-thinking", "hi")
        run_magic(ip, hay, "models, no connection", "models")
        run_magic(ip, hay, "%qwen config base_url=none", "config base_url=none")

        # what the notebook keeps: variables, their reprs, the panel's widgets
        for name in ("_qwen", "answer"):
            value = ip.user_ns.get(name)
            hay.add(f"repr {name}", repr(value) + str(value) + repr(vars(value)) if value is not None else "")
            if hasattr(value, "_repr_markdown_"):
                hay.add(f"{name} markdown", value._repr_markdown_())
        if panel is not None:
            panel.run_button.click()
            assert panel.wait(10)
            hay.add("panel repr and code", repr(panel) + str(panel.code))
        assert widget_states(hay, "in-process") > 10
        run_magic(ip, hay, "%qwen log", "log -n 100")
    finally:
        ip.run_line_magic("unload_ext", "qwen_magics")
        config._configured.clear()

    # the Python API: reprs and exceptions with the key passed as an argument
    hay.add("settings", repr(config.settings(api_key=key)))
    with Client(api_key=key, base_url=emu.base_url) as client:
        hay.add("Client repr", repr(client))  # its attributes hold the key it was given, as they must
        response = client.ask("hi", thinking=False)
        hay.add("Response", repr(response) + repr(vars(response)) + response.footer())
    hay.add("AsyncClient repr", repr(AsyncClient(api_key=key)))
    for kwargs in ({"base_url": "http://127.0.0.1:9"}, {"base_url": emu.base_url, "model": "nope"}):
        try:
            ask("hi", api_key=key, **kwargs)
        except Exception as exc:
            hay.add_exception(f"ask {kwargs}", exc)
        else:
            raise AssertionError(f"ask {kwargs} should have failed")

    # the history: the database file with its -wal, an export, and %qwen log
    exported = tmp_path / "export.jsonl"
    assert qwen_magics.history.export(exported) > 20
    hay.add("history export", exported.read_text())
    assert historydb.flush(10)
    for path in sorted(history.parent.iterdir()):
        hay.add(f"history file {path.name}", path.read_bytes().decode("latin-1"))

    hay.add("logs", "\n".join(logs.lines))
    assert any("HTTP Request: POST" in line for line in logs.lines)  # the HTTP stack did log at DEBUG
    assert any("send_request_headers" in line for line in logs.lines)
    assert not any("Bearer" in line or "authorization" in line.lower() for line in logs.lines)
    assert hay.find(key) == []
    assert all(r.auth in ("ok", "refused") for r in emu.requests if r.path.endswith("/completions"))


def test_a_key_typed_into_login_or_read_from_a_dotenv_stays_out_of_sight(
    clean_env: None, logs: LogCapture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from ipywidgets.widgets.widget import _instances

    key = new_key()
    hay = Haystack()
    ip = InteractiveShell.instance()
    with Emulator(generator="simple", api_key=key) as emu:
        monkeypatch.setenv("DASHSCOPE_BASE_URL", emu.base_url)
        try:
            with capture_output() as cap:
                ip.run_line_magic("load_ext", "qwen_magics")
            hay.add("load_ext", cap.stdout + cap.stderr)
            # typed where it does not belong: refused without being repeated
            run_magic(ip, hay, "%qwen login KEY", f"login {key}")
            run_magic(ip, hay, "%qwen login region KEY", f"login --region {key}")
            form = run_magic_form(ip, hay, "%qwen login")
            form.key.value = " " + key + " x"  # a blank inside: refused by position
            hay.add("form status after a bad key", form.status.value)
            widget_states(hay, "form waiting")
            with capture_output() as cap:
                form.key.value = key  # Enter in the field
            hay.add("login confirmation", [o.data for o in cap.outputs] + [cap.stdout, cap.stderr])
            widget_states(hay, "after login")
            hay.add("form reprs", repr(form) + repr(form.key) + repr(form.widget))
            for line, cell in CELLS[:3]:
                run_magic(ip, hay, f"%%qwen {line} after login", line, cell)
            for line in ("config", "models", "-t 0.2 what is 2+2?"):
                run_magic(ip, hay, f"%qwen {line} after login", line)
            assert [r.auth for r in emu.chat_requests] == ["ok"] * 4
            emu.api_key = "sk-another-key-entirely"
            run_magic(ip, hay, "refused login key", "--no-thinking", "hi")
            emu.api_key = key
            hay.add("history", "\n".join(ip.history_manager.input_hist_raw))
            hay.add("settings", repr(config.settings()) + config.key_source())
            assert len(_instances) > 0
        finally:
            ip.run_line_magic("unload_ext", "qwen_magics")
            config._configured.clear()

        # the same key in a .env file above the working directory
        (tmp_path / ".env").write_text(f"DASHSCOPE_API_KEY={key}\n", encoding="utf-8")
        (tmp_path / "work").mkdir()
        monkeypatch.chdir(tmp_path / "work")
        monkeypatch.setattr(config, "_dotenv", None)
        try:
            with capture_output() as cap:
                ip.run_line_magic("load_ext", "qwen_magics")
            hay.add("load_ext with .env", cap.stdout + cap.stderr)
            run_magic(ip, hay, "%%qwen with .env", "--no-thinking", "hi")
            run_magic(ip, hay, "%qwen config with .env", "config")
            hay.add(".env reprs", repr(config.dotenv_file()) + repr(config.settings()) + config.key_source())
            assert emu.chat_requests[-1].auth == "ok"
        finally:
            ip.run_line_magic("unload_ext", "qwen_magics")

    hay.add("logs", "\n".join(logs.lines))
    assert any("HTTP Request: POST" in line for line in logs.lines)
    assert hay.find(key) == []


def run_magic_form(ip: Any, hay: Haystack, where: str) -> Any:
    """``%qwen login``'s form, found by the model id of the view it showed."""
    import gc

    from ipywidgets.widgets.widget import _instances

    from qwen_magics.widgets.login import LoginForm

    with capture_output() as cap:
        ip.run_line_magic("qwen", "login")
    hay.add(where, [o.data for o in cap.outputs])
    view = "application/vnd.jupyter.widget-view+json"
    (model_id,) = [o.data[view]["model_id"] for o in cap.outputs if view in o.data]
    box = _instances[model_id]

    return next(o for o in gc.get_objects() if isinstance(o, LoginForm) and o.widget is box)


# -- a real kernel: the teaching notebooks and every magic, saved ----------------------------------
LOGGING_CELL = (
    "import logging, sys\n"
    "logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, force=True)\n"
    "for name in ('httpx', 'httpcore', 'qwen_magics'):\n"
    "    logging.getLogger(name).setLevel(logging.DEBUG)"
)
EVERY_MAGIC = [
    "%load_ext qwen_magics",
    *[f"%%qwen {line}\n{cell}" for line, cell in CELLS],
    *[f"%qwen {line}" for line in LINES],
    "p.run_button.click()\np.wait(10)\nprint(repr(p), p.code)",
    "import json\nfrom ipywidgets.widgets.widget import _instances\n"
    "print(json.dumps([w.get_state() for w in _instances.values()], default=repr))",
    "print(repr(_qwen), vars(_qwen))",
    "import qwen_magics as qm\nprint(qm.settings())",
    "qm.ask('hi', model='no-such-model')",  # an exception with its traceback, saved
]


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.kernel
@pytest.mark.timeout(600)
def test_notebooks_and_every_magic_in_a_kernel_save_no_key(clean_env: None, tmp_path: Path) -> None:
    import nbformat  # here, not at the top: collecting the in-process tests stays free of its 2 s import
    from nbclient import NotebookClient

    key = new_key()
    made = nbformat.v4.new_notebook()
    made.cells = [nbformat.v4.new_code_cell(source) for source in EVERY_MAGIC]
    books = [("every magic", made)]
    books += [(path.name, nbformat.read(path, as_version=4)) for path in notebooks()]
    hay = Haystack()
    with Emulator(api_key=key, token_delay=0.0) as emu:  # the offline language model answers
        for name, nb in books:
            nb.cells.insert(0, nbformat.v4.new_code_cell(LOGGING_CELL))
            client = NotebookClient(
                nb,
                timeout=120,
                kernel_name="python3",
                allow_errors=True,
                resources={"metadata": {"path": tmp_path}},
            )
            client.execute(env=kernel_env(emu, key))
            saved = tmp_path / f"{name}.ipynb"
            nbformat.write(nb, saved)
            text = saved.read_text()
            hay.add(f"saved {name}", text)
            assert "DEBUG" in text and "HTTP Request: POST" in text, (
                f"{name}: the kernel's logs were not captured"
            )
        assert len(emu.chat_requests) > 20
    made_text = (tmp_path / "every magic.ipynb").read_text()
    assert "sk-…" + key[-4:] in made_text  # %qwen config shows the key masked, and only so
    assert hay.find(key) == []


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_key_sent_to_the_login_form_of_a_kernel_is_neither_echoed_nor_logged(
    clean_env: None, tmp_path: Path
) -> None:
    """What the front end sends on Enter, sent to a real kernel that logs at DEBUG (its own log with
    --debug, and the notebook's root logger on stdout): the key shows in no message and no log."""
    import time

    from jupyter_client.manager import KernelManager

    from .kernels import run

    key = new_key()
    log = tmp_path / "kernel.log"
    view = "application/vnd.jupyter.widget-view+json"
    with Emulator(generator="simple", api_key=key) as emu, open(log, "w") as out:
        km = KernelManager(kernel_name="python3")
        km.start_kernel(env=kernel_env(emu, ""), extra_arguments=["--debug"], stdout=out, stderr=out)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            messages = run(kc, LOGGING_CELL)[1]
            messages += run(kc, "%load_ext qwen_magics\n%qwen login")[1]
            (model_id,) = [
                m["content"]["data"][view]["model_id"]
                for m in messages
                if m["msg_type"] == "display_data" and view in m["content"]["data"]
            ]
            code = (
                "from ipywidgets.widgets.widget import _instances\n"
                f"print(_instances[{model_id!r}].children[0].children[1].model_id)"  # the key field
            )
            shown = run(kc, code)[1]
            messages += shown
            field = [m["content"]["text"] for m in shown if m["msg_type"] == "stream"][-1].split()[-1]
            state = {"method": "update", "state": {"value": key}, "buffer_paths": []}
            kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": field, "data": state}))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                "set for" in json.dumps(m["content"]) for m in messages
            ):
                try:
                    messages.append(kc.get_iopub_msg(timeout=0.5))
                except Exception:  # queue.Empty: nothing yet
                    pass
            messages += run(kc, "%%qwen --no-thinking\nhi")[1]
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        assert [r.auth for r in emu.chat_requests] == ["ok"]  # the key reached the kernel and was used
    hay = Haystack()
    hay.add("iopub", [m["content"] for m in messages])
    kernel_log = log.read_text()
    hay.add("kernel log", kernel_log)
    assert "comm_msg" in kernel_log and "DEBUG:Comm:" in json.dumps([m["content"] for m in messages])
    assert hay.find(key) == []
