"""Trainers: one LightningModule per task kind on a small common base (torchgeo's habit)."""
