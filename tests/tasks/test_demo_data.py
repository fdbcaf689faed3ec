"""Demo data: the scene generator, and the GQA / MME writers' official layouts, schemas and answers."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.types import Response
from tasks.demo import COLORS, KINDS, NUMBER_WORDS, WORDS, Scene, Shape, make_scene, render, split_of
from tasks.gqa import demo as gqa_demo
from tasks.mme import demo as mme_demo

SEED = 7
LLAVA_SUFFIX = "\nAnswer the question using a single word or phrase."
GQA_QUESTIONS = "gqa/data/testdev_balanced_questions.json"
GQA_JSONL = "gqa/llava_gqa_testdev_balanced.jsonl"
MME_RELEASE = "MME/MME_Benchmark_release_version"
MME_RESULTS = "MME/eval_tool/Your_Results"
MME_JSONL = "MME/llava_mme.jsonl"
YES_NO = re.compile(r" {1,2}Please answer yes or no\.$")


def _write_all(root: Path, seed: int) -> Path:
    gqa_demo.write_demo(root, seed)
    mme_demo.write_demo(root, seed)
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_all(tmp_path_factory.mktemp("demo"), SEED)


def _gqa_questions(root: Path) -> dict[str, dict]:
    return json.loads((root / GQA_QUESTIONS).read_text(encoding="utf-8"))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ----------------------------------------------------------------------------------------------
# scene generator


def test_scene_is_a_function_of_seed_split_index() -> None:
    assert make_scene(3, "eval", 5) == make_scene(3, "eval", 5)
    assert render(make_scene(3, "eval", 5)).tobytes() == render(make_scene(3, "eval", 5)).tobytes()
    assert len({make_scene(3, "eval", i) for i in range(20)}) == 20
    assert [make_scene(3, "eval", i) for i in range(20)] != [make_scene(4, "eval", i) for i in range(20)]


def test_train_and_eval_splits_never_share_a_layout() -> None:
    evals = [make_scene(0, "eval", i) for i in range(300)]
    trains = [make_scene(0, "train", i) for i in range(1500)]
    assert all(split_of(s) == "eval" for s in evals)
    assert all(split_of(s) == "train" for s in trains)
    assert not {s.layout_key() for s in evals} & {s.layout_key() for s in trains}
    with pytest.raises(ValueError):
        make_scene(0, "test", 0)


def test_scene_contents_stay_in_range() -> None:
    counts = set()
    for i in range(200):
        scene = make_scene(1, "train", i)
        counts.add(len(scene.shapes))
        assert len({(s.col, s.row) for s in scene.shapes}) == len(scene.shapes)
        assert all(s.kind in KINDS and s.color in COLORS for s in scene.shapes)
        assert scene.word is None or (scene.word in WORDS and 3 <= len(scene.word) <= 5)
    assert counts == {1, 2, 3, 4}  # one to four shapes, and every count occurs


def test_facts_api() -> None:
    red_circle = Shape("circle", "red", 0, 0, 0.8)
    blue_circle = Shape("circle", "blue", 1, 1, 0.8)
    square = Shape("square", "red", 1, 0, 0.7)
    scene = Scene("white", (red_circle, square, blue_circle), "cat")
    assert scene.count() == 3 and scene.count(kind="circle") == 2 and scene.count(color="red") == 2
    assert scene.has("square", "red") and not scene.has("square", "blue") and not scene.has("triangle")
    assert scene.the(kind="square") is square and scene.the(kind="circle") is None
    assert scene.the(color="blue") is blue_circle
    assert scene.kinds() == ["circle", "square"] and scene.colors() == ["red", "blue"]
    assert scene.colors_of("circle") == ["red", "blue"]
    assert scene.unique_kinds() == ["square"] and scene.unique_colors() == ["blue"]
    assert scene.at(1, 0) is square and scene.at(0, 1) is None
    assert scene.left_of(red_circle, square) and not scene.left_of(square, blue_circle)
    assert red_circle.position == "top left" and blue_circle.side == "right" and blue_circle.level == "bottom"


def _ink_in_band(img: Image.Image) -> int:
    band = np.asarray(img)[-24:]
    return int((band.max(axis=2) < 60).sum())


@pytest.mark.parametrize("index", range(12))
def test_render_shows_the_scene(index: int) -> None:
    scene = make_scene(0, "eval", index)
    img = render(scene, 96)
    assert img.size == (96, 96) and img.mode == "RGB"
    pixels = np.asarray(img)
    band = 26 if scene.word else 0
    for shape in scene.shapes:
        x = int((shape.col + 0.5) * 48)
        y = int((shape.row + 0.5) * (96 - band) / 2)
        assert tuple(pixels[y, x]) == COLORS[shape.color], shape
    assert (_ink_in_band(img) > 20) == bool(scene.word)


def test_render_size_is_a_parameter() -> None:
    assert render(make_scene(0, "eval", 0), 160).size == (160, 160)


# ----------------------------------------------------------------------------------------------
# GQA


def _gqa_truth(scene: Scene, question: str) -> str:
    """Recompute a GQA demo answer from the scene facts, by the question's wording."""
    rules: list[tuple[str, Callable[..., object]]] = [
        (r"What color is the (\w+)\?", lambda k: scene.the(kind=k).color),
        (r"Which shape is (\w+)\?", lambda c: scene.the(color=c).kind),
        (r"On which side is the (\w+)\?", lambda k: scene.the(kind=k).side),
        (r"Is the (\w+) on the left or on the right\?", lambda k: scene.the(kind=k).side),
        (r"What word is written in the image\?", lambda: scene.word),
        (r"Is the (\w+) (\w+) or (\w+)\?", lambda k, a, b: scene.the(kind=k).color),
        (r"Is there both a (\w+) and a (\w+)\?", lambda a, b: scene.has(a) and scene.has(b)),
        (r"Is there a (\w+) or a (\w+)\?", lambda a, b: scene.has(a) or scene.has(b)),
        (r"Is there an? (\w+) (\w+)\?", lambda c, k: scene.has(k, c)),
        (r"Is the (\w+) to the left of the (\w+)\?", lambda a, b: scene.left_of(scene.the(kind=a), scene.the(kind=b))),
        (
            r"Are the (\w+) and the (\w+) the same color\?",
            lambda a, b: scene.the(kind=a).color == scene.the(kind=b).color,
        ),
        (
            r"Do the (\w+) and the (\w+) have different colors\?",
            lambda a, b: scene.the(kind=a).color != scene.the(kind=b).color,
        ),
        (r"Is the (\w+) (\w+)\?", lambda k, c: scene.the(kind=k).color == c),
    ]
    for pattern, rule in rules:
        match = re.fullmatch(pattern, question)
        if match:
            value = rule(*match.groups())
            return ("yes" if value else "no") if isinstance(value, bool) else str(value)
    raise AssertionError(f"no rule for {question!r}")


def test_gqa_questions_file_has_every_official_field(root: Path) -> None:
    questions = _gqa_questions(root)
    assert len(questions) == gqa_demo.N_IMAGES * gqa_demo.QUESTIONS_PER_IMAGE
    fields = {
        "question",
        "imageId",
        "answer",
        "fullAnswer",
        "isBalanced",
        "types",
        "semantic",
        "semanticStr",
        "groups",
        "entailed",
        "equivalent",
        "annotations",
    }
    for qid, q in questions.items():
        assert qid.isdigit() and set(q) == fields
        assert q["isBalanced"] is True and q["answer"] == q["answer"].lower() and q["answer"]
        assert q["fullAnswer"].endswith(".") and q["question"].endswith("?")
        assert set(q["types"]) == {"structural", "semantic", "detailed"}
        assert q["types"]["structural"] in {"verify", "query", "choose", "logical", "compare"}
        assert q["types"]["semantic"] in {"obj", "attr", "cat", "rel", "global"}
        assert set(q["groups"]) == {"global", "local"} and isinstance(q["groups"]["local"], str)
        assert (q["groups"]["global"] is None) == (q["answer"] in ("yes", "no"))
        assert q["entailed"] == [] and q["equivalent"] == [qid]
        assert q["annotations"] == {"question": {}, "answer": {}, "fullAnswer": {}}
        assert q["semantic"] and all(set(s) == {"operation", "dependencies", "argument"} for s in q["semantic"])
        for i, step in enumerate(q["semantic"]):
            assert all(isinstance(d, int) and 0 <= d < i for d in step["dependencies"])
        assert q["semanticStr"] == gqa_demo.semantic_str(
            [(s["operation"], s["dependencies"], s["argument"]) for s in q["semantic"]]
        )


def test_gqa_mix_of_types_and_balanced_yes_no(root: Path) -> None:
    questions = _gqa_questions(root).values()
    structural = Counter(q["types"]["structural"] for q in questions)
    assert set(structural) == {"verify", "query", "choose", "logical", "compare"}
    answers = Counter(q["answer"] for q in questions)
    assert answers["yes"] > 10 and abs(answers["yes"] - answers["no"]) <= 1
    assert Counter(q["imageId"] for q in questions) == {f"demo{i}": 3 for i in range(gqa_demo.N_IMAGES)}


def test_gqa_llava_question_file_matches_official_file_and_images(root: Path) -> None:
    questions = _gqa_questions(root)
    lines = _jsonl(root / GQA_JSONL)
    assert [line["question_id"] for line in lines] == list(questions)
    for line in lines:
        q = questions[line["question_id"]]
        assert line == {
            "question_id": line["question_id"],
            "image": f"{q['imageId']}.jpg",
            "text": q["question"] + LLAVA_SUFFIX,
            "category": "default",
        }
        with Image.open(root / "gqa/data/images" / line["image"]) as img:
            assert img.format == "JPEG" and img.size == (96, 96)


def test_gqa_answers_follow_from_the_scene(root: Path) -> None:
    for q in _gqa_questions(root).values():
        scene = make_scene(SEED, "eval", int(q["imageId"].removeprefix("demo")))
        assert _gqa_truth(scene, q["question"]) == q["answer"], q


def test_gqa_images_show_their_scene(root: Path) -> None:
    for i in range(0, gqa_demo.N_IMAGES, 7):
        expected = np.asarray(render(make_scene(SEED, "eval", i)), dtype=float)
        written = np.asarray(Image.open(root / f"gqa/data/images/demo{i}.jpg").convert("RGB"), dtype=float)
        assert np.abs(expected - written).mean() < 4


# ----------------------------------------------------------------------------------------------
# MME


def _mme_truth(subtask: str, scene: Scene, question: str) -> bool:
    """Recompute whether an MME demo question is true of the scene, by the subtask's wording."""
    rules: dict[str, tuple[str, Callable[..., bool]]] = {
        "existence": (r"Is there an? (\w+) (\w+) in this image\?", lambda c, k: scene.has(k, c)),
        "count": (
            r"(?:Is there|Are there) (\w+) shapes? in this image\?",
            lambda n: NUMBER_WORDS.index(n) == len(scene.shapes),
        ),
        "position": (
            r"Is the (\w+) on the left of the (\w+)\?",
            lambda a, b: scene.left_of(scene.the(kind=a), scene.the(kind=b)),
        ),
        "color": (r"Is the (\w+) (\w+)\?", lambda k, c: scene.the(kind=k).color == c),
        "posters": (r"Is this poster titled '(\w+)'\?", lambda w: scene.word == w),
        "celebrity": (
            r"Is the shape in the (top|bottom) (left|right) corner a (\w+)\?",
            lambda v, h, k: scene.at(h == "right", v == "bottom").kind == k,
        ),
        "scene": (r"Is this picture drawn on a (\w+) background\?", lambda b: scene.background == b),
        "landmark": (r"Is the (\w+) shape a (\w+)\?", lambda c, k: scene.the(color=c).kind == k),
        "artwork": (r"Does this artwork contain a (\w+)\?", lambda k: scene.has(k)),
        "OCR": (r"Is the word in the image '(\w+)'\?", lambda w: scene.word == w),
        "commonsense_reasoning": (
            r"Is the (\w+) the same color as (.+)\?",
            lambda k, t: mme_demo.COLOR_THINGS[scene.the(kind=k).color] == t,
        ),
        "numerical_calculation": (
            r"Is the number of (\w+)s plus the number of (\w+)s equal to (\d+)\?",
            lambda a, b, n: scene.count(a) + scene.count(b) == int(n),
        ),
        "text_translation": (
            r"Is it appropriate to translate the word in the image into French '(\w+)'\?",
            lambda f: WORDS[scene.word] == f,
        ),
        "code_reasoning": (
            r"The word in the image is stored in w\. Is the output of the python code "
            r"print\(len\(w\)\) '(\d+)'\?",
            lambda n: len(scene.word) == int(n),
        ),
    }
    pattern, rule = rules[subtask]
    match = re.fullmatch(pattern, YES_NO.sub("", question))
    assert match, (subtask, question)
    return bool(rule(*match.groups()))


def test_mme_release_layout_and_question_files(root: Path) -> None:
    for subtask in mme_demo.SUBTASKS:
        folder = root / MME_RELEASE / subtask
        ext = "png" if subtask in mme_demo.COGNITION else "jpg"
        nested = subtask in {"artwork", "celebrity", "landmark", "posters", "scene"}
        images = sorted(p.name for p in (folder / "images" if nested else folder).glob(f"*.{ext}"))
        assert images == [f"{i:04d}.{ext}" for i in range(1, mme_demo.IMAGES_PER_SUBTASK + 1)], subtask
        assert {p.name for p in folder.iterdir()} == (
            {"images", "questions_answers_YN"} if nested else set(images) | {f"{i[:4]}.txt" for i in images}
        )
        for name in images:
            txt = folder / ("questions_answers_YN" if nested else "") / f"{name[:4]}.txt"
            lines = txt.read_text(encoding="utf-8").splitlines()
            assert [line.split("\t")[1] for line in lines] == ["Yes", "No"]
            assert all(YES_NO.search(line.split("\t")[0]) for line in lines)


def test_mme_eval_tool_ground_truth_matches_release(root: Path) -> None:
    assert sorted(p.stem for p in (root / MME_RESULTS).iterdir()) == sorted(mme_demo.SUBTASKS)
    for image in mme_demo.plan(SEED):
        folder = root / MME_RELEASE / image.subtask
        release = [line.split("\t") for line in (folder / image.txt_rel).read_text(encoding="utf-8").splitlines()]
        assert release == [[image.yes_question, "Yes"], [image.no_question, "No"]]
    for subtask in mme_demo.SUBTASKS:
        rows = [line.split("\t") for line in (root / MME_RESULTS / f"{subtask}.txt").read_text().splitlines()]
        assert len(rows) == 2 * mme_demo.IMAGES_PER_SUBTASK and all(len(r) == 3 for r in rows)
        for first, second in zip(rows[::2], rows[1::2]):
            assert first[0] == second[0] and (first[2], second[2]) == ("Yes", "No")
            folder = root / MME_RELEASE / subtask
            txt = next(folder.rglob(f"{first[0].split('.')[0]}.txt"))
            assert [r[1:] for r in (first, second)] == [line.split("\t") for line in txt.read_text().splitlines()]


def test_mme_llava_question_file(root: Path) -> None:
    lines = _jsonl(root / MME_JSONL)
    assert len(lines) == 2 * len(mme_demo.SUBTASKS) * mme_demo.IMAGES_PER_SUBTASK == 56
    gt = {}
    for subtask in mme_demo.SUBTASKS:
        for row in (root / MME_RESULTS / f"{subtask}.txt").read_text().splitlines():
            name, question, answer = row.split("\t")
            gt[(subtask, name, YES_NO.sub("", question))] = answer
    answers = Counter()
    for line in lines:
        subtask = line["category"]
        assert set(line) == {"question_id", "image", "text", "category"} and line["question_id"] == line["image"]
        assert line["image"].startswith(f"{subtask}/") and (root / MME_RELEASE / line["image"]).is_file()
        assert line["text"].endswith("?" + LLAVA_SUFFIX) and "Please answer" not in line["text"]
        key = (subtask, line["image"].rsplit("/", 1)[1], line["text"].removesuffix(LLAVA_SUFFIX))
        answers[(line["image"], gt[key])] += 1
    assert set(answers.values()) == {1} and len(answers) == 56


def test_mme_two_space_quirk_in_one_color_question(root: Path) -> None:
    results = (root / MME_RESULTS).glob("*.txt")
    odd = [line for p in results for line in p.read_text().splitlines() if "?  Please answer yes or no." in line]
    assert len(odd) == 1 and odd[0].startswith("0001.jpg\t")
    question = odd[0].split("\t")[1]
    assert question in (root / MME_RELEASE / "color/0001.txt").read_text()
    texts = [line["text"] for line in _jsonl(root / MME_JSONL) if line["image"] == "color/0001.jpg"]
    assert question.replace("  Please answer yes or no.", LLAVA_SUFFIX) in texts


def test_mme_answers_follow_from_the_scene() -> None:
    plan = mme_demo.plan(SEED)
    assert Counter(image.subtask for image in plan) == dict.fromkeys(mme_demo.SUBTASKS, 2)
    for image in plan:
        assert make_scene(SEED, "eval", image.scene_index) == image.scene
        assert _mme_truth(image.subtask, image.scene, image.yes_question) is True, image
        assert _mme_truth(image.subtask, image.scene, image.no_question) is False, image


def test_mme_images_show_their_scene(root: Path) -> None:
    for image in mme_demo.plan(SEED):
        written = np.asarray(Image.open(root / MME_RELEASE / image.subtask / image.image_rel).convert("RGB"))
        expected = np.asarray(render(image.scene))
        if image.name.endswith(".png"):
            assert np.array_equal(written, expected)
        else:
            assert np.abs(written.astype(float) - expected).mean() < 4


# ----------------------------------------------------------------------------------------------
# determinism and speed


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    first = _tree(_write_all(tmp_path / "a", 11))
    assert first == _tree(_write_all(tmp_path / "b", 11))
    other = _tree(_write_all(tmp_path / "c", 12))
    assert first.keys() == other.keys()
    changed = [path for path in first if first[path] != other[path]]
    assert GQA_QUESTIONS in changed and MME_JSONL in changed
    assert sum(path.endswith((".jpg", ".png")) for path in changed) > 50


def test_writers_take_under_two_seconds(tmp_path: Path) -> None:
    start = time.perf_counter()
    _write_all(tmp_path, 0)
    assert time.perf_counter() - start < 2.0


# ----------------------------------------------------------------------------------------------
# the real loaders and scorers read the demo root


def test_gqa_task_scores_ground_truth_at_100_percent(root: Path) -> None:
    from tasks.gqa import GQATask

    task = GQATask()
    samples = task.load(root)
    assert len(samples) == 120 and all(Path(s.images[0].path).is_file() for s in samples)
    result = task.score(samples, {s.id: Response(text=s.target) for s in samples})
    assert result.metrics["accuracy"].value == pytest.approx(100.0)
    wrong = task.score(samples, {s.id: Response(text="no") for s in samples})
    assert wrong.metrics["accuracy"].value < 40


def test_mme_task_scores_ground_truth_at_full_marks(root: Path) -> None:
    from tasks.mme import MMETask

    task = MMETask()
    samples = task.load(root)
    assert len(samples) == 56 and all(Path(s.images[0].path).is_file() for s in samples)
    result = task.score(samples, {s.id: Response(text=s.target) for s in samples})
    assert result.metrics["perception"].value == pytest.approx(200 * 10)
    assert result.metrics["cognition"].value == pytest.approx(200 * 4)
    flipped = {s.id: Response(text="No" if s.target == "Yes" else "Yes") for s in samples}
    assert task.score(samples, flipped).metrics["perception"].value == pytest.approx(0)
