"""MMBench dev: TSV layouts, LLaVA / lmms-eval prompts, VLMEvalKit CircularEval (with and without a judge),
the submission xlsx, bad input and demo data."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import random
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import DataError
from harness.judging.contract import Judge, JudgeReply
from harness.protocol import load_protocol
from harness.types import Response, Sample
from tasks.demo import NUMBER_WORDS, WORDS, Scene, make_scene, render
from tasks.mmbench import MMBenchTask
from tasks.mmbench import demo as mmb_demo
from tasks.mmbench.export import read_submission, submission_columns
from tasks.mmbench.scorer import load_prompt, xlsx_prediction
from tasks.mmbench.tsv import PANDAS_NA, find_tsv, read_table

LEGACY = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
          "comment", "split")  # fmt: skip
SUFFIX = "\nAnswer with the option's letter from the given choices directly."
LLAVA = load_protocol("llava15").settings_for(MMBenchTask())
LMMS = load_protocol("lmms-eval").settings_for(MMBenchTask())
FPS = "finegrained_perception (instance-level)"


def png_b64(color: tuple[int, int, int] = (200, 30, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def question(number: int, options: list[str], answer: str, **extra: str) -> dict[str, str]:
    row = {"index": str(number), "question": f"Question {number}?", "hint": "", "answer": answer, "category": "ocr",
           "image": png_b64(), "source": "test", "l2-category": FPS, "comment": "", "split": "dev"}  # fmt: skip
    row.update({letter: text for letter, text in zip("ABCD", [*options, "", "", "", ""])})
    row.update(extra)
    return row


def circular(base: dict[str, str]) -> list[dict[str, str]]:
    """The base row and its copies: options shifted right by k, answer moved along (as the legacy file)."""
    options = [base[c] for c in "ABCD" if base[c]]
    n, answer = len(options), "ABCD".index(base["answer"])
    rows = [base]
    for k in range(1, n):
        shifted = [options[(i - k) % n] for i in range(n)]
        rows.append({**base, "index": str(int(base["index"]) + k * 1_000_000), "answer": "ABCD"[(answer + k) % n],
                     **{c: t for c, t in zip("ABCD", [*shifted, "", "", "", ""])}})  # fmt: skip
    return rows


def write_tsv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = LEGACY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    return path


def legacy_root(root: Path, bases: list[dict[str, str]]) -> Path:
    rows = [r for b in bases for r in circular(b)]
    rows.sort(key=lambda r: (int(r["index"]) // 1_000_000, int(r["index"])))  # all bases first, then copies
    write_tsv(root / "mmbench/mmbench_dev_20230712.tsv", rows)
    return root


BASES = [
    question(1, ["cat", "dog", "bird", "fish"], "B"),
    question(
        2, ["red", "blue"], "A", hint="Look closely.", category="image_scene", **{"l2-category": "coarse_perception"}
    ),
    question(3, ["one", "two", "three"], "C", category="image_scene", **{"l2-category": "coarse_perception"}),
]


@pytest.fixture
def task() -> MMBenchTask:
    return MMBenchTask()


@pytest.fixture
def samples(tmp_path: Path, task: MMBenchTask) -> list[Sample]:
    return task.load(legacy_root(tmp_path, BASES))


def gt(samples: list[Sample], **overrides: str) -> dict[str, Response]:
    """Ground-truth answers, with some rows (by index) answered otherwise."""
    out = {s.id: Response(text=str(s.target)) for s in samples}
    out.update({k.removeprefix("i"): Response(text=v) for k, v in overrides.items()})
    return out


class ScriptedJudge:
    """A stand-in for the external choice-extractor LLM: fixed replies per prediction, in order."""

    name = "scripted"
    model = "scripted-1"
    concurrency = 1

    def __init__(self, replies: dict[str, list[JudgeReply | str]]) -> None:
        self.replies = {k: list(v) for k, v in replies.items()}
        self.prompts: list[str] = []
        self.settings: list[tuple[float, int]] = []

    def complete(
        self, messages: list[dict[str, str]], temperature: float, max_tokens: int, run: int = 0, attempt: int = 0
    ) -> JudgeReply:
        assert [m["role"] for m in messages] == ["user"]
        prompt = messages[0]["content"]
        self.prompts.append(prompt)
        self.settings.append((temperature, max_tokens))
        for prediction, queue in self.replies.items():
            if f"\nAnswer: {prediction}\nYour output: " in prompt and queue:
                reply = queue.pop(0)
                return reply if isinstance(reply, JudgeReply) else JudgeReply(text=reply, model="scripted-1")
        return JudgeReply(text="", error="no scripted reply")


# ----------------------------------------------------------------------------------------------
# reading the TSV


def test_load_legacy_rows_groups_and_images(samples: list[Sample]) -> None:
    assert [s.id for s in samples] == ["1", "2", "3", "1000001", "1000002", "1000003", "2000001", "2000003",
                                       "3000001"]  # fmt: skip
    assert [s.target for s in samples[:3]] == ["B", "A", "C"]
    assert samples[3].metadata["choices"] == {"A": "fish", "B": "cat", "C": "dog", "D": "bird"}
    assert samples[3].target == "C" and samples[3].metadata["group"] == 1 and samples[3].metadata["pass"] == 1
    assert samples[1].metadata["hint"] == "Look closely." and samples[0].metadata["hint"] is None
    assert samples[0].images[0].open().size == (4, 4)
    assert samples[0].images[0].data is samples[3].images[0].data  # one decoded copy per image


def test_quoted_cells_span_lines_and_errors_name_the_starting_line(tmp_path: Path) -> None:
    rows = [question(1, ['say "hi"', "tab\there"], "A", question='multi\nline "quoted"'), question(2, ["x", "y"], "B")]
    path = write_tsv(tmp_path / "mmbench/mmbench_dev_20230712.tsv", rows)
    table = read_table(path)
    assert table.rows[0].get("question") == 'multi\nline "quoted"'
    assert table.rows[0].choices() == {"A": 'say "hi"', "B": "tab\there"}
    assert [r.lineno for r in table.rows] == [2, 4]
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n7\tQ\textra\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"mmbench_dev_20230712\.tsv:5: expected 14 tab-separated columns, found 3"):
        read_table(path)


@pytest.mark.parametrize(
    ("index", "message"), [("12a", "index '12a' is not an integer"), ("-3", "index -3 is negative")]
)
def test_bad_index_names_file_and_line(tmp_path: Path, index: str, message: str) -> None:
    path = write_tsv(tmp_path / "t.tsv", [question(1, ["x", "y"], "A"), question(2, ["x", "y"], "A", index=index)])
    with pytest.raises(DataError, match=rf"t\.tsv:3: {message}"):
        read_table(path)


def test_repeated_index_and_missing_column(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "t.tsv", [question(1, ["x", "y"], "A"), question(1, ["x", "y"], "B")])
    with pytest.raises(DataError, match=r"t\.tsv:3: index 1 repeats the row of line 2"):
        read_table(path)
    path = write_tsv(
        tmp_path / "u.tsv", [question(1, ["x", "y"], "A")], columns=tuple(c for c in LEGACY if c != "question")
    )
    with pytest.raises(DataError, match=r"u\.tsv:1: missing column 'question'"):
        read_table(path)


def test_test_split_file_without_answers_loads_and_scores_nothing(tmp_path: Path, task: MMBenchTask) -> None:
    columns = tuple(c for c in LEGACY if c != "answer")
    write_tsv(tmp_path / "mmbench/mmbench_dev_20230712.tsv", [question(1, ["x", "y"], "A")], columns)
    samples = task.load(tmp_path)
    assert samples[0].target is None
    result = task.score(samples, {"1": Response(text="A")})
    assert result.metrics["circular"].value == 0.0 and any("no ground-truth answer" in n for n in result.notes)
    written = task.export(samples, {"1": Response(text="A")}, tmp_path, tmp_path / "test.xlsx")
    assert read_submission(written) == [["index", "question", "A", "B", "C", "D", "prediction", "split"],
                                        [1, "Question 1?", "x", "y", None, None, "A", "dev"]]  # fmt: skip


def test_broken_base64_loads_and_fails_when_opened(tmp_path: Path, task: MMBenchTask) -> None:
    bad = [question(1, ["x", "y"], "A", image="not*base64!"), question(2, ["x", "y"], "A", image="aGVsbG8=")]
    samples = task.load(legacy_root(tmp_path, [*bad, question(3, ["x", "y"], "B")]))
    assert len(samples) == 6
    for sample in samples[:2]:
        with pytest.raises((OSError, ValueError)):
            sample.images[0].open()
    assert samples[2].images[0].open().mode == "RGB"


def test_pandas_na_cells_and_llava_option_stop(tmp_path: Path, task: MMBenchTask) -> None:
    rows = [
        question(1, ["x", "y", "NONE", "z"], "A"),  # "none" in any case stops LLaVA's list, pandas keeps it
        question(2, ["x", "y", "N/A", "z"], "A", hint="nan"),  # pandas NA: missing for everyone
        question(3, ["x", "y", "nan", ""], "B", hint="None"),
    ]
    write_tsv(tmp_path / "mmbench/mmbench_dev_20230712.tsv", rows)
    s1, s2, s3 = task.load(tmp_path)
    assert s1.metadata["llava_options"] == [("A", "x"), ("B", "y")]
    assert s1.metadata["choices"] == {"A": "x", "B": "y", "C": "NONE", "D": "z"}
    assert s2.metadata["choices"] == {"A": "x", "B": "y", "D": "z"} and s2.metadata["hint"] is None
    assert s3.metadata["choices"] == {"A": "x", "B": "y"}
    assert task.build_request(s1, LLAVA).prompt == "<image>\nQuestion 1?\nA. x\nB. y" + SUFFIX
    assert task.build_request(s3, LLAVA).prompt == "<image>\nQuestion 3?\nA. x\nB. y" + SUFFIX
    assert set(PANDAS_NA) >= {"", "NA", "N/A", "None", "nan", "NaN", "null"}


def test_pandas_na_list_matches_pandas() -> None:
    parsers = pytest.importorskip("pandas._libs.parsers")
    assert set(parsers.STR_NA_VALUES) == set(PANDAS_NA)


def test_newer_layout_image_references_and_generated_passes(tmp_path: Path, task: MMBenchTask) -> None:
    columns = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "image", "split")
    rows = [question(5, ["a", "b", "c"], "A"), question(6, ["p", "q"], "B", image="5")]
    write_tsv(tmp_path / "mmbench/MMBench_DEV_EN.tsv", rows, columns)
    samples = task.load(tmp_path)
    assert [s.id for s in samples] == ["5", "6", "1000005", "1000006", "2000005"]
    assert samples[1].images[0].data == samples[0].images[0].data and samples[1].images[0].open()
    assert samples[2].metadata["choices"] == {"A": "c", "B": "a", "C": "b"} and samples[2].target == "B"
    assert samples[4].metadata["choices"] == {"A": "b", "B": "c", "C": "a"} and samples[4].target == "C"
    assert samples[3].metadata["choices"] == {"A": "q", "B": "p"} and samples[3].target == "A"
    assert samples[0].metadata["source_file"] == "MMBench_DEV_EN.tsv"


def test_newer_layout_with_passes_is_used_as_is(tmp_path: Path, task: MMBenchTask) -> None:
    rows = [question(5, ["a", "b"], "A"), question(1000005, ["b", "a"], "B", image="5")]
    write_tsv(tmp_path / "mmbench/MMBench_DEV_EN_V11.tsv", rows)
    samples = task.load(tmp_path)
    assert [s.id for s in samples] == ["5", "1000005"]
    assert samples[1].images[0].data == samples[0].images[0].data


def test_dangling_image_reference_loads_and_fails_when_opened(tmp_path: Path, task: MMBenchTask) -> None:
    write_tsv(tmp_path / "mmbench/MMBench_DEV_EN_V11.tsv", [question(5, ["a", "b"], "A", image="77")])
    (sample,) = [s for s in task.load(tmp_path) if s.id == "5"]
    with pytest.raises((OSError, ValueError)):
        sample.images[0].open()


def test_legacy_file_has_no_image_references(tmp_path: Path, task: MMBenchTask) -> None:
    rows = [question(5, ["a", "b"], "A"), question(6, ["a", "b"], "A", image="5")]
    write_tsv(tmp_path / "mmbench/mmbench_dev_20230712.tsv", rows)
    samples = task.load(tmp_path)
    assert [s.id for s in samples] == ["5", "6"]  # no passes generated for the legacy file either
    with pytest.raises((OSError, ValueError)):
        samples[1].images[0].open()


def test_legacy_file_is_preferred(tmp_path: Path) -> None:
    write_tsv(tmp_path / "mmbench/MMBench_DEV_EN.tsv", [question(5, ["a", "b"], "A")])
    assert find_tsv(tmp_path).name == "MMBench_DEV_EN.tsv"
    legacy_root(tmp_path, BASES)
    assert find_tsv(tmp_path).name == "mmbench_dev_20230712.tsv"
    with pytest.raises(DataError, match="no MMBench dev file"):
        find_tsv(tmp_path / "empty")


# ----------------------------------------------------------------------------------------------
# prompts


def test_llava_prompt(samples: list[Sample], task: MMBenchTask) -> None:
    request = task.build_request(samples[1], LLAVA)
    assert request.prompt == "<image>\nLook closely.\nQuestion 2?\nA. red\nB. blue" + SUFFIX
    assert request.images == samples[1].images and request.generation.max_new_tokens == 1024
    assert task.build_request(samples[3], LLAVA).prompt == (
        "<image>\nQuestion 1?\nA. fish\nB. cat\nC. dog\nD. bird" + SUFFIX
    )


def test_lmms_eval_prompt(samples: list[Sample], task: MMBenchTask) -> None:
    request = task.build_request(samples[1], LMMS)
    assert request.prompt == (
        "<image>\nLook closely. Question 2? There are several options:\nA. red\nB. blue\n" + SUFFIX
    )
    assert task.build_request(samples[0], LMMS).prompt == (
        "<image>\nQuestion 1? There are several options:\nA. cat\nB. dog\nC. bird\nD. fish\n" + SUFFIX
    )
    assert request.generation.stop == ("ASSISTANT:",) and request.generation.max_new_tokens == 1024


# ----------------------------------------------------------------------------------------------
# CircularEval


def test_all_passes_right(samples: list[Sample], task: MMBenchTask) -> None:
    result = task.score(samples, gt(samples))
    assert result.metrics["circular"].value == 100.0 and result.metrics["circular"].n == 3
    assert result.metrics["vanilla"].value == 100.0
    assert result.headline == ["circular"] and result.n_parse_failures == 0 and not result.notes


def test_one_pass_with_another_letter_fails_the_group(samples: list[Sample], task: MMBenchTask) -> None:
    result = task.score(samples, gt(samples, i2000001="A"))
    assert result.metrics["circular"].value == pytest.approx(200 / 3)
    assert result.metrics["vanilla"].value == 100.0  # the base row is still right
    by_id = {s.sample_id: s for s in result.samples}
    assert by_id["1"].score == 0.0 and by_id["1000001"].score is None
    assert by_id["2000001"].parsed == "A" and by_id["2000001"].correct is False
    assert "pass 2000001 read as A" in by_id["1"].detail["group_reason"]


def test_z_and_refusals_are_wrong(samples: list[Sample], task: MMBenchTask) -> None:
    result = task.score(samples, gt(samples, i1000002="Z", i3="Cannot determine the answer"))
    assert result.metrics["circular"].value == pytest.approx(100 / 3)


def test_unmatched_pass_without_judge_is_wrong_and_reported(samples: list[Sample], task: MMBenchTask) -> None:
    result = task.score(samples, gt(samples, i1000003="I am not sure"))
    assert result.metrics["circular"].value == pytest.approx(200 / 3)
    assert result.n_parse_failures == 1
    assert any("1 questions count as wrong only because a pass matched no option" in n for n in result.notes)
    by_id = {s.sample_id: s for s in result.samples}
    assert by_id["1000003"].parse_failed and by_id["1000003"].detail["read_by"] == "unmatched"


def test_wrong_letter_decides_before_an_unmatched_pass(samples: list[Sample], task: MMBenchTask) -> None:
    judge = ScriptedJudge({})
    result = task.score(samples, gt(samples, i1="no idea", i2000001="A"), judge=judge)
    assert result.metrics["circular"].value == pytest.approx(200 / 3)
    assert judge.prompts == []  # prefetch found the wrong letter: no judge call


def test_judge_resolves_an_unmatched_pass(samples: list[Sample], task: MMBenchTask) -> None:
    judge = ScriptedJudge({"hmm, the second": ["The answer is C"]})
    result = task.score(samples, gt(samples, i1000001="hmm, the second"), LLAVA, judge)
    assert result.metrics["circular"].value == 100.0
    assert judge.settings == [(0.0, 1024)]
    assert judge.prompts[0] == load_prompt("choice_extractor_prompt.txt").format(
        question="Question 1?",
        options="There are several options: \nA. fish\nB. cat\nC. dog\nD. bird\n",
        prediction="hmm, the second",
    )
    assert judge.prompts[0].endswith(
        "Question: Question 1??\nOptions: There are several options: \nA. fish\nB. cat\nC. dog\nD. bird\n\n"
        "Answer: hmm, the second\nYour output: "
    )
    by_id = {s.sample_id: s for s in result.samples}
    assert by_id["1000001"].detail["read_by"] == "judge" and by_id["1000001"].parsed == "C"
    assert any("1 calls, 0 failed, 0 passes given a random letter" in n for n in result.notes)


def test_judge_letter_wrong_or_z_fails_the_group(samples: list[Sample], task: MMBenchTask) -> None:
    judge = ScriptedJudge({"dunno": ["B"], "maybe": ["Z"]})
    result = task.score(samples, gt(samples, i1000001="dunno", i3="maybe"), judge=judge)
    assert result.metrics["circular"].value == pytest.approx(100 / 3)


def test_judge_retries_then_random_letter_with_seed_2680(samples: list[Sample], task: MMBenchTask) -> None:
    failed = JudgeReply(text="", error="HTTP 500")

    def judge() -> ScriptedJudge:
        return ScriptedJudge({"???": ["A or B", failed, "Failed to obtain answer via API. "], "!!!": ["x", "y", "z"]})

    scripted = judge()
    answers = gt(samples, i1000001="???", i2000003="!!!")
    result = task.score(samples, answers, judge=scripted)
    assert len(scripted.prompts) == 6  # 3 tries for each pass
    rng = random.Random(2680)  # one stream, drawn group by group in index order
    first, second = rng.choice(["A", "B", "C", "D", "Z"]), rng.choice(["A", "B", "C", "Z"])
    by_id = {s.sample_id: s for s in result.samples}
    assert (by_id["1000001"].parsed, by_id["2000003"].parsed) == (first, second)
    assert by_id["1000001"].detail["read_by"] == "random"
    assert by_id["1000001"].detail["judge_replies"] == [
        "A or B",
        "error: HTTP 500",
        "error: Failed to obtain answer via API. ",
    ]
    assert any("6 calls, 2 failed, 2 passes given a random letter after 3 tries (seed 2680)" in n for n in result.notes)
    again = task.score(samples, answers, judge=judge())
    assert [s.parsed for s in again.samples] == [s.parsed for s in result.samples]


def test_missing_rows_read_as_nan(samples: list[Sample], task: MMBenchTask) -> None:
    responses = gt(samples)
    del responses["1000002"]
    result = task.score(samples, responses)
    assert result.n_missing == 1 and result.metrics["circular"].value == pytest.approx(200 / 3)
    assert xlsx_prediction(None) == "nan" and xlsx_prediction(Response(text="None")) == "nan"
    assert xlsx_prediction(Response(text="")) == "nan" and xlsx_prediction(Response(text="B")) == "B"


def test_breakdowns_and_one_stderr_value_per_group(samples: list[Sample], task: MMBenchTask) -> None:
    result = task.score(samples, gt(samples, i1000003="B"))
    assert set(result.breakdowns["l2_category"]) == {"coarse_perception", FPS}
    assert result.breakdowns["l2_category"]["coarse_perception"].value == 50.0
    assert result.breakdowns["l2_category"][FPS].value == 100.0
    assert result.breakdowns["category"]["image_scene"].n == 2
    circular = result.metrics["circular"]
    assert circular.n == 3 and circular.stderr == pytest.approx(100 * np.std([1, 1, 0], ddof=1) / np.sqrt(3))


def test_rows_without_their_base_are_not_scored(samples: list[Sample], task: MMBenchTask) -> None:
    subset = [s for s in samples if s.id != "2"]
    result = task.score(subset, gt(subset))
    assert result.metrics["circular"].n == 2 and any("belong to no base row" in n for n in result.notes)


def test_lmms_eval_matcher_differs(samples: list[Sample], task: MMBenchTask) -> None:
    answers = gt(samples, i1="**B**", i1000002="E", i3="(C)")
    official = task.score(samples, answers, LLAVA)
    lmms = task.score(samples, answers, {**LMMS, "unmatched_without_judge": "wrong"})
    assert official.metrics["circular"].value == pytest.approx(200 / 3)  # "E" is no option: unmatched, wrong
    assert lmms.metrics["circular"].value == pytest.approx(100 / 3)  # "**B**" unmatched; "E" is a wrong letter
    by_id = {s.sample_id: s for s in lmms.samples}
    assert by_id["1000002"].parsed == "E" and by_id["1"].detail["read_by"] == "unmatched"
    assert by_id["3"].parsed == "C"


def test_lmms_eval_without_a_judge_draws_the_seeded_letter(samples: list[Sample], task: MMBenchTask) -> None:
    """lmms-eval with no working judge: an unmatched pass gets its seeded random letter (A-E)."""
    answers = gt(samples, i1="**B**")
    result = task.score(samples, answers, LMMS)
    drawn = "ABCDE"[random.Random(2680).randint(0, 4)]
    by_id = {s.sample_id: s for s in result.samples}
    assert by_id["1"].parsed == drawn and by_id["1"].detail["read_by"] == "random"


def test_lmms_eval_judge_prompt_and_fallback(samples: list[Sample], task: MMBenchTask) -> None:
    """An empty reply is asked again within a try (lmms-eval's patience 5), three tries, then the seeded
    random letter."""
    judge = ScriptedJudge({"?": [""] * 15})
    result = task.score(samples, gt(samples, i2="?"), LMMS, judge)
    assert judge.settings == [(0.0, 256)] * 15
    assert "output E." in judge.prompts[0] and "Question: Question 2??\n" in judge.prompts[0]
    expected = "ABCDE"[random.Random(2680).randint(0, 4)]
    assert {s.sample_id: s.parsed for s in result.samples}["2"] == expected


def test_lmms_eval_empty_replies_do_not_use_up_a_try(samples: list[Sample], task: MMBenchTask) -> None:
    judge = ScriptedJudge({"?": ["", "", "  ", "B"]})
    result = task.score(samples, gt(samples, i2="?"), LMMS, judge)
    assert len(judge.prompts) == 4 and {s.sample_id: s.parsed for s in result.samples}["2"] == "B"
    official = ScriptedJudge({"?": ["", "", "", "B"]})  # VLMEvalKit: each empty reply is a try
    result = task.score(samples, gt(samples, i2="?"), LLAVA, official)
    assert len(official.prompts) == 3 and {s.sample_id: s.parsed for s in result.samples}["2"] != "B"


def test_prompt_templates_are_unchanged() -> None:
    digests = {
        "choice_extractor_prompt.txt": "bb51e2c5223f889a7d18ca97fdc2b4cfb326ea2bc72f524a1fdde27ce9563f66",
        "lmms_eval_choice_extractor_prompt.txt": "89cab8a0b30ed65d3e53429cde7893de20d7faac6332513dd1752bc1138c0171",
    }
    for name, digest in digests.items():
        assert hashlib.sha256(load_prompt(name).encode()).hexdigest() == digest


def test_scripted_judge_is_a_judge() -> None:
    assert isinstance(ScriptedJudge({}), Judge)


# ----------------------------------------------------------------------------------------------
# answers files, subset, export


def test_match_answers_ints_or_text_later_wins(samples: list[Sample], task: MMBenchTask) -> None:
    records = [
        {"question_id": 1, "text": "A"},
        {"question_id": "1000001", "text": "C"},
        {"question_id": 1, "text": "B"},
        {"question_id": 42, "text": "A"},
        {"question_id": "x", "text": "A"},
    ]
    assert task.match_answers(samples, records) == {"1": "B", "1000001": "C"}


def test_subset_keeps_whole_groups(samples: list[Sample], task: MMBenchTask) -> None:
    groups: dict[int, set[str]] = {}
    for s in samples:
        groups.setdefault(s.metadata["group"], set()).add(s.id)
    for limit in range(1, len(groups) + 2):
        chosen = task.subset(samples, limit)
        picked = {s.metadata["group"] for s in chosen}
        assert len(picked) == min(limit, len(groups))  # --limit counts questions
        assert {s.id for s in chosen} == set().union(*(groups[g] for g in picked))  # with every pass
        assert [s.id for s in chosen] == [s.id for s in samples if s in chosen]
        assert {s.id for s in task.subset(samples[::-1], limit)} == {s.id for s in chosen}
    assert task.subset(samples, 0) == []


def test_export_round_trip(tmp_path: Path, samples: list[Sample], task: MMBenchTask) -> None:
    answers = gt(samples)
    del answers["3"]
    answers["2"] = Response(text="B\x07 (bell removed)")
    written = task.export(samples, answers, tmp_path, tmp_path / "out" / task.export_filename)
    assert written.name == "mmbench_dev_submission.xlsx"
    table = read_submission(written)
    assert table[0] == ["index", "question", "A", "B", "C", "D", "prediction", "answer", "split"]
    assert len(table) == 10
    rows = {row[0]: row for row in table[1:]}
    assert rows[1] == [1, "Question 1?", "cat", "dog", "bird", "fish", "B", "B", "dev"]
    assert rows[2] == [2, "Question 2?", "red", "blue", None, None, "B (bell removed)", "A", "dev"]
    assert rows[3][6] is None
    assert [row[0] for row in table[1:]] == [int(s.id) for s in samples]


def test_submission_columns_for_a_test_file() -> None:
    header = ["index", "question", "hint", "A", "B", "C", "D", "category", "image", "source", "l2-category", "split"]
    assert submission_columns(header) == ["index", "question", "A", "B", "C", "D", "prediction", "split"]


def test_data_files_settings_and_hf_dataset(task: MMBenchTask) -> None:
    assert [(f.path, f.needed_for) for f in task.data_files()] == [("mmbench/mmbench_dev_20230712.tsv", "score")]
    assert task.hf_dataset == "lmms-lab/MMBench_EN"
    assert LLAVA["scorer"] == "vlmevalkit" and LMMS["scorer"] == "lmms-eval"
    for settings in (LLAVA, LMMS):
        assert {"prompt", "scorer", "max_new_tokens", "judge_max_tokens"} <= set(settings)


# ----------------------------------------------------------------------------------------------
# demo data

SEED = 9


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mmb-demo")
    mmb_demo.write_demo(root, SEED)
    return root


def test_demo_legacy_layout_and_circular_copies(demo_root: Path) -> None:
    table = read_table(demo_root / "mmbench/mmbench_dev_20230712.tsv")
    assert table.header == list(LEGACY)
    bases = {r.index: r for r in table.rows if r.index < 1_000_000}
    assert len(bases) == mmb_demo.N_QUESTIONS
    rounds = [r.index // 1_000_000 for r in table.rows]
    assert rounds == sorted(rounds)  # every base row first, then first copies...
    for row in table.rows:
        base = bases[row.index % 1_000_000]
        options, k = list(base.choices().values()), row.index // 1_000_000
        n = len(options)
        assert 2 <= n <= 4 and k < n
        assert list(row.choices().values()) == [options[(i - k) % n] for i in range(n)]
        assert row.get("answer") == "ABCD"[("ABCD".index(base.get("answer")) + k) % n]
        assert row.get("image") == base.get("image") and row.get("split") == "dev"
    assert len({r.get("l2-category") for r in bases.values()}) == 6
    assert len({r.get("category") for r in bases.values()}) >= 9
    assert any(r.get("hint") for r in bases.values()) and any(r.get("hint") is None for r in bases.values())


def test_demo_images_show_their_scene(demo_root: Path) -> None:
    samples = {s.id: s for s in MMBenchTask().load(demo_root)}
    for item in mmb_demo.plan(SEED):
        assert make_scene(SEED, "eval", item.scene_index) == item.scene
        decoded = np.asarray(samples[str(item.index)].images[0].open())
        assert np.array_equal(decoded, np.asarray(render(item.scene)))


def _demo_truth(scene: Scene, text: str) -> str:
    """Recompute a demo answer from the scene, by the question's wording."""
    rules = [
        (r"What is the background color of this image\?", lambda: scene.background),
        (r"What color is the (\w+)\?", lambda k: scene.the(kind=k).color),
        (r"Which word is written at the bottom of the image\?", lambda: scene.word),
        (r"Where is the (\w+) in the image\?", lambda k: scene.the(kind=k).position),
        (r"Is the (\w+) on the left or on the right of the (\w+)\?",
         lambda a, b: "left" if scene.left_of(scene.the(kind=a), scene.the(kind=b)) else "right"),
        (r"Do the (\w+) and the (\w+) have the same color\?",
         lambda a, b: "yes" if scene.the(kind=a).color == scene.the(kind=b).color else "no"),
        (r"How many shapes are in the image\?", lambda: NUMBER_WORDS[len(scene.shapes)]),
        (r"The word in the image is English\. Which French word means the same\?", lambda: WORDS[scene.word]),
        (r"What is directly below the (\w+)\?",
         lambda k: f"a {b.kind}" if (b := scene.at(scene.the(kind=k).col, 1)) else "nothing"),
    ]  # fmt: skip
    for pattern, rule in rules:
        match = re.fullmatch(pattern, text)
        if match:
            return rule(*match.groups())
    raise AssertionError(text)


def test_demo_answers_follow_from_the_scene() -> None:
    for item in mmb_demo.plan(SEED):
        q = item.question
        assert _demo_truth(item.scene, q.text) == q.options[q.answer], item
        assert len(set(q.options)) == len(q.options)


def test_demo_round_trip_scores_100(demo_root: Path) -> None:
    task = MMBenchTask()
    samples = task.load(demo_root)
    right = {s.id: Response(text=str(s.target)) for s in samples}
    for settings in (LLAVA, LMMS):
        result = task.score(samples, right, settings)
        assert result.metrics["circular"].value == 100.0 and result.metrics["circular"].n == mmb_demo.N_QUESTIONS
    always_a = {s.id: Response(text="A") for s in samples}
    assert task.score(samples, always_a).metrics["circular"].value == 0.0
    assert task.score(samples, always_a).metrics["vanilla"].value > 0.0


def test_demo_is_deterministic_and_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    mmb_demo.write_demo(tmp_path / "a", 3)
    assert time.perf_counter() - start < 1.0
    mmb_demo.write_demo(tmp_path / "b", 3)
    mmb_demo.write_demo(tmp_path / "c", 4)
    tsv = "mmbench/mmbench_dev_20230712.tsv"
    assert (tmp_path / "a" / tsv).read_bytes() == (tmp_path / "b" / tsv).read_bytes()
    assert (tmp_path / "a" / tsv).read_bytes() != (tmp_path / "c" / tsv).read_bytes()
