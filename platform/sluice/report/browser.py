"""Open a rendered report in headless Chromium and read back what a reader would see.

Uses the system Chromium (never a downloaded browser) through Playwright's sync API.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

_READ_VALUES = """() => {
  const out = {};
  for (const [attr, prefix] of [["data-kpi", ""], ["data-funnel", "funnel."],
                                ["data-rejection", "rejection."], ["data-drift", "drift."]]) {
    for (const el of document.querySelectorAll("[" + attr + "]")) {
      const value = el.getAttribute("data-value");
      out[prefix + el.getAttribute(attr)] = value !== null ? value : el.textContent.trim();
    }
  }
  return out;
}"""

_COUNT_SVG = """() => Array.from(document.querySelectorAll("svg")).filter((el) => {
  const box = el.getBoundingClientRect();
  return box.width > 0 && box.height > 0;
}).length"""


@dataclass(frozen=True)
class BrowserCheck:
    """What Chromium saw when it loaded a report."""

    title: str
    console_errors: list[str]
    """Console messages of type ``error`` and uncaught page errors."""
    failed_requests: list[str]
    """``url: reason`` of every request that failed."""
    values: dict[str, str]
    """``{arm}.{field}`` (data-kpi), ``funnel.{stage}``, ``rejection.{gate}.{reason}`` and
    ``drift.{variable}`` mapped to the cell's ``data-value`` (or its text)."""
    svg_rendered: int
    """``<svg>`` elements with a non-zero bounding box."""


def find_chromium(chromium: str | None = None) -> str:
    """The Chromium executable: the argument, ``SLUICE_CHROMIUM``, or the one on ``PATH``."""
    candidates = [chromium, os.environ.get("SLUICE_CHROMIUM")]
    candidates += [shutil.which(n) for n in ("chromium", "chromium-browser")]
    candidates.append("/usr/bin/chromium")
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "no Chromium executable found: install it with `apt-get install chromium` "
        "or set SLUICE_CHROMIUM to its path"
    )


def check_in_browser(
    path: Path, chromium: str | None = None, *, screenshot: Path | None = None
) -> BrowserCheck:
    """Load ``path`` in headless Chromium and collect errors, the title and marked values.

    With ``screenshot``, also save a full-page PNG of the report there.
    """
    executable = find_chromium(chromium)
    from playwright.sync_api import ConsoleMessage, Request, sync_playwright

    errors: list[str] = []
    failed: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    def on_failed(request: Request) -> None:
        failed.append(f"{request.url}: {request.failure or 'failed'}")

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", on_console)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("requestfailed", on_failed)
            page.goto(path.resolve().as_uri(), wait_until="load")
            title = page.title()
            raw = page.evaluate(_READ_VALUES)
            count = page.evaluate(_COUNT_SVG)
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    values = {str(k): str(v) for k, v in dict(raw).items()}
    return BrowserCheck(title, errors, failed, values, int(count))
