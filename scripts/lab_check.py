"""Headless end-to-end check of ``make lab`` (``make lab-check``; not part of CI, which
never installs JupyterLab).

1. starts ``make lab`` in the background on a free port with a random token;
2. waits for the server, then checks that the port listens on 127.0.0.1 and on no other
   address;
3. opens a chapter notebook through the server (contents API), starts a session on it
   (kernel ``python3``, which ``make lab`` maps to the project's venv), and runs every
   code cell over the kernel's websocket, in order;
4. checks that the kernel is the project's venv python and runs in notebooks/ (as under
   nbval), that no cell fails, and that the cells marked ``# NBVAL_CHECK_OUTPUT`` print
   what the stored notebook holds (after the sanitizers of notebooks/nbval_sanitize.cfg,
   as nbval compares them);
5. stops the server (``/api/shutdown``, then SIGTERM to its process group if needed).

Runs with the lab venv's python (it needs ``websocket-client``, a dependency of
jupyter-server).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import websocket  # websocket-client, installed with jupyter-server (lock/lab.txt)

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on ``port`` (from /proc/net/tcp and
    tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A = LISTEN
                continue
            if width == 8:
                b = bytes.fromhex(addr_hex)[::-1]
                found.add(socket.inet_ntop(socket.AF_INET, b))
            else:
                b = b"".join(
                    bytes.fromhex(addr_hex[i : i + 8])[::-1] for i in range(0, 32, 8)
                )
                found.add(socket.inet_ntop(socket.AF_INET6, b))
    return found


class Server:
    def __init__(self, port: int, token: str):
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def api(
        self, method: str, path: str, body: dict | None = None, timeout: float = 30
    ) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"token {self.token}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
        return json.loads(text) if text else {}


def sanitizers() -> list[tuple[str, str]]:
    """regex/replace pairs of notebooks/nbval_sanitize.cfg (the format nbval reads)."""
    pairs, regex = [], None
    for line in (ROOT / "notebooks" / "nbval_sanitize.cfg").read_text().splitlines():
        if line.startswith("regex:"):
            regex = line.split(":", 1)[1].strip()
        elif line.startswith("replace:") and regex is not None:
            pairs.append((regex, line.split(":", 1)[1].strip()))
            regex = None
    return pairs


def text_of(outputs: list[dict]) -> str:
    """The text nbval compares: streams and text/plain results (images are never
    compared)."""
    parts = []
    for o in outputs:
        if o.get("output_type") == "stream":
            parts.append(
                "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
            )
        elif o.get("output_type") in ("execute_result", "display_data"):
            t = o.get("data", {}).get("text/plain")
            if t is not None and o.get("output_type") == "execute_result":
                parts.append("".join(t) if isinstance(t, list) else t)
    return "".join(parts)


def run_cell(
    ws: websocket.WebSocket, session: str, code: str, timeout: float
) -> tuple[str, list[dict]]:
    """Send one execute_request; collect iopub outputs until the kernel is idle
    again."""
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": "lab-check",
                    "session": session,
                    "msg_type": "execute_request",
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "buffers": [],
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    outputs: list[dict] = []
    status, idle = None, False
    deadline = time.monotonic() + timeout
    while not (idle and status is not None):
        ws.settimeout(max(1.0, deadline - time.monotonic()))
        if time.monotonic() > deadline:
            raise TimeoutError(f"cell did not finish in {timeout:.0f} s")
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if msg["channel"] == "shell" and kind == "execute_reply":
            status = msg["content"]["status"]
        elif msg["channel"] == "iopub":
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            elif kind in ("stream", "execute_result", "display_data", "error"):
                outputs.append({"output_type": kind, **msg["content"]})
    return status, outputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--notebook",
        default="prop4_single_expert",
        help="stem of a notebook in notebooks/",
    )
    ap.add_argument("--make", default="make")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per cell")
    args = ap.parse_args()

    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_TOKEN=token)
    log = open(ROOT / ".venv-lab" / "lab-check.log", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [*args.make.split(), "lab", f"LAB_PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(port, token)
    failures: list[str] = []
    try:
        for _ in range(240):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"make lab exited with {proc.returncode}; see "
                    ".venv-lab/lab-check.log"
                )
            try:
                version = server.api("GET", "/api/status", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the server did not answer within 120 s")
        print(
            f"server up on 127.0.0.1:{port} after {time.monotonic() - t0:.1f} s "
            f"(connections: {version.get('connections')}, kernels: "
            f"{version.get('kernels')})"
        )
        addrs = listening_addresses(port)
        print(f"listening on: {sorted(addrs)}")
        if addrs != {"127.0.0.1"}:
            failures.append(
                f"port {port} listens on {sorted(addrs)}, expected 127.0.0.1 only"
            )
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5)
            failures.append("the API answered without the token")
        except urllib.error.HTTPError as exc:
            print(f"without the token: HTTP {exc.code} (refused, as it should be)")

        path = f"{args.notebook}.ipynb"
        model = server.api("GET", f"/api/contents/{path}?content=1")
        cells = model["content"]["cells"]
        code_cells = [c for c in cells if c["cell_type"] == "code"]
        specs = server.api("GET", "/api/kernelspecs")
        py3 = specs["kernelspecs"]["python3"]["spec"]
        print(
            f"opened {path} through the contents API: {len(code_cells)} code cells; "
            f"kernel python3 = {py3['argv'][0]} ({py3['display_name']})"
        )
        sess = server.api(
            "POST",
            "/api/sessions",
            {
                "path": path,
                "name": path,
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )
        kernel_id, session_id = sess["kernel"]["id"], uuid.uuid4().hex
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels"
            f"?session_id={session_id}",
            header=[f"Authorization: token {token}"],
            timeout=60,
        )
        status, out = run_cell(
            ws,
            session_id,
            "import os, sys; print(sys.executable); print(os.getcwd())",
            120,
        )
        exe, cwd = text_of(out).split()
        print(f"kernel: {exe}, working directory {cwd}")
        if Path(exe).parent.parent.resolve() != (ROOT / ".venv").resolve():
            failures.append(f"kernel runs {exe}, not the project's venv")
        if Path(cwd).resolve() != (ROOT / "notebooks").resolve():
            failures.append(
                f"kernel runs in {cwd}, not in notebooks/ (nbval's working directory)"
            )

        pairs = sanitizers()

        def clean(s: str) -> str:
            for rx, rep in pairs:
                s = re.sub(rx, rep, s)
            return s

        t_run, checked, compared = time.monotonic(), 0, 0
        for i, cell in enumerate(code_cells):
            src = (
                "".join(cell["source"])
                if isinstance(cell["source"], list)
                else cell["source"]
            )
            status, out = run_cell(ws, session_id, src, args.timeout)
            first = src.strip().splitlines()[0] if src.strip() else ""
            if status != "ok":
                err = next((o for o in out if o["output_type"] == "error"), {})
                failures.append(
                    f"cell {i} `{first}` failed: {err.get('ename')}: "
                    f"{err.get('evalue')}"
                )
                break
            if first.startswith("# NBVAL_CHECK_OUTPUT"):
                checked += 1
                want, got = clean(text_of(cell.get("outputs", []))), clean(text_of(out))
                compared += len(want)
                if not want.strip():
                    failures.append(
                        f"cell {i}: a checked cell without stored text output"
                    )
                if want != got:
                    failures.append(
                        f"cell {i}: checked output differs from the stored one:\n--- "
                        f"stored\n{want}\n--- via make lab\n{got}"
                    )
        print(
            f"ran {len(code_cells)} code cells through the kernel in "
            f"{time.monotonic() - t_run:.1f} s; {checked} checked cells ({compared} "
            "characters) equal to the stored outputs"
        )
        ws.close()
        server.api("DELETE", f"/api/sessions/{sess['id']}")
    except Exception as exc:  # noqa: BLE001 - report, then always stop the server
        failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        try:
            server.api("POST", "/api/shutdown", timeout=10)
        except Exception:  # noqa: BLE001
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()
    still = listening_addresses(port)
    print(
        f"server stopped (make lab exit status {proc.returncode}); port {port} "
        f"{'still open: ' + str(sorted(still)) if still else 'closed'}"
    )
    if still:
        failures.append(f"port {port} still listening after shutdown")
    if failures:
        print(
            "LAB CHECK FAILED:\n" + "\n".join(f"  {f}" for f in failures),
            file=sys.stderr,
        )
        return 1
    print(
        f"lab check passed: {args.notebook} ran end to end through make lab on "
        "127.0.0.1"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
