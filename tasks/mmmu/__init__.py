"""MMMU validation, as TinyLLaVA Factory evaluates it: its prompt file + MMMU's own evaluation code.

Data (under the data root, TinyLLaVA Factory's ``eval/MMMU`` layout; ``harness data prepare mmmu`` writes
it from the lmms-lab/MMMU or MMMU/MMMU parquet copy):

- ``mmmu/anns_for_eval.json``: the question file, a list in the dataset's order of ``{id,
  question_type, prompt, image?, all_choices, index2ans, question, options, answer, images, subfield,
  topic_difficulty, img_type}``. ``id``, ``question_type``, ``prompt``, ``image``, ``all_choices`` and
  ``index2ans`` are the fields TinyLLaVA's ``model_vqa_mmmu.py`` reads (its own file comes in a
  Drive archive, MMMU.zip); the rest keep the dataset's fields (``options`` as a list, ``answer`` the
  dataset's string, ``images`` the image file of each ``image_N`` column present) for lmms-eval's
  prompt and scorer. ``prompt`` is MMMU's ``construct_prompt`` with its ``configs/llava1.5.yaml``: the
  question, a newline, one ``(A) option`` line per option (multiple choice), a newline and the
  instruction; the ``<image N>`` marks stay in the text. ``image`` is ``image_1`` unless the options
  hold more than one image (``process_single_sample``); without one TinyLLaVA does not ask the model.
- ``mmmu/answer_dict_val.json``: MMMU's ground truth, ``{id: {question_type, ground_truth}}`` (the
  file of the MMMU repository; a list of answers where the dataset gives several).
- ``mmmu/all_images/<id>_image_<N>.<ext>``: the images (only to run a model).

Protocols (the [tasks.mmmu] tables of ``harness/protocols/*.toml``): ``llava15`` is TinyLLaVA's
``model_vqa_mmmu.py`` (``<image>\\n`` + prompt, image_1 only, 1024 new tokens) scored by MMMU's
``main_parse_and_eval.py`` semantics (``scorer.py``); ``lmms-eval`` is ``mmmu_val`` (its prompt, every
image the text marks, 128 new tokens, its parser). Where TinyLLaVA gives no image (several images in the
options) it answers with a random letter or "INVALID GENERATION FOR MULTIPLE IMAGE INPUTS" without the
model; here the model is asked without an image.

Answers files (``harness score``): TinyLLaVA's answers JSONL (``question_id``, ``text``: the parsed letter
for multiple choice, the raw answer for open questions; a parsed letter parses to itself), a samples
log, MMMU's prediction JSON ``{id: prediction}`` (``main_eval_only.py``: multiple-choice predictions
compared as they are), or MMMU's output folder ``<Subject>/output.json`` (``main_parse_and_eval.py``;
needs no data root). See ``outputs.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import read_json
from harness.errors import DataError, UsageError
from harness.judging.contract import Judge
from harness.stats.bootstrap import Estimands
from harness.task import Settings
from harness.types import DataFile, ImageRef, Request, Sample, TaskResult
from tasks.common.base import LlavaTask, header_scorer
from tasks.common.files import image_folder
from tasks.mmmu import outputs, scorer
from tasks.mmmu.scorer import estimands, score_mmmu
from tasks.mmmu.subjects import DISCIPLINE_OF, SUBJECTS, subject_of

ANNS = "mmmu/anns_for_eval.json"
ANSWER_DICT = "mmmu/answer_dict_val.json"
IMAGES_DIR = "mmmu/all_images"
MMMU_REPO = "https://github.com/MMMU-Benchmark/MMMU (mmmu/answer_dict_val.json)"
HUB_COPY = "harness data prepare mmmu (from lmms-lab/MMMU or MMMU/MMMU, validation split)"
IMAGE_MARK = re.compile(r"<image (\d+)>")
ENTRY_FIELDS = ("id", "question_type", "prompt")


def _gold(answers: Any, sid: str, where: str) -> tuple[str, Any]:
    """(question_type, ground_truth) of one id in answer_dict_val.json."""
    entry = answers.get(sid) if isinstance(answers, Mapping) else None
    if not isinstance(entry, Mapping) or "ground_truth" not in entry:
        raise DataError(f"{where}: no ground truth for {sid}")
    gold = entry["ground_truth"]
    if not isinstance(gold, str) and not (isinstance(gold, list) and all(isinstance(g, str) for g in gold)):
        raise DataError(f"{where}: ground truth of {sid} is neither a string nor a list of strings")
    return str(entry.get("question_type", "")), gold


def _raw_answer(value: Any, gold: Any) -> str:
    """The dataset's answer string (lmms-eval's gold): the entry's ``answer``, else the ground truth as text."""
    if isinstance(value, str):
        return value
    return gold if isinstance(gold, str) else str(gold)


def _sample(root: Path, entry: Any, number: int, answers: Any) -> Sample:
    where = f"{root / ANNS}: entry {number}"
    if not isinstance(entry, Mapping):
        raise DataError(f"{where}: not a JSON object")
    for key in ENTRY_FIELDS:
        if not isinstance(entry.get(key), str):
            raise DataError(f"{where}: missing or non-text field '{key}'")
    sid, qtype = entry["id"], entry["question_type"]
    subject = subject_of(sid)
    if subject not in SUBJECTS:
        raise DataError(f"{where}: id {sid} names no MMMU subject")
    _, gold = _gold(answers, sid, str(root / ANSWER_DICT))
    choices, index2ans = entry.get("all_choices") or [], entry.get("index2ans") or {}
    well_formed = isinstance(choices, list) and bool(choices) and isinstance(index2ans, Mapping)
    if qtype == "multiple-choice" and not well_formed:
        raise DataError(f"{where}: a multiple-choice question needs 'all_choices' and 'index2ans'")
    images = entry.get("images") or {}
    if not isinstance(images, Mapping):
        raise DataError(f"{where}: 'images' is not an object of image files")
    files = {str(k): str(v) for k, v in sorted(images.items(), key=lambda kv: str(kv[0]))}
    llava_image = entry.get("image")
    if llava_image is not None and not isinstance(llava_image, str):
        raise DataError(f"{where}: 'image' is not a file name")
    refs = tuple(ImageRef(path=str(root / IMAGES_DIR / f), root=str(root)) for f in files.values())
    return Sample(
        id=sid,
        question=entry["prompt"],
        images=refs,
        target=gold,
        metadata={
            "subject": subject,
            "discipline": DISCIPLINE_OF[subject],
            "question_type": qtype,
            "all_choices": [str(c) for c in choices],
            "index2ans": {str(k): str(v) for k, v in index2ans.items()},
            "raw_question": str(entry.get("question", "")),
            "options": [str(o) for o in entry.get("options") or []],
            "raw_answer": _raw_answer(entry.get("answer"), gold),
            "image_files": files,
            "llava_image": llava_image,
        },
    )


def lmms_eval_text(sample: Sample, mc_prompt: str, open_prompt: str) -> str:
    """lmms-eval's ``construct_prompt``: question, ``A. option`` lines and the instruction (open: question and
    instruction); the ``<image N>`` marks stay in the text."""
    meta = sample.metadata
    if meta["question_type"] == "multiple-choice":
        options = "\n".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(meta["options"]))
        return f"{meta['raw_question']}\n{options}\n\n{mc_prompt}"
    return f"{meta['raw_question']}\n\n{open_prompt}"


def lmms_eval_images(sample: Sample) -> tuple[ImageRef, ...]:
    """``mmmu_doc_to_visual``: the images the prompt marks (question and options), each once, by name."""
    meta = sample.metadata
    text = lmms_eval_text(sample, "", "")
    names = sorted({f"image_{n}" for n in IMAGE_MARK.findall(text)})
    files: dict[str, str] = meta["image_files"]
    by_file = {Path(ref.path).name: ref for ref in sample.images}
    return tuple(by_file[files[name]] for name in names if name in files and files[name] in by_file)


def llava_images(sample: Sample) -> tuple[ImageRef, ...]:
    """The one image TinyLLaVA gives the model (the question file's ``image``), or none."""
    name = sample.metadata.get("llava_image")
    return tuple(ref for ref in sample.images if Path(ref.path).name == name)[:1] if name else ()


class MMMUTask(LlavaTask):
    name = "mmmu"
    description = "MMMU validation: college-level multi-discipline questions; accuracy (MMMU's evaluation code)."
    headline = ("accuracy",)
    changelog: ClassVar[dict[str, str]] = {
        "1": "initial: TinyLLaVA Factory's prompt file + MMMU's parse_and_eval (seeded random fallback)"
    }
    scorers: ClassVar[dict[str, str]] = {"official": "score_official", "lmms-eval": "score_lmms_eval"}
    hf_dataset = "lmms-lab/MMMU"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"detail": ("discipline", "subject")}

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(path=ANNS, description="question file (prompts, options, image files)", source=HUB_COPY),
            DataFile(path=ANSWER_DICT, description="MMMU's validation ground truth", source=MMMU_REPO),
            image_folder(IMAGES_DIR, "MMMU validation images (<id>_image_<N>.<ext>)", HUB_COPY),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        entries = read_json(root / ANNS)
        if not isinstance(entries, list):
            raise DataError(f"{root / ANNS}: expected a JSON list of questions")
        answers = read_json(root / ANSWER_DICT)
        if not isinstance(answers, dict):
            raise DataError(f"{root / ANSWER_DICT}: expected a JSON object keyed by question id")
        samples = [_sample(root, entry, n, answers) for n, entry in enumerate(entries)]
        seen: set[str] = set()
        for sample in samples:
            if sample.id in seen:
                raise DataError(f"{root / ANNS}: duplicate id {sample.id}")
            seen.add(sample.id)
        return samples

    def build_request(self, sample: Sample, settings: Mapping[str, Any]) -> Request:
        """The prompt builder's text with the images that protocol gives: TinyLLaVA's one image, or every
        image lmms-eval's prompt marks."""
        request = super().build_request(sample, settings)
        prompt = self.resolve(settings).get("prompt")
        return replace(request, images=llava_images(sample) if prompt == "llava" else lmms_eval_images(sample))

    def llava_prompt(self, sample: Sample, settings: Settings) -> str:
        """``model_vqa_mmmu.py``: ``<image>\\n`` + the question file's prompt when it names an image."""
        return f"<image>\n{sample.question}" if llava_images(sample) else sample.question

    def lmms_eval_prompt(self, sample: Sample, settings: Settings) -> str:
        """``mmmu_doc_to_text`` (not interleaved) between ``pre_prompt`` and ``post_prompt`` (both empty in
        lmms-eval's default ``mmmu_val``), with one ``<image>`` per image on a first line."""
        mc_prompt = str(self.setting(settings, "multiple_choice_prompt"))
        pre, post = str(self.setting(settings, "pre_prompt")), str(self.setting(settings, "post_prompt"))
        text = pre + lmms_eval_text(sample, mc_prompt, str(self.setting(settings, "open_ended_prompt"))) + post
        n_images = len(lmms_eval_images(sample))
        return " ".join(["<image>"] * n_images) + "\n" + text if n_images else text

    score_official = header_scorer(scorer.score_official)  # MMMU's main_parse_and_eval.py
    score_lmms_eval = header_scorer(scorer.score_lmms_eval)  # lmms-eval's mmmu_val

    def score_path(
        self, path: Path, data_root: Path | None, settings: Settings | None = None, judge: Judge | None = None
    ) -> TaskResult | None:
        """MMMU's output folder (main_parse_and_eval.py) or prediction JSON (main_eval_only.py); see ``outputs``."""
        path = Path(path)
        chosen = self.resolve(settings).get("scorer")
        if outputs.is_output_folder(path):
            if chosen != "official":
                raise UsageError(f"{path}: an MMMU output folder is scored by MMMU's own code (protocol llava15)")
            samples, responses = outputs.read_output_folder(path)
            return score_mmmu(samples, responses, self.header, "mmmu")
        predictions = outputs.read_predictions(path)
        if predictions is None:
            return None
        if chosen != "official":
            raise UsageError(f"{path}: an MMMU prediction file is scored by main_eval_only.py (protocol llava15)")
        if data_root is None:
            raise UsageError("this needs the task's annotation files: pass --data-root DIR (or set HARNESS_DATA_ROOT)")
        samples = self.load(Path(data_root))
        responses, notes = outputs.prediction_responses(path, predictions, samples)
        result = score_mmmu(samples, responses, self.header, "mmmu", mode="parsed")
        result.notes.extend(notes)
        return result

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the 30 subjects in proportion."""
        return str(sample.metadata["subject"])
