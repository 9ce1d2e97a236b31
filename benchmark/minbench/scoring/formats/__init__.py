"""The submission formats, one module each holding its writer and its reader.

- ``ranked_csv``: ``sample_id,pred_1..pred_k`` (classification, zero-shot);
- ``size_csv``: ``sample_id,size_cm`` (size);
- ``mask_pngs``: a folder or zip of ``<sample_id>.png`` masks, optionally with each image's
  score map as ``maps/<sample_id>.png`` (segmentation).

Each reader checks a submission against the task card and the test rows of the manifest
and returns arrays aligned with those rows, or raises ``UserError`` naming the file, line
(or member) and what is wrong. Sizes are checked before anything is read. Each module
registers in ``SUBMISSION_FORMATS`` (under the card's ``submission.format``) the function
the scorer calls: the file read against the test rows, as a per-sample table.
"""

from minbench.scoring.formats._common import SUBMISSION_FORMATS, ReadSubmission
from minbench.scoring.formats.mask_pngs import (MAPS_DIR, MaskSubmission, load_true_mask, map_path,
                                                open_mask_submission, write_mask, write_mask_folder, write_score_map)
from minbench.scoring.formats.ranked_csv import RankedSubmission, read_ranked_csv, write_ranked_csv
from minbench.scoring.formats.size_csv import SizeSubmission, read_size_csv, write_size_csv

__all__ = ["MAPS_DIR", "MaskSubmission", "RankedSubmission", "ReadSubmission", "SUBMISSION_FORMATS",
           "SizeSubmission", "load_true_mask", "map_path", "open_mask_submission", "read_ranked_csv", "read_size_csv",
           "write_mask", "write_mask_folder", "write_ranked_csv", "write_score_map", "write_size_csv"]
