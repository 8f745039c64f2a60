"""The MCP proxy's added latency per tools/call over stdio: the same calls of the same server
(the toy FastMCP server of the tests) made directly and through `carlang mcp proxy` (with a
capability and a CEL policy to decide each call), 1,000 sequential calls each, by one client
(carlang's own JSON-RPC client, so both sides pay the same client cost), alternating call by
call so that both see the same load. Target: p50 added <= 1 ms."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from carlang_runtime.ir import McpServer
from carlang_runtime.mcp import McpClient

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "mcp" / "toy_server.py"
TARGET_MS = 1.0

POLICY = """
capability calc { tools allow toy.add }
policy small: deny toy.add when params.a > 1000000
  message "too big"
"""


def _program(directory: Path) -> Path:
    from carlang.mcp_import import import_server, render_import

    server = McpServer(name="toy", command=sys.executable, args=[str(TOY)])
    info, tools = import_server(server)
    path = directory / "toy.car"
    path.write_text(render_import(server, info, tools) + POLICY)
    return path


def _started(server: McpServer) -> McpClient:
    client = McpClient(server)
    client.start()
    return client


def _call(client: McpClient, tool: str, n: int) -> float:
    start = time.perf_counter()
    result = client.request("tools/call", {"name": tool, "arguments": {"a": n, "b": 1}}).result(30)
    elapsed = (time.perf_counter() - start) * 1000.0
    assert not result.get("isError"), result
    return elapsed


def _latencies(direct: McpServer, proxy: McpServer, calls: int) -> tuple[list[float], list[float]]:
    """Calls alternate between the two paths, so that both see the same machine load."""
    clients = [_started(direct), _started(proxy)]
    try:
        for n in range(50):  # warm up
            _call(clients[0], "add", n)
            _call(clients[1], "toy.add", n)
        straight, proxied = [], []
        for n in range(calls):
            straight.append(_call(clients[0], "add", n))
            proxied.append(_call(clients[1], "toy.add", n))
        return straight, proxied
    finally:
        for client in clients:
            client.close()


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(quick: bool = False) -> dict[str, float]:
    """Run the benchmark and print p50/p99 direct, through the proxy, and added."""
    calls = 200 if quick else 1000
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"}
    with tempfile.TemporaryDirectory() as tmp:
        program = _program(Path(tmp))
        direct, proxied = _latencies(
            McpServer(name="toy", command=sys.executable, args=[str(TOY)]),
            McpServer(
                name="proxy",
                command=sys.executable,
                args=["-m", "carlang", "mcp", "proxy", str(program), "--capability", "calc"],
                env=env,
            ),
            calls,
        )
    figures = {
        "direct_p50": statistics.median(direct),
        "direct_p99": _p(direct, 0.99),
        "proxy_p50": statistics.median(proxied),
        "proxy_p99": _p(proxied, 0.99),
    }
    figures["added_p50"] = figures["proxy_p50"] - figures["direct_p50"]
    figures["paired_added_p50"] = statistics.median(
        p - d for p, d in zip(proxied, direct, strict=True)
    )
    figures["added_p99"] = figures["proxy_p99"] - figures["direct_p99"]
    print(f"== mcp proxy: {calls} sequential tools/call over stdio (ms)")
    print(f"{'':10}{'p50':>10}{'p99':>10}")
    print(f"{'direct':10}{figures['direct_p50']:10.3f}{figures['direct_p99']:10.3f}")
    print(f"{'proxy':10}{figures['proxy_p50']:10.3f}{figures['proxy_p99']:10.3f}")
    print(f"{'added':10}{figures['added_p50']:10.3f}{figures['added_p99']:10.3f}")
    print(
        "median of paired differences (proxy - direct, call by call):"
        f" {figures['paired_added_p50']:.3f}"
    )
    verdict = "PASS" if figures["added_p50"] <= TARGET_MS else "MISS"
    print(f"target: p50 added <= {TARGET_MS:g} ms: {verdict}")
    return figures


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
