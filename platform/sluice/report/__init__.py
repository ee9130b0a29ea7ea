"""The campaign report: a self-contained HTML document with inline SVG charts."""

from sluice.report.browser import BrowserCheck, check_in_browser, find_chromium
from sluice.report.html import render_html, write_html

__all__ = ["BrowserCheck", "check_in_browser", "find_chromium", "render_html", "write_html"]
