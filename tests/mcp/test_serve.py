"""`megabin serve` driven by the official MCP Python SDK (see conftest.py)."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import BIN, OUT, ROOTFS, SECRET, build, copy_rootfs, serve, server_env

pytestmark = pytest.mark.anyio


async def call(session, name, arguments=None):
    r = await session.call_tool(name, arguments or {})
    return r, r.structured_content


async def test_lists_one_tool_per_agent_tool_with_schemas():
    async with serve() as s:
        tools = {t.name: t for t in (await s.session.list_tools()).tools}
        manifest = json.loads(Path(OUT, "manifest.json").read_text())
        assert set(tools) == set(manifest["agent_tools"])
        assert "run" not in tools
        assert tools["cat"].description == "Copies stdin, or the files named, to stdout"
        # A tool without a description names its path.
        assert "/opt/tools/search_web" in tools["search_web"].description
        props = tools["cat"].input_schema["properties"]
        assert set(props) == {"args", "stdin", "files"}
        assert tools["cat"].output_schema["required"] == ["exit_code", "stdout", "stderr", "files"]
        # A tool's own (narrower) schema is served as configured.
        assert set(tools["wc"].input_schema["properties"]) == {"stdin"}


async def test_call_with_args_stdin_and_files():
    async with serve() as s:
        r, v = await call(s.session, "search_web", {"args": ["one", "two words"]})
        assert not r.is_error, v
        assert v["exit_code"] == 0
        lines = v["stdout"].splitlines()
        assert "argv[0]=search_web" in lines
        assert "argv[1]=one" in lines and "argv[2]=two words" in lines
        # No host environment variable leaks in: only the working directory is set.
        assert "envc=1" in lines and "env[PWD]=/work" in lines, v["stdout"]
        assert SECRET not in v["stdout"]
        assert "argv[1]=one" in r.content[0].text

        r, v = await call(s.session, "wc", {"stdin": "two lines\nsix words in all\n"})
        assert (v["exit_code"], v["stdout"].strip()) == (0, "2 6 27")

        # Files are written into /work, also the working directory for relative paths.
        r, v = await call(
            s.session, "cat", {"args": ["/work/in.txt", "sub/more.txt"],
                               "files": {"in.txt": "first\n", "sub/more.txt": "second\n"}}
        )
        assert v["stdout"] == "first\nsecond\n", v
        assert v["files"] == {}, "unchanged input files are not returned"

        # Files the program creates come back.
        r, v = await call(s.session, "write_file", {"args": ["/work"]})
        assert v["exit_code"] == 0, v
        assert v["stdout"].strip().endswith("fsops: all steps ok")
        assert v["files"]["a.txt"] == {"encoding": "utf-8", "content": "hello FSOPS\n",
                                       "size": 12, "truncated": False}
        assert v["files"]["sub/b-renamed.txt"]["content"] == "bee\n"
        # Nothing survives between calls: a fresh /work each time.
        r, v = await call(s.session, "cat", {"args": ["a.txt"]})
        assert v["exit_code"] == 1 and "a.txt" in v["stderr"], v
        assert r.is_error


async def test_output_is_capped_with_a_visible_marker():
    async with serve() as s:
        r, v = await call(s.session, "bigout")
        assert v["exit_code"] == 0
        marker = re.search(r"\[megabin: output truncated: (\d+) of (\d+) bytes shown\]$", v["stdout"])
        assert marker, v["stdout"][-200:]
        assert int(marker.group(1)) == 1 << 20 and int(marker.group(2)) > 12 << 20
        assert len(v["stdout"]) < (1 << 20) + 200


async def test_invalid_arguments_and_unknown_tools():
    async with serve() as s:
        r, v = await call(s.session, "cat", {"files": {"../escape": "x"}})
        assert r.is_error and "relative" in v["error"]
        r, v = await call(s.session, "cat", {"env": {"A": "b"}})
        assert r.is_error and "unknown argument" in v["error"]
        with pytest.raises(Exception, match="unknown tool"):
            await s.session.call_tool("no_such_tool", {})


async def test_concurrent_calls_do_not_cross_talk():
    async with serve("--max-concurrency", "3") as s:
        results = {}

        async def one(i):
            text = f"call {i}\n" * (i + 1)
            r, v = await call(s.session, "cat", {"args": ["-", "mine.txt"], "stdin": text,
                                                 "files": {"mine.txt": f"file {i}\n"}})
            results[i] = (text, v)

        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(one, i)
        for i, (text, v) in results.items():
            assert v["exit_code"] == 0
            assert v["stdout"] == text + f"file {i}\n"
        assert len(results) == 16


async def test_a_tampered_tool_file_is_refused(tmp_path):
    rootfs = copy_rootfs(tmp_path / "rootfs")
    target = rootfs / "usr/bin/cat"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    async with serve(rootfs=str(rootfs)) as s:
        r, v = await call(s.session, "cat", {"stdin": "x"})
        assert r.is_error
        assert v["exit_code"] == 126
        assert "modified" in v["error"] and "/usr/bin/cat" in v["error"]
        assert v["stdout"] == ""
        # A missing tool file: not found.
        (rootfs / "usr/bin/wc").unlink()
        r, v = await call(s.session, "wc", {"stdin": "x"})
        assert r.is_error and v["exit_code"] == 127
        # Other tools still run.
        r, v = await call(s.session, "search_web")
        assert v["exit_code"] == 0
    assert "refused" in s.log()


async def test_a_script_tool_runs_through_its_interpreter(tmp_path):
    notes = "#!/usr/bin/cat\nnotes of the day\n"
    async with serve() as s:
        r, v = await call(s.session, "notes", {"args": ["-"], "stdin": "and more\n"})
        assert not r.is_error, v
        assert v["stdout"] == notes + "and more\n", v
    # The script is verified on every call: an edited one is refused, cat never runs.
    rootfs = copy_rootfs(tmp_path / "rootfs")
    (rootfs / "opt/tools/notes").write_text(notes + "edited\n")
    async with serve(rootfs=str(rootfs)) as s:
        r, v = await call(s.session, "notes")
        assert r.is_error and v["exit_code"] == 126, v
        assert "/opt/tools/notes was modified" in v["error"]
        assert v["stdout"] == ""


async def test_timeout_and_memory_limits():
    async with serve("--timeout", "20s") as s:
        started = time.monotonic()
        r, v = await call(s.session, "spin")  # its own limit: 500ms
        assert r.is_error and v["exit_code"] == 124
        assert "time limit" in v["error"]
        assert time.monotonic() - started < 10
        r, v = await call(s.session, "memgrow")  # its own limit: 32M, it needs 96 MiB
        assert r.is_error and v["exit_code"] == 125, v
        assert "memory limit" in v["error"]
    # The server's limit bounds the tools' own.
    async with serve("--max-memory", "16M") as s:
        r, v = await call(s.session, "search_web")
        assert v["exit_code"] == 0
        r, v = await call(s.session, "memgrow")
        assert "memory limit of 16777216 bytes" in v["error"]


async def test_cancellation_stops_the_instance_at_once():
    # One slot: if the cancelled call kept running, the next call would wait for ever.
    async with serve("--max-concurrency", "1") as s:
        with anyio.move_on_after(1.0):
            await s.session.call_tool("spin_forever", {})
            pytest.fail("spin_forever returned")
        started = time.monotonic()
        with anyio.fail_after(30):
            r, v = await call(s.session, "search_web")
        assert v["exit_code"] == 0
        assert time.monotonic() - started < 10
        assert re.search(r"call spin_forever \S+ exit=124 .* cancelled", s.log()), s.log()


async def test_hot_update_under_load(tmp_path):
    rootfs = copy_rootfs(tmp_path / "rootfs")
    out = tmp_path / "out"
    build(rootfs, out)
    old_id = json.loads((out / "manifest.json").read_text())["container_id"]
    async with serve("--max-concurrency", "2", out=str(out), rootfs=str(rootfs)) as s:
        failures, done = [], [0]
        stop = anyio.Event()

        async def load():
            while not stop.is_set():
                r, v = await call(s.session, "search_web", {"args": ["x"]})
                if r.is_error or "argv[1]=x" not in v["stdout"]:
                    failures.append(v)
                done[0] += 1

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(load)
            # A new build with one more tool, written over OUT while calls run.
            config = rootfs / "megabin.toml"
            config.write_text(config.read_text() + '\n[agent_tools.hello]\npath = "/usr/bin/hello"\n')
            await anyio.to_thread.run_sync(build, rootfs, out)
            with anyio.fail_after(60):
                while "hello" not in {t.name for t in (await s.session.list_tools()).tools}:
                    await anyio.sleep(0.2)
            before = done[0]
            with anyio.fail_after(30):
                while done[0] < before + 5:
                    await anyio.sleep(0.05)
            stop.set()
        assert failures == []
        assert done[0] > 5
        r, v = await call(s.session, "hello", {"args": ["new"]})
        assert "hello from megabin fixture" in v["stdout"]
        assert any("ToolListChanged" in type(getattr(n, "root", n)).__name__ for n in s.notifications), s.notifications
        assert "now serving" in s.log()

        # A broken build (manifest edited: its id no longer matches) is refused; the
        # current one keeps serving.
        m = json.loads((out / "manifest.json").read_text())
        assert m["container_id"] != old_id
        m["agent_tools"]["evil"] = m["agent_tools"]["hello"]
        tmp = out / "manifest.json.new"
        tmp.write_text(json.dumps(m))
        os.replace(tmp, out / "manifest.json")
        with anyio.fail_after(30):
            while "refused the new build" not in s.log():
                await anyio.sleep(0.2)
        tools = {t.name for t in (await s.session.list_tools()).tools}
        assert "evil" not in tools and "hello" in tools
        r, v = await call(s.session, "hello")
        assert v["exit_code"] == 0


async def test_expose_programs_adds_a_run_tool():
    async with serve("--expose-programs") as s:
        tools = {t.name for t in (await s.session.list_tools()).tools}
        assert "run" in tools
        r, v = await call(s.session, "run", {"program": "/usr/bin/exitcode", "args": ["7"]})
        assert r.is_error and v["exit_code"] == 7
        assert "exitcode: exit(7)" in v["stdout"]
        r, v = await call(s.session, "run", {"program": "/usr/bin/panic"})
        assert r.is_error and v["exit_code"] == 134 and "trapped" in v["error"]
        r, v = await call(s.session, "run", {"program": "/usr/bin/perl"})
        assert r.is_error and v["exit_code"] == 127
    async with serve() as s:
        with pytest.raises(Exception, match="unknown tool"):
            await s.session.call_tool("run", {"program": "/usr/bin/hello"})


def raw_exchange(lines, expect):
    """Writes raw lines to `megabin serve` on stdin; returns the parsed responses."""
    p = subprocess.Popen([BIN, "serve", "--rootfs", ROOTFS, OUT], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env())
    out, err = p.communicate(b"".join(lines), timeout=60)
    assert p.returncode == 0, err
    responses = [json.loads(l) for l in out.splitlines() if l.strip()]
    assert len(responses) == expect, (responses, err)
    return responses, err


def test_malformed_json_rpc_gets_errors_and_never_kills_the_server():
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "0"}}}
    line = lambda v: (json.dumps(v) + "\n").encode()
    responses, err = raw_exchange([
        b"\xff\xfe garbage that is not JSON\n",
        b'{"jsonrpc": "2.0", "id": 99}\n',  # JSON, but no method
        b"[1, 2\n",
        line(init),
        line({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        line({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": "not an object"}),
        line({"jsonrpc": "2.0", "id": 3, "method": "no/such/method", "params": {}}),
        line({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
              "params": {"name": "cat", "arguments": {"stdin": "still alive"}}}),
    ], expect=5)
    # Bytes that are not JSON are ignored (as the other official SDKs do); JSON that is not a
    # valid request gets "Invalid request" (the SDK cannot tell its id: none is given back).
    invalid = [r for r in responses if "id" not in r]
    assert [r["error"]["code"] for r in invalid] == [-32600, -32600], responses
    by_id = {r["id"]: r for r in responses if "id" in r}
    assert "result" in by_id[1]
    assert by_id[3]["error"]["code"] == -32601
    assert by_id[4]["result"]["structuredContent"]["stdout"] == "still alive"
    assert b"panicked" not in err


async def test_streamable_http_transport():
    proc = await anyio.open_process(
        [BIN, "serve", "--rootfs", ROOTFS, "--listen", "127.0.0.1:0", OUT],
        env=dict(os.environ, **server_env()),
    )
    try:
        line = b""
        with anyio.fail_after(60):
            while b"/mcp" not in line:
                line += await proc.stderr.receive()
        url = re.search(rb"http://\S+/mcp", line).group(0).decode()
        async with streamable_http_client(url) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name for t in (await session.list_tools()).tools}
                assert "cat" in tools
                r = await session.call_tool("cat", {"stdin": "over http"})
                assert r.structured_content["stdout"] == "over http"
    finally:
        proc.terminate()
        await proc.wait()


async def test_streamable_http_on_a_unix_socket(tmp_path):
    import httpx2

    sock = tmp_path / "mcp.sock"
    proc = await anyio.open_process(
        [BIN, "serve", "--rootfs", ROOTFS, "--listen", f"unix:{sock}", OUT],
        env=dict(os.environ, **server_env()),
    )
    try:
        line = b""
        with anyio.fail_after(60):
            while b"listening on unix:" not in line:
                line += await proc.stderr.receive()
        transport = httpx2.AsyncHTTPTransport(uds=str(sock))
        async with httpx2.AsyncClient(transport=transport) as client:
            async with streamable_http_client("http://localhost/mcp", http_client=client,
                                              terminate_on_close=False) as (read, write, *_):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    r = await session.call_tool("cat", {"stdin": "over a unix socket"})
                    assert r.structured_content["stdout"] == "over a unix socket"
    finally:
        proc.terminate()
        await proc.wait()
