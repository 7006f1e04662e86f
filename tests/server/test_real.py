"""`gemmarun serve` on the real Gemma 3 270M GGUF (env GEMMARUN_REAL_GGUF, as
.ci/run sets it): greedy answers through the openai client equal `gemmarun
generate`, alone and next to other requests; stop strings; seeds; logprobs; a
multi-turn chat. Exits 77 (ctest: skipped) without the model."""

import concurrent.futures
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MODEL = os.environ.get("GEMMARUN_REAL_GGUF", "")
if not MODEL or not os.path.exists(MODEL):
    print("skipped: GEMMARUN_REAL_GGUF is not set to the Gemma 3 270M GGUF")
    sys.exit(77)
try:
    import openai
except ImportError:
    sys.exit("error: the server tests need the openai client: pip install openai")


class RealModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.ServerProcess(MODEL, "-c", "1024", "--parallel", "4", "-t", "2")
        cls.client = openai.OpenAI(base_url=cls.server.base_url + "/v1", api_key="none", max_retries=0,
                                   timeout=300)

    @classmethod
    def tearDownClass(cls):
        assert cls.server.stop() == 0, cls.server.output()

    def generate(self, prompt, n, *extra):
        return harness.generate_json(MODEL, "-p", prompt, "-n", str(n), "--temp", "0", "-c", "1024", *extra)

    def test_completion_equals_generate_alone_and_with_others(self):
        prompt = "The capital of France is"
        reference = self.generate(prompt, 16)["text"]
        answer = self.client.completions.create(model="any", prompt=prompt, max_tokens=16, temperature=0)
        self.assertEqual(answer.choices[0].text, reference)
        self.assertTrue(reference.strip())

        def other(seed):
            return self.client.completions.create(model="any", prompt="Story %d:" % seed, max_tokens=32,
                                                  temperature=0.9, seed=seed).choices[0].text

        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            others = [pool.submit(other, seed) for seed in range(8)]
            stream = self.client.completions.create(model="any", prompt=prompt, max_tokens=16, temperature=0,
                                                    stream=True)
            text = "".join(c.text for chunk in stream for c in chunk.choices)
            for future in others:
                future.result(timeout=600)
        self.assertEqual(text, reference)

    def test_chat_equals_generate_on_the_template(self):
        message = "Name three colours."
        rendered = "<bos><start_of_turn>user\n%s<end_of_turn>\n<start_of_turn>model\n" % message
        reference = self.generate(rendered, 16, "--no-bos")
        answer = self.client.chat.completions.create(model="any", messages=[{"role": "user", "content": message}],
                                                     max_tokens=16, temperature=0)
        self.assertEqual(answer.choices[0].message.content, reference["text"])
        self.assertEqual(answer.usage.prompt_tokens, reference["prompt_tokens"])

    def test_stop_seed_logprobs(self):
        prompt = "One, two, three, four,"
        full = self.client.completions.create(model="any", prompt=prompt, max_tokens=24, temperature=0)
        text = full.choices[0].text
        stop = text[len(text) // 2:len(text) // 2 + 3]
        cut = self.client.completions.create(model="any", prompt=prompt, max_tokens=24, temperature=0, stop=stop)
        self.assertEqual(cut.choices[0].text, text[:text.find(stop)])
        self.assertEqual(cut.choices[0].finish_reason, "stop")
        a = self.client.completions.create(model="any", prompt=prompt, max_tokens=16, temperature=1, seed=3)
        b = self.client.completions.create(model="any", prompt=prompt, max_tokens=16, temperature=1, seed=3)
        self.assertEqual(a.choices[0].text, b.choices[0].text)
        lp = self.client.chat.completions.create(model="any", messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=4, temperature=0, logprobs=True, top_logprobs=2)
        for entry in lp.choices[0].logprobs.content:
            self.assertAlmostEqual(entry.logprob, entry.top_logprobs[0].logprob, places=4)

    def test_multi_turn_chat_prefills_only_the_new_turn(self):
        harness.check_multi_turn_prefix_reuse(self, self.server, self.client, turns=10, max_tokens=8)


if __name__ == "__main__":
    unittest.main(verbosity=2)
