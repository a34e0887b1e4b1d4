"""Run the management server as its own process for the browser tests.

``python _dashboard_serve.py DATA_DIR PORT [ONLINE_WINDOW_S]``: the app from the server's
factory (which mounts the dashboard), served by uvicorn on 127.0.0.1; a short online window
lets a test see a pump go offline without waiting the default 30 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from openinfusion.server.app import create_app
from openinfusion.server.config import Settings


def main(data_dir: str, port: str, online_window_s: str = "30") -> None:
    settings = Settings(
        data_dir=Path(data_dir), port=int(port), online_window_s=float(online_window_s)
    )
    app = create_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main(*sys.argv[1:4])
