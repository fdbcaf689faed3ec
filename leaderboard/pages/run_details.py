"""Run details: spec, model, data and code fingerprints, versions, per-task throughput, errors, notes."""

from __future__ import annotations

import streamlit as st

from harness.results.identity import RunIdentity
from leaderboard import ui
from leaderboard.details import task_table

url, store, runs, heads = ui.load()
st.title("Run details")
run_id = ui.pick_run(runs, "Run", key="run")
result = store.get_run(run_id)
if result is None:
    st.error("This run is no longer in the store.")
    st.stop()

row = runs[runs["run_id"] == run_id].iloc[0]
top = st.columns(4)
top[0].metric("Status", result.status)
top[1].metric("Tasks", len(result.tasks))
top[2].metric("Errors", sum(t.n_errors for t in result.tasks.values()))
top[3].metric("Parse failures", sum(t.n_parse_failures for t in result.tasks.values()))
ui.show_text("Model", result.model.name if result.model else "")
ui.show_text("Run directory", str(row["run_dir"]))

st.subheader("Tasks")
st.dataframe(task_table(result), hide_index=True)

if result.errors:
    st.subheader("Run errors")
    for line in result.errors:
        st.code(line, language=None, wrap_lines=True)
notes = [(name, note) for name, rec in result.tasks.items() for note in rec.notes]
if notes:
    st.subheader("Notes")
    for name, note in notes:
        st.code(f"{name}: {note}", language=None, wrap_lines=True)

st.subheader("Identity: model, data, protocol and code fingerprints")
st.json(RunIdentity.of(result).model_dump(), expanded=True)
left, right = st.columns(2)
with left:
    st.subheader("Spec")
    st.json(result.spec.model_dump(), expanded=False)
    st.subheader("Protocol")
    st.json(result.protocol.model_dump() if result.protocol else {}, expanded=False)
    st.subheader("Judge")
    st.json(result.judge.model_dump() if result.judge else {}, expanded=False)
with right:
    st.subheader("Model")
    st.json(result.model.model_dump() if result.model else {}, expanded=False)
    st.subheader("Versions and hardware")
    st.json(result.environment.model_dump(), expanded=False)
    st.subheader("Data")
    st.json(result.data.model_dump(), expanded=False)
