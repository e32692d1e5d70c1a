"""Pictures in a prompt: a Figure, a PIL or IPython Image, qwen_magics.image(...) become image parts
at their place; text models refuse them before sending; the emulator sees their size and colour."""

from __future__ import annotations

import io
import json
import sqlite3

import httpx
import matplotlib
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from PIL import Image as PILImage

import qwen_magics
from qwen_magics import historydb
from qwen_magics.emulator import Emulator
from qwen_magics.images import image_size
from qwen_magics.models import MODELS

from .conftest import TEST_KEY
from .outputs import rendered_markdown

matplotlib.use("Agg")
from matplotlib import pyplot as plt


def blue_figure():  # type: ignore[no-untyped-def]
    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    fig.patch.set_facecolor("blue")
    ax.set_facecolor("blue")
    ax.plot([1, 2, 3], [3, 1, 2], color="white")
    return fig


def png(width: int, height: int, colour: str = "red") -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def last_content(emulator: Emulator) -> list[dict[str, object]]:
    content = emulator.chat_requests[-1].body["messages"][-1]["content"]
    assert isinstance(content, list), content
    return content


def test_a_figure_arrives_as_an_image_part_at_its_place(ip, qwen_env: Emulator) -> None:
    ip.user_ns["fig"] = blue_figure()
    with capture_output() as cap:
        ip.run_cell_magic("qwen", "-m qwen3-vl-plus", "What does {fig} show? Be brief.")
    text, picture, rest = last_content(qwen_env)
    assert text == {"type": "text", "text": "What does "}
    assert rest == {"type": "text", "text": " show? Be brief."}
    url = picture["image_url"]["url"]  # type: ignore[index]
    assert url.startswith("data:image/png;base64,")
    size = image_size(url)
    assert size is not None and size[0] > 100
    shown = rendered_markdown(cap.outputs)
    assert f"The image is {size[0]}×{size[1]} pixels, mostly blue." in shown
    assert " image)" in shown or " image," in shown  # the footer counts the picture's tokens


def test_a_text_model_refuses_a_picture_before_sending(ip, qwen_env: Emulator) -> None:
    ip.user_ns["fig"] = blue_figure()
    qwen_env.reset()
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic("qwen", "-m qwen-plus", "Describe {fig}")
    message = str(err.value)
    assert (
        "qwen-plus reads text only" in message and "qwen3-vl-plus" in message and "qwen3-vl-flash" in message
    )
    assert "nothing was sent" in message and "\n" not in message
    assert qwen_env.chat_requests == []


def test_the_emulator_refuses_pictures_on_a_text_model_as_the_service_does(emulator: Emulator) -> None:
    url = "data:image/png;base64," + __import__("base64").b64encode(png(8, 8)).decode()
    parts = [{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}]
    body = {"model": "qwen-plus", "messages": [{"role": "user", "content": parts}]}
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    answer = httpx.post(f"{emulator.base_url}/chat/completions", json=body, headers=headers)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_parameter_error" and "input content must be a string" in error["message"]
    body["model"] = "qwen3-vl-flash"
    answer = httpx.post(f"{emulator.base_url}/chat/completions", json=body, headers=headers)
    assert answer.status_code == 200
    usage = answer.json()["usage"]
    assert usage["prompt_tokens_details"]["image_tokens"] == 4 + 2  # 8×8 px: the fewest tokens, + start/end
    assert "8×8 pixels, mostly red" in answer.json()["choices"][0]["message"]["content"]


def test_image_takes_a_path_bytes_or_a_url_and_a_url_is_not_downloaded(
    ip, qwen_env: Emulator, tmp_path
) -> None:
    path = tmp_path / "dot.png"
    path.write_bytes(png(20, 10, "green"))
    ip.user_ns.update(
        a=qwen_magics.image(str(path)),
        b=qwen_magics.image(png(6, 6)),
        c=qwen_magics.image("https://example.com/cat.jpg"),
        d=PILImage.new("RGB", (12, 12), "yellow"),
    )
    with capture_output() as cap:
        ip.run_cell_magic("qwen", "-m qwen3-vl-flash", "Compare {a}, {b}, {c} and {d}")
    urls = [p["image_url"]["url"] for p in last_content(qwen_env) if p["type"] == "image_url"]  # type: ignore[index]
    assert urls[2] == "https://example.com/cat.jpg"
    assert [image_size(u) for u in (urls[0], urls[1], urls[3])] == [(20, 10), (6, 6), (12, 12)]
    assert "20×10 pixels, mostly green" in rendered_markdown(cap.outputs)
    with pytest.raises(ValueError, match="no file"):
        qwen_magics.image(str(tmp_path / "missing.png"))


def test_a_large_picture_is_scaled_to_the_models_limit(ip, qwen_env: Emulator) -> None:
    ip.user_ns["big"] = PILImage.new("RGB", (4000, 3000), "white")
    with capture_output():
        ip.run_cell_magic("qwen", "-m qwen-vl-plus", "What is {big}?")
    (picture,) = [p for p in last_content(qwen_env) if p["type"] == "image_url"]
    w, h = image_size(picture["image_url"]["url"])  # type: ignore[index, misc]
    assert w * h <= MODELS["qwen-vl-plus"].image_pixels and w * h > 0.9 * MODELS["qwen-vl-plus"].image_pixels
    assert abs(w / h - 4 / 3) < 0.01
    answer = qwen_magics.ask(
        ["What is it?", ip.user_ns["big"]], model="qwen-vl-plus", vl_high_resolution_images=True
    )
    (picture,) = [p for p in last_content(qwen_env) if p["type"] == "image_url"]
    w, h = image_size(picture["image_url"]["url"])  # type: ignore[index, misc]
    assert (w, h) == (4000, 3000)  # 12 Mpx: under the 16,384 tokens of 28×28 px a high resolution allows
    assert answer.usage.image_tokens == 143 * 108 + 2


def test_the_history_keeps_a_digest_not_the_pictures_bytes_and_replays_it(
    ip, qwen_env: Emulator, history
) -> None:
    ip.user_ns["fig"] = blue_figure()
    with capture_output() as first:
        ip.run_cell_magic("qwen", "-m qwen3-vl-plus", "Describe {fig}")
    historydb.flush()
    with sqlite3.connect(history) as db:
        prompt, messages = db.execute("SELECT prompt, messages FROM answers").fetchone()
    assert prompt.startswith("Describe [image ") and "×" in prompt
    assert "base64" not in messages and ";sha256," in messages
    assert len(messages) < 1000
    json.loads(messages)
    ip.run_line_magic("qwen", "replay only")
    qwen_env.reset()
    with capture_output() as again:
        ip.run_cell_magic("qwen", "-m qwen3-vl-plus", "Describe {fig}")
    assert qwen_env.chat_requests == []  # answered from the record
    assert "mostly blue" in rendered_markdown(again.outputs)
    assert (
        rendered_markdown(first.outputs).split("<sub>")[0]
        == rendered_markdown(again.outputs).split("<sub>")[0]
    )


def test_apply_sends_each_rows_picture(qwen_env: Emulator) -> None:
    df = pd.DataFrame(
        {
            "name": ["r", "g"],
            "picture": [qwen_magics.image(png(10, 10, "red")), PILImage.new("RGB", (5, 5), "green")],
        }
    )
    out = qwen_magics.apply(df, "What colour is {name}: {picture}?", model="qwen3-vl-flash", progress=False)
    assert list(out["_error"].fillna("")) == ["", ""]
    sizes = sorted(
        image_size(p["image_url"]["url"])  # type: ignore[index]
        for r in qwen_env.chat_requests
        for p in r.body["messages"][-1]["content"]
        if p["type"] == "image_url"
    )
    assert sizes == [(5, 5), (10, 10)]


def test_ask_and_compare_take_pictures(ip, qwen_env: Emulator) -> None:
    answer = qwen_magics.ask(
        ["What colour is this?", qwen_magics.image(png(9, 9, "blue"))], model="qwen3-vl-flash"
    )
    assert "9×9 pixels, mostly blue" in answer.text
    ip.user_ns["fig"] = blue_figure()
    qwen_env.reset()
    with capture_output():
        ip.run_cell_magic("qwen", '-m qwen3-vl-flash --compare "temperature=0.2,0.9"', "Describe {fig}")
    assert len(qwen_env.chat_requests) == 2
    for r in qwen_env.chat_requests:
        assert any(p["type"] == "image_url" for p in r.body["messages"][-1]["content"])
    with pytest.raises(qwen_magics.ParameterError, match="reads text only"):
        qwen_magics.ask(["What is it?", qwen_magics.image(png(4, 4))], model="qwen-flash")


def test_an_ipython_image_and_an_axes_are_pictures_too(ip, qwen_env: Emulator) -> None:
    from IPython.display import Image

    fig = blue_figure()
    ip.user_ns.update(shown=Image(data=png(7, 3, "purple")), ax=fig.axes[0])
    with capture_output():
        ip.run_cell_magic("qwen", "-m qwen3-vl-flash", "{shown} and {ax}")
    urls = [p["image_url"]["url"] for p in last_content(qwen_env) if p["type"] == "image_url"]  # type: ignore[index]
    assert image_size(urls[0]) == (7, 3) and image_size(urls[1]) == image_size(last_figure_url(fig))


def last_figure_url(fig) -> str:  # type: ignore[no-untyped-def]
    from qwen_magics.images import part

    found = part(fig)
    assert found is not None
    return str(found["image_url"]["url"])


def test_structured_output_and_cases_take_pictures(ip, qwen_env: Emulator) -> None:
    ip.user_ns["fig"] = blue_figure()
    with capture_output():
        ip.run_cell_magic("qwen", "--json -m qwen3-vl-flash", "Describe {fig} as JSON with a 'colour' key")
    assert any(p["type"] == "image_url" for p in last_content(qwen_env))
    assert isinstance(ip.user_ns["_qwen"].data, dict)
    ip.user_ns["cases"] = pd.DataFrame(
        {"name": ["a", "b"], "pic": [qwen_magics.image(png(3, 3)), qwen_magics.image(png(5, 5))]}
    )
    qwen_env.reset()
    with capture_output():
        ip.run_cell_magic(
            "qwen", "-m qwen3-vl-flash --cases cases --check contains:image", "{name} {pic} and {fig}"
        )
    sizes = sorted(
        tuple(image_size(p["image_url"]["url"]) or ())  # type: ignore[index]
        for r in qwen_env.chat_requests
        for p in r.body["messages"][-1]["content"]
        if p["type"] == "image_url"
    )
    assert len(qwen_env.chat_requests) == 2 and sizes[:2] == [(3, 3), (5, 5)] and len(sizes) == 4


def test_a_picture_where_only_text_goes_is_a_clear_error() -> None:
    from qwen_magics.templating import TemplateError, fill

    with pytest.raises(TemplateError, match="a picture goes in the prompt"):
        fill("Look at {fig}", {"fig": blue_figure()})  # the system prompt is filled this way
