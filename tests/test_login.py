"""``%qwen login`` and ``qwen_magics.login()`` in a real shell: the form's real ipywidgets, a key the
emulator requires, and the switch from the offline simulator to Qwen Cloud."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import qwen_magics
from qwen_magics import config, simulator
from qwen_magics.emulator import Emulator
from qwen_magics.widgets.login import LoginForm

from .conftest import stop_in_background
from .outputs import rendered

KEY = "sk-login-test-key-0123456789-LMNO"
VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def keyless(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Emulator]]:
    """A shell with the extension loaded and the emulator as its server, which wants KEY; no key set."""
    emu = Emulator(generator="simple", api_key=KEY).start()
    monkeypatch.setenv("DASHSCOPE_BASE_URL", emu.base_url)
    ip = _loaded()
    yield ip, emu
    _unload(ip)
    stop_in_background(emu)


@pytest.fixture
def offline(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A shell whose ``%load_ext`` found no key and no base URL: the offline simulator answers."""
    from qwen_magics.magics import magics

    monkeypatch.setenv("QWEN_OFFLINE_TOKENS_PER_SECOND", "0")
    monkeypatch.setattr(magics, "_notice_shown", False)  # said once a process: this test's alone
    ip = _loaded()
    assert simulator.is_active()
    yield ip
    _unload(ip)
    simulator.stop()


def _loaded() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.user_ns.pop("_qwen", None)
    with capture_output():
        ip.run_line_magic("load_ext", "qwen_magics")
    return ip


def _unload(ip: Any) -> None:
    if "qwen_magics" in ip.extension_manager.loaded:
        ip.run_line_magic("unload_ext", "qwen_magics")


def line(ip: Any, text: str) -> Any:
    with capture_output() as cap:
        ip.run_line_magic("qwen", text)
    return cap


def cell(ip: Any, options: str, body: str) -> Any:
    with capture_output() as cap:
        ip.run_cell_magic("qwen", options, body)
    return cap


class Shown:
    """The form a captured ``%qwen login`` showed, found as the front end finds it: the view's model
    id, then the widgets inside it."""

    def __init__(self, cap: Any) -> None:
        from ipywidgets.widgets.widget import _instances

        (view,) = [o.data[VIEW]["model_id"] for o in cap.outputs if VIEW in o.data]
        self.box = _instances[view]
        self.row, self.status = self.box.children
        self.region, self.key, self.button = self.row.children
        assert self.region.description == "Region" and self.key.description == "API key"
        assert self.button.description == "Log in"

    @property
    def closed(self) -> bool:
        """Every widget of the form closed: none is left in the state a notebook saves."""
        return all(
            w.comm is None for w in (self.box, self.row, self.region, self.key, self.button, self.status)
        )


def form_of(cap: Any) -> Shown:
    return Shown(cap)


def shown_text(outputs: list[Any]) -> str:
    return "\n".join(b.get("text/plain", "") for b in rendered(outputs))


# -- the form ----------------------------------------------------------------------------------------
def test_the_login_form_sets_the_key_and_the_next_cell_is_answered_with_it(keyless: Any) -> None:
    ip, emu = keyless
    before = cell(ip, "--no-thinking", "Say hi.")
    assert "401" in shown_text(before.outputs)  # no key yet: the server refuses
    assert [r.auth for r in emu.chat_requests] == ["missing"]

    opened = line(ip, "login")
    form = form_of(opened)
    assert form.key.continuous_update is False  # the value reaches the kernel on Enter only
    with capture_output() as typed:
        form.key.value = KEY  # what the front end sends on Enter
    assert form.key.value == "" and form.closed
    (confirmation,) = [o.data for o in typed.outputs]
    assert VIEW not in confirmation
    assert confirmation["text/plain"] == (
        f"qwen-magics: key sk-…LMNO set for {emu.base_url}, in memory only "
        "(not in the notebook, its outputs or the history)."
    )
    assert config.key_source() == "%qwen login"

    after = cell(ip, "--no-thinking", "Say hi.")
    assert "You asked: Say hi." in shown_text(after.outputs)
    assert [r.auth for r in emu.chat_requests] == ["missing", "ok"]
    shown = line(ip, "config").outputs[0].data["text/plain"]
    assert "sk-…LMNO (from %qwen login)" in shown
    assert KEY not in shown_text([*opened.outputs, *typed.outputs, *after.outputs]) + shown


def test_the_button_submits_and_a_blank_key_changes_nothing(keyless: Any) -> None:
    ip, _ = keyless
    form = form_of(line(ip, "login"))
    form.button.click()
    assert "No key typed; nothing changed" in form.status.value
    form.key.value = "   "
    assert "No key typed" in form.status.value and not form.closed
    assert config.settings().api_key is None
    form.key.value = "sk-pasted with a space"
    assert "holds ' ' at character 10" in html.unescape(form.status.value) and not form.closed
    assert config.settings().api_key is None
    form.key.set_state({"value": KEY})  # what a comm message from the front end does
    assert form.closed and config.settings().api_key == KEY


def test_the_region_list_offers_every_region_with_the_current_one_chosen(clean_env: None) -> None:
    with capture_output():
        config.configure(region="beijing")
        form = LoginForm()
    assert [name for _, name in form.region.options] == list(config.REGIONS)
    assert form.region.value == "beijing"
    assert form.region.layout.display != "none"
    form.region.value = "virginia"
    form.key.value = KEY
    settings = config.settings()
    assert settings.region == "virginia" and settings.base_url == config.REGIONS["virginia"]
    assert settings.api_key == KEY


def test_login_takes_a_region_as_a_word_or_an_option(keyless: Any) -> None:
    ip, _ = keyless
    for text, region in [
        ("login virginia", "virginia"),
        ("login --region beijing", "beijing"),
        ("login --region=Hong-Kong", "hongkong"),
        ("login region=singapore", "singapore"),
        ("login Hong Kong", "hongkong"),
    ]:
        assert form_of(line(ip, text)).region.value == region, text
    for text in ("login mars", "login virginia beijing"):
        with pytest.raises(UsageError, match="takes one region"):
            line(ip, text)
    with pytest.raises(UsageError, match="name the region"):
        line(ip, "login --region")
    with pytest.raises(UsageError, match="takes no key on its line") as err:
        line(ip, f"login {KEY}")
    assert KEY not in str(err.value)
    assert "%qwen login [region]" in line(ip, "help").outputs[0].data["text/plain"]


def test_a_newer_form_replaces_one_still_waiting(keyless: Any) -> None:
    ip, _ = keyless
    first = form_of(line(ip, "login"))
    second = form_of(line(ip, "login"))
    assert first.closed and not second.closed
    second.key.value = KEY
    assert config.settings().api_key == KEY


def test_with_a_base_url_of_ones_own_the_form_asks_no_region(keyless: Any) -> None:
    ip, emu = keyless
    form = form_of(line(ip, "login"))
    assert form.region.layout.display == "none"
    assert emu.base_url in form.status.value
    form.key.value = KEY
    assert config.settings().base_url == emu.base_url


def test_the_key_never_shows_in_a_repr(clean_env: None) -> None:
    with capture_output():
        form = LoginForm()
    form.key.value = KEY
    assert KEY not in repr(form) + repr(form.key) + repr(form.widget) + repr(config.settings())


# -- from the offline simulator to Qwen Cloud ----------------------------------------------------------
def test_a_login_while_offline_stops_the_simulator_and_the_next_cell_goes_to_qwen_cloud(offline: Any) -> None:
    ip = offline
    cell(ip, "--no-thinking --max-tokens 10", "Tell me about the sea.")
    assert ip.user_ns["_qwen"].offline
    line(ip, "config timeout=2")  # no network here: fail fast
    form = form_of(line(ip, "login virginia"))
    with capture_output() as typed:
        form.key.value = KEY
    assert typed.outputs[0].data == {
        "text/plain": "qwen-magics: key sk-…LMNO set, in memory only (not in the notebook, its outputs "
        "or the history); answers now come from Qwen Cloud (Virginia), not the offline simulator."
    }
    assert not simulator.is_active()
    settings = config.settings()
    assert settings.base_url == config.REGIONS["virginia"] and settings.api_key == KEY
    assert not settings.offline
    shown = line(ip, "config").outputs[0].data["text/plain"]
    assert "(from %qwen login)" in shown and "offline   no" in shown

    ip.user_ns.pop("_qwen", None)
    after = cell(ip, "--no-thinking", "Tell me about the sea.")
    text = shown_text(after.outputs)
    assert "could not connect to Virginia" in text  # sent to Qwen Cloud, not to the simulator
    assert "_qwen" not in ip.user_ns
    assert "not the offline simulator" not in after.stdout + after.stderr + text  # said once


def test_configure_with_a_key_while_offline_switches_at_the_next_request_and_says_so_once(
    offline: Any,
) -> None:
    ip = offline
    qwen_magics.configure(api_key=KEY, timeout=2)
    settings = config.settings()
    assert settings.base_url == config.REGIONS["singapore"] and settings.api_key == KEY
    assert config.key_source() == "configure()"
    first = cell(ip, "--no-thinking", "hi")
    assert not simulator.is_active()
    assert first.stderr.count("not the offline simulator") == 1
    assert "answers now come from Qwen Cloud (Singapore)" in first.stderr
    assert "could not connect to Singapore" in shown_text(first.outputs)
    with capture_output() as again:
        simulator.ensure()  # what every later request does first
    assert again.stderr == ""
    qwen_magics.configure(api_key=None)  # the key goes; the simulator stays stopped
    assert not config.settings().offline


def test_a_key_in_the_environment_set_after_offline_started_takes_its_place(
    offline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)  # os.environ["DASHSCOPE_API_KEY"] = getpass.getpass()
    assert not config.on_simulator()
    assert simulator.handover() == (
        "qwen-magics: key set; answers now come from Qwen Cloud (Singapore), not the offline simulator."
    )
    assert simulator.handover() is None and not simulator.is_active()


def test_qwen_offline_keeps_the_simulator_after_login_and_says_why(
    offline: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ip = offline
    monkeypatch.setenv("QWEN_OFFLINE", "1")
    form = form_of(line(ip, "login"))
    with capture_output() as typed:
        form.key.value = KEY
    text = typed.outputs[0].data["text/plain"]
    assert "QWEN_OFFLINE=1 keeps answers on the offline simulator" in text and "sk-…LMNO" in text
    assert simulator.is_active() and config.settings().offline
    cell(ip, "--no-thinking --max-tokens 5", "hi")
    assert ip.user_ns["_qwen"].offline

    monkeypatch.delenv("QWEN_OFFLINE")  # unset: the key set by login now wins
    assert config.settings().api_key == KEY and not config.settings().offline


def test_offline_from_code_stays_when_a_key_was_configured_before_it(clean_env: None) -> None:
    qwen_magics.configure(api_key=KEY)
    try:
        emu = qwen_magics.offline()
        settings = config.settings()
        assert settings.offline and settings.base_url == emu.base_url
        assert config.settings(api_key=KEY).base_url == config.REGIONS["singapore"]  # its own key
    finally:
        simulator.stop()
    assert config.settings().api_key == KEY  # stopping the simulator leaves the user's key alone


def test_a_base_url_set_while_offline_sends_the_next_cell_there_without_the_simulators_key(
    offline: Any,
) -> None:
    ip = offline
    with Emulator(generator="simple", api_key=KEY) as emu:
        line(ip, f"config base_url={emu.base_url}")
        assert not config.on_simulator()
        first = cell(ip, "--no-thinking", "hi")
        assert first.stderr.count(f"answers now come from {emu.base_url}, not the offline simulator.") == 1
        assert [r.auth for r in emu.chat_requests] == ["missing"]  # the simulator's key stayed home
        form = form_of(line(ip, "login"))
        form.key.value = KEY
        answered = cell(ip, "--no-thinking", "hi")
        assert "You asked: hi." in shown_text(answered.outputs)
        assert [r.auth for r in emu.chat_requests] == ["missing", "ok"]
        line(ip, "config base_url=none")


def test_login_from_code_refuses_an_unknown_region_without_repeating_a_key(clean_env: None) -> None:
    with pytest.raises(qwen_magics.ConfigError, match="unknown region 'mars'; choose one of singapore"):
        qwen_magics.login("mars")
    with pytest.raises(qwen_magics.ConfigError, match="takes a region, not the key") as err:
        qwen_magics.login(KEY)
    assert KEY not in str(err.value)


def test_a_refused_key_says_to_log_in_again_for_the_region_or_for_ones_own_server(clean_env: None) -> None:
    import httpx

    from qwen_magics.api.request import error_from_body

    body = b'{"error": {"code": "invalid_api_key", "message": "Incorrect API key provided."}}'
    cloud = error_from_body(401, body, httpx.Headers(), config.settings(region="virginia", api_key=KEY))
    assert "Keys only work in their own region; this request went to Virginia. Run %qwen login again" in (
        str(cloud)
    )
    own = error_from_body(401, body, httpx.Headers(), config.settings(base_url="http://127.0.0.1:9/v1"))
    assert "refused by http://127.0.0.1:9/v1. Run %qwen login again with that server's key" in str(own)
    assert "region" not in str(own)
