"""History: a training run's, model's or branch's scores over training steps (or time), regressions marked.

Runs are followed on one sample set at a time (every sample, or one ``--limit`` subset): a subset's numbers
are not comparable with a full run's. A point is a regression when harness.stats.compare finds it
significantly worse than the point before on that sample set (paired by sample id; the 95% interval of the
difference excludes 0), the same verdict ``harness compare`` prints.
"""

from __future__ import annotations

from itertools import pairwise

import streamlit as st

from harness.errors import HarnessError
from harness.report.plots import Point, history_lines
from leaderboard import compare as cmp
from leaderboard import ui
from leaderboard.data import HISTORY_GROUPS, choices, history_frame, sample_sets


@st.cache_data(show_spinner="Testing each step against the one before...", max_entries=512)
def _verdicts(url: str, revision: tuple[int, str], a: tuple[str, str], b: tuple[str, str]) -> dict:
    try:
        return cmp.significant(cmp.compare(ui._store(url), url, a, b, max_flips=0).comparison)
    except HarnessError:
        return {}


url, store, runs, heads = ui.load()
st.title("History")
complete = runs[runs["status"] == "complete"]
groups = list(HISTORY_GROUPS)
first = next((i for i, g in enumerate(groups) if choices(complete, HISTORY_GROUPS[g])), 0)
group = st.radio("Follow", groups, index=first, horizontal=True, key="history_group")
column = HISTORY_GROUPS[group]
values = choices(complete, column)
if not values:
    st.info(f"No complete run records a {group}.")
    st.stop()
value = st.selectbox(group.capitalize(), values, key=f"history_{column}")
sets = sample_sets(runs, column, value)
samples = sets[0] if sets else None
if len(sets) > 1:
    samples = st.selectbox("Sample set", sets, key="history_sample_set",
                           help="runs are compared with the previous run on the same samples; a --limit subset "
                                "is followed apart from full runs")  # fmt: skip
frame = history_frame(runs, heads, column, value, samples)
if frame.empty:
    st.info("No headline metrics for these runs yet.")
    st.stop()
x_label = "training step" if frame.attrs.get("x_is_step") else "run time"
revision = store.revision()
dirs = dict(zip(runs["run_id"], runs["run_dir"].astype(str)))

flags: dict[tuple[str, str], bool] = {}
for task, series in frame.groupby("task", sort=False):
    ids = list(series["run_id"])
    for before, after in pairwise(ids):
        verdict = _verdicts(url, revision, (before, dirs[before]), (after, dirs[after]))
        flags[(task, after)] = verdict.get((task, series["metric"].iloc[0])) == "worse"
frame["regression"] = [flags.get((t, r), False) for t, r in zip(frame["task"], frame["run_id"])]

panels = []
for task, series in frame.groupby("task", sort=False):
    metric = series["metric"].iloc[0]
    points = [Point(x, v, lo if lo == lo else None, hi if hi == hi else None, bool(reg))
              for x, v, lo, hi, reg in zip(series["x"], series["value"], series["ci_low"], series["ci_high"],
                                           series["regression"])]  # fmt: skip
    panels.append((f"{task} ({metric})", points))
n_bad = int(frame["regression"].sum())
left, mid, right = st.columns(3)
left.metric("Runs", frame["run_id"].nunique())
mid.metric("Regressions", n_bad)
right.metric("Sample set", samples or "every sample")
st.pyplot(history_lines(panels, x_label), clear_figure=False)
st.caption(f"x axis: {x_label}. Bands: 95% intervals. Red triangles: significantly worse than the previous point.")
shown = frame[["x", "step", "created", "sample_set", "task", "metric", "value", "ci_low", "ci_high", "regression",
              "run_id"]]  # fmt: skip
formats = {"x": "{:.0f}", "step": "{:.0f}", "value": "{:.2f}", "ci_low": "{:.2f}", "ci_high": "{:.2f}"}
st.dataframe(ui.blank_cells(shown, formats), hide_index=True, key="history_table")
