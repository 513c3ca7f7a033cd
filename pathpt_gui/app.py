"""`pathpt-gui`: the PathPT Studio desktop app (and its headless `--screenshot` mode)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pathpt_engine.errors import PathPTError


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
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if args.screenshot and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from .style import apply_style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("PathPT Studio")
    app.setOrganizationName("PathPT")
    apply_style(app)
    try:
        if args.screenshot:
            return _screenshot(args)
        return _interactive(app, args)
    except (PathPTError, ValueError) as exc:
        print(f"pathpt-gui: {exc}", file=sys.stderr)
        return 2


def _interactive(app: object, args: argparse.Namespace) -> int:
    from .main_window import MainWindow
    from .screenshot import ViewSpec, apply_view, check_overlay_args, load_overlay_npz

    win = MainWindow()
    win.show()
    views = win.open_paths(args.slides)
    spec = ViewSpec.parse(args.view)
    if views:
        if args.overlay:
            load_overlay_npz(args.overlay, views[-1].overlay)
        check_overlay_args(args.opacity, args.cmap, views[-1].overlay)
        if spec is not None:
            apply_view(views[-1], spec)
    return app.exec()  # type: ignore[attr-defined]


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
