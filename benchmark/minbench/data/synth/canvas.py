"""What every painter of a synthetic photo shares: the label map's values (which object owns
each pixel, so the truth is exact) and cv2's fixed-point polygon coordinates."""

BG, MATRIX, CRYSTAL, SATELLITE, CUBE, LABEL = 0, 1, 2, 3, 4, 5
SHIFT = 4  # cv2 fractional bits of polygon coordinates
