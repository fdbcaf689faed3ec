"""The leaderboard app: ``streamlit run leaderboard/app.py [-- --store URL]`` or ``python -m harness leaderboard``."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

try:
    import leaderboard  # noqa: F401  (installed, or the checkout is on the path)
except ImportError:  # `streamlit run leaderboard/app.py` from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

st.set_page_config(page_title="TinyLLaVA leaderboard", page_icon=":material/leaderboard:", layout="wide")

PAGES = [
    st.Page("pages/board.py", title="Board", icon=":material/leaderboard:", default=True),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/samples.py", title="Samples", icon=":material/image_search:"),
    st.Page("pages/history.py", title="History", icon=":material/timeline:"),
    st.Page("pages/run_details.py", title="Run details", icon=":material/info:"),
]
st.navigation(PAGES).run()
