"""`gemmarun serve` through the real `openai` client and raw HTTP, on random-weight
models that speak the real Gemma vocabulary. Greedy answers are checked against
`gemmarun generate` / `gemmarun complete` on the same prompt (the reference the
CLI tests already pin), so nothing here compares the server with itself alone."""

import base64
import concurrent.futures
import http.client
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    import openai
except ImportError:  # CI installs it (.ci/run); a missing client is a failure, not a skip
    sys.exit("error: the server tests need the openai client: pip install openai")

CONTEXT = 512  # GEMMA2_CONFIG's max_position_embeddings


def chat_prompt(message):
    """Gemma's chat template for one user turn, as HF renders it."""
    return "<bos><start_of_turn>user\n%s<end_of_turn>\n<start_of_turn>model\n" % message


class ServerTest(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.model = harness.gemma_model()
        cls.server = harness.ServerProcess(cls.model, "--parallel", "4", "--max-queue", "64",
                                           api_key=harness.API_KEY)
        cls.client = openai.OpenAI(base_url=cls.server.base_url + "/v1", api_key=harness.API_KEY, max_retries=0,
                                   timeout=120)

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            code = cls.server.stop()
            assert code == 0, "server exit code %d\n%s" % (code, cls.server.output())

    def greedy_generate(self, prompt, n, no_bos=False):
        args = ["-p", prompt, "-n", str(n), "--temp", "0"] + (["--no-bos"] if no_bos else [])
        return harness.generate_json(self.model, *args)

    def tokenize(self, text, add_special):
        status, body = self.server.request("POST", "/tokenize", {"content": text, "add_special": add_special})
        self.assertEqual(status, 200, body)
        return body["tokens"]

    def assert_idle(self):
        """No sequence left running or waiting, no cache block held, no request in flight (bounded wait)."""
        deadline = time.monotonic() + 60
        while True:
            m = self.server.metrics()
            idle = (m["gemmarun_running_sequences"] == 0 and m["gemmarun_queue_length"] == 0 and
                    m["gemmarun_kv_blocks_used"] == 0 and m["gemmarun_requests_in_flight"] == 0)
            if idle or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(idle, m)
        status, body = self.server.request("GET", "/health", headers={})
        self.assertEqual(status, 200, body)
        return m

    # --- basics ---------------------------------------------------------------

    def test_health_models_and_auth(self):
        self.assertEqual(self.server.request("GET", "/health", headers={})[0], 200)
        status, body = self.server.request("GET", "/v1/models", headers={})
        self.assertEqual(status, 401)
        self.assertEqual(body["error"]["code"], "invalid_api_key")
        models = self.client.models.list()
        self.assertEqual(models.data[0].id, "server_gemma2")
        status, page = self.server.request("GET", "/", headers={})
        self.assertEqual(status, 200)
        self.assertIn("<title>gemmarun chat</title>", page)
        self.assertNotIn("http://", page.split("<script>")[1])  # no CDN or other origin

    def test_tokenize_detokenize_round_trip(self):
        ids = self.tokenize("Hello world, héllo!", True)
        self.assertEqual(ids[0], 2)  # <bos>
        status, body = self.server.request("POST", "/detokenize", {"tokens": ids[1:]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["content"], "Hello world, héllo!")

    # --- answers equal the CLI's -----------------------------------------------

    def test_chat_greedy_equals_generate_with_usage(self):
        message = "What is the capital of France?"
        reference = self.greedy_generate(chat_prompt(message), 12, no_bos=True)
        answer = self.client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": message}], max_tokens=12, temperature=0)
        self.assertEqual(answer.choices[0].message.content, reference["text"])
        self.assertEqual(answer.choices[0].message.role, "assistant")
        self.assertEqual(answer.choices[0].finish_reason, "length")
        self.assertEqual(answer.usage.prompt_tokens, len(self.tokenize(chat_prompt(message), False)))
        self.assertEqual(answer.usage.prompt_tokens, reference["prompt_tokens"])
        self.assertEqual(answer.usage.completion_tokens, 12)
        self.assertEqual(answer.usage.total_tokens, answer.usage.prompt_tokens + 12)

    def test_completion_greedy_equals_generate_streaming_and_not(self):
        prompt = "Once upon a time"
        reference = self.greedy_generate(prompt, 16)
        answer = self.client.completions.create(model="any", prompt=prompt, max_tokens=16, temperature=0)
        self.assertEqual(answer.choices[0].text, reference["text"])
        self.assertEqual(answer.usage.prompt_tokens, len(self.tokenize(prompt, True)))
        self.assertEqual(answer.usage.completion_tokens, 16)
        stream = self.client.completions.create(model="any", prompt=prompt, max_tokens=16, temperature=0,
                                                stream=True, stream_options={"include_usage": True})
        text, finish, usage = "", None, None
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                text += choice.text
                finish = choice.finish_reason or finish
        self.assertEqual(text, reference["text"])
        self.assertEqual(finish, "length")
        self.assertEqual(usage.completion_tokens, 16)

    def test_greedy_equals_generate_while_8_other_requests_run(self):
        prompt = "The history of the printing press"
        reference = self.greedy_generate(prompt, 24)
        started = threading.Barrier(9, timeout=120)
        others = []

        def other(seed):
            stream = self.client.with_options(timeout=900).completions.create(
                model="any", prompt="Noise %d" % seed, max_tokens=24, temperature=1.0, extra_body={"top_k": 40}, seed=seed,
                stream=True)
            first = True
            text = ""
            for chunk in stream:
                for choice in chunk.choices:
                    text += choice.text
                if first:
                    first = False
                    try:
                        started.wait()
                    except threading.BrokenBarrierError:
                        pass
            return text

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            others = [pool.submit(other, seed) for seed in range(8)]
            # The serial stand-in runs one at a time, so do not insist that all 8 have started.
            try:
                started.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
            answer = self.client.with_options(timeout=900).completions.create(
                model="any", prompt=prompt, max_tokens=24, temperature=0)
            for future in others:
                future.result(timeout=300)
        self.assertEqual(answer.choices[0].text, reference["text"])
        self.assert_idle()

    # --- streaming format -------------------------------------------------------

    def test_chat_stream_is_openai_sse(self):
        message = "Tell me a story about a dragon."
        reference = self.greedy_generate(chat_prompt(message), 20, no_bos=True)
        body = {"messages": [{"role": "user", "content": message}], "max_tokens": 20, "temperature": 0,
                "stream": True, "stream_options": {"include_usage": True}}
        status, raw = self.server.request("POST", "/v1/chat/completions", json.dumps(body).encode())
        self.assertEqual(status, 200, raw)
        events = harness.sse_events(raw)
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        self.assertTrue(all(c["object"] == "chat.completion.chunk" for c in chunks))
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        # A delta that split a UTF-8 character would have turned into U+FFFD and differ here.
        self.assertEqual(content, reference["text"])
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        self.assertEqual(finishes[-1], "length")
        self.assertTrue(all(f is None for f in finishes[:-1]))
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 20)

    # --- generation options -----------------------------------------------------

    def test_stop_strings_across_token_boundaries(self):
        prompt = "A list of animals:"
        full = self.client.completions.create(model="any", prompt=prompt, max_tokens=40, temperature=0)
        text = full.choices[0].text
        self.assertGreater(len(text), 16)
        stop = text[8:14]
        expected = text[:text.find(stop)]
        for stream in (False, True):
            answer = self.client.completions.create(model="any", prompt=prompt, max_tokens=40, temperature=0,
                                                    stop=[stop, "\x01never"], stream=stream)
            if stream:
                chunks = list(answer)
                got = "".join(c.text for chunk in chunks for c in chunk.choices)
                finish = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
            else:
                got = answer.choices[0].text
                finish = [answer.choices[0].finish_reason]
            self.assertEqual(got, expected, "stream=%s" % stream)
            self.assertEqual(finish, ["stop"])
        chat = self.client.chat.completions.create(model="any", messages=[{"role": "user", "content": "hi"}],
                                                   max_tokens=10, temperature=0, stop="\x01never")
        self.assertEqual(chat.choices[0].finish_reason, "length")

    def test_seed_determinism_and_n(self):
        def sample(seed, n=1):
            return self.client.completions.create(model="any", prompt="Random words:", max_tokens=12,
                                                  temperature=1.0, seed=seed, n=n)
        a, b, c = sample(7), sample(7), sample(8)
        self.assertEqual(a.choices[0].text, b.choices[0].text)
        self.assertNotEqual(a.choices[0].text, c.choices[0].text)
        two = sample(7, n=2)
        self.assertEqual([ch.index for ch in two.choices], [0, 1])
        self.assertEqual(two.choices[0].text, a.choices[0].text)
        self.assertNotEqual(two.choices[0].text, two.choices[1].text)
        self.assertEqual(two.usage.completion_tokens, 24)
        greedy = self.client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": "hello"}], max_tokens=5, temperature=0, n=2)
        self.assertEqual(greedy.choices[0].message.content, greedy.choices[1].message.content)
        self.assertEqual(greedy.usage.completion_tokens, 10)

    def test_logprobs(self):
        answer = self.client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": "Count to five."}], max_tokens=6, temperature=0,
            logprobs=True, top_logprobs=3)
        content = answer.choices[0].logprobs.content
        self.assertEqual(len(content), 6)
        for entry in content:
            self.assertEqual(len(entry.top_logprobs), 3)
            values = [t.logprob for t in entry.top_logprobs]
            self.assertEqual(values, sorted(values, reverse=True))
            self.assertLessEqual(values[0], 0.0)
            self.assertLessEqual(sum(2.718281828 ** v for v in values), 1.0 + 1e-4)
            # Greedy picks the most likely token.
            self.assertAlmostEqual(entry.logprob, values[0], places=4)
            self.assertEqual(entry.token, entry.top_logprobs[0].token)
        legacy = self.client.completions.create(model="any", prompt="Count:", max_tokens=4, temperature=0,
                                                logprobs=2)
        lp = legacy.choices[0].logprobs
        self.assertEqual(len(lp.tokens), 4)
        self.assertEqual(len(lp.token_logprobs), 4)
        self.assertTrue(all(len(top) <= 2 for top in lp.top_logprobs))

    def test_context_limits(self):
        long_prompt = "word " * (CONTEXT + 10)
        status, body = self.server.request("POST", "/v1/completions", {"prompt": long_prompt, "max_tokens": 4})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["param"], "prompt")
        self.assertIn("context", body["error"]["message"])
        # A prompt that fits with a max_tokens far beyond the context: clamped, ends with "length".
        prompt_ids = [2] + [651] * (CONTEXT - 9)
        answer = self.client.completions.create(model="any", prompt=prompt_ids, max_tokens=10**12, temperature=0)
        self.assertEqual(answer.usage.prompt_tokens, CONTEXT - 8)
        self.assertLessEqual(answer.usage.completion_tokens, 8)
        self.assertEqual(answer.choices[0].finish_reason, "length")

    def test_unsupported_fields_are_refused(self):
        cases = [
            ({"response_format": {"type": "json_object"}}, "response_format"),
            ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                          "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]},
             "messages[0].content[0].image_url"),
            ({"suffix": "}"}, "suffix"),
        ]
        for extra, param in cases:
            body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            if "suffix" in extra:
                body = {"prompt": "def f():", "max_tokens": 2}
            body.update(extra)
            path = "/v1/completions" if "prompt" in body else "/v1/chat/completions"
            status, reply = self.server.request("POST", path, body)
            self.assertEqual(status, 400, (extra, reply))
            self.assertEqual(reply["error"]["param"], param, reply)

    def test_multi_turn_chat_prefills_only_the_new_turn(self):
        harness.check_multi_turn_prefix_reuse(self, self.server, self.client, turns=10, max_tokens=4)

    # --- hostile and faulty clients ---------------------------------------------------------

    def malformed_requests(self):
        """(description, path, raw body bytes, headers, expected status, expected param or None)."""
        chat = "/v1/chat/completions"
        comp = "/v1/completions"
        good_messages = [{"role": "user", "content": "hi"}]
        h = self.server.headers()
        cases = []
        bad_json = [b"", b"{", b"}", b"[", b"{\"messages\": ", b"nul", b"{'a': 1}", b"{\"a\":1,}", b"\x00\x01",
                    b"{\"messages\": [}", b"[1, 2", b"\"unterminated", b"{\"a\" 1}", b"tru", b"{\"a\":01}"]
        for i, raw in enumerate(bad_json):
            cases.append(("bad json %d" % i, chat if i % 2 else comp, raw, h, 400, None))
        for raw in [b"[]", b"42", b"\"text\"", b"null", b"true"]:
            cases.append(("not an object", chat, raw, h, 400, None))
        invalid_utf8 = [b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x90\x28\xbc", b"\xed\xa0\x80", b"\xc0\xaf"]
        for i, seq in enumerate(invalid_utf8):
            raw = b'{"messages": [{"role": "user", "content": "a' + seq + b'"}], "max_tokens": 2}'
            cases.append(("invalid utf-8 %d" % i, chat, raw, h, 400, None))
            raw = b'{"prompt": "' + seq + b'", "max_tokens": 2}'
            cases.append(("invalid utf-8 prompt %d" % i, comp, raw, h, 400, None))
        cases.append(("lone surrogate", comp, b'{"prompt": "\\ud800", "max_tokens": 2}', h, 400, None))
        wrong = {
            "max_tokens": ["10", 1.5, -1, True, [1], {"a": 1}, 10**30, -10**30, 1e300],
            "max_completion_tokens": ["x", -5, 2.5],
            "temperature": ["hot", -0.1, 2.5, [0], 1e400 if False else 1e308, True],
            "top_p": [0, -1, 1.5, "0.5", {}],
            "top_k": [-1, 0.5, "3", 10**20],
            "min_p": [-0.5, 1.5, "x"],
            "seed": ["1", 1.5, [], {}],
            "n": [0, 9, -1, 1.5, "2", 10**12],
            "stream": ["yes", 1, [], {}],
            "stop": [1, [1], [""], ["a"] * 17, {"a": 1}, ""],
            "presence_penalty": [3, -3, "x"],
            "frequency_penalty": [2.5, "y", []],
            "repetition_penalty": [0, -1, "z"],
            "logprobs": ["yes", 1.5],
            "top_logprobs": [21, -1, "3"],
            "response_format": ["text", {"type": "json_schema"}, {}, 5],
            "stream_options": ["x", {"include_usage": "yes"}],
        }
        for field, values in wrong.items():
            for value in values:
                body = {"messages": good_messages, "max_tokens": 2, "logprobs": True}
                if field == "logprobs":
                    body.pop("logprobs")
                body[field] = value
                if field == "max_completion_tokens":
                    body.pop("max_tokens")
                param = field if field not in ("stream_options",) else None
                if field == "stream_options" and isinstance(value, dict):
                    param = "stream_options.include_usage"
                raw = json.dumps(body).encode()
                cases.append(("%s=%r" % (field, value), chat, raw, h, 400, param))
        comp_wrong = {
            "prompt": [None, 5, [], [-1], [10**10], [1.5], ["a", "b"], {"text": "x"}, [True]],
            "logprobs": [6, -1, True, "2"],
            "suffix": [5, ["x"]],
        }
        for field, values in comp_wrong.items():
            for value in values:
                body = {"prompt": "hello", "max_tokens": 2, field: value}
                cases.append(("completion %s=%r" % (field, value), comp, json.dumps(body).encode(), h, 400, field))
        message_cases = [
            [], "hi", [1], [{"content": "x"}], [{"role": "tool", "content": "x"}], [{"role": 5, "content": "x"}],
            [{"role": "user"}], [{"role": "user", "content": 5}], [{"role": "user", "content": [5]}],
            [{"role": "user", "content": [{"type": "audio", "data": "x"}]}],
            [{"role": "user", "content": [{"type": "text"}]}],
            [{"role": "user", "content": [{"type": "image_url"}]}],
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]}],
            [{"role": "assistant", "content": "x"}],
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            [{"role": "system", "content": "s"}, {"role": "system", "content": "t"}],
        ]
        for i, messages in enumerate(message_cases):
            raw = json.dumps({"messages": messages, "max_tokens": 2}).encode()
            cases.append(("messages %d" % i, chat, raw, h, 400, None))
        # Numbers beyond any range, written as raw JSON text (some overflow double, some int64).
        for field in ["max_tokens", "temperature", "top_p", "top_k", "n", "seed", "min_p"]:
            for number in ["1e999", "-1e999", "99999999999999999999999999"]:
                raw = ('{"messages": [{"role": "user", "content": "hi"}], "%s": %s}' % (field, number)).encode()
                cases.append(("huge %s=%s" % (field, number), chat, raw, h, 400, None))
        for garbage in [b" x", b"}", b"]", b",", b"{}", b"\x00", b"// comment", b"/* c */", b"\n]"]:
            raw = b'{"messages": [{"role": "user", "content": "hi"}]}' + garbage
            cases.append(("trailing %r" % garbage, chat, raw, h, 400, None))
        cases.append(("missing messages", chat, b'{"max_tokens": 2}', h, 400, "messages"))
        cases.append(("missing prompt", comp, b'{"max_tokens": 2}', h, 400, "prompt"))
        for i, ids in enumerate([[-5], [256000], [1.5], "abc", None, [[1]]]):
            cases.append(("detokenize %d" % i, "/detokenize", json.dumps({"tokens": ids}).encode(), h, 400, "tokens"))
        for i, content in enumerate([5, None, ["a"], {"a": 1}]):
            cases.append(("tokenize %d" % i, "/tokenize", json.dumps({"content": content}).encode(), h, 400,
                          "content"))
        good = json.dumps({"messages": good_messages, "max_tokens": 2}).encode()
        no_key = {"Content-Type": "application/json"}
        for i, auth in enumerate(["", "Bearer", "Bearer ", "Bearer wrong", "Basic " + harness.API_KEY,
                                  "bearer " + harness.API_KEY, "Bearer " + harness.API_KEY + "x",
                                  "Bearer " + harness.API_KEY[:-1], "Token " + harness.API_KEY]):
            headers = dict(no_key)
            if auth:
                headers["Authorization"] = auth
            cases.append(("auth %d" % i, chat, good, headers, 401, None))
            cases.append(("auth metrics %d" % i, "/metrics", None, headers, 401, None))
        for path in ["/v1/nothing", "/v2/chat/completions", "/../etc/passwd", "/v1/chat/completions/x"]:
            cases.append(("unknown path " + path, path, good, h, 404, None))
        return cases

    def test_malformed_requests_get_openai_errors(self):
        before = self.server.metrics()
        cases = self.malformed_requests()
        # Oversize bodies get 413 before any parsing; a few variants on both endpoints.
        big = b'{"prompt": "' + b"a" * (17 << 20) + b'"}'
        for path in ["/v1/completions", "/v1/chat/completions", "/tokenize"]:
            cases.append(("oversize " + path, path, big, self.server.headers(), 413, None))
        self.assertGreaterEqual(len(cases), 200)
        counts = {}
        for description, path, raw, headers, expected, param in cases:
            method = "GET" if path == "/metrics" else "POST"
            status, body = self.server.request(method, path, raw, headers=headers)
            self.assertEqual(status, expected, (description, body))
            self.assertIsInstance(body, dict, description)
            error = body.get("error")
            self.assertIsInstance(error, dict, (description, body))
            self.assertTrue(error["message"], description)
            self.assertIn("type", error)
            self.assertIn("param", error)
            self.assertIn("code", error)
            if param is not None:
                self.assertEqual(error["param"], param, (description, body))
            key = (path if path in ("/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize",
                                    "/metrics") else "other", expected)
            counts[key] = counts.get(key, 0) + 1
        after = self.assert_idle()
        for (path, status), n in counts.items():
            if status == 413:
                continue  # httplib may skip its logger when it hangs up on a client still sending the body
            name = 'gemmarun_requests_total{path="%s",status="%d"}' % (path, status)
            self.assertEqual(after.get(name, 0) - before.get(name, 0), n, name)
        self.assertEqual(after["gemmarun_prompt_tokens_total"], before["gemmarun_prompt_tokens_total"])

    def test_clients_that_disconnect_mid_stream(self):
        before = self.server.metrics()
        body = {"messages": [{"role": "user", "content": "Write a long essay."}], "max_tokens": 400,
                "temperature": 0.8, "stream": True}
        for i in range(20):
            sock = harness.raw_stream_open(self.server.port, "/v1/chat/completions", body, self.server.headers())
            received = b""
            deadline = time.monotonic() + 120
            # Hang up after the first content delta (some after only the headers).
            while b'"content":"' not in received.replace(b'"content":""', b"") and time.monotonic() < deadline:
                if i % 5 == 0 and b"\r\n\r\n" in received:
                    break
                data = sock.recv(4096)
                if not data:
                    break
                received += data
            self.assertIn(b"200 OK", received.split(b"\r\n")[0])
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        after = self.assert_idle()
        self.assertEqual(after["gemmarun_cancelled_requests_total"] - before["gemmarun_cancelled_requests_total"], 20)
        # Cancelled sequences stopped early: far fewer than 20 x 400 tokens were generated.
        generated = (after["gemmarun_scheduler_generated_tokens_total"] -
                     before["gemmarun_scheduler_generated_tokens_total"])
        self.assertLess(generated, 20 * 400 / 2)

    def test_32_concurrent_streams(self):
        message = "Describe the sea."
        reference = self.client.chat.completions.create(
            model="any", messages=[{"role": "user", "content": message}], max_tokens=8, temperature=0)

        def stream_one(_):
            stream = self.client.chat.completions.create(
                model="any", messages=[{"role": "user", "content": message}], max_tokens=8, temperature=0,
                stream=True, stream_options={"include_usage": True})
            text, finish, usage = "", None, None
            for chunk in stream:
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    finish = choice.finish_reason or finish
            return text, finish, usage.completion_tokens

        before = self.server.metrics()
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            results = list(pool.map(stream_one, range(32), timeout=600))
        for text, finish, tokens in results:
            self.assertEqual(text, reference.choices[0].message.content)
            self.assertEqual(finish, "length")
            self.assertEqual(tokens, 8)
        after = self.assert_idle()
        name = 'gemmarun_requests_total{path="/v1/chat/completions",status="200"}'
        self.assertEqual(after[name] - before[name], 32)
        self.assertEqual(after["gemmarun_generated_tokens_total"] - before["gemmarun_generated_tokens_total"], 32 * 8)
        self.assertEqual(after["gemmarun_time_to_first_token_seconds_count"] -
                         before["gemmarun_time_to_first_token_seconds_count"], 32)


class FillInTheMiddleTest(unittest.TestCase):
    def test_suffix_builds_codegemma_prompt_and_matches_complete(self):
        model = harness.codegemma_model()
        server = harness.ServerProcess(model)
        try:
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="none", max_retries=0, timeout=120)
            prefix, suffix = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"
            answer = client.completions.create(model="any", prompt=prefix, suffix=suffix, max_tokens=8,
                                               temperature=0)
            code, out, err = harness.run_cli("complete", "-m", model, "--prefix", prefix, "--suffix", suffix,
                                             "-n", "8", "--json")
            self.assertEqual(code, 0, err)
            reference = json.loads(out)
            self.assertEqual(answer.choices[0].text, reference["middle"])
            self.assertEqual(answer.usage.prompt_tokens, reference["prompt_tokens"])
            status, body = server.request("POST", "/tokenize", {"content": prefix})
            prefix_ids = body["tokens"]
            status, body = server.request("POST", "/tokenize", {"content": suffix})
            # <bos> <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|>
            self.assertEqual(answer.usage.prompt_tokens, 4 + len(prefix_ids) + len(body["tokens"]))
        finally:
            self.assertEqual(server.stop(), 0)


class PaliGemmaTest(unittest.TestCase):
    def test_image_part_matches_generate_with_image(self):
        model = harness.paligemma_model()
        image_path = os.path.join(harness.DATA_DIR, "paligemma", "image.png")
        with open(image_path, "rb") as f:
            url = "data:image/png;base64," + base64.b64encode(f.read()).decode()
        server = harness.ServerProcess(model)
        try:
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="none", max_retries=0, timeout=120)
            answer = client.chat.completions.create(model="any", max_tokens=6, temperature=0, messages=[
                {"role": "user", "content": [{"type": "text", "text": "caption en"},
                                             {"type": "image_url", "image_url": {"url": url}}]}])
            reference = harness.generate_json(model, "--image", image_path, "-p", "caption en", "-n", "6")
            self.assertEqual(answer.choices[0].message.content, reference["text"])
            self.assertEqual(answer.usage.prompt_tokens, reference["prompt_tokens"])
            for bad_url, fragment in [("https://example.com/cat.png", "data: URL"),
                                      ("data:image/png;base64,!!!!", "base64"),
                                      ("data:image/png;base64," + base64.b64encode(b"GIF89a....").decode(),
                                       "PNG nor JPEG")]:
                status, body = server.request("POST", "/v1/chat/completions", {"max_tokens": 2, "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "caption en"},
                                                 {"type": "image_url", "image_url": {"url": bad_url}}]}]})
                self.assertEqual(status, 400, body)
                self.assertIn(fragment, body["error"]["message"])
            status, body = server.request("POST", "/v1/chat/completions",
                                          {"max_tokens": 2, "messages": [{"role": "user", "content": "caption en"}]})
            self.assertEqual(status, 400, body)
        finally:
            self.assertEqual(server.stop(), 0)


class QueueLimitTest(unittest.TestCase):
    def test_requests_beyond_the_queue_get_429(self):
        server = harness.ServerProcess(harness.gemma_model(), "--parallel", "1", "--max-queue", "1")
        try:
            # Full-vocabulary sampling keeps these two busy for a while: one runs, one waits.
            body = {"prompt": "Busy", "max_tokens": 500, "temperature": 1.0, "stream": True}
            socks = [harness.raw_stream_open(server.port, "/v1/completions", body, server.headers())
                     for _ in range(2)]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                m = server.metrics()
                if m["gemmarun_running_sequences"] == 1 and m["gemmarun_queue_length"] == 1:
                    break
                time.sleep(0.02)
            self.assertEqual((m["gemmarun_running_sequences"], m["gemmarun_queue_length"]), (1, 1), m)
            status, reply = server.request("POST", "/v1/completions", {"prompt": "one more", "max_tokens": 2})
            self.assertEqual(status, 429, reply)
            # A second server cannot take the same port (no SO_REUSEPORT sharing).
            code, _, err = harness.run_cli("serve", "-m", harness.gemma_model(), "--port", str(server.port),
                                           timeout=60)
            self.assertEqual(code, 1)
            self.assertIn("error: cannot listen on 127.0.0.1:%d" % server.port, err)
            self.assertEqual(reply["error"]["code"], "queue_full")
            self.assertEqual(reply["error"]["type"], "rate_limit_error")
            for sock in socks:
                sock.close()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                m = server.metrics()
                if m["gemmarun_running_sequences"] == 0 and m["gemmarun_queue_length"] == 0:
                    break
                time.sleep(0.05)
            self.assertEqual((m["gemmarun_running_sequences"], m["gemmarun_queue_length"]), (0, 0), m)
        finally:
            self.assertEqual(server.stop(), 0)


class ShutdownTest(unittest.TestCase):
    def test_sigterm_ends_running_streams_and_exits_cleanly(self):
        server = harness.ServerProcess(harness.gemma_model())
        body = {"prompt": "A very long story", "max_tokens": 450, "stream": True}
        sock = harness.raw_stream_open(server.port, "/v1/completions", body, {"Content-Type": "application/json"})
        received = b""
        deadline = time.monotonic() + 60
        while b'"text":"' not in received and time.monotonic() < deadline:
            received += sock.recv(4096)
        code = server.stop()
        self.assertEqual(code, 0, server.output())
        sock.settimeout(30)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        sock.close()
        self.assertIn("shutting down", server.output())
        # The stream was closed properly (no half-written chunk), ending with [DONE].
        self.assertTrue(received.rstrip().endswith(b"0"), received[-200:])
        self.assertIn(b"data: [DONE]", received)


if __name__ == "__main__":
    unittest.main(verbosity=2)
