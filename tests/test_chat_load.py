"""The chat demo under load (`vlm.benchmarks.chat_load`): 8 concurrent gradio_client clients, each
streaming 25 answers in its own session (5 rounds of 5 turns, Clear between rounds), 200 requests
against `vlm chat` in its own process. Every client sees only its own conversation and the same
greedy answers every round; the server's resident memory stays flat once warm; a request over the
image or context limit is answered with a message saying so.

Marked ``chat_load`` (about 3 minutes on two quiet cores); run with ``bash scripts/test.sh -m chat_load``.
The latency numbers are the benchmark's to print (`python -m vlm.benchmarks.chat_load --model PATH`),
not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm.benchmarks.chat_load import report, run

pytestmark = pytest.mark.chat_load

ARTIFACTS = Path(__file__).parent / "artifacts"
# Resident memory after the first 40 requests vs after all 200: allocator noise on this machine is a
# few MiB; a per-request leak of even 100 KiB over 160 requests would show as 16 MiB.
RSS_MARGIN_MIB = 12


def test_eight_streaming_clients_stay_apart_and_memory_stays_flat(built_models):
    result = run(built_models(), clients=8, rounds=5, turns=5, max_new_tokens=8, warmup=40)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "chat_load.json").write_text(json.dumps(result, indent=1))
    print(report(result))
    assert result["requests"] == 200
    assert not result["problems"], result["problems"][:5]
    assert result["rss_mib"]["growth_after_warmup"] <= RSS_MARGIN_MIB, result["rss_mib"]
    assert result["limits"]["images"].startswith("⚠️ **Not sent.**\n- Too many images: this conversation would "
                                                 "hold 5 (0 before this message), and this model takes at most 4")
    assert result["limits"]["context"].startswith("⚠️ **Not sent.**\n- The conversation is ")
    assert "the whole of this model's 4096-token context" in result["limits"]["context"]
