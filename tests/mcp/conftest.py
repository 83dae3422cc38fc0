"""Shared fixtures of the `megabin serve` tests: the real MCP Python SDK drives the server.

Run by tests/cli_serve.rs, which builds the test rootfs and sets:
  MEGABIN_BIN           the megabin binary under test
  MEGABIN_SERVE_ROOTFS  the rootfs (the sample plus the tools of tests/cli_serve.rs)
  MEGABIN_SERVE_OUT     its build output, compiled
  MEGABIN_CACHE_DIR     the test run's compile cache
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

BIN = os.environ.get("MEGABIN_BIN", "")
ROOTFS = os.environ.get("MEGABIN_SERVE_ROOTFS", "")
OUT = os.environ.get("MEGABIN_SERVE_OUT", "")
CACHE = os.environ.get("MEGABIN_CACHE_DIR", "")

# A variable of the server's own environment that no tool may see.
SECRET = "MEGABIN_TEST_SECRET"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def server_env():
    return {"MEGABIN_CACHE_DIR": CACHE, SECRET: "must-not-leak"}


class Server:
    """A running `megabin serve` over stdio with an initialized client session."""

    def __init__(self, session, log_path):
        self.session = session
        self.log_path = log_path
        self.notifications = []

    def log(self):
        return Path(self.log_path).read_text(errors="replace")


@contextlib.asynccontextmanager
async def serve(*args, out=None, rootfs=None):
    """Starts `megabin serve [args] OUT` and yields a Server."""
    out = out or OUT
    rootfs = rootfs or ROOTFS
    params = StdioServerParameters(
        command=BIN,
        args=["serve", "--rootfs", rootfs, *args, out],
        env=server_env(),
    )
    with tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False) as log:
        holder = {}

        async def on_message(message):
            if "server" in holder:
                holder["server"].notifications.append(message)

        async with stdio_client(params, errlog=log) as (read, write):
            async with ClientSession(read, write, message_handler=on_message) as session:
                await session.initialize()
                server = Server(session, log.name)
                holder["server"] = server
                yield server


def copy_rootfs(dst):
    """A private copy of the test rootfs (symlinks kept)."""
    shutil.copytree(ROOTFS, dst, symlinks=True)
    return dst


def build(rootfs, out):
    """`megabin build ROOTFS -o OUT` then `megabin compile OUT`."""
    env = dict(os.environ, MEGABIN_CACHE_DIR=CACHE)
    for cmd in (["build", str(rootfs), "-o", str(out), "-q"], ["compile", str(out)]):
        r = subprocess.run([BIN, *cmd], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
