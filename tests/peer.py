"""A real third-party OpenAI-compatible server for the tests: ``transformers serve`` on loopback,
serving a tiny Qwen3 built here at test time (nothing comes from a model hub).

The model is a real ``Qwen3ForCausalLM`` with random weights, two layers, hidden size 64, whose
attention and MLP outputs are zeroed and whose output head is set so that each token of a short
chain predicts the next one: with nothing but the last token reaching the head, it answers every
prompt with the same reasoning and answer, in milliseconds, sampled or not. Its tokenizer is a
byte-level BPE trained on a few sentences, with a chat template that does what Qwen3's does:
``<|im_start|>role\\n...<|im_end|>`` turns, and with ``enable_thinking=False`` an empty
``<think>\\n\\n</think>\\n\\n`` in the generation prompt, so the model skips straight to the answer.

``python -m tests.peer DIR`` builds it into DIR (torch and transformers load only in that process; as
a script, ``tests/kernels.py`` would shadow the ``kernels`` package transformers looks for).
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

# What the model says: the reasoning chain, then the answer chain, each token predicting the next.
# The generation prompt ends with "\n" (thinking on, Qwen3's default) or "\n\n" (thinking off).
REASONING_TOKENS = ["<think>", "ĠLet", "Ġme", "Ġthink", "</think>", "ĊĊ"]
ANSWER_TOKENS = ["Hello", ",", "Ġworld", "!", "ĠThe", "Ġsea", "Ġis", "Ġsalty", "."]
REASONING = " Let me think"
ANSWER = "Hello, world! The sea is salty."

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "Hello, world! The sea is salty.",
    "Well, Let me think about it.\n\n",
    "Why is the sky blue? Count to five.\n\n",
    "You are a helpful assistant. Explain the tides. Describe the sea.",
    "system user assistant",
]
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)
HIDDEN = 64
MARGIN = 30.0  # the logit of the next token of the chain over every other: e^-30 leaves no room to stray


def build(directory: Path) -> None:
    """Save the tiny model and its tokenizer in ``directory``, as ``save_pretrained`` does."""
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 10, trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in ("<think>", "</think>")])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )
    vocab = tok.get_vocab()
    chain = [*REASONING_TOKENS, *ANSWER_TOKENS, "<|im_end|>"]
    missing = [t for t in chain if t not in vocab]
    assert not missing, f"the tokenizer has no single token for {missing}"
    ids = [vocab[t] for t in chain]
    think_off_last = vocab["ĊĊ"]
    think_on_last = vocab["Ċ"]

    config = Qwen3Config(
        vocab_size=len(vocab),
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()  # only the token itself reaches the head
            layer.mlp.down_proj.weight.zero_()
        # the chain's tokens get orthogonal embeddings of RMS 1, so the final norm leaves them be
        steps = [(think_on_last, ids[0]), *itertools.pairwise(ids)]
        sources = list(dict.fromkeys(s for s, _ in steps))
        basis, _ = torch.linalg.qr(torch.randn(HIDDEN, len(sources)))
        embed = model.model.embed_tokens.weight
        for i, s in enumerate(sources):
            embed[s] = basis[:, i] * HIDDEN**0.5
        head = model.lm_head.weight
        head.zero_()
        for s, t in steps:
            head[t] += embed[s] * (MARGIN / HIDDEN)
        assert think_off_last in sources  # "\n\n" ends the thinking-off prompt and starts the answer
    model.generation_config = GenerationConfig(
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def offline_env(home: Path) -> dict[str, str]:
    """No hub, no update check, a cache of its own; one thread each for a model this small."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


class PeerServer:
    """``transformers serve DIR`` on a free loopback port; its log goes to a file shown on failure."""

    def __init__(self, model_dir: Path, log_path: Path, home: Path) -> None:
        self.model = str(model_dir)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        self.home = home
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> PeerServer:
        transformers = Path(sys.executable).with_name("transformers")
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [str(transformers), "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=offline_env(self.home),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self._proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"transformers serve was not ready in {timeout:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def build_in_subprocess(directory: Path, home: Path) -> None:
    """Build the model in a process of its own, so torch never loads into the test process."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.peer", str(directory)],
        cwd=Path(__file__).parents[1],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=offline_env(home),
        check=False,
    )
    if done.returncode:
        raise RuntimeError(
            "building the tiny model failed (torch and transformers come with the peer extra: "
            f"pip install -e '.[peer]'):\n{done.stderr.decode(errors='replace')[-4000:]}"
        )


if __name__ == "__main__":
    build(Path(sys.argv[1]))
