"""Evaluating checkpoints during training with the harness (the only module of ``training`` that uses it).

At each save the callback runs the chosen tasks (``--limit`` samples each) on ``checkpoint-N`` through the
harness's own ``run``, into a results directory and store, and records where in training the checkpoint
came from: ``model.details`` of the run gets ``training_step``, ``training_epoch`` and ``training_run`` (the
output directory). The store keeps that inside its ``results_json``, so a leaderboard can draw the curve of
a training run (``training_run``) over ``training_step``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from training.recipe import Recipe


class HarnessEvalCallback(TrainerCallback):
    """Runs harness tasks on every saved checkpoint (main process only) and on the final model."""

    def __init__(
        self,
        tasks: str,
        output_dir: str | Path,
        run_name: str,
        limit: int | None = None,
        data_root: str | None = None,
        store: str | None = None,
        batch_size: int = 16,
        device: str | None = None,
    ) -> None:
        self.tasks = tasks
        self.output_dir = Path(output_dir)
        self.run_name = run_name
        self.limit = limit
        self.data_root = data_root
        self.store = store
        self.batch_size = batch_size
        self.device = device
        self.runs: list[Any] = []  # the RunResults written, in order

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> HarnessEvalCallback:
        out = Path(recipe.output_dir)
        return cls(
            tasks=str(recipe.eval_tasks),
            output_dir=recipe.eval_output_dir or out / "eval",
            run_name=str(out.resolve()),
            limit=recipe.eval_limit,
            data_root=recipe.eval_data_root,
            store=recipe.eval_store,
            batch_size=recipe.eval_batch_size,
        )

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.evaluate(checkpoint, state.global_step, state.epoch)

    def evaluate_final(self, folder: Path, state: Any) -> None:
        """The final model, unless the last save already evaluated this step."""
        if state.is_world_process_zero and not any(
            r.model.details.get("training_step") == state.global_step for r in self.runs
        ):
            self.evaluate(folder, state.global_step, state.epoch)

    def evaluate(self, checkpoint: Path, step: int, epoch: float | None) -> Any:
        """One harness run on ``checkpoint``, annotated with the training step, written to the store."""
        from harness.results.schema import RunDirectory
        from harness.results.store import ResultsStore, default_store_url
        from harness.run.evaluate import RunOptions, run

        options = RunOptions(
            tasks=self.tasks,
            model=f"tinyllava:{checkpoint}",
            limit=self.limit,
            data_root=self.data_root,
            output_dir=str(self.output_dir),
            store=self.store,
            batch_size=self.batch_size,
            device=self.device,
            show_progress=False,
            argv=["training-eval-callback", f"--step={step}"],
        )
        result = run(options)
        result.model.details.update(training_step=step, training_epoch=epoch, training_run=self.run_name)
        run_dir = RunDirectory(self.output_dir, result.run_id)
        run_dir.write_results(result)
        store = ResultsStore(self.store or default_store_url(self.output_dir))
        store.record(result, run_dir.path)
        store.close()
        self.runs.append(result)
        return result
