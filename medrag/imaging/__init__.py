"""Radiograph decoding (a shared leaf): pydicom decode of every common transfer syntax, rescale, VOI LUT /
windowing, MONOCHROME1 inversion, PNG/JPEG, and the checks that an image is a chest radiograph."""
