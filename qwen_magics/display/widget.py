"""Showing an ipywidget with a static stand-in, for wherever the widget itself cannot be drawn.

A widget's output holds its view (a model id) and a text/plain fallback, ipywidgets' repr
(``VBox(children=(Textarea(...``). GitHub, nbconvert without saved widget state and an untrusted
notebook in JupyterLab draw that fallback, so a saved notebook would show reprs. ``show_widget``
displays the widget with a readable text/plain and, when given, a text/html stand-in instead.
"""

from __future__ import annotations

from typing import Any

__all__ = ["show_widget", "widget_bundle"]


def widget_bundle(widget: Any, *, text: str, html: str | None = None) -> dict[str, Any]:
    """``widget``'s view with ``text`` (and ``html``) as what shows where it cannot be drawn."""
    view = "application/vnd.jupyter.widget-view+json"
    bundle = {view: widget._repr_mimebundle_()[view], "text/plain": text}
    if html is not None:
        bundle["text/html"] = html
    return bundle


def show_widget(widget: Any, *, text: str, html: str | None = None) -> Any:
    """Display ``widget`` with ``text`` (and ``html``) as what shows where it cannot; return the
    display handle: ``handle.update(widget_bundle(...), raw=True)`` refreshes the stand-in (the front
    end draws the same widget again), ``handle.update(bundle)`` replaces the widget for good."""
    from IPython.display import display

    return display(widget_bundle(widget, text=text, html=html), raw=True, display_id=True)
