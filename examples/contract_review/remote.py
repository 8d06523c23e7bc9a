"""Review the sample contract through ``subiso serve`` with LangGraph's official client.

    subiso serve examples/contract_review/langgraph.json &
    python -m examples.contract_review.remote [--url http://127.0.0.1:2024] [--also URL]

Waits (bounded) for the server to answer ``/ok``, then creates a thread, streams the review's
node updates as they happen, and prints the report and the thread's state - and, with
``--also``, the same thread read through another server sharing the first one's Redis and
PostgreSQL (``subiso serve --queue``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx
from langgraph_sdk import get_sync_client

SAMPLE = Path(__file__).with_name("sample_contract.txt")


def wait_until_up(url: str, bound_s: float = 60.0) -> None:
    deadline = time.monotonic() + bound_s
    while True:
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"no subiso serve answering at {url} within {bound_s:g}s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.contract_review.remote")
    parser.add_argument("--url", default="http://127.0.0.1:2024")
    parser.add_argument("--also", metavar="URL", help="another server: read the thread there")
    args = parser.parse_args()
    wait_until_up(args.url)
    client = get_sync_client(url=args.url, api_key=None)
    thread = client.threads.create()
    for part in client.runs.stream(
        thread["thread_id"], "contract_review", input={"path": str(SAMPLE)}, stream_mode="updates"
    ):
        if part.event == "updates":
            print("finished node:", ", ".join(part.data))
    state = client.threads.get_state(thread["thread_id"])
    report = state["values"]["report"]
    print(f"{report['title']}: overall risk {report['overall_risk']} ({report['risk_score']}/100)")
    print(
        f"thread {thread['thread_id']}: {len(client.threads.get_history(thread['thread_id']))} checkpoints"
    )
    if args.also:
        wait_until_up(args.also)
        other = get_sync_client(url=args.also, api_key=None)
        seen = other.threads.get_state(thread["thread_id"])["values"]["report"]
        checkpoints = len(other.threads.get_history(thread["thread_id"]))
        print(f"the same thread via {args.also}: {checkpoints} checkpoints, {seen['title']}")


if __name__ == "__main__":
    main()
