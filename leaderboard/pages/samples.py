"""Samples: one run's answers by task, filtered by outcome, with image, prompt, answers, score and judge reply."""

from __future__ import annotations

import streamlit as st

from leaderboard import samples as log
from leaderboard import ui

url, store, runs, heads = ui.load()
st.title("Samples")
run_id = ui.pick_run(runs, "Run", key="run")
row = runs[runs["run_id"] == run_id].iloc[0]
task_rows = {t.task: t for t in store.task_rows(run_id)}
if not task_rows:
    st.info("This run has no finished task yet.")
    st.stop()
task = st.selectbox("Task", list(task_rows), key="samples_task")
run_dir = log.resolve_run_dir(str(row["run_dir"]), run_id, url)
if run_dir is None:
    st.warning("The run directory is not on this machine; only the store's numbers are available.")
    ui.show_text("Recorded run directory", str(row["run_dir"]))
    st.stop()
records = ui.samples_of(run_dir / task_rows[task].samples_path)

left, right = st.columns([2, 3])
statuses = left.multiselect("Outcome", log.STATUSES, key="samples_status", help="empty: all")
needle = right.text_input("Id, prompt or answer contains", key="samples_text")
chosen = log.select(records, statuses, needle.strip())
counts = log.samples_frame(records)["status"].value_counts()
cols = st.columns(5)
for col, name in zip(cols, ("correct", "wrong", "error", "parse failure", "scored")):
    col.metric(name, int(counts.get(name, 0)))
st.caption(f"{len(chosen)} of {len(records)} samples match")
if not chosen:
    st.stop()

st.dataframe(log.samples_frame(chosen), hide_index=True, key="samples_table")
ids = [str(r.get("id", "")) for r in chosen]
picked = st.selectbox("Sample", range(len(chosen)), format_func=lambda i: f"{ids[i]} ({log.status(chosen[i])})",
                      key="samples_pick")  # fmt: skip
rec = chosen[picked if picked is not None else 0]

image_col, text_col = st.columns([2, 3])
with image_col:
    ui.show_images(log.sample_images(rec, task, str(row["data_root"])))
with text_col:
    st.metric("Score", "" if rec.get("score") is None else f"{rec['score']:.3g}", log.status(rec), delta_color="off")
    ui.show_text("Prompt", log.prompt(rec))
    ui.show_text("Raw answer", log.answer(rec))
    if log.error(rec):
        ui.show_text("Error", log.error(rec))
    ui.show_text("Parsed answer", log.text_of(rec.get("parsed")))
    ui.show_text("Ground truth", log.text_of(rec.get("target")))
    for i, reply in enumerate(log.judge_replies(rec), start=1):
        ui.show_text(f"Judge reply {i}", reply)
with st.expander("Scorer detail and metadata"):
    st.json({"detail": rec.get("detail") or {}, "metadata": rec.get("metadata") or {}}, expanded=True)
