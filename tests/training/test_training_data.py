"""The training data: LLaVA JSON records, bad samples counted and skipped, the collator and the sampler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from training.data import DataSettings, LlavaCollator, LlavaDataset, SkipLog, load_records
from training.sampler import ModalityLengthSampler


@pytest.fixture(scope="module")
def tokenizer():
    from model_adapters.demo_model import demo_corpus, train_tokenizer

    return train_tokenizer(demo_corpus())


@pytest.fixture(scope="module")
def image_processor():
    from training.model import pil_image_processor

    return pil_image_processor("siglip", 32)


def record(rid: str, image: str | None, turns: list[tuple[str, str]]) -> dict:
    conversations = []
    for k, (q, a) in enumerate(turns):
        conversations += [{"from": "human", "value": ("<image>\n" if image and k == 0 else "") + q},
                          {"from": "gpt", "value": a}]  # fmt: skip
    out = {"id": rid, "conversations": conversations}
    if image:
        out["image"] = image
    return out


def settings(tokenizer, folder: Path, max_length: int = 128) -> DataSettings:
    return DataSettings("v1", max_length, tokenizer.convert_tokens_to_ids("<image>"), 16, folder, pad_to_square=True)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    Image.new("RGB", (48, 32), (200, 10, 10)).save(tmp_path / "wide.png")
    Image.new("RGB", (32, 32), (10, 200, 10)).save(tmp_path / "square.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    return tmp_path


def test_bad_samples_are_counted_skipped_and_summarised(tokenizer, image_processor, folder: Path, capsys) -> None:
    long_question = " ".join(["What colour is the circle?"] * 40)
    records = [
        record("good-image", "square.jpg", [("What colour is the circle?", "green")]),
        record("missing", "nowhere.jpg", [("What colour?", "red")]),
        {"id": "no-answer", "image": "square.jpg", "conversations": [{"from": "human", "value": "<image>\nHi"}]},
        record("broken", "broken.jpg", [("What colour?", "red")]),
        record("too-long", "wide.png", [(long_question, "red")]),
        record("text-only", None, [("Is it a star?", "no")]),
    ]
    log = SkipLog(folder / "skips.jsonl")
    dataset = LlavaDataset(records, tokenizer, image_processor, settings(tokenizer, folder, max_length=100), log)
    assert len(dataset) == 4  # missing image and no assistant turn are found up front
    items = [dataset[i] for i in range(len(dataset))]  # never raises mid-epoch
    assert log.totals() == {"missing_image": 1, "no_assistant_turn": 1, "unreadable_image": 1,
                            "no_answer_within_max_length": 1}  # fmt: skip
    assert log.summary() == (
        "skipped samples: 4 (missing_image 1, no_answer_within_max_length 1, no_assistant_turn 1, unreadable_image 1)"
    )
    err = capsys.readouterr().err
    assert "skipped sample missing: missing_image" in err and "skipped sample broken: unreadable_image" in err
    # A bad sample is replaced by the next good one: every item is a trainable sample.
    assert all(int((item["labels"] != -100).sum()) > 0 for item in items)
    assert sum(item["pixel_values"] is None for item in items) >= 1


def test_image_sample_tensors(tokenizer, image_processor, folder: Path) -> None:
    dataset = LlavaDataset(
        [record("a", "wide.png", [("What colour is the circle?", "red")])], tokenizer, image_processor,
        settings(tokenizer, folder),
    )  # fmt: skip
    item = dataset[0]
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert int((item["input_ids"] == image_id).sum()) == 16
    assert item["pixel_values"].shape == (3, 32, 32)
    # pad to square: the wide red image gets mean-colour (grey, 0 after normalisation) bands top and bottom
    assert abs(float(item["pixel_values"][0, 0, 16])) < 0.05 and float(item["pixel_values"][0, 16, 16]) > 0.5
    assert tokenizer.decode([t for t in item["labels"].tolist() if t != -100]) == " red</s>"


def test_collator_pads_right_and_stacks_only_real_images(tokenizer, image_processor, folder: Path) -> None:
    records = [record("a", "square.jpg", [("What colour is the circle?", "green")]),
               record("b", None, [("Is it a star? Is it a circle? Is it red?", "no")])]  # fmt: skip
    dataset = LlavaDataset(records, tokenizer, image_processor, settings(tokenizer, folder))
    items = [dataset[0], dataset[1]]
    batch = LlavaCollator(pad_id=tokenizer.eos_token_id)(items)
    assert batch["pixel_values"].shape == (1, 3, 32, 32)
    lengths = [len(i["input_ids"]) for i in items]
    assert batch["attention_mask"].sum(1).tolist() == lengths
    short = lengths.index(min(lengths))
    assert (batch["labels"][short, min(lengths):] == -100).all()
    # pad == EOS: the real EOS at the end of the answer is still attended
    last_real = min(lengths) - 1
    assert batch["input_ids"][short, last_real] == tokenizer.eos_token_id and batch["attention_mask"][short, last_real]
    only_text = LlavaCollator(pad_id=0)([items[1]])
    assert "pixel_values" not in only_text


def test_modality_length_sampler_groups_batches() -> None:
    lengths = [10 + i for i in range(37)] + [-(5 + i) for i in range(21)]
    sampler = ModalityLengthSampler(lengths, batch_size=4, world_size=2, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths)))
    full = (37 // 8) * 8 + (21 // 8) * 8
    for start in range(0, full, 8):
        batch = order[start : start + 8]
        assert len({lengths[i] > 0 for i in batch}) == 1  # one modality per global batch
        assert [abs(lengths[i]) for i in batch] == sorted((abs(lengths[i]) for i in batch), reverse=True)
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_load_records_reads_json_and_jsonl(tmp_path: Path) -> None:
    rows = [record("a", None, [("q", "a")]), record("b", "x.jpg", [("q", "a")])]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert load_records(tmp_path / "d.json") == rows == load_records(tmp_path / "d.jsonl")


def test_all_bad_records_is_a_clear_error(tokenizer, image_processor, folder: Path) -> None:
    with pytest.raises(ValueError, match="no usable training samples"):
        LlavaDataset([record("m", "nowhere.jpg", [("q", "a")])], tokenizer, image_processor,
                     settings(tokenizer, folder))  # fmt: skip
