"""Data: the canonical manifest, its two sources (embedded ``synth`` and the real
MineralImage5k release), and the one data module that feeds every task."""
