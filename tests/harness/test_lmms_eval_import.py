"""``harness import lmms-eval``: lmms-eval results/samples files (in 0.7's layout) into our store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.data.demo import ensure_demo_root
from harness.registry import get_task
from harness.results.schema import load_results
from harness.results.store import ResultsStore, default_store_url

DATE = "20261126_101500"


def results_doc(tasks: dict[str, dict[str, Any]], n: dict[str, int]) -> dict[str, Any]:
    """A results file as lmms-eval 0.7 writes it (the fields the importer reads, and some it does not)."""
    return {
        "results": tasks,
        "group_subtasks": {t: [] for t in tasks},
        "configs": {t: {"task": t, "generation_kwargs": {"max_new_tokens": 16, "until": ["\n\n"]}} for t in tasks},
        "versions": dict.fromkeys(tasks, "Yaml"),
        "n-shot": dict.fromkeys(tasks, 0),
        "higher_is_better": {t: {"exact_match": True} for t in tasks},
        "n-samples": {t: {"original": n.get(t, 0), "effective": n.get(t, 0)} for t in tasks},
        "config": {
            "model": "llava_hf",
            "model_args": "pretrained=/ckpts/tiny-llava-v1-hf,dtype=float32,device_map=cpu",
            "model_backend": "lmms_eval.models.chat.llava_hf.LlavaHf (chat)",
            "batch_size": "1",
            "device": "cpu",
            "limit": None,
            "random_seed": 0,
        },
        "git_hash": "1263800",
        "git_branch": "main",
        "lmms_eval_version": "0.7.3",
        "date": DATE,
        "task_hashes": dict.fromkeys(tasks, "ab" * 32),
        "model_name": "/ckpts/tiny-llava-v1-hf",
        "model_name_sanitized": "ckpts__tiny-llava-v1-hf",
    }


def write_run(folder: Path, doc: dict, samples: dict[str, list[dict]] | None = None) -> Path:
    model_dir = folder / doc["model_name_sanitized"]
    model_dir.mkdir(parents=True, exist_ok=True)
    results = model_dir / f"{DATE}_results.json"
    results.write_text(json.dumps(doc, indent=2))
    for task, lines in (samples or {}).items():
        text = "".join(json.dumps(line) + "\n" for line in lines)
        (model_dir / f"{DATE}_samples_{task}.jsonl").write_text(text)
    return results


def import_into(source: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["import", "lmms-eval", str(source), "--output-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def only_run(out: Path):
    (run_dir,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    return run_dir, load_results(run_dir)


# ---------------------------------------------------------------------------------------------


def test_task_and_metric_names_units_and_stderr(tmp_path: Path, capsys) -> None:
    tasks = {
        "gqa": {"alias": "gqa", "exact_match,none": 0.625, "exact_match_stderr,none": 0.125,
                "exact_match_stderr_clt,none": 0.12},
        "mme": {"alias": "mme", "mme_percetion_score,none": 1203.5, "mme_percetion_score_stderr,none": "N/A",
                "mme_cognition_score,none": 250.0},
        "mmbench_en_dev": {"gpt_eval_score,none": 64.25, "submission,none": "N/A"},
        "llava_in_the_wild": {"gpt_eval_llava_all,none": 55.1, "gpt_eval_llava_conv,none": 60.0},
        "vqav2_test": {"submission,none": "N/A"},
        "pope": {"pope_accuracy,none": 0.85, "pope_f1_score,none": 0.8},
        "ok_vqa": {"exact_match,none": 0.4, "exact_match,strict": 0.3},
        "textvqa_val": {"exact_match,none": 0.5, "exact_match_stderr,none": 0.05},
    }  # fmt: skip
    n = {"gqa": 8, "mme": 16, "pope": 20, "ok_vqa": 10}
    doc = results_doc(tasks, n)
    doc["results"]["mmbench"] = {"alias": "mmbench"}
    doc["group_subtasks"]["mmbench"] = ["mmbench_en_dev"]
    source = write_run(tmp_path / "lmms", doc)
    printed = import_into(tmp_path / "lmms", tmp_path / "out", capsys)
    assert str(source) in printed and "gqa accuracy 62.50" in printed

    run_dir, result = only_run(tmp_path / "out")
    assert result.spec.command == "import" and result.protocol and result.protocol.name == "lmms-eval"
    assert result.spec.answers == str(source.resolve()) and result.status == "complete"
    assert set(result.tasks) == {"gqa", "mme", "mmbench", "llava_bench", "vqav2", "pope", "textvqa", "ok_vqa"}
    gqa = result.tasks["gqa"]
    assert gqa.headline == ["accuracy"] and gqa.n_samples == 8
    accuracy = gqa.metrics["accuracy"]
    assert accuracy.value == pytest.approx(62.5) and accuracy.stderr == pytest.approx(12.5)
    assert set(gqa.metrics) == {"accuracy"}  # stderr variants are not metrics of their own
    assert gqa.version == "lmms-eval:Yaml" and gqa.protocol_settings["lmms_eval_task"] == "gqa"
    mme = result.tasks["mme"]
    assert mme.headline == ["perception", "cognition"]
    assert mme.metrics["perception"].value == 1203.5 and mme.metrics["perception"].stderr is None
    assert result.tasks["mmbench"].metrics["circular"].value == 64.25  # already percent: no scaling
    assert result.tasks["mmbench"].headline == ["circular"] and "submission" not in result.tasks["mmbench"].metrics
    bench = result.tasks["llava_bench"]
    assert bench.headline == ["relative"] and bench.metrics["relative_conv"].value == 60.0
    assert result.tasks["vqav2"].metrics == {} and result.tasks["textvqa"].metrics["accuracy"].value == 50.0
    pope = result.tasks["pope"]  # one of ours since issue 20: mapped names, fractions made percent
    assert pope.headline == ["f1"] and pope.metrics["f1"].value == pytest.approx(80.0)
    assert pope.metrics["accuracy"].value == pytest.approx(85.0)
    other = result.tasks["ok_vqa"]  # not one of ours: lmms-eval's names and values as they are
    assert other.metrics["exact_match"].value == 0.4 and other.metrics["exact_match,strict"].value == 0.3
    assert other.headline == ["exact_match"]
    assert any("not one of our tasks" in note for note in other.notes)
    assert any("no samples file" in note for note in gqa.notes)
    assert result.model and result.model.name == "tiny-llava-v1-hf" and result.model.dtype == "float32"
    assert result.model.details["lmms_eval_version"] == "0.7.3" and result.git.commit == "1263800"

    store = ResultsStore(default_store_url(tmp_path / "out"))
    (row,) = store.runs()
    assert (row.command, row.protocol, row.run_dir) == ("import", "lmms-eval", str(run_dir))
    heads = {(m.task, m.name): m.value for m in store.headline_metrics(row.id)}
    assert heads[("gqa", "accuracy")] == pytest.approx(62.5) and heads[("mme", "cognition")] == 250.0
    store.close()


def test_samples_become_our_samples_log(tmp_path: Path, capsys) -> None:
    gqa_lines = [
        {"doc_id": 0, "target": "yes", "resps": [["Yes"]], "filtered_resps": ["Yes"], "exact_match": 1.0,
         "input": "Is it red?\nAnswer the question using a single word or phrase.", "doc_hash": "h0"},
        {"doc_id": 1, "target": "left", "filtered_resps": "right", "exact_match": 0.0, "input": "Where?",
         "token_counts": [None]},
    ]  # fmt: skip
    mme_lines = [
        {"doc_id": 0, "target": "Yes", "resps": " Yes", "filtered_resps": "Yes", "input": "Is it a cat?",
         "mme_perception_score": {"question_id": "cat.jpg", "category": "existence", "score": 1.0},
         "token_counts": [{"output_tokens": 2}]},
    ]  # fmt: skip
    doc = results_doc({"gqa": {"exact_match,none": 0.5}, "mme": {"mme_perception_score,none": 100.0}}, {"gqa": 2})
    samples_file = write_run(tmp_path / "lmms", doc, {"gqa": gqa_lines, "mme": mme_lines}).with_name(
        f"{DATE}_samples_gqa.jsonl"
    )
    import_into(samples_file, tmp_path / "out", capsys)  # a samples file brings in its whole run
    run_dir, result = only_run(tmp_path / "out")
    assert result.tasks["gqa"].samples_file == "samples/gqa.jsonl"
    log = [json.loads(line) for line in (run_dir / "samples" / "gqa.jsonl").read_text().splitlines()]
    assert [r["id"] for r in log] == ["0", "1"]
    assert [r["response"]["text"] for r in log] == ["Yes", "right"]
    assert [(r["score"], r["correct"]) for r in log] == [(1.0, True), (0.0, False)]
    assert log[0]["target"] == "yes" and log[0]["question"].startswith("Is it red?")
    assert log[0]["metadata"] == {"doc_id": 0, "doc_hash": "h0"}
    (mme,) = [json.loads(line) for line in (run_dir / "samples" / "mme.jsonl").read_text().splitlines()]
    assert mme["score"] == 1.0 and mme["correct"] is None and mme["response"]["output_tokens"] == 2
    assert mme["detail"]["mme_perception_score"]["category"] == "existence"


def test_imported_samples_score_with_our_scorer(tmp_path: Path, capsys, monkeypatch) -> None:
    """Samples logged with their docs keep the question ids, so ``harness score`` reads the import."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    task = get_task("gqa")
    root = ensure_demo_root([task])
    samples = task.load(root)[:10]
    lines = [
        {"doc_id": i, "doc": {"question_id": s.id, "question": s.metadata["raw_question"]}, "target": s.target,
         "resps": s.target if i % 3 else "purple", "filtered_resps": s.target if i % 3 else "purple",
         "exact_match": 1.0 if i % 3 else 0.0, "input": s.metadata["raw_question"]}
        for i, s in enumerate(samples)
    ]  # fmt: skip
    write_run(tmp_path / "lmms", results_doc({"gqa": {"exact_match,none": 0.6}}, {"gqa": 10}), {"gqa": lines})
    import_into(tmp_path / "lmms", tmp_path / "out", capsys)
    run_dir, _ = only_run(tmp_path / "out")
    answers = tmp_path / "answers.jsonl"  # the same answers as a LLaVA answers file
    answers.write_text("".join(json.dumps({"question_id": rec["doc"]["question_id"], "text": rec["resps"]}) + "\n"
                               for rec in lines))
    scores = []
    for path in (run_dir / "samples" / "gqa.jsonl", answers):
        code = main(["score", "gqa", "--data-root", str(root), "--answers", str(path), "--protocol", "lmms-eval",
                     "--json"])  # fmt: skip
        assert code == 0
        scores.append(json.loads(capsys.readouterr().out))
    assert scores[0]["scores"] == scores[1]["scores"] and scores[0]["n_samples"] == scores[1]["n_samples"]
    assert 0 < scores[0]["scores"]["accuracy"] < 100


def test_importing_again_replaces_the_run(tmp_path: Path, capsys) -> None:
    write_run(tmp_path / "lmms", results_doc({"gqa": {"exact_match,none": 0.5}}, {"gqa": 4}))
    import_into(tmp_path / "lmms", tmp_path / "out", capsys)
    import_into(tmp_path / "lmms", tmp_path / "out", capsys)
    store = ResultsStore(default_store_url(tmp_path / "out"))
    assert len(store.runs()) == 1
    store.close()


def test_a_folder_with_two_runs_gives_two_runs(tmp_path: Path, capsys) -> None:
    write_run(tmp_path / "lmms" / "a", results_doc({"gqa": {"exact_match,none": 0.5}}, {"gqa": 4}))
    other = results_doc({"mme": {"mme_perception_score,none": 10.0}}, {"mme": 2})
    other["model_name_sanitized"] = "other"
    write_run(tmp_path / "lmms" / "b", other)
    import_into(tmp_path / "lmms", tmp_path / "out", capsys)
    store = ResultsStore(default_store_url(tmp_path / "out"))
    assert len(store.runs()) == 2
    store.close()


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        ("missing", 2, "does not exist"),
        ("empty", 1, "no lmms-eval results file"),
        ("malformed", 1, "malformed JSON"),
        ("not-results", 1, "no 'results' object"),
        ("orphan-samples", 1, "is not next to it"),
    ],
)
def test_errors_name_the_path(tmp_path: Path, capsys, setup: str, code: int, message: str) -> None:
    folder = tmp_path / "lmms"
    folder.mkdir()
    target = folder
    if setup == "missing":
        target = tmp_path / "nowhere"
    elif setup == "malformed":
        target = folder / f"{DATE}_results.json"
        target.write_text("{not json")
    elif setup == "not-results":
        target = folder / f"{DATE}_results.json"
        target.write_text(json.dumps({"config": {}}))
    elif setup == "orphan-samples":
        target = folder / f"{DATE}_samples_gqa.jsonl"
        target.write_text("{}\n")
    assert main(["import", "lmms-eval", str(target), "--output-dir", str(tmp_path / "out")]) == code
    err = capsys.readouterr().err
    assert message in err and str(target) in err and len(err.strip().splitlines()) == 1
