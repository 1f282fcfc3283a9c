"""Regenerate the README's screenshots (``make screenshots``): the course in a real JupyterLab, in Debian's
headless Chromium, the way tests/test_browser.py drives it.

    python tools/screenshots.py [OUTDIR]        (default docs/screenshots; relative to the repository root)

Writes start_page.png (notebooks/00_start_here.ipynb, run), lesson_widget.png (lesson 1's schedule explorer)
and worksheet_check.png (worksheet 1's check lines, untouched), each 1280x800 and reduced to a 256-colour
palette so that it stays well under 300 KB. JupyterLab serves a temporary copy of the notebooks, in quick mode.
Needs a colour emoji font (Debian: fonts-noto-color-emoji): without one Chromium draws the checks' marks as empty
boxes, as the screenshots of 2026-11-23 showed them; the script stops with that message.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from browser_utils import (LabServer, launch_chromium, open_notebook, run_all_from_menu,  # noqa: E402
                           wait_for_execution)

SHOTS = [
    # (file, notebook, text of the cell to scroll to: None = the top)
    ("start_page.png", "notebooks/00_start_here.ipynb", None),
    ("lesson_widget.png", "notebooks/01_noise_schedules.ipynb", "schedule_explorer("),
    ("worksheet_check.png", "exercises/01_schedules.ipynb", "not implemented yet"),
]
MAX_BYTES = 300_000


def scroll_to_text(page, text: str) -> None:
    """Scroll the notebook so that the first cell containing ``text`` sits at the top."""
    found = page.evaluate("""(text) => {
        const cells = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell');
        for (const cell of cells) {
          if (cell.innerText.includes(text)) { cell.scrollIntoView({block: 'start'}); return true; }
        }
        return false; }""", text)
    if not found:
        raise RuntimeError(f"no cell shows {text!r}")
    page.wait_for_timeout(800)


def shrink(path: Path) -> None:
    """A 256-colour palette PNG: JupyterLab's flat colours survive, the file shrinks 3-5x."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def emoji_font() -> str | None:
    """The first colour emoji font fontconfig knows (``fc-list``), else None."""
    try:
        listed = subprocess.run(["fc-list", ":charset=2705", "family"], capture_output=True, text=True,
                                timeout=60, check=False).stdout
    except OSError:
        return None
    return next((line.strip() for line in listed.splitlines() if "emoji" in line.lower()), None)


def main(outdir: str = "docs/screenshots") -> int:
    from playwright.sync_api import sync_playwright

    if emoji_font() is None:
        print("screenshots: no colour emoji font here, so the checks' marks would be empty boxes: install one "
              "(Debian: apt-get install fonts-noto-color-emoji), then run again", file=sys.stderr)
        return 1

    out = (REPO / outdir) if not Path(outdir).is_absolute() else Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="course-shots-") as tmp:
        root = Path(tmp) / "root"
        for folder in ("notebooks", "exercises", "solutions"):
            if (REPO / folder).is_dir():
                shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        env = {"COURSE_QUICK": "1"}
        if os.environ.get("COURSE_DATA_DIR"):
            env["COURSE_DATA_DIR"] = os.environ["COURSE_DATA_DIR"]
        server = LabServer(root, Path(tmp) / "jupyter", env=env)
        server.start()
        try:
            with sync_playwright() as pw:
                browser = launch_chromium(pw)
                for name, notebook, anchor in SHOTS:
                    if not (root / notebook).exists():
                        print(f"skipped {name}: {notebook} does not exist")
                        continue
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    page = context.new_page()
                    open_notebook(page, server, notebook)
                    run_all_from_menu(page)
                    page.wait_for_timeout(1000)
                    wait_for_execution(page, timeout=900)
                    if anchor:
                        scroll_to_text(page, anchor)
                    # no cursor or selection highlight in the picture
                    page.evaluate("() => document.activeElement && document.activeElement.blur()")
                    path = out / name
                    page.screenshot(path=str(path))
                    shrink(path)
                    size = path.stat().st_size
                    print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {size / 1000:.0f} KB")
                    if size > MAX_BYTES:
                        print(f"  warning: {name} is over {MAX_BYTES // 1000} KB")
                    server.shutdown_sessions(notebook)
                    context.close()
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", nargs="?", default="docs/screenshots",
                        help="where the PNGs go (a relative path is taken from the repository root)")
    sys.exit(main(parser.parse_args().outdir))
