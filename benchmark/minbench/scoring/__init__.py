"""Scoring: submission readers, metrics named by the task cards, leaderboards."""
