"""SuperpositionalAdamW inside the training frameworks people use, as torch.optim.AdamW is: Hugging
Face ``Trainer``, PyTorch Lightning and ``accelerate`` train with it, checkpoint it through their own
machinery and resume as an uninterrupted run (CPU, small models, the real libraries)."""

from __future__ import annotations

import pytest
import torch

import superpositional as sp

OPTIONS = dict(lr=3e-3, quantum_weight=0.5, coverage="all", circuit=sp.circuits.entangled(4), amsgrad=True)


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], **tolerance) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], **(tolerance or dict(atol=0, rtol=0)), msg=name)


# -- Hugging Face Trainer --------------------------------------------------------------------------


class _Tokens(torch.utils.data.Dataset):
    """Random token sequences, the same for every run."""

    def __init__(self, count: int, length: int, vocab: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, vocab, (count, length), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _trainer(output_dir, max_steps: int):
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    transformers.set_seed(0)
    model = transformers.LlamaForCausalLM(config)
    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        learning_rate=OPTIONS["lr"],
        warmup_steps=2,
        save_strategy="steps",
        save_steps=3,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        seed=0,
        data_seed=0,
        dataloader_num_workers=0,
    )
    kwargs = {k: v for k, v in OPTIONS.items() if k != "lr"}
    return transformers.Trainer(
        model=model,
        args=args,
        train_dataset=_Tokens(48, 16, config.vocab_size),
        optimizer_cls_and_kwargs=(sp.SuperpositionalAdamW, kwargs),
    )


def test_hugging_face_trainer_trains_checkpoints_and_resumes(tmp_path, require):
    require("transformers")
    require("accelerate")
    straight = _trainer(tmp_path / "straight", max_steps=6)  # saves checkpoint-3 on the way
    straight.train()
    optimizer = getattr(straight.optimizer, "optimizer", straight.optimizer)  # accelerate's wrapper
    assert isinstance(optimizer, sp.SuperpositionalAdamW)
    checkpoint = tmp_path / "straight" / "checkpoint-3"
    torch.load(checkpoint / "optimizer.pt")  # plain data: loads with torch.load's defaults
    resumed = _trainer(tmp_path / "resumed", max_steps=6)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    _assert_same_weights(resumed.model.state_dict(), straight.model.state_dict(), atol=1e-6, rtol=1e-5)


# -- PyTorch Lightning ----------------------------------------------------------------------------


def _lightning_module(make_optimizer):
    import lightning

    class Regression(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 1))

        def training_step(self, batch, batch_index):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x).float(), y)

        def configure_optimizers(self):
            optimizer = make_optimizer(self.parameters())
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    return Regression()


def _lightning_data():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=generator)
    y = x.sum(dim=1, keepdim=True).sin()
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=False)


def _lightning_trainer(root, max_steps: int):
    import lightning

    return lightning.Trainer(
        default_root_dir=str(root),
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


def _lightning_resumed(root, make_optimizer):
    """Four steps (one epoch), a checkpoint, then a new Trainer resumed from it to eight steps."""
    first = _lightning_module(make_optimizer)
    trainer = _lightning_trainer(root, 4)
    trainer.fit(first, _lightning_data())
    trainer.save_checkpoint(root / "half.ckpt")
    resumed = _lightning_module(make_optimizer)
    second = _lightning_trainer(root, 8)
    second.fit(resumed, _lightning_data(), ckpt_path=str(root / "half.ckpt"))
    return trainer, second, resumed


def test_lightning_trains_in_bf16_mixed_with_a_scheduler_checkpoints_and_resumes(tmp_path, require):
    """Lightning's own resume is not bit-for-bit even for AdamW (it restarts the epoch's loops), so the
    resumed run must equal AdamW's resumed the same way; and a run with the circuit term restores
    every optimizer state from a checkpoint that loads with torch.load's defaults."""
    require("lightning")
    ours = lambda params: sp.SuperpositionalAdamW(params, lr=3e-3, amsgrad=True, quantum_weight=0.0)  # noqa: E731
    adamw = lambda params: torch.optim.AdamW(params, lr=3e-3, amsgrad=True)  # noqa: E731
    *_, resumed_ours = _lightning_resumed(tmp_path / "ours", ours)
    *_, resumed_adamw = _lightning_resumed(tmp_path / "adamw", adamw)
    _assert_same_weights(resumed_ours.state_dict(), resumed_adamw.state_dict(), atol=1e-6, rtol=1e-5)

    first, second, _ = _lightning_resumed(
        tmp_path / "circuits", lambda p: sp.SuperpositionalAdamW(p, **OPTIONS)
    )
    optimizer = first.optimizers[0]
    assert isinstance(optimizer, sp.SuperpositionalAdamW)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(OPTIONS["lr"] * 0.25)  # the scheduler drove it
    assert all(float(s["step"]) == 4 for s in optimizer.state.values())  # one step per closure call
    saved = torch.load(tmp_path / "circuits" / "half.ckpt")["optimizer_states"][0]  # torch.load's defaults
    assert saved["param_groups"][0]["circuit"] == OPTIONS["circuit"].to_json()
    assert all(float(s["step"]) == 8 for s in second.optimizers[0].state.values())


# -- accelerate -----------------------------------------------------------------------------------


def _accelerated(seed: int = 0):
    import accelerate

    accelerator = accelerate.Accelerator(cpu=True)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    optimizer = sp.SuperpositionalAdamW(model.parameters(), **OPTIONS)
    model, optimizer = accelerator.prepare(model, optimizer)  # round-trips the state dict
    return accelerator, model, optimizer


def _accelerate_steps(accelerator, model, optimizer, steps: range) -> None:
    for step in steps:
        x = torch.randn(16, 8, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        accelerator.backward(model(x).square().mean())
        optimizer.step()


def test_accelerate_prepares_saves_and_loads_state(tmp_path, require):
    require("accelerate")
    straight = _accelerated()
    _accelerate_steps(*straight, range(6))
    first = _accelerated()
    _accelerate_steps(*first, range(3))
    first[0].save_state(str(tmp_path / "state"))
    resumed = _accelerated(seed=7)  # other initial weights: load_state must bring back everything
    resumed[0].load_state(str(tmp_path / "state"))
    _accelerate_steps(*resumed, range(3, 6))
    _assert_same_weights(resumed[1].state_dict(), straight[1].state_dict())
