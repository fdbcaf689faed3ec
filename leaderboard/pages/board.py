"""Board: models x tasks, headline metric and interval per task, average and rank, filters, CSV."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from leaderboard import ui
from leaderboard.data import SOURCES, BoardFilters, board_csv, board_frame, choices, display_table, order_tasks
from leaderboard.paper import paper_models

url, store, runs, heads = ui.load()
paper = paper_models()
st.title("Leaderboard")

with st.sidebar:
    st.header("Filters")
    text = st.text_input("Model or run id contains", key="board_text")
    sources = st.multiselect("Data source", SOURCES, default=list(SOURCES), key="board_sources",
                             help="real: real benchmark data and model; demo: synthetic data or the demo model; "
                                  "paper: published numbers")  # fmt: skip
    llms = st.multiselect("LLM", sorted(set(choices(runs, "llm")) | {p.llm for p in paper}), key="board_llm")
    tower_options = sorted(set(choices(runs, "vision_tower")) | {p.vision_tower for p in paper})
    towers = st.multiselect("Vision tower", tower_options, key="board_tower")
    protocol_options = sorted(set(choices(runs, "protocol")) | {p.protocol for p in paper})
    protocols = st.multiselect("Protocol", protocol_options, key="board_protocol")
    sizes = [s / 1e9 for s in runs["n_parameters"].dropna()] + [p.n_parameters / 1e9 for p in paper if p.n_parameters]
    size_b = None
    if sizes:
        top = float(math.ceil(max(sizes)))
        # No key: when a larger model arrives the range (and so the widget) is new, and nothing is hidden.
        chosen = st.slider("Size (billions of parameters)", 0.0, top, (0.0, top), step=0.1)
        size_b = None if chosen == (0.0, top) else (float(chosen[0]), float(chosen[1]))
    days = runs["created"].dt.date
    first, last = days.min(), days.max()
    dates = st.date_input("Run date", (first, last), min_value=first, max_value=last)  # no key: as the slider
    date_range = tuple(dates) if isinstance(dates, tuple | list) and len(dates) == 2 else None
    if date_range == (first, last):
        date_range = None
    all_tasks = order_tasks(sorted(set(heads["task"]) | {t for p in paper for t in p.scores}))
    tasks = st.multiselect("Tasks (columns and average)", all_tasks, key="board_tasks",
                           help="empty: every task the shown rows have")  # fmt: skip
    complete_only = st.checkbox("Complete runs only", value=True, key="board_complete")
    demo_apart = st.checkbox("Demo rows apart from paper rows", value=True, key="board_demo_apart",
                             help="demo rows (synthetic data or the demo model) in their own table with their own "
                                  "ranks; off: ranked together with real runs and the published numbers")  # fmt: skip

filters = BoardFilters(
    llms=tuple(llms), vision_towers=tuple(towers), protocols=tuple(protocols), sources=tuple(sources),
    size_b=size_b, dates=date_range, text=text.strip(), tasks=tuple(tasks), complete_only=complete_only,
    demo_apart=demo_apart,
)  # fmt: skip
board = board_frame(runs, heads, filters, paper)
table = board.table
n_runs = int((table["source"] != "paper").sum())
left, mid, right = st.columns(3)
left.metric("Runs shown", n_runs)
mid.metric("Paper rows shown", len(table) - n_runs)
right.metric("Runs in the store", len(runs))

if table.empty:
    st.info("No run matches these filters.")
    st.stop()

config = {task: st.column_config.NumberColumn(f"{task} ({board.metrics.get(task, '')})") for task in board.tasks}
config.update({
    "average": st.column_config.NumberColumn("average (0-100)"),
    "subset": st.column_config.TextColumn("subset", help="--limit N: a fixed subset, ranked only against runs on "
                                                          "the same subset; blank: every sample"),
    "n": st.column_config.TextColumn("n", help="samples scored per task"),
})  # fmt: skip
formats = {task: "{:.1f}" for task in board.tasks}
formats.update({"average": "{:.1f}", "size (B)": "{:.3g}", "rank": "{:.0f}", "step": "{:.0f}"})


def averaged_text(demo: bool) -> str:
    parts = [f"{group}: {', '.join(t) or 'no task every run has'}"
             for group, t in board.averaged.items() if group.startswith("demo") == demo]  # fmt: skip
    return "Averaged over (per ranking group) " + "; ".join(parts) + "." if parts else ""


tables = [(False, "board_table")]
if filters.demo_apart and (table["group"].str.startswith("demo")).any():
    tables.append((True, "board_demo_table"))
for demo, key in tables:
    shown = display_table(board, demo if filters.demo_apart else None)
    if shown.empty:
        continue
    if demo:
        st.subheader("Demo runs")
        st.caption("Synthetic data or the demo model: these show the pipeline works and are not benchmark scores; "
                   "ranked among themselves, apart from the published numbers.")  # fmt: skip
    st.dataframe(ui.blank_cells(shown, formats), hide_index=True, column_config=config, key=key,
                 height=min(38 + 35 * len(shown), 720))  # fmt: skip
    st.caption(averaged_text(demo))
st.download_button("Download CSV", board_csv(board), file_name="leaderboard.csv", mime="text/csv")
st.caption(
    "Click a column header to sort. Average: the mean of the averaged tasks' headline metrics on a 0-100 scale "
    "(MME perception over its maximum of 2000); a row missing one of them has no average and no rank. "
    "Rows are ranked within their group: runs on a --limit subset (the subset column, n samples per task) only "
    "against runs on the same subset, demo rows apart from real runs and paper rows. "
    "Intervals are the 95% intervals recorded with each run. Rows with source 'paper' are published numbers "
    "without intervals."
)
papers_shown = table[table["source"] == "paper"]
if len(papers_shown):
    with st.expander("Sources of the paper rows"):
        st.dataframe(pd.DataFrame({"model": papers_shown["model"], "source": papers_shown["reference"]}),
                     hide_index=True)  # fmt: skip
