"""Asking for the API key without showing it: ``login()`` and ``%qwen login``.

In a notebook front end (``display.live.is_rich_frontend``, the test every view uses) it is a form:
the region, a password field and a Log in button. Elsewhere (terminal IPython, a script, a kernel
without ipywidgets) it is ``getpass``, then the region. The key goes to ``config.set_key``: memory
only, never the notebook, its outputs, the history, the environment or a file.

The field sends its value to the kernel only when Enter is pressed or the field is left
(``continuous_update=False``), and the kernel clears it at once, so the widget state a notebook
saves never holds the key, and the kernel does not echo it back to the front ends as ipywidgets
echoes other values (``_key_field``); while the form is open, the debug logs of the comm package
and of ipykernel print the one message that carries it hidden (``_Hidden``). Once the key is set the form
closes, leaving a one-line confirmation with the key masked. A key set while the offline simulator
answers takes its place (``simulator.handover``); QWEN_OFFLINE=1 keeps the simulator and the
confirmation says so.
"""

from __future__ import annotations

import functools
import html
import logging
from typing import Any
from urllib.parse import urlparse

from .. import config, simulator
from ..display.live import is_rich_frontend
from ..display.widget import show_widget
from ..errors import ConfigError

__all__ = ["LoginForm", "ask_key", "login", "use_key"]

PROMPT = "DashScope API key (typing is not shown): "
INTRO = (
    "Paste your DashScope API key and press Enter. It stays in this kernel's memory only: "
    "not in the notebook, its outputs or the history."
)
STAND_IN = "qwen-magics login form: run %qwen login to type the key (a key is never saved in the notebook)."
_NOTHING = "nothing changed"

_open: LoginForm | None = None  # the form still waiting for a key; a newer one replaces it


def login(region: str | None = None) -> None:
    """Ask for a DashScope API key without showing it, and use it in this session only.

    In a notebook: a password field, the region (``region``, else the current one) and a Log in
    button; Enter submits too. In terminal IPython and in scripts: ``getpass``, then the region
    unless ``region`` is given (Enter keeps the current one). The key is kept in memory, never in
    the notebook, its outputs, the history, the environment or a file; set while the offline
    simulator answers, it sends the next request to Qwen Cloud.
    """
    ask_key(region, source="qwen_magics.login()")


def ask_key(region: str | None, *, source: str) -> None:
    """``login`` for ``source`` (what ``%qwen config`` says the key came from)."""
    try:
        chosen = config.region_name(region) if region else None
    except ConfigError:
        shown = _quoted(region or "")
        what = f"unknown region {shown}" if shown != "that" else "region= takes a region, not the key"
        raise ConfigError(f"login: {what}; choose one of {', '.join(config.REGIONS)}") from None
    if is_rich_frontend():
        try:
            form = LoginForm(chosen, source=source)
        except ImportError:  # no ipywidgets: the kernel's own password prompt
            pass
        else:
            form.show()
            return
    _ask_in_terminal(chosen, source)


def use_key(key: str, region: str | None, source: str) -> str:
    """Set the key (and the region when given): the line that says so, and that answers no longer
    come from the offline simulator when they did."""
    config.set_key(key, source=source)
    if region is not None and region != _current_region():
        config.configure(region=region)
    masked = config.mask_key(key)
    try:
        settings = config.settings()
    except ConfigError as exc:  # QWEN_REGION or the base URL is wrong: the key is kept all the same
        return f"qwen-magics: key {masked} set, in memory only; before it can be used: {exc}"
    if settings.offline:
        return (
            f"qwen-magics: key {masked} set, in memory only, but QWEN_OFFLINE=1 keeps answers on the "
            "offline simulator; unset QWEN_OFFLINE and the next request uses the key."
        )
    kept = "in memory only (not in the notebook, its outputs or the history)"
    if simulator.handover():  # the switch is said here, once, in the same line
        return (
            f"qwen-magics: key {masked} set, {kept}; answers now come from {_destination(settings)}, "
            "not the offline simulator."
        )
    return f"qwen-magics: key {masked} set for {_destination(settings)}, {kept}."


def _destination(settings: config.Settings) -> str:
    if settings.base_url_source == "region":
        return f"Qwen Cloud ({settings.where})"
    return settings.base_url


def _current_region() -> str | None:
    try:
        return config.settings().region
    except ConfigError:
        return None


def _own_base_url() -> str | None:
    """A base URL of the user's own, where the key will go whatever the region."""
    return config.configured().get("base_url") or config.environ().get("DASHSCOPE_BASE_URL") or None


def _quoted(text: str) -> str:
    """What the user typed, repeated only when it cannot be a key."""
    return repr(text) if len(text) <= 16 and not text.startswith("sk-") else "that"


# -- a terminal, a script ---------------------------------------------------------------------------
def _ask_in_terminal(region: str | None, source: str) -> None:
    import getpass

    from IPython.core.error import StdinNotImplementedError

    try:
        key = getpass.getpass(PROMPT).strip()
        if not key:
            print(f"qwen-magics: no key entered; {_NOTHING}.")
            return
        problem = config.key_problem(key)
        if problem:
            print(f"qwen-magics: {problem}; {_NOTHING}. Copy the key again.")
            return
        if region is None and _own_base_url() is None:
            region = _ask_region()
    except (KeyboardInterrupt, EOFError):
        print(f"\nqwen-magics: login cancelled; {_NOTHING}.")
        return
    except StdinNotImplementedError:
        raise ConfigError(
            "this front end cannot ask for the key: install ipywidgets for the login form "
            "(pip install 'qwen-magics[widgets]'), or put DASHSCOPE_API_KEY in a .env file"
        ) from None
    print(use_key(key, region, source))


def _ask_region() -> str | None:
    """The region typed, or None (Enter) for the current one."""
    current = _current_region() or config.DEFAULT_REGION
    names = ", ".join(config.REGIONS)
    while True:
        text = input(f"Region [{current}] ({names}): ").strip()
        if not text:
            return None
        try:
            return config.region_name(text)
        except ConfigError:
            print(f"  {_quoted(text)} is not a region; type one of {names}, or Enter for {current}")


# -- a notebook -------------------------------------------------------------------------------------
class _Hidden(logging.Filter):
    """Rewrites the debug records that would print a message to the key field, which holds the key:
    the comm package logs every message it handles, ipykernel (at --debug) every message it gets."""

    def __init__(self, comm_id: str) -> None:
        super().__init__()
        self.comm_id = comm_id

    def filter(self, record: logging.LogRecord) -> bool:
        if self.comm_id in str(record.msg) or self.comm_id in repr(record.args):
            record.msg, record.args = "(a message to the qwen-magics key field: hidden, it holds the key)", ()
        return True


@functools.cache
def _key_field() -> type:
    """ipywidgets' Password whose value the kernel does not echo to every front end (ipywidgets 8
    sends a value it received back out, for other views of the same widget)."""
    import ipywidgets as W
    from traitlets import Unicode

    class KeyField(W.Password):
        value = Unicode(help="The key, until the kernel takes it").tag(sync=True, echo_update=False)

    return KeyField


def _message_loggers() -> list[logging.Logger]:
    """The loggers that write out the kernel's incoming messages."""
    from IPython import get_ipython

    kernel_log = getattr(getattr(get_ipython(), "kernel", None), "log", None)
    loggers = [logging.getLogger("Comm")]
    if isinstance(kernel_log, logging.Logger):
        loggers.append(kernel_log)
    return loggers


class LoginForm:
    """The form: ``region`` (a Dropdown), ``key`` (a Password field), ``button`` and ``status``.

    Setting ``key.value`` (what the front end does on Enter, or when the field is left) or clicking
    the button submits; a blank key leaves the form open with a message.
    """

    def __init__(self, region: str | None = None, *, source: str = "qwen_magics.login()") -> None:
        import ipywidgets as W

        self.source = source
        self.done = False
        self.own_url = _own_base_url()
        current = region or _current_region() or config.DEFAULT_REGION
        regions = config.REGIONS.items()
        options = [(f"{name.capitalize()} ({urlparse(url).netloc})", name) for name, url in regions]
        self.region = W.Dropdown(
            options=options, value=current, description="Region", layout=W.Layout(width="auto")
        )
        self.key = _key_field()(
            placeholder="sk-…", description="API key", continuous_update=False, layout=W.Layout(width="22em")
        )
        self.button = W.Button(description="Log in", button_style="primary", icon="key")
        self.status = W.HTML(self._note(INTRO))
        if self.own_url is not None:  # the key goes to that server, whatever the region
            self.region.layout.display = "none"
            self.status.value = self._note(f"{INTRO} It goes to {self.own_url}.")
        row = W.HBox([self.region, self.key, self.button], layout=W.Layout(flex_flow="row wrap"))
        self.widget = W.VBox([row, self.status])
        for w, cls in [
            (self.widget, "qwen-login"),
            (self.region, "qwen-login-region"),
            (self.key, "qwen-login-key"),
            (self.button, "qwen-login-button"),
            (self.status, "qwen-login-status"),
        ]:
            w.add_class(cls)
        self._parts = [self.widget, row, self.region, self.key, self.button, self.status]
        self._handle: Any = None
        self._hidden = _Hidden(self.key.model_id)
        self.key.observe(lambda change: self._take(change["new"]) if change["new"] else None, names="value")
        self.button.on_click(lambda b: self._take(self.key.value))

    def show(self) -> None:
        global _open
        if _open is not None and not _open.done:
            _open.close("qwen-magics: this login form was replaced by a newer one.")
        for logger in _message_loggers():
            logger.addFilter(self._hidden)
        self._handle = show_widget(self.widget, text=STAND_IN, html=f"<div>{html.escape(STAND_IN)}</div>")
        _open = self

    def __repr__(self) -> str:
        return f"<qwen_magics LoginForm {'done' if self.done else 'waiting for a key'}>"

    @staticmethod
    def _note(text: str, *, warn: bool = False) -> str:
        colour = "var(--jp-warn-color0, #b35900)" if warn else "var(--jp-ui-font-color2, #666)"
        return f"<div style='color:{colour};font-size:90%;line-height:1.4'>{html.escape(text)}</div>"

    def _take(self, text: str) -> None:
        if self.done:
            return
        self.key.value = ""  # out of the widget state at once: a saved notebook keeps that state
        key = text.strip()
        if not key:
            self.status.value = self._note(
                f"No key typed; {_NOTHING}. Paste the key into the field, then press Enter or Log in.",
                warn=True,
            )
            return
        problem = config.key_problem(key)
        if problem:
            self.status.value = self._note(f"{problem}; {_NOTHING}. Copy the key again.", warn=True)
            return
        self.close(use_key(key, None if self.own_url else self.region.value, self.source))

    def close(self, line: str) -> None:
        """Replace the form with ``line`` and close its widgets (gone from the saved state too)."""
        global _open
        self.done = True
        if _open is self:
            _open = None
        if self._handle is not None:  # plain text, as the notebook shows the offline notice
            self._handle.update({"text/plain": line}, raw=True)
        for w in self._parts:
            w.close()
        for logger in _message_loggers():
            logger.removeFilter(self._hidden)
