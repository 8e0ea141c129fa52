"""Reading scans: the volume readers, files and their hashes, intensity normalisation."""
