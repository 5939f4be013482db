"""What a browser submits for a rendered form, without a browser.

`submission_of(html, action)` parses a page and returns the fields of the POST form whose
`action` is `action` ("" = the page's own URL) as a browser would send them on a click of
Save with nothing touched: every enabled input, checked checkbox and radio, selected option
and textarea, each value as the HTML parser sees it, then encoded for submission.

The browser rules that matter for data loss are kept on purpose:
- the HTML parser turns CRLF and CR into LF everywhere, and drops the one newline that
  follows `<textarea>`;
- a text input's value loses its newlines (value sanitisation);
- on submission every LF becomes CRLF (form-data newline normalisation);
- a select with nothing selected sends its first option; disabled controls and anything
  inside `<template>` are not submitted.
"""

from __future__ import annotations

from html.parser import HTMLParser

_TEXT_INPUTS = {"text", "search", "url", "email", "tel", "password", "number", ""}


def _parsed_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _for_submission(text: str) -> str:
    return _parsed_newlines(text).replace("\n", "\r\n")


class _FormParser(HTMLParser):
    def __init__(self, action: str) -> None:
        super().__init__(convert_charrefs=True)
        self.action = action
        self.forms: list[list[tuple[str, str]]] = []
        self._fields: list[tuple[str, str]] | None = None
        self._template_depth = 0
        self._textarea: tuple[str, list[str]] | None = None
        self._select: dict | None = None
        self._option: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "template":
            self._template_depth += 1
            return
        if self._template_depth:
            return
        if tag == "form":
            if a.get("method", "get").lower() == "post" and a.get("action", "") == self.action:
                self._fields = []
            return
        if self._fields is None:
            return
        if tag == "input":
            self._input(a)
        elif tag == "textarea" and "disabled" not in a and a.get("name"):
            self._textarea = (a["name"], [])
        elif tag == "select" and a.get("name"):
            self._select = {
                "name": a["name"],
                "disabled": "disabled" in a,
                "multiple": "multiple" in a,
                "options": [],
            }
        elif tag == "option" and self._select is not None:
            self._option = {
                "value": a.get("value"),
                "selected": "selected" in a,
                "disabled": "disabled" in a,
                "text": [],
            }

    def _input(self, a: dict[str, str]) -> None:
        kind = a.get("type", "").lower()
        name = a.get("name")
        if not name or "disabled" in a or kind in {"submit", "button", "reset", "image", "file"}:
            return
        if kind in {"checkbox", "radio"}:
            if "checked" in a:
                self._fields.append((name, a.get("value", "on") or "on"))
            return
        value = _parsed_newlines(a.get("value", ""))
        if kind in _TEXT_INPUTS:
            value = value.replace("\n", "")
        self._fields.append((name, value))

    def handle_endtag(self, tag: str) -> None:
        if tag == "template":
            self._template_depth = max(0, self._template_depth - 1)
            return
        if self._template_depth or self._fields is None:
            return
        if tag == "textarea" and self._textarea is not None:
            name, parts = self._textarea
            text = _parsed_newlines("".join(parts))
            if text.startswith("\n"):
                text = text[1:]
            self._fields.append((name, text))
            self._textarea = None
        elif tag == "option" and self._option is not None:
            self._close_option()
        elif tag == "select" and self._select is not None:
            self._close_option()
            self._close_select()
        elif tag == "form":
            self.forms.append(self._fields)
            self._fields = None

    def _close_option(self) -> None:
        if self._option is None:
            return
        option = self._option
        if option["value"] is None:
            option["value"] = " ".join("".join(option["text"]).split())
        self._select["options"].append(option)
        self._option = None

    def _close_select(self) -> None:
        select, self._select = self._select, None
        if select["disabled"]:
            return
        chosen = [o for o in select["options"] if o["selected"] and not o["disabled"]]
        if not chosen and not select["multiple"]:
            chosen = [o for o in select["options"] if not o["disabled"]][:1]
        for option in chosen:
            self._fields.append((select["name"], option["value"]))

    def handle_data(self, data: str) -> None:
        if self._template_depth:
            return
        if self._textarea is not None:
            self._textarea[1].append(data)
        elif self._option is not None:
            self._option["text"].append(data)


def submission_of(html: str, action: str = "") -> dict[str, list[str]]:
    """The fields a browser would POST for the one form posting to `action` on the page."""
    parser = _FormParser(action)
    parser.feed(html)
    parser.close()
    if len(parser.forms) != 1:
        raise AssertionError(
            f"Expected one POST form with action={action!r} on the page, found {len(parser.forms)}."
        )
    data: dict[str, list[str]] = {}
    for name, value in parser.forms[0]:
        data.setdefault(_for_submission(name), []).append(_for_submission(value))
    return data
