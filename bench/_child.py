"""The target of every benchmark child process; light, so the benchmark can name it
without importing what the children need (the forkserver has preloaded that)."""

from __future__ import annotations

from multiprocessing.connection import Connection


def main(conn: Connection, log_path: str) -> None:
    from bench._server import child_main

    child_main(conn, log_path)
