"""``python -m superpositional finetune``: the paper's LLM fine-tuning (its Tables I and III), anywhere.

Fine-tunes a causal language model with Hugging Face ``transformers`` on question / answer pairs in
GSM8K's JSONL format (``{"question": ..., "answer": "... #### 42"}``), once per optimizer arm, from
the same initial weights and data order:

- ``adamw``: ``torch.optim.AdamW`` (weight decay 0.01);
- ``sp-adamw-0.1``, ``sp-adamw-0.5``: ``SuperpositionalAdamW`` with lambda 0.1 / 0.5
  (``coverage="paper"``, ``circuits.paper(4)``: the paper's Eq. 1-2);
- ``sp-adamw-all-0.5`` (on request): our extension, ``coverage="all"`` with ``circuits.entangled(4)``;
- any cell of the ablation's grid (:mod:`.ablation`), named ``lambda=L,coverage=C,perturbation=P``
  (``coverage`` and ``perturbation`` default to ``paper``): ``circuits.paper(4)`` with those options.

(The old names ``sgd-0.1``, ``sgd-0.5``, ``sgd-all-0.5`` are still accepted: :mod:`.arm_names`.)

Table III's settings: one epoch, batch 1, lr 2e-5, weight decay 0.01, 500 warm-up steps then linear
decay, gradient clipping at 1.0, bf16 autocast on GPUs. A run shorter than four times its warm-up
warms up over its first quarter instead, and says so (:func:`warmup_steps`). The loss is the
causal-LM loss on the answer tokens (the question is context). The paper's Table I reports the mean
training loss over the epoch; we report it, the held-out loss after the epoch and the held-out
exact-match accuracy of the final ``#### n``.

``--model`` takes a Hugging Face name or local path, or one of the presets (``tiny``, ``small``,
``medium``): a Llama-architecture model initialised here with a byte-pair tokenizer trained on the
training set, for machines without downloadable weights. Without ``--data``, a GSM8K-format set of
arithmetic word problems is generated (``generate_problems``).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from superpositional import circuits
from superpositional.optim import SuperpositionalAdamW

from . import finetune_report
from .arm_names import ALIASES, canonical
from .info import collect
from .output import save_plot, write_json

# Llama-architecture presets: hidden size, layers, heads, feed-forward.
PRESETS = {
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=352),
    "small": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=1408),
    "medium": dict(hidden_size=1024, num_hidden_layers=16, num_attention_heads=16, intermediate_size=2816),
}

# Named as arm_names.FINETUNE_ARMS, which the command line's --help lists without importing this module.
ARMS: dict[str, Callable[[list[torch.nn.Parameter], float], torch.optim.Optimizer]] = {
    "adamw": lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.01),
    "sp-adamw-0.1": lambda p, lr: SuperpositionalAdamW(
        p, lr=lr, weight_decay=0.01, quantum_weight=0.1, circuit=circuits.paper(4), coverage="paper"
    ),
    "sp-adamw-0.5": lambda p, lr: SuperpositionalAdamW(
        p, lr=lr, weight_decay=0.01, quantum_weight=0.5, circuit=circuits.paper(4), coverage="paper"
    ),
    "sp-adamw-all-0.5": lambda p, lr: SuperpositionalAdamW(
        p, lr=lr, weight_decay=0.01, quantum_weight=0.5, circuit=circuits.entangled(4), coverage="all"
    ),
}

GRID_ARM_KEYS = ("lambda", "coverage", "perturbation")


def optimizer_factory(arm: str) -> Callable[[list[torch.nn.Parameter], float], torch.optim.Optimizer]:
    """The optimizer of a named arm (:data:`ARMS`, or an old name of one) or of a grid cell
    ``lambda=L,coverage=C,perturbation=P`` (weight decay 0.01, ``circuits.paper(4)``, as the
    ablation's grid); raises ``ValueError`` naming what is wrong."""
    if canonical(arm) in ARMS:
        return ARMS[canonical(arm)]
    if not arm.startswith("lambda="):
        raise ValueError(f"unknown arm {arm!r}")
    options = {"coverage": "paper", "perturbation": "paper"}
    for item in arm.split(","):
        key, _, value = item.partition("=")
        if key not in GRID_ARM_KEYS or not value:
            raise ValueError(f"arm {arm!r}: expected lambda=L,coverage=C,perturbation=P, got {item!r}")
        options[key] = value
    try:
        quantum_weight = float(options.pop("lambda"))
    except ValueError:
        raise ValueError(f"arm {arm!r}: lambda must be a number") from None

    def make(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return SuperpositionalAdamW(
            params,
            lr=lr,
            weight_decay=0.01,
            quantum_weight=quantum_weight,
            circuit=circuits.paper(4),
            **options,
        )

    # Built once here, so that a bad coverage or perturbation is refused before any training.
    make([torch.nn.Parameter(torch.zeros(1))], 1e-3)
    return make


_NAMES = ["Ava", "Ben", "Chloe", "Dev", "Emma", "Finn", "Grace", "Hugo", "Iris", "Jack", "Lena", "Omar"]
_ITEMS = ["apples", "marbles", "books", "stickers", "coins", "cookies", "pencils", "shells"]


def generate_problems(count: int, seed: int) -> list[dict[str, str]]:
    """Arithmetic word problems in GSM8K's format: a question, and worked steps ending in ``#### n``."""
    rng = random.Random(seed)
    problems = []
    for _ in range(count):
        name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
        start, more, boxes, per_box, given = (
            rng.randint(2, 60),
            rng.randint(1, 40),
            rng.randint(2, 6),
            rng.randint(2, 12),
            rng.randint(1, 20),
        )
        kind = rng.randrange(3)
        if kind == 0:
            given = rng.randint(1, start + more)  # never more than there is
            question = (
                f"{name} has {start} {item}. {name} buys {more} more and then gives away {given}. "
                f"How many {item} does {name} have now?"
            )
            after = start + more
            total = after - given
            steps = (
                f"{name} starts with {start} {item}. After buying {more}: {start} + {more} = {after}. "
                f"After giving away {given}: {after} - {given} = {total}."
            )
        elif kind == 1:
            question = (
                f"{name} fills {boxes} boxes with {per_box} {item} each and already had {start} {item}. "
                f"How many {item} does {name} have in all?"
            )
            packed = boxes * per_box
            total = packed + start
            steps = (
                f"The boxes hold {boxes} * {per_box} = {packed} {item}. "
                f"With the {start} from before: {packed} + {start} = {total}."
            )
        else:
            total_items = boxes * per_box
            question = (
                f"{name} shares {total_items} {item} equally among {boxes} friends. "
                f"How many {item} does each friend get?"
            )
            total = per_box
            steps = f"Each friend gets {total_items} / {boxes} = {per_box} {item}."
        problems.append({"question": question, "answer": f"{steps}\n#### {total}"})
    return problems


def load_jsonl(path: Path) -> list[dict[str, str]]:
    """Question / answer records from a GSM8K-format JSONL file."""
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not {"question", "answer"} <= record.keys():
                raise ValueError(f"{path}:{number}: a record needs 'question' and 'answer'")
            records.append({"question": record["question"], "answer": record["answer"]})
    return records


def _prompt(record: dict[str, str]) -> str:
    return f"Question: {record['question']}\nAnswer:"


def train_tokenizer(records: list[dict[str, str]], vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer trained on the records, as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator((_prompt(r) + " " + r["answer"] for r in records), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


def build_model(name: str, records: list[dict[str, str]], seed: int, max_length: int) -> tuple[Any, Any]:
    """(model, tokenizer): a preset initialised here, or a pretrained model by name or path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if name in PRESETS:
        tokenizer = train_tokenizer(records)
        torch.manual_seed(seed)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=max_length,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            num_key_value_heads=None,
            **PRESETS[name],
        )
        return LlamaForCausalLM(config), tokenizer
    tokenizer = AutoTokenizer.from_pretrained(name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(name), tokenizer


def encode(record: dict[str, str], tokenizer: Any, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and labels: the loss covers the answer (and end of text), not the question."""
    prompt = tokenizer(_prompt(record), add_special_tokens=False)["input_ids"]
    answer = tokenizer(" " + record["answer"], add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    ids = ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + prompt
    labels = [-100] * len(ids) + answer
    ids = (ids + answer)[:max_length]
    return torch.tensor(ids), torch.tensor(labels[:max_length])


def _final_number(text: str) -> str | None:
    tail = text.split("####")[-1].strip().split()
    return tail[0] if "####" in text and tail else None


def evaluate(
    model: Any,
    tokenizer: Any,
    records: list[dict[str, str]],
    encoded: list,
    device: torch.device,
    autocast: bool,
    generate: int,
) -> tuple[float, float | None]:
    """Held-out loss, and exact-match accuracy of ``#### n`` over the first ``generate`` records."""
    model.eval()
    losses = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        for ids, labels in encoded:
            out = model(input_ids=ids[None].to(device), labels=labels[None].to(device))
            losses.append(float(out.loss))
        correct = 0
        for record in records[:generate]:
            prompt = tokenizer(_prompt(record), return_tensors="pt", add_special_tokens=False)["input_ids"]
            if tokenizer.bos_token_id is not None:
                prompt = torch.cat([torch.tensor([[tokenizer.bos_token_id]]), prompt], dim=1)
            output = model.generate(
                prompt.to(device),
                max_new_tokens=64,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            text = tokenizer.decode(output[0, prompt.shape[1] :], skip_special_tokens=True)
            correct += _final_number(text) == _final_number(record["answer"])
    model.train()
    return statistics.mean(losses), (correct / generate if generate else None)


def warmup_steps(warmup: int, steps: int) -> int:
    """The warm-up a run of ``steps`` steps uses: ``warmup``, or a quarter of the run (at least one
    step) when ``warmup`` is more than that, so that a short run still decays its learning rate."""
    return min(warmup, max(steps // 4, 1))


def warmup_note(warmup: int, steps: int) -> str | None:
    """A note when the run is too short for ``--warmup`` (see :func:`warmup_steps`), else ``None``."""
    used = warmup_steps(warmup, steps)
    if used == warmup:
        return None
    return (
        f"note: --warmup {warmup} is more than a quarter of this run's {steps} steps (one per training "
        f"problem, --examples): warming up over {used} steps instead"
    )


def train_arm(
    arm: str,
    model: Any,
    train: list,
    lr: float,
    warmup: int,
    device: torch.device,
    autocast: bool,
    seed: int,
    progress: tqdm,
) -> dict[str, Any]:
    """One epoch at batch size 1 with Table III's schedule; returns the per-step losses and timing."""
    optimizer = optimizer_factory(arm)(list(model.parameters()), lr)
    steps = len(train)
    warmup = warmup_steps(warmup, steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(steps - warmup, 1)),
    )
    order = random.Random(seed).sample(range(steps), steps)
    losses = torch.zeros(steps, device=device)  # kept on the device: no synchronisation per step
    model.train()
    start = time.perf_counter()
    for i, index in enumerate(order):
        ids, labels = train[index]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids[None].to(device), labels=labels[None].to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses[i] = loss.detach()
        progress.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"losses": losses.cpu().tolist(), "seconds": seconds}


def main(
    model_name: str,
    data: Path | None,
    arms: list[str],
    examples: int,
    eval_examples: int,
    generate: int,
    lr: float,
    warmup: int,
    max_length: int,
    seed: int,
    device: str,
    out: Path,
) -> int:
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise SystemExit(
            "finetune needs Hugging Face transformers: pip install 'superpositional[finetune]'"
        ) from None
    for arm in arms:
        try:
            optimizer_factory(arm)
        except ValueError as error:
            choices = f"{list(ARMS)} (old names: {sorted(ALIASES)}) or lambda=L,coverage=C,perturbation=P"
            raise SystemExit(f"finetune: unknown arms: {error}; choose from {choices}") from None
    for old in dict.fromkeys(arm for arm in arms if arm in ALIASES):
        print(f"note: arm {old} is now called {ALIASES[old]}")
    arms = list(dict.fromkeys(canonical(arm) for arm in arms))
    records = load_jsonl(data) if data is not None else generate_problems(examples + eval_examples, seed=1234)
    if data is not None and len(records) <= eval_examples:
        raise SystemExit(f"finetune: {data} has {len(records)} records, fewer than --eval-examples + 1")
    held_out, train_records = records[:eval_examples], records[eval_examples:][:examples]
    target = torch.device(device)
    autocast = target.type == "cuda"
    model, tokenizer = build_model(model_name, train_records, seed, max_length)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    train = [encode(r, tokenizer, max_length) for r in train_records]
    held_out_encoded = [encode(r, tokenizer, max_length) for r in held_out]
    parameters = sum(p.numel() for p in model.parameters())
    print(
        f"model {model_name}: {parameters / 1e6:.1f} M parameters; {len(train)} training and "
        f"{len(held_out)} held-out problems; device {device}"
    )
    if (note := warmup_note(warmup, len(train))) is not None:
        print(note)
    results = {}
    with tqdm(total=len(arms) * len(train), desc="finetune", unit="step") as progress:
        for arm in arms:
            model.load_state_dict(initial)  # every arm starts from the same weights
            model.to(target)
            progress.set_postfix(arm=arm)
            run = train_arm(arm, model, train, lr, warmup, target, autocast, seed, progress)
            eval_loss, accuracy = evaluate(
                model, tokenizer, held_out, held_out_encoded, target, autocast, generate
            )
            run.update(mean_loss=statistics.mean(run["losses"]), eval_loss=eval_loss, accuracy=accuracy)
            results[arm] = run
    print(finetune_report.report(results))
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": model_name,
        "parameters": parameters,
        "train_examples": len(train),
        "eval_examples": len(held_out),
        "lr": lr,
        "warmup": warmup,
        "warmup_steps": warmup_steps(warmup, len(train)),
        "max_length": max_length,
        "seed": seed,
        "device": device,
        "paper": finetune_report.PAPER,
        "results": results,
        "environment": collect(),
    }
    write_json(out / "finetune.json", summary)
    title = f"fine-tuning {model_name}: {len(train)} steps, lr {lr:g}, seed {seed}"
    save_plot(lambda path: finetune_report.plot(results, title, path), out / "finetune.png", "finetune")
    return 0
