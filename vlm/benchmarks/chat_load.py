"""The chat demo under load: concurrent `gradio_client` clients, each in its own session, streaming
answers for a bounded number of turns; prints latency percentiles and the server's resident memory.

    python -m vlm.benchmarks.chat_load --model PATH [--clients 8] [--rounds 5] [--turns 5]

The server is `vlm chat` in its own process (its memory is measured alone), serving ``clients``
answers at once. Each client repeats ``rounds`` times: Clear, then ``turns`` messages (the first with
its own picture, the others text only), greedy. Per request: time to the first streamed token and to
the whole answer. Each client checks that its conversation holds exactly its own messages and that
every round answered identically (greedy, same inputs: another session leaking in would change it).
Then one request over each limit (images per conversation, the model's context) must be answered
with a message saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "cyan", "magenta", "white", "gray"]


@dataclass
class ClientResult:
    name: str
    ttft: list[float] = field(default_factory=list)  # seconds to the first streamed token
    total: list[float] = field(default_factory=list)  # seconds to the whole answer
    rounds: list[list[str]] = field(default_factory=list)  # each round's answers
    problems: list[str] = field(default_factory=list)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99 (nearest rank) and the maximum."""
    ordered = sorted(values)
    if not ordered:
        return {}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": ordered[-1]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str | Path, clients: int, max_new_tokens: int, port: int | None = None):
    """`vlm chat` on a free port (a subprocess); returns (process, url) once it answers."""
    port = port or _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    env.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="vlm-chat-load-"))
    log = tempfile.TemporaryFile("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "vlm.cli", "chat", "--model", str(model), "--port", str(port), "--concurrency",
         str(clients), "--temperature", "0", "--max-new-tokens", str(max_new_tokens)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    server.log = log  # type: ignore[attr-defined]
    deadline = time.time() + 300
    while True:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the chat server exited:\n{log.read()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.time() > deadline:
                server.kill()
                raise TimeoutError("the chat server did not start within 300 s") from None
            time.sleep(0.5)
    return server, f"http://127.0.0.1:{port}"


def _texts(history: list[dict], role: str) -> list[str]:
    out = []
    for m in history:
        if m["role"] != role:
            continue
        content = m["content"]
        parts = content if isinstance(content, list) else [content]
        out.append("".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in parts))
    return out


def _client(url: str):
    from gradio_client import Client

    return Client(url, analytics_enabled=False, verbose=False)


def _message(text: str, *files: Path) -> dict:
    from gradio_client import handle_file

    return {"text": text, "files": [handle_file(str(f)) for f in files]}


def run_client(url: str, name: str, picture: Path, rounds: int, turns: int, max_new: int,
               on_request=None) -> ClientResult:
    api, result = _client(url), ClientResult(name)
    for r in range(rounds):
        api.predict(api_name="/clear")
        sent, answers = [], []
        for t in range(turns):
            text = f"{name}: question {t + 1}, what is in my picture?"
            start, first, history = time.perf_counter(), None, None
            job = api.submit(_message(text, *([picture] if t == 0 else [])), 0.0, 1.0, max_new, api_name="/chat")
            for history, _box in job:
                if first is None and _texts(history, "assistant") and _texts(history, "assistant")[-1]:
                    first = time.perf_counter() - start
            result.total.append(time.perf_counter() - start)
            result.ttft.append(first if first is not None else result.total[-1])
            sent.append(text)
            users, replies = _texts(history, "user"), _texts(history, "assistant")
            if users != sent:
                result.problems.append(f"round {r + 1} turn {t + 1}: the conversation shows {users}, sent {sent}")
            answers.append(replies[-1] if replies else "")
            if on_request is not None:
                on_request()
        result.rounds.append(answers)
        if answers != result.rounds[0]:
            result.problems.append(f"round {r + 1} answered {answers}, round 1 {result.rounds[0]}")
    return result


def over_the_limits(url: str, pictures: list[Path], max_new: int) -> dict[str, str]:
    """One request over each limit, from a fresh session: the warning the chat shows."""
    api, out = _client(url), {}
    history, _ = api.predict(_message("So many?", *pictures), 0.0, 1.0, max_new, api_name="/chat")
    out["images"] = _texts(history, "assistant")[-1]
    api.predict(api_name="/clear")
    history, _ = api.predict(_message("word " * 5000), 0.0, 1.0, max_new, api_name="/chat")
    out["context"] = _texts(history, "assistant")[-1]
    return out


def run(model: str | Path, clients: int = 8, rounds: int = 5, turns: int = 5, max_new_tokens: int = 8,
        warmup: int = 40) -> dict:
    """``clients x rounds x turns`` streamed requests against `vlm chat` serving ``model``; the server's
    resident memory is sampled after every request (the first ``warmup`` requests settle it)."""
    import psutil
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="vlm-chat-load-pictures-"))
    pictures = []
    for i in range(max(clients, 5)):
        pictures.append(folder / f"picture_{i}.png")
        Image.new("RGB", (64 + 8 * i, 64), COLOURS[i % len(COLOURS)]).save(pictures[-1])
    server, url = start_server(model, clients, max_new_tokens)
    proc, lock, rss = psutil.Process(server.pid), threading.Lock(), []

    def sample() -> None:
        with lock:
            rss.append(proc.memory_info().rss)

    try:
        sample()
        results: list[ClientResult] = [None] * clients  # type: ignore[list-item]

        def work(i: int) -> None:
            try:
                results[i] = run_client(url, f"client {i + 1}", pictures[i], rounds, turns, max_new_tokens, sample)
            except Exception as err:  # noqa: BLE001 - reported with the others
                results[i] = ClientResult(f"client {i + 1}", problems=[f"failed: {err!r}"])

        start = time.perf_counter()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        limits = over_the_limits(url, pictures[:5], max_new_tokens)
    finally:
        server.terminate()
        server.wait(timeout=60)
    requests = sum(len(r.total) for r in results)
    mib = [x / 2**20 for x in rss]
    settled = mib[min(warmup, len(mib) - 1)]
    return {
        "clients": clients, "requests": requests, "wall_s": wall, "requests_per_s": requests / wall,
        "max_new_tokens": max_new_tokens,
        "ttft_s": percentiles([x for r in results for x in r.ttft]),
        "answer_s": percentiles([x for r in results for x in r.total]),
        "rss_mib": {"start": mib[0], f"after_{warmup}": settled, "end": mib[-1], "max": max(mib),
                    "growth_after_warmup": mib[-1] - settled, "samples": len(mib),
                    "series": [round(x, 2) for x in mib]},
        "problems": [p for r in results for p in r.problems],
        "limits": limits,
    }


def report(r: dict) -> str:
    def row(name: str, p: dict) -> str:
        return f"{name:<22}" + "".join(f"{p[k] * 1000:>10.0f}" for k in ("p50", "p90", "p99", "max"))

    m = r["rss_mib"]
    lines = [
        f"{r['clients']} clients, {r['requests']} streamed requests in {r['wall_s']:.1f} s "
        f"({r['requests_per_s']:.2f}/s), {r['max_new_tokens']} new tokens each",
        f"{'latency (ms)':<22}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}",
        row("first token", r["ttft_s"]), row("whole answer", r["answer_s"]),
        f"server RSS (MiB): start {m['start']:.0f}, after warm-up {[v for k, v in m.items() if k.startswith('after_')][0]:.0f}, "
        f"end {m['end']:.0f}, max {m['max']:.0f} (growth after warm-up {m['growth_after_warmup']:+.1f})",
        f"isolation: {'every client saw only its own conversation' if not r['problems'] else r['problems'][:3]}",
        f"over the image limit: {r['limits']['images'][:140]!r}",
        f"over the context: {r['limits']['context'][:140]!r}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vlm.benchmarks.chat_load", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a vlm model folder")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--turns", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--warmup", type=int, default=40, help="requests before the memory baseline is taken")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)
    result = run(args.model, args.clients, args.rounds, args.turns, args.max_new_tokens, warmup=args.warmup)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
