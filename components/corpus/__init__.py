"""OpenSLR-83 corpus reading: index, labels, speaker split and quarantine."""
