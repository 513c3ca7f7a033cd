"""`pathpt-gui`: the PathPT Studio desktop app (and its headless `--screenshot` mode)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pathpt_engine.errors import PathPTError

from ._none_guard import protect_none


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pathpt-gui", description="PathPT Studio: whole-slide viewer and few-shot "
                                "prompt tuning of pathology vision-language models.")
    p.add_argument("slides", nargs="*", help="slide files to open (SVS, TIFF, NDPI, MRXS, ...)")
    p.add_argument("--screenshot", metavar="PNG", help="render offscreen after the tiles settle, write PNG, exit")
    p.add_argument("--view", metavar="X,Y,ZOOM", help="centre in level-0 pixels and zoom (screen px per level-0 "
                   "px, 1 = full resolution), or 'fit' (default)")
    p.add_argument("--size", default="1600x1000", help="screenshot size WxH (default 1600x1000)")
    p.add_argument("--window", action="store_true", help="screenshot the whole window (menus, status bar)")
    p.add_argument("--overlay", metavar="NPZ", help="heatmap: npz with coords, tile_size, values or probs")
    p.add_argument("--opacity", type=float, help="heatmap opacity 0..1")
    p.add_argument("--cmap", help="heatmap colormap (matplotlib name)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for tiles (screenshot)")
    p.add_argument("--demo", action="store_true", help="open the ready demo project (built on first use: synthetic "
                   "slides, the demo model, a few labels); without a display: run it headless (see --headless-out)")
    p.add_argument("--project", metavar="DIR", help="open this project folder")
    p.add_argument("--demo-dir", metavar="DIR", help="where the demo project lives (default ~/.cache/pathpt/"
                   "demo-project)")
    p.add_argument("--headless-out", metavar="DIR", help="with --demo: render screenshots offscreen and write the "
                   "exports into DIR, then exit (default when there is no display: ./pathpt-demo-out)")
    p.add_argument("--backbone", default="demo", help="demo project backbone (default: the shipped demo model)")
    p.add_argument("--weights", metavar="DIR", help="demo project backbone weights folder")
    p.add_argument("--epochs", type=int, default=20, help="headless demo: training epochs (default 20)")
    p.add_argument("--install-desktop-entry", action="store_true",
                   help="Linux: add PathPT Studio (with its icon) to this user's application menu, then exit")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    protect_none()  # PySide6 6.12 on Python 3.11 leaks references to None; before any Qt work
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.install_desktop_entry:
        from .desktop import install_desktop_entry

        entry, icon = install_desktop_entry()
        print(f"pathpt-gui: desktop entry {entry}, icon {icon}")
        return 0
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if args.demo and (headless or args.headless_out):
        if headless:
            print("pathpt-gui: no display found; running the demo offscreen (screenshots and exports only)")
        args.headless_out = args.headless_out or "pathpt-demo-out"
    if (args.screenshot or args.headless_out) and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from .style import apply_style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("PathPT Studio")
    app.setOrganizationName("PathPT")
    _set_app_icon(app)
    apply_style(app)
    try:
        if args.screenshot:
            return _screenshot(args)
        if args.demo and args.headless_out:
            return _headless_demo(args)
        return _interactive(app, args)
    except (PathPTError, ValueError) as exc:
        print(f"pathpt-gui: {exc}", file=sys.stderr)
        return 2


def _set_app_icon(app: object) -> None:
    """Window icon and desktop-file name (so the desktop shows the entry's icon for our windows)."""
    from PySide6.QtGui import QIcon

    from .desktop import APP_ID, window_icon_path

    app.setWindowIcon(QIcon(str(window_icon_path())))  # type: ignore[attr-defined]
    app.setDesktopFileName(APP_ID)  # type: ignore[attr-defined]


def _interactive(app: object, args: argparse.Namespace) -> int:
    from .main_window import MainWindow
    from .panels.workflow import install_workflow
    from .screenshot import ViewSpec, apply_view, check_overlay_args, load_overlay_npz

    win = MainWindow()
    win.show()
    wf = install_workflow(win)
    if args.project:
        wf._guard(wf.open_project, args.project)  # a bad project is a dialog, not a crash at start
    elif args.demo:
        from .demo_project import start_demo

        start_demo(wf.ctrl, _demo_config(args))  # type: ignore[arg-type]
    views = win.open_paths(args.slides)
    spec = ViewSpec.parse(args.view)
    if views:
        if args.overlay:
            load_overlay_npz(args.overlay, views[-1].overlay)
        check_overlay_args(args.opacity, args.cmap, views[-1].overlay)
        if spec is not None:
            apply_view(views[-1], spec)
    return app.exec()  # type: ignore[attr-defined]


def _demo_config(args: argparse.Namespace) -> object:
    from pathlib import Path

    from .demo_project import DemoProjectConfig, default_demo_folder
    from .project_jobs import BackboneChoice

    folder = Path(args.demo_dir) if args.demo_dir else default_demo_folder()
    return DemoProjectConfig(folder, backbone=BackboneChoice(args.backbone, args.weights))


def _headless_demo(args: argparse.Namespace) -> int:
    from .demo_project import run_headless

    written = run_headless(_demo_config(args), args.headless_out, epochs=args.epochs)  # type: ignore[arg-type]
    print(f"demo project: {written['project']}")
    from .demo_project import format_report

    for line in format_report(written.get("ground_truth", {})):
        print(f"against the ground-truth masks: {line}")
    for shot in written.get("screenshots", []):
        print(f"screenshot: {shot}")
    print(f"exports (PNG overlays, heatmaps with legend, QuPath GeoJSON, CSV, score h5, checkpoint): "
          f"{written['exports']}")
    return 0


def _screenshot(args: argparse.Namespace) -> int:
    from pathpt_engine.slides import open_slide

    from .main_window import MainWindow
    from .screenshot import ViewSpec, apply_view, check_overlay_args, load_overlay_npz, parse_size, render
    from .settings import AppSettings
    from .viewer.view import SlideView

    if len(args.slides) != 1:
        raise ValueError("--screenshot needs exactly one slide")
    size = parse_size(args.size)
    spec = ViewSpec.parse(args.view)
    if args.window:
        win = MainWindow(AppSettings())

        win.resize(*size)
        win.show()
        view = win.open_slide(args.slides[0], remember=False)
        if view is None:
            return 2
        target = win
    else:
        view = SlideView(open_slide(args.slides[0]))
        view.resize(*size)
        view.show()
        target = view
    try:
        if args.overlay:
            load_overlay_npz(args.overlay, view.overlay)
        check_overlay_args(args.opacity, args.cmap, view.overlay)
        from PySide6.QtWidgets import QApplication
        QApplication.processEvents()
        apply_view(view, spec)
        out = render(target, [view], args.screenshot, args.timeout)
        print(out)
    finally:
        if target is not view:
            target.close()
        view.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
