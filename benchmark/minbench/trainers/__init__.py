"""Task modules: one LightningModule per task kind (``*Task``) on a small common base
(torchgeo's habit). The folder keeps its name; ``tasks/`` at the top holds the task cards."""
