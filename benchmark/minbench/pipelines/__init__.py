"""Pipelines: what ``minbench run`` does for each kind of task (train, predict, write the
submission, score it, add the leaderboard entry, draw the plots)."""
