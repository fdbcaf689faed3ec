"""A small judged task, registered in tests as a third-party plugin would be (an entry point in a
dist-info folder on PYTHONPATH), so the judge flags can be tested end to end on any task list.

Each answer is graded by the judge ``judge_runs`` times (run after run, items of one run through
``judge_map``); a reply is read as a number from 0 to 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from harness.judging.contract import Judge, JudgeReply, judge_map
from harness.stats.analytic import mean_metric
from harness.task import Task
from harness.types import DataFile, GenerationSettings, ImageRef, Request, Response, Sample, SampleScore, TaskResult
from tests.helpers.plugins import register_plugin

QUESTIONS = "judged_echo/questions.jsonl"
IMAGES = "judged_echo/images"
ENTRY_POINT = "judged_echo = tests.helpers.judged_plugin:JudgedEchoTask"


def grading_prompt(sample: Sample, answer: str) -> str:
    return f"Grade the answer from 0 to 1.\nQuestion: {sample.question}\nAnswer: {answer}\nGrade:"


def read_grade(reply: JudgeReply) -> float | None:
    try:
        value = float(reply.text.strip())
    except ValueError:
        return None
    return value if reply.error is None and 0.0 <= value <= 1.0 else None


def register(site: Path) -> Path:
    """Write a dist-info folder under ``site`` declaring this task in the ``harness.tasks`` group."""
    return register_plugin(site, "judged-echo-plugin", "harness.tasks", ENTRY_POINT)


class JudgedEchoTask(Task):
    name = "judged_echo"
    version = "1"
    description = "test plugin: answers graded 0-1 by a judge"
    judged = True
    default_judge = "gpt-4-0613"
    headline = ("score",)
    default_settings: ClassVar[dict[str, dict[str, Any]]] = {"llava15": {"judge_runs": 1, "max_new_tokens": 8}}

    def data_files(self) -> list[DataFile]:
        return [DataFile(path=QUESTIONS), DataFile(path=IMAGES, kind="dir", needed_for="run")]

    def load(self, data_root: Path) -> list[Sample]:
        samples = []
        for line in (Path(data_root) / QUESTIONS).read_text().splitlines():
            rec = json.loads(line)
            image = ImageRef(path=str(Path(data_root) / IMAGES / rec["image"]))
            samples.append(Sample(id=rec["id"], question=rec["question"], images=(image,), target=rec["answer"]))
        return samples

    def build_request(self, sample: Sample, settings: Mapping[str, Any]) -> Request:
        generation = GenerationSettings(max_new_tokens=int(settings.get("max_new_tokens", 8)))
        return Request(self.name, sample.id, f"<image>\n{sample.question}", sample.images, generation)

    def score(
        self,
        samples: Sequence[Sample],
        responses: Mapping[str, Response],
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult:
        settings = settings or {}
        answered = [s for s in samples if s.id in responses and responses[s.id].error is None]
        grades: dict[str, list[JudgeReply]] = {s.id: [] for s in answered}
        if judge is not None:
            for run in range(int(settings.get("judge_runs", 1))):

                def ask(sample: Sample, run: int = run) -> JudgeReply:
                    messages = [{"role": "user", "content": grading_prompt(sample, responses[sample.id].text)}]
                    return judge.complete(messages, temperature=0.0, max_tokens=4, run=run)

                for sample, reply in zip(answered, judge_map(judge, ask, answered)):
                    grades[sample.id].append(reply)
        per_sample = []
        values = []
        for sample in answered:
            read = [g for g in (read_grade(r) for r in grades[sample.id]) if g is not None]
            value = sum(read) / len(read) if read else None
            if value is not None:
                values.append(value)
            per_sample.append(SampleScore(sample_id=sample.id, score=value, parse_failed=value is None,
                                          detail={"judge": [r.record() for r in grades[sample.id]]}))  # fmt: skip
        metrics = {"score": mean_metric(values, description="mean grade")} if values else {}
        return TaskResult(
            task=self.name, version=self.version, metrics=metrics, headline=list(self.headline), samples=per_sample,
            n_samples=len(samples), n_parse_failures=sum(1 for s in per_sample if s.parse_failed),
            n_missing=sum(1 for s in samples if s.id not in responses),
        )  # fmt: skip

    def write_demo(self, root: Path, seed: int) -> None:
        folder = Path(root) / IMAGES
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, colour in enumerate(("red", "green", "blue", "yellow")):
            Image.new("RGB", (32, 32), colour).save(folder / f"{i}.png")
            question = f"What colour is the square? ({i})"
            rec = {"id": f"q{i}", "image": f"{i}.png", "question": question, "answer": colour}
            lines.append(json.dumps(rec))
        (Path(root) / QUESTIONS).write_text("\n".join(lines) + "\n")
