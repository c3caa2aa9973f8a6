"""LoRA: the formula equals what `peft` computes on the same weights; what it trains and what it holds."""

import dataclasses

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from llmcourse import lora
from llmcourse.recipes import recipe_for

R, ALPHA = 4, 8.0


def tiny_classifier(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=64, num_labels=2)
    return BertForSequenceClassification(config).eval()


@pytest.fixture
def adapted():
    model = lora.add_lora(tiny_classifier(), r=R, alpha=ALPHA)
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero (no change at first): give it values to compare
            torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def _query(model):
    return model.base_model.model.bert.encoder.layer[0].attention.self.query


def test_lora_forward_equals_peft_on_the_same_weights(adapted):
    layer = _query(adapted)
    base, A, B = layer.base_layer, layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert A.shape == (R, 32) and B.shape == (32, R) and layer.scaling["default"] == ALPHA / R
    x = torch.randn(3, 7, 32)
    with torch.no_grad():
        ours = lora.lora_forward(x, base.weight, base.bias, A, B, alpha=ALPHA, r=R)
        torch.testing.assert_close(ours, layer(x))
        assert (ours - base(x)).abs().max() > 0.1  # the update is really there


def test_merged_weight_equals_peft_merge_and_the_whole_model_agrees(adapted):
    layer = _query(adapted)
    A, B = layer.lora_A["default"].weight.detach().clone(), layer.lora_B["default"].weight.detach().clone()
    expected = lora.merged_weight(layer.base_layer.weight.detach().clone(), A, B, alpha=ALPHA, r=R)
    ids = torch.randint(0, 100, (2, 9))
    with torch.no_grad():
        before = adapted(input_ids=ids).logits
    merged = adapted.merge_and_unload()
    torch.testing.assert_close(merged.bert.encoder.layer[0].attention.self.query.weight, expected)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, before)


def test_lora_starts_from_the_pretrained_model():
    plain = tiny_classifier()
    ids = torch.randint(0, 100, (2, 9))
    with torch.no_grad():
        expected = plain(input_ids=ids).logits
        adapted = lora.add_lora(tiny_classifier(), r=R, alpha=ALPHA).eval()
        assert torch.equal(adapted(input_ids=ids).logits, expected)  # B = 0: the same function, bit for bit


def test_what_lora_trains_counted_by_hand_and_only_that_moves(adapted):
    trainable, total = lora.trainable_parameters(adapted)
    per_layer = 2 * (R * 32 + 32 * R)  # query and value: A and B
    head = 32 * 2 + 2  # the new classification layer trains in full (the pooler below it stays frozen)
    assert trainable == 2 * per_layer + head
    # peft keeps the original head beside the copy it trains (modules_to_save), hence + head
    assert total == sum(p.numel() for p in tiny_classifier().parameters()) + 2 * per_layer + head
    before = {n: p.detach().clone() for n, p in adapted.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in adapted.parameters() if p.requires_grad], lr=1e-2)
    adapted.train()
    out = adapted(input_ids=torch.randint(0, 100, (4, 9)), labels=torch.tensor([0, 1, 0, 1]))
    out.loss.backward()
    optimizer.step()
    for n, p in adapted.named_parameters():
        moved = not torch.equal(before[n], p.detach())
        assert moved == p.requires_grad, n
    state = lora.training_state_bytes(adapted, optimizer)
    assert state["gradients_bytes"] == 4 * trainable and state["optimizer_bytes"] == 2 * 4 * trainable
    assert state["weights_bytes"] == 4 * total
    assert state["state_bytes"] == 4 * total + 3 * 4 * trainable


def test_full_fine_tuning_state_is_four_copies_of_the_weights():
    model = tiny_classifier().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(input_ids=torch.randint(0, 100, (2, 5)), labels=torch.tensor([0, 1])).loss.backward()
    optimizer.step()
    n = sum(p.numel() for p in model.parameters())
    assert lora.training_state_bytes(model, optimizer)["state_bytes"] == 4 * 4 * n


def test_bad_input_is_a_clear_error():
    w, A, B = torch.randn(6, 5), torch.randn(2, 5), torch.randn(6, 3)
    with pytest.raises(ValueError, match=r"B \(d_out, r\) = \(6, 2\)"):
        lora.lora_forward(torch.randn(1, 5), w, None, A, B, alpha=4, r=2)
    with pytest.raises(ValueError, match="LoRA's rank"):
        lora.merged_weight(w, A, B, alpha=4, r=0)
    with pytest.raises(ValueError, match="alpha"):
        lora.merged_weight(w, A, B, alpha=float("nan"), r=2)
    with pytest.raises(ValueError, match=r"\['q_proj'\] not among this model's linear layers"):
        lora.add_lora(tiny_classifier(), target_modules=("q_proj",))


def test_the_lora_recipe_builds_the_adapted_classifier_and_fine_tunes(shared_data, tmp_path):
    """The `bert-lora` recipe: the packaged MiniLM with adapters, fine-tuned by Trainer on a few phrases."""
    from llmcourse import bert, finetune

    full, adapted = recipe_for("bert", "quick"), recipe_for("bert-lora", "quick")
    assert adapted.model_config.lora_r == 8 and adapted.train.lr == 2e-3
    assert (adapted.batch_size, adapted.train.epochs, adapted.train_limit) == (full.batch_size, full.train.epochs,
                                                                            full.train_limit)
    tokenizer = bert.load_tokenizer()
    data = finetune.sst2_datasets(tokenizer, n_train=32, n_dev=16, seed=0)
    recipe = dataclasses.replace(adapted, train=dataclasses.replace(adapted.train, eval_every=2))
    row = lora.finetune(recipe, tokenizer, data, output_dir=str(tmp_path), disable_tqdm=True)
    assert row["method"] == "LoRA" and row["steps"] == 2 and 0 < row["fraction"] < 0.01
    assert 0.0 <= row["accuracy"] <= 1.0 and row["optimizer_bytes"] == 2 * 4 * row["trainable"]


def test_the_learning_rate_is_chosen_on_select_and_dev_is_scored_once(shared_data, monkeypatch):
    """choose_learning_rate: every candidate scored on the held-out select split, the best scored on dev."""
    from llmcourse import bert, finetune

    tokenizer = bert.load_tokenizer()
    data = finetune.sst2_datasets(tokenizer, n_train=32, n_dev=16, seed=0, held_out=24)
    recipe = recipe_for("bert-lora", "quick")
    seen = []
    real = lora.finetune
    monkeypatch.setattr(lora, "finetune", lambda *a, **k: seen.append(k["evaluate_on"]) or real(*a, **k))
    chosen, rows = lora.choose_learning_rate(recipe, tokenizer, data, [1e-4, 2e-3], disable_tqdm=True)
    assert seen == ["select", "select"] and [r["lr"] for r in rows] == [1e-4, 2e-3]
    assert all(r["split"] == "select" and "model" not in r for r in rows)
    best = max(rows, key=lambda r: r["accuracy"])
    assert chosen["lr"] == best["lr"] and chosen["select_accuracy"] == best["accuracy"] and chosen["split"] == "dev"
    assert chosen == chosen | lora.score(chosen["model"], tokenizer, data["dev"])  # accuracy and f1: dev's
    with pytest.raises(ValueError, match="held_out=872"):
        lora.choose_learning_rate(recipe, tokenizer, {"train": data["train"], "dev": data["dev"]}, [1e-3])
    with pytest.raises(ValueError, match="evaluate_on='select'"):
        lora.finetune(recipe, tokenizer, {"train": data["train"], "dev": data["dev"]}, evaluate_on="select")


def test_score_is_accuracy_and_f1_of_the_classifiers_predictions(shared_data):
    from llmcourse import bert, finetune

    tokenizer = bert.load_tokenizer()
    data = finetune.sst2_datasets(tokenizer, n_train=8, n_dev=24, seed=0)
    model = bert.load_classifier().eval()
    got = lora.score(model, tokenizer, data["dev"])
    with torch.no_grad():
        enc = tokenizer(list(data["dev"]["sentence"]), padding=True, return_tensors="pt")
        predicted = model(**enc).logits.argmax(-1).numpy()
    assert got == finetune.accuracy_f1(predicted, data["dev"]["label"])
