"""A real browser on the portal: Debian's chromium driven by Playwright, against the app
served by uvicorn (tests/conftest.py's live_server) with the demo world loaded.

Playwright's own browser download does not work here, so the tests use the system
chromium (HEALTH_CHROMIUM, default /usr/bin/chromium) and skip, saying why, without it.
axe-core (npm) is read from HEALTH_AXE_CORE, else from the places `.ci/run` installs
it. Screenshots go to test-artifacts/browser/ (git-ignored); the run prints where.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from health import PROJECT_ROOT
from health.db.engine import Database
from health.fhir.config import FhirConfig
from health.seed.load import seed_demo_world
from health.settings import Settings

CHROMIUM = Path(os.environ.get("HEALTH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(
    os.environ.get("HEALTH_SCREENSHOTS", PROJECT_ROOT / "test-artifacts" / "browser")
)
_AXE_PLACES = (
    PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js",
    Path.home() / ".cache" / "health-axe" / "node_modules" / "axe-core" / "axe.min.js",
)


def axe_script() -> str | None:
    """axe-core's source, if it is installed where we look."""
    configured = os.environ.get("HEALTH_AXE_CORE")
    for place in ([Path(configured)] if configured else []) + list(_AXE_PLACES):
        if place.is_file():
            return place.read_text()
    return None


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One browser for the whole session (each test opens a fresh context in it)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"no chromium at {CHROMIUM}: install Debian's (apt-get install chromium) "
            "or set HEALTH_CHROMIUM"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def demo_server(live_server: Any, database: Database) -> Any:
    """The live server with the demo world loaded."""
    settings = Settings(database_url=database.url, base_url=live_server.base_url)  # type: ignore[call-arg]
    seed_demo_world(database, FhirConfig.load(settings))
    return live_server


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser tab with no cookies, phone-sized: the portal must work there."""
    context = chromium.new_context(viewport={"width": 390, "height": 844}, locale="da-DK")
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.iterdir()):
        terminalreporter.write_line(f"Portal screenshots: {SCREENSHOTS}")


@pytest.fixture(scope="session")
def axe() -> str:
    """axe-core's source; skipped without it (CI installs it: .ci/run, so it fails there)."""
    script = axe_script()
    if script is None:
        if os.environ.get("CI"):
            raise RuntimeError("axe-core is not installed (npm install axe-core; HEALTH_AXE_CORE)")
        pytest.skip("axe-core not found: npm install axe-core, or set HEALTH_AXE_CORE")
    return script


@pytest.fixture
def checked(page: Any, axe: str, screenshots: Path) -> Callable[[str], None]:
    """Screenshot the page as `name`, and run axe-core in it: no serious or critical
    violations."""

    def check(name: str) -> None:
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
        # Through DevTools, not a <script> tag: the page's CSP (rightly) refuses inline
        # script.
        page.evaluate(f"() => {{ {axe}\n }}")
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, f"{name}: " + "; ".join(bad)

    return check
