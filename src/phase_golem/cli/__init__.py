"""The command-line face: parse, call the engine or store, render."""
