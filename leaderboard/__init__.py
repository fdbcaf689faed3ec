"""The Streamlit leaderboard over the results store (``streamlit run leaderboard/app.py``).

It only reads: the store (read-only) and the run directories (samples logs, images).
"""
