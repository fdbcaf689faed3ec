"""Streamlit helpers shared by the pages: the cached store and frames, run pickers, text display.

Stored text (model names, prompts, answers, judge replies) only ever goes through ``st.text``,
``st.code``, ``st.dataframe``, ``st.json`` or widget options, which show it literally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from harness.errors import HarnessError
from harness.results.store import ResultsStore
from leaderboard import samples as sample_log
from leaderboard.config import store_url
from leaderboard.data import headline_frame, open_store, run_label, runs_frame


@st.cache_resource(show_spinner=False)
def _store(url: str) -> ResultsStore:
    return open_store(url)


@st.cache_data(show_spinner=False, max_entries=8)
def _frames(url: str, revision: tuple[int, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs and headline metrics; ``revision`` (the store's last change) is the cache key."""
    store = _store(url)
    return runs_frame(store), headline_frame(store)


def load() -> tuple[str, ResultsStore, pd.DataFrame, pd.DataFrame]:
    """(store URL, store, runs, headline metrics), or an error line and a stopped page."""
    url = store_url()
    try:
        store = _store(url)
        runs, heads = _frames(url, store.revision())
    except HarnessError as exc:
        show_error("The results store cannot be read.", exc)
        st.stop()
    if runs.empty:
        st.info("The store holds no runs yet: run `python -m harness run --tasks gqa,mme` first.")
        st.stop()
    return url, store, runs, heads


@st.cache_data(show_spinner=False, max_entries=32)
def read_samples(path: str, mtime_ns: int) -> list[dict]:
    """A samples log, re-read when the file changes."""
    return sample_log.read_samples(Path(path))


def samples_of(path: Path) -> list[dict]:
    try:
        return read_samples(str(path), path.stat().st_mtime_ns)
    except (OSError, HarnessError) as exc:
        show_error("The samples log cannot be read.", exc, st.warning)
        return []


def pick_run(runs: pd.DataFrame, label: str, key: str, index: int = 0) -> str:
    """A run chosen from ``runs`` (labelled model · date · id); remembered per key across pages."""
    ids = list(runs["run_id"])
    labels = {r["run_id"]: run_label(r) for _, r in runs.iterrows()}
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[min(index, len(ids) - 1)]
    return st.selectbox(label, ids, key=key, format_func=lambda rid: labels.get(rid, rid))


BLANK = float("-inf")  # stands for an empty number cell on screen (sorts below every number)


def blank_cells(frame: pd.DataFrame, formats: dict[str, str] | None = None) -> Any:
    """``frame`` for ``st.dataframe`` with empty cells blank instead of "None": text cells "", dates as
    "YYYY-MM-DD HH:MM" text (sorts as time), numbers formatted by ``formats`` (``{:.1f}`` style; default
    ``{:g}``) with an empty cell kept as a number that shows as nothing, so columns still sort by value.
    Give number formats here, not in column_config (its format would override these display values)."""
    formats = formats or {}
    out = frame.copy()
    shown: dict[str, Callable[[Any], str]] = {}
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            out[column] = [v.strftime("%Y-%m-%d %H:%M") if pd.notna(v) else "" for v in series]
        elif pd.api.types.is_bool_dtype(series) or series.dtype == object:
            out[column] = [("" if v is None or (isinstance(v, float) and v != v) or v is pd.NA else v)
                           for v in series]  # fmt: skip
        elif pd.api.types.is_numeric_dtype(series):
            out[column] = series.astype("float64").fillna(BLANK)
            spec = formats.get(str(column), "{:g}")
            shown[column] = lambda v, spec=spec: "" if v == BLANK else spec.format(v)
    return out.style.format(shown) if shown else out.style


def show_error(headline: str, exc: BaseException, banner: Callable[[str], Any] = st.error) -> None:
    """A fixed headline in a banner, then the message exactly as raised, preformatted: it can hold paths and
    run ids from the store, which a markdown banner would render (a crafted path as a link)."""
    banner(headline)
    st.code(str(exc), language=None, wrap_lines=True)


def show_text(title: str, value: str) -> None:
    """A caption and the value exactly as stored (preformatted, never markdown or HTML)."""
    st.caption(title)
    if value:
        st.code(value, language=None, wrap_lines=True)
    else:
        st.text("(empty)")


def show_images(images: Sequence[str | bytes], width: int = 320) -> None:
    if not images:
        st.text("(no image found for this sample)")
    for image in images:
        try:
            st.image(image, width=width)
        except Exception as exc:  # an unreadable image is reported, the page goes on
            st.text(f"(cannot show image: {type(exc).__name__})")
