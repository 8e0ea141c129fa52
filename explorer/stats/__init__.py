"""Statistics: of one scan (shares, asymmetry index, the channel/anatomy split, intervals, tests) and of
a cohort (models and volumes as units)."""
