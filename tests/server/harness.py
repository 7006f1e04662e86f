"""Shared helpers of the server tests: fixture models, a running `gemmarun serve`,
raw HTTP, and /metrics parsing. Paths come from the environment that ctest sets:
GR_BINARY (the gemmarun binary), GR_FIXTURE_TOOL (make_server_fixture),
GR_TEST_DATA_DIR (tests/data) and GR_WORK_DIR (a scratch folder in the build tree).
Every server binds 127.0.0.1 only, and every wait below is bounded."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BINARY = os.environ.get("GR_BINARY", "")
FIXTURE_TOOL = os.environ.get("GR_FIXTURE_TOOL", "")
DATA_DIR = os.environ.get("GR_TEST_DATA_DIR", "")
WORK_DIR = os.environ.get("GR_WORK_DIR", tempfile.gettempdir())
API_KEY = "test-key-0123456789"

# Gemma 2 layout (sliding + global layers) with the real 256000-token vocabulary,
# as tests/cli/chat_test.cc uses: small enough to answer in milliseconds.
GEMMA2_CONFIG = {
    "model_type": "gemma2", "vocab_size": 256000, "hidden_size": 32, "intermediate_size": 64,
    "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "num_hidden_layers": 2,
    "sliding_window": 16, "query_pre_attn_scalar": 16, "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0, "max_position_embeddings": 512,
}


def _make_model(name, config, tokenizer_json_text):
    folder = os.path.join(WORK_DIR, name)
    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        return folder
    os.makedirs(folder, exist_ok=True)
    config_path = os.path.join(folder, "fixture_config.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    subprocess.run([FIXTURE_TOOL, config_path, folder], check=True, timeout=300)
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tokenizer_json_text)
    return folder


def gemma_tokenizer_text():
    with open(os.path.join(DATA_DIR, "tokenizer", "gemma", "tokenizer.json"), encoding="utf-8") as f:
        return f.read()


def codegemma_tokenizer_text():
    """CodeGemma's tokenizer is Gemma's with <unused60..63> renamed (as tests/testing/codegemma_tokenizer.h)."""
    text = gemma_tokenizer_text()
    for old, new in [("<unused60>", "<|fim_prefix|>"), ("<unused61>", "<|fim_middle|>"),
                     ("<unused62>", "<|fim_suffix|>"), ("<unused63>", "<|file_separator|>")]:
        text = text.replace('"%s"' % old, '"%s"' % new)
    return text


def gemma_model():
    return _make_model("server_gemma2", GEMMA2_CONFIG, gemma_tokenizer_text())


def codegemma_model():
    return _make_model("server_codegemma", GEMMA2_CONFIG, codegemma_tokenizer_text())


def paligemma_model():
    """The PaliGemma fixture's layout with a vocabulary that holds Gemma's tokenizer (and 257152 = <image>)."""
    with open(os.path.join(DATA_DIR, "paligemma", "config.json")) as f:
        config = json.load(f)
    config["vocab_size"] = 257216
    config["text_config"]["vocab_size"] = 257216
    config["image_token_index"] = 257152
    return _make_model("server_paligemma", config, gemma_tokenizer_text())


def run_cli(*args, timeout=300):
    """Runs the gemmarun binary; returns (exit code, stdout, stderr)."""
    done = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def generate_json(model, *args):
    code, out, err = run_cli("generate", "-m", model, "--json", *args)
    if code != 0:
        raise AssertionError("gemmarun generate failed: " + err)
    return json.loads(out)


class ServerProcess:
    """`gemmarun serve` on a free loopback port; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, model, *extra, api_key=None, env=None):
        args = [BINARY, "serve", "-m", model, "--host", "127.0.0.1", "--port", "0", *extra]
        if api_key:
            args += ["--api-key", api_key]
        self.api_key = api_key
        self.log_path = os.path.join(WORK_DIR, "server_%d_%d.log" % (os.getpid(), time.monotonic_ns()))
        self.log = open(self.log_path, "w+")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=env)
        self.port = None
        deadline = time.monotonic() + 300  # generous: sanitizer builds load slowly
        while self.port is None:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError("server did not start: " + self.output())
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.output())
            if match:
                self.port = int(match.group(1))
            else:
                time.sleep(0.05)
        while True:
            status, _ = self.request("GET", "/health")
            if status == 200:
                break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError("server did not become ready: " + self.output())
            time.sleep(0.05)

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def headers(self, key=True):
        h = {"Content-Type": "application/json"}
        if key and self.api_key:
            h["Authorization"] = "Bearer " + self.api_key
        return h

    def request(self, method, path, body=None, headers=None, timeout=120):
        """One HTTP request on a fresh connection; returns (status, parsed JSON or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            conn.request(method, path, body=body, headers=headers if headers is not None else self.headers())
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        text = data.decode("utf-8", errors="replace")
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text

    def metrics(self):
        status, text = self.request("GET", "/metrics")
        assert status == 200, text
        return parse_metrics(text)

    def stop(self, timeout=60):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise AssertionError("server did not exit within %d s of SIGTERM" % timeout)
        self.log.close()
        return code


def parse_metrics(text):
    """Prometheus text to {"name{labels}": value}."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values


def raw_stream_open(port, path, body, headers):
    """Sends a request on a raw socket (so the test can hang up mid-stream)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    payload = json.dumps(body).encode()
    lines = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1", "Content-Length: %d" % len(payload)]
    lines += ["%s: %s" % item for item in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    return sock


def sse_events(raw):
    """The data: payloads of an SSE body (chunked framing already removed)."""
    return [block[len("data: "):] for block in raw.split("\n\n") if block.startswith("data: ")]


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def check_multi_turn_prefix_reuse(test, server, client, turns, max_tokens=8):
    """A chat of `turns` turns: from the second on, the tokens actually prefilled
    (prompt - cached) are the new turn's only, up to one cache block. Skips when
    the scheduler keeps no block pool (the serial stand-in)."""
    if server.metrics()["gemmarun_kv_blocks_total"] == 0:
        test.skipTest("the scheduler has no prefix cache (kv_blocks_total is 0)")
    block = server.metrics()["gemmarun_kv_block_size"]
    messages = []
    previous_prompt = 0
    for turn in range(turns):
        messages.append({"role": "user", "content": "Turn %d: tell me one more thing." % turn})
        answer = client.chat.completions.create(model="any", messages=messages, max_tokens=max_tokens,
                                                temperature=0)
        usage = answer.usage
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        prefilled = usage.prompt_tokens - cached
        if turn > 0:
            new_tokens = usage.prompt_tokens - previous_prompt
            test.assertLessEqual(prefilled, new_tokens + block, "turn %d: %s" % (turn, usage))
        previous_prompt = usage.prompt_tokens
        messages.append({"role": "assistant", "content": answer.choices[0].message.content})
