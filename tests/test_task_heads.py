"""Task heads and their features on tiny models: shapes, pooling, span mapping, learning a toy task."""

from __future__ import annotations

import pytest
import torch

from lowres_adapters.data.examples import LabeledExample
from lowres_adapters.errors import LowresError
from lowres_adapters.testing.tiny import tiny_model
from lowres_adapters.training.heads import (
    HeadConfig,
    TaskHead,
    backbone_of,
    last_hidden_states,
    pool_sequence,
)
from lowres_adapters.training.task_features import (
    collate,
    decode_qa_answer,
    decode_token_tags,
    encode_examples,
    encode_qa_example,
    encode_token_example,
)


def test_pooling_uses_real_tokens_only():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)  # (batch, seq, hidden)
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])
    assert pool_sequence(hidden, mask, "mean").squeeze(-1).tolist() == [1.0, 6.0]
    assert pool_sequence(hidden, mask, "first").squeeze(-1).tolist() == [0.0, 5.0]
    assert pool_sequence(hidden, mask, "last").squeeze(-1).tolist() == [2.0, 7.0]


def test_head_config_rejects_bad_values():
    with pytest.raises(ValueError, match="head kind"):
        HeadConfig(kind="regression")
    with pytest.raises(ValueError, match="exactly 2 outputs"):
        HeadConfig(kind="extractive_qa", num_labels=3)


@pytest.mark.parametrize("kind", ["llama", "xlmr"])
def test_backbone_skips_the_vocabulary_projection(kind):
    model, tokenizer = tiny_model(kind)
    assert backbone_of(model) is not model
    batch = tokenizer(["Mulungu ndiye kuwala", "God is light"], padding=True, return_tensors="pt")
    hidden = last_hidden_states(model, batch["input_ids"], batch["attention_mask"])
    assert hidden.shape == (2, batch["input_ids"].shape[1], model.config.hidden_size)
    reference = model(**batch, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(hidden, reference)


def test_token_features_label_first_subtoken_of_each_word():
    _, tokenizer = tiny_model("llama")
    example = LabeledExample(tokens=("Mulungu", "adalenga", "kumwamba"), tags=("B-PER", "O", "B-LOC"))
    encoded = encode_token_example(example, tokenizer, ("O", "B-PER", "B-LOC"), max_length=64)
    labelled = [(position, label) for position, label in enumerate(encoded.targets["labels"]) if label != -100]
    assert [label for _, label in labelled] == [1, 0, 2]
    assert [position for position, _ in labelled] == list(encoded.word_starts)
    for (position, _), word in zip(labelled, example.tokens):
        start, _end = encoded.offsets[position]
        assert encoded.text[start:].lstrip().startswith(word[0])


def test_qa_features_map_the_answer_span_back_to_text():
    _, tokenizer = tiny_model("llama")
    example = LabeledExample(question="Who created the earth?",
                             text="In the beginning God created the heaven and the earth.", answers=("God",))
    encoded = encode_qa_example(example, tokenizer, max_length=128)
    start, end = encoded.targets["start_positions"], encoded.targets["end_positions"]
    assert 0 < start <= end
    span = encoded.text[encoded.offsets[start][0]: encoded.offsets[end][1]]
    assert span.strip() == "God"
    sequence = len(encoded.input_ids)
    start_logits, end_logits = torch.zeros(sequence), torch.zeros(sequence)
    start_logits[start], end_logits[end] = 5.0, 5.0
    assert decode_qa_answer(start_logits, end_logits, encoded) == "God"


def test_qa_answer_missing_or_truncated_gives_no_answer_positions():
    _, tokenizer = tiny_model("llama")
    missing = LabeledExample(question="Who?", text="God is light.", answers=("Moses",))
    assert encode_qa_example(missing, tokenizer, 64).targets == {"start_positions": 0, "end_positions": 0}
    truncated = LabeledExample(question="Who?", text="God is light, and in him is no darkness at all.",
                               answers=("darkness",))
    assert encode_qa_example(truncated, tokenizer, 6).targets == {"start_positions": 0, "end_positions": 0}


def test_unknown_label_is_a_user_error():
    _, tokenizer = tiny_model("llama")
    with pytest.raises(LowresError, match="not one of"):
        encode_examples("sequence_classification", [LabeledExample(text="x", label="c")], tokenizer, ("a", "b"))


@pytest.mark.parametrize("model_kind", ["llama", "xlmr"])
def test_heads_learn_toy_tasks_on_frozen_features(model_kind):
    """Each head must fit a small separable task on frozen features (loss falls, predictions right)."""
    torch.manual_seed(0)
    model, tokenizer = tiny_model(model_kind)
    model.requires_grad_(False)
    hidden_size = model.config.hidden_size
    sequence = [LabeledExample(text=text, label=label) for text, label in
                [("Mulungu ndiye kuwala", "nya"), ("God is light", "eng"),
                 ("Pachiyambi Mulungu adalenga", "nya"), ("In the beginning", "eng")]]
    tokens = [LabeledExample(tokens=("Mulungu", "ndiye", "kuwala"), tags=("B-PER", "O", "O")),
              LabeledExample(tokens=("God", "is", "light"), tags=("B-PER", "O", "O"))]
    qa = [LabeledExample(question="Who?", text="God is light.", answers=("light",)),
          LabeledExample(question="What?", text="Mulungu ndiye kuwala.", answers=("kuwala",))]
    cases = [("sequence_classification", sequence, ("nya", "eng"), 2),
             ("token_classification", tokens, ("O", "B-PER"), 2),
             ("extractive_qa", qa, (), 2)]
    for kind, examples, labels, num_labels in cases:
        head = TaskHead(HeadConfig(kind=kind, num_labels=num_labels, hidden_size=hidden_size, dropout=0.0))
        encoded = encode_examples(kind, examples, tokenizer, labels)
        batch = collate(encoded, tokenizer.pad_token_id)
        with torch.no_grad():
            hidden = last_hidden_states(model, batch["input_ids"], batch["attention_mask"])
        optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
        first_loss = None
        for _ in range(60):
            loss = head.loss(head(hidden, batch["attention_mask"]), batch)
            first_loss = first_loss if first_loss is not None else loss.item()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert loss.item() < 0.2 * first_loss, kind
        logits = head(hidden, batch["attention_mask"]).detach()
        if kind == "sequence_classification":
            assert logits.argmax(-1).tolist() == batch["labels"].tolist()
        elif kind == "token_classification":
            assert [decode_token_tags(logits[row], encoded[row], labels) for row in range(2)] == \
                [list(example.tags) for example in examples]
        else:
            answers = [decode_qa_answer(logits[row, :, 0], logits[row, :, 1], encoded[row]) for row in range(2)]
            assert answers == [example.answers[0] for example in examples]


def test_head_state_round_trip():
    head = TaskHead(HeadConfig(num_labels=3, hidden_size=8))
    copy = TaskHead(HeadConfig(num_labels=3, hidden_size=8))
    tensors = head.head_state_dict()
    assert all(key.startswith("lowres.head.") for key in tensors)
    copy.load_head_state_dict({**tensors, "unrelated": torch.zeros(1)})
    hidden, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.long)
    head.eval(), copy.eval()
    torch.testing.assert_close(head(hidden, mask), copy(hidden, mask))


def decoder_like_states(labels: torch.Tensor, generator: torch.Generator, hidden_size: int = 64,
                        length: int = 6) -> torch.Tensor:
    """Return ``(batch, length, hidden)`` states shaped like a decoder's last layer: every token carries
    the same large offset (one massive dimension, as SmolLM2-135M's) and the class shows only as a
    small shift, 1/1000 of the offset's norm."""
    shared = torch.Generator().manual_seed(1234)  # the same offset and class shifts for every call
    offset = 0.6 * torch.randn(hidden_size, generator=shared)
    offset[0] = 30.0
    shifts = 0.03 * torch.randn(int(labels.max()) + 1, hidden_size, generator=shared)  # (classes, hidden)
    noise = 0.1 * torch.randn(labels.shape[0], length, hidden_size, generator=generator)
    return offset + shifts[labels].unsqueeze(1) + noise


def test_head_learns_a_small_class_signal_on_a_large_shared_offset():
    """The cause of the task recipe sitting at the majority class on SmolLM2: the pooled features'
    common offset swamps the class signal unless the head standardises its input."""
    from lowres_adapters.evaluation.classification import classification_scores
    from lowres_adapters.training.recipes.task import DECODER_DEFAULTS

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    shares = torch.tensor([0.5, 0.3, 0.2])  # imbalanced: predicting class 0 scores 50% accuracy
    head = TaskHead(HeadConfig(num_labels=3, hidden_size=64))
    optimizer = torch.optim.AdamW(head.parameters(), lr=DECODER_DEFAULTS["lr"])
    mask = torch.ones(16, 6, dtype=torch.long)
    for _ in range(150):
        labels = torch.multinomial(shares, 16, replacement=True, generator=generator)
        loss = head.loss(head(decoder_like_states(labels, generator), mask), {"labels": labels})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    labels = torch.multinomial(shares, 400, replacement=True, generator=generator)
    predicted = head(decoder_like_states(labels, generator), torch.ones(400, 6, dtype=torch.long)).argmax(-1)
    scores = classification_scores(predicted.tolist(), labels.tolist(), [0, 1, 2])
    majority = classification_scores([0] * 400, labels.tolist(), [0, 1, 2])
    assert scores["macro_f1"] >= majority["macro_f1"] + 60, (scores, majority)


def test_head_normalisation_ignores_padding_and_single_rows():
    head = TaskHead(HeadConfig(kind="token_classification", num_labels=2, hidden_size=4, dropout=0.0))
    hidden = torch.randn(2, 5, 4) + 100.0
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    padded = hidden.clone()
    padded[0, 3:] = 1e6  # padding values must not reach the statistics
    torch.testing.assert_close(head(hidden, mask)[mask.bool()], head(padded, mask)[mask.bool()])
    sequence = TaskHead(HeadConfig(num_labels=2, hidden_size=4))
    assert sequence(torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.long)).shape == (1, 2)  # batch of one


def test_balanced_class_weights_make_every_class_weigh_the_same():
    from lowres_adapters.training.heads import balanced_class_weights

    weights = balanced_class_weights([0, 0, 0, 1, -100], num_labels=3)
    torch.testing.assert_close(weights, torch.tensor([4 / 9, 4 / 3, 0.0]))
    head = TaskHead(HeadConfig(num_labels=3, hidden_size=4))
    logits, labels = torch.randn(4, 3), torch.tensor([0, 0, 0, 1])
    per_class = [torch.nn.functional.cross_entropy(logits[labels == c], labels[labels == c]) for c in (0, 1)]
    balanced = head.loss(logits, {"labels": labels}, weights)
    torch.testing.assert_close(balanced, (per_class[0] + per_class[1]) / 2)  # each class counts half



def test_standardizer_starts_from_the_first_batch_and_can_be_recalibrated():
    """A task adapter moves the features under the head while it trains (measured on dzo: the
    average statistics of all 40 batches sat 5 standard deviations off the final features, and
    every test paragraph got the same label); the recipe resets them from the trained model."""
    from lowres_adapters.training.heads import FeatureStandardizer

    generator = torch.Generator().manual_seed(0)
    standardizer = FeatureStandardizer(8)
    batch = torch.randn(16, 8, generator=generator) + 3.0
    standardizer(batch)
    torch.testing.assert_close(standardizer.running_mean, batch.mean(0))  # not pulled towards 0
    for step in range(40):  # the features drift from 0 to 20
        standardizer(torch.randn(16, 8, generator=generator) + 20.0 * step / 39)
    final = torch.randn(400, 8, generator=generator) + 20.0
    standardizer.set_statistics(final[:200])
    standardizer.eval()
    standardized = standardizer(final[200:])
    assert standardized.mean(0).abs().max() < 0.3 and (standardized.std(0) - 1).abs().max() < 0.3


def test_refit_head_fits_pooled_rows_full_batch_and_keeps_the_statistics():
    """After training, the task recipe refits the head on pooled rows of the trained model
    (``refit_examples``): afresh, full batch, standardised with the rows' own statistics."""
    from lowres_adapters.training.task_scoring import refit_head

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 64, generator=generator)

    def rows_of(labels: torch.Tensor) -> torch.Tensor:  # a small class signal on a large shared offset
        return 40.0 + 0.1 * centres[labels] + 0.05 * torch.randn(len(labels), 64, generator=generator)

    labels = torch.arange(8).repeat(40)
    rows = rows_of(labels)
    head = TaskHead(HeadConfig(num_labels=8, hidden_size=64))
    head.normalizer.set_statistics(rows)
    mean, variance = head.normalizer.running_mean.clone(), head.normalizer.running_var.clone()
    refit_head(head, rows, labels.tolist(), None, steps=100)
    assert not head.training
    torch.testing.assert_close(head.normalizer.running_mean, mean)
    torch.testing.assert_close(head.normalizer.running_var, variance)
    fresh = torch.arange(8).repeat(10)
    with torch.no_grad():
        predicted = head(rows_of(fresh).unsqueeze(1), torch.ones(80, 1, dtype=torch.long)).argmax(-1)
    assert (predicted == fresh).float().mean() > 0.9


def single_member_copy(head: TaskHead, member: int) -> TaskHead:
    """Return a one-member head holding member ``member`` of ``head`` (same statistics)."""
    config = head.config
    single = TaskHead(HeadConfig(kind=config.kind, num_labels=config.num_labels, hidden_size=config.hidden_size,
                                 pooling=config.pooling, dropout=config.dropout, layers=config.layers,
                                 member_size=config.member_size))
    width = config.dense_size
    with torch.no_grad():
        single.normalizer.load_state_dict(head.normalizer.state_dict())
        single.dense[0].weight.copy_(head.dense[0].weight[member * width: (member + 1) * width])
        single.dense[0].bias.copy_(head.dense[0].bias[member * width: (member + 1) * width])
        single.output.weight.copy_(head.output.weight[member])
        single.output.bias.copy_(head.output.bias[member])
    return single


@pytest.mark.parametrize("kind", ["sequence_classification", "token_classification"])
def test_head_members_are_independent_heads_averaged(kind):
    """An ensemble head predicts with the mean of its members' logits, and each member computes
    exactly what a one-member head with its weights computes, for pooled and per-token heads."""
    torch.manual_seed(0)
    head = TaskHead(HeadConfig(kind=kind, num_labels=4, hidden_size=8, members=3, member_size=5))
    hidden, mask = torch.randn(2, 6, 8), torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    head.train()
    head(hidden, mask)  # set the standardiser's statistics
    head.eval()
    members = head.member_logits(hidden, mask)
    assert members.shape[-2] == 3
    torch.testing.assert_close(head(hidden, mask), members.mean(dim=-2))
    for member in range(3):
        single = single_member_copy(head, member).eval()
        torch.testing.assert_close(members.select(-2, member), single(hidden, mask))


def test_head_members_learn_apart_from_each_other():
    """The training loss is the mean of the members' own losses: a member's gradient is its lone
    head's gradient / members, whatever the other members hold (a loss on the averaged logits would
    couple them)."""
    torch.manual_seed(0)
    head = TaskHead(HeadConfig(num_labels=4, hidden_size=8, members=2, dropout=0.0))
    rows, mask = torch.randn(16, 1, 8), torch.ones(16, 1, dtype=torch.long)
    batch = {"labels": torch.randint(0, 4, (16,))}
    head.normalizer.set_statistics(rows.squeeze(1))
    head.normalizer.eval()
    head.training_loss(rows, mask, batch).backward()
    for member in range(2):
        single = single_member_copy(head, member)
        single.normalizer.eval()
        single.loss(single(rows, mask), batch).backward()
        torch.testing.assert_close(head.output.weight.grad[member], single.output.weight.grad / 2)
        torch.testing.assert_close(head.dense[0].weight.grad[member * 8: (member + 1) * 8],
                                   single.dense[0].weight.grad / 2)


def test_head_with_one_member_keeps_the_saved_layout():
    """A one-member head has the tensors heads were always saved with (plain dense + output)."""
    head = TaskHead(HeadConfig(num_labels=3, hidden_size=8))
    assert set(head.state_dict()) >= {"dense.0.weight", "dense.0.bias", "output.weight", "output.bias"}
    assert head.output.weight.shape == (3, 8)
    ensemble = TaskHead(HeadConfig(num_labels=3, hidden_size=8, members=4, member_size=2))
    assert ensemble.dense[0].weight.shape == (8, 8) and ensemble.output.weight.shape == (4, 3, 2)
    copy = TaskHead(HeadConfig(num_labels=3, hidden_size=8, members=4, member_size=2))
    copy.load_head_state_dict(ensemble.head_state_dict())
    hidden, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.long)
    ensemble.eval(), copy.eval()
    torch.testing.assert_close(ensemble(hidden, mask), copy(hidden, mask))


def test_refit_reinitialises_every_member():
    """The refit starts every member afresh (its own draw), so members end up different heads."""
    from lowres_adapters.training.task_scoring import refit_head

    torch.manual_seed(0)
    labels = torch.arange(4).repeat(20)
    rows = torch.randn(4, 16)[labels] + 0.5 * torch.randn(80, 16)
    head = TaskHead(HeadConfig(num_labels=4, hidden_size=16, members=3))
    with torch.no_grad():
        head.output.weight.zero_()
        head.output.bias.zero_()
    head.normalizer.set_statistics(rows)
    refit_head(head, rows, labels.tolist(), None, steps=1, lr=0.0)  # the re-initialisation alone
    weights = head.output.weight
    assert weights.abs().min() > 0
    assert not torch.allclose(weights[0], weights[1]) and not torch.allclose(weights[1], weights[2])
    refit_head(head, rows, labels.tolist(), None, steps=60)
    with torch.no_grad():
        predicted = head(rows.unsqueeze(1), torch.ones(80, 1, dtype=torch.long)).argmax(-1)
    assert (predicted == labels).float().mean() > 0.9
