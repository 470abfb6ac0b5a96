#!/usr/bin/env python3
"""Scripted model servers for the real-agent tests (tests/world/models.sh starts it
in netns apw-srv, TLS on 198.18.0.20:443 under the real API host names).

The script travels in the prompt, so the server keeps no state between requests:
the first user message holds lines

    APW-SESSION <tag>
    APW-STEP <shell command>        (one per step, in order)
    APW-FINAL <final answer text>

and each request is answered with the next step: the number of tool results the
agent has sent back so far picks it. Step k is a tool call running the command
(Anthropic Messages `tool_use` of the Bash tool; OpenAI Responses `function_call`
of Codex's shell tool); after the last one, the final text. Chat Completions (aider
through litellm) has no tools: aider runs the steps itself (/run, from --load) and
sends their output along with the prompt; the answer is the final text.

Every request is logged, one JSON object a line, to --log: the SNI and Host, the
method and path, the session tag, the step answered and the tool results the
request carries. Requests to any other path get `{}` (and are logged too).
"""
import argparse, json, os, re, socket, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_LOCK = threading.Lock()
ARGS = None


def log(rec):
    rec["t"] = round(time.time(), 3)
    with LOG_LOCK, open(ARGS.log, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
        f.flush()


def texts(content):
    """All text in a message content (string or list of blocks)."""
    if isinstance(content, str):
        return [content]
    out = []
    for b in content or []:
        if isinstance(b, dict):
            for k in ("text", "input_text"):
                if isinstance(b.get(k), str):
                    out.append(b[k])
            if b.get("type") in ("text", "input_text", "output_text") and isinstance(b.get("text"), str):
                pass
    return out


def script_of(all_text):
    tag, steps, final = None, [], None
    for line in "\n".join(all_text).splitlines():
        line = line.strip()
        if line.startswith("APW-SESSION "):
            tag = tag or line[len("APW-SESSION "):].strip()
        elif line.startswith("APW-STEP "):
            steps.append(line[len("APW-STEP "):])
        elif line.startswith("APW-FINAL "):
            final = final or line[len("APW-FINAL "):]
    return tag, steps, final


def sse(events):
    return "".join("event: %s\ndata: %s\n\n" % (e, json.dumps(d)) for e, d in events).encode()


# --- Anthropic Messages ---------------------------------------------------------

def anthropic(body, rec):
    msgs = body.get("messages") or []
    user_text = []
    results = []
    for m in msgs:
        c = m.get("content")
        if m.get("role") == "user":
            user_text += texts(c)
            if isinstance(c, list):
                for b in c:
                    if isinstance(b, dict) and b.get("type") == "tool_result":
                        rc = b.get("content")
                        results.append("\n".join(texts(rc)) if not isinstance(rc, str) else rc)
    tag, steps, final = script_of(user_text)
    tools = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    rec.update(api="anthropic", session=tag, tool_results=results, tools=tools,
               model=body.get("model"), stream=bool(body.get("stream")))
    model = body.get("model") or "claude"
    if tag and "Bash" in tools and len(results) < len(steps):
        k = len(results)
        rec["answer"] = "step %d" % (k + 1)
        block = {"type": "tool_use", "id": "toolu_apw_%d" % (k + 1), "name": "Bash",
                 "input": {"command": steps[k], "description": "scripted step %d" % (k + 1)}}
        stop = "tool_use"
    else:
        text = final if (tag and final and "Bash" in tools) else "OK"
        rec["answer"] = "final" if text == final else "filler"
        block = {"type": "text", "text": text}
        stop = "end_turn"
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    msg = {"id": "msg_apw", "type": "message", "role": "assistant", "model": model,
           "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    if not body.get("stream"):
        msg.update(content=[block], stop_reason=stop)
        return 200, "application/json", json.dumps(msg).encode()
    if block["type"] == "tool_use":
        start = dict(block, input={})
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    else:
        start = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": block["text"]}
    return 200, "text/event-stream", sse([
        ("message_start", {"type": "message_start", "message": msg}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ])


# --- OpenAI Responses (Codex) ---------------------------------------------------

SHELL_TOOLS = ("exec", "shell_command", "exec_command", "shell", "local_shell")


def tool_names(tools):
    """Names of the tools offered, namespaces flattened (Codex 0.16x nests them)."""
    out = []
    for t in tools or []:
        if not isinstance(t, dict):
            continue
        if t.get("type") == "namespace":
            out += tool_names(t.get("tools"))
        else:
            out.append(t.get("name") or t.get("type"))
    return out


def responses(body, rec):
    items = body.get("input") or []
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    user_text, results = [], []
    for it in items:
        if not isinstance(it, dict):
            continue
        if it.get("type") in (None, "message") and it.get("role") == "user":
            user_text += texts(it.get("content"))
        if it.get("type") in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            out = it.get("output")
            if isinstance(out, dict):
                out = out.get("content") or json.dumps(out)
            elif isinstance(out, list):
                out = "\n".join(texts(out))
            results.append(out if isinstance(out, str) else json.dumps(out))
    tag, steps, final = script_of(user_text)
    tools = tool_names(body.get("tools"))
    for it in items:
        if isinstance(it, dict) and it.get("type") == "additional_tools":
            tools += tool_names(it.get("tools"))
    tool = next((n for n in SHELL_TOOLS if n in tools), None)
    rec.update(api="responses", session=tag, tool_results=results, tools=tools,
               model=body.get("model"), stream=bool(body.get("stream")))
    if tag and tool and len(results) < len(steps):
        k = len(results)
        rec["answer"] = "step %d (%s)" % (k + 1, tool)
        cmd = steps[k]
        if tool == "exec":
            # Code mode: the model writes JavaScript that calls the nested tools.
            js = ("const r = await tools.exec_command({cmd: %s, yield_time_ms: 30000});\n"
                  "text(r.output);\n" % json.dumps(cmd))
            item = {"type": "custom_tool_call", "id": "ctc_apw_%d" % (k + 1), "call_id": "call_apw_%d" % (k + 1),
                    "name": "exec", "input": js, "status": "completed"}
        elif tool == "shell":
            args = {"command": ["bash", "-lc", cmd]}
        elif tool == "exec_command":
            args = {"cmd": cmd}
        else:
            args = {"command": cmd}
        if tool != "exec":
            item = {"type": "function_call", "id": "fc_apw_%d" % (k + 1), "call_id": "call_apw_%d" % (k + 1),
                    "name": tool, "arguments": json.dumps(args), "status": "completed"}
        if tool == "local_shell":
            item = {"type": "local_shell_call", "id": "lsh_apw_%d" % (k + 1), "call_id": "call_apw_%d" % (k + 1),
                    "status": "completed", "action": {"type": "exec", "command": ["bash", "-lc", cmd]}}
    else:
        text = final if (tag and final and tool) else "OK"
        rec["answer"] = "final" if text == final else "filler"
        item = {"type": "message", "id": "msg_apw", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}
    resp = {"id": "resp_apw", "object": "response", "created_at": int(time.time()), "status": "completed",
            "model": body.get("model") or "gpt", "output": [item], "usage": usage}
    if not body.get("stream"):
        return 200, "application/json", json.dumps(resp).encode()
    events = [("response.created", {"type": "response.created", "sequence_number": 0,
                                    "response": dict(resp, status="in_progress", output=[])}),
              ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1,
                                              "output_index": 0, "item": dict(item, status="in_progress")})]
    if item["type"] == "message":
        events.append(("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 2,
                                                      "item_id": "msg_apw", "output_index": 0, "content_index": 0,
                                                      "delta": item["content"][0]["text"]}))
    events += [("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 3,
                                              "output_index": 0, "item": item}),
               ("response.completed", {"type": "response.completed", "sequence_number": 4, "response": resp})]
    return 200, "text/event-stream", sse(events)


# --- OpenAI Chat Completions (aider through litellm) ------------------------------

def chat(body, rec):
    msgs = body.get("messages") or []
    user_text = []
    for m in msgs:
        if m.get("role") == "user":
            user_text += texts(m.get("content"))
    tag, steps, final = script_of(user_text)
    # What aider sent back: the output of the commands it ran (/run adds it to the chat).
    later = [t for t in user_text if "APW-SESSION" not in t and t.startswith("I ran this command")]
    rec.update(api="chat", session=tag, tool_results=later, model=body.get("model"),
               stream=bool(body.get("stream")))
    if tag:
        text = final or "OK"
        rec["answer"] = "final"
    else:
        text = "OK"
        rec["answer"] = "filler"
    model = body.get("model") or "gpt"
    if not body.get("stream"):
        return 200, "application/json", json.dumps({
            "id": "chatcmpl-apw", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}).encode()
    def chunk(delta, fin=None):
        return "data: " + json.dumps({"id": "chatcmpl-apw", "object": "chat.completion.chunk", "created": 0,
                                      "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": fin}]}) + "\n\n"
    out = chunk({"role": "assistant", "content": ""}) + chunk({"content": text}) + chunk({}, "stop")
    out += "data: " + json.dumps({"id": "chatcmpl-apw", "object": "chat.completion.chunk", "created": 0, "model": model,
                                  "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                                           "total_tokens": 15}}) + "\n\n"
    out += "data: [DONE]\n\n"
    return 200, "text/event-stream", out.encode()


ROUTES = [("POST", re.compile(r"^/v1/messages(\?.*)?$"), anthropic),
          ("POST", re.compile(r"^(/v1|/backend-api/codex)?/responses(\?.*)?$"), responses),
          ("POST", re.compile(r"^/v1/chat/completions(\?.*)?$"), chat)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "apw-models"

    def log_message(self, *a):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        sni = getattr(self.connection, "apw_sni", None)
        rec = {"sni": sni, "host": self.headers.get("Host"), "method": self.command, "path": self.path,
               "ua": self.headers.get("User-Agent"), "bytes": len(raw)}
        status, ctype, out = 200, "application/json", b"{}"
        if ARGS.dump and raw:
            with open(os.path.join(ARGS.dump, "%.3f-%s.json" % (time.time(), self.command)), "wb") as f:
                f.write(raw)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            # No WebSocket transport here: Codex falls back to HTTPS (SSE) on a refusal.
            rec.update(websocket=True, status=404)
            log(rec)
            self.send_error(404)
            return
        for method, pat, fn in ROUTES:
            if self.command == method and pat.match(self.path):
                try:
                    enc = (self.headers.get("Content-Encoding") or "").lower()
                    if enc == "zstd":
                        raise ValueError("zstd request bodies are not supported")
                    if enc == "gzip":
                        import gzip
                        raw = gzip.decompress(raw)
                    status, ctype, out = fn(json.loads(raw or b"{}"), rec)
                except Exception as e:
                    rec["error"] = "%s: %s" % (type(e).__name__, e)
                    status, out = 400, json.dumps({"error": {"type": "invalid_request_error", "message": str(e)}}).encode()
                break
        else:
            rec["unrouted"] = True
        rec["status"] = status
        log(rec)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        if ctype == "text/event-stream":
            self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET

    def finish_request(self, request, client_address):
        # The TLS handshake in the connection's own thread, not in the accept loop.
        request.settimeout(60)
        try:
            request.do_handshake()
        except Exception as e:
            log({"ev": "tls-failed", "src": client_address[0], "error": str(e)})
            return
        super().finish_request(request, client_address)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--addr", default="198.18.0.20")
    p.add_argument("--port", type=int, default=443)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--dump", help="also write each request body to a file in this directory (debugging)")
    ARGS = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    ctx.set_alpn_protocols(["http/1.1"])

    def on_sni(sslsock, name, _ctx):
        sslsock.apw_sni = name
    ctx.sni_callback = on_sni
    srv = Server((ARGS.addr, ARGS.port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    with open(ARGS.pidfile, "w") as f:
        f.write(str(os.getpid()))
    srv.serve_forever()


if __name__ == "__main__":
    main()
