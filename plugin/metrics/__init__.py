"""Offline metrics: distances between feature sets (FID, KID, precision/recall).

The feature extractor is separate: any network that maps images to vectors. These functions
are the statistics, written once and tested on sets with known answers.
"""
from .stats import fid, kid, precision_recall

__all__ = ['fid', 'kid', 'precision_recall']
