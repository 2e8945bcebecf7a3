"""A hostile or broken MCP server, for the gateway's tests: ``python hostile_server.py MODE``.

echo     answers every request properly (tools/call: one text block)
garbage  answers every request with a line that is not JSON
invalid  answers with JSON that is not JSON-RPC (but names the request id)
huge     answers tools/call with one message of 3 MB
silent   reads everything, answers nothing
exit     exits with status 3 at the first tools/call
"""

import json
import sys

mode = sys.argv[1]
out = sys.stdout
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if "id" not in msg or "method" not in msg:
        continue
    rid, method = msg["id"], msg["method"]
    call = method == "tools/call"
    if mode == "silent":
        continue
    if mode == "exit" and call:
        sys.exit(3)
    if mode == "garbage":
        out.write("this is not json {\n")
    elif mode == "invalid":
        out.write(json.dumps({"id": rid, "answer": 42}) + "\n")
    elif mode == "huge" and call:
        text = "x" * (3 * 1024 * 1024)
        out.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": text}]}}) + "\n")
    else:
        result = {"content": [{"type": "text", "text": "ok"}]} if call else {"tools": []}
        out.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}) + "\n")
    out.flush()
