"""Reading and writing: videos, CTC ground truth, atomic files, the run lock, TIFF and OME-Zarr streams, the simulator."""
