#!/usr/bin/env python3
"""Consume a cometd-bridge SSE stream from Python with the standard library only.

    python3 examples/consumer.py http://127.0.0.1:8080/sessions/demo/events?channel=/demo/ticks [max_events]

Prints one line per event and reconnects on errors, resuming with Last-Event-ID so that nothing the bridge still
buffers is missed. `event: gap` means the bridge could not replay everything since the last id.
"""
import json
import sys
import time
import urllib.request


def events(url, last_id=None):
    """Yield (event, id, data) tuples from one SSE connection."""
    headers = {"Accept": "text/event-stream"}
    if last_id:
        headers["Last-Event-ID"] = last_id
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        event, event_id, data = "message", None, []
        for raw in response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                if data:
                    yield event, event_id, "\n".join(data)
                event, event_id, data = "message", None, []
            elif line.startswith(":"):
                continue  # heartbeat comment
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "id":
                    event_id = value
                elif field == "data":
                    data.append(value)


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/sessions/demo/events?channel=/demo/ticks"
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
    last_id, seen = None, 0
    while limit is None or seen < limit:
        try:
            for event, event_id, data in events(url, last_id):
                if event_id:
                    last_id = event_id
                if event == "message":
                    message = json.loads(data)
                    print(f"{event_id} {message['channel']} {json.dumps(message['data'])}", flush=True)
                    seen += 1
                    if limit is not None and seen >= limit:
                        return
                else:
                    print(f"[{event}] {data}", flush=True)
                    if event == "shutdown":
                        break
        except (OSError, ValueError) as error:
            print(f"[reconnecting after: {error}]", file=sys.stderr, flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
