"""Compare: two runs, per-task deltas with intervals and tests (harness.stats.compare), the changed samples."""

from __future__ import annotations

import streamlit as st

from harness.errors import HarnessError
from leaderboard import compare as cmp
from leaderboard import samples as log
from leaderboard import ui


@st.cache_data(show_spinner="Comparing (paired bootstrap)...", max_entries=16)
def _compare(url: str, revision: tuple[int, str], a: tuple[str, str], b: tuple[str, str]) -> cmp.CompareView:
    return cmp.compare(ui._store(url), url, a, b)


url, store, runs, heads = ui.load()
st.title("Compare two runs")
st.caption("B − A on the samples both runs answered, paired by sample id: harness compare's numbers.")
left, right = st.columns(2)
with left:
    a_id = ui.pick_run(runs, "Run A (baseline)", key="compare_a", index=1)
with right:
    b_id = ui.pick_run(runs, "Run B", key="compare_b", index=0)
if a_id == b_id:
    st.info("Pick two different runs.")
    st.stop()

row_a = runs[runs["run_id"] == a_id].iloc[0]
row_b = runs[runs["run_id"] == b_id].iloc[0]
try:
    view = _compare(url, store.revision(), (a_id, str(row_a["run_dir"])), (b_id, str(row_b["run_dir"])))
except HarnessError as exc:
    ui.show_error("These runs cannot be compared.", exc)
    st.stop()
comparison = view.comparison
if not comparison.tasks:
    st.info("These runs have no task in common.")
    st.stop()

table = cmp.metrics_frame(comparison)
counts = table["verdict"].value_counts()
cols = st.columns(3)
cols[0].metric("Significantly better", int(counts.get("better", 0)))
cols[1].metric("Significantly worse", int(counts.get("worse", 0)))
cols[2].metric("No detectable change", int(counts.get("no detectable change", 0)))
st.dataframe(table, hide_index=True, key="compare_table", column_config={
    "A": st.column_config.NumberColumn("A (paired)", format="%.2f"),
    "B": st.column_config.NumberColumn("B (paired)", format="%.2f"),
    "A (whole run)": st.column_config.NumberColumn(format="%.2f"),
    "B (whole run)": st.column_config.NumberColumn(format="%.2f"),
    "Δ (B − A)": st.column_config.NumberColumn(format="%+.2f"),
    "95% CI low": st.column_config.NumberColumn(format="%+.2f"),
    "95% CI high": st.column_config.NumberColumn(format="%+.2f"),
    "p": st.column_config.NumberColumn(format="%.4f"),
})  # fmt: skip
st.caption("A, B and Δ are computed on the paired samples (the ids both runs scored); the whole-run values "
           "are in the last columns and differ where the runs cover different samples.")
for note in comparison.notes:
    st.code(f"note: {note}", language=None, wrap_lines=True)

st.subheader("Changed samples")
tasks = [t for t in comparison.tasks if t.n_flips]
if not tasks:
    st.text("No paired sample changed its score.")
    st.stop()
by_name = {t.task: t for t in tasks}
name = st.selectbox("Task", list(by_name), format_func=lambda n: f"{n}: {by_name[n].n_flips} changed",
                    key="compare_task")  # fmt: skip
task = by_name[name or next(iter(by_name))]
for note in task.notes:
    st.code(f"note: {note}", language=None, wrap_lines=True)
flips = view.flips.get(task.task, [])
direction = st.radio("Show", ("all", "worse in B", "better in B"), horizontal=True, key="compare_direction")
higher = task.metrics[0].higher_is_better if task.metrics else True
if direction != "all":
    want_worse = direction == "worse in B"
    flips = [f for f in flips if ((f.flip.score_b < f.flip.score_a) == higher) == want_worse]
per_page = 10
pages = max(1, (len(flips) + per_page - 1) // per_page)
page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="compare_page") if pages > 1 else 1
st.caption(f"{len(flips)} samples (of {task.n_flips} changed)")
for fv in flips[(page - 1) * per_page : page * per_page]:
    st.divider()
    image_col, a_col, b_col = st.columns([2, 3, 3])
    with image_col:
        st.text(f"sample {fv.flip.id}")
        rec = fv.record_a or fv.record_b or {}
        ui.show_images(log.sample_images(rec, task.task, str(row_a["data_root"])), width=220)
        ui.show_text("Question", log.prompt(rec) if rec else fv.flip.question)
        ui.show_text("Ground truth", log.text_of(rec.get("target")))
    with a_col:
        st.metric("A score", f"{fv.flip.score_a:.3g}")
        ui.show_text("A answer", log.answer(fv.record_a) if fv.record_a else fv.flip.answer_a)
    with b_col:
        st.metric("B score", f"{fv.flip.score_b:.3g}", f"{fv.flip.score_b - fv.flip.score_a:+.3g}")
        ui.show_text("B answer", log.answer(fv.record_b) if fv.record_b else fv.flip.answer_b)
