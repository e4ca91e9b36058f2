"""`a2sb app`: the local web app (needs the `app` extra: pip install "a2sb[app]")."""

from ..errors import A2SBError

INSTALL_HINT = 'the web app needs Gradio: pip install "a2sb[app]"'


def add_parser(sub) -> None:
    p = sub.add_parser("app", help="start the local web app (restore in the browser)",
                       description="Start a local web app to restore files in the browser, with before/after "
                                   "spectrograms and players. Needs the app extra: pip install \"a2sb[app]\".")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0: any free port)")
    p.add_argument("--model", action="append", default=[], metavar="PATH",
                   help="a model folder to offer besides the bundled model; repeat for more")
    p.add_argument("--device", choices=("cpu", "cuda", "mps", "auto"), default="auto")
    p.add_argument("--max-size-mb", type=float, default=200.0, help="largest upload accepted (default 200 MB)")
    p.set_defaults(func=_app_command)


def _app_command(args) -> int:
    import importlib.util
    from pathlib import Path

    try:  # found, not imported: the app sets Gradio's cache folder before Gradio is imported
        found = importlib.util.find_spec("gradio") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["gradio"] is None
        found = False
    if not found:
        raise A2SBError(INSTALL_HINT)
    for folder in args.model:
        if not Path(folder).is_dir():
            raise A2SBError(f"--model {folder}: no such model folder")
    if args.max_size_mb <= 0:
        raise A2SBError(f"--max-size-mb must be positive, got {args.max_size_mb:g}")
    if not 0 <= args.port <= 65535:
        raise A2SBError(f"--port must be 0-65535, got {args.port}")
    from ..app.ui import serve

    return serve(host=args.host, port=args.port or _free_port(args.host), models=args.model, device=args.device,
                 max_mb=args.max_size_mb)


def _free_port(host: str) -> int:
    import socket

    try:
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    except OSError as err:
        raise A2SBError(f"cannot listen on {host}: {err.strerror or err}") from None
