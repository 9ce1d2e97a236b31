"""Exports of minbench tasks to hosting platforms (``minbench export``): the Codabench
competition bundle (``export/codabench.py``) and the scoring program it carries
(``export/program.py``). Above ``scoring`` and ``data``, below ``cli``."""
