"""Pure rules: no I/O, no clock reads. Time is passed in."""
