"""Network modules of TAP: U-Net backbone, projection, equivariant head, losses."""
